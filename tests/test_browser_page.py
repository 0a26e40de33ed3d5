"""The task page (GET /) in a real chromium: forms built from the OpenRPC
document, a task's panel moving through its progress to the result, an
error, a cancel, and a complex result field by field. A screenshot goes to
tests/output/page.png."""

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from browser import browser, console_errors, screenshot  # noqa: F401 (fixture)
from conftest import jsonrpc, wait_until

pytestmark = pytest.mark.browser


@pytest.fixture
def page(browser, service_process):
    service = service_process()
    browser.get(service.url + "/")
    wait_until(lambda: browser.find_elements(By.ID, "method-countdown"), timeout=15)
    browser.tasktypes_url = service.url
    return browser


def fill(browser, method, values):
    """Type ``values`` into the form of ``method`` (by label), then submit
    it with the keyboard."""
    section = browser.find_element(By.ID, "method-" + method)
    for name, value in values.items():
        label = section.find_element(By.XPATH, ".//label[span[starts-with(., '%s')]]" % name)
        field = browser.find_element(By.ID, label.get_attribute("for"))
        field.clear()
        field.send_keys(str(value))
    field.send_keys(Keys.ENTER)


def panel(browser, method, part):
    """The text of ``part`` (status, message, outcome, ...) of the newest
    panel of ``method``."""
    return browser.execute_script(
        "const p = document.querySelector('#method-' + arguments[0] + ' .panel');"
        "if (!p) return null;"
        "const e = p.querySelector('.panel-' + arguments[1]);"
        "return e.tagName === 'PROGRESS' ? e.value : e.innerText;", method, part)


def test_forms_are_built_from_the_declared_types(page):
    """Guards the forms: one per task type with a labelled input per param,
    numbers as number inputs, required ones marked; no plain method."""
    sections = [s.get_attribute("id") for s in
                page.find_elements(By.CSS_SELECTOR, "section.method")]
    assert sections == ["method-countdown", "method-failingTask", "method-taskExample",
                        "method-cloneInstance", "method-slowTask"]
    steps = page.find_element(By.XPATH, "//section[@id='method-countdown']//label[1]")
    field = page.find_element(By.ID, steps.get_attribute("for"))
    assert field.get_attribute("type") == "number" and field.get_attribute("step") == "1"
    assert field.get_attribute("required") == "true"
    assert page.find_elements(By.ID, "method-echo") == []
    assert console_errors(page) == []


def test_countdown_moves_to_its_result(page):
    """Guards the panel: the bar and the message go through several values,
    then the result; the elapsed time runs; cancel is disabled at the end."""
    fill(page, "countdown", {"steps": 6, "delay": 0.4})
    messages, values = set(), set()

    def progressed():
        messages.add(panel(page, "countdown", "message"))
        values.add(panel(page, "countdown", "progress"))
        return panel(page, "countdown", "status") == "done"
    wait_until(progressed, timeout=30, interval=0.05)
    assert len({m for m in messages if m and " / 6" in m}) >= 3, messages
    assert len({v for v in values if 0 < v < 1}) >= 3, values
    wait_until(lambda: "6" in (panel(page, "countdown", "outcome") or ""))
    assert panel(page, "countdown", "outcome").startswith("Result")
    assert panel(page, "countdown", "progress") == 1
    assert float(panel(page, "countdown", "elapsed").split()[0]) >= 2.0
    assert page.execute_script(
        "return document.querySelector('#method-countdown .panel-cancel').disabled")
    screenshot(page, "page")


def test_failing_task_shows_the_error(page):
    """Guards the error path: code, faultcode and the exception's text."""
    fill(page, "failingTask", {"message": "disk full", "delay": 0.2})
    wait_until(lambda: "disk full" in (panel(page, "failingTask", "outcome") or ""),
               timeout=20)
    outcome = panel(page, "failingTask", "outcome")
    assert "-32003" in outcome and "Server.TaskFailed" in outcome
    assert "ValueError: disk full" in outcome
    assert panel(page, "failingTask", "status") == "failed"


def test_a_long_task_is_cancelled(page):
    """Guards the cancel button: the task is cancelled on the server and the
    panel says so."""
    fill(page, "taskExample", {"session_id": "s-1", "counter": 3})
    wait_until(lambda: panel(page, "taskExample", "status") == "running", timeout=20)
    title = panel(page, "taskExample", "title")
    task_id = int(title.rsplit(" ", 1)[1])
    page.find_element(By.CSS_SELECTOR, "#method-taskExample .panel-cancel").click()
    wait_until(lambda: panel(page, "taskExample", "status") == "cancelled", timeout=15)
    assert "Cancelled" in panel(page, "taskExample", "outcome")
    assert jsonrpc(page.tasktypes_url, "taskExample_progress", task_id)["status"] == "cancelled"


def test_complex_result_field_by_field(page):
    """Guards complex results: cloneInstance's InstanceInformation shown as
    its fields, the disk images as a list."""
    fill(page, "cloneInstance", {"instance_id": "vm-42", "new_instance_name": "web2"})
    wait_until(lambda: "web2" in (panel(page, "cloneInstance", "outcome") or ""), timeout=20)
    fields = page.execute_script("""
        const out = {};
        document.querySelectorAll('#method-cloneInstance .panel dl.result > dd')
          .forEach(dd => out[dd.dataset.field] = dd.innerText);
        return out;""")
    assert fields["instance_id"] == "vm-42-clone" and fields["name"] == "web2"
    assert fields["state"] == "running"
    assert fields["disk_images"].split("\n") == ["web2-disk0.qcow2", "web2-disk1.qcow2"]
    screenshot(page, "page-clone")
    assert console_errors(page) == []
