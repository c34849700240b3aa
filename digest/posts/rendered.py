"""Posts → their rendered content (HTML, summary), cached in the state database by file size
and mtime and, for a post that links to others with `{% post_url %}`, by where those posts
are now; many posts are rendered in worker processes."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from ..config import Config, Site
from ..state.store import Store
from .content import PageContext, Rendered, stem_of
from .ids import absolute, base_path
from .index import PostUrlLookup, preferred_target
from .jekyll import absolute_url
from .parse import Post, body_of
from .reader import fingerprint

PARALLEL_RENDER_FROM = 64  # fewer than this: a process pool costs more than it saves


def _context(site: Site, post: Post, post_urls: Mapping[str, str]) -> PageContext:
    return PageContext(site.root, base_path(site), site.title, absolute(site, post.url),
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
    from ..posts.content import render_post  # Markdown and the sanitiser load only when needed
    from ..posts.sanitize import sanitize

    site = config.site
    path = config.posts / post.path
    # Hugo: Goldmark's CommonMark + GFM, shortcodes dropped; a feed source's entry (an
    # absolute path, posts/sources.py) is HTML read by the Jekyll rules on any site
    if site.hugo is not None and not Path(post.path).is_absolute():
        from ..posts.hugo_render import render_hugo_post

        rendered = render_hugo_post(path, post, _context(site, post, post_urls))
        return Rendered(sanitize(rendered.html), rendered.summary,
                        sanitize(rendered.summary_html))
    rendered = render_post(body_of(path, path.read_bytes()), post.ext, post.excerpt,
                           post.excerpt_separator, _context(site, post, post_urls),
                           site.markdown_ext, kramdown=site.kramdown)
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
    from ..util.workers import pool_of  # workers that die with us, even under SIGKILL

    with pool_of(workers) as pool:
        done = pool.map(_render_chunk, [config] * len(chunks), chunks, [index] * len(chunks))
        return [item for chunk in done for item in chunk]


def render_posts(config: Config, store: Store, posts: list[Post],
                 stats: dict[str, tuple[int, int]], all_posts: list[Post]) -> dict[str, Rendered]:
    """Rendered content for *posts*, from cache when the file has not changed since."""
    return render_cached(config, store, posts, stats, PostUrls.of(config.site, all_posts))


def render_cached(config: Config, store: Store, posts: list[Post],
                   stats: dict[str, tuple[int, int]],
                   urls: Mapping[str, str]) -> dict[str, Rendered]:
    mark = fingerprint(config.site)
    keys = {p.path: f"{stats.get(p.path)}:{mark}{links_key(p, urls)}" for p in posts}
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


def links_key(post: Post, urls: Mapping[str, str]) -> str:
    """Where the posts *post* links to are today ('' if none): its rendering depends on it."""
    if not post.links:
        return ""
    blob = json.dumps([urls.get(stem, "") for stem in post.linked])
    return ":" + hashlib.sha256(blob.encode()).hexdigest()[:16]
