"""Build the site, config and subscribers file that `bench/send_bench.py` sends a digest from.

Why this exists: the send benchmark needs one week of realistic job posts and tens of
thousands of subscribers with varied tag choices, identical on every run and machine, so
that message rates and memory can be compared between runs and with smtp-source.

Posts replay the bodies and titles of the real jobs board (progressivedatajobs) when it is
available, else generated text; each gets a fresh date inside the week before ``as_of`` and
tags from the board's 15 most used ones (its own where they are among them). Every tag is
given to some post, so every subscriber has something new and a run sends exactly one
message per subscriber. Subscribers follow 1-3 tags; some follow everything, and some of
those exclude one tag. The same seed always yields byte-identical files.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import _front_matter_end as front_matter_end
from corpus import valid_source_posts

__all__ = ["TAGS", "TIMEZONE", "make_posts", "write_config", "write_subscribers"]

# The jobs board's 15 most used tags, most used first.
TAGS = ("data", "datamanagement", "nonprofit", "campaigns", "analyst", "analytics", "tech",
        "consultants", "clientservices", "digital", "vendor", "civicengagement", "union",
        "executive", "engineer")
TIMEZONE = "America/New_York"

_FIRST = ("Ana", "Ben", "Chloé", "Dev", "Erin", "Farah", "Gus", "Hana", "Ivan", "José",
          "Kemi", "Liam", "Mei", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tariq",
          "Uma", "Vera", "Wen", "Xavi", "Yusuf", "Zoë")
_LAST = ("Adams", "Brown", "Chen", "Díaz", "Evans", "Fischer", "García", "Hughes", "Ito",
         "Jones", "Khan", "López", "Miller", "Nguyen", "O'Brien", "Patel", "Quiroga", "Rossi",
         "Smith", "Tanaka", "Uribe", "Volkov", "Wang", "Xu", "Young", "Zhou")
_WORDS = ("data", "campaign", "members", "organizing", "voter", "warehouse", "reporting",
          "analysis", "union", "field", "turnout", "dashboards", "SQL", "Python", "VAN",
          "strategy", "program", "nonprofit", "digital", "outreach", "modeling", "survey")


def _source_posts(source: Path | None) -> list[tuple[str, str, list[str]]]:
    """(title, Markdown body, tags) of each usable post of the real board, if it is there."""
    if source is None or not source.is_dir():
        return []
    found = []
    for path in valid_source_posts(source):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        end = front_matter_end(lines)
        assert end is not None  # valid_source_posts keeps only posts with closed front matter
        body = "".join(lines[end + 1:])
        try:
            meta = yaml.safe_load("".join(lines[1:end])) or {}
        except yaml.YAMLError:
            continue
        if not isinstance(meta, dict) or not isinstance(meta.get("title"), str):
            continue
        tags = meta.get("tags") or []
        tags = tags.split() if isinstance(tags, str) else [str(t) for t in tags]
        found.append((meta["title"].strip(), body, tags))
    return found


def _generated_post(rng: random.Random, n: int) -> tuple[str, str, list[str]]:
    def sentence() -> str:
        words = rng.choices(_WORDS, k=rng.randint(8, 18))
        return " ".join(words).capitalize() + "."

    paragraphs = [" ".join(sentence() for _ in range(rng.randint(2, 5)))
                  for _ in range(rng.randint(3, 6))]
    duties = "\n".join(f"* {sentence()}" for _ in range(rng.randint(3, 7)))
    body = "\n\n".join([*paragraphs[:1], "**Responsibilities**", duties, *paragraphs[1:]])
    return f"Organisation {n}: Data Role", body + "\n", []


def make_posts(posts_dir: Path, *, as_of: dt.datetime, count: int, source: Path | None,
               seed: int = 1) -> int:
    """Write ``count`` posts dated in the week before ``as_of``; return how many."""
    rng = random.Random(seed)
    sources = _source_posts(source)
    rng.shuffle(sources)
    posts_dir.mkdir(parents=True, exist_ok=True)
    for old in posts_dir.glob("*.md"):
        old.unlink()
    week = 7 * 24 * 3600
    for n in range(count):
        title, body, tags = sources[n % len(sources)] if sources else _generated_post(rng, n)
        chosen = [t for t in dict.fromkeys(tags) if t in TAGS]
        if not chosen:
            chosen = rng.sample(TAGS, rng.randint(1, 2))
        if TAGS[n % len(TAGS)] not in chosen:  # every tag on some post: no empty digests
            chosen.append(TAGS[n % len(TAGS)])
        # strictly inside the first digest's window (as_of - 7 days, as_of]
        date = as_of - dt.timedelta(seconds=rng.randint(3600, week - 3600))
        slug = f"bench-job-{n:04d}"
        quoted = json.dumps(f"{title} #{n}", ensure_ascii=False)  # JSON is valid YAML
        front = (f"---\nlayout: single\ntitle: {quoted}\n"
                 f"date: {date:%Y-%m-%d %H:%M:%S %z}\ntags:\n"
                 + "".join(f"    - {t}\n" for t in chosen) + "---\n")
        (posts_dir / f"{date:%Y-%m-%d}-{slug}.md").write_text(front + body, encoding="utf-8")
    return count


def write_subscribers(path: Path, count: int, seed: int = 2) -> None:
    """``count`` subscribers user{i}@example.org: 80 % follow 1-3 tags, 12 % everything,
    8 % everything but one tag; most have a name."""
    rng = random.Random(seed)
    weights = [len(TAGS) - i for i in range(len(TAGS))]  # popular tags are followed more
    lines = ["# generated by bench/send_site.py\n"]
    for i in range(count):
        lines.append(f"- email: user{i}@example.org\n")
        if rng.random() < 0.9:
            name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
            lines.append(f"  name: {json.dumps(name, ensure_ascii=False)}\n")
        kind = rng.random()
        if kind < 0.80:
            tags: set[str] = set()
            want = rng.randint(1, 3)
            while len(tags) < want:
                tags.update(rng.choices(TAGS, weights=weights))
            lines.append(f"  tags: [{', '.join(sorted(tags))}]\n")
        elif kind < 0.92:
            pass  # no tags: every post
        else:
            lines.append(f"  exclude_tags: [{rng.choice(TAGS)}]\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines), encoding="utf-8")


def write_config(path: Path, *, posts: Path, subscribers: Path, state: Path, port: int,
                 concurrency: int = 20, per_connection: int = 1000) -> None:
    """A config that sends to smtp-sink on 127.0.0.1:``port`` with no TLS and no rate limit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""\
site:
  url: https://jobs.example.org
  baseurl: ""
  title: Progressive Data Jobs (bench)
  timezone: {TIMEZONE}
  permalink: /:year/:month/:day/:title/
  excerpt_separator: "\\n\\n"
posts: {posts}
output: {path.parent / "public"}
state: {state}
subscribers: {subscribers}
digest:
  from: "Jobs Board <jobs@example.org>"
  noun: job
  first_window_days: 7
smtp:
  host: 127.0.0.1
  port: {port}
  security: none
  concurrency: {concurrency}
  per_connection: {per_connection}
  rate: 0
web:
  base_url: https://jobs.example.org/digest
  secret_env: DIGEST_SECRET
""", encoding="utf-8")
