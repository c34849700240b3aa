"""A digest that cannot be sent does not take the daemon down: the error is logged, the
run stays resumable, the feeds and the web front go on, and the send is retried later.
The real daemon process, a real SMTP server, and a template override that raises for one
tag set (as a user's template with a bug in one branch would)."""

from __future__ import annotations

from pathlib import Path

import httpx
from conftest import post, write_posts
from daemon_process import DaemonProcess
from helpers import MONDAY, SECONDS, SERVED, daemon_site, feed, wait_until
from smtp_server import SmtpServer

BROKEN_FOR_UNION = ("{% if followed and 'union' in followed %}{{ 1 // 0 }}{% endif %}"
                    "{{ count }} new {{ noun }}\n")


def test_a_digest_that_raises_is_logged_and_retried_while_feeds_and_web_go_on(
        tmp_path: Path, smtp: SmtpServer) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "subject.txt.j2").write_text(BROKEN_FOR_UNION, encoding="utf-8")
    cfg = daemon_site(tmp_path, smtp, templates="templates",
                      smtp_settings={"retry_minutes": 0.5 / 60})
    with DaemonProcess(cfg, fake_now=MONDAY - 2 * SECONDS) as daemon:
        url = daemon.wait_for("web.listening")["url"]
        failed = daemon.wait_for("digest.failed")
        assert "subject.txt.j2" in str(failed)
        daemon.wait_for("digest.retry_scheduled")
        # still serving: the web front answers, and a new post reaches its feed
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        write_posts(tmp_path, {"2024-06-08-new.md": post("Brand New Job", tags="[data]")})
        wait_until(lambda: "Brand New Job" in feed(tmp_path), timeout=5)
        daemon.wait_for("digest.retry_scheduled", where=lambda e: e["retry"] >= 2)
        (templates / "subject.txt.j2").unlink()  # fixed: the built-in template again
        daemon.wait_for("digest.finished", where=lambda e: "pending" not in e["counts"],
                        timeout=20)
        assert daemon.process.poll() is None
        assert daemon.stop() == 0
    assert sorted(smtp.recipients()) == SERVED  # each once, the union edition included
