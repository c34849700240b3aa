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
- SIGHUP, or an edit of config.yaml, the site's _config.yml or the subscribers file →
  reload; a new version that does not load is logged and the old one kept;
- SIGTERM or SIGINT → take no new work, let the SMTP transactions in flight finish and be
  recorded (abandoned after `smtp.timeout` + 10 s: they stay pending and go out after the
  restart), exit 0.

Builds run one at a time in a worker thread, so sending (in the event loop) goes on during
them; requests that arrive during a build are merged into the next one. Sends run one at a
time too, and take the send lock (state/locks.py) like `digest send` by hand does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.events import (  # type: ignore[import-untyped]
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    JobExecutionEvent,
)
from apscheduler.triggers.date import DateTrigger  # type: ignore[import-untyped]

from ..config import Config, SmtpSettings, load_config
from ..delivery.progress import LogProgress
from ..delivery.send import send_async
from ..delivery.session import when
from ..errors import Busy, ConfigError, DigestError, Problem
from ..state.locks import daemon_lock
from ..state.open import open_state
from ..state.store import DATABASE
from ..util.clock import Clock
from ..util.logs import event
from ..util.loop import run_async
from .schedule import (
    DIGEST_JOB,
    STATE_STORE,
    make_scheduler,
    refresh_trigger,
    schedule_digest,
)
from .watch import Watch, changes, files_watch, posts_watch
from .work import (
    BuildResult,
    build_feeds,
    check_can_send,
    check_subscribers,
    log_sent,
    resume_point,
    shown,
)

if TYPE_CHECKING:
    from ..web.server import Front

log = logging.getLogger("digest.daemon")

REFRESH_JOB, FUTURE_JOB, RETRY_JOB = "refresh", "future-post", "retry"  # not stored
RETRY_CAP = timedelta(hours=1)  # the longest wait between retries (postfix's is 4,000 s)
LOCK_POLL_SECONDS = 1.0
DRAIN_MARGIN_SECONDS = 10.0
WATCH_READY_SECONDS = 30.0  # setting up inotify watches on a huge tree takes a while


def run_daemon(config: Config, clock: Clock) -> int:
    """Hold the daemon lock and run until stopped; the exit status."""
    with daemon_lock(config.state):
        check_can_send(config)
        return run_async(Daemon(config, clock).run())  # uvloop, as `digest send`


@dataclass(frozen=True)
class _Send:
    as_of: datetime | None  # None: only resume what is unfinished
    why: str


class Daemon:
    def __init__(self, config: Config, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.stopping = asyncio.Event()
        self.stop_sending = asyncio.Event()
        self._build_wanted = asyncio.Event()
        self._build_reasons: list[str] = []
        self._sends: asyncio.Queue[_Send] = asyncio.Queue()
        self._busy = {"build": False, "send": False}
        self._known_terms: set[str] = set()
        self._problems: set[str] = set()
        self._next_future: datetime | None = None
        self._reloading = asyncio.Lock()
        self._watchers: dict[str, tuple[Watch, asyncio.Event, asyncio.Task[None]]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._scheduler: Any = None
        self._failed: BaseException | None = None
        self._front: Front | None = None
        self._retries = 0  # retries in a row of a digest left unfinished: sets the backoff

    # life cycle ---------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop, sig.name)
        loop.add_signal_handler(signal.SIGHUP, self._spawn_reload, "SIGHUP")
        if self.clock.shifted:
            log.warning("the clock is shifted for testing: it reads %s",
                        when(self.clock.now(self.config.site.tz)),
                        extra=event("clock.shifted", offset=self.clock.offset.total_seconds()))
        self._note("daemon", {"pid": os.getpid(), "started_at": datetime.now(UTC),
                              "clock_offset_seconds": self.clock.offset.total_seconds()})
        # the first build runs here, before any thread exists: a cold build forks workers
        self._after_build(self._build(self.config, "start-up"))
        await asyncio.to_thread(self._subscribers, self.config)
        self._scheduler = make_scheduler(self.config.state / DATABASE, self._on_job)
        self._scheduler.start(paused=True)  # jobs are put right before any may fire
        self._schedule_refresh()
        self._schedule_future()
        self._schedule_digest()
        if resume_point(self.config):
            self._sends.put_nowait(_Send(None, "unfinished at start-up"))
        self._scheduler.resume()
        workers = {"build": self._task(self._builder()), "send": self._task(self._sender())}
        await self._catch_up(self._restart_watchers())
        await self._start_web()
        self._log_started()
        await self.stopping.wait()
        await self._shut_down(workers)
        return 1 if self._failed is not None else 0

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
        self._build_wanted.set()

    async def _shut_down(self, workers: dict[str, asyncio.Task[None]]) -> None:
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        for _watch, stop, _task in self._watchers.values():
            stop.set()
        smtp = self.config.smtp
        drain = (smtp.timeout if smtp else 0) + DRAIN_MARGIN_SECONDS
        started = time.monotonic()
        busy = {task for name, task in workers.items() if self._busy[name]}
        if busy:  # an idle worker waits for work that will not come: not for it
            await asyncio.wait(busy, timeout=drain)
        if self._busy["send"]:
            log.warning("messages still in flight after %.0f s: abandoned; they stay pending "
                        "and go out after the restart (those the server already took may "
                        "arrive twice)", drain, extra=event("digest.abandoned"))
        pending = {*workers.values(), *(w[2] for w in self._watchers.values()),
                   *self._background}
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._front is not None:
            await self._front.stop()
        await asyncio.sleep(0)  # the scheduler's shutdown is queued on the loop
        log.info("stopped after %.1f s", time.monotonic() - started,
                 extra=event("daemon.stopped"))

    def _task(self, coro: Any) -> asyncio.Task[Any]:
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
        self._failed = error
        self.stop("internal error")

    async def _start_web(self) -> None:
        """Serve the web front in this process; a front that cannot start stops the daemon,
        as the links in digests already sent would otherwise go unanswered unnoticed."""
        web = self.config.web
        if web is None or web.listen is None:
            return  # no front: uvicorn and starlette are not even imported (~40 ms, 5 MB)
        from ..web.server import Front

        try:
            self._front = Front.for_config(self.config, self.clock)
            if self._front is None:
                return
            url = await self._front.start()
        except (OSError, DigestError) as exc:
            log.error("the web front cannot start: %s", exc, extra=event("web.failed"))
            self._front = None
            self._failed = exc
            self.stop("the web front cannot start")
            return
        log.info("web front listening on %s", url, extra=event("web.listening", url=url))
        self._note("web", {"url": url, "base_url": self.config.web and self.config.web.base_url})

    # feeds --------------------------------------------------------------------------------
    def request_build(self, reason: str) -> None:
        if not self.stopping.is_set():
            self._build_reasons.append(reason)
            self._build_wanted.set()

    async def _builder(self) -> None:
        while True:
            await self._build_wanted.wait()
            if self.stopping.is_set():
                return
            self._build_wanted.clear()
            reasons = list(dict.fromkeys(self._build_reasons))
            self._build_reasons.clear()
            self._busy["build"] = True
            try:
                result = await asyncio.to_thread(self._build, self.config, "; ".join(reasons))
            finally:
                self._busy["build"] = False
            self._after_build(result)

    def _build(self, config: Config, reason: str) -> BuildResult | None:
        """One rebuild (in a worker thread, except at start-up), logged and noted."""
        try:
            return build_feeds(config, now=self.clock.now(config.site.tz), reason=reason)
        except Exception as exc:  # the next change or refresh tries again; keep running
            log.error("feeds not rebuilt (%s): %s", reason, exc,
                      exc_info=not isinstance(exc, DigestError | OSError),
                      extra=event("feeds.failed", reason=reason, error=str(exc)))
            return None

    def _after_build(self, result: BuildResult | None) -> None:
        if result is None:
            return
        self._known_terms = set(result.terms)
        for problem in result.problems:
            if problem not in self._problems:  # each once, not at every refresh
                log.warning("problem in posts: %s", problem,
                            extra=event("posts.problem", error=problem))
        self._problems = set(result.problems)
        self._next_future = result.next_future
        self._schedule_future()

    def _schedule_future(self) -> None:
        if self._scheduler is None or self.stopping.is_set():
            return  # the start-up build comes before the scheduler; it calls again
        if self._next_future is None:
            self._remove_job(FUTURE_JOB)
            return
        self._scheduler.add_job(self._future_post_due, DateTrigger(
            run_date=self.clock.real(self._next_future)), id=FUTURE_JOB,
            replace_existing=True, misfire_grace_time=None, coalesce=True)
        log.debug("next future-dated post appears at %s", when(self._next_future))

    async def _future_post_due(self) -> None:
        self.request_build("a future-dated post's time has come")

    async def _refresh_due(self) -> None:
        self.request_build(f"every {self.config.refresh_minutes:g} min")

    def _schedule_refresh(self) -> None:
        self._scheduler.add_job(self._refresh_due, refresh_trigger(self.config),
                                id=REFRESH_JOB, replace_existing=True,
                                misfire_grace_time=None, coalesce=True)

    # the digest ---------------------------------------------------------------------------
    def _schedule_digest(self) -> None:
        schedule_digest(self._scheduler, self.config, self.clock)

    def _next_digest(self) -> datetime | None:
        job = self._scheduler.get_job(DIGEST_JOB, STATE_STORE) if self._scheduler else None
        if job is None or job.next_run_time is None:
            return None
        return self.clock.shown(job.next_run_time, self.config.site.tz)

    def _on_job(self, done: JobExecutionEvent) -> None:
        if done.code == EVENT_JOB_ERROR:
            log.error("scheduled job %s failed: %s", done.job_id, done.exception)
            return
        if done.job_id != DIGEST_JOB:
            return
        tz = self.config.site.tz
        due = self.clock.shown(done.scheduled_run_time, tz)
        if done.code == EVENT_JOB_EXECUTED:
            self._sends.put_nowait(_Send(due, f"due {when(due)}"))
            return
        late = self.clock.now(tz) - due
        upcoming = self._next_digest()
        log.warning("digest due %s was missed by %s, more than digest.grace_hours (%g h): "
                    "skipped; its posts go into the next digest, due %s", when(due),
                    str(late).split(".")[0], self.config.digest.grace_hours,
                    when(upcoming) if upcoming else "never",
                    extra=event("digest.missed", due=due, late_seconds=late.total_seconds(),
                                next=upcoming))

    async def _retry_due(self) -> None:
        self._sends.put_nowait(_Send(None, "retrying what was left unfinished"))

    async def _sender(self) -> None:
        while not self.stopping.is_set():
            item = await self._sends.get()
            if self.stopping.is_set():
                return
            self._busy["send"] = True
            try:
                await self._send(item)
            finally:
                self._busy["send"] = False

    async def _send(self, item: _Send) -> None:
        """One send; whatever it raises is logged, and whatever it leaves unfinished
        (deferred mail, a paused run, a run that failed midway) is retried on a backoff:
        one digest that cannot go out must not stop the feeds and the web front."""
        try:
            await self._send_once(item)
        except Exception as exc:  # e.g. the database: retried below, the daemon goes on
            log.error("digest not sent: %r", exc, exc_info=exc,
                      extra=event("digest.failed", error=repr(exc)))
        if self.stopping.is_set():
            return
        try:
            unfinished = await asyncio.to_thread(resume_point, self.config) is not None
        except Exception as exc:  # the state cannot be read: assume the worst, try later
            log.error("digest: cannot tell what is left to send: %r", exc,
                      extra=event("digest.failed", error=repr(exc)))
            unfinished = True
        if not unfinished:
            self._retries = 0
            return
        self._retries += 1
        delay = retry_delay(self.config, self._retries)
        self._scheduler.add_job(self._retry_due, DateTrigger(
            run_date=datetime.now(UTC) + delay), id=RETRY_JOB, replace_existing=True,
            misfire_grace_time=None)
        log.info("digest: unfinished; trying again in %s (retry %d)", _duration(delay),
                 self._retries, extra=event("digest.retry_scheduled", retry=self._retries,
                                            seconds=delay.total_seconds()))

    async def _send_once(self, item: _Send) -> None:
        config = self.config
        as_of = item.as_of or await asyncio.to_thread(resume_point, config)
        if as_of is None or config.subscribers is None:
            return
        log.info("digest: sending (%s)", item.why, extra=event("digest.started", why=item.why,
                                                              as_of=as_of))
        waiting = False
        while not self.stop_sending.is_set():
            try:
                report = await send_async(config, as_of=as_of, progress=LogProgress(),
                                          stop=self.stop_sending)
            except Busy as exc:
                if not waiting:
                    log.warning("digest: waiting: %s", exc, extra=event("digest.waiting"))
                    waiting = True
                await _sleep(self.stop_sending, LOCK_POLL_SECONDS)
                continue
            except ConfigError as exc:
                self._log_problems("digest not sent", exc.problems, "digest.failed")
            except DigestError as exc:
                log.error("digest not sent: %s", exc, extra=event("digest.failed",
                                                                 error=str(exc)))
            else:
                log_sent(report)
            break

    # reloading ----------------------------------------------------------------------------
    def _spawn_reload(self, why: str) -> None:
        if not self.stopping.is_set():
            self._task(self.reload(why))

    async def reload(self, why: str) -> None:
        """Load the config again; keep the running one if the new one does not load."""
        async with self._reloading:
            old = self.config
            try:
                new = await asyncio.to_thread(load_config, old.path)
                if new.state != old.state:
                    raise ConfigError([Problem(old.path, None, "'state' cannot change while "
                                               "`digest run` runs", "restart it")])
                check_can_send(new)
            except ConfigError as exc:
                self._log_problems(f"config not reloaded ({why}); keeping the running one",
                                   exc.problems, "config.rejected")
                return
            except DigestError as exc:
                log.error("config not reloaded (%s); keeping the running one: %s", why, exc,
                          extra=event("config.rejected", errors=[str(exc)]))
                return
            if new == old:
                log.info("config reloaded (%s): unchanged", why,
                         extra=event("config.reloaded", why=why, changed=False))
            else:
                self.config = new
                log.info("config reloaded (%s)", why,
                         extra=event("config.reloaded", why=why, changed=True))
                self._schedule_refresh()
                self._schedule_digest()
                self._restart_watchers()
                if self._front is not None:
                    self._front.reload(new)
                self.request_build("config reloaded")
            await asyncio.to_thread(self._subscribers, self.config)

    def _subscribers(self, config: Config) -> None:
        """Check the subscribers file (in a worker thread); sends read it again themselves."""
        if config.subscribers is None:
            return
        try:
            self._note("subscribers", check_subscribers(config, self._known_terms))
        except Exception as exc:  # the next edit, reload or send tries again; keep running
            log.error("subscribers not checked: %r", exc, exc_info=exc,
                      extra=event("subscribers.failed", error=repr(exc)))

    async def _catch_up(self, ready: list[asyncio.Event]) -> None:
        """Once the watches are in place, look again at what they watch: a post (or a config
        edit) written between the start-up build and the watch was seen by neither."""
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), WATCH_READY_SECONDS)
        self.request_build("start-up: changes while the watches were set up")
        if await asyncio.to_thread(self._config_changed):
            self._spawn_reload("changed during start-up")

    def _config_changed(self) -> bool:
        try:
            return load_config(self.config.path) != self.config
        except Exception:  # reload() says what is wrong with it
            return True

    def _restart_watchers(self) -> list[asyncio.Event]:
        """Start the watches that changed; the events that say when the new ones are set."""
        ready: list[asyncio.Event] = []
        config = self.config
        files = [p for p in (config.path, config.jekyll_config, config.subscribers) if p]
        for name, watch in (("posts", posts_watch(config.posts)),
                            ("config", files_watch(files))):
            running = self._watchers.get(name)
            if running is not None and running[0] == watch:
                continue
            if running is not None:
                running[1].set()
            stop = asyncio.Event()
            ready.append(asyncio.Event())
            self._watchers[name] = (watch, stop,
                                    self._task(self._watch(name, watch, stop, ready[-1])))
        return ready

    async def _watch(self, name: str, watch: Watch, stop: asyncio.Event,
                     ready: asyncio.Event) -> None:
        async for paths in changes(watch, stop, ready):
            if name == "posts":
                self.request_build(
                    f"changed: {shown([_relative(p, self.config.posts) for p in paths], 5)}")
            elif paths == [self.config.subscribers]:
                log.info("subscribers file changed: checking it",
                         extra=event("subscribers.changed"))
                self._task(asyncio.to_thread(self._subscribers, self.config))
            else:
                self._spawn_reload(f"changed: {', '.join(p.name for p in paths)}")

    # helpers ------------------------------------------------------------------------------
    def _remove_job(self, job_id: str) -> None:
        if self._scheduler.get_job(job_id) is not None:
            self._scheduler.remove_job(job_id)

    def _note(self, key: str, data: dict[str, Any]) -> None:
        state = open_state(self.config)
        try:
            state.note(key, data)
        finally:
            state.close()

    def _log_problems(self, headline: str, problems: list[Problem], name: str) -> None:
        log.error("%s: %s", headline, "; ".join(str(p) for p in problems),
                  extra=event(name, errors=[str(p) for p in problems]))

    def _log_started(self) -> None:
        config = self.config
        upcoming = self._next_digest()
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


def retry_delay(config: Config, retry: int) -> timedelta:
    """How long to wait before the *retry*-th retry of an unfinished digest: smtp.retry_minutes
    doubling each time, up to an hour (or retry_minutes, if that is longer)."""
    minutes: float = (config.smtp or SmtpSettings("", 0)).retry_minutes  # Maildir: defaults
    first = timedelta(minutes=minutes)
    return min(first * (1 << min(retry - 1, 20)), max(RETRY_CAP, first))


def _duration(delay: timedelta) -> str:
    seconds = delay.total_seconds()
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
