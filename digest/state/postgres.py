"""SharedState on PostgreSQL (psycopg 3), for several machines serving one site: chosen by
open_state (state/open.py) when the config names a `database_env`.

The same semantics as the SQLite state (sendlog.py, lists.py, sqlite.py), in PostgreSQL's
SQL: each writing method is one transaction, committed before it returns; batch() makes them
savepoints of one transaction. What SQLite gets from its one writer at a time is asked for
here: an advisory lock per bucket for hit()'s count-then-insert, `DELETE ... RETURNING` so a
confirmation link works once, `ON CONFLICT` where SQLite says OR IGNORE.

A *throwaway* state (the commands that only look: preview, `send --dry-run`, an import's dry
run) runs everything in one transaction that is rolled back on close, as Store.scratch does
with its copy. Errors come out as StateError naming the server (never the password).

A lost connection (the server restarted, failed over, the network dropped) is not an error at
once: the call that met it logs one line, reconnects with a growing pause and runs again,
for up to `database_wait_seconds` (config; `wait_seconds` here), so senders pause through an
outage and carry on. Each public method is one transaction, so running it again is safe when
it is idempotent, and each was checked for the one case that is not obvious, a COMMIT that
reached the server but whose acknowledgement was lost (the retry then finds its own work):

- UPDATEs that set absolute values (mark, record_many, renew, release, set_state,
  begin/end_serving, give_up, beat, note, set_preferences, save_pending, save_snapshot) and
  DELETEs (leave, prune_nodes, unsuppress, remove_member, drop_pending, drop_notes) come
  out the same.
- create_or_join_run finds the run its lost commit made and joins it (the caller then adds
  the subscribers, ON CONFLICT DO NOTHING); add_entry_ids, save_archive, suppress_with,
  put_member insert with ON CONFLICT DO NOTHING: the rows are right, only their answer
  ("new?") may say no for what the lost commit did (a count in a report off by one).
- claim remembers the lease time it asked for until it returns: a retry takes back the rows
  its lost commit leased to this node (with that exact time) as well as new ones, so none
  is left leased to a node that does not know it holds them.
- record_bounce answers "new" again for a stored report identical to the one given (same
  moment): the caller then suppresses the address as it would have.
- hit may count one request twice (a rate limit one lower, for an hour at most); control
  may answer "changed by another process" for its own change (the run is as asked);
  take_pending finds its link taken (the person asks for a new one).
- A call given a one-shot iterator (a generator of subscribers: create_or_join_run,
  restore_run, add_subscribers from the send path) is not run again, since what it read is
  gone: it fails as before, and the command run again resumes. Inside batch() (one
  transaction over many calls) and in a throwaway state nothing is retried either: the
  transaction's earlier work is gone with the connection.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ..errors import ConnectionLost, StateError
from .interface import (
    Archived,
    Asked,
    Bounce,
    BounceKind,
    Changes,
    Delivery,
    DeliveryState,
    Member,
    NextRun,
    Node,
    Pending,
    Recorded,
    Run,
    RunAction,
    RunControl,
    RunPost,
    RunState,
    Source,
    Suppression,
)
from .pg_changes import Pushed
from .pg_migrations import MIGRATIONS, migrate
from .pg_text import nul_free
from .store import now_text, tags_json, tags_of

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10  # seconds to reach the server before saying it is unreachable
WAIT_SECONDS = 300  # a lost connection is retried this long (config: database_wait_seconds)
RETRY_PAUSES = (0.5, 1, 2, 4, 8, 10)  # between attempts to reconnect; then the last again
HITS_KEPT_SECONDS = 86_400  # as lists.py: rate-limit counters older than a day go
JOBS_TABLE = "apscheduler_jobs"  # APScheduler's job store, in the same database (schedule.py)
RUN_CREATION_LOCK = 0x6469676573740002  # pg_advisory_xact_lock's key: "digest" + 2
ADD_CHUNK = 10_000  # add_subscribers inserts this many (key, address) pairs a statement
# the server ends a session of ours that sits in an open transaction this long: every one of
# ours runs its statements back to back, so only a node frozen mid-transaction (SIGSTOP, a
# paused VM) gets there, and its row locks (a claim's) would otherwise hold others forever
# (set on the session, so that options in the user's URL are kept)
SESSION = "SET idle_in_transaction_session_timeout = '10s'"
# what a pooler in transaction mode (PgBouncer's) gives: psycopg prepares a statement run
# often on its connection, and the server connection behind it is another client's next time
POOLED = (psycopg.errors.DuplicatePreparedStatement, psycopg.errors.InvalidSqlStatementName)

_RUN = "id, slug, period_start, period_end, created_at, state"
_MEMBER = "key, email, name, tags, source, since"
_BOUNCE = "key, kind, at, origin, ident, status, diagnostic, run, evidence"
_DELIVERY = ("r.slug, d.subscriber, d.email, d.state, d.attempts, d.code, d.reply, "
             "d.message_id, d.posts, d.updated_at")
# a run with someone still to serve, as sendlog.py's control() says it
# the schema's version and the oldest it works with; a database of version 1 or 2 has no
# works_with, and needs none: it is not newer than this digest
_SCHEMA = ("SELECT version, (to_jsonb(s) ->> 'works_with')::integer FROM digest_schema s "
           "WHERE id = 1")
_OPEN = ("(state IN ('sending', 'paused') OR (state = 'done' AND EXISTS (SELECT 1 FROM "
         "deliveries WHERE run_id = %(id)s AND state IN ('pending', 'deferred'))))")


def where(url: str) -> str:
    """The server a URL names, for messages: user@host:port/database, never the password."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.Error:
        return "PostgreSQL (an unreadable URL)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    host = str(parts.get("host") or "localhost")
    return f"PostgreSQL {user}{host}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"


def _scrubbed(text: str, url: str) -> str:
    """*text* without the URL's password, should a driver's message ever repeat it."""
    try:
        password = str(conninfo_to_dict(url).get("password") or "")
    except psycopg.Error:
        return text
    return text.replace(password, "***") if password else text


def unreachable(url: str, exc: psycopg.Error, variable: str) -> StateError:
    """The server at *url* cannot be reached or refuses us: where, why, what to check."""
    reason = _scrubbed(" ".join(str(exc).split()), url)
    return StateError(Path(where(url)), f"cannot connect to the database ({reason})",
                      "check that the PostgreSQL server is running and reachable from this "
                      "machine (host, port, firewall), and that the URL in the variable "
                      f"{variable} (user, password, database) is right")


def _run(row: tuple[Any, ...]) -> Run:
    rid, slug, start, end, created, state = row
    return Run(int(rid), slug, datetime.fromisoformat(start), datetime.fromisoformat(end),
               datetime.fromisoformat(created), cast(RunState, state))


def _member(row: tuple[Any, ...]) -> Member:
    key, email, name, tags, source, since = row
    return Member(key, email, name, tags_of(tags), cast(Source, source),
                  datetime.fromisoformat(since))


def _pending(row: tuple[Any, ...]) -> Pending:
    return Pending(row[0], row[1], row[2], tags_of(row[3]), datetime.fromisoformat(row[4]))


def _bounce(row: tuple[Any, ...]) -> Bounce:
    key, kind, at, origin, ident, status, diagnostic, run, evidence = row
    return Bounce(key, cast(BounceKind, kind), datetime.fromisoformat(at), origin, ident,
                  status, diagnostic, run, evidence)


def _delivery(row: tuple[Any, ...]) -> Delivery:
    slug, key, email, state, attempts, code, reply, message_id, posts, updated = row
    return Delivery(slug, key, email, cast(DeliveryState, state), attempts, code, reply,
                    message_id, posts, None if updated is None else
                    datetime.fromisoformat(updated))


Lost = ConnectionLost  # a lost connection (errors.py); short for the code below


R = TypeVar("R")


def _retried(method: Callable[..., R]) -> Callable[..., R]:
    """*method* run again, on a new connection, while the connection is lost; for up to the
    state's wait_seconds from the first loss (see the module docstring for which calls may
    be and why). A call that still cannot be made ends with the StateError it met."""
    @functools.wraps(method)
    def call(self: PostgresState, *args: Any, **kwargs: Any) -> R:
        deadline: float | None = None
        try:
            while True:
                try:
                    return method(self, *args, **kwargs)
                except Lost as lost:
                    one_shot = any(isinstance(a, Iterator) for a in (*args, *kwargs.values()))
                    if self._batched or self.throwaway or one_shot or self.wait_seconds <= 0 \
                            or self._closed:
                        raise StateError(lost.path, lost.what, lost.todo) from None
                    if deadline is None:
                        deadline = time.monotonic() + self.wait_seconds
                    self._reconnect(lost, deadline)
                    self._retrying = method.__name__
        finally:
            self._retrying = None
    return call


class PostgresState:
    """The shared state in one PostgreSQL database (see the module docstring).

    *read_only*: as `digest status` opens it (nothing created or migrated; no write).
    *throwaway*: everything rolled back on close. *also_close*: what closing this closes too
    (the caller's local store, as the SQLite state shares and closes it). *variable*: the
    environment variable the URL came from, named in messages. *wait_seconds*: how long a
    lost connection is retried before a call fails."""

    def __init__(self, url: str, *, read_only: bool = False, throwaway: bool = False,
                 also_close: Callable[[], None] | None = None,
                 variable: str = "database_env names",
                 wait_seconds: float = WAIT_SECONDS) -> None:
        self.url = url
        self.variable = variable  # where the URL came from, for messages
        self.path = Path(where(url))
        self.read_only = read_only
        self.throwaway = throwaway
        self.wait_seconds = wait_seconds
        self._also_close = also_close
        self._batched = False
        self._closed = False
        self._claiming: dict[tuple[int, str], float] = {}  # claim(): see the module docstring
        self._newer_seen = 0  # a newer schema that works with this digest, said once
        self._retrying: str | None = None  # the method being run again after a loss
        self.generation = 0  # connections made again after a loss (pg_changes.py)
        self.migrated: tuple[int, int] | None = None  # (from, to) if this open migrated
        try:
            self.conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
            nul_free(self.conn)
            self.conn.execute(SESSION)
        except psycopg.Error as exc:
            raise self._unreachable(exc) from None
        try:
            if read_only:
                self.conn.execute("SET default_transaction_read_only = on")
            self._check_version(migrate_to=None if read_only else len(MIGRATIONS))
            if throwaway:  # one transaction from here on, never committed: every write
                self.conn.autocommit = False  # (a transaction() block) is a savepoint in it
                self.conn.execute("SELECT 1")
        except BaseException:
            self.conn.close()
            raise

    def _unreachable(self, exc: psycopg.Error) -> StateError:
        return unreachable(self.url, exc, self.variable)

    def _reason(self, exc: psycopg.Error) -> str:
        return _scrubbed(" ".join(str(exc).split()), self.url)

    def _error(self, exc: psycopg.Error) -> BaseException:
        """A bug (a wrong statement) stays itself; the rest is the state's; a connection
        that broke under it is Lost (and may be retried)."""
        reason = self._reason(exc)
        if isinstance(exc, POOLED):
            return StateError(self.path, f"the database connection is shared with other "
                              f"clients between transactions ({reason}): a connection "
                              "pooler in transaction mode", "connect digest to PostgreSQL "
                              "directly, or through the pooler in session mode (PgBouncer: "
                              "pool_mode = session); digest keeps per-connection state "
                              "(prepared statements, LISTEN, session settings)")
        if isinstance(exc, psycopg.ProgrammingError):
            return exc
        if isinstance(exc, psycopg.OperationalError):
            kind = Lost if self.conn.broken or self.conn.closed else StateError
            return kind(self.path, f"the database failed ({reason})",
                        "check that the PostgreSQL server is up and reachable, then run "
                        "again")
        return StateError(self.path, f"the database refused a write ({reason})",
                          "run again; if it fails again, report it with this message")

    def _reconnect(self, lost: Lost, deadline: float) -> None:
        """A new connection in place of the lost one, tried with growing pauses until
        *deadline* (time.monotonic()); then the StateError *lost* was, saying how long."""
        log.warning("%s: the connection to the database was lost %s; reconnecting, for up "
                    "to %g s", self.path, lost.what.removeprefix("the database failed "),
                    self.wait_seconds)
        problem, started = lost.what, time.monotonic()
        for attempt in range(1_000_000):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(RETRY_PAUSES[min(attempt, len(RETRY_PAUSES) - 1)], left))
            try:
                conn = psycopg.connect(self.url, autocommit=True, connect_timeout=max(
                    1, min(CONNECT_TIMEOUT, int(deadline - time.monotonic()))))
                conn.execute(SESSION)
            except psycopg.Error as exc:
                problem = f"the database failed ({self._reason(exc)})"
                continue
            nul_free(conn)
            old, self.conn = self.conn, conn
            old.close()
            try:
                if self.read_only:
                    conn.execute("SET default_transaction_read_only = on")
                self._check_version(migrate_to=None)  # migrated by a newer digest meanwhile?
            except Lost as again:
                problem = again.what
                continue
            except psycopg.Error as exc:
                problem = f"the database failed ({self._reason(exc)})"
                continue
            self.generation += 1
            log.warning("%s: connected to the database again after %.1f s", self.path,
                        time.monotonic() - started)
            return
        raise StateError(self.path, f"{problem}, and it could not be reached again in "
                         f"{self.wait_seconds:g} s", "check that the PostgreSQL server is "
                         "up and reachable, then run again (database_wait_seconds in the "
                         "config says how long to wait)")

    def _check_version(self, migrate_to: int | None) -> None:
        """Migrate to *migrate_to* (None: only look); refuse a schema newer than this
        digest knows unless it says it works with this digest (pg_migrations.py)."""
        if migrate_to is None:
            version = 0
            if self._has_table("digest_schema"):
                version = self._refuse_newer(self._all(_SCHEMA))
        else:
            with self._atomic() as cur:
                def execute(sql: str, args: tuple[object, ...]) -> list[tuple[object, ...]]:
                    cur.execute(sql, args)
                    return cur.fetchall() if cur.description else []

                version, after = migrate(execute, migrate_to)
                if version > len(MIGRATIONS):
                    cur.execute(_SCHEMA)
                    self._refuse_newer(cur.fetchall())
            if after != version:
                self.migrated = (version, after)

    def _refuse_newer(self, found: list[tuple[Any, ...]], *, running: bool = False) -> int:
        """The schema's version from digest_schema's (version, works_with) row; a StateError
        if it is newer than this digest knows and does not work with it. *running*: found
        by a process already at work (a newer digest migrated meanwhile)."""
        known = len(MIGRATIONS)
        version = int(found[0][0]) if found else 0
        works_with = version if not found or found[0][1] is None else int(found[0][1])
        if version <= known or works_with <= known:
            if version > known and version != self._newer_seen:
                self._newer_seen = version
                log.info("%s: the database's schema is version %d, newer than this digest "
                         "knows (%d), and works with it: carrying on", self.path, version,
                         known)
            return version
        if running:
            raise StateError(self.path, f"a newer digest migrated the database to schema "
                             f"version {version} while this one (version {known}) was at "
                             "work, and this digest cannot use it: stopped here, nothing "
                             "more is sent from this machine", "upgrade digest on this "
                             "machine to the release that migrated it and start it again")
        raise StateError(self.path, f"the database's schema is version {version}, newer "
                         f"than this digest knows (version {known})",
                         "upgrade digest to the release that wrote it (every machine "
                         "sharing this database needs the same or a newer one)")

    # plumbing ----------------------------------------------------------------------------
    def _all(self, sql: str, args: Any = ()) -> list[tuple[Any, ...]]:
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall()
        except psycopg.Error as exc:
            raise self._error(exc) from None

    def _one(self, sql: str, args: Any = ()) -> tuple[Any, ...] | None:
        rows = self._all(sql, args)
        return rows[0] if rows else None

    @contextmanager
    def _atomic(self) -> Iterator[psycopg.Cursor[Any]]:
        """One write transaction; inside batch() (or a throwaway state), a savepoint."""
        try:
            with self.conn.transaction(), self.conn.cursor() as cur:
                yield cur
        except psycopg.Error as exc:
            raise self._error(exc) from None

    def _many(self, sql: str, rows: Sequence[Any]) -> None:
        """*sql* run for each of *rows*, all or nothing. In autocommit, psycopg's
        executemany pipelines the statements and one Sync, which PostgreSQL runs as one
        implicit transaction (a failed statement undoes the others), without _atomic's
        BEGIN and COMMIT round trips: 0.1 ms less CPU a call here, and record_many is
        called every few messages. Inside batch() or a throwaway state: _atomic's savepoint."""
        if self._batched or not self.conn.autocommit:
            with self._atomic() as cur:
                cur.executemany(sql, rows)
            return
        try:
            with self.conn.cursor() as cur:
                cur.executemany(sql, rows)
        except psycopg.Error as exc:
            raise self._error(exc) from None

    def _write(self, sql: str, args: Any = ()) -> int:
        with self._atomic() as cur:
            cur.execute(sql, args)
            return cur.rowcount

    def _has_table(self, name: str) -> bool:
        return self._one("SELECT to_regclass(%s)", (name,)) != (None,)

    @contextmanager
    def _batch(self) -> Iterator[None]:
        if self._batched:
            yield
            return
        with self._atomic():
            self._batched = True
            try:
                yield
            finally:
                self._batched = False

    def batch(self) -> AbstractContextManager[None]:
        return self._batch()

    # runs --------------------------------------------------------------------------------
    def runs(self, limit: int = 10) -> list[Run]:
        return [_run(r) for r in self._all(
            f"SELECT {_RUN} FROM runs ORDER BY period_end DESC LIMIT %s", (limit,))]

    def latest_run(self) -> Run | None:
        runs = self.runs(1)
        return runs[0] if runs else None

    def unfinished_runs(self) -> list[Run]:
        return [_run(r) for r in self._all(
            f"SELECT {_RUN} FROM runs WHERE state != 'cancelled' AND (state != 'done' OR "
            "id IN (SELECT run_id FROM deliveries WHERE state IN ('pending', 'deferred'))) "
            "ORDER BY period_end")]

    def assigned(self) -> tuple[set[str], set[str]]:
        ids, twins = set(), set()
        for entry_id, twin in self._all("SELECT entry_id, twin FROM run_posts"):
            ids.add(entry_id)
            twins.add(bytes(twin).decode())
        return ids, twins

    def create_run(self, *, slug: str, start: datetime, end: datetime,
                   posts: Iterable[RunPost], subscribers: Iterable[tuple[str, str]],
                   roster: bytes | None = None) -> Run:
        with self._atomic() as cur:
            return self._insert_run(cur, slug, start, end, posts, subscribers, roster)

    @staticmethod
    def _insert_run(cur: psycopg.Cursor[Any], slug: str, start: datetime, end: datetime,
                    posts: Iterable[RunPost], subscribers: Iterable[tuple[str, str]],
                    roster: bytes | None) -> Run:
        created = now_text()
        cur.execute("INSERT INTO runs (slug, period_start, period_end, created_at, state, "
                    "roster) VALUES (%s, %s, %s, %s, 'sending', %s) RETURNING id",
                    (slug, start.isoformat(), end.isoformat(), created, roster))
        row = cur.fetchone()
        assert row is not None
        rid = int(row[0])
        cur.executemany("INSERT INTO run_posts VALUES (%s, %s, %s, %s)",
                        [(rid, p.entry_id, p.path, p.twin.encode()) for p in posts])
        # everyone at once: COPY, not a statement per subscriber
        with cur.copy("COPY deliveries (run_id, subscriber, email, state, updated_at) "
                      "FROM STDIN") as copy:
            for key, email in subscribers:
                copy.write_row((rid, key, email, "pending", created))
        return Run(rid, slug, start, end, datetime.fromisoformat(created), "sending")

    def restore_run(self, *, slug: str, start: datetime, end: datetime,
                    posts: Iterable[RunPost], subscribers: Iterable[tuple[str, str]]) -> bool:
        now = now_text()
        with self._atomic() as cur:
            cur.execute("INSERT INTO runs (slug, period_start, period_end, created_at, "
                        "finished_at, state) VALUES (%s, %s, %s, %s, %s, 'done') "
                        "ON CONFLICT DO NOTHING RETURNING id",
                        (slug, start.isoformat(), end.isoformat(), now, now))
            row = cur.fetchone()
            if row is None:
                return False
            rid = int(row[0])
            cur.executemany("INSERT INTO run_posts VALUES (%s, %s, %s, %s) "
                            "ON CONFLICT DO NOTHING",
                            [(rid, p.entry_id, p.path, p.twin.encode()) for p in posts])
            # ADD_CHUNK pairs a statement, as add_subscribers: the list is never held whole
            chunk = iter(subscribers)
            while pairs := list(itertools.islice(chunk, ADD_CHUNK)):
                cur.execute("INSERT INTO deliveries (run_id, subscriber, email, state, reply, "
                            "updated_at) SELECT %s, k, e, 'sent', %s, %s FROM unnest("
                            "%s::text[], %s::text[]) WITH ORDINALITY AS t(k, e, n) ORDER BY n "
                            "ON CONFLICT DO NOTHING",
                            (rid, "assumed sent: the send log was lost", now,
                             [k for k, _ in pairs], [e for _, e in pairs]))
        return True

    def slug_taken(self, slug: str) -> bool:
        return self._one("SELECT 1 FROM runs WHERE slug = %s", (slug,)) is not None

    def add_subscribers(self, run: Run, subscribers: Iterable[tuple[str, str]], *,
                        roster: bytes | None = None) -> int:
        now = now_text()
        added = 0
        with self._atomic() as cur:
            cur.execute("SELECT state, roster FROM runs WHERE id = %s FOR UPDATE", (run.id,))
            row = cur.fetchone()
            if row is not None and row[0] == "cancelled":
                return 0
            if roster is not None and row is not None and row[1] is not None \
                    and bytes(row[1]) == roster:
                return 0
            if roster is not None:
                cur.execute("UPDATE runs SET roster = %s WHERE id = %s", (roster, run.id))
            # a statement per ADD_CHUNK, each in the order given: its row count is how many
            # were new; a million pairs as two arrays at once took hundreds of megabytes
            chunk = iter(subscribers)
            while pairs := list(itertools.islice(chunk, ADD_CHUNK)):
                cur.execute("INSERT INTO deliveries (run_id, subscriber, email, state, "
                            "updated_at) SELECT %s, k, e, 'pending', %s FROM unnest(%s::text[], "
                            "%s::text[]) WITH ORDINALITY AS t(k, e, n) ORDER BY n "
                            "ON CONFLICT DO NOTHING",
                            (run.id, now, [k for k, _ in pairs], [e for _, e in pairs]))
                added += cur.rowcount
            return added

    def run_posts(self, run: Run) -> list[RunPost]:
        return [RunPost(entry_id, path, bytes(twin).decode()) for entry_id, path, twin in
                self._all("SELECT entry_id, path, twin FROM run_posts WHERE run_id = %s",
                          (run.id,))]

    def set_state(self, run: Run, state: RunState) -> None:
        self._write("UPDATE runs SET state = %s, finished_at = %s WHERE id = %s",
                    (state, now_text() if state == "done" else None, run.id))

    # the owner's pause, resume and cancel ------------------------------------------------
    def find_run(self, slug: str) -> Run | None:
        row = self._one(f"SELECT {_RUN} FROM runs WHERE slug = %s", (slug,))
        return None if row is None else _run(row)

    def run_state(self, run: Run) -> RunState | None:
        row = self._one("SELECT state FROM runs WHERE id = %s", (run.id,))
        return None if row is None else cast(RunState, row[0])

    def run_control(self, run: Run) -> RunControl:
        row = self._one("SELECT state, owner_paused FROM runs WHERE id = %s", (run.id,))
        state, owner = (run.state, False) if row is None else row
        last = self._one("SELECT act, actor, reason, at FROM run_actions WHERE run_id = %s "
                         "ORDER BY id DESC LIMIT 1", (run.id,))
        if last is None:
            return RunControl(cast(RunState, state), bool(owner), None, None, None)
        return RunControl(cast(RunState, state), bool(owner), last[2], last[1],
                          datetime.fromisoformat(last[3]), last[0])

    def run_actions(self, run: Run) -> list[RunAction]:
        return [RunAction(act, actor, reason, datetime.fromisoformat(at))
                for act, actor, reason, at in self._all(
                    "SELECT act, actor, reason, at FROM run_actions WHERE run_id = %s "
                    "ORDER BY id", (run.id,))]

    def control(self, run: Run, action: RunAction) -> bool:
        at = action.at.astimezone(UTC).isoformat()
        args = {"id": run.id, "at": at}
        with self._atomic() as cur:
            if action.act == "pause":
                cur.execute("UPDATE runs SET state = 'paused', owner_paused = true WHERE "
                            f"id = %(id)s AND NOT owner_paused AND {_OPEN}", args)
            elif action.act == "resume":
                cur.execute("UPDATE runs SET state = 'sending', owner_paused = false WHERE "
                            "id = %(id)s AND state = 'paused'", args)
            else:
                cur.execute("UPDATE runs SET state = 'cancelled', owner_paused = false, "
                            f"finished_at = %(at)s WHERE id = %(id)s AND {_OPEN}", args)
            changed = cur.rowcount
            if changed and action.act == "cancel":
                why = action.cancel_note(at)
                cur.execute("UPDATE deliveries SET state = 'cancelled', reply = substr(%(why)s "
                            "|| coalesce('; last reply: ' || reply, ''), 1, 500), "
                            "updated_at = %(at)s, lease_owner = NULL, lease_until = NULL "
                            "WHERE run_id = %(id)s AND state IN ('pending', 'deferred')",
                            {**args, "why": why})
            if changed:
                cur.execute("INSERT INTO run_actions (run_id, act, actor, reason, at) "
                            "VALUES (%s, %s, %s, %s, %s)",
                            (run.id, action.act, action.by, action.reason, at))
        return changed > 0

    def begin_serving(self, run: Run) -> bool:
        return self._write("UPDATE runs SET state = 'sending' WHERE id = %s AND "
                           "state != 'cancelled' AND NOT owner_paused", (run.id,)) > 0

    def end_serving(self, run: Run, *, left: bool) -> RunState:
        """As the interface says; while another node holds live leases on *run* it is still
        being served, so its state stays as it is (that node ends it)."""
        state: RunState = "paused" if left else "done"
        with self._atomic() as cur:
            cur.execute("UPDATE runs SET state = %s, finished_at = %s WHERE id = %s AND "
                        "state = 'sending' AND NOT EXISTS (SELECT 1 FROM deliveries WHERE "
                        "run_id = %s AND state IN ('pending', 'deferred') AND "
                        "lease_until >= %s)",
                        (state, None if left else now_text(), run.id, run.id, time.time()))
            cur.execute("SELECT state FROM runs WHERE id = %s", (run.id,))
            row = cur.fetchone()
        return state if row is None else cast(RunState, row[0])

    # several senders on one run: leased batches ------------------------------------------
    def create_or_join_run(self, *, slug: str, start: datetime, end: datetime,
                           posts: Sequence[RunPost], subscribers: Iterable[tuple[str, str]],
                           roster: bytes | None = None) -> tuple[Run, bool]:
        """Under a transaction-scoped advisory lock, so two nodes creating at once take
        turns: the second, once the first has committed, finds its run and joins it."""
        with self._atomic() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (RUN_CREATION_LOCK,))
            cur.execute(f"SELECT {_RUN} FROM runs WHERE id = (SELECT run_id FROM run_posts "
                        "WHERE entry_id = ANY(%s) LIMIT 1)", ([p.entry_id for p in posts],))
            row = cur.fetchone()
            if row is not None:
                return _run(row), False
            return self._insert_run(cur, slug, start, end, posts, subscribers, roster), True

    # FOR UPDATE SKIP LOCKED: a node claiming at the same moment as another skips the rows
    # the other is taking instead of waiting for them (or taking them twice)
    _CLAIMABLE = ("run_id = %(run)s AND state IN ('pending', 'deferred') AND "
                  "(state = 'pending' OR %(since)s::text IS NULL OR "
                  "updated_at < %(since)s::text) AND "
                  "(lease_until IS NULL OR lease_until < %(now)s)")

    def claim(self, run: Run, node: str, limit: int, lease_seconds: float, *,
              since: datetime | None = None) -> list[tuple[str, str, int]]:
        """A claim whose commit may have been lost (the call failed) is remembered by the
        lease time it set: the next claim also takes back the rows leased with it."""
        now = time.time()
        until = now + lease_seconds
        lost = self._claiming.setdefault((run.id, node), until)
        args = {"run": run.id, "node": node, "now": now, "until": until, "lost": lost,
                "limit": limit, "since": None if since is None
                else since.astimezone(UTC).isoformat()}
        with self._atomic() as cur:
            # a newer digest may have migrated since the last batch: still usable? (one row)
            cur.execute(_SCHEMA)
            self._refuse_newer(cur.fetchall(), running=True)
            # the picked rows in a CTE, which PostgreSQL runs once: as `seq IN (subquery)`
            # the planner may rescan the LIMIT subquery and lease more than *limit* rows
            cur.execute(f"WITH picked AS (SELECT seq FROM deliveries WHERE {self._CLAIMABLE} "
                        "ORDER BY seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED), "
                        "kept AS (SELECT seq FROM deliveries WHERE run_id = %(run)s AND "
                        "lease_owner = %(node)s AND lease_until = %(lost)s AND state IN "
                        "('pending', 'deferred') AND %(lost)s != %(until)s) "
                        "UPDATE deliveries d SET lease_owner = %(node)s, lease_until = "
                        "%(until)s FROM (SELECT seq FROM picked UNION SELECT seq FROM kept) p "
                        "WHERE d.run_id = %(run)s AND d.seq = p.seq "
                        "RETURNING d.seq, d.subscriber, d.email, d.attempts", args)
            rows = cur.fetchall()
        del self._claiming[(run.id, node)]
        return [(key, email, attempts) for _, key, email, attempts in sorted(rows)]

    def renew(self, run: Run, node: str, lease_seconds: float) -> int:
        return self._write("UPDATE deliveries SET lease_until = %s WHERE lease_owner = %s AND "
                           "run_id = %s AND state IN ('pending', 'deferred')",
                           (time.time() + lease_seconds, node, run.id))

    def holds_state(self) -> bool:
        """Whether any digest, suppression, entry id or member is here (open.py's left-behind
        check)."""
        row = self._one("SELECT EXISTS (SELECT 1 FROM runs) OR EXISTS (SELECT 1 FROM "
                        "suppressed) OR EXISTS (SELECT 1 FROM entry_ids) OR EXISTS "
                        "(SELECT 1 FROM members)")
        return bool(row and row[0])

    def kept(self, run: Run, node: str, lease_seconds: float) -> frozenset[str]:
        with self._atomic() as cur:
            cur.execute("UPDATE deliveries SET lease_until = %s WHERE lease_owner = %s AND "
                        "run_id = %s AND state IN ('pending', 'deferred') RETURNING subscriber",
                        (time.time() + lease_seconds, node, run.id))
            return frozenset(key for key, in cur.fetchall())

    def release(self, run: Run, node: str) -> int:
        return self._write("UPDATE deliveries SET lease_owner = NULL, lease_until = NULL "
                           "WHERE lease_owner = %s AND run_id = %s", (node, run.id))

    def leases(self, run: Run) -> dict[str, int]:
        return {owner: int(n) for owner, n in self._all(
            "SELECT lease_owner, count(*) FROM deliveries WHERE lease_owner IS NOT NULL AND "
            "run_id = %s AND state IN ('pending', 'deferred') AND lease_until >= %s "
            "GROUP BY lease_owner", (run.id, time.time()))}

    # heartbeats of the nodes -------------------------------------------------------------
    def beat(self, node: Node) -> None:
        self._write("INSERT INTO nodes VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (node) "
                    "DO UPDATE SET role = excluded.role, started_at = excluded.started_at, "
                    "beat_at = excluded.beat_at, run = excluded.run, leased = excluded.leased, "
                    "lease_seconds = excluded.lease_seconds",
                    (node.node, node.role, node.started_at.astimezone(UTC).isoformat(),
                     node.beat_at.timestamp(), node.run, node.leased, node.lease_seconds))

    def nodes(self) -> list[Node]:
        if not self._has_table("nodes"):  # a read-only look at a version-1 database
            return []
        return [Node(node, role, datetime.fromisoformat(started),
                     datetime.fromtimestamp(beat, UTC), run, int(leased), lease)
                for node, role, started, beat, run, leased, lease in self._all(
                    "SELECT node, role, started_at, beat_at, run, leased, lease_seconds "
                    "FROM nodes ORDER BY beat_at DESC, node")]

    def leave(self, node: str) -> None:
        self._write("DELETE FROM nodes WHERE node = %s", (node,))

    def prune_nodes(self, before: datetime) -> int:
        return self._write("DELETE FROM nodes WHERE beat_at < %s", (before.timestamp(),))

    # deliveries --------------------------------------------------------------------------
    def to_serve(self, run: Run) -> list[tuple[str, str, int]]:
        return cast(list[tuple[str, str, int]], self._all(
            "SELECT subscriber, email, attempts FROM deliveries WHERE run_id = %s AND state "
            "IN ('pending', 'deferred') ORDER BY seq", (run.id,)))

    def mark(self, run: Run, rows: Iterable[tuple[str, str, int]]) -> None:
        now = now_text()
        self._many("UPDATE deliveries SET state = %s, posts = %s, updated_at = %s, "
                   "lease_owner = NULL, lease_until = NULL WHERE run_id = %s AND "
                   "subscriber = %s AND state IN ('pending', 'deferred')",
                   [(state, posts, now, run.id, key) for key, state, posts in rows])

    def record_many(self, run: Run, rows: Iterable[Recorded]) -> None:
        now = now_text()
        self._many("UPDATE deliveries SET state = CASE WHEN state = 'cancelled' AND "
                   "%s = 'deferred' THEN 'cancelled' ELSE %s END, attempts = %s, "
                   "code = %s, reply = %s, message_id = %s, posts = %s, "
                   "updated_at = %s, lease_owner = NULL, lease_until = NULL "
                   "WHERE run_id = %s AND subscriber = %s",
                   [(r.outcome.status, r.outcome.status,
                     r.attempts_before + r.outcome.attempts, r.outcome.code,
                     r.outcome.reply[:500], r.message_id, r.posts, now, run.id,
                     r.outcome.key) for r in rows])

    def give_up(self, run: Run, why: str) -> int:
        return self._write("UPDATE deliveries SET state = 'failed', reply = substr(%s || "
                           "coalesce(reply, ''), 1, 500), updated_at = %s WHERE run_id = %s "
                           "AND state = 'deferred'", (why, now_text(), run.id))

    def counts(self, run: Run) -> dict[str, int]:
        return {state: int(n) for state, n in self._all(
            "SELECT state, count(*) FROM deliveries WHERE run_id = %s GROUP BY state",
            (run.id,))}

    def failures(self, run: Run, limit: int = 20) -> list[tuple[str, str, int | None, str]]:
        return cast(list[tuple[str, str, int | None, str]], self._all(
            "SELECT email, state, code, reply FROM deliveries WHERE run_id = %s AND state IN "
            "('failed', 'deferred') ORDER BY seq LIMIT %s", (run.id, limit)))

    def delivered(self, run: Run, key: str) -> bool:
        row = self._one("SELECT state FROM deliveries WHERE run_id = %s AND subscriber = %s",
                        (run.id, key))
        return row is not None and row[0] == "sent"

    # suppression list --------------------------------------------------------------------
    def suppressed(self) -> set[str]:
        return {key for (key,) in self._all("SELECT subscriber FROM suppressed")}

    def notify(self, channel: str, payload: str) -> None:
        """NOTIFY *channel* with *payload* (a listener's probe: pg_changes.py)."""
        self._all("SELECT pg_notify(%s, %s)", (channel, payload))

    def changes(self) -> Changes:
        # a throwaway state's writes are never committed, so never notified
        return Asked(self) if self.throwaway else Pushed(self, self._reason)

    def is_suppressed(self, key: str) -> bool:
        return self._one("SELECT 1 FROM suppressed WHERE subscriber = %s", (key,)) is not None

    def suppress(self, key: str, reason: str) -> bool:
        return self.suppress_with(key, reason)

    def suppress_with(self, key: str, reason: str, evidence: str = "") -> bool:
        return self._write("INSERT INTO suppressed (subscriber, since, reason, evidence) "
                           "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                           (key, now_text(), reason, evidence)) > 0

    def unsuppress(self, key: str) -> bool:
        return self._write("DELETE FROM suppressed WHERE subscriber = %s", (key,)) > 0

    def suppression(self, key: str) -> Suppression | None:
        row = self._one("SELECT subscriber, since, reason, evidence FROM suppressed "
                        "WHERE subscriber = %s", (key,))
        return None if row is None else Suppression(row[0], datetime.fromisoformat(row[1]),
                                                    row[2], row[3])

    def suppressions(self) -> list[Suppression]:
        return [Suppression(key, datetime.fromisoformat(since), reason, evidence)
                for key, since, reason, evidence in self._all(
                    "SELECT subscriber, since, reason, evidence FROM suppressed "
                    "ORDER BY since, subscriber")]

    # the list beside the YAML ------------------------------------------------------------
    def members(self, source: Source | None = None) -> list[Member]:
        if source is None:
            rows = self._all(f"SELECT {_MEMBER} FROM members ORDER BY since, key")
        else:
            rows = self._all(f"SELECT {_MEMBER} FROM members WHERE source = %s "
                             "ORDER BY since, key", (source,))
        return [_member(row) for row in rows]

    def member(self, key: str) -> Member | None:
        row = self._one(f"SELECT {_MEMBER} FROM members WHERE key = %s", (key,))
        return None if row is None else _member(row)

    def put_member(self, member: Member) -> Literal["new", "updated", "same"]:
        values = (member.email, member.name, tags_json(member.tags), member.source)
        with self._atomic() as cur:
            cur.execute(f"INSERT INTO members ({_MEMBER}, updated_at) VALUES "
                        "(%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                        (member.key, *values, member.since.isoformat(), now_text()))
            if cur.rowcount:
                return "new"
            cur.execute("SELECT email, name, tags, source FROM members WHERE key = %s "
                        "FOR UPDATE", (member.key,))
            if cur.fetchone() == values:
                return "same"
            cur.execute("UPDATE members SET email = %s, name = %s, tags = %s, source = %s, "
                        "updated_at = %s WHERE key = %s", (*values, now_text(), member.key))
            return "updated"

    def remove_member(self, key: str) -> bool:
        return self._write("DELETE FROM members WHERE key = %s", (key,)) > 0

    def members_stamp(self) -> str:
        row = self._one("SELECT count(*), max(updated_at) FROM members")
        assert row is not None
        return f"{row[0]}|{row[1]}"

    def pending(self, key: str) -> Pending | None:
        row = self._one("SELECT key, email, name, tags, requested_at FROM pending "
                        "WHERE key = %s", (key,))
        return None if row is None else _pending(row)

    def save_pending(self, pending: Pending) -> None:
        self._write("INSERT INTO pending VALUES (%s, %s, %s, %s, %s) ON CONFLICT (key) DO "
                    "UPDATE SET email = excluded.email, name = excluded.name, "
                    "tags = excluded.tags, requested_at = excluded.requested_at",
                    (pending.key, pending.email, pending.name, tags_json(pending.tags),
                     pending.requested_at.isoformat()))

    def take_pending(self, key: str) -> Pending | None:
        with self._atomic() as cur:
            cur.execute("DELETE FROM pending WHERE key = %s "
                        "RETURNING key, email, name, tags, requested_at", (key,))
            row = cur.fetchone()
        return None if row is None else _pending(row)

    def pending_count(self, since: datetime | None = None) -> int:
        if since is None:
            row = self._one("SELECT count(*) FROM pending")
        else:  # ISO text in UTC sorts as time does
            row = self._one("SELECT count(*) FROM pending WHERE requested_at >= %s",
                            (since.astimezone(UTC).isoformat(),))
        assert row is not None
        return int(row[0])

    def drop_pending(self, before: datetime) -> int:
        return self._write("DELETE FROM pending WHERE requested_at < %s",
                           (before.astimezone(UTC).isoformat(),))

    def hit(self, bucket: str, limit: int, window_seconds: float, now: datetime) -> bool:
        at = now.timestamp()
        with self._atomic() as cur:
            # one counter at a time per bucket, as SQLite's one writer gives it: two web
            # nodes counting the same bucket together must not both get the last place
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                        (f"digest hits {bucket}",))
            cur.execute("DELETE FROM hits WHERE at < %s",
                        (at - max(window_seconds, HITS_KEPT_SECONDS),))
            cur.execute("SELECT count(*) FROM hits WHERE bucket = %s AND at > %s",
                        (bucket, at - window_seconds))
            row = cur.fetchone()
            if row is not None and row[0] >= limit:
                return False
            cur.execute("INSERT INTO hits VALUES (%s, %s)", (bucket, at))
            return True

    # bounces and complaints --------------------------------------------------------------
    def record_bounce(self, bounce: Bounce) -> bool:
        """Run again after a lost connection, new also when the report stored under its
        ident is this very one (the same moment): the lost commit stored it, and a retry must
        not take its own report for a repeat."""
        row = (bounce.key, bounce.kind, bounce.at.astimezone(UTC).isoformat(), bounce.origin,
               bounce.ident, bounce.status, bounce.diagnostic, bounce.run, bounce.evidence)
        with self._atomic() as cur:
            cur.execute(f"INSERT INTO bounces ({_BOUNCE}) VALUES (%s, %s, %s, %s, %s, %s, %s, "
                        "%s, %s) ON CONFLICT DO NOTHING", row)
            if cur.rowcount:
                return True
            if self._retrying != "record_bounce":
                return False
            cur.execute(f"SELECT {_BOUNCE} FROM bounces WHERE ident = %s", (bounce.ident,))
            return cur.fetchone() == row

    def bounces(self, key: str | None = None, *, since: datetime | None = None,
                limit: int = 1000) -> list[Bounce]:
        where_, args = [], []
        if key is not None:
            where_.append("key = %s")
            args.append(key)
        if since is not None:
            where_.append("at >= %s")
            args.append(since.astimezone(UTC).isoformat())
        clause = f"WHERE {' AND '.join(where_)} " if where_ else ""
        return [_bounce(row) for row in self._all(
            f"SELECT {_BOUNCE} FROM bounces {clause}ORDER BY at DESC, ident LIMIT %s",
            (*args, limit))]

    # who got what ------------------------------------------------------------------------
    def deliveries(self, run: Run, *, failed: bool = False) -> list[Delivery]:
        only = "AND d.state IN ('failed', 'deferred') " if failed else ""
        return [_delivery(row) for row in self._all(
            f"SELECT {_DELIVERY} FROM deliveries d JOIN runs r ON r.id = d.run_id "
            f"WHERE d.run_id = %s {only}ORDER BY d.seq", (run.id,))]

    def deliveries_of(self, key: str, limit: int = 10) -> list[Delivery]:
        return [_delivery(row) for row in self._all(
            f"SELECT {_DELIVERY} FROM deliveries d JOIN runs r ON r.id = d.run_id "
            "WHERE d.subscriber = %s ORDER BY r.period_end DESC LIMIT %s", (key, limit))]

    # tag choices made on the web front ---------------------------------------------------
    def preferences(self) -> dict[str, tuple[str, ...] | None]:
        return {key: tags_of(tags)
                for key, tags in self._all("SELECT subscriber, tags FROM preferences")}

    def preference(self, key: str) -> tuple[bool, tuple[str, ...] | None]:
        row = self._one("SELECT tags FROM preferences WHERE subscriber = %s", (key,))
        return (False, None) if row is None else (True, tags_of(row[0]))

    def set_preferences(self, key: str, tags: Iterable[str] | None) -> None:
        chosen = None if tags is None else sorted(set(tags))
        self._write("INSERT INTO preferences VALUES (%s, %s, %s) ON CONFLICT (subscriber) "
                    "DO UPDATE SET tags = excluded.tags, updated_at = excluded.updated_at",
                    (key, json.dumps(chosen), now_text()))

    # the last subscribers file that could be read ----------------------------------------
    def snapshot(self) -> tuple[str, str, str] | None:
        row = self._one("SELECT path, text, saved_at FROM subscribers_snapshot")
        return None if row is None else (row[0], row[1], row[2])

    def save_snapshot(self, path: str, text: str | bytes) -> None:
        """Unchanged text is told by its SHA-256, computed on the server: neither the old
        copy nor the new one (megabytes for a big list) crosses the wire for it. *text*
        as bytes (UTF-8) goes as they are, without a str copy of them."""
        data = text.encode("utf-8") if isinstance(text, str) else text
        if self._one("SELECT 1 FROM subscribers_snapshot WHERE path = %s AND "
                     "sha256(convert_to(text, 'UTF8')) = %b",
                     (path, hashlib.sha256(data).digest())) is not None:
            return
        self._write("INSERT INTO subscribers_snapshot VALUES (1, %s, convert_from(%b, 'UTF8'), "
                    "%s) ON CONFLICT (id) DO UPDATE SET path = excluded.path, "
                    "text = excluded.text, saved_at = excluded.saved_at",
                    (path, data, now_text()))

    # the archive -------------------------------------------------------------------------
    def save_archive(self, entry: Archived, text: str) -> bool:
        return self._write("INSERT INTO archive VALUES (%s, %s, %s, %s, %s) "
                           "ON CONFLICT DO NOTHING",
                           (entry.slug, entry.period_start.isoformat(),
                            entry.period_end.isoformat(), entry.period_end.timestamp(),
                            text)) == 1

    def archive_index(self) -> list[Archived]:
        return [Archived(slug, datetime.fromisoformat(start), datetime.fromisoformat(end))
                for slug, start, end in self._all(
                    "SELECT slug, period_start, period_end FROM archive "
                    "ORDER BY ends_at DESC, slug DESC")]

    def archived(self, slug: str) -> str | None:
        row = self._one("SELECT text FROM archive WHERE slug = %s", (slug,))
        return None if row is None else str(row[0])

    # entry ids ---------------------------------------------------------------------------
    def entry_ids(self) -> dict[str, str]:
        return dict(self._all("SELECT path, entry_id FROM entry_ids"))

    def entry_ids_of(self, paths: Iterable[str]) -> dict[str, str]:
        return dict(self._all(
            "SELECT path, entry_id FROM entry_ids WHERE path = ANY(%s::text[])",
            (list(paths),)))

    def has_entry_ids(self) -> bool:
        return bool(self._all("SELECT EXISTS (SELECT 1 FROM entry_ids)")[0][0])

    def taken_ids(self, entry_ids: Iterable[str]) -> set[str]:
        return {i for (i,) in self._all(
            "SELECT entry_id FROM entry_ids WHERE entry_id = ANY(%s::text[])",
            (list(entry_ids),))}

    def add_entry_ids(self, rows: Iterable[tuple[str, str, str]]) -> None:
        with self._atomic() as cur:
            cur.executemany("INSERT INTO entry_ids VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                            list(rows))

    def rename_entry_ids(self, renames: Iterable[tuple[str, str]]) -> None:
        with self._atomic() as cur:
            cur.executemany("UPDATE entry_ids SET path = %s WHERE path = %s AND NOT EXISTS "
                            "(SELECT 1 FROM entry_ids WHERE path = %s)",
                            [(new, old, new) for old, new in renames])

    def first_seen(self) -> dict[str, str]:
        return dict(self._all(
            "SELECT entry_id, first_seen FROM entry_ids"))

    # the daemon's notes and the schedule -------------------------------------------------
    def note(self, key: str, data: dict[str, Any]) -> None:
        self._write("INSERT INTO daemon_status VALUES (%s, %s, %s) ON CONFLICT (key) DO "
                    "UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
                    (key, json.dumps(data, default=str), datetime.now(UTC).isoformat()))

    def notes(self) -> dict[str, dict[str, Any]]:
        return {key: json.loads(data) for key, data in
                self._all("SELECT key, data FROM daemon_status ORDER BY key")}

    def drop_notes(self, keys: Iterable[str]) -> int:
        return self._write("DELETE FROM daemon_status WHERE key = ANY(%s)", (list(keys),))

    def next_run(self, job_id: str) -> NextRun | None:
        """From APScheduler's plain next_run_time column only (see sqlite.py for why)."""
        if not self._has_table(JOBS_TABLE):
            return None
        row = self._one(f"SELECT next_run_time FROM {JOBS_TABLE} WHERE id = %s", (job_id,))
        if row is None:
            return None
        return NextRun(None if row[0] is None else datetime.fromtimestamp(float(row[0]), UTC))

    # health ------------------------------------------------------------------------------
    def ping(self) -> None:
        self._all("SELECT 1")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.conn.close()  # a throwaway state's transaction is rolled back here
        finally:
            if self._also_close is not None:
                self._also_close()


def has_tables(url: str, variable: str = "database_env names") -> bool:
    """Whether the database at *url* has digest's tables yet (a read-only open needs them)."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
            return conn.execute("SELECT to_regclass('digest_schema')").fetchone() != (None,)
    except psycopg.Error as exc:
        raise unreachable(url, exc, variable) from None


# every public method is retried on a lost connection (see the module docstring), but
# batch (its block is the caller's, which cannot be run again here), close and changes
# (its listener does without a connection it cannot have)
for _name, _method in list(vars(PostgresState).items()):
    if not _name.startswith("_") and callable(_method) \
            and _name not in ("batch", "close", "changes"):
        setattr(PostgresState, _name, _retried(_method))
