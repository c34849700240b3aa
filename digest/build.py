"""`digest build`: posts → feeds on disk, doing only the work that what changed requires.

Only files whose size or mtime changed are parsed (reader.py); the live index (index.py)
says which feeds may list different posts since the last build, and only those are looked
at. Each feed's inputs (its posts, their files' size and mtime, their ids, `updated`, the
settings) are hashed and remembered; a feed whose hash is unchanged and whose files exist is
not rendered. Rendered posts are cached by file size and mtime, and, for a post that links to
others with `{% post_url %}`, by where those posts are now.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from . import __version__, builtin
from .config import Config, Site
from .content import PageContext, Rendered, plain_title, stem_of
from .feeds import (
    Entry,
    FeedEntries,
    FeedSpec,
    atom_bytes,
    feed_paths,
    feed_title,
    rss_bytes,
)
from .index import (
    EVERY_FEED,
    Found,
    Indexed,
    LiveIndex,
    PostUrlLookup,
    preferred_target,
)
from .jekyll import absolute_url
from .opml import opml_bytes
from .posts import Post, body_of
from .reader import fingerprint, readings, refresh
from .scan import Scan
from .store import Store
from .writer import clean_stale, write_files, write_if_changed

log = logging.getLogger(__name__)
STYLESHEET = "feed.xsl"
PARALLEL_RENDER_FROM = 64  # fewer than this: a process pool costs more than it saves


@dataclass
class BuildReport:
    found: Found
    feeds: int = 0
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: int = 0
    rendered: int = 0


def absolute(site: Site, url: str) -> str:
    return absolute_url(site.root, url)


def preload() -> None:
    """Import what rendering a post and writing a feed need (~35 ms): called while a forked
    scan runs (scan.py), when this process would otherwise only wait for it."""
    import feedgen.feed  # noqa: F401
    import markdown_it  # noqa: F401

    from . import sanitize  # noqa: F401


def entry_ids(store: Store, site: Site, posts: list[Post]) -> dict[str, str]:
    """Each post's permanent id: the first one it was given, whatever its URL is today.

    When it was first seen is wall-clock time, not `--now`: the digest compares it with
    when earlier digests were made to catch posts that turn up late.
    """
    known = store.entry_ids()
    new = [(p.path, _first_id(site, p.path, p.jekyll_id)) for p in posts if p.path not in known]
    if new:
        rows = _claim(new, set(known.values()))
        store.add_entry_ids(rows)
        known.update((path, entry_id) for path, entry_id, _ in rows)
    return known


def assign_ids(store: Store, site: Site, added: list[Indexed]) -> None:
    """entry_ids for posts just published: only theirs are looked up, not every post's."""
    first = not store.has_entry_ids()  # a first build: 20,000 lookups would find nothing
    known = {} if first else store.entry_ids_of(r.path for r in added)
    new = [r for r in added if r.path not in known]
    if not new:
        return
    wanted = {r.path: _first_id(site, r.path, r.jekyll_id) for r in new}
    taken = set() if first else store.taken_ids(wanted.values())
    if taken or len(set(wanted.values())) < len(wanted):  # who keeps a contested id: the
        new.sort(key=lambda r: (r.ts, r.path), reverse=True)  # newest, as entry_ids decides
    store.add_entry_ids(_claim([(r.path, wanted[r.path]) for r in new], taken))


def _first_id(site: Site, path: str, jekyll_id: str) -> str:
    """jekyll-feed's id (absolute post.id), so a site switching to digest keeps its ids."""
    return absolute(site, jekyll_id) if site.url else f"urn:digest:{path}"


def _claim(wanted: list[tuple[str, str]], taken: set[str]) -> list[tuple[str, str, str]]:
    """(path, id, first seen) rows for new posts, newest first: an id some post already has
    gets a suffix from the path, so the earlier claim keeps it."""
    now = datetime.now(UTC).isoformat()
    rows = []
    for path, entry_id in wanted:
        if entry_id in taken:
            entry_id = f"{entry_id}#{hashlib.sha256(path.encode()).hexdigest()[:8]}"
        taken.add(entry_id)
        rows.append((path, entry_id, now))
    return rows


def _context(site: Site, post: Post, post_urls: Mapping[str, str]) -> PageContext:
    return PageContext(site.root, _base_path(site), site.title, absolute(site, post.url),
                       post.title, post_urls)


class PostUrls(Mapping[str, str]):
    """`{% post_url NAME %}` targets (file stem → absolute URL) among posts already in memory,
    mapped on first use only: most posts use none."""

    def __init__(self, load: Callable[[], dict[str, str]]) -> None:
        self._loader = load
        self._index: dict[str, str] | None = None

    @classmethod
    def of(cls, site: Site, posts: list[Post]) -> PostUrls:
        return cls(lambda: {stem_of(p.path): absolute(site, p.url) for p in sorted(
            posts, key=lambda p: preferred_target(p.path), reverse=True)})  # preferred last

    def _built(self) -> dict[str, str]:
        if self._index is None:
            self._index = self._loader()
        return self._index

    def __getitem__(self, key: str) -> str:
        return self._built()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())


class LivePostUrls(Mapping[str, str]):
    """The targets among what the last build published, looked up name by name in the state
    database, and only when asked. Picklable: a render worker asks the database itself."""

    def __init__(self, database: Path, root: str) -> None:
        self.database, self.root = database, root
        self._found: dict[str, str | None] = {}
        self._lookup: PostUrlLookup | None = None

    def __reduce__(self) -> tuple[type[LivePostUrls], tuple[Path, str]]:
        return LivePostUrls, (self.database, self.root)  # what was found stays here

    def _db(self) -> PostUrlLookup:
        if self._lookup is None:
            self._lookup = PostUrlLookup(self.database)
        return self._lookup

    def __getitem__(self, stem: str) -> str:
        if stem not in self._found:
            url = self._db().url(stem)
            self._found[stem] = None if url is None else absolute_url(self.root, url)
        found = self._found[stem]
        if found is None:
            raise KeyError(stem)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._db().every())

    def __len__(self) -> int:
        return len(self._db().every())

    def close(self) -> None:
        if self._lookup is not None:
            self._lookup.close()
            self._lookup = None


def _render_one(config: Config, post: Post, post_urls: Mapping[str, str]) -> Rendered:
    from .content import render_post  # Markdown and the sanitiser load only when needed
    from .sanitize import sanitize

    site = config.site
    path = config.posts / post.path
    rendered = render_post(body_of(path, path.read_bytes()), post.ext, post.excerpt,
                           post.excerpt_separator, _context(site, post, post_urls),
                           site.markdown_ext)
    return Rendered(sanitize(rendered.html), rendered.summary, sanitize(rendered.summary_html))


def _render_chunk(config: Config, posts: list[Post], urls: dict[str, str]) -> list[Rendered]:
    return [_render_one(config, post, urls) for post in posts]


def _render_many(config: Config, posts: list[Post], urls: Mapping[str, str]) -> list[Rendered]:
    """Render in worker processes when there are many (a cold build renders hundreds)."""
    workers = os.cpu_count() or 1
    if len(posts) < PARALLEL_RENDER_FROM or workers < 2:
        return [_render_one(config, post, urls) for post in posts]
    size = max(8, -(-len(posts) // (workers * 8)))
    chunks = [posts[i:i + size] for i in range(0, len(posts), size)]
    index = urls if isinstance(urls, LivePostUrls) else dict(urls)
    from .workers import pool_of  # workers that die with us, even under SIGKILL

    with pool_of(workers) as pool:
        done = pool.map(_render_chunk, [config] * len(chunks), chunks, [index] * len(chunks))
        return [item for chunk in done for item in chunk]


def render_posts(config: Config, store: Store, posts: list[Post],
                 stats: dict[str, tuple[int, int]], all_posts: list[Post]) -> dict[str, Rendered]:
    """Rendered content for *posts*, from cache when the file has not changed since."""
    return _render_cached(config, store, posts, stats, PostUrls.of(config.site, all_posts))


def _render_cached(config: Config, store: Store, posts: list[Post],
                   stats: dict[str, tuple[int, int]],
                   urls: Mapping[str, str]) -> dict[str, Rendered]:
    mark = fingerprint(config.site)
    keys = {p.path: f"{stats.get(p.path)}:{mark}{_links_key(p, urls)}" for p in posts}
    cached = store.rendered(keys)
    out: dict[str, Rendered] = {}
    todo = []
    for post in posts:
        hit = cached.get(post.path)
        if hit and hit[0] == keys[post.path]:
            out[post.path] = Rendered(**hit[1])
        else:
            todo.append(post)
    fresh = _render_many(config, todo, urls)
    for post, rendered in zip(todo, fresh, strict=True):
        out[post.path] = rendered
    if todo:
        store.save_rendered((p.path, keys[p.path], r.__dict__) for p, r in zip(todo, fresh,
                                                                                strict=True))
    return out


def _links_key(post: Post, urls: Mapping[str, str]) -> str:
    """Where the posts *post* links to are today ('' if none): its rendering depends on it."""
    if not post.links:
        return ""
    blob = json.dumps([urls.get(stem, "") for stem in post.linked])
    return ":" + hashlib.sha256(blob.encode()).hexdigest()[:16]


def _inputs(spec: FeedSpec, ids: Mapping[str, str], stats: dict[str, tuple[int, int]],
            updated: Mapping[str, datetime], settings: str, urls: Mapping[str, str]) -> str:
    rows = [(p.path, ids[p.path], stats.get(p.path), p.url, updated[p.path].isoformat(),
             _links_key(p, urls)) for p in spec.posts]
    blob = json.dumps([settings, spec.name, spec.atom_path, rows], default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _spec(name: str, posts: tuple[Post, ...]) -> FeedSpec:
    kind, _, key = name.partition(":")
    return FeedSpec(kind, key, *feed_paths(kind, key), posts)


def _files_exist(config: Config, name: str) -> bool:
    kind, _, key = name.partition(":")
    return all((config.output / rel).exists() for rel in feed_paths(kind, key))


@dataclass(frozen=True)
class _Members:
    """The feeds to look at, with everything their inputs hash needs."""

    specs: list[FeedSpec]
    ids: dict[str, str]
    updated: dict[str, datetime]


def _members(config: Config, store: Store, index: LiveIndex, names: list[str]) -> _Members:
    """Read the posts of *names*: only these feeds' posts are decoded."""
    paths = {name: index.members(name, config.feed_entries) for name in names}
    wanted = {p for members in paths.values() for p in members}
    posts = readings(store, config.posts, wanted)
    specs = [_spec(name, tuple(posts[p] for p in members)) for name, members in paths.items()]
    return _Members(specs, store.entry_ids_of(wanted), index.updated(wanted))


def _to_check(config: Config, index: LiveIndex, names: list[str],
              previous: dict[str, str]) -> list[str]:
    """Feeds that may differ from what was written: dirty, new, or with a file missing."""
    dirty = index.dirty()
    if EVERY_FEED in dirty:
        return names
    return [n for n in names if n in dirty or n not in previous or not _files_exist(config, n)]


def build(config: Config, *, now: datetime, future: bool = False,
          scanned: Scan | None = None) -> BuildReport:
    """Read the posts and write every feed that changed; return what was done.

    *scanned*: a scan of the posts folder already under way (see scan.py).
    """
    site = config.site
    clean_stale(config.output)  # what a build killed mid-write left
    store = Store.open(config.state)
    urls = LivePostUrls(store.path, site.root)  # read only if some post links to another
    try:
        stats, parsed = refresh(config, store, scanned)
        index = LiveIndex(store)
        settings = json.dumps([__version__, fingerprint(site), config.feed_entries,
                               config.stylesheet])
        assign_ids(store, site, index.update(now=now.timestamp(), future=future,
                                             settings=settings))
        report = BuildReport(index.found(root=config.posts, now=now.timestamp(),
                                         future=future, parsed=parsed))
        names = index.feed_names()
        report.feeds = len(names)
        previous = store.feed_inputs()
        look = _members(config, store, index, _to_check(config, index, names, previous))
        changed = []
        for spec in look.specs:
            inputs = _inputs(spec, look.ids, stats, look.updated, settings, urls)
            if previous.get(spec.name) != inputs or not _files_exist(config, spec.name):
                changed.append((spec, inputs))
        report.skipped = len(names) - len(changed)
        _write_feeds(config, store, changed, look, stats, urls, report)
        gone = _remove_vanished(config, previous, set(names), report)
        store.save_feed_inputs(((spec.name, inputs) for spec, inputs in changed), gone)
        _write_extras(config, names, report)
        return report
    finally:
        urls.close()
        store.close()


def _write_feeds(config: Config, store: Store,
                 changed: list[tuple[FeedSpec, str]], look: _Members,
                 stats: dict[str, tuple[int, int]], urls: LivePostUrls,
                 report: BuildReport) -> None:
    """Render the posts of the feeds that changed (from cache where it can) and write them."""
    site = config.site
    needed = list({p.path: p for spec, _ in changed for p in spec.posts}.values())
    rendered = _render_cached(config, store, needed, stats, urls) if needed else {}
    report.rendered = len(needed)
    stylesheet = f"{_base_path(site)}/{STYLESHEET}" if config.stylesheet else None

    # each post made into an entry once, however many feeds list it (a post may have 1,000
    # tags): work in proportion to what is written, not to tags times feeds
    entries = {p.path: _entry(site, p, look.ids[p.path], look.updated[p.path], rendered[p.path])
               for p in needed}
    made = FeedEntries()

    def files() -> Iterator[tuple[Path, bytes]]:  # one at a time: a site may have 1,000s
        for spec, _ in changed:
            listed = [entries[p.path] for p in spec.posts]
            for rel, maker in ((spec.atom_path, atom_bytes), (spec.rss_path, rss_bytes)):
                yield config.output / rel, maker(site, spec, listed, absolute(site, "/" + rel),
                                                 stylesheet, made)

    report.written.extend(path.relative_to(config.output).as_posix()
                          for path in write_files(files()))


def _remove_vanished(config: Config, previous: dict[str, str], current: set[str],
                     report: BuildReport) -> list[str]:
    """Delete the feeds of tags and categories no post carries any more.

    A feed that kept listing deleted posts would be wrong; a 404 tells a reader the
    tag is gone (and the OPML no longer lists it).
    """
    gone = [name for name in previous if name not in current]
    for name in gone:
        kind, _, key = name.partition(":")
        for rel in feed_paths(kind, key):
            if (config.output / rel).exists():
                (config.output / rel).unlink()
                report.removed.append(rel)
    return gone


def _base_path(site: Site) -> str:
    base = site.baseurl.strip("/")
    return f"/{base}" if base else ""


def _entry(site: Site, post: Post, entry_id: str, updated: datetime, rendered: Rendered) -> Entry:
    terms = tuple(dict.fromkeys((*post.tags, *post.categories)))
    title = plain_title(post.title) or post.slug
    # a post with no text still needs some (Atom: content or summary); its title says it all
    summary = rendered.summary or (title if not rendered.html.strip() else "")
    return Entry(id=entry_id, title=title,
                 link=absolute(site, post.url), published=post.date, updated=updated,
                 html=rendered.html, summary=summary, terms=terms,
                 author=plain_title(post.author) if post.author else None)


def _write_extras(config: Config, names: list[str], report: BuildReport) -> None:
    site = config.site
    home = site.root + "/"
    rows = []
    for spec in (_spec(name, ()) for name in names):
        title = feed_title(site, spec)
        rows.append((title, "atom", absolute(site, "/" + spec.atom_path), home))
        rows.append((f"{title} (RSS)", "rss", absolute(site, "/" + spec.rss_path), home))
    if write_if_changed(config.output / "feeds.opml", opml_bytes(plain_title(site.title), rows)):
        report.written.append("feeds.opml")
    if config.stylesheet:
        data = builtin.read_bytes(STYLESHEET)
        if write_if_changed(config.output / STYLESHEET, data):
            report.written.append(STYLESHEET)
    elif (config.output / STYLESHEET).exists():  # turned off: no feed points at it any more
        (config.output / STYLESHEET).unlink()
        report.removed.append(STYLESHEET)
