"""WebSub (`feeds: hub:`): every feed names the hub, and after a build the hub is told of
exactly the feeds whose bytes changed, with retries and backoff, never failing the build.

A real HTTP server on a free port stands in for the hub and records what it is sent."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs
from xml.etree import ElementTree as ET

import pytest
from conftest import NOW, SITE_URL, make_site, output, post, run_cli, run_module, write_posts
from helpers import wait_until

from digest.config import load_config
from digest.daemon.work import build_feeds
from digest.errors import ConfigError
from digest.feeds.websub import publish

ATOM = "{http://www.w3.org/2005/Atom}"
POSTS = {
    "2024-05-01-one.md": post("One", date='"2024-05-01 09:00:00"', tags="[python, data]"),
    "2024-05-02-two.md": post("Two", date='"2024-05-02 09:00:00"', tags="[data]"),
    "2024-05-03-three.md": post("Three", date='"2024-05-03 09:00:00"', tags="[ops]"),
}
AS_OF = ["--as-of", NOW.isoformat()]


class Hub:
    """A hub on a free loopback port: records each POST's form; answers from *statuses*,
    then 204 (WebSub's answer to a publish ping)."""

    def __init__(self, statuses: list[int] | None = None, delay: float = 0) -> None:
        self.posts: list[dict[str, list[str]]] = []
        self.content_types: list[str] = []
        self.statuses = list(statuses or [])
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(delay)
                hub.posts.append(parse_qs(body.decode()))
                hub.content_types.append(self.headers["Content-Type"])
                self.send_response(hub.statuses.pop(0) if hub.statuses else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hub"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def pinged(self) -> list[str]:
        return [url for form in self.posts for url in form.get("hub.url", [])]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def hub() -> Iterator[Hub]:
    server = Hub()
    yield server
    server.close()


def _feeds(config: Path) -> dict[str, bytes]:
    out = output(config)
    return {f"{SITE_URL}/{p.relative_to(out).as_posix()}": p.read_bytes()
            for p in out.rglob("*") if p.suffix in (".xml", ".rss", ".json")}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_every_feed_names_the_hub(tmp_path, hub):
    config = make_site(tmp_path, POSTS, feeds={"json": True, "hub": hub.url})
    code, _, err = run_cli(["--config", str(config), "build", *AS_OF])
    assert code == 0, err
    out = output(config)
    atoms, rsses = list(out.rglob("*.xml")), list(out.rglob("*.rss"))
    assert len(atoms) == 4 and len(rsses) == 4
    for path in atoms:
        root = ET.parse(path).getroot()
        hubs = [ln.get("href") for ln in root.findall(f"{ATOM}link") if ln.get("rel") == "hub"]
        assert hubs == [hub.url], path
    for path in rsses:
        channel = ET.parse(path).getroot().find("channel")
        assert channel is not None
        hubs = [ln.get("href") for ln in channel.findall(f"{ATOM}link")
                if ln.get("rel") == "hub"]
        assert hubs == [hub.url], path
    for path in out.rglob("*.json"):
        assert json.loads(path.read_bytes())["hubs"] == [{"type": "WebSub", "url": hub.url}]


def test_no_hub_no_hub_link(tmp_path):
    config = make_site(tmp_path, POSTS, feeds={"json": True})
    code, _, err = run_cli(["--config", str(config), "build", *AS_OF])
    assert code == 0 and "WebSub" not in err
    assert b'rel="hub"' not in (output(config) / "feed.xml").read_bytes()
    assert b'rel="hub"' not in (output(config) / "feed.rss").read_bytes()
    assert "hubs" not in json.loads((output(config) / "feed.json").read_bytes())


def test_build_pings_exactly_the_feeds_whose_bytes_changed(tmp_path, hub):
    config = make_site(tmp_path, POSTS, feeds={"json": True, "hub": hub.url})
    code, _, err = run_cli(["--config", str(config), "build", *AS_OF])
    assert code == 0 and err == ""
    first = _feeds(config)
    assert len(hub.posts) == 1  # one request, hub.url repeated
    assert hub.posts[0]["hub.mode"] == ["publish"]
    assert hub.content_types == ["application/x-www-form-urlencoded"]
    assert sorted(hub.pinged()) == sorted(first) and len(first) == 12

    # an unchanged rebuild: nothing written, nothing pinged
    code, _, _ = run_cli(["--config", str(config), "build", *AS_OF])
    assert code == 0 and len(hub.posts) == 1

    # one post edited: its feeds (site, data) change; python's and ops' do not
    write_posts(tmp_path, {"2024-05-02-two.md": post("Two, edited", date='"2024-05-02 09:00:00"',
                                                     tags="[data]")})
    code, _, _ = run_cli(["--config", str(config), "build", *AS_OF])
    assert code == 0 and len(hub.posts) == 2
    now = _feeds(config)
    changed = sorted(url for url, data in now.items() if first[url] != data)
    assert sorted(hub.posts[1]["hub.url"]) == changed
    assert changed == sorted(f"{SITE_URL}/{rel}" for rel in (
        "feed.xml", "feed.rss", "feed.json", "feed/by_tag/data.xml", "feed/by_tag/data.rss",
        "feed/by_tag/data.json"))


def test_a_hub_failing_twice_is_tried_three_times_with_growing_waits():
    server = Hub([500, 503])
    waits: list[float] = []
    try:
        ping = publish(server.url, ["https://example.org/feed.xml"], sleep=waits.append,
                       first_delay=0.01)
    finally:
        server.close()
    assert ping.error is None and ping.requests == 3 and len(server.posts) == 3
    assert waits == [0.01, 0.02]


def test_a_hub_failing_every_time_gives_up_after_three_attempts():
    server = Hub([500, 500, 500, 500])
    try:
        ping = publish(server.url, ["https://example.org/feed.xml"], sleep=lambda s: None)
    finally:
        server.close()
    assert ping.requests == 3 and len(server.posts) == 3
    assert ping.error is not None and "500" in ping.error


def test_a_hub_refusing_the_request_is_not_asked_again():
    server = Hub([400])
    try:
        ping = publish(server.url, ["https://example.org/feed.xml"], sleep=lambda s: None)
    finally:
        server.close()
    assert ping.requests == 1 and ping.error is not None and "400" in ping.error


def test_many_changed_feeds_go_in_bounded_batches(hub):
    urls = [f"https://example.org/feed/by_tag/t{i}.xml" for i in range(250)]
    ping = publish(hub.url, urls, sleep=lambda s: None)
    assert ping.error is None and ping.requests == 3
    assert [len(form["hub.url"]) for form in hub.posts] == [100, 100, 50]
    assert hub.pinged() == urls


def test_a_slow_hub_is_given_up_on_within_the_deadline():
    server = Hub(delay=2)
    started = time.monotonic()
    try:
        ping = publish(server.url, ["https://example.org/feed.xml"], sleep=time.sleep,
                       timeout=0.3, first_delay=0.1, deadline=1.0)
    finally:
        server.close()
    assert ping.error is not None
    assert time.monotonic() - started < 1.5


def test_a_hub_that_is_down_costs_a_warning_not_the_build(tmp_path):
    hub_url = f"http://127.0.0.1:{_closed_port()}/"
    config = make_site(tmp_path, POSTS, feeds={"hub": hub_url})
    started = time.monotonic()
    result = run_module(["--config", str(config), "build", *AS_OF])
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert (output(config) / "feed.xml").is_file()
    assert f"warning: WebSub hub {hub_url} not told of 8 changed feeds" in result.stderr
    assert "Traceback" not in result.stderr
    assert seconds < 10  # three attempts, 1 s and 2 s apart


def test_the_daemon_pings_without_waiting_for_the_hub(tmp_path):
    server = Hub(delay=1.5)
    try:
        config = load_config(make_site(tmp_path, POSTS, feeds={"hub": server.url}))
        started = time.monotonic()
        build_feeds(config, now=NOW, reason="test")
        assert time.monotonic() - started < 1.5  # the build did not wait for the answer
        wait_until(lambda: len(server.posts) == 1, timeout=10)
        assert sorted(server.pinged()) == sorted(_feeds(config.path))
    finally:
        server.close()


@pytest.mark.parametrize("bad", ["ftp://hub.example.org/", "hub.example.org", "https://",
                                 "https://hub.example.org/\nX-Injected: 1"])
def test_a_hub_must_be_an_http_url(tmp_path, bad):
    config = make_site(tmp_path, POSTS, feeds={"hub": bad})
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    message = str(caught.value)
    assert "feeds.hub" in message and "http(s) URL" in message and "config.yaml:" in message


def test_a_site_without_a_url_cannot_ping(tmp_path, hub):
    config = make_site(tmp_path, POSTS, feeds={"hub": hub.url}, url="")
    code, _, err = run_cli(["--config", str(config), "build", *AS_OF])
    assert code == 0 and hub.posts == []
    assert "site.url is not set" in err


def test_feeds_with_a_hub_stay_valid_for_a_feed_reader(tmp_path, hub):
    import feedparser

    config = make_site(tmp_path, POSTS, feeds={"hub": hub.url})
    run_cli(["--config", str(config), "build", *AS_OF])
    for name in ("feed.xml", "feed.rss"):
        parsed = feedparser.parse((output(config) / name).read_bytes())
        assert parsed.bozo == 0
        assert hub.url in [ln.href for ln in parsed.feed.links if ln.rel == "hub"]
        assert [e.title for e in parsed.entries] == ["Three", "Two", "One"]



def test_setting_a_hub_later_rewrites_every_feed_with_its_link(tmp_path, hub):
    config = make_site(tmp_path, POSTS, feeds={"json": True})
    run_cli(["--config", str(config), "build", *AS_OF])
    make_site(tmp_path, POSTS, feeds={"json": True, "hub": hub.url})
    run_cli(["--config", str(config), "build", *AS_OF])
    for url, data in _feeds(config).items():
        assert hub.url.encode() in data, url
    assert sorted(hub.pinged()) == sorted(_feeds(config))
