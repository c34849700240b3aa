"""The digest run: posts + subscribers → editions → messages → a transport, with the send log.

Resumes what an earlier run left (crash, pause, temporary failures) before starting a new
period. Messages are made on demand while the transport sends, so 100,000 subscribers never
sit in memory as messages: each distinct edition (same posts, same tags followed) is
rendered once, then personalised per subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

from ..config import Config
from ..edition.selection import Window, period_slug
from ..errors import ConfigError, DeliveryPaused, DigestError, Problem
from ..posts.published import Published
from ..state.interface import Changes, SharedState
from ..state.sendlog import Recorded, Run
from ..subscribers.current import finder
from ..subscribers.load import (
    Packed,
    Subscriber,
    SubscriberList,
)
from ..util.loop import run_async
from . import archive, traces
from .compose import Composer, edition_order
from .control import describe
from .nodes import Heartbeat, LeaseClock, alive, lease_settings
from .outbox import MaildirTransport
from .session import Session, newest_first, plan_run, session, when
from .smtp import SmtpTransport
from .transport import Outcome, Outgoing, Transport

log = logging.getLogger(__name__)
T = TypeVar("T")

# How often a sender reads its run's state, to see a pause or cancel the owner made from
# another process (the CLI, the web): before every CHECK_EVERY-th message it takes, and at
# least every CHECK_SECONDS while messages wait (retries); one read of one row by its key,
# made only if the state's Changes cannot say that nothing changed (PostgreSQL's can)
CHECK_EVERY = 10
CHECK_SECONDS = 0.25
# how often a sender with nothing left to claim looks again while other nodes hold leases
CLAIM_POLL_SECONDS = 1.0


class Progress(Protocol):
    """How a run reports itself: a rich bar on a terminal, log lines elsewhere (the CLI)."""

    def start(self, run: Run, total: int) -> None: ...
    def advance(self, outcome: Outcome) -> None: ...
    def finish(self) -> None: ...


@dataclass
class RunReport:
    run: Run
    posts: int
    counts: dict[str, int] = field(default_factory=dict)
    added: int = 0  # subscribers added to an existing run
    paused: str | None = None
    failures: list[tuple[str, str, int | None, str]] = field(default_factory=list)
    # the owner's hand: "paused by the owner (by … at …: why)" or "cancelled (…)"; None if
    # the owner did nothing to this run
    held: str | None = None
    # outcomes this process recorded, by state (counts: the whole run's, other nodes' too)
    mine: dict[str, int] = field(default_factory=dict)


@dataclass
class SendReport:
    runs: list[RunReport] = field(default_factory=list)
    nothing_new: str | None = None  # why no new run was made
    subscribers: SubscriberList | None = None
    corpus: Published | None = None

    @property
    def failed(self) -> int:
        return sum(r.counts.get("failed", 0) for r in self.runs)

    @property
    def paused(self) -> bool:
        return any(r.paused for r in self.runs)

    @property
    def held(self) -> list[RunReport]:
        """The runs the owner paused or cancelled: left alone, or stopped midway."""
        return [r for r in self.runs if r.held]

    @property
    def deferred(self) -> int:
        """Deliveries still waiting out a temporary failure: retried by `digest run` (or the
        next `digest send`) until smtp.give_up_days after their digest was made."""
        return sum(r.counts.get("deferred", 0) for r in self.runs)


def make_transport(config: Config) -> Transport:
    if config.smtp is None:
        return MaildirTransport(config.state / "outbox")
    password = None
    if config.smtp.password_env:
        password = os.environ.get(config.smtp.password_env)
        if password is None:
            raise ConfigError([Problem(config.path, None,
                                       f"smtp.password_env names ${config.smtp.password_env}, "
                                       "which is not set", "export it before sending")])
    return SmtpTransport(config.smtp, password=password)


async def _serve(s: Session, run: Run, transport: Transport, progress: Progress | None,
                 stop: asyncio.Event | None, beat: Heartbeat) -> RunReport:
    """Serve *run* with whoever else serves it: claim a batch, send it, claim the next,
    until nothing is left to claim and no other node holds a lease on it."""
    posts = newest_first(s, (p.entry_id for p in s.sendlog.run_posts(run)))
    report = RunReport(run, len(posts))
    composer = Composer(s, run.slug, posts)
    period = Window(run.period_start, run.period_end)
    archive.keep(s.config.state, s.sendlog, run.slug, period.start.astimezone(s.config.site.tz),
                 period.end.astimezone(s.config.site.tz), composer.items, composer.entry_ids())
    composer.archived = archive.frozen(s.sendlog, run.slug)
    lease_seconds, batch = lease_settings(s.config)
    if progress:
        counts = s.sendlog.counts(run)
        progress.start(run, counts.get("pending", 0) + counts.get("deferred", 0))
    changes = s.sendlog.changes()
    watch = OwnerWatch(s.sendlog, run, stop, changes)
    beat.serve(run, lease_seconds)
    claims = Claims(s, run, composer, finder(s.subscribers.subscribers), beat.node, batch,
                    beat.lease, watch, changes)
    try:
        await _deliver(s, run, composer, period, claims, transport, progress, watch,
                       report.mine, changes)
    except DeliveryPaused as exc:
        report.paused = str(exc)
    finally:
        s.sendlog.release(run, beat.node)  # claimed and not served (stopped): others take them
        beat.serve(None)
        await watch.close()
        changes.close()
        if progress:
            progress.finish()
    counts = s.sendlog.counts(run)
    left = counts.get("pending", 0) + counts.get("deferred", 0)
    if s.sendlog.end_serving(run, left=bool(left)) != "done" or watch.seen is not None:
        report.held = held_text(s.sendlog, run)  # the owner's hand, if it was that
    report.counts = s.sendlog.counts(run)
    report.failures = s.sendlog.failures(run)
    return report


def held_text(state: SharedState, run: Run) -> str | None:
    """'paused by the owner (by … at …: why)' or 'cancelled (…)'; None if neither."""
    control = state.run_control(run)
    if control.state == "cancelled":
        return f"cancelled ({describe(control)})"
    if control.owner_paused:
        return (f"paused by the owner ({describe(control)}); not sent until the owner "
                f"resumes it: digest resume {run.slug}")
    return None


class OwnerWatch:
    """Sees a pause or cancel made by another process while a run is served: the run's
    state is read between batches of messages (check) and, while none is taken, every
    CHECK_SECONDS (a task), unless *changes* knows it did not change; once it is no longer
    'sending', `stop` is set, so the transport takes no more messages and returns when those
    in flight are done. *outer* (the daemon's shutdown) sets it too."""

    def __init__(self, state: SharedState, run: Run, outer: asyncio.Event | None,
                 changes: Changes) -> None:
        self._state = state
        self._run = run
        self._changes = changes
        self.stop = asyncio.Event()
        self.seen: str | None = None  # the state that stopped the run
        self._taken = 0
        self._last = time.monotonic()
        self._task = asyncio.create_task(self._poll(outer))

    def check(self) -> bool:
        """Before a message is taken: False once the owner paused or cancelled the run."""
        if self.stop.is_set():
            return False
        self._taken += 1
        if self._taken % CHECK_EVERY == 1 or time.monotonic() - self._last >= CHECK_SECONDS:
            self._read()
        return not self.stop.is_set()

    def _read(self) -> None:
        self._last = time.monotonic()
        if not self._changes.run_changed(self._run):
            return
        now = self._state.run_state(self._run)
        if now == "done":  # another sender served the last of it: nothing left to take
            self.stop.set()
            return
        if now != "sending" and self.seen is None:
            self.seen = now
            log.warning("digest %s: %s by the owner: finishing the messages in flight",
                        self._run.slug, "cancelled" if now == "cancelled" else "paused")
            self.stop.set()

    async def _poll(self, outer: asyncio.Event | None) -> None:
        while not self.stop.is_set():
            if outer is not None and outer.is_set():
                self.stop.set()
                return
            await asyncio.sleep(CHECK_SECONDS)
            if time.monotonic() - self._last >= CHECK_SECONDS:
                self._read()

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


Item = tuple[Subscriber, tuple[int, ...], int]  # who, the posts they get, attempts so far


class Claims:
    """The deliveries this node serves, claimed a batch at a time under a lease (renewed by
    its Heartbeat): the next batch is claimed when the last one is handed out, so only one
    batch's queue is in memory. With nothing left to claim while another node still holds
    leases, it waits: that node finishes them, or dies and they become claimable. Each
    claimed subscriber is looked up by *find* when its batch is claimed: nothing per
    subscriber of the whole list is kept for the run. Before handing out a row while the
    batch's lease may have lapsed (*lease*: this process was paused, or cut off from the
    state, for longer than it), it asks the state which rows are still its own and leaves
    the others to the node that took them."""

    def __init__(self, s: Session, run: Run, composer: Composer,
                 find: Callable[[str], Subscriber | None], node: str, batch: int,
                 lease: LeaseClock, watch: OwnerWatch, changes: Changes) -> None:
        self._s, self._run, self._composer, self._find = s, run, composer, find
        self._node, self._batch, self._lease = node, batch, lease
        self._watch, self._changes = watch, changes
        self._since = datetime.now(UTC)  # deferred after this: deferred by this very send
        self._lost: set[str] = set()  # claimed, then found taken by another sender
        self._unhanded: set[str] = set()  # the batch's rows not handed out yet
        self._handed: Collection[str] = ()  # handed out, no outcome yet (the caller's)

    async def queue(self, handed: Collection[str] = ()) -> AsyncIterator[Item]:
        """The rows to send; *handed* names those handed out that have no outcome yet
        (the caller keeps it up to date): they are asked about with the rest."""
        self._handed = handed
        sendlog = self._s.sendlog
        clear = False  # the last look found no other node's live lease
        while not self._watch.stop.is_set():
            sent = time.monotonic()
            rows = sendlog.claim(self._run, self._node, self._batch, self._lease.seconds,
                                 since=self._since)
            if rows:
                clear = False
                self._lease.known(sent)
                self._lost.difference_update(key for key, _, _ in rows)  # ours once more
                items = _queue(self._s, self._run, self._composer, rows, self._find,
                               self._changes)
                self._unhanded = {sub.key for sub, _, _ in items}
                for item in items:
                    key = item[0].key
                    self._unhanded.discard(key)
                    if not self._lease.holds():
                        self._recheck(key)
                    if key not in self._lost:
                        yield item
                continue
            if clear:  # nothing to claim, and asked after no other node held a lease
                return
            others = {node for node in sendlog.leases(self._run) if node != self._node}
            dead = others - alive(others)
            for node in dead:  # killed on this machine: its leases need not be waited out
                log.info("digest %s: %s was killed: taking over its deliveries",
                         self._run.slug, node)
                sendlog.release(self._run, node)
            if dead:
                continue
            if not others:
                # a lease that lapsed between the claim and this look left its rows
                # claimable, and nobody else may be there to take them: claim once more
                # (ending here closed the digest as paused with those rows unsent)
                clear = True
                continue
            with contextlib.suppress(TimeoutError):  # another node's leases: wait for them
                await asyncio.wait_for(self._watch.stop.wait(),
                                       min(CLAIM_POLL_SECONDS, self._lease.seconds / 4))

    def current(self, key: str) -> bool:
        """Whether *key*, handed out already (the transport may hold it a while: taken
        while the message before it was in flight, or to retry), is still this node's."""
        if not self._lease.holds():
            self._recheck(key)
        return key not in self._lost

    def _recheck(self, key: str) -> None:
        """The lease may have lapsed: one question to the state about every row not sent
        yet, handed out or not. Asking about fewer would let the answer renew the lease
        clock while a row handed out earlier, taken by another node meanwhile, still
        looked like ours (that sent it twice)."""
        self._lost |= self._lapsed(self._unhanded.union(self._handed, (key,)))

    def _lapsed(self, left: set[str]) -> frozenset[str]:
        """Of *left* (the batch's rows not sent yet), those no longer this node's."""
        sent = time.monotonic()
        kept = self._s.sendlog.kept(self._run, self._node, self._lease.seconds)
        self._lease.known(sent)
        lost = frozenset(left - kept)
        log.log(logging.WARNING if lost else logging.INFO,
                "digest %s: this sender's leases may have lapsed (it was paused, or cut off "
                "from the state, for longer than smtp.lease_seconds allows); of the %d "
                "deliveries it still had to send, another sender took %d meanwhile: left "
                "to it", self._run.slug, len(left), len(lost))
        return lost


def _queue(s: Session, run: Run, composer: Composer, todo: list[tuple[str, str, int]],
           find: Callable[[str], Subscriber | None], changes: Changes) -> list[Item]:
    """The claimed deliveries *todo* with the posts each gets and their attempts so far, in
    the order that lets equal messages be made once; those gone (no longer in the list),
    suppressed or with nothing new are closed here. Web preferences are applied here."""
    suppressed = changes.suppressed_among(key for key, _email, _attempts in todo)
    closed: list[tuple[str, str, int]] = []
    queue: list[Item] = []
    for key, _email, attempts in todo:
        found = None if key in suppressed else find(key)
        if found is None:
            closed.append((key, "suppressed", 0))
            continue
        sub = composer.subscriber_view(found)
        picked = composer.matches(sub)
        if picked:
            queue.append((sub, picked, attempts))
        else:
            closed.append((key, "empty", 0))
    s.sendlog.mark(run, closed)
    return composer.grouped(queue, lambda item: (item[0], item[1]))


async def _deliver(s: Session, run: Run, composer: Composer, period: Window,
                   claims: Claims, transport: Transport, progress: Progress | None,
                   watch: OwnerWatch, mine: dict[str, int], changes: Changes) -> None:
    """The claims' messages made as the transport takes them, each outcome recorded; none
    taken once the owner paused or cancelled the run."""
    in_flight: dict[str, tuple[str, int, int]] = {}  # handed to the transport, no outcome yet

    async def messages() -> AsyncIterator[Outgoing]:
        async for sub, picked, attempts in claims.queue(in_flight.keys()):
            if not watch.check():
                return
            if changes.suppressed(sub.key):  # unsubscribed while this run was sending
                s.sendlog.mark(run, [(sub.key, "suppressed", 0)])
                continue
            message_id = composer.message_id(sub.key)
            outgoing = composer.compose(sub, picked, period, message_id=message_id)
            in_flight[sub.key] = (message_id, len(picked), attempts)
            yield outgoing

    commits: GroupCommit[Recorded] = GroupCommit(lambda rows: s.sendlog.record_many(run, rows))

    async def record(outcome: Outcome) -> None:
        message_id, n_posts, attempts = in_flight.pop(outcome.key)
        await commits.add(Recorded(outcome, message_id, n_posts, attempts))
        mine[outcome.status] = mine.get(outcome.status, 0) + 1
        if progress:
            progress.advance(outcome)

    def current(outgoing: Outgoing) -> bool:
        if claims.current(outgoing.key):
            return True
        del in_flight[outgoing.key]  # left to the sender that took it: never recorded here
        return False

    await transport.deliver(messages(), record, stop=watch.stop, current=current)


class GroupCommit(Generic[T]):
    """Outcomes recorded in the same turn of the event loop (or the next) are committed together.

    Each caller returns only once the commit holding its row is done, so a connection
    still takes its next message only after its last outcome is durable: a kill loses at
    most the outcomes not yet committed, whose messages were in flight (they go again,
    nobody is skipped). With 20 connections, one commit serves the several that finish
    together instead of one each.
    """

    def __init__(self, write: Callable[[list[T]], None]) -> None:
        self._write = write
        self._rows: list[T] = []
        self._done: asyncio.Future[None] | None = None

    async def add(self, row: T) -> None:
        """Queue *row* for the next commit and wait for it; raises what the commit raised."""
        if self._done is None:
            loop = asyncio.get_running_loop()
            self._done = loop.create_future()
            # after every task woken in this turn and the next: with pipelined SMTP a
            # connection's reply seldom comes in the same turn as another's (3,499 commits
            # per 20,000 messages this way, 6,346 flushing after this turn only)
            loop.call_soon(loop.call_soon, self._flush)
        done = self._done
        self._rows.append(row)
        await asyncio.shield(done)  # one caller cancelled must not cancel the others' commit

    def _flush(self) -> None:
        rows, done = self._rows, self._done
        self._rows, self._done = [], None
        assert done is not None
        try:
            self._write(rows)
        except Exception as exc:
            done.set_exception(exc)
        else:
            done.set_result(None)


def _subscriber_rows(s: Session) -> Callable[[], Iterator[tuple[str, str]]]:
    """The (key, address) pairs in edition order, so that the batches claimed in that order
    share editions: as many times over as asked, from one read of the web preferences."""
    subscribers, preferences = s.subscribers.subscribers, s.sendlog.preferences()
    return lambda: edition_order(subscribers, preferences)


def _roster(subscribers: Sequence[Subscriber]) -> bytes:
    """A digest of the (key, address) pairs *subscribers* give (_subscriber_rows): a run
    holding the same was made or last extended with exactly these (add_subscribers). The
    pairs are every subscriber's, in an order the web preferences change, so a digest of
    the list itself tells them: for the file's (Packed) its bytes, hashed in 1 ms where
    walking the pairs took 18 ms at 20,000, once more for the sender that makes the run."""
    if isinstance(subscribers, Packed):
        return b"P" + subscribers.fingerprint()
    digest = hashlib.blake2b(digest_size=16)
    for sub in subscribers:
        digest.update(f"{sub.key}\0{sub.email}\n".encode())
    return digest.digest()


def send(config: Config, *, as_of: datetime, progress: Progress | None = None,
         transport: Transport | None = None, stop: asyncio.Event | None = None,
         state_lost: bool = False) -> SendReport:
    """Finish any unfinished run, then send the digest for the period ending at *as_of*;
    other processes sending at once serve the same runs with it (Claims).

    Refuses (errors.StateLost) when the send log is gone but earlier digests left traces;
    *state_lost* acknowledges that and starts afresh (see traces.py).
    """
    return run_async(send_async(config, as_of=as_of, progress=progress, transport=transport,
                                stop=stop, state_lost=state_lost))


async def send_async(config: Config, *, as_of: datetime, progress: Progress | None = None,
                     transport: Transport | None = None,
                     stop: asyncio.Event | None = None, state_lost: bool = False,
                     heartbeat: Heartbeat | None = None) -> SendReport:
    """`send` in a running event loop (the daemon's, which gives its own *heartbeat*). A
    second send at once (by hand, another machine, the daemon) joins the same run: each
    claims its own batches, so nobody is served twice."""
    beat = heartbeat or Heartbeat(config, "send")
    ours = not beat.running  # a heartbeat not beating yet would let its leases lapse
    if ours:
        beat.start()
    try:
        return await _send(config, as_of=as_of, progress=progress, transport=transport,
                           stop=stop, state_lost=state_lost, beat=beat)
    finally:
        if ours:
            await beat.close()


async def _send(config: Config, *, as_of: datetime, progress: Progress | None,
                transport: Transport | None, stop: asyncio.Event | None,
                state_lost: bool, beat: Heartbeat) -> SendReport:
    transport = transport or make_transport(config)
    report = SendReport()
    with session(config, as_of=as_of) as s:
        traces.check(s, acknowledged=state_lost)  # never the last digest to everyone again
        report.subscribers, report.corpus = s.subscribers, s.corpus
        runs = s.sendlog.unfinished_runs()
        latest = s.sendlog.latest_run()
        if latest is not None and as_of <= latest.period_end:
            added = s.sendlog.add_subscribers(latest, _subscriber_rows(s)(),
                                              roster=_roster(s.subscribers.subscribers))
            if latest not in runs and added:
                runs.append(latest)
            report.nothing_new = (f"the digest for the period ending {when(latest.period_end)} "
                                  f"was already made; {added} subscriber(s) added to it")
        else:
            period, chosen = plan_run(s)
            if chosen:
                slug = period_slug(period.end.astimezone(config.site.tz))
                if s.sendlog.slug_taken(slug):
                    slug = period_slug(period.end.astimezone(config.site.tz), {slug})
                rows = _subscriber_rows(s)
                roster = _roster(s.subscribers.subscribers)
                run, created = s.sendlog.create_or_join_run(
                    slug=slug, start=period.start, end=period.end, posts=chosen,
                    subscribers=rows(), roster=roster)
                if created:
                    traces.mark(config.state)
                    runs.append(run)
                elif all(r.id != run.id for r in runs):  # another node made it just now: join
                    s.sendlog.add_subscribers(run, rows(), roster=roster)
                    runs.append(run)
            else:
                report.nothing_new = (f"no new posts between {when(period.start)} and "
                                      f"{when(period.end)}: no digest")
        for run in runs:
            if not s.sendlog.begin_serving(run):  # the owner paused or cancelled it
                report.runs.append(_left_alone(s, run))
                continue
            _give_up_if_too_old(s, run)
            result = await _serve(s, run, transport, progress, stop, beat)
            report.runs.append(result)
            if result.paused or (stop is not None and stop.is_set()):
                break
    return report


def _left_alone(s: Session, run: Run) -> RunReport:
    """A run the owner paused (or cancelled): nothing sent; the report says why."""
    report = RunReport(run, len(s.sendlog.run_posts(run)), counts=s.sendlog.counts(run),
                       held=held_text(s.sendlog, run))
    log.info("digest %s: %s", run.slug, report.held)
    return report


def _give_up_if_too_old(s: Session, run: Run) -> None:
    """Past smtp.give_up_days after a digest was made, its deferred deliveries fail for good
    (postfix's maximal_queue_lifetime, 5 days, is the model); those never tried still go."""
    smtp = s.config.smtp
    if smtp is None:
        return
    age = datetime.now(UTC) - run.created_at
    if age.total_seconds() < smtp.give_up_days * 86_400:
        return
    given_up = s.sendlog.give_up(run, f"deferred for {smtp.give_up_days:g} days, given up; "
                                      "last reply: ")
    if given_up:
        log.warning("digest %s: %d deferred deliveries given up after %g days (smtp."
                    "give_up_days): now failed", run.slug, given_up, smtp.give_up_days)


def send_test(config: Config, *, as_of: datetime, to: str, subscriber: str | None = None,
              transport: Transport | None = None) -> Outcome | None:
    """One copy of the digest (everything new, or one subscriber's) to *to*; not logged."""
    transport = transport or make_transport(config)
    with session(config, as_of=as_of) as s:
        period, chosen = plan_run(s)
        latest = s.sendlog.latest_run()
        if not chosen and latest is not None:  # nothing new: show the last digest instead
            period = Window(latest.period_start, latest.period_end)
            chosen = s.sendlog.run_posts(latest)
        posts = newest_first(s, (p.entry_id for p in chosen))
        composer = Composer(s, "test-" + period_slug(period.end.astimezone(config.site.tz)),
                            posts)
        sub = Subscriber(to, None, None)
        if subscriber is not None:
            found = [x for x in s.subscribers.subscribers if x.key == subscriber.strip().lower()]
            if not found:
                raise DigestError(f"{subscriber} is not in {config.subscribers}")
            sub = composer.subscriber_view(found[0])
        picked = composer.matches(sub)
        if not picked:
            return None
        outgoing = composer.compose(sub, picked, period, to=to)
        outcomes: list[Outcome] = []

        async def one() -> AsyncIterator[Outgoing]:
            yield outgoing

        async def keep(outcome: Outcome) -> None:
            outcomes.append(outcome)

        run_async(transport.deliver(one(), keep))
        return outcomes[0] if outcomes else None


__all__ = ["GroupCommit", "RunReport", "SendReport", "send", "send_async",
           "send_test"]
