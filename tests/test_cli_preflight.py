"""`digest check` as the preflight: what `digest send`, `digest run` and `digest serve` would
trip over is reported first, with the file and line where there is one; `--smtp` opens a
real connection to the in-process aiosmtpd (STARTTLS, AUTH) and sends nothing.

Exit codes: 0 all good, 1 some posts or subscriber entries would be rejected, 2 a command
would fail (config, secret, template, schedule, the SMTP server)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import PROJECT, SITE_TZ, make_site, post, run_cli
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from smtp_server import SmtpServer

SUNDAY = datetime(2024, 6, 9, 12, 0, tzinfo=SITE_TZ)
SECRET = "preflight-secret-0123456789abcdef"
USER, PASSWORD = "digest", "correct horse"
POSTS = {
    "2024-06-04-organizer.md": post("Union Organizer", tags="[union, data]"),
    "2024-06-05-analyst.md": post("Campaign Analyst", tags="[campaigns, analytics]"),
}
SUBSCRIBERS = [{"email": "ana@example.org", "name": "Ana", "tags": ["union"]},
               {"email": "all@example.org"}]


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    for name in ("SMTP_PASSWORD", "DKIM_KEY"):
        monkeypatch.delenv(name, raising=False)


def digest_site(tmp_path: Path, *, digest: dict[str, Any] | None = None,
                **extra: Any) -> Path:
    """A site with subscribers, a digest section and a web front on a free port."""
    (tmp_path / "subscribers.yaml").write_text(yaml.safe_dump(SUBSCRIBERS), encoding="utf-8")
    settings = {"from": "Jobs Board <jobs@example.org>", **(digest or {})}
    sections: dict[str, Any] = {
        "subscribers": "subscribers.yaml", "digest": settings,
        "web": {"base_url": "https://jobs.example.org/digest", "listen": "127.0.0.1:0"},
        **extra}
    return make_site(tmp_path, POSTS, extra={k: v for k, v in sections.items()
                                             if v is not None})


def check(config: Path, *args: str) -> tuple[int, str, str]:
    return run_cli(["--config", str(config), "check", "--as-of", SUNDAY.isoformat(), *args])


def pem_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


# what passes -----------------------------------------------------------------------------

def test_check_passes_a_digest_site_and_shows_the_next_digest(tmp_path: Path) -> None:
    code, out, err = check(digest_site(tmp_path))
    assert (code, out) == (0, ""), err
    assert "2 posts OK; 0 rejected, 0 warnings" in err
    assert "2 subscribers OK; 0 skipped, 0 warnings" in err
    assert "templates OK: a digest of 2 posts rendered with the built-in templates" in err
    assert "schedule '0 9 * * mon' (America/New_York): next digest 2024-06-10 09:00 -0400" \
        in err
    assert f"mail goes to the outbox {tmp_path / 'state' / 'outbox'}" in err


def test_check_parses_the_dkim_key_in_its_variable(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DKIM_KEY", pem_key())
    config = digest_site(tmp_path, digest={"dkim": {"domain": "example.org",
                                                    "selector": "d1",
                                                    "private_key_env": "DKIM_KEY"}})
    code, out, err = check(config)
    assert (code, out) == (0, ""), err
    assert "DKIM key for d1._domainkey.example.org parses" in err


# what a command would trip over: exit 2 --------------------------------------------------

def test_check_names_every_missing_secret_at_once(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIGEST_SECRET")
    config = digest_site(tmp_path, digest={"dkim": {"domain": "example.org", "selector": "d1",
                                                    "private_key_env": "DKIM_KEY"}},
                         smtp={"host": "127.0.0.1", "username": "u",
                               "password_env": "SMTP_PASSWORD"})
    code, out, _ = check(config)
    assert code == 2
    assert "$DKIM_KEY is empty" in out
    assert "environment variable DIGEST_SECRET must hold a secret" in out
    assert "smtp.password_env names $SMTP_PASSWORD, which is not set" in out
    # needed by send and by the web front: said once
    assert sum("DIGEST_SECRET" in line for line in out.splitlines()) == 1
    assert all(line.startswith(f"error: {config}") for line in out.splitlines())


def test_check_refuses_a_dkim_key_that_does_not_parse(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DKIM_KEY", "-----BEGIN RSA PRIVATE KEY-----\nnope\n")
    config = digest_site(tmp_path, digest={"dkim": {"domain": "example.org", "selector": "d1",
                                                    "private_key_env": "DKIM_KEY"}})
    code, out, _ = check(config)
    assert code == 2
    assert "the DKIM key for d1._domainkey.example.org is not a PEM RSA private key" in out


def test_check_without_digest_from_exits_2(tmp_path: Path) -> None:
    config = digest_site(tmp_path, digest={"from": None})
    code, out, err = check(config)
    assert code == 2
    assert f"error: {config}: 'digest.from' is not set" in out
    assert "templates OK" in err  # the templates are still tried, with a stand-in sender


@pytest.mark.parametrize(("template", "line", "what"), [
    ("Hello\n{{ posts | length }\nBye\n", 2, "template syntax error"),
    ("Hello\n\n{{ posts[0].salary }}\n", 3, "template error"),
    ("Hello {{ 1 // 0 }}\n", 1, "template error"),
])
def test_check_reports_a_broken_template_override_with_its_file_and_line(
        tmp_path: Path, template: str, line: int, what: str) -> None:
    folder = tmp_path / "my-templates"
    folder.mkdir()
    (folder / "digest.txt.j2").write_text(template, encoding="utf-8")
    code, out, _ = check(digest_site(tmp_path, digest={"templates": "my-templates"}))
    assert code == 2
    assert out.startswith(f"error: {folder / 'digest.txt.j2'}:{line}: {what}"), out


def test_check_reports_a_web_page_override_that_does_not_compile(tmp_path: Path) -> None:
    (tmp_path / "my-templates" / "web").mkdir(parents=True)
    page = tmp_path / "my-templates" / "web" / "unsubscribe.html.j2"
    page.write_text("<p>\n{% if x %}\n", encoding="utf-8")
    code, out, _ = check(digest_site(tmp_path, digest={"templates": "my-templates"}))
    assert code == 2
    assert f"error: {page}:" in out and "template syntax error" in out


@pytest.mark.parametrize(("template", "line", "what"), [
    ("<p>\n{% for row in page.feeds %}\n", 2, "template syntax error"),
    ("<p>{{ page.feeds[0].salary }}</p>\n", 1, "template error"),
])
def test_check_renders_a_feeds_page_override(tmp_path: Path, template: str, line: int,
                                             what: str) -> None:
    """feeds.html.j2 is rendered by every build: a broken override is found before one."""
    folder = tmp_path / "my-templates"
    folder.mkdir()
    config = digest_site(tmp_path, digest={"templates": "my-templates"})
    (folder / "feeds.html.j2").write_text("<p>{{ page.feeds | length }} feeds</p>\n",
                                          encoding="utf-8")
    code, _, err = check(config)
    assert code == 0 and f"feeds page OK: {folder / 'feeds.html.j2'} rendered" in err, err
    (folder / "feeds.html.j2").write_text(template, encoding="utf-8")
    code, out, _ = check(config)
    assert code == 2
    assert f"error: {folder / 'feeds.html.j2'}:{line}: {what}" in out, out


def test_a_problem_that_stops_a_command_outranks_a_rejected_post(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = digest_site(tmp_path)
    (tmp_path / "_posts" / "2024-02-30-no-day.md").write_text(post("No day"), encoding="utf-8")
    assert check(config)[0] == 1
    monkeypatch.delenv("DIGEST_SECRET")
    assert check(config)[0] == 2


# a config that would break `digest run` fails `digest check` first ----------------------

def _run_starts(config: Path, env: dict[str, str]) -> tuple[bool, str]:
    """Whether `digest run` gets as far as "started" (then it is stopped); and its log."""
    process = subprocess.Popen(
        [sys.executable, "-m", "digest", "--config", str(config), "run", "--log-format",
         "json"], cwd=PROJECT, env={**env, "PYTHONIOENCODING": "utf-8"}, text=True,
        encoding="utf-8", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stderr is not None
    lines = []
    started = False
    deadline = time.monotonic() + 60
    for line in process.stderr:  # ends when the process exits
        lines.append(line)
        with contextlib.suppress(ValueError):  # a line that is not JSON: a traceback
            started = json.loads(line).get("event") == "daemon.started"
        if started or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    return started, "".join(lines)


BREAKERS: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    # a float where APScheduler takes only an int: caught by building the daemon's real jobs
    "grace_hours as a fraction": ({"digest": {"grace_hours": 1.5}}, {}),
    "no digest.from": ({"digest": {"from": None}}, {}),
    "link secret unset": ({}, {"DIGEST_SECRET": ""}),
    "DKIM key unparseable": ({"digest": {"dkim": {"domain": "example.org", "selector": "d",
                                                  "private_key_env": "DKIM_KEY"}}},
                             {"DKIM_KEY": "not a key"}),
    "SMTP password unset": ({"smtp": {"host": "127.0.0.1", "username": "u",
                                      "password_env": "SMTP_PASSWORD"}}, {}),
}


@pytest.mark.parametrize("name", list(BREAKERS))
def test_a_config_that_stops_digest_run_fails_digest_check_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    changes, env = BREAKERS[name]
    digest = {"from": "Jobs Board <jobs@example.org>", **changes.get("digest", {})}
    config = digest_site(tmp_path, digest=digest,
                         **{k: v for k, v in changes.items() if k != "digest"})
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code, out, _ = check(config)
    if code == 2:
        assert out.startswith("error: ") and "Traceback" not in out
        return
    # check passed it, so `digest run` must start with it (a fixed bug lands here)
    started, log = _run_starts(config, dict(os.environ))
    assert started, f"digest check exited {code}, but digest run did not start:\n{log}"


def test_a_config_digest_run_starts_with_passes_digest_check(tmp_path: Path) -> None:
    config = digest_site(tmp_path)
    assert check(config)[0] == 0
    started, log = _run_starts(config, dict(os.environ))
    assert started, log


# --smtp: a real connection, nothing sent ---------------------------------------------------

def smtp_site(tmp_path: Path, server: SmtpServer, *, port: int | None = None,
              trust: bool = True) -> Path:
    smtp: dict[str, Any] = {"host": server.host, "port": port or server.port,
                            "security": "starttls", "username": USER,
                            "password_env": "SMTP_PASSWORD", "timeout": 5}
    if trust:
        smtp["ca_file"] = str(server.ca_file)
    return digest_site(tmp_path, smtp=smtp)


@pytest.fixture
def server() -> Any:
    with SmtpServer(tls="starttls", auth=(USER, PASSWORD), require_auth=True) as running:
        yield running


def test_check_smtp_logs_in_over_starttls_and_sends_nothing(
        tmp_path: Path, server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
    code, out, err = check(smtp_site(tmp_path, server), "--smtp")
    assert (code, out) == (0, ""), err
    assert f"{server.host}:{server.port}: connected, EHLO, STARTTLS, AUTH as {USER}; " \
        "nothing sent" in err
    # the server offers AUTH only after STARTTLS, so a login proves TLS was on
    assert (server.connections, server.auth_attempts, server.received) == (1, 1, [])


def test_check_without_smtp_flag_opens_no_connection(
        tmp_path: Path, server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
    code, _, err = check(smtp_site(tmp_path, server))
    assert code == 0, err
    assert f"mail goes to {server.host}:{server.port} (starttls)" in err
    assert server.connections == 0


def test_check_smtp_with_a_wrong_password_exits_2_naming_the_variable(
        tmp_path: Path, server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "wrong")
    code, out, _ = check(smtp_site(tmp_path, server), "--smtp")
    assert code == 2
    assert f"SMTP authentication failed: {server.host}:{server.port} refused user " \
        f"'{USER}': 535" in out
    assert "$SMTP_PASSWORD" in out
    assert server.received == [] and server.auth_attempts == 1


def test_check_smtp_to_an_unreachable_host_exits_2(
        tmp_path: Path, server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
    with socket.socket() as probe:  # a port nobody listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    code, out, _ = check(smtp_site(tmp_path, server, port=closed), "--smtp")
    assert code == 2
    assert f"cannot connect to 127.0.0.1:{closed}" in out
    assert "check smtp.host and smtp.port" in out
    assert len(out.splitlines()) == 1


def test_check_smtp_with_an_untrusted_certificate_exits_2(
        tmp_path: Path, server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
    code, out, _ = check(smtp_site(tmp_path, server, trust=False), "--smtp")
    assert code == 2
    assert "certificate" in out and "smtp.ca_file" in out
    assert server.auth_attempts == 0


def test_check_smtp_without_an_smtp_section_exits_2(tmp_path: Path) -> None:
    code, out, _ = check(digest_site(tmp_path), "--smtp")
    assert code == 2
    assert "--smtp: there is no 'smtp:' section" in out


def test_check_advises_on_bounce_handling_without_failing(tmp_path: Path) -> None:
    code, out, err = check(digest_site(tmp_path))
    assert (code, out) == (0, "")
    assert "warning: " in err and "nothing reads bounces and complaints" in err
    assert "no 'bounces.return_path'" in err


def test_check_is_quiet_about_bounces_once_they_are_read(tmp_path: Path) -> None:
    (tmp_path / "bounces").mkdir()
    code, out, err = check(digest_site(tmp_path, bounces={
        "return_path": "bounces@example.org", "maildir": "bounces"}))
    assert (code, out) == (0, ""), err
    assert "nothing reads bounces" not in err and "return_path" not in err
