"""Two releases of digest on one PostgreSQL database, as when machines are upgraded one at a
time: a newer digest's migration that declares it still works with this one (it only adds)
leaves this digest working; one that does not stops a sender already at work at its next
claim, with a message saying what to do, and nothing more is sent from it. The newer digest
is played by its migration, applied by hand (a real server: tests/pg_server.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from conftest import PROJECT, make_site, post
from smtp_server import Faults, SmtpServer

from digest.config import load_config
from digest.errors import StateError
from digest.state.open import open_state
from digest.state.pg_migrations import MIGRATIONS
from digest.state.postgres import PostgresState

ENV = "DIGEST_VERSIONS_DATABASE_URL"
SECRET = "versions-secret-0123456789abcdef"
AS_OF = "2024-06-10T09:00:00-04:00"
N = 200
EVERYONE = {f"user{i}@example.org" for i in range(N)}
KNOWN = len(MIGRATIONS)


@pytest.fixture
def url(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(ENV, pg_url)
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    return pg_url


def site(tmp_path: Path, smtp_port: int, **smtp: Any) -> Path:
    (tmp_path / "subscribers.yaml").write_text(
        yaml.safe_dump([{"email": email} for email in sorted(EVERYONE)]), encoding="utf-8")
    return make_site(tmp_path, {
        "2024-06-04-organizer.md": post("Union Data Organizer", tags="[union, data]"),
    }, extra={
        "database_env": ENV, "subscribers": "subscribers.yaml",
        "digest": {"from": "Jobs Board <jobs@example.org>", "noun": "job"},
        "web": {"base_url": "https://jobs.example.org/digest"},
        "smtp": {"host": "localhost", "port": smtp_port, "security": "none", "timeout": 5,
                 "backoff": 0.05, **smtp}})


def newer_digest_migrates(url: str, works_with: int) -> None:
    """What a release knowing one more migration does to the database: an added column,
    the version raised, and which older digests it still works with."""
    with psycopg.connect(url) as conn:
        conn.execute("ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS opened_at text")
        conn.execute("UPDATE digest_schema SET version = %s, works_with = %s",
                     (KNOWN + 1, works_with))


def sender(config: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, DIGEST_SECRET=SECRET, PYTHONIOENCODING="utf-8")
    return subprocess.Popen([sys.executable, "-m", "digest", "--config", str(config), "send",
                             "--as-of", AS_OF], cwd=PROJECT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        return process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        raise AssertionError(f"the sender hung; its log:\n{err}") from None


def test_a_fresh_database_says_which_digests_it_works_with(url: str) -> None:
    PostgresState(url).close()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT version, works_with FROM digest_schema").fetchone() == (
            KNOWN, 2)


def test_a_newer_schema_that_works_with_this_digest_is_used(url: str, tmp_path: Path) -> None:
    PostgresState(url).close()
    newer_digest_migrates(url, works_with=KNOWN)
    with SmtpServer() as smtp:
        process = sender(site(tmp_path, smtp.port))
        _, err = finish(process)
        assert process.returncode == 0, err
        assert Counter(smtp.recipients()) == Counter(EVERYONE)
    assert f"schema is version {KNOWN + 1}, newer than this digest knows ({KNOWN}), and " \
           "works with it" in err
    with psycopg.connect(url) as conn:  # left as the newer digest made it
        assert conn.execute("SELECT version, works_with FROM digest_schema").fetchone() == (
            KNOWN + 1, KNOWN)


def test_a_newer_schema_that_does_not_work_with_this_digest_is_refused_at_open(
        url: str) -> None:
    PostgresState(url).close()
    newer_digest_migrates(url, works_with=KNOWN + 1)
    with pytest.raises(StateError) as raised:
        PostgresState(url)
    assert f"version {KNOWN + 1}, newer than this digest knows (version {KNOWN})" in str(
        raised.value)


def test_a_sender_at_work_stops_at_its_next_claim_when_a_newer_digest_migrates(
        url: str, tmp_path: Path) -> None:
    with SmtpServer(faults=Faults(data_seconds=0.02)) as smtp:
        config = site(tmp_path, smtp.port, concurrency=1, claim_batch=10)
        process = sender(config)
        deadline = time.monotonic() + 60
        while len(smtp.received) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(smtp.received) >= 20, "the sender did not start sending"
        newer_digest_migrates(url, works_with=KNOWN + 1)
        at_migration = len(smtp.received)
        out, err = finish(process)
        after = len(smtp.received) - at_migration
    assert process.returncode == 2, out + err
    assert "a newer digest migrated the database to schema version" in err
    assert "upgrade digest on this machine" in err and "Traceback" not in err
    assert after <= 10  # at most the batch it had claimed before
    assert at_migration + after < N  # it stopped: the rest are left for the newer digest
    with psycopg.connect(url) as conn:  # what it sent is recorded, nobody marked wrongly
        sent = conn.execute("SELECT count(*) FROM deliveries WHERE state = 'sent'").fetchone()
    assert sent == (at_migration + after,)
    with pytest.raises(StateError):  # and it cannot be started again until upgraded
        open_state(load_config(config)).close()
