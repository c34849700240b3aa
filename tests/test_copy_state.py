"""`digest copy-state` (state/pg_copy.py): a site that kept its state in SQLite moves it
into PostgreSQL and carries on there as if nothing happened (the same digests done, the
same people unsubscribed, the same entry ids in its feeds), on a real server
(tests/pg_server.py); and a site that names database_env without copying is stopped
before it writes anything, instead of mailing those who unsubscribed."""

from __future__ import annotations

import json
import mailbox
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import STORE_ENV, config_of, run_cli
from helpers import MONDAY, SECRET, WEEK, digest_site

from digest.state.interface import Bounce, Member, Pending, RunAction, RunPost, SharedState
from digest.state.open import open_state


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)


def _cli(config: Path, *args: str) -> tuple[int, str, str]:
    return run_cli(["--config", str(config), *args])


def _outbox(config: Path) -> int:
    return len(mailbox.Maildir(config.parent / "state" / "outbox", create=False))


def _feeds(config: Path) -> dict[str, bytes]:
    public = config.parent / "public"
    return {str(p.relative_to(public)): p.read_bytes() for p in sorted(public.rglob("*.xml"))}


def _to_postgres(config: Path) -> None:
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["database_env"] = STORE_ENV
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _seen(state: SharedState) -> dict[str, Any]:
    """What the site's state says, through the interface every command reads it by."""
    runs = state.runs()
    return {
        "runs": [(r.slug, r.state, r.period_start, r.period_end) for r in runs],
        "counts": [state.counts(r) for r in runs],
        "deliveries": [[(d.key, d.state, d.message_id) for d in state.deliveries(r)]
                       for r in runs],
        "posts": [sorted(p.entry_id for p in state.run_posts(r)) for r in runs],
        "suppressions": sorted((s.key, s.reason) for s in state.suppressions()),
        "preferences": state.preferences(),
        "members": state.members(),
        "pending": state.pending("waiting@example.org"),
        "bounces": state.bounces(),
        "entry_ids": state.entry_ids(),
        "archive": state.archive_index(),
    }


def _fill(config: Path) -> None:
    """A site that has lived a little on SQLite: a digest sent, someone unsubscribed, tags
    chosen on the web, a member, a sign-up waiting, a bounce with a NUL in its words (which
    PostgreSQL's text cannot hold)."""
    assert _cli(config, "build", "--as-of", MONDAY.isoformat())[0] == 0
    now = datetime(2024, 6, 9, 12, tzinfo=UTC)
    state = open_state(config_of(config))
    try:
        state.set_preferences("bo@example.org", ["union"])
        state.put_member(Member("cy@example.org", "cy@example.org", "Cy", ("data",),
                                "signup", now))
        state.save_pending(Pending("waiting@example.org", "waiting@example.org", None, None,
                                   now))
    finally:
        state.close()
    assert _cli(config, "send", "--as-of", MONDAY.isoformat())[0] == 0
    assert _cli(config, "unsubscribe", "ana@example.org")[0] == 0
    state = open_state(config_of(config))
    try:
        state.record_bounce(Bounce("bo@example.org", "soft", now, "dsn", "r-1", "4.2.2",
                                   "mailbox full\0", MONDAY.date().isoformat()))
    finally:
        state.close()


def test_a_site_moved_to_postgresql_carries_on_as_it_was(tmp_path: Path, pg_url: str,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    config = digest_site(tmp_path)
    _fill(config)
    state = open_state(config_of(config))
    try:
        before = _seen(state)
    finally:
        state.close()
    assert before["runs"] and before["suppressions"] and before["entry_ids"]
    feeds = _feeds(config)
    sent = _outbox(config)
    monkeypatch.setenv(STORE_ENV, pg_url)
    _to_postgres(config)

    code, out, err = _cli(config, "copy-state", "--dry-run")
    assert code == 0, err
    assert out.startswith("dry run, rolled back: would copy 1 digest, ")
    code, out, err = _cli(config, "copy-state")
    assert code == 0, err
    assert out.startswith("copied 1 digest, ") and "1 suppression," in out, out
    assert "bo@example.org" not in out + err  # counts, not who
    state = open_state(config_of(config))
    try:
        after = _seen(state)
    finally:
        state.close()
    assert after["bounces"][0].diagnostic == "mailbox full\ufffd"  # NUL: U+FFFD, as any write
    before["bounces"] = after["bounces"] = [b.ident for b in before["bounces"]]
    assert after == before

    code, out, err = _cli(config, "status", "--json")
    assert code == 0 and "left_behind" not in json.loads(out), out
    # the same digest is done there: a send finds nothing to do and mails nobody again
    code, out, err = _cli(config, "send", "--as-of", MONDAY.isoformat())
    assert code == 0, err
    assert _outbox(config) == sent
    # the feeds keep their entry ids: built again from PostgreSQL, byte for byte the same
    (config.parent / "state" / "feeds.sqlite3").unlink(missing_ok=True)
    for path in (config.parent / "public").rglob("*.xml"):
        path.unlink()
    assert _cli(config, "build", "--as-of", MONDAY.isoformat())[0] == 0
    assert _feeds(config) == feeds
    # the next week's digest goes out from PostgreSQL, and not to the one who unsubscribed
    code, out, err = _cli(config, "send", "--as-of", (MONDAY + WEEK).isoformat())
    assert code == 0, err
    # a second copy would mix two states: refused, nothing changed
    code, out, err = _cli(config, "copy-state")
    assert code == 2
    assert "already holds digest state" in err and "Traceback" not in err


def test_a_site_that_names_a_database_without_copying_is_stopped_before_writing(
        tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    config = digest_site(tmp_path)
    _fill(config)
    sent = _outbox(config)
    monkeypatch.setenv(STORE_ENV, pg_url)
    _to_postgres(config)
    for command in (["send", "--as-of", (MONDAY + WEEK).isoformat()], ["build"],
                    ["unsubscribe", "dee@example.org"]):
        code, _out, err = _cli(config, *command)
        assert code == 2, (command, err)
        assert "digest copy-state" in err and "1 suppression," in err, err
        assert "Traceback" not in err
    assert _outbox(config) == sent
    code, out, _err = _cli(config, "status")  # only looks: still answers, and says why
    assert code == 0
    assert "not in the database yet: 1 digest, " in out and "`digest copy-state`" in out, out
    code, out, _err = _cli(config, "status", "--json")
    assert code == 0 and json.loads(out)["left_behind"]["suppressed"] == 1
    # moved aside: a deliberate fresh start on PostgreSQL
    (config.parent / "state" / "state.sqlite3").rename(tmp_path / "old.sqlite3")
    assert _cli(config, "build")[0] == 0
    code, out, _err = _cli(config, "status", "--json")
    assert code == 0 and "left_behind" not in json.loads(out)


def test_copy_state_needs_a_database_and_a_state(tmp_path: Path, pg_url: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    config = digest_site(tmp_path)
    code, _out, err = _cli(config, "copy-state")  # no database_env
    assert code == 2 and "database_env" in err
    monkeypatch.setenv(STORE_ENV, pg_url)
    _to_postgres(config)
    code, _out, err = _cli(config, "copy-state")  # never ran on SQLite: nothing to copy
    assert code == 2 and "no SQLite state to copy" in err


def test_a_run_paused_midway_keeps_its_order_its_owners_actions_and_no_leases(
        tmp_path: Path, pg_url: str) -> None:
    """What the CLI test's finished digest lacks: deliveries still to serve (their order is
    the claims' order; PostgreSQL numbers them anew), the owner's actions (numbered anew,
    in order), a pause (a boolean there, an integer in SQLite) and a lease, which belonged
    to the old machine's sender and is left behind."""
    from digest.state.pg_copy import copy_state
    from digest.state.postgres import PostgresState
    from digest.state.sqlite import SqliteState
    from digest.state.store import Store

    store = Store.open(tmp_path)
    lite = SqliteState(store)
    start = datetime(2024, 6, 3, tzinfo=UTC)
    keys = [f"u{i:03}" for i in (5, 1, 9, 3, 7, 2)]  # not in sorted order
    run = lite.create_run(slug="2024-06-10", start=start, end=start + WEEK,
                          posts=(RunPost("urn:a", "a.md", "a|\0A"),),
                          subscribers=[(k, f"{k}@example.org") for k in keys])
    lite.claim(run, "old-machine:1", 2, 0.01)  # long expired by the time it is copied
    at = datetime(2024, 6, 10, 10, tzinfo=UTC)
    assert lite.control(run, RunAction("pause", "owner", "checking a link", at))
    assert lite.control(run, RunAction("resume", "owner", "fine", at))
    assert lite.control(run, RunAction("pause", "owner", "once more", at))
    target = PostgresState(pg_url)
    try:
        copied = copy_state(store.db, tmp_path / "state.sqlite3", target)
        assert copied.counts["deliveries"] == 6 and copied.counts["run_actions"] == 3
        [there] = target.runs()
        assert there == lite.runs()[0]
        assert target.run_control(there) == lite.run_control(run)  # paused by the owner
        assert target.run_actions(there) == lite.run_actions(run)
        assert target.run_posts(there) == lite.run_posts(run)  # the twin key's NUL kept
        assert target.leases(there) == {}
        target.control(there, RunAction("resume", "owner", "go", at))
        # claimed in the order the SQLite state would have served them
        assert [k for k, _, _ in target.claim(there, "new:1", 10, 60)] == keys
        made = target.create_run(slug="2024-06-17", start=start + WEEK,
                                 end=start + 2 * WEEK, posts=(), subscribers=[])
        assert made.id > there.id  # the ids go on from the copied ones
    finally:
        target.close()
        lite.close()
