"""tasktypes.client against ``python wsgi.py`` over HTTP, with each store: a
task followed to its result, a failing one, a cancelled one, unknown ids,
the exception classes, retries for reads and starts and none for plain
calls, and a server that goes away in the middle of a wait."""

import os
import signal
import threading

import pytest
import requests

from tasktypes import client as tc
from tasktypes.client import (Busy, InvalidParams, MethodNotFound, ServerUnreachable,
                              ServiceFault, StoreUnavailable, TaskCancelled, TaskClient,
                              TaskFailed, TaskNotFinished, TaskNotFound, TaskTimedOut,
                              WaitTimeout)
from tasktypes.errors import jsonrpc_rows

from conftest import ServiceProcess


def _env(store, redis_server):
    if store == "thread":
        return {}
    if redis_server.proc is None:
        redis_server.start()
    return {"TASKTYPES_STORE": "redis", "TASKTYPES_REDIS_URL": redis_server.url}


@pytest.fixture(scope="module", params=["thread", "redis"])
def server(request):
    """One ``python wsgi.py`` per store for the module (tasks of one test
    never touch another's)."""
    redis_server = request.getfixturevalue("redis_server") \
        if request.param == "redis" else None
    proc = ServiceProcess(_env(request.param, redis_server))
    proc.store = request.param
    yield proc
    proc.stop()
    if redis_server is not None:
        redis_server.flush()


@pytest.fixture
def client(server):
    with TaskClient(server.url, retries=2, backoff=0.1) as client:
        yield client


def test_a_task_followed_to_its_result(client):
    """Guards start (positional and named), wait with a progress callback
    (polls) and without (m_wait), progress and result."""
    task = client.start("countdown", 4, 0.25)
    assert isinstance(task.task_id, int)
    seen = []
    final = task.wait(timeout=30, on_progress=seen.append)
    assert final.status == "done" and final.progress == 1.0 and final.message == "4 / 4"
    assert seen[-1] is final and len(seen) >= 2
    assert [p.progress for p in seen] == sorted(p.progress for p in seen)
    assert task.result() == 4
    assert task.progress().status == "done"

    named = client.start("countdown", steps=2, delay=0.05)
    assert named.wait(timeout=30).status == "done"
    assert named.result() == 2
    clone = client.start("cloneInstance", instance_id="vm-1", new_instance_name="copy")
    clone.wait(timeout=30)
    assert clone.result() == {"instance_id": "vm-1-clone", "name": "copy",
                              "state": "running",
                              "disk_images": ["copy-disk0.qcow2", "copy-disk1.qcow2"]}
    attached = client.task("countdown", task.task_id)
    assert attached.result() == 4


def test_plain_calls_and_protocol_errors(client):
    """Guards call() for plain methods and the protocol error classes."""
    assert client.call("echo", "x") == "x"
    assert client.call("echo", text="y") == "y"
    with pytest.raises(MethodNotFound) as info:
        client.call("no_such_method")
    assert info.value.code == -32601
    with pytest.raises(InvalidParams) as info:
        client.start("countdown", "three", 0.1)
    assert info.value.code == -32602 and "steps" in info.value.message
    with pytest.raises(TypeError):
        client.start("countdown", 3, delay=0.1)


def test_a_failing_task(client):
    """Guards TaskFailed with its code, faultcode, status, progress, data."""
    task = client.start("failingTask", "boom", 0.05)
    assert task.wait(timeout=30).status == "failed"
    with pytest.raises(TaskFailed) as info:
        task.result()
    error = info.value
    assert error.code == -32003 and error.faultcode == "Server.TaskFailed"
    assert error.status == "failed" and error.progress == 0.0
    assert error.data["faultcode"] == "Server.TaskFailed"
    assert "ValueError: boom" in str(error)


def test_a_cancelled_task(client):
    """Guards cancel(), then wait() and result() of a cancelled task."""
    task = client.start("countdown", 200, 0.05)
    assert task.cancel().status == "cancelled"
    assert task.wait(timeout=30).status == "cancelled"
    with pytest.raises(TaskCancelled) as info:
        task.result()
    assert info.value.code == -32004 and info.value.status == "cancelled"


def test_unfinished_and_unknown_tasks(client):
    """Guards TaskNotFinished, TaskNotFound and WaitTimeout (the task goes on)."""
    task = client.start("countdown", 200, 0.05)
    with pytest.raises(TaskNotFinished) as info:
        task.result()
    assert info.value.status in ("queued", "running")
    with pytest.raises(WaitTimeout) as info:
        task.wait(timeout=0.3)
    assert info.value.progress.status in ("queued", "running")
    task.cancel()
    for call in ("progress", "result", "cancel"):
        with pytest.raises(TaskNotFound) as info:
            getattr(client.task("countdown", 4242), call)()
        assert info.value.code == -32001 and info.value.faultcode == "Client.TaskNotFound"
    with pytest.raises(TaskNotFound):
        client.task("failingTask", task.task_id).progress()  # another method's id


def test_the_exception_classes_follow_the_contract_table():
    """Guards that each faultcode of tasktypes.errors has its client class
    with the same code, and that replies map to them."""
    for server_cls, (faultcode, code) in jsonrpc_rows().items():
        cls = getattr(tc, server_cls.__name__)
        assert issubclass(cls, (ServiceFault, tc.ProtocolError))
        assert (cls.faultcode, cls.code) == (faultcode, code)
        error = tc.error_from_reply({"code": code, "message": "m",
                                     "data": {"faultcode": faultcode, "status": "running",
                                              "progress": 0.5}})
        assert type(error) is cls and error.status == "running" and error.progress == 0.5
    assert {TaskTimedOut, StoreUnavailable, Busy} <= set(tc._FAULTS.values())
    other = tc.error_from_reply({"code": -32000, "message": "m",
                                 "data": {"faultcode": "Client.Mine"}})
    assert type(other) is ServiceFault and other.faultcode == "Client.Mine"


def test_requests_are_json(client):
    """Guards Content-Type: application/json on every request (the server
    is to refuse other types)."""
    sent = []
    client.session.hooks["response"].append(
        lambda response, **kw: sent.append(response.request.headers["Content-Type"]))
    client.call("echo", "x")
    with pytest.raises(TaskNotFound):
        client.task("countdown", 4242).progress()
    assert sent == ["application/json", "application/json"]


def test_reads_are_retried_plain_calls_never(request):
    """Guards the retry rule: a read waits for a server that comes back on
    its port; a plain call to a server that is down fails at once (a start,
    which carries an Idempotency-Key, is retried: test_idempotency)."""
    proc = ServiceProcess()
    request.addfinalizer(lambda: proc.stop())
    port = proc.port
    proc.stop()
    attempts = []

    class CountingSession(requests.Session):
        def send(self, prepared, **kwargs):
            attempts.append(prepared.url)
            return super().send(prepared, **kwargs)

    with TaskClient(proc.url, retries=3, backoff=0.01, session=CountingSession()) as client:
        with pytest.raises(ServerUnreachable) as info:
            client.call("echo", "not retried")
        assert len(attempts) == 1  # no retry
        assert "connection refused" in str(info.value)
        with pytest.raises(ServerUnreachable):
            client.task("countdown", 4242).progress()
        assert len(attempts) == 1 + 4  # a read: the first try and 3 retries

    back = []
    restart = threading.Timer(0.5, lambda: back.append(ServiceProcess(port=port)))
    restart.start()
    request.addfinalizer(lambda: [p.stop() for p in back])
    with TaskClient(proc.url, retries=6, backoff=0.3) as client:
        with pytest.raises(TaskNotFound):  # answered by the new server
            client.task("countdown", 4242).progress()
    restart.join()


@pytest.mark.parametrize("store", ["thread", "redis"])
@pytest.mark.parametrize("follow", ["polling", "m_wait"])
def test_a_server_that_goes_away_mid_wait(request, store, follow):
    """Guards: a wait whose server dies ends with ServerUnreachable and a
    plain message, not a hang or a traceback from the HTTP layer."""
    redis_server = request.getfixturevalue("redis_server") if store == "redis" else None
    proc = ServiceProcess(_env(store, redis_server))
    request.addfinalizer(proc.stop)
    with TaskClient(proc.url, retries=2, backoff=0.1) as client:
        task = client.start("countdown", 600, 0.05)
        # SIGKILL to its process group: the server and its task processes
        # vanish at once, as in a crash
        stopper = threading.Timer(0.5, os.killpg, (proc.pid, signal.SIGKILL))
        stopper.start()
        with pytest.raises(ServerUnreachable) as info:
            if follow == "polling":
                task.wait(timeout=60, on_progress=lambda p: None)
            else:
                task.wait(timeout=60)
        stopper.join()
    assert str(info.value).startswith("cannot reach %s/jsonrpc" % proc.url)
    if redis_server is not None:
        redis_server.flush()
