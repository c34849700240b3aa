"""The routes of the web front: one-click unsubscribe, tags, sign-up, the archive, health,
the feeds page and the output folder. A wrong, truncated or other purpose's token gets the
same 404 as an unknown path and changes nothing (the handlers are in unsubscribe.py,
preferences.py, signup.py and archive_pages.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ..errors import StateError
from ..feeds.page import FEEDS_PAGE
from . import admin
from .archive_pages import archive_index, archive_page, edition_page
from .context import Web, error_page, in_thread
from .pages import HEADERS
from .preferences import preferences_page, save_preferences
from .signup import confirm, subscribe
from .unsubscribe import unsubscribe, unsubscribe_page
from .webhooks import Relays

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 30  # what a 503 for a database outage tells browsers and crawlers
__all__ = ["Web", "make_app"]


def make_app(current: Callable[[], Web]) -> Starlette:
    """The ASGI app; *current* gives the Web of the config in force (a reload swaps it)."""
    def h(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        return _handler(current, handler)

    relays = Relays()
    routes = [
        Route("/healthz", h(healthz), methods=["GET", "HEAD"]),
        Route("/unsubscribe/{token}", h(_by_method(unsubscribe_page, unsubscribe)),
              methods=["GET", "HEAD", "POST"]),
        Route("/preferences/{token}", h(_by_method(preferences_page, save_preferences)),
              methods=["GET", "HEAD", "POST"]),
        Route("/subscribe", h(subscribe), methods=["GET", "HEAD", "POST"]),
        Route("/subscribe/confirm/{token}", h(confirm), methods=["GET", "HEAD", "POST"]),
        Route("/archive", lambda _request: RedirectResponse("archive/", status_code=308),
              methods=["GET", "HEAD"]),
        Route("/archive/", h(archive_index), methods=["GET", "HEAD"]),
        Route("/archive/{slug}", h(archive_page), methods=["GET", "HEAD"]),
        Route("/archive/{slug}/{edition}", h(edition_page), methods=["GET", "HEAD"]),
        *relays.routes(h),  # POST /webhooks/RELAY, for the relays configured (webhooks.py)
        *_admin_routes(h),
        Route("/feeds", lambda _request: RedirectResponse("feeds/", status_code=308),
              methods=["GET", "HEAD"]),
        Route("/feeds/", h(feeds_page), methods=["GET", "HEAD"]),
        Route("/{path:path}", h(feed_file), methods=["GET", "HEAD"]),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error_page(current(), exc.status_code, exc.headers)

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    app.state.relays = relays  # where tests give SNS certificates of their own
    return app


Handler = Callable[[Web, Request], Awaitable[Response]]


def _admin_routes(h: Callable[[Handler], Callable[[Request], Awaitable[Response]]]
                  ) -> list[Route]:
    """The owner's dashboard (admin.py); every one answers 404 unless `admin:` is set."""
    get, both = ["GET", "HEAD"], ["GET", "HEAD", "POST"]

    async def to_overview(web: Web, request: Request) -> Response:
        if web.admin is None:
            raise HTTPException(404)
        return RedirectResponse("admin/", status_code=308)

    return [
        Route("/admin", h(to_overview), methods=get),
        Route("/admin/", h(admin.overview), methods=get),
        Route("/admin/login", h(admin.login), methods=both),
        Route("/admin/logout", h(admin.logout), methods=["POST"]),
        Route("/admin/subscribers", h(admin.subscribers), methods=get),
        Route("/admin/subscriber", h(_by_method(admin.subscriber, admin.change_subscriber)),
              methods=both),
        Route("/admin/runs", h(admin.runs), methods=get),
        Route("/admin/runs/{slug}", h(admin.run_page), methods=get),
        Route("/admin/runs/{slug}/control", h(admin.control_run), methods=["POST"]),
        Route("/admin/preview", h(_by_method(admin.preview, admin.send_copy)), methods=both),
        Route("/admin/preview/frame", h(admin.preview_frame), methods=get),
    ]


def _handler(current: Callable[[], Web], handler: Handler
             ) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        web = current()
        try:
            return await handler(web, request)
        except StateError as exc:  # the database is down (or gone): a page saying so, the
            log.error("%s %s: 503: %s", request.method, request.url.path, exc)  # retry soon
            return error_page(web, 503, {"Retry-After": str(RETRY_AFTER_SECONDS)})
    endpoint.__name__ = handler.__name__
    return endpoint


def _by_method(get: Handler, post: Handler) -> Handler:
    """One route per path, so that a 405 (or OPTIONS) names every method the path takes."""
    async def handler(web: Web, request: Request) -> Response:
        return await (post if request.method == "POST" else get)(web, request)
    handler.__name__ = get.__name__
    return handler


# the output folder -------------------------------------------------------------------------
async def feed_file(web: Web, request: Request) -> Response:
    """A file of the output folder (feeds, feeds.opml, feed.xsl); see files.py. Served from
    the event loop: a stat, and a read only when the file changed."""
    found = web.files.response(request.path_params["path"], request.headers,
                               head=request.method == "HEAD")
    if found is None:
        raise HTTPException(404)
    return found


async def feeds_page(web: Web, request: Request) -> Response:
    """The feeds page: the output folder's feeds.html (feeds/page.py), which `digest build`
    writes beside the feeds, so the page and the files it lists always agree; served like
    them (ETag, 304s), with the headers of the other pages."""
    found = web.files.response(FEEDS_PAGE, request.headers, head=request.method == "HEAD",
                               media_type="text/html; charset=utf-8")
    if found is None:
        raise HTTPException(404)  # not built yet
    found.headers.update(HEADERS)
    return found


# health -------------------------------------------------------------------------------------
async def healthz(web: Web, request: Request) -> Response:
    """200 while the state database answers: what a supervisor or load balancer checks."""
    try:
        await in_thread(lambda: web.state().ping())
    except Exception as exc:  # any failure is "unhealthy", with the reason
        log.error("health check failed: %s", exc)
        return JSONResponse({"status": "failing", "error": str(exc)}, status_code=503,
                            headers={"Cache-Control": "no-store"})
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})
