"""A 5xx at SMTP time is a hard bounce: `digest send` suppresses the address with the
server's words as evidence, and the next digest does not go to it; a 5.7.x refusal (the
receiver's policy about us) does not suppress. Against a real aiosmtpd."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import run_cli, write_posts
from daemon_process import SECRET
from helpers import MONDAY, daemon_site
from smtp_server import SmtpServer

from digest.config import load_config
from digest.state.open import open_state

REFUSED = "all@example.org"  # gets every post, next week too


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        server.faults.reject = frozenset({REFUSED})
        yield server


def test_a_5xx_suppresses_the_address_before_the_next_digest(tmp_path: Path,
                                                             smtp: SmtpServer) -> None:
    cfg = daemon_site(tmp_path, smtp)
    code, _out, err = run_cli(["--config", str(cfg), "send", "--as-of", MONDAY.isoformat()])
    assert code == 1, err  # a failed delivery
    assert "1 address(es) refused for good (5xx) are now suppressed" in err
    state = open_state(load_config(cfg), read_only=True)
    try:
        found = state.suppression(REFUSED)
        bounces = state.bounces(REFUSED)
    finally:
        state.close()
    assert found is not None and found.reason == "hard bounce"
    assert "5.1.1 No such user here" in found.evidence
    assert [(b.kind, b.origin, b.run) for b in bounces] == [("hard", "smtp", "2024-06-10")]
    before = smtp.recipients()
    write_posts(tmp_path, {"2024-06-12-next.md": "---\ntitle: Next\ntags: [union]\n---\nx\n"})
    later = (MONDAY + timedelta(days=7)).isoformat()
    code, _out, err = run_cli(["--config", str(cfg), "send", "--as-of", later])
    assert code == 0, err
    assert REFUSED not in smtp.recipients()[len(before):]
