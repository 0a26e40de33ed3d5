"""``task_rpc`` on its own: what it publishes and how it calls the body."""

import pytest
from spyne import Application, Integer, ServiceBase, Unicode, rpc
from spyne.protocol.soap import Soap11
from spyne.server.null import NullServer

from tasktypes import ThreadStore, task_rpc
from tasktypes.decorator import TASK_TYPES
from tasktypes.errors import TaskStopped


class Sample(ServiceBase):
    @rpc(Unicode, _returns=Unicode)
    def plain(ctx, text):
        return text.upper()

    @task_rpc(Integer, _returns=Integer)
    def named(ctx, n, update_progress):
        update_progress(0.5, "half")
        return n * 2

    @task_rpc(Integer, Unicode, _returns=Unicode)
    def kwstyle(ctx, n, label, **kw):
        kw["update_progress"](1)
        return "%s:%d:%s:%s" % (label, n, ctx.method, type(ctx).__name__)


@pytest.fixture
def null():
    app = Application([Sample], "test.decorator", in_protocol=Soap11(),
                      out_protocol=Soap11())
    app.tasktypes_store = ThreadStore(workers=2)
    yield NullServer(app, ostr=False).service
    app.tasktypes_store.close()


def test_five_methods_are_published_for_each_task_type():
    names = set(Sample.public_methods)
    for m in ("named", "kwstyle"):
        assert {m, m + "_progress", m + "_result", m + "_cancel", m + "_wait"} <= names
    assert "plain" in names and "plain_progress" not in names


def test_published_signatures_hide_update_progress():
    submit = Sample.public_methods["kwstyle"]
    assert list(submit.in_message._type_info) == ["n", "label"]
    assert list(Sample.public_methods["named_wait"].in_message._type_info) == [
        "task_id", "timeout"]


def test_bodies_run_with_update_progress_named_or_through_kw(null):
    task_id = null.named(21).task_id
    assert null.named_wait(task_id, 5).status == "done"
    assert null.named_result(task_id) == 42
    task_id = null.kwstyle(3, "x").task_id
    assert null.kwstyle_wait(task_id, 5).status == "done"
    assert null.kwstyle_result(task_id) == "x:3:kwstyle:TaskContext"


def test_plain_methods_keep_working(null):
    assert null.plain("abc") == "ABC"


def test_task_types_are_registered_by_importable_key():
    key = "%s:Sample.named" % __name__
    assert TASK_TYPES[key].name == "named"


def test_each_published_method_knows_its_task_type_and_descriptor():
    """Guards: in a process, a task type is reached from its methods, and
    each control method is on the class as spyne's ServiceMeta puts the
    methods it finds itself (a static function with its descriptor)."""
    task_type = TASK_TYPES["%s:Sample.named" % __name__]
    for suffix in ("", "_progress", "_result", "_cancel", "_wait", "_log"):
        function = getattr(Sample, "named" + suffix)
        assert function.task_type is task_type
        assert function.descriptor is Sample.public_methods["named" + suffix]
        assert Sample.__dict__["named" + suffix].__class__ is staticmethod


def test_task_stopped_is_not_swallowed_by_except_exception():
    assert not issubclass(TaskStopped, Exception)


def test_a_subclass_of_a_task_error_answers_as_its_base():
    """Guards the one table walked along the class hierarchy: a service's own
    subclass of TaskNotFound is constructed (no KeyError) and answers with
    TaskNotFound's faultcode and JSON-RPC code."""
    from tasktypes.errors import TaskNotFound, jsonrpc_code

    class NoSuchReport(TaskNotFound):
        """A report that was never made."""

    error = NoSuchReport("no report 7")
    assert error.faultcode == "Client.TaskNotFound"
    assert jsonrpc_code(error) == -32001


@pytest.mark.parametrize("kparams", [{"_body_style": "bare"},
                                     {"_body_style": "wrapped", "_soap_body_style": "rpc"}])
def test_a_bare_body_style_is_refused_with_what_to_use(kparams):
    """Guards: spyne's bare style is bare in and out, and made
    ``make_application`` fail far from the cause (an AttributeError in the
    OpenRPC document: m_result's request is no named param then). Now the
    decorator says what to use instead."""
    with pytest.raises(ValueError, match="out_bare"):
        task_rpc(Integer, _returns=Unicode, **kparams)


def test_an_out_bare_result_is_published_and_answered():
    """Guards: ``_body_style="out_bare"``, which the refusal above points to,
    goes to m_result alone, and the application serves it."""
    import io
    import json

    from conftest import wait_until
    from tasktypes import make_application

    class Bare(ServiceBase):
        @task_rpc(Integer, _returns=Unicode, _body_style="out_bare")
        def bare(ctx, n, update_progress):
            return "n=%d" % n

    store = ThreadStore(workers=1)
    try:
        app = make_application([Bare], store=store, name="test.out_bare")
        from spyne import BODY_STYLE_OUT_BARE
        assert Bare.public_methods["bare_result"].body_style is BODY_STYLE_OUT_BARE
        assert Bare.public_methods["bare"].body_style is not BODY_STYLE_OUT_BARE

        def call(method, params):
            body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params,
                               "id": 1}).encode()
            environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/json",
                       "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
                       "PATH_INFO": "/jsonrpc", "SERVER_NAME": "x", "SERVER_PORT": "1",
                       "wsgi.url_scheme": "http", "QUERY_STRING": ""}
            return json.loads(b"".join(app(environ, lambda *a: None)))
        task_id = call("bare", [4])["result"]["task_id"]
        wait_until(lambda: call("bare_progress", [task_id])["result"]["status"] == "done")
        assert call("bare_result", [task_id])["result"] == "n=4"
    finally:
        store.close()
