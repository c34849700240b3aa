"""POST /webhooks/ses, /webhooks/mailgun, /webhooks/postmark: the bounces and complaints a
relay reports, verified (feedback/sns.py, feedback/webhooks.py) and applied by the same rules
as the mailbox's (feedback/apply.py).

A route answers only when `bounces.webhooks` configures its relay (else the 404 of an
unknown path). A refused request (forged, replayed, malformed) gets its status and a
one-line reason, and changes nothing. A secret's variable unset: 503, logged once, so the
relay keeps the events and retries. Each event is applied on its own: one that fails
(the database, say) is logged, the others are kept, and the answer is 503 so that the relay
posts again; what was kept counts once, by its ident.

An SNS SubscriptionConfirmation is confirmed by this server (a GET of its SubscribeURL, on
SNS's host) only for a topic listed in `bounces.webhooks.ses.topics`: a signature proves
SNS sent it, not that the topic is ours. With no topics listed, the URL is logged for the
owner to open, which is then the only way a topic gets to post here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..config import Webhooks
from ..errors import WebhookRefused
from ..feedback.apply import apply
from ..feedback.events import Feedback
from ..feedback.sns import MAX_BODY, Certificates, Fetch, fetch_url, read_json, sns_url, verify
from ..feedback.webhooks import (
    MAILGUN_SKEW_SECONDS,
    mailgun_feedback,
    mailgun_token,
    postmark_check,
    postmark_feedback,
    ses_feedback,
)
from .context import Web, in_thread

log = logging.getLogger(__name__)
Handler = Callable[[Web, Request], Awaitable[Response]]
Wrap = Callable[[Handler], Callable[[Request], Awaitable[Response]]]


class Relays:
    """What the webhook routes keep between requests: SNS's certificates and the Fetch that
    gets them (tests give theirs), and the missing secrets already logged."""

    def __init__(self, fetch: Fetch = fetch_url) -> None:
        self.certificates = Certificates(fetch)
        self._logged: set[str] = set()

    @property
    def fetch(self) -> Fetch:
        return self.certificates.fetch

    @fetch.setter
    def fetch(self, fetch: Fetch) -> None:
        self.certificates = Certificates(fetch)

    def routes(self, wrap: Wrap) -> list[Route]:
        return [Route("/webhooks/ses", wrap(self.ses), methods=["POST"]),
                Route("/webhooks/mailgun", wrap(self.mailgun), methods=["POST"]),
                Route("/webhooks/postmark", wrap(self.postmark), methods=["POST"])]

    # the relays ---------------------------------------------------------------------------
    async def ses(self, web: Web, request: Request) -> Response:
        hooks = _hooks(web)
        if not hooks.ses:
            raise HTTPException(404)
        return await self._take(web, request, "ses",
                                lambda body: self._ses(hooks.ses_topics, body))

    def _ses(self, topics: tuple[str, ...], body: bytes) -> list[Feedback]:
        message = verify(read_json(body), self.certificates, topics)
        if message.type == "SubscriptionConfirmation":
            self._confirm(message.topic_arn, message.subscribe_url, confirm=bool(topics))
        elif message.type == "UnsubscribeConfirmation":
            log.warning("SNS: this endpoint was unsubscribed from %s", message.topic_arn)
        return ses_feedback(message)

    def _confirm(self, topic: str, url: str | None, *, confirm: bool) -> None:
        url = sns_url(url, pem=False)
        if parse_qs(urlsplit(url).query).get("Action") != ["ConfirmSubscription"]:
            raise WebhookRefused(403, "a SubscribeURL that is not a ConfirmSubscription")
        if not confirm:
            log.warning("SNS asks to subscribe this endpoint to %s: list the topic in "
                        "bounces.webhooks.ses.topics to have it confirmed, or open %s", topic,
                        url)
            return
        try:
            self.fetch(url)
        except (OSError, ValueError) as exc:
            raise WebhookRefused(503, f"cannot confirm the SNS subscription: {exc}") from None
        log.info("SNS subscription to %s confirmed", topic)

    async def mailgun(self, web: Web, request: Request) -> Response:
        hooks = _hooks(web)
        if hooks.mailgun_key_env is None:
            raise HTTPException(404)
        key = self._secret(hooks.mailgun_key_env, "mailgun")
        if key is None:
            return _refused("mailgun", WebhookRefused(503, "the signing key is not set"))

        def check(body: bytes) -> list[Feedback]:
            data = read_json(body)
            now = web.now()
            token = mailgun_token(data, key.encode(), now.timestamp())
            # the token as a hit allowed once: shared by every web node, and forgotten by
            # itself once its timestamp is too old to pass anyway (record_bounce's idents
            # would miss events that record nothing, and tell a replay from a retry too late)
            if not web.state().hit(f"mailgun-token:{token}", 1,
                                   2 * MAILGUN_SKEW_SECONDS + 60, now):
                raise WebhookRefused(403, "a Mailgun token already used (replayed)")
            return mailgun_feedback(data)

        return await self._take(web, request, "mailgun", check)

    async def postmark(self, web: Web, request: Request) -> Response:
        hooks = _hooks(web)
        if hooks.postmark_username is None or hooks.postmark_password_env is None:
            raise HTTPException(404)
        password = self._secret(hooks.postmark_password_env, "postmark")
        if password is None:
            return _refused("postmark", WebhookRefused(503, "the password is not set"))
        try:
            postmark_check(request.headers.get("authorization"), hooks.postmark_username,
                           password)
        except WebhookRefused as exc:
            return _refused("postmark", exc, {"WWW-Authenticate": 'Basic realm="webhooks"'})
        return await self._take(web, request, "postmark",
                                lambda body: postmark_feedback(read_json(body)))

    # what they share ----------------------------------------------------------------------
    def _secret(self, name: str, relay: str) -> str | None:
        value = os.environ.get(name, "")
        if value:
            return value
        if name not in self._logged:
            self._logged.add(name)
            log.error("the %s webhook answers 503: the environment variable %s is not set "
                      "(set it where digest's secrets are, then restart)", relay, name)
        return None

    async def _take(self, web: Web, request: Request, relay: str,
                    check: Callable[[bytes], list[Feedback]]) -> Response:
        try:
            body = await _read_body(request)
            items = await in_thread(check, body)
        except WebhookRefused as exc:
            return _refused(relay, exc)
        return await in_thread(_apply, web, relay, items)


def _hooks(web: Web) -> Webhooks:
    return web.config.bounces.webhooks if web.config.bounces else Webhooks()


def _refused(relay: str, exc: WebhookRefused,
             headers: dict[str, str] | None = None) -> Response:
    log.warning("%s webhook refused (%d): %s", relay, exc.status, exc.reason)
    return JSONResponse({"error": exc.reason}, status_code=exc.status,
                        headers={"Cache-Control": "no-store", **(headers or {})})


async def _read_body(request: Request) -> bytes:
    """The body, read up to MAX_BODY (413 past it) before anything parses it."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        raise WebhookRefused(413 if length.isdigit() else 400, "body too large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise WebhookRefused(413, "body too large")
        chunks.append(chunk)
    return b"".join(chunks)


def _apply(web: Web, relay: str, items: list[Feedback]) -> Response:
    """Each event on its own: one that fails is logged and the others kept."""
    assert web.config.bounces is not None  # a route answers only with bounces: configured
    recorded = repeated = failed = 0
    for item in items:
        try:
            applied = apply(web.state(), [item], soft_limit=web.config.bounces.soft_limit,
                            now=web.now())
        except Exception as exc:  # the database; the relay posts the whole body again
            failed += 1
            log.error("%s webhook: %s feedback for %s not recorded: %s", relay, item.kind,
                      item.address, exc)
            continue
        recorded += sum(applied.recorded.values())
        repeated += applied.repeated
        for address, reason in applied.suppressed:
            log.info("suppressed %s: %s (%s webhook)", address, reason, relay)
    answer: dict[str, Any] = {"recorded": recorded, "repeated": repeated}
    if failed:
        answer["failed"] = failed
    return JSONResponse(answer, status_code=503 if failed else 200,
                        headers={"Cache-Control": "no-store"})
