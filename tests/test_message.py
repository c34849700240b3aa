"""The digest as a message: read back by the stdlib parser, signed by dkimpy, scored by
SpamAssassin. Nothing is mocked; the edition is ten realistic job posts.
"""

from __future__ import annotations

import base64
import binascii
import re
import shutil
import subprocess
import time
from datetime import datetime, timedelta
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from zoneinfo import ZoneInfo

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from digest.config import Site
from digest.edition.layout import (
    DigestPost,
    DkimKey,
    Edition,
    LaidOutEdition,
    Layout,
    MailSettings,
    MessageError,
    Recipient,
    default_list_id,
)
from digest.edition.message import Body, qp
from digest.posts.sanitize import sanitize

TZ = ZoneInfo("America/New_York")
SITE = Site(url="https://jobs.example.org", title="Example Jobs Board",
            timezone="America/New_York", lang="en-US")
SENT = datetime(2024, 6, 10, 9, 0, 5, tzinfo=TZ)
MESSAGE_ID = "<d2024w24.3f9a1b2c@example.org>"
ZOE = Recipient("zoe@example.net", "Zoë Ñúñez",
                "https://jobs.example.org/digest/unsubscribe?t=Qm9vbXNfYmxhaF9ibGFo",
                "https://jobs.example.org/digest/preferences?t=UHJlZnNfYmxhaF9ibGFo")
SAM = Recipient("sam.okafor@example.com", "Sam Okafor")

JOBS = [  # title, tags, first paragraph (Markdown-ish HTML as the site renders it)
    ("Director of Data & Analytics, Teachers' Union", ("union", "analytics", "executive"),
     "The Teachers' Union is hiring a <strong>Director of Data &amp; Analytics</strong> to lead "
     "a team of four. You will own the member database, build dashboards for organizers and "
     "report to the Executive Director."),
    ("Organizing Data Manager", ("union", "data-management"),
     "Keep our membership records accurate and help organizers find the workers they need to "
     "talk to. Experience with a CRM such as Action Network or EveryAction is a plus."),
    ("Campaign Analyst, Housing for All", ("campaigns", "analytics"),
     "Model turnout and persuasion targets for a statewide ballot measure on tenant protections. "
     "You will work closely with the field and digital teams through November."),
    ("Voter File Engineer", ("engineering", "campaigns"),
     "Build and maintain the pipelines that load state voter files into our warehouse. We use "
     "Python, dbt and PostgreSQL; see <a href=\"https://jobs.example.org/stack/\">our stack</a>."),
    ("Senior Data Scientist, Public Health Coalition", ("analytics", "research"),
     "Design and analyse surveys of community health workers, and turn the results into briefs "
     "that partner organisations can use in their advocacy."),
    ("Membership Database Administrator", ("union", "data-management"),
     "Administer the membership system for a union of 40,000 nurses: imports from employers, "
     "dues reconciliation and access for local officers."),
    ("Analista de datos, Campaña por la vivienda", ("analytics", "données", "campaigns"),
     "Buscamos una persona bilingüe para analizar datos de encuestas y de contacto con "
     "votantes en comunidades de habla hispana."),
    ("IT Support Lead", ("it", "operations"),
     "Look after laptops, accounts and the office network for a staff of sixty, and help "
     "choose the tools we adopt next year."),
    ("Research Fellow, Labor Policy Institute", ("research", "union"),
     "A one-year fellowship studying collective bargaining outcomes in the public sector, "
     "with a stipend and mentoring from senior researchers."),
    ("Digital Organizer", ("campaigns", "digital"),
     "Plan and send our email and text programmes, grow our supporter list and report on what "
     "works. Spanish is a plus."),
]


def realistic_posts() -> tuple[DigestPost, ...]:
    posts = []
    for i, (title, tags, para) in enumerate(JOBS):
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        date = datetime(2024, 6, 9, 11, tzinfo=TZ) - timedelta(hours=15 * i)
        plain = re.sub(r"<[^>]+>", "", para).replace("&amp;", "&")
        posts.append(DigestPost(title, f"https://jobs.example.org/{date:%Y/%m/%d}/{slug}/", date,
                                tags, (), plain, sanitize(f"<p>{para}</p>")))
    return tuple(posts)


def edition(posts: tuple[DigestPost, ...] | None = None,
            followed: tuple[str, ...] | None = ("union", "analytics"),
            archive_url: str | None = "https://jobs.example.org/digest/2024-06-10/") -> Edition:
    chosen = posts or realistic_posts()
    if followed is not None and posts is None:
        chosen = tuple(p for p in chosen if set(followed) & set(p.tags))
    return Edition(datetime(2024, 6, 3, 9, tzinfo=TZ), datetime(2024, 6, 10, 9, tzinfo=TZ),
                   chosen, followed, archive_url)


def renderer(dkim_key: DkimKey | None = None, sender: str = "Example Jobs Board <jobs@example.org>"
             ) -> Layout:
    return Layout(MailSettings(SITE, sender, default_list_id(sender, SITE),
                                 "unsubscribe@example.org", None, ("job", "jobs"), dkim_key))


def build(recipient: Recipient = ZOE, ed: Edition | None = None,
          r: Layout | None = None) -> tuple[bytes, Layout, LaidOutEdition]:
    r = r or renderer()
    rendered = r.edition(ed or edition())
    return r.message(rendered, recipient, message_id=MESSAGE_ID, date=SENT), r, rendered


def parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def defects(message: EmailMessage) -> list[object]:
    return [d for part in message.walk() for d in part.defects]


# read back ----------------------------------------------------------------------------------

def test_the_stdlib_parser_reads_back_every_header_and_both_bodies_exactly() -> None:
    raw, r, rendered = build()
    message = parse(raw)
    assert defects(message) == []
    assert message["From"] == "Example Jobs Board <jobs@example.org>"
    assert message["To"].addresses[0].display_name == "Zoë Ñúñez"
    assert message["To"].addresses[0].addr_spec == "zoe@example.net"
    assert message["Subject"] == rendered.subject == "7 new jobs in union, analytics"
    assert message["Date"].datetime == SENT
    assert message["Message-ID"] == MESSAGE_ID
    assert message["MIME-Version"] == "1.0"
    assert message["List-Id"] == "Example Jobs Board <digest.example.org>"
    assert message["List-Unsubscribe"] == (f"<{ZOE.unsubscribe_url}>, "
                                           "<mailto:unsubscribe@example.org?subject=unsubscribe>")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Precedence"] == "bulk"
    assert message.get_content_type() == "multipart/alternative"
    text, page = r.personalise(rendered, ZOE)
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert [p.get_content_charset() for p in parts] == ["utf-8", "utf-8"]
    # MIME text is canonically CRLF; the parser hands it back so
    assert parts[0].get_content().replace("\r\n", "\n") == text
    assert parts[1].get_content().replace("\r\n", "\n") == page


def test_lines_end_in_crlf_fit_998_octets_and_encoded_lines_fit_76() -> None:
    long_name = "Ñ" * 40 + " " + "x" * 90
    raw, _r, _rendered = build(Recipient("a@example.net", long_name, ZOE.unsubscribe_url, None))
    assert raw.endswith(b"\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    lines = raw.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    body = raw.partition(b"\r\n\r\n")[2]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    assert all(byte < 128 for byte in raw)


@pytest.mark.parametrize("name", ["Zoë Ñúñez", "Données & 数据", "李小龙", "José María",
                                  'Smith, "JJ" <jj@evil.example>', "=?utf-8?q?Mallory?=",
                                  "  spaced   out  ", "back\\slash", "O'Brien (work)"])
def test_names_round_trip_through_the_to_header(name: str) -> None:
    raw, _r, _rendered = build(Recipient("someone@example.net", name))
    to = parse(raw)["To"]
    assert len(to.addresses) == 1
    assert to.addresses[0].addr_spec == "someone@example.net"
    assert to.addresses[0].display_name == " ".join(name.split())


def test_a_long_name_is_split_into_encoded_words_that_join_back_exactly() -> None:
    name = "Ñandú " + "数据" * 30 + " de la Peña"
    raw, _r, _rendered = build(Recipient("someone@example.net", name))
    head = raw.partition(b"\r\n\r\n")[0].decode("ascii")
    to = re.search(r"^To: (.*?)\r\n(?! )", head, re.M | re.S)
    assert to
    assert all(len(word) <= 75 for word in re.findall(r"=\?[^?]+\?b\?[^?]*\?=", to.group(1)))
    # RFC 2047 decoders join adjacent encoded words (the stdlib's new parser adds a space
    # between them in a phrase, for its own output too; decode_header follows the RFC)
    assert str(make_header(decode_header(to.group(1)))) == f"{name} <someone@example.net>"
    assert parse(raw)["To"].addresses[0].addr_spec == "someone@example.net"


def test_a_non_ascii_subject_is_encoded_and_reads_back() -> None:
    posts = tuple(p for p in realistic_posts() if "données" in p.tags)
    ed = edition(posts, followed=("données", "数据"))
    raw, _r, rendered = build(ed=ed)
    assert rendered.subject == "1 new job in données"
    assert b"=?utf-8?" in raw.partition(b"\r\n\r\n")[0]
    assert parse(raw)["Subject"] == "1 new job in données"


def test_a_subject_that_looks_like_an_encoded_word_reads_back_as_written() -> None:
    tag = "=?utf-8?q?FREE_MONEY?="
    posts = (DigestPost("Analyst", "https://jobs.example.org/a/", SENT, (tag,), (), "x", "x"),)
    raw, _r, rendered = build(ed=edition(posts, followed=(tag,)))
    assert parse(raw)["Subject"] == rendered.subject == f"1 new job in {tag}"


def test_a_non_ascii_sender_name_is_encoded_and_reads_back() -> None:
    raw, _r, _rendered = build(r=renderer(sender="Bolsa de Trabajo Ñandú <jobs@example.org>"))
    sender = parse(raw)["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == ("Bolsa de Trabajo Ñandú",
                                                        "jobs@example.org")


def test_hostile_titles_tags_and_names_cannot_add_headers_or_break_the_structure() -> None:
    evil = "Job\r\nBcc: victim@example.com\r\n\r\n--=_digest_\r\nContent-Type: text/html\x00"
    posts = (DigestPost(evil, "https://jobs.example.org/x/\r\nX-Evil: 1", SENT,
                        (evil, "ok\nX-Injected: yes"), ("cat\rX-Cat: 1",), evil,
                        sanitize(f"<p>{evil}</p>")),)
    ed = Edition(SENT - timedelta(days=7), SENT, posts, (evil, "ok\nX-Injected: yes"), None)
    raw, r, rendered = build(Recipient("a@example.net", "Eve\r\nBcc: victim@example.com\x00"),
                             ed)
    message = parse(raw)
    assert defects(message) == []
    assert sorted(message.keys()) == sorted([
        "From", "Subject", "To", "Date", "Message-ID", "List-Unsubscribe", "MIME-Version",
        "Content-Type", "Content-Language", "List-Id", "Auto-Submitted", "Precedence"])
    assert [a.addr_spec for a in message["To"].addresses] == ["a@example.net"]
    assert "\n" not in message["Subject"]
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    text, _page = r.personalise(rendered, Recipient("a@example.net", "Eve Bcc"))
    assert "Job Bcc: victim@example.com --=_digest_ Content-Type: text/html" in text
    assert parts[0].get_content().count("--=_digest_") == text.count("--=_digest_")


@pytest.mark.parametrize("prefix", ["a", "é", "a é", "=", " "])
def test_a_gap_after_a_full_encoded_line_keeps_every_line_within_76(prefix: str) -> None:
    gap = re.compile(r"@@(\w+)@@")
    for length in range(60, 160):
        text = (prefix * 200)[:length] + "@@name@@" + (prefix * 200)[:length] + "\n@@name@@"
        filled = Body.encode(text, gap).fill({"name": qp("Zoë " * 30, joined=True)})
        assert max(len(line) for line in filled.split(b"\r\n")) <= 76, length
        decoded = binascii.a2b_qp(filled).replace(b"\r\n", b"\n").decode("utf-8")
        assert decoded == text.replace("@@name@@", "Zoë " * 30), length


# unsubscribe headers ------------------------------------------------------------------------

def test_without_an_unsubscribe_page_only_the_mailto_is_offered_and_no_one_click() -> None:
    message = parse(build(SAM)[0])
    assert message["List-Unsubscribe"] == "<mailto:unsubscribe@example.org?subject=unsubscribe>"
    assert "List-Unsubscribe-Post" not in message
    assert message["To"] == "Sam Okafor <sam.okafor@example.com>"


def test_a_plain_http_unsubscribe_page_gets_no_one_click_header() -> None:
    raw = build(Recipient("a@example.net", None, "http://127.0.0.1:8080/u?t=x", None))[0]
    message = parse(raw)
    assert message["List-Unsubscribe"].startswith("<http://127.0.0.1:8080/u?t=x>, <mailto:")
    assert "List-Unsubscribe-Post" not in message


@pytest.mark.parametrize("recipient", [
    Recipient("a@example.net\r\nBcc: x@example.com"),
    Recipient("a b@example.net"),
    Recipient("<a@example.net>"),
    Recipient("zoë@example.net"),
    Recipient("a@example.net", unsubscribe_url="https://x.example/\r\nX-Evil: 1"),
    Recipient("a@example.net", unsubscribe_url="javascript:alert(1)"),
    Recipient("a@example.net", preferences_url="https://x.example/a>b"),
])
def test_addresses_and_links_that_would_break_a_header_are_refused(recipient: Recipient) -> None:
    with pytest.raises(MessageError):
        build(recipient)


@pytest.mark.parametrize("message_id", ["d2024@example.org", "<no-at-sign>",
                                        "<a@example.org>\r\nX-Evil: 1", "<a b@example.org>"])
def test_message_ids_that_are_not_angle_bracketed_ids_are_refused(message_id: str) -> None:
    r = renderer()
    with pytest.raises(MessageError):
        r.message(r.edition(edition()), ZOE, message_id=message_id, date=SENT)


def test_a_date_without_a_timezone_is_refused() -> None:
    r = renderer()
    with pytest.raises(MessageError, match="timezone"):
        r.message(r.edition(edition()), ZOE, message_id=MESSAGE_ID, date=datetime(2024, 6, 10))


# DKIM ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dkim_key() -> tuple[DkimKey, bytes]:
    """A fresh 2048-bit key and the TXT record that publishes it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return DkimKey("example.org", "digest2024", pem), b"v=DKIM1; k=rsa; p=" + \
        base64.b64encode(public)


def dns_for(record: bytes):  # type: ignore[no-untyped-def]
    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == b"digest2024._domainkey.example.org." else None
    return dnsfunc


def test_a_dkim_signed_digest_verifies_and_covers_the_list_headers(
        dkim_key: tuple[DkimKey, bytes]) -> None:
    key, record = dkim_key
    raw = build(r=renderer(key))[0]
    assert raw.startswith(b"DKIM-Signature: ")
    assert dkim.verify(raw, dnsfunc=dns_for(record))
    signature = parse(raw)["DKIM-Signature"]
    signed = re.search(r"h=([^;]+)", signature.replace(" ", "")).group(1).split(":")
    assert {"from", "to", "subject", "date", "message-id", "list-id", "list-unsubscribe",
            "list-unsubscribe-post", "mime-version", "content-type"} <= set(signed)


def test_a_changed_header_or_body_breaks_the_dkim_signature(
        dkim_key: tuple[DkimKey, bytes]) -> None:
    key, record = dkim_key
    raw = build(r=renderer(key))[0]
    assert not dkim.verify(raw.replace(b"Subject: 7 new", b"Subject: 8 new"),
                           dnsfunc=dns_for(record))
    assert not dkim.verify(raw.replace(b"Teachers", b"Preachers"), dnsfunc=dns_for(record))
    one_click = b"Precedence: bulk\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    no_url = build(SAM, r=renderer(key))[0]
    assert dkim.verify(no_url, dnsfunc=dns_for(record))
    assert not dkim.verify(no_url.replace(b"Precedence: bulk\r\n", one_click),
                           dnsfunc=dns_for(record))


def test_a_key_that_is_not_pem_rsa_is_refused_when_the_renderer_is_made(
        dkim_key: tuple[DkimKey, bytes]) -> None:
    with pytest.raises(MessageError, match=r"digest2024\._domainkey\.example\.org"):
        renderer(DkimKey("example.org", "digest2024", b"not a key"))
    with pytest.raises(MessageError, match="DNS name"):
        renderer(DkimKey("exämple.org", "digest 2024", dkim_key[0].private_key))


# SpamAssassin -------------------------------------------------------------------------------

def spamassassin(raw: bytes, tmp_path: Path) -> tuple[float, list[str]]:
    """Score and rules of a local-only SpamAssassin run (no network tests, no Bayes)."""
    binary = shutil.which("spamassassin")
    if binary is None:
        pytest.skip("spamassassin is not installed (Debian: apt-get install spamassassin)")
    prefs = tmp_path / "user_prefs"
    prefs.write_text("use_bayes 0\n", encoding="utf-8")
    result = subprocess.run([binary, "-L", "-t", "-p", str(prefs)], input=raw,
                            capture_output=True, timeout=120, check=False)
    report = result.stdout.decode("utf-8", "replace")
    status = re.search(r"^X-Spam-Status: \w+, score=(-?[\d.]+)", report, re.M)
    assert status, report[-2000:]
    rules = re.findall(r"^\s*(-?\d+\.\d+)\s+([A-Z0-9_]+)\s", report.partition(
        "Content analysis details:")[2], re.M)
    return float(status.group(1)), [f"{name} {score}" for score, name in rules]


@pytest.mark.parametrize("recipient", [ZOE, SAM], ids=["with-web-front", "mailto-only"])
def test_spamassassin_scores_a_realistic_digest_at_zero_or_below(
        recipient: Recipient, tmp_path: Path) -> None:
    raw = build(recipient, edition(followed=None))[0]
    assert len(message_from_bytes(raw).get_payload()) == 2  # ten posts, both parts
    score, rules = spamassassin(raw, tmp_path)
    assert score <= 0, rules
    # and not by luck: the list headers' bonus must not be hiding a content rule
    assert [r for r in rules if float(r.split()[1]) > 0.1] == [], rules


# speed --------------------------------------------------------------------------------------

def test_one_core_assembles_thousands_of_messages_a_second() -> None:
    posts = tuple(p for _ in range(2) for p in realistic_posts())  # 20 posts
    r = renderer()
    rendered = r.edition(edition(posts, followed=None))
    people = [Recipient(f"user{i}@example.net", ["Zoë Ñúñez", f"User {i}", None][i % 3],
                        f"https://jobs.example.org/u?t={i:022d}",
                        f"https://jobs.example.org/p?t={i:022d}") for i in range(2000)]
    for person in people[:3]:
        r.message(rendered, person, message_id="<warm@example.org>", date=SENT)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for i, person in enumerate(people):
            r.message(rendered, person, message_id=f"<d.{i}@example.org>", date=SENT)
        best = min(best, time.perf_counter() - start)
    assert len(people) / best >= 5000, f"{len(people) / best:.0f} messages/s"
