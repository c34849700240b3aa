"""A digest email as bytes: headers encoded and folded, two quoted-printable parts, DKIM.

What a whole edition shares (From, Subject, the MIME skeleton, both bodies) is encoded once;
a body is kept as encoded chunks with gaps where a recipient's values go. Per recipient only
the To and unsubscribe headers and those few values are encoded and spliced in, so one core
assembles thousands of messages a second. Every value that reaches a header is checked or
reduced to one line first: no input can add a header or break the MIME structure.
"""

from __future__ import annotations

import base64
import binascii
import email.policy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.utils import format_datetime, parseaddr

from ..errors import MessageError
from ..util import crlf

PERSONAL = ("name", "email", "unsubscribe_url", "preferences_url")
SIGNED_HEADERS = (b"from", b"to", b"subject", b"date", b"message-id", b"list-id",
                  b"list-unsubscribe", b"list-unsubscribe-post", b"mime-version",
                  b"content-type")
MAX_NAME = 100  # characters of a display name kept; real names are far shorter

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROLS_BUT_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
# bidi formatting characters: U+202E in a name or tag turns "Ana\u202egnp.exe" into
# "Anaexe.png" on screen (Trojan Source, CVE-2021-42574), so headers never carry them
BIDI = re.compile(r"[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_URL = re.compile(r"https?://[!#-;=?-~]{1,900}")  # printable ASCII but " < >
_MESSAGE_ID = re.compile(r"<[!#-;=?-~]{1,400}@[!#-;=?-~]{1,400}>")
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")  # what needs no quoting in a phrase
_DNS_NAME = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)+")
_POLICY = email.policy.SMTP.clone(max_line_length=78)
_QP_LINE = 76  # RFC 2045: encoded lines at most 76 characters, a soft break's "=" included
# what b2a_qp leaves as it is, on one line: printable ASCII but "=", spaces only inside (it
# encodes one at the end), at least two characters (it encodes a lone "." at a line start),
# at most 70 (far from a soft break): most addresses, links and names
_QP_AS_IS = re.compile(r"[!-<>-~][ !-<>-~]{0,68}[!-<>-~]")


@dataclass(frozen=True)
class Recipient:
    email: str  # ASCII address (IDN domains already punycode)
    name: str | None = None  # may be non-ASCII; any control characters are dropped
    unsubscribe_url: str | None = None  # https one-click URL; None without a web front
    preferences_url: str | None = None  # "manage tags" page; None without a web front


@dataclass(frozen=True)
class DkimKey:
    domain: str
    selector: str
    private_key: bytes  # PEM, PKCS#1 or PKCS#8 RSA


def one_line(text: str) -> str:
    """Text for a header or a heading: control and bidi formatting characters gone,
    whitespace runs one space."""
    return " ".join(_CONTROLS.sub(" ", BIDI.sub("", text)).split())


def tidy_text(text: str) -> str:
    """Multi-line text with its line breaks kept and every other control character dropped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROLS_BUT_NEWLINE.sub("", text)


def check_address(address: str) -> str:
    if not _ADDRESS.fullmatch(address) or len(address) > 254:
        raise MessageError(f"not a plain ASCII mail address: {address!r}")
    return address


def check_url(url: str) -> str:
    if not _URL.fullmatch(url):
        raise MessageError(f"not an http(s) URL that fits a header: {url!r}")
    return url


def checked(recipient: Recipient) -> Recipient:
    """*recipient* with its address and links checked and its name made one line."""
    name = one_line(recipient.name or "")[:MAX_NAME].strip() or None
    unsubscribe, preferences = recipient.unsubscribe_url, recipient.preferences_url
    return Recipient(check_address(recipient.email), name,
                     check_url(unsubscribe) if unsubscribe else None,
                     check_url(preferences) if preferences else None)


def present(recipient: Recipient) -> dict[str, str]:
    """The recipient's values that are set, by field name."""
    values = {"name": recipient.name, "email": recipient.email,
              "unsubscribe_url": recipient.unsubscribe_url,
              "preferences_url": recipient.preferences_url}
    return {key: value for key, value in values.items() if value is not None}


# headers ------------------------------------------------------------------------------------

def fold(name: str, value: str) -> bytes:
    """One unstructured header, folded and RFC 2047-encoded by the stdlib (shared values)."""
    value = one_line(value)
    if "=?" in value:  # the stdlib would decode what looks like an encoded word: encode it all
        return f"{name}: {_encoded_words(value)}\r\n".encode("ascii")
    folded: str = _POLICY.header_factory(name, value).fold(policy=_POLICY)
    return folded.encode("ascii")


def sender_header(sender: str) -> bytes:
    """`From:` from "Name <address>" as configured; the name is quoted or encoded as needed."""
    name, address = parseaddr(one_line(sender))
    check_address(address)
    header = _POLICY.header_factory("From", Address(display_name=name, addr_spec=address))
    folded: str = header.fold(policy=_POLICY)
    return folded.encode("ascii")


def _encoded_words(text: str) -> str:
    """RFC 2047 B-encoded words of at most 75 characters, folded onto continuation lines."""
    words: list[str] = []
    chunk: list[str] = []
    size = 0
    for char in text:
        width = len(char.encode("utf-8"))
        if size + width > 42:  # 42 octets: 56 base64 characters + 12 of framing, < 78
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(char)
        size += width
    words.append("".join(chunk))
    return "\r\n ".join(
        "=?utf-8?b?" + base64.b64encode(word.encode("utf-8")).decode("ascii") + "?="
        for word in words)


def address_header(name: str | None, address: str) -> bytes:
    """`To:` for one recipient; *name* is already one line, *address* already checked."""
    if not name:
        return f"To: {address}\r\n".encode("ascii")
    if name.isascii() and "=?" not in name:
        if not _ATOM.fullmatch(name) or name != name.strip():
            name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"To: {name} <{address}>\r\n".encode("ascii")
    return f"To: {_encoded_words(name)}\r\n <{address}>\r\n".encode("ascii")


def unsubscribe_headers(url: str | None, mailto: str) -> bytes:
    """RFC 2369 List-Unsubscribe, and RFC 8058 one-click when there is an https page."""
    mail = f"<mailto:{mailto}?subject=unsubscribe>"
    if url is None:
        return f"List-Unsubscribe: {mail}\r\n".encode("ascii")
    lines = f"List-Unsubscribe: <{url}>,\r\n {mail}\r\n"
    if url.startswith("https://"):
        lines += "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    return lines.encode("ascii")


def date_header(date: datetime) -> bytes:
    if date.tzinfo is None:
        raise MessageError("a message's Date needs a timezone")
    return b"Date: " + format_datetime(date).encode("ascii") + b"\r\n"


def message_id_header(message_id: str) -> bytes:
    if not _MESSAGE_ID.fullmatch(message_id):
        raise MessageError(f"not a Message-ID like <left@right>: {message_id!r}")
    return b"Message-ID: " + message_id.encode("ascii") + b"\r\n"


# bodies -------------------------------------------------------------------------------------

def _fit(encoded: bytes, last: int) -> bytes:
    """Lines cut to 76 octets, the last to *last*, at soft breaks that never split an =XX.

    b2a_qp itself writes 77 or 78 when a long line ends in whitespace (encoded as =20).
    """
    if len(encoded) <= last:  # most personal values
        return encoded
    lines = encoded.split(b"\n")
    if len(lines[-1]) <= last and max(map(len, lines[:-1]), default=0) <= _QP_LINE:
        return encoded
    out = []
    for index, line in enumerate(lines):
        limit = last if index == len(lines) - 1 else _QP_LINE
        while len(line) > limit:
            cut = _QP_LINE - 1
            while b"=" in line[cut - 2:cut]:
                cut -= 1
            out.append(line[:cut] + b"=")
            line = line[cut:]
        out.append(line)
    return b"\n".join(out)


def qp(text: str, *, joined: bool = False) -> bytes:
    """Quoted-printable with CRLF line ends; *joined*: ends in a soft break, ready for more."""
    if _QP_AS_IS.fullmatch(text):  # what qp_encoded gives, without encoding (per recipient)
        return text.encode("ascii") + b"=\r\n" if joined else text.encode("ascii")
    return qp_encoded(text, joined=joined)


def qp_encoded(text: str, *, joined: bool = False) -> bytes:
    """`qp` always through b2a_qp (no shortcut for text that would come out as it is)."""
    encoded = binascii.b2a_qp(text.encode("utf-8"), istext=True)
    if joined and encoded and not encoded.endswith(b"\n"):
        encoded = _fit(encoded, _QP_LINE - 1) + b"=\n"  # room for that "="
    else:
        encoded = _fit(encoded, _QP_LINE)
    return encoded.replace(b"\n", b"\r\n")


def qp_lines(text: str, seen: dict[str, bytes], *, joined: bool = False) -> bytes:
    """`qp`, the encoding of each whole line taken from *seen* (and kept there) rather than
    made again. Why: b2a_qp encodes each line on its own (soft breaks, a space before the
    line end), and the bodies of a send's editions are made of the same few thousand
    lines, the template's and the posts': encoding a 40 KB body whole took 0.4 ms, a
    quarter of laying out an edition; by lines, mostly looked up, a fifth of that."""
    if "\n" not in text or "\r" in text:  # one line (or a CR, which b2a_qp takes for a line end)
        return qp(text, joined=joined)
    *lines, last = text.split("\n")
    out = []
    for line in lines:
        encoded = seen.get(line)
        if encoded is None:
            encoded = seen[line] = qp_encoded(line + "\n")
        out.append(encoded)
    out.append(qp_encoded(last, joined=joined))
    return b"".join(out)


@dataclass(frozen=True)
class Body:
    """A part's text encoded once, with a gap for a recipient's value before each chunk but
    the first: chunk, slot, chunk, slot, …, chunk."""

    chunks: tuple[bytes, ...]
    slots: tuple[str, ...]
    dotted: bool = True  # whether a chunk starts a line with "." (crlf.dotted)

    @classmethod
    def encode(cls, text: str, placeholder: re.Pattern[str],
               seen: dict[str, bytes] | None = None) -> Body:
        """*text* has "\\n" line ends; *placeholder* matches a gap and captures its name.
        *seen*: encoded lines to reuse and add to (`qp_lines`), for a run of bodies."""
        pieces = placeholder.split(text)
        literal, names = pieces[0::2], pieces[1::2]
        lines = {} if seen is None else seen
        chunks = [qp_lines(piece, lines, joined=True) for piece in literal[:-1]]
        chunks.append(qp_lines(literal[-1], lines))
        checked = tuple(crlf.clean(chunk) for chunk in chunks)
        return cls(checked, tuple(names), any(map(crlf.dotted, checked)))

    def fill(self, values: Mapping[str, bytes]) -> bytes:
        """The encoded part, each gap filled from *values* (made by `qp(..., joined=True)`)."""
        return b"".join(self.pieces(values))

    def pieces(self, values: Mapping[str, bytes]) -> list[bytes]:
        """`fill`'s pieces, for joining into the whole message without a copy of the part."""
        out: list[bytes] = [b""] * (2 * len(self.chunks) - 1)
        out[0::2] = self.chunks  # slice assignments: C loops, not two appends per gap
        out[1::2] = [values[slot] for slot in self.slots]
        return out


# the whole message --------------------------------------------------------------------------

@dataclass(frozen=True)
class Skeleton:
    """The bytes every recipient of an edition shares, around the per-recipient ones."""

    head: bytes  # From and Subject
    mime: bytes  # MIME-Version … Precedence, the blank line, the text part's headers
    between: bytes  # the end of the text part and the HTML part's headers
    tail: bytes  # the closing boundary
    dotted: bool = True  # whether one of the above starts a line with "." (crlf.dotted)

    @classmethod
    def build(cls, *, sender: bytes, subject: bytes, list_id: bytes, lang: str,
              boundary: str) -> Skeleton:
        """*sender*, *subject*, *list_id*: whole folded header lines (`fold`)."""
        part = ("--{b}\r\nContent-Type: text/{kind}; charset=\"utf-8\"\r\n"
                "Content-Transfer-Encoding: quoted-printable\r\n\r\n")
        mime = (f"MIME-Version: 1.0\r\n"
                f"Content-Type: multipart/alternative;\r\n boundary=\"{boundary}\"\r\n"
                f"Content-Language: {lang}\r\n").encode("ascii") + list_id + (
                "Auto-Submitted: auto-generated\r\nPrecedence: bulk\r\n\r\n"
                + part.format(b=boundary, kind="plain")).encode("ascii")
        between = ("\r\n" + part.format(b=boundary, kind="html")).encode("ascii")
        pieces = (crlf.clean(sender + subject), crlf.clean(mime), crlf.clean(between),
                  crlf.clean(f"\r\n--{boundary}--\r\n".encode("ascii")))
        return cls(*pieces, dotted=any(map(crlf.dotted, pieces)))

    def assemble(self, *, to: bytes, date: bytes, message_id: bytes, unsubscribe: bytes,
                 text: list[bytes], html: list[bytes], shared_dotted: bool = True
                 ) -> crlf.CrlfBytes:
        """The message; *text* and *html* are `Body.pieces`, their values made by `qp`.

        Every piece shared by the edition was checked CRLF-clean when it was made; the
        recipient's own are checked here (a few hundred bytes), so the result is
        `CrlfBytes` and the SMTP client need not scan 40 KB for a bare CR or LF again.
        *shared_dotted*: whether a piece of the bodies' own (not their values) is
        `crlf.dotted`; if neither it, the skeleton nor a value is, the message is
        `DotFreeBytes`, which DATA sends without a dot-stuffing pass.
        """
        # one check of them all, a NUL between two, so that no CRLF can form across them
        own = b"\0".join((to, date, message_id, unsubscribe, *text[1::2], *html[1::2]))
        if not crlf.is_clean(own):
            raise MessageError("a recipient's header or value holds a bare CR or LF")
        dot_free = not (shared_dotted or self.dotted or own[:1] == b"." or b"\0." in own
                        or b"\r\n." in own)
        return crlf.join((self.head, to, date, message_id, unsubscribe, self.mime, *text,
                          self.between, *html, self.tail), dot_free=dot_free)


def check_dkim_key(key: DkimKey) -> None:
    """Fail when the settings are made, not at the first message."""
    # imported here, not at the top: dkimpy loads dnspython, 40 ms of every start (each
    # of several `digest send` workers pays it) for nothing when no key is set
    import dkim

    where = f"{key.selector}._domainkey.{key.domain}"
    if not _DNS_NAME.fullmatch(where):
        raise MessageError(f"the DKIM selector and domain make no DNS name: {where!r}")
    try:
        dkim.crypto.parse_pem_private_key(key.private_key)
    except (dkim.crypto.UnparsableKeyError, ValueError, IndexError) as exc:
        raise MessageError(f"the DKIM key for {where} is not a PEM RSA private key: {exc}"
                           ) from None


def sign(message: bytes, key: DkimKey) -> bytes:
    """The message with a DKIM-Signature (relaxed/relaxed, rsa-sha256) in front; still
    `CrlfBytes` if *message* was and the signature is CRLF-clean."""
    import dkim  # loaded by check_dkim_key already: a dictionary lookup

    try:
        signature: bytes = dkim.sign(message, key.selector.encode("ascii"),
                                     key.domain.encode("ascii"), key.private_key,
                                     canonicalize=(b"relaxed", b"relaxed"),
                                     include_headers=list(SIGNED_HEADERS))
    except dkim.DKIMException as exc:
        raise MessageError(f"DKIM signing failed: {exc}") from None
    if isinstance(message, crlf.CrlfBytes) and crlf.is_clean(signature):
        dot_free = isinstance(message, crlf.DotFreeBytes) and not crlf.dotted(signature)
        return crlf.join((signature, message), dot_free=dot_free)
    return signature + message
