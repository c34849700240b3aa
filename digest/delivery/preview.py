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
from .session import newest_first, plan_run, session, when

log = logging.getLogger(__name__)


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
    with session(config, as_of=as_of, scratch=True) as s:
        period, chosen = plan_run(s)
        posts = newest_first(s, (p.entry_id for p in chosen))
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
    with session(config, as_of=as_of, scratch=True) as s:
        period, chosen = plan_run(s)
        posts = newest_first(s, (p.entry_id for p in chosen))
        result = DryRun(period, len(posts), s.subscribers,
                        [(run, len(s.sendlog.to_serve(run)))
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

