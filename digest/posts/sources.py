"""Where the entries of feed sources live as post files, and how the reader finds them.

A feed source's entries are written (poll.py) as post files under the state folder,
state/sources/NAME/posts/DATE-SLUG.html, and read by the same reader, parse cache, index,
renderer and entry ids as the posts folder's files. Their key in all of these is the file's
absolute path, where a posts folder file's key is relative: the two can never collide, and
`root / key` (pathlib) finds either file without a second root to carry around. The one
exception is the shared state's entry ids (shared_key): there an entry goes by its source and
file name, so machines whose state folders differ agree on its id.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config
    from ..state.store import Stats

SOURCES_FOLDER = "sources"


def is_source_key(key: str) -> bool:
    """Whether a post key is a feed source's entry (absolute) or a posts folder file."""
    return key.startswith("/")


SHARED_PREFIX = "source:"


def shared_key(key: str) -> str:
    """The key a post's entry id is kept under in the shared state: a posts folder file's
    own; a source entry's `source:NAME/FILE`, not its absolute path, which depends on where
    each machine keeps its state folder (two machines would give one entry two ids)."""
    if not is_source_key(key):
        return key
    parts = PurePosixPath(key).parts
    if len(parts) >= 5 and parts[-4] == SOURCES_FOLDER and parts[-2] == "posts":
        return f"{SHARED_PREFIX}{parts[-3]}/{parts[-1]}"
    return key


def source_folder(state: Path, name: str) -> Path:
    return state / SOURCES_FOLDER / name


def posts_of(state: Path, name: str) -> Path:
    """The folder of one source's entries, as post files."""
    return source_folder(state, name) / "posts"


def source_stats(config: Config) -> Stats:
    """(size, mtime_ns) of every entry file of every configured source, by absolute path.

    Only the sources in the config: a source removed from it is unpublished at the next
    build, as a deleted post file is.
    """
    found: Stats = {}
    for source in config.sources:
        folder = posts_of(config.state, source.name)
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:  # never fetched yet
            continue
        for entry in entries:
            if entry.name.endswith(".html") and entry.is_file(follow_symlinks=False):
                st = entry.stat(follow_symlinks=False)
                found[entry.path] = (st.st_size, st.st_mtime_ns)
    return found
