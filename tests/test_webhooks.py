"""Relays' webhooks over real HTTP: the web front on a loopback port, the real state database,
SNS certificates served by a real local HTTP server. SES messages are signed here with a
throwaway RSA key whose self-signed certificate names sns.amazonaws.com; the production host
check still runs (the certificate URL is SNS's), only the fetch is pointed at the local
server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import build_site
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from helpers import MONDAY, SECRET, digest_site
from web_server import WebServer

from digest.config import load_config
from digest.errors import WebhookRefused
from digest.feedback.sns import Certificates, SnsMessage, canonical, read_json, verify
from digest.feedback.webhooks import mailgun_feedback, postmark_feedback, run_of, ses_feedback
from digest.state.open import open_state

FIXTURES = Path(__file__).parent / "fixtures" / "webhooks"
REGION_HOST = "https://sns.us-west-2.amazonaws.com"
CERT_URL = f"{REGION_HOST}/SimpleNotificationService-0123456789abcdef.pem"
TOPIC = "arn:aws:sns:us-west-2:123456789012:digest-feedback"
MAILGUN_KEY = "key-test-mailgun-signing-0123456789"
POSTMARK_USER, POSTMARK_PASSWORD = "postmark-hooks", "pm-password-0123456789"


# a throwaway SNS: key, certificate, a local server for the .pem --------------------------------
def make_certificate(name: str) -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.PEM)


SNS_KEY, SNS_PEM = make_certificate("sns.amazonaws.com")
OTHER_KEY, OTHER_PEM = make_certificate("evil.example.com")


class FakeSns:
    """A real HTTP server on loopback that answers SNS's URLs: certificates by file name
    (SNS's unless named other.pem) and ConfirmSubscription GETs, each request recorded."""

    def __init__(self) -> None:
        requests: list[str] = []
        self.requests = requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                body = (OTHER_PEM if self.path.endswith("other.pem") else SNS_PEM
                        if self.path.endswith(".pem") else b"<ConfirmSubscriptionResponse/>")
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def fetch(self, url: str) -> bytes:
        """The Fetch given to the web front: SNS's host mapped to this server."""
        assert url.startswith(REGION_HOST + "/")
        with urllib.request.urlopen(self.base + url[len(REGION_HOST):], timeout=5) as answer:
            data: bytes = answer.read()
            return data


@pytest.fixture
def sns() -> Iterator[FakeSns]:
    fake = FakeSns()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def sns_body(kind: str = "Notification", *, message: str = "", topic: str = TOPIC,
             key: rsa.RSAPrivateKey = SNS_KEY, version: str = "1", cert_url: str = CERT_URL,
             message_id: str = "11111111-2222-3333-4444-555555555555",
             **fields: str) -> dict[str, Any]:
    data: dict[str, Any] = {"Type": kind, "MessageId": message_id, "TopicArn": topic,
                            "Message": message, "Timestamp": "2024-06-10T13:00:06.580Z",
                            "SignatureVersion": version, "SigningCertURL": cert_url, **fields}
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = key.sign(canonical(data, kind), padding.PKCS1v15(), digest)
    data["Signature"] = base64.b64encode(signature).decode()
    return data


def ses(name: str, **kwargs: Any) -> dict[str, Any]:
    return sns_body(message=(FIXTURES / f"ses-{name}.json").read_text(), **kwargs)


# the site, its config and the server ---------------------------------------------------------
def site_with(tmp_path: Path, webhooks: dict[str, Any]) -> Path:
    cfg = digest_site(tmp_path)
    config = yaml.safe_load(cfg.read_text())
    config["bounces"] = {"webhooks": webhooks}
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    build_site(cfg, now=MONDAY)
    return cfg


ALL = {"ses": {"topics": [TOPIC]}, "mailgun": {"signing_key_env": "MAILGUN_KEY"},
       "postmark": {"username": POSTMARK_USER, "password_env": "POSTMARK_PASSWORD"}}


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    monkeypatch.setenv("MAILGUN_KEY", MAILGUN_KEY)
    monkeypatch.setenv("POSTMARK_PASSWORD", POSTMARK_PASSWORD)


def serve(cfg: Path, sns: FakeSns | None = None) -> WebServer:
    server = WebServer(load_config(cfg))
    app: Any = server.front.server.config.app
    if sns is not None:
        app.state.relays.fetch = sns.fetch
    else:  # nothing may be fetched
        app.state.relays.fetch = lambda url: pytest.fail(f"fetched {url}")
    return server


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return site_with(tmp_path, ALL)


@pytest.fixture
def client(site: Path, sns: FakeSns) -> Iterator[httpx.Client]:
    with serve(site, sns) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        yield http


def state_of(site: Path) -> tuple[dict[str, tuple[str, str]], list[tuple[str, str, str]]]:
    """(suppressions: key → (reason, evidence), bounces: (key, kind, origin+run))."""
    state = open_state(load_config(site), read_only=True)
    try:
        suppressions = {s.key: (s.reason, s.evidence) for s in state.suppressions()}
        bounces: list[tuple[str, str, str]] = [(b.key, b.kind, f"{b.origin}:{b.run}")
                                               for b in state.bounces()]
    finally:
        state.close()
    return suppressions, bounces


# Amazon SES through SNS ----------------------------------------------------------------------
def test_signed_ses_hard_bounce_suppresses_the_address_with_evidence(site, client, sns):
    answer = client.post("/webhooks/ses", json=ses("bounce-permanent"))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"recorded": 1, "repeated": 0}
    suppressions, bounces = state_of(site)
    assert suppressions["ana@example.org"][0] == "hard bounce"
    assert "5.1.1" in suppressions["ana@example.org"][1]
    assert "User unknown" in suppressions["ana@example.org"][1]
    assert bounces == [("ana@example.org", "hard", "ses:2024-06-10")]
    assert sns.requests == ["/SimpleNotificationService-0123456789abcdef.pem"]
    # posted again (SNS retries): counted once, and the certificate is not fetched again
    assert client.post("/webhooks/ses", json=ses("bounce-permanent")).json() == {
        "recorded": 0, "repeated": 1}
    assert len(sns.requests) == 1


def test_signature_version_2_is_sha256(site, client):
    assert client.post("/webhooks/ses", json=ses("complaint", version="2")).status_code == 200
    suppressions, _ = state_of(site)
    assert suppressions["all@example.org"][0] == "complaint (marked as spam)"
    assert "abuse" in suppressions["all@example.org"][1]


def test_ses_transient_bounce_counts_but_does_not_suppress(site, client):
    assert client.post("/webhooks/ses", json=ses("bounce-transient")).json()["recorded"] == 1
    suppressions, bounces = state_of(site)
    assert suppressions == {}
    assert bounces == [("dev@example.org", "soft", "ses:2024-06-10")]


def test_ses_delivery_records_nothing(site, client):
    assert client.post("/webhooks/ses", json=ses("delivery")).json() == {
        "recorded": 0, "repeated": 0}
    assert state_of(site) == ({}, [])


def forged_message(data: dict[str, Any]) -> dict[str, Any]:
    data["Message"] = data["Message"].replace("ana@example.org", "dev@example.org")
    return data


@pytest.mark.parametrize(("body", "status", "reason"), [
    (lambda: forged_message(ses("bounce-permanent")), 403, "does not verify"),
    (lambda: ses("bounce-permanent", key=OTHER_KEY), 403, "does not verify"),
    (lambda: ses("bounce-permanent", topic="arn:aws:sns:us-west-2:666:theirs"), 403,
     "not in bounces.webhooks.ses.topics"),
    (lambda: ses("bounce-permanent", cert_url="https://evil.example.com/sns.pem"), 403,
     "not on sns.REGION.amazonaws.com"),
    (lambda: ses("bounce-permanent", cert_url="https://sns.us-west-2.amazonaws.com.evil.com/"
                                              "x.pem"), 403, "not on sns.REGION"),
    (lambda: ses("bounce-permanent", cert_url=CERT_URL.replace("https", "http")), 403,
     "not https"),
    (lambda: ses("bounce-permanent", cert_url=f"{REGION_HOST}/other.pem"), 403,
     "not SNS's"),
    (lambda: ses("bounce-permanent", version="3"), 403, "not 1 or 2"),
    (lambda: {**ses("bounce-permanent"), "Signature": "!!not base64!!"}, 403,
     "does not verify"),
    (lambda: {"Type": "Notification"}, 400, "without a text"),
    (lambda: [1, 2], 400, "not a JSON object"),
])
def test_ses_refuses_what_sns_did_not_sign_and_records_nothing(site, client, body, status,
                                                              reason):
    answer = client.post("/webhooks/ses", json=body())
    assert (answer.status_code, reason in answer.json()["error"]) == (status, True), answer.text
    assert state_of(site) == ({}, [])


def test_malformed_and_oversized_bodies_are_refused_before_parsing(site, client):
    answer = client.post("/webhooks/ses", content=b'{"Type": "Notif',
                         headers={"content-type": "application/json"})
    assert (answer.status_code, answer.json()) == (400, {"error": "body is not JSON"})
    assert client.post("/webhooks/ses", content=b"\xff\xfe").status_code == 400
    assert client.post("/webhooks/ses", content=b" " * (300 * 1024)).status_code == 413
    with pytest.raises(WebhookRefused) as refused:  # the parser's own bound, below the server's
        read_json(b"[" * 300_000)
    assert refused.value.status == 413
    with pytest.raises(WebhookRefused) as refused:
        read_json(b"[" * 200_000)
    assert refused.value.status == 400  # too deep to parse: malformed, no traceback


def test_subscription_to_a_listed_topic_is_confirmed(site, client, sns):
    confirm = f"{REGION_HOST}/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=abc123"
    body = sns_body("SubscriptionConfirmation", message="You have chosen to subscribe",
                    SubscribeURL=confirm, Token="abc123")
    assert client.post("/webhooks/ses", json=body).status_code == 200
    assert sns.requests[-1] == f"/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=abc123"


def test_subscription_without_topics_is_left_to_the_owner(tmp_path, sns, caplog):
    site = site_with(tmp_path, {"ses": {}})
    confirm = f"{REGION_HOST}/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=abc123"
    body = sns_body("SubscriptionConfirmation", message="subscribe?", SubscribeURL=confirm,
                    Token="abc123")
    with caplog.at_level(logging.WARNING), serve(site, sns) as server:
        assert httpx.post(server.url + "/webhooks/ses", json=body).status_code == 200
        # with no topics listed, a notification of any topic SNS signed is taken
        assert httpx.post(server.url + "/webhooks/ses",
                          json=ses("bounce-permanent", topic="arn:aws:sns:eu-west-1:1:x")
                          ).status_code == 200
    assert not any("ConfirmSubscription" in r for r in sns.requests)
    assert confirm in caplog.text


def test_a_subscribe_url_off_sns_is_never_fetched(site, client, sns):
    body = sns_body("SubscriptionConfirmation", message="subscribe?", Token="t",
                    SubscribeURL="https://evil.example.com/?Action=ConfirmSubscription")
    assert client.post("/webhooks/ses", json=body).status_code == 403
    assert all(r.endswith(".pem") for r in sns.requests)


def test_certificates_are_checked_by_the_production_host_rule():
    """No fetcher can make a non-SNS URL acceptable: the URL is refused before fetching."""
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return SNS_PEM

    certificates = Certificates(fetch)
    body = ses("bounce-permanent", cert_url="https://sns.us-west-2.amazonaws.com:8443/x.pem")
    with pytest.raises(WebhookRefused):
        verify(body, certificates)
    assert fetched == []
    assert verify(ses("bounce-permanent"), certificates).topic_arn == TOPIC
    china = ses("bounce-permanent", cert_url="https://sns.cn-north-1.amazonaws.com.cn/c.pem")
    assert verify(china, certificates).message_id == china["MessageId"]


# Mailgun ------------------------------------------------------------------------------------
def mailgun(name: str, *, key: str = MAILGUN_KEY, at: float | None = None,
            token: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"mailgun-{name}.json").read_text())
    timestamp = str(int(time.time() if at is None else at))
    token = token or hashlib.sha256(f"{name}{time.monotonic_ns()}".encode()).hexdigest()[:50]
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256)
    data["signature"] = {"timestamp": timestamp, "token": token,
                         "signature": signature.hexdigest()}
    return data


def test_mailgun_signed_events_are_applied(site, client):
    for name in ("failed-permanent", "failed-temporary", "complained"):
        assert client.post("/webhooks/mailgun", json=mailgun(name)).status_code == 200
    suppressions, bounces = state_of(site)
    assert {k: r for k, (r, _) in suppressions.items()} == {
        "ana@example.org": "hard bounce", "all@example.org": "complaint (marked as spam)"}
    assert "5.1.1" in suppressions["ana@example.org"][1]
    assert sorted(bounces) == [("all@example.org", "complaint", "mailgun:2024-06-10"),
                               ("ana@example.org", "hard", "mailgun:2024-06-10"),
                               ("dev@example.org", "soft", "mailgun:2024-06-10")]


@pytest.mark.parametrize(("body", "reason"), [
    (lambda: mailgun("failed-permanent", key="not-the-key"), "does not verify"),
    (lambda: mailgun("failed-permanent", at=time.time() - 600), "more than 300 s"),
    (lambda: mailgun("failed-permanent", at=time.time() + 600), "more than 300 s"),
    (lambda: {"event-data": mailgun("failed-permanent")["event-data"]}, "no signature"),
])
def test_mailgun_refuses_bad_signatures_and_stale_timestamps(site, client, body, reason):
    answer = client.post("/webhooks/mailgun", json=body())
    assert answer.status_code in (400, 403)
    assert reason in answer.json()["error"]
    assert state_of(site) == ({}, [])


def test_mailgun_refuses_a_replayed_token(site, client):
    first = mailgun("failed-temporary", token="f" * 50)
    assert client.post("/webhooks/mailgun", json=first).status_code == 200
    again = client.post("/webhooks/mailgun", json=first)
    assert (again.status_code, "replayed" in again.json()["error"]) == (403, True)
    # the same token with another event, signed anew: still a replay
    other = mailgun("failed-permanent", token="f" * 50)
    assert client.post("/webhooks/mailgun", json=other).status_code == 403
    assert state_of(site)[1] == [("dev@example.org", "soft", "mailgun:2024-06-10")]


# Postmark -----------------------------------------------------------------------------------
def postmark(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"postmark-{name}.json").read_text())
    return data


def test_postmark_with_its_basic_auth_is_applied(site, client):
    auth = (POSTMARK_USER, POSTMARK_PASSWORD)
    for name in ("hard-bounce", "spam-complaint", "auto-responder", "subscription-change"):
        assert client.post("/webhooks/postmark", json=postmark(name), auth=auth
                           ).status_code == 200
    suppressions, bounces = state_of(site)
    assert {k: r for k, (r, _) in suppressions.items()} == {
        "ana@example.org": "hard bounce", "all@example.org": "complaint (marked as spam)",
        "dev@example.org": "unsubscribed by reply to the List-Unsubscribe address"}
    assert len(bounces) == 3  # the auto-reply is no bounce


@pytest.mark.parametrize("auth", [None, (POSTMARK_USER, "wrong"), ("someone", POSTMARK_PASSWORD),
                                  (POSTMARK_USER, POSTMARK_PASSWORD + "x")])
def test_postmark_refuses_wrong_or_missing_auth(site, client, auth):
    answer = client.post("/webhooks/postmark", json=postmark("hard-bounce"), auth=auth)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Basic")
    assert state_of(site) == ({}, [])


# configuration ------------------------------------------------------------------------------
def test_a_relay_not_configured_has_no_route(tmp_path):
    site = site_with(tmp_path, {"mailgun": {"signing_key_env": "MAILGUN_KEY"}})
    with serve(site) as server, httpx.Client(base_url=server.url) as http:
        assert http.post("/webhooks/ses", json=ses("bounce-permanent")).status_code == 404
        assert http.post("/webhooks/postmark", json={}).status_code == 404
        assert http.post("/webhooks/mailgun", json=mailgun("complained")).status_code == 200


def test_a_missing_secret_answers_503_and_is_logged_once(tmp_path, monkeypatch, caplog):
    site = site_with(tmp_path, ALL)
    monkeypatch.delenv("MAILGUN_KEY")
    monkeypatch.setenv("POSTMARK_PASSWORD", "")
    with caplog.at_level(logging.ERROR), serve(site) as server, \
            httpx.Client(base_url=server.url) as http:
        for _ in range(3):
            assert http.post("/webhooks/mailgun", json=mailgun("complained")).status_code == 503
            assert http.post("/webhooks/postmark", json={},
                             auth=(POSTMARK_USER, "")).status_code == 503
    assert caplog.text.count("MAILGUN_KEY is not set") == 1
    assert caplog.text.count("POSTMARK_PASSWORD is not set") == 1
    assert state_of(site) == ({}, [])


# one event failing ---------------------------------------------------------------------------
def test_an_event_that_fails_does_not_lose_the_others(site, client):
    """Two recipients in one SES bounce; the database refuses one (a real SQLite trigger):
    the other is kept, the answer is 503 so SNS posts again, and the retry records the rest."""
    db = sqlite3.connect(site.parent / "state" / "state.sqlite3")
    db.execute("CREATE TRIGGER refuse BEFORE INSERT ON bounces WHEN NEW.key = 'dev@example.org'"
               " BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
    db.commit()
    note = json.loads((FIXTURES / "ses-bounce-permanent.json").read_text())
    note["bounce"]["bouncedRecipients"].append(
        {"emailAddress": "dev@example.org", "status": "5.2.1", "diagnosticCode": "disabled"})
    body = sns_body(message=json.dumps(note))
    first = client.post("/webhooks/ses", json=body)
    assert (first.status_code, first.json()) == (503, {"recorded": 1, "repeated": 0,
                                                       "failed": 1})
    assert set(state_of(site)[0]) == {"ana@example.org"}
    db.execute("DROP TRIGGER refuse")
    db.commit()
    db.close()
    assert client.post("/webhooks/ses", json=body).json() == {"recorded": 1, "repeated": 1}
    assert set(state_of(site)[0]) == {"ana@example.org", "dev@example.org"}


def test_parsers_read_any_shape_without_raising():
    """Verified bodies of odd shapes (wrong types, lone surrogates) give nothing, not a
    traceback."""
    odd: list[Any] = [None, 1, "x", [], {}, [1], {"a": 1}, "\ud800@example.org", True, 1.5]
    for value in odd:
        for body in ({"event-data": value}, {"event-data": {"event": "failed",
                                                            "severity": "permanent",
                                                            "recipient": value, "id": value,
                                                            "delivery-status": value}}):
            assert mailgun_feedback(body) == []
        for record in ("Bounce", "SpamComplaint", "SubscriptionChange"):
            assert postmark_feedback({"RecordType": record, "Type": value, "Email": value,
                                      "Recipient": value, "ID": value,
                                      "SuppressSending": value}) == []
        message = json.dumps({"notificationType": "Bounce", "bounce": {
            "bounceType": value, "bouncedRecipients": [{"emailAddress": value}, value]},
            "mail": value})
        assert ses_feedback(SnsMessage("Notification", "m", TOPIC, message, None)) == []
        assert ses_feedback(SnsMessage("Notification", "m", TOPIC, json.dumps(value), None)) \
            == []


def test_a_run_is_read_only_from_our_own_message_id_for_that_address():
    ours = "<digest.2024-06-10.68e8b7d9e3fc92c6d862@example.org>"
    assert run_of(ours, "Ana@Example.org") == "2024-06-10"
    assert run_of(ours.strip("<>"), "ana@example.org") == "2024-06-10"  # as Mailgun has it
    assert run_of(ours, "dev@example.org") is None  # another subscriber's copy
    assert run_of(ours.replace("68e8", "68e9"), "ana@example.org") is None  # made up
    assert run_of("<20240610.c940eca18fb35685.digest@example.org>", "ana@example.org") is None
