"""Headless Chromium for the browser tests (tests/test_web_e2e.py, tests/test_console_e2e.py):
Debian's chromium and chromium-driver, driven by selenium; skipped where either is missing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WAIT = 30

# The marks of every browser test module.
BROWSER_TESTS = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
        reason="needs chromium and chromedriver (apt-get install chromium chromium-driver)",
    ),
]
# Flags that keep a test browser quiet and offline, whatever the machine.
_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def chromium(profile: Path, size: tuple[int, int], *flags: str, console_log: bool = False) -> Any:
    """A new headless browser window of ``size`` with its own profile directory; with
    ``console_log``, the page's console messages can be read (``get_log("browser")``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*_FLAGS, *flags, f"--window-size={size[0]},{size[1]}"):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    if console_log:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    browser.set_script_timeout(WAIT)
    return browser
