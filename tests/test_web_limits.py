"""The web front's limits, over real sockets: slow clients are closed, a crowd past the cap
is turned away with 503, an oversized body gets 413, and ordinary requests still work."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import build_site
from helpers import MONDAY, SECRET, SUBSCRIBERS, digest_site
from web_server import WebServer

from digest.config import load_config
from digest.subscribers.tokens import Signer
from digest.web.guard import Limits

LIMITS = Limits(head_seconds=1.0, body_seconds=1.0, max_body=1024, connections=5)
# a real token: the app reads the body of a POST to it (a wrong one is a 404 at once)
UNSUBSCRIBE = "/unsubscribe/" + Signer([SECRET.encode()]).token(SUBSCRIBERS[0]["email"],
                                                                "unsubscribe")


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[WebServer]:
    config = digest_site(tmp_path)
    build_site(config, now=MONDAY)
    with WebServer(load_config(config), LIMITS) as running:
        yield running


def _connect(server: WebServer) -> socket.socket:
    parts = urlsplit(server.url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    return sock


def _read_all(sock: socket.socket, seconds: float = 10) -> bytes:
    """Everything until the server closes the connection (b"" at once if it has)."""
    sock.settimeout(seconds)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_slowloris_header_sender_is_closed_within_the_head_deadline(server: WebServer
                                                                      ) -> None:
    sock = _connect(server)
    started = time.monotonic()
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    sock.settimeout(0.25)
    closed_after = None
    for i in range(40):  # a header line every 0.25 s: each byte resets uvicorn's own timer
        try:
            sock.recv(65536)  # the 408, or the end of the connection
            closed_after = time.monotonic() - started
            break
        except TimeoutError:
            pass
        try:
            sock.sendall(f"X-Slow-{i}: 1\r\n".encode())
        except OSError:
            closed_after = time.monotonic() - started
            break
    sock.close()
    assert closed_after is not None, "the slow client was never closed"
    assert closed_after < LIMITS.head_seconds + 1.5


def test_a_silent_connection_is_closed_and_told_408(server: WebServer) -> None:
    sock = _connect(server)
    started = time.monotonic()
    reply = _read_all(sock)
    assert reply.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - started < LIMITS.head_seconds + 1.5


def test_a_slow_body_is_cut_off_at_the_body_deadline(server: WebServer) -> None:
    sock = _connect(server)
    sock.sendall(f"POST {UNSUBSCRIBE} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                 "Content-Type: application/x-www-form-urlencoded\r\n\r\nList-".encode())
    started = time.monotonic()
    reply = _read_all(sock)
    assert time.monotonic() - started < LIMITS.body_seconds + 1.5
    assert reply.startswith(b"HTTP/1.1 408")


def test_connections_past_the_cap_get_503(server: WebServer) -> None:
    idle = [_connect(server) for _ in range(LIMITS.connections)]
    try:
        time.sleep(0.2)
        extra = _connect(server)
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _read_all(extra).startswith(b"HTTP/1.1 503")
        extra.close()
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.2)
    ok = _connect(server)  # the crowd gone, requests are served again
    ok.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert _read_all(ok).startswith(b"HTTP/1.1 200")


def test_an_oversized_body_gets_413_by_its_length_or_as_it_arrives(server: WebServer) -> None:
    sock = _connect(server)
    sock.sendall(f"POST {UNSUBSCRIBE} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
                 .encode())
    assert _read_all(sock).startswith(b"HTTP/1.1 413")
    sock = _connect(server)
    sock.sendall(f"POST {UNSUBSCRIBE} HTTP/1.1".encode() + b"\r\nHost: x\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    try:
        for _ in range(4):
            sock.sendall(b"400\r\n" + b"a" * 1024 + b"\r\n")
            time.sleep(0.05)
    except OSError:
        pass  # closed on us mid-body: that is the point
    assert _read_all(sock).startswith(b"HTTP/1.1 413")


def test_a_webhook_may_post_a_body_as_large_as_an_sns_message(server: WebServer) -> None:
    """SNS posts messages of up to 256 KB: the relays' path has that cap, the forms do not."""
    body = b"x" * 100_000
    for path, refused in ((UNSUBSCRIBE, True), ("/webhooks/ses", False)):
        sock = _connect(server)
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        head = _read_all(sock)
        assert head.startswith(b"HTTP/1.1 413") is refused, (path, head[:40])
    sock = _connect(server)
    sock.sendall(b"POST /webhooks/ses HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n")
    assert _read_all(sock).startswith(b"HTTP/1.1 413")


def test_keep_alive_requests_within_the_limits_are_served(server: WebServer) -> None:
    sock = _connect(server)
    for _ in range(3):
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        reply = b""
        while not reply.endswith(b'{"status":"ok"}'):
            reply += sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200"), reply
        time.sleep(0.3)
    sock.close()
