"""Past digests kept for the web ("view in browser"): posts only, never a subscriber.

Each run's posts are frozen when the run is first served, so the page shows what the email
showed even after posts are edited or removed: as JSON text in the shared state (every
machine's web front reads it there, web/shelf.py) and the same text in `state/archive/SLUG.json`,
which delivery/traces.py counts as a trace of past sends outside the database. The text holds
what every edition of the run was cut from (titles, links, dates, tags, excerpts) and nothing
about who received it. Runs archived before the shared state kept them have only the file:
adopt() copies those in.

Editions ("view in browser" showing a subscriber's own posts, not the whole run): an edition id
is the set of the run's archived posts it carries, written as a bitmap (bit i = the run's
post i, newest first) in base64url: four characters for a run of 19 posts. The id is not
stored anywhere: the page is derived from the archived run and the id alone. Why not store a
map edition → posts in the archived JSON: the archive is written once, on a run's first
serve, and never replaced, while a resumed run, or subscribers added to an unfinished one,
make editions after that write; an id that carries its own posts needs no second write, no
change to the shared state, and reads every archive, old ones included. What the id
reveals: which of the run's public posts an email carried, never the address or the tags
followed (several tag sets share one id); any id names only public posts, so guessing ids
shows nothing private. Each post's entry id is kept with it (``id``) so that a resumed run
finds its posts in the archive after a permalink change; archives from before fall back to
the URL.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..edition.layout import DigestPost
from ..state.interface import Archived, SharedState
from ..util.writer import write_if_changed

log = logging.getLogger(__name__)

FOLDER = "archive"


@dataclass(frozen=True)
class ArchivedPost:
    title: str
    url: str
    date: datetime  # in the site's timezone, as the email showed it
    terms: tuple[str, ...]
    excerpt: str  # plain text
    excerpt_html: str  # sanitised when the digest was made
    entry_id: str | None = None  # None in archives made before editions had pages


@dataclass(frozen=True)
class ArchivedRun:
    slug: str
    period_start: datetime
    period_end: datetime
    posts: tuple[ArchivedPost, ...]  # newest first


def folder(state: Path) -> Path:
    return state / FOLDER


def keep(state: Path, shared: SharedState, slug: str, start: datetime, end: datetime,
         posts: Sequence[DigestPost], ids: Sequence[str] = ()) -> bool:
    """Freeze a run's posts unless already frozen (a resumed run keeps its first copy), in
    the shared state and in the state folder's file; whether this call froze them. *ids*:
    the posts' entry ids, in the same order (kept so editions find their posts again)."""
    path = folder(state) / f"{slug}.json"
    if path.exists():  # frozen before the shared state kept the archive, or by this machine
        text = path.read_text(encoding="utf-8")
    else:
        data = {"slug": slug, "period_start": start.isoformat(), "period_end": end.isoformat(),
                "posts": [{"title": p.title, "url": p.url, "date": p.date.isoformat(),
                           "terms": list(dict.fromkeys((*p.tags, *p.categories))),
                           "excerpt": p.excerpt, "excerpt_html": str(p.excerpt_html),
                           **({"id": ids[i]} if i < len(ids) else {})}
                          for i, p in enumerate(posts)]}
        text = json.dumps(data, ensure_ascii=False, indent=1)
    saved = shared.save_archive(Archived(slug, start, end), text)
    if not path.exists():  # frozen by another machine, the file is this one's trace all the same
        write_if_changed(path, (shared.archived(slug) or text).encode())
    return saved


def adopt(state: Path, shared: SharedState) -> int:
    """Copy into the shared state the archived runs only a file holds (archived before it
    kept them); idempotent, and cheap when there are none. How many were copied."""
    where = folder(state)
    if not where.is_dir():
        return 0
    known = {entry.slug for entry in shared.archive_index()}
    copied = 0
    for path in sorted(where.glob("*.json")):
        if path.stem in known:
            continue
        try:
            text = path.read_text(encoding="utf-8")
            run = parse(text)
            if run.slug != path.stem:
                raise ValueError(f"it names another digest, {run.slug!r}")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("%s: cannot be read as an archived digest (%s); it is not shown", path,
                      exc)
            continue
        copied += shared.save_archive(Archived(run.slug, run.period_start, run.period_end), text)
    return copied


def load(path: Path) -> ArchivedRun:
    """One archived run; ValueError/KeyError/OSError when the file is not one of ours."""
    return parse(path.read_bytes())


def parse(text: str | bytes) -> ArchivedRun:
    """One archived run from its JSON text; ValueError/KeyError/TypeError if not one of ours."""
    data: dict[str, Any] = json.loads(text)
    posts = tuple(ArchivedPost(title=str(p["title"]), url=str(p["url"]),
                               date=datetime.fromisoformat(p["date"]),
                               terms=tuple(str(t) for t in p["terms"]),
                               excerpt=str(p["excerpt"]), excerpt_html=str(p["excerpt_html"]),
                               entry_id=str(p["id"]) if p.get("id") is not None else None)
                  for p in data["posts"])
    return ArchivedRun(slug=str(data["slug"]),
                       period_start=datetime.fromisoformat(data["period_start"]),
                       period_end=datetime.fromisoformat(data["period_end"]), posts=posts)


def frozen(shared: SharedState, slug: str) -> ArchivedRun | None:
    """The run as kept in the shared state; None if it is not there or cannot be read."""
    text = shared.archived(slug)
    if text is None:
        return None
    try:
        return parse(text)
    except (ValueError, KeyError, TypeError) as exc:
        log.error("%s: cannot be read as an archived digest (%s)", slug, exc)
        return None


# editions ------------------------------------------------------------------------------------
_EDITION = re.compile(r"[A-Za-z0-9_-]+")


def edition_id(indexes: Iterable[int]) -> str:
    """The id of the edition carrying the run's posts at *indexes* (see the module's header);
    the same set always gives the same id, whatever the order."""
    bits = sum(1 << i for i in set(indexes))
    data = bits.to_bytes((bits.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def indexes_in(run: ArchivedRun, picked: Iterable[tuple[str, str]]) -> list[int] | None:
    """Where each picked post, as (entry id, URL), stands in *run*; None if one is not
    there (then there is no edition page to point at, only the whole run's)."""
    by_id = {p.entry_id: i for i, p in enumerate(run.posts) if p.entry_id is not None}
    by_url = {p.url: i for i, p in enumerate(run.posts)}
    found = []
    for entry_id, url in picked:
        index = by_id.get(entry_id) if by_id else by_url.get(url)
        if index is None:
            return None
        found.append(index)
    return found


def edition_posts(run: ArchivedRun, edition: str) -> tuple[ArchivedPost, ...] | None:
    """The posts of *run* that the edition *edition* carries, in the run's order; None for an
    id that names no edition of this run (malformed, too long, empty, past its last post, or
    not written the one way edition_id writes it, so each edition has one address)."""
    if not run.posts or len(edition) > len(edition_id([len(run.posts) - 1])) \
            or not _EDITION.fullmatch(edition):
        return None
    try:
        data = base64.urlsafe_b64decode(edition + "=" * (-len(edition) % 4))
    except (binascii.Error, ValueError):
        return None
    bits = int.from_bytes(data, "big")
    if not bits or bits.bit_length() > len(run.posts):
        return None
    chosen = [i for i in range(len(run.posts)) if bits >> i & 1]
    if edition_id(chosen) != edition:
        return None
    return tuple(run.posts[i] for i in chosen)
