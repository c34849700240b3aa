"""Losing the state database must not mail the last digest to everyone again (issue 18.5):
an empty send log beside the traces of earlier sends (marker, archive) is refused,
a fresh install still sends, and `--i-lost-the-state` starts afresh without resending."""

from __future__ import annotations

import mailbox
from pathlib import Path

import pytest
from conftest import post, run_cli, write_posts
from helpers import MONDAY, SECRET, WEEK, digest_site

from digest.delivery.traces import MARKER
from digest.state.store import DATABASE


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)


def _outbox_count(config: Path) -> int:
    return len(mailbox.Maildir(config.parent / "state" / "outbox", create=False))


def _send(config: Path, *extra: str) -> tuple[int, str, str]:
    return run_cli(["--config", str(config), "send", "--as-of", MONDAY.isoformat(), *extra])


def _lose(state: Path, how: str) -> None:
    database = state / DATABASE
    if how == "deleted":
        database.unlink()
    else:
        database.write_bytes(b"")
    for suffix in ("-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)


@pytest.mark.parametrize("how", ["deleted", "truncated"])
def test_send_after_the_database_is_lost_refuses_and_says_how_to_recover(tmp_path, how):
    config = digest_site(tmp_path)
    code, _, _ = _send(config)
    assert code == 0
    sent = _outbox_count(config)
    assert sent > 0
    _lose(tmp_path / "state", how)
    code, out, err = _send(config)
    assert code == 2, (out, err)
    assert "send log is empty or missing" in err
    assert "--i-lost-the-state" in err and "backup" in err
    assert "Traceback" not in err
    assert _outbox_count(config) == sent  # nobody mailed again


def test_the_archive_alone_is_enough_evidence(tmp_path):
    config = digest_site(tmp_path)
    assert _send(config)[0] == 0
    state = tmp_path / "state"
    _lose(state, "deleted")
    (state / MARKER).unlink()
    code, _, err = _send(config)
    assert code == 2
    assert "archive" in err


def test_a_fresh_install_sends_and_leaves_the_marker(tmp_path):
    config = digest_site(tmp_path)
    code, out, err = _send(config, "--to", "me@example.org")  # a test copy is no digest
    assert code == 0, (out, err)
    assert not (tmp_path / "state" / MARKER).exists()
    code, out, err = _send(config)
    assert code == 0, (out, err)
    assert _outbox_count(config) > 0
    assert (tmp_path / "state" / MARKER).is_file()


def test_acknowledged_loss_rebuilds_past_digests_and_resends_nothing(tmp_path):
    config = digest_site(tmp_path)
    assert _send(config)[0] == 0
    sent = _outbox_count(config)
    _lose(tmp_path / "state", "deleted")
    code, out, err = _send(config, "--i-lost-the-state")
    assert code == 0, (out, err)
    assert "already made" in out or "no new posts" in out
    assert _outbox_count(config) == sent
    # a week later, a new post goes out as usual, and the old ones do not
    write_posts(tmp_path, {"2024-06-12-new-role.md": post("New Role", tags="[union]")})
    code, out, err = run_cli(["--config", str(config), "send", "--as-of",
                              (MONDAY + WEEK).isoformat()])
    assert code == 0, (out, err)
    fresh = _outbox_count(config) - sent
    assert fresh > 0
    box = mailbox.Maildir(tmp_path / "state" / "outbox", create=False)
    again = [m for m in (box.get_bytes(k) for k in box.iterkeys())
             if b"New Role" in m and b"Union Data Organizer" in m]
    assert again == []  # the new digest carries the new post only
