"""Relays' webhooks into Feedback: Amazon SES (through SNS, verified in sns.py), Mailgun
(an HMAC of its signing key) and Postmark (HTTP Basic auth, all Postmark offers).

Each relay has a check (is it really the relay?) and a parser (what does it say?), kept
apart so the parsers can be run over bodies whose signatures are placeholders. The parsers
are pure and forgiving: a field of the wrong type or missing is read as absent, an event
that is not about a failed delivery gives nothing, never an exception.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from typing import Any

from ..delivery.compose import message_id as our_message_id
from ..errors import WebhookRefused
from .events import ENHANCED, EVIDENCE_CHARS, Feedback, Kind
from .sns import SnsMessage

MAILGUN_SKEW_SECONDS = 300  # a signature older or newer than this is a replay (or a bad clock)
MAX_TOKEN = 200  # Mailgun's tokens are 50 hex digits
# our own Message-IDs (delivery/compose.py): <digest.SLUG.HASH@domain>; Mailgun drops the <>
OURS = re.compile(r"<?(digest\.([^.<>@\s]{1,60})\.[0-9a-f]{20}@([^<>@\s]{1,255}))>?")


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str:
    """A field as one line of text; absent or of another type: empty."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return ""
    return " ".join(str(value).split())[:EVIDENCE_CHARS]


def _status(*texts: str) -> str | None:
    for text in texts:
        found = ENHANCED.search(text)
        if found:
            return found[0]
    return None


def run_of(message_id: str, address: str) -> str | None:
    """The digest's slug if *message_id* is the one we gave *address*'s copy of it (the hash
    is of the slug and the address, so a made-up or another's id names no run)."""
    found = OURS.fullmatch(message_id.strip())
    if found is None:
        return None
    slug = found[2]
    return slug if our_message_id(slug, address.lower(), found[3]) == f"<{found[1]}>" else None


def _address(value: object) -> str | None:
    text = _text(value)
    try:
        text.encode()  # JSON may carry lone surrogates ("\\ud800"), which no database takes
    except UnicodeEncodeError:
        return None
    return text if "@" in text and len(text) <= 320 else None


# Amazon SES, through SNS ----------------------------------------------------------------------
def ses_feedback(message: SnsMessage) -> list[Feedback]:
    """What a verified SNS Notification from SES says: a bounce (Permanent: hard; Transient
    or Undetermined: soft) or a complaint (not a "not-spam" one) per recipient; a delivery,
    or anything that is not an SES notification, says nothing."""
    if message.type != "Notification":
        return []
    try:
        note = json.loads(message.message)
    except (ValueError, RecursionError):
        return []
    if not isinstance(note, dict):
        return []
    event = _text(note.get("notificationType") or note.get("eventType"))
    message_id = _ses_message_id(_dict(note.get("mail")))
    items: list[Feedback] = []
    if event == "Bounce":
        bounce = _dict(note.get("bounce"))
        bounce_type = _text(bounce.get("bounceType"))
        kind: Kind = "hard" if bounce_type == "Permanent" else "soft"
        evidence = (f"SES bounce {bounce_type}/{_text(bounce.get('bounceSubType'))} "
                    f"(SNS {message.message_id}, feedback {_text(bounce.get('feedbackId'))})")
        for entry in _list(bounce.get("bouncedRecipients")):
            address = _address(entry.get("emailAddress"))
            if address is None:
                continue
            diagnostic = _text(entry.get("diagnosticCode"))
            items.append(Feedback(
                kind, address, "ses", f"ses|{message.message_id}|{address.lower()}",
                status=_status(_text(entry.get("status")), diagnostic),
                diagnostic=diagnostic, run=run_of(message_id, address), evidence=evidence))
    elif event == "Complaint":
        complaint = _dict(note.get("complaint"))
        feedback_type = _text(complaint.get("complaintFeedbackType"))
        if feedback_type == "not-spam":
            return []
        evidence = (f"SES complaint {feedback_type or '(no type)'} from "
                    f"{_text(complaint.get('userAgent')) or '(unknown agent)'} "
                    f"(SNS {message.message_id}, feedback {_text(complaint.get('feedbackId'))})")
        for entry in _list(complaint.get("complainedRecipients")):
            address = _address(entry.get("emailAddress"))
            if address is not None:
                items.append(Feedback("complaint", address, "ses",
                                      f"ses|{message.message_id}|{address.lower()}",
                                      run=run_of(message_id, address),
                                      evidence=evidence))
    return items


def _list(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _ses_message_id(mail: dict[str, Any]) -> str:
    """Our Message-ID as SES saw it (SES's own mail.messageId is another thing)."""
    common = _text(_dict(mail.get("commonHeaders")).get("messageId"))
    if common:
        return common
    for header in _list(mail.get("headers")):
        if _text(header.get("name")).lower() == "message-id":
            return _text(header.get("value"))
    return ""


# Mailgun ------------------------------------------------------------------------------------
def mailgun_token(data: dict[str, Any], key: bytes, now: float) -> str:
    """The request's token once its signature is Mailgun's (HMAC-SHA256 of timestamp+token
    with *key*) and its timestamp within MAILGUN_SKEW_SECONDS of *now*; the caller records the
    token so that the same request posted again is refused."""
    signature = _dict(data.get("signature"))
    timestamp, token, digest = (signature.get(k) for k in ("timestamp", "token", "signature"))
    if not (isinstance(timestamp, str) and isinstance(token, str) and isinstance(digest, str)):
        raise WebhookRefused(400, "no signature {timestamp, token, signature} in the body")
    if not timestamp.isdigit() or not token or len(token) > MAX_TOKEN or len(timestamp) > 20:
        raise WebhookRefused(400, "a malformed Mailgun signature")
    expected = hmac.new(key, (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), digest.encode("utf-8", "replace")):
        raise WebhookRefused(403, "the Mailgun signature does not verify")
    if abs(now - int(timestamp)) > MAILGUN_SKEW_SECONDS:
        raise WebhookRefused(403, f"a Mailgun signature from {timestamp}, more than "
                                  f"{MAILGUN_SKEW_SECONDS} s from now (replayed?)")
    return token


def mailgun_feedback(data: dict[str, Any]) -> list[Feedback]:
    """A failed delivery (severity permanent: hard, temporary: soft), a complaint or an
    unsubscribe; other events (delivered, opened, …) say nothing."""
    event = _dict(data.get("event-data"))
    name = _text(event.get("event"))
    kind: Kind | None = None
    if name == "failed":
        severity = _text(event.get("severity"))
        kind = "hard" if severity == "permanent" else "soft" if severity == "temporary" else None
    elif name in ("complained", "unsubscribed"):
        kind = "complaint" if name == "complained" else "unsubscribe"
    address = _address(event.get("recipient"))
    ident = _text(event.get("id"))
    if kind is None or address is None or not ident:
        return []
    delivery = _dict(event.get("delivery-status"))
    diagnostic = _text(delivery.get("message")) or _text(delivery.get("description"))
    code = _text(delivery.get("code"))
    headers = _dict(_dict(event.get("message")).get("headers"))
    return [Feedback(
        kind, address, "mailgun", f"mailgun|{ident}|{address.lower()}",
        status=_status(_text(delivery.get("enhanced-code")), diagnostic) if kind in (
            "hard", "soft") else None,
        diagnostic=diagnostic, run=run_of(_text(headers.get("message-id")), address),
        evidence=f"Mailgun {name} {_text(event.get('severity'))} {_text(event.get('reason'))}"
                 f"{' SMTP ' + code if code else ''} (event {ident})".replace("  ", " "))]


# Postmark -----------------------------------------------------------------------------------
def postmark_check(authorization: str | None, username: str, password: str) -> None:
    """Refuse (401) unless *authorization* is Basic with this username and password, each
    compared in constant time."""
    scheme, _, encoded = (authorization or "").partition(" ")
    given_user, given_password = b"", b""
    if scheme.lower() == "basic" and len(encoded) <= 1024:
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        given_user, _, given_password = decoded.partition(b":")
    user_ok = hmac.compare_digest(given_user, username.encode())
    password_ok = hmac.compare_digest(given_password, password.encode())
    if not (user_ok and password_ok):
        raise WebhookRefused(401, "wrong or missing Basic auth for the Postmark webhook")


POSTMARK_BOUNCES: dict[str, Kind] = {"HardBounce": "hard", "SoftBounce": "soft",
                                     "Transient": "soft", "SpamComplaint": "complaint"}
POSTMARK_SUPPRESSIONS: dict[str, Kind] = {"HardBounce": "hard", "SpamComplaint": "complaint",
                                          "ManualSuppression": "unsubscribe"}


def postmark_feedback(data: dict[str, Any]) -> list[Feedback]:
    """A Bounce (HardBounce: hard; SoftBounce, Transient: soft; SpamComplaint: complaint;
    the rest, auto-replies and the like, nothing), a SpamComplaint, or a SubscriptionChange
    that stops sending (by its SuppressionReason; a manual one is an unsubscribe)."""
    record = _text(data.get("RecordType"))
    kind: Kind | None = None
    if record == "Bounce":
        kind = POSTMARK_BOUNCES.get(_text(data.get("Type")))
        address = _address(data.get("Email"))
        ident = f"postmark|{_text(data.get('ID'))}|{(address or '').lower()}"
    elif record == "SpamComplaint":
        kind = "complaint"
        address = _address(data.get("Email"))
        ident = f"postmark|{_text(data.get('ID'))}|{(address or '').lower()}"
    elif record == "SubscriptionChange" and data.get("SuppressSending") is True:
        kind = POSTMARK_SUPPRESSIONS.get(_text(data.get("SuppressionReason")), "unsubscribe")
        address = _address(data.get("Recipient"))
        ident = (f"postmark|change|{_text(data.get('MessageID'))}|"
                 f"{_text(data.get('ChangedAt'))}|{(address or '').lower()}")
    else:
        return []
    if kind is None or address is None or ident.startswith("postmark||"):
        return []
    details = _text(data.get("Details"))
    return [Feedback(
        kind, address, "postmark", ident, status=_status(details) if kind != "complaint"
        else None, diagnostic=details,
        evidence=f"Postmark {record} {_text(data.get('Type') or data.get('SuppressionReason'))}"
                 f" (message {_text(data.get('MessageID'))})")]
