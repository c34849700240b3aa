"""Our reading of a Hugo content section equals real Hugo's (Debian's hugo 0.111), post by
post: the fixture site in tests/fixtures/hugo (TOML, YAML and JSON front matter, a page
bundle, drafts, future and expired posts, slug and url overrides, dates in many spellings,
terms that differ in case, upper-case keys, `_build`) is built with `hugo` under several
permalink patterns and base URLs, and
url, date (the instant), title, tags and categories are compared with `digest posts --json`.
.ci/run installs hugo, so this is never skipped there.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from hugo_compare import (
    FIELDS,
    compare,
    compare_content,
    digest_content,
    digest_read,
    hugo_build,
)

SITE = Path(__file__).resolve().parent / "fixtures" / "hugo"

PATTERNS = [
    "/:year/:month/:day/:slug/",
    "/:section/:yearday/:weekday/:monthname/:title/",
    "/:sections/:filename/",
    "/:year/:slugorfilename/",
    "",  # none: Hugo's default, the folders then the slug or file name
]


def _site(root: Path, pattern: str, base: str) -> Path:
    shutil.copytree(SITE, root)
    config = root / "hugo.toml"
    text = config.read_text()
    old = 'blog = "/:year/:month/:day/:slug/"'
    assert old in text and 'baseURL = "https://example.org/"' in text
    text = text.replace('baseURL = "https://example.org/"', f'baseURL = "{base}"')
    config.write_text(text.replace(old, f'blog = "{pattern}"' if pattern else ""))
    return config


@pytest.mark.parametrize(("pattern", "base"), [
    *((pattern, "https://example.org/") for pattern in PATTERNS),
    (PATTERNS[0], "https://example.org/sub/path/"),  # a site below the host's root
])
def test_posts_read_exactly_as_hugo_reads_them(tmp_path: Path, pattern: str, base: str) -> None:
    config = _site(tmp_path / "site", pattern, base)
    posts = tmp_path / "site" / "content" / "blog"
    (tmp_path / "work").mkdir()
    reference = hugo_build(config, posts, tmp_path / "work")
    ours = digest_read(config, posts, tmp_path / "work")
    agree, total, differences = compare(ours, reference)
    # drafts, future, expired, unrendered pages and the bundle's resources are not posts
    assert total == 19
    assert differences == []
    assert agree == dict.fromkeys(FIELDS, total)
    paths = {p["path"] for p in ours["posts"]}
    assert "bundle/index.md" in paths and "bundle/notes.md" not in paths
    assert all(p["url"].startswith(base) for p in ours["posts"])


SPELLINGS = [  # what spf13/cast (Hugo's date reading) accepts, with and without zones
    "2006-01-02T15:04:05", "2006-01-02T15:04:05-0700", "2006-01-02 15:04:05Z",
    "2006-01-02 15:04:05 -0700", "2006-01-02 15:04:05 -07:00",
    "2006-01-02 15:04:05.123 -0700 MST", "Mon, 02 Jan 2006 15:04:05 MST",
    "Mon, 02 Jan 2006 15:04:05 EST", "Mon, 02 Jan 2006 15:04:05 GMT",
    "Mon, 02 Jan 2006 15:04:05 +0000", "02 Jan 06 15:04 MST", "02 Jan 06 15:04 -0700",
    "Monday, 02-Jan-06 15:04:05 EST", "Mon Jan  2 15:04:05 2006",
    "Mon Jan  2 15:04:05 MST 2006", "Mon Jan 02 15:04:05 -0700 2006",
    "2006-01-02T15:04:05.999999999Z", "2006-01-02T15:04:05+01:00", "2006-01-02",
    "02 Jan 2006",
]


def test_dates_in_every_spelling_hugo_reads(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "content" / "blog").mkdir(parents=True)
    config = site / "hugo.toml"
    config.write_text('baseURL = "https://example.org/"\ntimeZone = "America/New_York"\n')
    for number, spelling in enumerate(SPELLINGS):
        (site / "content" / "blog" / f"d{number}.md").write_text(
            f'---\ntitle: "{spelling}"\ndate: "{spelling}"\n---\nx\n')
    (tmp_path / "work").mkdir()
    reference = hugo_build(config, site / "content" / "blog", tmp_path / "work")
    ours = digest_read(config, site / "content" / "blog", tmp_path / "work")
    agree, total, differences = compare(ours, reference)
    assert agree["date"] == total
    assert total == len(SPELLINGS)
    assert differences == []


TITLES = [  # :title is the urlized title: which characters stay, go, or become '-'
    "Quotes “curly” \u2018single\u2019 «guillemets»", "Brackets [a] {b} <c> (d)",
    "Hash #tag and 50% off %zz", "Ça va? Déjà-vu — naïve café", "Ελληνικά και Русский",
    "العربية نص", "中文标点\uff0c测试。", "Emoji 😀 in 🚀 title", "Tabs\tand  double  spaces",
    "dots... and ellipsis…", "a/b/c slashes", "back\\slash", "under_score ~tilde @at",
    "Combining e\u0301 mark", "ﬁ ligature Ⅻ roman", "trailing-dash-", "-leading dash",
    "C# and F#", "Zero\u200bwidth", "Multiple---dashes", "100% pure", "x%2Fy encoded",
    "İstanbul ß straße", "Dž digraph", "C++ & Go: 2.10 — what's new?", "x.y,z;w=v+u*t!s$r",
]


def test_titles_urlize_as_hugo_urlizes_them(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "content" / "blog").mkdir(parents=True)
    config = site / "hugo.toml"
    config.write_text('baseURL = "https://example.org/"\n[permalinks]\nblog = "/:title/"\n')
    for number, title in enumerate(TITLES):
        (site / "content" / "blog" / f"t{number:02d}.md").write_text(
            f"---\ntitle: {json.dumps(title, ensure_ascii=False)}\n"
            f"date: 2020-01-{number + 1:02d}\n---\nx\n", encoding="utf-8")
    (tmp_path / "work").mkdir()
    reference = hugo_build(config, site / "content" / "blog", tmp_path / "work")
    ours = digest_read(config, site / "content" / "blog", tmp_path / "work")
    agree, total, differences = compare(ours, reference)
    assert total == len(TITLES)
    assert differences == []
    assert agree["url"] == total


GOLDMARK_POST = """---
title: Goldmark
date: 2024-03-01
---
It's "quoted" -- and --- so... << a >> see www.example.com or https://example.org/x.

## It's a `heading`

- [x] done
- [ ] todo

Term
: Definition

Noted[^n].

[^n]: The note.
"""


def test_content_renders_as_hugo_renders_it(tmp_path: Path) -> None:
    """Every post without shortcodes has Hugo's text; the Goldmark post also Hugo's HTML (an
    inline <!--more--> is one known HTML difference: Hugo splits the paragraph there)."""
    config = _site(tmp_path / "site", PATTERNS[0], "https://example.org/")
    posts = tmp_path / "site" / "content" / "blog"
    (posts / "goldmark.md").write_text(GOLDMARK_POST)
    (tmp_path / "work").mkdir()
    reference = hugo_build(config, posts, tmp_path / "work")
    digest_read(config, posts, tmp_path / "work")  # writes the config digest_content reads
    ours = digest_content(config, posts, tmp_path / "work")
    same_html, same_text, compared, _, differences = compare_content(ours, reference, posts)
    assert "goldmark.md" in ours
    assert same_text == compared > 5, differences
    assert not [d for d in differences if "text differs" in d or "goldmark.md" in d]
    assert same_html == compared - 1
