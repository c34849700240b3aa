"""The web front in a real browser: headless Chromium (Debian's chromium + chromium-driver,
driven by Selenium) clicks through unsubscribe and the tags page on a phone-sized window,
light and dark, opens the feeds page, and takes a screenshot of each page.

Screenshots go to the test's folder; set DIGEST_SCREENSHOTS=DIR to keep them (the README's
come from `DIGEST_SCREENSHOTS=docs/screenshots pytest tests/test_browser.py`).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browsing import click_and_wait
from conftest import build_site
from helpers import MONDAY, SECRET, digest_site, preferences, suppressed, token
from web_server import WebServer

from digest.config import load_config
from digest.delivery.send import send

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="needs chromium and chromium-driver (apt-get install)")
PHONE = (390, 844)


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={PHONE[0]},{PHONE[1]}", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(str(DRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[WebServer]:
    cfg = digest_site(tmp_path)
    build_site(cfg, now=MONDAY)
    send(load_config(cfg), as_of=MONDAY)
    with WebServer(load_config(cfg)) as running:
        yield running


@pytest.fixture
def site(server: WebServer) -> Path:
    return server.web.config.path


def scheme(browser: Any, dark: bool) -> None:
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [
        {"name": "prefers-color-scheme", "value": "dark" if dark else "light"}]})


def shoot(browser: Any, tmp_path: Path, name: str) -> None:
    """A full-page PNG of what is shown; checked to be a real picture, kept on request."""
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(PHONE[0], max(PHONE[1], height + 100))
    path = tmp_path / f"{name}.png"
    browser.save_screenshot(str(path))
    browser.set_window_size(*PHONE)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    keep = os.environ.get("DIGEST_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)


def fits_a_phone(browser: Any) -> bool:
    """No sideways scrolling: nothing is wider than the screen."""
    return bool(browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth"))


def background(browser: Any) -> tuple[int, ...]:
    color = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
    return tuple(int(n) for n in re.findall(r"\d+", color)[:3])


def test_unsubscribe_then_resubscribe_by_clicking(browser: Any, server: WebServer, site: Path,
                                                  tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    scheme(browser, dark=False)
    browser.get(f"{server.url}/unsubscribe/{token('ana@example.org', 'unsubscribe')}")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Unsubscribe from the weekly digest?"
    assert fits_a_phone(browser)
    assert suppressed(site) == set()  # opening the page changed nothing
    shoot(browser, tmp_path, "unsubscribe")
    click_and_wait(browser, browser.find_element(By.XPATH, "//button[text()='Unsubscribe']"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "You are unsubscribed"
    assert suppressed(site) == {"ana@example.org"}
    assert browser.get_cookies() == []
    shoot(browser, tmp_path, "unsubscribed")
    click_and_wait(browser, browser.find_element(By.PARTIAL_LINK_TEXT, "resubscribe"))
    assert "You are unsubscribed and get no digests" in browser.page_source
    click_and_wait(browser, browser.find_element(By.XPATH, "//button[text()='Resubscribe']"))
    assert "You are subscribed again." in browser.page_source
    assert suppressed(site) == set()


def test_choose_tags_by_clicking(browser: Any, server: WebServer, site: Path,
                                 tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    scheme(browser, dark=False)
    browser.get(f"{server.url}/preferences/{token('ana@example.org', 'preferences')}")
    assert fits_a_phone(browser)
    shoot(browser, tmp_path, "preferences")
    box = {b.get_attribute("value"): b for b in browser.find_elements(
        By.CSS_SELECTOR, "input[name=tag]")}
    assert box["union"].is_selected() and not box["analytics"].is_selected()
    box["union"].click()
    box["analytics"].click()
    click_and_wait(browser, browser.find_element(By.XPATH, "//button[text()='Save']"))
    assert "Saved. Your next digest follows these choices." in browser.page_source
    assert preferences(site) == {"ana@example.org": ("analytics",)}
    shoot(browser, tmp_path, "preferences-saved")
    # nothing ticked is refused, and the choice stays as it was
    for ticked in browser.find_elements(By.CSS_SELECTOR, "input[name=tag]:checked"):
        ticked.click()
    click_and_wait(browser, browser.find_element(By.XPATH, "//button[text()='Save']"))
    assert "Choose at least one tag" in browser.page_source
    assert preferences(site) == {"ana@example.org": ("analytics",)}
    browser.find_element(By.CSS_SELECTOR, "input[value=all]").click()
    click_and_wait(browser, browser.find_element(By.XPATH, "//button[text()='Save']"))
    assert preferences(site) == {"ana@example.org": None}


def test_archive_and_dark_mode(browser: Any, server: WebServer, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    scheme(browser, dark=False)
    browser.get(f"{server.url}/archive/")
    light = background(browser)
    shoot(browser, tmp_path, "archive-index")
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "ul.runs a"))
    assert "Union Data Organizer" in browser.page_source
    assert fits_a_phone(browser)
    shoot(browser, tmp_path, "archive")
    scheme(browser, dark=True)
    browser.refresh()
    dark = background(browser)
    shoot(browser, tmp_path, "archive-dark")
    assert sum(light) > 600 and sum(dark) < 150, (light, dark)


def test_feeds_page_on_a_phone_light_and_dark(browser: Any, server: WebServer,
                                             tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    scheme(browser, dark=False)
    browser.get(f"{server.url}/feeds")  # redirected to /feeds/
    assert browser.current_url == f"{server.url}/feeds/"
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Follow ")
    assert fits_a_phone(browser)
    addresses = browser.find_elements(By.CSS_SELECTOR, "section.feed input[readonly]")
    assert len(addresses) >= 4 and addresses[0].get_attribute("value").endswith("/feed.xml")
    # each address fits the screen: it is selected to be copied, so it must be reachable
    width = browser.execute_script("return window.innerWidth")
    assert all(a.rect["x"] > 0 and a.rect["x"] + a.rect["width"] <= width for a in addresses)
    pasted = browser.find_element(By.CSS_SELECTOR, "pre.paste").text
    assert pasted.startswith('<link rel="alternate" type="application/atom+xml"')
    assert browser.execute_script("return document.scripts.length") == 0
    light = background(browser)
    shoot(browser, tmp_path, "feeds")
    scheme(browser, dark=True)
    browser.refresh()
    assert fits_a_phone(browser)
    dark = background(browser)
    shoot(browser, tmp_path, "feeds-dark")
    assert sum(light) > 600 and sum(dark) < 150, (light, dark)
