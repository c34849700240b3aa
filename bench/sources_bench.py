"""Benchmark a feed source against the posts folder, in one run, on the same posts.

A site whose N posts are in its folder (the reference), and one whose N posts come from an
Atom feed of N entries served by a real HTTP server on a loopback port: cold (empty
state: poll, then build), then again with nothing new (the server answers 304 to the
ETag), then again with a server without validators sending the same bytes. Best of K
runs each; prints one line per row.

    python bench/sources_bench.py [--entries N] [--runs K]
"""

from __future__ import annotations

import argparse
import http.server
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from digest.config import load_config
from digest.config.settings import Config
from digest.feeds.build import build
from digest.posts.poll import poll_sources

NOW = datetime(2024, 12, 1, tzinfo=UTC)
TEXT = "Some words of the job's description. " * 40


def atom(n: int) -> bytes:
    entries = "".join(
        f"<entry><id>urn:e{i}</id><title>Job {i}</title>"
        f"<updated>2024-{1 + i % 11:02d}-{1 + i % 27:02d}T10:00:00Z</updated>"
        f"<link href='https://p.example.com/{i}'/><category term='t{i % 10}'/>"
        f"<category term='all'/><content type='html'>&lt;p&gt;{TEXT}&lt;/p&gt;</content>"
        f"</entry>" for i in range(n))
    return (f"<?xml version='1.0'?><feed xmlns='http://www.w3.org/2005/Atom'><id>urn:p</id>"
            f"<title>P</title><updated>2024-01-01T00:00:00Z</updated>{entries}</feed>").encode()


def serve(body: bytes, etag: str | None) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if etag and self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            if etag:
                self.send_header("ETag", etag)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/feed.xml"


def site(root: Path, posts: int, sources: list[dict[str, str]]) -> Config:
    (root / "_posts").mkdir(parents=True)
    for i in range(posts):
        (root / "_posts" / f"2024-{1 + i % 11:02d}-{1 + i % 27:02d}-job-{i}.md").write_text(
            f"---\ntitle: Job {i}\ntags: [t{i % 10}, all]\n---\n{TEXT}\n")
    config = {"site": {"url": "https://s.example.org", "title": "S"}, "posts": "_posts",
              "output": "public", "state": "state", "sources": sources}
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    return load_config(root / "config.yaml")


def timed(step: Callable[[], object]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def one_run(tmp: Path, entries: int, url: str, plain_url: str) -> dict[str, float]:
    folder = site(tmp / "folder", entries, [])
    feed = site(tmp / "feed", 0, [{"feed": url, "name": "p"}])
    same = site(tmp / "same", 0, [{"feed": plain_url, "name": "p"}])
    poll_sources(same, now=NOW)
    build(same, now=NOW)
    steps: list[tuple[str, Callable[[], object]]] = [
        ("folder build, cold (reference)", lambda: build(folder, now=NOW)),
        ("feed poll (200), cold", lambda: poll_sources(feed, now=NOW)),
        ("feed build, cold", lambda: build(feed, now=NOW)),
        ("folder build, nothing new", lambda: build(folder, now=NOW)),
        ("feed poll (304) + build, nothing new",
         lambda: (poll_sources(feed, now=NOW, force=True), build(feed, now=NOW))),
        ("feed poll (200, same bytes) + build",
         lambda: (poll_sources(same, now=NOW, force=True), build(same, now=NOW))),
    ]
    return {name: timed(step) for name, step in steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    body = atom(args.entries)
    with_etag, url = serve(body, '"v1"')
    plain, plain_url = serve(body, None)
    rows: dict[str, list[float]] = {}
    for _ in range(args.runs):
        tmp = Path(tempfile.mkdtemp())
        try:
            for name, seconds in one_run(tmp, args.entries, url, plain_url).items():
                rows.setdefault(name, []).append(seconds)
        finally:
            shutil.rmtree(tmp)
    with_etag.shutdown()
    plain.shutdown()
    print(f"{args.entries} posts / entries, best of {args.runs}:")
    for name, times in rows.items():
        print(f"  {name:40} {min(times) * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
