"""Choosing one's tags: every tag of the site with its post count; the choice is stored in
the state database over the YAML entry and used by the next digest. Resubscribing too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..util.logs import event
from .context import Web, in_thread, link, read_form

log = logging.getLogger(__name__)


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


async def _preferences_context(web: Web, key: str
                               ) -> tuple[dict[str, Any], dict[str, int]] | None:
    """The page's context, and the site's tag counts it was made from."""
    def read() -> tuple[dict[str, Any], dict[str, int]] | None:
        sub = web.directory.subscriber(key)
        if sub is None:
            return None
        log_ = web.state()
        chose, tags = log_.preference(key)
        chosen = tags if chose else sub.tags
        counts = web.catalogue.counts()
        return {"address": _mask(sub.email), "every": chosen is None,
                "choices": _choices(counts, chosen),
                "excluded": sub.exclude_tags, "suppressed": log_.is_suppressed(key),
                "unsubscribe": link(web, key, "unsubscribe"), "saved": None,
                "problem": None}, counts
    return await in_thread(read)


async def preferences_page(web: Web, request: Request) -> Response:
    key = await in_thread(web.directory.resolve, request.path_params["token"], "preferences")
    found = None if key is None else await _preferences_context(web, key)
    if found is None:
        raise HTTPException(404)
    return web.pages.page("preferences", found[0], private=True)


async def save_preferences(web: Web, request: Request) -> Response:
    """Save the tags (or "every post"), or resubscribe; honoured by the next digest."""
    key = await in_thread(web.directory.resolve, request.path_params["token"], "preferences")
    found = None if key is None else await _preferences_context(web, key)
    if key is None or found is None:
        raise HTTPException(404)
    context, counts = found
    form = await read_form(request)
    action = form.get("action", "save")
    if action == "resubscribe":
        return await _resubscribe(web, key, context)
    if action != "save" or form.get("mode") not in ("all", "some"):
        raise HTTPException(400)
    wanted = [str(t) for t in form.getlist("tag")]
    tags, problem, shown = _chosen(context["choices"], wanted, every=form["mode"] == "all")
    if problem is not None:
        context.update(problem=problem, every=False, choices=_choices(counts, shown))
        return web.pages.page("preferences", context, status=400, private=True)
    await in_thread(lambda: web.state().set_preferences(key, tags))
    log.info("tags chosen on the web", extra=event("web.preferences", tags=len(tags or ())))
    context.update(every=tags is None, choices=_choices(counts, tags),
                   saved="Saved. Your next digest follows these choices.")
    return web.pages.page("preferences", context, private=True)


async def _resubscribe(web: Web, key: str, context: dict[str, Any]) -> Response:
    if await in_thread(lambda: web.state().unsuppress(key)):
        log.info("resubscribed on the web", extra=event("web.resubscribed"))
    context.update(suppressed=False, saved="You are subscribed again.")
    return web.pages.page("preferences", context, private=True)


def _chosen(choices: list[Choice], wanted: list[str], *, every: bool
            ) -> tuple[tuple[str, ...] | None, str | None, tuple[str, ...]]:
    """(the tags to keep, None for every post; what is wrong with the form, if anything;
    the tags to show checked again when something is), the site's spelling kept."""
    offered = {c.term.casefold(): c.term for c in choices}
    unknown = [t for t in wanted if t.casefold() not in offered]
    tags = None if every else tuple(
        dict.fromkeys(offered[t.casefold()] for t in wanted if t.casefold() in offered))
    if not unknown and tags != ():
        return tags, None, ()
    problem = ("Choose at least one tag, or choose every new post."
               if not unknown else "Some of those tags do not exist on this site.")
    return tags, problem, tags or tuple(t for t in wanted if t.casefold() in offered)
