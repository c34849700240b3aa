"""`digest build`: posts → feeds on disk, doing only the work that what changed requires.

Each feed's inputs (its posts, their files' size and mtime, their ids, the settings) are
hashed and remembered; a feed whose hash is unchanged and whose files exist is skipped
without rendering a line of Markdown. Rendered posts are cached by file size and mtime.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .config import Config, Site
from .content import PageContext, Rendered, plain_title, render_post
from .feeds import Entry, FeedSpec, atom_bytes, feed_paths, feed_title, plan_feeds, rss_bytes
from .jekyll import absolute_url
from .opml import opml_bytes
from .posts import Post, body_of
from .reader import Corpus, fingerprint, read_posts, with_updated
from .sanitize import sanitize
from .store import Store
from .writer import write_if_changed

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
STYLESHEET = "feed.xsl"
PARALLEL_RENDER_FROM = 64  # fewer than this: a process pool costs more than it saves


@dataclass
class BuildReport:
    corpus: Corpus
    feeds: int = 0
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: int = 0
    rendered: int = 0


def absolute(site: Site, url: str) -> str:
    return absolute_url(site.root, url)


def entry_ids(store: Store, site: Site, posts: list[Post]) -> dict[str, str]:
    """Each post's permanent id: the first one it was given, whatever its URL is today.

    The first id is jekyll-feed's (absolute post.id), so a site switching keeps its ids.
    When it was first seen is wall-clock time, not `--now`: the digest compares it with
    when earlier digests were made to catch posts that turn up late.
    """
    now = datetime.now(UTC)
    known = store.entry_ids()
    taken = set(known.values())
    new = []
    for post in posts:
        if post.path not in known:
            entry_id = absolute(site, post.jekyll_id) if site.url else f"urn:digest:{post.path}"
            if entry_id in taken:
                entry_id = f"{entry_id}#{hashlib.sha256(post.path.encode()).hexdigest()[:8]}"
            known[post.path] = entry_id
            taken.add(entry_id)
            new.append((post.path, entry_id, now.isoformat()))
    if new:
        store.add_entry_ids(new)
    return known


def _context(site: Site, post: Post, post_urls: Mapping[str, str]) -> PageContext:
    return PageContext(site.root, _base_path(site), site.title, absolute(site, post.url),
                       post.title, post_urls)


class PostUrls(Mapping[str, str]):
    """`{% post_url NAME %}` targets, indexed only if some post actually uses one."""

    def __init__(self, site: Site, posts: list[Post]) -> None:
        self._site, self._posts = site, posts
        self._index: dict[str, str] | None = None

    def _built(self) -> dict[str, str]:
        if self._index is None:
            self._index = {p.path.rpartition("/")[2].rpartition(".")[0]:
                           absolute(self._site, p.url) for p in self._posts}
        return self._index

    def __getitem__(self, key: str) -> str:
        return self._built()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())


def _render_one(config: Config, post: Post, post_urls: Mapping[str, str]) -> Rendered:
    site = config.site
    path = config.posts / post.path
    rendered = render_post(body_of(path, path.read_bytes()), post.ext, post.excerpt,
                           post.excerpt_separator, _context(site, post, post_urls),
                           site.markdown_ext)
    return Rendered(sanitize(rendered.html), rendered.summary, sanitize(rendered.summary_html))


def _render_chunk(config: Config, posts: list[Post], urls: dict[str, str]) -> list[Rendered]:
    return [_render_one(config, post, urls) for post in posts]


def _render_many(config: Config, posts: list[Post], all_posts: list[Post]) -> list[Rendered]:
    """Render in worker processes when there are many (a cold build renders hundreds)."""
    urls = PostUrls(config.site, all_posts)
    workers = os.cpu_count() or 1
    if len(posts) < PARALLEL_RENDER_FROM or workers < 2:
        return [_render_one(config, post, urls) for post in posts]
    size = max(8, -(-len(posts) // (workers * 8)))
    chunks = [posts[i:i + size] for i in range(0, len(posts), size)]
    index = dict(urls)
    with ProcessPoolExecutor(workers) as pool:
        done = pool.map(_render_chunk, [config] * len(chunks), chunks, [index] * len(chunks))
        return [item for chunk in done for item in chunk]


def render_posts(config: Config, store: Store, posts: list[Post],
                 stats: dict[str, tuple[int, int]], all_posts: list[Post]) -> dict[str, Rendered]:
    """Rendered content for *posts*, from cache when the file has not changed since."""
    mark = fingerprint(config.site)
    keys = {p.path: f"{stats.get(p.path)}:{mark}" for p in posts}
    cached = store.rendered(keys)
    out: dict[str, Rendered] = {}
    todo = []
    for post in posts:
        hit = cached.get(post.path)
        if hit and hit[0] == keys[post.path]:
            out[post.path] = Rendered(**hit[1])
        else:
            todo.append(post)
    fresh = _render_many(config, todo, all_posts)
    for post, rendered in zip(todo, fresh, strict=True):
        out[post.path] = rendered
    if todo:
        store.save_rendered((p.path, keys[p.path], r.__dict__) for p, r in zip(todo, fresh,
                                                                                strict=True))
    return out


def _inputs(spec: FeedSpec, ids: dict[str, str], stats: dict[str, tuple[int, int]],
            updated: dict[str, datetime], settings: str) -> str:
    rows = [(p.path, ids[p.path], stats.get(p.path), p.url, updated[p.path].isoformat())
            for p in spec.posts]
    blob = json.dumps([settings, spec.name, spec.atom_path, rows], default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def build(config: Config, *, now: datetime, future: bool = False) -> BuildReport:
    """Read the posts and write every feed that changed; return what was done."""
    site = config.site
    store = Store.open(config.state)
    try:
        corpus = read_posts(config, store, now=now, future=future)
        report = BuildReport(corpus)
        posts = corpus.posts
        stats = corpus.stats
        ids = entry_ids(store, site, posts)
        updated = with_updated(posts)
        specs = plan_feeds(posts, config.feed_entries)
        report.feeds = len(specs)
        settings = json.dumps([fingerprint(site), config.feed_entries, config.stylesheet])
        previous = store.feed_inputs()
        changed = []
        for spec in specs:
            inputs = _inputs(spec, ids, stats, updated, settings)
            files_exist = all((config.output / p).exists() for p in (spec.atom_path, spec.rss_path))
            if previous.get(spec.name) == inputs and files_exist:
                report.skipped += 1
            else:
                changed.append((spec, inputs))
        needed = list({p.path: p for spec, _ in changed for p in spec.posts}.values())
        rendered = render_posts(config, store, needed, stats, posts) if needed else {}
        report.rendered = len(needed)
        stylesheet = f"{_base_path(site)}/{STYLESHEET}" if config.stylesheet else None
        for spec, _ in changed:
            entries = [_entry(site, p, ids[p.path], updated[p.path], rendered[p.path])
                       for p in spec.posts]
            for rel, maker in ((spec.atom_path, atom_bytes), (spec.rss_path, rss_bytes)):
                data = maker(site, spec, entries, absolute(site, "/" + rel), stylesheet)
                if write_if_changed(config.output / rel, data):
                    report.written.append(rel)
        gone = _remove_vanished(config, previous, {spec.name for spec in specs}, report)
        if changed or gone:
            store.save_feed_inputs(((spec.name, inputs) for spec, inputs in changed), gone)
        _write_extras(config, specs, report)
        return report
    finally:
        store.close()


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


def _write_extras(config: Config, specs: list[FeedSpec], report: BuildReport) -> None:
    site = config.site
    home = site.root + "/"
    rows = []
    for spec in specs:
        title = feed_title(site, spec)
        rows.append((title, "atom", absolute(site, "/" + spec.atom_path), home))
        rows.append((f"{title} (RSS)", "rss", absolute(site, "/" + spec.rss_path), home))
    if write_if_changed(config.output / "feeds.opml", opml_bytes(plain_title(site.title), rows)):
        report.written.append("feeds.opml")
    if config.stylesheet:
        data = (TEMPLATES / STYLESHEET).read_bytes()
        if write_if_changed(config.output / STYLESHEET, data):
            report.written.append(STYLESHEET)
