"""The subscribers file's last reading, kept in the state folder, so a file is parsed once.

Every `digest send` reads the list at start, and at 20,000 subscribers the parse is about
0.45 CPU s of a sender's 0.8 s start: several senders started together on one machine, the
daemon's every send and each web worker paid it again for the same bytes. The reading is
kept under a key of all it depends on: the file's bytes (SHA-256), its path (problems name
it), the node limit and the parser's own source (a new digest reads again). The posts' tags
are not in it: the warnings about tags no post has are made from it each time
(load.checked).

The file: MAGIC, the length of a marshal header (key, the parts' sizes, the choices of tags,
the problems, a BLAKE2 digest of the rest), then Packed's blob and arrays as they are in
memory, written from them and read into them without a copy (56 MB at a million
subscribers), and the index `Packed.find` searches (8 bytes a subscriber; sorting it again
was 18 ms of each sender's start at 20,000, a second at a million). A cache that is
missing, damaged (its size or digest is wrong) or of another key is simply not used; one
that cannot be written is skipped (the next start parses).

One process parses while the others wait on `subscribers.lock` for its result, up to
LOCK_SECONDS; after that they parse alone.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import marshal
import os
import struct
import tempfile
from array import array
from pathlib import Path
from typing import Any

from ..config import Limits
from ..errors import Problem, StateError
from ..state.files import private_folder
from ..state.locks import waited
from ..util.writer import TMP_SUFFIX, tmp_prefix
from . import load
from .load import Entries, Packed, read_entries

log = logging.getLogger(__name__)

CACHE = "subscribers.cache"
LOCK = "subscribers.lock"
MAGIC = b"digest subscribers cache 3\n"
LOCK_SECONDS = 30.0  # a parse of the biggest file allowed takes a few seconds
SMALL = 64 * 1024  # bytes under which the parse (about 1,000 entries) costs less than the cache
_HEADER_MAX = 1 << 26  # a header is the problems and choices: far under this
_LENGTH = struct.Struct("<Q")


def cached_entries(state: Path, path: Path, raw: bytes, limits: Limits) -> Entries:
    """read_entries(path, raw, limits), from the cache in *state* if it holds them."""
    if len(raw) < SMALL:
        return read_entries(path, raw, limits)
    try:
        private_folder(state)
    except StateError:  # a state folder that cannot be made fails the command elsewhere
        return read_entries(path, raw, limits)
    key = _key(path, raw, limits)
    cache = state / CACHE
    with waited(state / LOCK, LOCK_SECONDS):
        found = _load(cache, key, path)
        if found is not None:
            return found
        entries = read_entries(path, raw, limits)
        try:
            _save(cache, key, entries)
        except OSError as exc:
            log.debug("%s: not kept (%s); the next start reads the file again", cache, exc)
        return entries


@functools.cache
def _parser_digest() -> bytes:
    """The parser's own source, read once a process: a new digest reads the file again."""
    return hashlib.sha256(Path(load.__file__).read_bytes()).digest()


def _key(path: Path, raw: bytes, limits: Limits) -> bytes:
    return hashlib.sha256(b"\0".join([
        hashlib.sha256(raw).digest(), _parser_digest(),
        str(path).encode("utf-8", "surrogateescape"), str(limits.yaml_nodes).encode()])).digest()


def _arrays(entries: Entries) -> tuple[list[memoryview], list[Any]]:
    packed = entries.subscribers
    blob, ends, choices, lines, pairs = packed.parts()
    return [memoryview(blob), *(memoryview(a).cast("B") for a in (
        ends, choices, lines, packed.finder_index()))], pairs


def _save(cache: Path, key: bytes, entries: Entries) -> None:
    """Write the cache beside itself and rename it into place (no fsync: a torn file is
    told by its size and digest, and only costs a parse)."""
    views, pairs = _arrays(entries)
    digest = hashlib.blake2b(digest_size=32)
    for view in views:
        digest.update(view)
    header = marshal.dumps((key, [len(v) for v in views], pairs,
                            [(p.line, p.message, p.hint) for p in entries.problems],
                            entries.tags, entries.count, digest.digest()))
    fd, tmp = tempfile.mkstemp(prefix=tmp_prefix(cache), suffix=TMP_SUFFIX, dir=cache.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(MAGIC + _LENGTH.pack(len(header)) + header)
            for view in views:
                file.write(view)
        os.chmod(tmp, 0o600)
        os.replace(tmp, cache)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load(cache: Path, key: bytes, path: Path) -> Entries | None:
    """The entries kept in *cache* under *key*, or None (none, another key, damaged)."""
    try:
        with cache.open("rb") as file:
            return _read(file, key, path, os.fstat(file.fileno()).st_size)
    except FileNotFoundError:
        return None
    except (OSError, EOFError, ValueError, TypeError, struct.error) as exc:
        log.debug("%s: not used (%s); the file is read again", cache, exc)
        return None


def _read(file: io.BufferedReader, key: bytes, path: Path, size: int) -> Entries | None:
    if file.read(len(MAGIC)) != MAGIC:
        raise ValueError("not a subscribers cache of this form")
    (length,) = _LENGTH.unpack(file.read(_LENGTH.size))
    if length > min(size, _HEADER_MAX):
        raise ValueError("a header longer than the file")
    kept, sizes, pairs, problems, tags, count, digest = marshal.loads(file.read(length))
    if kept != key:
        return None
    blob_size, *_ = sizes
    if not all(isinstance(n, int) and n >= 0 for n in sizes) or sum(sizes) != size - (
            len(MAGIC) + _LENGTH.size + length):
        raise ValueError("the parts' sizes do not add up to the file's")
    blob = bytearray(blob_size)  # each part read into its place: no copy of 56 MB
    parts: list[Any] = [blob]
    for typecode, n in zip("qIIQ", sizes[1:], strict=True):
        items, odd = divmod(n, array(typecode).itemsize)
        if odd:
            raise ValueError("an array's size is not a whole number of items")
        parts.append(array(typecode, [0]) * items)
    checked = hashlib.blake2b(digest_size=32)
    for part in parts:
        view = memoryview(part).cast("B")
        if file.readinto(view) != len(view):
            raise EOFError("the cache ends early")
        checked.update(view)
    if checked.digest() != digest:
        raise ValueError("its digest does not match its bytes")
    blob, ends, choices, lines, index = parts
    entries = Entries(path, Packed.adopt(blob, ends, choices, lines, pairs, index),
                      tuple(Problem(path, line, message, hint)
                            for line, message, hint in problems), tags, count)
    if not isinstance(count, int) or not isinstance(tags, dict) or not all(
            isinstance(p.line, int | None) and isinstance(p.message, str)
            and isinstance(p.hint, str) for p in entries.problems) or not all(
            isinstance(f, str) and isinstance(t, str) and isinstance(line, int)
            and isinstance(uses, int) for f, (t, line, uses) in tags.items()):
        raise TypeError("not a reading")
    return entries
