"""JSON Feed 1.1 (`feeds: json: true`): one beside each Atom feed, valid by the spec's rules,
listing what the Atom feed lists, byte-stable, rewritten only when it changes, removed with
its tag, and served as application/feed+json."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import SITE_URL, build_site, make_site, output, parse_feed, post, write_posts
from starlette.datastructures import Headers

from digest.config import load_config
from digest.errors import ConfigError
from digest.feeds.formats import feed_file_stem
from digest.web.files import OutputFiles

POSTS = {
    "2019-03-01-data-engineer.md": post("Data engineer", date='"2019-03-01 09:00:00"',
                                        tags="[python, Data Science]", author="Ana Gómez"),
    "2019-03-02-it-support.md": post("IT support & more", date='"2019-03-02 09:00:00"',
                                     tags="[IT, i.t.]", body="Fix *all* the things.\n"),
    "2019-03-03-analyste.md": post("Analyste", date='"2019-03-03 09:00:00"',
                                   tags="[données, Data Science]", body="Ünïcödé \"quotes\"\n"),
    "2019-03-04-python-dev.md": post("Python dev", date='"2019-03-04 09:00:00"',
                                     tags="[python]", category="Remote"),
    "2019-03-05-empty.md": post("No text at all", date='"2019-03-05 09:00:00"', body=""),
}

# JSON Feed 1.1's fields (https://www.jsonfeed.org/version/1.1/): what each may hold
TOP = {"version": str, "title": str, "home_page_url": str, "feed_url": str,
       "description": str, "user_comment": str, "next_url": str, "icon": str, "favicon": str,
       "authors": list, "language": str, "expired": bool, "hubs": list, "items": list}
ITEM = {"id": str, "url": str, "external_url": str, "title": str, "content_html": str,
        "content_text": str, "summary": str, "image": str, "banner_image": str,
        "date_published": str, "date_modified": str, "authors": list, "tags": list,
        "language": str, "attachments": list}
AUTHOR = {"name": str, "url": str, "avatar": str}
# RFC 3339, with the offset the spec requires
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
URL = re.compile(r"https?://[^\s]+")


def _no_nulls(value: Any, where: str) -> None:
    assert value is not None, f"{where}: null"
    if isinstance(value, dict):
        for key, item in value.items():
            _no_nulls(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _no_nulls(item, f"{where}[{i}]")


def _typed(obj: dict[str, Any], fields: Mapping[str, type], where: str) -> None:
    assert set(obj) <= set(fields), f"{where}: unknown keys {set(obj) - set(fields)}"
    for key, value in obj.items():
        assert isinstance(value, fields[key]), f"{where}.{key}: {type(value).__name__}"


def validate(feed: Any) -> None:
    """Assert *feed* follows JSON Feed 1.1: required fields, types, dates, URLs, unique ids."""
    _no_nulls(feed, "feed")
    assert isinstance(feed, dict)
    _typed(feed, TOP, "feed")
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["title"].strip()
    for key in ("home_page_url", "feed_url"):
        assert URL.fullmatch(feed[key]), key
    for author in feed.get("authors", []):
        _typed(author, AUTHOR, "feed.authors")
        assert author.get("name") or author.get("url")
    for hub in feed.get("hubs", []):
        assert set(hub) == {"type", "url"} and URL.fullmatch(hub["url"])
    ids = [item["id"] for item in feed["items"]]
    assert len(ids) == len(set(ids)), "item ids must be unique"
    for item in feed["items"]:
        where = f"item {item.get('id')}"
        _typed(item, ITEM, where)
        assert item["id"], where
        assert "content_html" in item or "content_text" in item, where
        assert URL.fullmatch(item["url"]), where
        for key in ("date_published", "date_modified"):
            assert RFC3339.fullmatch(item[key]), f"{where}.{key}: {item[key]}"
            assert datetime.fromisoformat(item[key]).tzinfo is not None
        assert all(isinstance(tag, str) and tag for tag in item.get("tags", []))
        for author in item.get("authors", []):
            _typed(author, AUTHOR, f"{where}.authors")


def _json_files(config: Path) -> list[Path]:
    return sorted(output(config).rglob("*.json"))


@pytest.fixture
def built(tmp_path: Path) -> Path:
    config = make_site(tmp_path, POSTS, feeds={"json": True}, description="Jobs in data")
    assert build_site(config).found.rejected == []
    return config


def test_json_feeds_are_off_by_default(tmp_path):
    config = make_site(tmp_path, POSTS)
    build_site(config)
    assert _json_files(config) == []


def test_one_json_feed_beside_each_atom_feed(built):
    out = output(built)
    atoms = {p.relative_to(out).with_suffix("") for p in out.rglob("*.xml")}
    assert atoms and {p.relative_to(out).with_suffix("") for p in _json_files(built)} == atoms
    assert (out / "feed.json").is_file() and (out / "feed/Remote.json").is_file()
    assert (out / f"feed/by_tag/{feed_file_stem('données')}.json").is_file()


def test_every_json_feed_is_valid_json_feed_1_1(built):
    for path in _json_files(built):
        validate(json.loads(path.read_bytes()))


def test_json_feed_lists_what_the_atom_feed_of_the_same_spec_lists(built):
    for path in _json_files(built):
        feed = json.loads(path.read_bytes())
        atom = parse_feed(path.with_suffix(".xml"))
        assert feed["title"] == atom.feed.title
        assert feed["home_page_url"] == SITE_URL + "/"
        assert feed["feed_url"] == SITE_URL + "/" + path.relative_to(output(built)).as_posix()
        assert [i["id"] for i in feed["items"]] == [e.id for e in atom.entries]
        assert [i["title"] for i in feed["items"]] == [e.title for e in atom.entries]
        assert [i["url"] for i in feed["items"]] == [e.link for e in atom.entries]
        for item, entry in zip(feed["items"], atom.entries, strict=True):
            assert datetime.fromisoformat(item["date_modified"]).utctimetuple() == \
                entry.updated_parsed
            assert item.get("tags", []) == [t.term for t in entry.get("tags", [])]


def test_item_fields_carry_the_post(built):
    items = {i["title"]: i for i in json.loads((output(built) / "feed.json").read_bytes())["items"]}
    engineer = items["Data engineer"]
    assert engineer["authors"] == [{"name": "Ana Gómez"}]
    assert engineer["tags"] == ["python", "Data Science"]
    assert engineer["date_published"] == "2019-03-01T09:00:00-05:00"
    assert items["IT support & more"]["content_html"] == \
        "<p>Fix <em>all</em> the things.</p>\n"
    assert "Ünïcödé" in (output(built) / "feed.json").read_text(encoding="utf-8")
    # a post with no text still has content, as the spec requires, and no empty content_html
    empty = items["No text at all"]
    assert "content_html" not in empty and empty["content_text"] == "No text at all"
    feed = json.loads((output(built) / "feed.json").read_bytes())
    assert feed["description"] == "Jobs in data" and feed["language"] == "en"
    assert "hubs" not in feed


def test_json_feed_bytes_are_stable_with_sorted_keys(built, tmp_path):
    first = {p: p.read_bytes() for p in _json_files(built)}
    for data in first.values():
        assert data == (json.dumps(json.loads(data), ensure_ascii=False, sort_keys=True,
                                   indent=1) + "\n").encode()
    # the same site built afresh elsewhere: byte for byte the same
    other = tmp_path / "again"
    config = make_site(other, POSTS, feeds={"json": True}, description="Jobs in data")
    build_site(config)
    for path, data in first.items():
        assert (output(config) / path.relative_to(output(built))).read_bytes() == data


def test_unchanged_rebuild_leaves_json_feeds_alone(built):
    mtimes = {p: p.stat().st_mtime_ns for p in _json_files(built)}
    report = build_site(built)
    assert not [w for w in report.written if w.endswith(".json")]
    assert {p: p.stat().st_mtime_ns for p in _json_files(built)} == mtimes


def test_a_changed_post_rewrites_only_the_json_feeds_that_list_it(built):
    write_posts(built.parent, {"2019-03-04-python-dev.md": post(
        "Python developer", date='"2019-03-04 09:00:00"', tags="[python]", category="Remote")})
    report = build_site(built)
    assert sorted(w for w in report.written if w.endswith(".json")) == [
        "feed.json", "feed/Remote.json", "feed/by_tag/python.json"]
    titles = [i["title"] for i in json.loads((output(built) / "feed.json").read_bytes())["items"]]
    assert "Python developer" in titles


def test_a_tag_no_post_carries_any_more_loses_its_json_feed(built):
    gone = output(built) / "feed/Remote.json"
    assert gone.is_file()
    write_posts(built.parent, {"2019-03-04-python-dev.md": post(
        "Python dev", date='"2019-03-04 09:00:00"', tags="[python]")})
    report = build_site(built)
    assert not gone.exists() and "feed/Remote.json" in report.removed
    assert not (output(built) / "feed/Remote.xml").exists()


def test_turning_json_off_removes_the_json_feeds(built, tmp_path):
    assert _json_files(built)
    make_site(tmp_path, POSTS, feeds={"json": False}, description="Jobs in data")
    report = build_site(built)
    assert _json_files(built) == []
    assert "feed.json" in report.removed
    # and on again: all back, the Atom feeds untouched
    atom = (output(built) / "feed.xml").stat().st_mtime_ns
    make_site(tmp_path, POSTS, feeds={"json": True}, description="Jobs in data")
    build_site(built)
    assert (output(built) / "feed.json").is_file()
    assert (output(built) / "feed.xml").stat().st_mtime_ns == atom


def test_a_missing_json_feed_is_written_again(built):
    (output(built) / "feed/by_tag/python.json").unlink()
    report = build_site(built)
    assert "feed/by_tag/python.json" in report.written


def test_web_front_serves_json_feeds_as_feed_json(built):
    files = OutputFiles(output(built))
    response = files.response("feed/by_tag/python.json", Headers())
    assert response is not None and response.status_code == 200
    assert response.headers["content-type"] == "application/feed+json; charset=utf-8"
    assert response.body == (output(built) / "feed/by_tag/python.json").read_bytes()
    etag = response.headers["etag"]
    again = files.response("feed/by_tag/python.json", Headers({"if-none-match": etag}))
    assert again is not None and again.status_code == 304


def test_json_must_be_yes_or_no(tmp_path):
    config = make_site(tmp_path, POSTS, feeds={"json": "sometimes"})
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert "feeds.json" in str(caught.value)


def test_a_misspelt_json_key_is_named_with_the_fix(tmp_path):
    config = make_site(tmp_path, POSTS, feeds={"jsn": True})
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert "feeds.jsn" in str(caught.value) and "json" in str(caught.value)
