"""Feed URLs as sources: real feed files served by a real HTTP server on a loopback port,
fetched, read as posts beside the posts folder, built into feeds and sent in digests."""

from __future__ import annotations

import contextlib
import gzip
import http.server
import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml
from conftest import build_site, make_site, output, parse_feed, post, read_site, run_cli
from helpers import MONDAY, SECRET, WEEK, by_recipient, outbox

from digest.config import load_config
from digest.delivery.send import send
from digest.errors import ConfigError
from digest.posts.poll import describe, fetch, load_state, poll_sources

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
POLL_AT = datetime(2024, 6, 1, 16, 0, tzinfo=UTC)


@dataclass
class Route:
    """What the server answers on one path: a body, or a status, or a pause first."""

    body: bytes = b""
    status: int = 200
    content_type: str = "application/xml"
    etag: str | None = None
    last_modified: str | None = None
    location: str | None = None
    sleep: float = 0
    gzip: bool = False


@dataclass
class FeedServer:
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _handler(server: FeedServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server.requests.append((self.path, dict(self.headers.items())))
            route = server.routes.get(self.path)
            if route is None:
                self.send_error(404)
                return
            if route.sleep:
                time.sleep(route.sleep)
            if (route.etag and self.headers.get("If-None-Match") == route.etag) or (
                    route.last_modified
                    and self.headers.get("If-Modified-Since") == route.last_modified):
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(route.status)
            if route.location:
                self.send_header("Location", route.location)
            self.send_header("Content-Type", route.content_type)
            self.send_header("Content-Length", str(len(route.body)))
            if route.etag:
                self.send_header("ETag", route.etag)
            if route.last_modified:
                self.send_header("Last-Modified", route.last_modified)
            if route.gzip:
                self.send_header("Content-Encoding", "gzip")
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it gave up
                self.wfile.write(route.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def feeds() -> Iterator[FeedServer]:
    state = FeedServer()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


FOLDER_POSTS = {"2024-05-01-local.md": post("Local post", date='"2024-05-01 09:00:00"',
                                            tags="[python]")}


def site_with(tmp_path: Path, server: FeedServer, *sources: dict[str, Any],
              posts: dict[str, str] | None = None, **extra: Any) -> Path:
    listed = [{**s, "feed": server.url(s["feed"])} for s in sources]
    return make_site(tmp_path, FOLDER_POSTS if posts is None else posts,
                     extra={"sources": listed, **extra})


def poll(config_path: Path, *, at: datetime = POLL_AT, force: bool = False) -> list[Any]:
    return poll_sources(load_config(config_path), now=at, force=force)


# --- formats ------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "titles_seen", "tags"), [
    ("ours.xml", ["Rust developer", "Data analyst"], {"rust", "remote", "analytics"}),
    ("jekyll-feed.xml", ["Welcome to Jekyll!"], {"jekyll", "update"}),
    ("hugo.xml", ["My first post"], set()),
    ("wordpress.xml", ["Hiring: analytics engineer"], {"Analytics", "python"}),
    ("feed.json", ["Second JSON item", "https://json.example.com/2024/05/15/first"],
     {"python", "remote"}),
    ("rdf.xml", ["RDF item"], {"research"}),
])
def test_each_format_becomes_posts(tmp_path: Path, feeds: FeedServer, name: str,
                                   titles_seen: list[str], tags: set[str]) -> None:
    feeds.routes["/feed"] = Route(fixture(name))
    config = site_with(tmp_path, feeds, {"feed": "/feed", "name": "other"})
    (result,) = poll(config)
    assert (result.status, result.error) == ("200", None)
    corpus = read_site(config)
    assert corpus.rejected == []
    got = {p.title: p for p in corpus.posts}
    assert set(got) == {"Local post", *titles_seen}
    assert {t for p in corpus.posts if p.title != "Local post" for t in p.tags} == tags
    for title in titles_seen:
        assert got[title].url.startswith("https://")  # the entry's own link, absolute


def test_content_is_sanitised_and_never_liquid(tmp_path: Path, feeds: FeedServer) -> None:
    feeds.routes["/feed"] = Route(fixture("ours.xml"))
    config = site_with(tmp_path, feeds, {"feed": "/feed", "name": "other", "tags": ["partner"]})
    poll(config)
    report = build_site(config)
    assert report.found.rejected == []
    parsed = parse_feed(output(config) / "feed.xml")
    by_title = {e.title: e for e in parsed.entries}
    rust = by_title["Rust developer"]
    assert "<em>Rust</em>" in rust.content[0].value and "script" not in rust.content[0].value
    assert rust.link == "https://jobs.example.net/2024/05/20/rust-dev.html"
    analyst = by_title["Data analyst"]
    assert analyst.link == "https://jobs.example.net/2024/05/18/data-analyst.html"
    assert "{{ site.title }}" in analyst.content[0].value  # text, not Liquid
    assert "{% post_url x %}" in analyst.content[0].value
    # the source's own tags are added to each entry: a per-tag feed of them
    partner = parse_feed(output(config) / "feed/by_tag/partner.xml")
    assert sorted(e.title for e in partner.entries) == ["Data analyst", "Rust developer"]
    # merged by date with the folder's posts, newest first
    assert [e.title for e in parsed.entries] == ["Rust developer", "Data analyst", "Local post"]


# --- HTTP behaviour -----------------------------------------------------------------------
def test_conditional_get_and_interval(tmp_path: Path, feeds: FeedServer) -> None:
    feeds.routes["/feed"] = Route(fixture("ours.xml"), etag='"v1"',
                                  last_modified="Mon, 20 May 2024 13:00:00 GMT")
    config = site_with(tmp_path, feeds, {"feed": "/feed", "name": "other",
                                         "every_minutes": 30})
    assert poll(config)[0].status == "200"
    assert not poll(config, at=POLL_AT + timedelta(minutes=10))[0].fetched  # not due
    assert len(feeds.requests) == 1
    files = {p: p.stat().st_mtime_ns for p in (tmp_path / "state/sources/other/posts").iterdir()}
    again = poll(config, at=POLL_AT + timedelta(minutes=31))[0]
    assert again.status == "304"
    _, headers = feeds.requests[-1]
    assert headers["If-None-Match"] == '"v1"'
    assert headers["If-Modified-Since"] == "Mon, 20 May 2024 13:00:00 GMT"
    assert {p: p.stat().st_mtime_ns for p in files} == files  # nothing rewritten


def test_error_backs_off_then_recovers(tmp_path: Path, feeds: FeedServer) -> None:
    feeds.routes["/feed"] = Route(b"oops", status=500)
    config = site_with(tmp_path, feeds, {"feed": "/feed", "name": "other",
                                         "every_minutes": 10})
    first = poll(config)[0]
    assert first.status == "error" and "500" in (first.error or "")
    state = load_state(tmp_path / "state", "other")
    assert state.failures == 1
    assert state.next_fetch == (POLL_AT + timedelta(minutes=20)).isoformat()  # doubled
    assert not poll(config, at=POLL_AT + timedelta(minutes=15))[0].fetched
    poll(config, at=POLL_AT + timedelta(minutes=21))
    assert load_state(tmp_path / "state", "other").next_fetch == \
        (POLL_AT + timedelta(minutes=21 + 40)).isoformat()  # doubled again
    feeds.routes["/feed"] = Route(fixture("hugo.xml"))
    ok = poll(config, at=POLL_AT + timedelta(minutes=62))[0]
    assert (ok.status, ok.error) == ("200", None)
    state = load_state(tmp_path / "state", "other")
    assert state.failures == 0 and state.error is None
    assert state.next_fetch == (POLL_AT + timedelta(minutes=72)).isoformat()


def test_timeout_is_bounded(feeds: FeedServer) -> None:
    feeds.routes["/slow"] = Route(fixture("hugo.xml"), sleep=3)
    started = time.monotonic()
    with pytest.raises(Exception, match=r"no answer within 0\.5 s"):
        fetch(feeds.url("/slow"), timeout=0.5)
    assert time.monotonic() - started < 2


def test_gzip_is_asked_for_and_unpacked_bounded(tmp_path: Path, feeds: FeedServer) -> None:
    feeds.routes["/feed"] = Route(gzip.compress(fixture("wordpress.xml")), gzip=True)
    feeds.routes["/bomb"] = Route(gzip.compress(b" " * 5_000_000), gzip=True)
    got = fetch(feeds.url("/feed"))
    assert got.body == fixture("wordpress.xml")
    assert feeds.requests[0][1]["Accept-Encoding"] == "gzip"
    with pytest.raises(Exception, match="unpacks to over 1,000,000 bytes"):
        fetch(feeds.url("/bomb"), max_bytes=1_000_000)


def test_tls_is_verified(feeds: FeedServer) -> None:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(feeds))
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    feeds.routes["/feed"] = Route(fixture("hugo.xml"))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
            fetch(f"https://127.0.0.1:{httpd.server_address[1]}/feed", timeout=5)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_oversized_body_is_refused(feeds: FeedServer) -> None:
    feeds.routes["/big"] = Route(b"<rss>" + b" " * 2000 + b"</rss>")
    with pytest.raises(Exception, match="the most read is 1,000"):
        fetch(feeds.url("/big"), max_bytes=1000)


def test_permanent_redirect_is_followed_and_reported(tmp_path: Path,
                                                     feeds: FeedServer) -> None:
    feeds.routes["/old"] = Route(status=301, location=feeds.url("/new"))
    feeds.routes["/new"] = Route(fixture("wordpress.xml"))
    config = site_with(tmp_path, feeds, {"feed": "/old", "name": "wp"})
    result = poll(config)[0]
    assert result.status == "200" and result.redirect == feeds.url("/new")
    assert read_site(config).posts[0].title == "Hiring: analytics engineer"
    (shown,) = describe(load_config(config), POLL_AT)
    assert shown["redirect"] == feeds.url("/new")


def test_malformed_feed_keeps_last_good_items(tmp_path: Path, feeds: FeedServer) -> None:
    feeds.routes["/feed"] = Route(fixture("ours.xml"))
    config = site_with(tmp_path, feeds, {"feed": "/feed", "name": "other"})
    poll(config)
    feeds.routes["/feed"] = Route(b"<html><body>Site moved!</body></html>",
                                  content_type="text/html")
    broken = poll(config, force=True)[0]
    assert broken.status == "error" and "not an RSS, Atom, RDF or JSON feed" in (
        broken.error or "")
    titles_now = {p.title for p in read_site(config).posts}
    assert {"Rust developer", "Data analyst"} <= titles_now
    (shown,) = describe(load_config(config), POLL_AT)
    assert shown["last_status"] == "error" and shown["last_ok"] == POLL_AT.isoformat()
    assert shown["entries"] == 2


def test_changed_guids_do_not_repost(tmp_path: Path, feeds: FeedServer) -> None:
    feeds.routes["/feed"] = Route(fixture("ours.xml"))
    config = site_with(tmp_path, feeds, {"feed": "/feed", "name": "other"})
    poll(config)
    build_site(config)
    before = read_site(config).posts
    changed = fixture("ours.xml").replace(b"<id>https://jobs.example.net/2024",
                                          b"<id>tag:jobs.example.net,2024:")
    feeds.routes["/feed"] = Route(changed)
    poll(config, force=True)
    after = read_site(config).posts
    assert sorted(p.path for p in after) == sorted(p.path for p in before)
    assert len(list((tmp_path / "state/sources/other/posts").iterdir())) == 2


def test_no_sources_changes_nothing(tmp_path: Path) -> None:
    plain = make_site(tmp_path / "a", FOLDER_POSTS)
    build_site(plain)
    empty = make_site(tmp_path / "b", FOLDER_POSTS, extra={"sources": []})
    build_site(empty)
    assert (output(plain) / "feed.xml").read_bytes().replace(b"/a/", b"/b/") == \
        (output(empty) / "feed.xml").read_bytes().replace(b"/a/", b"/b/")


@pytest.mark.parametrize(("source", "message"), [
    ({"feed": "ftp://x/feed", "name": "x"}, "must be an http(s) URL"),
    ({"feed": "https://x/feed", "name": "Bad Name"}, "should match pattern"),
    ({"feed": "https://x/feed", "name": "x", "every_minutes": 1}, "greater than or equal to 5"),
])
def test_bad_source_config(tmp_path: Path, source: dict[str, Any], message: str) -> None:
    config = make_site(tmp_path, FOLDER_POSTS, extra={"sources": [source]})
    with pytest.raises(ConfigError) as error:
        load_config(config)
    assert message in str(error.value)


def test_two_sources_with_one_name(tmp_path: Path) -> None:
    config = make_site(tmp_path, FOLDER_POSTS, extra={"sources": [
        {"feed": "https://a/feed", "name": "x"}, {"feed": "https://b/feed", "name": "x"}]})
    with pytest.raises(ConfigError, match="two feed sources are named 'x'"):
        load_config(config)


# --- digests ------------------------------------------------------------------------------
def _atom(*entries: tuple[str, str, str, str]) -> bytes:
    """An Atom feed of (id, title, date, tag) entries, as another site would serve it."""
    items = "".join(
        f"<entry><id>{i}</id><title>{t}</title><updated>{d}</updated>"
        f"<link href='https://partner.example.com/{i}'/><category term='{tag}'/>"
        f"<content type='html'>&lt;p&gt;{t} text&lt;/p&gt;</content></entry>"
        for i, t, d, tag in entries)
    return (f"<?xml version='1.0' encoding='utf-8'?><feed xmlns='http://www.w3.org/2005/Atom'>"
            f"<id>urn:partner</id><title>Partner</title><updated>2024-06-01T00:00:00Z"
            f"</updated>{items}</feed>").encode()


def titles(message: EmailMessage) -> list[str]:
    """The job titles of this test in a digest, in the order it lists them."""
    text = message.get_body(("plain",))
    assert text is not None
    content = text.get_content()
    found = [t for t in ("Local Job", "Python Job", "Late Rust Job", "Rust Job")
             if t in content and (t != "Rust Job" or content.count(t) > content.count("Late " + t))]
    return sorted(found, key=content.index)


PARTNER = [("a1", "Rust Job", "2024-06-05T10:00:00Z", "rust"),
           ("a2", "Python Job", "2024-06-06T10:00:00Z", "python")]


def test_feed_source_feeds_digests_by_tag_with_late_entries(
        tmp_path: Path, feeds: FeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    feeds.routes["/partner.xml"] = Route(_atom(*PARTNER))
    (tmp_path / "subscribers.yaml").write_text(yaml.safe_dump([
        {"email": "rust@example.org", "tags": ["rust"]},
        {"email": "py@example.org", "tags": ["python"]},
        {"email": "all@example.org"}]))
    cfg = site_with(tmp_path, feeds, {"feed": "/partner.xml", "name": "partner"},
                    posts={"2024-06-07-local.md": post("Local Job", tags="[python]")},
                    subscribers="subscribers.yaml", digest={"from": "Jobs <jobs@example.org>"},
                    web={"base_url": "https://jobs.example.org/digest"})
    code, _, err = run_cli(["--config", str(cfg), "send", "--as-of", "2024-06-10T09:00"])
    assert code == 0, err
    got = by_recipient(outbox(cfg))
    assert titles(got["rust@example.org"][0]) == ["Rust Job"]
    assert titles(got["py@example.org"][0]) == ["Local Job", "Python Job"]
    assert titles(got["all@example.org"][0]) == ["Local Job", "Python Job", "Rust Job"]
    # a partner entry that turns up after that digest went, dated inside its period
    feeds.routes["/partner.xml"] = Route(_atom(
        ("a3", "Late Rust Job", "2024-06-08T10:00:00Z", "rust"), *PARTNER))
    poll_sources(load_config(cfg), force=True)
    send(load_config(cfg), as_of=MONDAY + WEEK)
    got = by_recipient(outbox(cfg))
    assert [titles(m) for m in got["rust@example.org"]] == [["Rust Job"], ["Late Rust Job"]]
    assert len(got["py@example.org"]) == 1  # nothing new in python


def test_build_fetches_and_status_shows_sources(tmp_path: Path, feeds: FeedServer) -> None:
    feeds.routes["/partner.xml"] = Route(_atom(*PARTNER))
    feeds.routes["/gone.xml"] = Route(status=404)
    cfg = site_with(tmp_path, feeds, {"feed": "/partner.xml", "name": "partner"},
                    {"feed": "/gone.xml", "name": "gone"})
    code, out, err = run_cli(["--config", str(cfg), "build", "--as-of", "2024-06-10T09:00"])
    assert code == 0, err
    assert "feed source 'gone': HTTP 404" in err
    assert "3 posts" in out
    assert {e.title for e in parse_feed(output(cfg) / "feed/by_tag/rust.xml").entries} == \
        {"Rust Job"}
    code, out, err = run_cli(["--config", str(cfg), "build", "--no-fetch",
                              "--as-of", "2024-06-10T09:00"])
    assert code == 0 and len(feeds.requests) == 2  # nothing fetched again
    code, out, _ = run_cli(["--config", str(cfg), "status"])
    assert code == 0
    assert f"partner: {feeds.url('/partner.xml')}" in out
    assert "(200), 2 entries" in out
    assert "last error: HTTP 404 Not Found; last worked never" in out
    code, _, err = run_cli(["--config", str(cfg), "check", "--as-of", "2024-06-10T09:00"])
    assert code == 0, err  # a failing source is advice: its last entries are published
    assert "warning: feed source 'gone'" in err and "HTTP 404" in err
    assert "feed source 'partner'" in err and "2 entries" in err
    code, out, _ = run_cli(["--config", str(cfg), "status", "--json"])
    shown = {s["name"]: s for s in json.loads(out)["sources"]}
    assert shown["partner"]["entries"] == 2 and shown["gone"]["last_status"] == "error"


def test_daemon_rebuild_fetches_each_source_on_its_interval(tmp_path: Path,
                                                            feeds: FeedServer) -> None:
    from digest.daemon.work import build_feeds
    from digest.posts.poll import save_state

    feeds.routes["/partner.xml"] = Route(_atom(*PARTNER), etag='"1"')
    cfg = load_config(site_with(tmp_path, feeds, {"feed": "/partner.xml", "name": "partner"}))
    first = build_feeds(cfg, now=MONDAY, reason="start")
    assert {"rust", "python"} <= first.terms and len(feeds.requests) == 1
    build_feeds(cfg, now=MONDAY, reason="refresh")  # within every_minutes: not fetched
    assert len(feeds.requests) == 1
    state = load_state(cfg.state, "partner")
    state.next_fetch = datetime.now(UTC).isoformat()  # as if its interval had passed
    save_state(cfg.state, "partner", state)
    build_feeds(cfg, now=MONDAY, reason="refresh")
    assert len(feeds.requests) == 2 and feeds.requests[-1][1]["If-None-Match"] == '"1"'


def test_feed_only_site_with_an_empty_posts_folder(tmp_path: Path, feeds: FeedServer) -> None:
    feeds.routes["/feed.json"] = Route(fixture("feed.json"), content_type="application/json")
    (tmp_path / "_posts").mkdir()
    cfg = site_with(tmp_path, feeds, {"feed": "/feed.json", "name": "json"}, posts={})
    code, out, err = run_cli(["--config", str(cfg), "build", "--as-of", "2024-06-10T09:00"])
    assert code == 0, err
    assert "2 posts" in out and "no post files" not in err
    entries = parse_feed(output(cfg) / "feed.xml").entries
    assert [e.link for e in entries] == ["https://json.example.com/2024/05/16/second",
                                         "https://json.example.com/2024/05/15/first"]


def test_a_site_made_of_feeds_needs_no_posts_folder(tmp_path: Path, feeds: FeedServer) -> None:
    """The rss2email / Buttondown case: `sources:` and no `posts:` at all."""
    feeds.routes["/feed.json"] = Route(fixture("feed.json"), content_type="application/json")
    config = tmp_path / "config.yaml"
    config.write_text(f"site:\n  url: https://digest.example.org\noutput: out\nstate: state\n"
                      f"sources:\n  - feed: {feeds.url('/feed.json')}\n    name: json\n",
                      encoding="utf-8")
    for _ in range(2):  # the second time from the config's cache
        code, out, err = run_cli(["--config", str(config), "build", "--as-of",
                                  "2024-06-10T09:00"])
        assert code == 0, err
        assert "2 posts" in out and "no post files" not in err
    assert len(parse_feed(tmp_path / "out" / "feed.xml").entries) == 2
    config.write_text("output: out\nstate: state\n", encoding="utf-8")
    code, _, err = run_cli(["--config", str(config), "build"])
    assert code == 2 and "missing key 'posts'" in err and "sources:" in err, err


def test_entry_ids_are_the_links_and_survive_changed_guids(tmp_path: Path,
                                                           feeds: FeedServer) -> None:
    feeds.routes["/feed"] = Route(fixture("ours.xml"))
    config = site_with(tmp_path, feeds, {"feed": "/feed", "name": "other"})
    poll(config)
    build_site(config)

    def ids() -> dict[str, str]:
        return {e.title: e.id for e in parse_feed(output(config) / "feed.xml").entries}

    before = ids()
    assert before["Rust developer"] == "https://jobs.example.net/2024/05/20/rust-dev.html"
    feeds.routes["/feed"] = Route(fixture("ours.xml").replace(
        b"<id>https://jobs.example.net/2024", b"<id>tag:jobs.example.net,2024:").replace(
        b"Write &lt;em&gt;Rust", b"Write &lt;em&gt;safe Rust"))
    poll(config, force=True)
    build_site(config)
    assert ids() == before
    assert "safe Rust" in parse_feed(output(config) / "feed.xml").entries[0].content[0].value


def test_a_source_being_fetched_elsewhere_is_skipped(tmp_path: Path, feeds: FeedServer) -> None:
    from digest.posts.poll import LOCK_FILE
    from digest.state.locks import held

    feeds.routes["/feed"] = Route(fixture("hugo.xml"))
    config = site_with(tmp_path, feeds, {"feed": "/feed", "name": "other"})
    with held(tmp_path / "state/sources/other" / LOCK_FILE, "busy"):
        assert not poll(config)[0].fetched
    assert feeds.requests == []
    assert poll(config)[0].fetched


def test_hostile_entries_are_bounded(tmp_path: Path, feeds: FeedServer) -> None:
    items = [{"id": str(i), "url": f"https://h.example.com/{i}", "title": "x" * 5000,
              "date_published": "0005-01-01T00:00:00Z", "tags": ["t" * 300, *map(str, range(80))],
              "content_html": "<p onclick='x()'>{% include evil %}</p><script>x()</script>"}
             for i in range(600)]
    items.append({"id": "bad", "url": "javascript:alert(1)", "title": "no"})
    feeds.routes["/feed.json"] = Route(json.dumps(
        {"version": "https://jsonfeed.org/version/1.1", "items": items}).encode())
    config = site_with(tmp_path, feeds, {"feed": "/feed.json", "name": "h"}, posts={})
    assert poll(config)[0].new == 500  # MAX_ENTRIES read of one response
    corpus = read_site(config)
    assert corpus.rejected == [] and corpus.count == 500
    one = corpus.posts[0]
    assert len(one.title) == 1000 and len(one.tags) == 50
    assert all(len(t) <= 256 for t in one.tags)
    assert one.date.year == 2024  # an implausible date: when it was first seen
    text = Path(one.path).read_text()
    assert "onclick" not in text and "<script" not in text and "{%" not in text


def test_an_entry_in_two_sources_is_one_post(tmp_path: Path, feeds: FeedServer) -> None:
    feeds.routes["/all.xml"] = Route(_atom(*PARTNER))
    feeds.routes["/rust.xml"] = Route(_atom(PARTNER[0]))
    config = site_with(tmp_path, feeds, {"feed": "/all.xml", "name": "all"},
                       {"feed": "/rust.xml", "name": "rust"})
    poll(config)
    corpus = read_site(config, now=MONDAY)
    assert corpus.rejected == []
    assert sorted(p.title for p in corpus.posts) == ["Local post", "Python Job", "Rust Job"]


def test_a_hugo_site_with_a_feed_source(tmp_path: Path, feeds: FeedServer) -> None:
    """The entries are read and rendered by the rules they were written for, not Hugo's."""
    import shutil

    feeds.routes["/feed"] = Route(fixture("wordpress.xml"))
    site = tmp_path / "site"
    shutil.copytree(Path(__file__).parent / "fixtures" / "hugo", site)
    (site / "hugo.toml").write_text('baseURL = "https://example.org/"\ntitle = "Hugo"\n')
    config = tmp_path / "config.yaml"
    config.write_text("site:\n  hugo_config: site/hugo.toml\nposts: site/content/blog\n"
                      "output: out\nstate: state\nsources:\n"
                      f"  - feed: {feeds.url('/feed')}\n    name: wp\n", encoding="utf-8")
    code, _, err = run_cli(["--config", str(config), "build", "--as-of", "2024-06-10T09:00"])
    assert code in (0, 1), err
    entries = {e.title: e for e in parse_feed(tmp_path / "out" / "feed.xml").entries}
    wp = entries["Hiring: analytics engineer"]
    assert wp.link.startswith("https://") and "example.org" not in wp.link
    assert "<p>" in wp.content[0].value and "&lt;p&gt;" not in wp.content[0].value
    assert any(e.link.startswith("https://example.org/") for e in entries.values())


def test_two_machines_on_one_database_give_a_source_entry_the_same_id(
        tmp_path: Path, feeds: FeedServer, request: pytest.FixtureRequest) -> None:
    """Each machine keeps a source's entries under its own state folder, wherever that is;
    the ids they agree on in the shared state must not depend on that folder, or the second
    machine's feed would give every entry another id than the first's (issue: every machine
    building from the same posts writes the same bytes). The first machine's ids are kept
    as an older digest kept them (under its absolute paths): its next build moves them to
    the shared keys, ids unchanged."""
    from conftest import config_of, store_config

    from digest.posts.sources import SHARED_PREFIX, source_folder
    from digest.state.open import open_state

    feeds.routes["/feed"] = Route(fixture("ours.xml"))
    shared = store_config("postgres", request)
    one = site_with(tmp_path / "one", feeds, {"feed": "/feed", "name": "partner"}, **shared)
    poll(one)
    build_site(one)
    before = (output(one) / "feed.xml").read_bytes()
    state = open_state(config_of(one))
    try:  # as an older digest kept them: under this machine's absolute paths
        posts = source_folder(config_of(one).state, "partner") / "posts"
        older = [(key, str(posts / key.split("/", 1)[1]))
                 for key in state.entry_ids() if key.startswith(SHARED_PREFIX)]
        assert len(older) >= 2
        state.rename_entry_ids(older)
    finally:
        state.close()
    (output(one) / "feed.xml").unlink()
    build_site(one)  # moves them to the shared keys, keeping the ids
    assert (output(one) / "feed.xml").read_bytes() == before
    two = site_with(tmp_path / "two" / "deeper", feeds, {"feed": "/feed", "name": "partner"},
                    **shared)  # another state folder
    poll(two)
    build_site(two)
    first, second = (parse_feed(output(config) / "feed.xml") for config in (one, two))
    assert {e.title for e in first.entries} >= {"Rust developer", "Local post"}
    assert [e.id for e in second.entries] == [e.id for e in first.entries]
    assert (output(two) / "feed.xml").read_bytes() == before
