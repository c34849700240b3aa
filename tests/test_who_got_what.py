"""Who got what: `digest subscribers list|show|export`, `digest deliveries` and what `digest
status` says of sign-ups, bounces and complaints; all of them only look.

One real site: a subscribers file, a digest sent through a real SMTP server that refuses one
address for good (550, so the send suppresses it), then sign-ups, imports, a web choice of
tags, an unsubscribe and a complaint kept in the state as the web front and the feedback
readers keep them.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import run_cli, run_module
from helpers import MONDAY, SECRET, daemon_site
from smtp_server import SmtpServer

from digest.config import load_config
from digest.daemon.status import RunStatus
from digest.state.interface import Bounce, Member, Pending, Run
from digest.state.migrations import MIGRATIONS
from digest.state.open import open_state
from digest.subscribers.load import parse_subscribers

SUBSCRIBERS: list[dict[str, Any]] = [
    {"email": "ana@example.org", "name": "Ana Gómez", "tags": ["union"]},
    {"email": "dev@example.org", "tags": ["analytics"], "exclude_tags": ["intern"]},
    {"email": "all@example.org", "name": "Sam"},
]
# names and tags that only survive a round trip if they are quoted
ZOE = Member("zoe@example.net", "Zoe@example.net", "Zoë: \"Z\" #1 - 'yes'", ("union", "a: b"),
             "signup", datetime(2024, 6, 11, tzinfo=UTC))
IMP = Member("imp@example.net", "imp@example.net", "no", None, "import",
             datetime(2024, 6, 12, tzinfo=UTC))
ANA_TOO = Member("ana@example.org", "ana@example.org", None, ("data",), "import",
                 datetime(2024, 6, 12, tzinfo=UTC))


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    """The site after one digest (dev@ refused: 550) and a week of sign-ups and feedback."""
    with SmtpServer() as smtp:
        smtp.faults.reject = frozenset({"dev@example.org"})
        cfg = daemon_site(tmp_path, smtp, subscribers=SUBSCRIBERS)
        code, _out, err = run_cli(["--config", str(cfg), "send", "--as-of",
                                   MONDAY.isoformat()])
        assert code in (0, 1), err
        assert "now suppressed" in err
    state = open_state(load_config(cfg))
    try:
        for member in (ZOE, IMP, ANA_TOO):
            assert state.put_member(member) == "new"
        state.save_pending(Pending("pen@example.org", "pen@example.org", None, None,
                                   datetime(2024, 6, 13, tzinfo=UTC)))
        state.set_preferences("all@example.org", ["union", "data"])
        state.suppress_with("gone@example.org", "unsubscribed on the web (one-click)")
        state.record_bounce(Bounce("ana@example.org", "complaint",
                                   datetime(2024, 6, 11, 8, tzinfo=UTC), "arf", "arf-1",
                                   run="2024-06-10", evidence="Feedback-Type: abuse"))
    finally:
        state.close()
    yield cfg


def cli(cfg: Path, *args: str) -> tuple[int, str, str]:
    return run_cli(["--config", str(cfg), *args])


def as_json(cfg: Path, *args: str) -> Any:
    code, out, err = cli(cfg, *args, "--json")
    assert code == 0, err
    return json.loads(out)


# digest subscribers list -------------------------------------------------------------------

def test_list_shows_everyone_once_the_file_winning_and_leaves_the_suppressed_out(
        site: Path) -> None:
    code, out, err = cli(site, "subscribers", "list")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["EMAIL", "NAME", "SOURCE", "TAGS"]
    assert [line.split()[0] for line in lines[1:-1]] == [
        "ana@example.org", "all@example.org", "Zoe@example.net", "imp@example.net"]
    assert lines[-1] == "4 on the list (2 yaml, 1 signup, 1 import); 1 suppressed left out " \
                        "(see --suppressed)"
    # aligned: every row's SOURCE column starts where the header's does
    at = lines[0].index("SOURCE")
    assert all(line[at - 2:at] == "  " and line[at] != " " for line in lines[1:-1])
    ana = next(line for line in lines if line.startswith("ana@"))
    assert "yaml:1" in ana and ana.endswith("union")  # the file wins over the import
    assert lines[2].endswith("data, union (web)")  # the web choice wins over the file
    assert "signup 2024-06-10" in lines[3]  # since, in the site's timezone


def test_list_as_json_gives_the_documented_fields(site: Path) -> None:
    rows = as_json(site, "subscribers", "list")
    assert [set(row) for row in rows] == [{"email", "name", "tags", "exclude_tags",
                                           "tags_chosen_on_web", "source", "line",
                                           "since"}] * 4
    by_email = {row["email"]: row for row in rows}
    assert by_email["ana@example.org"] | {"line": 0} == {
        "email": "ana@example.org", "name": "Ana Gómez", "tags": ["union"],
        "exclude_tags": [], "tags_chosen_on_web": False, "source": "yaml", "line": 0,
        "since": None}
    assert by_email["all@example.org"]["tags"] == ["data", "union"]
    assert by_email["all@example.org"]["tags_chosen_on_web"] is True
    assert by_email["imp@example.net"]["tags"] is None  # every post
    assert by_email["Zoe@example.net"]["since"] == "2024-06-11T00:00:00+00:00"
    assert [r["email"] for r in as_json(site, "subscribers", "list", "--source", "signup")] \
        == ["Zoe@example.net"]
    assert [r["email"] for r in as_json(site, "subscribers", "list", "--source", "import")] \
        == ["imp@example.net"]


def test_list_suppressed_gives_reason_since_and_the_list_they_are_on(site: Path) -> None:
    code, out, err = cli(site, "subscribers", "list", "--suppressed")
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines()[1:-1]}
    assert set(rows) == {"dev@example.org", "gone@example.org"}
    assert "yaml:5" in rows["dev@example.org"]
    assert "  no  " in rows["gone@example.org"]
    assert out.splitlines()[-1] == "2 suppressed (1 on the list, 1 on no list)"
    found = {r["email"]: r for r in as_json(site, "subscribers", "list", "--suppressed")}
    assert found["gone@example.org"]["source"] is None
    assert found["gone@example.org"]["reason"] == "unsubscribed on the web (one-click)"
    dev = found["dev@example.org"]
    assert dev["source"] == "yaml"
    assert "550" in dev["reason"] + dev["evidence"]
    assert datetime.fromisoformat(dev["suppressed_since"]).tzinfo is not None


# digest subscribers show -------------------------------------------------------------------

def test_show_tells_every_source_tags_bounces_and_deliveries(site: Path) -> None:
    code, out, err = cli(site, "subscribers", "show", "ANA@Example.org")  # any case
    assert code == 0, err
    assert out.splitlines()[0] == "ana@example.org (Ana Gómez)"
    assert "on the list: subscribers.yaml line 1" in out
    assert "imported 2024-06-11" in out  # 2024-06-12 00:00 UTC, in New York
    assert "tags: union (from the file)" in out
    assert "suppressed: no" in out
    assert "complaint (arf)" in out and "[digest 2024-06-10]" in out
    assert "    2024-06-10  sent  attempts 1  250" in out


def test_show_of_a_refused_address_gives_the_servers_reply_and_the_suppression(
        site: Path) -> None:
    code, out, err = cli(site, "subscribers", "show", "dev@example.org")
    assert code == 0, err
    assert "suppressed: since" in out and "— gets nothing" in out
    assert "tags: analytics, except intern (from the file)" in out
    (delivery,) = [line for line in out.splitlines() if line.startswith("    2024-06-10")]
    assert "failed" in delivery and "550" in delivery
    found = as_json(site, "subscribers", "show", "dev@example.org")
    assert found["deliveries"][0]["state"] == "failed"
    assert found["deliveries"][0]["code"] == 550
    assert found["suppression"]["evidence"] or "550" in found["suppression"]["reason"]


def test_show_of_a_sign_up_and_of_a_pending_one(site: Path) -> None:
    found = as_json(site, "subscribers", "show", "zoe@example.net")
    assert found["lists"] == [{"source": "signup", "since": "2024-06-11T00:00:00+00:00"}]
    assert found["tags"]["gets"] == ["union", "a: b"]
    assert found["deliveries"] == []
    code, out, _ = cli(site, "subscribers", "show", "pen@example.org")
    assert code == 0
    assert "on the list: no" in out
    assert "sign-up waiting for confirmation since 2024-06-12 20:00" in out


def test_show_of_an_unknown_address_says_so_and_exits_1(site: Path) -> None:
    code, out, _ = cli(site, "subscribers", "show", "stranger@example.org")
    assert code == 1
    assert out.startswith("stranger@example.org: not known")
    code, _, err = cli(site, "subscribers", "show", "not an address")
    assert code == 2
    assert "is not an email address" in err


# digest subscribers export -----------------------------------------------------------------

def test_export_gives_the_sign_ups_and_imports_the_file_lacks_and_round_trips(
        site: Path) -> None:
    code, out, err = cli(site, "subscribers", "export")
    assert code == 0, err
    assert out.startswith("# ")
    read = parse_subscribers(Path("export.yaml"), out, ())
    assert read.problems == ()
    assert [(s.email, s.name, s.tags) for s in read.subscribers] == [
        (ZOE.email, ZOE.name, ZOE.tags), (IMP.email, IMP.name, None)]
    assert "- email: Zoe@example.net\n" in out  # the owner's format, not flow mappings
    # appended to the file, the members are now the file's: nobody lost, nobody twice
    subscribers = site.parent / "subscribers.yaml"
    subscribers.write_text(subscribers.read_text(encoding="utf-8") + out, encoding="utf-8")
    rows = as_json(site, "subscribers", "list")
    assert len(rows) == 4 and {r["source"] for r in rows} == {"yaml"}
    code, out, _ = cli(site, "subscribers", "export")
    assert code == 0
    assert parse_subscribers(Path("again.yaml"), out, ()).subscribers == ()


def test_export_all_gives_everyone_but_the_suppressed(site: Path) -> None:
    code, out, err = cli(site, "subscribers", "export", "--all")
    assert code == 0, err
    read = parse_subscribers(Path("all.yaml"), out, ())
    assert read.problems == ()
    assert [s.key for s in read.subscribers] == ["ana@example.org", "all@example.org",
                                                "zoe@example.net", "imp@example.net"]
    assert read.subscribers[1].tags == ("data", "union")  # what they get: the web choice
    assert "1 suppressed" in err


# digest deliveries -------------------------------------------------------------------------

def test_deliveries_of_the_latest_digest_in_columns(site: Path) -> None:
    code, out, err = cli(site, "deliveries")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("digest 2024-06-10: 2024-06-03 09:00 → 2024-06-10 09:00, done")
    assert lines[1].split() == ["EMAIL", "STATE", "ATTEMPTS", "CODE", "REPLY"]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert rows["ana@example.org"][1:4] == ["sent", "1", "250"]
    assert rows["dev@example.org"][1:4] == ["failed", "1", "550"]
    assert cli(site, "deliveries", "--run", "2024-06-10") == (code, out, err)


def test_deliveries_failed_only_and_as_json(site: Path) -> None:
    code, out, _ = cli(site, "deliveries", "--failed")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["dev@example.org"]
    (dev,) = as_json(site, "deliveries", "--failed")
    assert set(dev) == {"run", "email", "state", "attempts", "code", "reply", "message_id",
                        "posts", "updated_at"}
    assert (dev["run"], dev["state"], dev["code"]) == ("2024-06-10", "failed", 550)
    assert len(as_json(site, "deliveries")) == 3


def test_deliveries_of_an_unknown_digest_names_the_known_ones(site: Path) -> None:
    code, out, err = cli(site, "deliveries", "--run", "2024-06-03")
    assert (code, out) == (2, "")
    assert "no digest '2024-06-03'; the last ones are 2024-06-10" in err


# digest status -----------------------------------------------------------------------------

def test_status_adds_sign_ups_feedback_and_the_complaint_rate(site: Path) -> None:
    code, out, err = cli(site, "status")
    assert code == 0, err
    assert ("sign-ups: 1 waiting for confirmation, 0 confirmed in the last 7 days; members "
            "beside the file: 1 signed up, 2 imported; 2 suppressed") in out
    # the 550 at SMTP time counts as a hard bounce of that digest
    assert "bounces and complaints since 2024-06-10: hard bounces 1, soft bounces 0, " \
           "complaints 1, unsubscribe replies 0" in out
    # the run's own line comes first, its feedback under it
    run_line = out.index("  2024-06-10  2024-06-03 09:00")
    feedback = out.index("      feedback: hard bounces 1, soft bounces 0, complaints 1")
    assert run_line < feedback
    assert "complaint rate 50.00% of 2 sent (Gmail's limit 0.3%): WARNING" in out
    found = as_json(site, "status")
    (last,) = found["digests"]
    assert last["feedback"] == {"hard": 1, "soft": 0, "complaint": 1, "unsubscribe": 0,
                                "complaint_rate": 0.5, "complaint_level": "over"}
    assert found["list"]["pending_signups"] == 1
    assert found["list"]["members"] == {"signup": 1, "import": 2}


@pytest.mark.parametrize(("complaints", "level"), [(0, "ok"), (1, "high"), (2, "high"),
                                                   (3, "over"), (30, "over")])
def test_complaint_rate_is_flagged_at_googles_ceiling_and_gmails_limit(
        complaints: int, level: str) -> None:
    run = Run(1, "2024-06-10", MONDAY, MONDAY, MONDAY, "done")
    status = RunStatus(run, {"sent": 1000}, [], {"complaint": complaints})
    assert status.complaint_level == level
    assert RunStatus(run, {"empty": 3}, []).complaint_rate is None


# only looking ------------------------------------------------------------------------------

LOOKS = [["subscribers", "list"], ["subscribers", "list", "--suppressed", "--json"],
         ["subscribers", "show", "ana@example.org"], ["subscribers", "export", "--all"],
         ["deliveries", "--failed"], ["status", "--json"]]


def fingerprint(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under *folder* → its hash and mtime."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                         p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_every_command_leaves_the_state_as_it_was(site: Path) -> None:
    state = site.parent / "state"
    database = state / "state.sqlite3"
    before = fingerprint(state)
    for look in LOOKS:
        code, _, err = cli(site, *look)
        assert code == 0, (look, err)
    after = fingerprint(state)
    assert after["state.sqlite3"] == before["state.sqlite3"]
    assert {k: v for k, v in after.items() if not k.startswith("state.sqlite3-")} == \
        {k: v for k, v in before.items() if not k.startswith("state.sqlite3-")}
    assert database.exists()


def test_before_anything_ran_they_show_an_empty_list_and_create_nothing(
        tmp_path: Path) -> None:
    with SmtpServer() as smtp:
        cfg = daemon_site(tmp_path, smtp, subscribers=SUBSCRIBERS)
    for look in LOOKS:
        code, _out, err = cli(cfg, *look)
        assert code == 0, (look, err)
    assert len(as_json(cfg, "subscribers", "list")) == 3
    assert cli(cfg, "deliveries")[1] == "no digest has been sent yet\n"
    code, _out, _ = cli(cfg, "subscribers", "show", "nobody@example.org")
    assert code == 1
    assert not (tmp_path / "state").exists()


def old_database(tmp_path: Path) -> Path:
    """A state database as digest wrote it before migration 0.9: no members, sign-ups or
    bounces, suppressions without evidence; one digest sent."""
    with SmtpServer() as smtp:
        cfg = daemon_site(tmp_path, smtp, subscribers=SUBSCRIBERS)
    (tmp_path / "state").mkdir(mode=0o700)
    db = sqlite3.connect(tmp_path / "state" / "state.sqlite3")
    for script in MIGRATIONS[:9]:
        db.executescript(script)
    db.executescript("""
        PRAGMA user_version=9;
        INSERT INTO runs VALUES (1, '2024-06-10', '2024-06-03T13:00:00+00:00',
                                 '2024-06-10T13:00:00+00:00', '2024-06-10T13:00:01+00:00',
                                 NULL, 'done');
        INSERT INTO deliveries VALUES (1, 'ana@example.org', 'ana@example.org', 'sent', 1,
                                       250, '250 OK', '<m@x>', 2, '2024-06-10T13:00:02');
        INSERT INTO suppressed VALUES ('dev@example.org', '2024-06-01T00:00:00+00:00',
                                       'digest unsubscribe');
    """)
    db.close()
    return cfg


def test_they_read_a_database_older_than_the_lists_without_changing_it(
        tmp_path: Path) -> None:
    cfg = old_database(tmp_path)
    database = tmp_path / "state" / "state.sqlite3"
    before = fingerprint(database.parent)["state.sqlite3"]
    for look in LOOKS:
        code, _, err = cli(cfg, *look)
        assert code == 0, (look, err)
    (dev,) = as_json(cfg, "subscribers", "list", "--suppressed")
    assert (dev["email"], dev["reason"], dev["evidence"]) == ("dev@example.org",
                                                              "digest unsubscribe", "")
    code, out, _ = cli(cfg, "status")
    assert "sign-ups: 0 waiting for confirmation" in out
    assert "complaint rate 0.00% of 1 sent" in out
    assert fingerprint(database.parent)["state.sqlite3"] == before
    db = sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 9
    finally:
        db.close()


def test_the_installed_command_lists_as_json(site: Path) -> None:
    """Through `python -m digest`, as a script would call it: JSON on stdout only."""
    done = run_module(["--config", str(site), "subscribers", "list", "--json"])
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == 4
    assert yaml.safe_load(done.stdout) == json.loads(done.stdout)
