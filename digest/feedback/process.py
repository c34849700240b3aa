"""The feedback stage's entry points for the commands and the daemon: what a send's own SMTP
replies say (after_send) and, with bounces: configured, what the mailbox holds."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from ..config import Config
from ..state.interface import Run
from ..state.open import open_state
from .apply import Applied, from_runs

log = logging.getLogger(__name__)
DEFAULT_SOFT_LIMIT = 3  # as BouncesSettings.soft_limit, when there is no bounces: section


def soft_limit(config: Config) -> int:
    return config.bounces.soft_limit if config.bounces else DEFAULT_SOFT_LIMIT


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


def read_feedback(config: Config) -> Applied:
    """What the bounces mailbox holds, classified and applied; nothing without one."""
    raise NotImplementedError  # lands with the mailbox and the classifier
