"""The subscribers file read into Subscribers: who gets the digest and which posts each wants.

The file is a YAML list; each entry is a mapping with `email` (required), `name`, `tags` and
`exclude_tags` (optional). `tags` and `exclude_tags` are a YAML list (`[union, analytics]`,
items may contain spaces) or one string of tags separated by commas and/or spaces
(`union, analytics` or `union analytics`), like Jekyll's string form of a post's tags.

One bad entry never stops the others: it is skipped and reported as a Problem naming its line
and the fix. Entries that are served but look wrong (a tag no post has) come back as warnings.
Only a file that cannot be used at all raises SubscribersUnreadable.

Entries are skipped rather than guessed at whenever a guess could send mail someone did not
ask for: an unknown key (a misspelt `tags` would otherwise mean "every post"), an empty `tags`,
an address that cannot be sent without SMTPUTF8, a name that could break a header.
"""

from __future__ import annotations

import bisect
import codecs
import difflib
import functools
import hashlib
import heapq
import re
import unicodedata
import zlib
from array import array
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, overload

import yaml

from ..config import DEFAULT_LIMITS, Limits
from ..errors import Problem, SubscribersUnreadable, did_you_mean
from ..posts.jekyll import ruby_to_s
from ..util.yamlsource import BoundedLoader, construct, yaml_problem

_KEYS = ("email", "name", "tags", "exclude_tags")
_SEPARATORS = re.compile(r"[\s,]+")
_ENTRY_FORM = "write each entry as '- email: ...' with optional name, tags, exclude_tags"


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One person on the list; `email` is the ASCII form that goes on the envelope.

    Slotted and without derived fields, because a list may hold 100,000 of them.
    """

    email: str  # normalised by email-validator; an IDN domain is in punycode
    name: str | None
    tags: tuple[str, ...] | None  # as written (first spelling of each); None = every post
    exclude_tags: tuple[str, ...] = ()
    line: int | None = None  # where the entry starts in the subscribers file

    @property
    def key(self) -> str:
        """Identity in the send log and the suppression list: case never makes a second person."""
        return self.email.lower()

    def wants(self, post_tags: Iterable[str]) -> bool:
        """Whether a post with *post_tags* goes to this subscriber; an exclusion always wins.

        Callers ask once per distinct tag set (compose.Composer.matches), not per subscriber.
        """
        if self.tags is None and not self.exclude_tags:
            return True
        folded = {t.casefold() for t in post_tags}
        if any(t.casefold() in folded for t in self.exclude_tags):
            return False
        return self.tags is None or any(t.casefold() in folded for t in self.tags)


_LOW = 2**32 - 1
_NO_LINE = 0  # lines count from 1: 0 stands for None (a member from the web, not the file)


def _crc(key: str) -> int:
    """The finder index's hash of a key: the same in every process, unlike hash()."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass"))


class Packed(Sequence[Subscriber]):
    """Subscribers kept as bytes and small numbers, made into Subscriber objects as they are
    read: a million of them as objects (with their address, name and line) took about 270
    bytes each; packed they take about 50.

    Each subscriber is one record in one UTF-8 blob (`email` NUL `name`: neither can hold a
    NUL, addresses are checked and names refuse control characters), the index of its
    (tags, exclude_tags) pair in a table of the distinct pairs (a list shares a few), and
    its line. Equal to any sequence of the same Subscribers, a tuple included.
    """

    __slots__ = ("_blob", "_choices", "_ends", "_index", "_lines", "_pair_index", "_pairs",
                 "_tuples")

    def __init__(self, subscribers: Iterable[Subscriber] = ()) -> None:
        self._blob = bytearray()
        self._ends = array("q")  # where each record ends in _blob
        self._choices = array("I")  # index into _pairs
        self._lines = array("I")  # _NO_LINE for None
        self._pairs: list[tuple[tuple[str, ...] | None, tuple[str, ...]]] = []
        self._pair_index: dict[tuple[tuple[str, ...] | None, tuple[str, ...]], int] = {}
        self._tuples: dict[tuple[str, ...], tuple[str, ...]] = {}  # each tag tuple once
        self._index: array[int] | None = None  # see finder_index
        for sub in subscribers:
            self.append(sub)

    def append(self, sub: Subscriber) -> None:
        """Add *sub* at the end (its tag tuples are shared with equal ones already here)."""
        index = self._pair_index.get((sub.tags, sub.exclude_tags))
        if index is None:
            index = self._new_choice(sub.tags, sub.exclude_tags)
        self._blob += sub.email.encode()
        if sub.name is not None:
            self._blob += b"\0" + sub.name.encode()
        self._ends.append(len(self._blob))
        self._choices.append(index)
        self._lines.append(_NO_LINE if sub.line is None else sub.line)
        self._index = None

    def _new_choice(self, tags: tuple[str, ...] | None, exclude: tuple[str, ...]) -> int:
        """Add (tags, exclude_tags) to the table of choices, its tuples shared with equal ones
        of other choices; its index."""
        shared = self._tuples
        pair = (None if tags is None else shared.setdefault(tags, tags),
                shared.setdefault(exclude, exclude))
        index = len(self._pairs)
        self._pair_index.setdefault(pair, index)
        self._pairs.append(pair)
        return index

    def __len__(self) -> int:
        return len(self._ends)

    @overload
    def __getitem__(self, index: int) -> Subscriber: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Subscriber]: ...

    def __getitem__(self, index: int | slice) -> Subscriber | Sequence[Subscriber]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(len(self))))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("subscriber index out of range")
        return self._made(index)

    def __iter__(self) -> Iterator[Subscriber]:
        return (self._made(i) for i in range(len(self)))

    def _made(self, i: int) -> Subscriber:
        start = self._ends[i - 1] if i else 0
        record = self._blob[start:self._ends[i]].decode()
        email, _, name = record.partition("\0")
        tags, exclude = self._pairs[self._choices[i]]
        return Subscriber(email, name or None, tags, exclude, self.line_at(i))

    def key_at(self, i: int) -> str:
        """The key (Subscriber.key) of the *i*-th subscriber, without making the Subscriber."""
        return self.email_at(i).lower()

    def email_at(self, i: int) -> str:
        """The address (Subscriber.email) of the *i*-th subscriber."""
        start = self._ends[i - 1] if i else 0
        return self._blob[start:self._ends[i]].partition(b"\0")[0].decode()

    def choice_at(self, i: int) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
        """(tags, exclude_tags) of the *i*-th subscriber: one tuple shared by all who chose
        alike."""
        return self._pairs[self._choices[i]]

    def line_at(self, i: int) -> int | None:
        line = self._lines[i]
        return None if line == _NO_LINE else line

    def fingerprint(self) -> bytes:
        """A digest of every record (address and name) in order: two lists with the same
        hold the same addresses. Hashes the blob as it is (1 ms at 20,000) instead of
        walking the subscribers."""
        digest = hashlib.blake2b(digest_size=16, person=b"digest-packed")
        digest.update(self._ends)
        digest.update(self._blob)
        return digest.digest()

    def keys(self) -> Iterator[str]:
        """Every subscriber's key, in order."""
        return (self.key_at(i) for i in range(len(self)))

    def find(self, key: str) -> Subscriber | None:
        """The first subscriber whose key is *key*, or None, by binary search of
        `finder_index`."""
        index = self.finder_index()
        h = _crc(key) << 32
        at = bisect.bisect_left(index, h)
        count = len(self)
        while at < len(index) and index[at] >> 32 == h >> 32:
            i = index[at] & _LOW
            if i < count and self.key_at(i) == key:
                return self._made(i)
            at += 1
        return None

    def finder_index(self) -> array[int]:
        """8 bytes a subscriber, sorted: the CRC-32 of the key and the position, in one
        number, instead of a dict of every address (~150 bytes each). Made on first use (18
        ms at 20,000, under a second at a million); a stable hash, not `hash()`, so the
        reading's cache (cache.py) keeps it and every sender that starts does not sort it
        again.

        Sorted a 256th at a time (by the hash's first byte, then each part on its own): one
        sort of every number at once held them all as Python ints, 40 MB at a million,
        which raised the first send's peak by as much when the cache made the index."""
        if self._index is None:
            parts = [array("Q") for _ in range(256)]
            for i, key in enumerate(self.keys()):
                h = _crc(key)
                parts[h >> 24].append(h << 32 | i)
            index = array("Q")
            for part in parts:
                index.extend(sorted(part))
            self._index = index
        return self._index

    def joined(self, extra: Iterable[Subscriber]) -> Packed:
        """A copy with *extra* after these (this one is left as it was)."""
        both = Packed()
        both._blob, both._ends = bytearray(self._blob), array("q", self._ends)
        both._choices, both._lines = array("I", self._choices), array("I", self._lines)
        both._pairs, both._pair_index = list(self._pairs), dict(self._pair_index)
        both._tuples = dict(self._tuples)
        for sub in extra:
            both.append(sub)
        return both

    def parts(self) -> tuple[bytearray, array[int], array[int], array[int], list[Any]]:
        """Its own blob and arrays (not copies: a million subscribers' are 56 MB) and its
        table of choices, for the reading's cache (subscribers/cache.py), which writes
        them as they are; adopt() makes a Packed of them again."""
        return self._blob, self._ends, self._choices, self._lines, list(self._pairs)

    @classmethod
    def adopt(cls, blob: bytearray, ends: array[int], choices: array[int], lines: array[int],
              pairs: Any, index: array[int] | None = None) -> Packed:
        """A Packed holding these parts (parts()' form, and the finder index if kept) as its
        own; ValueError or TypeError if they do not fit together (the cache checks its bytes'
        digest first)."""
        packed = cls()
        if (ends.typecode, choices.typecode, lines.typecode) != ("q", "I", "I"):
            raise TypeError("arrays of other types")
        for tags, exclude in pairs:
            if not (tags is None or isinstance(tags, tuple)) or not isinstance(exclude, tuple) \
                    or not all(isinstance(t, str) for t in (*(tags or ()), *exclude)):
                raise TypeError("a choice of tags is not tuples of strings")
            packed._new_choice(tags, exclude)
        count = len(ends)
        if len(choices) != count or len(lines) != count or (count and (
                max(choices) >= len(packed._pairs) or ends[-1] != len(blob) or min(ends) < 0)):
            raise ValueError("the parts do not fit together")
        if index is not None and (index.typecode != "Q" or len(index) != count):
            raise ValueError("the finder index does not fit the parts")
        packed._blob, packed._ends, packed._choices, packed._lines = blob, ends, choices, lines
        packed._index = index
        return packed

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # mutable, like a list

    def __repr__(self) -> str:
        """Short: asyncio.Runner formats the main task (and so whatever its result holds)
        through repr at exit, and every subscriber written out cost 0.2 s at 20,000."""
        return f"<Packed: {len(self)} subscribers>"


@dataclass(frozen=True)
class SubscriberList:
    """What the file gave: who is served, which entries were skipped and why, what looks odd."""

    subscribers: Sequence[Subscriber]  # file order; a Packed when read from the file
    problems: tuple[Problem, ...]  # one or more per skipped entry
    warnings: tuple[Problem, ...]  # served, but worth a look


def load_subscribers(path: Path, known_tags: Collection[str],
                     limits: Limits = DEFAULT_LIMITS) -> SubscriberList:
    """Read *path* as UTF-8 (a BOM is fine) and parse it; raise SubscribersUnreadable."""
    try:
        with path.open("rb") as file:  # bounded before it is read, let alone parsed
            raw = file.read(limits.subscribers_bytes + 1)
        if len(raw) > limits.subscribers_bytes:
            raise SubscribersUnreadable(Problem(
                path, None, f"the file is over {limits.subscribers_bytes:,} bytes",
                "raise limits.subscribers_bytes in config.yaml if it really is that long"))
    except FileNotFoundError:
        raise SubscribersUnreadable(Problem(path, None, "subscribers file not found",
                                            "check 'subscribers:' in config.yaml")) from None
    except OSError as exc:
        raise SubscribersUnreadable(Problem(path, None, f"cannot read: {exc.strerror or exc}",
                                            "check the path and its permissions")) from None
    check_utf8(path, raw)
    return parse_subscribers(path, raw, known_tags, limits)


_CHUNK = 1 << 20


def check_utf8(path: Path, raw: bytes) -> None:
    """Raise SubscribersUnreadable naming the line of the first byte that is not UTF-8.

    Decoded a megabyte at a time and thrown away: the parser reads the bytes themselves,
    so a big list is never held as text besides.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(raw)
    try:
        for start in range(0, len(raw), _CHUNK):
            decoder.decode(view[start:start + _CHUNK])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        # the chunk's offset: the decoder keeps an unfinished character from the chunk before
        at = max(0, start - len(decoder.getstate()[0])) + exc.start
        line = raw.count(b"\n", 0, at) + 1
        raise SubscribersUnreadable(Problem(
            path, line, f"not UTF-8: byte 0x{raw[at]:02x} cannot be decoded",
            "save the file as UTF-8")) from None


def parse_subscribers(path: Path, text: str | bytes, known_tags: Collection[str],
                      limits: Limits = DEFAULT_LIMITS) -> SubscriberList:
    """Every usable entry of *text* (bytes: UTF-8, checked by check_utf8), in file order;
    *path* is only used to name the file.

    Tags are compared casefolded; *known_tags* (the tags posts have) only feed warnings.
    """
    return checked(read_entries(path, text, limits), known_tags)


@dataclass(frozen=True)
class Entries:
    """What the file says, before its tags are held against the posts': all a parse of the
    same bytes gives, whatever the posts (so it can be cached, subscribers/cache.py)."""

    path: Path
    subscribers: Packed  # the served entries, in file order
    problems: tuple[Problem, ...]  # one or more per skipped entry
    tags: dict[str, tuple[str, int, int]]  # folded tag → (as written, first line, uses)
    count: int  # entries in the file, served or not


def read_entries(path: Path, text: str | bytes, limits: Limits = DEFAULT_LIMITS) -> Entries:
    """The entries of *text* (see parse_subscribers), read one at a time (see _entries), so
    a 100,000-entry file never sits in memory as a YAML node tree: only the subscribers
    and each address's first line stay."""
    served = Packed()
    problems: list[Problem] = []
    seen = _Seen(served)
    email_lines = array("I")  # line of each served entry's 'email:'
    tags: dict[str, tuple[str, int, int]] = {}
    entries = 0
    for where, value, refused in _entries(path, text, limits.yaml_nodes):
        entries += 1
        if refused is not None:  # a value YAML cannot build: this entry only
            problems.append(refused)
            continue
        subscriber, found = _entry(path, where, value)
        problems.extend(found)
        if subscriber is None:
            continue
        line = where.key("email")
        key = subscriber.key
        earlier = seen.first(key)
        if earlier is not None:
            written = value["email"].strip()
            problems.append(Problem(
                path, line, f"'{written}' is already subscribed at line {email_lines[earlier]}",
                "remove one of the two entries"))
            continue
        seen.add(key, len(served))
        email_lines.append(line)
        _count_tags(where, subscriber, tags)
        served.append(subscriber)
    return Entries(path, served, tuple(problems), tags, entries)


def checked(entries: Entries, known_tags: Collection[str]) -> SubscriberList:
    """*entries* with a warning for each tag no post (of *known_tags*) has."""
    if not entries.count:
        hint = "add entries such as '- email: ana@example.org'"
        return SubscriberList((), (), (Problem(entries.path, None, "no subscribers in the file",
                                               hint),))
    known = {t.casefold(): t for t in known_tags}
    unknown = {folded: use for folded, use in entries.tags.items() if folded not in known}
    return SubscriberList(entries.subscribers, entries.problems,
                          tuple(_unknown_tags(entries.path, unknown, known)))


class _Seen:
    """The position of each key added so far, found by its hash, for telling duplicates.

    A dict of a million addresses took about 150 bytes each while the file was read; here
    the latest keys' hashes are in a small dict and the others in sorted arrays of 8 bytes
    an entry (32 bits of the hash and the position in one number), merged as they grow
    (each entry is merged about log2(entries / chunk) times). Candidates are checked
    against the address itself, so two addresses with one hash are told apart.
    """

    def __init__(self, served: Packed, chunk: int = 1 << 16) -> None:
        self._served = served
        self._chunk = chunk
        self._recent: dict[int, int] = {}  # hash -> first position, the latest keys
        self._runs: list[array[int]] = []  # sorted, longest first

    def first(self, key: str) -> int | None:
        """The position of *key*'s first entry, or None."""
        served, full = self._served, hash(key)
        at = self._recent.get(full)
        if at is not None and served.key_at(at) == key:
            return at
        high = full & _LOW
        for run in self._runs:
            i = bisect.bisect_left(run, high << 32)
            while i < len(run) and run[i] >> 32 == high:
                if served.key_at(run[i] & _LOW) == key:
                    return run[i] & _LOW
                i += 1
        if at is not None:  # another key with the same hash came first: look through
            return next((i for i in range(len(served)) if served.key_at(i) == key), None)
        return None

    def add(self, key: str, position: int) -> None:
        self._recent.setdefault(hash(key), position)
        if len(self._recent) < self._chunk:
            return
        self._runs.append(array("Q", sorted(((h & _LOW) << 32) | p
                                            for h, p in self._recent.items())))
        self._recent = {}
        while len(self._runs) > 1 and len(self._runs[-2]) <= len(self._runs[-1]):
            last, before = self._runs.pop(), self._runs.pop()
            self._runs.append(array("Q", heapq.merge(before, last)))


@dataclass(frozen=True, slots=True)
class _Where:
    """Where an entry and its keys are written (lines from 1): all that is kept of an
    entry's YAML once its value is built, for the messages about it."""

    line: int
    keys: dict[str, int]  # a key as written -> its line; the last one wins, as in the value

    @classmethod
    def of(cls, node: yaml.Node) -> _Where:
        keys = {}
        if isinstance(node, yaml.MappingNode):
            for key_node, _value in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    keys[key_node.value] = key_node.start_mark.line + 1
        return cls(node.start_mark.line + 1, keys)

    def key(self, key: str) -> int:
        """Line of *key*, or of the entry when it has no such key."""
        return self.keys.get(key, self.line)


class _EntryReader(yaml.composer.Composer):
    """PyYAML's own composer (of YAML nodes: not delivery's message Composer), composing one
    list item from its events (see _Events), so the values and lines are exactly a full
    parse's; anchors stay known from one item to the next, as in a full parse."""

    def __init__(self, loader: Any) -> None:  # the stubs leave the loaders' methods untyped
        super().__init__()
        self.resolve = loader.resolve
        self.descend_resolver = loader.descend_resolver
        self.ascend_resolver = loader.ascend_resolver

    def item(self, events: list[Any], index: int) -> yaml.Node:
        """The node of one item from all its events."""
        replay = _Events(events)
        self.check_event, self.peek_event = replay.check_event, replay.peek_event
        self.get_event = replay.get_event
        node = self.compose_node(None, index)
        assert node is not None
        return node


class _Events:
    """Recorded events handed out as the parser hands them out."""

    def __init__(self, events: list[Any]) -> None:
        self._events = events
        self._at = 0

    def check_event(self, *choices: type) -> bool:
        if self._at >= len(self._events):
            return False
        return not choices or isinstance(self._events[self._at], choices)

    def peek_event(self) -> Any:
        return self._events[self._at] if self._at < len(self._events) else None

    def get_event(self) -> Any:
        event = self.peek_event()
        self._at += 1
        return event


_PLAIN_LIST = (None, "!", "tag:yaml.org,2002:seq")
Built = tuple[_Where, Any, Problem | None]


def _entries(path: Path, text: str | bytes, max_nodes: int, *,
             direct: bool = True) -> Iterator[Built]:
    """(where, value, None) of each top-level list item, read one at a time; (where, None,
    problem) for an item whose value cannot be built (yamlsource.construct: a bad date, a
    huge number, an alias bomb): that entry is skipped, the others served.

    Raises SubscribersUnreadable (invalid YAML, a second document, not a list). An item is
    dropped once the caller moves on: composing the whole file first kept about 5 KB per
    entry alive (500 MB for 100,000 subscribers). An item of the usual form is built from
    its parser events directly (_item, half the cost), any other composed and
    constructed by PyYAML; *direct* False composes every item (the tests' reference).
    """
    loader: Any = BoundedLoader(text)
    reader = _EntryReader(loader)
    # without an anchor in the text no node is reached twice: the plain walk (as
    # load_bounded), about a third of the alias-aware one's cost per entry
    anchors = "&" in text if isinstance(text, str) else b"&" in text

    def built(node: yaml.Node) -> Built:
        try:
            return _Where.of(node), construct(loader, node, max_nodes, anchors=anchors), None
        except yaml.YAMLError as exc:
            return _Where.of(node), None, yaml_problem(path, exc)

    try:
        loader.get_event()  # stream start
        if loader.check_event(yaml.StreamEndEvent):
            return
        document = loader.get_event()
        top = loader.peek_event()
        if (isinstance(top, yaml.SequenceStartEvent) and top.anchor is None
                and top.tag in _PLAIN_LIST):
            loader.get_event()
            index = 0
            while not loader.check_event(yaml.SequenceEndEvent):
                done = _item(loader, max_nodes, direct)
                yield built(reader.item(done, index)) if isinstance(done, list) else done
                index += 1
            loader.get_event()
        else:  # anything else is one node, as before; only a tagged or anchored list is used
            yield from (built(node) for node in _composed(path, loader, reader, max_nodes))
        loader.get_event()  # document end
        if not loader.check_event(yaml.StreamEndEvent):
            raise yaml.composer.ComposerError(
                "expected a single document in the stream", document.start_mark,
                "but found another document", loader.get_event().start_mark)
    except yaml.reader.ReaderError as exc:
        raise SubscribersUnreadable(_reader_problem(path, exc, text)) from None
    except yaml.YAMLError as exc:
        raise SubscribersUnreadable(yaml_problem(path, exc)) from None
    finally:
        loader.dispose()


def _item(loader: Any, max_nodes: int, direct: bool) -> Built | list[Any]:
    """The next list item, built from its parser events as they come when it has the usual
    form: a mapping of plain keys to scalars or lists of scalars, with no anchor, alias or
    tag, each key read as text. Otherwise (or with *direct* False, or a value whose
    constructor refuses it) all the item's events, for PyYAML to compose and construct, so
    that its value, lines and refusals are exactly a full parse's."""
    get = loader.get_event
    first = get()
    events = [first]
    if (not direct or type(first) is not yaml.MappingStartEvent or first.anchor is not None
            or first.tag is not None):
        return _rest(get, events)
    value: dict[Any, Any] = {}
    keys: dict[str, int] = {}
    while True:
        key = get()
        events.append(key)
        kind = type(key)
        if kind is yaml.MappingEndEvent:
            if len(events) > max_nodes:  # then check_tree says what is wrong
                return events
            return _Where(_line(first), keys), value, None
        if kind is not yaml.ScalarEvent or _scalar(loader, key) is not key.value:
            return _rest(get, events)
        item = get()
        events.append(item)
        kind = type(item)
        if kind is yaml.ScalarEvent:
            built = _scalar(loader, item)
            if built is _UNBUILT:
                return _rest(get, events)
        elif kind is yaml.SequenceStartEvent and item.anchor is None and item.tag is None:
            built = []
            while (item := get()) and type(item) is yaml.ScalarEvent:
                events.append(item)
                built.append(_scalar(loader, item))
            events.append(item)
            if type(item) is not yaml.SequenceEndEvent or _UNBUILT in built:
                return _rest(get, events)
        else:
            return _rest(get, events)
        value[key.value] = built
        keys[key.value] = _line(key)


_START = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_END = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def _rest(get: Any, events: list[Any]) -> list[Any]:
    """*events* and the rest of the item's (libyaml itself refuses nesting past 1,000)."""
    depth = sum(isinstance(e, _START) for e in events) - sum(isinstance(e, _END) for e in events)
    while depth:
        event = get()
        events.append(event)
        if isinstance(event, _START):
            depth += 1
        elif isinstance(event, _END):
            depth -= 1
    return events


def _line(event: Any) -> int:
    """Where an event starts, from 1 (typed loosely: the stubs' mark may be None, never a
    parser's)."""
    return int(event.start_mark.line) + 1


_UNBUILT = object()  # a scalar _item leaves to PyYAML
_STR = "tag:yaml.org,2002:str"
# the first characters of the plain scalars an implicit resolver may read as other than text
_RESOLVED = frozenset(BoundedLoader.yaml_implicit_resolvers)
assert None not in _RESOLVED  # (a resolver for any first character would need every one)


def _scalar(loader: Any, event: Any) -> Any:
    """The value of a scalar event as the composer and constructor make it; _UNBUILT for
    an anchor, a tag, or a value its constructor refuses. Text needs no resolver when it is
    quoted, or plain with a first character no implicit resolver looks at (most, such as
    addresses and names)."""
    text = event.value
    if event.anchor is not None or event.tag is not None:
        return _UNBUILT
    if not event.implicit[0] or (text and text[0] not in _RESOLVED):
        return text
    tag = loader.resolve(yaml.ScalarNode, text, event.implicit)
    if tag == _STR:
        return text
    try:
        return construct(loader, yaml.ScalarNode(tag, text, event.start_mark, event.end_mark,
                                                 style=event.style))
    except yaml.YAMLError:
        return _UNBUILT


def _reader_problem(path: Path, error: yaml.reader.ReaderError, text: str | bytes) -> Problem:
    """yaml_problem for a character the reader refused; its position is an offset in the
    UTF-8 libyaml read, so the line is counted in bytes."""
    found = yaml_problem(path, error)
    source = text.encode() if isinstance(text, str) else text
    return Problem(path, source.count(b"\n", 0, error.position) + 1, found.message, found.hint)


def _composed(path: Path, loader: Any, reader: Any, max_nodes: int) -> list[yaml.Node]:
    """The items of a document that is not a plain list, composed whole; if it is not a
    list at all, SubscribersUnreadable."""
    reader.check_event, reader.peek_event = loader.check_event, loader.peek_event
    reader.get_event = loader.get_event
    root = reader.compose_node(None, 0)
    assert root is not None
    if isinstance(root, yaml.SequenceNode) and root.tag in _PLAIN_LIST[1:]:
        # each item checked and built alone, so one bad item skips only itself
        # (an item that is the list itself is refused by check_tree)
        return list(root.value)
    data = construct(loader, root, max_nodes)
    raise SubscribersUnreadable(Problem(
        path, root.start_mark.line + 1,
        f"the file must be a list of subscribers, not {_kind(data)}", _ENTRY_FORM))


def _entry(path: Path, where: _Where, value: Any) -> tuple[Subscriber | None, list[Problem]]:
    """The subscriber one entry describes, or None; plus every problem found in it."""
    line = where.line
    if value is None:
        return None, [Problem(path, line, "empty entry",
                              "remove the '-', or add 'email: ...' after it")]
    if isinstance(value, str):
        return None, [Problem(path, line, f"entry '{value}' has no 'email:' key",
                              f"write it as '- email: {value}'")]
    if not isinstance(value, dict):
        return None, [Problem(path, line, f"entry is {_kind(value)}, not a mapping",
                              _ENTRY_FORM)]
    problems = [Problem(path, where.key(str(key)), f"unknown key '{key}'",
                        did_you_mean(str(key), _KEYS))
                for key in value if key not in _KEYS]
    email = _address(path, where, value, problems)
    name = _name(path, where, value.get("name"), problems)
    tags = _tags(path, where, value, "tags", problems)
    exclude = _tags(path, where, value, "exclude_tags", problems) or ()
    if tags == ():
        problems.append(Problem(path, where.key("tags"),
                                "'tags' is empty, so this entry would get no posts",
                                "remove 'tags' to get every post, or remove the entry"))
    elif tags and {t.casefold() for t in tags} <= {t.casefold() for t in exclude}:
        problems.append(Problem(
            path, where.key("exclude_tags"),
            "every tag in 'tags' is also in 'exclude_tags', so this entry would get no posts",
            "remove those tags from 'exclude_tags'"))
    if email is None or problems:
        return None, problems
    return Subscriber(email, name, tags, exclude, line), problems


def _address(path: Path, where: _Where, entry: dict[Any, Any],
             problems: list[Problem]) -> str | None:
    """The ASCII address to send to, or None with the reason added to *problems*."""
    if "email" not in entry:
        problems.append(Problem(path, where.line, "no 'email' in this entry",
                                "add 'email: someone@example.org'"))
        return None
    value, line = entry["email"], where.key("email")
    if not isinstance(value, str):
        problems.append(Problem(path, line, f"'email' must be one address, not {_kind(value)}",
                                "write one address per entry"))
        return None
    address = value.strip()
    email, message, hint = check_address(address)
    if email is None:
        problems.append(Problem(path, line, message, hint))
    return email


_PLAIN_DOMAIN = re.compile(r"[A-Za-z0-9.-]+")
_EMAIL_MAX = 254  # email-validator's EMAIL_MAX_LENGTH: the whole address, in octets


def check_address(address: str) -> tuple[str | None, str, str]:
    """(the ASCII address to send to, "", "") or (None, what is wrong, what to do): the one
    rule for every way an address comes in (this file, an import).

    email-validator takes about 80 µs an address, mostly on the domain, which a list shares
    among thousands: a plain ASCII address whose domain was accepted before is answered here
    with exactly what validate_email returns (see _plain_address); any other goes through
    it."""
    plain = _plain_address(address)
    return (plain, "", "") if plain is not None else _validated(address)


def _plain_address(address: str) -> str | None:
    """validate_email(address).ascii_email for an address where it is known without the
    whole walk, else None (then validate_email decides): ASCII, a dot-atom local part
    (returned unchanged, unless it is one lowercased like postmaster), a domain of letters,
    digits, dots and hyphens that validate_email accepts as itself in both its forms (so
    every length it checks is the address's own), at most 254 octets in all."""
    local, at, domain = address.rpartition("@")
    dot_atom, lowercased = _rfc()
    if (not at or len(address) > _EMAIL_MAX or not address.isascii()
            or dot_atom.match(local) is None
            or local.lower() in lowercased
            or _PLAIN_DOMAIN.fullmatch(domain) is None):
        return None
    ascii_domain = _domain(domain)
    return None if ascii_domain is None else f"{local}@{ascii_domain}"


@functools.cache
def _rfc() -> tuple[re.Pattern[str], Collection[str]]:
    """email-validator's dot-atom pattern and the local parts it lowercases. It is imported
    when an address is first checked, not with this module: a sender that finds the file's
    reading in its cache (subscribers/cache.py) checks none, and the import is 20 ms of its
    start."""
    from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, DOT_ATOM_TEXT

    return DOT_ATOM_TEXT, CASE_INSENSITIVE_MAILBOX_NAMES


@functools.lru_cache(maxsize=4096)
def _domain(domain: str) -> str | None:
    """*domain* as validate_email writes it in an address, if it accepts it unchanged in
    length in both forms (domain and ascii_domain); else None."""
    from email_validator import EmailNotValidError, validate_email

    try:
        valid = validate_email(f"a@{domain}", check_deliverability=False)
    except EmailNotValidError:
        return None
    if valid.domain != valid.ascii_domain or len(valid.ascii_domain) != len(domain):
        return None
    return valid.ascii_domain


def _validated(address: str) -> tuple[str | None, str, str]:
    """check_address through validate_email itself."""
    from email_validator import EmailNotValidError, validate_email

    try:
        valid = validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        hint = ("write only the address here; put the name under 'name:'" if "<" in address
                else "correct the address, or remove the entry")
        return None, f"invalid address '{address}': {exc}", hint
    if valid.ascii_email is None:  # a non-ASCII local part: only SMTPUTF8 can carry it
        return None, (f"address '{address}' has non-ASCII characters before the @, "
                      "which cannot be sent without SMTPUTF8"), \
            "ask the subscriber for an ASCII address, or remove the entry"
    return valid.ascii_email, "", ""


def _name(path: Path, where: _Where, value: Any, problems: list[Problem]) -> str | None:
    """The display name, or None; a control character could end up splitting a header."""
    if value is None:
        return None
    line = where.key("name")
    if not isinstance(value, str):
        problems.append(Problem(path, line, f"'name' must be text, not {_kind(value)}",
                                "put the name in quotes"))
        return None
    bad = control_character(value)
    if bad is not None:
        problems.append(Problem(path, line,
                                f"'name' contains the control character U+{ord(bad):04X}",
                                "write the name on one line, without control characters"))
        return None
    return value.strip() or None


def control_character(text: str) -> str | None:
    """The first character of *text* that could split a header, or None: Python's email
    package splits header lines on more than CR/LF (\x1c-\x1e, \x85, \u2028)."""
    if text.isprintable():  # none of Cc, Zl, Zp (nor other categories): the usual name
        return None
    return next((c for c in text if unicodedata.category(c) in ("Cc", "Zl", "Zp")), None)


def _tags(path: Path, where: _Where, entry: dict[Any, Any], key: str,
          problems: list[Problem]) -> tuple[str, ...] | None:
    """`tags` or `exclude_tags` as a tuple (None when the key is absent or unusable).

    Numbers and dates become their text, the way Jekyll turns them into post tags.
    """
    if key not in entry:
        return None
    value = entry[key]
    if value is None:
        return ()
    if isinstance(value, str):
        items: list[Any] = _SEPARATORS.split(value)
    elif isinstance(value, list):
        items = value
    else:
        problems.append(Problem(path, where.key(key),
                                f"'{key}' must be a list or a text of tags, not {_kind(value)}",
                                f"write {key}: [union, analytics]"))
        return None
    odd = next((i for i in items if isinstance(i, list | dict)), None)
    if odd is not None:
        problems.append(Problem(path, where.key(key), f"'{key}' has {_kind(odd)} inside",
                                "list each tag as plain text"))
        return None
    seen: dict[str, str] = {}
    for item in items:
        tag = ruby_to_s(item).strip()
        if tag:
            seen.setdefault(tag.casefold(), tag)
    return tuple(seen.values())


def _count_tags(where: _Where, sub: Subscriber, counted: dict[str, tuple[str, int, int]]) -> None:
    """Note each tag of a served entry: where it is first used, and how often."""
    for key, tags in (("tags", sub.tags or ()), ("exclude_tags", sub.exclude_tags)):
        for tag in tags:
            folded = tag.casefold()
            if folded in counted:
                written, line, uses = counted[folded]
                counted[folded] = (written, line, uses + 1)
            else:
                counted[folded] = (tag, where.key(key), 1)


def _unknown_tags(path: Path, unknown: dict[str, tuple[str, int, int]],
                  known: dict[str, str]) -> list[Problem]:
    """One warning per tag no post has, at its first use, so a typo shared by many is one line.

    The entries are still served: a new tag may simply have no posts yet.
    """
    warnings = []
    for folded, (tag, line, uses) in unknown.items():
        close = difflib.get_close_matches(folded, list(known), n=1, cutoff=0.6)
        hint = (f"did you mean '{known[close[0]]}'?" if close
                else "check the spelling; it may simply have no posts yet")
        entries = "1 entry" if uses == 1 else f"{uses} entries"
        warnings.append(Problem(
            path, line, f"no post has the tag '{tag}' (used by {entries}, still served)", hint))
    return warnings


def _kind(value: Any) -> str:
    """A YAML writer's word for what a value is, for messages."""
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, date):
        return "a date"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "text"
