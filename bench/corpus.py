"""Build a large, deterministic benchmark corpus from a small real one.

Why this exists: the benchmark needs ~20,000 Jekyll posts, but the real
corpus (progressivedatajobs) has about a thousand.  Replaying the real posts
keeps the front matter and Markdown realistic (list and string ``tags:``,
optional ``date:``, odd closing ``---`` lines) while giving every copy a new
date, file name and title so that feeds, permalinks and titles all differ.
The same seed always yields byte-identical output, so digest and Hugo can be
compared on exactly the same input across machines and runs.

Source posts that Jekyll itself would not read as posts are skipped: names
that are not ``YYYY-MM-DD-slug.ext`` and files whose front matter is never
closed.

CLI: ``python bench/corpus.py SRC DEST [--count N] [--seed S]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["add_links", "add_one_post", "make_corpus", "move_post", "valid_source_posts"]

FIRST_DAY = dt.date(2010, 1, 1)
LAST_DAY = dt.date(2025, 12, 31)

# Jekyll's default markdown_ext, and a post name: date, dash, slug, extension.
_MARKDOWN_EXTS = ("md", "markdown", "mkdown", "mkdn", "mkd")
_POST_NAME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})-(?P<slug>.+)\.(?:" + "|".join(_MARKDOWN_EXTS) + r")$"
)
# Jekyll: the front matter opens with "---" on line 1 and closes with a line
# that is "---" or "..." followed only by whitespace.
_FM_OPEN = re.compile(r"^---[ \t]*\r?\n?$")
_FM_CLOSE = re.compile(r"^(?:---|\.\.\.)[ \t]*\r?\n?$")
_TITLE_LINE = re.compile(r"^title:(?P<sp>[ \t]*)(?P<value>.*?)[ \t]*(?P<eol>\r?\n?)$")
_DATE_LINE = re.compile(r"^date:[ \t]*(?P<value>.*?)[ \t]*(?P<eol>\r?\n?)$")
_DATE_VALUE = re.compile(
    r"^(?P<q>['\"]?)(?P<date>\d{4}-\d{1,2}-\d{1,2})(?P<rest>.*?)(?P=q)$"
)


def _read(path: Path) -> str:
    # surrogateescape round-trips any stray non-UTF-8 bytes unchanged.
    return path.read_text(encoding="utf-8", errors="surrogateescape")


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8", errors="surrogateescape", newline="")


def _front_matter_end(lines: list[str]) -> int | None:
    """Index of the closing delimiter line, or None if not a valid post."""
    if not lines or not _FM_OPEN.match(lines[0]):
        return None
    for i in range(1, len(lines)):
        if _FM_CLOSE.match(lines[i]):
            return i
    return None


def valid_source_posts(src_posts: Path) -> list[Path]:
    """Posts Jekyll would build, sorted by file name (the replay order)."""
    valid: list[Path] = []
    for path in sorted(src_posts.iterdir(), key=lambda p: p.name):
        if not path.is_file() or not _POST_NAME.match(path.name):
            continue
        if _front_matter_end(_read(path).splitlines(keepends=True)) is None:
            continue
        valid.append(path)
    return valid


def _retitle(value: str, n: int) -> str:
    """YAML scalar ``value`` with `` #n`` appended, still a valid scalar."""
    suffix = f" #{n}"
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        # Quoted: the suffix goes inside the quotes (no escaping needed).
        return value[:-1] + suffix + value[-1]
    # Plain scalar: " #" would start a YAML comment, so quote the result.
    # A JSON string is a valid YAML double-quoted scalar.
    return json.dumps(value + suffix, ensure_ascii=False)


def _redate(value: str, day: dt.date) -> str:
    """The ``date:`` value moved to ``day``, keeping any time of day and zone."""
    m = _DATE_VALUE.match(value)
    if m is None:
        return day.isoformat()
    rest = m.group("rest")
    if not rest.strip():
        return day.isoformat()
    q = m.group("q")
    return f"{q}{day.isoformat()}{rest}{q}"


def _replay(text: str, n: int, day: dt.date, fallback_title: str) -> str:
    lines = text.splitlines(keepends=True)
    end = _front_matter_end(lines)
    if end is None:  # pragma: no cover - filtered by valid_source_posts
        raise ValueError("post has no closed front matter")
    saw_title = False
    for i in range(1, end):
        if m := _TITLE_LINE.match(lines[i]):
            saw_title = True
            sp = m.group("sp") or " "
            lines[i] = f"title:{sp}{_retitle(m.group('value'), n)}{m.group('eol')}"
        elif m := _DATE_LINE.match(lines[i]):
            lines[i] = f"date: {_redate(m.group('value'), day)}{m.group('eol')}"
    if not saw_title:
        title = json.dumps(f"{fallback_title} #{n}", ensure_ascii=False)
        lines.insert(1, f"title: {title}\n")
    return "".join(lines)


def _spread_days(count: int, rng: random.Random) -> list[dt.date]:
    """``count`` dates spread evenly over FIRST_DAY..LAST_DAY, then shuffled."""
    span = (LAST_DAY - FIRST_DAY).days + 1
    days = [FIRST_DAY + dt.timedelta(days=(i * span) // count) for i in range(count)]
    rng.shuffle(days)
    return days


def _clear_posts(dest_posts: Path) -> None:
    for path in dest_posts.iterdir():
        if path.is_file() and path.suffix == ".md":
            path.unlink()


def make_corpus(
    src_posts: Path, dest_posts: Path, count: int = 20000, seed: int = 0
) -> int:
    """Write ``count`` distinct valid posts replayed from ``src_posts``.

    Post ``n`` (0-based) is the ``n % len(valid)``-th valid source post, saved
    as ``YYYY-MM-DD-<origslug>-<n>.md`` with a date from an even spread over
    2010-01-01..2025-12-31 (shuffled by ``seed``), its front matter ``date:``
    (if any) moved to that day, and `` #n`` appended to its title.  Tags are
    left exactly as written.  Existing ``*.md`` files directly in
    ``dest_posts`` are removed first so the result is exactly ``count`` posts.
    Returns the number of posts written.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    sources = valid_source_posts(src_posts)
    if not sources:
        raise ValueError(f"no valid posts in {src_posts}")
    texts = [_read(p) for p in sources]
    slugs = []
    for p in sources:
        m = _POST_NAME.match(p.name)
        assert m is not None
        slugs.append(m.group("slug"))
    days = _spread_days(count, random.Random(seed))

    dest_posts.mkdir(parents=True, exist_ok=True)
    _clear_posts(dest_posts)
    for n in range(count):
        k = n % len(sources)
        day = days[n]
        body = _replay(texts[k], n, day, fallback_title=slugs[k])
        _write(dest_posts / f"{day.isoformat()}-{slugs[k]}-{n}.md", body)
    return count


def add_one_post(dest_posts: Path, n: int) -> Path:
    """Write one new valid post dated yesterday, tagged union and analytics.

    Used for the "rebuild after adding one post" measurement; ``n`` should be
    unused in the corpus (e.g. the corpus size) so name and title are new.
    """
    day = dt.date.today() - dt.timedelta(days=1)
    path = dest_posts / f"{day.isoformat()}-bench-added-post-{n}.md"
    _write(
        path,
        "---\n"
        "layout: single\n"
        f'title: "Bench Union: Analytics Lead #{n}"\n'
        f"date: {day.isoformat()}\n"
        "tags:\n"
        "    - union\n"
        "    - analytics\n"
        "---\n"
        "\n"
        "[Job description here](https://example.org/jobs/bench).\n"
        "\n"
        f"This post was added by the benchmark (post #{n}) to time a rebuild "
        "after one new post.\n"
        "\n"
        "**Responsibilities**\n"
        "\n"
        "- Build and maintain the member data warehouse.\n"
        "- Report on campaign turnout and organizing metrics.\n",
    )
    return path


def add_links(dest_posts: Path, share: float) -> list[tuple[Path, Path]]:
    """Make *share* of the posts link by name to the post just before them.

    Each chosen post gets a line `[Earlier]({% post_url STEM %})`, as Jekyll sites
    link their own posts. Spread evenly over the posts in date order, so the newest
    (the ones in feeds) link too. Returns (linking post, linked post) pairs, oldest first.
    """
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    names = sorted(p for p in dest_posts.iterdir() if p.is_file() and p.suffix == ".md")
    step = round(1 / share)
    pairs = [(names[i], names[i - 1]) for i in range(len(names) - 1, 0, -step)]
    for linking, linked in pairs:
        with linking.open("a", encoding="utf-8", errors="surrogateescape", newline="") as f:
            f.write(f"\n[Earlier]({{% post_url {linked.stem} %}})\n")
    return pairs[::-1]


def move_post(path: Path, n: int) -> Callable[[], None]:
    """Give a post a new URL (a front matter `permalink:`); returns what puts it back."""
    text = _read(path)
    _write(path, text.replace("---", f"---\npermalink: /bench-moved-{n}/", 1))
    return lambda: _write(path, text)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="source _posts directory")
    parser.add_argument("dest", type=Path, help="destination _posts directory")
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    written = make_corpus(args.src, args.dest, count=args.count, seed=args.seed)
    used = len(valid_source_posts(args.src))
    print(f"wrote {written} posts to {args.dest} (replaying {used} valid sources)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

