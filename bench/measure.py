"""Measure one command per child process: wall time, CPU time and peak RSS.

Why this exists: the benchmark compares `digest build` with Hugo in the same
run, so both tools must be timed by the same code.  Peak memory has to be the
peak of *that* child only; ``resource.getrusage(RUSAGE_CHILDREN)`` reports the
maximum over every child ever reaped by this process, so one big run would mask
every later one.  ``os.wait4`` returns the rusage of exactly the child it
reaps, which is what we want (on Linux ``ru_maxrss`` is in kilobytes).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

__all__ = [
    "CommandFailedError",
    "Measurement",
    "best_of",
    "format_table",
    "print_table",
    "run_measured",
]

# ru_maxrss is kilobytes on Linux and bytes on macOS.
_MAXRSS_UNIT_BYTES = 1 if sys.platform == "darwin" else 1024
_STDERR_TAIL_CHARS = 4000


@dataclass(frozen=True)
class Measurement:
    """One timed run of a command."""

    label: str
    seconds: float
    peak_rss_mb: float
    cpu_seconds: float
    tree_rss_mb: float = 0.0  # peak of the summed RSS of the process and its children


class CommandFailedError(RuntimeError):
    """A measured command exited with a non-zero status."""

    def __init__(self, cmd: list[str], returncode: int, stderr: str) -> None:
        self.cmd = cmd
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(
            f"command failed with exit status {returncode}: {' '.join(cmd)}\n"
            f"--- stderr (tail) ---\n{stderr[-_STDERR_TAIL_CHARS:]}"
        )


def run_measured(
    cmd: list[str],
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    label: str | None = None,
) -> Measurement:
    """Run ``cmd`` as a child and measure it.

    Wall time comes from ``time.perf_counter`` around spawn and reap; CPU time
    (user + system) and peak RSS come from the rusage ``os.wait4`` returns for
    this child alone.  stdout is discarded; stderr is kept in a temporary file
    (not a pipe, so a chatty child cannot block while we sit in ``wait4``) and
    shown in the exception if the command fails.
    """
    with tempfile.TemporaryFile(mode="w+b") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        sampler = _TreeSampler(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        sampler.stop()
        returncode = os.waitstatus_to_exitcode(status)
        # We reaped the child ourselves; tell Popen so it never waits again.
        proc.returncode = returncode
        if returncode != 0:
            err.seek(0)
            stderr = err.read().decode("utf-8", errors="replace")
            raise CommandFailedError(cmd, returncode, stderr)
    return Measurement(
        label=label if label is not None else Path(cmd[0]).name,
        seconds=seconds,
        peak_rss_mb=usage.ru_maxrss * _MAXRSS_UNIT_BYTES / (1024 * 1024),
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        tree_rss_mb=sampler.peak_kb / 1024,
    )


def children(pid: int) -> list[int]:
    """The live children of *pid*, from /proc (none if it is gone)."""
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found.extend(int(c) for c in handle.read().split())
    except OSError:
        pass
    return found


def descendants(pid: int, skip: frozenset[int] = frozenset()) -> list[int]:
    """Every live descendant of *pid*, leaving out *skip* and theirs."""
    found: list[int] = []
    todo = [c for c in children(pid) if c not in skip]
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children(child))
    return found


def proc_kb(pid: int, file: str, field: str) -> int:
    """A kB figure of /proc/PID/FILE (e.g. status, VmRSS:), 0 if the process is gone."""
    try:
        with open(f"/proc/{pid}/{file}") as handle:
            for line in handle:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class _TreeSampler(threading.Thread):
    """Samples the summed RSS of a process and its descendants every 10 ms.

    ru_maxrss covers one process; a tool that forks workers (digest's cold parse, Hugo's
    threads are one process) must be judged on all of its memory at once.
    """

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_kb, self._done = pid, 0, threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.01):
            tree = [self.pid, *descendants(self.pid)]
            self.peak_kb = max(self.peak_kb, sum(proc_kb(p, "status", "VmRSS:") for p in tree))

    def stop(self) -> None:
        self._done.set()
        self.join()


def best_of(n: int, fn: Callable[[], Measurement]) -> Measurement:
    """Call ``fn`` ``n`` times and return the run with the lowest wall time.

    The fastest run is the one least disturbed by other load on the machine.
    Its peak RSS is replaced by the highest peak seen in any run, so memory is
    never understated by picking a lucky run.
    """
    if n < 1:
        raise ValueError(f"best_of needs n >= 1, got {n}")
    runs = [fn() for _ in range(n)]
    fastest = min(runs, key=lambda m: m.seconds)
    return replace(fastest, peak_rss_mb=max(m.peak_rss_mb for m in runs),
                   tree_rss_mb=max(m.tree_rss_mb for m in runs))


def _ratio(value: float, reference: float) -> str:
    if reference <= 0:
        return "n/a"
    return f"{value / reference:.2f}x"


def format_table(measurements: Iterable[Measurement], reference: str) -> str:
    """Render measurements as a text table with ratios against ``reference``.

    ``reference`` is the label of the row everything else is compared with
    (for example ``"hugo cold"``).  A ratio above 1 means slower or bigger
    than the reference.
    """
    rows = list(measurements)
    ref = next((m for m in rows if m.label == reference), None)
    if ref is None:
        labels = ", ".join(m.label for m in rows)
        raise KeyError(f"no reference row {reference!r} among: {labels}")
    header = ("label", "wall s", "cpu s", "peak RSS MB", "tree RSS MB", "time vs ref",
              "RSS vs ref")
    body = [
        (
            m.label,
            f"{m.seconds:.3f}",
            f"{m.cpu_seconds:.3f}",
            f"{m.peak_rss_mb:.1f}",
            f"{m.tree_rss_mb:.1f}",
            _ratio(m.seconds, ref.seconds),
            _ratio(max(m.peak_rss_mb, m.tree_rss_mb), max(ref.peak_rss_mb, ref.tree_rss_mb)),
        )
        for m in rows
    ]
    return layout(header, body)


def layout(header: tuple[str, ...], body: list[tuple[str, ...]]) -> str:
    """Columns as wide as their widest cell: the label left-aligned, figures right-aligned."""
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest])

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in body)])


def print_table(measurements: Iterable[Measurement], reference: str) -> None:
    """Print :func:`format_table` to stdout."""
    print(format_table(measurements, reference))
