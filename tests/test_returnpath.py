"""VERP (delivery/returnpath.py): each message's envelope sender is bounces+TOKEN@domain, the
token signed and naming (run, subscriber), within the 64-octet local part, surviving an MTA
that lowercases it; and `digest send` puts it on the wire (a real aiosmtpd records it) and
in the outbox's Return-Path line."""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_site, run_cli
from helpers import DAEMON_POSTS, DAEMON_SUBSCRIBERS, MONDAY, SECRET, SERVED, write_subscribers
from smtp_server import SmtpServer

from digest.config import load_config
from digest.delivery import returnpath
from digest.delivery.returnpath import LOCAL_PART_MAX, Verp, decode, encode
from digest.feedback.classify import classify
from digest.feedback.ours import ours
from digest.state.open import open_state
from digest.subscribers.tokens import Signer

SIGNER = Signer([SECRET.encode()])
RETURN_PATH = "bounces@example.org"
RUNS = {"2024-06-03": ["ana@example.org", "ben@example.net"],
        "2024-06-10": ["ana@example.org", "chen@example.com"]}


def keys(slug: str) -> list[str]:
    return RUNS[slug]


def resolve(address: str, signer: Signer = SIGNER) -> tuple[str, str] | None:
    return decode(address, signer, return_path=RETURN_PATH, runs=RUNS, keys=keys)


def test_an_address_decodes_to_its_run_and_subscriber() -> None:
    for slug, members in RUNS.items():
        for key in members:
            assert resolve(encode(RETURN_PATH, slug, key, SIGNER)) == (slug, key)


def test_the_token_survives_an_mta_that_changes_its_case() -> None:
    address = encode(RETURN_PATH, "2024-06-10", "chen@example.com", SIGNER)
    assert resolve(address.upper()) == ("2024-06-10", "chen@example.com")
    assert resolve(f"<{address}>") == ("2024-06-10", "chen@example.com")


def test_the_longest_return_path_config_allows_still_fits_the_local_part_limit() -> None:
    longest = "b" * 40 + "@example.org"  # config refuses a longer local part
    address = encode(longest, "2024-06-10T093000", "x" * 300 + "@example.org", SIGNER)
    assert len(address.split("@")[0].encode()) <= LOCAL_PART_MAX
    with pytest.raises(ValueError, match="no room"):
        encode("b" * 44 + "@example.org", "2024-06-10", "ana@example.org", SIGNER)


def test_a_forged_or_tampered_token_is_refused() -> None:
    good = encode(RETURN_PATH, "2024-06-10", "ana@example.org", SIGNER)
    local, domain = good.split("@")
    token = local.split("+")[1]
    for i in range(len(token)):  # every one-character change
        changed = token[:i] + ("a" if token[i] != "a" else "b") + token[i + 1:]
        assert resolve(f"bounces+{changed}@{domain}") is None
    assert resolve("bounces+" + "a" * 20 + "@example.org") is None
    assert resolve(good.replace("example.org", "example.net")) is None
    assert resolve(good.replace("bounces+", "other+")) is None
    assert resolve(encode(RETURN_PATH, "2024-06-10", "ana@example.org",
                          Signer([b"another-secret-0123456789"]))) is None
    assert resolve("bounces@example.org") is None
    assert resolve("") is None


def test_a_token_for_one_run_does_not_name_a_subscriber_of_another() -> None:
    address = encode(RETURN_PATH, "2024-06-03", "ben@example.net", SIGNER)
    assert decode(address, SIGNER, return_path=RETURN_PATH, runs=["2024-06-10"],
                  keys=keys) is None


def test_tokens_signed_with_a_retired_secret_still_decode_during_rotation() -> None:
    old = Signer([b"old-secret-0123456789abcdef"])
    rotated = Signer([b"new-secret-0123456789abcdef", b"old-secret-0123456789abcdef"])
    address = encode(RETURN_PATH, "2024-06-10", "ana@example.org", old)
    assert resolve(address, rotated) == ("2024-06-10", "ana@example.org")
    assert resolve(address, Signer([b"new-secret-0123456789abcdef"])) is None


def test_a_run_index_is_built_once_for_a_whole_mailbox() -> None:
    asked: list[str] = []

    def counting(slug: str) -> list[str]:
        asked.append(slug)
        return RUNS[slug]

    verp = Verp(SIGNER, RETURN_PATH, RUNS, counting)
    for key in RUNS["2024-06-10"] * 3:
        assert verp.decode(encode(RETURN_PATH, "2024-06-10", key, SIGNER)) is not None
    assert asked == ["2024-06-10"]


def test_only_the_return_path_and_its_extensions_count_as_it() -> None:
    assert returnpath.at_return_path("Bounces+xyz@Example.org", RETURN_PATH)
    assert returnpath.at_return_path("bounces@example.org", RETURN_PATH)
    assert not returnpath.at_return_path("bouncesx@example.org", RETURN_PATH)
    assert not returnpath.at_return_path("bounces@example.org.evil", RETURN_PATH)


# the envelope on the wire ---------------------------------------------------------------------

@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)


def site(tmp_path: Path, smtp: SmtpServer | None, return_path: str | None) -> Path:
    write_subscribers(tmp_path, DAEMON_SUBSCRIBERS)
    extra: dict[str, object] = {
        "subscribers": "subscribers.yaml",
        "digest": {"from": "Jobs Board <jobs@example.org>", "noun": "job"},
        "bounces": {"return_path": return_path} if return_path else {}}
    if smtp is not None:
        extra["smtp"] = {"host": "127.0.0.1", "port": smtp.port, "security": "none",
                         "timeout": 5}
    return make_site(tmp_path, dict(DAEMON_POSTS), extra=extra)


def send(cfg: Path) -> None:
    code, _out, err = run_cli(["--config", str(cfg), "send", "--as-of", MONDAY.isoformat()])
    assert code == 0, err


def test_each_message_goes_out_from_its_own_verp_address(tmp_path: Path,
                                                          smtp: SmtpServer) -> None:
    send(site(tmp_path, smtp, RETURN_PATH))
    received = smtp.received
    assert sorted(r.recipients[0] for r in received) == SERVED
    senders = {r.recipients[0]: r.sender for r in received}
    assert len(set(senders.values())) == len(SERVED)
    slug = MONDAY.strftime("%Y-%m-%d")
    for recipient, sender in senders.items():
        assert resolve_sent(sender, slug) == (slug, recipient)
    for r in received:  # the receiving MTA writes Return-Path, not us
        assert b"\nReturn-Path:" not in r.data and not r.data.startswith(b"Return-Path:")


def resolve_sent(sender: str, slug: str) -> tuple[str, str] | None:
    return decode(sender, SIGNER, return_path=RETURN_PATH, runs=[slug],
                  keys=lambda _slug: [k["email"] for k in DAEMON_SUBSCRIBERS])


def test_without_a_return_path_the_envelope_sender_is_the_from_address(
        tmp_path: Path, smtp: SmtpServer) -> None:
    send(site(tmp_path, smtp, None))
    assert {r.sender for r in smtp.received} == {"jobs@example.org"}


def test_the_outbox_records_the_verp_envelope_sender(tmp_path: Path) -> None:
    cfg = site(tmp_path, None, RETURN_PATH)
    send(cfg)
    box = mailbox.Maildir(tmp_path / "state" / "outbox", create=False)
    slug = MONDAY.strftime("%Y-%m-%d")
    found = {}
    for key in box.iterkeys():
        message = box[key]
        found[message["Delivered-To"]] = resolve_sent(message["Return-Path"], slug)
    assert found == {email: (slug, email) for email in SERVED}


def test_a_bounce_of_a_sent_digest_names_its_subscriber_and_run(tmp_path: Path) -> None:
    """End to end: send to the outbox, bounce one message back through the send log's
    own candidates (feedback/ours.py), get its subscriber and run."""
    cfg = site(tmp_path, None, RETURN_PATH)
    send(cfg)
    box = mailbox.Maildir(tmp_path / "state" / "outbox", create=False)
    sent = next(box[k] for k in box.iterkeys() if box[k]["Delivered-To"] == "ana@example.org")
    bounce = (f"From: MAILER-DAEMON@mx.example.net\nTo: {sent['Return-Path'].strip('<>')}\n"
              "Subject: Undelivered Mail Returned to Sender\nMessage-ID: <b1@mx.example.net>\n"
              "Content-Type: multipart/report; report-type=delivery-status; boundary=B\n\n"
              "--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx\n\n"
              "Final-Recipient: rfc822; forwarded@elsewhere.example\nAction: failed\n"
              "Status: 5.1.1\n\n--B--\n").encode()
    config = load_config(cfg)
    state = open_state(config)
    try:
        found = classify(bounce, ours(config, state))
    finally:
        state.close()
    assert [(f.kind, f.address, f.run) for f in found] == [
        ("hard", "ana@example.org", MONDAY.strftime("%Y-%m-%d"))]


def test_without_the_secret_send_refuses_before_making_a_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIGEST_SECRET")
    cfg = site(tmp_path, None, RETURN_PATH)
    code, _out, err = run_cli(["--config", str(cfg), "send", "--as-of", MONDAY.isoformat()])
    assert code == 2 and "DIGEST_SECRET" in err and "Traceback" not in err
    state = open_state(load_config(cfg))
    try:
        assert state.runs() == []
    finally:
        state.close()
