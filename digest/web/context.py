"""What every page handler shares: the Web of the config in force, and small helpers
(worker threads, error pages, bounded form bodies, links between token pages).

Handlers that touch the database, or a file not already in memory, do it in a worker
thread, so the daemon's scheduler, which shares the event loop, is never held up by a page.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message

from ..config import Config
from ..delivery import archive
from ..delivery.archive import ArchivedRun
from ..state.interface import SharedState
from ..state.open import open_state
from ..subscribers.tokens import Signer
from ..util.clock import Clock
from .admin_auth import Auth
from .catalogue import Catalogue
from .directory import Directory
from .files import OutputFiles
from .pages import Pages
from .shelf import PageBytes, Shelf

T = TypeVar("T")
MAX_BODY = 64 * 1024  # a tags form of a site with a thousand tags fits; nothing else needs more
WEB_WAIT_SECONDS = 5.0  # a web request waits this long for a lost database, then gets 503


@dataclass
class Web:
    """What the handlers share; built once per config (a reload builds a new one)."""

    config: Config
    clock: Clock
    signer: Signer
    directory: Directory = field(init=False)
    catalogue: Catalogue = field(init=False)
    pages: Pages = field(init=False)
    shelf: Shelf = field(init=False)
    files: OutputFiles = field(init=False)
    admin: Auth | None = field(init=False)  # the owner's dashboard; None: not configured
    _local: threading.local = field(init=False, default_factory=threading.local)
    # inside `digest run`: tell the daemon's sender a run was resumed, so it is served now,
    # not at the next retry (daemon/digest.py); None under `digest serve`
    on_resume: Callable[[str], None] | None = field(init=False, default=None)
    # what the dashboard keeps between requests: the next digest's counts (admin.py)
    rendered_admin: dict[str, Any] = field(init=False, default_factory=dict)
    # archive pages rendered, with what they were rendered from (see archive_pages.py)
    rendered_pages: dict[str, tuple[ArchivedRun | list[ArchivedRun], PageBytes]] = field(
        init=False, default_factory=dict)
    # editions' pages kept rendered, the least recently asked for dropped first (bounded,
    # archive_pages.py)
    edition_pages: OrderedDict[str, tuple[ArchivedRun, PageBytes]] = field(
        init=False, default_factory=OrderedDict)

    def __post_init__(self) -> None:
        # a damaged, locked or read-only state database stops `digest serve` at start
        # (errors.StateError, exit 2), not at the first visitor's click; and the digests
        # archived before the shared state kept them (only a file) are copied in
        state = open_state(self.config)
        try:
            archive.adopt(self.config.state, state)
        finally:
            state.close()
        self.directory = Directory(self.config, self.signer, self.state)
        self.catalogue = Catalogue(self.config, self.now)
        self.pages = Pages(self.config.site, self.config.digest.templates)
        self.shelf = Shelf(self.state)
        self.files = OutputFiles(self.config.output)
        self.admin = None if self.config.admin is None else Auth(
            self.config.admin, self.signer.secrets[0], self.state, self.now)

    def now(self) -> datetime:
        return self.clock.now(self.config.site.tz)

    def state(self) -> SharedState:
        """This thread's own connection: SQLite connections stay in the thread that made them."""
        found: SharedState | None = getattr(self._local, "state", None)
        if found is None:  # a visitor waits a few seconds for a lost database, not minutes
            found = open_state(self.config, wait_seconds=min(
                WEB_WAIT_SECONDS, self.config.database_wait_seconds))
            self._local.state = found
        return found


async def in_thread(function: Callable[..., T], *args: Any) -> T:
    return await run_in_threadpool(function, *args)


_MESSAGES = {
    400: ("This request cannot be handled", "Something in it is missing or malformed."),
    404: ("Page not found", "This link is not valid. If it came from one of our emails, it may "
          "have been cut short: copy the whole address into your browser."),
    405: ("Not allowed", "This page does not take that kind of request."),
    413: ("Request too large", "That is more than this page accepts."),
    503: ("Temporarily unavailable", "This page cannot be shown just now. Nothing was "
          "changed: please try again in a few minutes."),
}


def error_page(web: Web, status: int, headers: Mapping[str, str] | None = None) -> Response:
    title, text = _MESSAGES.get(status, ("Something went wrong", "Please try again later."))
    return web.pages.page("error", {"title": title, "text": text}, status=status,
                          private=True, headers=headers)


async def read_form(request: Request) -> FormData:
    """The body as a form, read up to MAX_BODY (413 past it); urlencoded or multipart."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        raise HTTPException(413 if length.isdigit() else 400)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise HTTPException(413)
        chunks.append(chunk)
    body = b"".join(chunks)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        return await Request(request.scope, replay).form(max_files=0, max_fields=5000)
    except (HTTPException, ValueError, UnicodeDecodeError):
        raise HTTPException(400) from None


def link(web: Web, key: str, purpose: str) -> str | None:
    """A relative link from a token page to *purpose*'s page for the same subscriber."""
    if purpose == "preferences" and web.directory.subscriber(key) is None:
        return None  # only on the suppression list: no tags to choose
    return f"../{purpose}/{web.signer.token(key, purpose)}"
