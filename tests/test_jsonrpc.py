"""JSON-RPC 2.0 over real HTTP: the specification's examples one by one, the
types and errors of spyne methods, HTTP details, and the task flow of the
shipped services. Some messages are built and read by a third-party client
(``jsonrpcclient``) to show that it understands us."""

import datetime
import decimal
import logging

import pytest
import requests
from jsonrpcclient import Error, Ok, parse, request
from spyne import (Any, Application, Array, Boolean, ComplexModel, Date, DateTime,
                   Decimal, Double, Fault, Integer, Integer64, ServiceBase, Unicode, rpc)

from service import services
from tasktypes import ThreadStore, make_application
from tasktypes.devserver import BackgroundServer
from tasktypes.errors import TaskNotFound
from tasktypes.jsonrpc import JsonRpc20, JsonRpcApplication

from conftest import wait_until


class Thing(ComplexModel):
    __namespace__ = "test"
    name = Unicode
    count = Integer
    tags = Array(Unicode)


class Calculator(ServiceBase):
    """The specification's example methods, and one method per type."""

    @rpc(Integer, Integer, _returns=Integer)
    def subtract(ctx, minuend, subtrahend):
        return minuend - subtrahend

    @rpc(Integer, Integer, Integer, _returns=Integer)
    def sum(ctx, a, b, c):
        return a + b + c

    @rpc(Integer, Integer, Integer, Integer, Integer)
    def update(ctx, a, b, c, d, e):
        CALLS.append(("update", a, b, c, d, e))

    @rpc(Integer)
    def notify_hello(ctx, n):
        CALLS.append(("notify_hello", n))

    @rpc(_returns=Array(Any))
    def get_data(ctx):
        return ["hello", 5]

    @rpc(Unicode, _returns=Unicode)
    def echo(ctx, text):
        return text

    @rpc(Double, _returns=Double)
    def half(ctx, x):
        return x / 2

    @rpc(Boolean, _returns=Boolean)
    def negate(ctx, flag):
        return not flag

    @rpc(DateTime, _returns=DateTime)
    def next_day(ctx, when):
        return when + datetime.timedelta(days=1)

    @rpc(_returns=Date)
    def a_date(ctx):
        return datetime.date(2024, 2, 29)

    @rpc(Decimal, _returns=Decimal)
    def add_cent(ctx, amount):
        return amount + decimal.Decimal("0.01")

    @rpc(Thing, _returns=Thing)
    def grow(ctx, thing):
        return Thing(name=thing.name.upper(), count=(thing.count or 0) + 1,
                     tags=(thing.tags or []) + ["grown"])

    @rpc(Unicode(min_occurs=1, nullable=False), Integer64, _returns=Unicode)
    def needs_name(ctx, name, number):
        return "%s %s" % (name, number)

    @rpc()
    def nothing(ctx):
        return None

    @rpc(_returns=(Integer, Unicode), _out_variable_names=("number", "word"))
    def two_values(ctx):
        return 7, "seven"

    @rpc()
    def custom_fault(ctx):
        raise Fault("Client.Custom", "custom trouble")

    @rpc()
    def crash(ctx):
        raise RuntimeError("secret internals")

    @rpc()
    def lost_task(ctx):
        raise TaskNotFound("no such task", status="x")


CALLS = []


@pytest.fixture(scope="module")
def url():
    app = Application([Calculator], "test", name="Calculator",
                      in_protocol=JsonRpc20(), out_protocol=JsonRpc20())
    with BackgroundServer(JsonRpcApplication(app)) as base:
        yield base


def post(url, body, **kw):
    """POST a JSON value (or raw bytes) and return the response."""
    if isinstance(body, (bytes, str)):
        return requests.post(url, data=body, timeout=10,
                             headers={"Content-Type": "application/json"}, **kw)
    return requests.post(url, json=body, timeout=10, **kw)


def call(url, method, params=None, id=1):
    body = {"jsonrpc": "2.0", "method": method, "id": id}
    if params is not None:
        body["params"] = params
    reply = post(url, body)
    assert reply.status_code == 200
    return reply.json()


def error_of(url, method, params=None):
    reply = call(url, method, params)
    assert "result" not in reply, reply
    return reply["error"]


# -- the specification's examples (section 7) ------------------------------

def test_positional_params(url):
    assert post(url, {"jsonrpc": "2.0", "method": "subtract", "params": [42, 23],
                      "id": 1}).json() == {"jsonrpc": "2.0", "result": 19, "id": 1}
    assert post(url, {"jsonrpc": "2.0", "method": "subtract", "params": [23, 42],
                      "id": 2}).json() == {"jsonrpc": "2.0", "result": -19, "id": 2}


def test_named_params(url):
    assert post(url, {"jsonrpc": "2.0", "method": "subtract",
                      "params": {"subtrahend": 23, "minuend": 42}, "id": 3}).json() \
        == {"jsonrpc": "2.0", "result": 19, "id": 3}
    assert post(url, {"jsonrpc": "2.0", "method": "subtract",
                      "params": {"minuend": 42, "subtrahend": 23}, "id": 4}).json() \
        == {"jsonrpc": "2.0", "result": 19, "id": 4}


def test_notifications_get_no_reply(url):
    CALLS.clear()
    for body in ({"jsonrpc": "2.0", "method": "update", "params": [1, 2, 3, 4, 5]},
                 {"jsonrpc": "2.0", "method": "foobar"}):
        reply = post(url, body)
        assert reply.status_code == 204
        assert reply.content == b""
    assert CALLS == [("update", 1, 2, 3, 4, 5)]


def test_notification_errors_get_no_reply_either(url):
    for params in (["not a number"], [1, 2], {"nope": 1}):
        reply = post(url, {"jsonrpc": "2.0", "method": "notify_hello", "params": params})
        assert reply.status_code == 204 and reply.content == b""
    assert post(url, {"jsonrpc": "2.0", "method": "crash"}).status_code == 204


def test_non_existent_method(url):
    assert post(url, {"jsonrpc": "2.0", "method": "foobar", "id": "1"}).json() == {
        "jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found: foobar",
                                    "data": {"faultcode": "Client.MethodNotFound"}},
        "id": "1"}


def test_invalid_json(url):
    reply = post(url, b'{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]')
    body = reply.json()
    assert body["error"]["code"] == -32700
    assert body["id"] is None and body["jsonrpc"] == "2.0"
    assert body["error"]["data"] == {"faultcode": "Client.ParseError"}


def test_invalid_request_object(url):
    body = post(url, {"jsonrpc": "2.0", "method": 1, "params": "bar"}).json()
    assert body["error"]["code"] == -32600
    assert body["error"]["data"] == {"faultcode": "Client.InvalidRequest"}
    assert body["id"] is None


def test_batch_invalid_json(url):
    body = post(url, b'[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},'
                     b'{"jsonrpc": "2.0", "method"]').json()
    assert isinstance(body, dict)
    assert body["error"]["code"] == -32700 and body["id"] is None


def test_empty_array(url):
    body = post(url, b"[]").json()
    assert isinstance(body, dict)  # one error, not an array of them
    assert body["error"]["code"] == -32600 and body["id"] is None


def test_invalid_batch_of_one(url):
    body = post(url, [1]).json()
    assert [(e["error"]["code"], e["id"]) for e in body] == [(-32600, None)]


def test_invalid_batch_of_three(url):
    body = post(url, [1, 2, 3]).json()
    assert [(e["error"]["code"], e["id"]) for e in body] == [(-32600, None)] * 3


def test_mixed_batch(url):
    CALLS.clear()
    body = post(url, [
        {"jsonrpc": "2.0", "method": "sum", "params": [1, 2, 4], "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "get_data", "id": "9"},
    ]).json()
    assert len(body) == 5
    by_id = {e["id"]: e for e in body if e["id"] is not None}
    assert by_id["1"]["result"] == 7
    assert by_id["2"]["result"] == 19
    assert by_id["5"]["error"]["code"] == -32601
    assert by_id["9"]["result"] == ["hello", 5]
    (invalid,) = [e for e in body if e["id"] is None]
    assert invalid["error"]["code"] == -32600
    assert CALLS == [("notify_hello", 7)]


def test_batch_of_notifications_gets_no_body(url):
    reply = post(url, [{"jsonrpc": "2.0", "method": "notify_hello", "params": [1, 2, 4]},
                       {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}])
    assert reply.status_code == 204
    assert reply.content == b""


# -- request objects and ids ------------------------------------------------

@pytest.mark.parametrize("req_id", ["abc", "", 0, 7, 2 ** 53 - 1, -3, 1.5, None])
def test_ids_are_echoed_exactly(url, req_id):
    body = post(url, {"jsonrpc": "2.0", "method": "echo", "params": ["x"],
                      "id": req_id}).json()
    assert body == {"jsonrpc": "2.0", "result": "x", "id": req_id}


@pytest.mark.parametrize("req", [
    {"method": "echo", "params": ["x"], "id": 1},                      # no version
    {"jsonrpc": "1.0", "method": "echo", "params": ["x"], "id": 1},
    {"jsonrpc": 2.0, "method": "echo", "params": ["x"], "id": 1},
    {"jsonrpc": "2.0", "params": ["x"], "id": 1},                      # no method
    {"jsonrpc": "2.0", "method": "echo", "params": "x"},              # and no id
    {"jsonrpc": "2.0", "method": "echo", "params": ["x"], "id": True},
    {"jsonrpc": "2.0", "method": "echo", "params": ["x"], "id": [1]},
    {"jsonrpc": "2.0", "method": "echo", "params": ["x"], "id": {"a": 1}},
    b'"a string"', b"5", b"null", b"true",
])
def test_invalid_requests(url, req):
    body = post(url, req).json()
    assert body["error"]["code"] == -32600
    assert body["error"]["data"] == {"faultcode": "Client.InvalidRequest"}
    assert body["id"] is None


@pytest.mark.parametrize("params", ["x", 5, True])
@pytest.mark.parametrize("req_id", [1, "abc", None])
def test_invalid_params_member_answers_the_readable_id(url, params, req_id):
    """Guards: "params" that is neither array nor object is an invalid request
    answered with the request's id, which could be read (null is for ids that
    could not be)."""
    body = post(url, {"jsonrpc": "2.0", "method": "echo", "params": params,
                      "id": req_id}).json()
    assert body["error"]["code"] == -32600
    assert body["id"] == req_id


def test_protocol_errors_carry_their_faultcode(url):
    """Guards the contract's "errors carry data with a faultcode" for the
    specification's own errors too: one field tells every error apart."""
    assert error_of(url, "nope")["data"] == {"faultcode": "Client.MethodNotFound"}
    assert error_of(url, "half", ["x"])["data"] == {"faultcode": "Client.InvalidParams"}
    assert error_of(url, "crash")["data"] == {"faultcode": "Server.InternalError"}
    parse = post(url, b"{").json()["error"]
    assert (parse["code"], parse["data"]) == (-32700, {"faultcode": "Client.ParseError"})


def test_params_may_be_omitted_or_null(url):
    assert call(url, "nothing")["result"] is None
    assert call(url, "nothing", [])["result"] is None
    assert post(url, {"jsonrpc": "2.0", "method": "nothing", "params": None,
                      "id": 1}).json()["result"] is None


def test_method_names_are_not_namespaced(url):
    assert error_of(url, "{test}echo", ["x"])["code"] == -32601


# -- params: spyne's types, strictly -----------------------------------------

@pytest.mark.parametrize("method, params, result", [
    ("echo", ["héllo ✓"], "héllo ✓"),
    ("echo", [""], ""),
    ("echo", [None], None),
    ("echo", {}, None),
    ("half", [3], 1.5),                 # an integer is a fine double
    ("half", [3.0], 1.5),
    ("negate", [True], False),
    ("next_day", ["2024-02-28T10:00:00"], "2024-02-29T10:00:00"),
    ("add_cent", ["1.10"], "1.11"),     # decimals travel as strings: exact
    ("add_cent", [2], "2.01"),
    ("needs_name", {"name": "n"}, "n None"),
    ("needs_name", ["n", 2 ** 60], "n %d" % 2 ** 60),
    ("grow", [{"name": "box", "count": 1, "tags": ["a"]}],
     {"name": "BOX", "count": 2, "tags": ["a", "grown"]}),
    ("grow", [{"name": "box"}], {"name": "BOX", "count": 1, "tags": ["grown"]}),
])
def test_valid_params(url, method, params, result):
    assert call(url, method, params)["result"] == result


@pytest.mark.parametrize("method, params", [
    ("subtract", ["42", 23]),           # a string is no integer
    ("subtract", [True, 23]),           # nor is a boolean
    ("subtract", [3.5, 1]),
    ("subtract", [3.0, 1]),             # nor a float, as in SOAP
    ("subtract", [[1], 1]),
    ("subtract", [{"a": 1}, 1]),
    ("half", ["3.5"]),
    ("half", [True]),
    ("negate", [1]),
    ("negate", ["true"]),
    ("echo", [5]),
    ("echo", [True]),
    ("echo", [["x"]]),
    ("next_day", ["yesterday"]),
    ("next_day", [1700000000]),
    ("add_cent", ["lots"]),
    ("add_cent", [True]),
    ("grow", ["box"]),                  # a string is no object
    ("grow", [{"tags": "ab"}]),         # nor an array
    ("grow", [{"tags": [1, 2]}]),
    ("grow", [{"count": "2"}]),
    ("subtract", [1, 2, 3]),            # too many
    ("subtract", {"minuend": 1, "bogus": 2}),   # unknown name
    ("needs_name", {"number": 1}),      # required one missing
    ("needs_name", []),
    ("needs_name", [None]),             # and not nullable
    ("needs_name", ["n", 1.5]),
])
def test_invalid_params(url, method, params):
    error = error_of(url, method, params)
    assert error["code"] == -32602, error
    assert error["message"].startswith("Invalid params")


def test_invalid_params_message_says_where(url):
    error = error_of(url, "grow", [{"name": "box", "tags": ["a", 2]}])
    assert error["message"] == "Invalid params: thing.tags[1]: expected string, got 2"
    assert "unknown parameter 'bogus'" in error_of(url, "echo", {"bogus": 1})["message"]
    assert "missing required parameter 'name'" in error_of(url, "needs_name", [])["message"]


# -- results ----------------------------------------------------------------

def test_results_are_plain_json(url):
    assert call(url, "subtract", [1, 1])["result"] == 0
    assert call(url, "half", [1])["result"] == 0.5
    assert call(url, "negate", [False])["result"] is True
    assert call(url, "a_date")["result"] == "2024-02-29"
    assert call(url, "two_values")["result"] == {"number": 7, "word": "seven"}
    assert call(url, "get_data")["result"] == ["hello", 5]
    reply = call(url, "nothing")
    assert "result" in reply and reply["result"] is None


# -- faults -----------------------------------------------------------------

def test_service_fault_is_32000_with_its_faultcode(url):
    assert error_of(url, "custom_fault") == {
        "code": -32000, "message": "custom trouble", "data": {"faultcode": "Client.Custom"}}


def test_task_error_maps_through_the_table(url):
    assert error_of(url, "lost_task") == {
        "code": -32001, "message": "no such task",
        "data": {"faultcode": "Client.TaskNotFound", "status": "x"}}


def test_unexpected_exception_is_internal_error_without_traceback(url, caplog):
    with caplog.at_level(logging.ERROR, logger="tasktypes.jsonrpc"):
        error = error_of(url, "crash")
    assert error == {"code": -32603, "message": "Internal error",
                     "data": {"faultcode": "Server.InternalError"}}
    logged = [r for r in caplog.records if r.exc_info]
    assert logged and "secret internals" in str(logged[0].exc_info[1])


def test_a_batch_keeps_going_after_a_crash(url):
    body = post(url, [{"jsonrpc": "2.0", "method": "crash", "id": 1},
                      {"jsonrpc": "2.0", "method": "echo", "params": ["ok"], "id": 2}]).json()
    assert [e.get("result", e.get("error", {}).get("code")) for e in body] == [-32603, "ok"]


# -- HTTP -------------------------------------------------------------------

@pytest.mark.parametrize("verb", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_http_methods_get_405(url, verb):
    reply = requests.request(verb, url, timeout=10)
    assert reply.status_code == 405
    assert reply.headers["Allow"] == "POST"


def test_replies_are_utf8_json(url):
    for body in ({"jsonrpc": "2.0", "method": "echo", "params": ["é"], "id": 1},
                 {"jsonrpc": "2.0", "method": "nope", "id": 1}, [1], b"{"):
        reply = post(url, body)
        assert reply.headers["Content-Type"] == "application/json; charset=utf-8"
        assert int(reply.headers["Content-Length"]) == len(reply.content)
    assert post(url, {"jsonrpc": "2.0", "method": "echo", "params": ["é"],
                      "id": 1}).content.decode("utf-8").count("é") == 1


def test_non_utf8_body_is_parse_error(url):
    body = post(url, '{"jsonrpc": "2.0", "method": "echo", "params": ["é"], "id": 1}'
                .encode("latin-1")).json()
    assert body["error"]["code"] == -32700 and body["id"] is None


@pytest.mark.parametrize("raw", [b"", b"   ", b"NaN", b'{"jsonrpc": "2.0", "method": '
                                 b'"half", "params": [Infinity], "id": 1}', b"\xef\xbb\xbf{}"])
def test_what_is_not_json_is_parse_error(url, raw):
    assert post(url, raw).json()["error"]["code"] == -32700


def test_deeply_nested_json_is_parse_error_and_the_server_lives(url):
    # 50,000 levels: under the count of objects and arrays made before
    # parsing (64 per call of the batch limit), over what the parser nests.
    for raw in (b"[" * 50000, b'{"a":' * 50000, b"[" * 50000 + b"]" * 50000):
        body = post(url, raw).json()
        assert body["error"]["code"] == -32700 and body["id"] is None
    body = post(url, b"[" * 100000).json()  # over it: refused before parsing
    assert body["error"]["code"] == -32600 and body["id"] is None
    assert call(url, "echo", ["still here"])["result"] == "still here"


def test_lone_surrogate_still_gives_valid_json(url):
    reply = post(url, b'{"jsonrpc": "2.0", "method": "echo", "params": ["\\ud800"], "id": 1}')
    assert reply.json()["result"] == "\ud800"


def test_huge_bad_input_makes_short_logs_and_short_errors(url, caplog):
    huge = "x" * 1_000_000
    with caplog.at_level(logging.DEBUG):
        assert len(error_of(url, "subtract", [huge, 1])["message"]) < 500
        assert len(error_of(url, huge)["message"]) < 500
        assert len(error_of(url, "echo", {huge: 1})["message"]) < 500
        assert post(url, b'{"' + huge.encode() + b'"').json()["error"]["code"] == -32700
    assert caplog.records
    assert max(len(r.getMessage()) for r in caplog.records) < 2000


# -- a third-party client ---------------------------------------------------

def test_jsonrpcclient_understands_us(url):
    sent = request("subtract", params=[42, 23])
    assert parse(post(url, sent).json()) == Ok(19, sent["id"])
    ok = parse(post(url, request("grow", params={"thing": {"name": "a"}})).json())
    assert isinstance(ok, Ok) and ok.result["name"] == "A"
    error = parse(post(url, request("lost_task")).json())
    assert isinstance(error, Error)
    assert (error.code, error.message, error.data) == (
        -32001, "no such task", {"faultcode": "Client.TaskNotFound", "status": "x"})
    results = list(parse(post(url, [request("echo", params=["a"]),
                                    request("subtract", params=["a", 1])]).json()))
    assert isinstance(results[0], Ok) and results[0].result == "a"
    assert isinstance(results[1], Error) and results[1].code == -32602


# -- the shipped services: task flow over JSON-RPC ----------------------------

@pytest.fixture(scope="module")
def shipped():
    store = ThreadStore(workers=4, result_ttl=60)
    app = make_application(services, store=store, max_body=64 * 1024)
    with BackgroundServer(app) as base:
        yield base + "/jsonrpc"
    store.close()


def task_result(url, method, task_id, timeout=10):
    """Polls ``method_progress`` until finished, then returns the ``_result`` reply."""
    wait_until(lambda: call(url, method + "_progress", [task_id])["result"]["status"]
               not in ("queued", "running"), timeout)
    return call(url, method + "_result", [task_id])


def test_task_flow(shipped):
    assert call(shipped, "echo", {"text": "hi"})["result"] == "hi"
    submitted = call(shipped, "countdown", {"steps": 5, "delay": 0.1})["result"]
    task_id = submitted["task_id"]
    assert isinstance(task_id, int) and 0 < task_id < 2 ** 53

    progress = call(shipped, "countdown_progress", [task_id])["result"]
    assert progress["task_id"] == task_id
    assert progress["status"] in ("queued", "running")
    assert set(progress) == {"task_id", "progress", "duration", "starttime",
                             "status", "message"}

    early = error_of(shipped, "countdown_result", [task_id])
    assert early["code"] == -32002
    assert early["data"]["faultcode"] == "Client.TaskNotFinished"
    assert early["data"]["status"] in ("queued", "running")

    assert task_result(shipped, "countdown", task_id) == {
        "jsonrpc": "2.0", "result": 5, "id": 1}
    done = call(shipped, "countdown_progress", {"task_id": task_id})["result"]
    assert done["status"] == "done" and done["progress"] == 1.0
    assert done["message"] == "5 / 5"


def test_task_errors(shipped):
    unknown = error_of(shipped, "countdown_result", [12345])
    assert unknown["code"] == -32001
    assert unknown["data"]["faultcode"] == "Client.TaskNotFound"

    task_id = call(shipped, "failingTask", ["it broke", 0.0])["result"]["task_id"]
    failed = task_result(shipped, "failingTask", task_id)["error"]
    assert failed["code"] == -32003
    assert "it broke" in failed["message"] and "Traceback" not in failed["message"]
    assert failed["data"]["faultcode"] == "Server.TaskFailed"
    assert failed["data"]["status"] == "failed"

    assert error_of(shipped, "countdown", {"steps": "5", "delay": 0.1})["code"] == -32602
    assert error_of(shipped, "countdown", {"delay": 0.1})["code"] == -32602


def test_task_with_complex_result(shipped):
    task_id = call(shipped, "cloneInstance", ["vm1", "copy"])["result"]["task_id"]
    result = task_result(shipped, "cloneInstance", task_id)["result"]
    assert result == {"instance_id": "vm1-clone", "name": "copy", "state": "running",
                      "disk_images": ["copy-disk0.qcow2", "copy-disk1.qcow2"]}


def test_batch_of_progress_polls(shipped):
    ids = [call(shipped, "countdown", [2, 0.05])["result"]["task_id"] for _ in range(3)]
    body = post(shipped, [{"jsonrpc": "2.0", "method": "countdown_progress",
                           "params": [i], "id": n} for n, i in enumerate(ids)]).json()
    assert [e["result"]["task_id"] for e in sorted(body, key=lambda e: e["id"])] == ids
    for task_id in ids:
        assert task_result(shipped, "countdown", task_id)["result"] == 2
