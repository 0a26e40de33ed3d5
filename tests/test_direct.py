"""The control methods answered without spyne's per-call context
(``tasktypes.direct``) answer byte for byte what spyne's own pipeline
answers, for good calls and bad ones, singly and in batches, on both
stores. Each request goes to two WSGI apps over the same spyne application
and store: the one ``make_application`` builds, with direct methods, and one
without them."""

import io
import json

import pytest
from spyne import Double, Fault, Integer, ServiceBase

from service import services
from tasktypes import make_application, task_rpc
from tasktypes.jsonrpc import NOT_DIRECT, JsonRpcApplication
from tasktypes.store import ThreadStore

from conftest import wait_until


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


@pytest.mark.parametrize("fields", [
    {"message": 'a "quote", a \\ and 100% of \u00e9\u4e2d\x01\n'},
    {"message": "\ud800"},  # a lone surrogate: escaped as ASCII
    {"message": None}, {"progress": 1}, {"progress": True}, {"progress": float("nan")},
    {"starttime": float("inf")}, {"task_id": True},
])
def test_odd_fields_of_a_progress_answer_the_same_bytes(fields):
    """Guards: a poll's response is written from a template where its
    fields are what the template takes (tasktypes.jsonrpc_results); any
    other value (None, an int or a bool for a float, NaN) is written as
    spyne's path writes it, escapes and errors included."""
    store = ThreadStore(workers=1)
    try:
        application = make_application(services, store=store)
        direct = application.mounts["/jsonrpc"]
        plain = JsonRpcApplication(direct.app, max_batch=direct.max_batch,
                                   system_methods=direct.system_methods)
        task_id = finished(direct, "countdown", [0, 0])
        request = rpc("countdown_progress", [task_id])
        assert call(direct, request) == call(plain, request)
        state = store._tasks[task_id]
        for name, value in fields.items():
            setattr(state, name, value)
        assert call(direct, request) == call(plain, request)
    finally:
        store.close()


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
                    rpc("countdown_log", [1, -1]), rpc("countdown_wait", [1, 1e400])):
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
