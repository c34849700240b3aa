"""Past digests kept for the web ("view in browser"): posts only, never a subscriber.

Each run's posts are frozen into `state/archive/SLUG.json` when the run is first served, so
the page shows what the email showed even after posts are edited or removed. The file holds
what every edition of the run was cut from (titles, links, dates, tags, excerpts) and nothing
about who received it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..edition.layout import DigestPost
from ..util.writer import write_if_changed

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


def keep(state: Path, slug: str, start: datetime, end: datetime,
         posts: Sequence[DigestPost]) -> bool:
    """Freeze a run's posts unless already frozen (a resumed run keeps its first copy)."""
    path = folder(state) / f"{slug}.json"
    if path.exists():
        return False
    data = {"slug": slug, "period_start": start.isoformat(), "period_end": end.isoformat(),
            "posts": [{"title": p.title, "url": p.url, "date": p.date.isoformat(),
                       "terms": list(dict.fromkeys((*p.tags, *p.categories))),
                       "excerpt": p.excerpt, "excerpt_html": str(p.excerpt_html)}
                      for p in posts]}
    return write_if_changed(path, json.dumps(data, ensure_ascii=False, indent=1).encode())


def load(path: Path) -> ArchivedRun:
    """One archived run; ValueError/KeyError/OSError when the file is not one of ours."""
    data: dict[str, Any] = json.loads(path.read_bytes())
    posts = tuple(ArchivedPost(title=str(p["title"]), url=str(p["url"]),
                               date=datetime.fromisoformat(p["date"]),
                               terms=tuple(str(t) for t in p["terms"]),
                               excerpt=str(p["excerpt"]), excerpt_html=str(p["excerpt_html"]))
                  for p in data["posts"])
    return ArchivedRun(slug=str(data["slug"]),
                       period_start=datetime.fromisoformat(data["period_start"]),
                       period_end=datetime.fromisoformat(data["period_end"]), posts=posts)
