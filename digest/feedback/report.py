"""A message that may be a bounce or a complaint, read into plain fields, within bounds.

Everything here assumes a hostile sender: the input is cut to MAX_BYTES and its lines to
MAX_LINE before parsing, at most MAX_PARTS parts are looked at, header values are cut to
MAX_VALUE, and text to MAX_TEXT. The stdlib parser with compat32 never refuses input (it
records defects instead); what it returns is still read defensively, since a malformed part
can hold a string where a list was expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser, HeaderParser
from email.policy import compat32

MAX_BYTES = 2 * 2**20  # a report is a few KB; beyond this it is an attachment, cut
MAX_LINE = 4000  # characters in one line (RFC 5322 allows 998)
MAX_PARTS = 64  # MIME parts looked at
MAX_VALUE = 2000  # characters of one header value
MAX_TEXT = 64_000  # characters of notification text kept
MAX_BLOCKS = 50  # recipient blocks of one DSN

DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")
ORIGINAL_TYPES = ("message/rfc822", "message/global", "text/rfc822-headers",
                  "message/rfc822-headers", "text/rfc822-header")
MESSAGE_ID = re.compile(r"^(?:message-id|original-message-id):[ \t]*(<[^<>\s]{1,500}>)",
                        re.IGNORECASE | re.MULTILINE)

Fields = dict[str, str]  # lowercased name → value on one line


@dataclass
class Report:
    """What the classifier reads: the top headers, the report parts, the original."""

    headers: list[tuple[str, str]]  # the message's own, names lowercased
    dsn: list[Fields] = field(default_factory=list)  # per-message block first, if any
    arf: Fields | None = None  # the message/feedback-report fields
    original: list[tuple[str, str]] = field(default_factory=list)  # the returned headers
    text: str = ""  # the human-readable part(s)
    message_ids: list[str] = field(default_factory=list)  # quoted anywhere in the report

    def get(self, name: str) -> str:
        return next((v for k, v in self.headers if k == name), "")

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]

    def original_get(self, name: str) -> str:
        return next((v for k, v in self.original if k == name), "")


def one_line(value: object, limit: int = MAX_VALUE) -> str:
    """A header value (or anything) as bounded text on one line."""
    text = value if isinstance(value, str) else str(value)
    text = " ".join(text[:limit * 2].split())
    return text[:limit]


def _bounded(raw: bytes) -> bytes:
    raw = raw[:MAX_BYTES]
    if max((len(line) for line in raw.split(b"\n", 20_000)), default=0) <= MAX_LINE:
        return raw
    return b"\n".join(line[:MAX_LINE] for line in raw.split(b"\n"))


def _items(message: Message) -> list[tuple[str, str]]:
    return [(str(k).lower()[:100], one_line(v)) for k, v in message.items()[:500]]


def _text(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # a malformed transfer encoding: read what is there
        payload = None
    if not isinstance(payload, bytes):
        raw = part.get_payload()
        return raw[:MAX_TEXT] if isinstance(raw, str) else ""
    charset = str(part.get_content_charset() or "utf-8")
    try:
        return payload[:MAX_TEXT * 4].decode(charset, errors="replace")[:MAX_TEXT]
    except (LookupError, ValueError):
        return payload[:MAX_TEXT * 4].decode("utf-8", errors="replace")[:MAX_TEXT]


def parse_fields(text: str) -> list[Fields]:
    """RFC 3464 / 5965 field blocks: `Name: value` lines, folded lines continued, blank
    lines between blocks."""
    blocks: list[Fields] = []
    current: Fields = {}
    last = ""
    for line in text.splitlines()[:2000]:
        if not line.strip():
            if current:
                blocks.append(current)
                current, last = {}, ""
            continue
        if line[:1] in (" ", "\t") and last:
            current[last] = one_line(current[last] + " " + line)
            continue
        name, colon, value = line.partition(":")
        if colon and name and " " not in name.strip():
            last = name.strip().lower()[:100]
            current.setdefault(last, one_line(value))
    if current:
        blocks.append(current)
    return blocks[:MAX_BLOCKS + 1]


def _fields(part: Message) -> list[Fields]:
    payload = part.get_payload()
    if isinstance(payload, list):  # the parser split the blocks already
        text = "\n\n".join("\n".join(f"{k}: {v}" for k, v in _items(block))
                           for block in payload[:MAX_BLOCKS + 1] if isinstance(block, Message))
        return parse_fields(text)
    return parse_fields(_text(part))


def _original(part: Message) -> list[tuple[str, str]]:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return _items(payload[0])
    text = _text(part)
    return _items(HeaderParser(policy=compat32).parsestr(text[:MAX_TEXT], headersonly=True))


def _parts(message: Message) -> list[Message]:
    """The leaf parts, depth first, at most MAX_PARTS looked at; report and original parts
    are leaves here (their insides are read by their own readers)."""
    found: list[Message] = []
    stack = [message]
    seen = 0
    while stack and seen < MAX_PARTS:
        part = stack.pop()
        seen += 1
        kind = part.get_content_type()
        payload = part.get_payload()
        if kind.startswith("multipart/") and isinstance(payload, list):
            stack.extend(reversed([p for p in payload[:MAX_PARTS] if isinstance(p, Message)]))
        else:
            found.append(part)
    return found


def read(raw: bytes) -> Report:
    """The report in *raw*; never raises for any input (callers still guard)."""
    message = BytesParser(policy=compat32).parsebytes(_bounded(raw))
    report = Report(_items(message))
    texts: list[str] = []
    for part in _parts(message):
        kind = part.get_content_type()
        if kind in DSN_TYPES:
            report.dsn += _fields(part)
        elif kind == "message/feedback-report":
            blocks = _fields(part)
            report.arf = {k: v for block in blocks for k, v in block.items()}
        elif kind in ORIGINAL_TYPES:
            if not report.original:
                report.original = _original(part)
        elif kind == "text/plain" and len(texts) < 4:
            texts.append(_text(part))
    report.text = "\n".join(texts)[:MAX_TEXT]
    ids = [v for k, v in report.original if k == "message-id"]
    ids += [v for k, v in report.headers if k in ("in-reply-to", "references")]
    ids += MESSAGE_ID.findall(report.text)
    report.message_ids = [i for value in ids for i in re.findall(r"<[^<>\s]{1,500}>", value)
                          ][:50]
    return report
