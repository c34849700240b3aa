"""SMTP delivery: many messages over a few long-lived, verified, authenticated connections.

`concurrency` workers each own one connection at a time. A worker takes a message, opens a
connection if it has none (or its connection is worn out: dropped, or `per_connection`
messages old), runs MAIL / RCPT / DATA (written together where the server offers
PIPELINING, see smtpdata), records the outcome, then takes the next message.
A message that failed for a transient reason goes back to the run's queue (digest.dispatch)
with a not-before time, so no connection sits idle waiting out its delay.

aiosmtplib's errors are translated here: into an `Outcome` for one message, or into
`DeliveryPaused` (and its subclasses) when going on would be pointless.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Literal

import aiosmtplib

from ..config import SmtpSettings
from ..errors import DeliveryPaused, SmtpAuthFailed, SmtpTlsFailed
from ..util.tls import tls_context
from . import smtpdata
from .dispatch import Dispatch, Held, backoff
from .transport import Current, Outcome, Outgoing, Record

log = logging.getLogger(__name__)

_AUTH_PREFERENCE = ("plain", "login", "cram-md5")  # one method is tried, never a series
_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH = 62, 64  # OpenSSL's X509_V_ERR_* codes
_AUTH_REQUIRED = 530  # RFC 4954: authentication (or STARTTLS, RFC 3207) required
_COMPLETED, _UNAVAILABLE = 250, 421


@dataclass(frozen=True)
class _Attempt:
    """How one try at a message (or at a connection) ended."""

    status: Literal["sent", "failed", "transient"]
    code: int | None
    reply: str


def _sent(response: aiosmtplib.SMTPResponse) -> _Attempt:
    return _Attempt("sent", response.code, _one_line(f"{response.code} {response.message}"))


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _failure(exc: Exception, during: str) -> _Attempt:
    """An aiosmtplib (or socket) error as a transient or permanent failure."""
    if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code > 0:
        status: Literal["failed", "transient"] = "failed" if exc.code >= 500 else "transient"
        return _Attempt(status, exc.code, _one_line(f"{exc.code} {exc.message}"))
    if isinstance(exc, TimeoutError):
        return _Attempt("transient", None, f"timed out during {during}")
    if isinstance(exc, ValueError):  # an address aiosmtplib will not put on the wire
        return _Attempt("failed", None, _one_line(str(exc)))
    return _Attempt("transient", None, _one_line(f"{during}: {getattr(exc, 'message', exc)}"))


def _cert_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind `exc`, however aiosmtplib wrapped it."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _cert_hint(error: ssl.SSLCertVerificationError) -> str:
    if error.verify_code in (_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH):
        fix = "set smtp.host to a name the server's certificate is for"
    else:
        fix = ("if the server's certificate comes from a private CA, point smtp.ca_file at "
               "that CA's PEM file")
    return f"{fix}; then run `digest send` again"




# what became of the message sent after another in its write (_Connection.send): its
# envelope accepted (send its content next), refused, or nothing of it sent
_Next = smtpdata.Pipelined | _Attempt | None


class _Connection:
    """One open SMTP session, and how many transactions it has carried."""

    def __init__(self, smtp: aiosmtplib.SMTP, number: int, pipelining: bool = True,
                 per_connection: int = 1) -> None:
        self.smtp = smtp
        self.per_connection = per_connection
        self.number = number
        self.used = 0
        self.pipelining = pipelining  # smtp.pipelining: where the server offers it

    def worn(self, per_connection: int) -> bool:
        return self.used >= per_connection or not self.smtp.is_connected

    def _options(self, message: Outgoing) -> list[str]:
        smtp, options = self.smtp, []
        if smtp.supports_extension("size"):
            options.append(f"SIZE={len(message.data)}")
        if smtp.supports_extension("8bitmime") and not message.data.isascii():
            options.append("BODY=8BITMIME")
        return options

    def _plan(self, message: Outgoing) -> smtpdata.Pipelined | None:
        if not self.pipelining:
            return None
        return smtpdata.pipelined(self.smtp, message.sender, message.recipient, message.data)

    async def send(self, message: Outgoing, *, opened: smtpdata.Pipelined | None = None,
                   following: Outgoing | None = None) -> tuple[_Attempt, _Next]:
        """Send *message*: its MAIL, RCPT and DATA unless *opened* (their 354 came with the
        message before it), then its content. With *following*, where the server pipelines
        and this connection may carry one more, the following message's MAIL, RCPT and DATA
        go in the same write as this content: one round trip a message. What became of
        *following* is the second value: its plan to pass back as *opened* (its 354 came),
        its failed attempt (refused before its content), or None (nothing was sent of it:
        send it as any other)."""
        if opened is None:
            self.used += 1
        smtp = self.smtp
        during = "MAIL"
        try:
            plan = opened if opened is not None else self._plan(message)
            if plan is None:
                await smtpdata.mail(smtp, message.sender, self._options(message))
                during = "RCPT"
                await smtpdata.rcpt(smtp, message.recipient)
                during = "DATA"
                response = await smtpdata.data(smtp, message.data)  # no regex: CRLF already
                return _sent(response), None
            if opened is None:  # the server takes MAIL, RCPT and DATA in one write
                during = "MAIL, RCPT and DATA"
                await smtpdata.envelope(smtp, plan, self._options(message))
            during = "the message data"
            after = None if following is None or self.used >= self.per_connection \
                else self._plan(following)
            if following is None or after is None:
                return _sent(await smtpdata.content(smtp, plan.wire)), None
            self.used += 1
            response, refused = await smtpdata.chained(smtp, plan.wire, after,
                                                       self._options(following))
        except (aiosmtplib.SMTPException, OSError, ValueError) as exc:
            await self._reset()
            return _failure(exc, during), None
        if response.code != _COMPLETED:
            attempt = _failure(aiosmtplib.SMTPDataError(response.code, response.message),
                               during)
            if response.code == _UNAVAILABLE:  # as aiosmtplib does: the server is closing
                smtp.close()
                return attempt, None
        else:
            attempt = _sent(response)
        if refused is None:
            return attempt, after
        await self._reset()  # its MAIL may have been taken: clear that transaction
        return attempt, _failure(refused, "MAIL, RCPT and DATA")

    async def _reset(self) -> None:
        """Clear a half-done transaction so that the connection can carry the next one."""
        if not self.smtp.is_connected:
            return
        try:
            await self.smtp.rset()
        except (aiosmtplib.SMTPException, OSError):
            self.smtp.close()

    async def close(self) -> None:
        """QUIT politely; a server that has gone already gets no goodbye."""
        try:
            if self.smtp.is_connected:
                await self.smtp.quit()
        except (aiosmtplib.SMTPException, OSError):
            pass
        finally:
            self.smtp.close()


@dataclass
class _Links:
    """The connections' side of one run: until one connection has opened, connects are
    made one at a time, so a server that is down or a wrong password is met once."""

    local_hostname: str  # what EHLO says: looked up once per run, not once per connection
    first_connect: asyncio.Lock = field(default_factory=asyncio.Lock)
    connected_once: bool = False
    opened: int = 0


class SmtpTransport:
    """Relays messages through one SMTP server (a `Transport`; see digest.delivery)."""

    def __init__(self, settings: SmtpSettings, *, password: str | None = None) -> None:
        if settings.security not in ("starttls", "tls", "none"):
            raise ValueError(f"smtp.security must be starttls, tls or none, "
                             f"not {settings.security!r}")
        if settings.username is not None and password is None:
            raise ValueError(f"smtp.username is {settings.username!r} but no password was "
                             f"given (smtp.password_env names the variable that holds it)")
        if settings.security == "none" and settings.username is not None:
            log.warning("smtp.security is 'none': the password for %r will cross the "
                        "network unencrypted", settings.username)
        self._settings = settings
        self._password = password
        self._tls = (tls_context(settings.ca_file, "smtp.ca_file")
                     if settings.security != "none" else None)
        self._where = f"{settings.host}:{settings.port}"
        self._rng = random.Random()

    async def deliver(self, messages: AsyncIterator[Outgoing], record: Record, *,
                      stop: asyncio.Event | None = None,
                      current: Current | None = None) -> None:
        """Send every message; see `transport.Transport` for the contract."""
        settings = self._settings
        fqdn = await asyncio.to_thread(socket.getfqdn)
        links = _Links(fqdn if fqdn and not any(c.isspace() for c in fqdn) else "localhost")
        # at most 4 messages per connection held at once: in flight or waiting to retry
        run = Dispatch(messages, buffer=4 * settings.concurrency,
                       pause_after=settings.pause_after, rate=settings.rate, stop=stop)
        watcher = asyncio.create_task(run.watch()) if stop is not None else None
        try:
            await asyncio.gather(*(self._worker(run, links, record, current)
                                   for _ in range(settings.concurrency)))
        finally:
            run.close()
            if watcher is not None:
                watcher.cancel()
        if run.error is not None:
            raise run.error

    async def _worker(self, run: Dispatch, links: _Links, record: Record,
                      current: Current | None) -> None:
        connection: _Connection | None = None
        refused = 0  # connects in a row that failed on this worker
        carried: Held | None = None  # taken with the last message: sent next
        opened: smtpdata.Pipelined | None = None  # its MAIL, RCPT and DATA were taken
        try:
            while True:
                if carried is not None:
                    held, carried = carried, None
                else:
                    taken = await run.take()
                    if taken is None:
                        break
                    held = taken
                # asked of every message, not only the one taken with the last: a pull
                # begun ahead, or a retry, may have waited out a freeze of this process
                if current is not None and not current(held.message):
                    if opened is not None and connection is not None:
                        # the server waits for its content: only hanging up drops it
                        connection.smtp.close()
                        opened = None
                    await run.settle()
                    continue
                if opened is None:
                    if connection is not None and connection.worn(self._settings.per_connection):
                        log.debug("connection %d to %s %s after %d messages; reconnecting",
                                  connection.number, self._where,
                                  "closed" if connection.smtp.is_connected else "lost",
                                  connection.used)
                        await connection.close()
                        connection = None
                    if connection is None:
                        opened_link = await self._connect(run, links)
                        if opened_link is None:
                            break
                        if isinstance(opened_link, _Attempt):
                            refused += 1
                            await self._settle(run, record, held, opened_link, connecting=True)
                            await run.sleep(backoff(self._rng, self._settings.backoff, refused))
                            continue
                        connection, refused = opened_link, 0
                    if not await run.pace():
                        break
                assert connection is not None
                following, broken = None, None
                if connection.pipelining:
                    try:
                        following = await run.take_ready()
                    except Exception as exc:  # the stream failed: this message goes first
                        broken = exc
                attempt, after = await connection.send(
                    held.message, opened=opened,
                    following=None if following is None else following.message)
                opened = None
                await self._settle(run, record, held, attempt)
                if broken is not None:
                    raise broken
                if following is None:
                    continue
                if isinstance(after, _Attempt):
                    await self._settle(run, record, following, after)
                else:  # its envelope taken (send its content), or nothing of it sent
                    carried, opened = following, after
        except asyncio.CancelledError:
            if connection is not None:
                connection.smtp.close()
                connection = None
            raise
        except Exception as exc:  # a fatal SMTP problem, or record() or the stream failing
            await run.halt(exc)
        finally:
            if connection is not None:
                await connection.close()

    async def _settle(self, run: Dispatch, record: Record, held: Held, attempt: _Attempt, *,
                      connecting: bool = False) -> None:
        """Record a final outcome, or queue the message for another attempt."""
        if attempt.code == _AUTH_REQUIRED:  # every message would meet the same 530
            raise SmtpAuthFailed(
                f"{self._where} will not take mail before login: {attempt.reply}",
                hint="set smtp.username and smtp.password_env (and smtp.security, if the "
                     "reply asks for TLS); then run `digest send` again")
        settings = self._settings
        attempts = held.attempts + 1
        recipient = held.message.recipient
        reason = f"cannot connect to {self._where}: {attempt.reply}" if connecting \
            else f"{recipient}: {attempt.reply}"
        if attempt.status == "transient" and attempts < settings.max_attempts:
            delay = backoff(self._rng, settings.backoff, attempts)
            log.info("%s: %s (attempt %d of %d); retrying in %.1fs", recipient, attempt.reply,
                     attempts, settings.max_attempts, delay)
            await run.later(replace(held, attempts=attempts), delay)
            if connecting:
                await run.failed(reason)
            return
        status = "deferred" if attempt.status == "transient" else attempt.status
        await record(Outcome(held.message.key, status, attempt.code, attempt.reply, attempts))
        await run.settle()
        if status == "sent":
            run.succeeded()
            return
        log.warning("%s %s after %d attempt(s): %s", recipient, status, attempts, attempt.reply)
        await run.failed(reason)

    async def _connect(self, run: Dispatch, links: _Links) -> _Connection | _Attempt | None:
        """A new connection, or why none could be had; None if the run halted meanwhile."""
        if links.connected_once:
            return await self._try_open(links)
        async with links.first_connect:
            if run.halted.is_set():
                return None
            opened = await self._try_open(links)
            links.connected_once = isinstance(opened, _Connection)
            return opened

    async def _try_open(self, links: _Links) -> _Connection | _Attempt:
        try:
            smtp = await self._open(links.local_hostname)
        except DeliveryPaused:
            raise
        except (aiosmtplib.SMTPException, OSError, ValueError) as exc:
            untrusted = _cert_error(exc)
            if untrusted is not None:
                raise SmtpTlsFailed(
                    f"the certificate of {self._where} was not accepted: "
                    f"{untrusted.verify_message or untrusted}", hint=_cert_hint(untrusted),
                ) from exc
            attempt = _failure(exc, "connect")
            if attempt.status == "failed":
                raise DeliveryPaused(f"{self._where} refused the session: {attempt.reply}",
                                     1) from exc
            log.warning("cannot connect to %s: %s", self._where, attempt.reply)
            return attempt
        links.opened += 1
        level = logging.INFO if links.opened == 1 else logging.DEBUG
        log.log(level, "connection %d to %s open (%s%s)", links.opened, self._where,
                self._settings.security,
                f", as {self._settings.username}" if self._settings.username else "")
        return _Connection(smtp, links.opened, self._settings.pipelining,
                           self._settings.per_connection)

    def client(self, local_hostname: str = "localhost") -> aiosmtplib.SMTP:
        """The (unconnected) aiosmtplib client a connection starts from: `digest check`
        builds it too, so a value aiosmtplib refuses shows there rather than at send time."""
        settings = self._settings
        # the types aiosmtplib documents, whatever a hand-built SmtpSettings holds
        return aiosmtplib.SMTP(
            hostname=settings.host, port=int(settings.port), timeout=float(settings.timeout),
            local_hostname=local_hostname, use_tls=settings.security == "tls",
            start_tls=False, tls_context=self._tls if settings.security == "tls" else None)

    async def probe(self) -> str:
        """Connect, EHLO, STARTTLS and AUTH exactly as a send does, then QUIT; send nothing.

        What was done, for the user (`digest check --smtp`); raises DeliveryPaused (or
        SmtpAuthFailed, SmtpTlsFailed) saying why the server could not be used.
        """
        fqdn = await asyncio.to_thread(socket.getfqdn)
        try:
            smtp = await self._open(fqdn if fqdn and not any(c.isspace() for c in fqdn)
                                    else "localhost")
        except DeliveryPaused:
            raise
        except (aiosmtplib.SMTPException, OSError, ValueError) as exc:
            untrusted = _cert_error(exc)
            if untrusted is not None:
                raise SmtpTlsFailed(f"the certificate of {self._where} was not accepted: "
                                    f"{untrusted.verify_message or untrusted}",
                                    hint=_cert_hint(untrusted)) from None
            attempt = _failure(exc, "connect")
            raise DeliveryPaused(f"cannot connect to {self._where}: {attempt.reply}", 1,
                                 hint="check smtp.host and smtp.port, and that the server "
                                      "is up and reachable from here") from None
        done = ["connected", "EHLO"]
        if self._settings.security == "starttls":
            done.append("STARTTLS")
        elif self._settings.security == "tls":
            done[0] = "connected with TLS"
        if self._settings.username is not None:
            done.append(f"AUTH as {self._settings.username}")
        await _Connection(smtp, 0).close()
        return f"{self._where}: " + ", ".join(done) + "; nothing sent"

    async def _open(self, local_hostname: str) -> aiosmtplib.SMTP:
        """Connect, secure and log in, or raise; TLS is never skipped silently."""
        settings = self._settings
        smtp = self.client(local_hostname)
        try:
            await smtp.connect()
            await smtp.ehlo()
            if settings.security == "starttls":
                if not smtp.supports_extension("starttls"):
                    raise SmtpTlsFailed(
                        f"{self._where} does not offer STARTTLS, and smtp.security is "
                        f"'starttls': refusing to send in plaintext",
                        hint="set smtp.security to 'tls' if the server expects TLS from the "
                             "start, or to 'none' to send unencrypted on purpose; then run "
                             "`digest send` again")
                await smtp.starttls(tls_context=self._tls)
                await smtp.ehlo()
            if settings.username is not None:
                await self._login(smtp, settings.username)
        except BaseException:
            smtp.close()
            raise
        return smtp

    async def _login(self, smtp: aiosmtplib.SMTP, username: str) -> None:
        """Log in with one method; trying a series would only multiply failed attempts."""
        hint = (f"check smtp.username and the password in ${self._settings.password_env}; "
                if self._settings.password_env else "check smtp.username and the password; ")
        hint += "then run `digest send` again"
        methods = [m for m in _AUTH_PREFERENCE if m in smtp.server_auth_methods]
        if not methods:
            offered = " ".join(smtp.server_auth_methods) or "none"
            raise SmtpAuthFailed(f"{self._where} offers no AUTH method digest can use "
                                 f"(offered: {offered})", hint=hint)
        login = {"plain": smtp.auth_plain, "login": smtp.auth_login,
                 "cram-md5": smtp.auth_crammd5}[methods[0]]
        assert self._password is not None
        try:
            await login(username, self._password)
        except aiosmtplib.SMTPAuthenticationError as exc:
            if 400 <= exc.code < 500:  # e.g. 454: the server's problem, and temporary
                raise
            raise SmtpAuthFailed(f"{self._where} refused user {username!r}: "
                                 f"{_one_line(f'{exc.code} {exc.message}')}", hint=hint) from None
