"""tasktypes.js alone, in a real chromium, against ``python wsgi.py`` with
each store: the callbacks fire in order, once each where they should, with
the contract's payloads and error codes.

The page is a blank document of the service's origin (a 404 page) into which
each test loads the helper, as a script tag or as an ES module; callbacks
record what they get in ``window.events``.
"""

import json

import pytest

from browser import browser, console_errors  # noqa: F401 (fixture)
from conftest import jsonrpc, wait_until

pytestmark = pytest.mark.browser

PROGRESS_KEYS = {"progress", "status", "message", "duration"}

# Loads the helper into the blank page: arguments[0] "script" or "module".
LOAD = """
const [how, done] = [arguments[0], arguments[arguments.length - 1]];
window.events = [];
window.record = name => value => events.push([name, JSON.parse(JSON.stringify(
    value, (k, v) => v instanceof Error ? {name: v.name, message: v.message,
                                           code: v.code, data: v.data} : v))]);
window.callbacks = extra => Object.assign({
  onProgress: record("progress"), onSuccess: record("success"),
  onFailure: record("failure"), onCancel: record("cancel"), onEnd: record("end"),
}, extra || {});
if (how === "module") {
  import("/static/tasktypes.mjs").then(m => { window.tt = m.default; done(true); },
                                        e => done(String(e)));
} else {
  const s = document.createElement("script");
  s.src = "/static/tasktypes.js";
  s.onload = () => { window.tt = window.tasktypes; done(true); };
  s.onerror = () => done("script did not load");
  document.head.appendChild(s);
}
"""


@pytest.fixture(params=["thread", "redis"])
def service(request, service_process):
    env = {}
    if request.param == "redis":
        env = {"TASKTYPES_STORE": "redis",
               "TASKTYPES_REDIS_URL": request.getfixturevalue("redis_url")}
    return service_process(env)


def blank_page(browser, service, how="script"):
    browser.get(service.url + "/blank")
    assert browser.execute_async_script(LOAD, how) is True
    console_errors(browser)  # the 404 of the blank page itself


def start(browser, script):
    """Run ``script`` in the page (``tt`` is the helper), then wait for onEnd;
    the recorded events."""
    browser.execute_script(script)
    return wait_until(lambda: _ended(browser), timeout=30, interval=0.1)


def _ended(browser):
    events = browser.execute_script("return events")
    return events if any(name == "end" for name, _ in events) else None


def names(events):
    return [name for name, _ in events]


def test_run_countdown_reports_progress_then_success_then_end(browser, service):
    """Guards run(): every change reaches onProgress with exactly the four
    fields, progress never goes back, the last one is done at 1.0; then
    onSuccess with the result, then onEnd, once each, and nothing else."""
    blank_page(browser, service)
    events = start(browser, 'window.h = tt.run("countdown", [4, 0.3], '
                            'callbacks({interval: 100}))')
    order = names(events)
    assert order[-2:] == ["success", "end"] and order.count("success") == 1
    assert set(order[:-2]) == {"progress"}, order
    progress = [value for name, value in events if name == "progress"]
    assert all(set(p) == PROGRESS_KEYS for p in progress)
    assert len(progress) >= 3, progress  # several values on the way
    fractions = [p["progress"] for p in progress]
    assert fractions == sorted(fractions)
    assert progress[-1]["status"] == "done" and progress[-1]["progress"] == 1.0
    assert progress[-1]["message"] == "4 / 4"
    assert any(p["status"] == "running" and 0 < p["progress"] < 1 for p in progress)
    assert events[-2][1] == 4
    end = events[-1][1]
    assert end["kind"] == "success" and end["result"] == 4
    task_id = browser.execute_script("return h.id")
    assert browser.execute_async_script(
        "h.taskId.then(arguments[0])") == task_id > 0
    assert jsonrpc(service.url, "countdown_result", task_id) == 4
    assert console_errors(browser) == []


def test_failing_task_reaches_on_failure_with_the_contract_code(browser, service):
    """Guards the error path: a task that raised gives onFailure with code
    -32003, data.faultcode Server.TaskFailed and the exception's text; then
    onEnd; never onSuccess or onCancel."""
    blank_page(browser, service)
    events = start(browser, 'tt.run("failingTask", ["it broke", 0.2], callbacks())')
    assert names(events)[-2:] == ["failure", "end"]
    assert "success" not in names(events) and "cancel" not in names(events)
    error = events[-2][1]
    assert error["code"] == -32003
    assert error["data"]["faultcode"] == "Server.TaskFailed"
    assert "ValueError: it broke" in error["message"]
    assert events[-1][1]["kind"] == "failure"
    assert [v for n, v in events if n == "progress"][-1]["status"] == "failed"


def test_cancel_ends_with_on_cancel(browser, service):
    """Guards cancel(): the running task is cancelled on the server, the
    helper reports status cancelled, then onCancel and onEnd once each."""
    blank_page(browser, service)
    browser.execute_script('window.h = tt.run("countdown", [100, 0.2], callbacks())')
    wait_until(lambda: browser.execute_script(
        'return events.some(e => e[0] === "progress" && e[1].status === "running")'),
        timeout=20)
    cancelled = browser.execute_async_script("h.cancel().then(arguments[0])")
    assert cancelled["status"] == "cancelled"
    events = wait_until(lambda: _ended(browser), timeout=10)
    assert names(events).count("cancel") == 1 and names(events).count("end") == 1
    assert names(events)[-2:] == ["cancel", "end"]
    assert [v for n, v in events if n == "progress"][-1]["status"] == "cancelled"
    task_id = browser.execute_script("return h.id")
    assert jsonrpc(service.url, "countdown_progress", task_id)["status"] == "cancelled"


def test_attach_follows_a_task_started_elsewhere(browser, service):
    """Guards attach(): a task started over JSON-RPC from Python is followed
    to its result by id."""
    task_id = jsonrpc(service.url, "cloneInstance", "vm-1", "copy")["task_id"]
    blank_page(browser, service)
    events = start(browser, 'tt.attach("cloneInstance", %d, callbacks())' % task_id)
    assert names(events)[-2:] == ["success", "end"]
    assert events[-2][1] == {"instance_id": "vm-1-clone", "name": "copy",
                             "state": "running",
                             "disk_images": ["copy-disk0.qcow2", "copy-disk1.qcow2"]}


def test_submit_errors_reach_on_failure(browser, service):
    """Guards submit errors: an unknown method (-32601) and bad params
    (-32602) end at once with onFailure then onEnd, no progress."""
    blank_page(browser, service)
    events = start(browser, 'tt.run("noSuchTask", [], callbacks())')
    assert names(events) == ["failure", "end"]
    assert events[0][1]["code"] == -32601
    browser.execute_script("events.length = 0")
    events = start(browser, 'tt.run("countdown", ["many", 0.1], callbacks())')
    assert names(events) == ["failure", "end"] and events[0][1]["code"] == -32602
    browser.execute_script("events.length = 0")
    events = start(browser, 'tt.attach("countdown", 12345, callbacks())')
    assert names(events) == ["failure", "end"]
    assert events[0][1]["code"] == -32001
    assert events[0][1]["data"]["faultcode"] == "Client.TaskNotFound"


def test_network_errors_are_retried_then_given_up(browser, service):
    """Guards the bound on retries: with the endpoint unreachable, the helper
    retries ``retries`` times with a growing pause, then gives up with one
    onFailure (a NetworkError, code null) and one onEnd."""
    blank_page(browser, service)
    browser.execute_script("""
        window.calls = 0;
        const realFetch = window.fetch;
        window.fetch = (...args) => { calls++; return Promise.reject(new TypeError("down")); };
    """)
    events = start(browser, 'tt.attach("countdown", 1, callbacks({interval: 20, retries: 3}))')
    assert names(events) == ["failure", "end"]
    assert events[0][1]["name"] == "NetworkError" and events[0][1]["code"] is None
    assert browser.execute_script("return calls") == 4  # the first try and 3 retries


def test_requests_are_no_more_than_one_per_interval(browser, service):
    """Guards the cost of following: a task of about 2 s followed with a
    0.5 s interval takes at most about one request per interval (m_wait
    holds each for the interval), however fast the server answers."""
    blank_page(browser, service)
    browser.execute_script("""
        window.calls = 0;
        window.urls = [];
        const realFetch = window.fetch;
        window.fetch = (...args) => {
            calls++;
            urls.push([performance.now(), String(args[1] && args[1].body)]);
            window.first = window.first || performance.now();
            window.last = performance.now();
            return realFetch(...args);
        };
    """)
    events = start(browser, 'tt.run("countdown", [10, 0.2], callbacks({interval: 500}))')
    assert names(events)[-1] == "end"
    duration = [v for n, v in events if n == "progress"][-1]["duration"]
    assert duration >= 1.9  # the task ran its 2 s: the page followed it that long
    calls, elapsed, urls = browser.execute_script(
        "return [calls, (window.last - window.first) / 1000, urls]")
    # submit + result + one wait per interval (+1 for the last partial
    # one), over the time the page was following: a busy machine that
    # leaves the task queued a while makes more intervals, not more per
    # interval
    assert calls <= 2 + elapsed / 0.5 + 2, (calls, elapsed, duration, urls)


def test_es_module_import(browser, service):
    """Guards the ES module form: ``import("/static/tasktypes.mjs")`` gives
    the same helper, which finds /jsonrpc next to itself."""
    blank_page(browser, service, how="module")
    events = start(browser, 'tt.run("countdown", [1, 0.01], callbacks())')
    assert names(events)[-2:] == ["success", "end"] and events[-2][1] == 1
    assert json.loads(json.dumps(browser.execute_script(
        "return typeof tt.attach + typeof tt.call"))) == "functionfunction"


def test_on_log_gets_each_line_once_in_order(browser, service):
    """Guards onLog: the task's log lines arrive (a batch of m_wait and
    m_log per round), each exactly once, in order, before onEnd."""
    blank_page(browser, service)
    events = start(browser, 'window.h = tt.run("cloneInstance", ["vm-3", "c"], '
                            'callbacks({onLog: record("log"), interval: 100}))')
    lines = [line for name, value in events if name == "log" for line in value]
    task_id = browser.execute_script("return h.id")
    assert [line["seq"] for line in lines] == [1, 2, 3, 4]
    assert lines[0]["message"] == "cloneInstance %d: snapshot" % task_id
    assert set(lines[0]) == {"seq", "time", "level", "message"}
    assert names(events)[-2:] == ["success", "end"]


def test_a_throwing_callback_does_not_stop_the_follow(browser, service):
    """Guards callback isolation: an onProgress that throws is reported on
    the console, and the task is still followed to onSuccess and onEnd."""
    blank_page(browser, service)
    events = start(browser, 'tt.run("countdown", [2, 0.1], callbacks({'
                            'onProgress: p => { throw new Error("callback bug"); }}))')
    assert names(events)[-2:] == ["success", "end"]
    assert any("callback bug" in e for e in console_errors(browser))
