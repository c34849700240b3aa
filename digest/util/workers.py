"""Worker process pools that die with the process that started them.

A `concurrent.futures` worker outlives a parent killed by SIGKILL (or the OOM killer): it
keeps rendering or parsing for minutes, for nobody. Each worker here asks Linux to send it
SIGKILL when its parent dies (prctl PR_SET_PDEATHSIG), and checks that the parent it was
started for is still its parent, in case the parent died before the request was made.
Elsewhere the pools are plain ones.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int) -> None:
    """Pool initializer: be killed when *parent* dies (Linux), or exit now if it has.

    PR_SET_PDEATHSIG fires when the thread that forked the worker exits, not only the
    process: pools are used within one call (`with pool_of(...)`), so that thread outlives
    them."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl: we were re-parented already
        os._exit(1)


def pool_of(workers: int) -> ProcessPoolExecutor:
    """A process pool of *workers* whose workers die with this process."""
    return ProcessPoolExecutor(workers, initializer=die_with_parent, initargs=(os.getpid(),))
