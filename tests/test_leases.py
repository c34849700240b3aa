"""Leased batches of deliveries (state/interface.py: claim, renew, release, leases) and the
nodes' heartbeats, against the SharedState: each test takes a `state` fixture (and the
cross-process ones the site's `config_path`), so a PostgreSQL implementation is one more
entry in conftest.STORES, as in test_state_contract.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import PROJECT, STORES, config_of, make_site, store_config

from digest.delivery.nodes import LeaseClock
from digest.state.interface import Node, Outcome, Recorded, Run, RunAction, RunPost, SharedState
from digest.state.open import open_state
from digest.state.postgres import PostgresState
from digest.state.sqlite import SqliteState

START = datetime(2024, 6, 3, tzinfo=UTC)
END = START + timedelta(days=7)
POSTS = (RunPost("urn:a", "a.md", "a|A"),)
LONG = 60.0  # a lease that does not run out during a test


@pytest.fixture(params=STORES)
def config_path(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return make_site(tmp_path, {}, extra=store_config(request.param, request))


@pytest.fixture
def state(config_path: Path) -> Iterator[SharedState]:
    found = open_state(config_of(config_path))
    try:
        yield found
    finally:
        found.close()


def _run(state: SharedState, n: int = 10) -> Run:
    return state.create_run(slug="2024-06-10", start=START, end=END, posts=POSTS,
                            subscribers=[(f"u{i:03}", f"u{i:03}@example.org")
                                         for i in range(n)])


def _sent(key: str, status: str = "sent") -> Recorded:
    return Recorded(Outcome(key, status, 250, "250 ok", 1), f"<{key}@test>", 1)  # type: ignore[arg-type]


def _keys(rows: list[tuple[str, str, int]]) -> list[str]:
    return [key for key, _email, _attempts in rows]


def test_claims_hand_out_batches_in_order_and_never_the_same_row_twice(
        state: SharedState) -> None:
    run = _run(state, 10)
    a = state.claim(run, "a", 4, LONG)
    b = state.claim(run, "b", 4, LONG)
    c = state.claim(run, "c", 4, LONG)
    assert _keys(a) == [f"u{i:03}" for i in range(4)]
    assert a[0] == ("u000", "u000@example.org", 0)
    assert _keys(b) == [f"u{i:03}" for i in range(4, 8)]
    assert _keys(c) == ["u008", "u009"]
    assert state.claim(run, "d", 4, LONG) == []  # everything is leased
    assert state.leases(run) == {"a": 4, "b": 4, "c": 2}


def test_recording_clears_the_lease_and_the_row_is_never_claimed_again(
        state: SharedState) -> None:
    run = _run(state, 3)
    rows = state.claim(run, "a", 3, LONG)
    state.record_many(run, [_sent(key) for key in _keys(rows)[:2]])
    state.mark(run, [(_keys(rows)[2], "empty", 0)])
    assert state.leases(run) == {}
    assert state.claim(run, "b", 10, LONG) == []
    assert state.counts(run) == {"sent": 2, "empty": 1}


def test_an_expired_lease_lets_another_node_take_the_rows(state: SharedState) -> None:
    run = _run(state, 3)
    assert len(state.claim(run, "a", 3, 0.3)) == 3
    assert state.claim(run, "b", 3, LONG) == []
    time.sleep(0.4)  # a stops beating: killed, or its machine lost
    assert state.leases(run) == {}  # an expired lease is nobody's
    assert _keys(state.claim(run, "b", 3, LONG)) == ["u000", "u001", "u002"]
    assert state.leases(run) == {"b": 3}
    assert state.renew(run, "a", LONG) == 0  # a, come back, holds nothing any more


def test_kept_names_the_rows_still_held_and_renews_them(state: SharedState) -> None:
    """A node whose leases lapsed asks which rows are still its own: not those another took
    meanwhile, nor those served; the ones it names are its own again for a new lease."""
    run = _run(state, 4)
    assert _keys(state.claim(run, "a", 4, 0.3)) == ["u000", "u001", "u002", "u003"]
    state.record_many(run, [_sent("u000")])
    time.sleep(0.4)  # a paused past its lease
    assert _keys(state.claim(run, "b", 2, LONG)) == ["u001", "u002"]
    assert state.kept(run, "a", LONG) == {"u003"}
    assert state.claim(run, "c", 4, LONG) == []  # u003 is a's again
    assert state.leases(run) == {"a": 1, "b": 2}
    assert state.kept(run, "nobody", LONG) == frozenset()


def test_renewing_keeps_the_rows_past_the_first_expiry(state: SharedState) -> None:
    run = _run(state, 2)
    state.claim(run, "a", 2, 0.4)
    for _ in range(4):
        time.sleep(0.2)
        assert state.renew(run, "a", 0.4) == 2
        assert state.claim(run, "b", 2, LONG) == []
    assert state.leases(run) == {"a": 2}


def test_release_frees_only_the_releasing_nodes_unserved_rows(state: SharedState) -> None:
    run = _run(state, 4)
    a = state.claim(run, "a", 2, LONG)
    state.claim(run, "b", 2, LONG)
    state.record_many(run, [_sent(_keys(a)[0])])
    assert state.release(run, "a") == 1
    assert state.leases(run) == {"b": 2}
    assert _keys(state.claim(run, "c", 10, LONG)) == [_keys(a)[1]]


def test_deferred_by_this_send_are_not_claimed_again_by_it(state: SharedState) -> None:
    run = _run(state, 2)
    before = datetime.now(UTC)
    rows = state.claim(run, "a", 2, LONG)
    state.record_many(run, [_sent(_keys(rows)[0], "deferred")])
    # a, which started before that deferral, leaves it to a later send
    assert _keys(state.claim(run, "a", 10, LONG, since=before)) == []
    # a send started after it retries it, with its attempts so far
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert state.claim(run, "b", 10, LONG, since=later) == [("u000", "u000@example.org", 1)]


def test_cancel_clears_leases_and_nothing_is_claimable(state: SharedState) -> None:
    run = _run(state, 3)
    state.claim(run, "a", 2, LONG)
    assert state.control(run, RunAction("cancel", "owner", "wrong posts", datetime.now(UTC)))
    assert state.leases(run) == {}
    assert state.claim(run, "b", 10, LONG) == []
    assert state.counts(run) == {"cancelled": 3}


def test_a_run_is_not_ended_while_another_node_holds_live_leases(state: SharedState) -> None:
    run = _run(state, 2)
    state.claim(run, "b", 1, LONG)
    assert state.end_serving(run, left=True) == "sending"  # b is still at it
    state.release(run, "b")
    rows = state.claim(run, "a", 10, LONG)
    state.record_many(run, [_sent(key) for key in _keys(rows)])
    assert state.end_serving(run, left=False) == "done"


def test_heartbeats_are_kept_replaced_left_and_pruned(state: SharedState) -> None:
    now = datetime.now(UTC)
    old = now - timedelta(days=2)
    state.beat(Node("host:1", "send", now, now, "2024-06-10", 200, 60.0))
    state.beat(Node("host:2", "daemon", old, old, None, 0, 60.0))
    state.beat(Node("host:1", "send", now, now + timedelta(seconds=1), "2024-06-10", 150, 60.0))
    nodes = state.nodes()
    assert [(n.node, n.leased) for n in nodes] == [("host:1", 150), ("host:2", 0)]
    assert nodes[0].run == "2024-06-10" and nodes[1].run is None
    assert abs((nodes[1].beat_at - old).total_seconds()) < 0.01
    assert state.prune_nodes(now - timedelta(days=1)) == 1
    state.leave("host:1")
    assert state.nodes() == []


# several processes at once ---------------------------------------------------------------
CHILD = """
import json, sys, time
from datetime import datetime, timedelta, UTC
from digest.config import load_config
from digest.state.interface import Outcome, Recorded, RunPost
from digest.state.open import open_state
from digest.state.postgres import PostgresState
from digest.state.sqlite import SqliteState
from pathlib import Path
config, what, start_at = load_config(Path(sys.argv[1])), sys.argv[2], float(sys.argv[3])
state = open_state(config)
while time.time() < start_at:  # all start together
    time.sleep(0.001)
start = datetime(2024, 6, 3, tzinfo=UTC)
if what == "create":
    run, created = state.create_or_join_run(
        slug="2024-06-10", start=start, end=start + timedelta(days=7),
        posts=[RunPost("urn:a", "a.md", "a|A")],
        subscribers=[(f"u{i:03}", f"u{i:03}@example.org") for i in range(100)])
    print(json.dumps({"run": run.id, "created": created}))
else:
    run = state.find_run("2024-06-10")
    mine = []
    while rows := state.claim(run, sys.argv[4], 7, 60):
        mine += [key for key, _, _ in rows]
        state.record_many(run, [Recorded(Outcome(k, "sent", 250, "ok", 1), k, 1) for k in
                                [key for key, _, _ in rows]])
    print(json.dumps({"keys": mine}))
state.close()
"""


def _children(config_path: Path, what: str, n: int) -> list[dict[str, object]]:
    start_at = time.time() + 1.5  # time enough for each to import and open the state
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(config_path), what,
                                  str(start_at), f"node{i}"], cwd=PROJECT, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for i in range(n)]
    found = []
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        found.append(json.loads(out))
    return found


def test_nodes_creating_the_run_at_once_end_with_one_run(state: SharedState,
                                                         config_path: Path) -> None:
    found = _children(config_path, "create", 4)
    assert sum(1 for f in found if f["created"]) == 1
    assert len({f["run"] for f in found}) == 1
    assert len(state.runs()) == 1
    run = state.runs()[0]
    assert state.counts(run) == {"pending": 100}


def test_nodes_claiming_at_once_serve_each_row_exactly_once(state: SharedState,
                                                            config_path: Path) -> None:
    run = _run(state, 300)
    found = _children(config_path, "claim", 4)
    keys = Counter(key for f in found for key in f["keys"])  # type: ignore[attr-defined]
    assert set(keys) == {f"u{i:03}" for i in range(300)} and set(keys.values()) == {1}
    assert state.counts(run) == {"sent": 300}


def test_a_claim_reads_only_the_open_deliveries_in_order(state: SharedState) -> None:
    """Through deliveries_open, not every delivery of the run sorted (or, on PostgreSQL,
    read past every one already sent): a run's claims grew with the square of its size."""
    run = _run(state, 400)
    for _ in range(3):
        state.record_many(run, [_sent(key) for key in _keys(state.claim(run, "a", 100, LONG))])
    assert _keys(state.claim(run, "b", 10, LONG)) == [f"u{i:03}" for i in range(300, 310)]
    if isinstance(state, SqliteState):
        args = {"run": run.id, "now": time.time(), "since": None, "limit": 10}
        plan = " ".join(row[3] for row in state.db.execute(
            f"EXPLAIN QUERY PLAN SELECT rowid FROM deliveries WHERE {state._CLAIMABLE} "
            "ORDER BY rowid LIMIT :limit", args))
    else:
        assert isinstance(state, PostgresState)
        args = {"run": run.id, "now": time.time(), "since": None, "limit": 10}
        plan = " ".join(row[0] for row in state._all(
            f"EXPLAIN SELECT seq FROM deliveries WHERE {state._CLAIMABLE} ORDER BY seq "
            "LIMIT %(limit)s FOR UPDATE SKIP LOCKED", args))
    assert "deliveries_open" in plan and "TEMP B-TREE" not in plan and "Sort" not in plan


# the sender's own clock of its leases (delivery/nodes.py, LeaseClock) ------------------------
def test_the_lease_clock_holds_until_a_margin_before_the_lease_runs_out() -> None:
    clock = LeaseClock(60)
    assert not clock.holds(0.0)  # nothing claimed yet
    clock.known(100.0)  # a claim sent at t=100
    assert clock.margin == 5.0
    assert clock.holds(154.9) and not clock.holds(155.0)
    assert LeaseClock(2).margin == 0.5  # a quarter of a short lease


def test_a_renewal_sent_in_time_extends_the_clock_and_one_sent_late_does_not() -> None:
    clock = LeaseClock(60)
    clock.known(0.0)
    clock.renewed(50.0)  # in time: every row still the node's
    assert clock.holds(104.0)
    clock.renewed(200.0)  # after a gap: another node may have taken rows meanwhile
    assert not clock.holds(200.0)  # only a `kept`, which names the rows, restores it
    clock.known(200.0)
    assert clock.holds(254.0)
