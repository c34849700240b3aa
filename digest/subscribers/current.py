"""The subscribers a command works with: the subscribers file, or, when it cannot be read
now, the last good copy of it kept in the state database (the error is logged loudly)."""

from __future__ import annotations

import logging
from collections.abc import Collection

from ..config import Config
from ..errors import ConfigError, Problem, SubscribersUnreadable
from ..state.interface import SharedState
from .load import SubscriberList, load_subscribers, parse_subscribers

log = logging.getLogger(__name__)


def read_subscribers(config: Config, sendlog: SharedState, known: Collection[str], *,
                     keep: bool = True,
                     fell_back: list[SubscribersUnreadable] | None = None) -> SubscriberList:
    """The subscribers file, or the last good copy of it when it cannot be read now;
    *keep*: save what was read as the new last good copy; *fell_back*: gets why the last
    good copy was used, if it was."""
    path = config.subscribers
    if path is None:
        raise ConfigError([Problem(config.path, None, "no subscribers file is configured",
                                   "add 'subscribers: subscribers.yaml' to the config")])
    limits = config.limits
    try:
        text = path.read_bytes().decode("utf-8-sig") \
            if path.is_file() and path.stat().st_size <= limits.subscribers_bytes else None
    except (OSError, UnicodeDecodeError):
        text = None  # load_subscribers says exactly what is wrong
    try:
        # the bytes parsed are the bytes kept, so the snapshot is exactly what was served
        found = load_subscribers(path, known, limits) if text is None \
            else parse_subscribers(path, text, known, limits)
    except SubscribersUnreadable as exc:
        snapshot = sendlog.snapshot()
        if snapshot is None:
            raise
        log.error("%s — using the last good copy, read at %s, until it is fixed", exc,
                  snapshot[2])
        if fell_back is not None:
            fell_back.append(exc)
        return parse_subscribers(path, snapshot[1], known, limits)
    if text is not None and keep:
        sendlog.save_snapshot(str(path), text)
    return found
