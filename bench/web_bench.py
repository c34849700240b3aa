"""Load the web front with wrk: feeds (full and conditional) and archive pages, on loopback.

Measured in one run, each route for --seconds (30 by default) with wrk's --latency:

- the reference: a bare ASGI app on the same uvicorn returning the same feed bytes from
  memory (what the server stack itself costs, with no routing, files or validators);
- `digest serve` on the jobs board (its 1,048 posts built into feeds, one digest sent so
  the archive has a page): /feed.xml, a tag feed, /feed.xml with If-None-Match (what a
  polling feed reader sends: 304), /archive/ and /archive/SLUG.

Prints requests/s, p50/p99 latency, errors, and each route's ratio to the reference.
Needs wrk (apt-get install wrk). Both servers share the machine's cores with wrk.

    python bench/web_bench.py [--seconds 30] [--connections 50] [--source PATH]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT.parent / "shared" / "corpora" / "progressivedatajobs"
SECRET = "bench-only-secret-0123456789abcdef"


@dataclass(frozen=True)
class Load:
    label: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: str  # "" when none


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(label: str, url: str, seconds: int, connections: int,
        header: str | None = None) -> Load:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if header:
        cmd[1:1] = ["-H", header]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out)[1])  # type: ignore[index]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out)[1])  # type: ignore[index]
    errors = "; ".join(line.strip() for line in out.splitlines()
                       if "Socket errors" in line or "Non-2xx" in line)
    return Load(label, rps, p50, p99, errors)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def make_site(work: Path, source: Path, web_port: int) -> Path:
    """The jobs board with a config, feeds built and one digest sent (to the outbox)."""
    (work / "subscribers.yaml").write_text(
        "- email: reader@example.org\n- email: union@example.org\n  tags: [union]\n")
    config = work / "config.yaml"
    config.write_text(textwrap.dedent(f"""\
        site:
          jekyll_config: {source / "_config.yml"}
        posts: {source / "_posts"}
        output: public
        state: state
        subscribers: subscribers.yaml
        digest:
          from: "Jobs Board <jobs@example.org>"
          noun: job/jobs
          first_window_days: 21
        web:
          base_url: https://jobs.example.org/digest
          listen: "127.0.0.1:{web_port}"
        """))
    env = dict(os.environ, DIGEST_SECRET=SECRET)
    digest = [sys.executable, "-m", "digest", "--config", str(config)]
    built = subprocess.run([*digest, "build"], env=env, capture_output=True, text=True)
    if built.returncode not in (0, 1):  # 1: some posts rejected (the board has two broken)
        raise SystemExit(built.stderr)
    # the board's last posts are from 2020: a digest as of a week after them
    sent = subprocess.run([*digest, "posts", "--json"], env=env,
                          capture_output=True, text=True).stdout
    last = max(re.findall(r'"date": "([^"]+)"', sent))
    as_of = time.strftime("%Y-%m-%dT09:00:00+00:00", time.gmtime(
        time.mktime(time.strptime(last[:10], "%Y-%m-%d")) + 7 * 86400))
    subprocess.run([*digest, "send", "--as-of", as_of], check=True, env=env,
                   capture_output=True)
    return config


REFERENCE_APP = """
import sys, uvicorn
body = open(sys.argv[1], "rb").read()
headers = [(b"content-type", b"application/atom+xml; charset=utf-8"),
           (b"content-length", str(len(body)).encode())]
async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning",
            access_log=False, lifespan="off")
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "web")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    port, ref_port = free_port(), free_port()
    config = make_site(args.out, args.source, port)
    feed = args.out / "public" / "feed.xml"
    slug = sorted(p.stem for p in (args.out / "state" / "archive").glob("*.json"))[-1]
    base = f"http://127.0.0.1:{port}"
    results: list[Load] = []
    reference = subprocess.Popen([sys.executable, "-c", REFERENCE_APP, str(feed),
                                  str(ref_port)])
    try:
        wait_up(f"http://127.0.0.1:{ref_port}/", reference)
        results.append(wrk("reference: bare uvicorn, same bytes", f"http://127.0.0.1:{ref_port}/",
                           args.seconds, args.connections))
    finally:
        reference.send_signal(signal.SIGINT)
        reference.wait(10)
    server = subprocess.Popen([sys.executable, "-m", "digest", "--config", str(config), "serve"],
                              env=dict(os.environ, DIGEST_SECRET=SECRET),
                              stderr=subprocess.DEVNULL)
    try:
        wait_up(f"{base}/healthz", server)
        with urllib.request.urlopen(f"{base}/feed.xml") as answer:
            etag = answer.headers["ETag"]
        routes = [("/feed.xml", "/feed.xml", None),
                  ("/feed/by_tag/union.xml", "/feed/by_tag/union.xml", None),
                  ("/feed.xml, If-None-Match (304)", "/feed.xml", f"If-None-Match: {etag}"),
                  ("/archive/", "/archive/", None),
                  (f"/archive/{slug}", f"/archive/{slug}", None)]
        for label, path, header in routes:
            results.append(wrk(label, base + path, args.seconds, args.connections, header))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(15)
    size = feed.stat().st_size
    print(f"\nwrk -t2 -c{args.connections} -d{args.seconds}s on loopback, {os.cpu_count()} "
          f"cores shared with wrk; feed.xml is {size / 1024:.1f} KiB\n")
    ref = results[0].requests_per_second
    print(f"{'route':44} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs ref':>7}  errors")
    for r in results:
        print(f"{r.label:44} {r.requests_per_second:9.0f} {r.p50_ms:8.2f} {r.p99_ms:8.2f} "
              f"{r.requests_per_second / ref:6.2f}x  {r.errors or 'none'}")
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
