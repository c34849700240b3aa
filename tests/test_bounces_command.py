"""`digest bounces` end to end: a digest sent through a real aiosmtpd with VERP, its bounce
delivered to a real Maildir or a real dovecot, read by the command: the address is
suppressed with the DSN's evidence, the next digest skips it, the bounce is marked seen and
every other message is left exactly as it was."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli, write_posts
from daemon_process import SECRET
from helpers import MONDAY, daemon_site
from imap_server import ImapServer
from smtp_server import SmtpServer

from digest.config import load_config
from digest.state.open import open_state

BOUNCED = "all@example.org"  # gets every post, so next week's digest would go to it too
OUT_OF_OFFICE = (b"From: Ana <ana@example.org>\r\nTo: bounces@example.org\r\n"
                 b"Subject: Out of office\r\nAuto-Submitted: auto-replied\r\n"
                 b"Message-ID: <ooo@example.org>\r\n\r\nBack on Monday.\r\n")


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def dsn(verp: str, recipient: str) -> bytes:
    """A bounce as postfix writes it, to the VERP address the digest went out from."""
    return (
        f"From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\r\n"
        f"To: {verp}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <bounce-1@mx.example.org>\r\nAuto-Submitted: auto-replied\r\n"
        f"MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        f"--B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your "
        f"message could not be delivered.\r\n\r\n"
        f"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.example.org\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: "
        f"User unknown\r\n\r\n--B--\r\n").encode()


def _with_bounces(tmp_path: Path, smtp: SmtpServer, mailbox: dict[str, Any]) -> Path:
    import yaml

    cfg = daemon_site(tmp_path, smtp)
    data = yaml.safe_load(cfg.read_text())
    data["bounces"] = {"return_path": "bounces@example.org", **mailbox}
    cfg.write_text(yaml.safe_dump(data))
    return cfg


def send_and_bounce(cfg: Path, smtp: SmtpServer) -> bytes:
    code, _out, err = run_cli(["--config", str(cfg), "send", "--as-of", MONDAY.isoformat()])
    assert code == 0, err
    verp = next(m.sender for m in smtp.received if BOUNCED in m.recipients)
    assert verp.startswith("bounces+") and verp.endswith("@example.org")
    return dsn(verp, BOUNCED)


def suppression(cfg: Path) -> Any:
    state = open_state(load_config(cfg), read_only=True)
    try:
        return state.suppression(BOUNCED)
    finally:
        state.close()


def next_week_skips_it(tmp_path: Path, cfg: Path, smtp: SmtpServer) -> None:
    before = len(smtp.received)
    write_posts(tmp_path, {"2024-06-12-next.md": "---\ntitle: Next\ntags: [union]\n---\nx\n"})
    later = (MONDAY + timedelta(days=7)).isoformat()
    code, _out, err = run_cli(["--config", str(cfg), "send", "--as-of", later])
    assert code == 0, err
    sent = [r for m in smtp.received[before:] for r in m.recipients]
    assert sent and BOUNCED not in sent


def test_a_bounce_in_a_maildir_suppresses_and_the_rest_is_left_alone(
        tmp_path: Path, smtp: SmtpServer) -> None:
    maildir = tmp_path / "bounces"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    cfg = _with_bounces(tmp_path, smtp, {"maildir": "bounces"})
    (maildir / "new" / "1.bounce").write_bytes(send_and_bounce(cfg, smtp))
    (maildir / "new" / "2.ooo").write_bytes(OUT_OF_OFFICE)
    code, out, err = run_cli(["--config", str(cfg), "bounces"])
    assert code == 0, err
    assert "2 message(s) examined, 1 feedback, 1 left alone" in out
    assert f"suppressed {BOUNCED}: hard bounce" in out
    found = suppression(cfg)
    assert found is not None and "5.1.1" in found.evidence
    assert sorted(p.name for p in (maildir / "cur").iterdir()) == ["1.bounce:2,S"]
    assert (maildir / "new" / "2.ooo").read_bytes() == OUT_OF_OFFICE  # as it was
    code, out, err = run_cli(["--config", str(cfg), "bounces"])  # again: nothing new
    assert code == 0 and "0 feedback" in out, err
    next_week_skips_it(tmp_path, cfg, smtp)


def test_a_bounce_in_an_imap_folder_suppresses_and_marks_only_it_seen(
        tmp_path: Path, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOUNCES_PASSWORD", "s3cret")
    with ImapServer() as imap:
        cfg = _with_bounces(tmp_path, smtp, {"imap": {
            "host": imap.host, "port": imap.port, "username": "bounces",
            "password_env": "BOUNCES_PASSWORD", "ca_file": str(imap.ca_file)}})
        bounce = imap.append("bounces", send_and_bounce(cfg, smtp))
        other = imap.append("bounces", OUT_OF_OFFICE)
        code, out, err = run_cli(["--config", str(cfg), "bounces"])
        assert code == 0, err
        assert f"suppressed {BOUNCED}: hard bounce" in out
        flags = imap.flags("bounces")
        assert "\\Seen" in flags[bounce] and "\\Seen" not in flags[other]
    assert suppression(cfg) is not None
    next_week_skips_it(tmp_path, cfg, smtp)


def test_without_a_mailbox_the_command_says_what_to_set(tmp_path: Path,
                                                        smtp: SmtpServer) -> None:
    cfg = daemon_site(tmp_path, smtp)
    code, _out, err = run_cli(["--config", str(cfg), "bounces"])
    assert code == 2 and "no bounces mailbox is configured" in err


def test_an_unreachable_mailbox_is_one_clear_error(tmp_path: Path, smtp: SmtpServer) -> None:
    cfg = _with_bounces(tmp_path, smtp, {"maildir": "nowhere"})
    code, _out, err = run_cli(["--config", str(cfg), "bounces"])
    assert code == 2 and "nowhere" in err and "Traceback" not in err, err


def test_digest_run_reads_the_mailbox_on_its_schedule(tmp_path: Path, smtp: SmtpServer) -> None:
    from digest.cli.preflight import daemon_jobs

    (tmp_path / "bounces").mkdir()
    cfg = _with_bounces(tmp_path, smtp, {"maildir": "bounces", "every_minutes": 10})
    jobs = {job.id: job for job in daemon_jobs(load_config(cfg))}
    assert jobs["bounces"].trigger.interval == timedelta(minutes=10)
    (tmp_path / "plain").mkdir()
    assert "bounces" not in {job.id for job in daemon_jobs(load_config(daemon_site(
        tmp_path / "plain", smtp)))}
