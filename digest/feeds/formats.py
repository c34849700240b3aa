"""Posts → feed documents (Atom 1.0 and RSS 2.0 bytes), as pure functions over plain data.

Which feeds exist and where they live follows jekyll-feed (`feed.xml`, `feed/by_tag/TAG.xml`)
so a site can switch to digest without breaking anyone's subscription. Bytes depend only on
the posts, never on the clock, so an unchanged site builds byte-identical feeds.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from .. import __version__
from ..config import FeedSettings, Site
from ..posts.content import plain_title, xml_safe
from ..posts.parse import Post

if TYPE_CHECKING:
    from feedgen.entry import FeedEntry
    from feedgen.feed import FeedGenerator


@dataclass(frozen=True)
class FeedSpec:
    """One feed: its kind ('site', 'tag', 'category'), key, paths and the posts it lists."""

    kind: str
    key: str
    atom_path: str  # relative to the output folder, '/'-separated
    rss_path: str
    posts: tuple[Post, ...]

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.key}"


@dataclass(frozen=True)
class Entry:
    """A post as a feed shows it: everything resolved, nothing left to look up."""

    id: str
    title: str
    link: str
    published: datetime
    updated: datetime
    html: str
    summary: str
    terms: tuple[str, ...]
    author: str | None


_SIMPLE = re.compile(r"[A-Za-z0-9_]+")  # jekyll-feed keeps exactly these tags (fullmatch)
# The longest stem kept whole: a file name has at most 255 bytes (ext4, XFS, btrfs, APFS),
# less '.xml'; the atomic writer cuts its temporary name to fit (writer.tmp_prefix). It is
# the bound of an earlier writer's temporary name, kept so that every stem written then
# keeps its name; only a longer one is cut.
STEM_MAX = 255 - len(".xml") - len("..XXXXXXXX.tmp")
_HASH = 8
DEFAULT_FEEDS = FeedSettings()


def _hash(tag: str) -> str:
    return hashlib.sha256(tag.encode()).hexdigest()[:_HASH]


def feed_file_stem(tag: str) -> str:
    """A safe, stable file name for a tag; jekyll-feed's own name whenever it had one.

    jekyll-feed silently skips tags outside [A-Za-z0-9_]; those get a readable ASCII slug
    plus a short hash of the exact tag, so `i.t.`, `I.T.` and `i-t` never collide. A simple
    tag too long for a file name is cut the same way: its start, '-', a hash of all of it
    (a simple tag has no '-', and a cut one is longer than any slug, so none can collide).
    """
    if _SIMPLE.fullmatch(tag):
        return tag if len(tag) <= STEM_MAX else f"{tag[:STEM_MAX - _HASH - 1]}-{_hash(tag)}"
    ascii_ = unicodedata.normalize("NFKD", tag).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9_]+", "-", ascii_).strip("-")[:60] or "tag"
    return f"{slug}-{_hash(tag)}"


def feed_paths(kind: str, key: str, settings: FeedSettings = DEFAULT_FEEDS) -> tuple[str, str]:
    """Where the Atom and RSS files of a feed live, relative to the output folder: where
    jekyll-feed, with the site's `feed:` settings, writes the Atom one."""
    if kind == "site":
        atom = settings.path
    elif kind == "tag":  # joined as jekyll-feed joins it, slash or not
        atom = f"{settings.tags_path}{feed_file_stem(key)}.xml"
    else:
        atom = f"feed/{feed_file_stem(key)}.xml"
    return atom, rss_path(atom)


def rss_path(atom: str) -> str:
    """The RSS twin of an Atom feed's path: its .xml (or other suffix) made .rss."""
    folder, slash, name = atom.rpartition("/")
    stem, dot, suffix = name.rpartition(".")
    if dot and stem and suffix != "rss":
        return f"{folder}{slash}{stem}.rss"
    return atom + ".rss"


def wanted(settings: FeedSettings, name: str) -> bool:
    """Whether the site's settings ask for feed *name* (site:, tag:TAG, category:CAT)."""
    kind, _, key = name.partition(":")
    if kind == "tag":
        return settings.tags and key not in settings.tags_except \
            and (settings.tags_only is None or key in settings.tags_only)
    if kind == "category":
        return settings.categories is None or key in settings.categories
    return True


def chosen(settings: FeedSettings, names: Iterable[str]) -> list[str]:
    """The feeds of *names* the settings ask for, in order; of two that would be written to
    the same file (a tag folder that is the categories' one), the first."""
    every = settings.tags and settings.tags_only is None and not settings.tags_except \
        and settings.categories is None
    picked = list(names) if every else [name for name in names if wanted(settings, name)]
    # a tag's file name has no '/': only these settings can put two feeds in one file
    # (checked first: a no-op build of a site with 1,000s of tags must not pay for it)
    if settings.tags_path != "feed/" and not settings.path.startswith(
            (settings.tags_path, "feed/")):
        return picked
    taken: set[str] = set()
    out = []
    for name in picked:
        kind, _, key = name.partition(":")
        paths = feed_paths(kind, key, settings)
        if taken.isdisjoint(paths):
            taken.update(paths)
            out.append(name)
    return out


def feed_title(site: Site, spec: FeedSpec) -> str:
    if spec.kind == "site":
        return plain_title(site.title)
    return plain_title(f"{site.title}: {spec.key}")


Format = Literal["atom", "rss"]
SHARE_FROM = 16  # terms: below this, making an entry again costs less than keeping it
_ELEMENT: dict[Format, tuple[bytes, bytes]] = {"atom": (b"<entry>", b"</entry>"),
                                               "rss": (b"<item>", b"</item>")}


class FeedEntries:
    """The entries of one build's feeds, a post with many terms written only once.

    A post with T tags is listed in T + 1 feeds, each with its T categories. feedgen copies
    and checks an entry's whole category list whenever it is set, and writes every element
    of every entry again for every feed: such a post costs T² (T³ with one call per term).
    So a post with many terms is written once per format, alone, and those bytes replace a
    stand-in entry in each feed that lists it: it costs T, plus copying the bytes the feeds
    hold. (An entry is written the same at the same depth, and entries are always children
    of the feed's root, RSS's channel: none of the text around an entry can contain '<'.)
    Posts with few terms are made per feed: keeping them would cost memory for no gain.
    """

    def __init__(self) -> None:
        self._written: dict[tuple[Entry, Format], bytes] = {}

    def add(self, fg: FeedGenerator, entry: Entry, kind: Format) -> bytes | None:
        """Add *entry* to *fg*; return what must replace the entry fg writes, if anything."""
        if len(entry.terms) < SHARE_FROM:
            fg.add_entry(_feed_entry(entry, kind), order="append")
            return None
        fg.add_entry(_stand_in(entry), order="append")
        written = self._written.get((entry, kind))
        if written is None:
            written = self._written[(entry, kind)] = _written_alone(entry, kind)
        return written


def _stand_in(entry: Entry) -> FeedEntry:
    """The least feedgen accepts as an entry, to be replaced once the feed is written."""
    from feedgen.entry import FeedEntry

    fe = FeedEntry()
    fe.id(entry.id)
    fe.title("-")
    fe.link(href=entry.link)
    fe.updated(entry.updated)
    return fe


def _written_alone(entry: Entry, kind: Format) -> bytes:
    """*entry* as any feed writes it, from a feed of it alone."""
    from feedgen.feed import FeedGenerator

    fg = FeedGenerator()
    fg.id("urn:digest:alone")
    fg.title("-")
    fg.link(href="urn:digest:alone")
    fg.description("-")
    fg.updated(entry.updated)
    fg.add_entry(_feed_entry(entry, kind), order="append")
    data: bytes = fg.atom_str(pretty=True) if kind == "atom" else fg.rss_str(pretty=True)
    (start, end), = _spans(data, kind)
    return data[start:end]


def _spans(data: bytes, kind: Format) -> list[tuple[int, int]]:
    """Where each entry's element starts and ends in a written feed, in order."""
    open_, close = _ELEMENT[kind]
    spans = []
    start = data.find(open_)
    while start >= 0:
        end = data.index(close, start) + len(close)
        spans.append((start, end))
        start = data.find(open_, end)
    return spans


def _replaced(data: bytes, kind: Format, written: Sequence[bytes | None]) -> bytes:
    """*data* with each entry that has bytes in *written* (same order) replaced by them."""
    if not any(written):
        return data
    parts, at = [], 0
    for (start, end), new in zip(_spans(data, kind), written, strict=True):
        if new is not None:
            parts += [data[at:start], new]
            at = end
    parts.append(data[at:])
    return b"".join(parts)


def _feed_entry(entry: Entry, kind: Format) -> FeedEntry:
    from feedgen.entry import FeedEntry

    fe = FeedEntry()
    fe.id(entry.id)
    fe.guid(entry.id, permalink=entry.id == entry.link)
    fe.title(entry.title)
    fe.link(href=entry.link, rel="alternate")
    fe.published(entry.published)
    fe.updated(entry.updated)
    if entry.html.strip():  # an empty element is a validator warning; the link suffices
        fe.content(entry.html, type="html")
    if entry.summary:
        # as jekyll-feed writes it: HTML (the plain text escaped). A reader that prefers
        # text (rss2email's default) then takes the whole post from <content>, not the
        # excerpt, as it did from jekyll-feed's feed; RSS's description is HTML anyway.
        summary = html.escape(entry.summary, quote=False)
        fe.summary(summary, type="html") if kind == "atom" else fe.description(summary)
    if entry.terms:  # in one call: feedgen maps its whole list again on every call
        fe.category([{"term": xml_safe(term)} for term in entry.terms])
    if entry.author and kind == "atom":
        fe.author({"name": entry.author})
    return fe


def _written(site: Site, spec: FeedSpec, entries: Sequence[Entry], self_url: str,
             kind: Format, made: FeedEntries) -> bytes:
    from feedgen.feed import FeedGenerator

    fg = FeedGenerator()
    home = (site.root or "") + "/"
    fg.id(xml_safe(self_url if kind == "atom" else home))
    fg.title(feed_title(site, spec))
    # feedgen's RSS <link> is the last link added: the website must come last
    fg.link(href=self_url, rel="self",
            type="application/atom+xml" if kind == "atom" else "application/rss+xml")
    fg.link(href=home, rel="alternate")
    fg.language(site.lang)
    description = plain_title(site.description) or feed_title(site, spec)
    fg.subtitle(description) if kind == "atom" else fg.description(description)
    author = site.author
    fg.author({"name": xml_safe(author.name) if author else plain_title(site.title),
               **({"email": author.email} if author and author.email else {}),
               **({"uri": author.uri} if author and author.uri else {})})
    # name and version only: the project has no public home to give as its uri
    fg.generator("digest", version=__version__)
    newest = max((e.updated for e in entries), default=datetime(1970, 1, 1).astimezone(site.tz))
    fg.updated(newest) if kind == "atom" else fg.lastBuildDate(newest)
    written = [made.add(fg, entry, kind) for entry in entries]
    data: bytes = fg.atom_str(pretty=True) if kind == "atom" else fg.rss_str(pretty=True)
    return _replaced(data, kind, written)


_DECLARATION_END = b"?>\n"


def atom_bytes(site: Site, spec: FeedSpec, entries: Sequence[Entry], self_url: str,
               stylesheet: str | None, made: FeedEntries | None = None) -> bytes:
    data = _written(site, spec, entries, self_url, "atom", made or FeedEntries())
    return _with_stylesheet(data, stylesheet)


def rss_bytes(site: Site, spec: FeedSpec, entries: Sequence[Entry], self_url: str,
              stylesheet: str | None, made: FeedEntries | None = None) -> bytes:
    data = _written(site, spec, entries, self_url, "rss", made or FeedEntries())
    return _with_stylesheet(data, stylesheet)


def _with_stylesheet(data: bytes, href: str | None) -> bytes:
    """Insert the xml-stylesheet instruction after the XML declaration (feedgen has no hook)."""
    if not href:
        return data
    head, sep, rest = data.partition(_DECLARATION_END)
    pi = f'<?xml-stylesheet type="text/xsl" href="{href}"?>\n'.encode()
    return head + sep + pi + rest if sep else pi + data
