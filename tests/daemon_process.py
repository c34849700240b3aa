"""`digest run` as a real process, for tests: started, read, signalled and stopped.

The daemon logs JSON lines (`--log-format json`); a thread reads them as they come, so a
test waits for an event by name instead of sleeping:

    with DaemonProcess(config, fake_now=MONDAY_0859) as daemon:
        daemon.wait_for("digest.finished")

`fake_now` starts the daemon's clock there (DIGEST_FAKE_NOW), so "Monday 09:00" in the
site's timezone can be three seconds away.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
SECRET = "daemon-test-secret-0123456789abcdef"

Event = dict[str, Any]


class DaemonProcess:
    def __init__(self, config: Path, *, fake_now: datetime | None = None,
                 log_format: str = "json", command: str = "run",
                 program: Sequence[str] = (sys.executable, "-m", "digest"),
                 cwd: Path = PROJECT, env: Mapping[str, str] | None = None) -> None:
        """*command* `run` or `serve`; *program*, *cwd* and *env* (default: this process's)
        say which digest runs where: the installed-wheel tests run one from another venv."""
        full_env = dict(os.environ if env is None else env, DIGEST_SECRET=SECRET,
                        PYTHONIOENCODING="utf-8")
        full_env.pop("DIGEST_FAKE_NOW", None)
        if fake_now is not None:
            full_env["DIGEST_FAKE_NOW"] = fake_now.isoformat()
        self.process = subprocess.Popen(
            [*program, "--config", str(config), command, "--log-format", log_format],
            cwd=cwd, env=full_env, text=True, stdin=subprocess.DEVNULL,
            encoding="utf-8", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self.events: list[Event] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            try:
                parsed = json.loads(line)
            except ValueError:
                parsed = {"event": None, "message": line.rstrip("\n")}
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self.events.append(parsed if isinstance(parsed, dict) else {"event": None})
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def log(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, name: str | None, *, where: Callable[[Event], bool] = lambda _e: True,
                 timeout: float = 15.0, after: int = 0) -> Event:
        """The first event called *name* (from the *after*-th on) that matches *where*;
        name None: a line that is not JSON (the text format), as {"message": line}."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for found in self.events[after:]:
                    if found.get("event") == name and where(found):
                        return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no {name!r} event within {timeout} s "
                                         f"(exit {self.process.poll()}); log:\n"
                                         + "\n".join(self.lines))
                self._changed.wait(min(left, 0.2))

    def mark(self) -> int:
        """Where the log stands now: wait_for(after=mark) sees only what comes next."""
        with self._changed:
            return len(self.events)

    def send_signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal it and wait for it to exit; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._reader.join(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
