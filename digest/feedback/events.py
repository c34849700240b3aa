"""One piece of feedback about one address, whatever it came from (a DSN, an ARF report, a
reply to the List-Unsubscribe mailto:, a relay's webhook, a 5xx at SMTP time): the classifiers
produce these, feedback/apply.py turns them into suppressions by one set of rules."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

# hard: a permanent failure (5.x.x), suppressed at once; soft: a transient one (4.x.x),
# suppressed after several digests in a row; complaint: marked as spam (ARF, a relay's
# complaint event), suppressed at once; unsubscribe: a reply to the List-Unsubscribe mailto:
Kind = Literal["hard", "soft", "complaint", "unsubscribe"]
# what the feedback was read from
Origin = Literal["dsn", "arf", "mailto", "smtp", "ses", "mailgun", "postmark"]

EVIDENCE_CHARS = 2000  # what is kept of a report for the record, at most
# an enhanced status code (RFC 3463), class.subject.detail, wherever a report or reply has it
ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
# 5.7.x: the receiver's policy about the sender (reputation, PTR, DMARC), not a dead address
POLICY = re.compile(r"\b5\.7\.\d{1,3}\b")
# a full mailbox, in the words MTAs use when a report gives no telling status code
FULL = re.compile(r"mailbox (?:is )?full|over ?quota|quota exceeded|exceeded (?:the )?(?:storage"
                  r" )?quota|insufficient (?:system )?storage|retry timeout exceeded",
                  re.IGNORECASE)


def bounce_kind(status: str | None, diagnostic: str, *, permanent: bool) -> Kind:
    """Hard or soft by one rule for a DSN, a plain-text notice and a reply at SMTP time, so
    the same refusal suppresses the same way whichever way it reached us.

    *status* is the enhanced status code (RFC 3463) if there is one, *permanent* what the
    source says without it (a 5xx reply, a notice's "permanent" wording). Soft: 4.x.x; a
    5.7.x refusal (the receiver's policy about us, not the address) and 5.2.2 or a full
    mailbox in words (the address lives). Hard: 5.1.x (no such address) and other 5.x.x.
    """
    status = status or ""
    if status.startswith("4") or POLICY.search(status) or status.startswith("5.2.2"):
        return "soft"
    if status.startswith("5.1."):
        return "hard"
    if FULL.search(diagnostic):
        return "soft"
    if status.startswith("5"):
        return "hard"
    return "hard" if permanent else "soft"


@dataclass(frozen=True)
class Feedback:
    """*address* is the subscriber's address as we sent to it (from the signed return path
    when there is one, else from the report); *run* the digest's slug when known."""

    kind: Kind
    address: str
    origin: Origin
    ident: str  # unique per report and recipient: the same report read twice counts once
    status: str | None = None  # the enhanced status code, e.g. "5.1.1"
    diagnostic: str = ""  # the remote server's words, on one line
    run: str | None = None  # the digest's slug, e.g. "2024-06-03"
    evidence: str = ""  # an excerpt of the report (at most EVIDENCE_CHARS)
