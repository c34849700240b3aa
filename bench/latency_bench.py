"""Benchmark `digest send` to a relay across a network: smtp-sink behind a proxy that delays
every packet, so each round trip costs what it costs to a hosted relay.

Why this exists: on loopback a round trip is free and the send path's CPU is all there is
to measure (bench/send_bench.py). To a relay tens of milliseconds away, a connection's rate
is set by how many round trips each message needs. digest sends MAIL, RCPT and DATA in one
write where the server offers PIPELINING, and each message's content in the same write as
the next message's MAIL, RCPT and DATA: one round trip a message. This bench shows what
that is worth, with references measured in the same run through the same proxy:

- smtp-source -d -s C -m N -l SIZE (postfix's load generator: one command at a time);
- digest send with `smtp.pipelining: false` (one command at a time, as smtp-source);
- digest send as configured by default.

Each digest run starts from fresh state on the same posts and subscribers; its wall time
includes reading and rendering (about a second here). The proxy is this file run with
--proxy, in a process of its own.

    python bench/latency_bench.py [--rtt-ms 40] [--connections 20] [--subscribers 4000]

Only /usr/sbin/smtp-sink and /usr/sbin/smtp-source are run (Debian's postfix package).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from send_bench import SINK, SMTP_SOURCE, Sink
from send_site import TIMEZONE, make_posts, write_config, write_subscribers

DIGEST = Path(sys.executable).with_name("digest")
SECRET = "latency-bench-secret-not-for-production"
AS_OF = "2024-06-03T09:00:00"


# the proxy ---------------------------------------------------------------------------------
async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                delay: float) -> None:
    """Forward what *reader* gets to *writer*, each chunk *delay* seconds later, in order."""
    loop = asyncio.get_running_loop()
    try:
        while data := await reader.read(65536):
            loop.call_later(delay, writer.write, data)
    finally:
        loop.call_later(delay, writer.close)


async def _proxy(listen: int, upstream: int, delay: float) -> None:
    async def link(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream)
        await asyncio.gather(_pump(reader, up_writer, delay), _pump(up_reader, writer, delay),
                             return_exceptions=True)

    server = await asyncio.start_server(link, "127.0.0.1", listen)
    print("ready", flush=True)
    await server.serve_forever()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# the runs ----------------------------------------------------------------------------------
def timed(cmd: list[str], env: dict[str, str]) -> float:
    """Wall seconds of *cmd*, which must exit 0."""
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({done.returncode}): "
                         f"{done.stderr.decode(errors='replace')[-2000:]}")
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtt-ms", type=float, default=40.0)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--subscribers", type=int, default=4000)
    parser.add_argument("--size", type=int, default=40000,
                        help="smtp-source's message size (digest's average here is ~40 KB)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds, interleaved")
    parser.add_argument("--proxy", nargs=3, metavar=("LISTEN", "UPSTREAM", "DELAY"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.proxy:
        listen, upstream, delay = args.proxy
        asyncio.run(_proxy(int(listen), int(upstream), float(delay)))
        return 0
    for tool in (SINK, SMTP_SOURCE, DIGEST):
        if not tool.exists():
            parser.error(f"{tool} is missing (smtp-sink/smtp-source: apt-get install postfix)")

    with tempfile.TemporaryDirectory(prefix="latency-bench-") as folder:
        return bench(args, Path(folder))


def bench(args: argparse.Namespace, work: Path) -> int:
    n, conns = args.subscribers, args.connections
    as_of = dt.datetime.fromisoformat(AS_OF).replace(tzinfo=ZoneInfo(TIMEZONE))
    make_posts(work / "site" / "_posts", as_of=as_of, count=20, source=None)
    write_subscribers(work / "subscribers.yaml", n)
    env = {**os.environ, "DIGEST_SECRET": SECRET}
    sink = Sink(work)
    port = free_port()
    proxy = subprocess.Popen([sys.executable, __file__, "--proxy", str(port), str(sink.port),
                              str(args.rtt_ms / 2000)], stdout=subprocess.PIPE, text=True)
    try:
        assert proxy.stdout is not None and proxy.stdout.readline().strip() == "ready"
        rows: dict[str, list[float]] = {}

        def digest(label: str, round_: int, pipelining: bool) -> None:
            config = work / "site" / f"config-{label}-{round_}.yaml"
            write_config(config, posts=work / "site" / "_posts",
                         subscribers=work / "subscribers.yaml",
                         state=work / f"state-{label}-{round_}", port=port,
                         concurrency=conns, per_connection=n)
            if not pipelining:
                text = config.read_text(encoding="utf-8")
                config.write_text(text.replace("  rate: 0\n", "  rate: 0\n  pipelining: false\n"),
                                  encoding="utf-8")
            before = sink.received()
            wall = timed([str(DIGEST), "--config", str(config), "send", "--as-of",
                             as_of.isoformat()], env)
            sink.expect(before, n, label)
            rows.setdefault(label, []).append(n / wall)

        for round_ in range(args.repeat):
            before = sink.received()
            wall = timed([str(SMTP_SOURCE), "-d", "-s", str(conns), "-m", str(n), "-l",
                             str(args.size), f"127.0.0.1:{port}"], env)
            sink.expect(before, n, "smtp-source")
            rows.setdefault("smtp-source", []).append(n / wall)
            digest("digest, pipelining off", round_, False)
            digest("digest", round_, True)
    finally:
        proxy.kill()
        proxy.wait()
        sink.stop()

    print(f"{args.rtt_ms:.0f} ms round trip (proxy), {conns} connections, {n} messages, "
          f"best of {args.repeat} interleaved rounds")
    best = {label: max(rates) for label, rates in rows.items()}
    print(f"{'':32} {'msgs/s':>8} {'each round':>22} {'vs smtp-source':>15}")
    for label, rates in rows.items():
        each = ", ".join(f"{r:.0f}" for r in rates)
        print(f"{label:32} {best[label]:8.1f} {each:>22} "
              f"{best[label] / best['smtp-source']:14.2f}x")
    print(f"digest vs digest with pipelining off: "
          f"{best['digest'] / best['digest, pipelining off']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
