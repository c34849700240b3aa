"""The SharedState contract for the list beside the YAML (state/lists.py): members, sign-ups
waiting, rate-limit counters, suppressions with evidence, bounces, who got what. Run over the
same implementations as test_state_contract.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import config_of, make_site

from digest.state.interface import Bounce, Member, Outcome, Pending, Recorded, SharedState
from digest.state.open import open_state

T0 = datetime(2024, 6, 3, 9, tzinfo=UTC)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[SharedState]:
    opened = open_state(config_of(make_site(tmp_path, {})))
    try:
        yield opened
    finally:
        opened.close()


def _member(key: str = "ana@example.org", **kw: object) -> Member:
    values: dict[str, object] = dict(key=key, email=key, name="Ana", tags=("union",),
                                     source="signup", since=T0)
    values.update(kw)
    return Member(**values)  # type: ignore[arg-type]


def test_members_are_added_updated_and_kept_in_order(state: SharedState) -> None:
    assert state.put_member(_member()) == "new"
    assert state.put_member(_member()) == "same"
    assert state.put_member(_member(tags=None, since=T0 + timedelta(days=1))) == "updated"
    assert state.put_member(_member("ben@example.net", source="import",
                                    since=T0 + timedelta(hours=1))) == "new"
    ana = state.member("ana@example.org")
    assert ana is not None and ana.tags is None and ana.since == T0  # first time kept
    assert [m.key for m in state.members()] == ["ana@example.org", "ben@example.net"]
    assert [m.key for m in state.members("import")] == ["ben@example.net"]
    assert state.remove_member("ana@example.org") and not state.remove_member("ana@example.org")
    assert state.member("ana@example.org") is None


def test_a_pending_sign_up_is_taken_once(state: SharedState) -> None:
    state.save_pending(Pending("ana@example.org", "Ana@example.org", None, ("union",), T0))
    state.save_pending(Pending("ana@example.org", "Ana@example.org", "Ana", None,
                               T0 + timedelta(hours=1)))  # a second request replaces it
    assert state.pending_count() == 1
    assert state.pending_count(T0 + timedelta(hours=2)) == 0
    taken = state.take_pending("ana@example.org")
    assert taken is not None and taken.name == "Ana" and taken.tags is None
    assert taken.requested_at == T0 + timedelta(hours=1)
    assert state.take_pending("ana@example.org") is None


def test_old_pending_sign_ups_are_dropped(state: SharedState) -> None:
    state.save_pending(Pending("a@example.org", "a@example.org", None, None, T0))
    state.save_pending(Pending("b@example.org", "b@example.org", None, None,
                               T0 + timedelta(days=3)))
    assert state.drop_pending(T0 + timedelta(days=2)) == 1
    assert state.pending("a@example.org") is None and state.pending("b@example.org")


def test_hits_are_limited_per_bucket_and_window(state: SharedState) -> None:
    assert [state.hit("ip:1", 2, 3600, T0 + timedelta(seconds=i)) for i in range(3)] == \
        [True, True, False]
    assert state.hit("ip:2", 2, 3600, T0)  # another bucket counts apart
    assert state.hit("ip:1", 2, 3600, T0 + timedelta(seconds=3601))  # the first has aged out


def test_suppression_keeps_reason_and_evidence(state: SharedState) -> None:
    assert state.suppress_with("ana@example.org", "hard bounce", "5.1.1 user unknown")
    assert not state.suppress_with("ana@example.org", "complaint")  # the first reason stays
    assert state.suppress("ben@example.net", "digest unsubscribe")
    found = state.suppression("ana@example.org")
    assert found is not None and (found.reason, found.evidence) == \
        ("hard bounce", "5.1.1 user unknown")
    assert state.suppression("ben@example.net").evidence == ""  # type: ignore[union-attr]
    assert state.suppression("cy@example.com") is None
    assert {s.key for s in state.suppressions()} == {"ana@example.org", "ben@example.net"}
    assert state.is_suppressed("ana@example.org")


def test_bounces_are_recorded_once_per_ident(state: SharedState) -> None:
    first = Bounce("ana@example.org", "soft", T0, "dsn", "<r1@mx>|ana", "4.2.2", "full",
                   "2024-06-10", "Status: 4.2.2")
    assert state.record_bounce(first) and not state.record_bounce(first)
    state.record_bounce(Bounce("ana@example.org", "hard", T0 + timedelta(days=7), "smtp",
                               "smtp|2024-06-17|ana", "5.1.1", "no such user"))
    state.record_bounce(Bounce("ben@example.net", "complaint", T0, "arf", "<r2@mx>|ben"))
    assert [b.kind for b in state.bounces("ana@example.org")] == ["hard", "soft"]
    assert state.bounces("ana@example.org")[1] == first
    assert len(state.bounces()) == 3
    assert [b.key for b in state.bounces(since=T0 + timedelta(days=1))] == ["ana@example.org"]


def test_deliveries_of_a_run_and_of_a_subscriber(state: SharedState) -> None:
    runs = []
    for week in range(2):
        end = T0 + timedelta(days=7 * (week + 1))
        run = state.create_run(slug=f"w{week}", start=end - timedelta(days=7), end=end,
                               posts=[], subscribers=[("ana", "ana@example.org"),
                                                      ("ben", "ben@example.net")])
        state.record_many(run, [
            Recorded(Outcome("ana", "sent", 250, "ok", 1), f"<m{week}>", 2),
            Recorded(Outcome("ben", "failed", 550, "no such user", 1), f"<n{week}>", 2)])
        runs.append(run)
    assert [(d.key, d.state) for d in state.deliveries(runs[0])] == \
        [("ana", "sent"), ("ben", "failed")]
    failed = state.deliveries(runs[1], failed=True)
    assert [(d.run, d.key, d.code, d.reply) for d in failed] == \
        [("w1", "ben", 550, "no such user")]
    assert [d.run for d in state.deliveries_of("ana")] == ["w1", "w0"]
    assert [d.run for d in state.deliveries_of("ana", limit=1)] == ["w1"]
    assert state.deliveries_of("nobody") == []
