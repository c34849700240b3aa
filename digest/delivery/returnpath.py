"""VERP: each message's envelope sender names its run and its subscriber, signed, so a bounce
says whom it is about even when the report itself is vague, rewritten or forged.

With a return path `bounces@example.org`, the digest of run 2024-06-03 to subscriber K goes
out from `bounces+TOKEN@example.org`, TOKEN being 20 characters of lowercase base32:

    TOKEN = R(4) + M(16)
    R = base32(HMAC(secret, "verp-run" 0 slug))[:4]        (20 bits: which run)
    M = base32(HMAC(secret, "verp" 0 slug 0 key))[:16]     (80 bits: which subscriber)

Why not carry the address itself: a local part has at most 64 octets (RFC 5321 4.5.3.1.1),
config allows 40 for `bounces`, which leaves 23 for `+TOKEN`; an address does not fit, and
would reveal the subscriber to every relay anyway. So the token is a MAC only, and the
decoder matches it against candidates: the recent runs (R picks the run among them, one
HMAC each) and that run's keys (an index of M per key, built once per run and reused for a
whole mailbox, as the web front resolves its links). 80 bits make a forgery hopeless; R may
collide between runs (1 in a million), so every run whose R matches is tried.

Why lowercase base32: some MTAs lowercase local parts, and a `+`, `=` or `/` would need
quoting; the alphabet a-z2-7 survives both. Decoding lowercases what it is given.
Rotation: new tokens use the first secret, every secret in force is accepted (tokens.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable

from ..subscribers.tokens import Signer

RUN_CHARS = 4
MAC_CHARS = 16
TOKEN_CHARS = RUN_CHARS + MAC_CHARS
LOCAL_PART_MAX = 64  # RFC 5321 4.5.3.1.1
_TOKEN = re.compile(rf"^[a-z2-7]{{{TOKEN_CHARS}}}$")


def _b32(secret: bytes, message: str, chars: int) -> str:
    digest = hmac.new(secret, message.encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode().lower()[:chars]


def _run_part(secret: bytes, run_slug: str) -> str:
    return _b32(secret, f"verp-run\0{run_slug}", RUN_CHARS)


def _mac_part(secret: bytes, run_slug: str, key: str) -> str:
    return _b32(secret, f"verp\0{run_slug}\0{key}", MAC_CHARS)


def token(signer: Signer, run_slug: str, key: str) -> str:
    """The token for (*run_slug*, *key*), signed with the newest secret."""
    secret = signer.secrets[0]
    return _run_part(secret, run_slug) + _mac_part(secret, run_slug, key)


def _split(return_path: str) -> tuple[str, str]:
    local, _, domain = return_path.strip().rpartition("@")
    return local, domain


def encode(return_path: str, run_slug: str, key: str, signer: Signer) -> str:
    """`bounces+TOKEN@example.org` for *return_path* `bounces@example.org`."""
    local, domain = _split(return_path)
    if not local or not domain or "+" in local:
        raise ValueError(f"return path must be a bare address without '+': {return_path!r}")
    verp_local = f"{local}+{token(signer, run_slug, key)}"
    if len(verp_local.encode()) > LOCAL_PART_MAX:
        raise ValueError(f"return path {return_path!r}: its local part leaves no room for "
                         f"the {TOKEN_CHARS}-character token (at most "
                         f"{LOCAL_PART_MAX - TOKEN_CHARS - 1} characters before the @)")
    return f"{verp_local}@{domain}"


def token_of(address: str, return_path: str) -> str | None:
    """The +TOKEN part of *address* if it is *return_path* with a well-formed token (any
    case), else None. `<...>` and surrounding blanks are tolerated, nothing else."""
    address = address.strip().strip("<>").strip().lower()
    local, domain = _split(return_path.lower())
    head, plus, rest = address.partition("+")
    tail, at, where = rest.rpartition("@")
    if not plus or not at or head != local or where != domain:
        return None
    return tail if _TOKEN.match(tail) else None


def at_return_path(address: str, return_path: str) -> bool:
    """Whether *address* is the return path itself or any `+` extension of it."""
    address = address.strip().strip("<>").strip().lower()
    local, domain = _split(return_path.lower())
    head, _, where = address.rpartition("@")
    return where == domain and (head == local or head.startswith(local + "+"))


class Verp:
    """Resolves VERP addresses to (run slug, subscriber key) against the candidates given:
    *runs* the recent run slugs, *keys* a run's subscriber keys (asked once per run)."""

    def __init__(self, signer: Signer, return_path: str, runs: Iterable[str],
                 keys: Callable[[str], Iterable[str]]) -> None:
        self.signer = signer
        self.return_path = return_path
        self.runs = list(runs)
        self.keys = keys
        self._indexes: dict[str, dict[str, str]] = {}

    def _index(self, run_slug: str) -> dict[str, str]:
        index = self._indexes.get(run_slug)
        if index is None:
            index = {_mac_part(secret, run_slug, key): key
                     for key in self.keys(run_slug) for secret in self.signer.secrets}
            self._indexes[run_slug] = index
        return index

    def decode(self, address: str) -> tuple[str, str] | None:
        """(run slug, key) named by *address*, or None: not ours, malformed or forged."""
        found = token_of(address, self.return_path)
        if found is None:
            return None
        run_part, mac = found[:RUN_CHARS], found[RUN_CHARS:]
        for slug in self.runs:
            if not any(hmac.compare_digest(run_part, _run_part(s, slug))
                       for s in self.signer.secrets):
                continue
            key = self._index(slug).get(mac)
            if key is not None:
                return slug, key
        return None


def decode(address: str, signer: Signer, *, return_path: str, runs: Iterable[str],
           keys: Callable[[str], Iterable[str]]) -> tuple[str, str] | None:
    """One-off `Verp(...).decode(address)`; keep a `Verp` to decode a whole mailbox."""
    return Verp(signer, return_path, runs, keys).decode(address)
