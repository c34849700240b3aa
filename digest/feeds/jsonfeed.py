"""Posts → a JSON Feed 1.1 document (https://www.jsonfeed.org/version/1.1/), as bytes.

The same entries as the Atom feed of the same spec, at the same path with `.json`. Keys are
sorted and the layout fixed, so an unchanged site writes byte-identical files (and the
writer leaves them alone); an optional field with no value is left out, never `null`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..config import Site
from ..posts.content import plain_title
from .formats import Entry, FeedSpec, feed_title

VERSION = "https://jsonfeed.org/version/1.1"
MEDIA_TYPE = "application/feed+json"
SUFFIX = ".json"


def json_path(atom_path: str) -> str:
    """Where the JSON feed of the feed written at *atom_path* lives (`feed.xml` → `feed.json`)."""
    stem, dot, _ = atom_path.rpartition(".")
    return (stem if dot else atom_path) + SUFFIX


def _absolute(url: str) -> bool:
    return url.startswith(("https://", "http://"))


def _item(entry: Entry) -> dict[str, Any]:
    item: dict[str, Any] = {"id": entry.id, "url": entry.link, "title": entry.title,
                            "date_published": entry.published.isoformat(),
                            "date_modified": entry.updated.isoformat()}
    # an item needs content_html or content_text; a post with no text has its summary
    if entry.html.strip():
        item["content_html"] = entry.html
    else:
        item["content_text"] = entry.summary or entry.title
    if entry.summary:
        item["summary"] = entry.summary
    if entry.terms:
        item["tags"] = list(entry.terms)
    if entry.author:
        item["authors"] = [{"name": entry.author}]
    return item


def _authors(site: Site) -> list[dict[str, str]]:
    author = site.author
    if author is None:
        return [{"name": plain_title(site.title)}]
    # JSON Feed has no email field: the address goes as a mailto: URL when there is no other
    url = author.uri or (f"mailto:{author.email}" if author.email else None)
    return [{"name": author.name, **({"url": url} if url else {})}]


def json_feed_bytes(site: Site, spec: FeedSpec, entries: Sequence[Entry], self_url: str,
                    hub: str | None = None) -> bytes:
    """The JSON Feed of *spec*: *entries* in the order given, newest first as in Atom."""
    home = (site.root or "") + "/"
    feed: dict[str, Any] = {"version": VERSION, "title": feed_title(site, spec),
                            "authors": _authors(site),
                            "items": [_item(entry) for entry in entries]}
    # both must be URLs: a site without `url` has only paths, which readers cannot resolve
    if _absolute(home):
        feed["home_page_url"] = home
    if _absolute(self_url):
        feed["feed_url"] = self_url
    if site.lang:
        feed["language"] = site.lang
    description = plain_title(site.description)
    if description:
        feed["description"] = description
    if hub:
        feed["hubs"] = [{"type": "WebSub", "url": hub}]
    # ensure_ascii=False keeps the file readable and small; a lone surrogate (which UTF-8
    # cannot hold) becomes '?' rather than failing the feed
    text = json.dumps(feed, ensure_ascii=False, sort_keys=True, indent=1)
    return text.encode("utf-8", "replace") + b"\n"
