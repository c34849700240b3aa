"""The owner's dashboard at /admin/: the next digest, the last runs, the problems and the
daemon's health at a glance; the subscribers (search, one's page, suppress and
resubscribe); the runs, delivery by delivery; a preview of the next digest as one subscriber
gets it, and a test copy of it to the owner's own address.

Off unless the config has `admin:`: every /admin path then answers the 404 of an unknown
path. Without a session a page redirects to the login page (a POST gets 401) and shows
nothing of the list; every POST carries the session's CSRF token or is refused (403)
before it touches anything. Who may log in, and how, is admin_auth.py.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from markupsafe import Markup
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..delivery.control import ControlError, cancel_run, describe, pause_run, resume_run
from ..delivery.preview import NextNumbers, OnePreview, next_numbers, preview_one
from ..delivery.send import send_test
from ..errors import DigestError
from ..state.interface import Delivery, Run, RunControl, SharedState
from ..util.logs import event
from .admin_auth import ADMIN_NOTES, COOKIE, DEVICE_COOKIE, DEVICE_DAYS, LOGIN_COOKIE, Session
from .admin_charts import overview_charts
from .charts import CSS as CHART_CSS
from .charts import figure
from .context import Web, in_thread, read_form
from .signup import client_ip

log = logging.getLogger(__name__)
T = TypeVar("T")
PAGE_SIZE = 50  # rows on a page of subscribers or deliveries
MAX_QUERY = 200  # characters of a search
MAX_REASON = 500  # characters of a reason recorded with a suppression
DIGEST_JOB = "digest"  # the daemon's job id for the digest (daemon/schedule.py)
NUMBERS_SECONDS = 60  # the next digest's counts are worked out at most this often
FRAME_CSP = ("sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
             "frame-ancestors 'self'; base-uri 'none'; form-action 'none'")
PAGE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
            "form-action 'self'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'")

Handler = Callable[[Web, Request], Awaitable[Response]]
Page = Callable[[Web, Request, Session], Awaitable[Response]]


# the gate ------------------------------------------------------------------------------------
def _root(request: Request) -> str:
    """A relative path from this page to the site's root: links work under any prefix."""
    return "../" * (request.url.path.count("/") - 1)


def _enabled(web: Web) -> None:
    if web.admin is None:
        raise HTTPException(404)  # exactly as an unknown path


async def _session(web: Web, request: Request) -> Session | None:
    auth = web.admin
    assert auth is not None
    header = auth.settings.trust_proxy_header
    proxy_user = request.headers.get(header) if header else None
    cookie = request.cookies.get(COOKIE)
    return await in_thread(auth.session, cookie, proxy_user)


def page(handler: Page) -> Handler:
    """*handler* for the logged-in owner only. GET without a session: to the login page;
    POST without one: 401; POST without the session's CSRF token: 403. Nothing is read
    from the state for a stranger beyond their session's lookup."""
    async def gated(web: Web, request: Request) -> Response:
        _enabled(web)
        session = await _session(web, request)
        if session is None:
            if request.method in ("GET", "HEAD"):
                return RedirectResponse(f"{_root(request)}admin/login", status_code=303,
                                        headers={"Cache-Control": "no-store"})
            return _error(web, request, 401, "Log in first",
                          "This needs you to be logged in to the dashboard.")
        if request.method == "POST":
            form = await read_form(request)
            assert web.admin is not None
            if not web.admin.csrf_ok(session, form.get("csrf")):
                return _error(web, request, 403, "Refused",
                              "This form is out of date or did not come from the "
                              "dashboard. Reload the page and try again.")
            request.state.form = form
        return await handler(web, request, session)
    gated.__name__ = handler.__name__
    return gated


def _render(web: Web, request: Request, name: str, context: dict[str, Any], *,
            status: int = 200, session: Session | None = None,
            headers: dict[str, str] | None = None) -> Response:
    return web.pages.page(f"admin/{name}", {
        "root": _root(request), "session": session, "csrf": session.csrf if session else "",
        "proxy": web.admin is not None and web.admin.settings.trust_proxy_header is not None,
        **context}, status=status, private=True, headers=headers)


def _error(web: Web, request: Request, status: int, title: str, text: str) -> Response:
    return _render(web, request, "message", {"title": title, "text": text}, status=status)


def _form(request: Request) -> FormData:
    form: FormData = request.state.form
    return form


def _text(form: FormData, name: str, limit: int) -> str:
    value = form.get(name, "")
    return value.strip()[:limit] if isinstance(value, str) else ""


# logging in and out --------------------------------------------------------------------------
def _cookie_path(web: Web) -> str:
    base = web.config.web.base_url if web.config.web else None
    return (urlsplit(base).path.rstrip("/") if base else "") + "/admin"


def _secure(web: Web) -> bool:
    base = web.config.web.base_url if web.config.web else None
    return bool(base and base.startswith("https://"))


async def login(web: Web, request: Request) -> Response:
    """The login form (GET) and the login (POST); a logged-in owner goes to the overview.
    The POST needs the form's CSRF token (403 without), then counts against the login
    throttle (429 past it, whatever the password), then checks the password."""
    _enabled(web)
    auth = web.admin
    assert auth is not None
    if request.method != "POST":
        if await _session(web, request) is not None:
            return RedirectResponse("./", status_code=303)
        return _login_page(web, request, None, auth.settings.user, 200)
    form = await read_form(request)
    if not auth.login_token_ok(request.cookies.get(LOGIN_COOKIE), form.get("csrf")):
        return _login_page(web, request, "This form is out of date: log in again.",
                           auth.settings.user, 403)
    user, password = _text(form, "user", 200), form.get("password", "")
    device = request.cookies.get(DEVICE_COOKIE)
    if not await in_thread(auth.allowed, client_ip(request), device):
        log.warning("admin login refused: too many attempts",
                    extra=event("web.admin.throttled"))
        return _login_page(web, request, "Too many attempts. Wait a few minutes, then try "
                           "again.", user, 429, {
                               "Retry-After": str(int(auth.settings.login_window_minutes * 60))})
    if not isinstance(password, str) or not await in_thread(auth.check_password, user,
                                                              password):
        log.warning("admin login failed", extra=event("web.admin.login_failed"))
        return _login_page(web, request, "Wrong user name or password.", user, 401)
    cookie = await in_thread(auth.login)
    log.info("admin logged in", extra=event("web.admin.login"))
    response = RedirectResponse("./", status_code=303, headers={"Cache-Control": "no-store"})
    response.set_cookie(COOKIE, cookie, max_age=int(auth.settings.session_hours * 3600),
                        path=_cookie_path(web), secure=_secure(web), httponly=True,
                        samesite="strict")
    response.delete_cookie(LOGIN_COOKIE, path=_cookie_path(web), secure=_secure(web),
                           httponly=True, samesite="strict")
    response.set_cookie(DEVICE_COOKIE, auth.device_cookie(device),
                        max_age=DEVICE_DAYS * 86_400, path=_cookie_path(web) + "/login",
                        secure=_secure(web), httponly=True, samesite="strict")
    return response


def _login_page(web: Web, request: Request, problem: str | None, user: str, status: int,
                headers: dict[str, str] | None = None) -> Response:
    """The login form, with a new nonce in its cookie and the nonce's token in the form."""
    auth = web.admin
    assert auth is not None
    nonce = auth.login_nonce()
    response = _render(web, request, "login", {
        "problem": problem, "user": user, "configured": auth.password_hash() is not None,
        "login_csrf": auth.login_token(nonce)}, status=status, headers=headers)
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=3600, path=_cookie_path(web),
                        secure=_secure(web), httponly=True, samesite="strict")
    return response


async def _logout(web: Web, request: Request, session: Session) -> Response:
    assert web.admin is not None
    await in_thread(web.admin.logout, session)
    response = RedirectResponse("login", status_code=303, headers={"Cache-Control": "no-store"})
    response.delete_cookie(COOKIE, path=_cookie_path(web), secure=_secure(web), httponly=True,
                           samesite="strict")
    return response


logout = page(_logout)


# the overview --------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunRow:
    run: Run
    counts: dict[str, int]
    feedback: dict[str, int]
    duration: timedelta | None

    @property
    def complaint_rate(self) -> float | None:
        sent = self.counts.get("sent", 0)
        return self.feedback.get("complaint", 0) / sent if sent else None


def _run_rows(web: Web, state: SharedState, runs: list[Run]) -> list[RunRow]:
    since = min((r.period_end for r in runs), default=None)
    bounces = state.bounces(since=since, limit=100_000) if since else []
    rows = []
    for run in runs:
        feedback = Counter[str](b.kind for b in bounces if b.run == run.slug)
        counts = state.counts(run)
        rows.append(RunRow(run, counts, dict(feedback), _duration(web, state, run, counts)))
    return rows


def _duration(web: Web, state: SharedState, run: Run, counts: dict[str, int]
              ) -> timedelta | None:
    """From the run's making to its last delivery's outcome. The send log keeps no end
    time, so it reads every delivery: a finished run's is kept (it cannot change), so each
    run is read once per process, not on every page."""
    kept: dict[str, timedelta | None] = web.rendered_admin.setdefault("durations", {})
    if run.slug in kept:
        return kept[run.slug]
    done = [d.updated_at for d in state.deliveries(run) if d.updated_at is not None]
    duration = max(done) - run.created_at if done else None
    found = duration if duration and duration > timedelta(0) else None
    if run.state in ("done", "cancelled") and not (counts.get("pending")
                                                  or counts.get("deferred")):
        kept[run.slug] = found
    return found


def _kept(web: Web, name: str, make: Callable[[], T]) -> T:
    """*make*'s value, made at most once every NUMBERS_SECONDS per web front."""
    cache: dict[str, Any] = web.rendered_admin
    now = datetime.now(UTC)
    kept = cache.get(name)
    if kept is not None and now - kept[0] < timedelta(seconds=NUMBERS_SECONDS):
        found: T = kept[1]
        return found
    made = make()
    cache[name] = (now, made)
    return made


def _numbers(web: Web) -> NextNumbers | str:
    """The next digest's counts, worked out at most once a minute (a session over the posts
    and the list); a problem's text instead when they cannot be."""
    def make() -> NextNumbers | str:
        try:
            return next_numbers(web.config, as_of=web.now())
        except DigestError as exc:
            return str(exc)
    return _kept(web, "numbers", make)


@page
async def overview(web: Web, request: Request, session: Session) -> Response:
    def read() -> dict[str, Any]:
        state = web.state()
        notes = state.notes()
        scheduled = state.next_run(DIGEST_JOB)
        build, subs = notes.get("build", {}), notes.get("subscribers", {})
        now = datetime.now(UTC)  # heartbeats are the machines' clocks, not the site's
        return {
            "next_at": scheduled.at.astimezone(web.config.site.tz) if scheduled and
            scheduled.at else None,
            "scheduled": scheduled is not None, "numbers": _numbers(web),
            "runs": _run_rows(web, state, state.runs(8)),
            "post_problems": build.get("problems", [])[:20],
            "post_problems_count": build.get("problems_count", 0),
            "sub_problems": subs.get("problems", [])[:20],
            "sub_problems_count": subs.get("problems_count", 0),
            "sub_error": subs.get("error"),
            "daemon": notes.get("daemon"), "build": build or None, "web_note": notes.get("web"),
            "suppressed": len(state.suppressed()), "pending": state.pending_count(),
            "nodes": [(node, max((now - node.beat_at).total_seconds(), 0), node.gone(now))
                      for node in state.nodes()],
            "charts": _charts(web, state), "chart_css": Markup(CHART_CSS),  # ours, not input
        }
    return _render(web, request, "overview", await in_thread(read), session=session)


def _charts(web: Web, state: SharedState) -> list[Markup]:
    """The overview's charts as <figure>s, made at most once a minute (they read every
    run and the whole list); a chart that cannot be made is logged, never the page's end."""
    def make() -> list[Markup]:
        try:
            subscribers = list(web.directory.everyone().values())
            charts = overview_charts(state, subscribers, web.catalogue.posts(), web.now())
            return [figure(chart) for chart in charts]
        except Exception:  # the rest of the overview is still worth showing
            log.exception("the dashboard's charts could not be made")
            return []
    return _kept(web, "charts", make)


# subscribers ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    key: str
    email: str
    source: str  # file, signup, import, or "" for an address only on the suppression list
    tags: tuple[str, ...] | None
    suppressed: bool


def _everyone(web: Web, state: SharedState) -> dict[str, Row]:
    """Everyone on the list (the file, sign-ups, imports) and on the suppression list."""
    members = {m.key: m.source for m in state.members()}
    suppressed = state.suppressed()
    rows = {key: Row(key, sub.email, members.get(key, "file"), sub.tags, key in suppressed)
            for key, sub in web.directory.everyone().items()}
    for key in suppressed - rows.keys():
        rows[key] = Row(key, key, "", None, True)
    return rows


def _page_number(request: Request, pages: int) -> int:
    text = request.query_params.get("page", "1")
    number = int(text) if text.isdigit() and len(text) < 7 else 1
    return min(max(number, 1), max(pages, 1))


@page
async def subscribers(web: Web, request: Request, session: Session) -> Response:
    query = request.query_params.get("q", "").strip()[:MAX_QUERY]

    def read() -> dict[str, Any]:
        rows = sorted(_everyone(web, web.state()).values(), key=lambda r: r.key)
        found = [r for r in rows if query.casefold() in r.key.casefold()] if query else rows
        pages = max(1, math.ceil(len(found) / PAGE_SIZE))
        number = _page_number(request, pages)
        return {"query": query, "rows": found[(number - 1) * PAGE_SIZE:number * PAGE_SIZE],
                "total": len(rows), "found": len(found), "page": number, "pages": pages,
                "q": quote(query)}
    return _render(web, request, "subscribers", await in_thread(read), session=session)


RESUBSCRIBED = ADMIN_NOTES + "resubscribed:"  # + the address's hash: the last resubscribe


def _resubscribed_note(key: str) -> str:
    return RESUBSCRIBED + hashlib.sha256(key.encode()).hexdigest()[:40]


def _key(value: object) -> str:
    return value.strip().lower()[:320] if isinstance(value, str) else ""


async def _subscriber_page(web: Web, request: Request, session: Session, key: str,
                           saved: str | None = None) -> Response:
    def read() -> dict[str, Any] | None:
        state = web.state()
        row = _everyone(web, state).get(key)
        if row is None:
            return None
        sub = web.directory.subscriber(key)
        chose, chosen = state.preference(key)
        return {"row": row, "member": state.member(key), "sub": sub,
                "resubscribed": state.notes().get(_resubscribed_note(key)),
                "chose": chose, "chosen": chosen, "suppression": state.suppression(key),
                "bounces": state.bounces(key, limit=20), "deliveries": state.deliveries_of(key),
                "saved": saved, "k": quote(key)}
    found = await in_thread(read)
    if found is None:
        return _error(web, request, 404, "Not on the list",
                      "That address is neither subscribed nor suppressed.")
    return _render(web, request, "subscriber", found, session=session)


@page
async def subscriber(web: Web, request: Request, session: Session) -> Response:
    return await _subscriber_page(web, request, session, _key(request.query_params.get("key")))


@page
async def change_subscriber(web: Web, request: Request, session: Session) -> Response:
    """Suppress or resubscribe, the owner's reason recorded with it."""
    form = _form(request)
    key, action = _key(form.get("key")), form.get("action")
    reason = _text(form, "reason", MAX_REASON)
    if action not in ("suppress", "resubscribe"):
        raise HTTPException(400)

    def change() -> bool | None:
        state = web.state()
        if key not in _everyone(web, state):
            return None
        if action == "suppress":
            why = f"suppressed by {session.user} on the dashboard" + (
                f": {reason}" if reason else "")
            return state.suppress_with(key, why, f"dashboard, {datetime.now(UTC):%Y-%m-%d %H:%M}"
                                                 " UTC")
        was = state.suppression(key)
        if was is None or not state.unsuppress(key):
            return False
        # the suppression row is gone: what it said, who lifted it and why stay on record
        state.note(_resubscribed_note(key), {
            "by": session.user, "reason": reason, "at": datetime.now(UTC).isoformat(),
            "was": was.reason, "since": was.since.isoformat()})
        return True
    changed = await in_thread(change)
    if changed is None:
        return _error(web, request, 404, "Not on the list",
                      "That address is neither subscribed nor suppressed.")
    log.info("admin %s", action, extra=event(f"web.admin.{action}", reason=reason))
    saved = ("Suppressed: no more digests go to this address." if action == "suppress"
             else "Resubscribed: the next digest goes to this address.") if changed else \
        "Nothing to change."
    return await _subscriber_page(web, request, session, key, saved)


# runs ----------------------------------------------------------------------------------------
@page
async def runs(web: Web, request: Request, session: Session) -> Response:
    def read() -> dict[str, Any]:
        state = web.state()
        return {"runs": _run_rows(web, state, state.runs(50))}
    return _render(web, request, "runs", await in_thread(read), session=session)


async def _run_page(web: Web, request: Request, session: Session,
                    saved: str | None = None, problem: str | None = None,
                    status: int = 200) -> Response:
    slug = request.path_params["slug"]
    failed = request.query_params.get("failed") == "1"

    def read() -> dict[str, Any] | None:
        state = web.state()
        run = state.find_run(slug)
        if run is None:
            return None
        rows: list[Delivery] = state.deliveries(run, failed=failed)
        pages = max(1, math.ceil(len(rows) / PAGE_SIZE))
        number = _page_number(request, pages)
        control = state.run_control(run)
        return {"row": _run_rows(web, state, [run])[0], "failed": failed,
                "deliveries": rows[(number - 1) * PAGE_SIZE:number * PAGE_SIZE],
                "found": len(rows), "page": number, "pages": pages, "saved": saved,
                "problem": problem, "controls": _controls(state, run, control),
                "control": control,
                "last_action": describe(control) if control.action else None}
    found = await in_thread(read)
    if found is None:
        return _error(web, request, 404, "No such digest", "There is no run by that name.")
    return _render(web, request, "run", found, session=session, status=status)


@page
async def run_page(web: Web, request: Request, session: Session) -> Response:
    return await _run_page(web, request, session)


def _controls(state: SharedState, run: Run, control: RunControl) -> list[str]:
    """The buttons the run's page offers: what delivery/control.py would accept now."""
    if control.state == "cancelled":
        return []
    if control.state == "paused":  # the run's own pause (failures): the owner may keep it
        return ["resume", "cancel"] if control.owner_paused else ["pause", "resume", "cancel"]
    counts = state.counts(run)
    if control.state == "done" and not (counts.get("pending") or counts.get("deferred")):
        return []
    return ["pause", "cancel"]


_ACTIONS = {"pause": (pause_run, "Paused: nothing more goes out until you resume it."),
            "resume": (resume_run, "Resumed: the daemon (or the next digest send) serves "
                                   "whoever is left."),
            "cancel": (cancel_run, "Cancelled: whoever was not served yet never gets it.")}


@page
async def control_run(web: Web, request: Request, session: Session) -> Response:
    """Pause, resume or cancel the run, through the send log (delivery/control.py): a
    sender already serving it sees it between batches, the CLI and the daemon alike."""
    form = _form(request)
    action = form.get("action")
    if not isinstance(action, str) or action not in _ACTIONS:
        raise HTTPException(400)
    act, done = _ACTIONS[action]
    slug = request.path_params["slug"]
    reason = _text(form, "reason", MAX_REASON)

    def change() -> str | None:
        try:
            act(web.state(), slug, reason=reason, by=session.user, now=web.now())
        except ControlError as exc:
            return str(exc)
        return None
    problem = await in_thread(change)
    if problem is None:
        log.info("admin %s %s", action, slug, extra=event(f"web.admin.{action}", run=slug,
                                                          reason=reason))
        if action == "resume" and web.on_resume is not None:  # in the daemon's own loop
            web.on_resume(f"resumed by {session.user} on the dashboard")
    return await _run_page(web, request, session, saved=None if problem else done,
                           problem=problem, status=409 if problem else 200)


# preview -------------------------------------------------------------------------------------
def _preview(web: Web, key: str) -> OnePreview | str:
    try:
        return preview_one(web.config, as_of=web.now(), subscriber=key)
    except DigestError as exc:
        return str(exc)


def _headers(message: bytes) -> list[tuple[str, str]]:
    parsed = message_from_bytes(message, policy=policy.default)
    return [(name, str(value)) for name, value in parsed.items()
            if name.lower() != "dkim-signature"][:40]


@page
async def preview(web: Web, request: Request, session: Session) -> Response:
    return await _preview_page(web, request, session)


async def _preview_page(web: Web, request: Request, session: Session,
                        sent: str | None = None) -> Response:
    key = _key(request.query_params.get("key") or (
        request.state.form.get("key") if request.method == "POST" else ""))
    found: OnePreview | str | None = await in_thread(_preview, web, key) if key else None
    assert web.admin is not None
    return _render(web, request, "preview", {
        "key": key, "k": quote(key), "preview": found if isinstance(found, OnePreview) else None,
        "problem": found if isinstance(found, str) else None,
        "headers": _headers(found.message) if isinstance(found, OnePreview) and
        found.message else [],
        "test_address": web.admin.settings.test_address, "sent": sent},
        session=session, headers={"Content-Security-Policy": PAGE_CSP,
                                  "X-Frame-Options": "DENY"})


@page
async def preview_frame(web: Web, request: Request, session: Session) -> Response:
    """The HTML part alone, for the preview's frame: sandboxed (no scripts, no forms, no
    same-origin), and framed only by the dashboard itself."""
    key = _key(request.query_params.get("key"))
    found = await in_thread(_preview, web, key) if key else None
    html = found.html if isinstance(found, OnePreview) else ""
    return Response(html, media_type="text/html; charset=utf-8", headers={
        "Content-Security-Policy": FRAME_CSP, "X-Frame-Options": "SAMEORIGIN",
        "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store"})


@page
async def send_copy(web: Web, request: Request, session: Session) -> Response:
    """One copy of the subscriber's next digest to the owner's address from the config, and
    only there: the form names the subscriber, never the recipient."""
    assert web.admin is not None
    to = web.admin.settings.test_address
    key = _key(_form(request).get("key"))
    if to is None:
        return _error(web, request, 400, "No test address",
                      "Set admin: test_address: in the config to get test copies.")

    def send() -> str:
        try:
            outcome = send_test(web.config, as_of=web.now(), to=to, subscriber=key)
        except DigestError as exc:
            return str(exc)
        if outcome is None:
            return "Nothing to send: that subscriber's digest has no posts."
        return f"Test copy to {to}: {outcome.status} ({outcome.reply})."
    sent = await in_thread(send)
    log.info("admin test copy", extra=event("web.admin.test_copy"))
    return await _preview_page(web, request, session, sent)
