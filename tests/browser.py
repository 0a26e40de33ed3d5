"""A headless chromium for the browser tests: Debian's ``chromium`` driven
by Selenium through Debian's ``chromedriver`` (``.ci/install-browser.sh``
installs both). Nothing downloads a browser; a missing one is a failure
with the command that installs it, never a skip.

    def test_page(browser, service_process):
        browser.get(service.url + "/")
"""

import os
import shutil
import tempfile

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: Screenshots and other artifacts of the browser tests (git-ignored).
OUTPUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "output")

#: What lets chromium run here: as root in a container, without a GPU, and
#: without reaching out to Google's services.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1200,900"]


def start_chromium():
    """A Selenium driver of a fresh headless chromium; ``quit_chromium`` ends it."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    if missing:
        pytest.fail("%s missing: run `bash .ci/install-browser.sh` (as root)"
                    % ", ".join(missing))
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager downloads nothing
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="tasktypes-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS + ["--user-data-dir=" + profile]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(60)
    driver.tasktypes_profile = profile
    return driver


def quit_chromium(driver):
    try:
        driver.quit()
    finally:
        shutil.rmtree(driver.tasktypes_profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    """One chromium for the tests of a module; each test opens its own page."""
    driver = start_chromium()
    yield driver
    quit_chromium(driver)


def screenshot(driver, name):
    """Save the window as ``tests/output/<name>.png`` (a CI artifact)."""
    os.makedirs(OUTPUT_DIR, exist_ok=True)
    path = os.path.join(OUTPUT_DIR, name + ".png")
    size = driver.get_window_size()
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(size["width"], min(max(height + 100, size["height"]), 4000))
    driver.execute_script("window.scrollTo(0, 0)")
    try:
        driver.save_screenshot(path)  # the whole page, not just the first screen
    finally:
        driver.set_window_size(size["width"], size["height"])
    return path


def console_errors(driver):
    """The page's console errors so far (each read empties the browser's log)."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE"]
