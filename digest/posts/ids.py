"""Where a post lives and what it is called for good: its absolute URL under the site's
root, and its permanent id (the feeds' entry id, kept in the state database from the first
time the post was seen, whatever its URL is today)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime

from ..config import Site
from ..state.interface import SharedState
from .index import Indexed
from .jekyll import absolute_url
from .parse import Post
from .sources import shared_key


def absolute(site: Site, url: str) -> str:
    return absolute_url(site.root, url)


def base_path(site: Site) -> str:
    base = site.baseurl.strip("/")
    return f"/{base}" if base else ""


def entry_ids(store: SharedState, site: Site, posts: list[Post]) -> dict[str, str]:
    """Each post's permanent id: the first one it was given, whatever its URL is today.

    When it was first seen is wall-clock time, not `--now`: the digest compares it with
    when earlier digests were made to catch posts that turn up late. Keyed by the posts'
    paths, and by the shared state's keys of every post it knows (shared_key).
    """
    known = store.entry_ids()
    keys = {p.path: shared_key(p.path) for p in posts}
    known.update(_moved(store, known, keys))
    new = [(key, _first_id(site, key, p.jekyll_id)) for p in posts
           if (key := keys[p.path]) not in known]
    if new:
        rows = _claim(new, set(known.values()))
        store.add_entry_ids(rows)
        known.update((key, entry_id) for key, entry_id, _ in rows)
    known.update((path, known[key]) for path, key in keys.items() if key != path)
    return known


def ids_of(store: SharedState, paths: Iterable[str]) -> dict[str, str]:
    """path → entry id, of those of *paths* that have one (a feed source's entry found by
    its shared key; see _moved)."""
    keys = {path: shared_key(path) for path in paths}
    found = store.entry_ids_of({*keys.values(), *(p for p, k in keys.items() if k != p)})
    found.update(_moved(store, found, keys))
    return {path: found[key] for path, key in keys.items() if key in found}


def _moved(store: SharedState, known: dict[str, str], keys: dict[str, str]
           ) -> dict[str, str]:
    """Source entries that an older digest kept under their absolute path (this machine's)
    moved to their shared key, so other machines find their ids; shared key → id."""
    moved = [(path, key) for path, key in keys.items()
             if key != path and key not in known and path in known]
    if not moved:
        return {}
    store.rename_entry_ids(moved)
    return {key: known[path] for path, key in moved}


def assign_ids(store: SharedState, site: Site, added: list[Indexed]) -> None:
    """entry_ids for posts just published: only theirs are looked up, not every post's."""
    first = not store.has_entry_ids()  # a first build: 20,000 lookups would find nothing
    known = {} if first else ids_of(store, (r.path for r in added))
    new = [r for r in added if r.path not in known]
    if not new:
        return
    wanted = {r.path: _first_id(site, shared_key(r.path), r.jekyll_id) for r in new}
    taken = set() if first else store.taken_ids(wanted.values())
    if taken or len(set(wanted.values())) < len(wanted):  # who keeps a contested id: the
        new.sort(key=lambda r: (r.ts, r.path), reverse=True)  # newest, as entry_ids decides
    store.add_entry_ids(_claim([(shared_key(r.path), wanted[r.path]) for r in new], taken))


def _first_id(site: Site, key: str, jekyll_id: str) -> str:
    """jekyll-feed's id (absolute post.id), so a site switching to digest keeps its ids;
    without a site url, one made of the post's shared key."""
    return absolute(site, jekyll_id) if site.url else f"urn:digest:{key}"


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
