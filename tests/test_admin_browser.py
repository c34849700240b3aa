"""The owner's dashboard in a real browser: headless Chromium (Debian's chromium +
chromium-driver, driven by Selenium) logs in, reads every page, suppresses and
resubscribes someone, pauses and resumes a real run against aiosmtpd, opens the preview
and logs out; on a desktop window and a phone, light and dark, with a screenshot of each
page.

Screenshots go to the test's folder; set DIGEST_SCREENSHOTS=DIR to keep them (the README's
come from `DIGEST_SCREENSHOTS=docs/screenshots pytest tests/test_admin_browser.py`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from admin_site import HASH_ENV, PASSWORD, admin_site, password_hash
from browsing import click_and_wait
from conftest import post, write_posts
from helpers import MONDAY, SECRET, suppressed
from smtp_server import SmtpServer
from web_server import WebServer

from digest.config import load_config
from digest.delivery.send import send
from digest.state.interface import Bounce, RunControl
from digest.state.open import open_state
from digest.util.clock import Clock

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="needs chromium and chromium-driver (apt-get install)")
GREYLISTED = "all@example.org"
PHONE = (390, 844)
DESKTOP = (1280, 900)


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    monkeypatch.setenv(HASH_ENV, password_hash())


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={DESKTOP[0]},{DESKTOP[1]}", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(str(DRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        server.faults.rcpt_tempfail_for = frozenset({GREYLISTED})
        yield server


@pytest.fixture
def server(tmp_path: Path, smtp: SmtpServer) -> Iterator[WebServer]:
    """A site that sent a digest a week ago through aiosmtpd, one address greylisted (its
    delivery deferred: the run still has someone to serve), with a bounce since and a new
    post for the next one; the dashboard's clock is the next Monday."""
    cfg = admin_site(tmp_path, base_url="http://127.0.0.1", smtp={
        "host": smtp.host, "port": smtp.port, "security": "none", "timeout": 5,
        "max_attempts": 2, "backoff": 0.01})
    send(load_config(cfg), as_of=MONDAY)
    write_posts(tmp_path, {"2024-06-12-week-two.md": post("Week Two Job", tags="[union]")})
    state = open_state(load_config(cfg))
    slug = state.runs(1)[0].slug
    state.record_bounce(Bounce("dev@example.org", "hard", MONDAY + timedelta(hours=1), "dsn",
                               "bounce-1", "5.1.1", "550 5.1.1 mailbox unknown", slug))
    state.suppress_with("dev@example.org", "hard bounce", "dsn 5.1.1: 550 mailbox unknown")
    state.close()
    running = WebServer(load_config(cfg))
    running.web.clock = Clock.starting_at(MONDAY + timedelta(days=7))
    with running:
        yield running


def scheme(browser: Any, dark: bool) -> None:
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [
        {"name": "prefers-color-scheme", "value": "dark" if dark else "light"}]})


def shoot(browser: Any, tmp_path: Path, name: str, size: tuple[int, int]) -> None:
    """A full-page PNG at *size*'s width; checked to be a real picture, kept on request."""
    browser.set_window_size(*size)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(size[0], min(max(size[1], height + 100), 4000))
    path = tmp_path / f"admin-{name}.png"
    browser.save_screenshot(str(path))
    browser.set_window_size(*size)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    keep = os.environ.get("DIGEST_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)


def fits(browser: Any) -> bool:
    """No sideways scrolling of the page (wide tables scroll inside their own box)."""
    return bool(browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth"))


def run_control(site: Path, slug: str) -> RunControl:
    state = open_state(load_config(site))
    try:
        run = state.find_run(slug)
        assert run is not None
        return state.run_control(run)
    finally:
        state.close()


def h1(browser: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(browser.find_element(By.TAG_NAME, "h1").text)


def test_the_owner_logs_in_reads_every_page_and_acts(browser: Any, server: WebServer,
                                                     smtp: SmtpServer, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    site = server.web.config.path
    scheme(browser, dark=False)
    browser.set_window_size(*DESKTOP)
    browser.delete_all_cookies()
    browser.get(f"{server.url}/admin/subscribers")
    assert browser.current_url.endswith("/admin/login")  # no session: to the login page
    shoot(browser, tmp_path, "login", PHONE)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    click_and_wait(browser, browser.find_element(By.XPATH, "//button[text()='Log in']"))
    assert h1(browser) == "Dashboard"
    cookie = browser.get_cookie("digest_admin")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    text = browser.find_element(By.TAG_NAME, "main").text
    assert "2024-06-10" in text and "posts so far" in text
    charts = browser.find_elements(By.CSS_SELECTOR, "main figure svg")
    assert len(charts) == 5 and all(c.size["width"] > 200 for c in charts)
    assert "Subscribers per tag" in text
    shoot(browser, tmp_path, "overview", DESKTOP)
    scheme(browser, dark=True)
    shoot(browser, tmp_path, "overview-dark", DESKTOP)
    assert fits(browser)

    click_and_wait(browser, browser.find_element(By.LINK_TEXT, "Subscribers"))
    assert h1(browser) == "Subscribers"
    browser.find_element(By.NAME, "q").send_keys("an")
    click_and_wait(browser, browser.find_element(By.XPATH, "//button[text()='Search']"))
    rows = browser.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert [r.text.split()[0] for r in rows] == ["ana@example.org"]
    browser.set_window_size(*PHONE)
    shoot(browser, tmp_path, "subscribers-phone-dark", PHONE)
    assert fits(browser)
    scheme(browser, dark=False)

    click_and_wait(browser, browser.find_element(By.LINK_TEXT, "ana@example.org"))
    assert h1(browser) == "ana@example.org"
    browser.find_element(By.NAME, "reason").send_keys("asked to stop by email")
    click_and_wait(browser, browser.find_element(By.XPATH, "//button[text()='Suppress']"))
    assert "Suppressed: no more digests" in browser.page_source
    assert suppressed(site) == {"ana@example.org", "dev@example.org"}
    shoot(browser, tmp_path, "subscriber-phone", PHONE)
    assert fits(browser)
    click_and_wait(browser, browser.find_element(By.XPATH, "//button[text()='Resubscribe']"))
    assert suppressed(site) == {"dev@example.org"}

    browser.set_window_size(*DESKTOP)
    browser.get(f"{server.url}/admin/subscriber?key=dev%40example.org")
    assert "550 mailbox unknown" in browser.page_source  # the suppression's evidence
    shoot(browser, tmp_path, "subscriber", DESKTOP)

    click_and_wait(browser, browser.find_element(By.LINK_TEXT, "Runs"))
    click_and_wait(browser, browser.find_element(By.LINK_TEXT, "2024-06-10"))
    assert h1(browser) == "Digest 2024-06-10"
    assert len(browser.find_elements(By.CSS_SELECTOR, "td.addr")) == 4
    assert "451" in browser.find_element(By.TAG_NAME, "main").text  # the greylisting reply
    shoot(browser, tmp_path, "run", DESKTOP)
    click_and_wait(browser, browser.find_element(By.PARTIAL_LINK_TEXT, "only the failed"))
    assert [e.text for e in browser.find_elements(By.CSS_SELECTOR, "td.addr")] == [GREYLISTED]

    # pause the run: the next send (the greylisting over) leaves it alone
    browser.find_element(By.NAME, "reason").send_keys("checking the server first")
    click_and_wait(browser, browser.find_element(By.XPATH, "//button[text()='Pause']"))
    assert "Paused: nothing more goes out" in browser.page_source
    control = run_control(site, "2024-06-10")
    assert control.owner_paused and control.reason == "checking the server first"
    assert control.by == "admin"
    shoot(browser, tmp_path, "run-paused-phone", PHONE)
    browser.set_window_size(*DESKTOP)
    smtp.faults.rcpt_tempfail_for = frozenset()
    send(load_config(site), as_of=MONDAY + timedelta(days=1))
    assert GREYLISTED not in smtp.recipients()
    click_and_wait(browser, browser.find_element(By.XPATH, "//button[text()='Resume']"))
    assert "Resumed" in browser.page_source
    assert not run_control(site, "2024-06-10").owner_paused
    send(load_config(site), as_of=MONDAY + timedelta(days=1))
    assert smtp.recipients().count(GREYLISTED) == 1  # served once the owner resumed
    browser.refresh()
    assert "Pause" not in [b.text for b in browser.find_elements(By.TAG_NAME, "button")]

    browser.get(f"{server.url}/admin/preview?key=ana%40example.org")
    assert h1(browser) == "Preview the next digest"
    frame = browser.find_element(By.CSS_SELECTOR, "iframe.mail")
    assert frame.get_attribute("sandbox") == ""
    browser.switch_to.frame(frame)
    assert "Week Two Job" in browser.page_source  # the HTML part, in its sandbox
    browser.switch_to.default_content()
    assert "Week Two Job" in browser.find_element(By.TAG_NAME, "pre").text
    shoot(browser, tmp_path, "preview", DESKTOP)
    scheme(browser, dark=True)
    shoot(browser, tmp_path, "preview-phone-dark", PHONE)
    scheme(browser, dark=False)
    browser.set_window_size(*DESKTOP)

    click_and_wait(browser, browser.find_element(By.XPATH, "//button[text()='Log out']"))
    assert browser.current_url.endswith("/admin/login")
    browser.get(f"{server.url}/admin/")
    assert browser.current_url.endswith("/admin/login")
