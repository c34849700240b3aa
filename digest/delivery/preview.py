"""Looking before sending: `digest preview` writes each edition to files, `digest send
--dry-run` renders every message; neither sends nor records anything: they work on a
throw-away copy of the state (Store.scratch), which they leave byte for byte unchanged."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..config import Config
from ..edition.selection import Window, period_slug
from ..errors import DigestError
from ..state.sendlog import Run
from ..subscribers.load import (
    Subscriber,
    SubscriberList,
)
from .compose import Composer
from .session import Session, newest_first, plan_run, session, when

log = logging.getLogger(__name__)


@dataclass
class Preview:
    period: Window
    posts: int
    editions: int
    recipients: int
    empty: int
    files: list[Path]
    notes: list[str] = field(default_factory=list)  # for the reader, one line each


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.casefold()).strip("-")[:40] or "all"


def preview(config: Config, *, as_of: datetime, out: Path,
            subscriber: str | None = None) -> Preview:
    """Write each distinct edition of the next digest (HTML, text, .eml); send nothing.

    The .html and .txt of an edition show where each recipient's values go
    (`{recipient.name}`); with *subscriber*, they are that subscriber's own, as the .eml is:
    the edition their tags and web choices give, their name, their signed unsubscribe and
    preferences links (when the config has a web front), the edition's "view in browser"
    link. An address that is not a subscriber is a DigestError that names only that address."""
    with session(config, as_of=as_of, scratch=True) as s:
        period, chosen = plan_run(s)
        posts = newest_first(s, (p.entry_id for p in chosen))
        composer = Composer(s, period_slug(period.end.astimezone(config.site.tz)), posts)
        subs = [composer.subscriber_view(x) for x in s.subscribers.subscribers]
        notes: list[str] = []
        if subscriber is not None:
            subs = _one(s, subs, subscriber, notes)
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
            text, page = rendered.text, rendered.html
            if subscriber is not None:  # as that person reads it: name, links, all filled in
                text, page = s.layout.personalise(rendered, composer.recipient(sub))
            name = sub.key.replace("@", "_at_") if subscriber else \
                f"{len(seen):03d}-{_safe('-'.join(sub.tags or ('all',)))}"
            eml = composer.compose(sub, picked, period).data
            for suffix, data in ((".html", page.encode()), (".txt", text.encode()),
                                 (".eml", eml)):
                target = out / f"{name}{suffix}"
                target.write_bytes(data)
                files.append(target)
        if subscriber is not None and empty:
            notes.append(f"{_shown(subscriber)} has nothing new in this digest: they get none")
        return Preview(period, len(posts), len(seen), len(subs) - empty, empty, files, notes)


def _shown(text: str) -> str:
    """What the user typed, fit for a terminal: bounded, control characters replaced."""
    return "".join(c if c.isprintable() else "?" for c in text.strip()[:320])


def _one(s: Session, subs: list[Subscriber], address: str, notes: list[str]
         ) -> list[Subscriber]:
    """The one subscriber *address* names, as the digest sees them, with what the preview
    should say about them. The error names the address asked for and nothing else: no list
    of those who are subscribed, not even a near miss."""
    wanted = address.strip().lower()
    found = [x for x in subs if x.key == wanted]
    if not found:
        raise DigestError(f"{_shown(address)} is not a subscriber (in {s.config.subscribers} "
                          "or the list kept in the state); check the address")
    if s.sendlog.is_suppressed(found[0].key):
        notes.append(f"{_shown(address)} is unsubscribed and gets no digest; the files show "
                     "what they would get if they resubscribed")
    if s.signer is None:
        notes.append("no web.base_url: the digest has no unsubscribe, preferences or "
                     "\"view in browser\" link, only the unsubscribe address, as the files show")
    return found


@dataclass(frozen=True)
class NextNumbers:
    """The next digest as it stands now, for the owner's dashboard: its period, the posts
    it would carry, the subscribers on the list and how many of them are suppressed."""

    period: Window
    posts: int
    subscribers: int
    suppressed: int


def next_numbers(config: Config, *, as_of: datetime) -> NextNumbers:
    """The next digest's period and counts, nothing rendered and nothing written."""
    with session(config, as_of=as_of, scratch=True) as s:
        period, chosen = plan_run(s)
        suppressed = s.sendlog.suppressed()
        subs = s.subscribers.subscribers
        return NextNumbers(period, len(chosen), len(subs),
                           sum(x.key in suppressed for x in subs))


@dataclass(frozen=True)
class OnePreview:
    """The next digest as one subscriber gets it: the bodies and the whole message."""

    period: Window
    posts: int  # posts in the period; the subscriber's edition may carry fewer
    picked: int  # posts in their edition: 0, they get no digest
    html: str
    text: str
    message: bytes  # the RFC 5322 message, headers and all (CRLF)
    notes: tuple[str, ...]


def preview_one(config: Config, *, as_of: datetime, subscriber: str) -> OnePreview:
    """The next digest as *subscriber* gets it (their tags, web choices, name and links),
    in memory; DigestError when the address is not a subscriber (naming only that one)."""
    with session(config, as_of=as_of, scratch=True) as s:
        period, chosen = plan_run(s)
        posts = newest_first(s, (p.entry_id for p in chosen))
        composer = Composer(s, period_slug(period.end.astimezone(config.site.tz)), posts)
        notes: list[str] = []
        sub = _one(s, [composer.subscriber_view(x) for x in s.subscribers.subscribers],
                   subscriber, notes)[0]
        picked = composer.matches(sub)
        if not picked:
            notes.append(f"{_shown(subscriber)} has nothing new in this digest: they get none")
            return OnePreview(period, len(posts), 0, "", "", b"", tuple(notes))
        rendered = composer.edition(sub, picked, period)
        text, page = s.layout.personalise(rendered, composer.recipient(sub))
        return OnePreview(period, len(posts), len(picked), page, text,
                          composer.compose(sub, picked, period).data, tuple(notes))


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


def _left(counts: dict[str, int]) -> int:
    """Deliveries still to serve, counted in the database (not listed: a million rows)."""
    return counts.get("pending", 0) + counts.get("deferred", 0)


def dry_run(config: Config, *, as_of: datetime) -> DryRun:
    """What `send` would do now, with every message rendered, and nothing sent or written."""
    with session(config, as_of=as_of, scratch=True) as s:
        period, chosen = plan_run(s)
        posts = newest_first(s, (p.entry_id for p in chosen))
        result = DryRun(period, len(posts), s.subscribers,
                        [(run, _left(s.sendlog.counts(run)))
                         for run in s.sendlog.unfinished_runs()])
        if not posts:
            return result
        composer = Composer(s, period_slug(period.end.astimezone(config.site.tz)), posts)
        suppressed = s.sendlog.suppressed()
        wanted: list[tuple[Subscriber, tuple[int, ...]]] = []
        for sub in s.subscribers.subscribers:
            if sub.key in suppressed:
                result.suppressed += 1
                continue
            view = composer.subscriber_view(sub)
            picked = composer.matches(view)
            if not picked:
                result.empty += 1
                continue
            wanted.append((view, picked))
        for view, picked in composer.grouped(wanted, lambda item: item):
            result.messages += 1
            result.size += len(composer.compose(view, picked, period).data)
        result.editions = composer.laid_out
        return result

