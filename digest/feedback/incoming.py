"""What every mailbox hands out (Incoming), the interface they share (Mailbox), and the
bookkeeping that keeps their checkpoints honest (Progress); feedback/mailbox.py explains the
whole."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 10 * 2**20  # a bounce quoting a whole digest stays far below this


@dataclass(frozen=True)
class Incoming:
    """One message read from a mailbox."""

    ident: str  # stable while the message exists: "maildir:KEY" or "imap:UIDVALIDITY:UID"
    data: bytes  # the whole message as stored, at most max_bytes
    where: str  # the file's path, or imaps://user@host:port/folder;UID=n: for messages
    position: int = field(repr=False)  # its place in the mailbox's order: ctime (ns) or UID


class Mailbox(Protocol):
    """Where feedback is read from: a Maildir or an IMAP folder."""

    @property
    def where(self) -> str:
        """The mailbox, for messages: a path, or imaps://user@host:port/folder."""

    def messages(self, limit: int) -> Iterator[Incoming]:
        """Unseen messages after the checkpoint, oldest first, at most *limit* examined."""

    def done(self, incoming: Incoming, handled: bool) -> None:
        """Mark *incoming* seen if *handled*, else leave it as it is; either way the
        checkpoint may move past it."""

    def checkpoint(self) -> str | None:
        """What to pass back next time, so only later mail is examined."""

    def close(self) -> None:
        """Let go of the mailbox (log out); marks already made stay."""


class Progress:
    """Which examined messages are done, so the checkpoint never passes one that is not."""

    def __init__(self, start: int | None) -> None:
        self.mark = start  # every message up to here is done
        self._order: deque[tuple[str, int]] = deque()  # examined and not yet passed, in order
        self._done: set[str] = set()

    def examined(self, ident: str, position: int) -> None:
        self._order.append((ident, position))

    def finished(self, ident: str) -> None:
        self._done.add(ident)
        while self._order and self._order[0][0] in self._done:
            passed, position = self._order.popleft()
            self._done.discard(passed)
            self.mark = position if self.mark is None else max(self.mark, position)


def too_big(where: str, size: int, limit: int) -> None:
    """Say that a message was skipped for its size: it is not feedback we can read, but a
    person may want to."""
    log.warning("%s: skipped a message of %d bytes (over the limit of %d bytes): it is left "
                "as it is; read it yourself if it matters", where, size, limit)


