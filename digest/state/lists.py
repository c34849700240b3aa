"""The list beside the owner's YAML, in the state database: sign-ups (waiting and confirmed),
imports, the suppression list's reasons and evidence, bounces and complaints, rate-limit
counters and who got what. The YAML stays the owner's; what people do by themselves is kept
here, where every machine serving the site sees it (state/interface.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, cast

from .interface import (
    Bounce,
    BounceKind,
    Delivery,
    DeliveryState,
    Member,
    Pending,
    Run,
    Source,
    Suppression,
)
from .store import Store, now_text, tags_json, tags_of

HITS_KEPT_SECONDS = 86_400  # rate-limit counters older than a day are forgotten





def _when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


_MEMBER = "key, email, name, tags, source, since"
_BOUNCE = "key, kind, at, origin, ident, status, diagnostic, run, evidence"
_DELIVERY = ("r.slug, d.subscriber, d.email, d.state, d.attempts, d.code, d.reply, "
             "d.message_id, d.posts, d.updated_at")


def _member(row: tuple[str, str, str | None, str, str, str]) -> Member:
    key, email, name, tags, source, since = row
    return Member(key, email, name, tags_of(tags), cast(Source, source),
                  datetime.fromisoformat(since))


def _bounce(row: tuple[str, str, str, str, str, str | None, str, str | None, str]) -> Bounce:
    key, kind, at, origin, ident, status, diagnostic, run, evidence = row
    return Bounce(key, cast(BounceKind, kind), datetime.fromisoformat(at), origin, ident,
                  status, diagnostic, run, evidence)


def _delivery(row: tuple[str, str, str, str, int, int | None, str | None, str | None,
                         int | None, str | None]) -> Delivery:
    slug, key, email, state, attempts, code, reply, message_id, posts, updated = row
    return Delivery(slug, key, email, cast(DeliveryState, state), attempts, code, reply,
                    message_id, posts, _when(updated))


class Lists:
    """The tables of migration 0.9 on a Store; each writing method is one transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    # the suppression list's reasons ------------------------------------------------------
    def suppression(self, key: str) -> Suppression | None:
        row = self.db.execute("SELECT subscriber, since, reason, evidence FROM suppressed "
                              "WHERE subscriber = ?", (key,)).fetchone()
        return None if row is None else Suppression(row[0], datetime.fromisoformat(row[1]),
                                                    row[2], row[3])

    def suppressions(self) -> list[Suppression]:
        return [Suppression(key, datetime.fromisoformat(since), reason, evidence)
                for key, since, reason, evidence in self.db.execute(
                    "SELECT subscriber, since, reason, evidence FROM suppressed "
                    "ORDER BY since, subscriber")]

    def suppress_with(self, key: str, reason: str, evidence: str = "") -> bool:
        with self.store.atomic() as db:
            return db.execute("INSERT OR IGNORE INTO suppressed (subscriber, since, reason, "
                              "evidence) VALUES (?, ?, ?, ?)",
                              (key, now_text(), reason, evidence)).rowcount > 0

    # members -----------------------------------------------------------------------------
    def members(self, source: Source | None = None) -> list[Member]:
        if source is None:
            rows = self.db.execute(f"SELECT {_MEMBER} FROM members ORDER BY since, key")
        else:
            rows = self.db.execute(f"SELECT {_MEMBER} FROM members WHERE source = ? "
                                   "ORDER BY since, key", (source,))
        return [_member(row) for row in rows]

    def member(self, key: str) -> Member | None:
        row = self.db.execute(f"SELECT {_MEMBER} FROM members WHERE key = ?",
                              (key,)).fetchone()
        return None if row is None else _member(row)

    def put_member(self, member: Member) -> Literal["new", "updated", "same"]:
        with self.store.atomic() as db:
            old = db.execute(f"SELECT {_MEMBER} FROM members WHERE key = ?",
                             (member.key,)).fetchone()
            values = (member.email, member.name, tags_json(member.tags), member.source)
            if old is None:
                db.execute(f"INSERT INTO members ({_MEMBER}, updated_at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (member.key, *values, member.since.isoformat(), now_text()))
                return "new"
            if tuple(old[1:5]) == values:
                return "same"
            db.execute("UPDATE members SET email = ?, name = ?, tags = ?, source = ?, "
                       "updated_at = ? WHERE key = ?", (*values, now_text(), member.key))
            return "updated"

    def remove_member(self, key: str) -> bool:
        with self.store.atomic() as db:
            return db.execute("DELETE FROM members WHERE key = ?", (key,)).rowcount > 0

    def members_stamp(self) -> str:
        # a removal lowers the count; an addition or update moves the latest updated_at
        count, latest = self.db.execute("SELECT COUNT(*), MAX(updated_at) FROM members "
                                        ).fetchone()
        return f"{count}|{latest}"

    # sign-ups waiting for confirmation ---------------------------------------------------
    def pending(self, key: str) -> Pending | None:
        row = self.db.execute("SELECT key, email, name, tags, requested_at FROM pending "
                              "WHERE key = ?", (key,)).fetchone()
        return None if row is None else Pending(row[0], row[1], row[2], tags_of(row[3]),
                                                datetime.fromisoformat(row[4]))

    def save_pending(self, pending: Pending) -> None:
        with self.store.atomic() as db:
            db.execute("INSERT OR REPLACE INTO pending VALUES (?, ?, ?, ?, ?)",
                       (pending.key, pending.email, pending.name, tags_json(pending.tags),
                        pending.requested_at.isoformat()))

    def take_pending(self, key: str) -> Pending | None:
        with self.store.atomic() as db:
            row = db.execute("SELECT key, email, name, tags, requested_at FROM pending "
                             "WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM pending WHERE key = ?", (key,))
        return Pending(row[0], row[1], row[2], tags_of(row[3]), datetime.fromisoformat(row[4]))

    def pending_count(self, since: datetime | None = None) -> int:
        if since is None:
            row = self.db.execute("SELECT COUNT(*) FROM pending").fetchone()
        else:  # ISO text in UTC sorts as time does
            row = self.db.execute("SELECT COUNT(*) FROM pending WHERE requested_at >= ?",
                                  (since.astimezone(UTC).isoformat(),)).fetchone()
        return int(row[0])

    def drop_pending(self, before: datetime) -> int:
        with self.store.atomic() as db:
            return db.execute("DELETE FROM pending WHERE requested_at < ?",
                              (before.astimezone(UTC).isoformat(),)).rowcount

    def hit(self, bucket: str, limit: int, window_seconds: float, now: datetime) -> bool:
        at = now.timestamp()
        with self.store.atomic() as db:
            db.execute("DELETE FROM hits WHERE at < ?", (at - max(window_seconds,
                                                                   HITS_KEPT_SECONDS),))
            (count,) = db.execute("SELECT COUNT(*) FROM hits WHERE bucket = ? AND at > ?",
                                  (bucket, at - window_seconds)).fetchone()
            if count >= limit:
                return False
            db.execute("INSERT INTO hits VALUES (?, ?)", (bucket, at))
            return True

    # bounces and complaints --------------------------------------------------------------
    def record_bounce(self, bounce: Bounce) -> bool:
        with self.store.atomic() as db:
            return db.execute(
                f"INSERT OR IGNORE INTO bounces ({_BOUNCE}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (bounce.key, bounce.kind, bounce.at.astimezone(UTC).isoformat(), bounce.origin,
                 bounce.ident, bounce.status, bounce.diagnostic, bounce.run,
                 bounce.evidence)).rowcount > 0

    def bounces(self, key: str | None = None, *, since: datetime | None = None,
                limit: int = 1000) -> list[Bounce]:
        where, args = [], []
        if key is not None:
            where.append("key = ?")
            args.append(key)
        if since is not None:
            where.append("at >= ?")
            args.append(since.astimezone(UTC).isoformat())
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        return [_bounce(row) for row in self.db.execute(
            f"SELECT {_BOUNCE} FROM bounces {clause}ORDER BY at DESC, ident LIMIT ?",
            (*args, limit))]

    # who got what ------------------------------------------------------------------------
    def deliveries(self, run: Run, *, failed: bool = False) -> list[Delivery]:
        only = "AND d.state IN ('failed', 'deferred') " if failed else ""
        return [_delivery(row) for row in self.db.execute(
            f"SELECT {_DELIVERY} FROM deliveries d JOIN runs r ON r.id = d.run_id "
            f"WHERE d.run_id = ? {only}ORDER BY d.rowid", (run.id,))]

    def deliveries_of(self, key: str, limit: int = 10) -> list[Delivery]:
        return [_delivery(row) for row in self.db.execute(
            f"SELECT {_DELIVERY} FROM deliveries d JOIN runs r ON r.id = d.run_id "
            "WHERE d.subscriber = ? ORDER BY r.period_end DESC LIMIT ?", (key, limit))]
