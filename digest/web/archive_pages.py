"""Past digests as pages: rendered once per archived run, answered with ETags.

What a page shows comes from shelf.py (the shared state's archive); no subscriber's data is in it.
An edition's page (/archive/SLUG/EDITION, the "view in browser" link of an email) shows the
posts that edition carried (delivery/archive.py says how its id names them). Any well-formed
id is a page, so those kept rendered are bounded (EDITION_PAGES): a crawler walking ids cannot
fill memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..delivery import archive
from ..delivery.archive import ArchivedRun
from ..edition.layout import format_period
from .context import Web, in_thread
from .files import etag_matches
from .pages import HEADERS
from .shelf import PageBytes, page_bytes

CACHE = "public, max-age=300"
EDITION_PAGES = 256  # edition pages kept rendered, the most recently asked for


def _cached(web: Web, name: str, source: ArchivedRun | list[ArchivedRun],
            make: Callable[[], str]) -> PageBytes:
    kept = web.rendered_pages.get(name)
    if kept is not None and kept[0] is source:
        return kept[1]
    page = page_bytes(make())
    web.rendered_pages[name] = (source, page)
    return page


def _conditional(request: Request, page: PageBytes) -> Response:
    headers = {**HEADERS, "ETag": page.etag, "Cache-Control": CACHE}
    if etag_matches(request.headers.get("if-none-match", ""), page.etag):
        return Response(status_code=304, headers=headers)
    return Response(page.body, media_type="text/html; charset=utf-8", headers=headers)


def _period(run: ArchivedRun) -> str:
    return format_period(run.period_start, run.period_end)


async def archive_index(web: Web, request: Request) -> Response:
    runs = await in_thread(web.shelf.runs)
    page = _cached(web, "", runs, lambda: web.pages.html("archive_index", {
        "runs": [(r, _period(r)) for r in runs], "noun": web.config.digest.noun}))
    return _conditional(request, page)


async def archive_page(web: Web, request: Request) -> Response:
    slug = request.path_params["slug"]
    run = web.shelf.kept(slug) or await in_thread(web.shelf.run, slug)
    if run is None:
        raise HTTPException(404)
    page = _cached(web, run.slug, run, lambda: web.pages.html("archive", {
        "run": run, "period": _period(run), "noun": web.config.digest.noun, "edition": None}))
    return _conditional(request, page)


async def edition_page(web: Web, request: Request) -> Response:
    """One edition of a run: the posts one email carried, in the run's order; 404 for an id
    that names none (see archive.edition_posts)."""
    slug, edition = request.path_params["slug"], request.path_params["edition"]
    run = web.shelf.kept(slug) or await in_thread(web.shelf.run, slug)
    posts = archive.edition_posts(run, edition) if run is not None else None
    if run is None or posts is None:
        raise HTTPException(404)
    name, kept = f"{run.slug}/{edition}", web.edition_pages
    found = kept.get(name)
    if found is not None and found[0] is run:
        kept.move_to_end(name)
        return _conditional(request, found[1])
    # the run's own template, shown only this edition's posts, so a template overridden
    # before edition pages existed shows them rightly too
    page = page_bytes(web.pages.html("archive", {
        "run": replace(run, posts=posts), "period": _period(run), "noun": web.config.digest.noun,
        "edition": edition}))
    kept[name] = (run, page)
    while len(kept) > EDITION_PAGES:
        kept.popitem(last=False)
    return _conditional(request, page)
