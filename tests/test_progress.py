"""`digest send` progress where no one watches a bar (a file, a pipe, the journal): a few
lines that say how far it got, never one per message."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime

import pytest

from digest.delivery.progress import BarProgress, LogProgress, make_progress
from digest.delivery.transport import Outcome
from digest.state.sendlog import Run

RUN = Run(1, "2024-06-10", datetime(2024, 6, 3, tzinfo=UTC), datetime(2024, 6, 10, tzinfo=UTC),
          datetime(2024, 6, 10, tzinfo=UTC), "sending")


class Ticking:
    """A monotonic clock that the test moves on by `step` seconds per message."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        return self.now


def _send(progress: LogProgress, clock: Ticking, total: int, status: str = "sent") -> None:
    progress.start(RUN, total)
    for n in range(total):
        clock.now += clock.step
        progress.advance(Outcome(f"user{n}@example.org", status, None, "451 later", 1))  # type: ignore[arg-type]
    progress.finish()


def _lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "digest.delivery.progress" and r.levelno == level]


def test_output_that_is_not_a_terminal_gets_log_lines_not_a_bar() -> None:
    assert isinstance(make_progress(io.StringIO()), LogProgress)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(make_progress(Terminal()), BarProgress)


def test_a_fast_run_logs_one_progress_line_per_tenth(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="digest.delivery.progress")
    clock = Ticking(0.0001)
    _send(LogProgress(clock=clock), clock, 10_000)
    progress = [line for line in _lines(caplog, logging.INFO) if "sent or closed" in line]
    assert len(progress) == 10
    assert progress[-1].startswith("digest 2024-06-10: 10000/10000 sent or closed")


def test_a_slow_run_logs_a_line_every_five_seconds_not_every_message(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="digest.delivery.progress")
    clock = Ticking(1.0)  # 100 messages over 100 s: a tenth takes 10 s
    _send(LogProgress(clock=clock), clock, 100)
    progress = [line for line in _lines(caplog, logging.INFO) if "sent or closed" in line]
    assert 20 <= len(progress) <= 21  # one per 5 s; the tenths fall on the same ticks


def test_many_failures_are_named_a_few_times_then_counted(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="digest.delivery.progress")
    clock = Ticking(0.0001)
    _send(LogProgress(clock=clock), clock, 5_000, status="deferred")
    assert len(_lines(caplog, logging.WARNING)) == 11  # ten named, then one "only counted"
    progress = [line for line in _lines(caplog, logging.INFO) if "sent or closed" in line]
    assert len(progress) == 10
    assert "(5000 not sent)" in progress[-1]
