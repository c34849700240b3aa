"""Leaving: RFC 8058 one-click unsubscribe, and a confirm page for people.

GET never unsubscribes (link scanners follow GET links); the POST that does needs the
one-click body, is idempotent, and sets no cookie.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..util.logs import event
from .context import Web, in_thread, link, read_form

log = logging.getLogger(__name__)
ONE_CLICK = ("List-Unsubscribe", "One-Click")  # RFC 8058's body


async def unsubscribe_page(web: Web, request: Request) -> Response:
    """GET asks to confirm: link scanners follow GET links, so GET never unsubscribes."""
    key = await in_thread(web.directory.resolve, request.path_params["token"], "unsubscribe")
    if key is None:
        raise HTTPException(404)
    # link() may read the subscribers file again: in the thread, never on the event loop
    done, preferences = await in_thread(
        lambda: (web.state().is_suppressed(key), link(web, key, "preferences")))
    return web.pages.page("unsubscribe", {"done": done, "preferences": preferences},
                          private=True)


async def unsubscribe(web: Web, request: Request) -> Response:
    """RFC 8058 one-click: at once, idempotent, no login, no cookies."""
    key = await in_thread(web.directory.resolve, request.path_params["token"], "unsubscribe")
    if key is None:
        raise HTTPException(404)
    form = await read_form(request)
    if form.getlist(ONE_CLICK[0]) != [ONE_CLICK[1]]:
        return web.pages.page("unsubscribe", {
            "done": False, "preferences": await in_thread(link, web, key, "preferences"),
            "problem": "To unsubscribe, press the button below."}, status=400, private=True)
    added, preferences = await in_thread(
        lambda: (web.state().suppress(key, "unsubscribed on the web (one-click)"),
                 link(web, key, "preferences")))
    if added:
        log.info("unsubscribed on the web", extra=event("web.unsubscribed"))
    return web.pages.page("unsubscribed", {"preferences": preferences}, private=True)
