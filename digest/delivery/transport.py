"""The delivery stage's contract: what a transport is given, what it reports, how it gives up.

The orchestrator hands a `Transport` a lazy stream of `Outgoing` messages and a `record`
callback. The transport calls `record` with a message's final `Outcome` before the connection
that carried it takes another message, so the send log (which makes each record durable)
is never more than the messages in flight behind the wire: a crash can resend only those.
A message that never gets an outcome (the run paused, was stopped, or crashed) stays pending.

    DigestError
    └── DeliveryPaused     the run stopped itself; pending messages go out on the next run
        ├── SmtpAuthFailed    the server refused the credentials (or offers no AUTH)
        └── SmtpTlsFailed     no verified TLS: bad certificate, or no STARTTLS offered

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

from ..errors import DigestError
from ..state.sendlog import Outcome, Status

__all__ = ["DeliveryPaused", "Outcome", "Outgoing", "Record", "SmtpAuthFailed", "SmtpTlsFailed",
           "Status", "Transport"]


@dataclass(frozen=True)
class Outgoing:
    """One rendered message for one recipient."""

    key: str  # the send log's key for this delivery (the subscriber's address)
    sender: str  # envelope MAIL FROM, a bare address
    recipient: str  # envelope RCPT TO, a bare ASCII address
    data: bytes  # the whole RFC 5322 message, CRLF line endings


Record = Callable[[Outcome], Awaitable[None]]


class Transport(Protocol):
    """Sends what `messages` yields, calling `record` with each final outcome."""

    async def deliver(self, messages: AsyncIterator[Outgoing], record: Record, *,
                      stop: asyncio.Event | None = None) -> None:
        """Return when `messages` is exhausted (or `stop` is set and in-flight ones are done).

        Raises DeliveryPaused (or a subclass) when sending should not go on; messages
        without a recorded outcome are then still pending.
        """
        ...


class DeliveryPaused(DigestError):
    """Delivery stopped itself because continuing would only fail again.

    `reason` is what failed last, `failures` how many failures in a row led here.
    """

    def __init__(self, reason: str, failures: int, *, hint: str = "") -> None:
        self.reason = reason
        self.failures = failures
        self.hint = hint or ("messages without an outcome are still pending; "
                             "once the cause is fixed, run `digest send` again to resume")
        super().__init__(f"{self.headline()}: {reason} ({self.hint})")

    def headline(self) -> str:
        if self.failures == 1:
            return "delivery paused"
        return f"delivery paused after {self.failures} consecutive failures"


class SmtpAuthFailed(DeliveryPaused):
    """The SMTP server refused our login: every other message would be refused too."""

    def __init__(self, reason: str, *, hint: str = "") -> None:
        super().__init__(reason, 1, hint=hint)

    def headline(self) -> str:
        return "SMTP authentication failed"


class SmtpTlsFailed(DeliveryPaused):
    """No verified TLS could be set up, and sending in the clear was not asked for."""

    def __init__(self, reason: str, *, hint: str = "") -> None:
        super().__init__(reason, 1, hint=hint)

    def headline(self) -> str:
        return "no secure connection to the SMTP server"

