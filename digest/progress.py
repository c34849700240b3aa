"""How `digest send` shows progress: a rich bar with rate and ETA on a terminal, log lines
(one per 10 %, and per failure) when output goes to a file or a journal."""

from __future__ import annotations

import logging
import sys
import time

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from .delivery import Outcome
from .sendlog import Run

log = logging.getLogger("digest.send")


class BarProgress:
    def __init__(self) -> None:
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
    def __init__(self) -> None:
        self.total = self.done = 0
        self.next_mark = 0
        self.started = 0.0
        self.slug = ""

    def start(self, run: Run, total: int) -> None:
        self.total, self.done, self.slug = total, 0, run.slug
        self.next_mark = max(1, total // 10)
        self.started = time.monotonic()
        log.info("digest %s: %d messages to send", run.slug, total)

    def advance(self, outcome: Outcome) -> None:
        self.done += 1
        if outcome.status != "sent":
            log.warning("digest %s: %s %s: %s %s", self.slug, outcome.status, outcome.key,
                        outcome.code or "", outcome.reply)
        if self.done >= self.next_mark:
            rate = self.done / max(time.monotonic() - self.started, 1e-6)
            log.info("digest %s: %d/%d sent or closed, %.0f msg/s", self.slug, self.done,
                     self.total, rate)
            self.next_mark += max(1, self.total // 10)

    def finish(self) -> None:
        pass


def make_progress() -> BarProgress | LogProgress:
    return BarProgress() if sys.stderr.isatty() else LogProgress()
