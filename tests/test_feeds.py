"""The built feeds: names, validity, order, limits, entry fields, stable bytes, incremental
rewrites, permanent ids, OPML, the stylesheet, RSS self links, and a real feed reader."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from conftest import (
    SITE_URL,
    build_site,
    make_site,
    output,
    parse_feed,
    post,
    read_site,
    write_posts,
)
from lxml import etree

from digest import __version__
from digest.feeds.formats import feed_file_stem
from digest.state.migrations import MIGRATIONS

ATOM = "{http://www.w3.org/2005/Atom}"

POSTS = {
    "2019-03-01-data-engineer.md": post("Data engineer", date='"2019-03-01 09:00:00"',
                                        tags="[python, Data Science]"),
    "2019-03-02-it-support.md": post("IT support", date='"2019-03-02 09:00:00"',
                                     tags="[IT, i.t.]", body="Fix *all* the things.\n"),
    "2019-03-03-analyste.md": post("Analyste", date='"2019-03-03 09:00:00"',
                                   tags="[données, Data Science]"),
    "2019-03-04-python-dev.md": post("Python dev", date='"2019-03-04 09:00:00"',
                                     tags="[python]", category="Remote"),
    "2019-03-05-sysadmin.md": post("Sysadmin", date='"2019-03-05 09:00:00"', tags="[IT]"),
    "2019-03-06-ml-lead.md": post("ML lead", date='"2019-03-06 09:00:00"',
                                  tags="[python, Data Science]"),
    # three posts on one day without a time: their `updated` must still differ
    "2019-03-07-one.md": post("Same day one", tags="[python]"),
    "2019-03-07-two.md": post("Same day two", tags="[python]"),
}
# posts of the same day by file name, as jekyll-feed lists them
NEWEST_FIRST = ["Same day one", "Same day two", "ML lead", "Sysadmin", "Python dev",
                "Analyste", "IT support", "Data engineer"]
TAGS = ["Data Science", "IT", "données", "i.t.", "python"]


@pytest.fixture
def built(tmp_path: Path) -> Path:
    config = make_site(tmp_path, POSTS)
    report = build_site(config)
    assert report.found.rejected == []
    return config


def _feed_files(config: Path) -> list[Path]:
    return sorted(p for p in output(config).rglob("*") if p.suffix in (".xml", ".rss"))


def _mtimes(config: Path) -> dict[str, int]:
    return {str(p.relative_to(output(config))): p.stat().st_mtime_ns
            for p in output(config).rglob("*") if p.is_file()}


def _bytes(config: Path) -> dict[str, bytes]:
    return {str(p.relative_to(output(config))): p.read_bytes()
            for p in output(config).rglob("*") if p.is_file()}


# --- which files --------------------------------------------------------------------------

def test_jekyll_feed_names_for_simple_tags_and_safe_distinct_names_otherwise(built):
    out = output(built)
    assert (out / "feed.xml").is_file() and (out / "feed.rss").is_file()
    assert (out / "feed/by_tag/IT.xml").is_file()
    assert (out / "feed/by_tag/python.xml").is_file()
    stems = {tag: feed_file_stem(tag) for tag in TAGS}
    assert stems["IT"] == "IT" and stems["python"] == "python"
    assert re.fullmatch(r"Data-Science-[0-9a-f]{8}", stems["Data Science"])
    assert re.fullmatch(r"donnees-[0-9a-f]{8}", stems["données"])
    assert re.fullmatch(r"i-t-[0-9a-f]{8}", stems["i.t."])
    assert len(set(stems.values())) == len(TAGS)
    for stem in stems.values():
        assert (out / f"feed/by_tag/{stem}.xml").is_file()
        assert (out / f"feed/by_tag/{stem}.rss").is_file()
    expected = {"feed.xml", "feed.rss", "feed/Remote.xml", "feed/Remote.rss"} | {
        f"feed/by_tag/{s}.{ext}" for s in stems.values() for ext in ("xml", "rss")}
    assert {str(p.relative_to(out)) for p in _feed_files(built)} == expected


def test_similar_tags_never_share_a_feed_file():
    tags = ["i.t.", "I.T.", "i-t", "i t", "IT", "it"]
    assert len({feed_file_stem(t) for t in tags}) == len(tags)


def test_every_feed_file_is_well_formed_for_feedparser_and_lxml(built):
    files = _feed_files(built)
    assert len(files) == 2 * (1 + len(TAGS) + 1)
    for path in files:
        parsed = parse_feed(path)
        assert parsed.version == ("atom10" if path.suffix == ".xml" else "rss20")
        etree.fromstring(path.read_bytes())


def test_tag_feed_holds_exactly_that_tags_posts_with_a_titled_feed(built):
    path = output(built) / f"feed/by_tag/{feed_file_stem('Data Science')}.xml"
    feed = parse_feed(path)
    assert feed.feed.title == "Jobs Board: Data Science"
    assert [e.title for e in feed.entries] == ["ML lead", "Analyste", "Data engineer"]
    it = parse_feed(output(built) / f"feed/by_tag/{feed_file_stem('i.t.')}.xml")
    assert [e.title for e in it.entries] == ["IT support"]


# --- entries ------------------------------------------------------------------------------

def test_site_feed_lists_entries_newest_first(built):
    for name in ("feed.xml", "feed.rss"):
        assert [e.title for e in parse_feed(output(built) / name).entries] == NEWEST_FIRST


def test_feeds_are_limited_to_the_configured_number_of_entries(tmp_path):
    config = make_site(tmp_path, POSTS, feeds={"entries": 3})
    build_site(config)
    for name in ("feed.xml", "feed.rss"):
        assert [e.title for e in parse_feed(output(config) / name).entries] == NEWEST_FIRST[:3]
    python = parse_feed(output(config) / "feed/by_tag/python.xml")
    assert [e.title for e in python.entries] == ["Same day one", "Same day two", "ML lead"]


def test_atom_entry_has_every_field(built):
    feed = parse_feed(output(built) / "feed.xml")
    entry = next(e for e in feed.entries if e.title == "IT support")
    assert entry.link == f"{SITE_URL}/2019/03/02/it-support.html"
    assert entry.id == f"{SITE_URL}/2019/03/02/it-support"
    assert entry.published == "2019-03-02T09:00:00-05:00"
    assert entry.updated == "2019-03-02T09:00:00-05:00"
    assert entry.content[0].type == "text/html"
    assert entry.content[0].value == "<p>Fix <em>all</em> the things.</p>"
    assert entry.summary == "Fix all the things."
    assert [t.term for t in entry.tags] == ["IT", "i.t."]


def test_rss_item_has_every_field(built):
    feed = parse_feed(output(built) / "feed.rss")
    item = next(e for e in feed.entries if e.title == "Python dev")
    assert item.link == f"{SITE_URL}/remote/2019/03/04/python-dev.html"
    assert item.id == f"{SITE_URL}/remote/2019/03/04/python-dev"
    assert item.published == "Mon, 04 Mar 2019 09:00:00 -0500"
    assert item.content[0].value == "<p>Some text.</p>"
    assert item.summary == "Some text."
    assert [t.term for t in item.tags] == ["python", "Remote"]


def test_updated_values_are_unique_within_every_feed(built):
    for path in _feed_files(built):
        if path.suffix != ".xml":
            continue
        stamps = [e.updated for e in parse_feed(path).entries]
        assert len(stamps) == len(set(stamps)), path


def test_same_day_posts_keep_their_published_date_and_get_distinct_updated(built):
    feed = parse_feed(output(built) / "feed.xml")
    same = {e.title: (e.published, e.updated) for e in feed.entries if "Same day" in e.title}
    assert same == {
        "Same day one": ("2019-03-07T00:00:00-05:00", "2019-03-07T00:00:00-05:00"),
        "Same day two": ("2019-03-07T00:00:00-05:00", "2019-03-07T00:00:01-05:00"),
    }


def test_feed_updated_is_the_newest_entry_updated(built):
    for path in _feed_files(built):
        if path.suffix == ".xml":
            feed = parse_feed(path)
            newest = max(feed.entries, key=lambda e: e.updated_parsed)
            assert feed.feed.updated == newest.updated, path
    rss = etree.fromstring((output(built) / "feed.rss").read_bytes())
    assert rss.findtext("channel/lastBuildDate") == "Thu, 07 Mar 2019 00:00:01 -0500"


# --- stable output and incremental rebuilds -----------------------------------------------

def test_second_build_writes_nothing_and_keeps_bytes_and_mtimes(built):
    mtimes, data = _mtimes(built), _bytes(built)
    report = build_site(built)
    assert report.written == []
    assert report.skipped == report.feeds == 1 + len(TAGS) + 1
    assert report.rendered == 0
    assert _mtimes(built) == mtimes
    assert _bytes(built) == data


def test_a_clean_rebuild_gives_identical_bytes(built, tmp_path):
    data = _bytes(built)
    shutil.rmtree(output(built))
    shutil.rmtree(tmp_path / "state")
    build_site(built)
    assert _bytes(built) == data


def test_adding_a_post_rewrites_only_the_feeds_that_contain_it(built, tmp_path):
    mtimes = _mtimes(built)
    write_posts(tmp_path, {"2019-03-08-new-it.md": post("New IT", date='"2019-03-08 09:00:00"',
                                                         tags="[IT]")})
    report = build_site(built)
    assert sorted(report.written) == ["feed.rss", "feed.xml", "feed/by_tag/IT.rss",
                                      "feed/by_tag/IT.xml", "feeds.html"]  # its counts
    # every post of a rewritten feed is needed (the site feed holds all 9); old ones come
    # from the render cache
    assert report.rendered == 9
    after = _mtimes(built)
    changed = sorted(name for name in after if after[name] != mtimes.get(name))
    assert changed == sorted(report.written)
    assert [e.title for e in parse_feed(output(built) / "feed/by_tag/IT.xml").entries] == [
        "New IT", "Sysadmin", "IT support"]
    assert parse_feed(output(built) / "feed.xml").entries[0].title == "New IT"


def test_editing_a_post_rewrites_its_feeds_with_the_new_text(built, tmp_path):
    write_posts(tmp_path, {"2019-03-02-it-support.md": post(
        "IT support", date='"2019-03-02 09:00:00"', tags="[IT, i.t.]", body="Now paid.\n")})
    report = build_site(built)
    stem = feed_file_stem("i.t.")
    assert sorted(report.written) == sorted([
        "feed.xml", "feed.rss", "feed/by_tag/IT.xml", "feed/by_tag/IT.rss",
        f"feed/by_tag/{stem}.xml", f"feed/by_tag/{stem}.rss"])
    entry = parse_feed(output(built) / f"feed/by_tag/{stem}.xml").entries[0]
    assert entry.summary == "Now paid."


def test_removing_a_post_drops_it_from_its_feeds(built, tmp_path):
    (tmp_path / "_posts" / "2019-03-05-sysadmin.md").unlink()
    build_site(built)
    assert [e.title for e in parse_feed(output(built) / "feed/by_tag/IT.xml").entries] == [
        "IT support"]
    assert "Sysadmin" not in [e.title for e in parse_feed(output(built) / "feed.xml").entries]


def test_removing_the_last_post_of_a_tag_leaves_no_feed_listing_it(built, tmp_path):
    """Regression: the feed of a tag whose last post was deleted used to stay on disk,
    still listing the deleted post."""
    (tmp_path / "_posts" / "2019-03-03-analyste.md").unlink()
    build_site(built)
    stem = feed_file_stem("données")
    assert not (output(built) / f"feed/by_tag/{stem}.xml").exists()
    assert not (output(built) / f"feed/by_tag/{stem}.rss").exists()
    opml = ET.parse(output(built) / "feeds.opml").getroot()
    assert not [o for o in opml.iter("outline") if stem in o.get("xmlUrl", "")]
    # the other tag of that post still has a feed, without it
    science = parse_feed(output(built) / f"feed/by_tag/{feed_file_stem('Data Science')}.xml")
    assert [e.title for e in science.entries] == ["ML lead", "Data engineer"]
    # and the next build is quiet again
    assert build_site(built).written == []


def test_incremental_build_equals_a_clean_build_after_adding_a_same_day_post(tmp_path):
    """Regression: a same-day post shifts older posts' `updated` by +1 s; tag feeds
    not containing the new post used to be skipped, so they kept the old values."""
    config = make_site(tmp_path, {"2019-01-01-b.md": post("B", tags="[t]"),
                                  "2019-01-01-c.md": post("C", tags="[u]")})
    build_site(config)
    write_posts(tmp_path, {"2019-01-01-a.md": post("A", tags="[t]")})
    build_site(config)
    incremental = _bytes(config)
    shutil.rmtree(output(config))
    shutil.rmtree(tmp_path / "state")
    build_site(config)
    assert _bytes(config)["feed/by_tag/u.xml"] == incremental["feed/by_tag/u.xml"]


def test_entry_ids_survive_permalink_and_url_changes(built, tmp_path):
    before = {e.title: e.id for e in parse_feed(output(built) / "feed.xml").entries}
    assert before["Sysadmin"] == f"{SITE_URL}/2019/03/05/sysadmin"
    config = make_site(tmp_path, {}, permalink="/jobs/:title/", url="https://new.example.net")
    report = build_site(config)
    assert "feed.xml" in report.written
    feed = parse_feed(output(config) / "feed.xml")
    assert {e.title: e.id for e in feed.entries} == before
    sysadmin = next(e for e in feed.entries if e.title == "Sysadmin")
    assert sysadmin.link == "https://new.example.net/jobs/sysadmin/"


def test_new_post_at_an_old_posts_former_id_gets_a_distinct_id(built, tmp_path):
    (tmp_path / "_posts" / "2019-03-05-sysadmin.md").rename(
        tmp_path / "_posts" / "2019-03-05-sysadmin-old.md")
    write_posts(tmp_path, {"2019-03-05-sysadmin.md": post("Sysadmin again", tags="[x]")})
    build_site(built)
    ids = [e.id for e in parse_feed(output(built) / "feed.xml").entries]
    assert len(ids) == len(set(ids)) == 9



def test_two_new_posts_wanting_one_id_in_one_build_get_distinct_ids(tmp_path):
    """The newer keeps the plain id (as a later post would find it taken): decided the same
    way whether or not the build needs to sort its new posts for anything else."""
    config = make_site(tmp_path, {
        "2019-03-01-x.md": post("Older", tags="[t]"),
        "2019-03-02-y.md": post("Newer", tags="[t]", slug="x", permalink="/2019/03/01/x.html"),
    }, permalink="pretty")  # the older at /2019/03/01/x/: another URL, the same document id
    build_site(config)
    ids = {e.title: e.id for e in parse_feed(output(config) / "feed.xml").entries}
    assert ids["Newer"] == f"{SITE_URL}/2019/03/01/x"
    assert ids["Older"].startswith(f"{SITE_URL}/2019/03/01/x#")

# --- OPML, stylesheet, RSS self link ------------------------------------------------------

def test_opml_lists_every_feed_once_one_format_per_file(built):
    """Importing an OPML subscribes to every outline: both formats in one file made
    rss2email mail each post twice."""
    urls = {}
    for name, suffix, version in (("feeds.opml", ".xml", None),
                                  ("feeds-rss.opml", ".rss", "RSS2")):
        root = ET.parse(output(built) / name).getroot()
        outlines = root.findall("./body/outline")
        assert len(outlines) == 1 + len(TAGS) + 1
        assert all(o.get("xmlUrl", "").endswith(suffix) for o in outlines)
        assert {o.get("version") for o in outlines} == {version}
        assert root.findtext("./head/title") == "Jobs Board"
        urls[name] = {o.get("xmlUrl") for o in outlines}
    expected = {f"{SITE_URL}/{p.relative_to(output(built))}" for p in _feed_files(built)}
    assert urls["feeds.opml"] | urls["feeds-rss.opml"] == expected
    assert not urls["feeds.opml"] & urls["feeds-rss.opml"]


def test_stylesheet_instruction_is_present_when_enabled(tmp_path):
    config = make_site(tmp_path, POSTS, feeds={"stylesheet": True})
    build_site(config)
    for path in _feed_files(config):
        head = path.read_bytes().split(b"\n")[:2]
        assert head[1] == b'<?xml-stylesheet type="text/xsl" href="/feed.xsl"?>', path
    assert (output(config) / "feed.xsl").is_file()


def test_stylesheet_instruction_is_absent_by_default(built):
    """Chromium 156 dropped XSLT: feeds.html is the page for people (test_feeds_page.py)."""
    files = _feed_files(built)
    assert len(files) == 14
    for path in files:
        assert b"xml-stylesheet" not in path.read_bytes(), path
    assert not (output(built) / "feed.xsl").exists()


def test_turning_the_stylesheet_off_removes_it(tmp_path):
    config = make_site(tmp_path, POSTS, feeds={"stylesheet": True})
    build_site(config)
    make_site(tmp_path, {}, feeds={"stylesheet": False})
    report = build_site(config)
    assert "feed.xsl" in report.removed and not (output(config) / "feed.xsl").exists()
    assert all(b"xml-stylesheet" not in p.read_bytes() for p in _feed_files(config))


def test_stylesheet_href_includes_the_baseurl(tmp_path):
    config = make_site(tmp_path, POSTS, baseurl="/blog", feeds={"stylesheet": True})
    build_site(config)
    assert b'href="/blog/feed.xsl"' in (output(config) / "feed.xml").read_bytes()


def test_rss_has_an_atom_self_link_with_its_absolute_url(built):
    ns = {"atom": "http://www.w3.org/2005/Atom"}
    for rel in ("feed.rss", "feed/by_tag/python.rss"):
        root = etree.fromstring((output(built) / rel).read_bytes())
        [link] = root.findall("channel/atom:link[@rel='self']", namespaces=ns)
        assert link.get("href") == f"{SITE_URL}/{rel}"
        assert link.get("type") == "application/rss+xml"


def test_rss_channel_link_points_at_the_website(built):
    """Regression: feedgen takes the last link added as RSS <link>; it used to be
    the feed's own URL (rel=self)."""
    root = etree.fromstring((output(built) / "feed.rss").read_bytes())
    assert root.findtext("channel/link") == f"{SITE_URL}/"


def test_atom_self_link_and_feed_id(built):
    root = etree.fromstring((output(built) / "feed/by_tag/IT.xml").read_bytes())
    self_links = [link.get("href") for link in root.findall(f"{ATOM}link")
                  if link.get("rel") == "self"]
    assert self_links == [f"{SITE_URL}/feed/by_tag/IT.xml"]
    assert root.findtext(f"{ATOM}id") == f"{SITE_URL}/feed/by_tag/IT.xml"


def test_generator_is_named_with_its_version_and_no_made_up_address(built):
    atom = etree.fromstring((output(built) / "feed.xml").read_bytes())
    generator = atom.find(f"{ATOM}generator")
    assert generator is not None
    assert (generator.text, generator.get("version")) == ("digest", __version__)
    assert generator.get("uri") is None  # digest has no public home to point at
    rss = etree.fromstring((output(built) / "feed.rss").read_bytes())
    assert (rss.findtext("channel/generator") or "").startswith("digest")


# --- a real feed reader -------------------------------------------------------------------

def _newsboat_items(tmp_path: Path, feed: Path, name: str) -> list[tuple[str, str]]:
    home = tmp_path / f"nb-{name}"
    home.mkdir()
    urls, cache, conf = home / "urls", home / "cache.db", home / "config"
    urls.write_text(f"file://{feed}\n")
    conf.write_text("")
    env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home), XDG_DATA_HOME=str(home))
    subprocess.run(["newsboat", "-x", "reload", "-u", str(urls), "-c", str(cache),
                    "-C", str(conf)], env=env, capture_output=True, timeout=60, check=False)
    if not cache.exists():
        return []
    with sqlite3.connect(cache) as db:
        return sorted(db.execute("SELECT title, guid FROM rss_item"))


@pytest.mark.skipif(shutil.which("newsboat") is None, reason="newsboat is not installed")
@pytest.mark.parametrize("name", ["feed.xml", "feed.rss"])
def test_newsboat_loads_the_feed_items(built, tmp_path, name):
    items = _newsboat_items(tmp_path, output(built) / name, name)
    assert sorted(title for title, _ in items) == sorted(NEWEST_FIRST)
    assert (("IT support", f"{SITE_URL}/2019/03/02/it-support")) in items


@pytest.mark.skipif(shutil.which("newsboat") is None, reason="newsboat is not installed")
def test_newsboat_check_really_fails_on_a_broken_feed(built, tmp_path):
    """newsboat's parser recovers from much (a cut file still yields items), so the control
    cases are a feed it cannot recognise at all, and one whose entries are mangled."""
    good = (output(built) / "feed.xml").read_bytes()
    unknown = tmp_path / "unknown.xml"
    unknown.write_bytes(good.replace(b"<feed ", b"<notafeed ", 1))
    assert _newsboat_items(tmp_path, unknown, "unknown") == []
    mangled = tmp_path / "mangled.xml"
    mangled.write_bytes(good.replace(b"<entry>", b"<entry><bad attr=>"))
    assert len(_newsboat_items(tmp_path, mangled, "mangled")) < len(NEWEST_FIRST)


# --- the state database -------------------------------------------------------------------

def test_state_database_is_real_sqlite_with_entry_ids(built, tmp_path):
    with sqlite3.connect(tmp_path / "state" / "state.sqlite3") as db:
        ids = dict(db.execute("SELECT path, entry_id FROM entry_ids"))
    assert len(ids) == len(POSTS)
    assert ids["2019-03-05-sysadmin.md"] == f"{SITE_URL}/2019/03/05/sysadmin"


# the schema digest 0.1.0 created: migration 1 alone
SCHEMA_0_1_0 = MIGRATIONS[0] + "PRAGMA user_version=1;"


def test_state_database_from_the_previous_version_is_upgraded(tmp_path):
    """Regression: the `parsed` table was once changed inside migration 1, so a
    0.1.0 database (user_version=1) crashed with 'no such column: row'."""
    config = make_site(tmp_path, {"2019-03-05-sysadmin.md": post("Sysadmin")})
    (tmp_path / "state").mkdir()
    with sqlite3.connect(tmp_path / "state" / "state.sqlite3") as db:
        db.executescript(SCHEMA_0_1_0)
        db.execute("INSERT INTO entry_ids VALUES (?, ?, ?)", (
            "2019-03-05-sysadmin.md", "https://jobs.example.org/kept-id", "2019-03-05"))
    db.close()
    build_site(config)
    assert parse_feed(output(config) / "feed.xml").entries[0].id == (
        "https://jobs.example.org/kept-id")


def test_state_database_from_before_links_were_kept_is_upgraded(tmp_path):
    """0.6 databases have no parsed.links nor live.stem: the upgrade adds them, the new
    parsing rules read every post again and `live` is filled again, so links are known and
    followed from the first build."""
    config = make_site(tmp_path, {"2019-03-05-sysadmin.md": post("Sysadmin"),
                                  "2019-03-06-links.md": post(
                                      "Links", body="[s]({% post_url 2019-03-05-sysadmin %})\n")})
    (tmp_path / "state").mkdir()
    with sqlite3.connect(tmp_path / "state" / "state.sqlite3") as db:
        db.executescript(";".join(MIGRATIONS[:6]) + "; PRAGMA user_version=6;")
        db.execute("INSERT INTO parsed (path, size, mtime_ns, fingerprint, row, seq) "
                   "VALUES ('2019-03-06-links.md', 1, 1, 'old', '[]', 1)")
        db.execute("INSERT INTO live VALUES ('2019-03-05-sysadmin.md', 1551762000, "
                   "'2019-03-05T00:00:00-05:00', NULL, '/2019/03/05/sysadmin.html', '[[], []]')")
        db.execute("INSERT INTO meta VALUES ('live', ?)", (json.dumps(
            {"seq": 1, "now": 1e9, "future": False, "losers": [], "settings": ""}),))
    db.close()
    build_site(config)
    with sqlite3.connect(tmp_path / "state" / "state.sqlite3") as db:
        links = db.execute("SELECT links FROM parsed WHERE path = '2019-03-06-links.md'")
        assert links.fetchone() == ('[["2019-03-05-sysadmin", 4]]',)  # name, line
        assert db.execute("SELECT count(*) FROM live WHERE stem IS NULL").fetchone() == (0,)
    db.close()
    linking = parse_feed(output(config) / "feed.xml").entries[0]
    assert 'href="https://jobs.example.org/2019/03/05/sysadmin.html"' in linking.content[0].value
    write_posts(tmp_path, {"2019-03-05-sysadmin.md": post("Sysadmin", permalink="/moved/")})
    build_site(config)
    linking = parse_feed(output(config) / "feed.xml").entries[0]
    assert 'href="https://jobs.example.org/moved/"' in linking.content[0].value


def test_deleted_output_folder_is_rebuilt_in_full(built):
    data = _bytes(built)
    shutil.rmtree(output(built))
    report = build_site(built)
    assert len(report.written) == len(data)
    assert _bytes(built) == data


@pytest.fixture
def pools(monkeypatch: pytest.MonkeyPatch) -> list[set[int]]:
    """Take the worker-pool path whatever this machine's CPU count (on a one-CPU runner
    digest would work in-process and a pool test would prove nothing), and record the
    process ids each pool digest starts ran its work in."""
    import multiprocessing

    import digest.util.workers

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    started: list[set[int]] = []
    real_pool_of = digest.util.workers.pool_of

    def pool_of(workers: int) -> ProcessPoolExecutor:
        pool = real_pool_of(workers)
        pids: set[int] = set()
        started.append(pids)
        submit = pool.submit

        def recording_submit(*args: Any, **kwargs: Any) -> Future[Any]:
            future = submit(*args, **kwargs)  # starts the workers if not yet started
            pids.update(child.pid for child in multiprocessing.active_children()
                        if child.pid is not None)
            return future

        pool.submit = recording_submit  # type: ignore[method-assign]  # map() submits through it
        return pool

    monkeypatch.setattr(digest.util.workers, "pool_of", pool_of)
    return started


def test_a_cold_read_of_many_files_in_worker_processes_matches_the_cache(tmp_path, pools):
    from datetime import date, timedelta

    from digest.posts.reader import PARALLEL_FROM

    count = PARALLEL_FROM + 20
    posts: dict[str, str | bytes] = {}
    for i in range(count):
        day = date(2000, 1, 1) + timedelta(days=i)
        posts[f"{day.year}/{day:%Y-%m-%d}-job-{i}.md"] = post(f"Job {i}", tags=f"[t{i % 3}]")
    posts["2001-06-01-broken.md"] = "---\n- a list\n---\n"
    config = make_site(tmp_path, posts)
    cold = read_site(config)
    assert len(pools) == 1, "the cold read started no worker pool"
    assert pools[0] and os.getpid() not in pools[0]  # it parsed in processes other than this
    assert cold.parsed == count + 1
    assert len(cold.posts) == count
    [problem] = cold.rejected
    assert (problem.path.name, problem.line) == ("2001-06-01-broken.md", 2)
    warm = read_site(config)
    assert warm.parsed == 0
    assert warm.posts == cold.posts
    assert warm.rejected == cold.rejected
    sample = next(p for p in cold.posts if p.title == "Job 7")
    assert (sample.url, sample.tags) == ("/2000/01/08/job-7.html", ("t1",))


def test_post_url_to_a_name_two_posts_share_picks_the_same_post_for_feeds_and_digest(tmp_path):
    """Jekyll matches `{% post_url NAME %}` to the post directly in _posts; of two in
    subfolders we take the first by path. Feeds (the state database) and the digest (posts
    in memory) must agree."""
    from digest.config import load_config
    from digest.posts.rendered import LivePostUrls, PostUrls

    config = make_site(tmp_path, {
        "2019-03-05-x.md": post("X top"), "b/2019-03-05-x.md": post("X in b", categories="[b]"),
        "c/2019-03-05-y.md": post("Y in c", categories="[c]"),
        "a/2019-03-05-y.md": post("Y in a", categories="[a]"),
        "2019-03-06-links.md": post("Links", body=(
            "[x]({% post_url 2019-03-05-x %}) [y]({% post_url 2019-03-05-y %})\n"))})
    build_site(config)
    linking = parse_feed(output(config) / "feed.xml").entries[0]
    assert linking.title == "Links"
    x, y = f"{SITE_URL}/2019/03/05/x.html", f"{SITE_URL}/a/2019/03/05/y.html"
    assert f'href="{x}"' in linking.content[0].value
    assert f'href="{y}"' in linking.content[0].value
    loaded = load_config(config)
    live = LivePostUrls(loaded.state / "state.sqlite3", loaded.site.root)
    in_memory = PostUrls.of(loaded.site, read_site(config).posts)
    try:
        assert [live[s] for s in ("2019-03-05-x", "2019-03-05-y")] == [x, y]
        assert dict(live) == dict(in_memory)
    finally:
        live.close()


def test_post_url_resolves_the_same_in_render_workers_as_in_process(tmp_path, monkeypatch,
                                                                    pools):
    """Workers read `{% post_url %}` targets from the state database themselves."""
    from datetime import date, timedelta

    import digest.posts.rendered

    count = digest.posts.rendered.PARALLEL_RENDER_FROM + 6  # one tag each: every post is rendered
    posts: dict[str, str | bytes] = {}
    for i in range(count):
        day = date(2001, 1, 1) + timedelta(days=i)
        body = "[first]({% post_url 2001-01-01-job-0 %}) and more.\n" if i == count - 1 \
            else "Some text.\n"
        posts[f"{day:%Y-%m-%d}-job-{i}.md"] = post(f"Job {i}", body, tags=f"[t{i}]")
    pooled = make_site(tmp_path / "pooled", posts)
    assert build_site(pooled).rendered == count
    assert len(pools) == 1, "rendering started no worker pool"  # the cache read is too small
    assert pools[0] and os.getpid() not in pools[0]
    monkeypatch.setattr(digest.posts.rendered, "PARALLEL_RENDER_FROM", count + 1)
    alone = make_site(tmp_path / "alone", posts)
    assert build_site(alone).rendered == count
    assert len(pools) == 1  # ... and this one in-process
    feed = (output(pooled) / "feed.xml").read_text()
    assert "https://jobs.example.org/2001/01/01/job-0.html" in feed
    assert feed == (output(alone) / "feed.xml").read_text()
