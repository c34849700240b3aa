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

from measure import descendants, proc_kb

__all__ = ["TreePss", "tree_pss"]


class TreePss(threading.Thread):
    """Samples the summed PSS of this process's descendants (minus `skip`) every `every` s."""

    def __init__(self, skip: frozenset[int] = frozenset(), every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.skip, self.every = skip, every
        self.peak_kb = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.every):
            tree = descendants(os.getpid(), self.skip)
            self.peak_kb = max(self.peak_kb, sum(proc_kb(p, "smaps_rollup", "Pss:") for p in tree))

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
