"""The routes: one-click unsubscribe, tags, the archive, health, and the output folder.

Every handler that touches a file or the database does it in a worker thread, so the daemon's
scheduler, which shares the event loop, is never held up by a page view. A wrong, truncated
or other purpose's token gets the same 404 as an unknown path and changes nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Message

from ..archive import ArchivedRun
from ..clock import Clock
from ..config import Config
from ..logs import event
from ..render import format_period
from ..sendlog import SendLog
from ..store import Store
from ..tokens import Signer
from .catalogue import Catalogue
from .directory import Directory
from .files import OutputFiles
from .pages import HEADERS, Pages
from .shelf import Rendered, Shelf, rendered

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_BODY = 64 * 1024  # a tags form of a site with a thousand tags fits; nothing else needs more
ONE_CLICK = ("List-Unsubscribe", "One-Click")  # RFC 8058's body
ARCHIVE_CACHE = "public, max-age=300"


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
    _local: threading.local = field(init=False, default_factory=threading.local)
    _pages: dict[str, tuple[ArchivedRun | list[ArchivedRun], Rendered]] = field(
        init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.directory = Directory(self.config.subscribers, self.signer, self.sendlog)
        self.catalogue = Catalogue(self.config, self.now)
        self.pages = Pages(self.config.site, self.config.digest.templates)
        self.shelf = Shelf(self.config.state)
        self.files = OutputFiles(self.config.output)

    def now(self) -> datetime:
        return self.clock.now(self.config.site.tz)

    def sendlog(self) -> SendLog:
        """This thread's own connection: SQLite connections stay in the thread that made them."""
        found: SendLog | None = getattr(self._local, "sendlog", None)
        if found is None:
            found = SendLog(Store.open(self.config.state))
            self._local.sendlog = found
        return found


def make_app(current: Callable[[], Web]) -> Starlette:
    """The ASGI app; *current* gives the Web of the config in force (a reload swaps it)."""
    def h(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        return _handler(current, handler)

    routes = [
        Route("/healthz", h(healthz), methods=["GET", "HEAD"]),
        Route("/unsubscribe/{token}", h(_by_method(unsubscribe_page, unsubscribe)),
              methods=["GET", "HEAD", "POST"]),
        Route("/preferences/{token}", h(_by_method(preferences_page, save_preferences)),
              methods=["GET", "HEAD", "POST"]),
        Route("/archive", lambda _request: RedirectResponse("archive/", status_code=308),
              methods=["GET", "HEAD"]),
        Route("/archive/", h(archive_index), methods=["GET", "HEAD"]),
        Route("/archive/{slug}", h(archive_page), methods=["GET", "HEAD"]),
        Route("/{path:path}", h(feed_file), methods=["GET", "HEAD"]),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(current(), exc.status_code, exc.headers)

    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})


Handler = Callable[[Web, Request], Awaitable[Response]]


def _handler(current: Callable[[], Web], handler: Handler
             ) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await handler(current(), request)
    endpoint.__name__ = handler.__name__
    return endpoint


def _by_method(get: Handler, post: Handler) -> Handler:
    """One route per path, so that a 405 (or OPTIONS) names every method the path takes."""
    async def handler(web: Web, request: Request) -> Response:
        return await (post if request.method == "POST" else get)(web, request)
    handler.__name__ = get.__name__
    return handler


async def _in_thread(function: Callable[..., T], *args: Any) -> T:
    return await run_in_threadpool(function, *args)


_MESSAGES = {
    400: ("This request cannot be handled", "Something in it is missing or malformed."),
    404: ("Page not found", "This link is not valid. If it came from one of our emails, it may "
          "have been cut short: copy the whole address into your browser."),
    405: ("Not allowed", "This page does not take that kind of request."),
    413: ("Request too large", "That is more than this page accepts."),
}


def _error(web: Web, status: int, headers: Mapping[str, str] | None = None) -> Response:
    title, text = _MESSAGES.get(status, ("Something went wrong", "Please try again later."))
    return web.pages.page("error", {"title": title, "text": text}, status=status,
                          private=True, headers=headers)


# the output folder -------------------------------------------------------------------------
async def feed_file(web: Web, request: Request) -> Response:
    """A file of the output folder (feeds, feeds.opml, feed.xsl); see files.py. Served from
    the event loop: a stat, and a read only when the file changed."""
    found = web.files.response(request.path_params["path"], request.headers,
                               head=request.method == "HEAD")
    if found is None:
        raise HTTPException(404)
    return found


# health -------------------------------------------------------------------------------------
async def healthz(web: Web, request: Request) -> Response:
    """200 while the state database answers: what a supervisor or load balancer checks."""
    def check() -> None:
        web.sendlog().db.execute("SELECT 1").fetchone()
    try:
        await _in_thread(check)
    except Exception as exc:  # any failure is "unhealthy", with the reason
        log.error("health check failed: %s", exc)
        return JSONResponse({"status": "failing", "error": str(exc)}, status_code=503,
                            headers={"Cache-Control": "no-store"})
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


# forms --------------------------------------------------------------------------------------
async def _form(request: Request) -> FormData:
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


# unsubscribe --------------------------------------------------------------------------------
async def unsubscribe_page(web: Web, request: Request) -> Response:
    """GET asks to confirm: link scanners follow GET links, so GET never unsubscribes."""
    key = await _in_thread(web.directory.resolve, request.path_params["token"], "unsubscribe")
    if key is None:
        raise HTTPException(404)
    done = await _in_thread(lambda: web.sendlog().is_suppressed(key))
    return web.pages.page("unsubscribe", {
        "done": done, "preferences": _link(web, key, "preferences")}, private=True)


async def unsubscribe(web: Web, request: Request) -> Response:
    """RFC 8058 one-click: at once, idempotent, no login, no cookies."""
    key = await _in_thread(web.directory.resolve, request.path_params["token"], "unsubscribe")
    if key is None:
        raise HTTPException(404)
    form = await _form(request)
    if form.getlist(ONE_CLICK[0]) != [ONE_CLICK[1]]:
        return web.pages.page("unsubscribe", {
            "done": False, "preferences": _link(web, key, "preferences"),
            "problem": "To unsubscribe, press the button below."}, status=400, private=True)
    added = await _in_thread(
        lambda: web.sendlog().suppress(key, "unsubscribed on the web (one-click)"))
    if added:
        log.info("unsubscribed on the web", extra=event("web.unsubscribed"))
    return web.pages.page("unsubscribed", {"preferences": _link(web, key, "preferences")},
                          private=True)


def _link(web: Web, key: str, purpose: str) -> str | None:
    """A relative link from a token page to *purpose*'s page for the same subscriber."""
    if purpose == "preferences" and web.directory.subscriber(key) is None:
        return None  # only on the suppression list: no tags to choose
    return f"../{purpose}/{web.signer.token(key, purpose)}"


# preferences --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Choice:
    term: str
    posts: int
    checked: bool


def _choices(counts: dict[str, int], chosen: tuple[str, ...] | None) -> list[Choice]:
    """Every tag of the site, and any followed tag that has no posts yet, by name."""
    picked = {t.casefold() for t in chosen or ()}
    known = {t.casefold() for t in counts}
    rows = [Choice(t, n, t.casefold() in picked) for t, n in counts.items()]
    rows += [Choice(t, 0, True) for t in chosen or () if t.casefold() not in known]
    return sorted(rows, key=lambda c: (c.term.casefold(), c.term))


def _mask(email: str) -> str:
    """a•••@example.org: enough to recognise one's address, not enough to harvest it."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}"


async def _preferences_context(web: Web, key: str) -> dict[str, Any] | None:
    def read() -> dict[str, Any] | None:
        sub = web.directory.subscriber(key)
        if sub is None:
            return None
        log_ = web.sendlog()
        chose, tags = log_.preference(key)
        chosen = tags if chose else sub.tags
        return {"address": _mask(sub.email), "every": chosen is None,
                "choices": _choices(web.catalogue.counts(), chosen),
                "excluded": sub.exclude_tags, "suppressed": log_.is_suppressed(key),
                "unsubscribe": _link(web, key, "unsubscribe"), "saved": None, "problem": None}
    return await _in_thread(read)


async def preferences_page(web: Web, request: Request) -> Response:
    key = await _in_thread(web.directory.resolve, request.path_params["token"], "preferences")
    context = None if key is None else await _preferences_context(web, key)
    if key is None or context is None:
        raise HTTPException(404)
    return web.pages.page("preferences", context, private=True)


async def save_preferences(web: Web, request: Request) -> Response:
    """Save the tags (or "every post"), or resubscribe; honoured by the next digest."""
    key = await _in_thread(web.directory.resolve, request.path_params["token"], "preferences")
    context = None if key is None else await _preferences_context(web, key)
    if key is None or context is None:
        raise HTTPException(404)
    form = await _form(request)
    action = form.get("action", "save")
    if action == "resubscribe":
        if await _in_thread(lambda: web.sendlog().unsuppress(key)):
            log.info("resubscribed on the web", extra=event("web.resubscribed"))
        context.update(suppressed=False, saved="You are subscribed again.")
        return web.pages.page("preferences", context, private=True)
    if action != "save" or form.get("mode") not in ("all", "some"):
        raise HTTPException(400)
    counts = await _in_thread(web.catalogue.counts)
    offered = {c.term.casefold(): c.term for c in context["choices"]}
    wanted = [str(t) for t in form.getlist("tag")]
    unknown = [t for t in wanted if t.casefold() not in offered]
    tags = None if form["mode"] == "all" else tuple(
        dict.fromkeys(offered[t.casefold()] for t in wanted if t.casefold() in offered))
    if unknown or tags == ():
        problem = ("Choose at least one tag, or choose every new post."
                   if not unknown else "Some of those tags do not exist on this site.")
        shown = tags or tuple(t for t in wanted if t.casefold() in offered)
        context.update(problem=problem, every=False, choices=_choices(counts, shown))
        return web.pages.page("preferences", context, status=400, private=True)
    await _in_thread(lambda: web.sendlog().set_preferences(key, tags))
    log.info("tags chosen on the web", extra=event("web.preferences", tags=len(tags or ())))
    context.update(every=tags is None, choices=_choices(counts, tags),
                   saved="Saved. Your next digest follows these choices.")
    return web.pages.page("preferences", context, private=True)


# archive ------------------------------------------------------------------------------------
def _cached(web: Web, name: str, source: ArchivedRun | list[ArchivedRun],
            render: Callable[[], str]) -> Rendered:
    kept = web._pages.get(name)
    if kept is not None and kept[0] is source:
        return kept[1]
    page = rendered(render())
    web._pages[name] = (source, page)
    return page


def _conditional(request: Request, page: Rendered) -> Response:
    headers = {**HEADERS, "ETag": page.etag, "Cache-Control": ARCHIVE_CACHE}
    tags = request.headers.get("if-none-match", "")
    if page.etag in (t.strip().removeprefix("W/") for t in tags.split(",")) or tags == "*":
        return Response(status_code=304, headers=headers)
    return Response(page.body, media_type="text/html; charset=utf-8", headers=headers)


def _period(run: ArchivedRun) -> str:
    return format_period(run.period_start, run.period_end)


async def archive_index(web: Web, request: Request) -> Response:
    runs = web.shelf.listed()
    if runs is None:
        runs = await _in_thread(web.shelf.runs)
    page = _cached(web, "", runs, lambda: web.pages.render("archive_index", {
        "runs": [(r, _period(r)) for r in runs], "noun": web.config.digest.noun}))
    return _conditional(request, page)


async def archive_page(web: Web, request: Request) -> Response:
    slug = request.path_params["slug"]
    run = web.shelf.kept(slug) or await _in_thread(web.shelf.run, slug)
    if run is None:
        raise HTTPException(404)
    page = _cached(web, run.slug, run, lambda: web.pages.render("archive", {
        "run": run, "period": _period(run), "noun": web.config.digest.noun}))
    return _conditional(request, page)
