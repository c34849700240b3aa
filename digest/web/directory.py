"""Who a link's token names: the subscribers file as it is now, and the members who signed
up or were imported, re-read when either changes.

A token carries no address, so finding its subscriber means signing every current key and
looking the token up. The index is built lazily per purpose and rebuilt only when the
subscribers file changes (its size and mtime) or the members do (their stamp in the shared
state), so a click costs a stat, one small query and a dict lookup.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config
from ..errors import SubscribersUnreadable
from ..state.interface import SharedState
from ..subscribers.current import read_subscribers
from ..subscribers.load import Subscriber, SubscriberList
from ..subscribers.tokens import TOKEN_PATTERN, Signer

log = logging.getLogger(__name__)
# (size, mtime_ns) of the subscribers file (None: unreadable), and the members' stamp
Stamp = tuple[tuple[int, int] | None, str]


def _file_stamp(path: Path | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


@dataclass
class _Generation:
    stamp: Stamp
    subscribers: dict[str, Subscriber]  # key → entry
    indexes: dict[str, dict[str, str]] = field(default_factory=dict)  # purpose → token → key


class Directory:
    """token → subscriber, for the subscribers file's current content (or its last good copy).

    Keys on the suppression list are indexed too, so an unsubscribe link keeps answering
    (idempotently) after the address is also removed from the file.
    """

    def __init__(self, config: Config, signer: Signer, state: Callable[[], SharedState]) -> None:
        self.config = config
        self.path = config.subscribers
        self.signer = signer
        self._state = state
        self._lock = threading.Lock()
        self._current: _Generation | None = None

    def subscriber(self, key: str) -> Subscriber | None:
        return self._generation().subscribers.get(key)

    def everyone(self) -> dict[str, Subscriber]:
        """key → entry of everyone on the list now (the owner's dashboard searches it)."""
        return dict(self._generation().subscribers)

    def resolve(self, token: str, purpose: str) -> str | None:
        """The key *token* was made for, for *purpose*; None for anything else."""
        if not TOKEN_PATTERN.match(token):
            return None
        generation = self._generation()
        index = generation.indexes.get(purpose)
        if index is None:
            with self._lock:
                index = generation.indexes.get(purpose)
                if index is None:
                    keys = set(generation.subscribers)
                    if purpose == "unsubscribe":
                        keys |= self._state().suppressed()
                    index = self.signer.index(keys, purpose)
                    generation.indexes[purpose] = index
        return index.get(token)

    def _generation(self) -> _Generation:
        stamp = (_file_stamp(self.path), self._state().members_stamp())
        current = self._current
        if current is not None and current.stamp == stamp:
            return current
        with self._lock:
            if self._current is None or self._current.stamp != stamp:
                found = self._read()
                self._current = _Generation(stamp, {s.key: s for s in found.subscribers})
            return self._current

    def _read(self) -> SubscriberList:
        """As a send reads it (the last good copy when the file cannot be read), without
        saving a snapshot: the web front only reads."""
        if self.path is None:
            return SubscriberList((), (), ())
        try:
            return read_subscribers(self.config, self._state(), set(), keep=False)
        except SubscribersUnreadable as exc:
            log.error("%s: no subscriber links can be resolved until it is fixed", exc)
            return SubscriberList((), (), ())
