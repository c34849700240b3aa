"""digest.delivery.smtpdata: DATA without aiosmtplib's regex pass, byte for byte what
aiosmtplib itself would send, checked against aiosmtpd and postfix's smtp-sink; and
MAIL, RCPT and DATA pipelined (RFC 2920) where the server offers it, against a scripted
server that answers a group only once all of it has come, aiosmtpd and smtp-sink."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiosmtplib
import pytest
from aiosmtplib.email import quote_address
from aiosmtplib.protocol import PERIOD_REGEX, SMTPProtocol, normalize_message_line_endings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smtp_server import Faults, SmtpServer

from digest.config import SmtpSettings
from digest.delivery import smtpdata
from digest.delivery.smtp import SmtpTransport
from digest.delivery.transport import Current, Outcome, Outgoing

try:
    import uvloop
except ImportError:  # pragma: no cover - a dependency except on Windows
    uvloop = None  # type: ignore[assignment]

T = TypeVar("T")

SINK = Path("/usr/sbin/smtp-sink")
SENDER, RECIPIENT = "digest@example.org", "reader@example.org"


def stock_wire(message: bytes) -> bytes:
    """What aiosmtplib's own DATA path puts on the wire for *message*."""
    return PERIOD_REGEX.sub(b"..", normalize_message_line_endings(message)) + b".\r\n"


# bodies that have gone wrong in SMTP clients before
LONG = b"x" * 998  # RFC 5321's longest line, without its CRLF
TRICKY = {
    "dot lines inside": b"Subject: a\r\n\r\n.\r\n..\r\n.a\r\nb.\r\n. \r\n",
    "starts and ends with a dot line": b".first\r\nSubject: b\r\n\r\nbody\r\n.",
    "ends with a lone dot and CRLF": b"Subject: c\r\n\r\nbody\r\n.\r\n",
    "no final CRLF": b"Subject: d\r\n\r\nlast line",
    "998-octet lines": b"Subject: e\r\n\r\n" + LONG + b"\r\n." + LONG[1:] + b"\r\n" + LONG,
    "8-bit": "Subject: f\r\n\r\nh\u00e9llo w\u00f6rld \u2014 \u3042\r\n.\u00e9\r\n".encode(),
    "empty body": b"Subject: g\r\n\r\n",
    "CRLF only": b"\r\n\r\n\r\n",
    "dot CRLF dot": b".\r\n.",
}


def lines(draw_line: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """CRLF-joined lines, with or without a final CRLF."""
    return st.builds(lambda ls, end: b"\r\n".join(ls) + (b"\r\n" if end else b""),
                     st.lists(draw_line, max_size=30), st.booleans())


LINE = st.one_of(
    st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    st.sampled_from([b"", b".", b"..", b". ", b".\x00", b"\x80.", LONG, b"." + LONG[1:]]),
    st.binary(max_size=20).map(lambda b: b"." + b.replace(b"\r", b"").replace(b"\n", b"")),
)
CLEAN = lines(LINE)


# the bytes -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(TRICKY))
def test_wire_bytes_are_what_aiosmtplib_sends(name: str) -> None:
    assert smtpdata.wire_bytes(TRICKY[name]) == stock_wire(TRICKY[name])


def test_wire_bytes_stuff_and_terminate() -> None:
    assert smtpdata.wire_bytes(b".a\r\n.\r\nb") == b"..a\r\n..\r\nb\r\n.\r\n"
    assert smtpdata.wire_bytes(b"") == b"\r\n.\r\n"


@given(CLEAN)
def test_wire_bytes_match_aiosmtplib_on_any_crlf_body(message: bytes) -> None:
    assert smtpdata.wire_bytes(message) == stock_wire(message)


@given(CLEAN, st.sampled_from([b"\n", b"\r", b"\n\r", b"\r\r\n", b"\n."]), st.integers(0))
def test_a_bare_cr_or_lf_is_left_to_aiosmtplib(message: bytes, bare: bytes,
                                                at: int) -> None:
    at %= len(message) + 1
    if message[:at].endswith(b"\r") and bare.startswith(b"\n"):
        at -= 1  # b"\r" + b"\n..." would make a proper CRLF
    broken = message[:at] + bare + message[at:]
    assert smtpdata.wire_bytes(broken) is None


def test_the_installed_aiosmtplib_takes_the_fast_path() -> None:
    assert smtpdata.fast_path(), (f"aiosmtplib {aiosmtplib.__version__} is not in "
                                  f"smtpdata.CHECKED: check its DATA path and add it")


@pytest.mark.parametrize("version", ["6.0.0", "5.2.0", "4.0.1", "5", "", "dev"])
def test_other_versions_of_aiosmtplib_take_the_stock_path(version: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiosmtplib, "__version__", version)
    assert not smtpdata.fast_path()


# over the wire -------------------------------------------------------------------------------
class CountingSMTP(aiosmtplib.SMTP):
    """A real client that counts its stock `data()` calls."""

    stock_calls = 0

    async def data(self, message: str | bytes, /, **kwargs: object) -> aiosmtplib.SMTPResponse:
        self.stock_calls += 1
        return await super().data(message)


async def send(port: int, messages: list[bytes]) -> CountingSMTP:
    """Each message in its own transaction, over one connection, through smtpdata.data."""
    smtp = CountingSMTP(hostname="127.0.0.1", port=port, timeout=5, start_tls=False)
    await smtp.connect()
    try:
        for message in messages:
            options = [] if message.isascii() else ["BODY=8BITMIME"]
            await smtp.mail(SENDER, options=options)
            await smtp.rcpt(RECIPIENT)
            response = await smtpdata.data(smtp, message)
            assert response.code == 250
    finally:
        await smtp.quit()
    return smtp


def as_received(message: bytes) -> bytes:
    """*message* as a server keeps it: its last line ended by CRLF."""
    return message if message.endswith(b"\r\n") or not message else message + b"\r\n"


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with SmtpServer() as running:
        yield running


def test_aiosmtpd_receives_exactly_what_was_composed(server: SmtpServer) -> None:
    names = sorted(TRICKY)
    smtp = asyncio.run(send(server.port, [TRICKY[n] for n in names]))
    assert smtp.stock_calls == 0  # every one went the fast way
    got = {n: r.data for n, r in zip(names, server.received, strict=True)}
    assert got == {n: as_received(TRICKY[n]) for n in names}


def test_a_body_with_bare_line_ends_still_goes_normalised(server: SmtpServer) -> None:
    smtp = asyncio.run(send(server.port, [b"Subject: x\n\n.one\rtwo\r\n"]))
    assert smtp.stock_calls == 1
    assert server.received[0].data == b"Subject: x\r\n\r\n.one\r\ntwo\r\n"


def test_another_aiosmtplib_version_uses_its_own_data(server: SmtpServer,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiosmtplib, "__version__", "99.0.0")
    message = TRICKY["starts and ends with a dot line"]
    smtp = asyncio.run(send(server.port, [message]))
    assert smtp.stock_calls == 1
    assert server.received[0].data == as_received(message)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(CLEAN, min_size=1, max_size=5))
def test_aiosmtpd_receives_any_crlf_body_intact(bodies: list[bytes]) -> None:
    messages = [b"Subject: p\r\n\r\n" + body for body in bodies]
    with SmtpServer() as running:
        asyncio.run(send(running.port, messages))
        assert [r.data for r in running.received] == [as_received(m) for m in messages]


@pytest.mark.parametrize(("faults", "error", "closed"), [
    (Faults(data_tempfail=1), aiosmtplib.SMTPDataError, False),
    (Faults(drop_in_data=1), aiosmtplib.SMTPServerDisconnected, True),
])
def test_errors_are_aiosmtplibs(faults: Faults, error: type[Exception], closed: bool) -> None:
    async def one(port: int) -> aiosmtplib.SMTP:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=5, start_tls=False)
        await smtp.connect()
        await smtp.mail(SENDER)
        await smtp.rcpt(RECIPIENT)
        with pytest.raises(error):
            await smtpdata.data(smtp, b"Subject: x\r\n\r\nbody\r\n")
        return smtp

    with SmtpServer(faults=faults) as running:
        smtp = asyncio.run(one(running.port))
        assert smtp.is_connected is not closed


# smtp-sink -----------------------------------------------------------------------------------
class Sink:
    """postfix's smtp-sink on a free loopback port, dumping each message to a file (-d)."""

    def __init__(self, folder: Path) -> None:
        folder.chmod(0o777)  # smtp-sink drops to nobody when started as root
        self.folder = folder
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen(
            [str(SINK), *user, "-d", f"{folder}/%H%M%S.", f"127.0.0.1:{self.port}", "10"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"smtp-sink did not start: {self.proc.stderr}") from None
                time.sleep(0.05)

    def messages(self, count: int) -> list[bytes]:
        """The bodies received, oldest first: smtp-sink's own header lines cut off (they
        end with its Received: field and that field's tab-indented continuation lines)."""
        deadline = time.monotonic() + 5
        while len(files := sorted(self.folder.iterdir(), key=lambda p: p.stat().st_mtime_ns)
                  ) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        bodies = []
        for path in files:
            dumped = path.read_bytes().split(b"\n")
            start = next(i for i, line in enumerate(dumped) if line.startswith(b"Received:"))
            start += 1
            while dumped[start].startswith(b"\t"):
                start += 1
            assert dumped[-2:] == [b"", b""]  # the message, an empty line
            bodies.append(b"\n".join(dumped[start:-2]) + b"\n")
        return bodies

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


@pytest.fixture
def sink() -> Iterator[Sink]:
    with tempfile.TemporaryDirectory(prefix="smtp-sink-") as folder:
        running = Sink(Path(folder))
        try:
            yield running
        finally:
            running.stop()


def test_smtp_sink_receives_exactly_what_was_composed(sink: Sink) -> None:
    names = sorted(TRICKY)
    messages = [TRICKY[n] for n in names]
    smtp = asyncio.run(send(sink.port, messages))
    assert smtp.stock_calls == 0
    received = sink.messages(len(messages))
    # smtp-sink undoes the stuffing and writes LF line ends
    expected = sorted(as_received(m).replace(b"\r\n", b"\n") for m in messages)
    assert sorted(received) == expected


# MAIL and RCPT -------------------------------------------------------------------------------
@settings(max_examples=300)
@given(st.from_regex(smtpdata.DOT_ATOM, fullmatch=True).filter(lambda a: len(a) <= 254))
def test_a_dot_atom_address_is_what_aiosmtplib_would_quote(address: str) -> None:
    assert quote_address(address) == f"<{address}>"


@pytest.mark.parametrize("address", [
    "Reader <reader@example.org>", '"odd one"@example.org', "a..b@example.org",
    "a.@example.org", "reader@example..org", "reader@-example.org", "r\u00e9@example.org",
    "reader@example.org ", "", "reader@[127.0.0.1]"])
def test_other_addresses_are_left_to_aiosmtplib(address: str) -> None:
    assert not smtpdata.DOT_ATOM.fullmatch(address)


class CountingEnvelope(CountingSMTP):
    """Counts the stock `mail()` and `rcpt()` calls too."""

    stock_envelope = 0

    async def mail(self, sender: str, /, **kwargs: Any) -> aiosmtplib.SMTPResponse:
        self.stock_envelope += 1
        return await super().mail(sender, **kwargs)

    async def rcpt(self, recipient: str, /, **kwargs: Any) -> aiosmtplib.SMTPResponse:
        self.stock_envelope += 1
        return await super().rcpt(recipient, **kwargs)


async def envelope(port: int, sender: str, recipient: str) -> CountingEnvelope:
    smtp = CountingEnvelope(hostname="127.0.0.1", port=port, timeout=5, start_tls=False)
    await smtp.connect()
    await smtp.ehlo()  # as SmtpTransport does; before it, MAIL goes the stock way (and EHLOs)
    try:
        await smtpdata.mail(smtp, sender, ["SIZE=20"])
        await smtpdata.rcpt(smtp, recipient)
        await smtpdata.data(smtp, b"Subject: x\r\n\r\nbody\r\n")
    finally:
        await smtp.quit()
    return smtp


@pytest.mark.parametrize(("sender", "recipient", "stock"), [
    ("bounces+Ab3_x-9=Q@example.org", "first.last+tag@mail.example.org", 0),
    ("Digest <digest@example.org>", "Reader <reader@example.org>", 2),
])
def test_the_envelope_arrives_as_given(server: SmtpServer, sender: str, recipient: str,
                                       stock: int) -> None:
    smtp = asyncio.run(envelope(server.port, sender, recipient))
    assert smtp.stock_envelope == stock
    got = server.received[0]
    assert (got.sender, got.recipients) == (sender.split("<")[-1].rstrip(">"),
                                            (recipient.split("<")[-1].rstrip(">"),))


@pytest.mark.parametrize(("faults", "code"), [
    (Faults(reject=frozenset({"reader@example.org"})), 550), (Faults(rcpt_tempfail=1), 451)])
def test_a_refused_recipient_raises_as_aiosmtplib_does(faults: Faults, code: int) -> None:
    with SmtpServer(faults=faults) as running, pytest.raises(
            aiosmtplib.SMTPRecipientRefused) as refused:
        asyncio.run(envelope(running.port, SENDER, "reader@example.org"))
    assert (refused.value.code, refused.value.recipient) == (code, "reader@example.org")


# PIPELINING (RFC 2920) -----------------------------------------------------------------------
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
if uvloop is not None:  # `digest send` runs on uvloop; the tests' own loop is asyncio's
    LOOPS["uvloop"] = uvloop.new_event_loop


def run_on(loop: str, main: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        return runner.run(main)


async def connect(port: int, *, timeout: float = 5, ca_file: Path | None = None
                  ) -> aiosmtplib.SMTP:
    """Connected and greeted as SmtpTransport does it (EHLO; STARTTLS and EHLO again)."""
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=timeout, start_tls=False)
    await smtp.connect()
    await smtp.ehlo()
    if ca_file is not None:
        context = ssl.create_default_context(cafile=str(ca_file))
        await smtp.starttls(tls_context=context, server_hostname="localhost")
        await smtp.ehlo()
    return smtp


async def pipelined_send(smtp: aiosmtplib.SMTP, message: bytes,
                         recipient: str = RECIPIENT) -> aiosmtplib.SMTPResponse:
    """One message the way SmtpTransport sends it where the server offers PIPELINING."""
    plan = smtpdata.pipelined(smtp, SENDER, recipient, message)
    assert plan is not None
    options = [f"SIZE={len(message)}"] + ([] if message.isascii() else ["BODY=8BITMIME"])
    await smtpdata.envelope(smtp, plan, options)
    return await smtpdata.content(smtp, plan.wire)


async def send_all_pipelined(port: int, messages: list[bytes], *,
                             ca_file: Path | None = None) -> type:
    smtp = await connect(port, ca_file=ca_file)
    try:
        for message in messages:
            assert (await pipelined_send(smtp, message)).code == 250
        return type(smtp.protocol)
    finally:
        await smtp.quit()


Replies = tuple[bytes, bytes, bytes]  # to MAIL, RCPT and DATA
OK: Replies = (b"250 sender ok", b"250 recipient ok", b"354 go ahead")


class Scripted:
    """A raw SMTP server for the pipelined exchange: replies per recipient from `script`
    (default all OK; then `final` after the data), and a MAIL reply held until the
    group's DATA has come, or `patience` seconds have passed: with patience None a client
    that waits for each reply before the next command waits forever. `grouped` counts the
    MAIL commands whose RCPT and DATA came without waiting for MAIL's reply."""

    def __init__(self, script: dict[str, Replies] | None = None, *,
                 patience: float | None = None, final: bytes = b"250 kept\r\n",
                 hang_up_after_group: bool = False, chain_patience: float | None = None,
                 finals: dict[str, bytes] | None = None) -> None:
        self.script = script or {}
        self.patience = patience
        self.final = final
        self.finals = finals or {}  # the reply after the data, per recipient
        self.hang_up_after_group = hang_up_after_group
        # with chain_patience, the reply after a message's data is held until the next
        # command has come, or that many seconds: `chained` counts the messages whose
        # MAIL came without waiting for the reply to the message before
        self.chain_patience = chain_patience
        self.received: list[bytes] = []
        self.grouped = self.sequential = self.chained = 0
        self._next: bytes | None = None  # a line read early, while a reply was held
        self._chaining = False  # that line came before the reply it waited for

    async def _line(self, reader: asyncio.StreamReader) -> bytes:
        line, self._next = self._next, None
        return line if line is not None else await reader.readline()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 scripted ESMTP\r\n")
        try:
            while line := await self._line(reader):
                verb = line[:4].upper()
                if verb == b"MAIL" and self._chaining:
                    self.chained += 1
                self._chaining = False
                if verb == b"EHLO":
                    writer.write(b"250-scripted\r\n250-PIPELINING\r\n250-SIZE 10000000\r\n"
                                 b"250 8BITMIME\r\n")
                elif verb == b"MAIL":
                    await self._group(reader, writer)
                elif verb in (b"RSET", b"NOOP"):
                    writer.write(b"250 ok\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    break
                else:
                    writer.write(b"500 what\r\n")
        finally:
            writer.close()

    async def _group(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            rcpt = await asyncio.wait_for(reader.readline(), self.patience)
        except TimeoutError:  # a client waiting for MAIL's reply: serve it one at a time
            self.sequential += 1
            writer.write(OK[0] + b"\r\n")
            rcpt = await reader.readline()
            to = rcpt.split(b"<")[-1].split(b">")[0].decode()
            writer.write(self.script.get(to, OK)[1] + b"\r\n")
            assert (await reader.readline()).startswith(b"DATA")
            writer.write(self.script.get(to, OK)[2] + b"\r\n")
        else:
            self.grouped += 1
            to = rcpt.split(b"<")[-1].split(b">")[0].decode()
            assert (await reader.readline()).startswith(b"DATA")
            if self.hang_up_after_group:
                writer.close()
                return
            writer.write(b"".join(reply + b"\r\n" for reply in self.script.get(to, OK)))
        if not self.script.get(to, OK)[2].startswith(b"354"):
            return
        lines = []
        while (line := await reader.readline()) != b".\r\n":
            if not line:  # the client hung up mid-message
                return
            lines.append(line[1:] if line.startswith(b".") else line)
        self.received.append(b"".join(lines))
        if self.chain_patience is not None:
            try:
                self._next = await asyncio.wait_for(reader.readline(), self.chain_patience)
            except TimeoutError:  # a client waiting for this reply before its next command
                pass
            else:
                self._chaining = True
        writer.write(self.finals.get(to, self.final))


async def with_scripted(server: Scripted, client: Callable[[int], Awaitable[T]]) -> T:
    """Run *client* against *server* on a free loopback port, in this event loop."""
    listening = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    async with listening:
        return await client(listening.sockets[0].getsockname()[1])


@pytest.mark.parametrize("loop", LOOPS)
def test_the_commands_go_together_and_the_bodies_arrive_intact(loop: str) -> None:
    names = sorted(TRICKY)
    server = Scripted()  # no patience: a client that waits for MAIL's reply hangs
    kind = run_on(loop, with_scripted(server, lambda port: send_all_pipelined(
        port, [TRICKY[n] for n in names])))
    assert kind is smtpdata.PipeliningProtocol
    assert (server.grouped, server.sequential) == (len(names), 0)
    assert server.received == [as_received(TRICKY[n]) for n in names]


def test_the_scripted_server_would_hang_a_client_that_waits() -> None:
    """The test above can fail: a client that waits for each reply meets a timeout."""
    async def waiting(port: int) -> None:
        smtp = await connect(port, timeout=0.5)
        with pytest.raises(aiosmtplib.SMTPTimeoutError):
            await smtpdata.mail(smtp, SENDER, [])
        smtp.close()

    asyncio.run(with_scripted(Scripted(), waiting))


REFUSALS: list[tuple[Replies, type[Exception], int]] = [
    ((b"550 sender refused", b"503 need MAIL", b"503 need RCPT"),
     aiosmtplib.SMTPSenderRefused, 550),
    ((b"250 ok", b"550 5.1.1 no such user", b"554 no valid recipients"),
     aiosmtplib.SMTPRecipientRefused, 550),
    ((b"250 ok", b"451 4.7.1 greylisted", b"554 no valid recipients"),
     aiosmtplib.SMTPRecipientRefused, 451),
    ((b"250 ok", b"250 ok", b"452 4.3.1 out of space"), aiosmtplib.SMTPDataError, 452),
    # accepted DATA after refusing the only recipient (RFC 2920 says it must not): the
    # message is ended at once, empty, and the refusal raised
    ((b"250 ok", b"550 no such user", b"354 go ahead"), aiosmtplib.SMTPRecipientRefused, 550),
]


@pytest.mark.parametrize(("replies", "error", "code"), REFUSALS)
def test_a_refusal_raises_what_aiosmtplib_raises_and_the_link_carries_on(
        replies: Replies, error: type[aiosmtplib.SMTPResponseException], code: int) -> None:
    server = Scripted({"refused@example.org": replies})

    async def client(port: int) -> None:
        smtp = await connect(port)
        with pytest.raises(error) as raised:
            await pipelined_send(smtp, b"Subject: no\r\n\r\nsecret\r\n", "refused@example.org")
        assert raised.value.code == code
        assert smtp.is_connected
        await smtp.rset()  # as SmtpTransport does after a failed transaction
        assert (await pipelined_send(smtp, b"Subject: yes\r\n\r\nhello\r\n")).code == 250
        await smtp.quit()

    asyncio.run(with_scripted(server, client))
    ended_empty = [b""] if replies[2].startswith(b"354") else []
    assert server.received == [*ended_empty, b"Subject: yes\r\n\r\nhello\r\n"]


@pytest.mark.parametrize(("server", "error"), [
    (Scripted({RECIPIENT: (b"421 4.3.2 shutting down", b"421 closing", b"421 closing")}),
     aiosmtplib.SMTPSenderRefused),
    (Scripted({RECIPIENT: (b"250 ok", b"this is not SMTP", b"354 go")}),
     aiosmtplib.SMTPResponseException),
    (Scripted(hang_up_after_group=True), aiosmtplib.SMTPServerDisconnected),
    (Scripted(final=b"250-kept, and\r\n"), aiosmtplib.SMTPTimeoutError),  # never ends
])
def test_a_broken_exchange_raises_and_closes_the_link(server: Scripted,
                                                      error: type[Exception]) -> None:
    async def client(port: int) -> bool:
        smtp = await connect(port, timeout=0.5)
        with pytest.raises(error):
            await pipelined_send(smtp, b"Subject: x\r\n\r\nbody\r\n")
        return smtp.is_connected  # read now: the server hangs up when the test ends

    # replies out of step, or a server going away: nothing more goes over this link
    assert not asyncio.run(with_scripted(server, client))


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "starttls"])
def test_aiosmtpd_receives_pipelined_messages_intact(loop: str, tls: bool) -> None:
    names = sorted(TRICKY)
    with SmtpServer(tls="starttls" if tls else None) as running:
        kind = run_on(loop, send_all_pipelined(running.port, [TRICKY[n] for n in names],
                                               ca_file=running.ca_file if tls else None))
        assert kind is smtpdata.PipeliningProtocol
        assert [r.data for r in running.received] == [as_received(TRICKY[n]) for n in names]


def test_smtp_sink_receives_pipelined_messages_intact(sink: Sink) -> None:
    messages = [TRICKY[n] for n in sorted(TRICKY)]
    kind = asyncio.run(send_all_pipelined(sink.port, messages))
    assert kind is smtpdata.PipeliningProtocol  # smtp-sink offers PIPELINING
    expected = sorted(as_received(m).replace(b"\r\n", b"\n") for m in messages)
    assert sorted(sink.messages(len(messages))) == expected


def test_without_the_extension_nothing_is_pipelined() -> None:
    async def client(port: int) -> tuple[smtpdata.Pipelined | None, type]:
        smtp = await connect(port)
        try:
            return smtpdata.pipelined(smtp, SENDER, RECIPIENT, b"x\r\n"), type(smtp.protocol)
        finally:
            await smtp.quit()

    with SmtpServer(pipelining=False) as running:
        assert asyncio.run(client(running.port)) == (None, SMTPProtocol)


@pytest.mark.parametrize("pipelining", [True, False])
def test_smtp_pipelining_false_sends_one_command_at_a_time(pipelining: bool) -> None:
    server = Scripted(patience=0.3)  # serves both kinds of client, and counts them

    async def client(port: int) -> list[Outcome]:
        settings = SmtpSettings(host="127.0.0.1", port=port, security="none", timeout=5,
                                concurrency=1, pipelining=pipelining)
        outcomes: list[Outcome] = []

        async def record(outcome: Outcome) -> None:
            outcomes.append(outcome)

        async def messages() -> AsyncIterator[Outgoing]:
            for n in range(3):
                yield Outgoing(f"k{n}", SENDER, f"r{n}@example.org",
                               b"Subject: x\r\n\r\nbody\r\n")

        await SmtpTransport(settings).deliver(messages(), record)
        return outcomes

    outcomes = asyncio.run(with_scripted(server, client))
    assert [o.status for o in outcomes] == ["sent"] * 3
    assert (server.grouped, server.sequential) == ((3, 0) if pipelining else (0, 3))


# a message's content with the next one's MAIL, RCPT and DATA in one write ---------------------
def options_of(message: bytes) -> list[str]:
    return [f"SIZE={len(message)}"] + ([] if message.isascii() else ["BODY=8BITMIME"])


def plan_of(smtp: aiosmtplib.SMTP, message: bytes,
            recipient: str = RECIPIENT) -> smtpdata.Pipelined:
    plan = smtpdata.pipelined(smtp, SENDER, recipient, message)
    assert plan is not None
    return plan


async def send_all_chained(port: int, messages: list[bytes], *,
                           ca_file: Path | None = None) -> type:
    """Each message's content in one write with the next one's MAIL, RCPT and DATA, as
    SmtpTransport sends the messages of one connection one after another."""
    smtp = await connect(port, ca_file=ca_file)
    try:
        plans = [plan_of(smtp, message) for message in messages]
        await smtpdata.envelope(smtp, plans[0], options_of(messages[0]))
        for plan, following, message in zip(plans, plans[1:], messages[1:], strict=False):
            reply, refused = await smtpdata.chained(smtp, plan.wire, following,
                                                    options_of(message))
            assert (reply.code, refused) == (250, None)
        assert (await smtpdata.content(smtp, plans[-1].wire)).code == 250
        return type(smtp.protocol)
    finally:
        await smtp.quit()


@pytest.mark.parametrize("loop", LOOPS)
def test_each_message_goes_with_the_next_ones_envelope_and_arrives_intact(loop: str) -> None:
    names = sorted(TRICKY)
    # the reply to a message is held until the next MAIL came: a client waiting for it
    # before sending that MAIL is not counted as chained
    server = Scripted(chain_patience=0.5)
    run_on(loop, with_scripted(server, lambda port: send_all_chained(
        port, [TRICKY[n] for n in names])))
    assert (server.chained, server.grouped, server.sequential) == (len(names) - 1,
                                                                   len(names), 0)
    assert server.received == [as_received(TRICKY[n]) for n in names]


def test_the_chained_count_can_fail() -> None:
    """A client that waits for each message's reply before the next MAIL is not counted."""
    server = Scripted(chain_patience=0.2)
    asyncio.run(with_scripted(server, lambda port: send_all_pipelined(port, [b"a\r\n"] * 3)))
    assert (server.chained, server.grouped) == (0, 3)


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "starttls"])
def test_aiosmtpd_receives_chained_messages_intact(loop: str, tls: bool) -> None:
    names = sorted(TRICKY)
    with SmtpServer(tls="starttls" if tls else None) as running:
        run_on(loop, send_all_chained(running.port, [TRICKY[n] for n in names],
                                      ca_file=running.ca_file if tls else None))
        assert [r.data for r in running.received] == [as_received(TRICKY[n]) for n in names]


def test_smtp_sink_receives_chained_messages_intact(sink: Sink) -> None:
    messages = [TRICKY[n] for n in sorted(TRICKY)]
    asyncio.run(send_all_chained(sink.port, messages))
    expected = sorted(as_received(m).replace(b"\r\n", b"\n") for m in messages)
    assert sorted(sink.messages(len(messages))) == expected


@pytest.mark.parametrize(("replies", "error", "code"), REFUSALS)
def test_the_following_envelope_refused_is_returned_and_the_link_carries_on(
        replies: Replies, error: type[aiosmtplib.SMTPResponseException], code: int) -> None:
    server = Scripted({"refused@example.org": replies})

    async def client(port: int) -> None:
        smtp = await connect(port)
        first = plan_of(smtp, b"Subject: first\r\n\r\nhello\r\n")
        await smtpdata.envelope(smtp, first, [])
        reply, refused = await smtpdata.chained(
            smtp, first.wire, plan_of(smtp, b"Subject: no\r\n\r\nsecret\r\n",
                                      "refused@example.org"), [])
        assert reply.code == 250  # the first message's own reply
        assert isinstance(refused, error) and refused.code == code
        assert smtp.is_connected
        await smtp.rset()  # as SmtpTransport does after a refused envelope
        assert (await pipelined_send(smtp, b"Subject: yes\r\n\r\nhello\r\n")).code == 250
        await smtp.quit()

    asyncio.run(with_scripted(server, client))
    ended_empty = [b""] if replies[2].startswith(b"354") else []
    assert server.received == [b"Subject: first\r\n\r\nhello\r\n", *ended_empty,
                               b"Subject: yes\r\n\r\nhello\r\n"]


def test_a_refused_message_does_not_stop_the_one_chained_after_it() -> None:
    server = Scripted(finals={"refused@example.org": b"554 5.7.1 not this one\r\n"})

    async def client(port: int) -> list[int]:
        smtp = await connect(port)
        first = plan_of(smtp, b"Subject: no\r\n\r\nspam?\r\n", "refused@example.org")
        second = plan_of(smtp, b"Subject: yes\r\n\r\nhello\r\n")
        await smtpdata.envelope(smtp, first, [])
        reply, refused = await smtpdata.chained(smtp, first.wire, second, [])
        assert refused is None  # the second's 354 came: its content goes next
        codes = [reply.code, (await smtpdata.content(smtp, second.wire)).code]
        await smtp.quit()
        return codes

    assert asyncio.run(with_scripted(server, client)) == [554, 250]
    assert server.received[-1] == b"Subject: yes\r\n\r\nhello\r\n"


# the transport: one round trip a message where it can -----------------------------------------
def transport_run(server: Scripted, count: int, current: Current | None = None,
                  **changes: Any) -> list[Outcome]:
    """*count* messages (to r0@, r1@, ...) through SmtpTransport, one connection."""
    async def client(port: int) -> list[Outcome]:
        settings = SmtpSettings(host="127.0.0.1", port=port, security="none", timeout=5,
                                concurrency=1, **changes)
        outcomes: list[Outcome] = []

        async def record(outcome: Outcome) -> None:
            outcomes.append(outcome)

        async def messages() -> AsyncIterator[Outgoing]:
            for n in range(count):
                yield Outgoing(f"r{n}@example.org", SENDER, f"r{n}@example.org",
                               f"Subject: {n}\r\n\r\nbody {n}\r\n".encode())

        await SmtpTransport(settings).deliver(messages(), record, current=current)
        return outcomes

    return asyncio.run(with_scripted(server, client))


@pytest.mark.parametrize(("changes", "chained"), [
    ({}, 4),  # every message but the first went with the one before it
    ({"per_connection": 2}, 2),  # never past a connection's last message
    ({"rate": 1000.0}, 0),  # paced: each MAIL waits for its turn
    ({"pipelining": False}, 0),
], ids=["default", "per_connection", "rate", "no pipelining"])
def test_the_transport_sends_each_message_with_the_next_ones_envelope(
        changes: dict[str, Any], chained: int) -> None:
    server = Scripted(chain_patience=0.3, patience=0.3)
    outcomes = transport_run(server, 5, **changes)
    assert [o.key for o in outcomes] == [f"r{n}@example.org" for n in range(5)]
    assert {o.status for o in outcomes} == {"sent"}
    assert server.chained == chained
    assert server.received == [f"Subject: {n}\r\n\r\nbody {n}\r\n".encode() for n in range(5)]


def test_a_message_taken_early_that_is_no_longer_ours_is_not_sent() -> None:
    """`current` is asked before each message; it says no (its lease lapsed and another
    sender took it) once this one's MAIL, RCPT and DATA were taken: the server waits for
    its content, so the link is dropped, the message goes without an outcome, and the next
    goes on a new connection."""
    asked: list[str] = []

    def current(outgoing: Outgoing) -> bool:
        asked.append(outgoing.key)
        return outgoing.key != "r2@example.org"

    server = Scripted(chain_patience=0.3)
    outcomes = transport_run(server, 4, current=current)
    assert [o.key for o in outcomes] == ["r0@example.org", "r1@example.org", "r3@example.org"]
    assert {o.status for o in outcomes} == {"sent"}
    assert b"body 2" not in b"".join(server.received)
    assert asked == [f"r{n}@example.org" for n in range(4)]
