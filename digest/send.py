"""The digest run: posts + subscribers → editions → messages → a transport, with the send log.

Resumes what an earlier run left (crash, pause, temporary failures) before starting a new
period. Messages are made on demand while the transport sends, so 100,000 subscribers never
sit in memory as messages: each distinct edition (same posts, same tags followed) is
rendered once, then personalised per subscriber.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Protocol

from .build import absolute, entry_ids, render_posts
from .config import Config
from .content import plain_title
from .delivery import DeliveryPaused, MaildirTransport, Outcome, Outgoing, SmtpTransport, Transport
from .errors import ConfigError, DigestError, Problem
from .posts import Post
from .reader import Corpus, read_posts
from .render import DigestPost, DkimKey, Edition, MailSettings, Recipient, RenderedEdition, Renderer
from .selection import Window, period_slug, posts_for_run, terms, window
from .sendlog import Run, RunPost, SendLog
from .store import Store
from .subscribers import (
    Subscriber,
    SubscriberList,
    SubscribersUnreadable,
    load_subscribers,
    parse_subscribers,
)
from .tokens import Signer

log = logging.getLogger(__name__)
EXCERPT_CHARS = 300


def when(moment: datetime) -> str:
    """A time for messages to people: minutes, with the zone's offset."""
    return f"{moment:%Y-%m-%d %H:%M %z}"


class Progress(Protocol):
    """How a run reports itself: a rich bar on a terminal, log lines elsewhere (cli.py)."""

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


@dataclass
class SendReport:
    runs: list[RunReport] = field(default_factory=list)
    nothing_new: str | None = None  # why no new run was made
    subscribers: SubscriberList | None = None
    corpus: Corpus | None = None

    @property
    def failed(self) -> int:
        return sum(r.counts.get("failed", 0) for r in self.runs)

    @property
    def paused(self) -> bool:
        return any(r.paused for r in self.runs)


@dataclass
class Session:
    """Everything one command needs, read once: config, posts, subscribers, renderer."""

    config: Config
    store: Store
    sendlog: SendLog
    corpus: Corpus
    ids: dict[str, str]
    subscribers: SubscriberList
    renderer: Renderer
    signer: Signer | None
    as_of: datetime
    by_id: dict[str, Post] = field(default_factory=dict)


def _sender(config: Config) -> str:
    sender = config.digest.sender
    if not sender:
        raise ConfigError([Problem(config.path, None, "'digest.from' is not set",
                                   "add e.g. digest: {from: 'Jobs Board <jobs@example.org>'}")])
    return sender


def _domain(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2].lower() or "localhost"


def mail_settings(config: Config) -> MailSettings:
    sender = _sender(config)
    digest = config.digest
    domain = _domain(sender)
    list_id = digest.list_id or f"{plain_title(config.site.title)} <digest.{domain}>"
    dkim = None
    if digest.dkim is not None:
        pem = os.environ.get(digest.dkim.private_key_env, "")
        if not pem.strip():
            raise ConfigError([Problem(config.path, None,
                                       f"DKIM is configured but ${digest.dkim.private_key_env} "
                                       "is empty", "export the PEM private key in it")])
        dkim = DkimKey(digest.dkim.domain, digest.dkim.selector, pem.encode())
    return MailSettings(site=config.site, sender=sender, list_id=list_id,
                        unsubscribe_mailto=digest.unsubscribe_mailto or parseaddr(sender)[1],
                        templates=digest.templates, noun=digest.noun, dkim=dkim)


def _signer(config: Config) -> Signer | None:
    if config.web is None or config.web.base_url is None:
        log.warning("no web.base_url: List-Unsubscribe carries only a mailto, and there is no "
                    "one-click unsubscribe link (Gmail and Yahoo expect one from bulk senders)")
        return None
    return Signer.from_env(config.web.secret_env)


def read_subscribers(config: Config, sendlog: SendLog, known: set[str]) -> SubscriberList:
    """The subscribers file, or the last good copy of it when it cannot be read now."""
    path = config.subscribers
    if path is None:
        raise ConfigError([Problem(config.path, None, "no subscribers file is configured",
                                   "add 'subscribers: subscribers.yaml' to the config")])
    try:
        text = path.read_bytes().decode("utf-8-sig") if path.is_file() else None
    except (OSError, UnicodeDecodeError):
        text = None  # load_subscribers says exactly what is wrong
    try:
        # the bytes parsed are the bytes kept, so the snapshot is exactly what was served
        found = load_subscribers(path, known) if text is None \
            else parse_subscribers(path, text, known)
    except SubscribersUnreadable as exc:
        snapshot = sendlog.snapshot()
        if snapshot is None:
            raise
        log.error("%s — using the last good copy, read at %s, until it is fixed", exc,
                  snapshot[2])
        return parse_subscribers(path, snapshot[1], known)
    if text is not None:
        sendlog.save_snapshot(str(path), text)
    return found


@contextmanager
def session(config: Config, *, as_of: datetime) -> Iterator[Session]:
    """Open the state, read posts and subscribers; close the state on leaving."""
    settings = mail_settings(config)
    renderer = Renderer(settings)
    signer = _signer(config)
    store = Store.open(config.state)
    try:
        sendlog = SendLog(store)
        corpus = read_posts(config, store, now=as_of)
        ids = entry_ids(store, config.site, corpus.posts)
        known = {t for p in corpus.posts for t in terms(p)}
        subscribers = read_subscribers(config, sendlog, known)
        by_id = {ids[p.path]: p for p in corpus.posts}
        yield Session(config, store, sendlog, corpus, ids, subscribers, renderer, signer,
                      as_of, by_id)
    finally:
        store.close()


def plan_run(s: Session) -> tuple[Window, list[RunPost]]:
    """The period and posts a new run would have now (nothing is written)."""
    previous = s.sendlog.latest_run()
    period = window(previous, s.as_of, s.config.digest.first_window_days)
    assigned, twins = s.sendlog.assigned()
    chosen = posts_for_run(s.corpus.posts, s.ids, s.store.first_seen(), assigned, twins,
                           period, previous)
    return period, chosen


class Composer:
    """Turns (run posts, subscriber) into a message; editions are rendered once and reused."""

    def __init__(self, s: Session, run_slug: str, posts: list[Post]) -> None:
        self.s = s
        self.slug = run_slug
        self.posts = posts  # newest first
        self.post_terms = [frozenset(t.casefold() for t in terms(p)) for p in posts]
        self.items = self._items(posts)
        self.preferences = s.sendlog.preferences()
        self.by_tags: dict[tuple[object, ...], tuple[int, ...]] = {}
        self.editions: dict[tuple[object, ...], RenderedEdition] = {}
        self.period: Window | None = None
        sender = s.config.digest.sender or ""
        self.envelope_from = parseaddr(sender)[1]
        self.domain = _domain(sender)
        base = s.config.web.base_url if s.config.web else None
        self.base_url = base

    def _items(self, posts: list[Post]) -> list[DigestPost]:
        s = self.s
        rendered = render_posts(s.config, s.store, posts, s.corpus.stats, s.corpus.posts)
        site = s.config.site
        items = []
        for post in posts:
            r = rendered[post.path]
            excerpt = " ".join(r.summary.split())
            if len(excerpt) > EXCERPT_CHARS:
                excerpt = excerpt[:EXCERPT_CHARS].rsplit(" ", 1)[0] + " …"
            items.append(DigestPost(
                title=plain_title(post.title) or post.slug, url=absolute(site, post.url),
                date=post.date.astimezone(site.tz), tags=post.tags,
                categories=post.categories, excerpt=excerpt, excerpt_html=r.summary_html))
        return items

    def subscriber_view(self, sub: Subscriber) -> Subscriber:
        """The subscriber with tag choices made on the web front, which win over the YAML."""
        chosen = self.preferences.get(sub.key)
        if chosen is None:
            return sub
        return Subscriber(sub.email, sub.name, chosen, sub.exclude_tags, sub.line)

    def matches(self, sub: Subscriber) -> tuple[int, ...]:
        key = (sub.tags, sub.exclude_tags)
        found = self.by_tags.get(key)
        if found is None:
            found = tuple(i for i, p in enumerate(self.posts) if sub.wants(terms(p)))
            self.by_tags[key] = found
        return found

    def edition(self, sub: Subscriber, picked: tuple[int, ...], period: Window) -> RenderedEdition:
        key = (sub.tags, sub.exclude_tags, picked)
        rendered = self.editions.get(key)
        if rendered is None:
            archive = f"{self.base_url}/archive/{self.slug}" if self.base_url else None
            edition = Edition(period_start=period.start, period_end=period.end,
                              posts=tuple(self.items[i] for i in picked),
                              followed=sub.tags, archive_url=archive)
            rendered = self.s.renderer.edition(edition)
            if len(self.editions) > 4096:  # every subscriber a different tag set: stay bounded
                self.editions.clear()
            self.editions[key] = rendered
        return rendered

    def message_id(self, key: str) -> str:
        digest = hashlib.sha256(f"{self.slug}\0{key}".encode()).hexdigest()[:20]
        return f"<digest.{self.slug}.{digest}@{self.domain}>"

    def recipient(self, sub: Subscriber, to: str | None = None) -> Recipient:
        signer, base = self.s.signer, self.base_url
        unsubscribe = preferences = None
        if signer is not None and base is not None:
            unsubscribe = f"{base}/unsubscribe/{signer.token(sub.key, 'unsubscribe')}"
            preferences = f"{base}/preferences/{signer.token(sub.key, 'preferences')}"
        return Recipient(email=to or sub.email, name=sub.name, unsubscribe_url=unsubscribe,
                         preferences_url=preferences)

    def compose(self, sub: Subscriber, picked: tuple[int, ...], period: Window, *,
                to: str | None = None) -> Outgoing:
        rendered = self.edition(sub, picked, period)
        data = self.s.renderer.message(rendered, self.recipient(sub, to),
                                       message_id=self.message_id(sub.key), date=self.s.as_of)
        return Outgoing(key=sub.key, sender=self.envelope_from, recipient=to or sub.email,
                        data=data)


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


def _run_posts(s: Session, run: Run) -> list[Post]:
    posts = [s.by_id[p.entry_id] for p in s.sendlog.run_posts(run) if p.entry_id in s.by_id]
    return sorted(posts, key=lambda p: (p.date, p.path), reverse=True)


async def _serve(s: Session, run: Run, transport: Transport, progress: Progress | None,
                 stop: asyncio.Event | None) -> RunReport:
    posts = _run_posts(s, run)
    report = RunReport(run, len(posts))
    composer = Composer(s, run.slug, posts)
    period = Window(run.period_start, run.period_end)
    current = {sub.key: composer.subscriber_view(sub) for sub in s.subscribers.subscribers}
    suppressed = s.sendlog.suppressed()
    todo = s.sendlog.to_serve(run)
    closed: list[tuple[str, str, int]] = []
    queue: list[tuple[Subscriber, tuple[int, ...], int]] = []
    for key, _email, attempts in todo:
        sub = current.get(key)
        if sub is None or key in suppressed:
            closed.append((key, "suppressed", 0))
            continue
        picked = composer.matches(sub)
        if picked:
            queue.append((sub, picked, attempts))
        else:
            closed.append((key, "empty", 0))
    s.sendlog.mark(run, closed)
    if progress:
        progress.start(run, len(queue))
    in_flight: dict[str, tuple[str, int, int]] = {}

    async def messages() -> AsyncIterator[Outgoing]:
        for sub, picked, attempts in queue:
            if s.sendlog.is_suppressed(sub.key):  # unsubscribed while this run was sending
                s.sendlog.mark(run, [(sub.key, "suppressed", 0)])
                continue
            outgoing = composer.compose(sub, picked, period)
            in_flight[sub.key] = (composer.message_id(sub.key), len(picked), attempts)
            yield outgoing

    async def record(outcome: Outcome) -> None:
        message_id, n_posts, attempts = in_flight.pop(outcome.key)
        s.sendlog.record(run, outcome, message_id=message_id, posts=n_posts,
                         attempts_before=attempts)
        if progress:
            progress.advance(outcome)

    try:
        await transport.deliver(messages(), record, stop=stop)
    except DeliveryPaused as exc:
        report.paused = str(exc)
    finally:
        if progress:
            progress.finish()
    left = s.sendlog.to_serve(run)
    s.sendlog.set_state(run, "done" if not left else "paused")
    report.counts = s.sendlog.counts(run)
    report.failures = s.sendlog.failures(run)
    return report


def _subscriber_rows(s: Session) -> list[tuple[str, str]]:
    return [(sub.key, sub.email) for sub in s.subscribers.subscribers]


def send(config: Config, *, as_of: datetime, progress: Progress | None = None,
         transport: Transport | None = None, stop: asyncio.Event | None = None) -> SendReport:
    """Finish any unfinished run, then send the digest for the period ending at *as_of*."""
    transport = transport or make_transport(config)
    report = SendReport()
    with session(config, as_of=as_of) as s:
        report.subscribers, report.corpus = s.subscribers, s.corpus
        runs = s.sendlog.unfinished_runs()
        latest = s.sendlog.latest_run()
        if latest is not None and as_of <= latest.period_end:
            added = s.sendlog.add_subscribers(latest, _subscriber_rows(s))
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
                runs.append(s.sendlog.create_run(slug=slug, start=period.start, end=period.end,
                                                 posts=chosen, subscribers=_subscriber_rows(s)))
            else:
                report.nothing_new = (f"no new posts between {when(period.start)} and "
                                      f"{when(period.end)}: no digest")
        for run in runs:
            result = asyncio.run(_serve(s, run, transport, progress, stop))
            report.runs.append(result)
            if result.paused or (stop is not None and stop.is_set()):
                break
    return report


@dataclass
class Preview:
    period: Window
    posts: int
    editions: int
    recipients: int
    empty: int
    files: list[Path]


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.casefold()).strip("-")[:40] or "all"


def preview(config: Config, *, as_of: datetime, out: Path,
            subscriber: str | None = None) -> Preview:
    """Write each distinct edition of the next digest (HTML, text, .eml); send nothing."""
    with session(config, as_of=as_of) as s:
        period, chosen = plan_run(s)
        posts = sorted((s.by_id[p.entry_id] for p in chosen),
                       key=lambda p: (p.date, p.path), reverse=True)
        composer = Composer(s, period_slug(period.end.astimezone(config.site.tz)), posts)
        subs = [composer.subscriber_view(x) for x in s.subscribers.subscribers]
        if subscriber is not None:
            wanted = subscriber.strip().lower()
            subs = [x for x in subs if x.key == wanted]
            if not subs:
                raise DigestError(f"{subscriber} is not in {config.subscribers}")
        out.mkdir(parents=True, exist_ok=True)
        files: list[Path] = []
        seen: set[tuple[object, ...]] = set()
        empty = 0
        for sub in subs:
            picked = composer.matches(sub)
            if not picked:
                empty += 1
                continue
            key = (sub.tags, sub.exclude_tags, picked)
            if key in seen and subscriber is None:
                continue
            seen.add(key)
            rendered = composer.edition(sub, picked, period)
            name = sub.key.replace("@", "_at_") if subscriber else \
                f"{len(seen):03d}-{_safe('-'.join(sub.tags or ('all',)))}"
            eml = composer.compose(sub, picked, period).data
            for suffix, data in ((".html", rendered.html.encode()),
                                 (".txt", rendered.text.encode()), (".eml", eml)):
                target = out / f"{name}{suffix}"
                target.write_bytes(data)
                files.append(target)
        return Preview(period, len(posts), len(seen), len(subs) - empty, empty, files)


@dataclass
class DryRun:
    period: Window
    posts: int
    subscribers: SubscriberList
    unfinished: list[tuple[Run, int]] = field(default_factory=list)
    messages: int = 0
    empty: int = 0
    suppressed: int = 0
    editions: int = 0
    size: int = 0

    def summary(self) -> str:
        lines = [f"unfinished digest {run.slug}: {n} still to serve (sent on the next run)"
                 for run, n in self.unfinished]
        lines.append(
            f"dry run: period {when(self.period.start)} → {when(self.period.end)}: "
            f"{self.posts} new posts; would send {self.messages} messages "
            f"({self.editions} distinct editions, {self.size / 1e6:.1f} MB), "
            f"skip {self.empty} with nothing new and {self.suppressed} unsubscribed; "
            "nothing sent, nothing recorded")
        return "\n".join(lines)


def dry_run(config: Config, *, as_of: datetime) -> DryRun:
    """What `send` would do now, with every message rendered, and nothing sent or written."""
    with session(config, as_of=as_of) as s:
        period, chosen = plan_run(s)
        posts = sorted((s.by_id[p.entry_id] for p in chosen),
                       key=lambda p: (p.date, p.path), reverse=True)
        result = DryRun(period, len(posts), s.subscribers,
                        [(run, len(s.sendlog.to_serve(run)))
                         for run in s.sendlog.unfinished_runs()])
        if not posts:
            return result
        composer = Composer(s, period_slug(period.end.astimezone(config.site.tz)), posts)
        suppressed = s.sendlog.suppressed()
        for sub in s.subscribers.subscribers:
            if sub.key in suppressed:
                result.suppressed += 1
                continue
            view = composer.subscriber_view(sub)
            picked = composer.matches(view)
            if not picked:
                result.empty += 1
                continue
            result.messages += 1
            result.size += len(composer.compose(view, picked, period).data)
        result.editions = len(composer.editions)
        return result


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
        posts = sorted((s.by_id[p.entry_id] for p in chosen if p.entry_id in s.by_id),
                       key=lambda p: (p.date, p.path), reverse=True)
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

        asyncio.run(transport.deliver(one(), keep))
        return outcomes[0] if outcomes else None


__all__ = ["DryRun", "Preview", "SendReport", "dry_run", "preview", "send", "send_test"]
