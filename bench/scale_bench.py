"""Benchmark several `digest send` workers serving one digest together (leased batches).

Why this exists: senders scale out by claiming batches of one run's deliveries from the
shared state (delivery/send.py, Claims). This runs 1, 2 and 4 `digest send` processes
started together on one state, one digest to N subscribers (default 20,000), to postfix's
smtp-sink on loopback, and prints per worker count:

- wall seconds from the launch of the first worker to the exit of the last, and the
  aggregate rate (messages / wall)
- CPU seconds per message: the workers' user + system time (rusage from os.wait4, each
  worker alone) summed, over the messages
- skipped (deliveries the state does not show as sent) and duplicates (messages smtp-sink
  counted beyond one per subscriber)

Every worker must exit 0; the state must show the run done with N sent.

    python bench/scale_bench.py [--subscribers N] [--workers 1,2,4] [--concurrency C]
                                [--database-url URL]

The shared state is SQLite in the site's state folder unless --database-url names another
store: then every worker's config carries that URL (STATE_URL_KEY) and the state is wiped
between runs by `DROP SCHEMA public CASCADE` through psql; that needs digest's PostgreSQL
store, which is not there yet. The site is bench/send_site.py's, as bench/send_bench.py
builds it; smtp-sink is run by send_bench.Sink.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

from send_bench import DIGEST, SECRET, SINK, SOURCE, Sink, sink
from send_site import TIMEZONE, make_posts, write_config, write_subscribers

from digest.config import load_config
from digest.state.open import open_state

ROOT = Path(__file__).resolve().parent.parent
STATE_URL_KEY = "database_url"  # the config key a PostgreSQL store will read (to be settled)
_SUMMARY = re.compile(r"sent (\d+), skipped-empty (\d+), failed (\d+), deferred (\d+), "
                      r"suppressed (\d+), pending (\d+)")


@dataclass(frozen=True)
class Result:
    workers: int
    wall: float
    cpu: float  # user + system, summed over the workers
    sent: int  # as the state says
    received: int  # as smtp-sink counted
    expected: int

    @property
    def rate(self) -> float:
        return self.sent / self.wall

    @property
    def cpu_ms_per_message(self) -> float:
        return 1000 * self.cpu / max(self.sent, 1)

    @property
    def skipped(self) -> int:
        return self.expected - self.sent

    @property
    def duplicates(self) -> int:
        return max(self.received - self.sent, 0)


class State:
    """Where the workers' shared state lives, and how a run starts from none."""

    def __init__(self, url: str | None) -> None:
        self.url = url

    def config_lines(self) -> str:
        return f"{STATE_URL_KEY}: {self.url}\n" if self.url else ""

    def reset(self, state_dir: Path) -> None:
        shutil.rmtree(state_dir, ignore_errors=True)  # local files (and the SQLite state)
        if self.url:
            subprocess.run(["psql", self.url, "-q", "-c",
                            "DROP SCHEMA public CASCADE; CREATE SCHEMA public"], check=True)


def run_workers(config: Path, as_of: str, workers: int, expected: int, sink_: Sink,
                logs: Path) -> Result:
    """*workers* `digest send` processes started together; their rusage and the outcome."""
    env = {**os.environ, "DIGEST_SECRET": SECRET}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as send_bench: no recompiling per run
    before = sink_.received()
    started = time.perf_counter()
    procs = []
    for i in range(workers):
        out = (logs / f"w{workers}-{i}.stdout").open("wb")
        err = (logs / f"w{workers}-{i}.stderr").open("wb")
        procs.append((subprocess.Popen([str(DIGEST), "--config", str(config), "send",
                                        "--as-of", as_of], env=env, stdin=subprocess.DEVNULL,
                                       stdout=out, stderr=err), out, err, i))
    cpu = 0.0
    for proc, out, err, i in procs:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.close()
        err.close()
        cpu += usage.ru_utime + usage.ru_stime
        if proc.returncode != 0:
            text = (logs / f"w{workers}-{i}.stderr").read_text(errors="replace")
            raise RuntimeError(f"worker {i} of {workers} exited {proc.returncode}:\n{text}")
        summary = _SUMMARY.search((logs / f"w{workers}-{i}.stdout").read_text())
        if summary is None:
            raise RuntimeError(f"worker {i} of {workers}: no summary line")
    wall = time.perf_counter() - started
    deadline = time.monotonic() + 5  # smtp-sink's counter file lags a little
    while sink_.received() - before < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    state = open_state(load_config(config))
    try:
        run = state.latest_run()
        if run is None or state.run_state(run) != "done":
            raise RuntimeError(f"{workers} workers: the run is not done: {run}")
        sent = state.counts(run).get("sent", 0)
    finally:
        state.close()
    return Result(workers, wall, cpu, sent, sink_.received() - before, expected)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=20000)
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    parser.add_argument("--concurrency", type=int, default=20, help="connections per worker")
    parser.add_argument("--posts", type=int, default=20)
    parser.add_argument("--as-of", default="2024-06-03T09:00:00")
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--database-url", default=None,
                        help="a shared state other than SQLite (PostgreSQL, once digest has it)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "scale")
    args = parser.parse_args()
    for tool in (SINK, DIGEST):
        if not tool.exists():
            parser.error(f"{tool} is missing (smtp-sink: apt-get install postfix; digest: "
                         "pip install -e .)")
    counts = [int(w) for w in args.workers.split(",")]
    out: Path = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    logs = out / "logs"
    logs.mkdir(parents=True)
    as_of = dt.datetime.fromisoformat(args.as_of).replace(tzinfo=ZoneInfo(TIMEZONE))
    posts = out / "site" / "_posts"
    make_posts(posts, as_of=as_of, count=args.posts, source=args.source)
    subs = out / "subscribers.yaml"
    write_subscribers(subs, args.subscribers)
    store = State(args.database_url)
    load = f"{os.getloadavg()[0]:.2f}"
    results = []
    with sink(logs) as sink_:
        config = out / "site" / "config.yaml"
        write_config(config, posts=posts, subscribers=subs, state=out / "site" / "state",
                     port=sink_.port, concurrency=args.concurrency, per_connection=1000)
        if store.url:
            config.write_text(config.read_text() + store.config_lines())
        for workers in counts:
            store.reset(out / "site" / "state")
            results.append(run_workers(config, as_of.isoformat(), workers, args.subscribers,
                                       sink_, logs))
            print(f"{workers} worker(s) done", file=sys.stderr)
    lines = [f"digest send workers on one {'SQLite' if not store.url else 'shared'} state: "
             f"{args.subscribers} subscribers, {args.concurrency} connections per worker, "
             f"smtp-sink; {os.cpu_count()} CPUs, load {load} before",
             f"{'workers':>7} {'wall s':>8} {'msg/s':>8} {'CPU s':>8} {'CPU ms/msg':>10} "
             f"{'skipped':>8} {'dups':>6}"]
    lines += [f"{r.workers:>7} {r.wall:>8.2f} {r.rate:>8.0f} {r.cpu:>8.2f} "
              f"{r.cpu_ms_per_message:>10.3f} {r.skipped:>8} {r.duplicates:>6}"
              for r in results]
    lines.append(f"load {os.getloadavg()[0]:.2f} after")
    report = "\n".join(lines)
    print(report)
    (out / "report.txt").write_text(report + "\n", encoding="utf-8")
    return 0 if all(r.skipped == 0 and r.duplicates == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
