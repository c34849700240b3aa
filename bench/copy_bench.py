"""Time `digest copy-state` moving a big SQLite state into PostgreSQL, against the plainest
copy of the same rows: the `sqlite3` shell's CSV piped into `psql`'s \\copy, table by table.

Why this exists: a site moves to PostgreSQL once, but its state is as big as its list and
its history: one digest to 1,000,000 subscribers is 1,000,000 deliveries. copy-state reads
each table through Python's sqlite3 and writes it with psycopg's COPY in one transaction,
converting a few columns on the way (state/pg_copy.py); the reference does no conversion
and no Python, so the ratio is what digest's copy costs over the floor. Both copy into a
new database with digest's schema (its indexes too), on a throwaway PostgreSQL server with
its durable defaults (tests/pg_server.py), and each copy is checked by counting the rows.

    python bench/copy_bench.py [--subscribers N] [--suppressed M]

Needs the `sqlite3` shell (apt-get install sqlite3) and PostgreSQL's binaries (postgresql).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import psycopg
import yaml
from pg_server import PgServer, binaries

from digest.state.interface import RunPost
from digest.state.pg_copy import TABLES
from digest.state.postgres import PostgresState
from digest.state.sqlite import SqliteState
from digest.state.store import DATABASE, Store

DIGEST = Path(sys.executable).with_name("digest")
VARIABLE = "DIGEST_BENCH_DATABASE_URL"


def make_state(folder: Path, subscribers: int, suppressed: int) -> dict[str, int]:
    """A state folder whose SQLite state holds one digest to *subscribers*, most of it
    sent, and *suppressed* suppressions; the rows of each table."""
    state = SqliteState(Store.open(folder))
    try:
        start = datetime(2024, 6, 3, tzinfo=UTC)
        run = state.create_run(slug="2024-06-10", start=start, end=start + timedelta(days=7),
                               posts=[RunPost(f"urn:{i}", f"{i}.md", f"{i}|Post {i}")
                                      for i in range(20)],
                               subscribers=((f"user{i}@example.org", f"user{i}@example.org")
                                            for i in range(subscribers)))
        db = state.store.db
        db.execute("UPDATE deliveries SET state = 'sent', attempts = 1, code = 250, "
                   "reply = '250 2.0.0 Ok: queued as ABC123', updated_at = '2024-06-10T13:"
                   "00:00+00:00', message_id = '<' || subscriber || '@jobs.example.org>', "
                   "posts = 3 WHERE run_id = ? AND rowid % 10 != 0", (run.id,))
        db.executemany("INSERT INTO suppressed VALUES (?, '2024-06-01T00:00:00+00:00', "
                       "'unsubscribed', '')", ((f"gone{i}@example.org",)
                                                for i in range(suppressed)))
        return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        state.close()


def fresh(server: PgServer) -> str:
    """A new database with digest's schema and nothing in it."""
    url = server.create_database()
    PostgresState(url).close()
    return url


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
                for t in TABLES}


def copy_state(config: Path, url: str) -> tuple[float, float]:
    """`digest copy-state` as a child: (wall seconds, its CPU seconds); its peak RSS is
    kept in PEAK_MB."""
    env = {**os.environ, VARIABLE: url}
    started = time.perf_counter()
    proc = subprocess.Popen([str(DIGEST), "--config", str(config), "copy-state"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    out, err = proc.communicate()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"copy-state failed: {out.decode()}{err.decode()}")
    PEAK_MB.append(usage.ru_maxrss / 1024)
    return wall, usage.ru_utime + usage.ru_stime


PEAK_MB: list[float] = []


def reference(database: Path, url: str, rows: dict[str, int]) -> tuple[float, float]:
    """The same tables by `sqlite3 -csv` | `psql \\copy`, in one shell each: (wall, CPU of
    the children)."""
    lite = {t: [r[1] for r in _pragma(database, t)] for t in TABLES}
    generated = {"deliveries": "seq", "run_actions": "id"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    for table in TABLES:
        if not rows[table]:
            continue
        with psycopg.connect(url) as conn:
            there = {r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
                (table,))}
        columns = ",".join(c for c in lite[table] if c in there and c != generated.get(table))
        out = subprocess.Popen(["sqlite3", "-csv", str(database),
                                f"SELECT {columns} FROM {table} ORDER BY rowid"],
                               stdout=subprocess.PIPE)
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c",
                        f"\\copy {table} ({columns}) FROM STDIN WITH (FORMAT csv)"],
                       stdin=out.stdout, check=True)
        assert out.stdout is not None
        out.stdout.close()
        if out.wait() != 0:
            raise RuntimeError(f"sqlite3 failed on {table}")
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _pragma(database: Path, table: str) -> list[tuple[object, ...]]:
    import sqlite3

    with sqlite3.connect(database) as db:
        return list(db.execute(f"PRAGMA table_info({table})"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--suppressed", type=int, default=20_000)
    args = parser.parse_args()
    found = binaries()
    if found is None or shutil.which("sqlite3") is None or shutil.which("psql") is None:
        parser.error("needs PostgreSQL's binaries, psql and the sqlite3 shell "
                     "(apt-get install postgresql sqlite3)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = root / "config.yaml"
        (root / "_posts").mkdir()
        config.write_text(yaml.safe_dump({
            "site": {"url": "https://jobs.example.org", "title": "bench",
                     "timezone": "America/New_York"},
            "posts": str(root / "_posts"), "output": str(root / "public"),
            "state": str(root / "state"), "database_env": VARIABLE}), encoding="utf-8")
        started = time.perf_counter()
        rows = make_state(root / "state", args.subscribers, args.suppressed)
        made = time.perf_counter() - started
        size = (root / "state" / DATABASE).stat().st_size / 1e6
        server = PgServer(found, durable=True).start()
        try:
            results = []
            for name, copy in (("digest copy-state", lambda url: copy_state(config, url)),
                               ("sqlite3 -csv | psql \\copy", lambda url: reference(
                                   root / "state" / DATABASE, url, rows))):
                url = fresh(server)
                wall, cpu = copy(url)
                if counts(url) != rows:
                    raise RuntimeError(f"{name}: the rows do not add up: {counts(url)}")
                results.append((name, wall, cpu))
        finally:
            server.stop()
    total = sum(rows.values())
    print(f"copy into PostgreSQL: {total:,} rows ({rows['deliveries']:,} deliveries, "
          f"{rows['suppressed']:,} suppressions), state.sqlite3 {size:.0f} MB, made in "
          f"{made:.1f} s; {os.cpu_count()} CPUs")
    print(f"{'copy':>28} {'wall s':>8} {'rows/s':>10} {'CPU s':>7} {'vs reference':>12}")
    ref_wall = results[-1][1]
    for name, wall, cpu in results:
        print(f"{name:>28} {wall:>8.2f} {total / wall:>10,.0f} {cpu:>7.2f} "
              f"{wall / ref_wall:>12.2f}")
    print("CPU s: the copying processes only (digest; sqlite3 and psql), not the server's; "
          f"digest copy-state's peak RSS {PEAK_MB[0]:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
