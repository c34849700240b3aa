"""The site's tags with their post counts, for the "choose your tags" page.

Counting means reading every post (from the parse cache), so the counts are kept for a
minute: a page view never waits for more than one read, and a new post shows within that.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime

from ..config import Config
from ..edition.selection import terms
from ..posts.parse import Post
from ..posts.reader import read_posts
from ..state.store import Store

KEEP_SECONDS = 60.0


class Catalogue:
    def __init__(self, config: Config, now: Callable[[], datetime],
                 keep_seconds: float = KEEP_SECONDS) -> None:
        self.config = config
        self._now = now
        self._keep = keep_seconds
        self._lock = threading.Lock()
        self._posts: list[Post] | None = None
        self._counts: dict[str, int] = {}
        self._read_at = 0.0

    def posts(self) -> list[Post]:
        """The published posts, newest first, read at most once a *keep_seconds*."""
        with self._lock:
            if self._posts is None or time.monotonic() - self._read_at > self._keep:
                self._posts = self._read()
                self._counts = count_terms(self._posts)
                self._read_at = time.monotonic()
            return self._posts

    def counts(self) -> dict[str, int]:
        """term (tag or category, as first written) → published posts carrying it."""
        self.posts()
        with self._lock:
            return self._counts

    def _read(self) -> list[Post]:
        store = Store.open(self.config.state)
        try:
            return read_posts(self.config, store, now=self._now()).posts
        finally:
            store.close()


def count_terms(posts: Iterable[Post]) -> dict[str, int]:
    """term (tag or category, as first written; case never makes two) → posts carrying it."""
    counted: Counter[str] = Counter()
    spelling: dict[str, str] = {}
    for post in posts:
        for term in terms(post):
            folded = term.casefold()
            spelling.setdefault(folded, term)
            counted[folded] += 1
    return {spelling[folded]: n for folded, n in counted.items()}
