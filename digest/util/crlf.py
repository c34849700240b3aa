"""Bytes known to end every line in CRLF, so that the SMTP client need not scan them again.

SMTP DATA must carry no bare CR or LF: one would let a line end be smuggled past a relay.
Checking a 40 KB message for them takes three passes over it (about 100 µs, more than all
the rest of a message's assembly), yet a digest is assembled from pieces that are the same
for thousands of recipients. So each piece is checked once, when it is made (`clean`), and
the message joined from checked pieces is a `CrlfBytes`: the SMTP client
(delivery/smtpdata.py) skips its own scan for exactly that type, and scans anything else.

Likewise DATA doubles a "." that starts a line, another pass over the message; a message
joined from pieces none of which starts a line with "." (`dotted`) is a `DotFreeBytes`,
which goes on the wire as it is.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["CrlfBytes", "DotFreeBytes", "clean", "dotted", "is_clean", "join"]


class CrlfBytes(bytes):
    """Bytes whose every CR and LF is part of a CRLF pair. Made only by `join`, from pieces
    that passed `clean`: a CRLF split across two pieces would leave each of them unclean."""

    __slots__ = ()


class DotFreeBytes(CrlfBytes):
    """`CrlfBytes` in which no line starts with "." either: nothing to dot-stuff. Made only
    by `join`, from pieces none of which is `dotted`."""

    __slots__ = ()


def dotted(piece: bytes) -> bool:
    """Whether *piece* would put "." at the start of a line: at its own start (every piece
    may follow a line end), or after a CRLF inside it."""
    return piece[:1] == b"." or b"\r\n." in piece


def is_clean(piece: bytes) -> bool:
    """Whether every CR and LF in *piece* is part of a CRLF pair."""
    lf = piece.count(b"\n")
    return piece.count(b"\r") == lf and piece.count(b"\r\n") == lf


def clean(piece: bytes) -> bytes:
    """*piece*, after checking it has no bare CR or LF (ValueError if it has: a bug, since
    every piece is made CRLF-clean by construction)."""
    if not is_clean(piece):
        raise ValueError(f"a bare CR or LF in a message piece: {piece[:200]!r}")
    return piece


def join(pieces: Iterable[bytes], *, dot_free: bool = False) -> CrlfBytes:
    """The pieces, each already `clean`, as one `CrlfBytes`; a `DotFreeBytes` if the caller
    found that none of them is `dotted`. A CRLF never spans two clean pieces, so neither
    can a line-starting "." that `dotted` did not see."""
    joined = b"".join(pieces)
    return DotFreeBytes(joined) if dot_free else CrlfBytes(joined)
