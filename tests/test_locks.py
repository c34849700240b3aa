"""The lock under the state folder: one daemon per state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from digest.errors import Busy
from digest.state.locks import DAEMON_LOCK, daemon_lock, holder


def test_second_holder_is_refused_at_once_with_the_first_ones_pid(tmp_path: Path) -> None:
    with daemon_lock(tmp_path):
        assert holder(tmp_path / DAEMON_LOCK) == os.getpid()
        started = time.monotonic()
        with pytest.raises(Busy) as caught, daemon_lock(tmp_path):
            pass
        assert time.monotonic() - started < 1
    assert caught.value.pid == os.getpid()
    assert f"PID {os.getpid()}" in str(caught.value)
    assert holder(tmp_path / DAEMON_LOCK) is None  # a released lock names nobody
    with daemon_lock(tmp_path):  # and can be taken again
        pass


def test_lock_of_a_killed_process_is_free_at_once(tmp_path: Path) -> None:
    code = ("import sys, time; from pathlib import Path\n"
            "from digest.state.locks import daemon_lock\n"
            "with daemon_lock(Path(sys.argv[1])):\n    print('held', flush=True)\n"
            "    time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "held\n"
        with pytest.raises(Busy) as caught, daemon_lock(tmp_path):
            pass
        assert caught.value.pid == child.pid
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
        if child.stdout is not None:
            child.stdout.close()
    assert holder(tmp_path / DAEMON_LOCK) == child.pid  # the PID stays; the lock does not
    with daemon_lock(tmp_path):
        assert holder(tmp_path / DAEMON_LOCK) == os.getpid()
