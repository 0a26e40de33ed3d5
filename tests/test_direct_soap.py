"""The control methods answered over SOAP without spyne's per-call context
(``tasktypes.direct_soap``) answer byte for byte what spyne's own pipeline
answers (status, headers, body), for good calls and bad ones, on both
stores. Each request goes to two WSGI apps over the same spyne application
and store: the one ``make_application`` builds, with direct answers, and
one without them. Each good call is also checked to have been answered
directly, so that the comparison is not between spyne and spyne."""

import io
import re

import pytest

from service import services
from tasktypes import make_application
from tasktypes.soap import SoapApplication

from conftest import wait_until

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
CONTENT_TYPE = "text/xml; charset=utf-8"


@pytest.fixture
def apps(make_store):
    store = make_store()
    application = make_application(services, store=store)
    direct = application.mounts["/soap"]
    assert direct.direct is not None and direct.direct.methods, "no direct SOAP methods"
    plain = SoapApplication(direct.app, max_body=direct.max_content_length)
    return direct, plain


def environ_of(body, content_type=CONTENT_TYPE):
    return {"REQUEST_METHOD": "POST", "CONTENT_TYPE": content_type,
            "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
            "PATH_INFO": "/soap", "SERVER_NAME": "x", "SERVER_PORT": "1",
            "wsgi.url_scheme": "http", "QUERY_STRING": ""}


def call(app, body, content_type=CONTENT_TYPE):
    body = body if isinstance(body, bytes) else body.encode("utf-8")
    started = []
    reply = b"".join(app(environ_of(body, content_type),
                         lambda status, headers, exc=None: started.append((status, headers))))
    return started[0][0], started[0][1], reply


def envelope(method, params="", header="", env="soapenv", ns='ns0', decl=True):
    """A request as zeep writes it, with the prefixes and parts varied."""
    if isinstance(params, dict):
        params = "".join("<%s:%s>%s</%s:%s>" % (ns, k, v, ns, k) for k, v in params.items())
    return ('%s<%s:Envelope xmlns:%s="%s">%s<%s:Body><%s:%s xmlns:%s="tasktypes">%s'
            '</%s:%s></%s:Body></%s:Envelope>' % (
                '<?xml version="1.0" encoding="utf-8"?>' if decl else "", env, env, SOAP_ENV,
                header, env, ns, method, ns, params, ns, method, env, env))


def submitted(app, method, params):
    reply = call(app, envelope(method, params))[2]
    return int(re.search(rb"task_id>(\d+)<", reply).group(1))


def status_of(app, method, task_id):
    reply = call(app, envelope(method + "_progress", {"task_id": task_id}))[2]
    return re.search(rb"<tns:status>(\w+)<", reply).group(1).decode()


def finished(app, method, params):
    task_id = submitted(app, method, params)
    wait_until(lambda: status_of(app, method, task_id) not in ("queued", "running"))
    return task_id


def answered_directly(app, body):
    body = body.encode("utf-8")
    return app.direct.reply(body, CONTENT_TYPE, environ_of(body)) is not None


def same(direct, plain, body, directly=True):
    one, other = call(direct, body), call(plain, body)
    assert one == other, body
    if directly is not None:
        assert answered_directly(direct, body) is directly, body
    return one


def test_good_calls_answer_the_same_bytes(apps):
    """Guards: progress, result (plain and complex), cancel, wait and log of
    finished tasks, and the faults of unknown, unfinished, failed, cancelled
    and timed-out tasks, are the same reply, answered directly."""
    direct, plain = apps
    count = finished(direct, "countdown", {"steps": 2, "delay": 0.01})
    clone = finished(direct, "cloneInstance", {"instance_id": "vm", "new_instance_name": "c"})
    failed = finished(direct, "failingTask", {"message": "no &amp; &lt;way&gt;", "delay": 0})
    slow = submitted(direct, "slowTask", {"seconds": 20})  # past its 3 s limit
    running = submitted(direct, "countdown", {"steps": 1, "delay": 10})
    cancelled = submitted(direct, "countdown", {"steps": 1, "delay": 10})
    call(direct, envelope("countdown_cancel", {"task_id": cancelled}))
    wait_until(lambda: status_of(direct, "countdown", cancelled) == "cancelled")
    wait_until(lambda: status_of(direct, "slowTask", slow) == "failed")
    wait_until(lambda: status_of(direct, "countdown", running) == "running")
    requests = [
        envelope("countdown_progress", {"task_id": count}),
        envelope("countdown_result", {"task_id": count}),
        envelope("cloneInstance_result", {"task_id": clone}),
        envelope("cloneInstance_log", {"task_id": clone, "after": 0}),
        envelope("cloneInstance_log", {"after": 2, "task_id": clone}),  # any order
        envelope("countdown_cancel", {"task_id": count}),
        envelope("countdown_wait", {"task_id": count, "timeout": 5}),
        envelope("countdown_wait", {"task_id": count, "timeout": "0.5"}),
        envelope("failingTask_result", {"task_id": failed}),
        envelope("failingTask_progress", {"task_id": failed}),
        envelope("countdown_result", {"task_id": cancelled}),
        envelope("countdown_cancel", {"task_id": cancelled}),
        envelope("slowTask_result", {"task_id": slow}),
        envelope("countdown_result", {"task_id": running}),
        envelope("countdown_progress", {"task_id": 12345}),
        envelope("countdown_progress", {"task_id": -7}),
        envelope("countdown_log", {"task_id": 12345, "after": 0}),
        envelope("countdown_wait", {"task_id": 12345, "timeout": 0}),
        envelope("failingTask_progress", {"task_id": count}),  # another method's id
        # prefixes, declarations and blanks between elements varied
        envelope("countdown_progress", {"task_id": count}, env="SOAP-ENV", ns="t"),
        envelope("countdown_progress", {"task_id": count}, decl=False),
        '<e:Envelope xmlns:e="%s">\n <e:Body>\n  <countdown_progress xmlns="tasktypes">\n'
        '   <task_id>%d</task_id>\n  </countdown_progress>\n </e:Body>\n</e:Envelope>\n'
        % (SOAP_ENV, count),
        '<e:Envelope xmlns:e="%s" xmlns:t="tasktypes"><e:Body><t:countdown_result>'
        '<t:task_id><![CDATA[%d]]></t:task_id></t:countdown_result></e:Body></e:Envelope>'
        % (SOAP_ENV, count),
        envelope("countdown_progress", {"task_id": "&#49;&#50;"}),  # a character reference
    ]
    for request in requests:
        same(direct, plain, request)
    status, headers, reply = same(direct, plain, requests[0])
    assert status == "200 OK" and headers[0] == ("Content-Type", CONTENT_TYPE)
    assert b"<tns:status>done</tns:status>" in reply
    status, _, reply = same(direct, plain, envelope("countdown_result", {"task_id": running}))
    assert status.startswith("500") and b"Client.TaskNotFinished" in reply


@pytest.mark.parametrize("params", [
    {"task_id": "x"}, {"task_id": " 5"}, {"task_id": ""}, {"task_id": "1e3"},
    {"task_id": "5.0"}, {"task_id": "+5"}, {"task_id": "007"}, {"task_id": 2 ** 70},
    {}, {"task_id": 1, "extra": 2},
    "<ns0:task_id>1</ns0:task_id><ns0:task_id>2</ns0:task_id>",
    "<task_id>1</task_id>",
    '<ns0:task_id xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:nil="true"/>',
    '<ns0:task_id id="a">1</ns0:task_id>',
    "<ns0:task_id>1<!-- a comment --></ns0:task_id>",
    "<!-- a comment --><ns0:task_id>1</ns0:task_id>",
    "<ns0:task_id><ns0:x>1</ns0:x></ns0:task_id>",
    '<other:task_id xmlns:other="elsewhere">1</other:task_id>',
    # what only the structure walk of spyne's path refuses (TooDeep,
    # TooManyAttributes): the direct path's plain parse leaves it to spyne
    "<ns0:task_id>1%s%s</ns0:task_id>" % ("<a>" * 80, "</a>" * 80),
    "<ns0:task_id %s>1</ns0:task_id>" % " ".join('a%d="1"' % i for i in range(40)),
])
def test_bad_params_go_through_spyne(apps, params):
    """Guards: whatever is not plainly what the method takes goes through
    spyne (and so gets the same fault, or answer, as there)."""
    direct, plain = apps
    for method in ("countdown_progress", "countdown_result", "countdown_cancel"):
        same(direct, plain, envelope(method, params), directly=False)


@pytest.mark.parametrize("body", [
    envelope("countdown_wait", {"task_id": 1, "timeout": -1}),
    envelope("countdown_wait", {"task_id": 1, "timeout": "NaN"}),
    envelope("countdown_wait", {"task_id": 1, "timeout": "1e400"}),
    envelope("countdown_wait", {"task_id": 1}),
    envelope("countdown_log", {"task_id": 1, "after": -1}),
    envelope("countdown_progress", {"task_id": 1}, header="<soapenv:Header/>"),
    envelope("countdown_progress", {"task_id": 1},
             header='<soapenv:Header><h:token xmlns:h="x">t</h:token></soapenv:Header>'),
    envelope("countdown_progress", {"task_id": 1}).replace(
        "<soapenv:Body>", '<soapenv:Body soapenv:encodingStyle="x">'),
    envelope("countdown_progress", {"task_id": 1}).replace(
        'xmlns:ns0="tasktypes">', 'xmlns:ns0="tasktypes" a="1">'),
    envelope("countdown_progress", {"task_id": 1}).replace(
        'xmlns:ns0="tasktypes"', 'xmlns:ns0="elsewhere"'),
    envelope("countdown_progress", {"task_id": 1}).replace(
        "</soapenv:Body>", "<ns0:echo xmlns:ns0='tasktypes'/></soapenv:Body>"),
    envelope("countdown_progress", {"task_id": 1}).replace(SOAP_ENV, "urn:not-soap"),
    envelope("countdown_progress", {"task_id": 1}).replace(
        '<?xml version="1.0" encoding="utf-8"?>',
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "1">]>'),
    envelope("countdown_progress", {"task_id": 1}).replace('encoding="utf-8"',
                                                           'encoding="utf-7"'),
    envelope("countdown_progress", {"task_id": 1})[:-5],
    envelope("echo", {"text": "x"}),
    envelope("countdown_progress", {"task_id": 1}).replace(  # over MAX_DIRECT_SOAP_BODY
        "<soapenv:Body>", "<soapenv:Body>%s" % (" " * 5000)),
    envelope("countdown", {"steps": 0, "delay": 0}).replace("countdown", "countdown_nope"),
])
def test_unusual_requests_go_through_spyne(apps, body):
    """Guards: headers, attributes, other namespaces, more than one call, a
    DTD, another encoding, broken XML: all spyne's, with its fault."""
    direct, plain = apps
    same(direct, plain, body, directly=False)


def test_other_encodings_and_methods_answer_the_same(apps):
    """Guards: a UTF-16 body (read by the same xmlinput checks) and an HTTP
    method or Content-Type spyne refuses keep spyne's reply."""
    direct, plain = apps
    body = envelope("countdown_progress", {"task_id": 5}, decl=False).encode("utf-16")
    one = call(direct, body, "text/xml; charset=utf-16")
    assert one == call(plain, body, "text/xml; charset=utf-16")
    assert b"TaskNotFound" in one[2]
    body = envelope("countdown_progress", {"task_id": 5}).encode()
    for content_type in ("multipart/related; boundary=x", "text/xml; charset=latin-1"):
        assert call(direct, body, content_type) == call(plain, body, content_type)
    # spyne 2.14 takes a comment first in the Body for the call and fails
    # with an AttributeError (no fault): the direct path leaves it to spyne.
    commented = envelope("countdown_progress", {"task_id": 1}).replace(
        "<soapenv:Body>", "<soapenv:Body><!-- c -->")
    assert not answered_directly(direct, commented)


def test_a_crash_in_a_direct_call_is_a_server_fault(apps):
    """Guards: an exception that is no Fault (a bug, a store that breaks)
    is spyne's ``Server`` fault, "Internal Error", never an empty HTTP 500."""
    direct, plain = apps
    store = direct.app.tasktypes_store

    def broken(*args, **kwargs):
        raise RuntimeError("the store broke")
    store.read = broken  # this store's own method, broken on purpose
    status, _, reply = same(direct, plain, envelope("countdown_progress", {"task_id": 1}))
    assert status.startswith("500") and b"Internal Error" in reply


@pytest.mark.parametrize("message, from_template", [
    ("", True), ("3 / 5", True), ("a & <b> > c", True), ("\u00e9\u20ac \U0001f600", True),
    ("tab\there\nand a line", True), ("cr\rhere", False), ("\x85", False),
    ("\x01", False), ("\ufffe", False),
])
def test_progress_text_written_as_lxml_writes_it(message, from_template):
    """Guards: the progress response written from its template (the plan's
    document cut at its field texts) is the document the plan writes with
    lxml, whatever the message; characters that need more than escaping
    <, > and & are left to lxml (which writes \\r as &#13; and refuses
    control characters)."""
    from tasktypes.model import TaskProgressResponse, TaskState, TaskStatus
    soap = make_application(services).mounts["/soap"]
    method = soap.direct.methods["{tasktypes}countdown_progress"]
    state = TaskState(task_id=2 ** 53 - 1, method="countdown", status=TaskStatus.RUNNING,
                      progress=1 / 3, message=message, starttime=1.5e9 + 0.1)
    response = TaskProgressResponse.of(state, now=1.5e9 + 7.25)
    written = soap.direct._write_text(method, response)
    assert (written is not None) is from_template
    if from_template:
        assert written == soap.direct._write_tree(method, response)
    response.message = None
    assert soap.direct._write_text(method, response) is None
    assert soap.direct._write(method, response) == soap.direct._write_tree(method, response)


def test_listeners_of_spyne_events_keep_spyne_s_path(apps):
    """Guards: where someone listens to spyne's events (a ``method_call``
    listener on the service class that checks credentials, say), control
    calls go through spyne, over SOAP and JSON-RPC, so that the listener
    runs; once it is gone, they are answered directly again."""
    from service.task_service import TaskService
    from tasktypes.jsonrpc import NOT_DIRECT

    direct, _ = apps
    jsonrpc = make_application(services).mounts["/jsonrpc"]
    jsonrpc_progress = jsonrpc.direct_methods["countdown_progress"]
    jsonrpc_submit = jsonrpc.direct_methods["countdown"]
    body = envelope("countdown_progress", {"task_id": 1})
    seen = []

    def listener(ctx):
        seen.append(ctx.descriptor.name)
    for manager in (TaskService.event_manager, direct.app.event_manager):
        manager.add_listener("method_call", listener)
        try:
            assert not answered_directly(direct, body)
            # nor a submit (none is made: the checks come first)
            assert not answered_directly(direct, envelope("countdown", {"steps": 1,
                                                                        "delay": 50}))
            if manager is TaskService.event_manager:  # the JSON-RPC app's too
                assert jsonrpc_progress([1], {}) is NOT_DIRECT
                assert jsonrpc_submit([1, 50], {}) is NOT_DIRECT
            status, _, reply = call(direct, body)
            assert b"TaskNotFound" in reply and seen.pop() == "countdown_progress"
        finally:
            manager.del_listener("method_call", listener)
        assert answered_directly(direct, body)


def _without_id(reply):
    return re.sub(rb"task_id>\d+<", b"task_id>ID<", reply)


def _apart_from_id(answer):
    """A reply with its new task's id taken out (each submit makes another
    id; its digits make the length, which must be the body's)."""
    status, headers, body = answer
    assert dict(headers)["Content-Length"] == str(len(body))
    return status, [h for h in headers if h[0] != "Content-Length"], _without_id(body)


@pytest.mark.parametrize("params", [
    {"steps": 0, "delay": 0}, {"steps": 3, "delay": "0.25"}, {"delay": 10, "steps": 10000},
])
def test_submits_answer_as_spyne_does(apps, params):
    """Guards: a submit whose params are plainly its method's is answered
    directly with spyne's reply (status, headers, body) but for the new
    task's id, and makes the task spyne's path makes (same arguments)."""
    direct, plain = apps
    store = direct.app.tasktypes_store
    body = envelope("countdown", params)
    assert answered_directly(direct, body)  # a task made, not counted below
    replies = [call(direct, body), call(plain, body)]
    assert _apart_from_id(replies[0]) == _apart_from_id(replies[1])
    assert replies[0][0] == "200 OK" and b"<tns:task_id>ID<" in _without_id(replies[0][2])
    ids = [int(re.search(rb"task_id>(\d+)<", r).group(1)) for _, _, r in replies]
    one, other = (store.describe(task_id)[0] for task_id in ids)
    assert one.arguments == other.arguments
    for task_id in ids:
        call(direct, envelope("countdown_cancel", {"task_id": task_id}))


@pytest.mark.parametrize("params", [
    {"steps": 1}, {"steps": 1, "delay": 0, "x": 1}, {"steps": -1, "delay": 0},
    {"steps": 10001, "delay": 0}, {"steps": 1, "delay": 11}, {"steps": 1, "delay": "1e-3"},
    {"steps": 1, "delay": "NaN"}, {"steps": "1.0", "delay": 0}, {"steps": " 1", "delay": 0},
    "<ns0:steps>1</ns0:steps><ns0:steps>2</ns0:steps><ns0:delay>0</ns0:delay>",
])
def test_bad_or_unusual_submits_go_through_spyne(apps, params):
    """Guards: a submit whose params are not plainly the method's (out of
    bounds, missing, twice, an exponent, blanks) gets spyne's answer, fault
    or task, from spyne's path."""
    direct, plain = apps
    body = envelope("countdown", params)
    one, other = call(direct, body), call(plain, body)
    assert _apart_from_id(one) == _apart_from_id(other)
    assert not answered_directly(direct, body)
    for reply in (one, other):
        found = re.search(rb"task_id>(\d+)<", reply[2])
        if found:  # what spyne takes (1e-3) starts a task: stopped again
            call(direct, envelope("countdown_cancel", {"task_id": int(found.group(1))}))


def _odd_apps(make_store):
    """The direct and plain SOAP apps of ``fixtures.OddTypes``."""
    from fixtures import OddTypes
    store = make_store(max_queued=10000)
    direct = make_application([OddTypes], store=store).mounts["/soap"]
    return direct, SoapApplication(direct.app, max_body=direct.max_content_length)


def _compare(direct, plain, methods, texts):
    """Each method with each text, on both apps: the same answer but for a
    new task's id. How many were answered directly with a task."""
    answered = 0
    for method in methods:
        for text in texts:
            body = envelope(method, {"v": text})
            one, other = call(direct, body), call(plain, body)
            assert _apart_from_id(one) == _apart_from_id(other), (method, text, one, other)
            if b"task_id" in one[2] and answered_directly(direct, body):
                answered += 1
    return answered


ODD_TEXTS = ["-5", "-1", "0", "1", "2", "3", "4", "255", "256", "2147483647", "2147483648",
             "0.5", "1.0", "1.5", "-0.0", "0.25", " 1", "1e3", "abc", ""]


def test_direct_params_read_as_spyne_reads_them(make_store):
    """Guards: for number types whose checks go beyond the bounds
    (UnsignedInteger's >= 0, an unsigned sized int's exclusive top,
    ``values``, exclusive bounds) and texts on both sides of each, a submit
    answers what spyne's path answers, directly or not; and the plain
    ones are answered directly (spyne's own checks, called). Every type but
    Uuid has a direct submit."""
    from fixtures import OddTypes
    direct, plain = _odd_apps(make_store)
    methods = [m for m, d in sorted(OddTypes.public_methods.items())
               if d.function.tasktypes_role.role == "submit"]
    answered_ones = [m for m in methods if "{tasktypes}%s" % m in direct.direct.methods]
    assert len(answered_ones) == 14 and "odd_uuid" not in answered_ones
    assert _compare(direct, plain, methods, ODD_TEXTS) > 20


ODD_TEXT_VALUES = ["a", "bc", "abc", "abcd", "d", "\u00e9\u20ac", " a ", "a\nb", "A",
                   "&amp;&lt;x&gt;", "<![CDATA[<b>]]>", "&#97;",
                   "12345678-1234-5678-1234-567812345678", "", "<ns0:x>a</ns0:x>",
                   "a<!-- c -->b"]


def test_direct_text_params_read_as_spyne_reads_them(make_store):
    """Guards: text params (lengths, patterns, values; entities, CDATA,
    blanks) answer what spyne's path answers, directly where the text is
    plain (no child, not empty), and a Uuid, whose text becomes a UUID, is
    spyne's."""
    direct, plain = _odd_apps(make_store)
    store = direct.app.tasktypes_store
    assert "{tasktypes}odd_uuid" not in direct.direct.methods
    assert _compare(direct, plain, ("odd_text", "odd_short", "odd_pattern", "odd_choice",
                                    "odd_uuid"), ODD_TEXT_VALUES) >= 18
    # the shipped service's text method: answered directly, its arguments as sent
    direct = make_application(services, store=store).mounts["/soap"]
    body = envelope("cloneInstance", {"instance_id": "vm &amp; co", "new_instance_name": "c"})
    assert answered_directly(direct, body)
    task_id = submitted(direct, "cloneInstance", {"instance_id": "vm &amp; co",
                                                   "new_instance_name": "c"})
    assert '"vm & co"' in store.describe(task_id)[0].arguments
