"""SMTP security: STARTTLS and implicit TLS verified against a CA, never a silent fallback to
plaintext, and AUTH only where it is safe and tried once."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from smtp_server import SmtpServer

from digest.config import SmtpSettings
from digest.delivery.smtp import SmtpTransport
from digest.delivery.transport import Outcome, Outgoing
from digest.errors import ConfigError, SmtpAuthFailed, SmtpTlsFailed

USER, PASSWORD = "digest", "correct horse"


def messages(n: int) -> list[Outgoing]:
    return [Outgoing(key=f"r{i}@example.org", sender="digest@example.org",
                     recipient=f"r{i}@example.org",
                     data=f"Message-ID: <{i}@example.org>\r\nSubject: {i}\r\n\r\nHi\r\n".encode())
            for i in range(n)]


async def stream(items: list[Outgoing]) -> AsyncIterator[Outgoing]:
    for item in items:
        yield item


async def send(server: SmtpServer, *, password: str | None = None, n: int = 3,
               outcomes: list[Outcome] | None = None, **settings: Any) -> list[Outcome]:
    """Deliver n messages; outcomes go into `outcomes` (if given) as they are recorded."""
    values: dict[str, Any] = {"host": server.host, "port": server.port, "timeout": 2,
                              "backoff": 0.01, "max_attempts": 2, **settings}
    outcomes = [] if outcomes is None else outcomes

    async def record(outcome: Outcome) -> None:
        outcomes.append(outcome)

    transport = SmtpTransport(SmtpSettings(**values), password=password)
    await transport.deliver(stream(messages(n)), record)
    return outcomes


@pytest.mark.asyncio
async def test_starttls_with_auth_delivers_when_the_ca_is_trusted() -> None:
    with SmtpServer(tls="starttls", auth=(USER, PASSWORD), require_auth=True) as server:
        outcomes = await send(server, security="starttls", ca_file=server.ca_file,
                              username=USER, password=PASSWORD, concurrency=2)
        assert [o.status for o in outcomes] == ["sent"] * 3
        assert len(server.received) == 3
        # the server offers AUTH only after STARTTLS, so logging in proves TLS was on
        assert server.auth_attempts == server.connections


@pytest.mark.asyncio
async def test_starttls_is_refused_when_the_certificate_is_not_trusted() -> None:
    with SmtpServer(tls="starttls") as server:
        outcomes: list[Outcome] = []
        with pytest.raises(SmtpTlsFailed) as failed:
            # the system's trust store knows no trustme CA
            await send(server, security="starttls", outcomes=outcomes)
        assert "certificate" in str(failed.value) and "ca_file" in str(failed.value)
        assert outcomes == [] and server.received == []
        assert server.connections == 1  # not retried: it would fail the same way


@pytest.mark.asyncio
async def test_a_certificate_for_another_host_is_refused() -> None:
    with SmtpServer(tls="starttls", cert_names=("mail.example.org",)) as server:
        with pytest.raises(SmtpTlsFailed, match=r"mismatch.*smtp\.host"):
            await send(server, security="starttls", ca_file=server.ca_file)
        assert server.received == []


@pytest.mark.asyncio
async def test_starttls_never_falls_back_to_plaintext() -> None:
    with SmtpServer() as server:  # offers no STARTTLS
        outcomes: list[Outcome] = []
        with pytest.raises(SmtpTlsFailed, match="does not offer STARTTLS"):
            await send(server, security="starttls", outcomes=outcomes)
        assert outcomes == [] and server.received == []


@pytest.mark.asyncio
async def test_implicit_tls_delivers_when_the_ca_is_trusted() -> None:
    with SmtpServer(tls="implicit") as server:
        outcomes = await send(server, security="tls", ca_file=server.ca_file)
        assert [o.status for o in outcomes] == ["sent"] * 3
        assert len(server.received) == 3


@pytest.mark.asyncio
async def test_implicit_tls_is_refused_when_the_certificate_is_not_trusted() -> None:
    with SmtpServer(tls="implicit") as server:
        with pytest.raises(SmtpTlsFailed, match="certificate"):
            await send(server, security="tls")
        assert server.received == []


@pytest.mark.asyncio
async def test_wrong_password_raises_after_one_attempt_and_records_nothing() -> None:
    with SmtpServer(tls="starttls", auth=(USER, PASSWORD)) as server:
        outcomes: list[Outcome] = []
        with pytest.raises(SmtpAuthFailed) as failed:
            await send(server, security="starttls", ca_file=server.ca_file, username=USER,
                       password="wrong", concurrency=4, password_env="SMTP_PASSWORD",
                       outcomes=outcomes)
        assert server.auth_attempts == 1 and server.connections == 1
        assert outcomes == [] and server.received == []
        assert "535" in failed.value.reason and "$SMTP_PASSWORD" in str(failed.value)
        assert "wrong" not in str(failed.value)


@pytest.mark.asyncio
async def test_a_server_that_wants_a_login_first_stops_the_run_without_outcomes() -> None:
    with SmtpServer(tls="starttls", auth=(USER, PASSWORD), require_auth=True) as server:
        outcomes: list[Outcome] = []
        with pytest.raises(SmtpAuthFailed, match="530"):
            await send(server, security="starttls", ca_file=server.ca_file,  # no username
                       outcomes=outcomes)
        assert outcomes == [] and server.received == []


@pytest.mark.asyncio
async def test_auth_is_not_attempted_where_the_server_offers_none() -> None:
    with SmtpServer(auth=(USER, PASSWORD)) as server:  # AUTH needs TLS there: not offered
        with pytest.raises(SmtpAuthFailed, match="offers no AUTH"):
            await send(server, security="none", username=USER, password=PASSWORD)
        assert server.auth_attempts == 0


@pytest.mark.asyncio
async def test_auth_in_plaintext_works_when_asked_for_and_warns(
        caplog: pytest.LogCaptureFixture) -> None:
    with SmtpServer(auth=(USER, PASSWORD), auth_require_tls=False) as server:
        with caplog.at_level(logging.WARNING, logger="digest.delivery.smtp"):
            outcomes = await send(server, security="none", username=USER, password=PASSWORD)
        assert [o.status for o in outcomes] == ["sent"] * 3
        warnings = [r.getMessage() for r in caplog.records if r.name == "digest.delivery.smtp"]
        assert any("unencrypted" in w for w in warnings)
        assert not any(PASSWORD in r.getMessage() for r in caplog.records)


def test_a_username_without_a_password_is_rejected_when_built() -> None:
    with pytest.raises(ValueError, match="password"):
        SmtpTransport(SmtpSettings(host="localhost", port=587, username=USER))


def test_an_unreadable_ca_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError) as failed:
        SmtpTransport(SmtpSettings(host="localhost", port=587, ca_file=missing))
    assert failed.value.problems[0].path == missing
