"""The state database (SQLite): what was parsed, rendered and written, and the entry ids.

One file under the `state:` folder. Each migration is applied in the same transaction as
its record, so a crash never leaves a half-upgraded schema.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

MIGRATIONS = (
    """
    CREATE TABLE parsed (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,
                         fingerprint TEXT, kind TEXT, data TEXT);
    CREATE TABLE entry_ids (path TEXT PRIMARY KEY, entry_id TEXT NOT NULL UNIQUE,
                            first_seen TEXT NOT NULL);
    CREATE TABLE rendered (path TEXT PRIMARY KEY, key TEXT, data TEXT);
    CREATE TABLE feeds (name TEXT PRIMARY KEY, inputs TEXT);
    """,
    # 0.1.1: cache rows as one JSON array; the parse cache is only a cache, so start afresh
    """
    DROP TABLE parsed;
    CREATE TABLE parsed (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,
                         fingerprint TEXT, row TEXT);
    """,
    # 0.2: the digest's send log (see sendlog.py)
    """
    CREATE TABLE runs (id INTEGER PRIMARY KEY, slug TEXT NOT NULL UNIQUE,
                       period_start TEXT NOT NULL, period_end TEXT NOT NULL UNIQUE,
                       created_at TEXT NOT NULL, finished_at TEXT,
                       state TEXT NOT NULL CHECK (state IN ('sending', 'paused', 'done')));
    CREATE TABLE run_posts (run_id INTEGER NOT NULL REFERENCES runs(id),
                            entry_id TEXT NOT NULL UNIQUE, path TEXT NOT NULL,
                            twin TEXT NOT NULL);
    CREATE INDEX run_posts_run ON run_posts(run_id);
    CREATE INDEX run_posts_twin ON run_posts(twin);
    CREATE TABLE deliveries (run_id INTEGER NOT NULL REFERENCES runs(id),
                             subscriber TEXT NOT NULL, email TEXT NOT NULL,
                             state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed',
                                 'deferred', 'empty', 'suppressed')),
                             attempts INTEGER NOT NULL DEFAULT 0, code INTEGER, reply TEXT,
                             message_id TEXT, posts INTEGER, updated_at TEXT,
                             PRIMARY KEY (run_id, subscriber));
    CREATE INDEX deliveries_state ON deliveries(run_id, state);
    CREATE TABLE suppressed (subscriber TEXT PRIMARY KEY, since TEXT NOT NULL,
                             reason TEXT NOT NULL);
    CREATE TABLE preferences (subscriber TEXT PRIMARY KEY, tags TEXT NOT NULL,
                              updated_at TEXT NOT NULL);
    CREATE TABLE subscribers_snapshot (id INTEGER PRIMARY KEY CHECK (id = 1),
                                       path TEXT NOT NULL, text TEXT NOT NULL,
                                       saved_at TEXT NOT NULL);
    """,
    # 0.3: what `digest run` last did and found, for `digest status` (see status.py)
    """
    CREATE TABLE daemon_status (key TEXT PRIMARY KEY, data TEXT NOT NULL,
                                updated_at TEXT NOT NULL);
    """,
)


class Store:
    """A thin, typed wrapper over the state database; every method is one small transaction."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()

    @classmethod
    def open(cls, state_dir: Path) -> Store:
        return cls(state_dir / "state.sqlite3")

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def atomic(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.atomic() as db:
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={number}")

    # parse cache -------------------------------------------------------------------------
    def parsed(self) -> list[tuple[str, int, int, str, str]]:
        """(path, size, mtime_ns, fingerprint, row) of every cached reading."""
        return self.db.execute("SELECT path, size, mtime_ns, fingerprint, row FROM parsed"
                               ).fetchall()

    def save_parsed(self, rows: Iterable[tuple[str, int, int, str, str]],
                    gone: Iterable[str]) -> None:
        with self.atomic() as db:
            db.executemany("INSERT OR REPLACE INTO parsed VALUES (?, ?, ?, ?, ?)", rows)
            db.executemany("DELETE FROM parsed WHERE path = ?", ((p,) for p in gone))

    # entry ids ---------------------------------------------------------------------------
    def entry_ids(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT path, entry_id FROM entry_ids"))

    def first_seen(self) -> dict[str, str]:
        """entry id → when digest first read the post as published (UTC, ISO 8601)."""
        return dict(self.db.execute("SELECT entry_id, first_seen FROM entry_ids"))

    def add_entry_ids(self, rows: Iterable[tuple[str, str, str]]) -> None:
        with self.atomic() as db:
            db.executemany("INSERT OR IGNORE INTO entry_ids VALUES (?, ?, ?)", rows)

    # rendered content --------------------------------------------------------------------
    def rendered(self, paths: Iterable[str]) -> dict[str, tuple[str, dict[str, str]]]:
        wanted = list(paths)
        found = {}
        for start in range(0, len(wanted), 500):  # SQLite caps bound parameters per query
            batch = wanted[start:start + 500]
            marks = ",".join("?" * len(batch))
            for path, key, data in self.db.execute(
                    f"SELECT path, key, data FROM rendered WHERE path IN ({marks})", batch):
                found[path] = (key, json.loads(data))
        return found

    def save_rendered(self, rows: Iterable[tuple[str, str, dict[str, str]]]) -> None:
        with self.atomic() as db:
            db.executemany("INSERT OR REPLACE INTO rendered VALUES (?, ?, ?)",
                           ((p, k, json.dumps(d)) for p, k, d in rows))

    # feeds -------------------------------------------------------------------------------
    def feed_inputs(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT name, inputs FROM feeds"))

    def save_feed_inputs(self, rows: Iterable[tuple[str, str]],
                         gone: Iterable[str] = ()) -> None:
        with self.atomic() as db:
            db.executemany("INSERT OR REPLACE INTO feeds VALUES (?, ?)", rows)
            db.executemany("DELETE FROM feeds WHERE name = ?", ((n,) for n in gone))
