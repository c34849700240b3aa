"""Past digests kept for the web ("view in browser"): posts only, never a subscriber.

Each run's posts are frozen when the run is first served, so the page shows what the email
showed even after posts are edited or removed: as JSON text in the shared state (every
machine's web front reads it there, web/shelf.py) and the same text in `state/archive/SLUG.json`,
which delivery/traces.py counts as a trace of past sends outside the database. The text holds
what every edition of the run was cut from (titles, links, dates, tags, excerpts) and nothing
about who received it. Runs archived before the shared state kept them have only the file:
adopt() copies those in.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
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


@dataclass(frozen=True)
class ArchivedRun:
    slug: str
    period_start: datetime
    period_end: datetime
    posts: tuple[ArchivedPost, ...]  # newest first


def folder(state: Path) -> Path:
    return state / FOLDER


def keep(state: Path, shared: SharedState, slug: str, start: datetime, end: datetime,
         posts: Sequence[DigestPost]) -> bool:
    """Freeze a run's posts unless already frozen (a resumed run keeps its first copy), in
    the shared state and in the state folder's file; whether this call froze them."""
    path = folder(state) / f"{slug}.json"
    if path.exists():  # frozen before the shared state kept the archive, or by this machine
        text = path.read_text(encoding="utf-8")
    else:
        data = {"slug": slug, "period_start": start.isoformat(), "period_end": end.isoformat(),
                "posts": [{"title": p.title, "url": p.url, "date": p.date.isoformat(),
                           "terms": list(dict.fromkeys((*p.tags, *p.categories))),
                           "excerpt": p.excerpt, "excerpt_html": str(p.excerpt_html)}
                          for p in posts]}
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
                               excerpt=str(p["excerpt"]), excerpt_html=str(p["excerpt_html"]))
                  for p in data["posts"])
    return ArchivedRun(slug=str(data["slug"]),
                       period_start=datetime.fromisoformat(data["period_start"]),
                       period_end=datetime.fromisoformat(data["period_end"]), posts=posts)
