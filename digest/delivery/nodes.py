"""A sending process's heartbeat: its node row in the shared state, written every few seconds.

Several `digest send` processes (or daemons' send jobs), on one machine or many, serve one
run together, each holding the deliveries it claimed under a lease (state/interface.py,
claim). The same beat renews those leases, so a node that stops beating (killed, its machine
lost) loses them when they expire and another finishes its rows. `digest status` lists the
nodes with their last beat, and calls one silent longer than its lease gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
from datetime import UTC, datetime, timedelta

from ..config import Config
from ..config.settings import SmtpSettings
from ..errors import DigestError
from ..state.interface import Node, Run, SharedState
from ..state.open import open_state

log = logging.getLogger(__name__)

BEAT_SECONDS = 5.0  # at most this between beats; a third of the lease if that is shorter
PRUNE_AFTER = timedelta(days=1)  # a gone node is forgotten a day after its last beat
# a lease counts as lapsed this long before it runs out (a quarter of it if that is
# shorter): room for a message handed out just before, and for clocks of machines that
# disagree a little (another node reads the expiry by its own clock)
LEASE_MARGIN_SECONDS = 5.0


def node_id() -> str:
    """This process as the leases and `digest status` name it: hostname:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def alive(nodes: set[str]) -> set[str]:
    """*nodes* less those of this machine whose process is gone (killed): their leases need
    not be waited out. Another machine's nodes are taken as alive until their leases expire."""
    host = socket.gethostname()
    living = set()
    for node in nodes:
        name, _, pid = node.rpartition(":")
        if name != host or not pid.isdigit():
            living.add(node)
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            continue
        except PermissionError:  # another user's process: alive
            pass
        living.add(node)
    return living


def lease_settings(config: Config) -> tuple[float, int]:
    """(smtp.lease_seconds, smtp.claim_batch), the defaults when mail goes to a Maildir."""
    smtp = config.smtp or SmtpSettings("", 0)
    return smtp.lease_seconds, smtp.claim_batch


class LeaseClock:
    """Until when (by this process's monotonic clock) the leases of the batch it is serving
    surely hold. Each beat renews them, but a process paused, or cut off from the state,
    for longer than the lease may find on waking that another node took some of its rows
    and is sending them: past that time, the batch's remaining rows are not sent until the
    state says which are still this node's (Claims, SharedState.kept). A renewal extends
    the time only if it was sent before the time ran out; after a gap, only `kept` (which
    names the rows) does."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.margin = min(LEASE_MARGIN_SECONDS, seconds / 4)
        self._until = -math.inf

    def holds(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) < self._until - self.margin

    def renewed(self, sent: float) -> None:
        """A renewal sent at *sent* (time.monotonic()) was made."""
        if sent < self._until - self.margin:
            self._until = sent + self.seconds

    def known(self, sent: float) -> None:
        """The rows of the batch were named by a claim or `kept` sent at *sent*."""
        self._until = sent + self.seconds


class Heartbeat:
    """This process's node row, beaten every few seconds on a connection of its own; while
    it serves a run (serve), each beat first renews its leases on that run."""

    def __init__(self, config: Config, role: str) -> None:
        self.config = config
        self.role = role
        self.node = node_id()
        self.lease_seconds, _ = lease_settings(config)
        self.started = datetime.now(UTC)
        self.run: Run | None = None
        self.leased = 0
        self.lease = LeaseClock(self.lease_seconds)
        self._state: SharedState | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def interval(self) -> float:
        return min(BEAT_SECONDS, self.lease_seconds / 3)

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        self._state = open_state(self.config)
        self._state.prune_nodes(datetime.now(UTC) - PRUNE_AFTER)
        self.beat()
        self._task = asyncio.get_running_loop().create_task(self._beating())

    def serve(self, run: Run | None, lease_seconds: float | None = None) -> None:
        """From now on this node serves *run* (None: no run) with leases this long."""
        self.run = run
        if lease_seconds is not None:
            self.lease_seconds = lease_seconds
        self.lease = LeaseClock(self.lease_seconds)
        if run is None:
            self.leased = 0
        if self._state is not None:
            self.beat()

    def beat(self) -> None:
        """Renew the leases held, then record the beat."""
        state = self._state
        assert state is not None
        if self.run is not None:
            sent = time.monotonic()
            self.leased = state.renew(self.run, self.node, self.lease_seconds)
            self.lease.renewed(sent)
        state.beat(Node(self.node, self.role, self.started, datetime.now(UTC),
                        self.run.slug if self.run else None, self.leased, self.lease_seconds))

    async def _beating(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.beat()
            except DigestError as exc:  # a busy or failing database: the next beat may do
                log.warning("heartbeat of %s not recorded: %s", self.node, exc)

    async def close(self) -> None:
        """Stop beating and take this node's row out: it stopped cleanly."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._state is not None:
            try:
                self._state.leave(self.node)
            except DigestError as exc:
                log.warning("node %s not taken out of the state: %s", self.node, exc)
            finally:
                self._state.close()
                self._state = None
