"""What is published: Jekyll's rules, written once, and the one result every command gets.

Of the readings of the posts folder, a post is published when its front matter does not say
`published: false`, its date is not after `now` (unless `--future`), and no earlier post
(by date, then path) took its URL first. Two paths apply these rules: a full read
(reader.read_posts: every reading decoded, for `posts`, `check`, the digest, the web
catalogue) and the live index (index.py: only what changed since the last build, for
`build` and the daemon). Both call the functions here: `standing` (in SQL as STANDING_SQL,
its rows checked against it by tests/test_published.py) and `url_owners`; and both return a
`Published`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from ..errors import Problem
from ..state.store import Stats
from .parse import Post

Standing = Literal["unpublished", "future", "due"]

# `standing` in SQL, over the parse cache's columns, for the index's queries:
# ?1 is `now` as a POSIX timestamp, ?2 whether future posts are included
DUE_SQL = "published = 1 AND (?2 OR ts <= ?1)"
UNPUBLISHED_SQL = "published = 0"
FUTURE_SQL = "published = 1 AND NOT ?2 AND ts > ?1"


def standing(published: bool, ts: float, now: float, future: bool) -> Standing:
    """A post's standing before URLs are shared out: `published: false` wins over a date."""
    if not published:
        return "unpublished"
    if ts > now and not future:
        return "future"
    return "due"


def url_owners(due: Iterable[tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """Of due posts as (path, url) in Jekyll's order (date, then path), those whose URL an
    earlier one took: path → (url, the path of the post that has it)."""
    owners: dict[str, str] = {}
    losers = {}
    for path, url in due:
        if url in owners:
            losers[path] = (url, owners[url])
        else:
            owners[url] = path
    return losers


def url_taken(root: Path, path: str, url: str, owner: str) -> Problem:
    """Why a post that lost its URL is not published."""
    return Problem(root / path, None, f"its URL {url} is already taken by {owner}",
                   "give one of them another slug or permalink")


@dataclass(frozen=True)
class Published:
    """What the posts folder publishes right now, and every problem found reading it.

    `posts` holds the Posts themselves only when the whole folder was decoded
    (reader.read_posts); a build decodes only the posts of the feeds it writes and leaves it
    empty: `count` is always the number published.
    """

    count: int
    rejected: list[Problem]
    warnings: list[Problem]
    future: int  # held back by their date (0 with --future)
    unpublished: int  # `published: false`
    parsed: int  # files actually parsed this time (not from cache)
    terms: frozenset[str]  # every tag and category of a published post
    next_future: datetime | None  # when the soonest future-dated post is due
    posts: list[Post] = field(default_factory=list)  # newest first (Jekyll's order reversed)
    stats: Stats = field(default_factory=dict)  # path → (size, mtime_ns)


__all__ = ["DUE_SQL", "FUTURE_SQL", "UNPUBLISHED_SQL", "Published", "Standing", "standing",
           "url_owners", "url_taken"]
