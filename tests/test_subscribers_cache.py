"""The subscribers file's reading kept in the state folder (subscribers/cache.py): what comes
out of the cache is exactly what a parse of the same bytes gives, whatever is wrong with the
cache, and a changed file is never answered from it."""

from __future__ import annotations

import dataclasses
import json
import marshal
import os
import struct
import subprocess
import sys
import tracemalloc
import zlib
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.config import DEFAULT_LIMITS
from digest.subscribers import cache
from digest.subscribers.cache import CACHE, cached_entries
from digest.subscribers.load import Entries, Packed, Subscriber, checked, read_entries

KNOWN = ("union", "analytics")


def _big(count: int = 3000, *, odd: str = "") -> bytes:
    """A list over cache.SMALL: usual entries, a few bad ones and tags no post has."""
    lines = []
    for i in range(count):
        lines.append(f"- email: person{i}@example.org\n  name: Person {i}\n")
        if i % 3 == 0:
            lines.append("  tags: [union, Analytics]\n")
        elif i % 3 == 1:
            lines.append("  tags: unoin\n  exclude_tags: [internship]\n")
        if i % 500 == 7:
            lines.append("  tgas: [union]\n")  # a problem: the entry is skipped
    lines.append(odd)
    raw = "".join(lines).encode()
    assert len(raw) >= cache.SMALL
    return raw


def _same(a: Entries, b: Entries) -> None:
    assert (a.path, a.problems, a.tags, a.count) == (b.path, b.problems, b.tags, b.count)
    assert list(a.subscribers) == list(b.subscribers)
    assert [a.subscribers.line_at(i) for i in range(len(a.subscribers))] == \
        [b.subscribers.line_at(i) for i in range(len(b.subscribers))]
    first: dict[str, Any] = {}
    for sub in b.subscribers:
        first.setdefault(sub.key, sub)
    assert all(a.subscribers.find(key) == sub for key, sub in first.items())
    assert a.subscribers.find("nobody@example.invalid") is None


def test_a_kept_reading_is_the_parse_of_the_same_bytes(tmp_path: Path) -> None:
    path, raw = tmp_path / "subscribers.yaml", _big()
    fresh = read_entries(path, raw, DEFAULT_LIMITS)
    first = cached_entries(tmp_path / "state", path, raw, DEFAULT_LIMITS)
    assert (tmp_path / "state" / CACHE).is_file()
    assert (tmp_path / "state" / CACHE).stat().st_mode & 0o777 == 0o600
    again = cached_entries(tmp_path / "state", path, raw, DEFAULT_LIMITS)
    _same(first, fresh)
    _same(again, fresh)
    assert len(fresh.problems) == 6 and fresh.count == 3000
    # the warnings are made from it with the posts' tags of the moment
    assert [w.message for w in checked(again, KNOWN).warnings] == [
        "no post has the tag 'unoin' (used by 998 entries, still served)",
        "no post has the tag 'internship' (used by 998 entries, still served)"]
    assert len(checked(again, ("union", "analytics", "unoin", "internship")).warnings) == 0


def test_the_finder_index_is_kept_with_the_reading(tmp_path: Path) -> None:
    """A sender that loads the reading finds subscribers by key without sorting an index of
    all of them again (18 ms of each start at 20,000, a second at a million)."""
    path, raw = tmp_path / "subscribers.yaml", _big()
    made = cached_entries(tmp_path / "state", path, raw, DEFAULT_LIMITS).subscribers
    loaded = cached_entries(tmp_path / "state", path, raw, DEFAULT_LIMITS).subscribers
    assert isinstance(made, Packed) and isinstance(loaded, Packed)
    assert loaded._index is not None  # kept, not made again on the first find
    assert loaded._index == made.finder_index()
    assert loaded.find("person2999@example.org") == made.find("person2999@example.org")


def test_the_finder_index_is_sorted_without_holding_every_number_at_once() -> None:
    """Sorted a 256th at a time, it is the one sort of every number, and its peak is the
    arrays' 1.6 MB at 100,000 where one sort of Python ints took 5.2 MB (40 MB at a million,
    on top of the first send's peak, which the million bench saw)."""
    people = Packed(Subscriber(f"User{i}@Example{i % 97}.org", None, None)
                    for i in range(100_000))
    tracemalloc.start()
    try:
        index = people.finder_index()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert index == array("Q", sorted(zlib.crc32(k.encode()) << 32 | i
                                      for i, k in enumerate(people.keys())))
    assert peak < 2_500_000
    assert people.find("user99999@example89.org") == people[99_999]


def test_an_index_that_points_past_the_list_finds_nothing_there() -> None:
    """A finder index is only a way in: a position past the list is passed over, never an
    IndexError, and a key is always checked against the subscriber found."""
    people = Packed([Subscriber(f"p{i}@example.org", None, None) for i in range(3)])
    blob, ends, choices, lines, pairs = people.parts()
    wrong = array("Q", [(zlib.crc32(b"p1@example.org") << 32) | 7, 1 << 33, 5])
    forged = Packed.adopt(blob, ends, choices, lines, pairs, array("Q", sorted(wrong)))
    assert forged.find("p1@example.org") is None
    assert forged.find("p0@example.org") is None
    with pytest.raises(ValueError):
        Packed.adopt(blob, ends, choices, lines, pairs, array("Q", [1, 2]))


def test_a_changed_file_is_read_again_even_at_the_same_size(tmp_path: Path) -> None:
    path, state = tmp_path / "subscribers.yaml", tmp_path / "state"
    raw = _big()
    cached_entries(state, path, raw, DEFAULT_LIMITS)
    changed = raw.replace(b"person42@example.org", b"person42@example.net")
    assert len(changed) == len(raw)
    found = cached_entries(state, path, changed, DEFAULT_LIMITS)
    assert found.subscribers.find("person42@example.net") is not None
    assert found.subscribers.find("person42@example.org") is None
    # so is the same file under another name (problems name it), or read with other limits
    other = tmp_path / "other.yaml"
    assert cached_entries(state, other, changed, DEFAULT_LIMITS).problems[0].path == other
    tight = dataclasses.replace(DEFAULT_LIMITS, yaml_nodes=5)
    fresh = read_entries(other, changed, tight)
    assert fresh.problems != found.problems
    _same(cached_entries(state, other, changed, tight), fresh)


def _rewritten(data: bytes, change: Callable[[list[Any]], None]) -> bytes:
    """The cache file *data* with its header changed by *change* (the payload as it was)."""
    start = len(cache.MAGIC) + 8
    (length,) = struct.unpack("<Q", data[len(cache.MAGIC):start])
    header = list(marshal.loads(data[start:start + length]))
    change(header)
    new = marshal.dumps(tuple(header))
    return cache.MAGIC + struct.pack("<Q", len(new)) + new + data[start + length:]


def _shifted(header: list[Any]) -> None:
    sizes = header[1]
    header[1] = [sizes[0], sizes[1] - 8, sizes[2] + 8, *sizes[3:]]  # one address fewer, apart


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "garbage": lambda data: os.urandom(len(data)),
    "truncated": lambda data: data[:len(data) // 2],
    "empty": lambda data: b"",
    "a flipped bit in an address": lambda data: data[:-5000] + bytes([data[-5000] ^ 4])
    + data[-4999:],
    "a header length past the end": lambda data: cache.MAGIC + struct.pack("<Q", 1 << 40)
    + data[len(cache.MAGIC) + 8:],
    "another header shape": lambda data: _rewritten(data, lambda h: h.pop()),
    "tags of the wrong types": lambda data: _rewritten(
        data, lambda h: h.__setitem__(4, {"x": (1, 2, 3)})),
    "the arrays apart": lambda data: _rewritten(data, _shifted),
    "sizes that do not add up": lambda data: _rewritten(
        data, lambda h: h.__setitem__(1, [n + 1 for n in h[1]])),
    "the finder index one short": lambda data: _rewritten(
        data, lambda h: h.__setitem__(1, [*h[1][:3], h[1][3] + 8, h[1][4] - 8])),
    "half an item": lambda data: _rewritten(
        data, lambda h: h.__setitem__(1, [h[1][0] + 1, h[1][1] - 1, *h[1][2:]])),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_cache_is_not_used_and_is_replaced(tmp_path: Path, damage: str) -> None:
    path, state, raw = tmp_path / "subscribers.yaml", tmp_path / "state", _big()
    fresh = read_entries(path, raw, DEFAULT_LIMITS)
    cached_entries(state, path, raw, DEFAULT_LIMITS)
    kept = state / CACHE
    data = kept.read_bytes()
    kept.write_bytes(DAMAGE[damage](data))
    _same(cached_entries(state, path, raw, DEFAULT_LIMITS), fresh)
    assert kept.read_bytes() == data  # the good reading is back


def test_a_state_folder_that_cannot_hold_it_costs_only_the_parse(tmp_path: Path) -> None:
    path, raw = tmp_path / "subscribers.yaml", _big()
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    _same(cached_entries(blocked, path, raw, DEFAULT_LIMITS),
          read_entries(path, raw, DEFAULT_LIMITS))


_entry = st.builds(
    lambda user, name, tags, bad: (f"- email: {user}@example.org\n"
                                   + (f"  name: {name}\n" if name else "")
                                   + (f"  tags: [{', '.join(tags)}]\n" if tags else "")
                                   + ("  colour: blue\n" if bad else "")),
    st.sampled_from(["ana", "bob", "Ana", "carol", "dan.e", "x" * 70]),
    st.one_of(st.none(), st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")),
                                 max_size=8).map(lambda n: json.dumps(n, ensure_ascii=False))),
    st.lists(st.sampled_from(["union", "Union", "remote", "rémote", "2024"]), max_size=3),
    st.booleans())


@given(st.lists(_entry, max_size=12))
@settings(max_examples=200, deadline=None)
def test_any_reading_comes_back_from_the_cache_as_it_went_in(
        tmp_path_factory: pytest.TempPathFactory, entries: list[str]) -> None:
    state = tmp_path_factory.mktemp("state")
    path, raw = Path("subscribers.yaml"), "".join(entries).encode()
    fresh = read_entries(path, raw, DEFAULT_LIMITS)
    cache.SMALL, small = 0, cache.SMALL
    try:
        cached_entries(state, path, raw, DEFAULT_LIMITS)
        assert (state / CACHE).is_file()
        _same(cached_entries(state, path, raw, DEFAULT_LIMITS), fresh)
    finally:
        cache.SMALL = small


TOGETHER = """
import sys, time
from pathlib import Path
from digest.config import DEFAULT_LIMITS
from digest.subscribers import cache, load
parsed = []
real = load.read_entries
def counted(*args):
    parsed.append(1)
    return real(*args)
cache.read_entries = counted
raw = Path(sys.argv[1]).read_bytes()
while not Path(sys.argv[3]).exists():
    time.sleep(0.001)
found = cache.cached_entries(Path(sys.argv[2]), Path(sys.argv[1]), raw, DEFAULT_LIMITS)
print(len(parsed), len(found.subscribers))
"""


def test_senders_started_together_parse_the_file_once(tmp_path: Path) -> None:
    """One parses under the lock; the others wait for its reading instead of doing it too."""
    path = tmp_path / "subscribers.yaml"
    path.write_bytes(_big(6000))
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", TOGETHER, str(path), str(tmp_path / "state"),
                               str(go)], stdout=subprocess.PIPE, text=True) for _ in range(4)]
    go.touch()
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert sorted(outs) == [["0", "5988"]] * 3 + [["1", "5988"]]
