"""Several machines serving one site through one PostgreSQL database, each with its own state
folder: two `digest run` daemons whose schedule falls due together make one digest for the
period and serve everyone once; two web fronts (`digest serve` on two ports, no balancer)
take each other's links and show the same pages. A real server: tests/pg_server.py."""

from __future__ import annotations

import re
import time
from collections import Counter
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from conftest import make_site, run_cli
from daemon_process import SECRET, DaemonProcess
from helpers import (
    DAEMON_POSTS,
    DAEMON_SUBSCRIBERS,
    MONDAY,
    SECONDS,
    SERVED,
    token,
    write_subscribers,
)
from smtp_server import SmtpServer
from web_server import WebServer

from digest.config import load_config
from digest.state.open import open_state

ENV = "DIGEST_NODES_DATABASE_URL"
BASE = "https://jobs.example.org/digest"


@pytest.fixture
def url(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(ENV, pg_url)  # the daemons' processes inherit it
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    return pg_url


def node(folder: Path, smtp: SmtpServer | None, **extra: Any) -> Path:
    """One machine's site: its own folder (state, output), the shared database."""
    folder.mkdir()
    write_subscribers(folder, DAEMON_SUBSCRIBERS)
    relay = {"smtp": {"host": "127.0.0.1", "port": smtp.port, "security": "none",
                      "timeout": 5, "backoff": 0.05}} if smtp else {}
    return make_site(folder, dict(DAEMON_POSTS), extra={
        "database_env": ENV, "subscribers": "subscribers.yaml",
        "digest": {"from": "Jobs Board <jobs@example.org>", "noun": "job"},
        "web": {"base_url": BASE, "listen": "127.0.0.1:0"}, **relay, **extra})


def test_two_daemons_due_together_make_one_digest_and_serve_everyone_once(
        url: str, tmp_path: Path, smtp: SmtpServer) -> None:
    """Both up before 09:00, both schedulers holding the job as due at 09:00 (APScheduler
    3 on a shared job store may fire it on each): whichever fires makes the run, a second
    joins it or finds the job already moved to next week."""
    one, two = node(tmp_path / "one", smtp), node(tmp_path / "two", smtp)
    with DaemonProcess(one, fake_now=MONDAY - 20 * SECONDS) as first, \
            DaemonProcess(two, fake_now=MONDAY - 20 * SECONDS) as second:
        for daemon in (first, second):
            started = daemon.wait_for("daemon.started", timeout=20)
            assert started["next_digest"].startswith("2024-06-10"), started  # both due today
        deadline = time.monotonic() + 40
        while not any(e.get("event") == "digest.finished" for d in (first, second)
                      for e in list(d.events)) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(3)  # time for a second, late firing to show itself
        finished = [e for d in (first, second) for e in list(d.events)
                    if e.get("event") == "digest.finished"]
        assert finished, first.log() + second.log()
        assert first.stop() == 0, first.log()
        assert second.stop() == 0, second.log()
        logs = first.log() + second.log()
    assert Counter(smtp.recipients()) == Counter(SERVED)  # each exactly once
    assert "Traceback" not in logs
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT slug, state FROM runs").fetchall() == [
            ("2024-06-10", "done")]
        assert conn.execute("SELECT state, count(*) FROM deliveries GROUP BY state "
                            "ORDER BY state").fetchall() == [("empty", 1), ("sent", 3)]
        assert conn.execute("SELECT id FROM apscheduler_jobs").fetchall() == [("digest",)]


def _confirmation(folder: Path) -> EmailMessage:
    """The one message in this node's outbox (no relay: mail goes to the Maildir)."""
    found = sorted((folder / "state" / "outbox" / "new").glob("*"))
    assert len(found) == 1, found
    message = message_from_bytes(found[0].read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_two_web_nodes_take_each_others_links_and_show_the_same_pages(
        url: str, tmp_path: Path) -> None:
    one, two = node(tmp_path / "one", None, signup={}), node(tmp_path / "two", None, signup={})
    code, _, err = run_cli(["--config", str(two), "send", "--as-of", MONDAY.isoformat()])
    assert code == 0, err
    with WebServer(load_config(one)) as a, WebServer(load_config(two)) as b, \
            httpx.Client(base_url=a.url, timeout=10) as at_a, \
            httpx.Client(base_url=b.url, timeout=10) as at_b:
        # a sign-up asked on one node is confirmed on the other
        asked = at_a.post("/subscribe", data={"email": "zoe@example.org", "tag": "union"},
                          headers={"X-Forwarded-For": "192.0.2.7"})
        assert asked.status_code == 200
        deadline = time.monotonic() + 5
        while not list((tmp_path / "one" / "state" / "outbox" / "new").glob("*")) and \
                time.monotonic() < deadline:
            time.sleep(0.02)
        text = _confirmation(tmp_path / "one").get_body(("plain",))
        assert text is not None
        link = re.search(re.escape(BASE) + r"(/subscribe/confirm/[A-Za-z0-9_-]+)",
                         str(text.get_content()))
        assert link is not None
        assert at_b.post(link.group(1)).status_code == 200
        # an unsubscribe link from the digest, followed on either node, is one choice
        unsubscribe = f"/unsubscribe/{token('ana@example.org', 'unsubscribe', SECRET)}"
        assert at_b.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}
                         ).status_code == 200
        page_a, page_b = at_a.get(unsubscribe), at_b.get(unsubscribe)
        assert page_a.status_code == page_b.status_code == 200
        assert page_a.text == page_b.text
        # the archive, written by the node that sent, is the same on the other
        index_a, index_b = at_a.get("/archive/"), at_b.get("/archive/")
        assert index_a.status_code == index_b.status_code == 200
        assert "2024-06-10" in index_a.text and index_a.text == index_b.text
        issue_a, issue_b = at_a.get("/archive/2024-06-10"), at_b.get("/archive/2024-06-10")
        assert issue_a.status_code == 200 and issue_a.text == issue_b.text
    state = open_state(load_config(two))
    try:
        zoe = state.member("zoe@example.org")
        assert zoe is not None and zoe.tags == ("union",) and zoe.source == "signup"
        assert state.is_suppressed("ana@example.org")
    finally:
        state.close()
