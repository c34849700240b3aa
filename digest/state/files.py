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
    # An existing database is never opened here: closing any descriptor of it drops every
    # POSIX lock this process's SQLite connections hold on it (fcntl locks are per process),
    # and then another process may write over their transactions: a damaged database. So
    # only a new file is opened (O_EXCL); an existing one is changed by its path.
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        fd = None
    except OSError:
        return  # unreadable or read-only: SQLite says so, translated, when it opens it
    if fd is not None:
        try:
            if os.fstat(fd).st_uid == os.geteuid():
                os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
    else:
        try:
            found = path.stat()
            if found.st_uid == os.geteuid() and found.st_mode & 0o777 != 0o600:
                path.chmod(0o600)
        except OSError:
            pass  # gone meanwhile, or not ours: SQLite says so when it opens it
    for suffix in ("-wal", "-shm"):
        try:
            extra = path.with_name(path.name + suffix)
            if extra.stat().st_uid == os.geteuid():
                extra.chmod(0o600)
        except OSError:
            pass  # not there (yet), or not ours
