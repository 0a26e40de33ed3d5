"""Each JSON-RPC call, alone or in a batch, runs through spyne's own server
stages: spyne's events fire for it, its auxiliary methods (``_aux``) run,
and spyne's per-call fault records give way to the request's one log line.

The apps are called in-process as WSGI callables: real spyne applications
and the real ``JsonRpcApplication``, no HTTP needed to see the stages."""

import io
import json
import logging

import pytest
from spyne import Application, Fault, Integer, ServiceBase, Unicode, rpc
from spyne.auxproc.sync import SyncAuxProc

from tasktypes.jsonrpc import JsonRpc20, JsonRpcApplication

SEEN = []  # what the auxiliary methods and the listeners saw, in order


class Primary(ServiceBase):
    @rpc(Unicode, _returns=Unicode)
    def echo(ctx, text):
        SEEN.append(("echo", text))
        return text

    @rpc(Integer, _returns=Integer)
    def double(ctx, n):
        return 2 * n

    @rpc(Unicode, _returns=Unicode)
    def refuse(ctx, text):
        raise Fault("Client.Refused", "no %s" % text)

    @rpc(_returns=Unicode)
    def crash(ctx):
        raise RuntimeError("secret internals")


class Audit(ServiceBase):
    """Auxiliary methods: run by spyne after the primary method of the same
    name has answered (and not when it failed: SyncAuxProc's default)."""
    __aux__ = SyncAuxProc()

    @rpc(Unicode)
    def echo(ctx, text):
        SEEN.append(("aux echo", text, ctx.aux.parent.out_object))

    @rpc(Unicode)
    def refuse(ctx, text):
        SEEN.append(("aux refuse", text))


def make_app():
    return Application([Primary, Audit], "stages", in_protocol=JsonRpc20(),
                       out_protocol=JsonRpc20())


@pytest.fixture
def app():
    SEEN.clear()
    return JsonRpcApplication(make_app())


def post(app, body):
    body = body if isinstance(body, bytes) else json.dumps(body).encode()
    environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/json",
               "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
               "PATH_INFO": "/jsonrpc", "SERVER_NAME": "x", "SERVER_PORT": "1",
               "wsgi.url_scheme": "http", "QUERY_STRING": ""}
    return b"".join(app(environ, lambda *a: None))


def rpc_call(method, params=None, id=1):
    call = {"jsonrpc": "2.0", "method": method, "id": id}
    if params is not None:
        call["params"] = params
    return call


def test_auxiliary_methods_run_after_their_primary(app):
    reply = post(app, rpc_call("echo", ["a"]))
    assert reply == b'{"jsonrpc":"2.0","result":"a","id":1}'
    assert SEEN == [("echo", "a"), ("aux echo", "a", ["a"])]


def test_auxiliary_methods_run_for_each_call_of_a_batch(app):
    reply = post(app, [rpc_call("echo", ["a"], 1), rpc_call("double", [2], 2),
                       rpc_call("echo", {"text": "b"}, 3)])
    assert json.loads(reply) == [{"jsonrpc": "2.0", "result": "a", "id": 1},
                                 {"jsonrpc": "2.0", "result": 4, "id": 2},
                                 {"jsonrpc": "2.0", "result": "b", "id": 3}]
    assert SEEN == [("echo", "a"), ("aux echo", "a", ["a"]),
                    ("echo", "b"), ("aux echo", "b", ["b"])]


def test_auxiliary_methods_do_not_run_after_a_fault(app):
    error = json.loads(post(app, rpc_call("refuse", ["x"])))["error"]
    assert error == {"code": -32000, "message": "no x", "data": {"faultcode": "Client.Refused"}}
    assert SEEN == []


def test_a_direct_method_never_answers_a_name_with_auxiliary_methods():
    SEEN.clear()
    direct = {"echo": lambda params, environ: "direct", "double": lambda p, e: 42}
    app = JsonRpcApplication(make_app(), direct_methods=direct)
    assert set(app.direct_methods) == {"double"}
    assert json.loads(post(app, rpc_call("echo", ["a"])))["result"] == "a"
    assert SEEN == [("echo", "a"), ("aux echo", "a", ["a"])]


def listen(spyne_app, events):
    """Records (event, method name, out_error's faultcode) for each event."""
    def listener(event):
        def record(ctx):
            error = ctx.out_error.faultcode if ctx.out_error is not None else None
            SEEN.append((event, ctx.method_name, error))
        return record
    for event in events:
        spyne_app.event_manager.add_listener(event, listener(event))


APP_EVENTS = ("method_call", "method_return_object", "method_exception_object",
              "method_return_document", "method_exception_document",
              "method_return_string", "method_exception_string")


def test_spynes_events_fire_for_each_call(app):
    listen(app.app, APP_EVENTS)
    Primary.event_manager.add_listener(
        "method_call", lambda ctx: SEEN.append(("service method_call", ctx.method_name)))
    for protocol, events in ((app.app.in_protocol, ("before_deserialize", "after_deserialize")),
                             (app.app.out_protocol, ("before_serialize", "after_serialize"))):
        for event in events:
            protocol.event_manager.add_listener(
                event, lambda ctx, event=event: SEEN.append((event, ctx.method_name)))
    try:
        post(app, [rpc_call("double", [2], 1), rpc_call("refuse", ["x"], 2),
                   rpc_call("crash", None, 3), rpc_call("double", ["two"], 4),
                   rpc_call("nope", None, 5)])
    finally:
        del Primary.event_manager.handlers["method_call"]
    assert SEEN == [
        ("before_deserialize", "double"), ("after_deserialize", "double"),
        ("method_call", "double", None), ("service method_call", "double"),
        ("method_return_object", "double", None),
        ("before_serialize", "double"), ("after_serialize", "double"),
        ("method_return_document", "double", None), ("method_return_string", "double", None),

        ("before_deserialize", "refuse"), ("after_deserialize", "refuse"),
        ("method_call", "refuse", None), ("service method_call", "refuse"),
        ("method_exception_object", "refuse", "Client.Refused"),
        ("before_serialize", "refuse"), ("after_serialize", "refuse"),
        ("method_exception_document", "refuse", "Client.Refused"),
        ("method_exception_string", "refuse", "Client.Refused"),

        # a crash is the specification's internal error by the time the
        # listeners after tasktypes' own see it
        ("before_deserialize", "crash"), ("after_deserialize", "crash"),
        ("method_call", "crash", None), ("service method_call", "crash"),
        ("method_exception_object", "crash", "Server.InternalError"),
        ("before_serialize", "crash"), ("after_serialize", "crash"),
        ("method_exception_document", "crash", "Server.InternalError"),
        ("method_exception_string", "crash", "Server.InternalError"),

        ("before_deserialize", "double"),  # invalid params: no call
        ("method_exception_object", "double", "Client.InvalidParams"),
        ("before_serialize", "double"), ("after_serialize", "double"),
        ("method_exception_document", "double", "Client.InvalidParams"),
        ("method_exception_string", "double", "Client.InvalidParams"),

        ("method_exception_object", None, "Client.MethodNotFound"),  # no method at all
        ("before_serialize", None), ("after_serialize", None),
        ("method_exception_document", None, "Client.MethodNotFound"),
        ("method_exception_string", None, "Client.MethodNotFound"),
    ]


def test_a_parse_error_fires_the_exception_events_too(app):
    listen(app.app, ("method_exception_object", "method_exception_string"))
    assert json.loads(post(app, b"{"))["error"]["code"] == -32700
    assert SEEN == [("method_exception_object", None, "Client.ParseError"),
                    ("method_exception_string", None, "Client.ParseError")]


def test_context_events_fire_once_per_call(app):
    created, closed = [], []
    app.app.event_manager.add_listener("method_context_created", created.append)
    app.app.event_manager.add_listener("method_context_closed", closed.append)
    post(app, [rpc_call("double", [1], 1), rpc_call("double", [2], 2)])
    assert len(created) == len(closed) == 2
    assert all(ctx.is_closed for ctx in created)


def test_one_log_line_per_request_instead_of_spynes_per_call_records(app, caplog):
    with caplog.at_level(logging.DEBUG):
        post(app, [rpc_call("refuse", ["x"], 1), rpc_call("double", ["two"], 2),
                   rpc_call("crash", None, 3), rpc_call("crash", None, 4)])
    spynes = [r for r in caplog.records if r.name.startswith("spyne.")
              and r.levelno >= logging.INFO]
    assert spynes == []
    ours = [r for r in caplog.records if r.name == "tasktypes.jsonrpc"]
    assert [r.levelno for r in ours] == [logging.ERROR, logging.INFO]
    assert "secret internals" in str(ours[0].exc_info[1])  # the first crash only
    assert ours[1].getMessage() == (
        "JSON-RPC request of 4 calls: 4 errors (2 crashes); the first: "
        "refuse: Client.Refused: no x")


def test_spynes_records_pass_outside_a_json_rpc_request(app, caplog):
    post(app, rpc_call("refuse", ["x"]))
    with caplog.at_level(logging.INFO):
        logging.getLogger("spyne.application").error("elsewhere")
    assert [r.getMessage() for r in caplog.records] == ["elsewhere"]


@pytest.mark.parametrize("method", [[1], {"a": 1}])
def test_a_method_name_of_the_wrong_type_is_invalid_request_with_direct_methods(method):
    """Guards: with direct methods on (as make_application serves), a
    method that is an array or an object is looked up nowhere (main raised
    TypeError, unhashable, out of the WSGI app: an HTTP 500)."""
    from service import services
    from tasktypes import ThreadStore, make_application
    store = ThreadStore()
    try:
        app = make_application(services, store=store).mounts["/jsonrpc"]
        assert app.direct_methods
        for body in (rpc_call(method), [rpc_call(method)]):
            reply = json.loads(post(app, body))
            reply = reply[0] if isinstance(reply, list) else reply
            assert reply["error"]["code"] == -32600 and reply["id"] is None
    finally:
        store.close()
