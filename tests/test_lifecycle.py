"""Cancel, wait, time limits and per-method limits, over SOAP and JSON-RPC,
against ``python wsgi.py`` with each store."""

import time

import pytest

from conftest import (JsonRpcError, jsonrpc, soap_fault, soap_service, task_server_pid,
                      wait_until)


@pytest.fixture(params=["thread", "redis"])
def server(request, service_process):
    """``python wsgi.py`` on each store. The Redis one proves it keeps its
    tasks in the test's private Redis (a thread-store server would leave no
    record there, so the test could not pass on the wrong store)."""
    env = {"TASKTYPES_MAX_WAIT": "20"}
    if request.param == "redis":
        redis_url = request.getfixturevalue("redis_url")
        env.update(TASKTYPES_STORE="redis", TASKTYPES_REDIS_URL=redis_url)
    server = service_process(env)
    if request.param == "redis":
        task_id = jsonrpc(server.url, "countdown", 0, 0)["task_id"]
        assert task_server_pid(redis_url, task_id) == server.pid
    return server


@pytest.fixture
def soap(server):
    return soap_service(server.url)


def test_cancel_a_running_task(soap, server):
    task_id = soap.countdown(100, 0.05)
    wait_until(lambda: soap.countdown_progress(task_id).progress > 0)
    state = soap.countdown_cancel(task_id)
    assert state.status == "cancelled"
    assert soap_fault(soap.countdown_result, task_id) == "Client.TaskCancelled"
    # stays cancelled; cancelling twice is harmless
    time.sleep(0.3)
    again = soap.countdown_cancel(task_id)
    assert again.status == "cancelled" and again.duration == state.duration
    with pytest.raises(JsonRpcError) as info:
        jsonrpc(server.url, "countdown_result", task_id)
    assert info.value.code == -32004


def test_cancel_a_queued_task_it_never_runs(soap):
    blockers = [soap.slowTask(2.5), soap.slowTask(2.5)]  # _max_running=2
    wait_until(lambda: all(soap.slowTask_progress(t).status == "running" for t in blockers))
    queued = soap.slowTask(0.1)
    assert soap.slowTask_progress(queued).status == "queued"
    assert soap.slowTask_cancel(queued).status == "cancelled"
    for task_id in blockers:
        assert soap.slowTask_wait(task_id, 10).status == "done"
    state = soap.slowTask_progress(queued)
    assert state.status == "cancelled" and state.starttime == 0


def test_cancel_finished_and_unknown(soap, server):
    task_id = soap.countdown(0, 0)
    assert soap.countdown_wait(task_id, 10).status == "done"
    assert soap.countdown_cancel(task_id).status == "done"
    assert soap.countdown_result(task_id) == 0
    assert soap_fault(soap.countdown_cancel, 4242) == "Client.TaskNotFound"
    with pytest.raises(JsonRpcError) as info:
        jsonrpc(server.url, "countdown_cancel", 4242)
    assert info.value.code == -32001


def test_wait_returns_soon_after_the_end_not_at_the_timeout(soap, server):
    task_id = soap.countdown(4, 0.1)
    started = time.monotonic()
    state = soap.countdown_wait(task_id, 15)
    elapsed = time.monotonic() - started
    assert state.status == "done" and state.progress == 1.0
    assert elapsed < 5, elapsed
    task_id = jsonrpc(server.url, "countdown", 4, 0.1)["task_id"]
    assert jsonrpc(server.url, "countdown_wait", task_id, 15)["status"] == "done"


def test_wait_times_out_on_a_long_task(soap):
    task_id = soap.countdown(100, 0.1)
    started = time.monotonic()
    state = soap.countdown_wait(task_id, 0.5)
    assert state.status == "running"
    assert 0.4 < time.monotonic() - started < 5
    assert soap.countdown_wait(task_id, 0).status == "running"  # a plain read
    soap.countdown_cancel(task_id)


def test_wait_rejects_negative_and_nan(soap, server):
    task_id = soap.countdown(0, 0)
    assert soap_fault(soap.countdown_wait, task_id, -1).startswith("Client")
    for bad in (-1, "NaN", "soon"):
        with pytest.raises(JsonRpcError) as info:
            jsonrpc(server.url, "countdown_wait", task_id, bad)
        assert info.value.code == -32602, bad


def test_time_limit(soap, server):
    task_id = soap.slowTask(10)
    started = time.monotonic()
    state = soap.slowTask_wait(task_id, 15)
    assert state.status == "failed"
    assert state.message == "time limit of 3 s exceeded"
    assert time.monotonic() - started < 5
    assert soap_fault(soap.slowTask_result, task_id) == "Server.TaskTimedOut"
    with pytest.raises(JsonRpcError) as info:
        jsonrpc(server.url, "slowTask_result", task_id)
    assert info.value.code == -32005


def max_overlap(states):
    """The most tasks that ran at one moment, from their start and end times
    (an exact count, unlike sequential polls of several tasks)."""
    events = sorted([(s.starttime, 1) for s in states] +
                    [(s.starttime + s.duration, -1) for s in states])
    most = running = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def test_max_running_two_of_six(soap):
    tasks = [soap.slowTask(1) for _ in range(6)]
    states = [soap.slowTask_wait(t, 20) for t in tasks]
    assert [s.status for s in states] == ["done"] * 6
    assert max_overlap(states) == 2


def test_a_failed_task_traceback_reaches_the_server_log_not_the_client(soap, server):
    """Guards: the traceback of a task that raised goes to the server's log
    (from the worker thread, or from the worker process through its pipe),
    and the client sees only the exception's type and message."""
    task_id = soap.failingTask("broken on purpose 7f3a", 0)
    assert soap.failingTask_wait(task_id, 10).status == "failed"
    with pytest.raises(Exception) as info:
        soap.failingTask_result(task_id)
    assert info.value.message == "ValueError: broken on purpose 7f3a"
    assert "Traceback" not in str(info.value)
    with pytest.raises(JsonRpcError) as info:
        jsonrpc(server.url, "failingTask_result", task_id)
    assert "Traceback" not in str(info.value) and "Traceback" not in repr(info.value.data)

    def logged():
        log = server.read_log()
        at = log.find("Traceback")
        return at >= 0 and "ValueError: broken on purpose 7f3a" in log[at:]
    wait_until(logged, 10)
