"""`digest send` as a real process against a real SMTP server: STARTTLS + AUTH end to end,
permanent failures recorded once, and a process SIGKILLed at random moments that, restarted,
skips nobody and repeats at most what was in flight."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import PROJECT, SITE_TZ, make_site, post
from smtp_server import Faults, SmtpServer

from digest.state.sendlog import SendLog
from digest.state.store import Store

AS_OF = "2024-06-10T09:00:00-04:00"
POSTS = {
    "2024-06-04-organizer.md": post("Union Data Organizer", tags="[union, data]"),
    "2024-06-05-analyst.md": post("Campaign Analyst", tags="[campaigns, analytics]"),
    "2024-06-06-dba.md": post("Membership DBA", tags="[union, datamanagement]"),
}
PASSWORD = "correct horse battery"


def smtp_site(tmp_path: Path, server: SmtpServer, subscribers: list[dict[str, Any]],
              **smtp: Any) -> Path:
    (tmp_path / "subscribers.yaml").write_text(yaml.safe_dump(subscribers), encoding="utf-8")
    settings = {"host": "localhost", "port": server.port, "security": "none",
                "timeout": 5, "backoff": 0.05, **smtp}
    assert SITE_TZ is not None
    return make_site(tmp_path, dict(POSTS), extra={
        "subscribers": "subscribers.yaml",
        "digest": {"from": "Jobs Board <jobs@example.org>", "noun": "job"},
        "web": {"base_url": "https://jobs.example.org/digest"},
        "smtp": settings})


def digest_process(config: Path, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, DIGEST_SECRET="crash-test-secret-0123456789",
               SMTP_PASSWORD=PASSWORD, PYTHONIOENCODING="utf-8")
    return subprocess.Popen([sys.executable, "-m", "digest", "--config", str(config), "send",
                             "--as-of", AS_OF, *args], cwd=PROJECT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run_digest(config: Path) -> tuple[int, str, str]:
    process = digest_process(config)
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


@pytest.fixture
def tls_server() -> Iterator[SmtpServer]:
    with SmtpServer(tls="starttls", auth=("jobs", PASSWORD), require_auth=True) as server:
        yield server


def test_digest_goes_out_over_verified_starttls_with_auth(tmp_path: Path,
                                                          tls_server: SmtpServer) -> None:
    subscribers: list[dict[str, Any]] = [{"email": "ana@example.org", "tags": ["union"]},
                   {"email": "bob@example.org"}]
    config = smtp_site(tmp_path, tls_server, subscribers, security="starttls",
                       username="jobs", password_env="SMTP_PASSWORD",
                       ca_file=str(tls_server.ca_file))
    code, out, err = run_digest(config)
    assert code == 0, err
    assert "sent 2" in out
    assert sorted(tls_server.recipients()) == ["ana@example.org", "bob@example.org"]
    assert tls_server.auth_attempts == tls_server.connections  # one login per connection


def test_untrusted_certificate_sends_nothing(tmp_path: Path, tls_server: SmtpServer) -> None:
    config = smtp_site(tmp_path, tls_server, [{"email": "ana@example.org"}],
                       security="starttls", username="jobs", password_env="SMTP_PASSWORD")
    code, _out, err = run_digest(config)  # no ca_file: the system store does not know it
    assert code == 1
    assert "certificate" in err.lower()
    assert tls_server.received == []
    code, out, _err = run_digest(config)  # still pending, not lost: tried again next time
    assert "pending 1" in out


def test_permanent_failure_is_recorded_once_and_others_still_get_theirs(tmp_path: Path) -> None:
    faults = Faults(reject=frozenset({"gone@example.org"}))
    with SmtpServer(faults=faults) as server:
        config = smtp_site(tmp_path, server, [{"email": "ana@example.org"},
                                              {"email": "gone@example.org"},
                                              {"email": "bob@example.org"}])
        code, out, err = run_digest(config)
        assert code == 1
        assert "failed 1" in out and "gone@example.org" in err and "550" in err
        assert sorted(server.recipients()) == ["ana@example.org", "bob@example.org"]
        code, out, _err = run_digest(config)  # same period again: nothing is retried
        assert len(server.received) == 2


def test_killed_send_resumes_and_skips_nobody(tmp_path: Path) -> None:
    """SIGKILL at random moments, then restart until done; count what the server got."""
    n, concurrency = 300, 4
    rng = random.Random(int(os.environ.get("CRASH_SEED", "0")) or None)
    with SmtpServer() as server:
        config = smtp_site(tmp_path, server, [{"email": f"user{i}@example.org"}
                                              for i in range(n)],
                           concurrency=concurrency, rate=200, per_connection=50)
        kills = 0
        mid_run_kills = 0
        for _ in range(4):
            start = len(server.received)
            process = digest_process(config)
            # kill once this process is sending (its start-up time varies with the machine's
            # load, so a fixed delay could land every kill before the first message), at a
            # random moment within the next 0.4 s
            deadline = time.monotonic() + 60
            while (len(server.received) == start and process.poll() is None
                   and time.monotonic() < deadline):
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 0.4))
            if process.poll() is not None:
                break
            before = len(server.received)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            kills += 1
            mid_run_kills += 0 < before < n
        code, _out, err = run_digest(config)
        assert code == 0, err
        got = collections.Counter(server.recipients())
        assert set(got) == {f"user{i}@example.org" for i in range(n)}  # nobody skipped
        duplicates = sum(got.values()) - n
        assert duplicates <= kills * concurrency, (duplicates, kills)
        assert mid_run_kills >= 1, "no kill landed while messages were going out"
        store = Store.open(tmp_path / "state")
        try:
            (run,) = SendLog(store).runs()
            assert SendLog(store).counts(run) == {"sent": n}
        finally:
            store.close()
