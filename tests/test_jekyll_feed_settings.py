"""jekyll-feed's `feed:` settings in the site's _config.yml are read into Config.feeds and
Config.feed_entries: each setting, the entries' precedence, and bad values reported at
their line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_site, post, run_cli

from digest.config import CACHE_NAME, FeedSettings, load_config
from digest.config.file import read_config
from digest.errors import ConfigError


def _site(tmp_path: Path, jekyll_yml: str, feeds: dict[str, object] | None = None) -> Path:
    (tmp_path / "_config.yml").write_text(jekyll_yml, encoding="utf-8")
    return make_site(tmp_path, {"2024-01-01-a.md": post("A")}, feeds=feeds,
                     jekyll_config=str(tmp_path / "_config.yml"))


def _problems(tmp_path: Path, jekyll_yml: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        read_config(_site(tmp_path, jekyll_yml))
    return [str(p) for p in caught.value.problems]


def test_no_jekyll_config_keeps_digests_defaults(tmp_path: Path) -> None:
    config = read_config(make_site(tmp_path, {"2024-01-01-a.md": post("A")}))
    assert config.feeds == FeedSettings() and config.feed_entries == 20


def test_a_site_without_jekyll_feed_keeps_20_entries(tmp_path: Path) -> None:
    config = read_config(_site(tmp_path, "title: Jobs\nplugins: [jekyll-sitemap]\n"))
    assert config.feed_entries == 20 and config.feeds == FeedSettings()


@pytest.mark.parametrize("yml", ["plugins: [jekyll-feed]\n", "gems:\n  - jekyll-feed\n",
                                 "feed:\n  excerpt_only: false\n"])
def test_a_jekyll_feed_site_gets_jekyll_feeds_10_entries(tmp_path: Path, yml: str) -> None:
    assert read_config(_site(tmp_path, yml)).feed_entries == 10


def test_posts_limit_sets_the_entries(tmp_path: Path) -> None:
    assert read_config(_site(tmp_path, "feed:\n  posts_limit: 7\n")).feed_entries == 7
    assert read_config(_site(tmp_path, "feed:\n  posts_limit: '8'\n")).feed_entries == 8


def test_config_yamls_own_entries_win_over_posts_limit(tmp_path: Path) -> None:
    path = _site(tmp_path, "plugins: [jekyll-feed]\nfeed:\n  posts_limit: 7\n",
                 feeds={"entries": 25})
    assert read_config(path).feed_entries == 25


def test_every_setting_is_read(tmp_path: Path) -> None:
    config = read_config(_site(tmp_path, """\
feed:
  path: /atom.xml
  excerpt_only: true
  categories: [news, 2024]
  tags:
    only: [python, data]
    except: [data]
    path: /feeds/tags/
"""))
    assert config.feeds == FeedSettings(
        path="atom.xml", excerpt_only=True, categories=("news", "2024"),
        tags_only=("python", "data"), tags_except=("data",), tags_path="feeds/tags/")


@pytest.mark.parametrize(("yml", "tags"), [("feed:\n  tags: false\n", False),
                                           ("feed:\n  tags: true\n", True),
                                           ("feed:\n  tags:\n", True)])
def test_tags_on_or_off(tmp_path: Path, yml: str, tags: bool) -> None:
    assert read_config(_site(tmp_path, yml)).feeds.tags is tags


def test_the_posts_collection_settings_win_as_in_jekyll_feed(tmp_path: Path) -> None:
    config = read_config(_site(tmp_path, """\
feed:
  path: top.xml
  collections:
    posts:
      path: posts.xml
      categories: [news]
    other: {path: other.xml}
"""))
    assert config.feeds.path == "posts.xml" and config.feeds.categories == ("news",)


@pytest.mark.parametrize(("yml", "line", "words"), [
    ("title: x\nfeed: [a]\n", 2, "'feed' must be a mapping"),
    ("feed:\n  posts_limit: 0\n", 2, "'feed.posts_limit' must be a whole number"),
    ("feed:\n  posts_limit: yes\n", 2, "'feed.posts_limit' must be a whole number"),
    ("feed:\n  posts_limit: 100001\n", 2,
     "'feed.posts_limit' must be a whole number from 1 to 10000"),
    ("feed:\n  path: ../../etc/passwd\n", 2, "'feed.path' is not a plain path"),
    ("feed:\n  path: feeds/\n", 2, "'feed.path' names a folder"),
    ("feed:\n  path: 12\n", 2, "'feed.path' must be a path"),
    ("feed:\n  excerpt_only: 'no'\n", 2, "'feed.excerpt_only' must be true or false"),
    ("feed:\n  categories: news\n", 2, "'feed.categories' must be a list"),
    ("feed:\n  tags: [a]\n", 2, "'feed.tags' must be true, false or a mapping"),
    ("feed:\n  tags:\n    only: a\n", 3, "'feed.tags.only' must be a list"),
    ("feed:\n  tags:\n    except: [[a]]\n", 3, "'feed.tags.except' must be a list"),
    ("feed:\n  tags:\n    path: a/../../b/\n", 3, "'feed.tags.path' is not a plain path"),
    ("feed:\n  collections:\n    posts: x\n", 3, "'feed.collections.posts' must be"),
])
def test_a_bad_value_is_reported_at_its_line(tmp_path: Path, yml: str, line: int,
                                              words: str) -> None:
    problem, = _problems(tmp_path, yml)
    assert f"_config.yml:{line}: {words}" in problem


def test_every_bad_value_is_reported_at_once(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "feed:\n  path: ..\n  posts_limit: -1\n  excerpt_only: 1\n")
    assert [p.split(": ")[0].rsplit(":", 1)[1] for p in problems] == ["2", "3", "4"]


def test_feed_settings_survive_the_config_cache(tmp_path: Path) -> None:
    path = _site(tmp_path, "feed:\n  path: atom.xml\n  posts_limit: 3\n  categories: []\n"
                 "  tags: {only: [python], except: [x]}\n")
    (tmp_path / "state").mkdir()
    first = load_config(path)
    cached = json.loads((tmp_path / "state" / CACHE_NAME).read_text())
    assert cached["config"]["feeds"]["tags_only"] == ["python"]
    again = load_config(path)
    assert again == first and again.feeds.categories == () and again.feed_entries == 3


def test_editing_the_feed_settings_misses_the_cache(tmp_path: Path) -> None:
    path = _site(tmp_path, "feed:\n  posts_limit: 3\n")
    (tmp_path / "state").mkdir()
    assert load_config(path).feed_entries == 3
    (tmp_path / "_config.yml").write_text("feed:\n  posts_limit: 4\n")
    assert load_config(path).feed_entries == 4


def test_digest_init_leaves_the_entries_to_jekyll_feeds_settings(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "_posts").mkdir(parents=True)
    (site / "_config.yml").write_text("title: Blog\nurl: https://blog.example.net\n"
                                      "plugins: [jekyll-feed]\nfeed:\n  posts_limit: 6\n")
    (site / "_posts" / "2024-05-01-a.md").write_text(post("A"))
    code, _out, err = run_cli(["--config", str(tmp_path / "config.yaml"), "init", str(site)])
    assert code == 0, err
    assert load_config(tmp_path / "config.yaml").feed_entries == 6
