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


def _old_arguments_text(task_type, args):
    """``store.arguments_text`` as it was before plain arguments were written
    part by part (git 9697aab): the reference the new one must equal."""
    import json

    from tasktypes.limits import cut
    from tasktypes.store import MAX_ARGUMENT_CHARS, _plain
    names = list(task_type.arg_names or ())
    names += ["arg%d" % i for i in range(len(names), len(args))]
    try:
        text = json.dumps(dict(zip(names, args)), default=_plain)
    except (TypeError, ValueError, RecursionError) as exc:
        text = "(arguments not shown: %s)" % exc
    return cut(text, MAX_ARGUMENT_CHARS)


def _plain_values(rng):
    """Strs, ints, floats, bools and None, the awkward ones first, then random."""
    fixed = ["", "plain", "é ü ß", "\u2028\u2029", "\x00\x01\x1f\x7f", '"\\/\b\f\n\r\t',
             "\ud800", "\udfff x \ud83d", "\U0001F600", "\uffff", "ok\u0000end" * 3,
             0, 1, -1, 2 ** 53 + 1, -(2 ** 64), 10 ** 300, 10 ** 4299, 10 ** 5000,
             0.0, -0.0, 1.5, 1e-320, 1.7976931348623157e308, 5e-324,
             float("nan"), float("inf"), float("-inf"), 1e16, 0.1 + 0.2,
             True, False, None, "x" * 5000]
    chars = [chr(c) for c in (0, 9, 31, 34, 39, 47, 92, 127, 128, 255, 0x2028, 0xd800,
                              0xdc00, 0xfeff, 0x1F600)] + list("aZ09 <>&")
    randoms = []
    for _ in range(300):
        kind = rng.randrange(5)
        if kind == 0:
            randoms.append("".join(rng.choice(chars) for _ in range(rng.randrange(12))))
        elif kind == 1:
            randoms.append(rng.randint(-10 ** rng.randrange(40), 10 ** rng.randrange(40)))
        elif kind == 2:
            randoms.append(rng.uniform(-1e6, 1e6) * 10 ** rng.randrange(-300, 300))
        elif kind == 3:
            randoms.append(rng.choice((True, False, None)))
        else:
            import struct
            randoms.append(struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0])
    return fixed + randoms


def test_arguments_text_of_plain_arguments_is_what_json_dumps_wrote():
    """Guards the part-by-part writing of plain arguments (str, int, float,
    bool, None) in ``arguments_text``: the same text ``json.dumps`` wrote,
    NaN, infinities, -0.0, huge ints (and ints too long to write: the same
    message), lone surrogates, control characters and non-ASCII alike."""
    import random

    from tasktypes.decorator import TaskType
    from tasktypes.store import arguments_text

    rng = random.Random(14)
    values = _plain_values(rng)
    for names in [(), ("a",), ("x", "y", "z"), ("é\u2028", "\ud800", 'q"\\')]:
        tt = TaskType("m", "k:m", None, Integer, None, None, names)
        for value in values:
            for args in [(value,), (value,) * len(names), (value, 1, "two", None)]:
                assert arguments_text(tt, args) == _old_arguments_text(tt, args), (names, args)
        for _ in range(200):
            args = tuple(rng.choice(values) for _ in range(rng.randrange(len(names) + 2)))
            assert arguments_text(tt, args) == _old_arguments_text(tt, args), (names, args)


def test_arguments_text_of_other_arguments_takes_the_json_dumps_path():
    """Guards: arguments that are not plain (subclasses of int and str
    included) still go through ``json.dumps`` with ``_plain``: lists, dicts,
    sets, ComplexModels, dates, enums, self-containing lists."""
    import datetime
    import decimal
    import enum

    from spyne import ComplexModel as Model

    from tasktypes.decorator import TaskType
    from tasktypes.store import arguments_text

    class Flag(enum.IntEnum):
        ON = 1

    class Name(str):
        pass

    class Pair(Model):
        __namespace__ = "test.args"
        a = Integer
        b = Unicode

    looped = []
    looped.append(looped)
    tt = TaskType("m", "k:m", None, Integer, None, None, ("a", "b"))
    for value in [[1, "x", None], {"k": [1.5, float("nan")]}, {1, 2}, (1, "t"),
                  Pair(a=1, b="é"), datetime.date(2020, 1, 2), decimal.Decimal("1.10"),
                  Flag.ON, Name("sub"), looped, object(), b"bytes", 1j]:
        for args in [(value,), ("plain", value), (value, 1, 2)]:
            expected = _old_arguments_text(tt, args)
            assert arguments_text(tt, args) == expected, args
    assert arguments_text(tt, (Flag.ON,)) == '{"a": 1}'
