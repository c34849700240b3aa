"""The daemon's feeds: rebuilt when a post changes, every `feeds.refresh_minutes`, and when
the next future-dated post's time comes.

Builds run one at a time in a worker thread, so sending (in the event loop) goes on during
them; requests that arrive during a build are merged into the next one.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from apscheduler.triggers.date import DateTrigger  # type: ignore[import-untyped]

from ..config import Config
from ..delivery.session import when
from ..errors import DigestError
from ..util.logs import event
from .host import Host
from .schedule import refresh_trigger
from .work import BuildResult, build_feeds

log = logging.getLogger(__name__)

REFRESH_JOB, FUTURE_JOB = "refresh", "future-post"  # not stored


class Feeds:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.known_terms: set[str] = set()  # the site's tags and categories, last build
        self._wanted = asyncio.Event()
        self._reasons: list[str] = []
        self._problems: set[str] = set()
        self._next_future: datetime | None = None

    def request_build(self, reason: str) -> None:
        if not self.host.stopping.is_set():
            self._reasons.append(reason)
            self._wanted.set()

    def wake(self) -> None:
        """Let the builder see that the daemon stops."""
        self._wanted.set()

    async def builder(self) -> None:
        """The worker: one build per wake-up, with every reason given since the last."""
        host = self.host
        while True:
            await self._wanted.wait()
            if host.stopping.is_set():
                return
            self._wanted.clear()
            reasons = list(dict.fromkeys(self._reasons))
            self._reasons.clear()
            host.busy["build"] = True
            try:
                result = await asyncio.to_thread(self.build, host.config, "; ".join(reasons))
            finally:
                host.busy["build"] = False
            self.after_build(result)

    def build(self, config: Config, reason: str) -> BuildResult | None:
        """One rebuild (in a worker thread, except at start-up), logged and noted."""
        try:
            return build_feeds(config, now=self.host.clock.now(config.site.tz), reason=reason)
        except Exception as exc:  # the next change or refresh tries again; keep running
            log.error("feeds not rebuilt (%s): %s", reason, exc,
                      exc_info=not isinstance(exc, DigestError | OSError),
                      extra=event("feeds.failed", reason=reason, error=str(exc)))
            return None

    def after_build(self, result: BuildResult | None) -> None:
        if result is None:
            return
        self.known_terms = set(result.terms)
        for problem in result.problems:
            if problem not in self._problems:  # each once, not at every refresh
                log.warning("problem in posts: %s", problem,
                            extra=event("posts.problem", error=problem))
        self._problems = set(result.problems)
        self._next_future = result.next_future
        self.schedule_future()

    def schedule_future(self) -> None:
        host = self.host
        if host.scheduler is None or host.stopping.is_set():
            return  # the start-up build comes before the scheduler; it calls again
        if self._next_future is None:
            if host.scheduler.get_job(FUTURE_JOB) is not None:
                host.scheduler.remove_job(FUTURE_JOB)
            return
        host.scheduler.add_job(self._future_post_due, DateTrigger(
            run_date=host.clock.real(self._next_future)), id=FUTURE_JOB,
            replace_existing=True, misfire_grace_time=None, coalesce=True)
        log.debug("next future-dated post appears at %s", when(self._next_future))

    def schedule_refresh(self) -> None:
        self.host.scheduler.add_job(self._refresh_due, refresh_trigger(self.host.config),
                                    id=REFRESH_JOB, replace_existing=True,
                                    misfire_grace_time=None, coalesce=True)

    async def _future_post_due(self) -> None:
        self.request_build("a future-dated post's time has come")

    async def _refresh_due(self) -> None:
        self.request_build(f"every {self.host.config.refresh_minutes:g} min")
