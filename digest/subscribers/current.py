"""The subscribers a command works with: the subscribers file, or, when it cannot be read
now, the last good copy of it kept in the state database (the error is logged loudly); and
after them everyone who signed up or was imported (kept in the state beside the file).

The file is the owner's and comes first: an address in both counts once, as the file has it
(tags chosen when signing up are kept as web preferences, which apply on top of the file).
The suppression list is not applied here: the send, the preview and the web front each
look at it, so a suppression always wins whatever list the address is on.
"""

from __future__ import annotations

import codecs
import logging
from collections.abc import Callable, Collection, Sequence

from ..config import Config
from ..errors import ConfigError, Problem, SubscribersUnreadable
from ..state.interface import Member, SharedState
from .cache import cached_entries
from .load import (
    Packed,
    Subscriber,
    SubscriberList,
    check_utf8,
    checked,
    load_subscribers,
    parse_subscribers,
)

log = logging.getLogger(__name__)


def read_subscribers(config: Config, sendlog: SharedState, known: Collection[str], *,
                     keep: bool = True, cache: bool = True,
                     fell_back: list[SubscribersUnreadable] | None = None) -> SubscriberList:
    """The subscribers file, or the last good copy of it when it cannot be read now;
    *keep*: save what was read as the new last good copy; *cache*: use the reading kept in
    the state folder, and keep this one there (subscribers/cache.py); *fell_back*: gets why
    the last good copy was used, if it was."""
    path = config.subscribers
    if path is None:
        raise ConfigError([Problem(config.path, None, "no subscribers file is configured",
                                   "add 'subscribers: subscribers.yaml' to the config")])
    limits = config.limits
    try:
        raw = path.read_bytes() \
            if path.is_file() and path.stat().st_size <= limits.subscribers_bytes else None
        if raw is not None:
            check_utf8(path, raw)
    except (OSError, SubscribersUnreadable):
        raw = None  # load_subscribers says exactly what is wrong
    try:
        # the bytes parsed are the bytes kept, so the snapshot is exactly what was served
        if raw is None:
            found = load_subscribers(path, known, limits)
        elif cache:
            found = checked(cached_entries(config.state, path, raw, limits), known)
        else:
            found = parse_subscribers(path, raw, known, limits)
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
    if raw is not None and keep:
        # the bytes parsed are saved as they are (UTF-8, checked): no str copy of the file
        # (77 MB at a million), and the state writes it without copies of its own
        sendlog.save_snapshot(str(path), raw[len(codecs.BOM_UTF8):]
                              if raw.startswith(codecs.BOM_UTF8) else raw)
        del raw
    return with_members(found, sendlog.members())


def with_members(found: SubscriberList, members: list[Member]) -> SubscriberList:
    """The file's subscribers, then the members whose address the file does not have.

    The file's keys are read one at a time against the members' (a few): a set of every
    address on a million-line list would be the biggest thing in memory.
    """
    if not members:
        return found
    listed = found.subscribers.keys() if isinstance(found.subscribers, Packed) \
        else (sub.key for sub in found.subscribers)
    wanted = {m.key for m in members}
    taken = {key for key in listed if key in wanted}
    extra = [Subscriber(m.email, m.name, m.tags) for m in members if m.key not in taken]
    if isinstance(found.subscribers, Packed):
        return SubscriberList(found.subscribers.joined(extra), found.problems, found.warnings)
    return SubscriberList((*found.subscribers, *extra), found.problems, found.warnings)


def finder(subscribers: Sequence[Subscriber]) -> Callable[[str], Subscriber | None]:
    """Who has a key, for the sender, which looks up each batch it claims: a Packed list
    (the file's) through its sorted index of 8 bytes a subscriber, not a dict of every
    address (~400 bytes each at a million); any other sequence (a few, made in code)
    through a dict. Keys are unique in a list (the file's later duplicates are skipped,
    members are added only when the file lacks them); of equal keys the first is taken."""
    if isinstance(subscribers, Packed):
        return subscribers.find
    by_key: dict[str, Subscriber] = {}
    for sub in subscribers:
        by_key.setdefault(sub.key, sub)
    return by_key.get
