"""What other processes change while a sender works, pushed by PostgreSQL instead of asked for
before every message: LISTEN/NOTIFY on a connection of its own.

A sender must honour an unsubscribe, bounce or complaint recorded by any node before its next
message to that address, and see a pause or cancel made elsewhere. Asking the database
before each message did that with one round trip per message: a fifth of a sender's CPU and
most of its wall time on PostgreSQL (bench/scale_bench.py). Here the triggers of migration 7
(pg_migrations.py) NOTIFY each change of the suppression list and of a run's state, in the
transaction that makes it, so a notification exists exactly when the change is committed.

Before each message the listener's socket is read without waiting (libpq's socket is
non-blocking): a change committed before that read is in it unless it is still on its way
from the server. Here the first read after the writer's COMMIT returned saw it 430 to 475
times in 500, and every one within 5 ms: about the time a message takes to be made and
handed over, during which a change was not honoured by the per-message query either.

The set is made right without ever missing a change: LISTEN first, then the whole list is
read, then every notification since (some already in what was read) is applied in commit
order; each says what a key now is (+key, -key), so the last word on a key wins. A key too
long for a payload, an UPDATE or a TRUNCATE say '*': the list is read again.

While the listener is not known to be good, every answer is asked of the database as before:
its connection broke (it is opened again at most every REOPEN_SECONDS), the state's main
connection was lost and made again (`generation`: what happened during the outage may
never have reached this socket, so a listener older than the reconnection is not trusted),
or its probe, a NOTIFY sent through the state's own connection, did not come back (behind a
pooler in transaction mode LISTEN is accepted and nothing ever comes).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import select
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

import psycopg

from .interface import Run
from .pg_text import REPLACEMENT

log = logging.getLogger(__name__)

SUPPRESSED = "digest_suppressed"  # channels: the triggers of pg_migrations' migration 7
RUNS = "digest_runs"
CONNECT_TIMEOUT = 5  # seconds: a listener that cannot be had is done without
REOPEN_SECONDS = 5.0  # a broken listener is opened again at most this often
PROBE_SECONDS = 2.0  # a listener whose own probe has not come in this long is not trusted
PROBE = "probe:"  # a RUNS payload the listener sends itself through the state's connection


def _kept(key: str) -> str:
    """*key* as the database keeps it, and so as its notification says it (pg_text.py)."""
    return key.replace("\0", REPLACEMENT) if "\0" in key else key


class Asks(Protocol):
    """What the listener needs of the state it watches (postgres.py's PostgresState)."""

    url: str
    path: Path
    generation: int  # how many times the state's connection was made again

    def is_suppressed(self, key: str) -> bool: ...

    def suppressed(self) -> set[str]: ...

    def notify(self, channel: str, payload: str) -> None: ...


class Pushed:
    """Changes for one sender, from NOTIFY (see the module docstring); a Changes."""

    def __init__(self, state: Asks, reason: Callable[[psycopg.Error], str]) -> None:
        self._state = state
        self._reason = reason  # an error's words, without the URL's password
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._encoding = "utf-8"  # the listener's, for its notifications' words
        self._generation = -1
        self._keys: set[str] = set()
        self._runs: set[int] = set()  # runs notified and not yet asked about
        self._all_runs = True  # every run: not yet asked since the listener was opened
        self._heard: list[tuple[str, str]] = []  # (channel, payload) not yet applied
        self._retry_at = 0.0
        self._broken_said = False
        self._live()  # opened now, so that a send's first message pays nothing more

    @property
    def live(self) -> bool:
        """Whether answers come from the notifications (False: from the database)."""
        return self._conn is not None and self._generation == self._state.generation

    def suppressed(self, key: str) -> bool:
        if self._live():
            return _kept(key) in self._keys
        return self._state.is_suppressed(key)

    def suppressed_among(self, keys: Iterable[str]) -> set[str]:
        if self._live():
            return {key for key in keys if _kept(key) in self._keys}
        every = self._state.suppressed()
        return {key for key in keys if key in every}

    def run_changed(self, run: Run) -> bool:
        if not self._live() or self._all_runs:
            self._all_runs = False
            self._runs.clear()
            return True
        if run.id in self._runs:
            self._runs.discard(run.id)
            return True
        return False

    def close(self) -> None:
        self._drop()

    # the listener --------------------------------------------------------------------
    def _live(self) -> bool:
        """Read what has come; False while the listener is not to be trusted."""
        if self._conn is not None and self._generation != self._state.generation:
            self._drop()  # the state reconnected: this socket may have missed changes
        if self._conn is None and not self._open():
            return False
        assert self._conn is not None
        pgconn = self._conn.pgconn
        try:
            pgconn.consume_input()
            self._take(pgconn, self._encoding)
            if pgconn.status != psycopg.pq.ConnStatus.OK:  # the server said goodbye
                raise psycopg.OperationalError(pgconn.get_error_message() or "closed")
        except psycopg.Error as exc:
            self._broken(exc)
            return False
        if self._heard:
            self._apply()
        return True

    def _open(self) -> bool:
        if time.monotonic() < self._retry_at:
            return False
        generation = self._state.generation
        try:
            conn = psycopg.connect(self._state.url, autocommit=True,
                                   connect_timeout=CONNECT_TIMEOUT)
        except psycopg.Error as exc:
            self._broken(exc)
            return False
        try:
            conn.add_notify_handler(lambda note: self._heard.append((note.channel,
                                                                     note.payload)))
            conn.execute(f"LISTEN {SUPPRESSED}")
            conn.execute(f"LISTEN {RUNS}")
            keys = {str(key) for (key,) in conn.execute("SELECT subscriber FROM suppressed")}
            self._probe(conn)
        except psycopg.Error as exc:
            conn.close()
            self._broken(exc)
            return False
        self._conn, self._generation, self._keys = conn, generation, keys
        self._encoding = conn.info.encoding
        self._all_runs = True
        self._apply()
        if self._broken_said:
            log.info("%s: listening for changes again", self._state.path)
            self._broken_said = False
        return True

    def _probe(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        """A notification sent through the state's own connection must come here: behind
        a pooler in transaction mode (PgBouncer's), LISTEN is accepted and nothing comes."""
        token = f"{PROBE}{secrets.token_hex(8)}"
        self._state.notify(RUNS, token)
        deadline = time.monotonic() + PROBE_SECONDS
        pgconn = conn.pgconn
        while (RUNS, token) not in self._heard:
            left = deadline - time.monotonic()
            if left <= 0:
                raise psycopg.OperationalError(
                    f"a notification sent to the database did not come back in "
                    f"{PROBE_SECONDS:g} s (a connection pooler in transaction mode?)")
            select.select([pgconn.socket], [], [], left)
            pgconn.consume_input()
            self._take(pgconn, conn.info.encoding)

    def _take(self, pgconn: psycopg.pq.abc.PGconn, encoding: str) -> None:
        """The notifications libpq has read, into _heard; one whose words the connection's
        *encoding* cannot decode says '*' (read the list again)."""
        while (note := pgconn.notifies()) is not None:
            try:
                payload = note.extra.decode(encoding)
            except UnicodeDecodeError:
                payload = "*"
            self._heard.append((note.relname.decode(encoding, "replace"), payload))

    def _apply(self) -> None:
        heard, self._heard = self._heard, []
        for channel, payload in heard:
            if channel == RUNS:
                if payload.isdigit():
                    self._runs.add(int(payload))
                elif not payload.startswith(PROBE):
                    self._all_runs = True
            elif payload.startswith("+"):
                self._keys.add(payload[1:])
            elif payload.startswith("-"):
                self._keys.discard(payload[1:])
            else:  # '*': more than a payload can say
                self._keys = self._state.suppressed()

    def _broken(self, exc: psycopg.Error) -> None:
        if not self._broken_said:
            log.warning("%s: cannot listen for changes (%s): asking the database before "
                        "each message instead", self._state.path, self._reason(exc))
            self._broken_said = True
        self._drop()
        self._retry_at = time.monotonic() + REOPEN_SECONDS

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._heard.clear()
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()
