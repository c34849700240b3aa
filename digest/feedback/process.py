"""The feedback stage's entry points for the commands and the daemon: what a send's own SMTP
replies say (after_send) and, with bounces: configured, what the mailbox holds
(read_feedback: `digest bounces`, and `digest run` every bounces.every_minutes).

The mailbox's checkpoint (mailbox.py: how far it has examined) is kept in the shared state's
notes, so `digest bounces` and the daemon, on any machine, go on from the same place.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..config import BouncesSettings, Config
from ..state.interface import Run
from ..state.open import open_state
from .apply import Applied, apply, from_runs

log = logging.getLogger(__name__)
def soft_limit(config: Config) -> int:
    """bounces.soft_limit, or its default when there is no bounces: section."""
    return (config.bounces or BouncesSettings()).soft_limit


def after_send(config: Config, runs: Iterable[Run]) -> Applied:
    """A send's 5xx replies as hard bounces, so the next run does not mail those addresses
    again (bounces: or not: the SMTP server's own word needs no mailbox)."""
    runs = list(runs)
    if not runs:
        return Applied()
    state = open_state(config)
    try:
        applied = from_runs(state, runs, soft_limit=soft_limit(config), now=datetime.now(UTC))
    finally:
        state.close()
    for address, reason in applied.suppressed:
        log.info("suppressed %s: %s", address, reason)
    return applied


MAX_PER_READ = 5000  # messages examined per read; the rest wait for the next one
NOTE = "bounces"


@dataclass
class MailboxRead(Applied):
    """What one read of the mailbox did."""

    where: str = ""
    examined: int = 0  # messages looked at
    feedback: int = 0  # of which feedback (marked seen); the others were left as they were
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (where, why) not feedback


def read_feedback(config: Config, *, limit: int = MAX_PER_READ) -> MailboxRead:
    """What the bounces mailbox holds, classified and applied; nothing without a mailbox.
    MailboxError if it cannot be read (MissingSecret if VERP's secret is not set)."""
    from .classify import examine
    from .mailbox import open_mailbox
    from .ours import ours

    read = MailboxRead()
    if config.bounces is None:
        return read
    now = datetime.now(UTC)
    state = open_state(config)
    try:
        checkpoint = state.notes().get(NOTE, {}).get("checkpoint")
        mine = ours(config, state)
        mailbox = open_mailbox(config.bounces, checkpoint=checkpoint)
        if mailbox is None:
            return read
        with contextlib.closing(mailbox):
            read.where = mailbox.where
            for incoming in mailbox.messages(limit):
                verdict = examine(incoming.data, mine)
                read.examined += 1
                if verdict.items:
                    read.add(apply(state, verdict.items, soft_limit=soft_limit(config),
                                   now=now))
                    read.feedback += 1
                else:
                    read.ignored.append((incoming.where, verdict.why))
                mailbox.done(incoming, handled=bool(verdict.items))
            state.note(NOTE, {"checkpoint": mailbox.checkpoint(), "read_at": now,
                              "where": read.where, "examined": read.examined,
                              "feedback": read.feedback,
                              "suppressed": len(read.suppressed)})
    finally:
        state.close()
    return read
