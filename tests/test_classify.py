"""The bounce/complaint classifier (feedback/classify.py) on fixtures shaped as postfix, Exim,
qmail, sendmail, Gmail, Microsoft 365, Outlook.com and Yahoo send them (tests/fixtures/bounces),
with real VERP tokens (delivery/returnpath.py), and on what must be left alone: delay
warnings, auto-replies, backscatter, DMARC forensic reports, replies, garbage."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.delivery.compose import message_id
from digest.delivery.returnpath import Verp, encode
from digest.feedback.classify import Ours, classify, examine
from digest.feedback.events import EVIDENCE_CHARS, Feedback
from digest.subscribers.tokens import Signer

FIXTURES = Path(__file__).parent / "fixtures" / "bounces"
SIGNER = Signer([b"classify-test-secret-0123456789"])
RETURN_PATH = "bounces@example.org"
RUN = "2024-06-10"
MEMBERS = ["gone@example.net", "slow@example.net", "nobody-here@example.com",
           "no.such.user@gmail.com", "left.company@contoso.com", "closed.account@yahoo.com",
           "annoyed@yahoo.com", "complainer@outlook.com", "unknown.user@example.net",
           "retired.prof@old.example.edu", "rita@example.com", "ana@example.org"]
VERP = Verp(SIGNER, RETURN_PATH, [RUN, "2024-06-03"], lambda slug: MEMBERS)
OURS = Ours(("Jobs Board <jobs@example.org>",), RETURN_PATH, "jobs@example.org", VERP.decode)
UNSIGNED = Ours(("Jobs Board <jobs@example.org>",), RETURN_PATH, "jobs@example.org")


def load(name: str, recipient: str = "", *, verp: str | None = None) -> bytes:
    """The fixture with its placeholders filled for *recipient* in the test run."""
    raw = (FIXTURES / name).read_bytes()
    address = verp or (encode(RETURN_PATH, RUN, recipient, SIGNER) if recipient
                       else RETURN_PATH)
    raw = raw.replace(b"@@VERP@@", address.encode())
    return raw.replace(b"@@MID@@", message_id(RUN, recipient, "example.org").encode())


SIGNED = [  # fixture, recipient; kind, status: each read through its VERP token
    ("postfix-dsn-550-5.1.1.eml", "gone@example.net", "hard", "5.1.1"),
    ("exim-text-550-5.1.1.eml", "nobody-here@example.com", "hard", "5.1.1"),
    ("gmail-dsn-550-5.1.1.eml", "no.such.user@gmail.com", "hard", "5.1.1"),
    ("office365-dsn-550-5.1.10.eml", "left.company@contoso.com", "hard", "5.1.10"),
    ("yahoo-text-554-no-account.eml", "closed.account@yahoo.com", "hard", None),
    ("qmail-text-550-5.1.1.eml", "unknown.user@example.net", "hard", "5.1.1"),
    ("sendmail-text-550-user-unknown.eml", "retired.prof@old.example.edu", "hard", None),
    ("yahoo-arf-abuse.eml", "annoyed@yahoo.com", "complaint", None),
    ("outlook-jmrp-complaint.eml", "complainer@outlook.com", "complaint", None),
]


@pytest.mark.parametrize(("name", "recipient", "kind", "status"), SIGNED)
def test_each_provider_s_report_names_the_subscriber_and_run_of_its_token(
        name: str, recipient: str, kind: str, status: str | None) -> None:
    found = classify(load(name, recipient), OURS)
    assert [(f.kind, f.address, f.status, f.run) for f in found] == [
        (kind, recipient, status, RUN)]
    assert "signed return path" in found[0].evidence


@pytest.mark.parametrize(("name", "recipient", "kind", "status"), SIGNED)
def test_without_verp_the_report_s_own_fields_name_the_address(
        name: str, recipient: str, kind: str, status: str | None) -> None:
    """No secret (or a relay rewrote the envelope): our Message-ID makes the report ours,
    its recipient fields say whom, and the Message-ID's hash still gives the run."""
    found = classify(load(name, recipient, verp="jobs@example.org"), UNSIGNED)
    assert [(f.kind, f.address, f.status, f.run) for f in found] == [
        (kind, recipient, status, RUN)]


def test_a_dsn_names_the_reporting_mta_and_the_diagnostic_as_evidence() -> None:
    [found] = classify(load("postfix-dsn-550-5.1.1.eml", "gone@example.net"), OURS)
    assert found.origin == "dsn"
    assert "User unknown in virtual mailbox table" in found.diagnostic
    assert "Reporting-MTA: dns; mx.example.net" in found.evidence
    assert len(found.evidence) <= EVIDENCE_CHARS


def test_two_recipients_in_one_dsn_are_two_reports_each_by_its_status() -> None:
    found = classify(load("exim-dsn-two-recipients-no-verp.eml"), UNSIGNED)
    assert sorted((f.kind, f.address, f.status) for f in found) == [
        ("hard", "first@example.com", "5.1.1"), ("soft", "second@example.com", "5.2.2")]
    assert len({f.ident for f in found}) == 2


def test_with_verp_on_a_hard_bounce_without_a_token_counts_only_as_soft() -> None:
    """Anyone can mail the bounces address: a forged DSN naming a subscriber must not
    unsubscribe them at once. With VERP on, our real bounces carry a token."""
    found = classify(load("exim-dsn-two-recipients-no-verp.eml"), OURS)
    assert sorted((f.kind, f.address) for f in found) == [
        ("soft", "first@example.com"), ("soft", "second@example.com")]
    assert any("no valid return-path token: counted as soft" in f.evidence for f in found)


def test_the_token_wins_over_a_forwarded_recipient_in_the_report() -> None:
    raw = load("postfix-dsn-550-5.1.1.eml", verp=encode(RETURN_PATH, RUN, "ana@example.org",
                                                        SIGNER))
    assert [(f.address, f.run) for f in classify(raw, OURS)] == [("ana@example.org", RUN)]


def test_a_forged_token_names_nobody() -> None:
    """A token that does not verify counts as none: the address is the report's, and a
    report naming none of ours is ignored."""
    good = encode(RETURN_PATH, RUN, "ana@example.org", SIGNER)
    forged = good[:12] + ("a" if good[12] != "a" else "b") + good[13:]
    raw = load("postfix-dsn-550-5.1.1.eml", "gone@example.net", verp=forged)
    assert [(f.address, f.run) for f in classify(raw, OURS)] == [("gone@example.net", RUN)]
    assert "signed return path" not in classify(raw, OURS)[0].evidence
    backscatter = load("backscatter-not-ours.eml").replace(b"jobs@example.org", forged.encode())
    assert [f.address for f in classify(backscatter, OURS)] != ["ana@example.org"]


@pytest.mark.parametrize(("name", "why"), [
    ("postfix-dsn-delayed-4.4.1.eml", "action: delayed"),
    ("autoreply-out-of-office.eml", "auto-reply"),
    ("backscatter-not-ours.eml", "backscatter"),
    ("dmarc-forensic-auth-failure.eml", "auth-failure"),
    ("reply-thanks.eml", "not a bounce"),
])
def test_what_is_not_feedback_is_left_alone(name: str, why: str) -> None:
    verdict = examine(load(name, "slow@example.net"), OURS)
    assert verdict.items == []
    assert why in verdict.why


def test_a_plain_text_delay_warning_is_no_bounce() -> None:
    raw = load("qmail-text-550-5.1.1.eml", "unknown.user@example.net").replace(
        b"This is a permanent error; I've given up.",
        b"Delivery has been delayed; I will keep trying.")
    assert examine(raw, OURS).why == "delay warning (plain text)"


def test_an_arf_opt_out_is_an_unsubscribe_of_the_original_recipient() -> None:
    found = classify(load("arf-opt-out.eml", "leaving@isp.example.com"), OURS)
    assert [(f.kind, f.address, f.origin) for f in found] == [
        ("unsubscribe", "leaving@isp.example.com", "arf")]


def test_a_mail_to_the_unsubscribe_mailto_unsubscribes_its_sender() -> None:
    found = classify(load("unsubscribe-reply.eml"), OURS)
    assert [(f.kind, f.address, f.origin) for f in found] == [
        ("unsubscribe", "leaving.reader@example.net", "mailto")]
    # to an address of its own, no subject is needed; elsewhere, nothing
    raw = load("reply-thanks.eml")
    assert classify(raw, Ours(OURS.senders, RETURN_PATH, "jobs@example.org")) == []
    assert classify(raw.replace(b"To: jobs@example.org", b"To: leave@example.org"),
                    Ours(OURS.senders, RETURN_PATH, "leave@example.org"))[0].kind \
        == "unsubscribe"


def test_the_same_report_read_twice_has_the_same_ident() -> None:
    raw = load("gmail-dsn-550-5.1.1.eml", "no.such.user@gmail.com")
    assert [f.ident for f in classify(raw, OURS)] == [f.ident for f in classify(raw, OURS)]
    no_id = raw.replace(b"Message-ID: <6666e1a9", b"X-Was: <6666e1a9")
    assert classify(no_id, OURS)[0].ident == classify(no_id, OURS)[0].ident
    assert classify(no_id, OURS)[0].ident != classify(raw, OURS)[0].ident


# bounds and hostile input ---------------------------------------------------------------

def timed(raw: bytes) -> tuple[list[Feedback], float]:
    start = time.perf_counter()
    found = classify(raw, OURS)
    return found, time.perf_counter() - start


def test_huge_and_garbage_input_is_bounded_and_never_raises() -> None:
    rng = random.Random(14)
    cases = [
        b"", b"\x00" * 1000, bytes(rng.randrange(256) for _ in range(200_000)),
        b"Subject: " + b"x" * 5_000_000 + b"\n\nbody",  # one 5 MB header line
        b"From: MAILER-DAEMON@x.example\nSubject: failure notice\n\n"
        + b"<a@b.example>:\n" * 200_000,
        b"Content-Type: multipart/mixed; boundary=b\n\n" + b"--b\nContent-Type: "
        b"message/delivery-status\n\nAction: failed\nFinal-Recipient: rfc822; a@b.example\n\n"
        * 20_000,
        b"Content-Type: multipart/mixed; boundary=b\n\n" + b"--b\nContent-Type: multipart/mixed;"
        b" boundary=b\n\n" * 5_000,
    ]
    for raw in cases:
        found, seconds = timed(raw)
        assert seconds < 5, (raw[:60], seconds)
        assert all(len(f.evidence) <= EVIDENCE_CHARS for f in found)
        assert len(found) <= 50


FIXTURE_BYTES = [load(p.name, "gone@example.net") for p in sorted(FIXTURES.glob("*.eml"))]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FIXTURE_BYTES), st.lists(st.tuples(
    st.integers(0, 6000), st.integers(0, 200), st.binary(max_size=40)), max_size=6))
def test_mangled_reports_never_raise(base: bytes, edits: list[tuple[int, int, bytes]]) -> None:
    raw = bytearray(base)
    for at, cut, insert in edits:
        at = at % (len(raw) + 1)
        raw[at:at + cut] = insert
    verdict = examine(bytes(raw), OURS)
    for item in verdict.items:
        assert item.kind in ("hard", "soft", "complaint", "unsubscribe")
        assert "@" in item.address and len(item.evidence) <= EVIDENCE_CHARS
