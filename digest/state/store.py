"""The state database (SQLite): what was parsed, rendered and written, and the entry ids.

One file under the `state:` folder. Each migration is applied in the same transaction as
its record, so a crash never leaves a half-upgraded schema.

SQLite's errors are translated here, where they enter, into errors.StateError naming the
file and what to do (damaged, locked, read-only, disk full): every statement on the
connection goes through _Cursor, so no caller has to remember to. The state folder is made
0700 and the database's files 0600 whatever the umask: it holds subscribers' addresses.
"""

from __future__ import annotations

import json
import marshal
import os
import random
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import StateError
from .files import private_files, private_folder
from .migrations import MIGRATIONS

# What the posts folder's scan finds (posts/scan.py) and the parse cache is marked with:
# relative path → (size, mtime_ns), or (reason, errno) for a name the scan cannot use.
Stats = dict[str, tuple[int, int]]

# columns (ts, date, url, published, terms, jekyll_id, warned, links), all None for a
# problem; links is None too for a post that links to no other.
ParsedRow = tuple[str, int, int, str, str, float | None, str | None, str | None,
                  int | None, str | None, str | None, int | None, str | None]


# marshal's format may change between Python versions: a snapshot of another is not read
SNAPSHOT_FORMAT = f"marshal {marshal.version} {sys.version_info[0]}.{sys.version_info[1]}"
Marks = dict[str, tuple[int | None, int]]  # path → (size, mtime_ns) of a cached reading

IN_LIST = "IN (SELECT value FROM json_each(?))"  # a list of any length as one parameter


def json_list(items: Iterable[str]) -> str:
    """A list as one JSON parameter, for IN_LIST."""
    return json.dumps(list(items))


DATABASE = "state.sqlite3"  # its name in the state folder
BUSY_TIMEOUT = 30.0  # seconds a statement waits for another process's lock before failing
RESTORE = ("restore it from a backup; or, if there is none, move it aside and run again to "
           "start afresh (README: 'If the state database is lost')")

# SQLite's primary result codes (the low byte of sqlite_errorcode) → (what, what to do)
_CAUSES: dict[int, tuple[str, str]] = {
    5: ("the state database is locked by another process",
        "stop that process or wait for it to finish (`fuser FILE` names it), then run again"),
    8: ("the state database cannot be written (it or its folder is read-only)",
        "make the state folder and its files writable by the user running digest"),
    10: ("reading or writing the state database failed",
         "check the disk that holds it (full, read-only or failing?), then run again"),
    11: ("the state database is damaged", RESTORE),
    13: ("the disk holding the state database is full",
         "free some space on it, then run again"),
    14: ("the state database cannot be opened",
         "check that the state folder exists and is readable and writable by the user "
         "running digest"),
    26: ("the state database is damaged, or not a database at all", RESTORE),
}
_CAUSES[6] = _CAUSES[5]  # SQLITE_LOCKED
_CAUSES[23] = _CAUSES[14]  # SQLITE_AUTH


def state_error(path: Path, exc: sqlite3.Error) -> StateError:
    """*exc*, raised on the database at *path*, as a StateError saying what to do."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else -1
    if primary == 10 and _full(path.parent):  # SQLite tells a full disk as an I/O error
        primary = 13
    what, todo = _CAUSES.get(primary, ("the state database failed",
                                       "run again; if it fails again, " + RESTORE))
    return StateError(path, f"{what} (SQLite: {exc})", todo.replace("FILE", str(path)))


def _full(folder: Path) -> bool:
    try:
        found = os.statvfs(folder)
    except OSError:
        return False
    return found.f_bavail * found.f_frsize < 64 * 1024  # less than a few pages left


def _translated(cursor: sqlite3.Cursor, exc: sqlite3.Error) -> BaseException:
    """A bug (a closed connection, a wrong statement) stays itself; the rest is the state's."""
    if isinstance(exc, sqlite3.ProgrammingError | sqlite3.InterfaceError):
        return exc
    connection = cursor.connection
    return state_error(getattr(connection, "path", Path("state.sqlite3")), exc)



def now_text() -> str:
    """The time a row is written, as the state's tables keep it (UTC, ISO 8601)."""
    return datetime.now(UTC).isoformat()


def tags_json(tags: tuple[str, ...] | None) -> str:
    """Chosen tags as a column keeps them; None (every post) stays null."""
    return json.dumps(None if tags is None else list(tags))


def tags_of(stored: str) -> tuple[str, ...] | None:
    """tags_json's text back into tags."""
    chosen = json.loads(stored)
    return None if chosen is None else tuple(chosen)

class _Cursor(sqlite3.Cursor):
    """A cursor whose SQLite errors come out as StateError (see _translated)."""

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.Error as exc:
            raise _translated(self, exc) from exc

    def executemany(self, sql: str, parameters: Any, /) -> _Cursor:
        try:
            return super().executemany(sql, parameters)
        except sqlite3.Error as exc:
            raise _translated(self, exc) from exc

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.Error as exc:
            raise _translated(self, exc) from exc

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.Error as exc:
            raise _translated(self, exc) from exc

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.Error as exc:
            raise _translated(self, exc) from exc


class _Connection(sqlite3.Connection):
    """A connection whose every statement runs on a _Cursor."""

    path: Path

    def cursor(self, factory: Any = _Cursor) -> Any:
        return super().cursor(factory)

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> Any:
        return self.cursor().executemany(sql, parameters)


def connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """A connection to the database at *path* whose errors are StateErrors."""
    try:
        if read_only:
            db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT,
                                 isolation_level=None, factory=_Connection)
        else:
            db = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT,
                                 factory=_Connection)
    except sqlite3.Error as exc:
        raise state_error(path, exc) from exc
    assert isinstance(db, _Connection)
    db.path = path
    return db




def _write_ahead(db: sqlite3.Connection) -> None:
    """Put the database in WAL mode (it stays so in the file), retried for BUSY_TIMEOUT while
    another process does the same: SQLite refuses that race with "database is locked" at once,
    without its busy timeout (the switch upgrades a read lock to an exclusive one, and waiting
    there could deadlock), and senders started together on a new state folder meet in it."""
    if str(db.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return  # the usual case: made so before; no lock to take
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:  # sqlite3.Connection's own execute: its raw error, to tell a lock from the rest
            sqlite3.Connection.execute(db, "PRAGMA journal_mode=WAL").fetchone()
            return
        except sqlite3.OperationalError as exc:
            busy = (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (sqlite3.SQLITE_BUSY,
                                                                   sqlite3.SQLITE_LOCKED)
            if not busy or time.monotonic() > deadline:
                raise _translated(db.cursor(), exc) from exc
        time.sleep(random.uniform(0.005, 0.03))  # apart, so the next try does not meet again


class Store:
    """A thin, typed wrapper over the state database; every method is one small transaction."""

    _batched = False  # inside batch(): atomic() makes savepoints (a class default: scratch)
    throwaway = False  # Store.scratch's copy: a shared state elsewhere must not keep writes
    _closers: tuple[Callable[[], None], ...] = ()  # see close_with

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        """*read_only*: only read, as `digest status` does: nothing created or migrated."""
        self.path = path
        if read_only:
            self.db = connect(path, read_only=True)
            return
        private_folder(path.parent)
        private_files(path)
        self.db = connect(path)
        try:
            _write_ahead(self.db)
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except BaseException:
            self.db.close()
            raise

    @classmethod
    def open(cls, state_dir: Path) -> Store:
        """The state folder's database, after removing what writers killed there left (the
        config cache's and the archive's temporary files; the outbox cleans its own)."""
        from ..util.writer import clean_stale

        clean_stale(state_dir, recursive=False)
        clean_stale(state_dir / "archive", recursive=False)
        return cls(state_dir / DATABASE)

    @classmethod
    def scratch(cls, state_dir: Path) -> Store:
        """A private copy in memory of the state database (a new one if there is none):
        everything reads as usual and may write as usual (caches, entry ids, the subscribers'
        last good copy), and it is all forgotten on close. For the commands that must leave
        the state as they found it: `digest preview` and `digest send --dry-run`.

        Why a copy, not a read-only connection: a `mode=ro` connection to a WAL database
        leaves `-wal` and `-shm` files behind when it is the last one (it may not remove
        them), `immutable=1` would ignore commits still in the WAL, and the reading code
        writes its caches as it goes. The copy is made by SQLite's backup API over an
        ordinary connection that only reads; closing it removes the files it opened, so
        the folder is left byte for byte as it was. It costs the database's size in memory,
        for one command's life. The folder is never created.
        """
        store = cls.__new__(cls)
        store.path = state_dir / DATABASE
        store.throwaway = True
        db = sqlite3.connect(":memory:", isolation_level=None, factory=_Connection)
        assert isinstance(db, _Connection)
        db.path = store.path  # errors in the copy name the database it was made from
        store.db = db
        try:
            if store.path.is_file():
                store._copy_into(db)
            store._migrate()
        except BaseException:
            db.close()
            raise
        return store

    def _copy_into(self, db: sqlite3.Connection) -> None:
        """The state database copied into *db* by SQLite's backup API; its errors (damaged,
        locked, unreadable) are StateErrors naming the database, as any other command's."""
        uri = self.path.as_uri()
        try:
            try:  # mode=rw: never create the file; falls back to ro where we may not write
                source = sqlite3.connect(f"{uri}?mode=rw", uri=True, timeout=BUSY_TIMEOUT)
            except sqlite3.OperationalError:
                source = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=BUSY_TIMEOUT)
            try:
                # take the read lock here, within the busy timeout: backup() itself retries a
                # locked database for ever
                source.execute("BEGIN")
                source.execute("SELECT count(*) FROM sqlite_master").fetchone()
                source.backup(db)
            finally:
                source.close()
        except sqlite3.Error as exc:
            raise state_error(self.path, exc) from exc

    def close(self) -> None:
        closers, self._closers = self._closers, ()
        try:
            for close in closers:
                close()
        finally:
            self.db.close()

    def close_with(self, close: Callable[[], None]) -> None:
        """Call *close* when this store closes: a shared state opened with it elsewhere (on
        PostgreSQL) lives as long as the store, as one in the same file does."""
        self._closers = (*self._closers, close)

    @contextmanager
    def atomic(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; inside batch(), a savepoint of the batch's transaction."""
        if self._batched:
            self.db.execute("SAVEPOINT atomic")
            try:
                yield self.db
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK TO atomic")
                    self.db.execute("RELEASE atomic")
                raise
            self.db.execute("RELEASE atomic")
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            if self.db.in_transaction:  # SQLite may have rolled back itself (disk full)
                self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Many atomic() writes committed as one transaction: one fsync, not one each (an
        import of 100,000 rows). Each atomic() inside still undoes itself alone if it fails;
        an error out of the batch undoes the whole batch."""
        if self._batched:
            yield
            return
        with self.atomic():
            self._batched = True
            try:
                yield
            finally:
                self._batched = False

    def _migrate(self) -> None:
        """Each migration reads the version inside its own write transaction: several
        processes opening a new database at once (senders started together) apply each
        script once, the others finding it done."""
        if self.db.execute("PRAGMA user_version").fetchone()[0] >= len(MIGRATIONS):
            return  # up to date: no write lock taken
        while True:
            with self.atomic() as db:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version >= len(MIGRATIONS):
                    return
                for statement in filter(str.strip, MIGRATIONS[version].split(";")):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={version + 1}")

    # parse cache -------------------------------------------------------------------------
    def parse_marks(self, fingerprint: str) -> tuple[Marks, int, bool]:
        """path → (size, mtime_ns) of every cached reading, size None if made with other
        settings: a reading is still valid if this equals the file's (size, mtime_ns).

        Also the write number it was read at (for save_parsed) and whether it came from the
        snapshot; one read transaction, so the three agree.
        """
        self.db.execute("BEGIN")
        try:
            seq = self.parse_seq()
            found = self.db.execute(
                "SELECT marks FROM parse_snapshot WHERE fingerprint = ? AND format = ?",
                (fingerprint, SNAPSHOT_FORMAT)).fetchone()
            if found is not None:
                try:
                    marks = marshal.loads(found[0])
                except (EOFError, ValueError, TypeError):  # damaged: the rows still say it all
                    marks = None
                if isinstance(marks, dict):
                    return marks, seq, True
            return {path: (size, mtime) for path, size, mtime in self.db.execute(
                "SELECT path, iif(fingerprint = ?, size, NULL), mtime_ns FROM parsed",
                (fingerprint,))}, seq, False
        finally:
            if self.db.in_transaction:
                self.db.execute("COMMIT")

    def parsed_rows(self) -> list[tuple[str, str]]:
        """(path, row) of every cached reading."""
        return self.db.execute("SELECT path, row FROM parsed").fetchall()

    def save_parsed(self, rows: Iterable[ParsedRow], gone: Iterable[str], *,
                    fingerprint: str, marks: Stats,
                    based_on: int) -> None:
        """Store new readings under the next write number and forget the files gone.

        *marks* is what the cache holds once they are saved, if nobody wrote to it since
        write number *based_on*: kept as the snapshot parse_marks reads first. If somebody
        did, the snapshot is dropped (the next build reads the rows) rather than risk one
        that says a stale reading is fresh.
        """
        gone = list(gone)
        with self.atomic() as db:  # *rows* may be a generator: consumed in here, as it yields
            seq = self.parse_seq()
            written = db.executemany("INSERT OR REPLACE INTO parsed VALUES "
                                     f"(?, ?, ?, ?, ?, {seq + 1}, ?, ?, ?, ?, ?, ?, ?, ?)",
                                     rows).rowcount
            if written > 0 or gone:
                db.executemany("DELETE FROM parsed WHERE path = ?", ((p,) for p in gone))
                db.executemany(f"INSERT INTO parsed_gone VALUES (?, {seq + 1})",
                               ((p,) for p in gone))
                db.execute("INSERT OR REPLACE INTO meta VALUES ('parse_seq', ?)",
                           (str(seq + 1),))
            if seq == based_on:
                db.execute("INSERT OR REPLACE INTO parse_snapshot VALUES (1, ?, ?, ?)",
                           (fingerprint, SNAPSHOT_FORMAT, marshal.dumps(marks)))
            else:
                db.execute("DELETE FROM parse_snapshot")

    def changed_since(self, seq: int) -> set[str]:
        """Paths written or deleted after write number *seq*; older deletions are forgotten."""
        self.db.execute("DELETE FROM parsed_gone WHERE seq <= ?", (seq,))
        return {p for (p,) in self.db.execute(
            "SELECT path FROM parsed WHERE seq > ?1 UNION SELECT path FROM parsed_gone "
            "WHERE seq > ?1", (seq,))}

    def parse_seq(self) -> int:
        """The number of the latest write to the parse cache (0 before the first)."""
        return int(self.meta("parse_seq") or 0)

    # small values ------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        found = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if found is None else str(found[0])

    # entry ids ---------------------------------------------------------------------------
    def entry_ids(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT path, entry_id FROM entry_ids"))

    def first_seen(self) -> dict[str, str]:
        """entry id → when digest first read the post as published (UTC, ISO 8601)."""
        return dict(self.db.execute("SELECT entry_id, first_seen FROM entry_ids"))

    def has_entry_ids(self) -> bool:
        return bool(self.db.execute("SELECT EXISTS (SELECT 1 FROM entry_ids)").fetchone()[0])

    def entry_ids_of(self, paths: Iterable[str]) -> dict[str, str]:
        return dict(self.db.execute(
            f"SELECT path, entry_id FROM entry_ids WHERE path {IN_LIST}",
            (json_list(paths),)))

    def taken_ids(self, entry_ids: Iterable[str]) -> set[str]:
        """Which of *entry_ids* some post already has."""
        return {i for (i,) in self.db.execute(
            f"SELECT entry_id FROM entry_ids WHERE entry_id {IN_LIST}",
            (json_list(entry_ids),))}

    def add_entry_ids(self, rows: Iterable[tuple[str, str, str]]) -> None:
        with self.atomic() as db:
            db.executemany("INSERT OR IGNORE INTO entry_ids VALUES (?, ?, ?)", rows)

    def rename_entry_ids(self, renames: Iterable[tuple[str, str]]) -> None:
        with self.atomic() as db:
            db.executemany("UPDATE OR IGNORE entry_ids SET path = ? WHERE path = ?",
                           ((new, old) for old, new in renames))

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
                         gone: Iterable[str] = (), meta: Mapping[str, str] | None = None) -> None:
        """Record the feeds just written; with them, no feed is left to check (posts/index.py).
        *meta*: what else describes the files written (where they are), kept with them."""
        with self.atomic() as db:
            db.executemany("INSERT OR REPLACE INTO feeds VALUES (?, ?)", rows)
            db.executemany("DELETE FROM feeds WHERE name = ?", ((n,) for n in gone))
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", (meta or {}).items())
            db.execute("DELETE FROM meta WHERE key = 'dirty_feeds'")

    # reading parts of the parse cache ----------------------------------------------------
    def readings(self, paths: Iterable[str]) -> list[tuple[str, str]]:
        """(path, row) of the cached readings of *paths*."""
        return self.db.execute(f"SELECT path, row FROM parsed WHERE path {IN_LIST}",
                               (json_list(paths),)).fetchall()
