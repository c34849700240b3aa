"""What the daemon's parts (feeds, digest, reload, web) share: the running daemon, as they see it.

service.py's Daemon is the one host; the parts see it through this protocol so that each
imports only what it uses, and none imports the service that composes them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol

from ..config import Config
from ..delivery.nodes import Heartbeat
from ..util.clock import Clock


class Host(Protocol):
    config: Config  # replaced by a reload that changes it
    clock: Clock
    stopping: asyncio.Event  # set once: no new work
    stop_sending: asyncio.Event  # set on stop: a send in flight finishes its transactions
    scheduler: Any  # APScheduler's AsyncIOScheduler, None before start-up puts it
    busy: dict[str, bool]  # "build", "send": what a stop waits for
    heartbeat: Heartbeat  # this daemon's node row; its send jobs' leases are renewed by it

    def task(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A background task whose unexpected failure stops the daemon (exit 1)."""
        ...

    def note(self, key: str, data: dict[str, Any]) -> None:
        """Note *data* under *key* for `digest status`."""
        ...

    def fail(self, error: BaseException, why: str) -> None:
        """Stop, exiting 1."""
        ...
