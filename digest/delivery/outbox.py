"""The outbox: a Maildir that takes the digest's mail when no SMTP server is configured.

Each message is written to `tmp/`, fsynced, renamed into `new/`, and `new/` itself is fsynced
before the outcome is recorded, so a recorded message survives a crash. Messages are written
in small batches in a thread: one directory fsync per batch, and the event loop stays free.
Any mail reader opens the result (`mutt -f outbox`), and tests parse it with `mailbox`.

Files hold what would have gone over the wire, with LF line endings as Maildir readers
expect, under `Return-Path:` and `Delivered-To:` lines naming the envelope (as a local
delivery agent writes them), since the envelope is not otherwise visible in a file.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import DeliveryPaused
from ..util.writer import alive
from .transport import Current, Outcome, Outgoing, Record

log = logging.getLogger(__name__)

_BATCH = 64  # messages per thread hop and per directory fsync; the most a crash can repeat


class MaildirTransport:
    """Files each message into the Maildir at `path` (a `Transport`; see digest.delivery)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")
        # unique across processes and hosts sharing the folder, as the Maildir spec asks
        self._suffix = f"P{os.getpid()}R{secrets.token_hex(4)}.{host}"
        self._count = itertools.count(1)

    async def deliver(self, messages: AsyncIterator[Outgoing], record: Record, *,
                      stop: asyncio.Event | None = None,
                      current: Current | None = None) -> None:
        """Write every message; see `transport.Transport` for the contract (`current` is
        not asked: a batch is written once composed, with no server's reply to wait for)."""
        await asyncio.to_thread(self._create)
        batch: list[Outgoing] = []
        source = aiter(messages)
        # fsyncs of different files overlap in the journal: 8 threads write ~3x faster than 1
        with ThreadPoolExecutor(8, thread_name_prefix="outbox") as pool:
            while stop is None or not stop.is_set():
                try:
                    batch.append(await anext(source))
                except StopAsyncIteration:
                    break
                if len(batch) == _BATCH:
                    await self._flush(batch, record, pool)
                    batch = []
            await self._flush(batch, record, pool)

    async def _flush(self, batch: list[Outgoing], record: Record,
                     pool: ThreadPoolExecutor) -> None:
        if not batch:
            return
        try:
            paths = await asyncio.to_thread(self._write, batch, pool)
        except OSError as exc:
            where = exc.filename or self.path
            raise DeliveryPaused(f"cannot write to the outbox: {where}: {exc.strerror or exc} "
                                 "(make it writable, or free space on its disk, and send "
                                 "again: the rest goes then)", 1) from exc
        for message, path in zip(batch, paths, strict=True):
            if path is None:
                await record(Outcome(message.key, "failed", None,
                                     "envelope address contains a line break", 1))
            else:
                await record(Outcome(message.key, "sent", None, f"written to {path}", 1))

    def _create(self) -> None:
        try:
            for sub in ("tmp", "new", "cur"):
                (self.path / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise DeliveryPaused(f"cannot create the outbox {self.path}: {exc.strerror} "
                                 "(make it writable, or free space on its disk, and send "
                                 "again: the rest goes then)", 1) from exc
        clean_tmp(self.path / "tmp")

    def _write(self, batch: list[Outgoing], pool: ThreadPoolExecutor) -> list[Path | None]:
        """Write each message durably into `new/`, then fsync `new/` once for them all."""
        paths = list(pool.map(self._write_one, batch))
        fd = os.open(self.path / "new", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        log.debug("outbox: %d message(s) written to %s", len(batch), self.path / "new")
        return paths

    def _write_one(self, message: Outgoing) -> Path | None:
        if _unsafe(message):
            return None
        now = time.time()
        name = f"{int(now)}.M{int(now % 1 * 1e6)}Q{next(self._count)}{self._suffix}"
        tmp, new = self.path / "tmp" / name, self.path / "new" / name
        try:
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600),
                      "wb") as file:
                file.write(_as_file(message))
                file.flush()
                os.fsync(file.fileno())
            os.rename(tmp, new)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        return new


_WRITER = re.compile(r"P(\d+)R")  # the writer's PID in our names (see __init__)
TMP_STALE_SECONDS = 36 * 3600  # the Maildir spec's age for anyone else's tmp/ file


def clean_tmp(tmp: Path) -> list[Path]:
    """Remove from `tmp/` the files a killed writer left: ours whose PID is gone, and any
    older than 36 hours, as the Maildir spec says. A live writer's files are left alone."""
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(tmp))
    except OSError:
        return removed
    for entry in entries:
        try:
            found = _WRITER.search(entry.name)
            pid = int(found.group(1)) if found else None
            if (pid is not None and pid != os.getpid() and not alive(pid)) \
                    or now - entry.stat().st_mtime > TMP_STALE_SECONDS:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    if removed:
        log.info("outbox: removed %d message(s) left half-written in %s", len(removed), tmp)
    return removed


def _unsafe(message: Outgoing) -> bool:
    """An envelope address with a line break would forge header lines in the file."""
    return any(c in address for address in (message.sender, message.recipient) for c in "\r\n")


def _as_file(message: Outgoing) -> bytes:
    envelope = f"Return-Path: <{message.sender}>\nDelivered-To: {message.recipient}\n"
    return envelope.encode() + message.data.replace(b"\r\n", b"\n")
