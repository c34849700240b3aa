"""uvicorn's HTTP/1.1 protocol with the limits it lacks: a deadline for a request's head and
one for its body, and a cap on the body's size.

uvicorn has no header read timeout (its issue #157, "--timeout-request-start", was never
done) and its keep-alive timer is cancelled by every byte received, so a client sending a
header line every few seconds (slowloris) held a connection for ever: twenty such were
never closed. ASGI middleware cannot help, it runs only once the head has arrived. So the
protocol itself is wrapped: a timer from connection (or the end of the last response) to a
complete head, another from the head to the end of the body, and a Content-Length or
received-bytes check against the cap. A connection past a deadline gets 408 and is closed;
a body too large gets 413. Concurrency is capped by uvicorn's own limit_concurrency (503).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol


@dataclass(frozen=True)
class Limits:
    """What one client may take of the web front; the defaults suit its tiny forms."""

    head_seconds: float = 10.0  # connection (or last response) → request head complete
    body_seconds: float = 10.0  # request head → body complete
    max_body: int = 64 * 1024  # bytes; an unsubscribe form is ~30
    # a relay's webhook may post a whole SNS message (up to 256 KB); its handler reads the
    # body with the same bound (feedback/sns.MAX_BODY) before parsing it
    webhook_body: int = 256 * 1024
    webhook_prefix: str = "/webhooks/"
    max_head: int = 16 * 1024  # bytes of request line + headers (h11's incomplete event)
    connections: int = 100  # open at once; past it requests get 503
    keep_alive_seconds: int = 5  # idle between requests on one connection


def _reply(status: bytes) -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")


class GuardedH11(H11Protocol):
    """H11Protocol with the deadlines and the body cap of `limits` (set by `protocol_for`)."""

    limits = Limits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._request: object = None  # the cycle whose head arrived: body timer running
        self._body_bytes = 0

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        self._refuse(b"408 Request Timeout")

    def _refuse(self, status: bytes) -> None:
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(_reply(status))
        self.transport.close()

    def _cap(self, cycle: Any) -> int:
        """The body cap of this request's path: the webhooks' is larger."""
        path = str(cycle.scope.get("path", ""))
        limits = self.limits
        return limits.webhook_body if path.startswith(limits.webhook_prefix) else limits.max_body

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.limits.head_seconds)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        waiting_body = self._request is not None and self._request is self.cycle
        super().data_received(data)
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None:
            return
        if cycle is not self._request:  # a new head arrived in this data
            self._request = cycle
            self._body_bytes = 0
            length = dict(self.headers or ()).get(b"content-length", b"0")
            if not length.isdigit() or int(length) > self._cap(cycle):
                self._refuse(b"413 Content Too Large")
                return
            self._arm(self.limits.body_seconds)
        elif waiting_body:
            self._body_bytes += len(data)  # chunked bodies have no length up front
            if self._body_bytes > self._cap(cycle):
                self._refuse(b"413 Content Too Large")
                return
        if not cycle.more_body and self._timer is not None and self._request is cycle:
            self._disarm()  # the whole request is in: the app may take its time to answer

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():  # keep-alive: the next head has a deadline too
            self._arm(self.limits.head_seconds)


def protocol_for(limits: Limits) -> type[GuardedH11]:
    """The protocol class for uvicorn's `http=` with these limits."""
    return type("GuardedH11", (GuardedH11,), {"limits": limits})
