"""feeds.html: every feed as a page a person can open, now that browsers stop applying XSLT.

Chromium 156 dropped XSLT, so a feed opened there shows as raw XML whatever feed.xsl says.
This page lists each feed (what it carries, how many posts, the last one's date) with its
Atom and RSS addresses ready to copy, the two OPML files, the email sign-up where there is
one, and the `<link rel="alternate">` tags a site's layout needs for autodiscovery. The web
front serves it at /feeds/ (web/app.py).

It is written like the feeds: atomically and only when its bytes change. Nothing in it
depends on the clock (the only date is the last post's), so an unchanged site rebuilds it
byte for byte. It is a Jinja template (`feeds.html.j2`, overridable from `digest.templates`),
autoescaped: a tag or title is text, never markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

import jinja2

from ..config import Config
from ..posts.ids import absolute
from ..posts.index import LiveIndex
from ..state.store import DATABASE, Store
from ..util import builtin
from ..util.writer import write_if_changed
from .formats import FeedSpec, feed_title
from .opml import OPML_FILES

FEEDS_PAGE = "feeds.html"
TEMPLATE = "feeds.html.j2"
_OPML_LABELS = {"atom": "every Atom feed", "rss": "every RSS feed"}


@dataclass(frozen=True)
class FeedRow:
    """One feed as the page shows it."""

    title: str
    carries: str  # "every post", "posts tagged X", "posts in the category X"
    kind: str  # site, tag, category
    posts: int  # all its posts, not only the newest the file lists
    last: datetime | None  # the newest post's date, in the site's timezone
    atom: str  # absolute URLs
    rss: str


@dataclass(frozen=True)
class FeedsPage:
    """What the template gets besides `site`."""

    feeds: tuple[FeedRow, ...]
    opml: tuple[tuple[str, str, str], ...]  # (file name, what it lists, URL)
    signup: str | None  # the sign-up page's URL, when there is one
    autodiscovery: tuple[str, ...]  # <link> tags, as text to paste


def _carries(spec: FeedSpec) -> str:
    if spec.kind == "site":
        return "every post"
    if spec.kind == "tag":
        return f"posts tagged {spec.key}"
    return f"posts in the category {spec.key}"


def link_tag(kind: str, title: str, href: str) -> str:
    """An autodiscovery `<link>` for a site's <head>, its attributes escaped."""
    media = "application/atom+xml" if kind == "atom" else "application/rss+xml"
    return (f'<link rel="alternate" type="{media}" title="{escape(title)}" '
            f'href="{escape(href)}">')


def signup_url(config: Config) -> str | None:
    """web.base_url + /subscribe, when the web front takes sign-ups (see web/signup.py)."""
    if config.signup is None or config.web is None or not config.web.base_url:
        return None
    return config.web.base_url.rstrip("/") + "/subscribe"


def page_of(config: Config, specs: Sequence[FeedSpec],
            stats: dict[str, tuple[int, float]]) -> FeedsPage:
    """The page's content: *specs* in the build's order (site, tags, categories), *stats*
    each feed's (posts, newest timestamp) as LiveIndex.feed_stats gives them."""
    site = config.site
    rows = []
    for spec in specs:
        count, ts = stats.get(spec.name, (0, None))
        rows.append(FeedRow(
            title=feed_title(site, spec), carries=_carries(spec), kind=spec.kind, posts=count,
            last=datetime.fromtimestamp(ts, site.tz) if ts is not None else None,
            atom=absolute(site, "/" + spec.atom_path), rss=absolute(site, "/" + spec.rss_path)))
    opml = tuple((name, _OPML_LABELS[kind], absolute(site, "/" + name))
                 for kind, name in OPML_FILES.items())
    home = [row for row in rows if row.kind == "site"][:1]
    tags = tuple(link_tag(kind, row.title, url) for row in home
                 for kind, url in (("atom", row.atom), ("rss", row.rss)))
    return FeedsPage(tuple(rows), opml, signup_url(config), tags)


def _date(value: datetime) -> str:
    return f"{value.day} {value:%B %Y}"  # as the web pages and emails write it


def render(config: Config, page: FeedsPage) -> str:
    """The page as HTML, from `feeds.html.j2` (the user's if `digest.templates` has one);
    TemplateError (file and line) if that template fails."""
    env = jinja2.Environment(loader=builtin.loader(config.digest.templates), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["date"] = _date
    template = builtin.compiled(env, TEMPLATE)
    try:
        return template.render(site=config.site, page=page)
    except jinja2.TemplateError as exc:
        raise builtin.failed(exc, template) from None


def feed_stats(config: Config) -> dict[str, tuple[int, float]]:
    """Each feed's (posts, newest timestamp), read from the index the build just wrote.

    Its own read-only connection: the build's own is not handed down this far, and reading
    what the build committed is what the page must show."""
    store = Store(config.state / DATABASE, read_only=True)
    try:
        return LiveIndex(store).feed_stats()
    finally:
        store.close()


def write_page(config: Config, specs: Sequence[FeedSpec]) -> list[str]:
    """Write feeds.html for the feeds *specs* if its bytes changed; what was written."""
    data = render(config, page_of(config, specs, feed_stats(config))).encode()
    return [FEEDS_PAGE] if write_if_changed(config.output / FEEDS_PAGE, data) else []


__all__ = ["FEEDS_PAGE", "FeedRow", "FeedsPage", "page_of", "render", "write_page"]
