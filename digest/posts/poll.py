"""Fetch the feed sources that are due and write their entries as post files (sources.py).

Polite and bounded: a conditional GET (ETag, Last-Modified: a 304 changes nothing), at
most once per `every_minutes`, twice as long after each failure in a row (up to a day); a
time-out on the whole fetch, 10 MB at most read, redirects followed and reported (a
permanent one so the owner can update the URL), TLS verified. A feed that fails or turns
into something else keeps every entry it had: its files stay, and `digest status` says what
went wrong and when it last worked.

Why files and not rows: an entry written as a post file is read by the same reader, parse
cache, live index, renderer and entry ids as the posts folder's files, keyed by its path,
so builds, digests, late entries and ids need no second path through the pipeline. What a
source needs besides (validators, schedule, which file holds which entry) is one small JSON
file per source beside its posts, written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from ..config import Config
from ..config.settings import FeedSource
from ..errors import Busy
from ..state.locks import held
from .feedentries import Entry, FeedError, parse_feed
from .sources import posts_of, source_folder

MAX_BYTES = 10 * 2**20
TIMEOUT = 20.0  # seconds for the whole fetch, not per read
MAX_BACKOFF = timedelta(days=1)
MAX_FILES = 5000  # entries kept per source; the oldest go first
USER_AGENT = "digest (+https://github.com/; feed source poller)"
STATE_FILE = "source.json"
LOCK_FILE = "fetch.lock"


@dataclass
class SourceState:
    """What is kept of one source between fetches (state/sources/NAME/source.json)."""

    url: str = ""  # the configured URL these validators belong to
    etag: str | None = None
    last_modified: str | None = None
    last_fetch: str | None = None  # ISO 8601, UTC
    last_ok: str | None = None
    last_status: str | None = None  # "200", "304", "error"
    error: str | None = None
    failures: int = 0
    next_fetch: str | None = None
    redirect: str | None = None  # where a permanent redirect said the feed now is
    body_sha256: str | None = None  # of the last body read: the same bytes are not read again
    # file name → {"ids": [...], "link": ..., "first_seen": ...}
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Fetched:
    status: int  # 200 or 304
    body: bytes
    etag: str | None
    last_modified: str | None
    redirects: tuple[tuple[int, str], ...]  # (code, new URL) of each redirect followed


class FetchError(Exception):
    """Why a fetch failed, in a sentence for `digest status`."""


def load_state(state: Path, name: str) -> SourceState:
    try:
        data = json.loads((source_folder(state, name) / STATE_FILE).read_bytes())
        known = {f.name for f in fields(SourceState)}
        return SourceState(**{k: v for k, v in data.items() if k in known})
    except (OSError, ValueError, TypeError):
        return SourceState()


def save_state(state: Path, name: str, current: SourceState) -> None:
    folder = source_folder(state, name)
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f".{STATE_FILE}.{os.getpid()}"
    temp.write_text(json.dumps(asdict(current), indent=1, sort_keys=True))
    os.replace(temp, folder / STATE_FILE)


class _Redirects(urllib.request.HTTPRedirectHandler):
    def __init__(self) -> None:
        self.seen: list[tuple[int, str]] = []

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> Any:
        if not newurl.startswith(("http://", "https://")):
            raise FetchError(f"redirected ({code}) to {newurl[:200]}, not an http(s) address")
        self.seen.append((code, newurl))
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch(url: str, *, etag: str | None = None, last_modified: str | None = None,
          timeout: float = TIMEOUT, max_bytes: int = MAX_BYTES) -> Fetched:
    """GET *url* conditionally; raise FetchError saying what went wrong."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip",
               "Accept": "application/atom+xml, application/rss+xml, application/feed+json, "
                         "application/xml;q=0.9, */*;q=0.8"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    redirects = _Redirects()
    opener = urllib.request.build_opener(redirects)  # default HTTPS handler: TLS verified
    deadline = time.monotonic() + timeout
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise FetchError(f"the feed is {int(length):,} bytes (the most read is "
                                 f"{max_bytes:,})")
            chunks, size = [], 0
            while chunk := resp.read(65536):
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(f"the feed is over {max_bytes:,} bytes, so it is not read")
                if time.monotonic() > deadline:
                    raise FetchError(f"no whole answer within {timeout:g} s")
                chunks.append(chunk)
            body = b"".join(chunks)
            if (resp.headers.get("Content-Encoding") or "").strip().lower() == "gzip":
                body = _gunzip(body, max_bytes)
            return Fetched(200, body, resp.headers.get("ETag"),
                           resp.headers.get("Last-Modified"), tuple(redirects.seen))
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return Fetched(304, b"", exc.headers.get("ETag") or etag,
                           exc.headers.get("Last-Modified") or last_modified,
                           tuple(redirects.seen))
        raise FetchError(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise FetchError(f"cannot fetch it: {exc.reason}") from None
    except TimeoutError:
        raise FetchError(f"no answer within {timeout:g} s") from None
    except (OSError, ValueError) as exc:  # reset connections, bad URLs, broken chunking
        raise FetchError(f"cannot fetch it: {type(exc).__name__}: {str(exc)[:200]}") from None


def _gunzip(body: bytes, max_bytes: int) -> bytes:
    """A gzip body unpacked, bounded as the plain one is: a small bomb is refused."""
    unpack = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = unpack.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise FetchError(f"the gzip body is corrupt ({exc})") from None
    if len(out) > max_bytes or unpack.unconsumed_tail:
        raise FetchError(f"the feed unpacks to over {max_bytes:,} bytes, so it is not read")
    return out


def due(source: FeedSource, current: SourceState, now: datetime) -> bool:
    if current.url != source.url or current.next_fetch is None:
        return True
    return datetime.fromisoformat(current.next_fetch) <= now


@dataclass(frozen=True)
class PollResult:
    name: str
    fetched: bool  # False: not due yet
    status: str | None = None
    new: int = 0  # entry files written or rewritten
    error: str | None = None
    redirect: str | None = None


def poll_sources(config: Config, *, force: bool = False, now: datetime | None = None,
                 fetcher: Callable[..., Fetched] = fetch) -> list[PollResult]:
    """Fetch each source that is due (every one with *force*); one failing source never
    stops the others."""
    return [poll_one(config, source, force=force, now=now, fetcher=fetcher)
            for source in config.sources]


def poll_one(config: Config, source: FeedSource, *, force: bool = False,
             now: datetime | None = None, fetcher: Callable[..., Fetched] = fetch) -> PollResult:
    """Fetch one source if due, under its lock: the daemon and a `digest build` by hand never
    write one source's files at once (the second skips it: the first is fetching it)."""
    try:
        with held(source_folder(config.state, source.name) / LOCK_FILE, "busy"):
            return _poll_locked(config, source, force=force, now=now, fetcher=fetcher)
    except Busy:
        return PollResult(source.name, False)


def _poll_locked(config: Config, source: FeedSource, *, force: bool, now: datetime | None,
                 fetcher: Callable[..., Fetched]) -> PollResult:
    now = now or datetime.now(UTC)
    current = load_state(config.state, source.name)
    if not force and not due(source, current, now):
        return PollResult(source.name, False)
    if current.url != source.url:  # a new URL: its validators are not ours
        current.etag = current.last_modified = current.redirect = None
        current.url = source.url
    current.last_fetch = now.isoformat()
    try:
        got = fetcher(source.url, etag=current.etag, last_modified=current.last_modified)
        written = 0
        sha = hashlib.sha256(got.body).hexdigest() if got.status == 200 else None
        if sha is not None and sha != current.body_sha256:  # no validators: same bytes, same
            entries = parse_feed(got.body, _final_url(source.url, got))  # entries
            written = _materialise(config, source, current, entries, now)
            current.body_sha256 = sha
        permanent = [new for code, new in got.redirects if code in (301, 308)]
        current.redirect = permanent[-1] if permanent else None
        current.etag, current.last_modified = got.etag, got.last_modified
        current.last_status, current.error, current.failures = str(got.status), None, 0
        current.last_ok = now.isoformat()
        current.next_fetch = (now + timedelta(minutes=source.every_minutes)).isoformat()
        save_state(config.state, source.name, current)
        return PollResult(source.name, True, current.last_status, written,
                          redirect=current.redirect)
    except (FetchError, FeedError) as exc:
        current.failures += 1
        current.last_status, current.error = "error", str(exc)
        wait = min(timedelta(minutes=source.every_minutes) * 2 ** current.failures, MAX_BACKOFF)
        current.next_fetch = (now + wait).isoformat()
        save_state(config.state, source.name, current)
        return PollResult(source.name, True, "error", error=str(exc))


def _final_url(url: str, got: Fetched) -> str:
    return got.redirects[-1][1] if got.redirects else url


def _slug(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60].strip("-")
    return slug or "entry"


def _materialise(config: Config, source: FeedSource, current: SourceState,
                 entries: list[Entry], now: datetime) -> int:
    """Write each entry's post file (only if it changed); returns how many were written.

    An entry is the one already kept with the same id, else with the same link: a feed that
    changes its ids does not publish everything again.
    """
    folder = posts_of(config.state, source.name)
    folder.mkdir(parents=True, exist_ok=True)
    by_id = {i: name for name, kept in current.entries.items() for i in kept.get("ids", [])}
    by_link = {kept.get("link"): name for name, kept in current.entries.items()}
    done: set[str] = set()
    elsewhere = _other_links(config, source)
    written = 0
    for entry in entries:
        name = next((by_id[i] for i in entry.ids if i in by_id), None) or by_link.get(entry.link)
        if name is None and entry.link in elsewhere:  # another source has it: one post, so
            continue  # its URL is not taken twice (which would reject the second)
        if name is None:
            first = entry.date or now
            digest = hashlib.sha256((entry.ids[0] if entry.ids else entry.link).encode())
            name = f"{first:%Y-%m-%d}-{_slug(entry.title)}-{digest.hexdigest()[:8]}.html"
            current.entries[name] = {"ids": [], "link": entry.link,
                                     "first_seen": now.isoformat()}
        if name in done:  # two entries of one response are one post
            continue
        done.add(name)
        kept = current.entries[name]
        kept["ids"] = sorted({*kept.get("ids", []), *entry.ids})[-10:]
        kept["link"] = entry.link
        by_link[entry.link] = name
        for i in entry.ids:
            by_id[i] = name
        data = _post_file(source, entry, entry.date or datetime.fromisoformat(kept["first_seen"]))
        path = folder / name
        try:
            if path.read_bytes() == data:
                continue  # unchanged: its mtime stays, so the parse cache keeps its reading
        except FileNotFoundError:
            pass
        temp = folder / f".{name}.tmp"
        temp.write_bytes(data)
        os.replace(temp, path)
        written += 1
    _prune(folder, current)
    return written


def _other_links(config: Config, source: FeedSource) -> set[str]:
    """The entry links the other sources already publish (two feeds of one site overlap)."""
    return {kept.get("link", "") for other in config.sources if other.name != source.name
            for kept in load_state(config.state, other.name).entries.values()}


def _prune(folder: Path, current: SourceState) -> None:
    """At most MAX_FILES entries per source: the oldest (by file name) are removed."""
    if len(current.entries) <= MAX_FILES:
        return
    for name in sorted(current.entries)[: len(current.entries) - MAX_FILES]:
        del current.entries[name]
        (folder / name).unlink(missing_ok=True)


def _escape_liquid(html: str) -> str:
    """Braces as entities: a feed's text is never read as Liquid (`{% post_url %}`, `{{`)."""
    return html.replace("{", "&#123;").replace("}", "&#125;")


def _post_file(source: FeedSource, entry: Entry, date: datetime) -> bytes:
    tags = list(dict.fromkeys([*source.tags, *entry.tags]))
    front: dict[str, Any] = {"title": entry.title, "date": date.strftime("%Y-%m-%d %H:%M:%S %z"),
                             "link": entry.link, "source": source.name}
    if tags:
        front["tags"] = tags
    if entry.author:
        front["author"] = entry.author
    if entry.summary:
        front["excerpt"] = _escape_liquid(entry.summary)
    head = yaml.safe_dump(front, allow_unicode=True, sort_keys=False, width=10_000)
    return f"---\n{head}---\n{_escape_liquid(entry.html)}\n".encode()


def describe(config: Config, now: datetime | None = None) -> list[dict[str, Any]]:
    """Each source as `digest status` shows it."""
    now = now or datetime.now(UTC)
    out = []
    for source in config.sources:
        current = load_state(config.state, source.name)
        out.append({"name": source.name, "url": source.url, "last_fetch": current.last_fetch,
                    "last_status": current.last_status, "last_ok": current.last_ok,
                    "entries": len(current.entries), "next_fetch": current.next_fetch,
                    "error": current.error, "redirect": current.redirect,
                    "due": due(source, current, now)})
    return out
