"""What the last build published, kept in the state database, and brought up to date by delta.

A build with 20,000 posts must not decode 20,000 readings to learn that one was added. The
parse cache (state/store.py) keeps each reading's date, URL, tags and `published` in columns and
numbers every write; this module keeps the `live` set (what Jekyll would publish as of the
build's `now`) with each post's `updated` stamp and an ordered (kind, term) → posts index.

A build then touches only the posts whose liveness can have changed: files written or
deleted since it last looked, posts whose date `now` has crossed, and posts sharing a URL
(the first one by date wins it). What makes a post live is published.py's, for the full
read too. `updated` stamps (+1 s for equal dates, in Jekyll's order) are recomputed from
each change onwards until they agree with the stored ones again. The feeds whose members
may have changed, and those of posts linking to a post whose URL came, went or changed, are
recorded as dirty in the same transaction, and cleared only once they are written, so a
crash never loses them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from ..errors import Problem
from ..state.store import IN_LIST, Store, connect, json_list
from .content import stem_of
from .published import DUE_SQL, FUTURE_SQL, UNPUBLISHED_SQL, Published, url_owners, url_taken

ONE_SECOND = timedelta(seconds=1)
EVERY_FEED = "*"  # the dirty mark that means: recheck every feed
SITE_FEED = "site:"


@dataclass(frozen=True)
class Indexed:
    """A post as the index has it: enough to place it, date it and file it under its terms."""

    path: str
    ts: float  # date as a POSIX timestamp: the sort key with path
    date: str  # ISO 8601, offset included: what `updated` is computed from
    url: str
    terms: str  # JSON [tags, categories]
    jekyll_id: str = ""

    def same_place(self, other: Indexed) -> bool:
        return (self.ts, self.date, self.url, self.terms) == (other.ts, other.date, other.url,
                                                              other.terms)

    def feed_names(self) -> set[str]:
        tags, categories = json.loads(self.terms)
        return {*(f"tag:{t}" for t in tags), *(f"category:{c}" for c in categories)}


class LiveIndex:
    """The `live` and `live_terms` tables, and the queries a build makes of the parse cache."""

    def __init__(self, store: Store) -> None:
        self.store, self.db = store, store.db
        self._memo: dict[tuple[float, bool], dict[str, tuple[str, str]]] = {}
        self._terms: list[tuple[str, str]] | None = None  # until `live` changes

    # bringing `live` up to date -----------------------------------------------------------
    def update(self, *, now: float, future: bool, settings: str) -> list[Indexed]:
        """Make `live` what a full read as of *now* would publish; return the posts added.

        The feeds that may list different posts now are added to the dirty set.
        """
        self._terms = None
        state = json.loads(self.store.meta("live") or "null")
        full = state is None or state["future"] != future
        losers = self._losers(now, future)
        with self.store.atomic():
            seq = self.store.parse_seq()
            if full:
                self.db.execute("DELETE FROM live")
                self.db.execute("DELETE FROM live_terms")
                old: dict[str, Indexed] = {}
                new = self._candidates(None, now, future)
            else:
                touched = self._touched(state, now, future, losers)
                old = self._live_rows(touched)
                new = self._candidates(touched, now, future)
            for path in losers:
                new.pop(path, None)
            if full:
                self._fill(new)
                self._mark_dirty({EVERY_FEED})
            else:
                bumped = self._apply(old, new)
                self._mark_dirty({EVERY_FEED} if state.get("settings") != settings
                                 else self._dirty_feeds(old, new, bumped)
                                 | self._linking_feeds(old, new))
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('live', ?)", (json.dumps({
                "seq": seq, "now": now, "future": future, "losers": sorted(losers),
                "settings": settings}),))
        return [row for path, row in new.items() if path not in old]

    def _touched(self, state: dict[str, object], now: float, future: bool,
                 losers: dict[str, tuple[str, str]]) -> set[str]:
        """Every path whose liveness may differ from the last build's."""
        seq, then, previous_losers = state["seq"], state["now"], state["losers"]
        assert isinstance(previous_losers, list) and isinstance(then, float | int)
        assert isinstance(seq, int)
        touched = self.store.changed_since(seq)
        touched.update(losers, previous_losers)
        if not future and then != now:  # posts whose date `now` has crossed, either way
            touched.update(p for (p,) in self.db.execute(
                "SELECT path FROM parsed WHERE published = 1 AND ts > ? AND ts <= ?",
                (min(then, now), max(then, now))))
        return touched

    def _losers(self, now: float, future: bool) -> dict[str, tuple[str, str]]:
        """Posts whose URL an earlier post has taken: path → (url, the winner's path)."""
        if (now, future) not in self._memo:
            self._memo[(now, future)] = self._find_losers(now, future)
        return self._memo[(now, future)]

    def _find_losers(self, now: float, future: bool) -> dict[str, tuple[str, str]]:
        rows = self.db.execute(
            f"SELECT path, url FROM parsed WHERE {DUE_SQL} AND url IN (SELECT url FROM parsed "
            f"WHERE {DUE_SQL} GROUP BY url HAVING count(*) > 1) ORDER BY ts, path", (now, future))
        return url_owners(rows)

    def _candidates(self, paths: set[str] | None, now: float,
                    future: bool) -> dict[str, Indexed]:
        """Posts among *paths* (None: all) that are published and due, URL aside."""
        # in index order: a full fill then sorts what is already sorted, nearly for free
        sql = ("SELECT path, ts, date, url, terms, jekyll_id FROM parsed "
               f"WHERE {DUE_SQL}" + ("" if paths is None else f" AND path {IN_LIST}") +
               " ORDER BY ts, path")
        args = (now, future) if paths is None else (now, future, json_list(paths))
        return {row[0]: Indexed(*row) for row in self.db.execute(sql, args)}

    def _live_rows(self, paths: Iterable[str]) -> dict[str, Indexed]:
        return {row[0]: Indexed(*row) for row in self.db.execute(
            f"SELECT path, ts, date, url, terms FROM live WHERE path {IN_LIST}",
            (json_list(paths),))}

    def _dirty_feeds(self, old: dict[str, Indexed], new: dict[str, Indexed],
                     bumped: list[str]) -> set[str]:
        """The feeds of every post that came, went, changed or got another `updated`."""
        rows = [*old.values(), *new.values()]
        rows.extend(Indexed("", 0, "", "", terms) for terms in self._terms_of(bumped))
        dirty = {name for row in rows for name in row.feed_names()}
        return dirty | {SITE_FEED} if rows else dirty

    def _linking_feeds(self, old: dict[str, Indexed], new: dict[str, Indexed]) -> set[str]:
        """The feeds of posts linking to one whose URL came, went or changed: their
        `{% post_url %}` now gives another URL (rendered.py renders them again)."""
        moved = {stem_of(path) for path in old.keys() | new.keys()
                 if path not in old or path not in new or old[path].url != new[path].url}
        if not moved:
            return set()
        dirty: set[str] = set()
        for (terms,) in self.db.execute(  # in SQL: 2 ms for 2,000 linking posts, 11 in Python
                "SELECT DISTINCT terms FROM live WHERE path IN (SELECT p.path FROM parsed p "
                "INDEXED BY parsed_links, json_each(p.links) j WHERE p.links IS NOT NULL AND "
                f"json_extract(j.value, '$[0]') {IN_LIST})", (json_list(moved),)):
            dirty |= Indexed("", 0, "", "", terms).feed_names() | {SITE_FEED}
        return dirty

    def _apply(self, old: dict[str, Indexed], new: dict[str, Indexed]) -> list[str]:
        """Swap *old* rows for *new* ones; the paths whose `updated` was (re)computed."""
        gone = [row for path, row in old.items() if not (path in new and row.same_place(
            new[path]))]
        came = [row for path, row in new.items() if not (path in old and row.same_place(
            old[path]))]
        self.db.executemany("DELETE FROM live WHERE path = ?", ((r.path,) for r in gone))
        self.db.executemany("DELETE FROM live_terms WHERE kind = ? AND term = ? AND ts = ? "
                            "AND path = ?", _term_rows(gone))
        self.db.executemany("INSERT INTO live VALUES (?, ?, ?, NULL, ?, ?, ?)",
                            ((r.path, r.ts, r.date, r.url, r.terms, stem_of(r.path))
                             for r in came))
        self.db.executemany("INSERT OR IGNORE INTO live_terms VALUES (?, ?, ?, ?)",
                            _term_rows(came))
        return self._restamp([(r.ts, r.path) for r in (*gone, *came)])

    def _fill(self, new: dict[str, Indexed]) -> None:
        """An empty `live` filled at once, in index order, stamps computed on the way."""
        rows = sorted(new.values(), key=lambda r: (r.ts, r.path))
        previous: datetime | None = None
        live = []
        for row in rows:
            previous = _stamp(row.date, previous)
            live.append((row.path, row.ts, row.date, previous.isoformat(), row.url, row.terms,
                         stem_of(row.path)))
        self.db.executemany("INSERT INTO live VALUES (?, ?, ?, ?, ?, ?, ?)", live)
        for kind, at in (("tag", "$[0]"), ("category", "$[1]")):  # in SQLite: 85,000 rows
            self.db.execute("INSERT OR IGNORE INTO live_terms SELECT ?, j.value, l.ts, l.path "
                            "FROM live l, json_each(l.terms, ?) j ORDER BY 2, 3, 4", (kind, at))

    def _restamp(self, starts: list[tuple[float, str]]) -> list[str]:
        """Recompute `updated` from each change onwards, until it agrees with the stored one.

        Jekyll order, oldest first: a post dated at or before the previous post's `updated`
        gets that plus one second.
        """
        bumped: list[str] = []
        reached: tuple[float, str] | None = None
        for start in sorted(starts):
            if reached is not None and start <= reached:
                continue
            before = self.db.execute(
                "SELECT updated FROM live WHERE (ts, path) < (?, ?) "
                "ORDER BY ts DESC, path DESC LIMIT 1", start).fetchone()
            previous = datetime.fromisoformat(before[0]) if before else None
            changed = []
            for path, ts, date, updated in self.db.execute(
                    "SELECT path, ts, date, updated FROM live WHERE (ts, path) >= (?, ?) "
                    "ORDER BY ts, path", start):
                stamp = _stamp(date, previous)
                reached = (ts, path)
                text = stamp.isoformat()
                if text == updated:
                    break
                changed.append((text, path))
                previous = stamp
            self.db.executemany("UPDATE live SET updated = ? WHERE path = ?", changed)
            bumped.extend(path for _, path in changed)
        return bumped

    def _terms_of(self, paths: list[str]) -> Iterator[str]:
        for (terms,) in self.db.execute(f"SELECT terms FROM live WHERE path {IN_LIST}",
                                        (json_list(paths),)):
            yield terms

    # the dirty set ------------------------------------------------------------------------
    def dirty(self) -> set[str]:
        """Feeds to check again: listed by some build that has not finished writing them."""
        return set(json.loads(self.store.meta("dirty_feeds") or "[]"))

    def _mark_dirty(self, names: set[str]) -> None:
        merged = self.dirty() | names
        if EVERY_FEED in merged:
            merged = {EVERY_FEED}
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('dirty_feeds', ?)",
                        (json_list(sorted(merged)),))

    # reading it ---------------------------------------------------------------------------
    def feed_names(self) -> list[str]:
        """Every feed today, in jekyll-feed's order: the site, tags, then categories, sorted."""
        rows = self._distinct_terms()
        tags = sorted(term for kind, term in rows if kind == "tag")
        categories = sorted(term for kind, term in rows if kind == "category")
        return [SITE_FEED, *(f"tag:{t}" for t in tags), *(f"category:{c}" for c in categories)]

    def _distinct_terms(self) -> list[tuple[str, str]]:
        """(kind, term) of every term in use: one index probe per term, not a scan of all.
        Read once per state of `live` (a build asks for the feeds, then for the terms)."""
        if self._terms is not None:
            return self._terms
        found: list[tuple[str, str]] = []
        for kind in ("tag", "category"):
            after = ""
            # `term > ?` seeks past every row of the previous term; a row value would not
            while row := self.db.execute(
                    "SELECT term FROM live_terms WHERE kind = ? AND term > ? "
                    "ORDER BY term LIMIT 1", (kind, after)).fetchone():
                after = row[0]
                found.append((kind, after))
        self._terms = found
        return found

    def members(self, name: str, limit: int) -> list[str]:
        """The paths of a feed's newest *limit* posts, newest first; posts of the same
        instant by file name, as jekyll-feed lists them (so a site that switches lists the
        same posts: one more would come back to its readers as new). SQLite reads the index
        in ts order and sorts only each instant's posts."""
        kind, _, term = name.partition(":")
        if kind == "site":
            return [p for (p,) in self.db.execute(
                "SELECT path FROM live ORDER BY ts DESC, path LIMIT ?", (limit,))]
        return [p for (p,) in self.db.execute(
            "SELECT path FROM live_terms WHERE kind = ? AND term = ? "
            "ORDER BY ts DESC, path LIMIT ?", (kind, term, limit))]

    def feed_stats(self) -> dict[str, tuple[int, float]]:
        """Each feed's (posts, newest post's timestamp): all its posts, not only those its
        file lists; one pass over the index, for the feeds page (feeds/page.py)."""
        stats = {f"{kind}:{term}": (count, ts) for kind, term, count, ts in self.db.execute(
            "SELECT kind, term, count(*), max(ts) FROM live_terms GROUP BY kind, term")}
        count, ts = self.db.execute("SELECT count(*), max(ts) FROM live").fetchone()
        if count:
            stats[SITE_FEED] = (count, ts)
        return stats

    def updated(self, paths: Iterable[str]) -> dict[str, datetime]:
        return {path: datetime.fromisoformat(text) for path, text in self.db.execute(
            f"SELECT path, updated FROM live WHERE path {IN_LIST}", (json_list(paths),))}

    def found(self, *, root: Path, now: float, future: bool, parsed: int) -> Published:
        """The counts, problems and terms `digest build` and the daemon report."""
        from .reader import empty_folder, from_row

        unpublished, later = self.db.execute(
            f"SELECT count(*) FILTER (WHERE {UNPUBLISHED_SQL}), "
            f"count(*) FILTER (WHERE {FUTURE_SQL}) FROM parsed "
            "WHERE published IS NOT NULL", (now, future)).fetchone()
        rejected = [from_row(row, root, path) for path, row in self.db.execute(
            "SELECT path, row FROM parsed INDEXED BY parsed_problems "
            "WHERE published IS NULL")]
        rejected.extend(url_taken(root, path, url, owner)
                        for path, (url, owner) in self._losers(now, future).items())
        warnings = [w for path, row in self.db.execute(
            "SELECT p.path, p.row FROM parsed p INDEXED BY parsed_warned CROSS JOIN live l "
            "ON l.path = p.path WHERE p.warned = 1 ORDER BY l.ts, l.path")
            for w in getattr(from_row(row, root, path), "warnings", ())]
        warnings.extend(self._broken_links(root))
        if self.db.execute("SELECT 1 FROM parsed LIMIT 1").fetchone() is None:
            warnings.append(empty_folder(root))
        (posts,) = self.db.execute("SELECT count(*) FROM live").fetchone()
        terms = frozenset(term for _, term in self._distinct_terms())
        return Published(posts, sorted((p for p in rejected if isinstance(p, Problem)),
                                       key=lambda p: str(p.path)), warnings,
                         later, unpublished, parsed, terms,
                         None if future else self._next_future(now))

    def _broken_links(self, root: Path) -> Iterator[Problem]:
        """Links in published posts to a name no published post has (as Post.broken_links)."""
        from .parse import broken_link

        for path, stem, line in self.db.execute(
                "SELECT p.path, json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]') "
                "FROM parsed p INDEXED BY parsed_links CROSS JOIN live l ON l.path = p.path, "
                "json_each(p.links) j WHERE p.links IS NOT NULL AND NOT EXISTS "
                "(SELECT 1 FROM live t WHERE t.stem = json_extract(j.value, '$[0]')) "
                "ORDER BY l.ts, l.path, j.key"):
            yield broken_link(root / path, stem, line)

    def _next_future(self, now: float) -> datetime | None:
        """The date of the soonest future post that will not lose its URL to an earlier one."""
        for path, url, date in self.db.execute(
                f"SELECT path, url, date FROM parsed WHERE {FUTURE_SQL} ORDER BY ts, path",
                (now, False)):
            rivals = self.db.execute(  # nearly always the post alone: one index probe
                "SELECT path, url FROM parsed WHERE url = ? AND published = 1 "
                "ORDER BY ts, path", (url,))
            if path not in url_owners(rivals):
                return datetime.fromisoformat(date)
        return None


def _stamp(date: str, previous: datetime | None) -> datetime:
    """A post's `updated`: its date, or one second after the previous post's if not later."""
    stamp = datetime.fromisoformat(date)
    return previous + ONE_SECOND if previous is not None and stamp <= previous else stamp


def _term_rows(rows: Iterable[Indexed]) -> Iterator[tuple[str, str, float, str]]:
    for row in rows:
        tags, categories = json.loads(row.terms)
        for kind, terms in (("tag", tags), ("category", categories)):
            for term in dict.fromkeys(terms):
                yield kind, term, row.ts, row.path


def preferred_target(path: str) -> tuple[bool, str]:
    """The order in which posts sharing a file name are chosen as a `{% post_url %}` target
    (PostUrlLookup); _PREFERRED is the same in SQL."""
    return "/" in path, path


_PREFERRED = "instr(path, '/') > 0, path"
_PREFERRED_LAST = "instr(path, '/') > 0 DESC, path DESC"


class PostUrlLookup:
    """file stem → site-relative URL of a published post (for `{% post_url %}`), one indexed
    query per name, so that a build rendering a few linking posts reads a few URLs, not all.

    Opened on the database's path, read-only, so that a render worker can ask it too. Of
    posts with one file name in different folders, one directly in the posts folder (the one
    Jekyll matches by that name), else the first by path.
    """

    def __init__(self, database: Path) -> None:
        self.db = connect(database, read_only=True)  # its errors: StateError, as the Store's

    def url(self, stem: str) -> str | None:
        found = self.db.execute("SELECT url FROM live WHERE stem = ? "
                                f"ORDER BY {_PREFERRED} LIMIT 1", (stem,)).fetchone()
        return None if found is None else str(found[0])

    def every(self) -> dict[str, str]:
        return {stem: url for stem, url in self.db.execute(  # the preferred one last
            f"SELECT stem, url FROM live ORDER BY {_PREFERRED_LAST}")}

    def close(self) -> None:
        self.db.close()
