"""What a sender hears of other processes' changes while it sends (SharedState.changes):
on PostgreSQL pushed by the triggers of migration 7 over LISTEN/NOTIFY (state/pg_changes.py),
on SQLite asked of the file each time. Both stores run the same checks; "another process" is a
second state opened on the same database, as the web front or another node has."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pg_bouncer
import psycopg
import pytest
from conftest import STORES, config_of, make_site, store_config
from helpers import MONDAY, POSTS, SECRET, SUBSCRIBERS, by_recipient, outbox
from smtp_server import SmtpServer

from digest.config import Config
from digest.state import pg_changes
from digest.state.interface import Changes, Run, RunAction, SharedState
from digest.state.open import open_state
from digest.state.postgres import PostgresState

END = datetime(2024, 6, 10, tzinfo=UTC)
SETTLE = 5.0  # seconds a notification may take to come, at most, on a loaded machine


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)


@pytest.fixture(params=STORES)
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Config:
    return config_of(make_site(tmp_path, {}, extra=store_config(request.param, request)))


@pytest.fixture
def pair(config: Config) -> Iterator[tuple[SharedState, SharedState]]:
    """The sender's state and another process's, on one database."""
    mine, other = open_state(config), open_state(config)
    try:
        yield mine, other
    finally:
        mine.close()
        other.close()


def soon(check: Callable[[], bool]) -> int:
    """How many times *check* was asked before it said True (0: at once); fails after
    SETTLE seconds."""
    deadline = time.monotonic() + SETTLE
    asked = 0
    while not check():
        asked += 1
        assert time.monotonic() < deadline, "not seen in time"
        time.sleep(0.001)
    return asked


def _run(state: SharedState) -> Run:
    return state.create_run(slug="2024-06-10", start=END - timedelta(days=7), end=END,
                            posts=(), subscribers=[("ana", "ana@example.org")])


def test_suppressions_made_elsewhere_are_seen_added_and_removed(
        pair: tuple[SharedState, SharedState]) -> None:
    mine, other = pair
    other.suppress("before", "web")
    changes = mine.changes()
    try:
        assert changes.suppressed("before") and not changes.suppressed("ana")
        other.suppress("ana", "web")
        soon(lambda: changes.suppressed("ana"))
        assert changes.suppressed_among(["ana", "bob", "before"]) == {"ana", "before"}
        other.unsuppress("ana")
        soon(lambda: not changes.suppressed("ana"))
        assert changes.suppressed_among(["ana", "bob"]) == set()
        # the last word on a key wins, however quickly the words come
        for _ in range(3):
            other.suppress("bob", "web")
            other.unsuppress("bob")
        other.suppress("bob", "web")
        soon(lambda: changes.suppressed("bob"))
    finally:
        changes.close()


def test_a_key_too_long_for_a_notification_and_one_with_a_nul_are_both_seen(
        pair: tuple[SharedState, SharedState]) -> None:
    mine, other = pair
    changes = mine.changes()
    try:
        long = "x" * 9000 + "@example.org"  # past NOTIFY's 8000-byte payload: '*'
        other.suppress(long, "import")
        soon(lambda: changes.suppressed(long))
        other.suppress("dave\0", "bounce")  # PostgreSQL keeps U+FFFD for the NUL
        soon(lambda: changes.suppressed("dave\0"))
        assert not changes.suppressed("dave")
    finally:
        changes.close()


def test_a_run_state_changed_elsewhere_is_told(config: Config,
                                               pair: tuple[SharedState, SharedState]) -> None:
    mine, other = pair
    run = _run(mine)
    changes = mine.changes()
    try:
        assert changes.run_changed(run)  # the first question: read it
        pushed = config.database_env is not None
        assert changes.run_changed(run) is not pushed  # nothing changed; SQLite cannot tell
        other.control(run, RunAction("pause", "owner", "a typo", datetime.now(UTC)))
        soon(lambda: changes.run_changed(run))
        if pushed:
            assert not changes.run_changed(run)  # told once
    finally:
        changes.close()


# PostgreSQL's listener --------------------------------------------------------------------
@pytest.fixture
def pg(pg_url: str) -> Iterator[tuple[PostgresState, PostgresState]]:
    mine, other = PostgresState(pg_url), PostgresState(pg_url)
    try:
        yield mine, other
    finally:
        mine.close()
        other.close()


def listener_pid(state: PostgresState) -> int:
    rows = state.conn.execute("SELECT pid FROM pg_stat_activity WHERE query = "
                              "'SELECT subscriber FROM suppressed' AND pid <> "
                              "pg_backend_pid()").fetchall()
    assert len(rows) == 1, rows
    return int(rows[0][0])


def test_on_postgresql_the_answers_come_from_the_listener_not_a_query_each(
        pg: tuple[PostgresState, PostgresState], monkeypatch: pytest.MonkeyPatch) -> None:
    mine, other = pg
    asked: list[str] = []

    def counted(self: PostgresState, key: str) -> bool:
        asked.append(key)
        return False

    monkeypatch.setattr(PostgresState, "is_suppressed", counted)
    changes = mine.changes()
    try:
        assert isinstance(changes, pg_changes.Pushed) and changes.live
        other.suppress("ana", "web")
        waited = soon(lambda: changes.suppressed("ana"))
        for i in range(1000):
            assert not changes.suppressed(f"user{i}")
        assert asked == []
        logging.getLogger(__name__).info("seen after %d polls", waited)
    finally:
        changes.close()


def test_a_killed_listener_falls_back_to_asking_then_listens_again(
        pg: tuple[PostgresState, PostgresState], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    mine, other = pg
    monkeypatch.setattr(pg_changes, "REOPEN_SECONDS", 3600.0)
    changes: Changes = mine.changes()
    try:
        assert isinstance(changes, pg_changes.Pushed) and changes.live
        other.conn.execute("SELECT pg_terminate_backend(%s)", (listener_pid(other),))
        other.suppress("ana", "web")  # while nobody listens: asked of the database
        with caplog.at_level(logging.WARNING, logger="digest.state.pg_changes"):
            soon(lambda: changes.suppressed("ana"))
            assert not changes.live
            other.suppress("bob", "web")
            assert changes.suppressed("bob") and not changes.suppressed("cleo")  # at once
        said = [r.getMessage() for r in caplog.records]
        assert len(said) == 1 and "asking the database before each message" in said[0]
        monkeypatch.setattr(pg_changes, "REOPEN_SECONDS", 0.0)
        changes.close()
        changes = mine.changes()
        assert isinstance(changes, pg_changes.Pushed) and changes.live
        assert changes.suppressed_among(["ana", "bob", "cleo"]) == {"ana", "bob"}
    finally:
        changes.close()


def test_a_listener_older_than_the_states_reconnection_is_not_trusted(
        pg: tuple[PostgresState, PostgresState]) -> None:
    mine, other = pg
    changes = mine.changes()
    try:
        assert isinstance(changes, pg_changes.Pushed) and changes.live
        mine.generation += 1  # as _reconnect does after an outage
        assert not changes.live
        other.suppress("ana", "web")
        assert changes.suppressed("ana")  # asked, or heard by a listener opened anew
    finally:
        changes.close()


def test_an_unreachable_listener_is_done_without(pg_url: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    mine = PostgresState(pg_url)
    try:
        mine.suppress("ana", "web")
        real = psycopg.connect

        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise psycopg.OperationalError("connection refused")

        monkeypatch.setattr(psycopg, "connect", refuse)
        changes = mine.changes()
        monkeypatch.setattr(psycopg, "connect", real)
        assert isinstance(changes, pg_changes.Pushed) and not changes.live
        assert changes.suppressed("ana") and changes.run_changed(_run(mine))
        changes.close()
    finally:
        mine.close()


def test_a_throwaway_state_asks(pg_url: str) -> None:
    state = PostgresState(pg_url, throwaway=True)
    try:
        changes = state.changes()
        assert not isinstance(changes, pg_changes.Pushed)
        state.suppress("ana", "web")  # never committed, so never notified: asked
        assert changes.suppressed("ana")
        changes.close()
    finally:
        state.close()


# a whole send -----------------------------------------------------------------------------
@pytest.mark.parametrize("store", STORES)
def test_an_unsubscribe_made_elsewhere_mid_send_stops_the_mail_not_yet_sent(
        store: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from digest.delivery.outbox import MaildirTransport
    from digest.delivery.send import send
    from digest.delivery.transport import Record

    (tmp_path / "subscribers.yaml").write_text(
        "".join(f"- email: {s['email']}\n" for s in SUBSCRIBERS), encoding="utf-8")
    cfg = make_site(tmp_path, dict(POSTS), extra={
        "subscribers": "subscribers.yaml", "web": {"base_url": "https://jobs.example.org/d"},
        "digest": {"from": "Jobs Board <jobs@example.org>", "noun": "job"},
        **store_config(store, request)})
    config = config_of(cfg)

    class UnsubscribeMidway(MaildirTransport):
        async def deliver(self, messages: Any, record: Record, *, stop: Any = None,
                          current: Any = None) -> None:
            async def first_then_unsubscribe() -> Any:
                async for outgoing in messages:
                    yield outgoing
                    if outgoing.key == "ana@example.org":  # file order: ana first
                        other = open_state(config)  # another process's connection
                        try:
                            other.suppress("all@example.org", "web")
                        finally:
                            other.close()
                        time.sleep(0.05)  # a notification's way, many times over

            await super().deliver(first_then_unsubscribe(), record, stop=stop, current=current)

    report = send(config, as_of=MONDAY, transport=UnsubscribeMidway(tmp_path / "state" /
                                                                    "outbox"))
    assert set(by_recipient(outbox(cfg))) == {"ana@example.org", "dev@example.org",
                                              "nobody@example.org"}
    assert report.runs[0].counts == {"sent": 3, "suppressed": 1}


def test_senders_on_postgresql_ask_for_neither_suppressions_nor_run_states_per_message(
        tmp_path: Path, request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from digest.delivery.send import send

    n = 300
    (tmp_path / "subscribers.yaml").write_text(
        "".join(f"- email: user{i}@example.org\n" for i in range(n)), encoding="utf-8")
    calls: dict[str, int] = {"is_suppressed": 0, "run_state": 0, "suppressed": 0}
    for name in calls:
        real = getattr(PostgresState, name)

        def counted(self: PostgresState, *args: Any, _real: Any = real,
                    _name: str = name) -> Any:
            calls[_name] += 1
            return _real(self, *args)

        monkeypatch.setattr(PostgresState, name, counted)
    with SmtpServer() as smtp:
        cfg = make_site(tmp_path, dict(POSTS), extra={
            "subscribers": "subscribers.yaml",
            "web": {"base_url": "https://jobs.example.org/d"},
            "digest": {"from": "Jobs Board <jobs@example.org>", "noun": "job"},
            "smtp": {"host": "localhost", "port": smtp.port, "security": "none"},
            **store_config("postgres", request)})
        report = send(config_of(cfg), as_of=MONDAY)
        assert report.runs[0].counts == {"sent": n} and len(smtp.received) == n
    assert calls["is_suppressed"] == 0 and calls["suppressed"] == 0, calls
    assert calls["run_state"] <= 3, calls  # the first look, and one a quarter second after


# behind a connection pooler ---------------------------------------------------------------
@pytest.fixture
def bouncer_binary() -> None:
    if pg_bouncer.binary() is None:
        pytest.skip("no pgbouncer (install the pgbouncer package)")


@pytest.mark.usefixtures("bouncer_binary")
def test_through_pgbouncer_in_session_mode_the_listener_hears(pg_url: str) -> None:
    with pg_bouncer.PgBouncer(pg_url, "session") as bouncer:
        mine, other = PostgresState(bouncer.url), PostgresState(bouncer.url)
        changes = mine.changes()
        try:
            assert isinstance(changes, pg_changes.Pushed) and changes.live
            other.suppress("ana", "web")
            soon(lambda: changes.suppressed("ana"))
        finally:
            changes.close()
            mine.close()
            other.close()


@pytest.mark.usefixtures("bouncer_binary")
def test_through_pgbouncer_in_transaction_mode_nothing_is_missed_and_the_error_says_why(
        pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """LISTEN is accepted there and nothing ever comes: the listener's probe tells, and the
    sender asks before each message. The pooler then hands one server connection to several
    clients, whose prepared statements meet: a StateError saying what to change, not a
    traceback."""
    from digest.errors import StateError

    with pg_bouncer.PgBouncer(pg_url, "transaction", pool_size=1) as bouncer:
        mine, other = PostgresState(bouncer.url), PostgresState(bouncer.url)
        try:
            with caplog.at_level(logging.WARNING, logger="digest.state.pg_changes"):
                changes = mine.changes()
            assert isinstance(changes, pg_changes.Pushed) and not changes.live
            said = " ".join(r.getMessage() for r in caplog.records)
            assert "did not come back" in said and "pooler in transaction mode" in said
            other.suppress("ana", "web")
            with pytest.raises(StateError) as raised:
                for _ in range(10):  # psycopg prepares a statement run 5 times
                    assert changes.suppressed("ana")
                    assert not other.is_suppressed("bob")
            assert "pool_mode = session" in str(raised.value)
            assert "Traceback" not in str(raised.value)
            changes.close()
        finally:
            mine.close()
            other.close()
