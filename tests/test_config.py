"""Settings from the environment, and ``python wsgi.py`` as users run it."""

import os
import subprocess
import sys

import time

import pytest
import requests
import zeep
import zeep.exceptions
from spyne import Integer, ServiceBase

from tasktypes import task_rpc
from tasktypes.config import ConfigError, Settings

from conftest import ROOT, wait_until


def test_defaults_are_the_contracts():
    s = Settings.from_environ({})
    assert (s.store, s.redis_url, s.result_ttl, s.max_body, s.workers, s.public_url,
            s.max_wait) == ("thread", "redis://127.0.0.1:6379/0", 3600, 10485760, 8,
                            None, 30)


@pytest.mark.parametrize("name,value", [
    ("TASKTYPES_STORE", "memcached"),
    ("TASKTYPES_REDIS_URL", "http://localhost"),
    ("TASKTYPES_RESULT_TTL", "-5"),
    ("TASKTYPES_MAX_BODY", "ten"),
    ("TASKTYPES_WORKERS", "0"),
    ("TASKTYPES_WORKERS", "2.5"),
    ("TASKTYPES_PUBLIC_URL", "example.com"),
    ("TASKTYPES_MAX_WAIT", "nan"),
])
def test_a_bad_value_names_the_variable(name, value):
    with pytest.raises(ConfigError) as info:
        Settings.from_environ({name: value})
    assert name in str(info.value)


def test_any_redis_py_url_is_accepted():
    for url in ("redis://:secret@10.0.0.1:6380/3", "rediss://h/0", "unix:///run/redis.sock?db=2"):
        assert Settings.from_environ({"TASKTYPES_REDIS_URL": url}).redis_url == url


def test_python_wsgi_py_refuses_a_bad_setting_at_start_up():
    env = dict(os.environ, TASKTYPES_WORKERS="lots")  # conftest removed the caller's
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "wsgi.py"), "--port", "1"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "TASKTYPES_WORKERS" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_python_wsgi_py_serves_soap_and_jsonrpc(service_process):
    server = service_process()
    client = zeep.Client(server.url + "/soap?wsdl")
    assert client.service.echo("hi") == "hi"
    task_id = client.service.countdown(2, 0.05)
    assert client.service.countdown_wait(task_id, 10).status == "done"
    assert client.service.countdown_result(task_id) == 2
    reply = requests.post(server.url + "/jsonrpc", json={
        "jsonrpc": "2.0", "method": "echo", "params": ["hi"], "id": 1}, timeout=10)
    assert reply.json() == {"jsonrpc": "2.0", "result": "hi", "id": 1}
    # the same task, seen through the other protocol
    reply = requests.post(server.url + "/jsonrpc", json={
        "jsonrpc": "2.0", "method": "countdown_result", "params": [task_id], "id": 2},
        timeout=10)
    assert reply.json()["result"] == 2


def test_settings_reach_the_application_through_wsgi_py(service_process):
    """Guards: TASKTYPES_MAX_BODY, TASKTYPES_RESULT_TTL and TASKTYPES_MAX_WAIT
    set in the environment of ``python wsgi.py`` are what its application
    does (not the defaults)."""
    server = service_process({"TASKTYPES_MAX_BODY": "3000", "TASKTYPES_RESULT_TTL": "1",
                              "TASKTYPES_MAX_WAIT": "0.5"})
    echo = {"jsonrpc": "2.0", "method": "echo", "params": ["x" * 2000], "id": 1}
    assert requests.post(server.url + "/jsonrpc", json=echo, timeout=10).status_code == 200
    echo["params"] = ["x" * 4000]
    assert requests.post(server.url + "/jsonrpc", json=echo, timeout=10).status_code == 413

    client = zeep.Client(server.url + "/soap?wsdl")
    long_task = client.service.countdown(100, 0.1)
    started = time.monotonic()
    assert client.service.countdown_wait(long_task, 10).status == "running"
    assert time.monotonic() - started < 5  # capped at 0.5 s, not 10
    client.service.countdown_cancel(long_task)

    task_id = client.service.countdown(0, 0)
    assert client.service.countdown_wait(task_id, 0.5).status == "done"

    def expired():
        try:
            client.service.countdown_progress(task_id)
        except zeep.exceptions.Fault as fault:
            return fault.code.endswith("Client.TaskNotFound")
    started = time.monotonic()
    wait_until(expired, 10)
    assert time.monotonic() - started < 5  # 1 s, not the default hour


@pytest.mark.parametrize("option,value", [
    ("_time_limit", 0), ("_time_limit", -1), ("_time_limit", "10"),
    ("_time_limit", float("nan")), ("_max_running", 0), ("_max_running", 1.5),
    ("_max_running", True),
])
def test_bad_limits_stop_start_up_naming_method_and_option(option, value):
    with pytest.raises(ValueError) as info:
        class Bad(ServiceBase):
            @task_rpc(Integer, _returns=Integer, **{option: value})
            def crunch(ctx, n, update_progress):
                return n
    assert "crunch" in str(info.value) and option in str(info.value)
