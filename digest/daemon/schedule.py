"""When the weekly digest is due: `digest.schedule` (a crontab line) in the site's timezone.

The digest job lives in APScheduler's job store in the state database, so its next run time
survives restarts: a run that fell due while the daemon was down is still there at start-up,
where APScheduler sends it (once, however many weeks were missed: coalesce) if it is less than
`digest.grace_hours` late, and otherwise skips it. The stored job runs `digest_due`, which
does nothing: the daemon listens for the job having fired and does the sending itself, so
nothing but a name and a trigger is ever pickled into the database.

CronTrigger does the calendar work (DST included: 09:00 stays 09:00 local on both sides of a
change); SiteCron only wraps it to read it on the daemon's clock (see util/clock.py), and to
remember the line it came from, so the daemon can tell whether the config changed it.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import (  # type: ignore[import-untyped]
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
)
from apscheduler.jobstores.memory import MemoryJobStore  # type: ignore[import-untyped]
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore  # type: ignore[import-untyped]
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.base import BaseTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]

from ..config import Config
from ..util.clock import Clock

# The pickled name and trigger name this module: a job stored before the stages became
# packages names it digest.schedule, and an existing state database must still restore it
# (else the daemon cannot start, and a digest missed while it was down is lost). Kept for
# as long as such a job may be stored: a job keeps the function name it was added with.
sys.modules.setdefault("digest.schedule", sys.modules[__name__])

DIGEST_JOB = "digest"
STATE_STORE = "state"  # the job store in the state database; the others are in memory


async def digest_due() -> None:
    """What the stored digest job runs: nothing (see the module docstring)."""


class SiteCron(BaseTrigger):  # type: ignore[misc]
    """A crontab line in a timezone, read on a clock that may be shifted from real time."""

    def __init__(self, expression: str, timezone: str, offset: timedelta = timedelta(0)) -> None:
        self.expression = expression
        self.timezone = timezone
        self.offset = offset
        self._cron = CronTrigger.from_crontab(expression, timezone=ZoneInfo(timezone))

    @classmethod
    def on(cls, clock: Clock, expression: str, timezone: str) -> SiteCron:
        return cls(expression, timezone, clock.offset)

    def get_next_fire_time(self, previous_fire_time: datetime | None,
                           now: datetime) -> datetime | None:
        # in UTC: shifting a local time by a timedelta would ignore the DST changes between
        shown_previous = previous_fire_time.astimezone(UTC) + self.offset \
            if previous_fire_time is not None else None
        shown = self._cron.get_next_fire_time(shown_previous, now.astimezone(UTC) + self.offset)
        return None if shown is None else shown.astimezone(UTC) - self.offset

    def same_schedule(self, other: object) -> bool:
        return isinstance(other, SiteCron) and (other.expression, other.timezone) == (
            self.expression, self.timezone)

    def __getstate__(self) -> dict[str, Any]:
        return {"version": 1, "expression": self.expression, "timezone": self.timezone,
                "offset": self.offset.total_seconds()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.expression, self.timezone = state["expression"], state["timezone"]
        self.offset = timedelta(seconds=state["offset"])
        self._cron = CronTrigger.from_crontab(self.expression, timezone=ZoneInfo(self.timezone))

    def __eq__(self, other: object) -> bool:
        return self.same_schedule(other) and isinstance(other, SiteCron) \
            and other.offset == self.offset

    def __hash__(self) -> int:
        return hash((self.expression, self.timezone, self.offset))

    def __str__(self) -> str:
        return f"'{self.expression}' ({self.timezone})"

    def __repr__(self) -> str:
        return f"SiteCron({self.expression!r}, {self.timezone!r}, {self.offset!r})"


def kept_due(stored: object, stored_next: datetime | None, wanted: SiteCron,
             now: datetime) -> datetime | None:
    """The due time (real) to keep for a stored digest job now given the *wanted* trigger;
    None: compute it afresh from now.

    The same schedule keeps its due time, even one that has passed: that is a digest missed
    while the daemon was down, for the grace period to decide about. (Re-adding the job with
    replace_existing would compute it afresh and silently drop it.) A changed schedule keeps
    only a passed due time. A clock shifted differently (tests) keeps the time it shows.
    """
    if stored_next is None or not isinstance(stored, SiteCron):
        return None
    due = stored_next.astimezone(UTC) + stored.offset - wanted.offset
    if stored.same_schedule(wanted) or due <= now:
        return due
    return None


def make_scheduler(url: str, listener: Callable[[Any], None]) -> Any:
    """An AsyncIOScheduler with the digest's job store at the SQLAlchemy *url* (from
    state/open.py schedule_store_url: beside our own tables, SQLite or PostgreSQL, where it
    adds one, `apscheduler_jobs`) and *listener* told of every job run or missed."""
    # how long to wait: for SQLite, another writer's lock; for PostgreSQL, the server, and
    # a pooled connection is checked first (the server may have restarted since)
    options: dict[str, Any] = {"connect_args": {"timeout": 30}}
    if url.startswith("postgresql"):
        options = {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    stored = SQLAlchemyJobStore(url=url, engine_options=options)
    scheduler = AsyncIOScheduler(jobstores={"default": MemoryJobStore(), STATE_STORE: stored},
                                 timezone=UTC)
    scheduler.add_listener(listener, EVENT_JOB_EXECUTED | EVENT_JOB_MISSED | EVENT_JOB_ERROR)
    return scheduler


def schedule_digest(scheduler: Any, config: Config, clock: Clock) -> None:
    """Put the digest job in the job store (or take it out when there are no subscribers)."""
    store, job_id = STATE_STORE, DIGEST_JOB
    job = scheduler.get_job(job_id, store)
    if config.subscribers is None:
        if job is not None:
            scheduler.remove_job(job_id, store)
        return
    trigger = SiteCron.on(clock, config.digest.schedule, config.site.timezone)
    options = digest_job_options(config)
    if job is None:
        scheduler.add_job(digest_due, trigger, id=job_id, jobstore=store,
                          replace_existing=True, **options)
        return
    now = datetime.now(UTC)
    due = kept_due(job.trigger, job.next_run_time, trigger, now) \
        or trigger.get_next_fire_time(None, now)
    scheduler.modify_job(job_id, store, trigger=trigger, next_run_time=due, **options)


def digest_job_options(config: Config) -> dict[str, Any]:
    """How APScheduler is to treat the digest job: once however late, within the grace."""
    # APScheduler 3 takes only a positive int here (24.0 h → 86400.0 s is a TypeError at
    # add_job); 0 would count a run a few milliseconds late as missed, so at least a second
    grace = max(math.ceil(config.digest.grace_hours * 3600), 1)
    return {"name": "weekly digest", "coalesce": True, "max_instances": 1,
            "misfire_grace_time": grace}


def refresh_trigger(config: Config) -> IntervalTrigger:
    """Every `feeds.refresh_minutes`, whole seconds or fractions alike."""
    return IntervalTrigger(seconds=float(config.refresh_minutes) * 60)


def next_times(expression: str, timezone: str, after: datetime, count: int) -> list[datetime]:
    """The next *count* times the line fires after *after*, in the site's timezone."""
    cron = CronTrigger.from_crontab(expression, timezone=ZoneInfo(timezone))
    out: list[datetime] = []
    previous = None
    for _ in range(count):
        fire = cron.get_next_fire_time(previous, after if previous is None else previous)
        if fire is None:
            break
        out.append(fire)
        previous = fire
    return out
