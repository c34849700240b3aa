"""The Maildir outbox: one durable, parseable file per message, in a folder it creates."""

from __future__ import annotations

import asyncio
import mailbox
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from digest.delivery.outbox import MaildirTransport
from digest.delivery.transport import Outcome, Outgoing

pytestmark = pytest.mark.asyncio


def messages(n: int) -> list[Outgoing]:
    return [Outgoing(key=f"r{i}@example.org", sender="digest@example.org",
                     recipient=f"r{i}@example.org",
                     data=(f"From: digest@example.org\r\nTo: r{i}@example.org\r\n"
                           f"Message-ID: <{i}@example.org>\r\nSubject: Digest {i}\r\n\r\n"
                           f"Hello {i}\r\n").encode())
            for i in range(n)]


async def stream(items: list[Outgoing]) -> AsyncIterator[Outgoing]:
    for item in items:
        yield item


async def write(path: Path, items: list[Outgoing],
                stop: asyncio.Event | None = None) -> list[Outcome]:
    outcomes: list[Outcome] = []

    async def record(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if stop is not None and len(outcomes) == 1:
            stop.set()

    await MaildirTransport(path).deliver(stream(items), record, stop=stop)
    return outcomes


async def test_each_message_becomes_one_parseable_file_in_a_new_maildir(tmp_path: Path) -> None:
    outbox = tmp_path / "state" / "outbox"
    items = messages(70)  # more than one batch
    outcomes = await write(outbox, items)
    assert [(o.key, o.status, o.attempts) for o in outcomes] == [
        (m.key, "sent", 1) for m in items]
    box = mailbox.Maildir(outbox, create=False)
    by_id = {m["Message-ID"]: m for m in box}
    assert len(box) == len(by_id) == 70
    first = by_id["<0@example.org>"]
    assert first["Delivered-To"] == "r0@example.org"
    assert first["Return-Path"] == "<digest@example.org>"
    assert first.get_payload() == "Hello 0\n"
    assert list((outbox / "tmp").iterdir()) == []


async def test_each_outcome_names_its_file(tmp_path: Path) -> None:
    outcomes = await write(tmp_path / "outbox", messages(3))
    files = [Path(o.reply.removeprefix("written to ")) for o in outcomes]
    assert len(set(files)) == 3
    for outcome, file in zip(outcomes, files, strict=True):
        assert file.parent == tmp_path / "outbox" / "new"
        assert f"To: {outcome.key}" in file.read_text()


async def test_a_second_run_adds_files_and_overwrites_none(tmp_path: Path) -> None:
    await write(tmp_path / "outbox", messages(5))
    await write(tmp_path / "outbox", messages(5))
    assert len(list((tmp_path / "outbox" / "new").iterdir())) == 10


async def test_stop_ends_the_run_early_with_every_written_file_recorded(
        tmp_path: Path) -> None:
    stop = asyncio.Event()
    outcomes = await write(tmp_path / "outbox", messages(500), stop)
    written = list((tmp_path / "outbox" / "new").iterdir())
    assert 1 <= len(outcomes) < 500
    assert len(written) == len(outcomes)


async def test_an_envelope_address_with_a_line_break_is_failed(tmp_path: Path) -> None:
    bad = Outgoing(key="x", sender="digest@example.org",
                   recipient="x@example.org\nX-Injected: yes", data=b"Subject: x\r\n\r\nx\r\n")
    outcomes = await write(tmp_path / "outbox", [bad, *messages(1)])
    assert [o.status for o in outcomes] == ["failed", "sent"]
    assert len(list((tmp_path / "outbox" / "new").iterdir())) == 1


async def test_the_outbox_keeps_up_with_a_large_list(tmp_path: Path) -> None:
    # ~3000 messages/s on an idle ext4 disk; the bound is loose so that a machine busy
    # with fsyncs of its own still passes: it catches gross regressions only
    items = messages(500)
    started = time.monotonic()
    outcomes = await write(tmp_path / "outbox", items)
    elapsed = time.monotonic() - started
    assert len(outcomes) == 500
    assert elapsed < 5.0, f"{500 / elapsed:.0f} messages/s"
