"""A feed's bytes → its entries: RSS 0.9x/2.0, RSS 1.0 (RDF) and Atom through feedparser,
JSON Feed 1.0/1.1 through json (feedparser does not read it).

Pure: no network, no files. The body is bounded by the caller (poll.py) before it gets here;
what comes out is bounded too (entries, title and tag lengths) and its HTML sanitised.
"""

from __future__ import annotations

import calendar
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from .sanitize import sanitize

MAX_ENTRIES = 500  # read from one response; a feed holds its latest 10-50 as a rule
MAX_TITLE = 1000
MAX_TAGS = 50
MAX_TAG = 256
MAX_CONTENT = 2 * 2**20  # characters of one entry's HTML


class FeedError(ValueError):
    """The body is not a feed we can read: the message says what it is instead."""


@dataclass(frozen=True)
class Entry:
    """One entry as the feed gave it, cleaned: what a post file is written from."""

    ids: tuple[str, ...]  # its id/guid ('' if none): entries are matched by id, then link
    link: str  # absolute http(s)
    title: str
    date: datetime | None  # published, else updated; None: the time it is first seen
    tags: tuple[str, ...]
    html: str  # sanitised
    summary: str | None  # sanitised HTML, when the feed gives one besides the content
    author: str | None


def parse_feed(body: bytes, url: str) -> list[Entry]:
    """The entries of *body*, fetched from *url* (relative links resolve against it)."""
    head = body[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"{"):
        return _json_feed(body, url)
    import feedparser  # ~0.1 s to import: only when a feed is actually read

    parsed = feedparser.parse(body)
    if not parsed.get("version"):
        problem = parsed.get("bozo_exception")
        why = f" ({str(problem)[:200]})" if problem else ""
        raise FeedError(f"not an RSS, Atom, RDF or JSON feed{why}")
    # relative entry links: against the site's home the feed names (as feed readers do),
    # else the address it was fetched from
    home = _link(parsed.feed.get("link") or "", url)
    out = []
    for item in parsed.entries[:MAX_ENTRIES]:
        entry = _xml_entry(item, home or url)
        if entry is not None:
            out.append(entry)
    return out


def _xml_entry(item: Any, base: str) -> Entry | None:
    link = _link(item.get("link") or "", base)
    if link is None:
        return None
    contents = item.get("content") or []
    html_body = next((c.get("value", "") for c in contents
                      if "html" in c.get("type", "")), None)
    if html_body is None and contents:
        html_body = contents[0].get("value", "")
    summary = item.get("summary")
    date = _struct_date(item.get("published_parsed")) or _struct_date(item.get("updated_parsed"))
    tags = [t.get("term") or t.get("label") or "" for t in item.get("tags") or []]
    return _entry(item.get("id") or item.get("guid") or "", link, item.get("title") or "",
                  date, tags, html_body, summary, item.get("author"))


def _json_feed(body: bytes, base: str) -> list[Entry]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise FeedError(f"looks like JSON but is not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(data, dict) or "jsonfeed.org/version" not in str(data.get("version")):
        raise FeedError("JSON, but not a JSON Feed (no https://jsonfeed.org/version/1.x)")
    items = data.get("items")
    if not isinstance(items, list):
        raise FeedError("a JSON Feed without an 'items' list")
    out = []
    for item in items[:MAX_ENTRIES]:
        if not isinstance(item, dict):
            continue
        link = _link(_text(item.get("url")) or _text(item.get("external_url")) or "", base)
        if link is None:
            continue
        tags = [t for t in item.get("tags") or [] if isinstance(t, str)] \
            if isinstance(item.get("tags"), list) else []
        found = item.get("authors")
        authors: list[Any] = found if isinstance(found, list) else [item.get("author")]
        author = next((_text(a.get("name")) for a in authors if isinstance(a, dict)), None)
        html_body = _text(item.get("content_html"))
        if html_body is None and _text(item.get("content_text")) is not None:
            from html import escape

            html_body = "<p>" + escape(str(item["content_text"])) + "</p>"
        date = _iso_date(item.get("date_published")) or _iso_date(item.get("date_modified"))
        out.append(_entry(_text(item.get("id")) or "", link, _text(item.get("title")) or "",
                          date, tags, html_body, _text(item.get("summary")), author))
    return out


def _entry(entry_id: Any, link: str, title: str, date: datetime | None, tags: list[str],
           html_body: str | None, summary: str | None, author: Any) -> Entry:
    clean_tags: list[str] = []
    for tag in tags:
        tag = " ".join(str(tag).split())[:MAX_TAG]
        if tag and tag not in clean_tags and len(clean_tags) < MAX_TAGS:
            clean_tags.append(tag)
    content = sanitize((html_body or summary or "")[:MAX_CONTENT])
    short = sanitize(summary[:MAX_CONTENT]) if summary and html_body else None
    name = " ".join(str(author).split())[:200] if isinstance(author, str) else None
    return Entry((str(entry_id)[:2000],) if entry_id else (), link,
                 " ".join(str(title).split())[:MAX_TITLE] or link, date,
                 tuple(clean_tags), content, short, name or None)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _link(value: str, base: str) -> str | None:
    """The entry's link made absolute; None if it is not an http(s) address."""
    link = urljoin(base, value.strip()) if value.strip() else ""
    parts = urlsplit(link)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(link) > 2000 \
            or any(c.isspace() or ord(c) < 32 for c in link):
        return None
    return link


def _plausible(date: datetime | None) -> datetime | None:
    """A date a post file can be named by (YYYY-MM-DD); else None: when first seen."""
    return date if date is not None and 1970 <= date.year <= 9999 else None


def _struct_date(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        return _plausible(datetime.fromtimestamp(calendar.timegm(value), UTC))
    except (OverflowError, ValueError, TypeError, OSError):
        return None


def _iso_date(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        date = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return _plausible(date if date.tzinfo else date.replace(tzinfo=UTC))
