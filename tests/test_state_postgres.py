"""The shared state on PostgreSQL beyond the contract (tests/test_state_contract.py): its
migrations when several processes start together, a schema newer than this digest, a server
that cannot be reached (exit 2, and never the password), `digest send` end to end, and a dry
run that leaves the database as it was. A real server: tests/pg_server.py."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import PROJECT, make_site, run_cli
from daemon_process import DaemonProcess
from helpers import (
    DAEMON_POSTS,
    DAEMON_SUBSCRIBERS,
    MONDAY,
    SECONDS,
    SECRET,
    SERVED,
    write_subscribers,
)
from pg_server import free_port
from smtp_server import SmtpServer

from digest.config import load_config
from digest.errors import ConfigError, StateError
from digest.state.open import open_state, schedule_store_url
from digest.state.pg_migrations import MIGRATIONS
from digest.state.postgres import PostgresState

ENV = "DIGEST_DATABASE_URL"


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)


def _site(tmp_path: Path, smtp_port: int = 1, **extra: Any) -> Path:
    write_subscribers(tmp_path, DAEMON_SUBSCRIBERS)
    return make_site(tmp_path, dict(DAEMON_POSTS), extra={
        "subscribers": "subscribers.yaml", "database_env": ENV,
        "digest": {"from": "Jobs Board <jobs@example.org>", "noun": "job"},
        "web": {"base_url": "https://jobs.example.org/digest"},
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none", "timeout": 5,
                 "backoff": 0.05}, **extra})


def _version(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT version FROM digest_schema").fetchone()
        assert row is not None
        return int(row[0])


# migrations ----------------------------------------------------------------------------------
OPEN_TOGETHER = """
import sys, time
from pathlib import Path
import psycopg
from digest.state.postgres import PostgresState
psycopg.connect(sys.argv[1]).close()  # imports and the first connection done: all at the line
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.002)
state = PostgresState(sys.argv[1])
print(state.migrated)
state.close()
"""


def test_processes_starting_together_migrate_once(pg_url: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_TOGETHER, pg_url, str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=PROJECT) for _ in range(6)]
    time.sleep(1.5)  # every interpreter started, connected once and waiting
    go.touch()
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [err for _, err in results]
    said = sorted(out.strip() for out, _ in results)
    assert said == sorted(["None"] * 5 + [f"(0, {len(MIGRATIONS)})"])  # one migrated
    assert _version(pg_url) == len(MIGRATIONS)


def test_a_schema_newer_than_this_digest_is_refused_saying_both_versions(pg_url: str) -> None:
    PostgresState(pg_url).close()
    with psycopg.connect(pg_url) as conn:
        conn.execute("UPDATE digest_schema SET version = 99, works_with = 99")
    with pytest.raises(StateError) as raised:
        PostgresState(pg_url)
    message = str(raised.value)
    assert "version 99" in message and f"version {len(MIGRATIONS)}" in message
    assert "upgrade digest" in message
    assert _version(pg_url) == 99  # left alone


def test_a_newer_schema_stops_the_cli_with_exit_2(pg_url: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, pg_url)
    PostgresState(pg_url).close()
    with psycopg.connect(pg_url) as conn:
        conn.execute("UPDATE digest_schema SET version = 99, works_with = 99")
    code, _, err = run_cli(["--config", str(_site(tmp_path)), "build"])
    assert code == 2 and "version 99" in err and "Traceback" not in err


# an unreachable server, a missing variable -------------------------------------------------
def test_an_unreachable_server_is_exit_2_naming_it_without_the_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()  # nothing listens there
    monkeypatch.setenv(ENV, f"postgresql://digest:hunter2-SECRET@127.0.0.1:{port}/jobs")
    code, out, err = run_cli(["--config", str(_site(tmp_path)), "send",
                              "--as-of", MONDAY.isoformat()])
    assert code == 2
    assert f"digest@127.0.0.1:{port}/jobs" in err and "cannot connect" in err
    assert "check that the PostgreSQL server is running" in err and f"variable {ENV}" in err
    assert "hunter2" not in out + err and "Traceback" not in err


def test_a_wrong_password_is_exit_2_and_the_password_is_not_printed(
        pg_server: Any, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = pg_url.replace(pg_server.password, "not-the-Password-42")
    monkeypatch.setenv(ENV, wrong)
    code, out, err = run_cli(["--config", str(_site(tmp_path)), "build"])
    assert code == 2 and "password authentication failed" in err
    assert "not-the-Password-42" not in out + err
    assert pg_server.password not in out + err


def test_database_env_with_its_variable_unset_is_a_config_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    config = load_config(_site(tmp_path))
    with pytest.raises(ConfigError, match=f"{ENV} is unset or empty"):
        open_state(config)
    monkeypatch.setenv(ENV, "  ")
    code, _, err = run_cli(["--config", str(config.path), "build"])
    assert code == 2 and f"set {ENV} to its URL" in err
    monkeypatch.setenv(ENV, "mysql://u:pw-in-url@h/db")
    code, out, err = run_cli(["--config", str(config.path), "build"])
    assert code == 2 and "does not hold a PostgreSQL URL" in err
    assert "pw-in-url" not in out + err


def test_without_database_env_the_state_stays_in_sqlite(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "postgresql://nobody@127.0.0.1:1/none")  # unused: no key
    config = load_config(make_site(tmp_path, {}))
    state = open_state(config)
    try:
        state.note("x", {"a": 1})
    finally:
        state.close()
    assert (config.state / "state.sqlite3").is_file()
    assert schedule_store_url(config).startswith("sqlite:///")


# end to end ----------------------------------------------------------------------------------
def test_digest_send_on_postgresql_records_every_delivery_there(
        pg_url: str, tmp_path: Path, smtp: SmtpServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, pg_url)
    cfg = _site(tmp_path, smtp.port)
    code, _, err = run_cli(["--config", str(cfg), "send", "--dry-run",
                            "--as-of", MONDAY.isoformat()])
    assert code == 0, err
    with psycopg.connect(pg_url) as conn:  # a dry run leaves nothing behind
        assert conn.execute("SELECT count(*) FROM runs").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM entry_ids").fetchone() == (0,)
    assert smtp.received == []
    code, _, err = run_cli(["--config", str(cfg), "send", "--as-of", MONDAY.isoformat()])
    assert code == 0, err
    assert sorted(smtp.recipients()) == SERVED
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT slug, state FROM runs").fetchall() == [
            ("2024-06-10", "done")]
        assert sorted(conn.execute("SELECT email, state FROM deliveries").fetchall()) == [
            *((email, "sent") for email in SERVED), ("nobody@example.org", "empty")]
        assert conn.execute("SELECT count(*) FROM entry_ids").fetchone() == (len(DAEMON_POSTS),)
    code, _, err = run_cli(["--config", str(cfg), "send", "--as-of", MONDAY.isoformat()])
    assert code == 0, err
    assert sorted(smtp.recipients()) == SERVED  # nothing twice
    assert _no_runs_in_sqlite(tmp_path)

def _no_runs_in_sqlite(tmp_path: Path) -> bool:
    """The local file holds caches only: no send log there."""
    import sqlite3

    path = tmp_path / "state" / "state.sqlite3"
    if not path.exists():
        return True
    db = sqlite3.connect(path)
    try:
        return bool(db.execute("SELECT count(*) FROM runs").fetchone() == (0,))
    finally:
        db.close()


def test_the_daemon_sends_on_schedule_with_its_jobs_and_log_in_postgresql(
        pg_url: str, tmp_path: Path, smtp: SmtpServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`digest run` keeps APScheduler's job store in the same database (schedule_store_url),
    so `digest status` reads the next digest from there, as any machine would."""
    monkeypatch.setenv(ENV, pg_url)  # the daemon's process inherits it
    cfg = _site(tmp_path, smtp.port)
    with DaemonProcess(cfg, fake_now=MONDAY - 3 * SECONDS) as daemon:
        daemon.wait_for("daemon.started")
        finished = daemon.wait_for("digest.finished")
        assert finished["counts"] == {"sent": 3, "empty": 1}
        assert sorted(smtp.recipients()) == SERVED
        code, out, err = run_cli(["--config", str(cfg), "status", "--json"])
        assert code == 0, err
        now = json.loads(out)
        assert now["next_digest"]["at"] == (MONDAY + timedelta(days=7)).isoformat()
        assert [d["counts"] for d in now["digests"]] == [{"sent": 3, "empty": 1}]
        assert daemon.stop() == 0
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT id FROM apscheduler_jobs").fetchall() == [("digest",)]
        assert conn.execute("SELECT count(*) FROM runs").fetchone() == (1,)


def test_digest_check_reports_an_unusable_database_among_its_problems(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, f"postgresql://digest:hunter2-SECRET@127.0.0.1:{free_port()}/jobs")
    code, out, err = run_cli(["--config", str(_site(tmp_path)), "check"])
    assert code == 2 and "cannot connect to the database" in out + err
    assert "hunter2" not in out + err and "Traceback" not in out + err


def test_status_on_an_empty_database_reads_nothing_and_creates_nothing(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, pg_url)
    code, out, err = run_cli(["--config", str(_site(tmp_path)), "status", "--json"])
    assert code == 0, err
    assert json.loads(out)["digests"] == []
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT to_regclass('digest_schema')").fetchone() == (None,)
