"""Where a post lives and what it is called for good: its absolute URL under the site's
root, and its permanent id (the feeds' entry id, kept in the state database from the first
time the post was seen, whatever its URL is today)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from ..config import Site
from ..state.interface import SharedState
from .index import Indexed
from .jekyll import absolute_url
from .parse import Post


def absolute(site: Site, url: str) -> str:
    return absolute_url(site.root, url)


def base_path(site: Site) -> str:
    base = site.baseurl.strip("/")
    return f"/{base}" if base else ""


def entry_ids(store: SharedState, site: Site, posts: list[Post]) -> dict[str, str]:
    """Each post's permanent id: the first one it was given, whatever its URL is today.

    When it was first seen is wall-clock time, not `--now`: the digest compares it with
    when earlier digests were made to catch posts that turn up late.
    """
    known = store.entry_ids()
    new = [(p.path, _first_id(site, p.path, p.jekyll_id)) for p in posts if p.path not in known]
    if new:
        rows = _claim(new, set(known.values()))
        store.add_entry_ids(rows)
        known.update((path, entry_id) for path, entry_id, _ in rows)
    return known


def assign_ids(store: SharedState, site: Site, added: list[Indexed]) -> None:
    """entry_ids for posts just published: only theirs are looked up, not every post's."""
    first = not store.has_entry_ids()  # a first build: 20,000 lookups would find nothing
    known = {} if first else store.entry_ids_of(r.path for r in added)
    new = [r for r in added if r.path not in known]
    if not new:
        return
    wanted = {r.path: _first_id(site, r.path, r.jekyll_id) for r in new}
    taken = set() if first else store.taken_ids(wanted.values())
    if taken or len(set(wanted.values())) < len(wanted):  # who keeps a contested id: the
        new.sort(key=lambda r: (r.ts, r.path), reverse=True)  # newest, as entry_ids decides
    store.add_entry_ids(_claim([(r.path, wanted[r.path]) for r in new], taken))


def _first_id(site: Site, path: str, jekyll_id: str) -> str:
    """jekyll-feed's id (absolute post.id), so a site switching to digest keeps its ids."""
    return absolute(site, jekyll_id) if site.url else f"urn:digest:{path}"


def _claim(wanted: list[tuple[str, str]], taken: set[str]) -> list[tuple[str, str, str]]:
    """(path, id, first seen) rows for new posts, newest first: an id some post already has
    gets a suffix from the path, so the earlier claim keeps it."""
    now = datetime.now(UTC).isoformat()
    rows = []
    for path, entry_id in wanted:
        if entry_id in taken:
            entry_id = f"{entry_id}#{hashlib.sha256(path.encode()).hexdigest()[:8]}"
        taken.add(entry_id)
        rows.append((path, entry_id, now))
    return rows
