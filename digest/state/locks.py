"""Locks under the state folder, so two processes never do the same work on one state database.

An exclusive `flock` on a file that also holds the holder's PID (for the message the second
process prints): `daemon.lock`, held by `digest run` for its whole life: one daemon per state
folder. Sends take no lock: several serve one run together, each claiming its own leased
batches of deliveries in the shared state (delivery/send.py).

flock locks belong to the open file, so the kernel drops them when the holder exits or is
killed: a stale lock cannot outlive its process, whatever the PID written in the file says.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from ..errors import Busy, StateError
from .files import private_folder

DAEMON_LOCK = "daemon.lock"


def holder(path: Path) -> int | None:
    """The PID written in a lock file, or None if there is none (free, or never taken)."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


@contextmanager
def held(path: Path, busy: str) -> Iterator[None]:
    """Hold an exclusive lock on *path*, or raise Busy at once with the message *busy*
    (in which `{pid}` stands for the holder's PID)."""
    private_folder(path.parent)
    # no O_TRUNC: the PID in the file belongs to whoever holds the lock until we have it
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StateError(path, f"the lock file cannot be opened ({exc.strerror})",
                         "make the state folder writable by the user running digest") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        pid = holder(path)
        raise Busy(path, pid, busy.replace("{pid}", str(pid) if pid else "unknown")) from None
    try:
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # a full disk: the lock is held all the same, only its PID is not told
        yield
    finally:
        try:
            os.ftruncate(fd, 0)  # a PID left behind would make `digest status` report a daemon
        finally:
            os.close(fd)  # and this releases the lock


@contextmanager
def waited(path: Path, seconds: float) -> Iterator[bool]:
    """Hold an exclusive lock on *path*, waiting up to *seconds* for it; yields whether it
    is held (False: the wait ran out, or there is no lock file to be had; the caller goes
    on without it). For work one process may as well do for the others (subscribers/cache.py)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        yield False
        return
    try:
        deadline = time.monotonic() + seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.01)
        yield True
    finally:
        os.close(fd)  # and this releases the lock


def daemon_lock(state: Path) -> AbstractContextManager[None]:
    return held(state / DAEMON_LOCK, "another `digest run` (PID {pid}) is already running on "
                                     f"the state folder {state}; only one may")
