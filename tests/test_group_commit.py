"""Outcomes are committed in groups: connections finishing in the same turn of the event
loop share one commit of the real send log, and each waits until its own row is durable."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.delivery.send import GroupCommit
from digest.delivery.transport import Outcome
from digest.state.sendlog import Recorded, SendLog
from digest.state.store import Store

pytestmark = pytest.mark.asyncio
KEYS = [f"user{i}@example.org" for i in range(6)]


def _sendlog(tmp_path: Path) -> tuple[Store, SendLog]:
    store = Store.open(tmp_path / "state")
    sendlog = SendLog(store)
    return store, sendlog


def _recorded(key: str) -> Recorded:
    return Recorded(Outcome(key, "sent", 250, "250 ok", 1), f"<{key}>", 3)


async def test_outcomes_finishing_together_share_one_commit_and_each_waits_for_it(
        tmp_path: Path) -> None:
    store, sendlog = _sendlog(tmp_path)
    when = datetime(2024, 6, 10, tzinfo=UTC)
    run = sendlog.create_run(slug="2024-06-10", start=when, end=when, posts=[],
                             subscribers=[(k, k) for k in KEYS])
    commits: list[int] = []

    def write(rows: list[Recorded]) -> None:
        sendlog.record_many(run, rows)
        commits.append(len(rows))

    group: GroupCommit[Recorded] = GroupCommit(write)
    durable_on_return: list[bool] = []

    async def connection(key: str) -> None:
        await group.add(_recorded(key))
        # what another process (a restarted `digest send`) would read now
        other = sqlite3.connect(tmp_path / "state" / "state.sqlite3")
        state = other.execute("SELECT state FROM deliveries WHERE subscriber = ?",
                              (key,)).fetchone()[0]
        other.close()
        durable_on_return.append(state == "sent")

    await asyncio.gather(*(connection(k) for k in KEYS[:5]))
    await connection(KEYS[5])
    assert commits == [5, 1]
    assert durable_on_return == [True] * 6
    assert sendlog.counts(run) == {"sent": 6}
    store.close()


async def test_a_failed_commit_is_raised_in_every_connection_that_waited_for_it() -> None:
    def write(rows: list[int]) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    group: GroupCommit[int] = GroupCommit(write)
    results = await asyncio.gather(*(group.add(i) for i in range(3)), return_exceptions=True)
    assert [type(r) for r in results] == [sqlite3.OperationalError] * 3


async def test_a_cancelled_connection_does_not_cancel_the_others_commit() -> None:
    written: list[list[int]] = []
    group: GroupCommit[int] = GroupCommit(written.append)
    first = asyncio.create_task(group.add(1))
    second = asyncio.create_task(group.add(2))
    await asyncio.sleep(0)  # both rows queued, the commit not yet run
    first.cancel()
    await second
    assert written == [[1, 2]]
    with pytest.raises(asyncio.CancelledError):
        await first
