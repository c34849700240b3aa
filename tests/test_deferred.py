"""Deferred is not done: mail the server keeps answering 4xx for ("greylisted, try again
later") after the run's own retries ends `digest send` with exit 3, is retried by
`digest run` on a backoff, goes out with the next `digest send`, and after
smtp.give_up_days counts as failed with the server's last reply. Against a real aiosmtpd
that answers 451 for a while, then accepts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import run_cli
from daemon_process import SECRET, DaemonProcess
from helpers import MONDAY, SECONDS, daemon_site
from smtp_server import SmtpServer

from digest.cli.commands import DEFERRED_EXIT
from digest.config import load_config
from digest.daemon.service import retry_delay
from digest.state.store import Store

GREYLISTED = "ana@example.org"
FAST_RETRIES = {"max_attempts": 2, "backoff": 0.01}  # the run's own retries: over at once


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        server.faults.rcpt_tempfail_for = frozenset({GREYLISTED})
        yield server


def deliveries(tmp_path: Path) -> dict[str, tuple[str, str | None]]:
    store = Store.open(tmp_path / "state")
    try:
        return {email: (state, reply) for email, state, reply in store.db.execute(
            "SELECT email, state, reply FROM deliveries")}
    finally:
        store.close()


def send(cfg: Path) -> tuple[int, str]:
    code, _out, err = run_cli(["--config", str(cfg), "send", "--as-of", MONDAY.isoformat()])
    return code, err


def test_deferred_deliveries_exit_3_and_the_next_send_delivers_them(
        tmp_path: Path, smtp: SmtpServer) -> None:
    cfg = daemon_site(tmp_path, smtp, smtp_settings=FAST_RETRIES)
    code, err = send(cfg)
    assert code == DEFERRED_EXIT == 3, err
    assert "1 deliveries deferred" in err
    assert deliveries(tmp_path)[GREYLISTED][0] == "deferred"
    assert GREYLISTED not in smtp.recipients()
    smtp.faults.rcpt_tempfail_for = frozenset()  # the greylisting period is over
    code, err = send(cfg)
    assert code == 0, err
    assert smtp.recipients().count(GREYLISTED) == 1
    assert sorted(smtp.recipients()) == ["all@example.org", GREYLISTED, "dev@example.org"]


def test_deferred_past_give_up_days_fail_with_the_last_reply(tmp_path: Path,
                                                             smtp: SmtpServer) -> None:
    cfg = daemon_site(tmp_path, smtp, smtp_settings={**FAST_RETRIES,
                                                     "give_up_days": 2 / 86_400})
    assert send(cfg)[0] == DEFERRED_EXIT
    time.sleep(2.1)
    code, err = send(cfg)
    assert code == 1, err
    state, reply = deliveries(tmp_path)[GREYLISTED]
    assert state == "failed"
    assert reply is not None and "given up" in reply and "451" in reply
    assert f"failed: {GREYLISTED}: " in err
    assert GREYLISTED not in smtp.recipients()


def test_the_daemon_retries_deferred_mail_until_the_server_takes_it(
        tmp_path: Path, smtp: SmtpServer) -> None:
    cfg = daemon_site(tmp_path, smtp, smtp_settings={**FAST_RETRIES,
                                                     "retry_minutes": 0.5 / 60})
    with DaemonProcess(cfg, fake_now=MONDAY - 2 * SECONDS) as daemon:
        first = daemon.wait_for("digest.finished")
        assert first["counts"] == {"sent": 2, "empty": 1, "deferred": 1}
        retry = daemon.wait_for("digest.retry_scheduled")
        assert retry["seconds"] == pytest.approx(0.5)
        daemon.wait_for("digest.retry_scheduled", where=lambda e: e["retry"] == 2)
        smtp.faults.rcpt_tempfail_for = frozenset()  # greylisting over: the next retry goes
        daemon.wait_for("digest.finished", where=lambda e: "deferred" not in e["counts"])
        assert daemon.stop() == 0
    assert smtp.recipients().count(GREYLISTED) == 1
    assert deliveries(tmp_path)[GREYLISTED][0] == "sent"


def test_daemon_retries_back_off_from_retry_minutes_to_an_hour(tmp_path: Path,
                                                               smtp: SmtpServer) -> None:
    config = load_config(daemon_site(tmp_path, smtp, smtp_settings={"retry_minutes": 5}))
    delays = [retry_delay(config, n) for n in range(1, 8)]
    assert delays == [timedelta(minutes=m) for m in (5, 10, 20, 40, 60, 60, 60)]
