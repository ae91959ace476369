"""Headless Chromium (Debian's chromium and chromium-driver) driven by Selenium.

The driver is named explicitly, so Selenium never looks for one on the network.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1400,1800",
)


@contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    """A fresh headless browser with its own profile, quit afterwards."""
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert binary and driver, "install Debian's chromium and chromium-driver (make system-deps)"
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(browser: webdriver.Chrome, name: str) -> Path:
    """Save the page as test-artifacts/<name>.png (git-ignored) for a person to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1400, max(900, min(int(height) + 40, 4000)))
    assert browser.save_screenshot(str(path)), f"no screenshot written to {path}"
    return path
