"""Files into the output folder: atomically, and only when the bytes differ.

An unchanged feed keeps its mtime, so HTTP caches (ETag/Last-Modified) and feed readers
are not disturbed; a reader never sees a half-written file because we write a temporary
file beside the target, fsync it, and rename it over.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write *data* to *path* atomically unless it already holds exactly that; True if written."""
    return bool(write_files([(path, data)]))


def write_files(files: Iterable[tuple[Path, bytes]]) -> list[Path]:
    """write_if_changed for many files; each folder is synced once, after all its files."""
    written = [path for path, data in files if _replace_if_changed(path, data)]
    for folder in dict.fromkeys(path.parent for path in written):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return written


def _replace_if_changed(path: Path, data: bytes) -> bool:
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    import tempfile  # loaded already whenever a feed is made (feedgen, jinja2 import it)

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True
