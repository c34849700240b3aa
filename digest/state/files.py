"""The state folder and the database's files, private whatever the umask: they hold
subscribers' addresses (folder 0700, files 0600)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import StateError


def private_folder(folder: Path) -> None:
    """Create *folder* (and its parents) and make it 0700, whatever the umask: the state
    folder holds subscribers' addresses. Another user's folder is left as it is."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if folder.stat().st_mode & 0o777 != 0o700 and folder.stat().st_uid == os.geteuid():
            folder.chmod(0o700)
    except OSError as exc:
        raise StateError(folder, f"the state folder cannot be created ({exc.strerror})",
                         "make its parent writable by the user running digest, or point "
                         "`state:` in the config elsewhere") from exc


def private_files(path: Path) -> None:
    """The database and its -wal/-shm files 0600 (SQLite gives -wal/-shm the database's
    mode); the file is created here, empty, so it never exists with the umask's mode."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return  # unreadable or read-only: SQLite says so, translated, when it opens it
    try:
        if os.fstat(fd).st_uid == os.geteuid():
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm"):
        try:
            extra = path.with_name(path.name + suffix)
            if extra.stat().st_uid == os.geteuid():
                extra.chmod(0o600)
        except OSError:
            pass  # not there (yet), or not ours
