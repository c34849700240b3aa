"""HTML pages from Jinja templates (autoescaped), with the headers every page carries.

The templates are the package data `digest.templates` (`templates/web/` in the repository)
and can be overridden like the digest's, from the `digest: templates:` folder
(`web/NAME.html.j2` there wins).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import jinja2
from starlette.responses import HTMLResponse

from ..config import Site
from ..edition.layout import format_date
from ..util import builtin
from ..util.builtin import compiled, failed

# No scripts, no frames, forms only to ourselves, and no Referer: a token in the URL never
# leaks to a site a page links to.
HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; "
                                "img-src 'self' data:; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
PRIVATE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex, nofollow"}


def _duration(value: timedelta) -> str:
    """2 h 05 min, 3 min 20 s, 12 s: how long a run took, to the unit that matters."""
    seconds = int(value.total_seconds())
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s" if seconds else "under 1 s"


class Pages:
    def __init__(self, site: Site, templates: Path | None) -> None:
        self.site = site
        self.env = jinja2.Environment(
            loader=builtin.loader(templates),
            autoescape=True, trim_blocks=True, lstrip_blocks=True,
            undefined=jinja2.StrictUndefined)
        self.env.filters["date"] = format_date  # as in the emails: `8 January 2024`
        self.env.filters["duration"] = _duration  # the dashboard's run times

    def template(self, name: str) -> jinja2.Template:
        """`web/NAME.html.j2`, compiled; TemplateError (file and line) on a syntax error."""
        return compiled(self.env, f"web/{name}.html.j2")

    def html(self, name: str, context: Mapping[str, Any]) -> str:
        """The template web/*name*.html.j2 filled with *context*."""
        template = self.template(name)
        try:
            return template.render(site=self.site, **context)
        except jinja2.TemplateError as exc:  # an override's error, told at its file and line
            raise failed(exc, template) from None

    def page(self, name: str, context: Mapping[str, Any], *, status: int = 200,
             private: bool = False, headers: Mapping[str, str] | None = None) -> HTMLResponse:
        """*name* (e.g. "unsubscribe") as a page; *private* pages are never cached or indexed."""
        body = self.html(name, context)
        all_headers = {**HEADERS, **(PRIVATE if private else {}), **(headers or {})}
        return HTMLResponse(body, status_code=status, headers=all_headers)
