"""The daemon's digest: sent when `digest.schedule` says, resumed when left unfinished.

The schedule itself (cron in the site's timezone, stored so it survives restarts, a missed
digest sent within `digest.grace_hours` or skipped) is schedule.py's. Here: the queue of
sends, one at a time, each joining whatever `digest send` by hand or another machine is
sending (they share the run's deliveries in leased batches: delivery/send.py); and the
retries of a digest left unfinished (deferred mail, a paused server, a send that raised),
after smtp.retry_minutes, doubling up to an hour, until nothing is left.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.events import (  # type: ignore[import-untyped]
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    JobExecutionEvent,
)
from apscheduler.triggers.date import DateTrigger  # type: ignore[import-untyped]

from ..config import Config, SmtpSettings
from ..delivery.progress import LogProgress
from ..delivery.send import send_async
from ..delivery.session import when
from ..errors import ConfigError, DigestError
from ..feedback.process import after_send
from ..util.logs import event
from .host import Host
from .schedule import DIGEST_JOB, STATE_STORE, schedule_digest
from .work import held_by_owner, log_problems, log_sent, resume_point

log = logging.getLogger(__name__)

RETRY_JOB = "retry"  # not stored
RETRY_CAP = timedelta(hours=1)  # the longest wait between retries (postfix's is 4,000 s)


@dataclass(frozen=True)
class _Send:
    as_of: datetime | None  # None: only resume what is unfinished
    why: str


class DigestSender:
    def __init__(self, host: Host) -> None:
        self.host = host
        self._sends: asyncio.Queue[_Send] = asyncio.Queue()
        self._retries = 0  # retries in a row of a digest left unfinished: sets the backoff
        self._held: list[str] = []  # digests paused by the owner, as last logged

    def schedule(self) -> None:
        schedule_digest(self.host.scheduler, self.host.config, self.host.clock)

    def resume(self, why: str) -> None:
        """Send what is left unfinished, if anything."""
        self._sends.put_nowait(_Send(None, why))

    def next_digest(self) -> datetime | None:
        host = self.host
        job = host.scheduler.get_job(DIGEST_JOB, STATE_STORE) if host.scheduler else None
        if job is None or job.next_run_time is None:
            return None
        return host.clock.shown(job.next_run_time, host.config.site.tz)

    def on_job(self, done: JobExecutionEvent) -> None:
        """The scheduler's listener: a digest due is queued, a digest missed is logged."""
        if done.code == EVENT_JOB_ERROR:
            log.error("scheduled job %s failed: %s", done.job_id, done.exception)
            return
        if done.job_id != DIGEST_JOB:
            return
        config, clock = self.host.config, self.host.clock
        due = clock.shown(done.scheduled_run_time, config.site.tz)
        if done.code == EVENT_JOB_EXECUTED:
            self._sends.put_nowait(_Send(due, f"due {when(due)}"))
            return
        late = clock.now(config.site.tz) - due
        upcoming = self.next_digest()
        log.warning("digest due %s was missed by %s, more than digest.grace_hours (%g h): "
                    "skipped; its posts go into the next digest, due %s", when(due),
                    str(late).split(".")[0], config.digest.grace_hours,
                    when(upcoming) if upcoming else "never",
                    extra=event("digest.missed", due=due, late_seconds=late.total_seconds(),
                                next=upcoming))

    async def sender(self) -> None:
        """The worker: the queued sends, one at a time."""
        host = self.host
        while not host.stopping.is_set():
            item = await self._sends.get()
            if host.stopping.is_set():
                return
            host.busy["send"] = True
            try:
                await self._send(item)
            finally:
                host.busy["send"] = False

    async def _retry_due(self) -> None:
        self.resume("retrying what was left unfinished")

    async def _send(self, item: _Send) -> None:
        """One send; whatever it raises is logged, and whatever it leaves unfinished
        (deferred mail, a paused run, a run that failed midway) is retried on a backoff:
        one digest that cannot go out must not stop the feeds and the web front."""
        try:
            await self._send_once(item)
        except Exception as exc:  # e.g. the database: retried below, the daemon goes on
            log.error("digest not sent: %r", exc, exc_info=exc,
                      extra=event("digest.failed", error=repr(exc)))
        if self.host.stopping.is_set():
            return
        if not await self._unfinished():
            self._retries = 0
            await self._look_again_if_held()
            return
        self._retries += 1
        delay = retry_delay(self.host.config, self._retries)
        self.host.scheduler.add_job(self._retry_due, DateTrigger(
            run_date=datetime.now(UTC) + delay), id=RETRY_JOB, replace_existing=True,
            misfire_grace_time=None)
        log.info("digest: unfinished; trying again in %s (retry %d)", _duration(delay),
                 self._retries, extra=event("digest.retry_scheduled", retry=self._retries,
                                            seconds=delay.total_seconds()))

    async def _look_again_if_held(self) -> None:
        """A digest the owner paused is not retried, but looked at every smtp.retry_minutes
        (one read of the state), so that once resumed it goes on at that next tick."""
        try:
            held = await asyncio.to_thread(held_by_owner, self.host.config)
        except Exception as exc:
            log.error("digest: cannot tell what is paused: %r", exc,
                      extra=event("digest.failed", error=repr(exc)))
            return
        if not held:
            self._held = []
            return
        delay = retry_delay(self.host.config, 1)
        self.host.scheduler.add_job(self._retry_due, DateTrigger(
            run_date=datetime.now(UTC) + delay), id=RETRY_JOB, replace_existing=True,
            misfire_grace_time=None)
        if held != self._held:
            log.info("digest: %s paused by the owner: not sent until resumed (`digest resume`); "
                     "looking again every %s", ", ".join(held), _duration(delay),
                     extra=event("digest.held", slugs=held, seconds=delay.total_seconds()))
        self._held = held

    async def _unfinished(self) -> bool:
        try:
            return await asyncio.to_thread(resume_point, self.host.config) is not None
        except Exception as exc:  # the state cannot be read: assume the worst, try later
            log.error("digest: cannot tell what is left to send: %r", exc,
                      extra=event("digest.failed", error=repr(exc)))
            return True

    async def _send_once(self, item: _Send) -> None:
        config, stop = self.host.config, self.host.stop_sending
        as_of = item.as_of or await asyncio.to_thread(resume_point, config)
        if as_of is None or config.subscribers is None:
            return
        log.info("digest: sending (%s)", item.why, extra=event("digest.started", why=item.why,
                                                              as_of=as_of))
        if stop.is_set():
            return
        try:
            report = await send_async(config, as_of=as_of, progress=LogProgress(),
                                      stop=stop, heartbeat=self.host.heartbeat)
        except ConfigError as exc:
            log_problems("digest not sent", exc.problems, "digest.failed")
        except DigestError as exc:
            log.error("digest not sent: %s", exc, extra=event("digest.failed",
                                                             error=str(exc)))
        else:
            log_sent(report)
            try:  # the send is done whatever this says; the next send tries again
                await asyncio.to_thread(after_send, config, [r.run for r in report.runs])
            except DigestError as exc:
                log.error("digest: refused addresses not suppressed: %s", exc,
                          extra=event("feedback.failed", error=str(exc)))


def retry_delay(config: Config, retry: int) -> timedelta:
    """How long to wait before the *retry*-th retry of an unfinished digest: smtp.retry_minutes
    doubling each time, up to an hour (or retry_minutes, if that is longer)."""
    minutes: float = (config.smtp or SmtpSettings("", 0)).retry_minutes  # Maildir: defaults
    first = timedelta(minutes=minutes)
    return min(first * (1 << min(retry - 1, 20)), max(RETRY_CAP, first))


def _duration(delay: timedelta) -> str:
    seconds = delay.total_seconds()
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
