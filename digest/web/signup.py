"""Signing up on the web front, with double opt-in: the form, the confirmation email and
the page whose button confirms.

`GET /subscribe` shows the form (address, optional name, every post or some tags); the
same form can be pasted into the site (`digest signup-form`). `POST /subscribe` answers
one page whatever happens next, so it never tells who is subscribed: a new address, a
subscribed one, a suppressed one, a filled honeypot and a request over a limit all read the
same, byte for byte, and the email is sent after the answer (so neither does the answer's
timing). Past the honeypot and three limits per hour (per client IP, per address, overall:
`signup:`), the request is kept as the address's pending sign-up (a newer one replaces it)
and one confirmation goes out with a link sealed to that request (subscribers/
signup_token.py: the address is encrypted in it, and it expires after `confirm_hours`).
Over a limit nothing is kept or sent, so the link already sent keeps working.

The link opens a page with a button; only its POST confirms, since link scanners follow
GETs. Confirming takes the pending row (a link works once), adds the address as a member
(or, for an address in the owner's file, keeps the chosen tags as its web preferences),
and lifts any suppression: confirming again is the one way back from that list. There is
no CSRF token: the form is meant to be posted from the site itself, and the confirmation
needs the secret link. The client IP is the socket's peer, or, behind a proxy on the same
machine, what uvicorn's proxy headers support says (it trusts X-Forwarded-For from
127.0.0.1 only, unless FORWARDED_ALLOW_IPS says otherwise); an IPv6 client counts by its
/64, which one subscriber's machine can roam through.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from email_validator import EmailNotValidError, validate_email
from starlette.background import BackgroundTask
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..config import SignupSettings
from ..edition.message import MAX_NAME, one_line
from ..state.interface import Member, Pending
from ..subscribers.signup_token import same_moment, seal, unseal
from ..util.logs import event
from .context import Web, in_thread, read_form
from .signup_mail import send_confirmation, send_welcome

log = logging.getLogger(__name__)
HOUR = 3600.0
HONEYPOT = "homepage"  # a text field people never see; bots fill every field they find


def _settings(web: Web) -> SignupSettings:
    """The sign-up settings, or the 404 page when sign-up is off (or has no public URL to
    put in its links: the Host header is the client's to choose, so never that)."""
    signup, site = web.config.signup, web.config.web
    if signup is None or site is None or not site.base_url:
        raise HTTPException(404)
    return signup


# the form ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SignUp:
    """A sign-up as the form gives it, checked: ASCII address, one-line name, known tags."""

    email: str
    name: str | None
    tags: tuple[str, ...] | None  # None: every post


def form_context(tags: list[str], *, action: str = "", email: str = "", name: str = "",
                 every: bool = True, chosen: tuple[str, ...] = ()) -> dict[str, Any]:
    """What web/signup_form.html.j2 shows: the page's form and the pasted snippet alike."""
    picked = {t.casefold() for t in chosen}
    return {"action": action, "email": email, "name": name, "every": every,
            "honeypot": HONEYPOT,
            "choices": [(t, t.casefold() in picked) for t in tags]}


def site_tags(counts: dict[str, int]) -> list[str]:
    return sorted(counts, key=lambda t: (t.casefold(), t))


def parse(form: FormData, offered: list[str]) -> SignUp | tuple[str, dict[str, Any]]:
    """The sign-up, or (what is wrong, the form's values to show again)."""
    email = str(form.get("email") or "").strip()
    name = one_line(str(form.get("name") or ""))[:MAX_NAME].strip() or None
    spelt = {t.casefold(): t for t in offered}
    wanted = tuple(dict.fromkeys(spelt[t.casefold()] for t in map(str, form.getlist("tag"))
                                 if t.casefold() in spelt))
    mode = form.get("mode") or ("some" if form.getlist("tag") else "all")
    shown = {"email": email[:254], "name": name or "", "every": mode == "all",
             "chosen": wanted}
    try:
        if len(email) > 254:
            raise EmailNotValidError("too long")
        valid = validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        return "That does not look like an email address.", shown
    if valid.ascii_email is None:
        return ("That address has characters before the @ that mail cannot carry to it; "
                "please give another one."), shown
    if mode == "all":
        return SignUp(valid.ascii_email, name, None)
    if mode != "some" or not wanted:
        return "Choose at least one tag, or choose every new post.", {**shown, "every": False}
    return SignUp(valid.ascii_email, name, wanted)


def client_ip(request: Request) -> str:
    """The client's address as rate limits count it: an IPv6 address by its /64."""
    host = request.client.host if request.client else "unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


async def subscribe(web: Web, request: Request) -> Response:
    """GET: the form. POST: the same answer whatever the address; see the module's doc."""
    settings = _settings(web)
    tags = site_tags(await in_thread(web.catalogue.counts))
    if request.method != "POST":
        return web.pages.page("signup", {**form_context(tags), "problem": None})
    form = await read_form(request)
    if str(form.get(HONEYPOT) or ""):
        log.info("sign-up ignored: honeypot filled", extra=event("web.signup.honeypot"))
        return _sent(web, settings)
    found = parse(form, tags)
    if not isinstance(found, SignUp):
        problem, shown = found
        return web.pages.page("signup", {**form_context(tags, **shown), "problem": problem},
                              status=400, private=True)
    pending = await in_thread(_admit, web, settings, found, client_ip(request))
    answer = _sent(web, settings)
    if pending is not None:
        answer.background = BackgroundTask(send_confirmation, web, pending,
                                           _confirm_url(web, pending))
    return answer


def _sent(web: Web, settings: SignupSettings) -> Response:
    return web.pages.page("signup_sent", {"hours": settings.confirm_hours}, private=True)


def _admit(web: Web, settings: SignupSettings, found: SignUp, ip: str) -> Pending | None:
    """The pending sign-up to confirm, kept; None when a limit says no (nothing kept)."""
    state, now = web.state(), web.now()
    key = found.email.lower()
    for bucket, limit in ((f"signup:ip:{ip}", settings.per_ip_per_hour),
                          (f"signup:addr:{key}", settings.per_address_per_hour),
                          ("signup:all", settings.per_hour)):
        if not state.hit(bucket, limit, HOUR, now):
            kind = bucket.split(":")[1]
            log.warning("sign-up not sent: over the %s limit (%d an hour)",
                        "overall" if kind == "all" else f"per-{kind}", limit,
                        extra=event("web.signup.limited", limit=kind))
            return None
    state.drop_pending(now - timedelta(hours=settings.confirm_hours))
    pending = Pending(key, found.email, found.name, found.tags, now)
    state.save_pending(pending)
    log.info("sign-up requested", extra=event("web.signup.requested"))
    return pending


def _confirm_url(web: Web, pending: Pending) -> str:
    base = web.config.web.base_url if web.config.web else None
    token = seal(web.signer.secrets, pending.key, pending.requested_at)
    return f"{base}/subscribe/confirm/{token}"


# the confirmation -------------------------------------------------------------------------
_GONE = {
    "expired": "This link has expired. Sign up again to get a new one.",
    "used": ("This link was already used, or a newer one was sent since. If you pressed "
             "the button, you are subscribed; if not, use the newest link, or sign up again."),
}


def _mask(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}"


def _look_up(web: Web, settings: SignupSettings, token: str
             ) -> tuple[str, Pending | None] | None:
    """None for a token that is not ours (404); else ('ok', the pending sign-up) or
    ('expired' | 'used', None)."""
    opened = unseal(web.signer.secrets, token)
    if opened is None:
        return None
    key, requested_at = opened
    if web.now() > requested_at + timedelta(hours=settings.confirm_hours):
        return "expired", None
    pending = web.state().pending(key)
    if pending is None or not same_moment(pending.requested_at, requested_at):
        return "used", None
    return "ok", pending


async def confirm(web: Web, request: Request) -> Response:
    """GET: the page with the button (link scanners follow GETs). POST: confirm."""
    settings = _settings(web)
    token = request.path_params["token"]
    found = await in_thread(_look_up, web, settings, token)
    if found is None:
        raise HTTPException(404)
    status, pending = found
    if pending is None:
        return web.pages.page("signup_confirm", {"gone": _GONE[status]}, status=410,
                              private=True)
    if request.method != "POST":
        return web.pages.page("signup_confirm", {"gone": None,
                                                 "address": _mask(pending.email)},
                              private=True)
    done = await in_thread(_confirm, web, pending)
    if done is None:  # pressed twice at once, or replaced meanwhile
        return web.pages.page("signup_confirm", {"gone": _GONE["used"]}, status=410,
                              private=True)
    preferences = f"../../preferences/{web.signer.token(done.key, 'preferences')}"
    answer = web.pages.page("signup_done", {"preferences": preferences}, private=True)
    if settings.welcome:
        answer.background = BackgroundTask(send_welcome, web, done)
    return answer


def _confirm(web: Web, seen: Pending) -> Pending | None:
    """Make *seen* a subscriber; None if it was taken (or replaced) since it was read."""
    state = web.state()
    taken = state.take_pending(seen.key)
    if taken is None:
        return None
    if not same_moment(taken.requested_at, seen.requested_at):
        state.save_pending(taken)  # a newer request came in between: its link still works
        return None
    listed = web.directory.subscriber(taken.key)
    if listed is not None and listed.line is not None:  # the owner's file: only file
        state.set_preferences(taken.key, taken.tags)  # entries have a line
    else:
        state.put_member(Member(taken.key, taken.email, taken.name, taken.tags, "signup",
                                web.now()))
    if state.unsuppress(taken.key):
        log.info("a suppressed address confirmed a sign-up: suppression lifted",
                 extra=event("web.signup.unsuppressed"))
    log.info("sign-up confirmed", extra=event("web.signup.confirmed"))
    return taken

