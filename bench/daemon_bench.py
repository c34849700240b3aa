"""Measure `digest run` on a 20,000-post replay of the jobs board: idle cost and new-post latency.

What the issue asks of the daemon, measured on one real process:

- idle: CPU % of one core and RSS, sampled from /proc/PID/stat and /proc/PID/status every
  few seconds for --idle-seconds while nothing changes (the periodic refresh included: it
  runs every --refresh-minutes, default 1, five times as often as the default 5, so the
  idle figure is an upper bound), and the CPU one periodic refresh costs;
- latency: a new post written into the folder → that post in feed.xml and in its tag's
  feed (polled every 5 ms), for --posts-added posts one after the other.

The corpus and everything the daemon writes go to --out (default: a fresh folder under
/tmp); nothing is written into the repository.

    python bench/daemon_bench.py [--posts 20000] [--idle-seconds 150] [--posts-added 10]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import make_corpus
from measure import proc_kb

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT.parent / "shared" / "corpora" / "progressivedatajobs"
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    at: float  # seconds since the idle phase began
    cpu: float  # CPU seconds used so far by the daemon and its reaped children
    rss_mb: float


def sample(pid: int, since: float) -> Sample:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # after the ')' the fields start at 3 (state): utime is 14, stime 15, cutime 16, cstime 17
    cpu = sum(int(fields[i - 3]) for i in (14, 15, 16, 17)) / TICKS
    return Sample(time.monotonic() - since, cpu, proc_kb(pid, "status", "VmRSS:") / 1024)


class Daemon:
    """`digest run --log-format json`, its events collected by a thread."""

    def __init__(self, config: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "digest", "--config", str(config), "run",
             "--log-format", "json"], cwd=ROOT, text=True, stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL, env=dict(os.environ, DIGEST_SECRET="bench-" + "x" * 32))
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            try:
                found = json.loads(line)
            except ValueError:
                found = {"event": None, "message": line.rstrip()}
            with self.lock:
                self.events.append(found)
                self.lock.notify_all()

    def wait_for(self, name: str, after: int = 0, timeout: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                for found in self.events[after:]:
                    if found.get("event") == name:
                        return found
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"no {name} event; log: {self.events[-5:]}")
                self.lock.wait(0.5)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=120)


def write_site(out: Path, posts: int, refresh_minutes: float) -> Path:
    make_corpus(SOURCE / "_posts", out / "site" / "_posts", count=posts)
    subscribers = out / "subscribers.yaml"
    subscribers.write_text("".join(f"- email: reader{i}@example.org\n  tags: [union]\n"
                                   for i in range(1000)), encoding="utf-8")
    config = out / "config.yaml"
    config.write_text(
        f"site:\n  jekyll_config: {SOURCE / '_config.yml'}\n  url: https://jobs.example.org\n"
        f"posts: {out / 'site' / '_posts'}\noutput: {out / 'public'}\nstate: {out / 'state'}\n"
        f"feeds:\n  refresh_minutes: {refresh_minutes}\nsubscribers: {subscribers}\n"
        "digest:\n  from: Jobs Board <jobs@example.org>\n  noun: job\n"
        # the web front is served too, as in production; port 0: whatever is free
        "web:\n  base_url: https://jobs.example.org/digest\n  listen: 127.0.0.1:0\n",
        encoding="utf-8")
    return config


def new_post(posts: Path, n: int) -> tuple[Path, str]:
    title = f"Daemon Bench Organizer {n}"
    day = time.strftime("%Y-%m-%d", time.localtime(time.time() - 86400))
    path = posts / f"{day}-daemon-bench-{n}.md"
    path.write_text(f"---\ntitle: \"{title}\"\ntags: [union]\n---\nA new job, number {n}.\n",
                    encoding="utf-8")
    return path, title


def appeared(public: Path, title: str) -> bool:
    try:
        return all(title in (public / rel).read_text(encoding="utf-8")
                   for rel in ("feed.xml", "feed/by_tag/union.xml"))
    except OSError:
        return False


def latency(daemon: Daemon, out: Path, count: int) -> list[tuple[float, float]]:
    """(seconds to appear in both feeds, the build's own seconds) per new post."""
    rows = []
    for n in range(count):
        mark = len(daemon.events)
        _path, title = new_post(out / "site" / "_posts", n)
        written = time.monotonic()
        while not appeared(out / "public", title):
            if time.monotonic() - written > 30:
                raise RuntimeError(f"post {n} did not appear within 30 s")
            time.sleep(0.005)
        took = time.monotonic() - written
        rebuilt = daemon.wait_for("feeds.rebuilt", after=mark)
        rows.append((took, float(rebuilt.get("seconds", 0))))
        time.sleep(1.0)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=20000)
    parser.add_argument("--idle-seconds", type=float, default=150)
    parser.add_argument("--refresh-minutes", type=float, default=1)
    parser.add_argument("--posts-added", type=int, default=10)
    parser.add_argument("--every", type=float, default=5, help="seconds between samples")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out: Path = args.out or Path(tempfile.mkdtemp(prefix="digest-daemon-bench-"))
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    config = write_site(out, args.posts, args.refresh_minutes)

    launched = time.monotonic()
    daemon = Daemon(config)
    try:
        daemon.wait_for("daemon.started")
        started = time.monotonic()
        cold = started - launched
        print(f"{args.posts} posts; cold start (first build, empty state): {cold:.1f} s")
        time.sleep(5)  # let the start-up settle before measuring idle
        begin = time.monotonic()
        samples = [sample(daemon.process.pid, begin)]
        while samples[-1].at < args.idle_seconds:
            time.sleep(args.every)
            samples.append(sample(daemon.process.pid, begin))
        first, last = samples[0], samples[-1]
        idle_pct = 100 * (last.cpu - first.cpu) / (last.at - first.at)
        period = 60 * args.refresh_minutes  # the refresh job runs every period from the start
        refreshes = int((last.at + begin - started) // period) \
            - int((first.at + begin - started) // period)
        print(f"\nidle {last.at:.0f} s (refresh every {args.refresh_minutes:g} min: "
              f"{refreshes} refreshes): CPU {idle_pct:.2f} % of one core")
        print("  t (s)   CPU s   RSS MB")
        for s in [*samples[:: max(1, len(samples) // 12)], samples[-1]]:
            print(f"  {s.at:5.0f}  {s.cpu:6.2f}  {s.rss_mb:7.1f}")
        rss = [s.rss_mb for s in samples]
        print(f"  RSS min {min(rss):.1f} MB, max {max(rss):.1f} MB, last {rss[-1]:.1f} MB")
        steps = sorted(b.cpu - a.cpu for a, b in itertools.pairwise(samples))
        quiet = steps[len(steps) // 2] / args.every  # the median step has no refresh in it
        print(f"  between refreshes: {100 * quiet:.2f} % of one core (the file watchers)")
        if refreshes:
            per = (last.cpu - first.cpu - quiet * (last.at - first.at)) / refreshes
            print(f"  one refresh of {args.posts} posts: {per:.2f} CPU s → at the default "
                  f"5 min: {100 * (quiet + per / 300):.2f} % of one core")

        rows = latency(daemon, out, args.posts_added)
        took = sorted(r[0] for r in rows)
        print(f"\nnew post → in feed.xml and feed/by_tag/union.xml ({len(rows)} posts): "
              f"median {took[len(took) // 2]:.2f} s, max {took[-1]:.2f} s "
              f"(the daemon's build: median {sorted(r[1] for r in rows)[len(rows) // 2]:.2f} s)")
        after = sample(daemon.process.pid, begin)
        print(f"RSS after the new posts: {after.rss_mb:.1f} MB")
    finally:
        code = daemon.stop()
        print(f"\nstopped with exit status {code}; files in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
