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
- the start cost: the CPU seconds of one more `digest send` once the run is done (it starts,
  reads the subscribers file, finds nothing to send), and the CPU per message net of one
  such start per worker: what each message costs once the workers are running. CPU per
  message with N workers = net + N x start / messages, so a fixed cost per process shows
  as growth with N however flat the per-message cost is.
- the PostgreSQL server's CPU per message (its processes' rusage, with --postgres)
- a reference row, 1+N: one worker while N busy Python processes share the 2 cores with it
  (N = the largest count less one). The same work as the single worker; what its CPU grows
  by is what time-sharing the cores costs by itself (caches, context switches), which the
  N-worker rows pay too, apart from anything digest's workers share (--no-busy leaves it out)
- a reference row, N apart: N workers started together as the N-worker row, each sending
  its own share of the same list (whole editions, N shares of about equal size) from a state
  of its own (a state folder, a database), so they share nothing: no run, no lease, no
  claim. The same messages and layouts, the same processes, start costs and time-sharing as
  N workers sharing one run; the CPU of the shared row over this one is what sharing the run
  costs, the rest of the growth over one worker being what N processes on this machine cost
  whatever they do (--no-apart leaves it out; not with --database-url, which gives one
  database)

Every worker must exit 0; the state must show the run done with N sent.

Each run starts with no run in the shared state and no trace of a send, but the caches a
machine keeps in its state folder (the config's checked reading, the subscribers file's,
on PostgreSQL the posts' parse cache) are kept from the run before, as on a machine that has
sent before: senders started on one machine each week find them there. Each worker count
is also run once cold (rows marked c: a new state folder, every cache empty; compared with
the cold single worker), to show what a first send costs beside them. Net CPU subtracts
the warm start cost in both.

    python bench/scale_bench.py [--subscribers N] [--workers 1,2,4] [--concurrency C]
                                [--repeat K] [--no-busy] [--no-apart]
                                [--postgres | --database-url URL]

Each worker count runs K times (default 3), the counts interleaved (1, 2, 4, 1, 2, 4, ...)
so that a change of load on the machine falls on all of them, and each row shows the run of
median CPU: on this shared 2-core machine one run's CPU varied by 10 % and more between
repetitions, as much as the differences measured.

The shared state is SQLite in the site's state folder; with --postgres the same worker counts
run again on PostgreSQL, in the same invocation, so the two stores are compared under the
same load. --postgres starts a throwaway server in a temp folder (tests/pg_server.py, with
PostgreSQL's durable defaults: fsync on, unlike the tests' server); --database-url uses an
existing, empty database instead (everything in its schema `public` is dropped between runs).
The workers find it as a deployment does: the config says `database_env: DIGEST_DATABASE_URL`
and their environment holds the URL. The site is bench/send_site.py's, as bench/send_bench.py
builds it; smtp-sink is run by send_bench.Sink.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pg_server import PgServer, binaries
from send_bench import DIGEST, SECRET, SINK, SOURCE, Sink, sink
from send_site import TIMEZONE, make_posts, write_config, write_subscribers

from digest.config import load_config
from digest.state.open import open_state

ROOT = Path(__file__).resolve().parent.parent
DATABASE_ENV = "DIGEST_DATABASE_URL"  # the variable the config's database_env names
# a process that only keeps a core busy in the Python interpreter, as a worker does: the
# reference row 1+N runs one worker beside N of these, to show what sharing the cores costs
# a worker by itself, with nothing of digest's shared (no state, no relay, no lease)
BUSY = ("table = {}\nwhile True:\n    for i in range(100_000):\n        table[i] = str(i)\n"
        "    table.clear()\n")
_SUMMARY = re.compile(r"sent (\d+), skipped-empty (\d+), failed (\d+), deferred (\d+), "
                      r"suppressed (\d+), pending (\d+)")


@dataclass(frozen=True)
class Result:
    store: str
    workers: int
    cold: bool  # the machine's caches empty: a first send on a new state folder
    wall: float
    cpu: float  # user + system, summed over the workers
    server_cpu: float | None  # the PostgreSQL server's processes, while they ran
    sent: int  # as the state says
    received: int  # as smtp-sink counted
    expected: int
    busy: int = 0  # unrelated busy processes sharing the machine with the workers (BUSY)
    apart: bool = False  # each worker its own share of the list on its own state (N apart)

    @property
    def label(self) -> str:
        if self.apart:
            return f"{self.workers} apart"
        return f"{self.workers}+{self.busy}" if self.busy else str(self.workers)

    @property
    def rate(self) -> float:
        return self.sent / self.wall

    @property
    def cpu_ms_per_message(self) -> float:
        return 1000 * self.cpu / max(self.sent, 1)

    @property
    def server_ms_per_message(self) -> str:
        if self.server_cpu is None:
            return "-"
        return f"{1000 * self.server_cpu / max(self.sent, 1):.3f}"

    def net_ms_per_message(self, start: float) -> float:
        return 1000 * (self.cpu - self.workers * start) / max(self.sent, 1)

    @property
    def skipped(self) -> int:
        return self.expected - self.sent

    @property
    def duplicates(self) -> int:
        return max(self.received - self.sent, 0)


class State:
    """Where the workers' shared state lives, and how a run starts from none."""

    def __init__(self, url: str | None, server: PgServer | None = None) -> None:
        self.url = url
        self.name = "PostgreSQL" if url else "SQLite"
        self.server = server

    def server_cpu(self) -> float | None:
        """CPU seconds the throwaway server's processes have used so far: the postmaster's
        own and its reaped children's (the backends that served exited connections), plus
        its live children's (checkpointer, WAL writer, open backends)."""
        if self.server is None:
            return None
        pid = int((self.server.data / "postmaster.pid").read_text().split()[0])
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            if int(proc.name) == pid:
                total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
            elif int(fields[1]) == pid:
                total += int(fields[11]) + int(fields[12])
        return total / tick

    def config_lines(self) -> str:
        return f"database_env: {DATABASE_ENV}\n" if self.url else ""

    def apart(self, count: int) -> list[State] | None:
        """*count* stores of the same kind, each its own (the N apart row): state folders
        of their own on SQLite, a database each on the throwaway server; None where this
        bench cannot make databases (--database-url names one)."""
        if self.url is None:
            return [State(None) for _ in range(count)]
        if self.server is None:
            return None
        return [State(self.server.create_database(), self.server) for _ in range(count)]

    def env(self) -> dict[str, str]:
        return {DATABASE_ENV: self.url} if self.url else {}

    def reset(self, state_dir: Path, *, cold: bool) -> None:
        """No run, no deliveries, no trace of a send. *cold*: the state folder goes whole;
        else the machine's own caches stay as the last send left them (WARM_KEEPS)."""
        if cold:
            shutil.rmtree(state_dir, ignore_errors=True)
        elif state_dir.is_dir():
            keep = WARM_KEEPS + (LOCAL_CACHES if self.url else ())
            for path in state_dir.iterdir():
                if path.name in keep:
                    continue
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        if self.url:
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute("DROP SCHEMA public CASCADE")
                conn.execute("CREATE SCHEMA public")


# What a machine that has sent before holds in its state folder besides the send log: the
# config's checked reading and the subscribers file's (each keyed by the bytes it was made
# from), and, on PostgreSQL, the local SQLite file of the posts' parse cache
WARM_KEEPS = ("config.json", "subscribers.cache", "subscribers.lock")
LOCAL_CACHES = ("state.sqlite3", "state.sqlite3-wal", "state.sqlite3-shm")


@contextlib.contextmanager
def postgres() -> Iterator[tuple[str, PgServer]]:
    """A throwaway PostgreSQL server with its durable defaults; a database's URL on it."""
    found = binaries()
    if found is None:
        raise SystemExit("--postgres: no PostgreSQL in /usr/lib/postgresql/*/bin "
                         "(apt-get install postgresql)")
    server = PgServer(found, durable=True).start()
    try:
        yield server.create_database(), server
    finally:
        server.stop()


@dataclass(frozen=True)
class Share:
    """What one worker sends from: its config (its state folder, its subscribers) and the
    store its environment names. N workers of one run have one Share; N apart, one each."""
    config: Path
    state: Path  # the state folder the config names
    store: State


def run_workers(shares: list[Share], as_of: str, expected: int, sink_: Sink, logs: Path, *,
                cold: bool = False, busy: int = 0) -> Result:
    """One `digest send` process per share, started together; their rusage and the outcome.
    *busy*: that many BUSY processes run beside them meanwhile."""
    workers, store = len(shares), shares[0].store
    apart = len({share.config for share in shares}) > 1
    tag = (f"{store.name}-w{workers}{'-cold' if cold else ''}{f'-busy{busy}' if busy else ''}"
           f"{'-apart' if apart else ''}")
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(busy)]
    try:
        return _run_workers(shares, as_of, expected, sink_, logs, tag, cold=cold, busy=busy,
                            apart=apart)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def _env(store: State) -> dict[str, str]:
    env = {**os.environ, "DIGEST_SECRET": SECRET, **store.env()}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as send_bench: no recompiling per run
    return env


def _run_workers(shares: list[Share], as_of: str, expected: int, sink_: Sink, logs: Path,
                 tag: str, *, cold: bool, busy: int, apart: bool) -> Result:
    workers, store = len(shares), shares[0].store
    before = sink_.received()
    server_before = store.server_cpu()
    started = time.perf_counter()
    procs = []
    for i, share in enumerate(shares):
        out = (logs / f"{tag}-{i}.stdout").open("wb")
        err = (logs / f"{tag}-{i}.stderr").open("wb")
        procs.append((subprocess.Popen([str(DIGEST), "--config", str(share.config), "send",
                                        "--as-of", as_of], env=_env(share.store),
                                       stdin=subprocess.DEVNULL, stdout=out, stderr=err),
                      out, err, i))
    cpu = 0.0
    for proc, out, err, i in procs:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.close()
        err.close()
        cpu += usage.ru_utime + usage.ru_stime
        if proc.returncode != 0:
            text = (logs / f"{tag}-{i}.stderr").read_text(errors="replace")
            raise RuntimeError(f"worker {i} of {workers} exited {proc.returncode}:\n{text}")
        summary = _SUMMARY.search((logs / f"{tag}-{i}.stdout").read_text())
        if summary is None:
            raise RuntimeError(f"worker {i} of {workers}: no summary line")
    wall = time.perf_counter() - started
    server_after = store.server_cpu()
    server_cpu = None if server_before is None or server_after is None \
        else server_after - server_before
    deadline = time.monotonic() + 5  # smtp-sink's counter file lags a little
    while sink_.received() - before < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    sent = sum(_sent(share, workers) for share in dict.fromkeys(shares))
    return Result(store.name, workers, cold, wall, cpu, server_cpu, sent,
                  sink_.received() - before, expected, busy, apart)


def _sent(share: Share, workers: int) -> int:
    """The messages *share*'s state shows sent; raises unless its run is done."""
    os.environ.update(share.store.env())  # for this process's own look at the state
    state = open_state(load_config(share.config))
    try:
        run = state.latest_run()
        if run is None or state.run_state(run) != "done":
            raise RuntimeError(f"{workers} workers: the run is not done: {run}")
        return state.counts(run).get("sent", 0)
    finally:
        state.close()


def _median(results: list[Result]) -> Result:
    """The run of median CPU (the lower middle one of an even count): a whole run, so its
    figures agree with each other."""
    return sorted(results, key=lambda r: r.cpu)[(len(results) - 1) // 2]


def split_list(subscribers: Path, parts: int, into: Path) -> list[Path]:
    """*subscribers* in *parts* files of about equal size (the N apart row), each holding
    whole editions: those with the same tag choice, as edition_order groups them, go to the
    same file, so the N apart workers lay out the editions one worker does, each once."""
    entries = yaml.load(subscribers.read_text(encoding="utf-8"),
                        Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[dict[str, object]]] = {}
    for entry in entries:
        choice = (tuple(entry.get("tags") or ()), tuple(entry.get("exclude_tags") or ()))
        groups.setdefault(choice, []).append(entry)
    if len(groups) < parts:
        raise SystemExit(f"{len(groups)} editions cannot make {parts} shares")
    shares: list[list[dict[str, object]]] = [[]]
    for group in groups.values():
        if len(shares[-1]) >= len(entries) / parts and len(shares) < parts:
            shares.append([])
        shares[-1].extend(group)
    files = []
    for i, share in enumerate(shares):
        path = into / f"{subscribers.stem}-share{i}.yaml"
        path.write_text(yaml.dump(share, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
                                       sort_keys=False),
                        encoding="utf-8")
        files.append(path)
    return files


def start_cost(config: Path, as_of: str, store: State) -> float:
    """CPU seconds of a `digest send` that finds the run done: a worker's fixed cost."""
    proc = subprocess.Popen([str(DIGEST), "--config", str(config), "send", "--as-of", as_of],
                            env=_env(store), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"the start-cost send exited {proc.returncode}")
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=20000)
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    parser.add_argument("--concurrency", type=int, default=20, help="connections per worker")
    parser.add_argument("--posts", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each worker count, interleaved; the median is shown")
    parser.add_argument("--as-of", default="2024-06-03T09:00:00")
    parser.add_argument("--no-busy", dest="busy", action="store_false",
                        help="leave out the row of one worker beside busy processes")
    parser.add_argument("--no-apart", dest="apart", action="store_false",
                        help="leave out the row of N workers each on its own share and state")
    parser.add_argument("--source", type=Path, default=SOURCE)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--postgres", action="store_true",
                       help="run the same counts again on a throwaway PostgreSQL server")
    where.add_argument("--database-url", default=None,
                       help="... or on this existing, empty PostgreSQL database")
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
    with contextlib.ExitStack() as stack:
        stores = [State(None)]
        if args.postgres:
            stores.append(State(*stack.enter_context(postgres())))
        elif args.database_url:
            stores.append(State(args.database_url))
        load = f"{os.getloadavg()[0]:.2f}"
        results = []
        starts: dict[str, float] = {}
        with sink(logs) as sink_:
            for store in stores:
                def site(name: str, subscribers: Path, store: State) -> Share:
                    config = out / "site" / f"config-{name}.yaml"
                    write_config(config, posts=posts, subscribers=subscribers,
                                 state=out / "site" / f"state-{name}", port=sink_.port,
                                 concurrency=args.concurrency, per_connection=1000)
                    config.write_text(config.read_text() + store.config_lines())
                    return Share(config, out / "site" / f"state-{name}", store)

                shared = site(store.name, subs, store)
                config = shared.config
                most = max(counts)
                apart: list[Share] = []
                if args.apart and most > 1 and (stores_apart := store.apart(most)):
                    apart = [site(f"{store.name}-share{i}", part, part_store)
                             for i, (part, part_store)
                             in enumerate(zip(split_list(subs, most, out), stores_apart,
                                              strict=True))]
                rounds = [(w, False, 0, False) for w in counts]
                if args.busy and most > 1:
                    rounds.append((counts[0], False, most - counts[0], False))
                if apart:
                    rounds.append((most, False, 0, True))
                plan = [*((w, True, 0, False) for w in counts), *(rounds * args.repeat)]
                if apart:  # its caches as warm as the shared rows' (the cold rows fill theirs)
                    plan.insert(len(counts), (most, True, 0, True))
                for workers, cold, busy, alone in plan:
                    shares = apart if alone else [shared] * workers
                    for share in dict.fromkeys(shares):
                        share.store.reset(share.state, cold=cold)
                    result = run_workers(shares, as_of.isoformat(), args.subscribers, sink_,
                                         logs, cold=cold, busy=busy)
                    if not (alone and cold):  # the apart row's warm-up: not shown
                        results.append(result)
                    print(f"{store.name}: {workers} worker(s) done{' (cold)' * cold}"
                          f"{f' beside {busy} busy processes' if busy else ''}"
                          f"{' apart' if alone else ''}", file=sys.stderr)
                starts[store.name] = sorted(start_cost(config, as_of.isoformat(), store)
                                            for _ in range(3))[1]  # one run's varied
    every = results
    def kind(r: Result) -> tuple[str, int, bool, int, bool]:
        return r.store, r.workers, r.cold, r.busy, r.apart

    results = [_median([r for r in every if kind(r) == key])
               for key in dict.fromkeys(kind(r) for r in every)]
    lines = [f"digest send workers on one shared state: {args.subscribers} subscribers, "
             f"{args.concurrency} connections per worker, smtp-sink; {os.cpu_count()} CPUs, "
             f"load {load} before; each row the median (by CPU) of {args.repeat} runs "
             "interleaved",
             f"{'store':>10} {'workers':>7} {'wall s':>8} {'msg/s':>8} {'CPU s':>8} "
             f"{'CPU ms/msg':>10} {'vs 1':>6} {'net ms/msg':>10} {'vs 1':>6} "
             f"{'server ms/msg':>13} {'skipped':>8} {'dups':>6}"]
    one = {(r.store, r.cold): r for r in results
           if r.workers == counts[0] and not r.busy and not r.apart}
    base = {key: r.net_ms_per_message(starts[key[0]]) for key, r in one.items()}
    lines += [f"{r.store:>10} {r.label:>7}{'c' if r.cold else ' '}{r.wall:>8.2f} "
              f"{r.rate:>8.0f} {r.cpu:>8.2f} "
              f"{r.cpu_ms_per_message:>10.3f} "
              f"{r.cpu_ms_per_message / one[r.store, r.cold].cpu_ms_per_message:>6.2f} "
              f"{r.net_ms_per_message(starts[r.store]):>10.3f} "
              f"{r.net_ms_per_message(starts[r.store]) / base[r.store, r.cold]:>6.2f} "
              f"{r.server_ms_per_message:>13} {r.skipped:>8} {r.duplicates:>6}"
              for r in results]
    lines += [f"start cost ({name}): {cpu:.2f} CPU s per worker (a send that finds the run "
              "done: start-up and the subscribers file; the median of 3)"
              for name, cpu in starts.items()]
    for name in starts:
        runs = {label: [r.cpu for r in every if (r.store, r.label, r.cold) == (name, label,
                                                                             False)]
                for label in dict.fromkeys(r.label for r in every if not r.cold)}
        lines += [f"{name}: CPU s of each run, {label} worker(s): "
                  + ", ".join(f"{cpu:.2f}" for cpu in cpus) for label, cpus in runs.items()]
    lines.append("c: cold, one run: the state folder new (no config, parse or subscribers "
                 "cache), 'vs 1' against the cold single worker; the other rows keep those "
                 "caches between runs, as a machine that sent before")
    if any(r.busy for r in results):
        lines.append("1+N: one worker while N busy Python processes (BUSY) share the machine "
                     "with it: what sharing the cores alone does to one worker's CPU per "
                     "message, the same work as the single worker's")
    for alone in (r for r in results if r.apart):
        together = next(r for r in results if (r.store, r.workers, r.cold, r.busy, r.apart)
                        == (alone.store, alone.workers, False, 0, False))
        lines.append(f"N apart: N workers each sending its own share of the list (whole "
                     f"editions) from a state of its own, sharing nothing; {alone.store}: "
                     f"{alone.workers} workers sharing one run {together.cpu:.2f} CPU s, "
                     f"{alone.workers} apart {alone.cpu:.2f}: sharing the run costs "
                     f"{together.cpu / alone.cpu:.2f}x; {alone.workers} apart against one "
                     f"worker {alone.cpu / one[alone.store, False].cpu:.2f}x (what "
                     f"{alone.workers} processes cost on this machine, sharing nothing)")
    lines.append(f"load {os.getloadavg()[0]:.2f} after")
    report = "\n".join(lines)
    print(report)
    (out / "report.txt").write_text(report + "\n", encoding="utf-8")
    return 0 if all(r.skipped == 0 and r.duplicates == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
