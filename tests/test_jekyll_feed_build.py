"""Built feeds follow the site's jekyll-feed settings: paths, entries per feed, which tags
and categories get a feed, excerpt_only; a moved feed leaves no stale file; the summary is
written as jekyll-feed writes it; and the feeds equal real jekyll-feed's, file for file."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import build_site, make_site, output, parse_feed, post

from digest.feeds.formats import rss_path

POSTS = {
    f"2024-01-{day:02d}-job-{day}.md": post(f"Job {day}", tags=f"[python, t{day % 2}]",
                                             categories="[news]" if day % 3 else "[misc]",
                                             body=f"First paragraph {day}.\n\nMore text.\n")
    for day in range(1, 13)
}
# two posts of one instant: jekyll-feed lists them by file name
POSTS["2024-01-12-a-tie.md"] = post("A tie", date='"2024-01-12"', tags="[python]")


def _site(tmp_path: Path, jekyll_yml: str, feeds: dict[str, Any] | None = None) -> Path:
    (tmp_path / "_config.yml").write_text(
        f"title: Jobs Board\nurl: https://jobs.example.org\ntimezone: America/New_York\n"
        f"plugins: [jekyll-feed]\n{jekyll_yml}", encoding="utf-8")
    return make_site(tmp_path, POSTS, feeds=feeds, jekyll_config=str(tmp_path / "_config.yml"))


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.suffix in (".xml", ".rss")}


def _titles(path: Path) -> list[str]:
    return [e.title for e in parse_feed(path).entries]


def test_paths_and_entries_follow_the_settings(tmp_path: Path) -> None:
    config = _site(tmp_path, "feed:\n  path: /atom.xml\n  posts_limit: 3\n"
                   "  tags: {path: /tags/, except: [t0]}\n  categories: [news]\n")
    build_site(config)
    assert _files(output(config)) == {
        "atom.xml", "atom.rss", "tags/python.xml", "tags/python.rss", "tags/t1.xml",
        "tags/t1.rss", "feed/news.xml", "feed/news.rss"}
    for name in ("atom.xml", "atom.rss"):
        assert _titles(output(config) / name) == ["A tie", "Job 12", "Job 11"]
    assert _titles(output(config) / "tags/t1.xml") == ["Job 11", "Job 9", "Job 7"]
    assert len(_titles(output(config) / "feed/news.xml")) == 3
    opml = (output(config) / "feeds.opml").read_text()
    assert "/atom.xml" in opml and "/tags/python.xml" in opml and "t0.xml" not in opml


def test_only_lists_the_tags_that_get_a_feed(tmp_path: Path) -> None:
    config = _site(tmp_path, "feed:\n  tags:\n    only: [t0, nosuchtag]\n  categories: []\n")
    build_site(config)
    assert _files(output(config)) == {"feed.xml", "feed.rss", "feed/by_tag/t0.xml",
                                      "feed/by_tag/t0.rss"}


def test_tags_false_writes_no_tag_feeds(tmp_path: Path) -> None:
    config = _site(tmp_path, "feed:\n  tags: false\n")
    build_site(config)
    assert not any(f.startswith("feed/by_tag/") for f in _files(output(config)))
    assert "feed/news.xml" in _files(output(config))  # categories: every one by default


def test_a_jekyll_feed_site_gets_10_entries_and_config_yaml_can_say_more(tmp_path: Path) -> None:
    config = _site(tmp_path, "")
    build_site(config)
    assert len(_titles(output(config) / "feed.xml")) == 10
    config = _site(tmp_path, "", feeds={"entries": 12})
    build_site(config)
    assert len(_titles(output(config) / "feed.xml")) == 12


def test_excerpt_only_entries_carry_the_summary_and_no_content(tmp_path: Path) -> None:
    config = _site(tmp_path, "feed:\n  excerpt_only: true\n")
    build_site(config)
    for name in ("feed.xml", "feed.rss"):
        entry = parse_feed(output(config) / name).entries[1]
        assert "content" not in entry and entry.summary == "First paragraph 12."
    assert "More text" not in (output(config) / "feed.xml").read_text()


def test_moving_a_feed_removes_its_old_files(tmp_path: Path) -> None:
    config = _site(tmp_path, "")
    build_site(config)
    assert (output(config) / "feed/by_tag/t0.xml").is_file()
    config = _site(tmp_path, "feed:\n  path: atom.xml\n  tags: {path: tags/, except: [t1]}\n")
    report = build_site(config)
    files = _files(output(config))
    assert "feed.xml" not in files and "feed/by_tag/t0.xml" not in files
    assert {"atom.xml", "atom.rss", "tags/t0.xml", "tags/python.rss"} <= files
    assert "tags/t1.xml" not in files and "feed/by_tag/t1.rss" in report.removed
    assert build_site(config).removed == []  # and the next build has nothing to remove


def test_a_tag_feed_that_would_overwrite_a_category_feed_is_not_written(tmp_path: Path) -> None:
    posts = {"2024-01-01-a.md": post("A", tags="[news]", categories="[news]")}
    (tmp_path / "_config.yml").write_text("feed:\n  tags: {path: feed/}\n")
    config = make_site(tmp_path, posts, jekyll_config=str(tmp_path / "_config.yml"))
    report = build_site(config)
    assert report.feeds == 2 and (output(config) / "feed/news.xml").is_file()


def test_rss_paths_follow_the_atom_ones() -> None:
    assert rss_path("feed.xml") == "feed.rss"
    assert rss_path("a/b.atom") == "a/b.rss"
    assert rss_path("feed") == "feed.rss"
    assert rss_path("feed.rss") == "feed.rss.rss"  # never the Atom file itself


def _rss2email_text_choice(entry: Any) -> Any:
    """What rss2email (feed.py, _get_entry_content) mails in its default text mode: the
    first text/plain of the contents and the summary, else the first text/html."""
    contents = [*entry.get("content", []), *([entry.summary_detail]
                                             if entry.get("summary_detail") else [])]
    for kind in ("text/plain", "text/html"):
        for content in contents:
            if content["type"] == kind:
                return content
    return None


def test_text_readers_get_the_whole_post_and_the_summary_is_jekyll_feeds(tmp_path: Path) -> None:
    posts = {"2024-01-01-a.md": post("A", body="One <b>&amp;</b> 1 < 2.\n\nTwo.\n")}
    config = make_site(tmp_path, posts)
    build_site(config)
    entry, = parse_feed(output(config) / "feed.xml").entries
    assert entry.summary_detail.type == "text/html"
    assert entry.summary == "One &amp; 1 &lt; 2."  # escaped text: no markup slips in
    chosen = _rss2email_text_choice(entry)
    assert "Two." in chosen["value"] and chosen is not entry.summary_detail


JEKYLL_YML = """\
title: Jobs Board
url: https://jobs.example.org
timezone: America/New_York
plugins: [jekyll-feed]
feed:
  posts_limit: 4
  tags:
    except: [t1]
  categories: [news]
"""


@pytest.mark.skipif(shutil.which("jekyll") is None, reason="jekyll is not installed")
def test_the_feeds_equal_real_jekyll_feeds(tmp_path: Path) -> None:
    config = make_site(tmp_path, POSTS, jekyll_config=str(tmp_path / "_config.yml"))
    (tmp_path / "_config.yml").write_text(JEKYLL_YML)
    subprocess.run(["jekyll", "build", "-q", "-s", str(tmp_path), "-d", str(tmp_path / "_site")],
                   check=True, capture_output=True, timeout=300,
                   env={**os.environ, "JEKYLL_ENV": "production"})
    build_site(config)
    theirs = {f for f in _files(tmp_path / "_site") if f.endswith(".xml")}
    assert theirs == {"feed.xml", "feed/by_tag/python.xml", "feed/by_tag/t0.xml",
                      "feed/news.xml"}
    assert theirs <= _files(output(config))
    for name in theirs:
        jekyll = parse_feed(tmp_path / "_site" / name).entries
        ours = parse_feed(output(config) / name).entries
        assert [e.id for e in ours] == [e.id for e in jekyll], name
        assert [e.summary for e in ours] == [e.summary for e in jekyll], name


def test_the_stylesheet_shows_the_summary_as_its_text(tmp_path: Path) -> None:
    from lxml import etree

    from digest.util import builtin

    posts = {"2024-01-01-a.md": post("A", body="R&D &amp;amp; 1 < 2 > 0 &lt;b&gt;.\n")}
    config = make_site(tmp_path, posts)
    build_site(config)
    page = etree.XSLT(etree.fromstring(builtin.read_bytes("feed.xsl")))
    for name in ("feed.xml", "feed.rss"):
        html = str(page(etree.parse(str(output(config) / name))))
        assert "<div>R&amp;D &amp;amp; 1 &lt; 2 &gt; 0 &lt;b&gt;.</div>" in html, html
