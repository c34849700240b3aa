"""Signed, opaque tokens for the links in a digest (unsubscribe, manage tags).

A token is an HMAC-SHA256 over (purpose, subscriber) with a secret from the environment,
cut to 128 bits and base64url-encoded. It carries no address, so a forwarded or logged link
reveals nobody; the web front finds the subscriber by computing the tokens of the current
list (one HMAC per subscriber). A token made for one purpose is worthless for another.

Rotation: the variable may hold several secrets separated by whitespace or commas. The first
signs new links; all of them are accepted, so links in digests already sent keep working
until the old secret is dropped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Iterable

from ..errors import MissingSecret

PURPOSES = ("unsubscribe", "preferences")
MIN_SECRET_BYTES = 16
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{22}$")


class Signer:
    def __init__(self, secrets: list[bytes]) -> None:
        if not secrets:
            raise MissingSecret("no secret given")
        self.secrets = secrets
        # the keyed state of each secret, copied per token: a send makes two tokens per
        # message, and setting a key up is half of an HMAC's cost
        self._keyed = [hmac.new(secret, digestmod=hashlib.sha256) for secret in secrets]

    @classmethod
    def from_env(cls, variable: str) -> Signer:
        raw = os.environ.get(variable, "")
        secrets = [s.encode() for s in re.split(r"[\s,]+", raw) if s]
        if not secrets or any(len(s) < MIN_SECRET_BYTES for s in secrets):
            raise MissingSecret(
                f"environment variable {variable} must hold a secret of at least "
                f"{MIN_SECRET_BYTES} characters (e.g. export {variable}=$(openssl rand -hex 32))")
        return cls(secrets)

    @staticmethod
    def _mac(secret: bytes, purpose: str, subscriber: str) -> str:
        digest = hmac.new(secret, f"{purpose}\0{subscriber}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")

    def token(self, subscriber: str, purpose: str) -> str:
        """The token for *subscriber* (its key) and *purpose*, signed with the newest secret."""
        assert purpose in PURPOSES
        mac = self._keyed[0].copy()
        mac.update(f"{purpose}\0{subscriber}".encode())
        return base64.urlsafe_b64encode(mac.digest()[:16]).decode().rstrip("=")

    def index(self, subscribers: Iterable[str], purpose: str) -> dict[str, str]:
        """token → subscriber for every secret in force: how the web front resolves a link."""
        return {self._mac(secret, purpose, key): key
                for key in subscribers for secret in self.secrets}

    def verify(self, token: str, subscriber: str, purpose: str) -> bool:
        if not TOKEN_PATTERN.match(token):
            return False
        return any(hmac.compare_digest(token, self._mac(s, purpose, subscriber))
                   for s in self.secrets)
