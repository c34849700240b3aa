"""Worker processes never outlive the command that started them, even one killed by SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PROJECT, make_site, post


def _children(pid: int) -> list[int]:
    """Live processes whose parent is *pid* (zombies are dead: nobody may reap them here)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(sys.platform != "linux" or (os.cpu_count() or 1) < 2,
                    reason="PR_SET_PDEATHSIG is Linux's; pools need two cores")
def test_killed_build_leaves_no_worker_running(tmp_path: Path) -> None:
    body = "".join(f"Paragraph {i} with *emphasis*, `code` and a [link](/x/{i}).\n\n"
                   for i in range(60))
    posts = {f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}-job-{i}.md":
             post(f"Job {i}", tags=f"[t{i % 50}, union]", body=body) for i in range(4000)}
    config = make_site(tmp_path, posts)
    build = subprocess.Popen([sys.executable, "-m", "digest", "--config", str(config), "build",
                              "--now", "2024-12-31T00:00:00"], cwd=PROJECT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        workers: list[int] = []
        deadline = time.monotonic() + 60
        while len(workers) < 2 and build.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            workers = _children(build.pid)
        assert len(workers) >= 2, "the build never started its worker pool"
        time.sleep(0.3)  # well into the work
        build.send_signal(signal.SIGKILL)
        build.wait()
        deadline = time.monotonic() + 5
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [w for w in workers if _alive(w)]
    finally:
        if build.poll() is None:
            build.kill()
    for pid in left:  # do not leave them behind for the next test either
        os.kill(pid, signal.SIGKILL)
    assert left == [], f"workers {left} outlived the killed build"
