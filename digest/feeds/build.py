"""`digest build`: posts → feeds on disk, doing only the work that what changed requires.

Only files whose size or mtime changed are parsed (posts/reader.py); the live index (posts/index.py)
says which feeds may list different posts since the last build, and only those are looked
at. Each feed's inputs (its posts, their files' size and mtime, their ids, `updated`, the
settings) are hashed and remembered; a feed whose hash is unchanged and whose files exist is
not rendered. Rendered posts are cached by file size and mtime, and, for a post that links to
others with `{% post_url %}`, by where those posts are now (posts/rendered.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import Config, FeedSettings, Site
from ..posts.content import Rendered, plain_title, smart_title
from ..posts.ids import absolute, assign_ids, base_path, ids_of
from ..posts.index import (
    EVERY_FEED,
    LiveIndex,
)
from ..posts.parse import Post
from ..posts.published import Published
from ..posts.reader import fingerprint, readings, refresh
from ..posts.rendered import LivePostUrls, links_key, render_cached
from ..posts.scan import Scan
from ..state.interface import SharedState
from ..state.open import open_state
from ..state.store import Store
from ..util import builtin
from ..util.writer import clean_stale, write_files, write_if_changed
from .formats import (
    Entry,
    FeedEntries,
    FeedSpec,
    Format,
    atom_bytes,
    chosen,
    feed_paths,
    feed_title,
    rss_bytes,
)
from .jsonfeed import json_feed_bytes, json_path
from .opml import OPML_FILES, opml_bytes
from .page import write_page
from .websub import with_hub

log = logging.getLogger(__name__)
STYLESHEET = "feed.xsl"
LAYOUT_KEY = "feed_layout"  # state meta: the FeedSettings the feeds on disk were written with


@dataclass
class BuildReport:
    found: Published
    feeds: int = 0
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: int = 0
    rendered: int = 0


def preload() -> None:
    """Import what rendering a post and writing a feed need (~35 ms): called while a forked
    scan runs (scan.py), when this process would otherwise only wait for it."""
    import feedgen.feed  # noqa: F401
    import markdown_it  # noqa: F401

    from ..posts import sanitize  # noqa: F401


def _inputs(spec: FeedSpec, ids: Mapping[str, str], stats: dict[str, tuple[int, int]],
            updated: Mapping[str, datetime], settings: str, urls: Mapping[str, str]) -> str:
    rows = [(p.path, ids[p.path], stats.get(p.path), p.url, updated[p.path].isoformat(),
             links_key(p, urls)) for p in spec.posts]
    blob = json.dumps([settings, spec.name, spec.atom_path, rows], default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _spec(config: Config, name: str, posts: tuple[Post, ...]) -> FeedSpec:
    kind, _, key = name.partition(":")
    return FeedSpec(kind, key, *feed_paths(kind, key, config.feeds), posts)


def _files_of(config: Config, kind: str, key: str) -> tuple[str, ...]:
    """The files of one feed: Atom, RSS and, if turned on, JSON Feed."""
    atom, rss = feed_paths(kind, key, config.feeds)
    return (atom, rss, json_path(atom)) if config.json_feed else (atom, rss)


def _files_exist(config: Config, name: str) -> bool:
    kind, _, key = name.partition(":")
    return all((config.output / rel).exists() for rel in _files_of(config, kind, key))


@dataclass(frozen=True)
class _Members:
    """The feeds to look at, with everything their inputs hash needs."""

    specs: list[FeedSpec]
    ids: dict[str, str]
    updated: dict[str, datetime]


def _members(config: Config, store: Store, state: SharedState, index: LiveIndex,
             names: list[str]) -> _Members:
    """Read the posts of *names*: only these feeds' posts are decoded."""
    paths = {name: index.members(name, config.feed_entries) for name in names}
    wanted = {p for members in paths.values() for p in members}
    posts = readings(store, config.posts, wanted)
    specs = [_spec(config, name, tuple(posts[p] for p in members))
             for name, members in paths.items()]
    return _Members(specs, ids_of(state, wanted), index.updated(wanted))


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
    state = open_state(config, local=store)  # the entry ids, on the same connection
    urls = LivePostUrls(store.path, site.root)  # read only if some post links to another
    try:
        stats, parsed = refresh(config, store, scanned)
        index = LiveIndex(store)
        layout = json.dumps(asdict(config.feeds))
        settings = json.dumps([__version__, fingerprint(site), config.feed_entries,
                               config.stylesheet, layout, config.json_feed, config.hub])
        assign_ids(state, site, index.update(now=now.timestamp(), future=future,
                                             settings=settings))
        report = BuildReport(index.found(root=config.posts, now=now.timestamp(),
                                         future=future, parsed=parsed))
        names = chosen(config.feeds, index.feed_names())
        report.feeds = len(names)
        previous = store.feed_inputs()
        look = _members(config, store, state, index, _to_check(config, index, names, previous))
        changed = []
        for spec in look.specs:
            inputs = _inputs(spec, look.ids, stats, look.updated, settings, urls)
            if previous.get(spec.name) != inputs or not _files_exist(config, spec.name):
                changed.append((spec, inputs))
        report.skipped = len(names) - len(changed)
        _write_feeds(config, store, changed, look, stats, urls, report)
        written_with = store.meta(LAYOUT_KEY)
        gone = _remove_vanished(config, previous, set(names), _layout(written_with), report)
        store.save_feed_inputs(((spec.name, inputs) for spec, inputs in changed), gone,
                               meta={LAYOUT_KEY: layout} if layout != written_with else None)
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
    rendered = render_cached(config, store, needed, stats, urls) if needed else {}
    report.rendered = len(needed)
    stylesheet = f"{base_path(site)}/{STYLESHEET}" if config.stylesheet else None

    # each post made into an entry once, however many feeds list it (a post may have 1,000
    # tags): work in proportion to what is written, not to tags times feeds
    entries = {p.path: _entry(site, p, look.ids[p.path], look.updated[p.path], rendered[p.path],
                              excerpt_only=config.feeds.excerpt_only)
               for p in needed}
    made = FeedEntries()

    def files() -> Iterator[tuple[Path, bytes]]:  # one at a time: a site may have 1,000s
        for spec, _ in changed:
            listed = [entries[p.path] for p in spec.posts]
            kinds: tuple[tuple[str, Any, Format], ...] = (
                (spec.atom_path, atom_bytes, "atom"), (spec.rss_path, rss_bytes, "rss"))
            for rel, maker, kind in kinds:
                data = maker(site, spec, listed, absolute(site, "/" + rel), stylesheet, made)
                yield config.output / rel, with_hub(data, kind, config.hub)
            rel = json_path(spec.atom_path)
            if config.json_feed:
                yield config.output / rel, json_feed_bytes(
                    site, spec, listed, absolute(site, "/" + rel), config.hub)
            elif (config.output / rel).exists():  # turned off: remove what an earlier build made
                (config.output / rel).unlink()
                report.removed.append(rel)

    report.written.extend(path.relative_to(config.output).as_posix()
                          for path in write_files(files()))


def _layout(text: str | None) -> FeedSettings:
    """The feed settings the last build wrote with (before they were kept: the defaults)."""
    try:
        raw = json.loads(text) if text else {}
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                  for k, v in raw.items()}
        return FeedSettings(**values)
    except (ValueError, TypeError, AttributeError):  # unreadable: where the defaults put them
        return FeedSettings()


def _remove_vanished(config: Config, previous: dict[str, str], current: set[str],
                     before: FeedSettings, report: BuildReport) -> list[str]:
    """Delete the feeds of tags and categories no post carries (or the settings ask for)
    any more, and the files of feeds the settings moved.

    A feed that kept listing deleted posts would be wrong; a 404 tells a reader the
    tag is gone (and the OPML no longer lists it).
    """
    gone = [name for name in previous if name not in current]
    stale = list(previous) if before != config.feeds else gone
    if not stale:
        return gone
    # never a file a current feed is written to (one the settings moved another feed to)
    keep = {rel for name in current for rel in _all_files(feed_paths(*_split(name),
                                                                      config.feeds))}
    for name in stale:
        # the JSON one too, even if since turned off
        for rel in _all_files(feed_paths(*_split(name), before)):
            if rel not in keep and (config.output / rel).exists():
                (config.output / rel).unlink()
                report.removed.append(rel)
    return gone


def _all_files(paths: tuple[str, str]) -> tuple[str, str, str]:
    """A feed's Atom and RSS paths and its JSON Feed's."""
    return (*paths, json_path(paths[0]))


def _split(name: str) -> tuple[str, str]:
    kind, _, key = name.partition(":")
    return kind, key


def _entry(site: Site, post: Post, entry_id: str, updated: datetime, rendered: Rendered, *,
           excerpt_only: bool = False) -> Entry:
    terms = tuple(dict.fromkeys((*post.tags, *post.categories)))
    # as jekyll-feed: `title | smartify`, with the site's kramdown quotes
    title = smart_title(post.title, site.title_quotes) or post.slug
    html = "" if excerpt_only else rendered.html  # jekyll-feed's excerpt_only: no content
    # a post with no text still needs some (Atom: content or summary); its title says it all
    summary = rendered.summary or (title if not html.strip() else "")
    return Entry(id=entry_id, title=title,
                 link=absolute(site, post.url), published=post.date, updated=updated,
                 html=html, summary=summary, terms=terms,
                 author=plain_title(post.author) if post.author else None)


def _write_extras(config: Config, names: list[str], report: BuildReport) -> None:
    site = config.site
    home = site.root + "/"
    rows: dict[str, list[tuple[str, str, str]]] = {"atom": [], "rss": []}
    for spec in (_spec(config, name, ()) for name in names):
        title = feed_title(site, spec)
        rows["atom"].append((title, absolute(site, "/" + spec.atom_path), home))
        rows["rss"].append((title, absolute(site, "/" + spec.rss_path), home))
    for kind, file_name in OPML_FILES.items():
        data = opml_bytes(plain_title(site.title), rows[kind], kind)
        if write_if_changed(config.output / file_name, data):
            report.written.append(file_name)
    report.written.extend(write_page(config, [_spec(config, name, ()) for name in names]))
    if config.stylesheet:
        data = builtin.read_bytes(STYLESHEET)
        if write_if_changed(config.output / STYLESHEET, data):
            report.written.append(STYLESHEET)
    elif (config.output / STYLESHEET).exists():  # turned off: no feed points at it any more
        (config.output / STYLESHEET).unlink()
        report.removed.append(STYLESHEET)


# the library's entry point (pinned by tests/test_public_api.py); preload is the CLI's
__all__ = ["BuildReport", "build"]
