"""One message from the bounces mailbox → the feedback it carries (pure: bytes in, no I/O).

What counts, in this order:

- A DSN (RFC 3464): each recipient block with `Action: failed` is a bounce, hard for a
  5.x.x status and soft for a 4.x.x one (the MTA gave up retrying). `delayed`, `delivered`,
  `relayed` and `expanded` are no bounce at all. As in apply.py, a 5.7.x refusal is about
  us (reputation, PTR, DMARC), not the address, so it is soft; so is 5.2.2 (mailbox full),
  which heals by itself more often than not.
- An ARF report (RFC 5965): abuse, fraud, virus and other feedback types are complaints;
  opt-out and unsubscribe are unsubscribes; auth-failure (a DMARC forensic report) and
  not-spam are not feedback about the address. Microsoft's JMRP (an attached message with
  X-HmXmrOriginalRecipient) is a complaint too.
- A plain-text bounce (qmail, Exim, old sendmail, Yahoo): the notice's recipients and codes
  (plaintext.py); a notice that is only a delay warning counts for nothing.
- A mail to the List-Unsubscribe mailto: (ours says ?subject=unsubscribe): an unsubscribe
  of the From address.
- Anything else (auto-replies, RFC 3834, people writing back) is left alone.

Whose address: a valid VERP token (returnpath.py) in the address the report came to, or in
the sender the report quotes, names the subscriber and run with a signature; that wins over
what the report says. Without one, the report is ours only if it quotes one of our
Message-IDs (by domain), or names our return path as the envelope sender or came to it
(only we send from that address, so a spammer's forged From does not make it); then its
recipient fields name the address. Anything else is backscatter and is ignored: a bounce
of mail someone else sent in our name must suppress no one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.utils import getaddresses, parseaddr

from ..delivery.compose import message_id as our_message_id
from ..delivery.returnpath import at_return_path
from . import plaintext
from .events import ENHANCED, EVIDENCE_CHARS, Feedback, Kind, Origin, bounce_kind
from .report import Fields, Report, one_line, read

COMPLAINTS = {"abuse", "fraud", "virus", "other", "complaint"}
UNSUBSCRIBES = {"opt-out", "opt-out-list", "unsubscribe"}
ADDRESS = re.compile(r"^[^\s<>@\"(),;:]{1,200}@[A-Za-z0-9.-]{1,255}\.[A-Za-z0-9-]{2,63}$")
AUTO_SUBJECT = re.compile(r"^(?:auto(?:matic)?[ -]?(?:reply|response|antwort)|out of (?:the )?"
                          r"office|vacation|abwesenheit|absence|autoreply|away)",
                          re.IGNORECASE)
OUR_ID = re.compile(r"^<digest\.([^.<>@]{1,60})\.([0-9a-f]{20})@", re.IGNORECASE)
# a full mailbox heals by itself more often than not, whatever the code says
# what FBLs put where the recipient was: a placeholder or a hash, no address to suppress
REDACTED = re.compile(r"^(?:redacted|hashed|removed|unknown|x+|[0-9a-f]{32,})@", re.IGNORECASE)
ENVELOPE_TO = ("delivered-to", "x-original-to", "envelope-to", "x-envelope-to", "to")


@dataclass(frozen=True)
class Ours:
    """What marks mail as ours. *verp* resolves a VERP address (returnpath.Verp.decode)."""

    senders: tuple[str, ...]  # our From addresses; their domains mark our Message-IDs
    return_path: str | None = None  # bounces@example.org, when VERP is on
    unsubscribe: str | None = None  # the List-Unsubscribe mailto: address
    verp: Callable[[str], tuple[str, str] | None] | None = None

    @property
    def domains(self) -> set[str]:
        found = {parseaddr(s)[1].rpartition("@")[2].lower() for s in self.senders}
        if self.return_path:
            found.add(self.return_path.rpartition("@")[2].lower())
        return {d for d in found if d}


@dataclass
class Verdict:
    """What a message carries, or why it carries nothing (for logs and the corpus table)."""

    items: list[Feedback] = field(default_factory=list)
    why: str = ""


def classify(raw: bytes, ours: Ours) -> list[Feedback]:
    """The feedback in *raw*; an empty list: not feedback, leave the message alone."""
    return examine(raw, ours).items


def examine(raw: bytes, ours: Ours) -> Verdict:
    """`classify`, saying why when it finds nothing. Never raises: a message that cannot
    be read is not feedback."""
    try:
        report = read(raw)
        return _examine(report, raw, ours)
    except Exception as exc:  # a parser surprise on hostile input must not stop a mailbox
        return Verdict(why=f"unreadable: {type(exc).__name__}")


def _examine(report: Report, raw: bytes, ours: Ours) -> Verdict:
    subject, sender = report.get("subject"), parseaddr(report.get("from"))[1]
    if report.arf is not None:
        return _arf(report, raw, ours, report.arf)
    if report.dsn:
        return _dsn(report, raw, ours)
    if report.original_get("x-hmxmroriginalrecipient"):
        return _jmrp(report, raw, ours)
    if plaintext.looks_like_bounce(sender, subject) and not AUTO_SUBJECT.match(subject):
        return _text_bounce(report, raw, ours, subject)
    if _to_unsubscribe(report, ours, subject) and ADDRESS.match(sender):
        return Verdict([Feedback("unsubscribe", sender.lower(), "mailto",
                                 _ident(report, raw, sender), evidence=f"Subject: {subject}"
                                 [:EVIDENCE_CHARS])])
    if _auto_reply(report, subject):
        return Verdict(why="auto-reply")
    return Verdict(why="not a bounce, complaint or unsubscribe request")


# whose is it --------------------------------------------------------------------------------

def _token(report: Report, ours: Ours, quoted: Iterable[str] = ()) -> tuple[str, str] | None:
    """(run, key) from a valid VERP token where the report came to, or where it says the
    original came from."""
    if ours.verp is None:
        return None
    candidates = [v for k, v in report.headers if k in ENVELOPE_TO]
    candidates += [report.original_get("return-path"), *quoted]
    for value in candidates:
        for _name, address in getaddresses([value])[:20]:
            found = ours.verp(address) if address else None
            if found is not None:
                return found
    return None


def _evidence_of_ours(report: Report, ours: Ours, quoted: Iterable[str] = ()) -> str | None:
    """Why a report without a valid token is still about our mail, or None (backscatter)."""
    domains = ours.domains
    for mid in report.message_ids:
        if mid.rstrip(">").rpartition("@")[2].lower() in domains:
            return f"quotes our Message-ID {mid}"
    if ours.return_path:
        senders = [report.original_get("return-path"), *quoted]
        for value in senders:
            address = parseaddr(value)[1]
            if address and at_return_path(address, ours.return_path):
                return "names our return path as the sender"
        for value in (v for k, v in report.headers if k in ENVELOPE_TO):
            for _n, address in getaddresses([value])[:20]:
                if address and at_return_path(address, ours.return_path):
                    return "came to our return path"
    return None


def _run_of(report: Report, address: str) -> str | None:
    """The run of an original whose Message-ID is ours and matches *address*."""
    for mid in report.message_ids:
        found = OUR_ID.match(mid)
        if found and our_message_id(found.group(1), address.lower(),
                                    mid.rstrip(">").rpartition("@")[2]) == mid:
            return found.group(1)
    return None


def _address(value: str) -> str | None:
    """An address from a report field (`rfc822; a@b`, `<a@b>`), if it is one."""
    value = value.partition(";")[2] if ";" in value else value
    address = parseaddr(value.strip())[1].strip()
    return address.lower() if ADDRESS.match(address) and not REDACTED.match(address) else None


def _original_to(report: Report) -> str | None:
    found = [a for _n, a in getaddresses([report.original_get("to")])[:5] if a]
    return _address(found[0]) if len(found) == 1 else None


# the kinds of report ---------------------------------------------------------------------------

def _arf(report: Report, raw: bytes, ours: Ours, arf: Fields) -> Verdict:
    kind_name = arf.get("feedback-type", "").strip().lower()
    kind: Kind
    if kind_name in COMPLAINTS:
        kind = "complaint"
    elif kind_name in UNSUBSCRIBES:
        kind = "unsubscribe"
    else:
        return Verdict(why=f"ARF feedback type {kind_name or 'missing'!r} is not about "
                           "the recipient")
    mail_from = arf.get("original-mail-from", "")
    evidence = "; ".join(f"{n}: {arf[n.lower()]}" for n in (
        "Feedback-Type", "User-Agent", "Source-IP", "Reported-Domain", "Arrival-Date")
        if arf.get(n.lower()))
    return _decide(report, raw, ours, "arf", [(kind, [arf.get("original-rcpt-to", "")],
                                               None, "")], evidence, [mail_from])


def _jmrp(report: Report, raw: bytes, ours: Ours) -> Verdict:
    recipient = report.original_get("x-hmxmroriginalrecipient")
    evidence = f"Microsoft JMRP complaint; Subject: {report.get('subject')}"
    return _decide(report, raw, ours, "arf", [("complaint", [recipient], None, "")], evidence)


def _dsn_kind(status: str, diagnostic: str) -> Kind:
    """A failed block's kind; without a Status, a 4xx code in its diagnostic makes it soft."""
    code = re.search(r"\b([45])\d\d\b", diagnostic)
    return bounce_kind(status, diagnostic, permanent=not (code and code.group(1) == "4"))


def _dsn(report: Report, raw: bytes, ours: Ours) -> Verdict:
    per_message = report.dsn[0] if "reporting-mta" in report.dsn[0] else {}
    blocks = [b for b in report.dsn if "final-recipient" in b or "original-recipient" in b]
    failed = [b for b in blocks if b.get("action", "").strip().lower().startswith("failed")]
    if not failed:
        actions = sorted({b.get("action", "?").strip().lower() for b in blocks}) or ["none"]
        return Verdict(why=f"DSN without a failed recipient (action: {', '.join(actions)})")
    found = []
    for block in failed:
        status = (ENHANCED.search(block.get("status", "")) or [""])[0]
        diagnostic = one_line(block.get("diagnostic-code", ""), 500)
        # without a Diagnostic-Code, the notice's words are the only reason given
        said = diagnostic or (plaintext.notice(report.text)[:2000] if len(failed) == 1 else "")
        found.append((_dsn_kind(status, said),
                      [block.get("original-recipient", ""), block.get("final-recipient", "")],
                      status or None, diagnostic))
    mta = per_message.get("reporting-mta", "")
    remote = failed[0].get("remote-mta", "")
    evidence = "; ".join(p for p in (f"Reporting-MTA: {mta}" if mta else "",
                                     f"Remote-MTA: {remote}" if remote else "") if p)
    return _decide(report, raw, ours, "dsn", found, evidence,
                   [per_message.get("x-postfix-sender", "")])


def _text_bounce(report: Report, raw: bytes, ours: Ours, subject: str) -> Verdict:
    if plaintext.is_warning(subject, report.text):
        return Verdict(why="delay warning (plain text)")
    failures = plaintext.failures(report.text)
    if not failures:
        return Verdict(why="bounce notice naming no recipient")
    found = []
    for f in failures:
        found.append((bounce_kind(f.status, f.diagnostic, permanent=f.permanent),
                      [f.address], f.status, f.diagnostic))
    return _decide(report, raw, ours, "dsn", found, f"Subject: {subject}; From: "
                                                    f"{report.get('from')}")


Found = tuple[Kind, list[str], str | None, str]  # kind, recipient fields, status, diagnostic
SEVERITY = {"complaint": 3, "unsubscribe": 2, "hard": 1, "soft": 0}


def _decide(report: Report, raw: bytes, ours: Ours, origin: Origin, found: list[Found],
            evidence: str, quoted: Iterable[str] = ()) -> Verdict:
    """Attach each finding to an address: the token's, else the report's own fields when
    the report is ours, else nothing."""
    quoted = list(quoted)
    token = _token(report, ours, quoted)
    if token is not None:  # one message, one subscriber: its worst finding
        run, key = token
        kind, _fields, status, diagnostic = max(found, key=lambda f: SEVERITY[f[0]])
        return Verdict([_feedback(report, raw, kind, key, origin, status, diagnostic, run,
                                  evidence + "; signed return path")])
    why_ours = _evidence_of_ours(report, ours, quoted)
    if why_ours is None:
        return Verdict(why="backscatter: no valid token and no Message-ID or return path "
                           "of ours")
    items = []
    for kind, fields, status, diagnostic in found:
        address = next((a for a in map(_address, fields) if a), None) or _original_to(report)
        if address is None:
            continue
        said = f"{evidence}; {why_ours}"
        if kind == "hard" and ours.verp is not None:
            # with VERP on, our own bounces carry a signed token; one without it may be
            # forged (anyone can mail the bounces address), so it suppresses only as soft
            # bounces do, after several digests in a row, never at once
            kind, said = "soft", f"{said}; no valid return-path token: counted as soft"
        items.append(_feedback(report, raw, kind, address, origin, status, diagnostic,
                               _run_of(report, address), said))
    if not items:
        return Verdict(why="report names no recipient address")
    return Verdict(_unique(items))


def _unique(items: list[Feedback]) -> list[Feedback]:
    by_address: dict[str, Feedback] = {}
    for item in items:
        kept = by_address.get(item.address)
        if kept is None or SEVERITY[item.kind] > SEVERITY[kept.kind]:
            by_address[item.address] = item
    return list(by_address.values())


def _feedback(report: Report, raw: bytes, kind: Kind, address: str, origin: Origin,
              status: str | None, diagnostic: str, run: str | None,
              evidence: str) -> Feedback:
    evidence = one_line("; ".join(p for p in (f"Status: {status}" if status else "",
                                              f"Diagnostic: {diagnostic}" if diagnostic else "",
                                              evidence) if p), EVIDENCE_CHARS)
    return Feedback(kind, address, origin, _ident(report, raw, address), status=status,
                    diagnostic=one_line(diagnostic, 500), run=run, evidence=evidence)


def _ident(report: Report, raw: bytes, address: str) -> str:
    """The report's Message-ID (else a hash of it) and the address: read twice, one ident."""
    mid = one_line(report.get("message-id"), 300) or hashlib.sha256(raw).hexdigest()[:32]
    return f"{mid}|{address.lower()}"


def _to_unsubscribe(report: Report, ours: Ours, subject: str) -> bool:
    """Sent to our List-Unsubscribe mailto: (or a + extension of it); when that address is
    also our From, only with the subject our mailto: sets, so a reply is not an unsubscribe."""
    mailto = ours.unsubscribe
    if not mailto:
        return False
    to = [a for v in report.all("to") + report.all("delivered-to")
          for _n, a in getaddresses([v])[:20] if a]
    if not any(at_return_path(a, mailto) for a in to):
        return False
    shared = any(parseaddr(s)[1].lower() == mailto.lower() for s in ours.senders)
    return "unsubscribe" in subject.lower() or not shared


def _auto_reply(report: Report, subject: str) -> bool:
    auto = report.get("auto-submitted").lower()
    return bool((auto and auto != "no") or report.get("x-autoreply") or
                report.get("x-autorespond") or AUTO_SUBJECT.match(subject) or
                report.get("precedence").lower() in ("auto_reply", "bulk", "junk"))
