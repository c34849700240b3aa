"""`digest run` end to end: the real daemon process, real files, a real SMTP server.

The daemon's clock starts where each test says (DIGEST_FAKE_NOW), a few seconds before the
real schedule ("0 9 * * mon", America/New_York) fires, so nothing here waits for long.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import SITE_TZ, post, run_cli, run_module, write_posts
from daemon_process import SECRET, DaemonProcess
from helpers import (
    DAEMON_SUBSCRIBERS,
    MONDAY,
    SECONDS,
    SERVED,
    daemon_site,
    feed,
    wait_until,
    write_subscribers,
)
from smtp_server import SmtpServer

from digest.state.sendlog import SendLog
from digest.state.store import Store

SUNDAY = datetime(2024, 6, 9, 12, 0, tzinfo=SITE_TZ)  # nothing is due for hours


def status(config: Path) -> dict[str, Any]:
    code, out, err = run_cli(["--config", str(config), "status", "--json"])
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def test_new_post_appears_in_its_feeds_within_two_seconds(tmp_path: Path,
                                                           smtp: SmtpServer) -> None:
    cfg = daemon_site(tmp_path, smtp)
    with DaemonProcess(cfg, fake_now=SUNDAY) as daemon:
        daemon.wait_for("daemon.started")
        assert "Union Data Organizer" in feed(tmp_path, "feed/by_tag/union.xml")
        write_posts(tmp_path, {"2024-06-08-new.md": post("Brand New Job", tags="[union]")})
        took = wait_until(lambda: "Brand New Job" in feed(tmp_path, "feed/by_tag/union.xml")
                          and "Brand New Job" in feed(tmp_path), timeout=2.0)
        rebuilt = daemon.wait_for("feeds.rebuilt", where=lambda e: "new.md" in e["reason"])
        assert {"feed.xml", "feed/by_tag/union.xml"} <= set(rebuilt["written"])
        assert "feed/by_tag/analytics.xml" not in rebuilt["written"]  # only what changed
        assert daemon.stop() == 0
    print(f"new post in its feeds after {took:.2f} s")


def test_daemon_serves_the_web_front_until_stopped(tmp_path: Path, smtp: SmtpServer) -> None:
    import httpx

    from digest.subscribers.tokens import Signer

    cfg = daemon_site(tmp_path, smtp)
    unsubscribe = Signer([SECRET.encode()]).token("ana@example.org", "unsubscribe")
    with DaemonProcess(cfg, fake_now=SUNDAY) as daemon:
        url = daemon.wait_for("web.listening")["url"]
        daemon.wait_for("daemon.started")
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        assert "Union Data Organizer" in httpx.get(f"{url}/feed/by_tag/union.xml").text
        assert httpx.post(f"{url}/unsubscribe/{unsubscribe}",
                          data={"List-Unsubscribe": "One-Click"}).status_code == 200
        assert status(cfg)["web"]["url"] == url
        assert daemon.stop() == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz")
    store = Store.open(tmp_path / "state")
    try:
        assert SendLog(store).suppressed() == {"ana@example.org"}
    finally:
        store.close()


def test_daemon_whose_web_address_is_taken_refuses_to_run(tmp_path: Path,
                                                          smtp: SmtpServer) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = daemon_site(tmp_path, smtp)
        text = cfg.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}")
        cfg.write_text(text)
        with DaemonProcess(cfg, fake_now=SUNDAY) as daemon:
            failed = daemon.wait_for("web.failed")
            assert daemon.stop() == 1
    assert f"cannot listen on 127.0.0.1:{port}" in failed["message"]


def test_future_post_appears_when_its_time_comes(tmp_path: Path, smtp: SmtpServer) -> None:
    cfg = daemon_site(tmp_path, smtp)
    due = SUNDAY + 4 * SECONDS
    write_posts(tmp_path, {"2024-06-09-soon.md": post(
        "Scheduled Job", tags="[union]", date=f"{due:%Y-%m-%d %H:%M:%S %z}")})
    with DaemonProcess(cfg, fake_now=SUNDAY) as daemon:
        daemon.wait_for("daemon.started")
        assert "Scheduled Job" not in feed(tmp_path)
        rebuilt = daemon.wait_for("feeds.rebuilt", where=lambda e: "future" in e["reason"])
        assert "Scheduled Job" in feed(tmp_path, "feed/by_tag/union.xml")
        assert daemon.stop() == 0
    assert "feed.xml" in rebuilt["written"]


def test_digest_goes_out_at_the_scheduled_time(tmp_path: Path, smtp: SmtpServer) -> None:
    cfg = daemon_site(tmp_path, smtp)
    with DaemonProcess(cfg, fake_now=MONDAY - 3 * SECONDS) as daemon:
        daemon.wait_for("daemon.started")
        assert smtp.recipients() == []
        finished = daemon.wait_for("digest.finished")
        assert sorted(smtp.recipients()) == SERVED
        assert finished["counts"] == {"sent": 3, "empty": 1}
        now = status(cfg)  # while it runs
        assert now["daemon_pid"] == daemon.pid
        assert now["next_digest"]["at"] == (MONDAY + timedelta(days=7)).isoformat()
        (last,) = now["digests"]
        assert (last["period_end"], last["counts"]) == (MONDAY.isoformat(),
                                                        {"sent": 3, "empty": 1})
        assert now["build"]["posts"] == 4
        assert daemon.stop() == 0
    assert status(cfg)["daemon_pid"] is None


def test_sigterm_mid_send_then_restart_serves_everyone_exactly_once(
        tmp_path: Path, smtp: SmtpServer) -> None:
    everyone = [{"email": f"reader{i:03d}@example.org"} for i in range(120)]
    cfg = daemon_site(tmp_path, smtp, subscribers=everyone,
                      smtp_settings={"rate": 40, "concurrency": 2})
    with DaemonProcess(cfg, fake_now=MONDAY - 2 * SECONDS) as daemon:
        daemon.wait_for("daemon.started")
        wait_until(lambda: len(smtp.received) >= 20, timeout=15)
        started = time.monotonic()
        assert daemon.stop(signal.SIGTERM) == 0
        assert time.monotonic() - started < 5
        stopped = daemon.wait_for("digest.finished")
    first = len(smtp.received)
    assert 20 <= first < 120
    assert stopped["counts"]["pending"] == 120 - first  # every message taken was recorded
    with DaemonProcess(cfg, fake_now=MONDAY + 30 * SECONDS) as daemon:
        resumed = daemon.wait_for("digest.finished")
        assert daemon.stop() == 0
    assert resumed["counts"] == {"sent": 120}
    counts = Counter(smtp.recipients())
    assert sorted(counts) == sorted(s["email"] for s in everyone)
    assert set(counts.values()) == {1}
    assert len(status(cfg)["digests"]) == 1  # resumed: no second, unscheduled digest


def test_digest_missed_while_down_is_sent_at_start_within_the_grace_period(
        tmp_path: Path, smtp: SmtpServer) -> None:
    cfg = daemon_site(tmp_path, smtp)
    with DaemonProcess(cfg, fake_now=MONDAY - timedelta(hours=1)) as daemon:
        daemon.wait_for("daemon.started")
        assert daemon.stop() == 0
    assert smtp.recipients() == []
    with DaemonProcess(cfg, fake_now=MONDAY + timedelta(hours=5)) as daemon:
        started = daemon.wait_for("digest.started")
        daemon.wait_for("digest.finished")
        assert daemon.stop() == 0
    assert started["as_of"] == MONDAY.isoformat()  # the period ends when it was due
    assert sorted(smtp.recipients()) == SERVED  # once, not once per start


def test_digest_missed_past_the_grace_period_is_skipped_and_its_posts_go_into_the_next(
        tmp_path: Path, smtp: SmtpServer) -> None:
    cfg = daemon_site(tmp_path, smtp)
    with DaemonProcess(cfg, fake_now=MONDAY - 2 * SECONDS) as daemon:
        daemon.wait_for("digest.finished")
        assert daemon.stop() == 0
    write_posts(tmp_path, {"2024-06-12-week-two.md": post("Week Two Job", tags="[union]")})
    week = timedelta(days=7)
    with DaemonProcess(cfg, fake_now=MONDAY + week + timedelta(hours=25)) as daemon:
        missed = daemon.wait_for("digest.missed")
        assert daemon.stop() == 0
    assert missed["due"] == (MONDAY + week).isoformat()
    assert missed["next"] == (MONDAY + 2 * week).isoformat()
    assert "digest.started" not in {e.get("event") for e in daemon.events}
    assert len(smtp.recipients()) == 3
    with DaemonProcess(cfg, fake_now=MONDAY + 2 * week - 2 * SECONDS) as daemon:
        finished = daemon.wait_for("digest.finished")
        assert daemon.stop() == 0
    assert finished["counts"]["sent"] == 2  # ana (union) and all
    assert Counter(smtp.recipients()) == {"ana@example.org": 2, "all@example.org": 2,
                                          "dev@example.org": 1}
    second = status(cfg)["digests"][0]
    assert (second["period_start"], second["period_end"]) == (
        MONDAY.isoformat(), (MONDAY + 2 * week).isoformat())


def test_second_daemon_on_the_same_state_refuses_to_start(tmp_path: Path,
                                                          smtp: SmtpServer) -> None:
    cfg = daemon_site(tmp_path, smtp)
    with DaemonProcess(cfg, fake_now=SUNDAY, log_format="text") as daemon:
        daemon.wait_for(None, where=lambda e: "digest run started" in e["message"])
        second = run_module(["--config", str(cfg), "run"])
        assert second.returncode == 2
        assert f"another `digest run` (PID {daemon.pid}) is already running" in second.stderr
        assert daemon.stop(signal.SIGINT) == 0
    # text logs: time, level, one readable line per event
    assert any(re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO  feeds rebuilt \(start-up\)",
                        line) for line in daemon.lines), daemon.lines
    assert any(line.endswith("INFO  stopping (SIGINT): no new work; finishing what is in "
                             "flight") for line in daemon.lines)


def test_send_by_hand_while_the_daemon_sends_joins_it(tmp_path: Path, smtp: SmtpServer,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """No lock keeps them apart: both serve the one digest, each subscriber gets it once,
    and `digest status` lists the daemon as a node with a fresh heartbeat."""
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    cfg = daemon_site(tmp_path, smtp)
    with DaemonProcess(cfg, fake_now=MONDAY - 2 * SECONDS) as daemon:
        daemon.wait_for("digest.started", timeout=30)
        code, _out, err = run_cli(["--config", str(cfg), "send", "--as-of",
                                   MONDAY.isoformat()])
        assert code == 0, err
        deadline = time.monotonic() + 30  # the daemon's send: it finishes, or finds it done
        while not any(e.get("event") in ("digest.finished", "digest.nothing_new")
                      for e in list(daemon.events)):
            assert time.monotonic() < deadline, daemon.log()
            time.sleep(0.1)
        found = status(cfg)
        assert daemon.stop() == 0
    assert Counter(smtp.recipients()) == Counter(SERVED)  # once each, whoever sent it
    nodes = found["nodes"]
    assert [n["role"] for n in nodes] == ["daemon"], nodes  # the send by hand left cleanly
    assert nodes[0]["node"].endswith(f":{daemon.pid}") and not nodes[0]["gone"]
    assert nodes[0]["heartbeat_age_seconds"] < 10


def test_broken_subscribers_file_while_running_keeps_the_last_good_list(
        tmp_path: Path, smtp: SmtpServer) -> None:
    cfg = daemon_site(tmp_path, smtp)
    with DaemonProcess(cfg, fake_now=MONDAY - 5 * SECONDS) as daemon:
        daemon.wait_for("daemon.started")
        write_subscribers(tmp_path, [*DAEMON_SUBSCRIBERS, {"email": "new@example.org"}])
        daemon.wait_for("subscribers.loaded", where=lambda e: e["count"] == 5)
        mark = daemon.mark()
        (tmp_path / "subscribers.yaml").write_text("- email: [unclosed\n", encoding="utf-8")
        kept = daemon.wait_for("subscribers.loaded", after=mark)
        assert "digest.started" not in {e.get("event") for e in daemon.events}, \
            "the digest fired before the test was ready: the machine is too slow"
        daemon.wait_for("digest.finished")
        now = status(cfg)
        assert daemon.stop() == 0
    assert (kept["count"], kept["fallback"]) == (5, True)
    assert "last good copy" in daemon.log() and "subscribers.yaml" in daemon.log()
    assert sorted(smtp.recipients()) == sorted([*SERVED, "new@example.org"])
    assert now["subscribers"]["fallback"] is True
    assert "subscribers.yaml" in now["subscribers"]["error"]


def test_invalid_config_edit_is_rejected_and_a_valid_one_applied(tmp_path: Path,
                                                                smtp: SmtpServer) -> None:
    cfg = daemon_site(tmp_path, smtp)
    good = cfg.read_text(encoding="utf-8")
    with DaemonProcess(cfg, fake_now=SUNDAY) as daemon:
        daemon.wait_for("daemon.started")
        cfg.write_text(good.replace("noun: job", "noun: job\n  schedule: 0 9 * * funday"),
                       encoding="utf-8")
        rejected = daemon.wait_for("config.rejected")
        # still running on the old config: a new post still reaches the feeds
        write_posts(tmp_path, {"2024-06-08-new.md": post("Brand New Job", tags="[union]")})
        daemon.wait_for("feeds.rebuilt", where=lambda e: "new.md" in e["reason"])
        mark = daemon.mark()
        cfg.write_text(good.replace("subscribers: subscribers.yaml",
                                    "subscribers: subscribers.yaml\nfeeds:\n  refresh_minutes: 1"),
                       encoding="utf-8")
        daemon.send_signal(signal.SIGHUP)  # whichever comes first, the edit or the signal, reloads
        reloaded = daemon.wait_for("config.reloaded", where=lambda e: e["changed"], after=mark)
        assert daemon.stop() == 0
    (error,) = rejected["errors"]
    assert re.search(r"config\.yaml:\d+: 'digest.schedule' is not a crontab line", error)
    assert "funday" in error
    assert reloaded["why"] in ("SIGHUP", "changed: config.yaml")
    assert status(cfg)["next_digest"]["at"] == MONDAY.isoformat()


def test_daemon_that_could_not_send_refuses_to_start(tmp_path: Path, smtp: SmtpServer) -> None:
    cfg = daemon_site(tmp_path, smtp, smtp_settings={"username": "digest",
                                                     "password_env": "NO_SUCH_VARIABLE"})
    started = run_module(["--config", str(cfg), "run"])
    assert started.returncode == 2
    assert "NO_SUCH_VARIABLE" in started.stderr


def test_sigterm_while_the_server_stalls_exits_within_the_smtp_timeout(
        tmp_path: Path, smtp: SmtpServer) -> None:
    smtp.faults.stall_in_data = 1000  # every message sits unanswered
    smtp.faults.stall_seconds = 30
    cfg = daemon_site(tmp_path, smtp, smtp_settings={"timeout": 1, "concurrency": 1})
    with DaemonProcess(cfg, fake_now=MONDAY - 2 * SECONDS) as daemon:
        daemon.wait_for("digest.started")
        wait_until(lambda: smtp.connections >= 1, timeout=10)
        started = time.monotonic()
        assert daemon.stop() == 0
        took = time.monotonic() - started
        stopped = daemon.wait_for("digest.finished")
    assert took < 1 + 5  # smtp.timeout, and the margin
    assert smtp.recipients() == []
    assert stopped["counts"]["pending"] == 3  # nobody recorded as served
    smtp.faults.stall_in_data = 0
    with DaemonProcess(cfg, fake_now=MONDAY + 60 * SECONDS) as daemon:
        daemon.wait_for("digest.finished", where=lambda e: e["counts"].get("pending", 0) == 0)
        assert daemon.stop() == 0
    assert sorted(smtp.recipients()) == SERVED
