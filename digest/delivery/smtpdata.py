"""MAIL, RCPT and DATA for messages and addresses we have already checked, without paying
for aiosmtplib's checks and regular expressions a second time.

DATA: a message that is already CRLF-clean is dot-stuffed by `bytes.replace`, not by
aiosmtplib's two regular expressions.

aiosmtplib's `SMTP.data()` runs two `re.sub` passes over every message (line endings to
CRLF, then a period doubled at each line start) and copies it a third time to add the
terminator: about 300 µs for a 40 KB digest. Our messages leave compose with CRLF line
ends and nothing else (transport.Outgoing), so one replace does the stuffing (about 100 µs
with the check that no bare CR or LF slipped in, which would let a line end be smuggled).
The bytes on the wire are exactly those `data()` would send (tests/test_smtp_data.py
checks it against aiosmtplib's own functions, over random bodies). That check is three
passes over the message (about 100 µs for 40 KB, more than assembling it): a digest
message arrives as `util.crlf.CrlfBytes`, checked piece by piece when it was assembled, and
is not scanned again.

MAIL and RCPT: aiosmtplib runs every address through `email.utils.parseaddr` (about 40 µs
each, two per message). For a plain dot-atom address (`DOT_ATOM`: what compose and VERP
produce) parseaddr returns it unchanged, so `<address>` is what it would send anyway.

aiosmtplib offers no hook for either, so `mail()` and `rcpt()` below send their commands
with the client's public `execute_command`, and `data()` sends DATA with it, then writes
the prepared bytes and reads the reply through its protocol's public `write` and
`read_response`, as `SMTPProtocol.execute_data_command` does. That relies on how
aiosmtplib works inside, so it is only done with the versions it was checked against
(`CHECKED`); any other version, any message with a bare CR or LF, and any address that is
not plain take aiosmtplib's own path, slower but correct.

A connection must be used by one task at a time (as SmtpTransport's workers do): between
DATA's 354 and the message no lock is held.
"""

from __future__ import annotations

import functools
import re

import aiosmtplib
from aiosmtplib import SMTPResponse

from ..util.crlf import CrlfBytes, DotFreeBytes, is_clean

__all__ = ["CHECKED", "DOT_ATOM", "data", "fast_path", "mail", "rcpt", "wire_bytes"]

CHECKED = ((5, 1),)  # aiosmtplib major.minor versions whose DATA exchange this mirrors
_START_INPUT, _COMPLETED, _WILL_FORWARD = 354, 250, 251
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# RFC 5321 dot-atom local part @ a DNS name: nothing for parseaddr to unquote or drop
DOT_ATOM = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@{_LABEL}(?:\.{_LABEL})*")


@functools.cache
def _checked(version: str) -> bool:
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:  # a pre-release like "6.0.0a1" parses; anything odd falls back
        return False
    return (major, minor) in CHECKED


def fast_path() -> bool:
    """Whether the installed aiosmtplib is one `data()` may bypass `SMTP.data()` with."""
    return _checked(getattr(aiosmtplib, "__version__", ""))


def wire_bytes(message: bytes) -> bytes | None:
    """*message* as DATA carries it: each line starting with "." gets another, a CRLF
    ends the last line, and ".\\r\\n" ends it all. None if *message* has a CR or LF that is
    not part of a CRLF pair (aiosmtplib's own path then normalises it as it always has).
    A `CrlfBytes` (a digest: checked piece by piece as it was assembled) is not scanned for
    them again, and a `DotFreeBytes` not for dots either."""
    kind = type(message)
    if kind is DotFreeBytes:  # no line of it starts with "."
        stuffed = message
    elif kind is CrlfBytes or is_clean(message):
        stuffed = message.replace(b"\r\n.", b"\r\n..")
    else:
        return None
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


async def data(smtp: aiosmtplib.SMTP, message: bytes) -> SMTPResponse:
    """Send *message* as `smtp.data(message)` would, raising the same errors, without
    aiosmtplib's regular expressions when the fast path applies."""
    wire = wire_bytes(message) if fast_path() else None
    if wire is None:
        return await smtp.data(message)
    start = await smtp.execute_command(b"DATA")  # closes the client if the link is lost
    if start.code != _START_INPUT:
        raise aiosmtplib.SMTPDataError(start.code, start.message)
    protocol = smtp.protocol
    if protocol is None:  # closed by a 421 reply to DATA
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    try:
        protocol.write(wire)
        response = await protocol.read_response(timeout=smtp.timeout)
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
        smtp.close()  # as SMTP.data() does: a half-read reply must not meet the next command
        raise
    if response.code != _COMPLETED:
        raise aiosmtplib.SMTPDataError(response.code, response.message)
    return response


def _plain(smtp: aiosmtplib.SMTP, address: str) -> bytes | None:
    """`<address>` as MAIL or RCPT carries it, if the fast path may send it so."""
    if (smtp.last_ehlo_response is None or len(address) > 254
            or not DOT_ATOM.fullmatch(address) or not fast_path()):
        return None
    return b"<" + address.encode("ascii") + b">"


async def mail(smtp: aiosmtplib.SMTP, sender: str, options: list[str]) -> SMTPResponse:
    """`smtp.mail(sender, options=options)`, without parseaddr for a plain address."""
    quoted = _plain(smtp, sender)
    if quoted is None:
        return await smtp.mail(sender, options=options)
    response = await smtp.execute_command(
        b"MAIL", b"FROM:" + quoted, *(option.encode("ascii") for option in options))
    if response.code != _COMPLETED:
        raise aiosmtplib.SMTPSenderRefused(response.code, response.message, sender)
    return response


async def rcpt(smtp: aiosmtplib.SMTP, recipient: str) -> SMTPResponse:
    """`smtp.rcpt(recipient)`, without parseaddr for a plain address."""
    quoted = _plain(smtp, recipient)
    if quoted is None:
        return await smtp.rcpt(recipient)
    response = await smtp.execute_command(b"RCPT", b"TO:" + quoted)
    if response.code not in (_COMPLETED, _WILL_FORWARD):
        raise aiosmtplib.SMTPRecipientRefused(response.code, response.message, recipient)
    return response
