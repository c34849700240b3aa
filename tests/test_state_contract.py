"""The SharedState contract (state/interface.py), run against every implementation.

Each test uses only the Protocol's methods, plus one hook (`schedule`) for what another
program writes into the shared state: the daemon's scheduler. Each implementation is chosen
as a user chooses it, by the config (open_state): SQLite in the state folder, and PostgreSQL
(database_env) on a throwaway server (tests/pg_server.py), a fresh database per test; an
implementation is one more entry in conftest.STORES.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import STORES, config_of, make_site, store_config

from digest.config import Config
from digest.errors import StateError
from digest.state.interface import (
    Archived,
    Bounce,
    Member,
    NextRun,
    Outcome,
    Pending,
    Recorded,
    Run,
    RunAction,
    RunControl,
    RunPost,
    SharedState,
    Source,
)
from digest.state.open import open_state, schedule_store_url

START = datetime(2024, 6, 3, tzinfo=UTC)
END = START + timedelta(days=7)
FAR = datetime(2100, 1, 1, tzinfo=UTC)  # the scheduler never runs a job in these tests
ALICE, BOB = ("alice", "alice@example.org"), ("bob", "bob@example.org")


@dataclass
class Implementation:
    state: SharedState
    # puts a job in the shared schedule with its next run time (None: paused), as the
    # daemon's scheduler does
    schedule: Callable[[str, datetime | None], None]


def _opened(config: Config) -> Implementation:
    """The state open_state chooses for *config*, and its schedule beside it."""
    def schedule(job_id: str, at: datetime | None) -> None:
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore  # type: ignore[import-untyped]
        from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]

        scheduler = BackgroundScheduler(timezone=UTC, jobstores={
            "default": SQLAlchemyJobStore(url=schedule_store_url(config))})
        scheduler.start(paused=True)
        try:
            job = scheduler.add_job("builtins:print", "date", run_date=FAR, id=job_id)
            if at is None:
                job.pause()
            else:
                job.modify(next_run_time=at)
        finally:
            scheduler.shutdown(wait=False)

    return Implementation(open_state(config), schedule)


@pytest.fixture(params=STORES)
def impl(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Implementation]:
    config = config_of(make_site(tmp_path, {}, extra=store_config(request.param, request)))
    found = _opened(config)
    try:
        yield found
    finally:
        found.state.close()


@pytest.fixture
def state(impl: Implementation) -> SharedState:
    return impl.state


def _run(state: SharedState, slug: str = "2024-06-10", *, end: datetime = END,
         subscribers: tuple[tuple[str, str], ...] = (ALICE, BOB),
         posts: tuple[RunPost, ...] = (RunPost("urn:a", "a.md", "a\0a title"),)) -> Run:
    return state.create_run(slug=slug, start=end - timedelta(days=7), end=end, posts=posts,
                            subscribers=subscribers)


def _outcome(key: str, status: str, code: int | None = 250, attempts: int = 1) -> Recorded:
    return Recorded(Outcome(key, status, code, f"{code} reply", attempts),  # type: ignore[arg-type]
                    f"<{key}@test>", 1)


# runs ----------------------------------------------------------------------------------------
def test_a_new_state_has_no_runs(state: SharedState) -> None:
    assert state.runs() == [] and state.latest_run() is None and state.unfinished_runs() == []


def test_a_created_run_is_read_back_with_its_posts_and_everyone_pending(
        state: SharedState) -> None:
    run = _run(state)
    assert (run.slug, run.period_start, run.period_end, run.state) == (
        "2024-06-10", START, END, "sending")
    assert state.latest_run() == run and state.runs() == [run]
    assert state.run_posts(run) == [RunPost("urn:a", "a.md", "a\0a title")]  # twin_key's NUL
    assert state.to_serve(run) == [("alice", "alice@example.org", 0),
                                   ("bob", "bob@example.org", 0)]
    assert state.counts(run) == {"pending": 2}
    assert state.slug_taken("2024-06-10") and not state.slug_taken("2024-06-17")
    assert state.assigned() == ({"urn:a"}, {"a\0a title"})


def test_a_period_gets_one_run_only(state: SharedState) -> None:
    _run(state)
    with pytest.raises(StateError):
        _run(state, "another-slug")  # the same period end
    with pytest.raises(StateError):
        _run(state, end=END + timedelta(days=7), posts=())  # the same slug
    assert len(state.runs()) == 1


def test_runs_are_listed_newest_period_first_and_unfinished_oldest_first(
        state: SharedState) -> None:
    first = _run(state)
    second = _run(state, "2024-06-17", end=END + timedelta(days=7), posts=())
    assert [r.slug for r in state.runs()] == ["2024-06-17", "2024-06-10"]
    assert [r.slug for r in state.runs(1)] == ["2024-06-17"]
    assert [r.slug for r in state.unfinished_runs()] == ["2024-06-10", "2024-06-17"]
    state.mark(first, [("alice", "empty", 0), ("bob", "suppressed", 0)])
    state.set_state(first, "done")
    assert [r.slug for r in state.unfinished_runs()] == [second.slug]
    assert state.latest_run() == second


def test_a_done_run_with_someone_deferred_is_still_unfinished(state: SharedState) -> None:
    run = _run(state)
    state.record_many(run, [_outcome("alice", "sent"), _outcome("bob", "deferred", 451)])
    state.set_state(run, "done")
    assert [r.id for r in state.unfinished_runs()] == [run.id]
    assert state.runs()[0].state == "done"


def test_subscribers_added_later_are_pending_once(state: SharedState) -> None:
    run = _run(state, subscribers=(ALICE,))
    assert state.add_subscribers(run, [ALICE, BOB]) == 1
    assert state.add_subscribers(run, [ALICE, BOB]) == 0
    assert [key for key, _, _ in state.to_serve(run)] == ["alice", "bob"]


def _unread() -> Iterator[tuple[str, str]]:
    raise AssertionError("the pairs were read although the roster said none is new")
    yield ("never", "never")  # a generator: it fails only when read


def test_a_run_joined_with_the_list_it_was_made_with_reads_none_of_it(
        state: SharedState) -> None:
    run = state.create_run(slug="2024-06-10", start=END - timedelta(days=7), end=END,
                           posts=[RunPost("urn:a", "a.md", "a|A")], subscribers=[ALICE],
                           roster=b"one")
    assert state.add_subscribers(run, _unread(), roster=b"one") == 0
    # another list: offered and kept; then that one is the run's
    assert state.add_subscribers(run, [ALICE, BOB], roster=b"two") == 1
    assert state.add_subscribers(run, _unread(), roster=b"two") == 0
    assert state.add_subscribers(run, [ALICE, BOB], roster=b"one") == 0  # read: none new
    assert state.add_subscribers(run, [("carol", "carol@example.org")]) == 1  # no roster
    assert [key for key, _, _ in state.to_serve(run)] == ["alice", "bob", "carol"]
    joined, created = state.create_or_join_run(
        slug="2024-06-10", start=END - timedelta(days=7), end=END,
        posts=[RunPost("urn:a", "a.md", "a|A")], subscribers=_unread(), roster=b"three")
    assert (joined.id, created) == (run.id, False)
    made, created = state.create_or_join_run(
        slug="2024-06-17", start=END, end=END + timedelta(days=7),
        posts=[RunPost("urn:b", "b.md", "b|B")], subscribers=[BOB], roster=b"four")
    assert created and state.add_subscribers(made, _unread(), roster=b"four") == 0


def test_a_restored_run_is_done_with_everyone_sent_and_restored_once(
        state: SharedState) -> None:
    args = {"slug": "2024-06-10", "start": START, "end": END,
            "posts": [RunPost("urn:a", "a.md", "a|A")], "subscribers": [ALICE]}
    assert state.restore_run(**args) is True  # type: ignore[arg-type]
    assert state.restore_run(**args) is False  # type: ignore[arg-type]
    (run,) = state.runs()
    assert run.state == "done" and state.counts(run) == {"sent": 1}
    assert state.delivered(run, "alice") and state.unfinished_runs() == []


def test_a_restored_run_streams_its_subscribers(state: SharedState) -> None:
    """A list of a million is restored without holding it whole, and every one is kept, in
    order. 50,000 pairs from a generator peaked at 10.9 MB on PostgreSQL when they were made
    into one list (200 MB at a million), 4.8 MB in chunks of ADD_CHUNK, 16 KB on SQLite."""
    import tracemalloc

    n = 50_000
    pairs = ((f"u{i:06}", f"u{i:06}@example.org") for i in range(n))
    tracemalloc.start()
    try:
        assert state.restore_run(slug="2024-06-10", start=START, end=END,
                                 posts=[RunPost("urn:a", "a.md", "a|A")], subscribers=pairs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 6_000_000, peak
    (run,) = state.runs()
    assert state.counts(run) == {"sent": n}
    assert [d.key for d in state.deliveries(run)][::10_000] == [
        f"u{i:06}" for i in range(0, n, 10_000)]


# deliveries ----------------------------------------------------------------------------------
def test_outcomes_move_deliveries_from_pending_to_sent_failed_deferred(
        state: SharedState) -> None:
    carol = ("carol", "carol@example.org")
    run = _run(state, subscribers=(ALICE, BOB, carol))
    state.record_many(run, [_outcome("alice", "sent"), _outcome("bob", "failed", 550, 1),
                            _outcome("carol", "deferred", 451, 3)])
    assert state.counts(run) == {"sent": 1, "failed": 1, "deferred": 1}
    assert state.delivered(run, "alice") and not state.delivered(run, "bob")
    assert state.to_serve(run) == [("carol", "carol@example.org", 3)]  # deferred: offered again
    assert state.failures(run) == [("bob@example.org", "failed", 550, "550 reply"),
                                   ("carol@example.org", "deferred", 451, "451 reply")]
    assert state.failures(run, limit=1) == [("bob@example.org", "failed", 550, "550 reply")]


def test_attempts_add_up_across_sends(state: SharedState) -> None:
    run = _run(state, subscribers=(ALICE,))
    state.record_many(run, [_outcome("alice", "deferred", 451, 2)])
    state.record_many(run, [Recorded(Outcome("alice", "deferred", 451, "x", 3), "<m>", 1,
                                     attempts_before=2)])
    assert state.to_serve(run) == [("alice", "alice@example.org", 5)]


def test_giving_up_fails_the_deferred_only_saying_why(state: SharedState) -> None:
    run = _run(state)
    state.record_many(run, [_outcome("alice", "sent"), _outcome("bob", "deferred", 451)])
    assert state.give_up(run, "given up; ") == 1
    assert state.counts(run) == {"sent": 1, "failed": 1}
    assert state.failures(run) == [("bob@example.org", "failed", 451, "given up; 451 reply")]
    assert state.give_up(run, "again; ") == 0


def test_one_delivery_per_run_and_subscriber(state: SharedState) -> None:
    with pytest.raises(StateError):  # all or nothing: no run is left half made
        _run(state, subscribers=(ALICE, ("alice", "other@example.org")))
    assert state.runs() == [] and state.assigned() == (set(), set())
    run = _run(state, subscribers=(ALICE,))
    assert state.add_subscribers(run, [("alice", "other@example.org")]) == 0
    assert state.to_serve(run) == [("alice", "alice@example.org", 0)]


# the owner's pause, resume and cancel ----------------------------------------------------------
AT = datetime(2024, 6, 10, 9, 30, tzinfo=UTC)


def test_a_run_is_found_by_slug_and_its_state_read_in_one_row(state: SharedState) -> None:
    run = _run(state)
    assert state.find_run("2024-06-10") == run and state.find_run("2024-06-17") is None
    assert state.run_state(run) == "sending"
    assert state.run_control(run) == RunControl("sending", False, None, None, None)
    assert state.run_actions(run) == []


def test_the_owners_pause_holds_until_the_owner_resumes(state: SharedState) -> None:
    run = _run(state)
    assert state.control(run, RunAction("pause", "alice", "server move", AT))
    assert state.run_state(run) == "paused"
    assert state.run_control(run) == RunControl("paused", True, "server move", "alice", AT,
                                                "pause")
    assert not state.control(run, RunAction("pause", "bob", "again", AT))  # already paused
    assert not state.begin_serving(run)  # a sender leaves it alone
    assert state.end_serving(run, left=True) == "paused"
    assert state.run_control(run).owner_paused
    assert [r.slug for r in state.unfinished_runs()] == [run.slug]  # still to finish
    assert state.control(run, RunAction("resume", "bob", "", AT + timedelta(hours=1)))
    assert state.run_control(run) == RunControl("sending", False, "", "bob",
                                                AT + timedelta(hours=1), "resume")
    assert not state.control(run, RunAction("resume", "bob", "", AT))  # not paused now
    assert state.begin_serving(run)
    assert [a.act for a in state.run_actions(run)] == ["pause", "resume"]


def test_the_runs_own_pause_is_not_the_owners(state: SharedState) -> None:
    run = _run(state)
    assert state.begin_serving(run)
    assert state.end_serving(run, left=True) == "paused"
    assert state.run_control(run) == RunControl("paused", False, None, None, None)
    assert state.begin_serving(run)  # the next send resumes it
    assert state.run_state(run) == "sending"
    assert state.end_serving(run, left=False) == "done"


def test_a_pause_made_while_a_sender_serves_is_kept_when_it_ends(state: SharedState) -> None:
    run = _run(state)
    assert state.begin_serving(run)
    assert state.control(run, RunAction("pause", "alice", "wait", AT))
    assert state.end_serving(run, left=False) == "paused"  # the owner's pause stays
    assert state.run_control(run).owner_paused


def test_cancel_closes_who_is_left_and_nothing_reopens_it(state: SharedState) -> None:
    carol = ("carol", "carol@example.org")
    run = _run(state, subscribers=(ALICE, BOB, carol))
    state.record_many(run, [_outcome("alice", "sent"), _outcome("bob", "deferred", 451)])
    assert state.control(run, RunAction("cancel", "alice", "wrong posts", AT))
    assert state.counts(run) == {"sent": 1, "cancelled": 2}
    assert state.to_serve(run) == [] and state.unfinished_runs() == []
    (bob,) = [d for d in state.deliveries(run) if d.key == "bob"]
    assert bob.state == "cancelled" and bob.reply is not None
    assert bob.reply.startswith("cancelled by alice") and "wrong posts" in bob.reply
    assert "451 reply" in bob.reply  # its last reply is kept after the why
    # a message in flight at the cancel: delivered is kept, a temporary failure is not
    state.record_many(run, [_outcome("carol", "deferred", 451)])
    assert state.counts(run) == {"sent": 1, "cancelled": 2}
    state.record_many(run, [_outcome("carol", "sent")])
    assert state.counts(run) == {"sent": 2, "cancelled": 1}
    state.mark(run, [("bob", "empty", 0)])
    assert state.add_subscribers(run, [("dan", "dan@example.org")]) == 0
    assert state.counts(run) == {"sent": 2, "cancelled": 1}
    assert not state.begin_serving(run) and state.run_state(run) == "cancelled"
    assert state.end_serving(run, left=False) == "cancelled"
    for act in ("pause", "resume", "cancel"):
        assert not state.control(run, RunAction(act, "bob", "x", AT))
    assert state.run_control(run) == RunControl("cancelled", False, "wrong posts", "alice", AT,
                                                "cancel")


def test_a_done_run_is_not_paused_or_cancelled_unless_someone_is_left(
        state: SharedState) -> None:
    run = _run(state, subscribers=(ALICE,))
    state.record_many(run, [_outcome("alice", "sent")])
    assert state.end_serving(run, left=False) == "done"
    assert not state.control(run, RunAction("pause", "bob", "x", AT))
    assert not state.control(run, RunAction("cancel", "bob", "x", AT))
    assert state.add_subscribers(run, [BOB]) == 1  # someone subscribed since: to serve
    assert state.control(run, RunAction("pause", "bob", "x", AT))
    assert state.run_state(run) == "paused" and state.run_actions(run) == [
        RunAction("pause", "bob", "x", AT)]


# suppression list ----------------------------------------------------------------------------
def test_suppression_is_added_and_removed_idempotently(state: SharedState) -> None:
    assert state.suppressed() == set() and not state.is_suppressed("alice")
    assert state.suppress("alice", "unsubscribed") is True
    assert state.suppress("alice", "again") is False
    assert state.suppressed() == {"alice"} and state.is_suppressed("alice")
    assert state.unsuppress("alice") is True
    assert state.unsuppress("alice") is False
    assert state.suppressed() == set() and not state.is_suppressed("alice")


def test_a_suppression_keeps_its_reason_and_evidence_and_the_first_one_wins(
        state: SharedState) -> None:
    before = datetime.now(UTC)
    assert state.suppression("alice") is None and state.suppressions() == []
    assert state.suppress_with("bob", "hard bounce", "5.1.1 user unknown") is True
    assert state.suppress_with("bob", "complaint", "later") is False
    state.suppress("alice", "unsubscribed on the web (one-click)")
    bob = state.suppression("bob")
    assert bob is not None and (bob.key, bob.reason, bob.evidence) == (
        "bob", "hard bounce", "5.1.1 user unknown")
    assert before <= bob.since <= datetime.now(UTC)
    assert [(s.key, s.evidence) for s in state.suppressions()] == [
        ("bob", "5.1.1 user unknown"), ("alice", "")]  # oldest first


# the list beside the YAML --------------------------------------------------------------------
def _member(key: str, since: datetime, *, tags: tuple[str, ...] | None = None,
            source: Source = "signup", name: str | None = None) -> Member:
    return Member(key, f"{key}@example.org", name, tags, source, since)


def test_members_are_added_updated_and_removed_keeping_their_first_since(
        state: SharedState) -> None:
    assert state.members() == [] and state.member("alice") is None
    empty = state.members_stamp()
    alice = _member("alice", START, tags=("jobs",))
    assert state.put_member(alice) == "new"
    assert state.put_member(alice) == "same"
    stamp = state.members_stamp()
    assert stamp != empty
    changed = _member("alice", START + timedelta(days=3), tags=None, name="Alice")
    assert state.put_member(changed) == "updated"
    assert state.member("alice") == _member("alice", START, tags=None, name="Alice")
    assert state.put_member(_member("bob", START - timedelta(days=1), source="import")) == "new"
    assert [m.key for m in state.members()] == ["bob", "alice"]  # in the order they came
    assert [m.key for m in state.members("import")] == ["bob"]
    assert [m.key for m in state.members("signup")] == ["alice"]
    before = state.members_stamp()
    assert state.remove_member("bob") is True and state.remove_member("bob") is False
    assert state.members_stamp() != before
    assert [m.key for m in state.members()] == ["alice"]


def test_a_pending_signup_is_replaced_and_taken_once(state: SharedState) -> None:
    first = Pending("alice", "alice@example.org", None, None, START)
    later = Pending("alice", "Alice@example.org", "Alice", ("jobs",), START + timedelta(hours=1))
    assert state.pending("alice") is None and state.pending_count() == 0
    state.save_pending(first)
    state.save_pending(later)  # a second request replaces the first
    state.save_pending(Pending("bob", "bob@example.org", None, None, START - timedelta(days=9)))
    assert state.pending("alice") == later and state.pending_count() == 2
    assert state.pending_count(since=START) == 1
    assert state.take_pending("alice") == later
    assert state.take_pending("alice") is None and state.pending("alice") is None
    assert state.drop_pending(START - timedelta(days=7)) == 1
    assert state.pending_count() == 0


def test_hits_are_counted_per_bucket_within_the_window(state: SharedState) -> None:
    now = START
    assert [state.hit("signup:1.2.3.4", 2, 60, now) for _ in range(3)] == [True, True, False]
    assert state.hit("signup:5.6.7.8", 2, 60, now) is True  # another bucket counts alone
    assert state.hit("signup:1.2.3.4", 2, 60, now + timedelta(seconds=30)) is False
    assert state.hit("signup:1.2.3.4", 2, 60, now + timedelta(seconds=61)) is True


# bounces and complaints ----------------------------------------------------------------------
def test_bounces_are_kept_once_per_ident_newest_first(state: SharedState) -> None:
    soft = Bounce("alice", "soft", START, "dsn", "id-1", "4.2.2", "mailbox full", "2024-06-10")
    hard = Bounce("alice", "hard", START + timedelta(days=1), "smtp", "id-2", "5.1.1",
                  "user unknown", None, "the DSN")
    other = Bounce("bob", "complaint", START + timedelta(days=2), "arf", "id-3")
    assert state.record_bounce(soft) and state.record_bounce(hard)
    assert state.record_bounce(other) is True
    assert state.record_bounce(soft) is False  # the same report read twice
    assert state.bounces() == [other, hard, soft]
    assert state.bounces("alice") == [hard, soft]
    assert state.bounces(since=START + timedelta(hours=1)) == [other, hard]
    assert state.bounces(limit=1) == [other]


def test_a_nul_from_a_stranger_is_kept_or_replaced_never_an_error(
        state: SharedState) -> None:
    """A bounce's diagnostic, a sign-up's name, a suppression's evidence may carry a NUL,
    which PostgreSQL's text cannot hold: there it becomes U+FFFD, found again by the same
    value; SQLite keeps it. Either way the write succeeds and the rest is intact."""
    def same(found: str | None, sent: str) -> bool:
        return found in (sent, sent.replace("\0", "\ufffd"))

    bounce = Bounce("alice", "hard", START, "dsn", "id-\0-1", "5.1.1", "no\0such user",
                    None, "Diagnostic-Code: smtp; 550 \0")
    assert state.record_bounce(bounce)
    assert state.record_bounce(bounce) is False  # the same ident, NUL and all, is known
    (found,) = state.bounces("alice")
    assert same(found.diagnostic, bounce.diagnostic) and same(found.ident, bounce.ident)
    assert same(found.evidence, bounce.evidence) and found.status == "5.1.1"
    assert state.put_member(_member("carol", START, name="Carol\0 Ann")) == "new"
    member = state.member("carol")
    assert member is not None and same(member.name, "Carol\0 Ann")
    assert state.suppress_with("dave\0", "bounced", "evidence \0 here")
    assert state.is_suppressed("dave\0") and not state.is_suppressed("dave")
    found_sup = state.suppression("dave\0")
    assert found_sup is not None and same(found_sup.evidence, "evidence \0 here")


# who got what ----------------------------------------------------------------------------------
def test_deliveries_say_who_got_what_per_run_and_per_address(state: SharedState) -> None:
    first = _run(state, subscribers=(ALICE, BOB))
    second = _run(state, "2024-06-17", end=END + timedelta(days=7), posts=(),
                  subscribers=(ALICE,))
    state.record_many(first, [_outcome("alice", "sent"), _outcome("bob", "failed", 550)])
    state.mark(second, [("alice", "empty", 0)])
    rows = state.deliveries(first)
    assert [(d.run, d.key, d.email, d.state, d.attempts, d.code, d.reply, d.message_id,
             d.posts) for d in rows] == [
        ("2024-06-10", "alice", "alice@example.org", "sent", 1, 250, "250 reply",
         "<alice@test>", 1),
        ("2024-06-10", "bob", "bob@example.org", "failed", 1, 550, "550 reply",
         "<bob@test>", 1)]
    assert all(d.updated_at is not None for d in rows)
    assert [d.key for d in state.deliveries(first, failed=True)] == ["bob"]
    assert [(d.run, d.state, d.posts) for d in state.deliveries_of("alice")] == [
        ("2024-06-17", "empty", 0), ("2024-06-10", "sent", 1)]  # the latest run first
    assert [d.run for d in state.deliveries_of("alice", limit=1)] == ["2024-06-17"]
    assert state.deliveries_of("nobody") == []


# preferences ---------------------------------------------------------------------------------
def test_preferences_are_saved_sorted_and_read_back(state: SharedState) -> None:
    assert state.preferences() == {} and state.preference("alice") == (False, None)
    state.set_preferences("alice", ["union", "jobs", "union"])
    state.set_preferences("bob", None)  # every post, chosen explicitly
    assert state.preferences() == {"alice": ("jobs", "union"), "bob": None}
    assert state.preference("alice") == (True, ("jobs", "union"))
    assert state.preference("bob") == (True, None)
    state.set_preferences("alice", [])
    assert state.preference("alice") == (True, ())


def test_the_last_good_subscribers_file_is_kept(state: SharedState) -> None:
    assert state.snapshot() is None
    state.save_snapshot("subscribers.yaml", "- email: a@example.org\n")
    first = state.snapshot()
    assert first is not None and first[:2] == ("subscribers.yaml", "- email: a@example.org\n")
    state.save_snapshot("subscribers.yaml", "- email: b@example.org\n")
    second = state.snapshot()
    assert second is not None and second[:2] == ("subscribers.yaml", "- email: b@example.org\n")


def test_the_last_good_copy_is_saved_from_bytes_and_not_rewritten_unchanged(
        state: SharedState) -> None:
    """The file's bytes (UTF-8) are saved as they are and read back as text; the same bytes
    again (or the same text) leave the kept copy, and the time it was saved, alone."""
    text = "- email: ana@example.org\n  name: Ána Gómez\n" * 30_000  # over a megabyte
    state.save_snapshot("subscribers.yaml", text.encode())
    first = state.snapshot()
    assert first is not None and first[:2] == ("subscribers.yaml", text)
    state.save_snapshot("subscribers.yaml", text.encode())
    state.save_snapshot("subscribers.yaml", text)
    assert state.snapshot() == first
    state.save_snapshot("other.yaml", text.encode())  # same text, another file: saved
    moved = state.snapshot()
    assert moved is not None and moved[:2] == ("other.yaml", text) and moved[2] != first[2]
    changed = text[:-2] + "y\n"  # same length, a byte past the first megabyte differs
    state.save_snapshot("other.yaml", changed.encode())
    last = state.snapshot()
    assert last is not None and last[1] == changed and last[2] != moved[2]
    state.save_snapshot("other.yaml", b"")
    empty = state.snapshot()
    assert empty is not None and empty[1] == ""


# entry ids -----------------------------------------------------------------------------------
def test_entry_ids_and_first_seen_stay_as_first_given(state: SharedState) -> None:
    assert not state.has_entry_ids() and state.entry_ids() == {}
    state.add_entry_ids([("a.md", "urn:a", "2024-06-01T00:00:00+00:00"),
                         ("b.md", "urn:b", "2024-06-02T00:00:00+00:00")])
    state.add_entry_ids([("a.md", "urn:a2", "2024-06-09T00:00:00+00:00"),  # path known
                         ("c.md", "urn:b", "2024-06-09T00:00:00+00:00")])  # id taken
    assert state.has_entry_ids()
    assert state.entry_ids() == {"a.md": "urn:a", "b.md": "urn:b"}
    assert state.entry_ids_of(["a.md", "zz.md"]) == {"a.md": "urn:a"}
    assert state.taken_ids(["urn:a", "urn:new"]) == {"urn:a"}
    assert state.first_seen() == {"urn:a": "2024-06-01T00:00:00+00:00",
                                  "urn:b": "2024-06-02T00:00:00+00:00"}


def test_a_renamed_entry_id_keeps_its_id_and_first_seen_and_never_overwrites(
        state: SharedState) -> None:
    state.add_entry_ids([("/old/a.html", "urn:a", "2024-06-01T00:00:00+00:00"),
                         ("/old/b.html", "urn:b", "2024-06-02T00:00:00+00:00"),
                         ("source:s/b.html", "urn:b2", "2024-06-03T00:00:00+00:00")])
    state.rename_entry_ids([("/old/a.html", "source:s/a.html"),
                            ("/old/b.html", "source:s/b.html"),  # taken: both left alone
                            ("/nowhere.html", "source:s/c.html")])
    assert state.entry_ids() == {"source:s/a.html": "urn:a", "/old/b.html": "urn:b",
                                 "source:s/b.html": "urn:b2"}
    assert state.first_seen()["urn:a"] == "2024-06-01T00:00:00+00:00"


# the archive of sent digests -----------------------------------------------------------------
def _archived(slug: str, end: datetime) -> Archived:
    return Archived(slug, end - timedelta(days=7), end)


def test_an_archived_digest_is_read_back_by_its_slug_as_given(state: SharedState) -> None:
    assert state.archive_index() == [] and state.archived("2024-06-10") is None
    text = '{"slug": "2024-06-10", "posts": ["caf\u00e9", "café"]}\n'
    assert state.save_archive(_archived("2024-06-10", END), text)
    assert state.archived("2024-06-10") == text
    assert state.archived("2024-06-17") is None
    assert state.archive_index() == [_archived("2024-06-10", END)]


def test_an_archived_digest_keeps_its_first_copy(state: SharedState) -> None:
    assert state.save_archive(_archived("2024-06-10", END), "first")
    assert not state.save_archive(_archived("2024-06-10", END + timedelta(days=1)), "second")
    assert state.archived("2024-06-10") == "first"
    assert state.archive_index() == [_archived("2024-06-10", END)]


def test_the_archive_lists_the_latest_period_end_first(state: SharedState) -> None:
    paris = timezone(timedelta(hours=2))
    # saved out of order; by wall clock "2024-06-17T01:00+02:00" reads later than
    # "2024-06-16T23:30+00:00", but it ends half an hour earlier
    entries = [_archived("2024-06-10", END),
               _archived("2024-06-17-2330", datetime(2024, 6, 16, 23, 30, tzinfo=UTC)),
               _archived("2024-06-17", datetime(2024, 6, 17, 1, 0, tzinfo=paris)),
               _archived("2024-06-03", START),
               _archived("2024-06-10-b", END)]  # the same end: the greater slug first
    for entry in entries:
        state.save_archive(entry, entry.slug)
    assert [e.slug for e in state.archive_index()] == [
        "2024-06-17-2330", "2024-06-17", "2024-06-10-b", "2024-06-10", "2024-06-03"]
    assert state.archive_index()[1].period_end == datetime(2024, 6, 17, 1, 0, tzinfo=paris)


# the daemon's notes and the schedule ---------------------------------------------------------
def test_notes_are_replaced_per_key(state: SharedState) -> None:
    assert state.notes() == {}
    state.note("daemon", {"pid": 1})
    state.note("build", {"posts": 3, "at": START})
    state.note("daemon", {"pid": 2})
    assert state.notes() == {"build": {"posts": 3, "at": str(START)},
                             "daemon": {"pid": 2}}


def test_the_next_run_is_what_the_scheduler_stored(impl: Implementation) -> None:
    state = impl.state
    assert state.next_run("digest") is None
    at = FAR + timedelta(days=3, hours=7)
    impl.schedule("digest", at)
    assert state.next_run("digest") == NextRun(at)
    assert state.next_run("another") is None
    impl.schedule("paused", None)
    assert state.next_run("paused") == NextRun(None)


# health --------------------------------------------------------------------------------------
def test_ping_answers_while_open_and_fails_once_closed(state: SharedState) -> None:
    state.ping()
    state.close()
    with pytest.raises(Exception):  # noqa: B017 (each implementation says it its way)
        state.ping()


# many writes at once ---------------------------------------------------------------------------

def test_a_batch_keeps_its_writes_together_and_each_failure_to_itself(
        state: SharedState) -> None:
    """An import commits a thousand rows at once; one row that fails must not take the
    others with it, and an import that stops undoes only the batch it was in."""
    _run(state, "2024-06-10")
    with state.batch():
        state.suppress("a@example.org", "import")
        with pytest.raises(StateError):
            _run(state, "2024-06-10")  # the slug is taken: this write fails alone
        state.suppress("b@example.org", "import")
    assert state.suppressed() == {"a@example.org", "b@example.org"}
    assert [run.slug for run in state.runs()] == ["2024-06-10"]
    with pytest.raises(RuntimeError), state.batch():
        state.suppress("c@example.org", "import")
        with state.batch():  # a batch inside a batch is part of it
            state.suppress("d@example.org", "import")
        raise RuntimeError("the import stopped")
    assert state.suppressed() == {"a@example.org", "b@example.org"}
    state.suppress("e@example.org", "import")  # and the state still writes afterwards
    assert "e@example.org" in state.suppressed()


def test_outcomes_recorded_together_are_kept_all_or_none(state: SharedState) -> None:
    """A group commit's rows (delivery/send.py, GroupCommit) are one transaction: a row the
    database refuses (here a state its CHECK does not allow) leaves the others unrecorded,
    so none is taken for sent without its message being told so."""
    run = _run(state)
    with pytest.raises(StateError):
        state.record_many(run, [_outcome("alice", "sent"), _outcome("bob", "bogus")])
    assert state.counts(run) == {"pending": 2}
    state.record_many(run, [_outcome("alice", "sent"), _outcome("bob", "sent")])
    assert state.counts(run) == {"sent": 2}


def test_notes_dropped_are_gone_and_the_others_stay(state: SharedState) -> None:
    state.note("admin-session:a", {"user": "owner"})
    state.note("admin-session:b", {"user": "owner"})
    state.note("daemon", {"pid": 1})
    assert state.drop_notes(["admin-session:a", "admin-session:missing"]) == 1
    assert state.drop_notes([]) == 0
    assert set(state.notes()) == {"admin-session:b", "daemon"}
