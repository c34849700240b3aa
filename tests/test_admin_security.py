"""The owner's dashboard (/admin/) against strangers, over real HTTP: every route the app has
is tried without a session (the list comes from the Starlette app, not from this file),
forms without their CSRF token, guessed passwords, fixed and stolen session ids; and the
subscriber-facing pages still never tell who is subscribed."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from admin_site import (
    HASH_ENV,
    OWNER,
    PASSWORD,
    admin_site,
    cookie_of,
    csrf_of,
    login,
    password_hash,
    session_cookie,
)
from helpers import MONDAY, SECRET, SUBSCRIBERS, digest_site, outbox, suppressed
from starlette.routing import Route
from web_server import WebServer

from digest.config import load_config
from digest.delivery.send import send
from digest.state.interface import Node
from digest.state.open import open_state
from digest.util.clock import Clock
from digest.web.admin_auth import COOKIE, DEVICE_COOKIE, LOGIN_COOKIE, NOTE_PREFIX
from digest.web.app import make_app

ADDRESSES = [s["email"] for s in SUBSCRIBERS]


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    monkeypatch.setenv(HASH_ENV, password_hash())


def _serve(cfg: Path, on_resume: Callable[[str], None] | None = None) -> WebServer:
    server = WebServer(load_config(cfg), on_resume=on_resume)
    server.web.clock = Clock.starting_at(MONDAY)  # the next digest has the test's posts
    return server


@pytest.fixture
def site(tmp_path: Path) -> Path:
    cfg = admin_site(tmp_path)
    send(load_config(cfg), as_of=MONDAY)
    return cfg


@pytest.fixture
def server(site: Path) -> Iterator[WebServer]:
    with _serve(site) as running:
        yield running


@pytest.fixture
def client(server: WebServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


def _logged_in(client: httpx.Client) -> str:
    answer = login(client)
    assert answer.status_code == 303, answer.text
    cookie = session_cookie(answer)
    assert cookie is not None
    return cookie


def _get(client: httpx.Client, path: str, cookie: str | None) -> httpx.Response:
    return client.get(path, headers={"Cookie": f"{COOKIE}={cookie}"} if cookie else {})


def _post(client: httpx.Client, path: str, cookie: str | None,
          data: dict[str, str]) -> httpx.Response:
    return client.post(path, data=data,
                       headers={"Cookie": f"{COOKIE}={cookie}"} if cookie else {})


def _routes(server: WebServer) -> list[Route]:
    app = make_app(lambda: server.web)
    routes = [r for r in app.routes if isinstance(r, Route)]
    assert len(routes) == len(app.routes), "a route of another kind: test it here too"
    return routes


def _filled(path: str, slug: str) -> str:
    """The route's path with its parameters filled: a real run's slug, else a random token."""
    return re.sub(r"\{(\w+)(:\w+)?\}",
                  lambda m: slug if m[1] == "slug" else "AAAAAAAAAAAAAAAAAAAAAA", path)


def _leaks(answer: httpx.Response) -> list[str]:
    text = answer.text + str(answer.headers)
    return [a for a in ADDRESSES if a in text or a.split("@")[0] + "%40" in text]


# every route, without a session --------------------------------------------------------------
def test_every_admin_route_without_a_session_is_refused_and_shows_nobody(
        server: WebServer, client: httpx.Client, site: Path) -> None:
    slug = open_state(load_config(site)).runs(1)[0].slug
    admin = [r for r in _routes(server) if r.path.startswith("/admin")]
    assert len(admin) >= 9
    for route in admin:
        path = _filled(route.path, slug)
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue
            answer = client.request(method, path + "?key=ana%40example.org",
                                    data={"key": "ana@example.org", "action": "suppress"}
                                    if method == "POST" else None)
            if route.path == "/admin/login":
                assert answer.status_code == (200 if method == "GET" else 403), (method, path)
            elif method == "GET" and route.path != "/admin":
                assert answer.status_code == 303, (method, path)
                assert answer.headers["location"].endswith("admin/login")
            elif method == "GET":
                assert answer.status_code == 308
            else:
                assert answer.status_code == 401, (method, path, answer.status_code)
            assert session_cookie(answer) is None, (method, path)
            assert _leaks(answer) == [], (method, path)
    assert suppressed(site) == set()


def test_no_route_of_the_app_shows_a_subscriber_to_a_stranger(
        server: WebServer, client: httpx.Client, site: Path) -> None:
    """Every route (subscriber-facing included), every method it takes, with made-up
    parameters and no session: no address of the list in the answer."""
    slug = open_state(load_config(site)).runs(1)[0].slug
    for route in _routes(server):
        path = _filled(route.path, slug)
        for method in sorted(route.methods or ()):
            answer = client.request(method, path, data={"email": "x@example.org"}
                                    if method == "POST" else None)
            assert answer.status_code < 500, (method, path)
            assert _leaks(answer) == [], (method, path)


def test_a_logged_in_owner_sees_the_list(client: httpx.Client) -> None:
    """The test above could pass with pages that show nobody: they do show them."""
    cookie = _logged_in(client)
    page = _get(client, "/admin/subscribers", cookie)
    assert page.status_code == 200
    assert all(a in page.text for a in ADDRESSES)
    assert _get(client, "/admin/subscribers?q=ana", cookie).text.count("example.org</a>") == 1


# CSRF ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("token", [None, "", "wrong", "0" * 64])
def test_a_post_without_the_session_s_csrf_token_changes_nothing(
        client: httpx.Client, site: Path, token: str | None) -> None:
    cookie = _logged_in(client)
    form = {"key": "ana@example.org", "action": "suppress", "reason": "test"}
    if token is not None:
        form["csrf"] = token
    answer = _post(client, "/admin/subscriber", cookie, form)
    assert answer.status_code == 403
    assert suppressed(site) == set()
    assert _post(client, "/admin/logout", cookie, {}).status_code == 403
    assert _get(client, "/admin/", cookie).status_code == 200  # still logged in


def test_a_login_without_the_form_s_token_is_refused_even_with_the_password(
        client: httpx.Client) -> None:
    answer = login(client, csrf=False)
    assert answer.status_code == 403 and session_cookie(answer) is None
    form = client.get("/admin/login")
    other = client.get("/admin/login")  # a token from another form's nonce
    answer = client.post("/admin/login", data={
        "user": "admin", "password": PASSWORD, "csrf": csrf_of(other.text)},
        headers={"Cookie": f"{LOGIN_COOKIE}={cookie_of(form, LOGIN_COOKIE)}"})
    assert answer.status_code == 403 and session_cookie(answer) is None
    assert login(client).status_code == 303


def test_the_csrf_token_of_another_session_is_refused(client: httpx.Client, site: Path) -> None:
    first, second = _logged_in(client), _logged_in(client)
    token = csrf_of(_get(client, "/admin/", first).text)
    answer = _post(client, "/admin/subscriber", second,
                   {"key": "ana@example.org", "action": "suppress", "csrf": token})
    assert answer.status_code == 403
    assert suppressed(site) == set()


def test_suppress_and_resubscribe_with_the_token_and_a_reason(client: httpx.Client,
                                                              site: Path) -> None:
    cookie = _logged_in(client)
    token = csrf_of(_get(client, "/admin/subscriber?key=ana%40example.org", cookie).text)
    answer = _post(client, "/admin/subscriber", cookie,
                   {"key": "ana@example.org", "action": "suppress", "csrf": token,
                    "reason": "asked by phone"})
    assert answer.status_code == 200
    assert suppressed(site) == {"ana@example.org"}
    found = open_state(load_config(site)).suppression("ana@example.org")
    assert found is not None and "asked by phone" in found.reason
    assert "asked by phone" in answer.text
    answer = _post(client, "/admin/subscriber", cookie,
                   {"key": "ana@example.org", "action": "resubscribe", "csrf": token,
                    "reason": "a <b>mistake</b>"})
    assert answer.status_code == 200 and "Resubscribed" in answer.text
    assert suppressed(site) == set()
    # the suppression is gone; who lifted it, why and what it said stay on her page
    page = _get(client, "/admin/subscriber?key=ana%40example.org", cookie).text
    assert "by admin: a &lt;b&gt;mistake&lt;/b&gt; (was suppressed: " in page
    assert "asked by phone" in page


# passwords -----------------------------------------------------------------------------------
def test_twenty_wrong_passwords_are_throttled_and_then_even_the_right_one(
        client: httpx.Client) -> None:
    codes = [login(client, "wrong password").status_code for _ in range(20)]
    assert codes[:10] == [401] * 10
    assert codes[10:] == [429] * 10
    answer = login(client)
    assert answer.status_code == 429
    assert session_cookie(answer) is None
    assert "Retry-After" in answer.headers


def test_the_throttle_counts_every_address_together_too(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the overall limit, a new address is refused as well (an attacker with many
    addresses): counted in the shared state, as every web node would count."""
    cfg = admin_site(tmp_path, logins_per_ip=100, logins_overall=5)
    with _serve(cfg) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        assert [login(client, "nope nope nope").status_code for _ in range(6)] == \
            [401] * 5 + [429]
        assert login(client).status_code == 429


def test_a_browser_that_logged_in_before_is_not_locked_out_by_strangers(
        tmp_path: Path) -> None:
    """Strangers filling the address and overall limits do not stop the owner's browser,
    which holds the device cookie of an earlier login; that device has a limit of its own,
    and a forged device cookie counts for nothing."""
    cfg = admin_site(tmp_path, logins_per_ip=4, logins_overall=6)
    with _serve(cfg) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        first = login(client)
        assert first.status_code == 303
        device = cookie_of(first, DEVICE_COOKIE)
        assert device is not None
        header = _set_cookie(first, DEVICE_COOKIE)
        assert "HttpOnly" in header and "SameSite=strict" in header
        assert "Path=/digest/admin/login;" in header and "Max-Age=34560000" in header
        # strangers, from this address and (the overall limit) from any
        codes = [login(client, "guess").status_code for _ in range(6)]
        assert codes[-1] == 429 and login(client).status_code == 429
        # the owner's browser still logs in, and keeps its device cookie
        again = login(client, device=device)
        assert again.status_code == 303 and session_cookie(again) is not None
        assert cookie_of(again, DEVICE_COOKIE) == device
        # a forged or altered device cookie is a stranger's
        forged = device.partition(".")[0] + "." + "0" * 64
        assert login(client, device=forged).status_code == 429
        assert login(client, device="made-up").status_code == 429
        # the device's own limit: 4 attempts per window, the right one above among them
        assert [login(client, "guess", device=device).status_code for _ in range(4)] == \
            [401, 401, 401, 429]
        assert login(client, device=device).status_code == 429


def test_a_wrong_user_name_is_refused_too(client: httpx.Client) -> None:
    assert login(client, user="root").status_code == 401
    assert login(client, user="Admin").status_code == 401


def test_without_a_hash_in_the_environment_nobody_logs_in(
        client: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HASH_ENV)
    assert login(client).status_code == 401
    assert login(client, "").status_code == 401
    assert "No password is set" in client.get("/admin/login").text


# sessions ------------------------------------------------------------------------------------
def test_a_session_id_sent_before_login_never_becomes_valid(client: httpx.Client) -> None:
    """Session fixation: an id the attacker chose (even one signed with the real secret,
    as if the secret had leaked) is not what the login makes, and stays worthless after."""
    sid = "attacker-chosen-session-id-0123456789"
    mac = hmac.new(SECRET.encode(), f"admin-session\0{sid}".encode(),
                   hashlib.sha256).hexdigest()
    planted = f"{sid}.{mac}"
    assert _get(client, "/admin/", planted).status_code == 303
    answer = login(client, cookie=planted)
    fresh = session_cookie(answer)
    assert fresh is not None and fresh != planted and sid not in fresh
    assert _get(client, "/admin/", planted).status_code == 303
    assert _get(client, "/admin/", fresh).status_code == 200
    assert session_cookie(login(client, cookie=fresh)) not in (None, fresh)  # new each time


def test_logout_ends_the_session_on_the_server(client: httpx.Client) -> None:
    cookie = _logged_in(client)
    token = csrf_of(_get(client, "/admin/", cookie).text)
    answer = _post(client, "/admin/logout", cookie, {"csrf": token})
    assert answer.status_code == 303
    assert f"{COOKIE}=" in answer.headers["set-cookie"]  # the browser forgets it
    assert _get(client, "/admin/", cookie).status_code == 303  # a kept copy is dead too
    assert _post(client, "/admin/subscriber", cookie,
                 {"key": "ana@example.org", "action": "suppress",
                  "csrf": token}).status_code == 401


def _session_notes(site: Path) -> int:
    state = open_state(load_config(site))
    try:
        return sum(key.startswith(NOTE_PREFIX) for key in state.notes())
    finally:
        state.close()


def test_sessions_over_leave_no_note_behind(client: httpx.Client, server: WebServer,
                                           site: Path) -> None:
    """Each login notes its session in the shared state, which every request reads whole:
    a logout forgets its note, and a login forgets those of sessions expired."""
    first = _logged_in(client)
    second = _logged_in(client)
    assert _session_notes(site) == 2
    token = csrf_of(_get(client, "/admin/", second).text)
    assert _post(client, "/admin/logout", second, {"csrf": token}).status_code == 303
    assert _session_notes(site) == 1
    server.web.clock = Clock.starting_at(MONDAY + timedelta(hours=13))  # past 12 hours
    third = _logged_in(client)
    assert _session_notes(site) == 1  # the first, expired, is gone; the third is noted
    assert _get(client, "/admin/", first).status_code == 303
    assert _get(client, "/admin/", third).status_code == 200


def test_a_tampered_cookie_is_refused(client: httpx.Client) -> None:
    cookie = _logged_in(client)
    sid, _, mac = cookie.partition(".")
    for bad in (sid, f"{sid}.{'0' * len(mac)}", f"{sid}x.{mac}", "." + mac, "x" * 500):
        assert _get(client, "/admin/", bad).status_code == 303


def test_an_expired_session_is_refused(client: httpx.Client, server: WebServer) -> None:
    cookie = _logged_in(client)
    server.web.clock = Clock.starting_at(MONDAY + timedelta(hours=13))
    assert _get(client, "/admin/", cookie).status_code == 303


def _set_cookie(answer: httpx.Response, name: str) -> str:
    return next(h for h in answer.headers.get_list("set-cookie") if h.startswith(name + "="))


def test_the_cookie_s_flags(client: httpx.Client) -> None:
    header = _set_cookie(login(client), COOKIE)
    flags = {part.strip().split("=")[0].lower(): part.strip() for part in header.split(";")}
    assert "secure" in flags  # the base_url is https
    assert "httponly" in flags
    assert flags["samesite"].lower() == "samesite=strict"
    assert flags["path"] == "Path=/digest/admin"  # the base_url's path


def test_no_secure_flag_on_a_plain_http_site(tmp_path: Path) -> None:
    cfg = admin_site(tmp_path, base_url="http://127.0.0.1")
    with _serve(cfg) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        answer = login(client)
        assert "secure" not in str(answer.headers.get_list("set-cookie")).lower()
        assert "Path=/admin;" in _set_cookie(answer, COOKIE)
        assert "Path=/admin/login;" in _set_cookie(answer, DEVICE_COOKIE)


def test_sessions_are_not_shown_by_digest_status(client: httpx.Client, site: Path) -> None:
    from digest.daemon.status import read_status

    _logged_in(client)
    assert not [k for k in read_status(load_config(site)).to_json() if "admin" in k]
    assert any(k.startswith("admin-session:") for k in open_state(load_config(site)).notes())


# the proxy's header --------------------------------------------------------------------------
def test_trusting_a_proxy_s_header_instead_of_the_password(tmp_path: Path) -> None:
    cfg = admin_site(tmp_path, trust_proxy_header="X-Forwarded-User")
    with _serve(cfg) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/admin/").status_code == 303
        page = client.get("/admin/", headers={"X-Forwarded-User": "owner"})
        assert page.status_code == 200 and "Dashboard" in page.text
        answer = client.post("/admin/subscriber", headers={"X-Forwarded-User": "owner"},
                             data={"key": "ana@example.org", "action": "suppress"})
        assert answer.status_code == 403  # CSRF still checked
        assert suppressed(cfg) == set()


# off unless configured -----------------------------------------------------------------------
def test_without_admin_in_the_config_every_admin_path_is_an_unknown_path(
        tmp_path: Path) -> None:
    cfg = digest_site(tmp_path)
    from conftest import build_site

    build_site(cfg, now=MONDAY)
    with _serve(cfg) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        unknown = client.get("/no-such-page")
        assert unknown.status_code == 404
        for route in _routes(server):
            if not route.path.startswith("/admin"):
                continue
            answer = client.get(_filled(route.path, "2024-06-10")) \
                if "GET" in (route.methods or ()) else client.post(route.path)
            assert answer.status_code == 404, route.path
            assert answer.text == unknown.text
        assert client.post("/admin/login", data={"user": "admin", "password": PASSWORD}
                           ).status_code == 404


# what the pages show -------------------------------------------------------------------------
def test_hostile_addresses_tags_and_reasons_are_escaped(client: httpx.Client,
                                                        site: Path) -> None:
    hostile = '"<script>alert(1)</script>"@example.org'
    state = open_state(load_config(site))
    state.suppress_with(hostile.lower(), "<img src=x onerror=alert(2)>",
                        "<iframe src=javascript:alert(3)>")
    state.set_preferences("ana@example.org", ["<b onmouseover=alert(4)>union</b>"])
    cookie = _logged_in(client)
    pages = [_get(client, "/admin/subscribers?q=script", cookie),
             _get(client, "/admin/subscriber?key=" + httpx.QueryParams(
                 {"k": hostile.lower()}).get("k", ""), cookie),
             _get(client, "/admin/subscriber?key=ana%40example.org", cookie)]
    assert all(p.status_code == 200 for p in pages)
    text = "".join(p.text for p in pages)
    assert "&lt;script&gt;" in text and "&lt;img src=x" in text and "&lt;b onmouseover" in text
    for raw in ("<script>", "<img src=x", "<iframe src=javascript", "<b onmouseover"):
        assert raw not in text


def test_a_run_s_page_lists_its_deliveries_and_filters_the_failed(client: httpx.Client,
                                                                   site: Path) -> None:
    slug = open_state(load_config(site)).runs(1)[0].slug
    cookie = _logged_in(client)
    page = _get(client, f"/admin/runs/{slug}", cookie)
    assert page.status_code == 200
    assert "ana@example.org" in page.text and "sent" in page.text
    failed = _get(client, f"/admin/runs/{slug}?failed=1", cookie)
    assert "ana@example.org" not in failed.text and "0 failed or deferred" in failed.text
    assert _get(client, "/admin/runs/no-such-run", cookie).status_code == 404
    overview = _get(client, "/admin/", cookie)
    assert slug in overview.text and "Next digest" in overview.text


def test_the_preview_is_sandboxed_and_a_test_copy_goes_only_to_the_owner(
        tmp_path: Path) -> None:
    cfg = admin_site(tmp_path)
    with _serve(cfg) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        cookie = _logged_in(client)
        page = _get(client, "/admin/preview?key=ana%40example.org", cookie)
        assert page.status_code == 200
        assert 'sandbox=""' in page.text and "Union Data Organizer" in page.text
        assert "frame-src 'self'" in page.headers["content-security-policy"]
        frame = _get(client, "/admin/preview/frame?key=ana%40example.org", cookie)
        assert frame.headers["content-security-policy"].startswith("sandbox;")
        assert "Union Data Organizer" in frame.text
        assert _get(client, "/admin/preview/frame?key=ana%40example.org", None
                    ).status_code == 303
        answer = _post(client, "/admin/preview", cookie,
                       {"key": "ana@example.org", "csrf": csrf_of(page.text),
                        "to": "stranger@example.net"})
        assert answer.status_code == 200 and f"Test copy to {OWNER}: sent" in answer.text
        sent = outbox(cfg)
        assert [m["To"].addresses[0].addr_spec for m in sent] == [OWNER]
        unknown = _get(client, "/admin/preview?key=stranger%40example.net", cookie)
        assert "is not a subscriber" in unknown.text
    assert PASSWORD not in cfg.read_text(encoding="utf-8")


# pausing, resuming and cancelling a run ------------------------------------------------------
def test_pause_resume_and_cancel_through_the_send_log_with_the_token(tmp_path: Path) -> None:
    """A run with someone left to serve (made, not yet sent): the owner's actions land in
    the send log; without the token, or without a reason, nothing changes."""
    cfg = admin_site(tmp_path)
    state = open_state(load_config(cfg))
    state.create_run(slug="2024-06-10", start=MONDAY - timedelta(days=7), end=MONDAY,
                     posts=[], subscribers=[("ana@example.org", "ana@example.org")])
    told: list[str] = []  # inside `digest run`, the daemon's sender is told of a resume
    with _serve(cfg, told.append) as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        cookie = _logged_in(client)
        page = _get(client, "/admin/runs/2024-06-10", cookie)
        assert "Pause</button>" in page.text and "Cancel</button>" in page.text
        token = csrf_of(page.text)
        path = "/admin/runs/2024-06-10/control"

        def run_state() -> str | None:
            run = state.find_run("2024-06-10")
            assert run is not None
            return state.run_state(run)

        assert _post(client, path, cookie, {"action": "pause", "reason": "x"}
                     ).status_code == 403
        assert _post(client, path, None, {"action": "pause", "reason": "x",
                                          "csrf": token}).status_code == 401
        refused = _post(client, path, cookie, {"action": "pause", "csrf": token})
        assert refused.status_code == 409 and "give a reason" in refused.text
        assert run_state() == "sending"
        paused = _post(client, path, cookie, {"action": "pause", "csrf": token,
                                              "reason": "<b>moving</b> the server"})
        assert paused.status_code == 200 and "Resume</button>" in paused.text
        assert "&lt;b&gt;moving&lt;/b&gt; the server" in paused.text
        assert run_state() == "paused" and told == []
        assert _post(client, path, cookie, {"action": "resume", "csrf": token}
                     ).status_code == 200
        assert run_state() == "sending"
        assert told == ["resumed by admin on the dashboard"]
        server.front.reload(load_config(cfg))  # a reload keeps telling the same sender
        assert server.front.web.on_resume == told.append
        assert _post(client, path, cookie, {"action": "cancel", "csrf": token,
                                            "reason": "wrong posts"}).status_code == 200
        assert run_state() == "cancelled"
        assert state.counts(state.find_run("2024-06-10")) == {  # type: ignore[arg-type]
            "cancelled": 1}
        assert _post(client, path, cookie, {"action": "explode", "csrf": token}
                     ).status_code == 400
    state.close()


def test_the_overview_shows_what_the_daemon_found_escaped(client: httpx.Client,
                                                          site: Path) -> None:
    cookie = _logged_in(client)
    assert "has not checked yet" in _get(client, "/admin/", cookie).text
    state = open_state(load_config(site))
    state.note("build", {"at": "2024-06-10T09:00:00+00:00", "reason": "start", "posts": 4,
                         "feeds": 9, "problems": ["_posts/x.md:3: bad date <script>"],
                         "problems_count": 3})
    state.note("subscribers", {"count": 4, "problems": [], "problems_count": 0,
                               "error": None})
    page = _get(client, "/admin/", cookie).text
    assert "_posts/x.md:3: bad date &lt;script&gt;" in page and "<script>" not in page
    assert "… and 2 more" in page
    assert "No <code>digest run</code> or <code>digest send</code> is beating now" in page


def test_the_overview_lists_the_senders_by_heartbeat(client: httpx.Client,
                                                     site: Path) -> None:
    cookie = _logged_in(client)
    now = datetime.now(UTC)
    state = open_state(load_config(site))
    state.beat(Node("web1:<b>41</b>", "send", now, now - timedelta(seconds=3), "2024-06-10",
                    180, 60.0))
    state.beat(Node("web2:7", "daemon", now, now - timedelta(seconds=200), None, 0, 60.0))
    state.close()
    page = _get(client, "/admin/", cookie).text
    senders = page[page.index("<h2>Senders</h2>"):]
    rows = re.findall(r"<tr><td>(.*?)</tr>", senders)
    assert len(rows) == 2
    assert "web1:&lt;b&gt;41&lt;/b&gt;" in rows[0] and "digest send" in rows[0]
    assert "digest 2024-06-10" in rows[0] and "<td>180</td>" in rows[0]
    assert "GONE" not in rows[0]
    assert "web2:7" in rows[1] and "digest run" in rows[1] and "idle" in rows[1]
    assert "GONE" in rows[1] and "60 s lease" in rows[1]
