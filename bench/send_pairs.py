"""`digest send` and `smtp-source -d` in alternation, K pairs, against one smtp-sink.

Why this exists: on a machine shared with other work, send_bench.py's best-of-K for each
sender measures them minutes apart, under different loads. Here each `digest send` is
followed at once by the reference (ours, reference, ours, reference…), each pair's ratio
is printed with the load average, and the median ratio closes the report.

    python bench/send_pairs.py [--subscribers N] [--pairs K] [--posts 20]

Same site, subscribers and checks as send_bench.py (every subscriber got one message,
smtp-sink's counter went up by as many); output under OUT (default bench/out/pairs/).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

from send_bench import (
    CONNECTIONS,
    DIGEST,
    ROOT,
    SECRET,
    SMTP_SOURCE,
    SOURCE,
    Notes,
    digest_send,
    run,
    sink,
    source_fingerprint,
    tree_state,
)
from send_site import TIMEZONE, make_posts, write_config, write_subscribers

_DRY = re.compile(r"would send (\d+) messages \((\d+) distinct editions, ([\d.]+) MB\)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=20000)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--posts", type=int, default=20)
    parser.add_argument("--as-of", default="2024-06-03T09:00:00")
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "pairs")
    args = parser.parse_args()

    out: Path = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    logs = out / "logs"
    logs.mkdir(parents=True)
    n: int = args.subscribers
    as_of = dt.datetime.fromisoformat(args.as_of).replace(tzinfo=ZoneInfo(TIMEZONE))
    posts = out / "site" / "_posts"
    make_posts(posts, as_of=as_of, count=args.posts, source=args.source)
    env = {**os.environ, "DIGEST_SECRET": SECRET}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    notes = Notes([], source_fingerprint())
    lines = [f"digest tree: {tree_state()} (code fingerprint {notes.code})"]

    with sink(logs) as sink_:
        subs = out / f"subscribers-{n}.yaml"
        write_subscribers(subs, n)
        cfg = out / "site-config" / "config.yaml"
        write_config(cfg, posts=posts, subscribers=subs, state=cfg.parent / "state",
                     port=sink_.port, concurrency=CONNECTIONS, per_connection=1000)
        skip = frozenset({sink_.proc.pid})
        shutil.rmtree(cfg.parent / "state", ignore_errors=True)
        dry = subprocess.run([str(DIGEST), "--config", str(cfg), "send", "--dry-run",
                              "--as-of", args.as_of], env=env, check=True,
                             capture_output=True, text=True)
        found = _DRY.search(dry.stdout)
        if found is None:
            raise RuntimeError(f"no dry-run summary in stdout:\n{dry.stdout}")
        size = round(float(found[3]) * 1e6 / int(found[1]))
        lines.append(f"{n} subscribers, {CONNECTIONS} connections, average message {size} B")
        ratios: list[float] = []
        for k in range(1, args.pairs + 1):
            load = os.getloadavg()[0]
            ours, phase = digest_send(cfg, args.as_of, cfg.parent / "state", n,
                                      f"digest send {n} #{k}", logs, env, sink_, notes)
            before = sink_.received()
            ref, output = run([str(SMTP_SOURCE), "-d", "-s", str(CONNECTIONS), "-m", str(n),
                               "-l", str(size), f"127.0.0.1:{sink_.port}"],
                              f"smtp-source #{k}", logs, env, skip)
            sink_.expect(before, n, "smtp-source")
            notes.add("smtp-source", output)
            mine, theirs = n / ours.seconds, n / ref.seconds
            ratios.append(mine / theirs)
            lines.append(f"pair {k}: digest send {mine:.0f} msg/s (wall {ours.seconds:.2f} s, "
                         f"cpu {ours.cpu_seconds:.2f} s, send phase {phase} msg/s); "
                         f"smtp-source {theirs:.0f} msg/s (wall {ref.seconds:.2f} s); "
                         f"ratio {mine / theirs:.2f}x; load average {load:.2f} → "
                         f"{os.getloadavg()[0]:.2f}")
            print(lines[-1], flush=True)
    lines.append(f"median ratio {statistics.median(ratios):.2f}x over {len(ratios)} pairs "
                 f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x)")
    if notes.lines:
        lines += ["stderr other than INFO logging:", *(f"  {x}" for x in dict.fromkeys(
            notes.lines))]
    text = "\n".join(lines)
    print(text)
    (out / "report.txt").write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
