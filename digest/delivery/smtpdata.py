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

PIPELINING (RFC 2920): when the server offers it, `envelope()` writes MAIL, RCPT and DATA
at once and reads their three replies, and `content()` writes the message: two round trips
a message instead of four, and about half the client's CPU per message (bench/send_floor.py
has both rows). aiosmtplib cannot do this: its protocol parses one reply per arrival and
drops any that comes while none is awaited. `pipelining()` turns a connection's protocol
into `PipeliningProtocol`, which is aiosmtplib's own but for one method, `exchange` (write
some commands, read that many replies in order), and hands it back to the transport with
asyncio's public `set_protocol`, so every other command (RSET, QUIT, the stock paths) still
runs through aiosmtplib's code unchanged. The same version gate (`CHECKED`) applies.
"""

from __future__ import annotations

import asyncio
import functools
import re
from dataclasses import dataclass

import aiosmtplib
from aiosmtplib import SMTPResponse
from aiosmtplib.protocol import MAX_RESPONSE_LENGTH, SMTPProtocol

from ..util.crlf import CrlfBytes, DotFreeBytes, is_clean

__all__ = ["CHECKED", "DOT_ATOM", "Pipelined", "PipeliningProtocol", "chained", "content", "data",
           "envelope", "fast_path", "mail", "pipelined", "pipelining", "rcpt", "wire_bytes"]

CHECKED = ((5, 1),)  # aiosmtplib major.minor versions whose DATA exchange this mirrors
_START_INPUT, _COMPLETED, _WILL_FORWARD, _UNAVAILABLE = 354, 250, 251, 421
_OPTION = re.compile(r"[!-~]+")  # an ESMTP parameter: printable ASCII, no space
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


# PIPELINING (RFC 2920) --------------------------------------------------------------------
class PipeliningProtocol(SMTPProtocol):
    """aiosmtplib's SMTPProtocol plus `exchange`: commands written at once, their replies
    read in order. Outside an exchange every byte goes through aiosmtplib's own code."""

    _wanted: int  # replies the exchange under way still waits for; 0 outside one
    _replies: list[SMTPResponse]
    _arrived: asyncio.Future[None] | None

    def _adopt(self) -> None:
        self._wanted, self._replies, self._arrived = 0, [], None

    def data_received(self, data: bytes) -> None:
        if not self._wanted:
            super().data_received(data)
            return
        self._buffer.extend(data)
        try:
            while self._wanted and (reply := self._read_response_from_buffer()) is not None:
                self._replies.append(reply)
                self._wanted -= 1
            if len(self._buffer) > MAX_RESPONSE_LENGTH:  # one reply, endless: as aiosmtplib
                raise aiosmtplib.SMTPResponseException(-1, "Response too long")
        except Exception as exc:  # a malformed reply: the exchange fails, the link is dropped
            self._wanted = 0
            self._finish(exc)
            return
        if not self._wanted:
            self._finish(None)

    def _finish(self, error: BaseException | None) -> None:
        arrived = self._arrived
        if arrived is None or arrived.done():
            return
        if error is None:
            arrived.set_result(None)
        else:
            arrived.set_exception(error)
            arrived.exception()  # retrieved: nobody may be left to await it

    def connection_lost(self, exc: Exception | None) -> None:
        if self._wanted:
            self._wanted = 0
            lost = aiosmtplib.SMTPServerDisconnected("Connection lost")
            lost.__cause__ = exc
            self._finish(lost)
        super().connection_lost(exc)

    def eof_received(self) -> bool:
        if self._wanted:
            self._wanted = 0
            self._finish(aiosmtplib.SMTPServerDisconnected("Unexpected EOF received"))
        return super().eof_received()

    async def exchange(self, payload: bytes, replies: int,
                       timeout: float | None) -> list[SMTPResponse]:
        """Write *payload* (commands, or a message and its terminator) in one go and read
        *replies* replies. A timeout or a lost link raises as aiosmtplib's commands do;
        the caller must then close the connection (its replies are out of step)."""
        if self._command_lock is None:
            raise aiosmtplib.SMTPServerDisconnected("Server not connected")
        async with self._command_lock:
            del self._buffer[:]  # anything unread was never asked for: aiosmtplib drops it
            self._replies = []
            self._wanted = replies
            arrived = self._arrived = self._loop.create_future()
            # one timer, not asyncio.wait_for's extra future and callbacks (twice a message)
            timer = None if timeout is None else self._loop.call_later(
                timeout, self._finish, aiosmtplib.SMTPReadTimeoutError(
                    "Timed out waiting for server response"))
            try:
                self.write(payload)
                await arrived
            finally:
                if timer is not None:
                    timer.cancel()
                self._wanted, self._arrived = 0, None
            return self._replies


def pipelining(smtp: aiosmtplib.SMTP) -> PipeliningProtocol | None:
    """*smtp*'s protocol able to pipeline, if the server offers PIPELINING (after the last
    EHLO) and this aiosmtplib is one the fast path was checked against; else None."""
    protocol = smtp.protocol
    if isinstance(protocol, PipeliningProtocol):
        return protocol
    if (protocol is None or type(protocol) is not SMTPProtocol or protocol.transport is None
            or not smtp.supports_extension("pipelining") or not fast_path()):
        return None
    protocol.__class__ = PipeliningProtocol  # a subclass with no state of its own but these
    assert isinstance(protocol, PipeliningProtocol)
    protocol._adopt()
    # the transport looks data_received up again (uvloop keeps the bound method it found)
    protocol.transport.set_protocol(protocol)
    return protocol


@dataclass(frozen=True)
class Pipelined:
    """One message's transaction as `pipelined()` checked it, for `envelope()` and
    `content()`: worked out once, not again by each."""

    protocol: PipeliningProtocol
    sender: str
    recipient: str
    mail_from: bytes  # `<sender>`, as MAIL carries it
    rcpt_to: bytes  # `<recipient>`, as RCPT carries it
    wire: bytes  # the message as DATA carries it (`wire_bytes`)


def pipelined(smtp: aiosmtplib.SMTP, sender: str, recipient: str,
              message: bytes) -> Pipelined | None:
    """The message's transaction if it can be pipelined on *smtp* (the server offers
    PIPELINING, both addresses are plain, the message is CRLF-clean); None means: send it
    with mail(), rcpt() and data()."""
    protocol = pipelining(smtp)
    if protocol is None:
        return None
    mail_from, rcpt_to = _plain(smtp, sender), _plain(smtp, recipient)
    if mail_from is None or rcpt_to is None:
        return None
    wire = wire_bytes(message)
    return None if wire is None else Pipelined(protocol, sender, recipient, mail_from,
                                               rcpt_to, wire)


def _commands(plan: Pipelined, options: list[str]) -> bytes:
    """MAIL, RCPT and DATA for *plan*, as one write."""
    mail_line = b"MAIL FROM:" + plan.mail_from
    for option in options:
        if not _OPTION.fullmatch(option):
            raise ValueError(f"not an ESMTP parameter: {option!r}")
        mail_line += b" " + option.encode("ascii")
    return mail_line + b"\r\nRCPT TO:" + plan.rcpt_to + b"\r\nDATA\r\n"


async def envelope(smtp: aiosmtplib.SMTP, plan: Pipelined, options: list[str]) -> None:
    """MAIL, RCPT and DATA in one write; returns once DATA's 354 came. Raises what
    `mail()`, `rcpt()` and `data()` would for the first of them refused."""
    replies = await _exchange(smtp, plan.protocol, _commands(plan, options), 3)
    await _opened(smtp, plan, replies)


async def _opened(smtp: aiosmtplib.SMTP, plan: Pipelined, replies: list[SMTPResponse]) -> None:
    """Raise what `mail()`, `rcpt()` and `data()` would for the first of the envelope's
    three *replies* that refused; return if DATA's 354 came."""
    mail_reply, rcpt_reply, data_reply = replies
    error: aiosmtplib.SMTPResponseException | None = None
    if mail_reply.code != _COMPLETED:
        error = aiosmtplib.SMTPSenderRefused(mail_reply.code, mail_reply.message, plan.sender)
    elif rcpt_reply.code not in (_COMPLETED, _WILL_FORWARD):
        error = aiosmtplib.SMTPRecipientRefused(rcpt_reply.code, rcpt_reply.message,
                                                plan.recipient)
    elif data_reply.code != _START_INPUT:
        error = aiosmtplib.SMTPDataError(data_reply.code, data_reply.message)
    if error is None:
        return
    if data_reply.code == _START_INPUT:  # a server that took DATA after a refusal (RFC
        await content(smtp, b".\r\n", expect=None)  # 2920 says it must not): end it empty
    if _UNAVAILABLE in (mail_reply.code, rcpt_reply.code, data_reply.code):
        smtp.close()  # as aiosmtplib does on a 421: the server is closing
    raise error


async def content(smtp: aiosmtplib.SMTP, wire: bytes, *,
                  expect: int | None = _COMPLETED) -> SMTPResponse:
    """Write the message (`Pipelined.wire`) after `envelope()`, and read the reply;
    raises SMTPDataError as `data()` does unless it is *expect*."""
    protocol = smtp.protocol
    if not isinstance(protocol, PipeliningProtocol):  # closed meanwhile
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    (reply,) = await _exchange(smtp, protocol, wire, 1)
    if expect is not None and reply.code != expect:
        raise aiosmtplib.SMTPDataError(reply.code, reply.message)
    return reply


async def chained(smtp: aiosmtplib.SMTP, wire: bytes, following: Pipelined,
                  options: list[str]) -> tuple[SMTPResponse, Exception | None]:
    """Write the message (after `envelope()`) and, in the same write, MAIL, RCPT and DATA
    of the *following* message (RFC 2920 lets a message's content open a group): one round
    trip a message instead of two. Returns the message's reply, unchecked, and None if
    DATA's 354 came for *following*, else the error `envelope()` would have raised for it.
    A lost link or a timeout raises as `content()` does: neither message's fate is known."""
    protocol = smtp.protocol
    if not isinstance(protocol, PipeliningProtocol):  # closed meanwhile
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    reply, *replies = await _exchange(smtp, protocol, wire + _commands(following, options), 4)
    try:
        await _opened(smtp, following, replies)
    except (aiosmtplib.SMTPException, OSError) as exc:
        return reply, exc
    return reply, None


async def _exchange(smtp: aiosmtplib.SMTP, protocol: PipeliningProtocol, payload: bytes,
                    replies: int) -> list[SMTPResponse]:
    """`protocol.exchange` under the client's timeout; if it fails, the client is closed:
    replies out of step with commands, this link carries nothing more."""
    try:
        return await protocol.exchange(payload, replies, smtp.timeout)
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError,
            aiosmtplib.SMTPResponseException):
        smtp.close()
        raise
