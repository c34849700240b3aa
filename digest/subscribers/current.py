"""The subscribers a command works with: the subscribers file, or, when it cannot be read
now, the last good copy of it kept in the state database (the error is logged loudly); and
after them everyone who signed up or was imported (kept in the state beside the file).

The file is the owner's and comes first: an address in both counts once, as the file has it
(tags chosen when signing up are kept as web preferences, which apply on top of the file).
The suppression list is not applied here: the send, the preview and the web front each
look at it, so a suppression always wins whatever list the address is on.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from ..config import Config
from ..errors import ConfigError, Problem, SubscribersUnreadable
from ..state.interface import Member, SharedState
from .load import Subscriber, SubscriberList, load_subscribers, parse_subscribers

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
        return with_members(parse_subscribers(path, snapshot[1], known, limits),
                            sendlog.members())
    if text is not None and keep:
        sendlog.save_snapshot(str(path), text)
    return with_members(found, sendlog.members())


def with_members(found: SubscriberList, members: list[Member]) -> SubscriberList:
    """The file's subscribers, then the members whose address the file does not have."""
    if not members:
        return found
    listed = {sub.key for sub in found.subscribers}
    extra = tuple(Subscriber(m.email, m.name, m.tags) for m in members if m.key not in listed)
    return SubscriberList(found.subscribers + extra, found.problems, found.warnings)
