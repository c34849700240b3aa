"""Several `digest send` processes on one state serve one digest together: each claims
leased batches, so everyone gets exactly one message, sooner than from one sender; a sender
SIGKILLed mid-batch loses its leases to the others, who finish its rows (nobody skipped,
duplicates only from what it had in flight)."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import PROJECT, STORE_ENV, STORES, make_site, post, store_config
from smtp_server import Faults, SmtpServer

from digest.config import load_config
from digest.state.open import open_state

AS_OF = "2024-06-10T09:00:00-04:00"
POSTS = {
    "2024-06-04-organizer.md": post("Union Data Organizer", tags="[union, data]"),
    "2024-06-05-analyst.md": post("Campaign Analyst", tags="[campaigns, analytics]"),
}
N = 300
EVERYONE = {f"user{i}@example.org" for i in range(N)}
SECRET = "multi-sender-secret-0123456789"


@pytest.fixture(params=STORES)
def db(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The config keys choosing the shared state (the senders inherit the variable)."""
    return store_config(request.param, request)


def site(tmp_path: Path, server: SmtpServer, db: dict[str, Any], **smtp: Any) -> Path:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "subscribers.yaml").write_text(
        yaml.safe_dump([{"email": email} for email in sorted(EVERYONE)]), encoding="utf-8")
    return make_site(tmp_path, dict(POSTS), extra={
        **db, "subscribers": "subscribers.yaml",
        "digest": {"from": "Jobs Board <jobs@example.org>", "noun": "job"},
        "web": {"base_url": "https://jobs.example.org/digest"},
        "smtp": {"host": "localhost", "port": server.port, "security": "none", "timeout": 5,
                 "backoff": 0.05, **smtp}})


STARTED: list[subprocess.Popen[str]] = []  # every sender of the running test


@pytest.fixture(autouse=True)
def no_sender_left() -> Iterator[None]:
    """A test that fails midway (a sender timed out) leaves no other sender running, stopped
    or sending on into the next test's relay."""
    yield
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.kill()  # a stopped process dies of SIGKILL too
            process.communicate(timeout=10)


def sender(config: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, DIGEST_SECRET=SECRET, PYTHONIOENCODING="utf-8")
    process = subprocess.Popen([sys.executable, "-m", "digest", "--config", str(config),
                                "send", "--as-of", AS_OF], cwd=PROJECT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    STARTED.append(process)
    return process


def finish(process: subprocess.Popen[str]) -> str:
    """Its output and log, once it exited 0."""
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return out + err


def runs_of(config: Path) -> list[tuple[str, str, dict[str, int]]]:
    state = open_state(load_config(config))
    try:
        return [(run.slug, run.state, state.counts(run)) for run in state.runs()]
    finally:
        state.close()


def holds(config: Path, pid: int) -> bool:
    """Whether the sender *pid* holds leased deliveries now (and has sent some)."""
    state = open_state(load_config(config))
    try:
        run = state.latest_run()
        return run is not None and state.counts(run).get("sent", 0) > 0 and any(
            node.endswith(f":{pid}") for node in state.leases(run))
    finally:
        state.close()


def freeze(config: Path, process: subprocess.Popen[str]) -> None:
    """SIGSTOP *process* once it holds a batch, but not inside an SQLite write: a process
    stopped there keeps the state database's lock, and every other sender waits on it (as
    it must: SQLite cannot tell a stopped process from a slow one); its leases never come
    into it. A PostgreSQL transaction left open ends by idle_in_transaction_session_timeout."""
    database = load_config(config).state / "state.sqlite3"
    deadline = time.monotonic() + 60
    while True:
        while not holds(config, process.pid):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.02)
        process.send_signal(signal.SIGSTOP)
        if not database.exists() or not writing(database):
            return
        process.send_signal(signal.SIGCONT)


def writing(database: Path) -> bool:
    """Whether a process holds *database*'s write lock now."""
    db = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        db.close()


def send_with(tmp_path: Path, senders: int, db: dict[str, Any]
              ) -> tuple[float, float, list[str], Counter[str], Path]:
    """*senders* processes started together on a fresh site, one connection each; (wall
    seconds, seconds from the server's first message to its last, their outputs, messages
    per recipient)."""
    with SmtpServer(faults=Faults(data_seconds=0.02)) as server:
        config = site(tmp_path, server, db, concurrency=1, claim_batch=50)
        started = time.monotonic()
        processes = [sender(config) for _ in range(senders)]
        outputs = [finish(p) for p in processes]
        wall = time.monotonic() - started
        span = server.received[-1].at - server.received[0].at
        return wall, span, outputs, Counter(server.recipients()), config


def test_three_senders_share_one_digest_faster_than_one(
        tmp_path: Path, db: dict[str, Any], request: pytest.FixtureRequest) -> None:
    _, one_span, outputs, got, _ = send_with(tmp_path / "one", 1, db)
    assert got == Counter(EVERYONE)
    assert not any("by this process" in out for out in outputs)  # alone: no parts to tell
    if db:  # a fresh database for the second site, as its own state folder is
        request.getfixturevalue("monkeypatch").setenv(
            STORE_ENV, request.getfixturevalue("pg_server").create_database())
    _, three_span, outputs, got, config = send_with(tmp_path / "three", 3, db)
    assert got == Counter(EVERYONE)  # everyone exactly once
    # one run, made once whoever started first, and done
    assert runs_of(config) == [("2024-06-10", "done", {"sent": N})]
    # each reports the whole digest and its own part; the parts add up
    mine = [int(line.split("by this process: sent ")[1].split(",")[0])
            for out in outputs for line in out.splitlines() if "by this process" in line]
    assert sum(mine) == N and len(mine) >= 2, outputs
    assert not any("paused by the owner" in out for out in outputs)
    # ~20 ms a message: three share the waiting, so the relay sees the digest go out in well
    # under the time one sender takes. Measured from the relay's first message to its last:
    # the wall time also counts three interpreters starting at once, which on a loaded
    # 2-core machine took 3 s more than one (12.9 s against 9.9 s) with the span still halved
    assert three_span < 0.6 * one_span, (three_span, one_span)


def test_a_sender_killed_mid_batch_loses_its_rows_to_the_others(tmp_path: Path,
                                                                db: dict[str, Any]) -> None:
    rng = random.Random(int(os.environ.get("CRASH_SEED", "7")))
    concurrency = 2
    with SmtpServer(faults=Faults(data_seconds=0.02)) as server:
        config = site(tmp_path, server, db, concurrency=concurrency, claim_batch=40,
                      lease_seconds=3)
        processes = [sender(config) for _ in range(3)]
        victim = processes.pop(rng.randrange(3))
        threshold = rng.randint(30, 150)  # a random moment while messages are going out
        deadline = time.monotonic() + 60
        while len(server.received) < threshold:
            assert time.monotonic() < deadline and victim.poll() is None
            time.sleep(0.01)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        for process in processes:
            finish(process)
        got = Counter(server.recipients())
        status = subprocess.run([sys.executable, "-m", "digest", "--config", str(config),
                                 "status", "--json"], cwd=PROJECT, capture_output=True,
                                text=True, timeout=60, env=dict(os.environ,
                                                               DIGEST_SECRET=SECRET))
    assert set(got) == EVERYONE  # nobody skipped
    duplicates = sum(got.values()) - N
    assert duplicates <= concurrency, got.most_common(5)  # only what it had in flight
    assert runs_of(config)[0][:2] == ("2024-06-10", "done")
    # the killed node never left: `digest status` still lists it (gone once its lease is
    # over); those that finished took their rows out
    nodes = json.loads(status.stdout)["nodes"]
    assert [n["node"].rpartition(":")[2] for n in nodes] == [str(victim.pid)], nodes
    assert nodes[0]["run"] == "2024-06-10" and nodes[0]["lease_seconds"] == 3


def test_a_sender_that_stops_beating_loses_its_rows_when_its_lease_expires(
        tmp_path: Path, db: dict[str, Any]) -> None:
    """SIGSTOP: the process is there but silent, as a node on a lost machine would be; the
    others cannot tell it is dead, so they wait out its lease, then finish its rows."""
    concurrency, lease = 2, 3
    with SmtpServer(faults=Faults(data_seconds=0.02)) as server:
        config = site(tmp_path, server, db, concurrency=concurrency, claim_batch=40,
                      lease_seconds=lease)
        # alone first: with all three started at once, the others, sending at 100 a
        # second, now and then finished the run before the test saw this one hold a batch
        frozen = sender(config)
        freeze(config, frozen)  # stopped while it holds a batch
        stopped = time.monotonic()
        others = [sender(config) for _ in range(2)]
        try:
            for process in others:
                finish(process)
            waited = time.monotonic() - stopped
        finally:
            frozen.send_signal(signal.SIGKILL)
            frozen.send_signal(signal.SIGCONT)
            frozen.wait(timeout=10)
        got = Counter(server.recipients())
    assert set(got) == EVERYONE  # nobody skipped
    assert sum(got.values()) - N <= concurrency, got.most_common(5)
    assert waited >= lease - 0.5  # its rows went only once its lease ran out
    assert runs_of(config)[0][:2] == ("2024-06-10", "done")


def test_a_sender_frozen_past_its_lease_leaves_what_others_took_when_it_wakes(
        tmp_path: Path, db: dict[str, Any]) -> None:
    """A sender frozen (SIGSTOP: its machine paused, or cut off from the state) for longer
    than its lease wakes still holding the rest of its batch in memory, while the others have
    taken those rows and are sending them. It asks which rows are still its own before it
    sends another, so nobody gets a second message beyond what it had in flight."""
    concurrency, batch = 2, 60
    with SmtpServer(faults=Faults(data_seconds=0.05)) as server:
        config = site(tmp_path, server, db, concurrency=concurrency, claim_batch=batch,
                      lease_seconds=2)
        frozen = sender(config)  # alone first: it makes the run and claims its first rows
        freeze(config, frozen)
        deadline = time.monotonic() + 60
        try:
            time.sleep(0.5)  # what it had in flight reaches the relay
            sent_before = set(server.recipients())
            its_rest = set(sorted(EVERYONE)[:batch]) - sent_before  # in the list's order
            others = [sender(config) for _ in range(2)]
            while not its_rest & set(server.recipients()):  # its lease ran out; taken
                assert time.monotonic() < deadline, "the others never took its rows"
                time.sleep(0.02)
        finally:
            frozen.send_signal(signal.SIGCONT)
        logs = [finish(p) for p in (frozen, *others)]
        got = Counter(server.recipients())
    assert set(got) == EVERYONE  # nobody skipped
    assert sum(got.values()) - N <= concurrency, got.most_common(5)
    assert "another sender took" in logs[0], logs[0]
    assert not any("Traceback" in log for log in logs)
    assert runs_of(config)[0][:2] == ("2024-06-10", "done")
