"""Is this HTTP message really from Amazon SNS? The envelope SES's notifications come in.

SNS signs each message with a certificate it serves from `https://sns.REGION.amazonaws.com/…
.pem` (`amazonaws.com.cn` in China). Anyone can post a body naming a certificate URL, so the
URL is checked before anything is fetched: https, that host pattern, a .pem path, no
credentials or odd port; the certificate must name SNS; the signature is checked over the
canonical string AWS documents for the message's Type (SignatureVersion 1: SHA1withRSA,
2: SHA256withRSA). A verified signature proves SNS sent the message, not that it is one of
our topics: anyone can subscribe our endpoint to a topic of theirs, hence the TopicArn check
(`bounces.webhooks.ses.topics`) in the caller.

The certificate is fetched through a `Fetch` given by the caller (tests serve theirs from a
local server), never by a weaker host check.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
import ssl
import threading
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from ..errors import WebhookRefused

MAX_BODY = 256 * 1024  # SNS's own limit for a message; SES notifications are a few KB
MAX_FETCHED = 64 * 1024  # a certificate is ~2 KB; a confirmation answer less
FETCH_SECONDS = 10.0
CERTIFICATES_KEPT = 16  # SNS rotates rarely; a few regions at most
SNS_HOST = re.compile(r"sns\.[a-z0-9-]{1,40}\.amazonaws\.com(\.cn)?")
# the names SNS's certificates carry (subject CN or a DNS subjectAltName)
SNS_NAME = re.compile(r"sns\.amazonaws\.com|sns(-signing)?\.[a-z0-9-]{1,40}\.amazonaws\.com"
                      r"(\.cn)?")
SIGNED = {  # the fields signed, in order, per Type (AWS: "Verifying message signatures")
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                 "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                "TopicArn", "Type"),
}
OPTIONAL = {"Subject"}

Fetch = Callable[[str], bytes]  # a checked https URL → the bytes it answers (OSError, ValueError)


@dataclass(frozen=True)
class SnsMessage:
    """A message whose signature has been verified."""

    type: str  # Notification | SubscriptionConfirmation | UnsubscribeConfirmation
    message_id: str
    topic_arn: str
    message: str  # for SES: its notification, as JSON text
    subscribe_url: str | None


def read_json(body: bytes, limit: int = MAX_BODY) -> dict[str, Any]:
    """*body* as a JSON object, bounded before it is parsed."""
    if len(body) > limit:
        raise WebhookRefused(413, f"body of {len(body)} bytes, over the {limit} taken")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # also UnicodeDecodeError
        raise WebhookRefused(400, "body is not JSON") from None
    if not isinstance(data, dict):
        raise WebhookRefused(400, "body is not a JSON object")
    return data


def sns_url(url: object, *, pem: bool) -> str:
    """*url* if it is one of SNS's own: https on sns.REGION.amazonaws.com(.cn), default port,
    no credentials; a .pem path when *pem*."""
    if not isinstance(url, str) or len(url) > 4096:
        raise WebhookRefused(403, "no SNS URL")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise WebhookRefused(403, "an SNS URL that does not parse") from None
    if parts.scheme != "https":
        raise WebhookRefused(403, f"an SNS URL that is not https: {url[:200]!r}")
    if (parts.hostname is None or not SNS_HOST.fullmatch(parts.hostname)
            or parts.username is not None or port not in (None, 443)):
        raise WebhookRefused(403, f"an SNS URL not on sns.REGION.amazonaws.com: {url[:200]!r}")
    if pem and not parts.path.endswith(".pem"):
        raise WebhookRefused(403, f"a signing certificate URL not ending .pem: {url[:200]!r}")
    return url


def canonical(data: dict[str, Any], kind: str) -> bytes:
    """What SNS signed: each signed field present, as "Name\\nvalue\\n", in AWS's order."""
    return "".join(f"{name}\n{data[name]}\n" for name in SIGNED[kind]
                   if name in data).encode()


def fetch_url(url: str) -> bytes:
    """GET *url* with TLS verified, a timeout and a size cap (the production Fetch)."""
    context = ssl.create_default_context()
    with urllib.request.urlopen(url, timeout=FETCH_SECONDS, context=context) as answer:
        data: bytes = answer.read(MAX_FETCHED + 1)
    if len(data) > MAX_FETCHED:
        raise ValueError(f"more than {MAX_FETCHED} bytes")
    return data


class Certificates:
    """SNS's signing keys by certificate URL: each fetched once (through *fetch*) and kept,
    the least recently used dropped past CERTIFICATES_KEPT. Shared by the web front's threads."""

    def __init__(self, fetch: Fetch = fetch_url, kept: int = CERTIFICATES_KEPT) -> None:
        self.fetch = fetch
        self.kept = kept
        self._keys: OrderedDict[str, rsa.RSAPublicKey] = OrderedDict()
        self._lock = threading.Lock()

    def key(self, url: str) -> rsa.RSAPublicKey:
        with self._lock:
            if url in self._keys:
                self._keys.move_to_end(url)
                return self._keys[url]
        try:
            pem = self.fetch(url)
        except (OSError, ValueError) as exc:  # AWS or the network: SNS retries on a 5xx
            raise WebhookRefused(503, f"cannot fetch the signing certificate {url}: "
                                      f"{exc}") from None
        key = _sns_key(pem)
        with self._lock:
            self._keys[url] = key
            while len(self._keys) > self.kept:
                self._keys.popitem(last=False)
        return key


def _sns_key(pem: bytes) -> rsa.RSAPublicKey:
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise WebhookRefused(403, "the signing certificate URL gave no certificate") from None
    names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    with contextlib.suppress(x509.ExtensionNotFound):
        names += cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    if not any(SNS_NAME.fullmatch(name) for name in names):
        raise WebhookRefused(403, f"the signing certificate is not SNS's: {names[:3]}")
    if cert.not_valid_after_utc < datetime.now(UTC):
        raise WebhookRefused(403, "the signing certificate has expired")
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise WebhookRefused(403, "the signing certificate's key is not RSA")
    return key


def verify(data: dict[str, Any], certificates: Certificates,
           topics: tuple[str, ...] = ()) -> SnsMessage:
    """The message in *data* once its signature verifies and its topic is one of *topics*
    (any, when empty); WebhookRefused otherwise."""
    kind = data.get("Type")
    if not isinstance(kind, str) or kind not in SIGNED:
        raise WebhookRefused(400, f"not an SNS message type: {str(kind)[:40]!r}")
    for name in (*SIGNED[kind], "Signature", "SigningCertURL", "SignatureVersion"):
        if not isinstance(data.get(name), str) and not (name in OPTIONAL and name not in data):
            raise WebhookRefused(400, f"SNS {kind} without a text {name}")
    version = data["SignatureVersion"]
    if version not in ("1", "2"):
        raise WebhookRefused(403, f"SNS SignatureVersion {version[:10]!r} is not 1 or 2")
    if topics and data["TopicArn"] not in topics:
        raise WebhookRefused(403, f"topic {data['TopicArn'][:200]} is not in "
                                  "bounces.webhooks.ses.topics")
    key = certificates.key(sns_url(data["SigningCertURL"], pem=True))
    try:
        signature = base64.b64decode(data["Signature"], validate=True)
        key.verify(signature, canonical(data, kind), padding.PKCS1v15(),
                   hashes.SHA1() if version == "1" else hashes.SHA256())
    except (binascii.Error, InvalidSignature):
        raise WebhookRefused(403, "the SNS signature does not verify") from None
    return SnsMessage(kind, data["MessageId"], data["TopicArn"], data["Message"],
                      data.get("SubscribeURL"))
