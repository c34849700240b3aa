"""feedback/apply.py's rules on a real state database: what suppresses at once, what only
after several digests in a row, what is recorded once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import config_of, make_site

from digest.feedback.apply import apply, from_runs
from digest.feedback.events import Feedback
from digest.state.interface import Outcome, Recorded, Run, SharedState
from digest.state.open import open_state

T0 = datetime(2024, 6, 3, 9, tzinfo=UTC)
ANA = "ana@example.org"


@pytest.fixture
def state(tmp_path: Path) -> Iterator[SharedState]:
    opened = open_state(config_of(make_site(tmp_path, {})))
    try:
        yield opened
    finally:
        opened.close()


def _runs(state: SharedState, weeks: int, outcome: Outcome | None = None) -> list[Run]:
    made = []
    for week in range(weeks):
        end = T0 + timedelta(days=7 * (week + 1))
        run = state.create_run(slug=f"w{week}", start=end - timedelta(days=7), end=end,
                               posts=[], subscribers=[(ANA, ANA)])
        state.record_many(run, [Recorded(outcome or Outcome(ANA, "sent", 250, "ok", 1),
                                         f"<m{week}>", 1)])
        made.append(run)
    return made


@pytest.mark.parametrize("kind", ["hard", "complaint", "unsubscribe"])
def test_hard_bounces_complaints_and_replies_suppress_at_once(state: SharedState,
                                                               kind: str) -> None:
    done = apply(state, [Feedback(kind, "Ana@Example.org", "dsn", "r1", "5.1.1",  # type: ignore[arg-type]
                                  "user unknown")], soft_limit=3, now=T0)
    found = state.suppression(ANA)
    assert found is not None and done.suppressed == [(ANA, found.reason)]
    assert "5.1.1" in found.evidence or kind != "hard"


def test_the_same_report_twice_counts_once(state: SharedState) -> None:
    report = Feedback("soft", ANA, "dsn", "r1", "4.2.2", "mailbox full", run="w0")
    first = apply(state, [report], soft_limit=3, now=T0)
    again = apply(state, [report], soft_limit=3, now=T0)
    assert first.recorded == {"soft": 1} and again.recorded == {} and again.repeated == 1
    assert len(state.bounces(ANA)) == 1


def test_soft_bounces_suppress_only_after_n_digests_in_a_row(state: SharedState) -> None:
    _runs(state, 3)
    soft = [Feedback("soft", ANA, "dsn", f"r{i}", "4.2.2", "full", run=f"w{i}")
            for i in range(3)]
    assert not apply(state, soft[:2], soft_limit=3, now=T0).suppressed
    assert not state.is_suppressed(ANA)
    assert apply(state, soft[2:], soft_limit=3, now=T0).suppressed
    assert state.is_suppressed(ANA)


def test_a_good_week_between_soft_bounces_breaks_the_row(state: SharedState) -> None:
    _runs(state, 3)
    apply(state, [Feedback("soft", ANA, "dsn", f"r{i}", "4.2.2", "full", run=f"w{i}")
                  for i in (0, 2)], soft_limit=2, now=T0)
    assert not state.is_suppressed(ANA)  # w1 went through


def test_a_5xx_at_smtp_time_is_a_hard_bounce_but_a_policy_block_is_not(
        state: SharedState) -> None:
    runs = _runs(state, 1, Outcome(ANA, "failed", 550, "5.1.1 no such user", 1))
    first = from_runs(state, runs, soft_limit=3, now=T0)
    assert first.recorded == {"hard": 1} and state.is_suppressed(ANA)
    assert from_runs(state, runs, soft_limit=3, now=T0).repeated == 1
    state.unsuppress(ANA)
    other = state.create_run(slug="blocked", start=T0 + timedelta(days=30),
                             end=T0 + timedelta(days=37), posts=[], subscribers=[(ANA, ANA)])
    state.record_many(other, [Recorded(Outcome(ANA, "failed", 550,
                                               "5.7.1 low reputation, blocked", 1), "<b>", 1)])
    assert from_runs(state, [other], soft_limit=3, now=T0).recorded == {"soft": 1}
    assert not state.is_suppressed(ANA)


@pytest.mark.parametrize(("code", "reply", "kind"), [
    (552, "5.2.2 mailbox full", "soft"),
    (550, "Requested action not taken: mailbox is full", "soft"),
    (554, "5.7.1 Service unavailable; client host blocked", "soft"),
    (550, "5.1.1 The email account does not exist", "hard"),
    (554, "transaction failed", "hard"),
])
def test_a_reply_at_smtp_time_is_classed_as_the_same_words_in_a_dsn(
        state: SharedState, code: int, reply: str, kind: str) -> None:
    """One rule for both: a full mailbox refused at SMTP time is no more dead than one a
    DSN reports full."""
    from digest.feedback.classify import _dsn_kind

    runs = _runs(state, 1, Outcome(ANA, "failed", code, reply, 1))
    assert from_runs(state, runs, soft_limit=3, now=T0).recorded == {kind: 1}
    status = reply.split()[0] if reply[0].isdigit() else ""
    assert _dsn_kind(status, f"smtp; {code} {reply}") == kind


def test_members_join_the_file_once_and_the_file_wins(tmp_path: Path) -> None:
    from digest.state.interface import Member
    from digest.subscribers.current import read_subscribers

    (tmp_path / "subscribers.yaml").write_text(
        "- email: Ana@example.org\n  name: Ana Owner\n  tags: [union]\n")
    config = config_of(make_site(tmp_path, {}, extra={"subscribers": "subscribers.yaml"}))
    state = open_state(config)
    try:
        state.put_member(Member(ANA, ANA, "Ana Signup", None, "signup", T0))
        state.put_member(Member("ben@example.net", "ben@example.net", None, ("data",),
                                "import", T0))
        found = read_subscribers(config, state, {"union", "data"})
    finally:
        state.close()
    assert [(s.email, s.name, s.tags) for s in found.subscribers] == [
        ("Ana@example.org", "Ana Owner", ("union",)), ("ben@example.net", None, ("data",))]
