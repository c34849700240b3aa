"""Peak proportional memory (PSS) of the processes this one starts, sampled from /proc.

Why this exists: bench/measure.py's tree RSS sums the RSS of a process and its children, so
a child forked from a big parent (digest's render workers are forked after the subscribers
are loaded) counts every page it still shares, copy-on-write, with the parent a second
time. PSS divides each shared page among the processes sharing it, so the sum over the
tree is the memory the tree really holds. Used next to run_measured, which spawns the
child itself: the sampler watches every descendant of this process except those it is
told to skip (a long-running server such as smtp-sink).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["TreePss", "tree_pss"]


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found.extend(int(c) for c in handle.read().split())
    except OSError:
        pass
    return found


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class TreePss(threading.Thread):
    """Samples the summed PSS of this process's descendants (minus `skip`) every `every` s."""

    def __init__(self, skip: frozenset[int] = frozenset(), every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.skip, self.every = skip, every
        self.peak_kb = 0
        self._done = threading.Event()

    def _tree(self) -> list[int]:
        pids, todo = [], [c for c in _children(os.getpid()) if c not in self.skip]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            todo.extend(_children(pid))
        return pids

    def run(self) -> None:
        while not self._done.wait(self.every):
            self.peak_kb = max(self.peak_kb, sum(_pss_kb(p) for p in self._tree()))

    def stop(self) -> None:
        self._done.set()
        self.join()

    @property
    def peak_mb(self) -> float:
        return self.peak_kb / 1024


@contextmanager
def tree_pss(skip: frozenset[int] = frozenset()) -> Iterator[TreePss]:
    """Sample while the block runs; read `.peak_mb` afterwards."""
    sampler = TreePss(skip)
    sampler.start()
    try:
        yield sampler
    finally:
        sampler.stop()
