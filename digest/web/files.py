"""The output folder over HTTP: feeds with their real types, validators and 304s.

Feed readers poll every few minutes; the writer only replaces a feed when its bytes change,
so the mtime-based ETag and Last-Modified stay put and a poll costs a 304 with no body.
"""

from __future__ import annotations

import os
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import FileResponse, Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Scope

TYPES = {
    ".xml": "application/atom+xml; charset=utf-8",  # jekyll-feed's naming: .xml is Atom
    ".rss": "application/rss+xml; charset=utf-8",
    ".opml": "text/x-opml; charset=utf-8",
    ".xsl": "text/xsl; charset=utf-8",
}
CACHE = "public, max-age=60"  # a minute of freshness, then a cheap conditional request


class FeedFiles(StaticFiles):
    def file_response(self, full_path: Any, stat_result: os.stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        name = os.fspath(full_path)
        media_type = TYPES.get(os.path.splitext(name)[1])
        response = FileResponse(name, status_code=status_code, stat_result=stat_result,
                                media_type=media_type,
                                headers={"Cache-Control": CACHE,
                                         "X-Content-Type-Options": "nosniff"})
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            return NotModifiedResponse(response.headers)
        return response
