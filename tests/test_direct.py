"""The control methods answered without spyne's per-call context
(``tasktypes.direct``) answer byte for byte what spyne's own pipeline
answers, for good calls and bad ones, singly and in batches, on both
stores. Each request goes to two WSGI apps over the same spyne application
and store: the one ``make_application`` builds, with direct methods, and one
without them."""

import io
import json
import re

import pytest
from spyne import Double, Fault, Integer, ServiceBase

from service import services
from tasktypes import make_application, task_rpc
from tasktypes.jsonrpc import NOT_DIRECT, JsonRpcApplication
from tasktypes.store import ThreadStore

from conftest import wait_until
from fixtures import ODD_JSON_VALUES, OddTypes


@pytest.fixture
def apps(make_store):
    store = make_store()
    application = make_application(services, store=store)
    direct = application.mounts["/jsonrpc"]
    assert direct.direct_methods, "make_application gave no direct methods"
    plain = JsonRpcApplication(direct.app, max_batch=direct.max_batch,
                               system_methods=direct.system_methods)
    return direct, plain


def call(app, body):
    body = body if isinstance(body, bytes) else json.dumps(body).encode()
    environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/json",
               "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
               "PATH_INFO": "/jsonrpc", "SERVER_NAME": "x", "SERVER_PORT": "1",
               "wsgi.url_scheme": "http", "QUERY_STRING": ""}
    status = []
    reply = b"".join(app(environ, lambda s, h, e=None: status.append(s)))
    return status[0], reply


def rpc(method, params, id=1):
    request = {"jsonrpc": "2.0", "method": method, "id": id}
    if params is not None:
        request["params"] = params
    return request


def finished(app, method, params):
    task_id = json.loads(call(app, rpc(method, params))[1])["result"]["task_id"]
    # one read per check: two (one "not running", the next "not queued")
    # passed for a task that went from queued to running between them
    wait_until(lambda: json.loads(call(app, rpc(method + "_progress", [task_id]))[1])
               ["result"]["status"] not in ("queued", "running"))
    return task_id


def test_good_calls_answer_the_same_bytes(apps):
    """Guards: progress, result (a plain and a complex one), cancel, wait and
    log of finished tasks, by position and by name, are the same reply."""
    direct, plain = apps
    count = finished(direct, "countdown", [2, 0.01])
    clone = finished(direct, "cloneInstance", ["vm", "copy"])
    failed = finished(direct, "failingTask", ["no", 0])
    requests = [
        rpc("countdown_progress", [count]), rpc("countdown_progress", {"task_id": count}),
        rpc("countdown_result", [count], id="r"), rpc("cloneInstance_result", [clone]),
        rpc("cloneInstance_log", [clone, 0]), rpc("cloneInstance_log", {"task_id": clone,
                                                                         "after": 2}),
        rpc("countdown_cancel", [count]), rpc("countdown_wait", [count, 5]),
        rpc("countdown_wait", {"task_id": count, "timeout": 0}),
        rpc("failingTask_result", [failed]), rpc("failingTask_progress", [failed], id=None),
        rpc("countdown_progress", [12345]),
    ]
    for request in requests:
        assert call(direct, request) == call(plain, request), request
        # and answered directly, so that the comparison is not spyne against
        # spyne (the JSON-RPC server's own event listener once made every
        # call step aside)
        try:
            answer = direct.direct_methods[request["method"]](request["params"], {})
        except Fault:  # a direct answer may be a fault, written by the server
            answer = None
        assert answer is not NOT_DIRECT, request
    assert call(direct, requests) == call(plain, requests)  # one batch
    notification = dict(requests[0])
    del notification["id"]
    assert call(direct, notification) == call(plain, notification) == ("204 No Content", b"")


@pytest.fixture
def finished_poll():
    """``(direct, plain, state, request)``: both JSON-RPC paths of one
    thread-store application, the stored state of a finished countdown (a
    test sets its fields) and the request that polls it."""
    store = ThreadStore(workers=1)
    try:
        application = make_application(services, store=store)
        direct = application.mounts["/jsonrpc"]
        plain = JsonRpcApplication(direct.app, max_batch=direct.max_batch,
                                   system_methods=direct.system_methods)
        task_id = finished(direct, "countdown", [0, 0])
        yield direct, plain, store._tasks[task_id], rpc("countdown_progress", [task_id])
    finally:
        store.close()


@pytest.mark.parametrize("fields", [
    {"message": 'a "quote", a \\ and 100% of \u00e9\u4e2d\x01\n'},
    {"message": "\ud800"},  # a lone surrogate: escaped as ASCII
    {"message": None}, {"progress": 1}, {"progress": True}, {"progress": float("nan")},
    {"starttime": float("inf")}, {"task_id": True},
    # floats whose texts the writer remembers (tasktypes.float_text)
    {"progress": -0.0}, {"progress": 0.1 + 0.2}, {"starttime": 5e-324},
    {"endtime": 1.7976931348623157e308, "starttime": 1796632276.4512305},
])
def test_odd_fields_of_a_progress_answer_the_same_bytes(finished_poll, fields):
    """Guards: a poll's response is written from a template where its
    fields are what the template takes (tasktypes.jsonrpc_results); any
    other value (None, an int or a bool for a float, NaN) is written as
    spyne's path writes it, escapes and errors included."""
    direct, plain, state, request = finished_poll
    assert call(direct, request) == call(plain, request)
    for name, value in fields.items():
        setattr(state, name, value)
    assert call(direct, request) == call(plain, request)
    assert call(direct, request) == call(plain, request)  # a remembered text


def test_signed_zero_progress_polls_answer_the_same_bytes(finished_poll):
    """Guards: 0.0 and -0.0 are equal keys with different texts; polls that
    alternate them answer what spyne's path answers each time."""
    direct, plain, state, request = finished_poll
    for value in (0.0, -0.0, 0.0, -0.0):
        state.progress = state.starttime = value
        answer = call(direct, request)
        assert answer == call(plain, request)
        assert ('"progress":%r' % value).encode() in answer[1]


@pytest.mark.parametrize("params", [
    ["x"], [1.0], [True], [None], [], [1, 2], {"task": 1}, {"task_id": 1, "x": 2},
    [2 ** 70], [-(2 ** 64)], "nope", None, [{"task_id": 1}],
])
def test_bad_params_answer_the_same_bytes(apps, params):
    """Guards: whatever is not plainly what the method takes goes through
    spyne, so that its error (-32602 with its message, or -32600) is the
    same one."""
    direct, plain = apps
    for method in ("countdown_progress", "countdown_result", "countdown_cancel"):
        request = rpc(method, params)
        assert call(direct, request) == call(plain, request), request
    for request in (rpc("countdown_wait", [1, -1]), rpc("countdown_wait", [1, "soon"]),
                    rpc("countdown_log", [1, -1]), rpc("countdown_wait", [1, 1e400]),
                    rpc("countdown_wait", [1, 10 ** 400])):  # no float holds it
        assert call(direct, request) == call(plain, request), request
    odd_ids = {"jsonrpc": "2.0", "method": "countdown_progress", "params": [1], "id": 1.5}
    assert call(direct, odd_ids) == call(plain, odd_ids)


def test_a_crash_in_a_direct_call_is_an_internal_error(apps, make_store):
    """Guards: an exception that is no Fault (a bug, a store that breaks)
    answers -32603 with the call's id, as spyne's path does, never an
    empty HTTP 500."""
    direct, plain = apps
    store = direct.app.tasktypes_store

    def broken(*args, **kwargs):
        raise RuntimeError("the store broke")
    store.read = broken  # this store's own method, broken on purpose
    request = rpc("countdown_progress", [1], id=7)
    assert call(direct, request) == call(plain, request)
    status, reply = call(direct, request)
    assert status == "200 OK"
    assert json.loads(reply) == {"jsonrpc": "2.0", "id": 7, "error": {
        "code": -32603, "message": "Internal error",
        "data": {"faultcode": "Server.InternalError"}}}


class NotJson(ServiceBase):
    @task_rpc(Integer, _returns=Double)
    def not_a_number(ctx, n, update_progress):
        """A result JSON cannot hold (NaN): stored, but no reply can carry it."""
        return float("nan")


def test_waits_that_would_not_wait_need_no_slot(make_store):
    """Guards (both stores; direct and through spyne): with every wait slot
    taken, ``m_wait(id, 0)`` and a wait of a finished task are answered, a
    wait that would wait is Busy, an unknown id is TaskNotFound; a slot
    comes back after a wait that failed."""
    store = make_store()
    application = make_application(services, store=store, max_waiters=1)
    direct = application.mounts["/jsonrpc"]
    plain = JsonRpcApplication(direct.app, max_batch=direct.max_batch,
                               system_methods=direct.system_methods)
    slots = direct.app.tasktypes_wait_slots
    running = json.loads(call(direct, rpc("countdown", [60, 1.0]))[1])["result"]["task_id"]
    done = finished(direct, "countdown", [0, 0])

    def answer(app, task_id, timeout):
        reply = json.loads(call(app, rpc("countdown_wait", [task_id, timeout]))[1])
        return reply.get("result") or reply["error"]["data"]["faultcode"]

    try:
        assert slots.take()  # the only slot, held as a waiting call would
        for app in (direct, plain):
            assert answer(app, running, 0)["status"] == "running"
            assert answer(app, done, 5)["status"] == "done"
            assert answer(app, running, 0.5) == "Server.Busy"
            assert answer(app, 12345, 0.5) == "Client.TaskNotFound"
        slots.give_back()

        def broken(*args, **kwargs):
            raise RuntimeError("the store broke")
        store.wait = broken  # this store's own method, broken on purpose
        for app in (direct, plain):
            assert answer(app, running, 0.5) == "Server.InternalError"
            assert slots.take()  # given back
            slots.give_back()
    finally:
        call(direct, rpc("countdown_cancel", [running]))


def test_a_result_json_cannot_hold_answers_as_spyne_does(make_store):
    """Guards: a direct ``m_result`` of a NaN once raised out of the WSGI
    application (an empty HTTP 500; in a batch every reply lost); now it
    goes to spyne's path, which answers -32603 for that call only."""
    store = make_store()
    application = make_application([NotJson], store=store)
    direct = application.mounts["/jsonrpc"]
    plain = JsonRpcApplication(direct.app, max_batch=direct.max_batch,
                               system_methods=direct.system_methods)
    task_id = finished(direct, "not_a_number", [1])
    request = rpc("not_a_number_result", [task_id], id=2)
    assert call(direct, request) == call(plain, request)
    status, reply = call(direct, request)
    assert status == "200 OK" and json.loads(reply)["error"]["code"] == -32603
    batch = [request, rpc("not_a_number_progress", [task_id], id=3)]
    replies = {r["id"]: r for r in json.loads(call(direct, batch)[1])}
    assert replies[2]["error"]["code"] == -32603
    assert replies[3]["result"]["status"] == "done"


def _without_ids(reply):
    """A submit's reply with its new task's id taken out (each submit makes
    another id), and the ids it held."""
    ids = [int(i) for i in re.findall(rb'"task_id":(\d+)', reply)]
    return re.sub(rb'"task_id":\d+', b'"task_id":ID', reply), ids


@pytest.mark.parametrize("params", [[0, 0], [3, 0.25], {"steps": 1, "delay": 0},
                                    {"delay": 1e-300, "steps": 10000}])
def test_submits_answer_as_spyne_does(apps, params):
    """Guards: a submit whose params are plainly its method's (here Integer32
    and Double within their bounds) is answered directly with spyne's reply
    but for the new task's id, and its task is the task spyne's path makes:
    the same arguments, of the same types (a JSON 0 for a Double is the
    float 0.0 both ways), in the same state."""
    direct, plain = apps
    store = direct.app.tasktypes_store
    request = rpc("countdown", params, id="s")
    one, ids = _without_ids(call(direct, request)[1])
    other, other_ids = _without_ids(call(plain, request)[1])
    assert one == other == b'{"jsonrpc":"2.0","result":{"task_id":ID},"id":"s"}'
    third = direct.direct_methods["countdown"](params, {})  # not through spyne
    assert third is not NOT_DIRECT
    ids.append(third["task_id"])
    states = [store.describe(task_id)[0] for task_id in ids + other_ids]
    assert states[0].arguments == states[1].arguments == states[2].arguments
    for task_id in ids + other_ids:
        wait_until(lambda: store.read(store.describe(task_id)[1], task_id).status.is_finished)
        store.cancel(store.describe(task_id)[1], task_id)
    # the notification form: the task made, nothing answered
    notification = {"jsonrpc": "2.0", "method": "countdown", "params": [0, 0]}
    before = len(store.list_tasks(method="countdown")[0])
    assert call(direct, notification) == call(plain, notification) == ("204 No Content", b"")
    wait_until(lambda: len(store.list_tasks(method="countdown")[0]) == before + 2)


@pytest.mark.parametrize("params", [
    [1], [1, 0, 2], [-1, 0], [10001, 0], [1, 11], [1, -0.5], [1.0, 0], [True, 0],
    [1, "0"], [1, None], [None, 0], {"steps": 1}, {"steps": 1, "delay": 0, "x": 1},
    {"steps": 1, "wait": 0}, [2 ** 40, 0], "nope", [1, 10 ** 400], [10 ** 400, 0],
])
def test_bad_submits_answer_the_same_bytes(apps, params):
    """Guards: a submit whose params are not plainly the method's goes
    through spyne, so that its -32602 and message are the same one, and no
    task is made."""
    direct, plain = apps
    store = direct.app.tasktypes_store
    request = rpc("countdown", params)
    reply = call(direct, request)
    assert reply == call(plain, request), request
    assert b'"error"' in reply[1]
    assert store.list_tasks(method="countdown")[0] == []


def test_idempotent_and_refused_submits_answer_as_spyne_does(apps, make_store):
    """Guards: a direct submit reads the request's Idempotency-Key as
    spyne's path does (the same key names the same task on both, other
    arguments are the same conflict), and a full queue is the same Busy."""
    direct, plain = apps

    def keyed(app, params, key="k-1"):
        body = json.dumps(rpc("countdown", params)).encode()
        environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/json",
                   "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
                   "PATH_INFO": "/jsonrpc", "SERVER_NAME": "x", "SERVER_PORT": "1",
                   "wsgi.url_scheme": "http", "QUERY_STRING": "",
                   "HTTP_IDEMPOTENCY_KEY": key}
        return b"".join(app(environ, lambda *a: None))
    first = keyed(direct, [1, 0])
    assert keyed(plain, [1, 0]) == first == keyed(direct, [1, 0])
    conflict = keyed(direct, [2, 0])
    assert conflict == keyed(plain, [2, 0])
    assert json.loads(conflict)["error"]["data"]["faultcode"] == "Client.IdempotencyConflict"

    store = make_store(workers=1, max_queued=1)
    application = make_application(services, store=store)
    direct = application.mounts["/jsonrpc"]
    plain = JsonRpcApplication(direct.app, max_batch=direct.max_batch,
                               system_methods=direct.system_methods)
    started = [json.loads(call(direct, rpc("countdown", [1, 10]))[1])["result"]["task_id"]]
    wait_until(lambda: json.loads(call(direct, rpc("countdown_progress", started))[1])
               ["result"]["status"] == "running")  # the one worker is busy

    def until_busy(app):
        # submit until the queue is full: how many fit is the store's (the
        # Redis store's workers take queued tasks on as they go)
        for _ in range(20):
            status, reply = call(app, rpc("countdown", [1, 10]))
            if b'"error"' in reply:
                return status, reply
            started.append(json.loads(reply)["result"]["task_id"])
        raise AssertionError("never Busy")
    busy = until_busy(direct)
    assert busy == until_busy(plain)
    assert json.loads(busy[1])["error"]["data"]["faultcode"] == "Server.Busy"
    # answered directly: the direct call itself raised it
    until_busy(plain)
    with pytest.raises(Fault, match="already; try again later"):
        for _ in range(20):
            started.append(direct.direct_methods["countdown"]([1, 10], {})["task_id"])
    for task_id in started:
        call(direct, rpc("countdown_cancel", [task_id]))


def test_text_submits_are_direct_and_other_types_go_through_spyne(apps):
    """Guards: over JSON-RPC a submit of text params (``cloneInstance``) is
    answered directly, with spyne's reply and task; a method with a param
    of a type not read here (a Uuid, whose text becomes a UUID) has no
    direct submit, and spyne reads and checks it."""
    direct, plain = apps
    store = direct.app.tasktypes_store
    assert "countdown" in direct.direct_methods and "slowTask" in direct.direct_methods
    request = rpc("cloneInstance", {"instance_id": "vm-1", "new_instance_name": "c\u00e9"})
    one, ids = _without_ids(call(direct, request)[1])
    other, other_ids = _without_ids(call(plain, request)[1])
    assert one == other and ids and other_ids
    assert store.describe(ids[0])[0].arguments == store.describe(other_ids[0])[0].arguments
    made = direct.direct_methods["cloneInstance"](["vm-2", "copy"], {})
    assert made is not NOT_DIRECT
    for task_id in ids + other_ids + [made["task_id"]]:
        call(direct, rpc("cloneInstance_cancel", [task_id]))
    assert "odd_uuid" not in make_application([OddTypes]).mounts["/jsonrpc"].direct_methods


def test_direct_params_read_as_spyne_reads_them(make_store):
    """Guards: for every param type with a trap (checks beyond the bounds,
    text with lengths, patterns and values) and values on both sides of
    each, a submit answers what spyne's path answers (the error, or the
    task: the same arguments, of the same types), whether or not it was
    answered directly; and the plain values of these types are answered
    directly (exclusive bounds and ``values`` included: spyne's own checks;
    a null for a nillable param goes to spyne, which makes it None)."""
    store = make_store(max_queued=10000)
    service = OddTypes
    application = make_application([service], store=store, name="test.odd")
    direct = application.mounts["/jsonrpc"]
    plain = JsonRpcApplication(direct.app, max_batch=direct.max_batch,
                               system_methods=direct.system_methods)
    assert "odd_uuid" not in direct.direct_methods  # text that becomes a UUID: spyne's
    answered = 0
    for method, descriptor in sorted(service.public_methods.items()):
        if descriptor.function.tasktypes_role.role == "submit":
            for value in ODD_JSON_VALUES:
                request = rpc(method, [value], id=value if type(value) is int else 1)
                one, ids = _without_ids(call(direct, request)[1])
                other, other_ids = _without_ids(call(plain, request)[1])
                assert one == other, (method, value, one, other)
                if ids:
                    assert store.describe(ids[0])[0].arguments == \
                        store.describe(other_ids[0])[0].arguments, (method, value)
                read = direct.direct_methods.get(method)
                if read is not None and value is not None and b'"error"' not in one:
                    assert read([value], {}) is not NOT_DIRECT, (method, value)
                    answered += 1
    assert answered > 40
