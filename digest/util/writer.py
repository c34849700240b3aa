"""Files into the output folder: atomically, and only when the bytes differ.

An unchanged feed keeps its mtime, so HTTP caches (ETag/Last-Modified) and feed readers
are not disturbed; a reader never sees a half-written file because we write a temporary
file beside the target, fsync it, and rename it over. A write that fails (full disk,
read-only folder) removes its temporary file and raises errors.OutputError naming the file.

A process killed mid-write leaves its temporary file behind: its name carries the writer's
PID (`.feed.xml.PID.RANDOM.tmp`), so the next start removes those of dead processes
(clean_stale) without touching a write another live process has under way.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import OutputError

TMP_SUFFIX = ".tmp"
UNNAMED_STALE_SECONDS = 3600  # a temporary file with no PID in its name: stale after this


def write_if_changed(path: Path, data: bytes, *, mode: int = 0o644) -> bool:
    """Write *data* to *path* atomically unless it already holds exactly that; True if written."""
    return bool(write_files([(path, data)], mode=mode))


def write_files(files: Iterable[tuple[Path, bytes]], *, mode: int = 0o644) -> list[Path]:
    """write_if_changed for many files; each folder is synced once, after all its files."""
    written = [path for path, data in files if _replace_if_changed(path, data, mode)]
    for folder in dict.fromkeys(path.parent for path in written):
        try:
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise OutputError(folder, exc) from exc
    return written


NAME_MAX = 255  # bytes in one file name (ext4, XFS, btrfs, tmpfs, APFS)
_RANDOM = 8  # the characters mkstemp puts between the prefix and the suffix


def tmp_prefix(path: Path) -> str:
    """The start of a temporary file's name for *path*: clean_stale reads the PID in it.

    The copy of the name is cut so that the temporary name fits wherever the real one does:
    a feed named for a long tag may use almost all of a name's 255 bytes itself.
    """
    pid = f".{os.getpid()}."
    room = NAME_MAX - len(".") - len(pid) - _RANDOM - len(TMP_SUFFIX)
    name = path.name.encode("utf-8", "surrogateescape")[:room]
    return f".{name.decode('utf-8', 'ignore')}{pid}"


def _replace_if_changed(path: Path, data: bytes, mode: int) -> bool:
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise OutputError(path, exc) from exc
    import tempfile  # loaded already whenever a feed is made (feedgen, jinja2 import it)

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=tmp_prefix(path), suffix=TMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        raise OutputError(path, exc) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputError(path, exc) from exc
        raise
    return True


def alive(pid: int) -> bool:
    """Whether a process with this PID exists (on this host)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's
    return True


def stale(name: str, mtime: float, now: float) -> bool:
    """Whether a temporary file so named was left by a writer that is gone."""
    if not (name.startswith(".") and name.endswith(TMP_SUFFIX)):
        return False
    parts = name[:-len(TMP_SUFFIX)].rsplit(".", 2)
    if len(parts) == 3 and parts[1].isdigit():
        return int(parts[1]) != os.getpid() and not alive(int(parts[1]))
    return now - mtime > UNNAMED_STALE_SECONDS  # an older digest's name, without the PID


def clean_stale(folder: Path, *, recursive: bool = True) -> list[Path]:
    """Remove the temporary files that killed writers left in *folder*; the paths removed."""
    import time

    now = time.time()
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed  # not there yet, or unreadable: the write itself will say so
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                if recursive:
                    removed += clean_stale(Path(entry.path))
            elif entry.name.endswith(TMP_SUFFIX) and stale(
                    entry.name, entry.stat(follow_symlinks=False).st_mtime, now):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue  # gone meanwhile, or not ours to remove
    return removed
