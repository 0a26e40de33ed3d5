"""The operator's dashboard in a real chromium: refused without the token,
then the task list with live status, a task's log arriving while it runs,
and cancel. A screenshot goes to tests/output/dashboard.png."""

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from browser import browser, console_errors, screenshot  # noqa: F401 (fixture)
from conftest import jsonrpc, wait_until

pytestmark = pytest.mark.browser

TOKEN = "dashboard-token-0123456789"


def text(browser, css):
    """The text of the element at ``css`` ("" if absent): read in the page,
    since the live table may replace its rows between two Selenium calls."""
    return browser.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : ''", css)


def visible(browser, element_id):
    return "hidden" not in browser.find_element(By.ID, element_id).get_attribute("class")


def log_in(browser, token):
    field = browser.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token, Keys.ENTER)


def test_dashboard_lists_follows_and_cancels(browser, service_process):
    """Guards the dashboard end to end: a wrong token is refused (and so is
    /tasks without one); with the right one the running task appears with
    its status and progress, its log lines arrive while it runs, and the
    cancel button cancels it on the server."""
    url = service_process({"TASKTYPES_ADMIN_TOKEN": TOKEN}).url
    assert requests.get(url + "/tasks", timeout=10).status_code == 401
    browser.get(url + "/dashboard")
    browser.execute_script("sessionStorage.clear()")
    browser.get(url + "/dashboard")
    wait_until(lambda: visible(browser, "login"))
    assert not visible(browser, "board")

    log_in(browser, "not-the-token-00000000")
    wait_until(lambda: "refused" in text(browser, "#login-error"), timeout=10)
    assert not visible(browser, "board")
    console_errors(browser)  # the refused request's 401

    task_id = jsonrpc(url, "taskExample", "session-1", 7)["task_id"]
    log_in(browser, TOKEN)
    wait_until(lambda: visible(browser, "board"))
    row = '#tasks tr[data-task-id="%d"]' % task_id
    wait_until(lambda: "running" in text(browser, row), timeout=15)
    assert "taskExample" in text(browser, row)
    wait_until(lambda: "running: 1" in text(browser, "#counts"), timeout=10)
    wait_until(lambda: browser.execute_script(
        "return document.querySelector(arguments[0]).value", row + " progress") > 0,
        timeout=10)

    browser.find_element(By.CSS_SELECTOR, row).click()
    wait_until(lambda: visible(browser, "detail"))
    wait_until(lambda: "started for session session-1" in text(browser, "#detail-log"),
               timeout=10)
    assert "10 of 60" not in text(browser, "#detail-log")
    # the next line is logged after 5 s: it arrives while the task runs
    wait_until(lambda: "10 of 60 steps done" in text(browser, "#detail-log"), timeout=20)
    assert text(browser, '#detail-fields dd[data-field="status"]') == "running"
    assert '"counter": 7' in text(browser, '#detail-fields dd[data-field="arguments"]')
    screenshot(browser, "dashboard")

    browser.find_element(By.ID, "detail-cancel").click()
    wait_until(lambda: text(browser, '#detail-fields dd[data-field="status"]') == "cancelled",
               timeout=10)
    assert jsonrpc(url, "taskExample_progress", task_id)["status"] == "cancelled"
    wait_until(lambda: "cancelled" in text(browser, row), timeout=10)
    assert "Client.TaskCancelled" in text(browser, '#detail-fields dd[data-field="error"]')
    assert console_errors(browser) == []
