"""What only the thread store does: threads that cannot be killed, a queue in
memory, results checked against their declared type in the worker."""

import time

import pytest
from spyne import Double, Integer, ServiceBase, Unicode

from tasktypes import ThreadStore, make_application, task_rpc
from tasktypes.devserver import BackgroundServer

from conftest import JsonRpcError, jsonrpc, soap_fault, soap_service, wait_until


class Awkward(ServiceBase):
    @task_rpc(Integer, _returns=Integer)
    def swallower(ctx, steps, update_progress):
        """Catches every Exception, as careless bodies do."""
        done = 0
        for _ in range(steps):
            try:
                time.sleep(0.02)
                update_progress(0.5)
                done += 1
            except Exception:
                pass
        return done

    @task_rpc(Unicode, _returns=Integer)
    def exits(ctx, how, update_progress):
        raise SystemExit(how)

    @task_rpc(_returns=Integer)
    def wrongType(ctx, update_progress):
        return "not a number"

    @task_rpc(Integer, _returns=Integer)
    def silent(ctx, seconds, update_progress):
        """Never reports progress."""
        time.sleep(seconds)
        return seconds

    @task_rpc(Double, _returns=Integer, _time_limit=0.5)
    def silentLimited(ctx, seconds, update_progress):
        """Never reports progress, and has a time limit."""
        time.sleep(seconds)
        return 1


@pytest.fixture
def served():
    store = ThreadStore(workers=1, max_queued=2)
    app = make_application([Awkward], store=store, max_wait=1)
    with BackgroundServer(app) as url:
        yield url, store
    store.close()


def test_cancel_stops_a_body_that_catches_exception(served):
    url, store = served
    soap = soap_service(url)
    task_id = soap.swallower(1000)
    wait_until(lambda: soap.swallower_progress(task_id).progress > 0)
    assert soap.swallower_cancel(task_id).status == "cancelled"
    # the body stopped, so the single worker is free again for the next task
    other = soap.silent(0)
    assert soap.silent_wait(other, 1).status in ("running", "done")
    wait_until(lambda: soap.silent_progress(other).status == "done", 5)


def test_a_body_that_never_reports_runs_on_and_its_result_is_discarded(served):
    """Guards the README's warning: a cancelled thread-store body that never
    calls update_progress holds its (only) worker until it returns, and what
    it returns is discarded: the task stays cancelled."""
    url, _ = served
    soap = soap_service(url)
    task_id = soap.silent(1)
    wait_until(lambda: soap.silent_progress(task_id).status == "running")
    assert soap.silent_cancel(task_id).status == "cancelled"
    follower = soap.silent(0)
    assert soap.silent_progress(follower).status == "queued"  # the worker is held
    # the body returns after its second, and only then the follower runs
    wait_until(lambda: soap.silent_progress(follower).status == "done", 5)
    assert soap.silent_progress(task_id).status == "cancelled"
    assert soap_fault(soap.silent_result, task_id) == "Client.TaskCancelled"


def test_time_limit_fails_a_silent_body_at_the_limit(served):
    """Guards: the thread store's time limit is a timer, not a check in
    update_progress: a body that never reports is failed at its limit (0.5 s)
    while it still sleeps (it holds its worker until it returns)."""
    url, _ = served
    soap = soap_service(url)
    task_id = soap.silentLimited(3)
    state = soap.silentLimited_wait(task_id, 1)  # max_wait of this app: 1 s
    assert state.status == "failed", state
    assert state.message == "time limit of 0.5 s exceeded"
    assert state.duration < 1.0
    assert soap_fault(soap.silentLimited_result, task_id) == "Server.TaskTimedOut"
    follower = soap.silent(0)
    assert soap.silent_progress(follower).status == "queued"  # the body still runs
    wait_until(lambda: soap.silent_progress(follower).status == "done", 5)


def test_system_exit_in_a_body_fails_the_task_and_the_worker_lives(served):
    url, _ = served
    soap = soap_service(url)
    task_id = soap.exits("bye")
    state = soap.exits_wait(task_id, 1)
    assert state.status == "failed" and state.message == "SystemExit: bye"
    task_id = soap.silent(0)  # the only worker still runs tasks
    assert soap.silent_wait(task_id, 1).status == "done"


def test_a_result_of_the_wrong_type_fails_the_task(served):
    url, _ = served
    soap = soap_service(url)
    task_id = soap.wrongType()
    state = soap.wrongType_wait(task_id, 1)
    assert state.status == "failed"
    assert state.message.startswith("the result cannot be stored")
    assert soap_fault(soap.wrongType_result, task_id) == "Server.TaskFailed"


def test_cancelled_queued_tasks_free_their_place_in_the_queue(served):
    url, _ = served
    soap = soap_service(url)
    running = soap.silent(1)
    wait_until(lambda: soap.silent_progress(running).status == "running")
    queued = [soap.silent(0), soap.silent(0)]
    assert soap_fault(soap.silent, 0) == "Server.Busy"
    with pytest.raises(JsonRpcError) as info:
        jsonrpc(url, "silent", 0)
    assert info.value.code == -32011 and info.value.data["faultcode"] == "Server.Busy"
    for task_id in queued:
        assert soap.silent_cancel(task_id).status == "cancelled"
    assert soap.silent_wait(soap.silent(0), 1).status in ("queued", "running", "done")


def test_max_wait_bounds_a_whole_batch_of_waits(served):
    import requests
    url, _ = served
    task_id = jsonrpc(url, "silent", 3)["task_id"]
    batch = [{"jsonrpc": "2.0", "method": "silent_wait", "params": [task_id, 1], "id": i}
             for i in range(4)]
    started = time.monotonic()
    replies = requests.post(url + "/jsonrpc", json=batch, timeout=30).json()
    assert len(replies) == 4 and all(r["result"]["status"] == "running" for r in replies)
    assert time.monotonic() - started < 3  # one MAX_WAIT (1 s), not four
    with pytest.raises(JsonRpcError) as info:
        jsonrpc(url, "silent_result", task_id)
    assert info.value.code == -32002


def test_time_limits_fire_in_order_and_cancelled_ones_never():
    """Guards: the one thread that watches every task's time limit
    (``runner.TimeLimits``) fires each limit once, soonest first, never a
    cancelled one, and does not keep cancelled limits (a 1 h limit of a
    task that ended in 1 ms) until their hour is up."""
    import threading

    from tasktypes.runner import TimeLimits
    limits = TimeLimits()
    fired = []
    done = threading.Event()
    try:
        limits.watch(0.3, fired.append, ("late",))
        limits.watch(0.05, fired.append, ("early",))
        limits.cancel(limits.watch(0.1, fired.append, ("cancelled",)))
        limits.watch(0.5, done.set, ())
        assert done.wait(10)
        assert fired == ["early", "late"]
        for _ in range(10_000):
            limits.cancel(limits.watch(3600, fired.append, ("never",)))
        assert len(limits._heap) < 200
    finally:
        limits.close()


@pytest.mark.parametrize("value", [0, 1, -1, 5, 2 ** 31, -(2 ** 63), 10 ** 40, True, 2.5, "5"])
def test_int_results_fit_as_their_round_trip_does(value):
    """Guards the shortcut for plain int results (no spyne round trip): the
    document and the value read back are the round trip's, and so is
    ResultTooLarge at the same size."""
    from spyne import Boolean, Integer, Integer32, Unicode

    from tasktypes.documents import ResultTooLarge, _round_trip, decode_result, encode_result

    for returns in (Integer, Integer32, Unicode, Boolean, None):
        try:
            doc, expected = _round_trip(returns, value, None)
        except Exception as exc:
            with pytest.raises(type(exc)):
                encode_result(returns, value)
            continue
        got_doc = encode_result(returns, value)
        got = decode_result(returns, got_doc)
        assert got_doc == doc and (type(got), got) == (type(expected), expected)
        assert encode_result(returns, value, len(doc)) == doc
        if returns is not None:  # None: no document is kept
            with pytest.raises(ResultTooLarge):
                encode_result(returns, value, len(doc) - 1)
