"""A real headless Chromium for the memory browser's tests (Debian's ``chromium`` and ``chromium-driver``).

``require_chromium()`` skips the calling test module when either is missing; ``chromium()`` starts
one browser (with the performance log on, for the tests that check what the page loads).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from ui_support import RunningUi, seeded_ui

from memory import MemoryHome

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
)


def require_chromium() -> None:
    """Call at a test module's top: skips the module without chromium, chromium-driver or selenium."""
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("needs chromium and chromium-driver (apt-get install chromium chromium-driver)", allow_module_level=True)
    pytest.importorskip("selenium.webdriver")


@contextmanager
def chromium(*, performance_log: bool = False) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ARGUMENTS:
        options.add_argument(argument)
    if performance_log:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@contextmanager
def opened_ui(driver, home: MemoryHome) -> Iterator[RunningUi]:
    """The seeded UI (``ui_support.seeded_ui``), signed in and showing its memory list in ``driver``."""
    with seeded_ui(home) as running:
        driver.get("about:blank")
        driver.get(running.url)
        wait_for(driver, "#memory-list tr.memory-row")
        yield running
        driver.execute_script("sessionStorage.clear()")


def wait_for(driver, css: str, timeout: float = 30):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))


def wait_text(driver, css: str, text: str, timeout: float = 30) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))


def go(driver, ui, fragment: str, ready: str) -> None:
    driver.get(f"{ui.base}/{fragment}")
    wait_for(driver, ready)
