"""`digest status`: read-only, and useful before, during and after the daemon."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from conftest import SITE_TZ, make_site, post, run_cli

from digest.config import load_config
from digest.delivery.send import send

MONDAY = datetime(2024, 6, 10, 9, 0, tzinfo=SITE_TZ)


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", "status-test-secret-0123456789abcdef")


def site_with_subscribers(tmp_path: Path) -> Path:
    (tmp_path / "subscribers.yaml").write_text(yaml.safe_dump(
        [{"email": "ana@example.org"}, {"email": "bob@example.org", "tags": ["none"]}]),
        encoding="utf-8")
    return make_site(tmp_path, {"2024-06-06-job.md": post("A Job", tags="[union]")}, extra={
        "subscribers": "subscribers.yaml",
        "digest": {"from": "Jobs Board <jobs@example.org>", "noun": "job"}})


def test_status_before_anything_ran_says_so_and_creates_nothing(tmp_path: Path) -> None:
    cfg = site_with_subscribers(tmp_path)
    code, out, _err = run_cli(["--config", str(cfg), "status"])
    assert code == 0
    assert "daemon: not running" in out
    assert "next digest: not scheduled" in out
    assert "last digests: none yet" in out
    assert not (tmp_path / "state" / "state.sqlite3").exists()


def test_status_shows_the_last_digests_without_writing_to_the_state(tmp_path: Path) -> None:
    cfg = site_with_subscribers(tmp_path)
    send(load_config(cfg), as_of=MONDAY)
    database = tmp_path / "state" / "state.sqlite3"
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    code, out, _err = run_cli(["--config", str(cfg), "status"])
    assert code == 0
    assert "2024-06-10  2024-06-03 09:00 → 2024-06-10 09:00  done: sent 1, nothing new 1" in out
    code, out, _err = run_cli(["--config", str(cfg), "status", "--json"])
    (last,) = json.loads(out)["digests"]
    assert last["counts"] == {"sent": 1, "empty": 1}
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before


def test_status_lists_each_sending_node_and_marks_the_silent_ones_gone(tmp_path: Path) -> None:
    from datetime import UTC, timedelta

    from digest.state.interface import Node
    from digest.state.open import open_state

    cfg = site_with_subscribers(tmp_path)
    now = datetime.now(UTC)
    state = open_state(load_config(cfg))
    try:  # as two senders' heartbeats left them: one beating, one killed 2 minutes ago
        state.beat(Node("web1:4242", "send", now, now, "2024-06-10", 180, 60.0))
        state.beat(Node("web2:77", "send", now - timedelta(minutes=3),
                        now - timedelta(minutes=2), "2024-06-10", 200, 60.0))
    finally:
        state.close()
    code, out, _err = run_cli(["--config", str(cfg), "status"])
    assert code == 0
    live, gone = [line for line in out.splitlines() if line.startswith("node ")]
    assert live.startswith("node web1:4242 (digest send): sending digest 2024-06-10, 180 "
                           "deliveries leased; last heartbeat ") and "GONE" not in live
    assert gone.startswith("node web2:77 (digest send)")
    assert "last heartbeat 120s ago" in gone or "last heartbeat 121s ago" in gone
    assert "GONE (silent longer than its 60s lease" in gone
    code, out, _err = run_cli(["--config", str(cfg), "status", "--json"])
    nodes = {n["node"]: n for n in json.loads(out)["nodes"]}
    assert not nodes["web1:4242"]["gone"] and nodes["web2:77"]["gone"]
    assert nodes["web2:77"]["leased"] == 200 and nodes["web2:77"]["run"] == "2024-06-10"
