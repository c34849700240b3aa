"""The shared state's PostgreSQL server lost in the middle of the work, on a real server
stopped with pg_ctl and started again a few seconds later on the same port: calls pause and
carry on (state/postgres.py, _retried), several senders finish the digest with everyone
served once, and the web front answers 503 with a page, not a traceback, while it is down.
The server here is this module's own (the session's serves every other test)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import PROJECT, make_site, post
from helpers import token as make_token
from pg_server import PgServer, binaries
from smtp_server import Faults, SmtpServer
from web_server import WebServer

from digest.config import load_config
from digest.errors import StateError
from digest.state.open import open_state
from digest.state.postgres import PostgresState

ENV = "DIGEST_OUTAGE_DATABASE_URL"
SECRET = "outage-secret-0123456789abcdef"
AS_OF = "2024-06-10T09:00:00-04:00"
N = 300
ONE_CLICK = {"List-Unsubscribe": "One-Click"}  # RFC 8058, as a mail client posts it
EVERYONE = {f"user{i}@example.org" for i in range(N)}


@pytest.fixture(scope="module")
def server() -> Iterator[PgServer]:
    found = binaries()
    if found is None:
        pytest.skip("no PostgreSQL binaries in /usr/lib/postgresql/*/bin")
    started = PgServer(found, durable=True).start()  # acknowledged commits kept, as in use
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def url(server: PgServer, monkeypatch: pytest.MonkeyPatch) -> str:
    found = server.create_database()
    monkeypatch.setenv(ENV, found)
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    return found


def restart_later(server: PgServer, seconds: float) -> threading.Thread:
    """The (stopped) server started again after *seconds*, in a thread."""
    def later() -> None:
        time.sleep(seconds)
        server.start_server()
    thread = threading.Thread(target=later)
    thread.start()
    return thread


def site(tmp_path: Path, smtp_port: int, **smtp: Any) -> Path:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "subscribers.yaml").write_text(
        yaml.safe_dump([{"email": email} for email in sorted(EVERYONE)]), encoding="utf-8")
    return make_site(tmp_path, {
        "2024-06-04-organizer.md": post("Union Data Organizer", tags="[union, data]"),
        "2024-06-05-analyst.md": post("Campaign Analyst", tags="[campaigns, analytics]"),
    }, extra={
        "database_env": ENV, "database_wait_seconds": 60, "subscribers": "subscribers.yaml",
        "digest": {"from": "Jobs Board <jobs@example.org>", "noun": "job"},
        "web": {"base_url": "https://jobs.example.org/digest"},
        "smtp": {"host": "localhost", "port": smtp_port, "security": "none", "timeout": 5,
                 "backoff": 0.05, **smtp}})


# one call ------------------------------------------------------------------------------------
def test_a_call_pauses_through_a_restart_and_says_so_once(
        server: PgServer, url: str, caplog: pytest.LogCaptureFixture) -> None:
    state = PostgresState(url)
    try:
        state.note("before", {"n": 1})
        server.stop_server("fast")
        thread = restart_later(server, 2)
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="digest.state.postgres"):
            state.note("during", {"n": 2})  # waits for the server, then writes
        waited = time.monotonic() - started
        thread.join()
        assert waited >= 1.5
        assert state.notes() == {"before": {"n": 1}, "during": {"n": 2}}
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 2, lines  # lost, then back: one line each
        assert "connection to the database was lost" in lines[0]
        assert "reconnecting, for up to 300 s" in lines[0]
        assert "connected to the database again" in lines[1]
        assert server.password not in " ".join(lines)
    finally:
        state.close()


def test_a_server_that_stays_down_fails_the_call_after_the_wait_with_the_clear_error(
        server: PgServer, url: str) -> None:
    state = PostgresState(url, wait_seconds=2)
    try:
        server.stop_server("immediate")
        started = time.monotonic()
        with pytest.raises(StateError) as raised:
            state.runs()
        waited = time.monotonic() - started
        assert 1.5 <= waited < 15
        message = str(raised.value)
        assert "the database failed" in message and "could not be reached again in 2 s" in message
        assert "database_wait_seconds" in message and server.password not in message
    finally:
        server.start_server()
        state.close()


def test_inside_a_batch_nothing_is_retried(server: PgServer, url: str) -> None:
    """A batch is one transaction over many calls: its earlier work went with the
    connection, so the call fails at once (the command run again redoes it all)."""
    state = PostgresState(url)
    try:
        with pytest.raises(StateError) as raised, state.batch():
            state.note("first", {})
            server.stop_server("fast")
            started = time.monotonic()
            state.note("second", {})
        assert time.monotonic() - started < 5
        assert "the database failed" in str(raised.value)
        server.start_server()
        assert state.notes() == {}  # reconnects for the next call; the batch is gone
    finally:
        if not (server.data / "postmaster.pid").exists():
            server.start_server()
        state.close()


def test_a_claim_whose_commit_was_lost_is_taken_back_by_the_next(url: str) -> None:
    """claim() remembers the lease time it asked for until it returns: rows leased with it
    by a commit whose answer never came are handed out by the next claim, not left leased
    to a node that does not know it holds them."""
    state = PostgresState(url)
    try:
        from datetime import UTC, datetime

        from digest.state.interface import RunPost

        run, _ = state.create_or_join_run(
            slug="2024-06-10", start=datetime(2024, 6, 3, tzinfo=UTC),
            end=datetime(2024, 6, 10, tzinfo=UTC), posts=[RunPost("e1", "p1", "t1")],
            subscribers=[(f"k{i}", f"k{i}@example.org") for i in range(10)])
        until = time.time() + 60
        with state.conn.transaction():  # what the lost commit did
            state.conn.execute("UPDATE deliveries SET lease_owner = 'me', lease_until = %s "
                               "WHERE subscriber IN ('k0', 'k1', 'k2')", (until,))
        state._claiming[(run.id, "me")] = until  # and what claim() remembered of it
        got = [key for key, _, _ in state.claim(run, "me", 2, 60)]
        assert got == ["k0", "k1", "k2", "k3", "k4"]  # its own three, and two new
        assert state._claiming == {}
        assert [key for key, _, _ in state.claim(run, "me", 2, 60)] == ["k5", "k6"]
    finally:
        state.close()


def test_a_bounce_whose_commit_was_lost_is_new_to_the_retry_and_a_repeat_is_not(
        url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """record_bounce's COMMIT reaches the server and its answer is lost: the call is run
    again on a new connection (_retried), finds the report it stored itself, and still says
    "new", so the caller suppresses the address as it would have. The same report read
    again later, or another report with the same ident, is not new."""
    from contextlib import contextmanager
    from datetime import UTC, datetime

    from digest.errors import ConnectionLost
    from digest.state.interface import Bounce

    state = PostgresState(url)
    try:
        real = PostgresState._atomic
        lost: list[bool] = []

        @contextmanager
        def commit_then_lose(self: PostgresState) -> Iterator[Any]:
            with real(self) as cur:
                yield cur
            if not lost:  # committed: the connection goes before the answer is read
                lost.append(True)
                self.conn.close()
                raise ConnectionLost(self.path, "the database failed (answer lost)", "retry")

        monkeypatch.setattr(PostgresState, "_atomic", commit_then_lose)
        bounce = Bounce("ana@example.org", "hard", datetime(2024, 6, 11, 9, tzinfo=UTC),
                        "dsn", "<report-1@mx>", "5.1.1", "550 no such user", "2024-06-10")
        assert state.record_bounce(bounce) is True  # its own, committed by the lost call
        assert lost == [True] and state.generation == 1
        assert len(state.bounces("ana@example.org")) == 1
        assert state.record_bounce(bounce) is False  # read again later: a repeat
        later = Bounce("ana@example.org", "hard", datetime(2024, 6, 12, 9, tzinfo=UTC),
                       "dsn", "<report-1@mx>", "5.1.1", "550 no such user", "2024-06-10")
        assert state.record_bounce(later) is False  # the same ident: recorded once
        assert len(state.bounces("ana@example.org")) == 1
    finally:
        state.close()


# several senders -----------------------------------------------------------------------------
def sender(config: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, DIGEST_SECRET=SECRET, PYTHONIOENCODING="utf-8")
    return subprocess.Popen([sys.executable, "-m", "digest", "--config", str(config), "send",
                             "--as-of", AS_OF], cwd=PROJECT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen[str], seconds: float = 120) -> tuple[str, str]:
    """Its output and log once it exited; killed (and its log shown) if it hangs."""
    try:
        return process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        raise AssertionError(f"a sender hung; its log:\n{err}") from None


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_senders_pause_while_the_database_is_down_and_finish_the_digest(
        server: PgServer, url: str, tmp_path: Path, mode: str) -> None:
    with SmtpServer(faults=Faults(data_seconds=0.02)) as smtp:
        config = site(tmp_path, smtp.port, concurrency=1, claim_batch=20)
        senders = [sender(config) for _ in range(3)]
        deadline = time.monotonic() + 60
        while len(smtp.received) < N // 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(smtp.received) >= N // 4, "the senders did not start sending"
        server.stop_server(mode)
        down_at = len(smtp.received)
        thread = restart_later(server, 3)
        outputs = [finish(p) for p in senders]
        thread.join()
        assert [p.returncode for p in senders] == [0, 0, 0], [err for _, err in outputs]
        got = Counter(smtp.recipients())
    assert set(got) == EVERYONE  # nobody skipped
    twice = {who: n for who, n in got.items() if n > 1}
    assert len(twice) <= 3, twice  # at most what each sender had in flight at the stop
    assert down_at < N  # it really went down in the middle
    logs = "".join(err for _, err in outputs)
    assert "connection to the database was lost" in logs
    assert "Traceback" not in logs
    state = open_state(load_config(config))
    try:
        run = state.latest_run()
        assert run is not None and state.run_state(run) == "done"
        assert state.counts(run) == {"sent": N}
    finally:
        state.close()


# the web front -------------------------------------------------------------------------------
def test_the_web_front_answers_503_with_a_page_while_the_database_is_down(
        server: PgServer, url: str, tmp_path: Path) -> None:
    config = load_config(site(tmp_path, 1))
    with WebServer(config) as web, httpx.Client(base_url=web.url) as client:
        token = make_token("user1@example.org", "unsubscribe", SECRET)
        assert client.get(f"/unsubscribe/{token}").status_code == 200
        server.stop_server("fast")
        try:
            started = time.monotonic()
            answer = client.post(f"/unsubscribe/{token}", data=ONE_CLICK, timeout=30)
            assert time.monotonic() - started < 20  # a few seconds' wait, not minutes
            assert answer.status_code == 503
            assert answer.headers["retry-after"] == "30"
            assert "Temporarily unavailable" in answer.text
            assert "Traceback" not in answer.text and "psycopg" not in answer.text
        finally:
            server.start_server()
        answer = client.post(f"/unsubscribe/{token}", data=ONE_CLICK)  # back: it heals
        assert answer.status_code == 200
    state = open_state(config)
    try:
        assert state.is_suppressed("user1@example.org")
    finally:
        state.close()
