"""A site's shared state moved from SQLite (the state folder's state.sqlite3) into the
PostgreSQL database it starts to share between machines: `digest copy-state`.

Without it, a site that names `database_env` starts on an empty database: its suppression
list, the tags chosen on the web, its members and sign-ups, the bounces, the entry ids its
feeds have published and the digests already sent stay behind, so the next digest would go
to those who unsubscribed and a feed reader would see every post as new. So every command
that writes refuses while that is so (worth_keeping, called by open.py). The two schemas hold
the same tables with the same columns (pg_migrations mirrors migrations), so each table is
copied by column name, with COPY, in one transaction: all or nothing, into a database that
holds no digest state yet.

Left out on purpose: the heartbeats (`nodes`) and the web's rate-limit counts (`hits`),
which are about the moment; the deliveries' leases, which belonged to the old machine's
senders; and the daemon's schedule (`apscheduler_jobs`), which a daemon makes again from
the config when it starts.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from ..errors import StateError
from .postgres import PostgresState

# in an order that satisfies the foreign keys (runs before what refers to them)
TABLES = ("runs", "run_posts", "deliveries", "run_actions", "suppressed", "preferences",
          "members", "pending", "bounces", "entry_ids", "archive", "subscribers_snapshot",
          "daemon_status")
# PostgreSQL assigns these (GENERATED ALWAYS): the rows go in their SQLite order instead
_GENERATED = {"deliveries": "seq", "run_actions": "id"}
# what a site would lose: a database without any of these is one it has not copied into
_WORTH = ("runs", "suppressed", "entry_ids", "members", "preferences", "bounces", "pending")
_LEFT_EMPTY = {"deliveries": ("lease_owner", "lease_until")}  # the old machine's leases
# what a count of each table is called in the summary: one, several
NAMES = {"runs": ("digest", "digests"), "run_posts": ("digest post", "digest posts"),
         "deliveries": ("delivery", "deliveries"),
         "run_actions": ("owner action", "owner actions"),
         "suppressed": ("suppression", "suppressions"),
         "preferences": ("tag choice", "tag choices"), "members": ("member", "members"),
         "pending": ("sign-up waiting", "sign-ups waiting"), "bounces": ("bounce", "bounces"),
         "entry_ids": ("entry id", "entry ids"),
         "archive": ("archived digest", "archived digests"),
         "subscribers_snapshot": ("subscribers file snapshot", "subscribers file snapshots"),
         "daemon_status": ("daemon note", "daemon notes"),
         "apscheduler_jobs": ("scheduled job", "scheduled jobs")}


@dataclass(frozen=True)
class Copied:
    source: Path
    target: str  # user@host:port/database, never the password
    counts: dict[str, int]  # table -> rows copied (or, dry, that would be)


def held(source: sqlite3.Connection) -> dict[str, int]:
    """Rows of each shared table in *source* (absent tables count 0)."""
    present = {name for name, in source.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    return {table: source.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            if table in present else 0 for table in TABLES}


def worth_keeping(source: sqlite3.Connection) -> dict[str, int] | None:
    """held(*source*) if it holds anything a site would lose by starting afresh (a digest,
    suppression, entry id, member, tag choice, bounce or sign-up), else None: the state a
    site leaves behind if it names `database_env` without copying it (then every command
    that writes refuses while the database holds none: open.py)."""
    counts = held(source)
    return counts if any(counts[t] for t in _WORTH) else None


def summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {NAMES[t][n != 1]}" for t, n in counts.items() if n) or "nothing"


def copy_state(source: sqlite3.Connection, source_path: Path, target: PostgresState, *,
               dry_run: bool = False) -> Copied:
    """Every shared table of *source* (a state database at the newest schema, as
    Store.open leaves it) into *target*, which must hold none of them yet; one
    transaction, rolled back when *dry_run*. Refuses while a sender holds live leases in
    *source* (it would go on writing there)."""
    leased = source.execute("SELECT count(*) FROM deliveries WHERE lease_until > ?",
                            (time.time(),)).fetchone()[0]
    if leased:
        raise StateError(source_path, f"a sender holds {leased} deliveries under a live "
                                      "lease: a digest is being sent from this state",
                         "let it finish (digest status shows it), then copy")
    conn = target.conn
    counts: dict[str, int] = {}
    try:
        with conn.transaction() as tx:
            filled = _filled(conn)
            if filled:
                raise StateError(target.path, "the database already holds digest state ("
                                 + summary(filled) + ")",
                                 "copy only into a new database: create an empty one (or "
                                 "drop and create this one again) and run copy-state first, "
                                 "before any other digest command uses it")
            types = _types(conn)
            for table in TABLES:
                counts[table] = _copy(source, conn, table, types[table])
            conn.execute("SELECT setval(pg_get_serial_sequence('runs', 'id'), "
                         "coalesce((SELECT max(id) FROM runs), 0) + 1, false)")
            after = {table: _count(conn, table) for table in TABLES}
            if after != counts:  # pragma: no cover - COPY writes every row or fails
                raise StateError(target.path, f"the copy does not add up ({after} against "
                                 f"{counts})", "nothing was kept: run it again")
            if dry_run:
                raise psycopg.Rollback(tx)
    except psycopg.Error as exc:
        raise StateError(target.path, f"the copy failed ({exc}); nothing was kept",
                         "check the database, then run it again") from None
    return Copied(source_path, str(target.path), counts)


def _filled(conn: psycopg.Connection[Any]) -> dict[str, int]:
    return {table: n for table in (*TABLES, "apscheduler_jobs") if (n := _count(conn, table))}


def _count(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0


def _types(conn: psycopg.Connection[Any]) -> dict[str, dict[str, str]]:
    """table -> column -> PostgreSQL type, of the shared tables."""
    types: dict[str, dict[str, str]] = {}
    for table, column, kind in conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ANY(%s) "
            "ORDER BY table_name, ordinal_position", (list(TABLES),)):
        types.setdefault(table, {})[column] = kind
    return types


def _converter(kind: str) -> Callable[[Any], Any]:
    """A value of SQLite's as the PostgreSQL column of *kind* takes it."""
    if kind == "boolean":
        return lambda v: v if v is None else bool(v)
    if kind == "bytea":
        return lambda v: v.encode() if isinstance(v, str) else v
    return lambda v: v


def _copy(source: sqlite3.Connection, conn: psycopg.Connection[Any], table: str,
          types: dict[str, str]) -> int:
    present = [row[1] for row in source.execute(f"PRAGMA table_info({table})")]
    if not present:
        return 0
    columns = [c for c in present if c in types and c != _GENERATED.get(table)
               and c not in _LEFT_EMPTY.get(table, ())]
    convert = [_converter(types[c]) for c in columns]
    names = ", ".join(columns)
    n = 0
    with conn.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        # rowid: the order the rows were added in (runs' and run_actions' id is its alias)
        for row in source.execute(f"SELECT {names} FROM {table} ORDER BY rowid"):
            copy.write_row([f(v) for f, v in zip(convert, row, strict=True)])
            n += 1
    return n
