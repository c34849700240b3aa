"""The files the daemon watches, and what a change to them means (watchfiles: inotify on Linux).

Two watches, because they differ in depth. The posts folder is watched recursively, and only
changes to files Jekyll would read count (not dot, underscore or '#' files, nor editor
backups). config.yaml, the site's _config.yml and the subscribers file are watched through
their folders, not recursively (those folders often hold the output and the state database,
whose writes must not wake anything), and only those three names count. Watching the folder
rather than the file also sees an editor's save-by-rename.

A change set arrives once a burst of writes has been quiet for a step (50 ms for posts), so
a post saved in several writes, or a `git pull` of many posts, is one rebuild, not many.

`changes` sets its *ready* event once the inotify watches exist: from then on every change is
seen, so a scan made after *ready* and the watch together miss nothing (the daemon scans
again then, for what was written between its start-up build and the watch).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from watchfiles import Change, awatch

from ..posts.scan import skipped

# The watching thread wakes every `step` to look for changes (and for the stop event), so the
# step is both the quiet time that ends a burst of changes and most of the idle cost.
POSTS_STEP_MS = 50  # a new post reaches the feeds within a second: worth 20 wake-ups a second
FILES_STEP_MS = 500  # an edited config can wait half a second
DEBOUNCE_MS = 1_600  # the longest a steady stream of changes is held before it is reported


def post_filter(root: Path) -> Callable[[Change, str], bool]:
    """Whether a changed path under the posts folder is (or was) one Jekyll would read."""

    def wanted(_change: Change, path: str) -> bool:
        try:
            parts = Path(path).relative_to(root).parts
        except ValueError:
            return False
        return bool(parts) and not any(map(skipped, parts))

    return wanted


@dataclass(frozen=True)
class Watch:
    """Folders to watch, how deep, and which paths in them count (`files`, or else the posts
    below the first folder); equal watches need no restart when the config is reloaded."""

    folders: tuple[Path, ...]
    recursive: bool
    files: frozenset[Path] | None = None
    step_ms: int = POSTS_STEP_MS

    def wanted(self) -> Callable[[Change, str], bool]:
        if self.files is None:
            return post_filter(self.folders[0])
        files = self.files
        return lambda _change, path: Path(path) in files


def posts_watch(posts: Path) -> Watch:
    return Watch((posts,), True)


def files_watch(files: Collection[Path]) -> Watch:
    folders = tuple(sorted({f.parent for f in files if f.parent.is_dir()}))
    return Watch(folders, False, frozenset(files), FILES_STEP_MS)


async def changes(watch: Watch, stop: asyncio.Event,
                  ready: asyncio.Event | None = None) -> AsyncIterator[list[Path]]:
    """The paths that changed, burst by burst, sorted, until *stop* is set; *ready* is set
    once the watches are in place (or have failed: the first step then raises)."""
    if not watch.folders:
        if ready is not None:
            ready.set()
        await stop.wait()
        return
    found_changes = awatch(*watch.folders, watch_filter=watch.wanted(), stop_event=stop,
                           recursive=watch.recursive, step=watch.step_ms, debounce=DEBOUNCE_MS)
    # awatch sets up its watches (RustNotify) in the first step of its first __anext__, before
    # it awaits anything; one turn of the loop after that step is scheduled, they exist
    first = asyncio.ensure_future(anext(found_changes))
    try:
        await asyncio.sleep(0)
        if ready is not None:
            ready.set()
        try:
            found = await first
        except StopAsyncIteration:
            return
    except BaseException:
        first.cancel()
        raise
    while True:
        yield sorted({Path(path) for _change, path in found})
        try:
            found = await anext(found_changes)
        except StopAsyncIteration:
            return
