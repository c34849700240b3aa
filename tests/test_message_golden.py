"""Every digest message byte for byte as the code made it before the per-message work was cut
(fast paths for quoted-printable values, cached filters, wire-ready bytes): the SHA-256 of
each message for a spread of editions and recipients, hostile ones included, is kept in
tests/fixtures/golden/messages.json. A change to the bytes a subscriber receives fails here;
if it is meant, regenerate the file with `python tests/test_message_golden.py` and say why
in the commit.
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from helpers import SENT, edition, realistic_posts, renderer
from hypothesis import given
from hypothesis import strategies as st

from digest.delivery import smtpdata
from digest.edition.layout import DigestPost, DkimKey, Recipient
from digest.edition.message import qp, qp_encoded, qp_lines
from digest.errors import MessageError
from digest.posts.sanitize import sanitize
from digest.subscribers.tokens import Signer
from digest.util import crlf

GOLDEN = Path(__file__).parent / "fixtures" / "golden" / "messages.json"
BASE = "https://jobs.example.org/digest"

NAMES = [None, "Sam Okafor", "Zoë Ñúñez", "O'Brien, Pat", '"Quoted" Name', ".dot at start",
         "Ana\u202egnp.exe", "Eve\r\nBcc: victim@example.org", "=?utf-8?b?Zm9v?=", "a=b c=d",
         "trailing space ", "Ñ" * 40 + " " + "x" * 90, "x" * 150, "<script>alert(1)</script>",
         "Tab\there", "   ", "Łukasz Żółć-Źdźbło", "名前 テスト"]
EMAILS = ["sam@example.org", "o'brien+digest@example.co.uk", "a.b-c_d@sub.example.net",
          "x" * 60 + "@example.org", "amp&per=cent%@example.org", ".lead@example.org",
          "user{tag}|~^`!#$*?/@example.org"]


def recipients() -> list[Recipient]:
    signer = Signer([b"golden-secret-0123456789abcdef"])
    people = []
    for i, name in enumerate(NAMES):
        for j, email in enumerate(EMAILS):
            unsubscribe = preferences = None
            if (i + j) % 4 != 0:
                unsubscribe = f"{BASE}/unsubscribe/{signer.token(email, 'unsubscribe')}"
            if (i + j) % 3 != 0:
                preferences = f"{BASE}/preferences/{signer.token(email, 'preferences')}"
            if (i + j) % 7 == 3 and unsubscribe:
                unsubscribe = unsubscribe.replace("https:", "http:")
            if (i + j) % 11 == 5:  # a link longer than clip.LINK: a wide layout of its own
                preferences = f"{BASE}/preferences/{'p' * 600}"
            people.append(Recipient(email, name, unsubscribe, preferences))
    return people


def messages() -> dict[str, str]:
    """name of the case → SHA-256 of the message."""
    r = renderer()
    editions = {"followed": edition(),
                "everything": edition(followed=None),
                "twenty": edition(tuple(p for _ in range(2) for p in realistic_posts()),
                                  followed=None, archive_url=None)}
    found = {}
    for label, ed in editions.items():
        rendered = r.edition(ed)
        for n, person in enumerate(recipients()):
            raw = r.message(rendered, person, message_id=f"<d.{n}@example.org>", date=SENT)
            found[f"{label}/{n}"] = hashlib.sha256(raw).hexdigest()
    return found


def test_every_message_is_byte_identical_to_the_golden_copy() -> None:
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    del golden["tokens"]
    got = messages()
    assert got.keys() == golden.keys()
    changed = [case for case in golden if got[case] != golden[case]]
    assert changed == [], f"{len(changed)} of {len(golden)} messages changed: {changed[:10]}"


def test_the_tokens_in_links_are_those_made_before() -> None:
    signer = Signer([b"golden-secret-0123456789abcdef", b"older-secret-0123456789abcdef"])
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert golden["tokens"] == [signer.token(email, purpose) for email in EMAILS
                                for purpose in ("unsubscribe", "preferences")]


@given(st.text(min_size=1, max_size=80), st.sampled_from(["unsubscribe", "preferences"]),
       st.binary(min_size=16, max_size=80))
def test_a_token_from_the_kept_key_is_the_hmac_made_from_scratch(key: str, purpose: str,
                                                                 secret: bytes) -> None:
    signer = Signer([secret])
    assert signer.token(key, purpose) == Signer._mac(secret, purpose, key)
    assert signer.verify(signer.token(key, purpose), key, purpose)


# the shortcuts: the same bytes as the long way ---------------------------------------------

EDGES = ["..", ". ", " .", "a ", " a", "a\t", "=", "a=", "ab" * 35, "ab" * 35 + "c", "x" * 75,
         "x" * 76, "é" * 3, "a\x7f", "a~", "!<", ">?", "a b", "a  b", "https://x.org/p?a=b"]


@pytest.mark.parametrize("text", EDGES)
@pytest.mark.parametrize("joined", [True, False])
def test_qp_takes_its_shortcut_only_where_b2a_qp_gives_the_same(text: str, joined: bool) -> None:
    assert qp(text, joined=joined) == qp_encoded(text, joined=joined)


@given(st.text(st.characters(min_codepoint=0, max_codepoint=0x17f), max_size=90),
       st.booleans())
def test_qp_is_qp_encoded_for_any_text(text: str, joined: bool) -> None:
    assert qp(text, joined=joined) == qp_encoded(text, joined=joined)


@given(st.text(st.sampled_from(" !.=<>~a\t"), min_size=1, max_size=80), st.booleans())
def test_qp_is_qp_encoded_for_text_near_the_shortcut(text: str, joined: bool) -> None:
    assert qp(text, joined=joined) == qp_encoded(text, joined=joined)


_LINE = st.text(st.sampled_from(" \t.=aé~\x00\r"), max_size=170)


@given(st.lists(st.lists(_LINE, max_size=6).map("\n".join), min_size=1, max_size=4),
       st.booleans())
def test_qp_by_remembered_lines_is_qp_encoded(texts: list[str], joined: bool) -> None:
    """Body.encode's encoding line by line, lines seen before looked up (several texts
    sharing what they remember, as a send's bodies do): the same bytes as b2a_qp whole."""
    seen: dict[str, bytes] = {}
    for text in texts + texts:
        assert qp_lines(text, seen, joined=joined) == qp_encoded(text, joined=joined)


def dotty_posts() -> tuple[DigestPost, ...]:
    """Posts whose text puts "." at the start of lines, in both parts, and a lone "."."""
    date = SENT - timedelta(days=1)
    return tuple(DigestPost(title, f"https://jobs.example.org/{n}/", date - timedelta(hours=n),
                            ("union",), (), text, sanitize(f"<p>{text}</p>"))
                 for n, (title, text) in enumerate([
                     (".NET developer", ". " * 40 + ".net .NET\n.\n.. ..."),
                     ("Dots", "." + "x" * 70 + " ." + "y" * 70 + "\n." + " ." * 50),
                     (".", ".")]))


@pytest.mark.parametrize("posts", [None, "dotty"])
def test_messages_go_on_the_wire_as_the_scanning_path_would_send_them(posts: str | None) -> None:
    r = renderer()
    rendered = r.edition(edition(dotty_posts()) if posts else edition())
    for n, person in enumerate(recipients()):
        raw = r.message(rendered, person, message_id=f"<d.{n}@example.org>", date=SENT)
        assert isinstance(raw, crlf.CrlfBytes)
        assert crlf.is_clean(raw)
        assert smtpdata.wire_bytes(raw) == smtpdata.wire_bytes(bytes(raw)), person
        dots = raw.startswith(b".") or raw.find(b"\r\n.") >= 0
        assert type(raw) is (crlf.CrlfBytes if dots else crlf.DotFreeBytes)
    assert posts is None or dots  # the dotty posts do start lines with "."


def test_a_dkim_signed_message_stays_marked_and_goes_on_the_wire_as_scanned() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    r = renderer(DkimKey("example.org", "digest2024", pem))
    for posts in (None, dotty_posts()):
        rendered = r.edition(edition(posts))
        raw = r.message(rendered, recipients()[3], message_id="<d.1@example.org>", date=SENT)
        assert raw.startswith(b"DKIM-Signature:")
        assert type(raw) is (crlf.CrlfBytes if posts else crlf.DotFreeBytes)
        assert smtpdata.wire_bytes(raw) == smtpdata.wire_bytes(bytes(raw))


def test_a_bare_line_end_in_a_piece_is_refused_not_marked_clean() -> None:
    r = renderer()
    rendered = r.edition(edition())
    with pytest.raises(MessageError, match="bare CR or LF"):
        rendered.skeleton.assemble(to=b"To: a@example.org\n", date=b"", message_id=b"",
                                   unsubscribe=b"", text=[b""], html=[b""])
    with pytest.raises(MessageError, match="bare CR or LF"):  # a value: odd pieces
        rendered.skeleton.assemble(to=b"", date=b"", message_id=b"", unsubscribe=b"",
                                   text=[b"a=\r\n", b"x\ry", b"b"], html=[b""])
    for bad in (b"a\rb", b"a\nb", b"\r", b"\n\r", b"a\r\r\n"):
        assert not crlf.is_clean(bad)
        with pytest.raises(ValueError):
            crlf.clean(bad)
    assert crlf.is_clean(b"a\r\nb\r\n")


def test_unmarked_bytes_with_a_bare_line_end_still_take_aiosmtplibs_path() -> None:
    assert smtpdata.wire_bytes(b"a\nb\r\n") is None
    assert smtpdata.wire_bytes(b"a\rb\r\n") is None
    assert smtpdata.wire_bytes(b".a\r\n.b\r\n") == b"..a\r\n..b\r\n.\r\n"


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    out = messages()
    signer = Signer([b"golden-secret-0123456789abcdef", b"older-secret-0123456789abcdef"])
    tokens = [signer.token(email, purpose) for email in EMAILS
              for purpose in ("unsubscribe", "preferences")]
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps({**out, "tokens": tokens}, indent=0, sort_keys=True) + "\n",
                      encoding="utf-8")
    print(f"{len(out)} messages written to {GOLDEN}")
