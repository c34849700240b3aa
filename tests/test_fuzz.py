"""Fuzzing: thousands of mutated posts and subscriber files, read in-process under a time
limit, then a few whole commands over hundreds of them (issue 18).

The mutations are seeded (random.Random(SEED)), so a failure is the same on every run and
names the case that caused it. They start from real posts (tests/fixtures/posts, copied from
the progressivedatajobs corpus) and a real subscribers file, and mix blind byte edits with
the hostile snippets of tests/fixtures/hostile (aliases, tags, numbers, dates, nesting).
What must hold, for every case: no exception but PostError / SubscribersUnreadable, no read
over PER_FILE seconds, every rejection naming the file (and its line, where it has one),
and, in the whole-command runs, every good post published beside the bad ones.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest
from conftest import NOW, make_site, output, parse_feed, run_cli

from digest.config import Site
from digest.errors import PostError, SubscribersUnreadable
from digest.posts.parse import Post, parse_post
from digest.posts.reader import _cache_row, from_row
from digest.subscribers.load import parse_subscribers

SEED = 18
POSTS_TRIED = 3000
SUBSCRIBER_FILES_TRIED = 1500
PER_FILE = 2.0  # seconds: the bound on reading any one file, far above the ~0.2 ms normal
FIXTURES = Path(__file__).parent / "fixtures"
SITE = Site(url="https://jobs.example.org", timezone="America/New_York")

SNIPPETS = [
    "tags: &r [a, *r]", "x: &a [1, *a]", "m: &m {k: *m}",
    "a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\ntags: *c",
    "tags: " + "[" * 70 + "x" + "]" * 70, "tags: " + "{a: " * 70 + "x" + "}" * 70,
    "n: " + "9" * 4400, "n: 0x" + "f" * 4000, "n: -0b" + "1" * 15000, "n: 1:2:3:4:5:6",
    "n: 1e999", "n: .nan", "title: !!float x", "title: !!int x", "title: !!bool maybe",
    "title: !!timestamp 2019-02-30", "title: !!timestamp x", "title: !!null x",
    "author: !!python/object/apply:os.system [true]", "author: !!binary aGk=",
    "author: !!set {a, b}", "author: !!omap [a: 1]", "author: !custom x", "author: !<tag:x> y",
    "date: 2019-02-30", "date: 0000-01-01", "date: 0001-01-01 00:00:00 +0100",
    "date: 9999-12-31 23:59:59 -2359", "date: 2020-01-01 10:00 +24:00",
    "date: 2020-01-01 10:00 +99:99", "date: 2020-01-01 25:61:61", "date: [2020, 1, 1]",
    "date: {y: 2020}", "date: !!timestamp 2001-12-14t21:59:43.10-05:00", "date: 20200101",
    "tags: " + " ".join(f"t{i}" for i in range(2100)), "tags: [" + "x" * 300 + "]",
    "tags: [[a, [b, [c]]], {d: e}, 1, 2.5, true, null, 2019-01-01]",
    "categories: " + "y" * 300, "category: [a, [b]]", "tag: 12", "slug: ../../etc",
    "permalink: /:nope/", "permalink: /../../x", "permalink: 12", "published: [no]",
    "excerpt_separator: 12", "excerpt: {a: 1}", "title: [a, b]", "title: {a: b}",
    "? [a, b]\n: c", "? {a: b}\n: c", "<<: {title: merged}", "<<: [*undefined]",
    "%YAML 1.1", "--- !!map", "...", "title: \"unterminated", "title: 'a\tb'",
    "title: \x00", "title: \ufeff", "title: \u2028", "\t\ttitle: tabbed", "title: " + "é" * 500,
]


class Hung(Exception):
    """A read took longer than PER_FILE seconds."""


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Hung


def _timed(call, *args):
    """(result or exception, seconds) of call(*args), stopped by SIGALRM after PER_FILE."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, PER_FILE)
    started = time.perf_counter()
    try:
        outcome = call(*args)
    except Hung:
        raise
    except Exception as exc:  # sorted by the caller
        outcome = exc
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return outcome, time.perf_counter() - started


def _mutate(rng: random.Random, raw: bytes) -> bytes:
    """One to four edits: byte-level damage, line shuffles, or a hostile snippet."""
    data = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        kind = rng.random()
        lines = bytes(data).split(b"\n")
        if kind < 0.45:  # a hostile snippet on some line (most land in the front matter)
            at = rng.randint(1, min(len(lines), 8))
            snippet = rng.choice(SNIPPETS).encode("utf-8")
            lines.insert(at, snippet if rng.random() < 0.8 else snippet.replace(b"\n", b" "))
            data = bytearray(b"\n".join(lines))
        elif kind < 0.6 and data:  # flip, insert or drop bytes
            for _ in range(rng.randint(1, 8)):
                at = rng.randrange(len(data) + 1)
                byte = rng.choice([0, 9, 10, 13, 0x22, 0x26, 0x2A, 0x3A, 0x5B, 0x7B, 0x21,
                                   0x2D, 0xC3, 0xE9, 0xFF, rng.randrange(256)])
                if rng.random() < 0.5 and at < len(data):
                    data[at] = byte
                elif rng.random() < 0.5:
                    data.insert(at, byte)
                elif at < len(data):
                    del data[at]
        elif kind < 0.75:  # swap, duplicate or drop lines
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            choice = rng.random()
            if choice < 0.4:
                lines[i], lines[j] = lines[j], lines[i]
            elif choice < 0.7:
                lines.insert(i, lines[j])
            else:
                del lines[i]
            data = bytearray(b"\n".join(lines))
        elif kind < 0.85:  # truncate
            data = data[: rng.randrange(len(data) + 1)]
        else:  # a value replaced by another line's, or indented oddly
            i = rng.randrange(len(lines))
            lines[i] = b" " * rng.randint(1, 6) + lines[i]
            data = bytearray(b"\n".join(lines))
    return bytes(data)


def _posts_corpus() -> list[bytes]:
    return [p.read_bytes() for p in sorted((FIXTURES / "posts").glob("*.md"))]


def mutated_posts(count: int, seed: int = SEED) -> Iterator[tuple[str, bytes]]:
    rng = random.Random(seed)
    sources = _posts_corpus()
    hostile = [p.read_bytes() for p in sorted((FIXTURES / "hostile" / "posts").glob("*.md"))]
    for n in range(count):
        base = rng.choice(sources if rng.random() < 0.9 else hostile)
        yield f"2022-{1 + n % 12:02d}-{1 + n % 28:02d}-fuzz-{n}.md", _mutate(rng, base)


LINELESS = ("the file is ", "not a post file name", "the file name has no extension",
            "no '-' between the date", "a .yml file")


def test_thousands_of_mutated_posts_are_each_read_or_rejected_in_bounded_time(
        tmp_path: Path) -> None:
    published = rejected = 0
    slowest = 0.0
    failures: list[str] = []
    for name, raw in mutated_posts(POSTS_TRIED):
        path = tmp_path / name
        outcome, seconds = _timed(parse_post, path, name, raw, SITE)
        slowest = max(slowest, seconds)
        if isinstance(outcome, Post):
            published += 1
            row = _cache_row(name, len(raw), 0, "m", outcome)  # the cache takes it back
            assert from_row(row[4], tmp_path, name) == outcome
        elif isinstance(outcome, PostError):
            rejected += 1
            problem = outcome.problem
            if problem.path != path or (problem.line is None
                                        and not problem.message.startswith(LINELESS)):
                failures.append(f"{name}: {problem}")
            str(problem)  # printable
        else:
            failures.append(f"{name}: {type(outcome).__name__}: {outcome}")
    print(f"\nfuzz posts: {POSTS_TRIED} tried, {rejected} rejected, {published} read, "
          f"slowest {slowest * 1000:.1f} ms")
    assert failures == []
    assert published + rejected == POSTS_TRIED
    assert rejected > POSTS_TRIED // 10 and published > POSTS_TRIED // 10  # both paths fuzzed
    assert slowest < PER_FILE


GOOD_SUBSCRIBERS = """\
# who gets the weekly digest
- email: ana@example.org
  name: Ana Gómez
  tags: [union, analytics]
- email: dev@example.org
  tags: analytics, remote
  exclude_tags: [internship]
- email: all@example.org
  name: Sam
- email: "ops@example.org"
  tags:
    - union
    - Data Science
"""


def test_thousands_of_mutated_subscriber_files_are_read_or_refused_in_bounded_time(
        tmp_path: Path) -> None:
    rng = random.Random(SEED)
    path = tmp_path / "subscribers.yaml"
    served = skipped = refused = 0
    slowest = 0.0
    failures: list[str] = []
    raw = GOOD_SUBSCRIBERS.encode("utf-8")
    hostile = [p.read_bytes() for p in sorted((FIXTURES / "hostile" / "subscribers").glob("*"))]
    for n in range(SUBSCRIBER_FILES_TRIED):
        data = raw if rng.random() < 0.85 else rng.choice(hostile)
        if rng.random() < 0.6:  # a hostile value inside one entry, where one would write it
            lines = data.split(b"\n")
            snippet = rng.choice(SNIPPETS).split("\n")[0].encode("utf-8")
            lines.insert(rng.randint(2, len(lines) - 1), b"  " + snippet)
            data = b"\n".join(lines)
        if rng.random() < 0.5:
            data = _mutate(rng, data)
        text = data.decode("utf-8", "replace")
        outcome, seconds = _timed(parse_subscribers, path, text, {"union", "analytics"})
        slowest = max(slowest, seconds)
        if isinstance(outcome, SubscribersUnreadable):
            refused += 1
            if outcome.problem.path != path:
                failures.append(f"case {n}: {outcome.problem}")
        elif isinstance(outcome, Exception):
            failures.append(f"case {n}: {type(outcome).__name__}: {outcome}\n{text[:300]!r}")
        else:
            served += len(outcome.subscribers)
            skipped += len(outcome.problems)
            failures.extend(f"case {n}: no line: {p}" for p in outcome.problems
                            if p.line is None or p.path != path)
    print(f"\nfuzz subscribers: {SUBSCRIBER_FILES_TRIED} files tried, {refused} refused "
          f"whole, {served} entries served, {skipped} entries skipped, "
          f"slowest {slowest * 1000:.1f} ms")
    assert failures == []
    assert refused and skipped and served
    assert slowest < PER_FILE


@pytest.mark.parametrize("seed", [1, 2])
def test_whole_commands_publish_every_good_post_beside_hundreds_of_mutated_ones(
        tmp_path: Path, seed: int) -> None:
    goods = {p.name: p.read_bytes() for p in sorted((FIXTURES / "posts").glob("*.md"))}
    fuzzed = dict(mutated_posts(300, seed=seed * 1000))
    config = make_site(tmp_path, {**goods, **fuzzed}, feeds={"entries": 1000})
    started = time.monotonic()
    code, out, err = run_cli(["--config", str(config), "check", "--now", NOW.isoformat()])
    assert code in (0, 1)
    assert not any(name in out for name in goods)
    code, _, err = run_cli(["--config", str(config), "build", "--now", NOW.isoformat()])
    assert code in (0, 1)
    assert time.monotonic() - started < 60
    titles = {e.title for e in parse_feed(output(config) / "feed.xml").entries}
    real = {"SEIU/Indivisible: Technology Associate", "MOVE Action: Data and Targeting Manager",
            "Planned Parenthood: Cycle Data Services Associate"}
    assert real <= titles
    print(f"\nfuzz build (seed {seed}): 306 files, {err.count('rejected: ')} rejected, "
          f"{len(titles)} in feed.xml")
