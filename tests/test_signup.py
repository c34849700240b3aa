"""Signing up with double opt-in, over real HTTP: uvicorn on a loopback port, the real state
database, the real outbox. Each request is judged by its answer and by what it sent and
stored (or did not)."""

from __future__ import annotations

import re
import shutil
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from browsing import click_and_wait, heading_becomes
from conftest import build_site, make_site, run_cli
from helpers import (
    MONDAY,
    POSTS,
    SECRET,
    SUBSCRIBERS,
    by_recipient,
    outbox,
    suppressed,
    titles,
    wait_until,
)
from smtp_server import Faults, SmtpServer
from web_server import WebServer

from digest.config import load_config
from digest.delivery.send import send
from digest.state.open import open_state
from digest.subscribers.signup_token import seal, unseal
from digest.util.clock import Clock

BASE = "https://jobs.example.org/digest"
LINK = re.compile(re.escape(BASE) + r"/subscribe/confirm/([A-Za-z0-9_-]+)")
SITE_TAGS = ["analytics", "campaigns", "data", "datamanagement", "intern", "union"]


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)


def signup_site(tmp_path: Path, smtp: SmtpServer | None = None,
                signup: dict[str, int] | None = None) -> Path:
    (tmp_path / "subscribers.yaml").write_text(yaml.safe_dump(SUBSCRIBERS, allow_unicode=True),
                                               encoding="utf-8")
    relay = {"smtp": {"host": smtp.host, "port": smtp.port, "security": "none", "timeout": 5,
                      "backoff": 0.05, "max_attempts": 2}} if smtp else {}
    cfg = make_site(tmp_path, dict(POSTS), extra={
        "subscribers": "subscribers.yaml",
        "digest": {"from": "Jobs Board <jobs@example.org>", "noun": "job"},
        "web": {"base_url": BASE}, "signup": signup or {}, **relay})
    build_site(cfg, now=MONDAY)
    return cfg


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return signup_site(tmp_path)


@pytest.fixture
def server(site: Path) -> Iterator[WebServer]:
    with WebServer(load_config(site)) as running:
        yield running


@pytest.fixture
def client(server: WebServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        yield http


def mails(site: Path, count: int, timeout: float = 5.0) -> list[EmailMessage]:
    """The outbox once it holds *count* messages; and a moment more, to see no more come
    (the emails are sent after the page is answered)."""
    deadline = time.monotonic() + timeout
    while len(found := _outbox(site)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    found = _outbox(site)
    assert len(found) == count, [m["Subject"] for m in found]
    return found


def _outbox(site: Path) -> list[EmailMessage]:
    # the sender makes the Maildir after the page is answered: read it once it is whole
    box = site.parent / "state" / "outbox"
    whole = all((box / sub).is_dir() for sub in ("new", "cur", "tmp"))
    return outbox(site) if whole else []


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def link_of(message: EmailMessage) -> str:
    found = LINK.search(text_of(message))
    assert found is not None, text_of(message)
    return f"/subscribe/confirm/{found.group(1)}"


def ask(client: httpx.Client, email: str, *, ip: str = "192.0.2.1", **form: Any
        ) -> httpx.Response:
    """POST the form as a visitor at *ip* (uvicorn trusts X-Forwarded-For from 127.0.0.1,
    as from a proxy on the same machine)."""
    return client.post("/subscribe", data={"email": email, **form},
                       headers={"X-Forwarded-For": ip})


def member(site: Path, key: str) -> Any:
    state = open_state(load_config(site))
    try:
        return state.member(key)
    finally:
        state.close()


# the form -----------------------------------------------------------------------------------
def test_form_lists_the_sites_tags_with_every_post_chosen(client: httpx.Client) -> None:
    page = client.get("/subscribe")
    assert page.status_code == 200
    assert re.findall(r'name="tag" value="([^"]+)"', page.text) == SITE_TAGS
    assert re.search(r'value="all" checked', page.text)
    assert 'name="homepage"' in page.text and 'autocomplete="off"' in page.text


def test_without_signup_settings_the_page_is_the_404(tmp_path: Path) -> None:
    cfg = signup_site(tmp_path)
    text = cfg.read_text().replace("signup: {}\n", "")
    assert "\nsignup:" not in text
    cfg.write_text(text)
    with WebServer(load_config(cfg)) as running, httpx.Client(base_url=running.url) as http:
        assert http.get("/subscribe").status_code == 404
        assert http.post("/subscribe", data={"email": "x@example.org"}).status_code == 404


# asking, confirming ------------------------------------------------------------------------
def test_one_confirmation_with_the_address_and_a_link_but_never_the_name(
        site: Path, client: httpx.Client) -> None:
    answer = ask(client, "zoe@example.net",
                 name="Zoe http://spam.example/buy-now\r\nBcc: victim@example.com")
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    [mail] = mails(site, 1)
    assert mail["To"] == "zoe@example.net" and mail["Auto-Submitted"] == "auto-generated"
    assert mail["Bcc"] is None and mail["From"].addresses[0].addr_spec == "jobs@example.org"
    body = mail.as_string()
    assert "zoe@example.net" in text_of(mail) and LINK.search(body)
    assert "Zoe" not in body and "spam.example" not in body and "victim" not in body
    token = link_of(mail).rsplit("/", 1)[1]
    assert "zoe" not in token and "example" not in token  # the address is sealed, not shown


def test_answer_is_the_same_for_new_subscribed_and_suppressed_addresses(
        site: Path, client: httpx.Client) -> None:
    state = open_state(load_config(site))
    state.suppress("gone@example.org", "unsubscribed on the web (one-click)")
    state.close()
    pages = [ask(client, email, ip=f"192.0.2.{n}")
             for n, email in enumerate(["new@example.net", "ana@example.org",
                                        "gone@example.org"])]
    assert {p.status_code for p in pages} == {200}
    assert len({p.content for p in pages}) == 1
    assert len({tuple(sorted((k, v) for k, v in p.headers.items()
                             if k not in ("date", "content-length"))) for p in pages}) == 1
    assert sorted(m["To"] for m in mails(site, 3)) == [
        "ana@example.org", "gone@example.org", "new@example.net"]


def test_get_of_the_link_does_not_confirm_and_post_does(site: Path,
                                                       client: httpx.Client) -> None:
    ask(client, "zoe@example.net", mode="some", tag=["union", "data"], name="Zoe")
    link = link_of(mails(site, 1)[0])
    for _ in range(3):  # link scanners
        page = client.get(link)
        assert page.status_code == 200 and "<form method=\"post\">" in page.text
        assert "z•••@example.net" in page.text
    assert member(site, "zoe@example.net") is None
    done = client.post(link)
    assert done.status_code == 200 and "You're subscribed" in done.text
    found = member(site, "zoe@example.net")
    assert (found.tags, found.source, found.name) == (("union", "data"), "signup", "Zoe")
    [welcome] = [m for m in mails(site, 2) if m["Subject"] == "Welcome to Jobs Board"]
    assert "Zoe" not in welcome.as_string()
    assert welcome["List-Unsubscribe"].startswith(f"<{BASE}/unsubscribe/")
    # the page's link to choose tags works
    choose = re.search(r'href="([^"]+)">Choose your tags', done.text)
    assert choose is not None
    tags = client.get(httpx.URL(link).join(choose.group(1)))
    assert tags.status_code == 200 and "z•••@example.net" in tags.text


def test_confirmed_subscriber_gets_the_next_digest_with_the_tags_chosen(
        site: Path, client: httpx.Client) -> None:
    ask(client, "zoe@example.net", mode="some", tag=["analytics"])
    assert client.post(link_of(mails(site, 1)[0])).status_code == 200
    mails(site, 2)
    send(load_config(site), as_of=MONDAY)
    digests = by_recipient([m for m in outbox(site) if "new job" in str(m["Subject"])])
    assert titles(digests["zoe@example.net"][0]) == ["Campaign Analyst", "Analytics Intern"]


def test_a_link_works_once_and_an_older_link_stops_when_a_newer_is_sent(
        site: Path, client: httpx.Client) -> None:
    ask(client, "zoe@example.net")
    first = link_of(mails(site, 1)[0])
    ask(client, "zoe@example.net", mode="some", tag=["union"])
    # both went out in the same second: the outbox's order cannot tell them apart
    [second] = [link for link in map(link_of, mails(site, 2)) if link != first]
    old = client.post(first)
    assert old.status_code == 410 and "newer one was sent" in old.text
    assert member(site, "zoe@example.net") is None
    assert client.post(second).status_code == 200
    again = client.post(second)
    assert again.status_code == 410 and "already used" in again.text
    assert member(site, "zoe@example.net").tags == ("union",)


def test_expired_link_is_refused(site: Path, server: WebServer,
                                 client: httpx.Client) -> None:
    ask(client, "zoe@example.net")
    link = link_of(mails(site, 1)[0])
    server.web.clock = Clock(timedelta(hours=48, minutes=1))
    for answer in (client.get(link), client.post(link)):
        assert answer.status_code == 410 and "expired" in answer.text
    assert member(site, "zoe@example.net") is None
    server.web.clock = Clock(timedelta(hours=47, minutes=59))
    assert client.post(link).status_code == 200


def test_forged_or_altered_tokens_get_the_404(site: Path, client: httpx.Client) -> None:
    ask(client, "zoe@example.net")
    token = link_of(mails(site, 1)[0]).rsplit("/", 1)[1]
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    forged = seal([b"another-secret-0123456789"], "zoe@example.net",
                  unseal([SECRET.encode()], token)[1])  # type: ignore[index]
    for bad in (flipped, forged, "x" * 60, token[:30]):
        answer = client.post(f"/subscribe/confirm/{bad}")
        assert answer.status_code == 404 and "Traceback" not in answer.text
    assert member(site, "zoe@example.net") is None


def test_suppressed_address_comes_back_only_by_confirming(site: Path,
                                                          client: httpx.Client) -> None:
    state = open_state(load_config(site))
    state.suppress("ana@example.org", "hard bounce")
    state.close()
    ask(client, "ana@example.org", mode="some", tag=["data"])
    link = link_of(mails(site, 1)[0])
    client.get(link)
    assert suppressed(site) == {"ana@example.org"}
    assert client.post(link).status_code == 200
    assert suppressed(site) == set()
    # ana is in the owner's file: her choice is kept as web preferences, not a member
    assert member(site, "ana@example.org") is None
    state = open_state(load_config(site))
    assert state.preference("ana@example.org") == (True, ("data",))
    state.close()


# abuse ----------------------------------------------------------------------------------------
def test_filled_honeypot_answers_the_same_and_sends_and_keeps_nothing(
        site: Path, client: httpx.Client) -> None:
    bot = ask(client, "bot@example.net", homepage="http://spam.example")
    person = ask(client, "zoe@example.net", ip="192.0.2.9")
    assert bot.status_code == 200 and bot.content == person.content
    assert [m["To"] for m in mails(site, 1)] == ["zoe@example.net"]
    state = open_state(load_config(site))
    assert state.pending("bot@example.net") is None
    state.close()


@pytest.mark.parametrize(("limits", "asks", "sent"), [
    ({"per_ip_per_hour": 2}, [("a@example.net", "192.0.2.1"), ("b@example.net", "192.0.2.1"),
                               ("c@example.net", "192.0.2.1"), ("d@example.net", "192.0.2.2")],
     ["a@example.net", "b@example.net", "d@example.net"]),
    ({"per_address_per_hour": 1}, [("a@example.net", "192.0.2.1"),
                                    ("A@example.net", "192.0.2.2"),
                                    ("b@example.net", "192.0.2.3")],
     ["a@example.net", "b@example.net"]),
    ({"per_hour": 2}, [("a@example.net", "192.0.2.1"), ("b@example.net", "192.0.2.2"),
                        ("c@example.net", "192.0.2.3")],
     ["a@example.net", "b@example.net"]),
    ({"per_ip_per_hour": 1}, [("a@example.net", "2001:db8::1"),
                               ("b@example.net", "2001:db8::2"),  # the same /64
                               ("c@example.net", "2001:db8:0:1::1")],
     ["a@example.net", "c@example.net"]),
], ids=["per-ip", "per-address", "overall", "ipv6-by-64"])
def test_past_a_limit_nothing_more_is_sent_and_the_page_is_the_same(
        tmp_path: Path, limits: dict[str, int], asks: list[tuple[str, str]],
        sent: list[str]) -> None:
    site = signup_site(tmp_path, signup=limits)
    with WebServer(load_config(site)) as running, \
            httpx.Client(base_url=running.url) as http:
        pages = {ask(http, email, ip=ip).content for email, ip in asks}
    assert len(pages) == 1
    assert sorted(str(m["To"]).lower() for m in mails(site, len(sent))) == sent


def test_over_the_address_limit_the_link_already_sent_still_works(
        tmp_path: Path) -> None:
    site = signup_site(tmp_path, signup={"per_address_per_hour": 1})
    with WebServer(load_config(site)) as running, \
            httpx.Client(base_url=running.url) as http:
        ask(http, "zoe@example.net")
        link = link_of(mails(site, 1)[0])
        ask(http, "zoe@example.net", ip="192.0.2.7", mode="some", tag=["union"])
        mails(site, 1)
        assert http.post(link).status_code == 200
    assert member(site, "zoe@example.net").tags is None


@pytest.mark.parametrize("address", [
    "zoe@example.net\r\nBcc: victim@example.com", "zoe@example.net\nX-Evil: 1",
    "Zoe <zoe@example.net>", "not an address", "", "z" * 300 + "@example.net",
    "zoé@example.net"])
def test_bad_or_injected_addresses_are_refused_with_the_form(
        site: Path, client: httpx.Client, address: str) -> None:
    answer = ask(client, address)
    assert answer.status_code == 400 and 'name="email"' in answer.text
    assert "Traceback" not in answer.text
    mails(site, 0)


def test_a_megabyte_body_is_refused_by_the_guard(site: Path, server: WebServer) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(b"POST /subscribe HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: 1048576\r\n\r\n" + b"email=a%40example.net&" + b"x" * 4096)
        assert conn.recv(100).startswith(b"HTTP/1.1 413")
    mails(site, 0)


def test_choosing_some_tags_but_none_ticked_asks_again(site: Path,
                                                      client: httpx.Client) -> None:
    answer = ask(client, "zoe@example.net", mode="some", name="Zoe")
    assert answer.status_code == 400 and "Choose at least one tag" in answer.text
    assert 'value="zoe@example.net"' in answer.text and 'value="Zoe"' in answer.text
    mails(site, 0)


# the snippet ----------------------------------------------------------------------------------
def test_signup_form_prints_a_form_that_posts_to_the_web_front(site: Path) -> None:
    code, out, err = run_cli(["--config", str(site), "signup-form"])
    assert code == 0, err
    assert out.startswith("<form") and f'action="{BASE}/subscribe"' in out
    assert re.findall(r'name="tag" value="([^"]+)"', out) == SITE_TAGS
    assert 'name="homepage"' in out and "position:absolute" in out


def test_signup_form_without_signup_settings_exits_2(tmp_path: Path) -> None:
    cfg = signup_site(tmp_path)
    cfg.write_text(cfg.read_text().replace("signup: {}\n", ""))
    code, out, err = run_cli(["--config", str(cfg), "signup-form"])
    assert code == 2 and out == "" and "'signup:' is not set" in err


# through the SMTP relay ----------------------------------------------------------------------
def test_with_smtp_the_confirmation_goes_through_the_relay(tmp_path: Path) -> None:
    with SmtpServer() as relay:
        site = signup_site(tmp_path, relay)
        with WebServer(load_config(site)) as running, \
                httpx.Client(base_url=running.url) as http:
            assert ask(http, "zoe@example.net").status_code == 200
            wait_until(lambda: relay.received, 5)
        [got] = relay.received
    assert (got.sender, got.recipients) == ("jobs@example.org", ("zoe@example.net",))
    assert LINK.search(got.data.decode())
    assert _outbox(site) == []


def test_a_relay_refusing_the_address_is_logged_and_the_page_is_the_same(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with SmtpServer(faults=Faults(reject=frozenset({"zoe@example.net"}))) as relay:
        site = signup_site(tmp_path, relay)
        with WebServer(load_config(site)) as running, \
                httpx.Client(base_url=running.url) as http:
            pages = {ask(http, email, ip=f"192.0.2.{n}").content
                     for n, email in enumerate(["zoe@example.net", "ana@example.org"])}
            wait_until(lambda: "confirmation not sent" in caplog.text, 5)
            wait_until(lambda: relay.received, 5)
        assert relay.recipients() == ["ana@example.org"]
    assert len(pages) == 1
    assert "sign-up confirmation not sent: 550" in caplog.text


# the token --------------------------------------------------------------------------------------
def test_token_opens_to_its_key_and_moment_and_hides_the_address() -> None:
    when = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    token = seal([b"new-secret-0123456789"], "zoe@example.net", when)
    assert "zoe" not in token and "example" not in token
    assert unseal([b"new-secret-0123456789"], token) == ("zoe@example.net", when)
    # rotation: sealed with the old secret, still opened while it is given after the new
    old = seal([b"old-secret-0123456789"], "zoe@example.net", when)
    assert unseal([b"new-secret-0123456789", b"old-secret-0123456789"], old) is not None
    assert unseal([b"new-secret-0123456789"], old) is None


def test_every_altered_character_of_a_token_makes_it_worthless() -> None:
    when = datetime(2026, 3, 1, tzinfo=UTC)
    secret = [b"new-secret-0123456789"]
    token = seal(secret, "zoe@example.net", when)
    for i in range(len(token)):
        altered = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:]
        assert unseal(secret, altered) is None, i
    assert unseal(secret, token + "AA") is None and unseal(secret, token[:-2]) is None


# digest check ---------------------------------------------------------------------------------
def test_check_reports_signup_without_base_url(tmp_path: Path) -> None:
    cfg = signup_site(tmp_path)
    cfg.write_text(cfg.read_text().replace(f"base_url: {BASE}", "listen: null"))
    code, out, _ = run_cli(["--config", str(cfg), "check"])
    assert code == 2
    assert "'signup:' is set but 'web: base_url:' is not" in out


def test_check_renders_the_signup_emails_and_names_a_broken_template(tmp_path: Path) -> None:
    cfg = signup_site(tmp_path)
    code, _, err = run_cli(["--config", str(cfg), "check"])
    assert f"sign-up: {BASE}/subscribe (confirmation links work 48 hours)" in err, err
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "confirm.txt.j2").write_text("{{ confirm_url }\n")
    cfg.write_text(cfg.read_text().replace("noun: job",
                                           f"noun: job\n  templates: {tmp_path}/mine"))
    code, out, _ = run_cli(["--config", str(cfg), "check"])
    assert code == 2 and "confirm.txt.j2:1" in out, out


# in a real browser ------------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.mark.skipif(not (CHROMIUM and DRIVER),
                    reason="needs chromium and chromium-driver (apt-get install)")
def test_signing_up_and_confirming_by_clicking_in_a_browser(site: Path,
                                                            server: WebServer) -> None:
    """Headless Chromium on a phone-sized window: the honeypot is out of sight and left
    empty, the form posts, and the confirmation page's button confirms."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=390,844"):
        options.add_argument(arg)
    browser = webdriver.Chrome(options=options, service=Service(str(DRIVER)))

    def press(text: str, then: str) -> None:
        click_and_wait(browser, browser.find_element(By.XPATH, f"//button[text()='{text}']"))
        heading_becomes(browser, then)

    try:
        browser.get(f"{server.url}/subscribe")
        assert browser.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth")
        trap = browser.find_element(By.NAME, "homepage")
        assert trap.rect["x"] + trap.rect["width"] < 0  # off screen, never typed into
        browser.find_element(By.NAME, "email").send_keys("zoe@example.net")
        browser.find_element(By.NAME, "name").send_keys("Zoe")
        browser.find_element(By.CSS_SELECTOR, "input[value=some]").click()
        browser.find_element(By.CSS_SELECTOR, "input[name=tag][value=union]").click()
        press("Subscribe", "Check your inbox")
        browser.get(server.url + link_of(mails(site, 1)[0]))
        assert member(site, "zoe@example.net") is None
        press("Confirm my subscription", "You're subscribed")
    finally:
        browser.quit()
    found = member(site, "zoe@example.net")
    assert (found.tags, found.name) == (("union",), "Zoe")
