"""The token of a sign-up's confirmation link: which pending sign-up it confirms, sealed.

It names the address's key and the `requested_at` of the pending row it was made for, so
it confirms that request and no other: a newer request replaces the row (the older link
then names a request that no longer exists), and confirming takes the row (a link works
once). Its age is read from that `requested_at`, so it needs no expiry of its own.

The key is encrypted, not just signed: a confirmation URL ends up in proxy logs, browser
histories and link scanners, and should not carry the address in the clear. The standard
library has no block cipher, so this is SIV built from HMAC-SHA256 alone (deterministic
authenticated encryption, RFC 5297's construction with HMAC as the PRF): the tag is an HMAC
of (requested_at, key) and doubles as the IV of an HMAC-counter keystream that hides the
key. Opening decrypts and recomputes the tag, so a forged or altered token opens to nothing.
Separate keys for the tag and the stream are derived from each secret; the secrets rotate
as the other links' do (tokens.py): the first seals, all of them open.

    token = base64url(version 1 | requested_at µs, 8 bytes | tag, 16 bytes | key XOR stream)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

VERSION = 1
MAX_KEY = 254  # an address's longest (RFC 5321 path limit)
_HEAD = 1 + 8 + 16
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_LONGEST = 4 * (_HEAD + MAX_KEY) // 3 + 4
TOKEN_PATTERN = re.compile(rf"^[A-Za-z0-9_-]{{40,{_LONGEST}}}$")


def _keys(secret: bytes) -> tuple[bytes, bytes]:
    """(tag key, stream key) for *secret*: one secret, two independent uses."""
    return (hmac.new(secret, b"digest signup tag", hashlib.sha256).digest(),
            hmac.new(secret, b"digest signup stream", hashlib.sha256).digest())


def _stream(key: bytes, iv: bytes, size: int) -> bytes:
    blocks = (hmac.new(key, iv + n.to_bytes(4, "big"), hashlib.sha256).digest()
              for n in range((size + 31) // 32))
    return b"".join(blocks)[:size]


def _micros(moment: datetime) -> int:
    """Whole microseconds since the epoch, exactly (no float on the way)."""
    return (moment.astimezone(UTC) - _EPOCH) // _MICRO


def seal(secrets: Sequence[bytes], key: str, requested_at: datetime) -> str:
    """The token confirming *key*'s sign-up requested at *requested_at* (aware)."""
    plain = key.encode("ascii")
    if not plain or len(plain) > MAX_KEY:
        raise ValueError("a key is 1 to 254 ASCII characters")
    tag_key, stream_key = _keys(secrets[0])
    stamp = _micros(requested_at).to_bytes(8, "big", signed=True)
    tag = hmac.new(tag_key, stamp + plain, hashlib.sha256).digest()[:16]
    hidden = bytes(a ^ b for a, b in zip(plain, _stream(stream_key, tag, len(plain)),
                                         strict=True))
    raw = bytes([VERSION]) + stamp + tag + hidden
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def unseal(secrets: Sequence[bytes], token: str) -> tuple[str, datetime] | None:
    """(key, requested_at in UTC) of a token one of *secrets* sealed; None for anything
    else (malformed, forged, altered, or sealed with a secret no longer given)."""
    if not TOKEN_PATTERN.match(token):
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) <= _HEAD or raw[0] != VERSION \
            or base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=") != token:
        return None  # the last character's spare bits too: one request, one spelling
    stamp, tag, hidden = raw[1:9], raw[9:25], raw[25:]
    for secret in secrets:
        tag_key, stream_key = _keys(secret)
        plain = bytes(a ^ b for a, b in zip(hidden, _stream(stream_key, tag, len(hidden)),
                                            strict=True))
        expected = hmac.new(tag_key, stamp + plain, hashlib.sha256).digest()[:16]
        if hmac.compare_digest(tag, expected):
            try:
                when = _EPOCH + int.from_bytes(stamp, "big", signed=True) * _MICRO
                return plain.decode("ascii"), when
            except (UnicodeDecodeError, OverflowError):
                return None
    return None


def same_moment(a: datetime, b: datetime) -> bool:
    """Whether two instants are the same to the microsecond (a token's precision)."""
    return _micros(a) == _micros(b)
