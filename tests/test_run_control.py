"""The owner's pause, resume and cancel of a digest run (delivery/control.py): the API the
CLI and the web dashboard share, on a real SQLite state."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import config_of, make_site

from digest.delivery.control import (
    ControlError,
    RunControl,
    cancel_run,
    describe,
    pause_run,
    resume_run,
    run_control,
)
from digest.state.interface import Outcome, Recorded, RunPost, SharedState
from digest.state.open import open_state

START = datetime(2024, 6, 3, tzinfo=UTC)
END = START + timedelta(days=7)
NOW = datetime(2024, 6, 10, 9, 30, tzinfo=UTC)
PEOPLE = (("alice", "alice@example.org"), ("bob", "bob@example.org"))


@pytest.fixture
def state(tmp_path: Path) -> Iterator[SharedState]:
    opened = open_state(config_of(make_site(tmp_path, {})))
    try:
        opened.create_run(slug="2024-06-10", start=START, end=END,
                          posts=[RunPost("urn:a", "a.md", "a|A")], subscribers=PEOPLE)
        yield opened
    finally:
        opened.close()


def test_pause_then_resume_records_who_why_when(state: SharedState) -> None:
    run = pause_run(state, "2024-06-10", reason="moving the server", by="alice", now=NOW)
    assert run.state == "paused"
    assert run_control(state, "2024-06-10") == RunControl(
        "paused", True, "moving the server", "alice", NOW, "pause")
    control = run_control(state, "2024-06-10")
    assert control is not None
    assert describe(control) == "by alice at 2024-06-10 09:30 UTC: moving the server"
    later = NOW + timedelta(hours=2)
    run = resume_run(state, "2024-06-10", reason="", by="bob", now=later)
    assert run.state == "sending"
    assert run_control(state, "2024-06-10") == RunControl("sending", False, "", "bob", later,
                                                          "resume")


def test_cancel_closes_everyone_left(state: SharedState) -> None:
    run = state.find_run("2024-06-10")
    assert run is not None
    state.record_many(run, [Recorded(Outcome("alice", "sent", 250, "ok", 1), "<m>", 1)])
    run = cancel_run(state, "2024-06-10", reason="wrong posts", by="alice", now=NOW)
    assert run.state == "cancelled" and state.counts(run) == {"sent": 1, "cancelled": 1}


@pytest.mark.parametrize(("first", "then", "says"), [
    (None, "resume", "is not paused (it is sending)"),
    ("pause", "pause", "already paused by the owner (by alice at 2024-06-10 09:30 UTC: x)"),
    ("cancel", "pause", "was cancelled (by alice at 2024-06-10 09:30 UTC: x); it cannot be "
                        "paused"),
    ("cancel", "resume", "cannot be resumed"),
    ("cancel", "cancel", "cannot be cancelled again"),
])
def test_what_cannot_be_done_says_why_and_changes_nothing(
        state: SharedState, first: str | None, then: str, says: str) -> None:
    actions = {"pause": pause_run, "resume": resume_run, "cancel": cancel_run}
    if first is not None:
        actions[first](state, "2024-06-10", reason="x", by="alice", now=NOW)
    before = run_control(state, "2024-06-10")
    with pytest.raises(ControlError, match="digest 2024-06-10 ") as raised:
        actions[then](state, "2024-06-10", reason="y", by="bob", now=NOW)
    assert says in str(raised.value)
    assert run_control(state, "2024-06-10") == before


def test_a_done_run_and_an_unknown_one_are_refused(state: SharedState) -> None:
    with pytest.raises(ControlError, match=r"no digest '2099-01-01' \(the latest: 2024-06-10\)"):
        pause_run(state, "2099-01-01", reason="x", by="alice", now=NOW)
    assert run_control(state, "2099-01-01") is None
    run = state.find_run("2024-06-10")
    assert run is not None
    state.record_many(run, [Recorded(Outcome(key, "sent", 250, "ok", 1), "<m>", 1)
                            for key, _ in PEOPLE])
    state.end_serving(run, left=False)
    for act in (pause_run, cancel_run):
        with pytest.raises(ControlError, match="already done: everyone was served"):
            act(state, "2024-06-10", reason="x", by="alice", now=NOW)


def test_reasons_are_required_bounded_and_one_line(state: SharedState) -> None:
    with pytest.raises(ControlError, match="give a reason"):
        pause_run(state, "2024-06-10", reason="  ", by="alice", now=NOW)
    with pytest.raises(ControlError, match="the reason is 501 characters long; at most 500"):
        cancel_run(state, "2024-06-10", reason="x" * 501, by="alice", now=NOW)
    pause_run(state, "2024-06-10", reason="two\nlines\x1b[31m", by="eve\r\nX-Bad: 1", now=NOW)
    control = run_control(state, "2024-06-10")
    assert control is not None
    assert (control.reason, control.by) == ("two lines [31m", "eve X-Bad: 1")
