"""How `digest send` shows progress: a rich bar with rate and ETA on a terminal, log lines
(at most one per 10 % or per 5 s, and the first failures) when output goes to a file or a
journal, where a line per message would bury everything else."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from ..state.sendlog import Run
from .transport import Outcome

if TYPE_CHECKING:
    from rich.progress import TaskID

log = logging.getLogger(__name__)


class BarProgress:
    def __init__(self) -> None:
        # rich only for a terminal: its import is 23 ms of every sender's start
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[rate]:>7.0f} msg/s"), TimeRemainingColumn(),
                            TextColumn("{task.fields[failed]} failed"), transient=False)
        self.task: TaskID | None = None
        self.started = 0.0
        self.done = 0
        self.failed = 0

    def start(self, run: Run, total: int) -> None:
        self.bar.start()
        self.started, self.done, self.failed = time.monotonic(), 0, 0
        self.task = self.bar.add_task(f"digest {run.slug}", total=total, rate=0.0, failed=0)

    def advance(self, outcome: Outcome) -> None:
        assert self.task is not None
        self.done += 1
        self.failed += outcome.status != "sent"
        rate = self.done / max(time.monotonic() - self.started, 1e-6)
        self.bar.update(self.task, advance=1, rate=rate, failed=self.failed)

    def finish(self) -> None:
        self.bar.stop()


class LogProgress:
    """Progress as log lines: one each time another tenth is done, or after `every` seconds
    without one (so a slow run still shows it is alive), never one per message. Failures are
    named one by one only up to `named`; beyond that the progress lines count them."""

    def __init__(self, *, every: float = 5.0, named: int = 10,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every, self.named, self.clock = every, named, clock
        self.total = self.done = self.failed = 0
        self.next_mark = 0
        self.started = self.last_line = 0.0
        self.slug = ""

    def start(self, run: Run, total: int) -> None:
        self.total, self.done, self.failed, self.slug = total, 0, 0, run.slug
        self.next_mark = self._mark(1)
        self.started = self.last_line = self.clock()
        log.info("digest %s: %d messages to send", run.slug, total)

    def _mark(self, tenth: int) -> int:
        return -(-self.total * tenth // 10)  # the count at which *tenth* tenths are done

    def advance(self, outcome: Outcome) -> None:
        self.done += 1
        if outcome.status != "sent":
            self.failed += 1
            if self.failed <= self.named:
                log.warning("digest %s: %s %s: %s %s", self.slug, outcome.status, outcome.key,
                            outcome.code or "", outcome.reply)
            if self.failed == self.named:
                log.warning("digest %s: further failures are only counted here", self.slug)
        now = self.clock()
        if self.done < self.next_mark and now - self.last_line < self.every:
            return
        self.next_mark = self._mark(10 * self.done // max(self.total, 1) + 1)
        self.last_line = now
        rate = self.done / max(now - self.started, 1e-6)
        log.info("digest %s: %d/%d sent or closed (%d not sent), %.0f msg/s", self.slug,
                 self.done, self.total, self.failed, rate)

    def finish(self) -> None:
        pass


def make_progress(stream: TextIO | None = None) -> BarProgress | LogProgress:
    """A bar where *stream* (stderr by default) is a terminal, else log lines."""
    return BarProgress() if (stream or sys.stderr).isatty() else LogProgress()
