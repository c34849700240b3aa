"""The archive as the web shows it: past digests read from `state/archive/`, kept rendered.

A page is rendered once per version of its file and served from memory with an ETag after,
so a crawler or a load test costs a dict lookup per request.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from ..delivery import archive
from ..delivery.archive import ArchivedRun
from ..edition.selection import SLUG_PATTERN
from ..posts.sanitize import sanitize
from .files import etag_of

log = logging.getLogger(__name__)
_SLUG = re.compile(SLUG_PATTERN)


@dataclass(frozen=True)
class PageBytes:
    """A page made once and kept: its bytes and their ETag."""

    body: bytes
    etag: str  # quoted, strong


def page_bytes(body: str) -> PageBytes:
    data = body.encode()
    return PageBytes(data, etag_of(data))


class Shelf:
    def __init__(self, state: Path) -> None:
        self.folder = archive.folder(state)
        self._lock = threading.Lock()
        self._runs: dict[str, tuple[int, ArchivedRun]] = {}  # slug → (mtime_ns, run)
        self._index: tuple[int, list[ArchivedRun]] | None = None

    def kept(self, slug: str) -> ArchivedRun | None:
        """The run from memory if its file is unchanged (a stat): no thread needed."""
        if not _SLUG.fullmatch(slug):
            return None
        try:
            mtime = (self.folder / f"{slug}.json").stat().st_mtime_ns
        except OSError:
            return None
        with self._lock:
            kept = self._runs.get(slug)
        return kept[1] if kept is not None and kept[0] == mtime else None

    def listed(self) -> list[ArchivedRun] | None:
        """The list from memory if the folder is unchanged (a stat)."""
        try:
            mtime = self.folder.stat().st_mtime_ns
        except OSError:
            return []
        with self._lock:
            index = self._index
        return index[1] if index is not None and index[0] == mtime else None

    def run(self, slug: str) -> ArchivedRun | None:
        """The archived run named *slug*; None when there is none (or it cannot be read)."""
        if not _SLUG.fullmatch(slug):
            return None
        path = self.folder / f"{slug}.json"
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return None
        with self._lock:
            kept = self._runs.get(slug)
            if kept is not None and kept[0] == mtime:
                return kept[1]
        try:
            found = archive.load(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("%s: cannot be read as an archived digest (%s); it is not shown", path,
                      exc)
            return None
        # cleaned when the digest was made; cleaned again, as the file sits on disk since
        found = replace(found, posts=tuple(replace(p, excerpt_html=sanitize(p.excerpt_html))
                                           for p in found.posts))
        with self._lock:
            self._runs[slug] = (mtime, found)
        return found

    def runs(self) -> list[ArchivedRun]:
        """Every archived run, newest first; re-listed only when the folder changes."""
        try:
            mtime = self.folder.stat().st_mtime_ns
        except OSError:
            return []
        with self._lock:
            if self._index is not None and self._index[0] == mtime:
                return self._index[1]
        slugs = sorted((p.stem for p in self.folder.glob("*.json")), reverse=True)
        found = [run for run in map(self.run, slugs) if run is not None]
        found.sort(key=lambda r: r.period_end, reverse=True)
        with self._lock:
            self._index = (mtime, found)
        return found
