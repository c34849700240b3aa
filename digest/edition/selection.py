"""Which posts a digest carries, and which of them each subscriber gets. Pure functions.

A run covers the period from the end of the previous run to its own time (the first run:
the last `first_window_days`), so a missed week is caught up, not lost. A post joins the
first run whose period holds its date, or, if it turned up only after the run that should
have carried it was made (back-dated, or committed late), the next run after it was first
seen. Each post joins exactly one run, so no subscriber sees it twice.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..posts.content import plain_title
from ..posts.parse import Post
from ..state.sendlog import Run, RunPost


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime


def window(previous: Run | None, as_of: datetime, first_window_days: int) -> Window:
    if previous is None:
        return Window(as_of - timedelta(days=first_window_days), as_of)
    return Window(previous.period_end, as_of)


def twin_key(post: Post) -> str:
    """A post renamed to a new date keeps its slug and title: the same job, not a new one."""
    return f"{post.slug}\0{' '.join(plain_title(post.title).casefold().split())}"


def posts_for_run(posts: Iterable[Post], ids: Mapping[str, str], first_seen: Mapping[str, str],
                  assigned: Collection[str], assigned_twins: Collection[str],
                  period: Window, previous: Run | None) -> list[RunPost]:
    """The posts a new run over *period* carries, newest first."""
    late_after = previous.created_at.isoformat() if previous else None
    chosen = []
    for post in posts:
        entry_id = ids[post.path]
        if entry_id in assigned or post.date > period.end:
            continue
        twin = twin_key(post)
        if twin in assigned_twins:
            continue
        in_period = post.date > period.start
        late = late_after is not None and first_seen.get(entry_id, "") > late_after
        if in_period or late:
            chosen.append(RunPost(entry_id, post.path, twin))
    return chosen


def terms(post: Post) -> tuple[str, ...]:
    """What a subscriber can follow: a post's tags and categories (sites use either)."""
    return tuple(dict.fromkeys((*post.tags, *post.categories)))


SLUG_PATTERN = r"[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{6})?"  # what period_slug makes


def period_slug(end: datetime, taken: Collection[str] | None = None) -> str:
    """A short, readable name for a period: its last day, with the time if the day is taken."""
    slug = f"{end:%Y-%m-%d}"
    if taken is not None and slug in taken:
        slug = f"{end:%Y-%m-%dT%H%M%S}"
    return slug
