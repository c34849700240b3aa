"""The daemon's bounce reader: every `bounces.every_minutes`, what the bounces mailbox holds
becomes suppressions (feedback/process.py), in a worker thread, one read at a time."""

from __future__ import annotations

import asyncio
import logging

from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]

from ..errors import DigestError
from ..feedback.process import read_feedback
from ..util.logs import event
from .host import Host

log = logging.getLogger(__name__)
BOUNCES_JOB = "bounces"


class BounceReader:
    def __init__(self, host: Host) -> None:
        self.host = host
        self._reading = asyncio.Lock()

    def schedule(self) -> None:
        """(Re)schedule the read from the config as it is now; none without a mailbox."""
        scheduler, bounces = self.host.scheduler, self.host.config.bounces
        if scheduler.get_job(BOUNCES_JOB) is not None:
            scheduler.remove_job(BOUNCES_JOB)
        if bounces is None or (bounces.maildir is None and bounces.imap is None):
            return
        scheduler.add_job(self.read, IntervalTrigger(seconds=bounces.every_minutes * 60),
                          id=BOUNCES_JOB, replace_existing=True, misfire_grace_time=None,
                          coalesce=True, max_instances=1)

    async def read(self) -> None:
        if self.host.stopping.is_set() or self._reading.locked():
            return
        async with self._reading:
            config = self.host.config
            try:
                applied = await asyncio.to_thread(read_feedback, config)
            except DigestError as exc:  # the mailbox is down or refuses us: next time
                log.error("bounces not read: %s", exc,
                          extra=event("bounces.failed", error=str(exc)))
                return
            if applied.recorded or applied.suppressed:
                log.info("bounces: %s", applied.summary(),
                         extra=event("bounces.read", recorded=applied.recorded,
                                     suppressed=len(applied.suppressed)))
