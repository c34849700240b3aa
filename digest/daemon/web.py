"""The daemon's web front: the unsubscribe and preferences pages the digests link to, served
in the daemon's own event loop (web/server.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..config import Config
from ..errors import DigestError
from ..util.logs import event
from .host import Host

if TYPE_CHECKING:
    from ..web.server import Front

log = logging.getLogger(__name__)


class WebFront:
    def __init__(self, host: Host, on_resume: Callable[[str], None] | None = None) -> None:
        self.host = host
        self._on_resume = on_resume  # the sender's resume: a run resumed on /admin/ goes now
        self._front: Front | None = None

    async def start(self) -> None:
        """Serve the web front in this process; a front that cannot start stops the daemon,
        as the links in digests already sent would otherwise go unanswered unnoticed."""
        config = self.host.config
        if config.web is None or config.web.listen is None:
            return  # no front: uvicorn and starlette are not even imported (~40 ms, 5 MB)
        from ..web.server import Front

        try:
            self._front = Front.for_config(config, self.host.clock, self._on_resume)
            if self._front is None:
                return
            url = await self._front.start()
        except (OSError, DigestError) as exc:
            log.error("the web front cannot start: %s", exc, extra=event("web.failed"))
            self._front = None
            self.host.fail(exc, "the web front cannot start")
            return
        log.info("web front listening on %s", url, extra=event("web.listening", url=url))
        self.host.note("web", {"url": url, "base_url": config.web and config.web.base_url})

    def reload(self, config: Config) -> None:
        if self._front is not None:
            self._front.reload(config)

    async def stop(self) -> None:
        if self._front is not None:
            await self._front.stop()
