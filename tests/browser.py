"""Headless Debian Chromium driven by Selenium through Debian's chromedriver, for the console
tests. Nothing is downloaded (the driver and browser paths are given, Selenium Manager is never
asked), and Chromium's background networking is off so no request leaves 127.0.0.1."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: Flags that keep Chromium quiet on a closed network (the machine notes in ../.library/env).
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--no-default-browser-check",
         "--disable-features=Translate,OptimizationHints,MediaRouter",
         "--window-size=1280,1800", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")


def available() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


def require_browser() -> None:
    if available():
        return
    if os.environ.get("CI"):
        pytest.fail("Chromium is not installed: scripts/test installs it (scripts/chromium ensure)")
    pytest.skip("Chromium not installed (scripts/chromium ensure)")


@contextmanager
def chromium(profile: Path) -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    os.environ.setdefault("SE_AVOID_STATS", "true")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot_dir(default: Path) -> Path:
    """Where screenshots go: FHIR_BRIDGE_SCREENSHOTS (scripts/console-screenshots points it at
    docs/images) or the test's own output folder."""
    folder = Path(os.environ.get("FHIR_BRIDGE_SCREENSHOTS") or default)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def resource_urls(driver) -> list[str]:
    """Every URL the page loaded (the document, stylesheets, images), by the browser's own
    Resource Timing record."""
    return driver.execute_script(
        "return [location.href].concat(performance.getEntriesByType('resource')"
        ".map(e => e.name));")


def wait_for(driver, css: str, timeout: float = 15.0):
    """The element once the page that has it is loaded (a click on a submit button returns
    before the next page arrives)."""
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(
        ec.visibility_of_element_located(("css selector", css)))


def submit_and_wait(driver, button, css: str):
    """Click a form's button, wait until the old page is gone and ``css`` shows."""
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    old = driver.find_element("tag name", "html")
    button.click()
    WebDriverWait(driver, 15).until(ec.staleness_of(old))
    return wait_for(driver, css)
