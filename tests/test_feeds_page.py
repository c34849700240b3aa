"""feeds.html and /feeds/: every feed listed with its posts, last date and addresses, the OPML
files, the sign-up link only where there is sign-up, escaped text, stable bytes, and the
web route (the browser's view is in test_browser.py)."""

from __future__ import annotations

import os
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import SITE_URL, build_site, make_site, output, post, write_posts
from helpers import SECRET
from web_server import WebServer

from digest.config import load_config
from digest.errors import TemplateError

POSTS = {
    "2019-03-01-data-engineer.md": post("Data engineer", date='"2019-03-01 09:00:00"',
                                        tags="[python, Data Science]"),
    "2019-03-04-python-dev.md": post("Python dev", date='"2019-03-04 09:00:00"',
                                     tags="[python]", category="Remote"),
    "2019-03-06-ml-lead.md": post("ML lead", date='"2019-03-06 23:30:00"',
                                  tags="[python, Data Science, '<script>alert(1)</script>']"),
}
SIGNUP = {"web": {"base_url": "https://jobs.example.org/digest"}, "signup": {}}


class Feeds(HTMLParser):
    """The page as data: each feed section's kind, title, count, last date and addresses."""

    def __init__(self) -> None:
        super().__init__()
        self.feeds: list[dict[str, Any]] = []
        self.links: list[str] = []
        self.pre = ""
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section" and a.get("class") == "feed":
            self.feeds.append({"kind": a["data-kind"], "inputs": [], "title": "", "count": "",
                               "carries": "", "last": None})
        elif tag == "h2" and self.feeds and not self.feeds[-1]["title"]:
            self._in = "title"
        elif tag == "span" and a.get("class") in ("count", "carries"):
            self._in = a["class"]
        elif tag == "time":
            self.feeds[-1]["last"] = a["datetime"]
        elif tag == "input":
            self.feeds[-1]["inputs"].append(a["value"])
            assert "readonly" in a
        elif tag == "a":
            self.links.append(a["href"] or "")
        elif tag == "pre":
            self._in = "pre"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h2", "span", "pre"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "pre":
            self.pre += data
        elif self._in is not None and self.feeds:
            self.feeds[-1][self._in] += data


def page(config: Path) -> Feeds:
    parsed = Feeds()
    parsed.feed((output(config) / "feeds.html").read_text(encoding="utf-8"))
    return parsed


@pytest.fixture
def site(tmp_path: Path) -> Path:
    config = make_site(tmp_path, POSTS, extra=SIGNUP)
    build_site(config)
    return config


def test_every_feed_is_listed_with_its_posts_and_last_date(site: Path) -> None:
    found = {f["carries"]: f for f in page(site).feeds}
    assert [(f["kind"], f["title"]) for f in found.values()] == [
        ("site", "Jobs Board"), ("tag", "Jobs Board:"),  # the feed's own title: plain text
        ("tag", "Jobs Board: Data Science"), ("tag", "Jobs Board: python"),
        ("category", "Jobs Board: Remote")]
    counts = {carries: (f["count"], f["last"]) for carries, f in found.items()}
    # 23:30 in New York is the next day in UTC: the date is the site's
    assert counts == {"every post": ("3 posts", "2019-03-06"),
                      "posts tagged <script>alert(1)</script>": ("1 post", "2019-03-06"),
                      "posts tagged Data Science": ("2 posts", "2019-03-06"),
                      "posts tagged python": ("3 posts", "2019-03-06"),
                      "posts in the category Remote": ("1 post", "2019-03-04")}
    python = found["posts tagged python"]
    assert python["inputs"] == [f"{SITE_URL}/feed/by_tag/python.xml",
                                f"{SITE_URL}/feed/by_tag/python.rss"]
    # every address the page gives is a file the build wrote
    for f in found.values():
        for url in f["inputs"]:
            assert (output(site) / url.removeprefix(SITE_URL + "/")).is_file(), url


def test_counts_are_all_posts_not_only_those_a_feed_lists(tmp_path: Path) -> None:
    config = make_site(tmp_path, POSTS, feeds={"entries": 1})
    build_site(config)
    assert page(config).feeds[0]["count"] == "3 posts"


def test_opml_files_and_signup_are_linked(site: Path) -> None:
    links = page(site).links
    assert f"{SITE_URL}/feeds.opml" in links and f"{SITE_URL}/feeds-rss.opml" in links
    assert "https://jobs.example.org/digest/subscribe" in links


def test_no_signup_link_without_signup(tmp_path: Path) -> None:
    config = make_site(tmp_path, POSTS, extra={"web": SIGNUP["web"]})
    build_site(config)
    assert not [link for link in page(config).links if "subscribe" in link]
    assert "digest" not in (output(config) / "feeds.html").read_text()


def test_a_title_is_text_never_markup(site: Path) -> None:
    html = (output(site) / "feeds.html").read_text()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_autodiscovery_tags_are_shown_as_text(site: Path) -> None:
    parsed = page(site)
    assert parsed.pre.splitlines() == [
        f'<link rel="alternate" type="application/atom+xml" title="Jobs Board" '
        f'href="{SITE_URL}/feed.xml">',
        f'<link rel="alternate" type="application/rss+xml" title="Jobs Board" '
        f'href="{SITE_URL}/feed.rss">']
    assert "<link rel=" not in (output(site) / "feeds.html").read_text()


def test_page_is_rewritten_only_when_it_changes(site: Path) -> None:
    path = output(site) / "feeds.html"
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns
    assert "feeds.html" not in build_site(site).written
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime
    write_posts(site.parent, {"2019-03-08-new.md": post("New", date='"2019-03-08 09:00:00"',
                                                        tags="[python]")})
    assert "feeds.html" in build_site(site).written
    assert ("posts tagged python", "4 posts", "2019-03-08") in {
        (f["carries"], f["count"], f["last"]) for f in page(site).feeds}


def test_a_vanished_tag_leaves_the_page(site: Path) -> None:
    (site.parent / "_posts" / "2019-03-04-python-dev.md").unlink()
    build_site(site)
    assert "category" not in {f["kind"] for f in page(site).feeds}


def test_the_template_can_be_overridden(tmp_path: Path) -> None:
    templates = tmp_path / "mine"
    templates.mkdir()
    (templates / "feeds.html.j2").write_text(
        "{% for f in page.feeds %}{{ f.title }}={{ f.posts }};{% endfor %}")
    config = make_site(tmp_path, POSTS, extra={"digest": {"templates": str(templates)}})
    build_site(config)
    assert (output(config) / "feeds.html").read_text().startswith("Jobs Board=3;")
    (templates / "feeds.html.j2").write_text("{% for %}")
    with pytest.raises(TemplateError) as caught:
        build_site(config)
    assert caught.value.path.name == "feeds.html.j2" and caught.value.line == 1


def test_web_front_serves_the_page(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    with WebServer(load_config(site)) as server, httpx.Client(base_url=server.url) as client:
        got = client.get("/feeds/")
        assert got.status_code == 200
        assert got.headers["content-type"] == "text/html; charset=utf-8"
        assert got.content == (output(site) / "feeds.html").read_bytes()
        assert "default-src 'none'" in got.headers["content-security-policy"]
        again = client.get("/feeds/", headers={"If-None-Match": got.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        moved = client.get("/feeds")
        assert moved.status_code == 308 and moved.headers["location"].endswith("feeds/")
        assert client.get("/feeds.html").status_code == 404  # only at its route
        head = client.head("/feeds/")
        assert head.status_code == 200 and head.content == b""


def test_web_front_says_404_before_the_first_build(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    config = make_site(tmp_path, POSTS, extra=SIGNUP)
    with WebServer(load_config(config)) as server:
        assert httpx.get(f"{server.url}/feeds/").status_code == 404
    assert not os.path.exists(output(config) / "feeds.html")
