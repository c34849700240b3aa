"""The output folder over HTTP: feeds with their real types, validators and 304s.

Feed readers poll every few minutes, so a feed is served from memory: read once per
version of its file (a stat per request tells whether it changed), with a strong ETag
over its bytes and the file's mtime as Last-Modified. The writer only replaces a feed when
its bytes change, so a poll of an unchanged feed costs a 304 with no body. Only the kinds
of file the build writes are served; anything else in the folder is a 404.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

from starlette.datastructures import Headers
from starlette.responses import Response

TYPES = {
    ".xml": "application/atom+xml; charset=utf-8",  # jekyll-feed's naming: .xml is Atom
    ".rss": "application/rss+xml; charset=utf-8",
    ".json": "application/feed+json; charset=utf-8",  # JSON Feed (feeds: json: true)
    ".opml": "text/x-opml; charset=utf-8",
    ".xsl": "text/xsl; charset=utf-8",
}
CACHE = "public, max-age=60"  # a minute of freshness, then a cheap conditional request
BUDGET = 64 * 1024 * 1024  # bytes of feeds kept in memory; the least recently used go first


@dataclass(frozen=True)
class _File:
    stamp: tuple[int, int]  # (mtime_ns, size) it was read at
    body: bytes
    headers: dict[str, str]
    mtime: float


class OutputFiles:
    def __init__(self, root: Path, budget: int = BUDGET) -> None:
        self.root = root
        self.budget = budget
        self._kept: OrderedDict[str, _File] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def response(self, path: str, request: Headers, *, head: bool = False,
                 media_type: str | None = None) -> Response | None:
        """The response for URL path *path* (no leading slash); None: not ours to serve.
        *media_type*: serve this one file, whatever its kind (a route names it)."""
        parts = path.split("/")
        if not path or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
            return None
        media_type = media_type or TYPES.get(os.path.splitext(path)[1])
        if media_type is None:
            return None
        full = self.root.joinpath(*parts)
        try:
            st = os.stat(full)
        except (OSError, ValueError):
            return None
        found = self._get(path, full, (st.st_mtime_ns, st.st_size), st.st_mtime, media_type)
        if found is None:
            return None
        if _not_modified(request, found):
            return Response(status_code=304, headers={
                k: v for k, v in found.headers.items() if k in ("ETag", "Cache-Control")})
        return Response(b"" if head else found.body, headers={
            **found.headers, "Content-Length": str(len(found.body))})

    def _get(self, path: str, full: Path, stamp: tuple[int, int], mtime: float,
             media_type: str) -> _File | None:
        with self._lock:
            kept = self._kept.get(path)
            if kept is not None and kept.stamp == stamp:
                self._kept.move_to_end(path)
                return kept
        try:
            body = full.read_bytes()
        except OSError:
            return None
        headers = {"Content-Type": media_type, "Cache-Control": CACHE, "ETag": etag_of(body),
                   "Last-Modified": formatdate(mtime, usegmt=True),
                   "X-Content-Type-Options": "nosniff"}
        found = _File(stamp, body, headers, mtime)
        with self._lock:
            old = self._kept.pop(path, None)
            self._size -= len(old.body) if old else 0
            if len(body) <= self.budget // 4:
                self._kept[path] = found
                self._size += len(body)
            while self._size > self.budget:
                self._size -= len(self._kept.popitem(last=False)[1].body)
        return found


def etag_of(body: bytes) -> str:
    """A strong ETag (quoted) for *body*."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_matches(tags: str, etag: str) -> bool:
    """If-None-Match's weak comparison (RFC 9110 13.1.2): '*', or *etag* among the tags."""
    return tags.strip() == "*" or etag in (t.strip().removeprefix("W/") for t in tags.split(","))


def _not_modified(request: Headers, found: _File) -> bool:
    """RFC 9110 13.2.2: If-None-Match decides when present; else If-Modified-Since."""
    tags = request.get("if-none-match")
    if tags is not None:
        return etag_matches(tags, found.headers["ETag"])
    since = request.get("if-modified-since")
    if since is None:
        return False
    try:
        return parsedate_to_datetime(since).timestamp() >= int(found.mtime)
    except (TypeError, ValueError, IndexError, OverflowError):
        return False
