"""`digest run`: one long-lived process that keeps the feeds fresh and sends the digest.

What wakes it, and what it does then:

- a post written, changed or deleted (watch.py) → rebuild the feeds at once;
- every `feeds.refresh_minutes` → rebuild (a fallback for changes inotify cannot see, such
  as on a network mount); unchanged feeds are not rewritten, so this costs a folder scan;
- the date of the next future-dated post → rebuild then, so it appears with no file change;
- `digest.schedule`, in the site's timezone → send the digest (schedule.py: the schedule
  survives restarts, and a digest missed while the daemon was down is sent at start-up
  within `digest.grace_hours`, once, or else skipped, its posts going into the next one);
- start-up with a digest left unfinished (crash, SIGTERM, SMTP down) → resume it first; a
  digest left unfinished (deferred mail, a paused server, a send that raised) is retried
  after smtp.retry_minutes, doubling up to an hour, until nothing is left (deferred mail
  fails for good after smtp.give_up_days: delivery/send.py);
- every `bounces.every_minutes`, with a bounces mailbox configured → read it (bounces.py);
- SIGHUP, or an edit of config.yaml, the site's _config.yml or the subscribers file →
  reload; a new version that does not load is logged and the old one kept;
- SIGTERM or SIGINT → take no new work, let the SMTP transactions in flight finish and be
  recorded (abandoned after `smtp.timeout` + 10 s: they stay pending and go out after the
  restart), exit 0.

The Daemon here is thin: it holds the life cycle (start-up order, stop, the background
tasks) and composes one part per concern, each in its own module: feeds.py (rebuilds),
digest.py (sends and retries), bounces.py (the bounces mailbox), reload.py (reloads and the
watches), web.py (the front).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

from ..config import Config
from ..delivery.nodes import Heartbeat
from ..delivery.session import when
from ..state.locks import daemon_lock
from ..state.open import open_state, schedule_store_url
from ..util.clock import Clock
from ..util.logs import event
from ..util.loop import run_async
from .bounces import BounceReader
from .digest import DigestSender, retry_delay
from .feeds import Feeds
from .reload import Reloader
from .schedule import make_scheduler
from .web import WebFront
from .work import check_can_send, held_by_owner, resume_point

__all__ = ["Daemon", "retry_delay", "run_daemon"]

log = logging.getLogger(__name__)

DRAIN_MARGIN_SECONDS = 10.0


def run_daemon(config: Config, clock: Clock) -> int:
    """Hold the daemon lock and run until stopped; the exit status."""
    with daemon_lock(config.state):
        check_can_send(config)
        return run_async(Daemon(config, clock).run())  # uvloop, as `digest send`


class Daemon:
    """The host of the parts (host.py's protocol): what they share, and when each runs."""

    feeds_part: type[Feeds] = Feeds  # a test steps into the start-up build through this

    def __init__(self, config: Config, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.stopping = asyncio.Event()
        self.stop_sending = asyncio.Event()
        self.scheduler: Any = None
        self.busy = {"build": False, "send": False}
        self.heartbeat = Heartbeat(config, "daemon")
        self._background: set[asyncio.Task[Any]] = set()
        self._failed: BaseException | None = None
        self.feeds = self.feeds_part(self)
        self.digest = DigestSender(self)
        self.web = WebFront(self, self.digest.resume)
        self.bounces = BounceReader(self)
        self.reloader = Reloader(self, self.feeds, self.digest, self.web, self.bounces)

    # life cycle ---------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop, sig.name)
        loop.add_signal_handler(signal.SIGHUP, self.reloader.spawn, "SIGHUP")
        self._note_start()
        # the first build runs here, before any thread exists: a cold build forks workers
        self.feeds.after_build(self.feeds.build(self.config, "start-up"))
        self.heartbeat.start()  # after that build: no database connection opened before it forks
        await asyncio.to_thread(self.reloader.check_subscribers, self.config)
        self.scheduler = make_scheduler(schedule_store_url(self.config), self.digest.on_job)
        self.scheduler.start(paused=True)  # jobs are put right before any may fire
        self.schedule_on(self.scheduler)
        self.feeds.schedule_future()
        if resume_point(self.config) or held_by_owner(self.config):  # held: looked at again
            self.digest.resume("unfinished at start-up")
        self.scheduler.resume()
        workers = {"build": self.task(self.feeds.builder()),
                   "send": self.task(self.digest.sender())}
        await self.reloader.catch_up(self.reloader.restart_watchers())
        await self.web.start()
        self._log_started()
        await self.stopping.wait()
        await self._shut_down(workers)
        return 1 if self._failed is not None else 0

    def schedule_on(self, scheduler: Any) -> None:
        """Put the refresh and the digest jobs in *scheduler*; `digest check` lists them."""
        self.scheduler = scheduler
        self.feeds.schedule_refresh()
        self.digest.schedule()
        self.bounces.schedule()

    def request_build(self, reason: str) -> None:
        self.feeds.request_build(reason)

    async def reload(self, why: str) -> None:
        await self.reloader.reload(why)

    def stop(self, why: str = "stop requested") -> None:
        if self.stopping.is_set():  # a second signal: stop waiting for messages in flight
            log.warning("%s again: abandoning the messages in flight now", why)
            self.stop_sending.set()
            for task in self._background:
                task.cancel()
            return
        log.info("stopping (%s): no new work; finishing what is in flight", why,
                 extra=event("daemon.stopping", signal=why))
        self.stopping.set()
        self.stop_sending.set()
        self.feeds.wake()

    def fail(self, error: BaseException, why: str) -> None:
        self._failed = error
        self.stop(why)

    async def _shut_down(self, workers: dict[str, asyncio.Task[None]]) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        watches = self.reloader.stop_watchers()
        started = time.monotonic()
        await self._drain(workers)
        pending = {*workers.values(), *watches, *self._background}
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self.web.stop()
        await self.heartbeat.close()
        await asyncio.sleep(0)  # the scheduler's shutdown is queued on the loop
        log.info("stopped after %.1f s", time.monotonic() - started,
                 extra=event("daemon.stopped"))

    async def _drain(self, workers: dict[str, asyncio.Task[None]]) -> None:
        """Wait for the work in flight, the SMTP transactions for at most their timeout."""
        smtp = self.config.smtp
        drain = (smtp.timeout if smtp else 0) + DRAIN_MARGIN_SECONDS
        busy = {task for name, task in workers.items() if self.busy[name]}
        if busy:  # an idle worker waits for work that will not come: not for it
            await asyncio.wait(busy, timeout=drain)
        if self.busy["send"]:
            log.warning("messages still in flight after %.0f s: abandoned; they stay pending "
                        "and go out after the restart (those the server already took may "
                        "arrive twice)", drain, extra=event("digest.abandoned"))

    def task(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A background task whose unexpected failure stops the daemon (exit 1)."""
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        log.error("internal error, stopping: %r", error, exc_info=error,
                  extra=event("daemon.failed"))
        assert error is not None
        self.fail(error, "internal error")

    def note(self, key: str, data: dict[str, Any]) -> None:
        state = open_state(self.config)
        try:
            state.note(key, data)
        finally:
            state.close()

    def _note_start(self) -> None:
        if self.clock.shifted:
            log.warning("the clock is shifted for testing: it reads %s",
                        when(self.clock.now(self.config.site.tz)),
                        extra=event("clock.shifted", offset=self.clock.offset.total_seconds()))
        self.note("daemon", {"pid": os.getpid(), "started_at": datetime.now(UTC),
                             "clock_offset_seconds": self.clock.offset.total_seconds()})

    def _log_started(self) -> None:
        config = self.config
        upcoming = self.digest.next_digest()
        if upcoming is None:
            digest = "no digest (no subscribers: set)"
        else:
            late = " (overdue: now, if within grace_hours)" \
                if upcoming < self.clock.now(config.site.tz) else ""
            digest = (f"digest '{config.digest.schedule}' ({config.site.timezone}), next "
                      f"{when(upcoming)}{late}")
        log.info("digest run started (PID %d): watching %s; feeds refresh every %g min; %s",
                 os.getpid(), config.posts, config.refresh_minutes, digest,
                 extra=event("daemon.started", pid=os.getpid(), posts=config.posts,
                             next_digest=upcoming))
