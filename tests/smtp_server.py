"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, a free port, in its own thread.

It records what it receives and misbehaves on request, so delivery code is tested against
the real protocol rather than a mock:

    with SmtpServer(tls="starttls", auth=("digest", "s3cret")) as server:
        server.faults.rcpt_tempfail = 2          # 451 on the first two RCPTs
        ...deliver to 127.0.0.1:server.port, trusting server.ca_file...
        assert server.recipients() == [...]

or as a fixture in a test module:

    @pytest.fixture
    def server() -> Iterator[SmtpServer]:
        with SmtpServer() as running:
            yield running

The server offers PIPELINING (RFC 2920) unless `pipelining=False`, so digest's pipelined
path is the one most tests see, as it is with real relays.

TLS certificates come from a throwaway trustme CA (`ca_file` is its PEM). Faults can be set
before or after start; counters such as `connections` and `auth_attempts` only count what
clients do (the Controller's own start-up probe is not counted). Everything shared with the
server thread is guarded by one lock.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"


@dataclass
class Faults:
    """What the server does wrong; counts are "the first N times", shared by all connections."""

    greet_tempfail: int = 0  # 421 instead of the greeting, then hang up
    greet_silent: int = 0  # accept the connection but never greet (client times out)
    rcpt_tempfail: int = 0  # 451 on RCPT
    rcpt_tempfail_for: frozenset[str] = frozenset()  # 451 on RCPT for these, every time
    reject: frozenset[str] = frozenset()  # 550 on RCPT for these, every time
    data_tempfail: int = 0  # 451 after the message data
    drop_in_data: int = 0  # hang up after the data, before replying (message not kept)
    stall_in_data: int = 0  # sit on the data without replying (message not kept)
    stall_seconds: float = 5.0  # how long a stall lasts: longer than the client's timeout
    data_seconds: float = 0.0  # a slow server: how long each message takes before its reply


@dataclass(frozen=True)
class Received:
    """One message the server accepted."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes
    message_id: str | None
    connection: int  # which connection (1-based, in order of arrival) carried it
    at: float  # time.monotonic() when it was accepted


@dataclass
class _Used:
    """How many times each counted fault has fired so far."""

    greet_tempfail: int = 0
    greet_silent: int = 0
    rcpt_tempfail: int = 0
    data_tempfail: int = 0
    drop_in_data: int = 0
    stall_in_data: int = 0


class _Refuse(asyncio.Protocol):
    """Stands in for the SMTP session on a connection that gets 421 or silence."""

    def __init__(self, reply: bytes | None) -> None:
        self.reply = reply

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.reply is not None:
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(self.reply)
            transport.close()


@dataclass
class _State:
    faults: Faults
    lock: threading.Lock = field(default_factory=threading.Lock)
    used: _Used = field(default_factory=_Used)
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    auth_attempts: int = 0
    live: bool = False  # False during the Controller's start-up probe

    def fire(self, name: str, limit: int) -> bool:
        """Whether a "first N times" fault fires now (and count it if so)."""
        with self.lock:
            done = getattr(self.used, name)
            if done >= limit:
                return False
            setattr(self.used, name, done + 1)
            return True


class _Handler:
    """aiosmtpd handler hooks: record messages, inject the configured faults."""

    def __init__(self, state: _State, pipelining: bool) -> None:
        self.state = state
        self.pipelining = pipelining

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        """Offer PIPELINING, as postfix, Exim and the big relays do: aiosmtpd reads each
        command from its stream in turn, so commands written at once are served in order."""
        session.host_name = hostname  # what aiosmtpd does itself when there is no hook
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        faults = self.state.faults
        if address in faults.reject:
            return "550 5.1.1 No such user here"
        if address in faults.rcpt_tempfail_for or self.state.fire("rcpt_tempfail",
                                                                  faults.rcpt_tempfail):
            return "451 4.7.1 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        state = self.state
        faults = state.faults
        if state.fire("drop_in_data", faults.drop_in_data):
            assert server.transport is not None
            server.transport.close()
            await asyncio.sleep(3600)  # cancelled when the connection goes
        if state.fire("stall_in_data", faults.stall_in_data):
            await asyncio.sleep(faults.stall_seconds)
            return "451 4.3.0 Took too long, message not kept"
        if state.fire("data_tempfail", faults.data_tempfail):
            return "451 4.3.0 Temporary local problem"
        if faults.data_seconds:
            await asyncio.sleep(faults.data_seconds)
        data = envelope.original_content or b""
        message_id = BytesHeaderParser().parsebytes(data).get("Message-ID")
        with state.lock:
            state.received.append(Received(
                sender=envelope.mail_from or "", recipients=tuple(envelope.rcpt_tos),
                data=data, message_id=str(message_id) if message_id else None,
                connection=getattr(server, "connection_number", 0), at=time.monotonic()))
        return "250 2.0.0 OK queued"


class _Controller(Controller):
    """A Controller on a socket bound beforehand, so port 0 works and the port is known."""

    def __init__(self, state: _State, sock: socket.socket, pipelining: bool,
                 **kwargs: Any) -> None:
        self.state = state
        self.sock = sock
        super().__init__(_Handler(state, pipelining), hostname=HOST,
                         port=sock.getsockname()[1], **kwargs)

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self.sock,
                                       ssl=self.ssl_context)

    def factory(self) -> Any:
        state = self.state
        if not state.live:
            return super().factory()
        with state.lock:
            state.connections += 1
            number = state.connections
        faults = state.faults
        if state.fire("greet_tempfail", faults.greet_tempfail):
            return _Refuse(b"421 4.3.2 Too busy, try again later\r\n")
        if state.fire("greet_silent", faults.greet_silent):
            return _Refuse(None)
        smtp = super().factory()
        smtp.connection_number = number  # read back by the handler as `server.connection_number`
        return smtp


class SmtpServer:
    """aiosmtpd in a thread, with TLS, AUTH, recording and fault injection; see the module doc."""

    def __init__(self, *, tls: Literal["starttls", "implicit"] | None = None,
                 auth: tuple[str, str] | None = None, auth_require_tls: bool = True,
                 require_auth: bool = False,
                 cert_names: tuple[str, ...] = ("localhost", HOST),
                 faults: Faults | None = None, pipelining: bool = True) -> None:
        self.faults = faults or Faults()
        self._state = _State(self.faults)
        self._auth = auth
        self._dir = tempfile.TemporaryDirectory(prefix="smtp-server-")
        self.ca = trustme.CA()
        self.ca_file = Path(self._dir.name) / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert(*cert_names).configure_cert(server_tls)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # replies go out as they are made (accepted sockets inherit it): aiosmtpd writes
        # each reply on its own, and under Nagle the second of a pipelined group would
        # wait for the client's delayed ACK (40 ms). Servers that offer PIPELINING send a
        # group's replies together (RFC 2920, 3.2), so this is how they behave.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((HOST, 0))
        self.host = HOST
        self.port: int = sock.getsockname()[1]
        kwargs: dict[str, Any] = {"server_hostname": "localhost", "ready_timeout": 10,
                                  "auth_require_tls": auth_require_tls,
                                  "auth_required": require_auth}
        if tls == "starttls":
            kwargs["tls_context"] = server_tls
        elif tls == "implicit":
            kwargs["ssl_context"] = server_tls
        if auth is not None:
            kwargs["authenticator"] = self._authenticate
        self._controller = _Controller(self._state, sock, pipelining, **kwargs)

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: Any) -> AuthResult:
        with self._state.lock:
            self._state.auth_attempts += 1
        assert self._auth is not None
        ok = (isinstance(auth_data, LoginPassword)
              and (auth_data.login, auth_data.password) == tuple(
                  v.encode() for v in self._auth))
        return AuthResult(success=ok, handled=False)  # handled=False: server sends the 535

    def start(self) -> SmtpServer:
        self._controller.start()
        with self._state.lock:
            self._state.live = True
        return self

    def stop(self) -> None:
        self._controller.stop()
        self._dir.cleanup()

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    @property
    def received(self) -> list[Received]:
        with self._state.lock:
            return list(self._state.received)

    def recipients(self) -> list[str]:
        """Every recipient of every accepted message, in order of acceptance."""
        return [r for message in self.received for r in message.recipients]

    @property
    def connections(self) -> int:
        with self._state.lock:
            return self._state.connections

    @property
    def auth_attempts(self) -> int:
        with self._state.lock:
            return self._state.auth_attempts
