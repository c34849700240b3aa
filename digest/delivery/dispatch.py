"""The queue of one delivery run, shared by its connections; it knows nothing of SMTP.

It takes messages from the caller's stream only as connections ask for them (so a run over
100,000 subscribers holds a handful of messages, not all of them), keeps messages that must
wait before another attempt until they are due, spaces sends to the configured rate, and
counts failures in a row until they are enough to pause the run.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from ..errors import DeliveryPaused
from .transport import Outgoing

log = logging.getLogger(__name__)

MAX_DELAY = 300.0  # no retry waits longer than this, however many attempts came before


def backoff(rng: random.Random, base: float, attempt: int) -> float:
    """Exponential backoff with full jitter, so connections that failed together spread out."""
    return rng.uniform(0, min(MAX_DELAY, base * 2 ** min(attempt - 1, 30)))


@dataclass(frozen=True)
class Held:
    """A message taken from the stream, with the number of attempts made so far."""

    message: Outgoing
    attempts: int = 0


@dataclass(order=True)
class _Waiting:
    not_before: float
    seq: int
    held: Held = field(compare=False)


class Dispatch:
    """Hands out messages, holds retries until due, paces sends and decides when to pause."""

    def __init__(self, messages: AsyncIterator[Outgoing], *, buffer: int, pause_after: int,
                 rate: float, stop: asyncio.Event | None = None) -> None:
        self._source = aiter(messages)
        self._pulling = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._later: list[_Waiting] = []
        self._seq = itertools.count()
        self._held = 0  # taken and not final: in flight, waiting to retry, or being pulled
        self._buffer = buffer
        self._exhausted = False
        # pulls take_ready began that did not finish in their first turn: take() has them
        self._ahead: collections.deque[asyncio.Future[Outgoing | None]] = collections.deque()
        self._failures = 0
        self._pause_after = pause_after
        self._interval = 1 / rate if rate > 0 else 0.0
        self._next_slot = 0.0
        self.halted = asyncio.Event()
        # read by take() itself: `watch` halts the run only once its task gets a turn, and
        # a connection finishing meanwhile took another message after the stop
        self._stop = stop
        self.error: BaseException | None = None  # why the run halted, unless it was stopped

    async def take(self) -> Held | None:
        """The next message to try: a retry that is due, else a fresh one; None when done."""
        ahead: asyncio.Future[Outgoing | None] | None
        while True:
            async with self._changed:
                while True:
                    if self.halted.is_set() or (self._stop is not None and self._stop.is_set()):
                        return None
                    now = time.monotonic()
                    if self._later and self._later[0].not_before <= now:
                        return heapq.heappop(self._later).held
                    if self._ahead:  # a pull take_ready began: counted in _held
                        ahead = self._ahead.popleft()
                        break
                    if not self._exhausted and self._held < self._buffer:
                        self._held += 1
                        ahead = None
                        break
                    if self._exhausted and self._held == 0:
                        return None
                    delay = self._later[0].not_before - now if self._later else None
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), delay)
            held = await self._taken(await (self._pull() if ahead is None else ahead))
            if held is not None:
                return held

    async def take_ready(self) -> Held | None:
        """The next message if it can be had now, for a connection to send in the same
        write as the one in its hand (SMTP pipelining): a retry that is due, or a fresh one
        the stream yields within one turn of the loop. None when that would mean waiting:
        for a message to settle, a retry to come due, a turn under the rate, or the stream
        (near a run's end it waits for other senders' leases, which may wait for the very
        message in this connection's hand). A pull that does not finish in that turn goes
        on, and a take() has its message."""
        if self._interval or self.halted.is_set() or (self._stop is not None
                                                      and self._stop.is_set()):
            return None
        if self._later and self._later[0].not_before <= time.monotonic():
            return heapq.heappop(self._later).held
        if (self._ahead or self._exhausted or self._held >= self._buffer
                or self._pulling.locked()):  # no room, or a pull waits: pile up no more
            return None
        self._held += 1
        # each asker has a pull of its own: connections whose replies came in one turn all
        # ask in it, and each pull runs once the one before it is done (with one pull at a
        # time, only the first asker in a turn chained: 15% of messages at 20 connections)
        pull = asyncio.ensure_future(self._pull())
        await asyncio.sleep(0)  # its first step runs now: it yields, or waits on something
        if pull.done():
            return await self._taken(pull.result())
        self._ahead.append(pull)
        async with self._changed:  # a take() waiting for room may take it instead
            self._changed.notify_all()
        return None

    async def _taken(self, message: Outgoing | None) -> Held | None:
        """A pulled message, held; or None (the stream ended, the run halted), settled."""
        if message is not None and not self.halted.is_set():
            return Held(message)
        await self.settle()
        return None

    async def _pull(self) -> Outgoing | None:
        async with self._pulling:  # an async generator cannot be advanced twice at once
            # a pull take_ready began may get its turn after a stop or a halt (before
            # watch() has cancelled it): the stream is not advanced then
            if self._exhausted or self.halted.is_set() or (self._stop is not None
                                                           and self._stop.is_set()):
                return None
            try:
                return await anext(self._source)
            except StopAsyncIteration:
                self._exhausted = True
                return None

    async def settle(self) -> None:
        """A held message is final (or was never sent): make room for another."""
        async with self._changed:
            self._held -= 1
            self._changed.notify_all()

    async def later(self, held: Held, delay: float) -> None:
        """Offer `held` again once `delay` seconds have passed."""
        async with self._changed:
            heapq.heappush(self._later,
                           _Waiting(time.monotonic() + delay, next(self._seq), held))
            self._changed.notify_all()

    async def halt(self, error: BaseException | None) -> None:
        """Hand out no more messages; the first error given is the one the run raises."""
        if self.error is None and error is not None:
            self.error = error
        self.halted.set()
        self.close()
        async with self._changed:
            self._changed.notify_all()

    async def watch(self) -> None:
        """Halt once the stop event given at creation is set (take() already reads it)."""
        if self._stop is None:
            return
        await self._stop.wait()
        log.info("stop requested: finishing the messages in flight")
        await self.halt(None)

    def close(self) -> None:
        """Cancel the pulls take_ready began that nobody took (the run ended or halted)."""
        while self._ahead:
            pull = self._ahead.popleft()
            if not pull.cancel() and not pull.cancelled():
                pull.exception()  # retrieved: nobody will await it

    def succeeded(self) -> None:
        self._failures = 0

    async def failed(self, reason: str) -> None:
        """Count a failure in a row; enough of them pause the run."""
        self._failures += 1
        if self._failures >= self._pause_after and not self.halted.is_set():
            log.warning("pausing delivery after %d failures in a row; last: %s",
                        self._failures, reason)
            await self.halt(DeliveryPaused(reason, self._failures))

    async def sleep(self, delay: float) -> bool:
        """Wait `delay` seconds; False if the run halted meanwhile."""
        if delay > 0 and not self.halted.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.halted.wait(), delay)
        return not self.halted.is_set()

    async def pace(self) -> bool:
        """Wait for this send's turn under the rate; False if the run halted meanwhile."""
        if not self._interval:
            return not self.halted.is_set()
        now = time.monotonic()
        slot = max(now, self._next_slot)
        self._next_slot = slot + self._interval
        return await self.sleep(slot - now)
