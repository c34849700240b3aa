"""The daemon's clock: real time, or real time shifted so that tests can live on a Monday.

`digest run --fake-now T` (or DIGEST_FAKE_NOW=T) starts the clock at T, and it then runs at
real speed. That is the only way time is injected: the feeds, the digest's `as_of` and the
schedule all read this one clock, so a test can start the daemon a few seconds before
"Monday 09:00" in the site's timezone and see the real schedule fire, without waiting and
without a second, test-only schedule syntax. In production the offset is zero.

APScheduler itself keeps real time; the schedule's trigger is shifted instead
(schedule.SiteCron), so what it stores in the state database is real time too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo


@dataclass(frozen=True)
class Clock:
    offset: timedelta = timedelta(0)  # site time minus real time

    @classmethod
    def starting_at(cls, moment: datetime) -> Clock:
        return cls(moment - datetime.now(UTC))

    def now(self, tz: tzinfo) -> datetime:
        return (datetime.now(UTC) + self.offset).astimezone(tz)

    def real(self, moment: datetime) -> datetime:
        """The real instant at which this clock will show *moment*."""
        return moment.astimezone(UTC) - self.offset

    def shown(self, real: datetime, tz: tzinfo) -> datetime:
        """What this clock shows at the real instant *real*."""
        return (real.astimezone(UTC) + self.offset).astimezone(tz)

    @property
    def shifted(self) -> bool:
        return self.offset != timedelta(0)
