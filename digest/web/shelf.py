"""The archive as the web shows it: past digests read from the shared state, kept rendered.

An archived run never changes once kept (state/interface.py save_archive keeps the first
copy), so each is read and cleaned once and kept in memory by slug; the index is one small
query per request, and stays the same object while it lists the same runs, so the page made
from it is kept too (archive_pages.py). A crawler or a load test costs little per request.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from ..delivery import archive
from ..delivery.archive import ArchivedRun
from ..edition.selection import SLUG_PATTERN
from ..posts.sanitize import sanitize
from ..state.interface import SharedState
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
    """*state*: the calling thread's shared state (Web.state)."""

    def __init__(self, state: Callable[[], SharedState]) -> None:
        self.state = state
        self._lock = threading.Lock()
        self._runs: dict[str, ArchivedRun] = {}
        self._index: tuple[tuple[str, ...], list[ArchivedRun]] | None = None

    def kept(self, slug: str) -> ArchivedRun | None:
        """The run if already read: from memory, no thread needed."""
        with self._lock:
            return self._runs.get(slug)

    def run(self, slug: str) -> ArchivedRun | None:
        """The archived run named *slug*; None when there is none (or it cannot be read)."""
        if not _SLUG.fullmatch(slug):
            return None
        with self._lock:
            kept = self._runs.get(slug)
        if kept is not None:
            return kept
        text = self.state().archived(slug)
        if text is None:
            return None
        try:
            found = archive.parse(text)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("%s: cannot be read as an archived digest (%s); it is not shown", slug,
                      exc)
            return None
        # cleaned when the digest was made; cleaned again, as it was kept outside our hands
        found = replace(found, posts=tuple(replace(p, excerpt_html=sanitize(p.excerpt_html))
                                           for p in found.posts))
        with self._lock:
            self._runs[slug] = found
        return found

    def runs(self) -> list[ArchivedRun]:
        """Every archived run, newest first; the same list while the same runs are kept."""
        slugs = tuple(entry.slug for entry in self.state().archive_index())
        with self._lock:
            if self._index is not None and self._index[0] == slugs:
                return self._index[1]
        found = [run for run in map(self.run, slugs) if run is not None]
        with self._lock:
            self._index = (slugs, found)
        return found
