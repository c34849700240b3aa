"""What several machines running digest will have to share, as one typing.Protocol.

SharedState is the seam between the stages and where their shared data lives: the send log
(runs and deliveries), the suppression list, the tag choices made on the web front, the last
good subscribers file, the entry ids with their first-seen times, the archive of sent digests
(the web's /archive/ pages), the daemon's notes and the schedule's next run. SQLite
implements it (state/sqlite.py), and PostgreSQL for several machines (state/postgres.py);
open_state (state/open.py) is the one place that chooses an implementation, by the config.

What only one machine needs stays out of it, in its local SQLite file (state/store.py): the
parse and render caches and the feeds' live index (posts/reader.py, posts/index.py).
The types a stage gets back are here too, frozen, so that no caller sees a database row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

# What finally became of one message, as a transport reports it (delivery/transport.py)
# and the send log keeps it: defined here, below the transports, so that the state does not
# depend on the delivery stage.
Status = Literal["sent", "failed", "deferred"]
# paused: by itself (failures in a row; the next send resumes it) or by the owner (only the
# owner resumes it: RunControl.owner_paused); cancelled: by the owner, for good
RunState = Literal["sending", "paused", "done", "cancelled"]
# a delivery: pending until served; empty (nothing new for them) and suppressed (on the
# suppression list) close it without a message, and so does cancelled (its run was)
DeliveryState = Literal["pending", "sent", "failed", "deferred", "empty", "suppressed",
                        "cancelled"]
# what the owner does to a run in progress (delivery/control.py)
Action = Literal["pause", "resume", "cancel"]
Closed = Literal["empty", "suppressed"]


@dataclass(frozen=True)
class Outcome:
    """What finally became of one message.

    failed: refused for good (a 5xx); never retried. deferred: still failing for a transient
    reason after the last attempt; the send log offers it again on the next run.
    """

    key: str
    status: Status
    code: int | None  # the last SMTP reply code; None if there was no reply (timeout, drop)
    reply: str  # the last server reply or error, on one line
    attempts: int


@dataclass(frozen=True)
class Run:
    id: int
    slug: str  # names the period in Message-IDs and archive URLs, e.g. 2024-06-03
    period_start: datetime
    period_end: datetime
    created_at: datetime  # wall clock: posts first seen after it are late for this run
    state: RunState  # the runs table CHECKs the same four


@dataclass(frozen=True)
class RunAction:
    """One thing the owner did to a run: who, why, when."""

    act: Action
    by: str
    reason: str
    at: datetime

    def cancel_note(self, at: str) -> str:
        """What a cancelled delivery's reply starts with (both stores write the same words)."""
        return f"cancelled by {self.by} at {at}: {self.reason}"


@dataclass(frozen=True)
class RunControl:
    """Where a run stands as the owner sees it: its state, whether the owner paused it (the
    run's own pause after failures in a row is not the owner's), and the owner's last action
    on it (None, None, None if there was none)."""

    state: RunState
    owner_paused: bool
    reason: str | None
    by: str | None
    at: datetime | None
    action: Action | None = None


@dataclass(frozen=True)
class RunPost:
    entry_id: str
    path: str
    twin: str  # slug + title: recognises a post renamed to a new date as the same post


@dataclass(frozen=True)
class Recorded:
    """What the send log keeps of one message's final outcome."""

    outcome: Outcome
    message_id: str
    posts: int  # posts the message carried
    attempts_before: int = 0  # attempts made by earlier runs of `digest send`


@dataclass(frozen=True)
class Node:
    """One sending process (or daemon) as its heartbeat last told: which run it serves and
    how many deliveries it holds leased; silent longer than *lease_seconds*, it is gone
    (killed, or its machine lost) and its leases are free for others."""

    node: str  # hostname:pid
    role: str  # "send" (digest send) or "daemon" (digest run)
    started_at: datetime
    beat_at: datetime
    run: str | None  # the slug of the run it serves; None: none now
    leased: int
    lease_seconds: float

    def gone(self, now: datetime) -> bool:
        """Silent longer than its lease at *now*: killed or lost; its leases are others'."""
        return (now - self.beat_at).total_seconds() > self.lease_seconds


@dataclass(frozen=True)
class NextRun:
    """A scheduled job's next run as the shared schedule holds it."""

    at: datetime | None  # UTC; None: the job is there but paused


@dataclass(frozen=True)
class Archived:
    """One sent digest in the archive, as its index lists it (delivery/archive.py)."""

    slug: str
    period_start: datetime
    period_end: datetime


# where someone on the list in the state (not the owner's YAML) came from
Source = Literal["signup", "import"]
# feedback about an address (feedback/events.py gives the same four kinds)
BounceKind = Literal["hard", "soft", "complaint", "unsubscribe"]


@dataclass(frozen=True)
class Member:
    """Someone on the list beside the owner's YAML: signed up and confirmed, or imported."""

    key: str  # the address lowercased, as Subscriber.key
    email: str
    name: str | None
    tags: tuple[str, ...] | None  # None: every post
    source: Source
    since: datetime  # confirmed or first imported


@dataclass(frozen=True)
class Pending:
    """A sign-up waiting for its confirmation link to be followed."""

    key: str
    email: str
    name: str | None
    tags: tuple[str, ...] | None
    requested_at: datetime  # the latest request: the confirmation link's clock starts here


@dataclass(frozen=True)
class Suppression:
    key: str
    since: datetime
    reason: str  # "unsubscribed on the web (one-click)", "hard bounce", "complaint", ...
    evidence: str = ""  # what proves it: a DSN's status and diagnostic, an import's line


@dataclass(frozen=True)
class Bounce:
    """One bounce, complaint or unsubscribe reply recorded against an address."""

    key: str
    kind: BounceKind
    at: datetime
    origin: str  # dsn, arf, mailto, smtp, ses, mailgun, postmark
    ident: str  # the same report read twice is recorded once
    status: str | None = None
    diagnostic: str = ""
    run: str | None = None  # the digest's slug, when known
    evidence: str = ""


@dataclass(frozen=True)
class Delivery:
    """One delivery of one run as the send log has it, for `digest deliveries` and `show`."""

    run: str  # the run's slug
    key: str
    email: str
    state: DeliveryState
    attempts: int
    code: int | None
    reply: str | None
    message_id: str | None
    posts: int | None
    updated_at: datetime | None


class Changes(Protocol):
    """What other processes change while this one sends, as a sender asks it before each
    message: an unsubscribe, bounce or complaint recorded by any node is honoured before the
    next message to that address, and a pause or cancel is seen. From SharedState.changes();
    closed when the send is done."""

    def suppressed(self, key: str) -> bool:
        """Whether *key* is on the suppression list now."""
        ...

    def suppressed_among(self, keys: Iterable[str]) -> set[str]:
        """Those of *keys* on the suppression list now (a batch's, at once)."""
        ...

    def run_changed(self, run: Run) -> bool:
        """False only when *run*'s state is known not to have changed since last asked
        (True: read it again; always True where changes are not pushed)."""
        ...

    def close(self) -> None: ...


class Asked:
    """Changes asked of the state each time: one read per question (SQLite, where that
    read is a lookup in a local file, and PostgreSQL's throwaway state)."""

    def __init__(self, state: SharedState) -> None:
        self._state = state

    def suppressed(self, key: str) -> bool:
        return self._state.is_suppressed(key)

    def suppressed_among(self, keys: Iterable[str]) -> set[str]:
        every = self._state.suppressed()
        return {key for key in keys if key in every}

    def run_changed(self, run: Run) -> bool:
        return True

    def close(self) -> None:
        pass


class SharedState(Protocol):
    """Everything digest keeps that every machine serving one site must see alike.

    Each writing method is one transaction, committed before it returns: a send records
    each outcome before the next message goes out (delivery/send.py relies on it).
    """

    # runs --------------------------------------------------------------------------------
    def runs(self, limit: int = 10) -> list[Run]:
        """The latest *limit* runs, newest period first."""
        ...

    def latest_run(self) -> Run | None: ...

    def unfinished_runs(self) -> list[Run]:
        """Runs not done, or with someone pending or deferred, oldest period first."""
        ...

    def assigned(self) -> tuple[set[str], set[str]]:
        """Entry ids and twin keys of every post already given to a run."""
        ...

    def create_run(self, *, slug: str, start: datetime, end: datetime,
                   posts: Iterable[RunPost], subscribers: Iterable[tuple[str, str]],
                   roster: bytes | None = None) -> Run:
        """The run, its posts and a pending delivery per (key, address), all or nothing;
        a second run for the same slug or period end is refused (StateError). *roster*:
        a digest of *subscribers*, kept with the run (see add_subscribers)."""
        ...

    def restore_run(self, *, slug: str, start: datetime, end: datetime,
                    posts: Iterable[RunPost], subscribers: Iterable[tuple[str, str]]) -> bool:
        """A done run rebuilt from its archive, everyone taken as sent; False if known."""
        ...

    def slug_taken(self, slug: str) -> bool: ...

    def add_subscribers(self, run: Run, subscribers: Iterable[tuple[str, str]], *,
                        roster: bytes | None = None) -> int:
        """Pending deliveries for the (key, address) pairs *run* lacks; how many were new.
        *roster*: a digest of *subscribers*; if the run was made or last extended with the
        same, none is new and *subscribers* is not read (every sender joining a run offered
        the whole list again: 0.2 CPU s at 20,000 on PostgreSQL); else it is kept with it."""
        ...

    def run_posts(self, run: Run) -> list[RunPost]: ...

    def set_state(self, run: Run, state: RunState) -> None: ...

    # the owner's pause, resume and cancel, and the sender honouring them -----------------
    def find_run(self, slug: str) -> Run | None: ...

    def run_state(self, run: Run) -> RunState | None:
        """The run's state now, by one read of its row: what a sender checks between
        batches to see a pause or cancel made by another process; None if it is gone."""
        ...

    def run_control(self, run: Run) -> RunControl: ...

    def run_actions(self, run: Run) -> list[RunAction]:
        """Everything the owner did to *run*, oldest first."""
        ...

    def control(self, run: Run, action: RunAction) -> bool:
        """Apply the owner's *action* and record it, in one transaction; False (nothing
        done) if the run's state does not allow it now. pause: a run with someone still to
        serve, not already paused by the owner; resume: a paused run; cancel: a run with
        someone still to serve, whose pending and deferred deliveries become cancelled."""
        ...

    def begin_serving(self, run: Run) -> bool:
        """The run becomes 'sending' for a sender about to serve it, unless the owner paused
        or cancelled it: then False and nothing changes."""
        ...

    def end_serving(self, run: Run, *, left: bool) -> RunState:
        """A sender is done with *run*: 'paused' if someone is *left*, else 'done', unless
        the owner paused or cancelled it meanwhile (that stays); the state it ends in."""
        ...

    # deliveries --------------------------------------------------------------------------
    def to_serve(self, run: Run) -> list[tuple[str, str, int]]:
        """(key, address, attempts) of the pending and deferred, in the order added."""
        ...

    def mark(self, run: Run, rows: Iterable[tuple[str, str, int]]) -> None:
        """Close deliveries that need no message: (key, 'empty' | 'suppressed', posts)."""
        ...

    def record_many(self, run: Run, rows: Iterable[Recorded]) -> None:
        """Several outcomes in one commit: all or none are kept."""
        ...

    def give_up(self, run: Run, why: str) -> int:
        """Deferred deliveries of *run* become failed, *why* first in their reply."""
        ...

    def counts(self, run: Run) -> dict[str, int]:
        """Deliveries of *run* by state (DeliveryState); states with none are left out."""
        ...

    def failures(self, run: Run, limit: int = 20) -> list[tuple[str, str, int | None, str]]:
        """(address, state, code, reply) of the failed and deferred, in the order added."""
        ...

    def delivered(self, run: Run, key: str) -> bool: ...

    # several senders on one run: leased batches ------------------------------------------
    def create_or_join_run(self, *, slug: str, start: datetime, end: datetime,
                           posts: Sequence[RunPost], subscribers: Iterable[tuple[str, str]],
                           roster: bytes | None = None) -> tuple[Run, bool]:
        """create_run, unless another node made a run holding any of *posts* meanwhile (it
        planned the same period a moment earlier): then that run, joined; (run, created).
        One transaction, so two nodes creating at once end with one run."""
        ...

    def claim(self, run: Run, node: str, limit: int, lease_seconds: float, *,
              since: datetime | None = None) -> list[tuple[str, str, int]]:
        """Up to *limit* deliveries of *run* still to serve and leased by nobody (or by a
        node whose lease expired), now leased to *node* for *lease_seconds*: (key, address,
        attempts), in the order added. Deferred ones count only if last tried before
        *since* (this node's start), so a node does not retry what it deferred itself."""
        ...

    def renew(self, run: Run, node: str, lease_seconds: float) -> int:
        """Extend *node*'s leases on *run* to *lease_seconds* from now; how many it holds."""
        ...

    def kept(self, run: Run, node: str, lease_seconds: float) -> frozenset[str]:
        """Renew *node*'s leases on *run* as `renew` does, and name the deliveries (keys) it
        still holds: asked by a node whose leases may have lapsed (it was paused, or cut off
        from the state, for longer than the lease), which must leave what another took."""
        ...

    def release(self, run: Run, node: str) -> int:
        """Give up *node*'s leases on deliveries of *run* it did not serve; how many."""
        ...

    def leases(self, run: Run) -> dict[str, int]:
        """node → how many deliveries of *run* still to serve it holds under a lease not yet
        expired: a node with nothing left to claim waits for these."""
        ...

    # heartbeats of the nodes -------------------------------------------------------------
    def beat(self, node: Node) -> None:
        """Record *node*'s heartbeat (replacing its last)."""
        ...

    def nodes(self) -> list[Node]:
        """Every node's last heartbeat, the latest first."""
        ...

    def leave(self, node: str) -> None:
        """*node* stops cleanly: its row goes."""
        ...

    def prune_nodes(self, before: datetime) -> int:
        """Forget the nodes silent since before *before*; how many."""
        ...

    # suppression list --------------------------------------------------------------------
    def suppressed(self) -> set[str]: ...

    def is_suppressed(self, key: str) -> bool: ...

    def changes(self) -> Changes:
        """What other processes change while this one sends (Changes), for one send."""
        ...

    def suppress(self, key: str, reason: str) -> bool:
        """Add to the suppression list; False if it was already there."""
        ...

    def unsuppress(self, key: str) -> bool:
        """Take off the suppression list; False if it was not there."""
        ...

    def suppression(self, key: str) -> Suppression | None:
        """Why and since when *key* is suppressed; None if it is not."""
        ...

    def suppressions(self) -> list[Suppression]:
        """The whole suppression list, oldest first."""
        ...

    def suppress_with(self, key: str, reason: str, evidence: str = "") -> bool:
        """suppress, keeping *evidence* (a DSN's status and words, an import's line)."""
        ...

    # the list beside the YAML: sign-ups and imports --------------------------------------
    def members(self, source: Source | None = None) -> list[Member]:
        """Everyone signed up or imported (of *source* if given), in the order they came."""
        ...

    def member(self, key: str) -> Member | None: ...

    def put_member(self, member: Member) -> Literal["new", "updated", "same"]:
        """Add or update *member* (its `since` is kept from the first time)."""
        ...

    def remove_member(self, key: str) -> bool: ...

    def members_stamp(self) -> str:
        """Changes whenever a member is added, updated or removed: how the web front knows
        its index of link tokens is stale without reading every member per click."""
        ...

    def pending(self, key: str) -> Pending | None: ...

    def save_pending(self, pending: Pending) -> None:
        """Keep (or replace) the sign-up waiting for *pending.key*'s confirmation."""
        ...

    def take_pending(self, key: str) -> Pending | None:
        """The sign-up waiting for *key*, removed: a confirmation link works once."""
        ...

    def pending_count(self, since: datetime | None = None) -> int: ...

    def drop_pending(self, before: datetime) -> int:
        """Forget sign-ups requested before *before* (never confirmed); how many."""
        ...

    def hit(self, bucket: str, limit: int, window_seconds: float, now: datetime) -> bool:
        """Count one event in *bucket* and say whether it is within *limit* per window;
        one transaction, so every web node shares the same count."""
        ...

    # bounces and complaints --------------------------------------------------------------
    def record_bounce(self, bounce: Bounce) -> bool:
        """Keep *bounce*; False if one with its ident is already kept."""
        ...

    def bounces(self, key: str | None = None, *, since: datetime | None = None,
                limit: int = 1000) -> list[Bounce]:
        """Bounces of *key* (or of everyone), newest first."""
        ...

    # who got what ------------------------------------------------------------------------
    def deliveries(self, run: Run, *, failed: bool = False) -> list[Delivery]:
        """Every delivery of *run* (the failed and deferred only, if *failed*), in order."""
        ...

    def deliveries_of(self, key: str, limit: int = 10) -> list[Delivery]:
        """*key*'s deliveries, latest run first."""
        ...

    # tag choices made on the web front ---------------------------------------------------
    def preferences(self) -> dict[str, tuple[str, ...] | None]:
        """subscriber → tags chosen (sorted, once each); None: every post."""
        ...

    def preference(self, key: str) -> tuple[bool, tuple[str, ...] | None]:
        """(whether *key* chose on the web, what)."""
        ...

    def set_preferences(self, key: str, tags: Iterable[str] | None) -> None: ...

    # the last subscribers file that could be read ----------------------------------------
    def snapshot(self) -> tuple[str, str, str] | None:
        """(path, text, saved_at) of the last subscribers file that parsed."""
        ...

    def save_snapshot(self, path: str, text: str | bytes) -> None:
        """Keep *text* (bytes: UTF-8, as the file was read) as the last good copy."""
        ...

    # the archive: each sent digest's posts, frozen (delivery/archive.py writes the text) ---
    def save_archive(self, entry: Archived, text: str) -> bool:
        """Keep *text* as the archived digest *entry.slug*; False if that slug is already kept
        (a resumed run keeps its first copy: the text is never replaced)."""
        ...

    def archive_index(self) -> list[Archived]:
        """Every archived digest, latest period end first (the same end: greater slug first)."""
        ...

    def archived(self, slug: str) -> str | None:
        """The text kept for *slug*; None if there is none."""
        ...

    # entry ids: a post's id for good, and when it was first seen -------------------------
    def entry_ids(self) -> dict[str, str]:
        """path → entry id, of every post given one."""
        ...

    def entry_ids_of(self, paths: Iterable[str]) -> dict[str, str]: ...

    def has_entry_ids(self) -> bool: ...

    def taken_ids(self, entry_ids: Iterable[str]) -> set[str]:
        """Which of *entry_ids* some post already has."""
        ...

    def add_entry_ids(self, rows: Iterable[tuple[str, str, str]]) -> None:
        """(path, entry id, first seen) rows; a path or id already known keeps what it has."""
        ...

    def rename_entry_ids(self, renames: Iterable[tuple[str, str]]) -> None:
        """Move each (old path, new path)'s id to the new path, unless the new one has an id
        already: a feed source's entry kept under an older digest's machine-bound key."""
        ...

    def first_seen(self) -> dict[str, str]:
        """entry id → when it was first seen (ISO 8601, UTC)."""
        ...

    # what the daemon notes for `digest status`, and the schedule -------------------------
    def note(self, key: str, data: dict[str, Any]) -> None:
        """Replace what the daemon last recorded under *key* (daemon, build, subscribers)."""
        ...

    def notes(self) -> dict[str, dict[str, Any]]:
        """Every key's last note, by key."""
        ...

    def drop_notes(self, keys: Iterable[str]) -> int:
        """Forget the notes under *keys* (the web's ended sessions); how many were there."""
        ...

    def next_run(self, job_id: str) -> NextRun | None:
        """When the scheduled job *job_id* runs next; None if it is not scheduled."""
        ...

    # many writes at once ------------------------------------------------------------------
    def batch(self) -> AbstractContextManager[None]:
        """Writes made inside are committed together (an import's rows): one commit, not
        one per row. Each write still succeeds or fails alone; an error out of the batch
        undoes all of it."""
        ...

    # health ------------------------------------------------------------------------------
    def ping(self) -> None:
        """Return if the state answers; raise (StateError) if not."""
        ...

    def close(self) -> None: ...
