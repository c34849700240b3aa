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
from pathlib import Path

from helpers import SENT, edition, realistic_posts, renderer

from digest.edition.layout import Recipient
from digest.subscribers.tokens import Signer

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
