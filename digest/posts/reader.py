"""The posts folder → every publishable Post, plus every problem found, reusing the cache.

A file is parsed again only when its size or mtime changed (or the site settings did);
a cold read of many files is spread over worker processes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path

from ..config import DEFAULT_LIMITS, Config, Limits, Site
from ..errors import PostError, Problem
from ..state.store import ParsedRow, Stats, Store
from ..util.yamlsource import VALUE_ERRORS
from .content import stem_of
from .hugo import pages, parse_hugo_post
from .parse import Post, parse_post
from .published import Published, standing, url_owners, url_taken
from .scan import BAD_NAME, OUTSIDE, UNLISTABLE, Scan, site_folder
from .sources import source_stats

RULES_VERSION = "6"  # bump when parsing or rendering rules change: cached readings, renders
# and feeds all depend on fingerprint(), so an upgrade redoes them (5: kramdown lists,
# links with spaces, the site's kramdown: settings)
PARALLEL_FROM = 2000  # below this many files to parse, a pool costs more than it saves


def fingerprint(site: Site, limits: Limits = DEFAULT_LIMITS) -> str:
    blob = json.dumps([RULES_VERSION, asdict(site), asdict(limits)], sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _post_row(post: Post) -> str:
    """A cache row as a JSON array in field order: ~5x faster to load than dicts."""
    warnings = [[str(w.path), w.line, w.message, w.hint] for w in post.warnings]
    return json.dumps([1, post.path, post.date.isoformat(), post.slug, post.title,
                       post.tags, post.categories, post.url, post.ext,
                       post.excerpt_separator, post.excerpt, post.author, post.published,
                       warnings, post.links,
                       post.expires.isoformat() if post.expires is not None else None])


def _problem_row(problem: Problem) -> str:
    return json.dumps([0, problem.line, problem.message, problem.hint])


def _cache_row(rel: str, size: int, mtime: int, mark: str, item: Post | Problem) -> ParsedRow:
    """A reading as the parse cache stores it: the whole of it, and what a build indexes."""
    if isinstance(item, Problem):
        return (rel, size, mtime, mark, _problem_row(item), None, None, None, None, None, None,
                None, None)
    terms = json.dumps([item.tags, item.categories])
    return (rel, size, mtime, mark, _post_row(item), item.date.timestamp(),
            item.date.isoformat(), item.url, int(item.published), terms, item.jekyll_id,
            int(bool(item.warnings)), json.dumps(item.links) if item.links else None)


def from_row(text: str, root: Path, rel: str) -> Post | Problem:
    """A cached reading (a row of the parse cache) → the Post or Problem it was."""
    row = json.loads(text)
    if row[0] == 0:
        return Problem(root / rel, row[1], row[2], row[3])
    return Post(row[1], datetime.fromisoformat(row[2]), row[3], row[4], tuple(row[5]),
                tuple(row[6]), row[7], row[8], row[9], row[10], row[11], row[12],
                tuple((stem, line) for stem, line in row[14]),
                tuple(Problem(Path(w[0]), w[1], w[2], w[3]) for w in row[13]),
                datetime.fromisoformat(row[15]) if len(row) > 15 and row[15] else None)


def _unusable(path: Path, reason: int, errno: int, root: Path) -> Problem:
    """The problem with a name the scan could not use (scan.py says why by its size)."""
    if reason == OUTSIDE:
        return Problem(path, None, f"a symlink to {os.path.realpath(path)}, outside the site "
                       f"folder {site_folder(root)}; it is not followed",
                       "copy the file into the site, or remove the link")
    if reason == BAD_NAME:
        return Problem(path, None, "the name is not UTF-8 (the bad bytes are shown as "
                       "\\xNN), so it cannot be a post's name",
                       "rename it in UTF-8 (e.g. convmv -f latin1 -t utf-8)")
    what = "folder" if reason == UNLISTABLE else "file"
    return Problem(path, None, f"cannot read this {what}: {os.strerror(errno)}",
                   "check its permissions, or the link it is")


def _parse_one(root: Path, relpath: str, site: Site, limits: Limits = DEFAULT_LIMITS,
               size: int = 0, mtime: int = 0) -> Post | Problem:
    """One file's reading; whatever goes wrong is a Problem for this file alone."""
    path = root / relpath
    if size < 0:
        return _unusable(path, size, mtime, root)
    try:
        with path.open("rb") as file:  # bounded: the file may have grown since the scan
            raw = file.read(limits.post_bytes + 1)
        # a Hugo content section: Hugo's rules (hugo.py); a feed source's entries (absolute
        # paths, sources.py) are written for the Jekyll rules on any site
        if site.hugo is not None and not os.path.isabs(relpath):
            return parse_hugo_post(path, relpath, raw, site, limits)
        return parse_post(path, relpath, raw, site, limits)
    except PostError as exc:
        return exc.problem
    except OSError as exc:
        return Problem(path, None, f"cannot read: {exc.strerror}")
    except (*VALUE_ERRORS, MemoryError) as exc:  # a bound we missed: this file only
        return Problem(path, None, f"cannot be read ({type(exc).__name__}: "
                       f"{str(exc)[:200]})", "report this file to digest's maintainers")


def _read_chunk(root: Path, todo: list[tuple[str, int, int]], site: Site,
                mark: str, limits: Limits = DEFAULT_LIMITS) -> list[ParsedRow]:
    """Parse files into cache rows: the JSON is made in the workers, not after them."""
    return [_cache_row(rel, size, mtime, mark, _parse_one(root, rel, site, limits, size, mtime))
            for rel, size, mtime in todo]


def _read_all(root: Path, todo: list[tuple[str, int, int]], site: Site,
              mark: str, limits: Limits) -> Iterator[ParsedRow]:
    """Cache rows of *todo*, in its order, each chunk as soon as it is parsed."""
    workers = os.cpu_count() or 1
    if len(todo) < PARALLEL_FROM or workers < 2:
        yield from _read_chunk(root, todo, site, mark, limits)
        return
    # small chunks keep both workers busy and overlap sending results back with parsing
    size = max(100, -(-len(todo) // (workers * 16)))
    chunks = [todo[i:i + size] for i in range(0, len(todo), size)]
    from ..util.workers import pool_of  # only a cold read pays for importing it; they die with us

    with pool_of(workers) as pool:
        for chunk in pool.map(_read_chunk, [root] * len(chunks), chunks,
                              [site] * len(chunks), [mark] * len(chunks),
                              [limits] * len(chunks)):
            yield from chunk


def refresh(config: Config, store: Store, scanned: Scan | None = None) -> tuple[Stats, int]:
    """Bring the parse cache up to date with the folder: parse only new and changed files.

    Returns every file's (size, mtime_ns) and how many files were parsed. *scanned* is a
    scan of the posts folder already started (Scan.start), else one is made here.
    """
    site, root = config.site, config.posts
    mark = fingerprint(site, config.limits)
    known, seq, from_snapshot = store.parse_marks(mark)
    stats = (scanned or Scan(root)).result()
    if site.hugo is not None:  # a Hugo section: only its pages (not bundles' resources),
        stats = pages(stats)  # and a page whose expiryDate has passed is read again
        known.update((rel, (None, -1)) for rel in _expired(store, datetime.now().timestamp()))
    if config.sources:  # feed sources' entries, keyed by absolute path (sources.py)
        stats = {**stats, **source_stats(config)}
    if from_snapshot and known == stats:  # the usual case: one dict comparison
        return stats, 0
    # in primary key order, so a cold build's 20,000 inserts go ~25% faster; they are made
    # while the workers parse the next chunks, not after the last
    todo = sorted((rel, *stat) for rel, stat in stats.items() if known.get(rel) != stat)
    gone = [rel for rel in known if rel not in stats]
    store.save_parsed(_read_all(root, todo, site, mark, config.limits), gone,
                      fingerprint=mark, marks=stats,
                      based_on=seq)
    return stats, len(todo)


def _expired(store: Store, now: float) -> list[str]:
    """Published readings whose `expires` (Hugo's expiryDate) is past: reading them again
    unpublishes them. A row without one ends in 'null]' and is not decoded."""
    found = []
    for rel, text in store.parsed_rows():
        if text.endswith("null]") or not text.startswith("[1,"):
            continue
        row = json.loads(text)
        if row[12] and len(row) > 15 and row[15] and \
                datetime.fromisoformat(row[15]).timestamp() <= now:
            found.append(rel)
    return found


def read_posts(config: Config, store: Store, *, now: datetime, future: bool = False,
               scanned: Scan | None = None) -> Published:
    """Every post of the folder, parsed or from cache; rejected files listed, none fatal."""
    stats, parsed = refresh(config, store, scanned)
    root = config.posts
    results = [from_row(row, root, rel) for rel, row in store.parsed_rows()]
    corpus = _select(results, now=now, future=future, parsed=parsed, root=root)
    if not stats:
        corpus.warnings.append(empty_folder(root))
    return replace(corpus, stats=stats)


def empty_folder(root: Path) -> Problem:
    """An empty posts folder is almost always the wrong folder: say so, not an empty feed."""
    return Problem(root, None, "the posts folder has no post files, so every feed is empty",
                   "check 'posts:' in config.yaml: it should name the site's _posts folder")


def readings(store: Store, root: Path, paths: Iterable[str]) -> dict[str, Post]:
    """The cached Posts of *paths* (which must be posts): a build decodes only these."""
    found = {rel: from_row(row, root, rel) for rel, row in store.readings(paths)}
    return {rel: item for rel, item in found.items() if isinstance(item, Post)}


def _select(items: list[Post | Problem], *, now: datetime, future: bool, parsed: int,
            root: Path) -> Published:
    """Jekyll's publisher over every reading, by the rules of published.py."""
    posts = sorted((i for i in items if isinstance(i, Post)),
                   key=lambda p: (p.date.timestamp(), p.path))
    rejected = [i for i in items if isinstance(i, Problem)]
    when = now.timestamp()
    due, held = _standings(posts, when, future)
    losers = url_owners((p.path, p.url) for p in due)
    rejected.extend(url_taken(root, path, url, owner) for path, (url, owner) in losers.items())
    live = [p for p in due if p.path not in losers]
    warnings = _warnings(live, root)
    live.reverse()
    rejected.sort(key=lambda p: str(p.path))
    terms = frozenset(t for p in live for t in (*p.tags, *p.categories))
    return Published(len(live), rejected, warnings, held["future"], held["unpublished"],
                     parsed, terms, None if future else _next_future(posts, when), live)


def _standings(posts: list[Post], when: float,
               future: bool) -> tuple[list[Post], dict[str, int]]:
    """The due posts, in order, and how many posts stand as each of the three."""
    held = {"unpublished": 0, "future": 0, "due": 0}
    due = []
    for post in posts:
        status = standing(post.published, post.date.timestamp(), when, future)
        held[status] += 1
        if status == "due":
            due.append(post)
    return due, held


def _warnings(live: list[Post], root: Path) -> list[Problem]:
    """The live posts' own warnings, and their links to posts that are not live."""
    warnings = [w for p in live for w in p.warnings]
    if any(p.links for p in live):
        stems = {stem_of(p.path) for p in live}
        warnings.extend(w for p in live for w in p.broken_links(root, stems))
    return warnings


def _next_future(posts: list[Post], now: float) -> datetime | None:
    """The date of the soonest future post that will not lose its URL to an earlier one."""
    published = [p for p in posts if p.published]
    taken = url_owners((p.path, p.url) for p in published)
    return next((p.date for p in published if p.date.timestamp() > now
                 and p.path not in taken), None)


__all__ = ["Published", "read_posts", "refresh", "replace"]
