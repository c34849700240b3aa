"""Sending a sign-up's emails from the web front: the confirmation and the welcome.

They go the way digests go (delivery/send.py's transport: the SMTP relay of `smtp:`, or
the outbox Maildir when there is none), one message per transport, after the page has
been answered (a background task), so a slow relay never holds a visitor, and the answer's
timing says nothing about whether anything was sent. A failure is logged, never shown:
the visitor can ask again. The templates are read per message: sign-ups are few (the
limits see to it), and an edited template is then used at once.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from email.utils import parseaddr

from ..delivery.send import make_transport
from ..delivery.session import domain_of, mail_settings
from ..delivery.transport import Outcome, Outgoing
from ..edition.notices import Notice, Notices
from ..errors import DigestError
from ..state.interface import Pending
from ..util.logs import event
from .context import Web

log = logging.getLogger(__name__)


def message_id(domain: str) -> str:
    return f"<signup.{secrets.token_hex(10)}@{domain}>"


async def send_confirmation(web: Web, pending: Pending, confirm_url: str) -> None:
    """The confirmation for *pending*, to its address only, with *confirm_url*."""
    hours = web.config.signup.confirm_hours if web.config.signup else 48

    def build(notices: Notices) -> Notice:
        return notices.confirmation(
            email=pending.email, confirm_url=confirm_url, hours=hours,
            expires=pending.requested_at + timedelta(hours=hours))
    await _send(web, pending, "confirmation", build, listed=False)


async def send_welcome(web: Web, member: Pending) -> None:
    """The welcome once *member* confirmed: their tags page, past digests, unsubscribe."""
    base = web.config.web.base_url if web.config.web else None
    links: dict[str, str | None] = {"preferences": None, "unsubscribe": None}
    if base:
        links = {p: f"{base}/{p}/{web.signer.token(member.key, p)}" for p in links}

    def build(notices: Notices) -> Notice:
        return notices.welcome(email=member.email, preferences_url=links["preferences"],
                               unsubscribe_url=links["unsubscribe"],
                               archive_url=f"{base}/archive/" if base else None)
    await _send(web, member, "welcome", build, listed=True,
                unsubscribe_url=links["unsubscribe"])


async def _send(web: Web, to: Pending, what: str, build: Callable[[Notices], Notice], *,
                listed: bool, unsubscribe_url: str | None = None) -> None:
    config = web.config
    try:
        settings = mail_settings(config)
        notices = Notices(settings)
        notice = build(notices)
        data = notices.message(notice, to=to.email, date=web.now(),
                               message_id=message_id(domain_of(settings.sender)),
                               unsubscribe_url=unsubscribe_url, listed=listed)
        outgoing = Outgoing(key=to.key, sender=parseaddr(settings.sender)[1],
                            recipient=to.email, data=data)
        outcomes: list[Outcome] = []

        async def record(outcome: Outcome) -> None:
            outcomes.append(outcome)

        await make_transport(config).deliver(_one(outgoing), record)
    except DigestError as exc:
        log.error("sign-up %s not sent: %s", what, exc, extra=event("web.signup.unsent"))
        return
    except Exception:  # a background task's failure would otherwise go unseen
        log.exception("sign-up %s not sent", what)
        return
    if not outcomes or outcomes[0].status != "sent":
        reply = outcomes[0].reply if outcomes else "no outcome"
        log.error("sign-up %s not sent: %s", what, reply, extra=event("web.signup.unsent"))
    else:
        log.info("sign-up %s sent", what, extra=event(f"web.signup.{what}"))


async def _one(message: Outgoing) -> AsyncIterator[Outgoing]:
    yield message
