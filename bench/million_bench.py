"""Peak memory, wall time and message rate of one `digest send` to a very long list.

Why this exists: the issue asks that one run (render + send to smtp-sink) reach 1,000,000
subscribers with at most 300 MB of peak memory per process; bench/send_bench.py measures
100,000 at most, next to smtp-source. Here one `digest send` per list size runs as a child
process (from empty state) against one smtp-sink, and the same run measures 100,000
subscribers too, so that the big figures always come with their reference from the same
code and the same machine load.

Measured per size (bench/measure.py, bench/pss.py): wall time, messages per second (the
whole command, reading included), the process's peak RSS (ru_maxrss of that child alone)
and the process tree's peak PSS (forked render workers' shared pages counted once). Every
run is checked: digest's summary must say one message per subscriber, and smtp-sink's
counter must have gone up by as many.

    python bench/million_bench.py [--subscribers N] [--reference M] [--tracemalloc]

--tracemalloc also starts a run for M subscribers in this process under tracemalloc and
prints the lines that hold the most memory once the run's queue is made (every per-run
structure is alive then), to see what grows with the list; that run sends nothing.

Only /usr/sbin/smtp-sink is run (Debian's postfix package); postfix itself never is.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import shutil
import sys
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import layout
from send_bench import (
    DIGEST,
    PSS_PEAK_MB,
    SECRET,
    SINK,
    SOURCE,
    Notes,
    digest_send,
    sink,
    source_fingerprint,
    tree_state,
)
from send_site import TIMEZONE, make_posts, write_config, write_subscribers

ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = 20
MEMORY_TARGET_MB = 300.0


def traced_send(config: Path, as_of: dt.datetime, top: int) -> str:
    """Start a run in this process under tracemalloc; the top lines by memory held when the
    run's queue is complete (Composer.grouped has returned: the sender's per-run maps are
    all alive then), and the traced peak until the first message is made. Nothing is sent:
    tracing every message would take many times the run's real time."""
    os.environ.setdefault("DIGEST_SECRET", SECRET)
    from digest.config import load_config
    from digest.delivery.compose import Composer
    from digest.delivery.send import send
    from digest.delivery.transport import Outgoing, Record

    cfg = load_config(config)
    taken: list[tracemalloc.Snapshot] = []
    peak: list[int] = []
    grouped = Composer.grouped

    def snapshot_after(self: Composer, items: Any, who: Any) -> Any:
        result = grouped(self, items, who)
        gc.collect()
        taken.append(tracemalloc.take_snapshot())
        return result

    class Snapshotting:
        """Takes the first message, notes the traced peak, and sends nothing."""

        async def deliver(self, messages: AsyncIterator[Outgoing], record: Record, *,
                          stop: object = None) -> None:
            async for _outgoing in messages:
                peak.append(tracemalloc.get_traced_memory()[1])
                return

    shutil.rmtree(cfg.state, ignore_errors=True)
    Composer.grouped = snapshot_after  # type: ignore[method-assign]  # this process only
    tracemalloc.start(1)
    try:
        report = send(cfg, as_of=as_of, transport=Snapshotting())
    finally:
        tracemalloc.stop()
        Composer.grouped = grouped  # type: ignore[method-assign]
    counts = report.runs[0].counts if report.runs else {}
    n = sum(counts.values()) or 1
    lines = [f"tracemalloc: traced peak until the first message {peak[0] / 2**20:.1f} MB; "
             f"run counts {counts}" if peak else f"tracemalloc: no message made ({counts})"]
    if taken:
        stats = taken[0].statistics("lineno")
        total = sum(s.size for s in stats)
        lines.append(f"held when the queue was complete: {total / 2**20:.1f} MB "
                     f"({total / n:.0f} B a subscriber); top {top} lines:")
        for stat in stats[:top]:
            frame = stat.traceback[0]
            where = frame.filename.replace(str(ROOT) + "/", "")
            where = where.split("site-packages/")[-1]
            lines.append(f"  {stat.size / 2**20:8.1f} MB {stat.size / n:6.0f} B/sub "
                         f"{stat.count:>9} blocks  {where}:{frame.lineno}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, nargs="+", default=[1_000_000],
                        help="list sizes to send to (default 1,000,000)")
    parser.add_argument("--reference", type=int, default=100_000,
                        help="the size measured in the same run for scale (0: none)")
    parser.add_argument("--posts", type=int, default=20)
    parser.add_argument("--as-of", default="2024-06-03T09:00:00")
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also send --reference subscribers in-process under tracemalloc")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "million")
    args = parser.parse_args()
    for tool in (SINK, DIGEST):
        if not tool.exists():
            parser.error(f"{tool} is missing (smtp-sink: apt-get install postfix; "
                         "digest: pip install -e .)")
    out: Path = args.out.resolve()
    logs = out / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    as_of = dt.datetime.fromisoformat(args.as_of).replace(tzinfo=ZoneInfo(TIMEZONE))
    posts = out / "site" / "_posts"
    make_posts(posts, as_of=as_of, count=args.posts, source=args.source)
    env = {**os.environ, "DIGEST_SECRET": SECRET}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    notes = Notes([], source_fingerprint())
    sizes = list(dict.fromkeys(([args.reference] if args.reference else []) + args.subscribers))
    rows: list[tuple[str, ...]] = []
    traced = ""
    with sink(logs) as sink_:
        def config(n: int) -> Path:
            subs = out / f"subscribers-{n}.yaml"  # kept between runs: same seed, same bytes
            if not subs.exists():
                write_subscribers(subs, n)
            path = out / f"n{n}" / "config.yaml"
            write_config(path, posts=posts, subscribers=subs, state=out / f"n{n}" / "state",
                         port=sink_.port, concurrency=CONNECTIONS, per_connection=1000)
            return path

        for n in sizes:
            cfg = config(n)
            label = f"digest send {n}"
            m, rate = digest_send(cfg, args.as_of, cfg.parent / "state", n, label, logs, env,
                                  sink_, notes)
            rows.append((f"{n:,}", f"{m.peak_rss_mb:.1f}", f"{PSS_PEAK_MB[label]:.1f}",
                         f"{m.seconds:.1f}", f"{m.cpu_seconds:.1f}", f"{n / m.seconds:.0f}",
                         f"{rate}", f"{1024 * 1024 * m.peak_rss_mb / n:.0f}"))
            print(" ".join(rows[-1]), flush=True)
        if args.tracemalloc and args.reference:
            traced = traced_send(config(args.reference), as_of, args.top)
    header = ("subscribers", "peak RSS MB", "tree PSS MB", "wall s", "cpu s", "msgs/s",
              "send-phase msg/s", "RSS B/subscriber")
    report = [f"digest tree: {tree_state()} (code fingerprint {notes.code}); {args.posts} "
              f"posts; {CONNECTIONS} connections to smtp-sink; load average "
              f"{os.getloadavg()[0]:.2f}", layout(header, rows),
              f"target: peak RSS <= {MEMORY_TARGET_MB:.0f} MB per process"]
    if traced:
        report += ["", traced]
    if notes.lines:
        report += ["", *dict.fromkeys(notes.lines)]
    text = "\n".join(report)
    print(text)
    (out / "report.txt").write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
