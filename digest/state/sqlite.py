"""SharedState on SQLite: the send log (sendlog.py) plus the entry ids, the archive of sent
digests, the daemon's notes, the schedule's next run and a health check, all in the state
database (store.py).

APScheduler keeps its job store in the same file (daemon/schedule.py); next_run reads only
its plain `next_run_time` column. Its `job_state` column is a pickle, and unpickling runs
whatever code the bytes name: a state database copied from elsewhere, or written by another
user, must not run code in a read-only command.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from .interface import (
    Archived,
    Asked,
    Bounce,
    Changes,
    Delivery,
    Member,
    NextRun,
    Node,
    Pending,
    Run,
    RunAction,
    RunControl,
    Source,
    Suppression,
)
from .lists import Lists
from .sendlog import SendLog
from .store import Store

JOBS_TABLE = "apscheduler_jobs"  # APScheduler's SQLAlchemyJobStore's default table


class SqliteState(SendLog, Lists):
    """The shared state in one SQLite file; *read_only*: opened as `digest status` does,
    where a database a daemon has not yet written may lack tables (then nothing is there)."""

    def __init__(self, store: Store, *, read_only: bool = False) -> None:
        SendLog.__init__(self, store)
        self.read_only = read_only

    def batch(self) -> AbstractContextManager[None]:
        return self.store.batch()

    def changes(self) -> Changes:
        return Asked(self)

    def _has_table(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                               (name,)).fetchone() is not None

    def _lacks(self, table: str) -> bool:
        """A read-only look at a database written before *table* existed: nothing is in it."""
        return self.read_only and not self._has_table(table)

    def runs(self, limit: int = 10) -> list[Run]:
        if self._lacks("runs"):
            return []
        return super().runs(limit)

    def nodes(self) -> list[Node]:  # before 0.11, or never written: no heartbeats yet
        return [] if self._lacks("nodes") else super().nodes()

    # what a read-only look asks of a database older than migration 0.10: no owner's actions
    def run_control(self, run: Run) -> RunControl:
        if self._lacks("run_actions"):
            return RunControl(run.state, False, None, None, None)
        return super().run_control(run)

    def run_actions(self, run: Run) -> list[RunAction]:
        return [] if self._lacks("run_actions") else super().run_actions(run)

    # what a read-only look asks of a database older than migration 0.9 (members, pending,
    # bounces, the suppressions' evidence) or 0.2 (the send log): nothing there yet
    def members(self, source: Source | None = None) -> list[Member]:
        return [] if self._lacks("members") else super().members(source)

    def member(self, key: str) -> Member | None:
        return None if self._lacks("members") else super().member(key)

    def pending(self, key: str) -> Pending | None:
        return None if self._lacks("pending") else super().pending(key)

    def pending_count(self, since: datetime | None = None) -> int:
        return 0 if self._lacks("pending") else super().pending_count(since)

    def bounces(self, key: str | None = None, *, since: datetime | None = None,
                limit: int = 1000) -> list[Bounce]:
        return [] if self._lacks("bounces") else super().bounces(key, since=since, limit=limit)

    def deliveries_of(self, key: str, limit: int = 10) -> list[Delivery]:
        return [] if self._lacks("deliveries") else super().deliveries_of(key, limit)

    def suppressed(self) -> set[str]:
        return set() if self._lacks("suppressed") else super().suppressed()

    def suppression(self, key: str) -> Suppression | None:
        if self._lacks("members"):  # before 0.9: no evidence column
            return next((s for s in self.suppressions() if s.key == key), None)
        return super().suppression(key)

    def suppressions(self) -> list[Suppression]:
        if self._lacks("suppressed"):
            return []
        if self._lacks("members"):  # before 0.9: no evidence column
            return [Suppression(key, datetime.fromisoformat(since), reason)
                    for key, since, reason in self.db.execute(
                        "SELECT subscriber, since, reason FROM suppressed "
                        "ORDER BY since, subscriber")]
        return super().suppressions()

    def preferences(self) -> dict[str, tuple[str, ...] | None]:
        return {} if self._lacks("preferences") else super().preferences()

    def preference(self, key: str) -> tuple[bool, tuple[str, ...] | None]:
        return (False, None) if self._lacks("preferences") else super().preference(key)

    def snapshot(self) -> tuple[str, str, str] | None:
        return None if self._lacks("subscribers_snapshot") else super().snapshot()

    # entry ids ---------------------------------------------------------------------------
    def entry_ids(self) -> dict[str, str]:
        return self.store.entry_ids()

    def entry_ids_of(self, paths: Iterable[str]) -> dict[str, str]:
        return self.store.entry_ids_of(paths)

    def has_entry_ids(self) -> bool:
        return self.store.has_entry_ids()

    def taken_ids(self, entry_ids: Iterable[str]) -> set[str]:
        return self.store.taken_ids(entry_ids)

    def add_entry_ids(self, rows: Iterable[tuple[str, str, str]]) -> None:
        self.store.add_entry_ids(rows)

    def rename_entry_ids(self, renames: Iterable[tuple[str, str]]) -> None:
        self.store.rename_entry_ids(renames)

    def first_seen(self) -> dict[str, str]:
        return self.store.first_seen()

    # the archive ---------------------------------------------------------------------------
    def save_archive(self, entry: Archived, text: str) -> bool:
        with self.store.atomic() as db:
            return db.execute(
                "INSERT OR IGNORE INTO archive VALUES (?, ?, ?, ?, ?)",
                (entry.slug, entry.period_start.isoformat(), entry.period_end.isoformat(),
                 entry.period_end.timestamp(), text)).rowcount == 1

    def archive_index(self) -> list[Archived]:
        if self.read_only and not self._has_table("archive"):
            return []
        return [Archived(slug, datetime.fromisoformat(start), datetime.fromisoformat(end))
                for slug, start, end in self.db.execute(
                    "SELECT slug, period_start, period_end FROM archive "
                    "ORDER BY ends_at DESC, slug DESC")]

    def archived(self, slug: str) -> str | None:
        if self.read_only and not self._has_table("archive"):
            return None
        row = self.db.execute("SELECT text FROM archive WHERE slug = ?", (slug,)).fetchone()
        return None if row is None else str(row[0])

    # the daemon's notes and the schedule ---------------------------------------------------
    def note(self, key: str, data: dict[str, Any]) -> None:
        with self.store.atomic() as db:
            db.execute("INSERT OR REPLACE INTO daemon_status VALUES (?, ?, ?)",
                       (key, json.dumps(data, default=str), datetime.now(UTC).isoformat()))

    def notes(self) -> dict[str, dict[str, Any]]:
        if not self._has_table("daemon_status"):
            return {}
        return {key: json.loads(data) for key, data in
                self.db.execute("SELECT key, data FROM daemon_status ORDER BY key")}

    def drop_notes(self, keys: Iterable[str]) -> int:
        if not self._has_table("daemon_status"):
            return 0
        with self.store.atomic() as db:
            before = db.total_changes
            db.executemany("DELETE FROM daemon_status WHERE key = ?", [(k,) for k in keys])
            return db.total_changes - before

    def next_run(self, job_id: str) -> NextRun | None:
        if not self._has_table(JOBS_TABLE):
            return None
        row = self.db.execute(f"SELECT next_run_time FROM {JOBS_TABLE} WHERE id = ?",
                              (job_id,)).fetchone()
        if row is None:
            return None
        return NextRun(None if row[0] is None else datetime.fromtimestamp(float(row[0]), UTC))

    # health ------------------------------------------------------------------------------
    def ping(self) -> None:
        self.db.execute("SELECT 1").fetchone()

    def close(self) -> None:
        self.store.close()
