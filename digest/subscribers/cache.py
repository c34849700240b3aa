"""The subscribers file's last reading, kept in the state folder, so a file is parsed once.

Every `digest send` reads the list at start, and at 20,000 subscribers the parse is about
0.45 CPU s of a sender's 0.8 s start: several senders started together on one machine, the
daemon's every send and each web worker paid it again for the same bytes. The reading is
kept (marshal, as the parse cache's snapshot) under a key of all it depends on: the file's
bytes (SHA-256), its path (problems name it), the node limit and the parser's own source (a
new digest reads again). The posts' tags are not in it: the warnings about tags no post
has are made from it each time (load.checked).

One process parses while the others wait on `subscribers.lock` for its result, up to
LOCK_SECONDS; after that they parse alone. A cache that is missing, damaged or of another
key is simply not used; one that cannot be written is skipped (the next start parses).
"""

from __future__ import annotations

import hashlib
import logging
import marshal
from pathlib import Path
from typing import Any

from ..config import Limits
from ..errors import OutputError, Problem, StateError
from ..state.files import private_folder
from ..state.locks import waited
from ..util.writer import write_if_changed
from . import load
from .load import Entries, Packed, read_entries

log = logging.getLogger(__name__)

CACHE = "subscribers.cache"
LOCK = "subscribers.lock"
FORMAT = 1
LOCK_SECONDS = 30.0  # a parse of the biggest file allowed takes a few seconds
SMALL = 64 * 1024  # bytes under which the parse (about 1,000 entries) costs less than the cache


def cached_entries(state: Path, path: Path, raw: bytes, limits: Limits) -> Entries:
    """read_entries(path, raw, limits), from the cache in *state* if it holds them."""
    if len(raw) < SMALL:
        return read_entries(path, raw, limits)
    key = _key(path, raw, limits)
    cache = state / CACHE
    try:
        private_folder(state)
    except StateError:  # a state folder that cannot be made fails the command elsewhere
        return read_entries(path, raw, limits)
    with waited(state / LOCK, LOCK_SECONDS):
        found = _load(cache, key, path, len(raw))
        if found is not None:
            return found
        entries = read_entries(path, raw, limits)
        try:
            write_if_changed(cache, marshal.dumps((FORMAT, key, _dumped(entries))), mode=0o600)
        except OutputError as exc:
            log.debug("%s: not kept (%s); the next start reads the file again", cache, exc)
        return entries


def _key(path: Path, raw: bytes, limits: Limits) -> bytes:
    code = Path(load.__file__).read_bytes()
    return hashlib.sha256(b"\0".join([
        hashlib.sha256(raw).digest(), hashlib.sha256(code).digest(),
        str(path).encode("utf-8", "surrogateescape"), str(limits.yaml_nodes).encode()])).digest()


def _dumped(entries: Entries) -> tuple[Any, ...]:
    problems = [(p.line, p.message, p.hint) for p in entries.problems]
    return (entries.subscribers.dumped(), problems, entries.tags, entries.count)


def _load(cache: Path, key: bytes, path: Path, size: int) -> Entries | None:
    """The entries kept in *cache* under *key*, or None (none, another key, damaged)."""
    try:
        with cache.open("rb") as file:
            data = file.read(16 * size + (1 << 20))  # bounded: a reading is smaller than its file
        value = marshal.loads(data)
        form, kept, (parts, problems, tags, count) = value
        if form != FORMAT or kept != key:
            return None
        entries = Entries(path, Packed.loaded(parts),
                          tuple(Problem(path, line, message, hint)
                                for line, message, hint in problems),
                          tags, count)
        if not isinstance(count, int) or not isinstance(tags, dict) or not all(
                isinstance(p.line, int | None) and isinstance(p.message, str)
                and isinstance(p.hint, str) for p in entries.problems) or not all(
                isinstance(f, str) and isinstance(t, str) and isinstance(line, int)
                and isinstance(uses, int) for f, (t, line, uses) in tags.items()):
            raise TypeError("not a reading")
        return entries
    except FileNotFoundError:
        return None
    except (OSError, EOFError, ValueError, TypeError) as exc:
        log.debug("%s: not used (%s); the file is read again", cache, exc)
        return None
