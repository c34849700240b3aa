"""The two paths to "what is published" agree: a full read of every post (`digest posts`,
`check`, the digest, the web catalogue) and the live index a build updates by delta.

Both follow posts/published.py; these tests catch a path that stops doing so, e.g. one
that forgets `published: false` or lets a second post take a URL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import NOW, make_site, post, write_posts

from digest.config import load_config
from digest.feeds.build import build
from digest.posts.index import LiveIndex
from digest.posts.published import DUE_SQL, FUTURE_SQL, UNPUBLISHED_SQL, Published, standing
from digest.posts.reader import read_posts
from digest.state.store import Store

POSTS: dict[str, str | bytes] = {
    "2019-03-01-a.md": post("A", tags="[t, u]"),
    "2019-03-02-b.md": post("B", tags="[t]", categories="[jobs]"),
    "2019-03-03-c.md": post("C", tags="[u]", body="[a]({% post_url 2019-03-01-a %})\n"),
    "2024-07-01-later.md": post("Later", tags="[w]"),  # future as of NOW
    "2019-03-04-draft.md": post("Draft", tags="[x]", published="false"),
}


def _unlink(tmp_path: Path, rel: str) -> None:
    (tmp_path / "_posts" / rel).unlink()


# each step changes the site again, on top of the steps before it
STEPS: list[tuple[str, Callable[[Path], None]]] = [
    ("a post added", lambda t: write_posts(t, {"2019-03-05-d.md": post("D", tags="[t, v]")})),
    ("a post unpublished", lambda t: write_posts(t, {"2019-03-02-b.md": post(
        "B", tags="[t]", categories="[jobs]", published="false")})),
    ("a post dated in the future", lambda t: write_posts(t, {"2019-03-05-d.md": post(
        "D", tags="[t, v]", date='"2025-01-01 10:00:00"')})),
    ("a second post at a URL", lambda t: write_posts(t, {"2019-03-06-e.md": post(
        "E", tags="[e]", permalink="/2019/03/01/a.html")})),
    ("a future post at a URL taken", lambda t: write_posts(t, {"2024-06-20-g.md": post(
        "G", tags="[g]", permalink="/2019/03/03/c.html")})),
    ("an earlier post takes that URL", lambda t: write_posts(t, {"2019-02-01-f.md": post(
        "F", tags="[f]", permalink="/2019/03/01/a.html")})),
    ("the linked post deleted", lambda t: _unlink(t, "2019-03-01-a.md")),
    ("a draft published", lambda t: write_posts(t, {"2019-03-04-draft.md": post(
        "Draft", tags="[x]")})),
]


def _seen(found: Published, paths: list[str]) -> tuple[Any, ...]:
    """Everything the two paths must agree on (not `parsed`: how much each read anew)."""
    return (found.count, paths, [str(p) for p in found.rejected],
            [str(p) for p in found.warnings], found.future, found.unpublished, found.terms,
            found.next_future)


def _incremental(config_path: Path, now: datetime, future: bool) -> tuple[Any, ...]:
    """A build on the state of every build before it: the live index, updated by delta."""
    config = load_config(config_path)
    found = build(config, now=now, future=future).found
    store = Store.open(config.state)
    try:
        live = LiveIndex(store).members("site:", 1_000_000)
    finally:
        store.close()
    return _seen(found, live)


def _cold_read(config_path: Path, tmp_path: Path, now: datetime, future: bool,
               n: int) -> tuple[Any, ...]:
    """A full read from an empty state: every post decoded, the rules applied to all."""
    config = replace(load_config(config_path), state=tmp_path / f"cold-{n}")
    store = Store.open(config.state)
    try:
        found = read_posts(config, store, now=now, future=future)
    finally:
        store.close()
    assert found.count == len(found.posts)
    return _seen(found, [p.path for p in found.posts])


@pytest.mark.parametrize("future", [False, True], ids=["as of now", "with --future"])
def test_a_cold_read_and_the_incremental_index_publish_the_same_posts(
        tmp_path: Path, future: bool) -> None:
    config_path = make_site(tmp_path, POSTS, url="https://example.org")
    assert _incremental(config_path, NOW, future) == _cold_read(config_path, tmp_path, NOW,
                                                                future, 0)
    for n, (what, change) in enumerate(STEPS, 1):
        change(tmp_path)
        incremental = _incremental(config_path, NOW, future)
        assert incremental == _cold_read(config_path, tmp_path, NOW, future, n), what
    # time passing the future-dated post, for both paths
    later = datetime(2025, 6, 1, tzinfo=NOW.tzinfo)
    assert _incremental(config_path, later, future) == _cold_read(config_path, tmp_path,
                                                                  later, future, 99)


def test_the_steps_exercise_every_rule(tmp_path: Path) -> None:
    """Without this, the test above could pass on a site where no rule ever applies."""
    config_path = make_site(tmp_path, POSTS, url="https://example.org")
    for _what, change in STEPS[:5]:
        change(tmp_path)
    config = load_config(config_path)
    store = Store.open(config.state)
    try:
        found = read_posts(config, store, now=NOW)
    finally:
        store.close()
    assert (found.unpublished, found.future) == (2, 3)
    assert [p.message for p in found.rejected] == [
        "its URL /2019/03/01/a.html is already taken by 2019-03-01-a.md"]
    # not G's date (2024-06-20): G will not be published, its URL is C's
    assert found.next_future == datetime(2024, 7, 1, tzinfo=NOW.tzinfo)


@pytest.mark.parametrize("future", [False, True])
def test_the_sql_of_the_rules_says_what_standing_says(future: bool) -> None:
    """The index filters in SQL; its expressions must classify a post as `standing` does."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE parsed (published INTEGER, ts REAL)")
    now = 1000.0
    rows = [(published, ts) for published in (0, 1) for ts in (now - 1, now, now + 1)]
    db.executemany("INSERT INTO parsed VALUES (?, ?)", rows)
    for published, ts, due, held, unpublished in db.execute(
            f"SELECT published, ts, {DUE_SQL}, {FUTURE_SQL}, {UNPUBLISHED_SQL} FROM parsed",
            (now, future)):
        expected = standing(bool(published), ts, now, future)
        assert (bool(due), bool(held), bool(unpublished)) == (
            expected == "due", expected == "future", expected == "unpublished"), (published, ts)
