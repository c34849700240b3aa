"""Waiting on a headless Chromium that is loading a new page, shared by the browser tests."""

from __future__ import annotations

from typing import Any


def click_and_wait(browser: Any, element: Any, seconds: float = 20) -> None:
    """Click something that loads a new page, and wait until the old page is gone."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    old = browser.find_element(By.TAG_NAME, "html")
    element.click()

    def gone(_: Any) -> bool:
        # staleness_of expects StaleElementReference only; mid-navigation Chromium may
        # answer "Node with given id does not belong to the document" instead (seen under
        # load), which means the same: the old page is gone
        try:
            old.is_enabled()
        except WebDriverException:
            return True
        return False

    WebDriverWait(browser, seconds).until(gone)


def heading_becomes(browser: Any, text: str, seconds: float = 20) -> None:
    """Wait until the page's h1 reads `text`; a page swapped mid-read is read again."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def shows(b: Any) -> bool:
        try:
            return bool(b.find_element(By.TAG_NAME, "h1").text == text)
        except WebDriverException:  # stale or not there yet while the new page loads
            return False

    WebDriverWait(browser, seconds).until(shows)
