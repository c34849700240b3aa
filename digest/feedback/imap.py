"""An IMAP folder as a Mailbox (feedback/mailbox.py says what is read and marked, and why).

stdlib imaplib over verified TLS; its errors, and the socket's and ssl's, are translated
here into one MailboxError each, naming the mailbox and what to do.
"""

from __future__ import annotations

import base64
import imaplib
import logging
import re
import socket
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from ..errors import MailboxError
from ..util.tls import tls_context
from .incoming import MAX_MESSAGE_BYTES, Incoming, Progress, too_big

if TYPE_CHECKING:
    from ..config import ImapSettings

log = logging.getLogger(__name__)
_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH = 62, 64  # OpenSSL's X509_V_ERR_* codes
_SIZES_PER_FETCH = 200  # UIDs per FETCH of sizes: keeps the command line short
_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")


def imap_where(settings: ImapSettings) -> str:
    """The folder as a URL for messages: imaps://user@host:port/folder (imap:// for STARTTLS)."""
    scheme = "imaps" if settings.security == "tls" else "imap"
    return f"{scheme}://{settings.username}@{settings.host}:{settings.port}/{settings.folder}"




def _quoted(value: str) -> str:
    """*value* as an IMAP quoted string (imaplib sends most arguments as they are)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _folder_name(folder: str) -> str:
    """*folder* in IMAP's modified UTF-7 (RFC 3501 5.1.3), so "Rückläufer" can be named."""
    out: list[str] = []
    wide: list[str] = []

    def flush() -> None:
        if wide:
            packed = base64.b64encode("".join(wide).encode("utf-16-be")).decode("ascii")
            out.append("&" + packed.rstrip("=").replace("/", ",") + "-")
            wide.clear()

    for char in folder:
        if " " <= char <= "~":
            flush()
            out.append("&-" if char == "&" else char)
        else:
            wide.append(char)
    flush()
    return "".join(out)


def _control_characters(*values: str) -> bool:
    """Whether a value would break the command it is sent in (CR, LF and the like)."""
    return any(ord(char) < 0x20 or ord(char) == 0x7F for value in values for char in value)


def _text(data: list[Any]) -> str:
    """A server's reply text, on one line."""
    parts = [item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
             for item in data if item is not None]
    return " ".join(" ".join(parts).split())[:300]


class ImapMailbox:
    """One IMAP folder, logged in and selected from construction until close()."""

    def __init__(self, settings: ImapSettings, *, checkpoint: str | None = None,
                 max_bytes: int = MAX_MESSAGE_BYTES,
                 environ: Mapping[str, str]) -> None:
        self.settings = settings
        self.max_bytes = max_bytes
        self._where = imap_where(settings)
        password = environ.get(settings.password_env)
        if not password:
            raise MailboxError(self._where, f"the environment variable "
                               f"{settings.password_env} is not set",
                               f"set {settings.password_env} to the password of "
                               f"{settings.username} on {settings.host}")
        if _control_characters(settings.username, settings.folder, password):
            raise MailboxError(self._where, "the user name, folder or password holds a "
                               "control character (such as a line break)",
                               "remove it from bounces.imap or from "
                               f"{settings.password_env}")
        context = tls_context(settings.ca_file, "bounces.imap.ca_file")
        self._imap = self._connect(context)
        try:
            self._login(password)
            self.uidvalidity = self._select()
        except BaseException:
            self.close()
            raise
        after = self._read_checkpoint(checkpoint)
        self._progress = Progress(after)

    @property
    def where(self) -> str:
        return self._where

    @contextmanager
    def _translated(self, doing: str, refused: tuple[str, str] | None = None
                    ) -> Iterator[None]:
        """Socket, TLS and imaplib errors as one MailboxError each; *refused* is what to say
        (and the hint) when the server answers NO or BAD."""
        timeout = self.settings.timeout
        try:
            yield
        except ssl.SSLCertVerificationError as exc:
            if exc.verify_code in (_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH):
                hint = "set bounces.imap.host to a name the server's certificate is for"
            else:
                hint = ("if the server's certificate comes from a private CA, point "
                        "bounces.imap.ca_file at that CA's PEM file")
            raise MailboxError(self._where, f"the server's TLS certificate cannot be "
                               f"verified: {exc.verify_message}", hint) from None
        except ssl.SSLError as exc:
            raise MailboxError(self._where, f"TLS failed while {doing}: {exc.reason or exc}",
                               "check bounces.imap.port and bounces.imap.security (tls: "
                               "993, starttls: 143)") from None
        except TimeoutError:
            raise MailboxError(self._where, f"no answer within {timeout:g} s while {doing}",
                               "check the host and port, or raise bounces.imap.timeout"
                               ) from None
        except ConnectionRefusedError:
            raise MailboxError(self._where, "connection refused",
                               "check bounces.imap.host and bounces.imap.port, and that the "
                               "IMAP server is running") from None
        except socket.gaierror as exc:
            raise MailboxError(self._where, f"unknown host: {exc.strerror}",
                               "check bounces.imap.host") from None
        except imaplib.IMAP4.abort as exc:
            raise MailboxError(self._where, f"the server dropped the connection while "
                               f"{doing}: {_text(list(exc.args))}",
                               "run the command again later") from None
        except imaplib.IMAP4.error as exc:
            what, hint = refused or (f"the server refused {doing}", "run the command again "
                                     "later; if it persists, check the server's log")
            raise MailboxError(self._where, f"{what}: {_text(list(exc.args))}", hint) from None
        except OSError as exc:
            raise MailboxError(self._where, f"connection failed while {doing}: "
                               f"{exc.strerror or exc}",
                               "check bounces.imap.host and bounces.imap.port") from None

    def _connect(self, context: ssl.SSLContext) -> imaplib.IMAP4:
        settings = self.settings
        with self._translated("connecting"):
            if settings.security == "tls":
                return imaplib.IMAP4_SSL(settings.host, settings.port, ssl_context=context,
                                         timeout=settings.timeout)
            imap = imaplib.IMAP4(settings.host, settings.port, timeout=settings.timeout)
            try:
                if "STARTTLS" not in imap.capabilities:
                    raise MailboxError(self._where, "the server offers no STARTTLS",
                                       "use bounces.imap.security: tls (port 993), or "
                                       "enable STARTTLS on the server")
                imap.starttls(ssl_context=context)
            except BaseException:
                with suppress(OSError):  # a failed handshake may have closed the socket
                    imap.shutdown()
                raise
            return imap

    def _login(self, password: str) -> None:
        settings = self.settings
        refused = (f"the server refused the login of {settings.username}",
                   f"check bounces.imap.username and the password in {settings.password_env}")
        with self._translated("logging in", refused):
            try:
                self._imap.login(_quoted(settings.username), password)
            except UnicodeEncodeError:
                raise MailboxError(self._where, "IMAP LOGIN takes only ASCII user names and "
                                   "passwords", f"use an ASCII password in "
                                   f"{settings.password_env}, or ask for one") from None

    def _select(self) -> int:
        """Select the folder (read-write, to set \\Seen); its UIDVALIDITY."""
        with self._translated("opening the folder"):
            status, data = self._imap.select(_quoted(_folder_name(self.settings.folder)))
            if status != "OK":
                raise MailboxError(self._where, f"cannot open the folder "
                                   f"{self.settings.folder!r}: {_text(data)}",
                                   "check bounces.imap.folder (folder names are "
                                   "case-sensitive except INBOX)")
            _, values = self._imap.response("UIDVALIDITY")
        try:
            return int(values[0])
        except (IndexError, TypeError, ValueError):
            raise MailboxError(self._where, "the server sent no UIDVALIDITY for the folder",
                               "use an IMAP server that follows RFC 3501") from None

    def _read_checkpoint(self, checkpoint: str | None) -> int | None:
        """The last UID examined, if *checkpoint* is for this folder and UIDVALIDITY."""
        if checkpoint is None:
            return None
        prefix = f"{self._where};UIDVALIDITY={self.uidvalidity};UID="
        if checkpoint.startswith(prefix) and checkpoint[len(prefix):].isdigit():
            return int(checkpoint[len(prefix):])
        log.info("%s: checkpoint %r is for another folder, or the folder's UIDs were "
                 "renumbered: every unseen message is examined", self._where, checkpoint)
        return None

    def checkpoint(self) -> str | None:
        mark = self._progress.mark
        if mark is None:
            return None
        return f"{self._where};UIDVALIDITY={self.uidvalidity};UID={mark}"

    def _command(self, doing: str, *args: str) -> list[Any]:
        with self._translated(doing):
            status, data = self._imap.uid(*args)
        if status != "OK":
            raise MailboxError(self._where, f"the server refused {doing}: {_text(data)}",
                               "run the command again later")
        return data

    def _unseen(self, limit: int) -> list[int]:
        after = self._progress.mark or 0
        data = self._command("searching for unseen mail", "SEARCH", "UNSEEN",
                             "UID", f"{after + 1}:*")
        uids = sorted({int(uid) for uid in b" ".join(data or [b""]).split()})
        return [uid for uid in uids if uid > after][:limit]  # n:* always matches the last

    def _sizes(self, uids: list[int]) -> dict[int, int]:
        sizes: dict[int, int] = {}
        for start in range(0, len(uids), _SIZES_PER_FETCH):
            chunk = ",".join(str(uid) for uid in uids[start:start + _SIZES_PER_FETCH])
            for item in self._command("reading message sizes", "FETCH", chunk,
                                      "(RFC822.SIZE)"):
                line = item[0] if isinstance(item, tuple) else item
                uid, size = _UID.search(line or b""), _SIZE.search(line or b"")
                if uid and size:
                    sizes[int(uid[1])] = int(size[1])
        return sizes

    def _body(self, uid: int) -> bytes | None:
        """At most max_bytes + 1 of the message, without setting \\Seen; None if expunged."""
        data = self._command("reading a message", "FETCH", str(uid),
                             f"(BODY.PEEK[]<0.{self.max_bytes + 1}>)")
        for item in data:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
                return item[1]
        return None

    def messages(self, limit: int) -> Iterator[Incoming]:
        uids = self._unseen(limit)
        sizes = self._sizes(uids)
        for uid in uids:
            ident = f"imap:{self.uidvalidity}:{uid}"
            where = f"{self._where};UID={uid}"
            if uid not in sizes:  # expunged since the search: nothing to read
                continue
            self._progress.examined(ident, uid)
            data = None if sizes[uid] > self.max_bytes else self._body(uid)
            if data is None or len(data) > self.max_bytes:
                if sizes[uid] > self.max_bytes or data is not None:
                    too_big(where, max(sizes[uid], len(data or b"")), self.max_bytes)
                self._progress.finished(ident)
                continue
            yield Incoming(ident, data, where, uid)

    def done(self, incoming: Incoming, handled: bool) -> None:
        if handled:
            self._command("marking a message seen", "STORE", str(incoming.position),
                          "+FLAGS.SILENT", "(\\Seen)")
        self._progress.finished(incoming.ident)

    def close(self) -> None:
        """Log out; a connection already gone is no error (nothing is left to undo)."""
        with suppress(OSError, imaplib.IMAP4.error):
            self._imap.logout()
