"""The delivery stage's contract: what a transport is given, what it reports, how it gives up.

The orchestrator hands a `Transport` a lazy stream of `Outgoing` messages and a `record`
callback. The transport calls `record` with a message's final `Outcome` before the connection
that carried it takes another message, so the send log (which makes each record durable)
is never more than the messages in flight behind the wire: a crash can resend only those.
A message that never gets an outcome (the run paused, was stopped, or crashed) stays pending.

A transport gives up by raising DeliveryPaused, or SmtpAuthFailed / SmtpTlsFailed (in
errors.py, with every other error of digest).

Two transports implement it, each in its own module: `SmtpTransport` (smtp.py) relays
through an SMTP server, and `MaildirTransport` (outbox.py) files messages into a local
Maildir instead. `Outcome` is defined with the send log that keeps it (state/sendlog.py),
below this stage, and is part of this contract too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from ..state.sendlog import Outcome, Status

__all__ = ["Current", "Outcome", "Outgoing", "Record",
           "Status", "Transport"]


@dataclass(frozen=True)
class Outgoing:
    """One rendered message for one recipient."""

    key: str  # the send log's key for this delivery (the subscriber's address)
    sender: str  # envelope MAIL FROM, a bare address
    recipient: str  # envelope RCPT TO, a bare ASCII address
    data: bytes  # the whole RFC 5322 message, CRLF line endings


Record = Callable[[Outcome], Awaitable[None]]
# asked before each message goes (one may be taken early, while the one before it is in
# flight, or wait to be retried): False means it is no longer this sender's to send (its
# lease lapsed and another sender took it)
Current = Callable[[Outgoing], bool]


class Transport(Protocol):
    """Sends what `messages` yields, calling `record` with each final outcome."""

    async def deliver(self, messages: AsyncIterator[Outgoing], record: Record, *,
                      stop: asyncio.Event | None = None,
                      current: Current | None = None) -> None:
        """Return when `messages` is exhausted (or `stop` is set and in-flight ones are done).

        Raises DeliveryPaused (or a subclass) when sending should not go on; messages
        without a recorded outcome are then still pending. A transport that may hold a message
        a while before sending it (taken early, or waiting to be retried) asks `current`
        before it goes, and leaves it unsent and without an outcome when the answer is False.
        """
        ...
