"""Benchmark `digest send` against postfix's smtp-source, both sending to smtp-sink on loopback.

Why this exists: the issue asks that `digest send` (aiosmtplib, the durable send log on)
reach at least half of smtp-source's message rate with the same number of connections,
and that a 100,000-subscriber run (render + send) stay under 300 MB of peak memory. Both
senders are measured in one run, against one smtp-sink, with messages of the same size.

Measured, each as a child process (bench/measure.py: wall, CPU, peak RSS of the process
and of its process tree; bench/pss.py: the tree's peak PSS, which does not count pages
shared with forked workers twice):

- smtp-source -d -s 20 -m N -l SIZE (the reference; SIZE = digest's average message size)
- aiosmtplib alone (bench/send_floor.py): a real digest message of about SIZE sent N times
  over 20 connections with nothing else, the ceiling for a sender built on aiosmtplib; and
  the same through digest.delivery.smtpdata, the adapter `digest send` uses, one command
  at a time and pipelined (MAIL, RCPT and DATA in one write, as `digest send` does when the
  server offers PIPELINING, which smtp-sink does)
- digest startup (`digest --version`) and a dry run for one subscriber (read + render the
  posts), to split digest's time into fixed cost, per-message rendering and sending
- digest send --dry-run for N subscribers (every message rendered, nothing sent)
- digest send for N subscribers, 20 connections, fresh state each run (best of K)
- digest send for the big list (one run), and one N-subscriber send under cProfile

Every run is checked: digest's summary line must say it sent one message per subscriber,
and smtp-sink's own counter (-c) must have gone up by as many messages.

    python bench/send_bench.py [--subscribers N] [--big M] [--repeat K] [--no-profile]

The table, the targets and the profile summary are printed and kept in OUT/report.txt
(default bench/out/send/), next to the cProfile file and each child's stdout and stderr.

Only /usr/sbin/smtp-sink and /usr/sbin/smtp-source are run (Debian's postfix package);
postfix itself is never started.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import pstats
import re
import shutil
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import CommandFailedError, Measurement, best_of, layout, run_measured
from pss import tree_pss
from send_site import TIMEZONE, make_posts, write_config, write_subscribers

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT.parent / "shared" / "corpora" / "progressivedatajobs" / "_posts"
SINK = Path("/usr/sbin/smtp-sink")
SMTP_SOURCE = Path("/usr/sbin/smtp-source")
DIGEST = Path(sys.executable).with_name("digest")
SECRET = "bench-secret-not-for-production-0123456789"
CONNECTIONS = 20
MEMORY_TARGET_MB = 300.0

_SUMMARY = re.compile(r"sent (\d+), skipped-empty (\d+), failed (\d+), deferred (\d+), "
                      r"suppressed (\d+), pending (\d+)")
_DRY = re.compile(r"would send (\d+) messages \((\d+) distinct editions, ([\d.]+) MB\)")
_PROGRESS = re.compile(r"(\d+)/(\d+) sent or closed(?: \(\d+ not sent\))?, (\d+) msg/s")
_SINK_COUNT = re.compile(rb"mesg=(\d+)")
PSS_PEAK_MB: dict[str, float] = {}  # label → highest tree PSS over its runs (bench/pss.py)


@dataclass(frozen=True)
class Row:
    """One line of the result table."""

    m: Measurement
    messages: int  # messages sent (or rendered, for a dry run); 0: no rate
    note: str = ""

    @property
    def rate(self) -> float:
        return self.messages / self.m.seconds if self.messages else 0.0

    @property
    def memory_mb(self) -> float:
        return max(self.m.peak_rss_mb, self.m.tree_rss_mb)

    @property
    def pss_mb(self) -> float:
        return PSS_PEAK_MB.get(self.m.label, 0.0)


# smtp-sink ---------------------------------------------------------------------------------
class Sink:
    """smtp-sink on a free loopback port; `received()` reads its message counter (-c)."""

    def __init__(self, workdir: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.counter = workdir / "smtp-sink.counters"
        self.errors = workdir / "smtp-sink.stderr"
        cmd = [str(SINK), "-c", *(["-u", "nobody"] if os.geteuid() == 0 else []),
               f"127.0.0.1:{self.port}", "1000"]
        with self.counter.open("wb") as out, self.errors.open("wb") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"smtp-sink exited with {self.proc.returncode}: "
                                   f"{self.errors.read_text(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def received(self) -> int:
        found = _SINK_COUNT.findall(self.counter.read_bytes())
        return int(found[-1]) if found else 0

    def expect(self, before: int, count: int, what: str) -> None:
        """Fail unless `count` more messages than `before` reached the sink."""
        deadline = time.monotonic() + 5
        while (got := self.received() - before) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        if got != count:
            raise RuntimeError(f"{what}: smtp-sink received {got} messages, expected {count}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.returncode not in (0, -15):
            print(f"note: smtp-sink exited with {self.proc.returncode}", file=sys.stderr)


@contextmanager
def sink(workdir: Path) -> Iterator[Sink]:
    server = Sink(workdir)
    try:
        yield server
    finally:
        server.stop()


# children ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Output:
    stdout: str
    stderr: str


def run(cmd: list[str], label: str, workdir: Path, env: dict[str, str],
        skip: frozenset[int]) -> tuple[Measurement, Output]:
    """run_measured, keeping the child's stdout and stderr in files we can read afterwards,
    and sampling the tree's PSS (all our children but `skip`) into PSS_PEAK_MB[label].

    `sh -c 'exec ...'` only redirects: the shell becomes the command, so the rusage and the
    process tree measured are the command's own.
    """
    slug = re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-")
    out, err = workdir / f"{slug}.stdout", workdir / f"{slug}.stderr"
    wrapped = ["/bin/sh", "-c", 'exec "$@" >"$BENCH_STDOUT" 2>"$BENCH_STDERR"', "sh", *cmd]
    try:
        with tree_pss(skip) as pss:
            m = run_measured(wrapped, env={**env, "BENCH_STDOUT": str(out),
                                           "BENCH_STDERR": str(err)}, label=label)
    except CommandFailedError as exc:
        raise CommandFailedError(cmd, exc.returncode, err.read_text(errors="replace")) from None
    PSS_PEAK_MB[label] = max(PSS_PEAK_MB.get(label, 0.0), pss.peak_mb)
    return m, Output(out.read_text(errors="replace"), err.read_text(errors="replace"))


def odd_lines(stderr: str) -> list[str]:
    """stderr lines other than digest's routine INFO logging."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("INFO ")]


def source_fingerprint() -> str:
    """A hash of digest's code and templates: a run is only comparable with the same code."""
    sha = hashlib.sha256()
    for path in sorted([*(ROOT / "digest").rglob("*.py"), *(ROOT / "templates").rglob("*")]):
        if path.is_file() and "__pycache__" not in path.parts:  # children write bytecode
            sha.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return sha.hexdigest()[:12]


@dataclass
class Notes:
    """What the runs said besides their numbers, for the report."""

    lines: list[str]
    code: str = ""  # source_fingerprint() when the benchmark started

    def add(self, label: str, output: Output) -> None:
        for line in odd_lines(output.stderr):
            self.lines.append(f"{label}: stderr: {line}")

    def check_tree(self, label: str) -> None:
        """Note it when digest's code changed since the start (others edit the tree)."""
        now = source_fingerprint()
        if now != self.code:
            self.lines.append(f"WARNING: digest/ or templates/ changed during the benchmark "
                              f"(code {self.code} at the start, {now} before '{label}'): "
                              "rows are not comparable; run it again")


def digest_send(config: Path, as_of: str, state: Path, expected: int, label: str,
                workdir: Path, env: dict[str, str], sink_: Sink, notes: Notes,
                prefix: tuple[str, ...] = ()) -> tuple[Measurement, int]:
    """One `digest send` from empty state; checks every subscriber got exactly one message.

    Returns the measurement and the send-phase rate digest's progress log reported last.
    """
    shutil.rmtree(state, ignore_errors=True)
    before = sink_.received()
    entry = ["-m", "digest"] if prefix else [str(DIGEST)]  # under a profiler: python -m
    cmd = [*prefix, *entry, "--config", str(config), "send", "--as-of", as_of]
    notes.check_tree(label)
    m, output = run(cmd, label, workdir, env, frozenset({sink_.proc.pid}))
    summary = _SUMMARY.search(output.stdout)
    if summary is None:
        raise RuntimeError(f"{label}: no summary line in stdout:\n{output.stdout}")
    sent, empty, failed, deferred, suppressed, pending = map(int, summary.groups())
    if sent != expected or failed or deferred or pending:
        raise RuntimeError(f"{label}: expected sent {expected}, got: {summary.group(0)}")
    del empty, suppressed
    sink_.expect(before, expected, label)
    notes.add(label, output)
    progress = _PROGRESS.findall(output.stderr)
    return m, int(progress[-1][2]) if progress else 0


def typical_message(config: Path, as_of: str, size: int, workdir: Path,
                    env: dict[str, str]) -> Path:
    """A real digest message of about the average size (`digest preview` writes one .eml per
    edition), for the aiosmtplib-alone row."""
    out = workdir / "preview"
    shutil.rmtree(config.parent / "state", ignore_errors=True)
    subprocess.run([str(DIGEST), "--config", str(config), "preview", "--as-of", as_of,
                    "--out", str(out)], env=env, check=True, capture_output=True)
    shutil.rmtree(config.parent / "state", ignore_errors=True)
    return min(out.glob("*.eml"), key=lambda p: abs(p.stat().st_size - size))


# profile -----------------------------------------------------------------------------------
_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("aiosmtplib + digest.delivery.smtpdata (SMTP client)",
     ("aiosmtplib/", "digest/delivery/smtpdata.py")),
    ("send log (sqlite)", ("digest/state/sendlog.py", "digest/state/store.py", "sqlite3")),
    ("parseaddr / email.utils", ("email/_parseaddr.py", "email/utils.py")),
    ("rendering + personalising (digest.edition, compose, jinja2, css_inline)",
     ("digest/edition/layout.py", "digest/edition/message.py", "digest/delivery/compose.py",
      "jinja2/", "markupsafe/", "css_inline", "/templates/", "digest/subscribers/tokens.py",
      "hmac.py", "hashlib", "digest/util/crlf.py")),
    ("our dispatch (digest.delivery: smtp/dispatch/send/progress)",
     ("digest/delivery/smtp.py", "digest/delivery/dispatch.py", "digest/delivery/send.py",
      "digest/delivery/progress.py", "digest/delivery/transport.py",
      "digest/edition/selection.py")),
    ("reading posts + subscribers (yaml, markdown, email_validator)",
     ("digest/posts/", "digest/subscribers/load.py", "digest/subscribers/current.py",
      "digest/feeds/build.py", "digest/util/yamlsource.py", "yaml/", "markdown",
      "digest/delivery/session.py", "email_validator/", "nh3", "idna/", "digest/config/",
      "pydantic")),
    ("event loop (asyncio, uvloop) + sockets",
     ("asyncio/", "uvloop", "selectors.py", "socket.py", "ssl.py")),
    ("imports / interpreter startup", ("<frozen importlib", "importlib/")),
    ("waiting on a thread (lock.acquire; not CPU)", ("'acquire' of '_thread.lock",)),
)


# Generic helpers (and C functions, file "~") are charged to whoever called them.
_NEUTRAL = ("~", "/re/", "textwrap.py", "/html/", "functools.py", "enum.py", "typing.py",
            "dataclasses.py", "contextlib.py", "copy.py", "abc.py", "<string>", "codecs.py",
            "encodings/", "weakref.py", "_weakrefset.py", "threading.py", "logging/")
_Func = tuple[str, int, str]


def _category(func: _Func) -> str | None:
    """The area a function belongs to; None for the generic ones charged to their callers."""
    filename, _, name = func
    where = f"{filename}:{name}"
    for category, needles in _CATEGORIES:
        if any(n in where for n in needles):
            return category
    if any(n in filename for n in _NEUTRAL):
        return None
    return "other Python"


def _charge(func: _Func, raw: dict[_Func, tuple[int, int, float, float, dict[_Func, tuple[
        int, int, float, float]]]], seen: frozenset[_Func] = frozenset()) -> dict[str, float]:
    """Fractions of `func`'s own time per area: its own area, or its callers' (recursively,
    in proportion to the time each caller spent in it)."""
    category = _category(func)
    if category is not None:
        return {category: 1.0}
    callers = {c: v[3] or v[2] for c, v in raw[func][4].items() if c not in seen and c in raw}
    spent = sum(callers.values())
    if len(seen) > 12 or spent <= 0:
        return {f"unattributed: {func[2]}": 1.0}
    shares: dict[str, float] = defaultdict(float)
    for caller, part in callers.items():
        for area, fraction in _charge(caller, raw, seen | {func}).items():
            shares[area] += fraction * part / spent
    return shares


def profile_summary(path: Path, top: int = 15) -> str:
    """Top functions by own and cumulative time, and own time grouped by area.

    Generic helpers and C functions (re.sub, socket.send, sqlite3 execute, textwrap…) have no
    area of their own: their time goes to the areas of their callers, in proportion to the
    time each caller spent in them, so that e.g. aiosmtplib's regex work counts as aiosmtplib.
    """
    stats = pstats.Stats(str(path))
    raw = stats.stats  # type: ignore[attr-defined]  # {func: (cc, nc, tt, ct, callers)}
    total = stats.total_tt  # type: ignore[attr-defined]

    def name(func: _Func) -> str:
        filename, line, fn = func
        if filename == "~":
            return fn
        short = re.sub(r"^.*?/(site-packages|python3\.\d+)/", "", filename)
        short = short.replace(str(ROOT) + "/", "")
        return f"{short}:{line}({fn})"

    lines = [f"profile {path}: {total:.1f} s in profiled functions"]
    for key, title in ((2, "own time (tottime)"), (3, "cumulative time")):
        lines.append(f"top {top} by {title}:")
        lines.append(f"  {'ncalls':>9} {'tottime':>8} {'cumtime':>8}  function")
        ranked = sorted(raw.items(), key=lambda kv: kv[1][key], reverse=True)[:top]
        for func, (_cc, nc, tt, ct, _callers) in ranked:
            lines.append(f"  {nc:>9} {tt:>8.2f} {ct:>8.2f}  {name(func)}")

    groups: dict[str, float] = defaultdict(float)
    for func, (_cc, _nc, tt, _ct, _callers) in raw.items():
        for area, fraction in _charge(func, raw).items():
            groups[area] += tt * fraction
    lines.append("own time by area (generic helpers and C functions charged to their callers):")
    for category, seconds in sorted(groups.items(), key=lambda kv: kv[1], reverse=True):
        if seconds >= 0.005 * total:
            lines.append(f"  {seconds:8.2f} s  {100 * seconds / total:5.1f} %  {category}")
    return "\n".join(lines)


# the table ---------------------------------------------------------------------------------
def table(rows: list[Row], reference: Row) -> str:
    header = ("label", "wall s", "cpu s", "msgs/s", "peak RSS MB", "tree RSS MB",
              "tree PSS MB", "rate vs smtp-source")
    body = [(r.m.label, f"{r.m.seconds:.2f}", f"{r.m.cpu_seconds:.2f}",
             f"{r.rate:.0f}" if r.messages else "-", f"{r.m.peak_rss_mb:.1f}",
             f"{r.m.tree_rss_mb:.1f}", f"{r.pss_mb:.1f}",
             f"{r.rate / reference.rate:.2f}x" if r.messages else "-") for r in rows]
    notes = [f"  {r.m.label}: {r.note}" for r in rows if r.note]
    return "\n".join([layout(header, body), *notes])


def tree_state() -> str:
    """The commit measured, and whether digest/ had uncommitted changes."""
    def git(*cmd: str) -> str:
        done = subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else "?"

    dirty = git("status", "--short", "--", "digest", "templates")
    return git("rev-parse", "--short", "HEAD") + (
        f" + uncommitted changes: {' '.join(dirty.split())}" if dirty else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=20000)
    parser.add_argument("--big", type=int, default=100000, help="0 to skip the big run")
    parser.add_argument("--repeat", type=int, default=3, help="best of K")
    parser.add_argument("--posts", type=int, default=20,
                        help="posts in the week (the jobs board gets about 7-30)")
    parser.add_argument("--as-of", default="2024-06-03T09:00:00",
                        help="the digest's time (site timezone); posts fill the week before")
    parser.add_argument("--source", type=Path, default=SOURCE,
                        help="real posts to replay (generated text if missing)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "send")
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    args = parser.parse_args()
    for tool in (SINK, SMTP_SOURCE, DIGEST):
        if not tool.exists():
            parser.error(f"{tool} is missing (smtp-sink/smtp-source: apt-get install postfix; "
                         "digest: pip install -e .)")

    out: Path = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    logs = out / "logs"
    logs.mkdir(parents=True)
    n: int = args.subscribers
    as_of = dt.datetime.fromisoformat(args.as_of).replace(tzinfo=ZoneInfo(TIMEZONE))
    posts = out / "site" / "_posts"
    make_posts(posts, as_of=as_of, count=args.posts, source=args.source)
    env = {**os.environ, "DIGEST_SECRET": SECRET}
    # an installed digest has its bytecode compiled (pip does it): without this, a shell that
    # sets PYTHONDONTWRITEBYTECODE makes every digest run compile ~400 modules (0.6 s CPU)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    notes = Notes([], source_fingerprint())
    load_before = f"{os.getloadavg()[0]:.2f}"  # the machine may be shared: say how busy
    tree = tree_state()

    with sink(logs) as sink_:
        def config(name: str, subscribers: int) -> Path:
            subs = out / f"subscribers-{subscribers}.yaml"
            if not subs.exists():
                write_subscribers(subs, subscribers)
            path = out / name / "config.yaml"
            write_config(path, posts=posts, subscribers=subs, state=out / name / "state",
                         port=sink_.port, concurrency=CONNECTIONS, per_connection=1000)
            return path

        main_cfg, one_cfg = config(f"n{n}", n), config("one", 1)
        rows: list[Row] = []

        # digest's fixed costs, and rendering without sending -----------------------------
        skip = frozenset({sink_.proc.pid})
        notes.check_tree("startup")
        startup, _ = run([str(DIGEST), "--version"], "digest startup (--version)", logs, env,
                         skip)

        def dry(cfg: Path, label: str) -> tuple[Measurement, tuple[int, int, float]]:
            shutil.rmtree(cfg.parent / "state", ignore_errors=True)
            cmd = [str(DIGEST), "--config", str(cfg), "send", "--dry-run", "--as-of",
                   args.as_of]
            notes.check_tree(label)
            m, output = run(cmd, label, logs, env, skip)
            found = _DRY.search(output.stdout)
            if found is None:
                raise RuntimeError(f"{label}: no dry-run summary in stdout:\n{output.stdout}")
            notes.add(label, output)
            return m, (int(found[1]), int(found[2]), float(found[3]))

        one, _ = dry(one_cfg, "dry-run 1 subscriber (read+render posts)")
        dry_n, (messages, editions, megabytes) = dry(main_cfg, f"dry-run {n} (render all)")
        if messages != n:
            raise RuntimeError(f"the dry run would send {messages} messages, not {n}")
        size = round(megabytes * 1e6 / messages)

        # the reference ---------------------------------------------------------------------
        def reference() -> Measurement:
            before = sink_.received()
            m, output = run([str(SMTP_SOURCE), "-d", "-s", str(CONNECTIONS), "-m", str(n),
                             "-l", str(size), f"127.0.0.1:{sink_.port}"],
                            f"smtp-source -d -s {CONNECTIONS} ({n} x {size} B)", logs, env,
                            skip)
            sink_.expect(before, n, "smtp-source")
            notes.add("smtp-source", output)
            return m

        ref = Row(best_of(args.repeat, reference), n, f"best of {args.repeat}")
        rows.append(ref)

        # aiosmtplib alone: the ceiling for any sender built on it ---------------------------
        eml = typical_message(main_cfg, args.as_of, size, logs, env)

        def floor(mode: str | None, what: str) -> Callable[[], Measurement]:
            """One bench/send_floor.py run: aiosmtplib alone, or through smtpdata (*mode*)."""
            label = f"send_floor {mode}" if mode else "send_floor"

            def measure() -> Measurement:
                before = sink_.received()
                m, output = run([sys.executable, str(ROOT / "bench" / "send_floor.py"),
                                 str(sink_.port), str(n), str(CONNECTIONS), str(eml),
                                 *([mode] if mode else [])],
                                f"{what} ({n} x {eml.stat().st_size} B)", logs, env, skip)
                sink_.expect(before, n, label)
                notes.add(label, output)
                return m
            return measure

        rows.append(Row(best_of(args.repeat, floor(None, "aiosmtplib alone")), n,
                        f"best of {args.repeat}; bench/send_floor.py: one digest message, "
                        "MAIL/RCPT/DATA only, no rendering, no send log"))
        smtpdata_file = ROOT / "digest" / "delivery" / "smtpdata.py"
        smtpdata_text = smtpdata_file.read_text() if smtpdata_file.exists() else ""
        if smtpdata_text:  # not in older trees
            rows.append(Row(best_of(args.repeat, floor("smtpdata", "aiosmtplib + smtpdata alone")),
                            n, f"best of {args.repeat}; the same through "
                            "digest.delivery.smtpdata, as digest send does (no regex pass, "
                            "no parseaddr)"))
        if "def pipelined(" in smtpdata_text:  # not in older trees
            rows.append(Row(best_of(args.repeat, floor("pipelined",
                                                       "aiosmtplib + smtpdata pipelined")), n,
                            f"best of {args.repeat}; the same with MAIL, RCPT and DATA in "
                            "one write (PIPELINING), as digest send does to smtp-sink"))
        rows.append(Row(startup, 0, "interpreter + CLI import"))
        rows.append(Row(one, 0, f"fixed cost: read {args.posts} posts, render them, 1 message"))
        rows.append(Row(dry_n, messages, f"{editions} distinct editions, "
                        f"average message {size} B; nothing sent"))

        # digest send -----------------------------------------------------------------------
        phase_rates: list[int] = []

        def send_n() -> Measurement:
            m, rate = digest_send(main_cfg, args.as_of, main_cfg.parent / "state", n,
                                  f"digest send {n}", logs, env, sink_, notes)
            phase_rates.append(rate)
            return m

        sent = best_of(args.repeat, send_n)
        rows.append(Row(sent, n, f"best of {args.repeat}; {CONNECTIONS} connections; "
                        f"send-phase rate from its progress log: {max(phase_rates)} msg/s"))

        big_row: Row | None = None
        if args.big:
            big_cfg = config(f"n{args.big}", args.big)
            m, rate = digest_send(big_cfg, args.as_of, big_cfg.parent / "state", args.big,
                                  f"digest send {args.big}", logs, env, sink_, notes)
            big_row = Row(m, args.big, f"one run; send-phase rate {rate} msg/s")
            rows.append(big_row)

        profile_text = ""
        if args.profile:
            prof = out / f"send-{n}.prof"
            m, rate = digest_send(main_cfg, args.as_of, main_cfg.parent / "state", n,
                                  f"digest send {n} under cProfile", logs, env, sink_, notes,
                                  prefix=(sys.executable, "-m", "cProfile", "-o", str(prof)))
            rows.append(Row(m, n, f"profiling overhead included; send-phase rate {rate} msg/s"))
            profile_text = profile_summary(prof)

    target = ref.rate / 2
    met = n / sent.seconds >= target
    report = [
        f"digest tree: {tree} (code fingerprint {notes.code})",
        f"{args.posts} posts in the week before {as_of.isoformat()}; {n} subscribers; "
        f"{CONNECTIONS} connections to smtp-sink on 127.0.0.1:{sink_.port}; "
        f"smtp-source message body {size} B (digest's average message)",
        table(rows, ref), "",
        f"smtp-source {ref.rate:.0f} msg/s; digest send (send log on) {n / sent.seconds:.0f} "
        f"msg/s; ratio {n / sent.seconds / ref.rate:.2f}x (load average before/after: "
        f"{load_before}/{os.getloadavg()[0]:.2f})",
        f"target digest send >= 0.5x smtp-source: {n / sent.seconds:.0f} msg/s vs "
        f"{target:.0f} msg/s ({'met' if met else 'NOT met'})"]
    if big_row is not None:
        mem, pss = big_row.memory_mb, big_row.pss_mb
        report.append(
            f"target {args.big} subscribers < {MEMORY_TARGET_MB:.0f} MB: {mem:.0f} MB "
            f"(max of peak RSS and tree RSS: {'met' if mem < MEMORY_TARGET_MB else 'NOT met'}"
            f"); tree PSS {pss:.0f} MB ({'met' if pss < MEMORY_TARGET_MB else 'NOT met'}; "
            "tree RSS counts pages a forked child shares with its parent twice, PSS does not)")
    if profile_text:
        report += ["", profile_text]
    if notes.lines:
        report += ["", "stderr other than INFO logging:",
                   *(f"  {line}" for line in dict.fromkeys(notes.lines))]
    text = "\n".join(report)
    print(text)
    (out / "report.txt").write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
