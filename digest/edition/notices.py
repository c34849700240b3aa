"""The two emails a sign-up sends: the confirmation (double opt-in) and the welcome.

Both are small multipart/alternative messages from templates like the digest's
(`confirm.txt.j2` / `confirm.html.j2`, `welcome.txt.j2` / `welcome.html.j2`), overridable
from the `digest: templates:` folder; each template's header comment lists its variables,
and the text template may set `subject`. Their headers go through the digest's own checks
(message.py), so nothing can add a header or break the MIME structure.

Nothing the visitor typed reaches them but the address, which was validated first: a name
field is where spammers put their links, and a confirmation goes to whatever address was
typed, so it must carry nothing of theirs. So there is no name in either, even the welcome.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2

from ..util.builtin import compiled, failed
from .layout import MailSettings, mail_environment
from .message import (
    address_header,
    check_address,
    check_url,
    date_header,
    fold,
    message_id_header,
    one_line,
    qp,
    sender_header,
    sign,
    unsubscribe_headers,
)

MAX_SUBJECT = 150
_BLANK_LINES = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class Notice:
    """A notice as it reads: for tests and for the message's bytes."""

    subject: str
    text: str
    html: str


class Notices:
    """The sign-up emails' templates, loaded once per config."""

    def __init__(self, settings: MailSettings) -> None:
        self.settings = settings
        self._env = mail_environment(settings.templates)
        self._templates = {name: compiled(self._env, name) for name in (
            "confirm.txt.j2", "confirm.html.j2", "welcome.txt.j2", "welcome.html.j2")}
        self._sender = sender_header(settings.sender)
        self._mailto = check_address(settings.unsubscribe_mailto)
        self._lang = re.sub(r"[^A-Za-z0-9-]", "", settings.site.lang) or "en"

    def confirmation(self, *, email: str, confirm_url: str, expires: datetime,
                     hours: float) -> Notice:
        """The confirmation's text: the address, the link and when it stops working."""
        return self._notice("confirm", "Confirm your subscription to {title}", {
            "email": check_address(email), "confirm_url": check_url(confirm_url),
            "expires": expires.astimezone(self.settings.site.tz), "hours": hours})

    def welcome(self, *, email: str, preferences_url: str | None,
                unsubscribe_url: str | None, archive_url: str | None) -> Notice:
        return self._notice("welcome", "Welcome to {title}", {
            "email": check_address(email),
            "preferences_url": check_url(preferences_url) if preferences_url else None,
            "unsubscribe_url": check_url(unsubscribe_url) if unsubscribe_url else None,
            "archive_url": check_url(archive_url) if archive_url else None})

    def message(self, notice: Notice, *, to: str, date: datetime, message_id: str,
                unsubscribe_url: str | None = None, listed: bool = False) -> bytes:
        """*notice* as an RFC 5322 message to *to*, CRLF line ends, DKIM-signed if set.
        *listed*: part of the list (the welcome), with List-Id and List-Unsubscribe; the
        confirmation is not, as nobody is on the list yet."""
        boundary = "=_notice_" + secrets.token_hex(12)
        part = ("--{b}\r\nContent-Type: text/{kind}; charset=\"utf-8\"\r\n"
                "Content-Transfer-Encoding: quoted-printable\r\n\r\n")
        head = b"".join((
            self._sender, address_header(None, check_address(to)),
            fold("Subject", notice.subject), date_header(date),
            message_id_header(message_id),
            (fold("List-Id", self.settings.list_id)
             + unsubscribe_headers(unsubscribe_url, self._mailto)) if listed else b"",
            (f"MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n"
             f" boundary=\"{boundary}\"\r\nContent-Language: {self._lang}\r\n"
             "Auto-Submitted: auto-generated\r\n\r\n").encode("ascii")))
        raw = b"".join((
            head, part.format(b=boundary, kind="plain").encode("ascii"), qp(notice.text),
            ("\r\n" + part.format(b=boundary, kind="html")).encode("ascii"), qp(notice.html),
            f"\r\n--{boundary}--\r\n".encode("ascii")))
        return sign(raw, self.settings.dkim) if self.settings.dkim else raw

    def _notice(self, name: str, subject: str, values: dict[str, Any]) -> Notice:
        site = self.settings.site
        context = {"site": site, **values}
        text_template = self._templates[f"{name}.txt.j2"]
        module = self._render(text_template, context)
        text = _BLANK_LINES.sub("\n\n", str(module).replace("\r\n", "\n")).strip("\n") + "\n"
        chosen = getattr(module, "subject", None)
        line = one_line(str(chosen) if chosen else subject.format(title=site.title))
        context["subject"] = line[:MAX_SUBJECT]
        html = str(self._render(self._templates[f"{name}.html.j2"], context))
        return Notice(context["subject"], text, html.replace("\r\n", "\n"))

    @staticmethod
    def _render(template: jinja2.Template, context: dict[str, Any]) -> Any:
        try:
            return template.make_module(context)
        # the templates are the user's: whatever goes wrong in one is a problem in that file
        except (jinja2.TemplateError, ArithmeticError, LookupError, TypeError,
                ValueError) as exc:
            raise failed(exc, template, "template error") from None
