"""The send log: the source of truth for which digest went to whom (SQLite, state database).

A run is one digest period. Creating it fixes, in one transaction, which posts it carries
(each post belongs to at most one run, ever) and who is to receive it (one `pending` row per
subscriber). Every delivery outcome is committed before its connection takes the next
message, so a process killed at any instant resumes the same run: nobody is skipped, and
only messages in flight at the kill can go twice. Commits use WAL with synchronous=NORMAL:
a killed process loses nothing; a power cut may lose the last commits (then those messages
go twice, never zero times, because `pending` is what is written first).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import cast

from .interface import (
    Node,
    Outcome,
    Recorded,
    Run,
    RunAction,
    RunControl,
    RunPost,
    RunState,
    Status,
)
from .store import Store, now_text, tags_of

__all__ = ["Outcome", "Recorded", "Run", "RunPost", "SendLog", "Status", "counts_text"]

RETRYABLE = ("pending", "deferred")
_SNAPSHOT_CHUNK = 1 << 20  # the subscribers snapshot is written and compared this much at a time




def _run(row: tuple[int, str, str, str, str, str]) -> Run:
    rid, slug, start, end, created, state = row
    return Run(rid, slug, datetime.fromisoformat(start), datetime.fromisoformat(end),
               datetime.fromisoformat(created), cast(RunState, state))  # the table CHECKs it


_RUN_COLUMNS = "id, slug, period_start, period_end, created_at, state"


def counts_text(counts: Mapping[str, int]) -> str:
    """A run's deliveries by state, as `digest status` and the daemon's log show them."""
    return (f"sent {counts.get('sent', 0)}, nothing new {counts.get('empty', 0)}, "
            f"failed {counts.get('failed', 0)}, deferred {counts.get('deferred', 0)}, "
            f"unsubscribed {counts.get('suppressed', 0)}, pending {counts.get('pending', 0)}"
            + (f", cancelled {counts['cancelled']}" if counts.get("cancelled") else ""))


class SendLog:
    """Typed access to the send-log tables of a Store; each method is one transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    # runs --------------------------------------------------------------------------------
    def runs(self, limit: int = 10) -> list[Run]:
        rows = self.db.execute(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY period_end DESC "
                               "LIMIT ?", (limit,)).fetchall()
        return [_run(r) for r in rows]

    def latest_run(self) -> Run | None:
        runs = self.runs(1)
        return runs[0] if runs else None

    def unfinished_runs(self) -> list[Run]:
        """Runs with someone still to serve (pending, or deferred by a temporary failure)."""
        rows = self.db.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE state != 'cancelled' AND (state != 'done' "
            "OR id IN (SELECT DISTINCT run_id FROM deliveries WHERE state IN ('pending', "
            "'deferred'))) ORDER BY period_end").fetchall()
        return [_run(r) for r in rows]

    def assigned(self) -> tuple[set[str], set[str]]:
        """Entry ids and twin keys of every post already given to a run."""
        ids, twins = set(), set()
        for entry_id, twin in self.db.execute("SELECT entry_id, twin FROM run_posts"):
            ids.add(entry_id)
            twins.add(twin)
        return ids, twins

    def create_run(self, *, slug: str, start: datetime, end: datetime,
                   posts: Iterable[RunPost], subscribers: Iterable[tuple[str, str]],
                   roster: bytes | None = None) -> Run:
        """The run, its posts and a pending row per (key, address), all or nothing."""
        with self.store.atomic() as db:
            return self._insert_run(db, slug, start, end, posts, subscribers, roster)

    @staticmethod
    def _insert_run(db: sqlite3.Connection, slug: str, start: datetime, end: datetime,
                    posts: Iterable[RunPost], subscribers: Iterable[tuple[str, str]],
                    roster: bytes | None) -> Run:
        created = now_text()
        cursor = db.execute(
            "INSERT INTO runs (slug, period_start, period_end, created_at, state, roster) "
            "VALUES (?, ?, ?, ?, 'sending', ?)",
            (slug, start.isoformat(), end.isoformat(), created, roster))
        rid = cursor.lastrowid
        assert rid is not None
        db.executemany("INSERT INTO run_posts VALUES (?, ?, ?, ?)",
                       ((rid, p.entry_id, p.path, p.twin) for p in posts))
        db.executemany("INSERT INTO deliveries (run_id, subscriber, email, state, "
                       "updated_at) VALUES (?, ?, ?, 'pending', ?)",
                       ((rid, key, email, created) for key, email in subscribers))
        return Run(rid, slug, start, end, datetime.fromisoformat(created), "sending")

    def restore_run(self, *, slug: str, start: datetime, end: datetime,
                    posts: Iterable[RunPost], subscribers: Iterable[tuple[str, str]]) -> bool:
        """A finished run known only from its archive (the database was lost): its period
        and posts, created now (so no post read before counts as late for it), and each of
        *subscribers* (key, address) taken as served, since nobody knows who was not: the
        next send adds only those who subscribe later. False if the slug is known already."""
        with self.store.atomic() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO runs (slug, period_start, period_end, created_at, "
                "finished_at, state) VALUES (?, ?, ?, ?, ?, 'done')",
                (slug, start.isoformat(), end.isoformat(), now_text(), now_text()))
            if cursor.rowcount == 0:
                return False
            rid = cursor.lastrowid
            db.executemany("INSERT OR IGNORE INTO run_posts VALUES (?, ?, ?, ?)",
                           ((rid, p.entry_id, p.path, p.twin) for p in posts))
            db.executemany("INSERT OR IGNORE INTO deliveries (run_id, subscriber, email, state, "
                           "reply, updated_at) VALUES (?, ?, ?, 'sent', ?, ?)",
                           ((rid, key, email, "assumed sent: the send log was lost", now_text())
                            for key, email in subscribers))
        return True

    def slug_taken(self, slug: str) -> bool:
        return self.db.execute("SELECT 1 FROM runs WHERE slug = ?", (slug,)).fetchone() is not None

    def add_subscribers(self, run: Run, subscribers: Iterable[tuple[str, str]], *,
                        roster: bytes | None = None) -> int:
        """Pending rows for subscribers the run does not know yet (added since it started);
        none for a cancelled run."""
        now = now_text()
        with self.store.atomic() as db:
            if self._state_in(db, run) == "cancelled":
                return 0
            if roster is not None and db.execute(
                    "SELECT 1 FROM runs WHERE id = ? AND roster = ?", (run.id, roster)).fetchone():
                return 0  # made or last extended with exactly these pairs: none is new
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO deliveries (run_id, subscriber, email, "
                           "state, updated_at) VALUES (?, ?, ?, 'pending', ?)",
                           ((run.id, key, email, now) for key, email in subscribers))
            added = db.total_changes - before
            if roster is not None:
                db.execute("UPDATE runs SET roster = ? WHERE id = ?", (roster, run.id))
            return added

    def run_posts(self, run: Run) -> list[RunPost]:
        return [RunPost(*row) for row in self.db.execute(
            "SELECT entry_id, path, twin FROM run_posts WHERE run_id = ?", (run.id,))]

    def set_state(self, run: Run, state: RunState) -> None:
        finished = now_text() if state == "done" else None
        with self.store.atomic() as db:
            db.execute("UPDATE runs SET state = ?, finished_at = ? WHERE id = ?",
                       (state, finished, run.id))

    # the owner's pause, resume and cancel (delivery/control.py) -------------------------
    @staticmethod
    def _state_in(db: sqlite3.Connection, run: Run) -> RunState | None:
        row = db.execute("SELECT state FROM runs WHERE id = ?", (run.id,)).fetchone()
        return None if row is None else cast(RunState, row[0])

    def find_run(self, slug: str) -> Run | None:
        row = self.db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE slug = ?",
                              (slug,)).fetchone()
        return None if row is None else _run(row)

    def run_state(self, run: Run) -> RunState | None:
        return self._state_in(self.db, run)  # by the primary key: one page or two

    def run_control(self, run: Run) -> RunControl:
        row = self.db.execute("SELECT state, owner_paused FROM runs WHERE id = ?",
                              (run.id,)).fetchone()
        state, owner = (run.state, 0) if row is None else row
        last = self.db.execute("SELECT act, actor, reason, at FROM run_actions WHERE run_id = ? "
                               "ORDER BY id DESC LIMIT 1", (run.id,)).fetchone()
        if last is None:
            return RunControl(cast(RunState, state), bool(owner), None, None, None)
        return RunControl(cast(RunState, state), bool(owner), last[2], last[1],
                          datetime.fromisoformat(last[3]), last[0])

    def run_actions(self, run: Run) -> list[RunAction]:
        return [RunAction(act, actor, reason, datetime.fromisoformat(at))
                for act, actor, reason, at in self.db.execute(
                    "SELECT act, actor, reason, at FROM run_actions WHERE run_id = ? "
                    "ORDER BY id", (run.id,))]

    def control(self, run: Run, action: RunAction) -> bool:
        open_ = ("(state IN ('sending', 'paused') OR (state = 'done' AND id IN (SELECT run_id "
                 "FROM deliveries WHERE run_id = :id AND state IN ('pending', 'deferred'))))")
        at = action.at.astimezone(UTC).isoformat()
        args = {"id": run.id, "at": at}
        with self.store.atomic() as db:
            if action.act == "pause":
                changed = db.execute(
                    "UPDATE runs SET state = 'paused', owner_paused = 1 WHERE id = :id AND "
                    f"owner_paused = 0 AND {open_}", args).rowcount
            elif action.act == "resume":
                changed = db.execute(
                    "UPDATE runs SET state = 'sending', owner_paused = 0 WHERE id = :id AND "
                    "state = 'paused'", args).rowcount
            else:
                changed = db.execute(
                    "UPDATE runs SET state = 'cancelled', owner_paused = 0, finished_at = :at "
                    f"WHERE id = :id AND {open_}", args).rowcount
                if changed:
                    why = action.cancel_note(at)
                    db.execute(
                        "UPDATE deliveries SET state = 'cancelled', reply = substr(:why || "
                        "iif(reply IS NULL, '', '; last reply: ' || reply), 1, 500), "
                        "updated_at = :at, lease_owner = NULL, lease_until = NULL "
                        "WHERE run_id = :id AND state IN ('pending', "
                        "'deferred')", {**args, "why": why})
            if changed:
                db.execute("INSERT INTO run_actions (run_id, act, actor, reason, at) "
                           "VALUES (?, ?, ?, ?, ?)",
                           (run.id, action.act, action.by, action.reason, at))
        return changed > 0

    def begin_serving(self, run: Run) -> bool:
        with self.store.atomic() as db:
            return db.execute("UPDATE runs SET state = 'sending' WHERE id = ? AND "
                              "state != 'cancelled' AND owner_paused = 0",
                              (run.id,)).rowcount > 0

    def end_serving(self, run: Run, *, left: bool) -> RunState:
        """As the interface says; while another node holds live leases on *run* it is still
        being served, so its state stays as it is (that node ends it)."""
        state: RunState = "paused" if left else "done"
        with self.store.atomic() as db:
            db.execute("UPDATE runs SET state = ?, finished_at = ? WHERE id = ? AND "
                       "state = 'sending' AND NOT EXISTS (SELECT 1 FROM deliveries WHERE "
                       "run_id = ? AND state IN ('pending', 'deferred') AND lease_until >= ?)",
                       (state, None if left else now_text(), run.id, run.id, time.time()))
            return self._state_in(db, run) or state

    # several senders on one run: leased batches ------------------------------------------
    def create_or_join_run(self, *, slug: str, start: datetime, end: datetime,
                           posts: Sequence[RunPost], subscribers: Iterable[tuple[str, str]],
                           roster: bytes | None = None) -> tuple[Run, bool]:
        """The check and the insert in one BEGIN IMMEDIATE transaction: a second node
        creating at once waits for the first's commit, then finds its run (on PostgreSQL:
        the unique entry_id of run_posts makes the loser's insert fail; it rolls back and
        looks again)."""
        with self.store.atomic() as db:
            marks = ",".join("?" * len(posts))
            row = db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = (SELECT run_id FROM run_posts "
                f"WHERE entry_id IN ({marks}) LIMIT 1)", [p.entry_id for p in posts]).fetchone()
            if row is not None:
                return _run(row), False
            return self._insert_run(db, slug, start, end, posts, subscribers, roster), True

    # Claiming is one UPDATE of the rows its subquery picks; SQLite's BEGIN IMMEDIATE (in
    # atomic()) lets one writer in at a time, so two nodes never pick the same free row. On
    # PostgreSQL the subquery ends `FOR UPDATE SKIP LOCKED`, so concurrent claims skip the
    # rows another is taking instead of waiting for them (and `rowid` is the table's id).
    # `state IN (...)` as deliveries_open's own WHERE, so that SQLite reads that index: the
    # open deliveries in rowid order, no sort, stopping at the limit
    _CLAIMABLE = ("run_id = :run AND state IN ('pending', 'deferred') AND (state = 'pending' "
                  "OR :since IS NULL OR updated_at < :since) AND (lease_until IS NULL OR "
                  "lease_until < :now)")

    def claim(self, run: Run, node: str, limit: int, lease_seconds: float, *,
              since: datetime | None = None) -> list[tuple[str, str, int]]:
        now = time.time()
        args = {"run": run.id, "node": node, "now": now, "until": now + lease_seconds,
                "limit": limit, "since": None if since is None
                else since.astimezone(UTC).isoformat()}
        with self.store.atomic() as db:
            rows = db.execute(
                "UPDATE deliveries SET lease_owner = :node, lease_until = :until WHERE rowid IN "
                f"(SELECT rowid FROM deliveries WHERE {self._CLAIMABLE} ORDER BY rowid "
                "LIMIT :limit) RETURNING rowid, subscriber, email, attempts", args).fetchall()
        return [(key, email, attempts) for _, key, email, attempts in sorted(rows)]

    def renew(self, run: Run, node: str, lease_seconds: float) -> int:
        with self.store.atomic() as db:
            return db.execute(
                "UPDATE deliveries SET lease_until = ? WHERE lease_owner = ? AND run_id = ? "
                "AND state IN ('pending', 'deferred')",
                (time.time() + lease_seconds, node, run.id)).rowcount

    def kept(self, run: Run, node: str, lease_seconds: float) -> frozenset[str]:
        with self.store.atomic() as db:
            return frozenset(key for key, in db.execute(
                "UPDATE deliveries SET lease_until = ? WHERE lease_owner = ? AND run_id = ? "
                "AND state IN ('pending', 'deferred') RETURNING subscriber",
                (time.time() + lease_seconds, node, run.id)))

    def release(self, run: Run, node: str) -> int:
        with self.store.atomic() as db:
            return db.execute(
                "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL WHERE "
                "lease_owner = ? AND run_id = ?", (node, run.id)).rowcount

    def leases(self, run: Run) -> dict[str, int]:
        return dict(self.db.execute(
            "SELECT lease_owner, count(*) FROM deliveries WHERE lease_owner IS NOT NULL AND "
            "run_id = ? AND state IN ('pending', 'deferred') AND lease_until >= ? "
            "GROUP BY lease_owner", (run.id, time.time())))

    # heartbeats of the nodes -------------------------------------------------------------
    def beat(self, node: Node) -> None:
        with self.store.atomic() as db:
            db.execute("INSERT OR REPLACE INTO nodes VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (node.node, node.role, node.started_at.astimezone(UTC).isoformat(),
                        node.beat_at.timestamp(), node.run, node.leased, node.lease_seconds))

    def nodes(self) -> list[Node]:
        return [Node(node, role, datetime.fromisoformat(started),
                     datetime.fromtimestamp(beat, UTC), run, leased, lease)
                for node, role, started, beat, run, leased, lease in self.db.execute(
                    "SELECT node, role, started_at, beat_at, run, leased, lease_seconds "
                    "FROM nodes ORDER BY beat_at DESC, node")]

    def leave(self, node: str) -> None:
        with self.store.atomic() as db:
            db.execute("DELETE FROM nodes WHERE node = ?", (node,))

    def prune_nodes(self, before: datetime) -> int:
        with self.store.atomic() as db:
            return db.execute("DELETE FROM nodes WHERE beat_at < ?",
                              (before.timestamp(),)).rowcount

    # deliveries --------------------------------------------------------------------------
    def to_serve(self, run: Run) -> list[tuple[str, str, int]]:
        """(key, address, attempts so far) of everyone still to serve, in the order added."""
        return self.db.execute(
            "SELECT subscriber, email, attempts FROM deliveries WHERE run_id = ? AND state IN "
            "('pending', 'deferred') ORDER BY rowid", (run.id,)).fetchall()

    def mark(self, run: Run, rows: Iterable[tuple[str, str, int]]) -> None:
        """Close deliveries that need no message: (key, 'empty' | 'suppressed', posts)."""
        now = now_text()
        with self.store.atomic() as db:
            db.executemany("UPDATE deliveries SET state = ?, posts = ?, updated_at = ?, "
                           "lease_owner = NULL, lease_until = NULL "
                           "WHERE run_id = ? AND subscriber = ? AND state IN "
                           "('pending', 'deferred')",
                           ((state, posts, now, run.id, key) for key, state, posts in rows))

    def record_many(self, run: Run, rows: Iterable[Recorded]) -> None:
        """Several outcomes in one commit (see send.GroupCommit): all or none are kept. A
        message in flight when its run was cancelled keeps what became of it, except that a
        temporary failure does not reopen it: it stays cancelled."""
        now = now_text()
        with self.store.atomic() as db:
            db.executemany("UPDATE deliveries SET state = iif(state = 'cancelled' AND ? = "
                           "'deferred', 'cancelled', ?), attempts = ?, code = ?, reply = ?, "
                           "message_id = ?, posts = ?, updated_at = ?, lease_owner = NULL, "
                           "lease_until = NULL WHERE run_id = ? AND subscriber = ?",
                           ((r.outcome.status, r.outcome.status,
                             r.attempts_before + r.outcome.attempts,
                             r.outcome.code, r.outcome.reply[:500], r.message_id, r.posts, now,
                             run.id, r.outcome.key) for r in rows))

    def give_up(self, run: Run, why: str) -> int:
        """Deferred deliveries of *run* become failed, *why* before their last reply (the
        run is past the time a temporary failure is waited out); how many there were."""
        with self.store.atomic() as db:
            return db.execute(
                "UPDATE deliveries SET state = 'failed', reply = substr(? || coalesce(reply, "
                "''), 1, 500), updated_at = ? WHERE run_id = ? AND state = 'deferred'",
                (why, now_text(), run.id)).rowcount

    def counts(self, run: Run) -> dict[str, int]:
        return dict(self.db.execute(
            "SELECT state, count(*) FROM deliveries WHERE run_id = ? GROUP BY state", (run.id,)))

    def failures(self, run: Run, limit: int = 20) -> list[tuple[str, str, int | None, str]]:
        return self.db.execute(
            "SELECT email, state, code, reply FROM deliveries WHERE run_id = ? AND state IN "
            "('failed', 'deferred') ORDER BY rowid LIMIT ?", (run.id, limit)).fetchall()

    def delivered(self, run: Run, key: str) -> bool:
        row = self.db.execute("SELECT state FROM deliveries WHERE run_id = ? AND subscriber = ?",
                              (run.id, key)).fetchone()
        return row is not None and row[0] == "sent"

    # suppression list --------------------------------------------------------------------
    def suppressed(self) -> set[str]:
        return {key for (key,) in self.db.execute("SELECT subscriber FROM suppressed")}

    def is_suppressed(self, key: str) -> bool:
        return self.db.execute("SELECT 1 FROM suppressed WHERE subscriber = ?",
                               (key,)).fetchone() is not None

    def suppress(self, key: str, reason: str) -> bool:
        """Add to the suppression list; False if it was already there."""
        with self.store.atomic() as db:
            cursor = db.execute("INSERT OR IGNORE INTO suppressed (subscriber, since, reason) "
                                "VALUES (?, ?, ?)", (key, now_text(), reason))
            return cursor.rowcount > 0

    def unsuppress(self, key: str) -> bool:
        with self.store.atomic() as db:
            return db.execute("DELETE FROM suppressed WHERE subscriber = ?", (key,)).rowcount > 0

    # tag choices made on the web front, on top of the YAML --------------------------------
    def preferences(self) -> dict[str, tuple[str, ...] | None]:
        """subscriber → tags chosen on the web front; None: every post."""
        return {key: tags_of(tags)
                for key, tags in self.db.execute("SELECT subscriber, tags FROM preferences")}

    def preference(self, key: str) -> tuple[bool, tuple[str, ...] | None]:
        """(whether *key* chose on the web, what): one subscriber's choice, for its page."""
        row = self.db.execute("SELECT tags FROM preferences WHERE subscriber = ?",
                              (key,)).fetchone()
        return (False, None) if row is None else (True, tags_of(row[0]))

    def set_preferences(self, key: str, tags: Iterable[str] | None) -> None:
        """Store a choice; None means every post (JSON null)."""
        chosen = None if tags is None else sorted(set(tags))
        with self.store.atomic() as db:
            db.execute("INSERT OR REPLACE INTO preferences VALUES (?, ?, ?)",
                       (key, json.dumps(chosen), now_text()))

    # the last subscribers file that could be read ------------------------------------------
    def snapshot(self) -> tuple[str, str, str] | None:
        """(path, text, saved_at) of the last subscribers file that parsed."""
        row = self.db.execute("SELECT path, text, saved_at FROM subscribers_snapshot").fetchone()
        if row is None:
            return None
        text = row[1] if isinstance(row[1], str) else bytes(row[1]).decode("utf-8")
        return (row[0], text, row[2])

    def save_snapshot(self, path: str, text: str | bytes) -> None:
        """Keep *text* (bytes: UTF-8) as the last good copy. It goes in and is compared a
        megabyte at a time through SQLite's incremental blob I/O: binding a whole list's
        text (77 MB at a million) makes SQLite copy it, and again to build the row, while
        this writes a zeroblob of its size (the row's last column: not made, see migration
        0.12) and fills it in place. Unchanged text is not written; the old copy is never
        read into memory whole."""
        data = text.encode("utf-8") if isinstance(text, str) else text
        if self._snapshot_is(path, data):
            return
        with self.store.atomic() as db:
            db.execute("INSERT OR REPLACE INTO subscribers_snapshot (id, path, saved_at, text) "
                       "VALUES (1, ?, ?, zeroblob(?))", (path, now_text(), len(data)))
            view = memoryview(data)
            with db.blobopen("subscribers_snapshot", "text", 1) as blob:
                for at in range(0, len(view), _SNAPSHOT_CHUNK):
                    blob.write(view[at:at + _SNAPSHOT_CHUNK])

    def _snapshot_is(self, path: str, data: bytes) -> bool:
        """Whether the kept copy is *data* from *path* (text kept before this was a blob
        reads as its UTF-8 bytes too)."""
        row = self.db.execute("SELECT path FROM subscribers_snapshot WHERE id = 1").fetchone()
        if row is None or row[0] != path:
            return False
        view = memoryview(data)
        with self.db.blobopen("subscribers_snapshot", "text", 1, readonly=True) as blob:
            if len(blob) != len(view):
                return False
            for at in range(0, len(view), _SNAPSHOT_CHUNK):
                if blob.read(_SNAPSHOT_CHUNK) != view[at:at + _SNAPSHOT_CHUNK]:
                    return False
        return True
