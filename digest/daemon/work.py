"""The daemon's units of work, as plain functions: rebuild the feeds, check the subscribers,
check that a digest could be sent, find what a resume must finish, log what a send did.

Each opens the state database for itself (a SQLite connection belongs to one thread: the
daemon runs most of these in a worker thread), logs one line saying what it did and, where
`digest status` shows it, notes it there.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..config import Config
from ..delivery.send import SendReport, make_transport
from ..delivery.session import mail_settings, when
from ..errors import Problem, SubscribersUnreadable
from ..feeds.build import build
from ..feeds.websub import announce
from ..state.open import open_state
from ..state.sendlog import counts_text
from ..subscribers.current import read_subscribers
from ..subscribers.tokens import Signer
from ..util.logs import event

log = logging.getLogger(__name__)
NOTED_PROBLEMS = 20  # `digest status` lists this many; the log and `digest check` have all


@dataclass(frozen=True)
class BuildResult:
    terms: frozenset[str]  # every tag and category published: subscribers' tags are checked
    next_future: datetime | None  # the date of the next future-dated post, if there is one
    problems: tuple[str, ...]  # rejected files and warnings, as `digest check` words them


def shown(paths: list[str], limit: int = 8) -> str:
    """The first *limit* of *paths*, and how many more, for one log line."""
    more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
    return ", ".join(paths[:limit]) + more


def _poll(config: Config) -> None:
    from ..posts.poll import poll_sources

    for result in poll_sources(config):
        if result.error:
            log.warning("feed source %s: %s (its last good entries are kept)", result.name,
                        result.error, extra=event("source.failed", source=result.name,
                                                  error=result.error))
        elif result.fetched:
            log.info("feed source %s fetched: %s, %d entries written", result.name,
                     result.status, result.new,
                     extra=event("source.fetched", source=result.name, status=result.status,
                                 written=result.new))


def build_feeds(config: Config, *, now: datetime, reason: str) -> BuildResult:
    """Rebuild the feeds as of *now*; log which files changed (nothing if none did)."""
    started = time.monotonic()
    if config.sources:  # each feed source on its own interval: only those due are fetched
        _poll(config)
    report = build(config, now=now)
    found = report.found
    next_future = found.next_future
    seconds = time.monotonic() - started
    changed = [*report.written, *report.removed]
    fields = {"reason": reason, "written": report.written, "removed": report.removed,
              "posts": found.count, "feeds": report.feeds, "seconds": round(seconds, 3)}
    if changed:
        log.info("feeds rebuilt (%s): %d written, %d removed: %s (%.2f s)", reason,
                 len(report.written), len(report.removed), shown(changed), seconds,
                 extra=event("feeds.rebuilt", **fields))
    else:
        log.debug("feeds unchanged (%s, %.2f s)", reason, seconds,
                  extra=event("feeds.unchanged", **fields))
    if config.hub and report.written:
        ping_hub_later(config, report.written)
    problems = tuple(str(p) for p in (*found.rejected, *found.warnings))
    state = open_state(config)
    try:
        state.note("build", {
            "at": now.isoformat(), "reason": reason, "posts": found.count,
            "feeds": report.feeds, "written_count": len(report.written),
            "written": report.written[:NOTED_PROBLEMS], "removed": report.removed,
            "future": found.future, "next_future": next_future, "seconds": seconds,
            "problems": list(problems[:NOTED_PROBLEMS]), "problems_count": len(problems)})
    finally:
        state.close()
    return BuildResult(found.terms, next_future, problems)


def ping_hub_later(config: Config, written: list[str]) -> threading.Thread:
    """Tell the WebSub hub of the changed feeds from a thread of its own: its retries may
    take seconds, which neither the event loop nor the next build should wait for. A daemon
    thread: a stop does not wait for a hub that does not answer."""
    def ping() -> None:
        result = announce(config, written)
        if result is None:
            return
        if result.error:
            log.warning("WebSub hub %s not told of %d changed feeds: %s", config.hub,
                        len(result.urls), result.error,
                        extra=event("websub.failed", hub=config.hub, error=result.error))
        else:
            log.info("WebSub hub told of %d changed feeds", len(result.urls),
                     extra=event("websub.published", hub=config.hub, feeds=len(result.urls)))

    thread = threading.Thread(target=ping, name="websub", daemon=True)
    thread.start()
    return thread


def check_subscribers(config: Config, known_terms: set[str]) -> dict[str, Any]:
    """Read the subscribers file as a send would (keeping the last good copy when it cannot
    be read); log what was found; what `digest status` notes about it."""
    path = config.subscribers
    assert path is not None
    at = datetime.now(UTC).isoformat()
    fell_back: list[SubscribersUnreadable] = []  # read_subscribers has logged why
    state = open_state(config)
    try:
        found = read_subscribers(config, state, known_terms, fell_back=fell_back)
    except SubscribersUnreadable as exc:
        log.error("subscribers: %s; no digest can go out until it is fixed", exc,
                  extra=event("subscribers.unreadable", error=str(exc)))
        return {"at": at, "count": 0, "fallback": False, "error": str(exc),
                "problems": [], "problems_count": 0}
    finally:
        state.close()
    fallback = bool(fell_back)
    error = str(fell_back[0]) if fell_back else None
    problems = [str(p) for p in found.problems]
    for problem in found.problems:
        log.warning("subscribers: entry skipped: %s", problem,
                    extra=event("subscribers.skipped", error=str(problem)))
    log.info("subscribers: %d from %s, %d entries skipped", len(found.subscribers),
             "the last good copy" if fallback else path.name, len(problems),
             extra=event("subscribers.loaded", count=len(found.subscribers),
                         skipped=len(problems), fallback=fallback))
    return {"at": at, "count": len(found.subscribers), "fallback": fallback, "error": error,
            "problems": problems[:NOTED_PROBLEMS], "problems_count": len(problems)}


def check_can_send(config: Config) -> None:
    """Raise now what the first digest would raise days later: no sender, secrets missing."""
    if config.subscribers is None:
        return
    mail_settings(config)
    make_transport(config)
    if config.web is not None and config.web.base_url is not None:
        Signer.from_env(config.web.secret_env)


def resume_point(config: Config) -> datetime | None:
    """The `as_of` for a send that only resumes: the end of the latest digest, if some digest
    is unfinished and not paused by the owner (a later `as_of` would also make a new,
    unscheduled digest); else None."""
    state = open_state(config)
    try:
        latest = state.latest_run()
        sendable = [run for run in state.unfinished_runs()
                    if not state.run_control(run).owner_paused]
        return latest.period_end if latest and sendable else None
    finally:
        state.close()


def held_by_owner(config: Config) -> list[str]:
    """The slugs of the digests the owner paused: the daemon looks again now and then, so a
    digest resumed from the CLI or the web goes on without a restart."""
    state = open_state(config)
    try:
        return [run.slug for run in state.unfinished_runs()
                if state.run_control(run).owner_paused]
    finally:
        state.close()


def log_sent(report: SendReport) -> None:
    """One line per digest run (and one per failed delivery) of a send."""
    if report.nothing_new and not report.runs:
        log.info("digest: %s", report.nothing_new, extra=event("digest.nothing_new"))
    for run in report.runs:
        c = run.counts
        log.info("digest %s (%s → %s, %d posts): %s%s%s", run.run.slug,
                 when(run.run.period_start), when(run.run.period_end), run.posts,
                 counts_text(c), f"; paused: {run.paused}" if run.paused else "",
                 f"; {run.held}" if run.held else "",
                 extra=event("digest.finished", slug=run.run.slug, posts=run.posts,
                             counts=c, paused=run.paused, held=run.held))
        for email, state, code, reply in run.failures:
            log.warning("digest %s: %s: %s %s %s", run.run.slug, state, email, code or "",
                        reply, extra=event("digest.failure", slug=run.run.slug,
                                           email=email, state=state, code=code))


def log_problems(headline: str, problems: list[Problem], name: str) -> None:
    """One error line for a config or a send rejected, with every problem in it."""
    log.error("%s: %s", headline, "; ".join(str(p) for p in problems),
              extra=event(name, errors=[str(p) for p in problems]))
