"""JSON-RPC 2.0 over HTTP: the WSGI server, batches included, on spyne's
server stages.

    from spyne import Application
    from tasktypes.jsonrpc import JsonRpc20, JsonRpcApplication

    app = Application(services, tns, in_protocol=JsonRpc20(), out_protocol=JsonRpc20())
    wsgi_app = JsonRpcApplication(app)      # POST {"jsonrpc": "2.0", "method": ...}

The protocol, one request object in and one response object out, is
``tasktypes.jsonrpc_protocol.JsonRpc20``. This module is what spyne's
one-request-one-method server has no place for: a body that holds a batch.
It parses the body once, then runs each call through the stages spyne's own
``WsgiApplication.handle_rpc`` runs for one request (spyne 2.14.0,
``spyne/server/_base.py`` and ``spyne/server/wsgi.py``):
``generate_contexts`` (the request object checked, the method and its
auxiliary methods found), ``get_in_object`` (params), ``get_out_object``
(``Application.process_request``: the method, its events, its faults),
``get_out_string`` (the reply), then ``process_contexts`` for the
auxiliary methods. What differs from ``handle_rpc`` is said where it is
done: the replies of a batch are joined; a crash is the specification's
internal error; the logs are one line per HTTP request (a batch of 200,000
bad calls makes one line, not 200,000), with the traceback of its first
crash only.
"""

import contextvars
import json
import logging
import sys
from json.encoder import c_make_encoder

from spyne.auxproc import process_contexts
from spyne.model import Fault
from spyne.server.wsgi import WsgiApplication, WsgiMethodContext

from tasktypes.defaults import CONTAINERS_PER_CALL as _CONTAINERS_PER_CALL
from tasktypes.defaults import MAX_BATCH as DEFAULT_MAX_BATCH
from tasktypes.errors import (InternalError, InvalidParams, InvalidRequest, ParseError,
                              ProtocolError)
from tasktypes.idempotency import ENVIRON_KEY as IDEMPOTENCY_ENVIRON_KEY
from tasktypes.jsonrpc_json import JSON_TYPE, JsonText, encode, parse_json, short
from tasktypes.jsonrpc_protocol import NO_ID, JsonRpc20

__all__ = ["DEFAULT_MAX_BATCH", "NOT_DIRECT", "JsonRpc20", "JsonRpcApplication"]

logger = logging.getLogger(__name__)

#: What a direct method (``JsonRpcApplication(direct_methods=...)``) returns
#: to say: not for me, run this call through spyne.
NOT_DIRECT = object()

_INTERNAL_ERROR_NULL_ID = (b'{"jsonrpc":"2.0","error":{"code":-32603,"message":'
                           b'"Internal error","data":{"faultcode":"Server.InternalError"}},'
                           b'"id":null}')

# Set while spyne serves (part of) a JSON-RPC request in this thread: spyne's
# own records of its calls' faults are then dropped, as the request's one
# line says them. Set around spyne's parts only (_as_served): a direct
# answer has no spyne in it, and setting a context variable costs about
# what a tenth of a direct poll does.
_SERVING = contextvars.ContextVar("tasktypes_jsonrpc_serving", default=False)


def _as_served(function, *args):
    """``function(*args)`` with _SERVING set."""
    serving = _SERVING.set(True)
    try:
        return function(*args)
    finally:
        _SERVING.reset(serving)

# The loggers spyne 2.14.0's stages write each fault to, with a traceback:
# Application.process_request (spyne.application and its .client and .server)
# and ServerBase.get_in_object (spyne.server._base).
_SPYNE_CALL_LOGGERS = ("spyne.application", "spyne.application.client",
                       "spyne.application.server", "spyne.server._base")


class _NotedByTheRequest(logging.Filter):
    def filter(self, record):
        return not _SERVING.get()


def _encoder():
    """``reply(result, req_id)``: the bytes of a direct call's reply, as
    ``encode({"jsonrpc": "2.0", "result": result, "id": req_id})`` writes
    them (UTF-8, compact, no NaN), for less: C's encoder is made once, not
    once per call as ``json.JSONEncoder.encode`` makes it, and the fixed
    part around the result is written once. No circular-reference check
    (its memo would be shared by threads, and keep the ids of a value that
    failed): a result is a tree that the protocol's writers have just
    built; a ``JsonText`` result is written already. Lone surrogates, which
    UTF-8 cannot hold, go to ``encode`` (in a JsonText: to spyne's path).
    None where spyne's path must answer."""
    if c_make_encoder is None:
        return lambda result, req_id: None if type(result) is JsonText else encode(
            {"jsonrpc": "2.0", "result": result, "id": req_id})
    make = c_make_encoder(None, json.JSONEncoder().default, json.encoder.encode_basestring,
                          None, ":", ",", False, False, False)

    def reply(result, req_id):
        try:
            # req_id is a str, an int (not a bool) or None (_call)
            return ('{"jsonrpc":"2.0","result":%s,"id":%s}' % (
                result if type(result) is JsonText else "".join(make(result, 0)),
                int.__repr__(req_id) if type(req_id) is int else "".join(make(req_id, 0))
            )).encode("utf-8")
        except UnicodeEncodeError:
            if type(result) is JsonText:  # spyne's path escapes it
                return None
            return encode({"jsonrpc": "2.0", "result": result, "id": req_id})
        except ValueError:  # NaN or infinity: spyne's path answers it (-32603)
            return None
    return reply


_direct_result = _encoder()


def _http_error(start_response, status, text, headers=()):
    body = ("%s: %s\n" % (status, text)).encode("utf-8")
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body)))] + list(headers))
    return [body]


class _ErrorNotes:
    """What went wrong in one HTTP request, logged as ONE line at its end,
    and the traceback of the first crash only."""

    __slots__ = ("count", "first", "crashes")

    def __init__(self):
        self.count = 0
        self.first = None
        self.crashes = 0

    def note(self, text):
        self.count += 1
        if self.first is None:
            self.first = short(text)

    def crashed(self, text):
        if not self.crashes:
            logger.exception(text)
        self.crashes += 1
        self.note(text)

    def log(self, doc_size):
        if self.count == 1 and doc_size == 1:
            logger.info("JSON-RPC %s", self.first)
        elif self.count:
            logger.info("JSON-RPC request of %d calls: %d errors (%d crashes); the "
                        "first: %s", doc_size, self.count, self.crashes, self.first)


#: Where a request's _ErrorNotes are kept in its WSGI environ.
_NOTES = "tasktypes.jsonrpc_errors"


def _notes_in(env):
    """The request's _ErrorNotes, made on its first error: a request that
    goes well (most of them) makes none."""
    notes = env.get(_NOTES)
    if notes is None:
        notes = env[_NOTES] = _ErrorNotes()
    return notes


def _notes(ctx):
    env = getattr(ctx.transport, "req_env", None)
    if env is None:  # not served over WSGI: spyne's own logs say it
        return None
    return _notes_in(env)


def _on_exception_object(ctx):
    """spyne's ``method_exception_object`` event, fired by each stage that
    fails (inside its ``except`` block, so ``sys.exc_info()`` is what was
    raised): a crash (no Fault) becomes the specification's internal error
    instead of spyne's ``Fault("Server", "Internal Error")``, and every
    error goes into the request's notes."""
    raised = sys.exc_info()[1]
    notes = _notes(ctx)
    name = ctx.descriptor.name if ctx.descriptor is not None else None
    if raised is not None and not isinstance(raised, Fault):
        ctx.out_error = InternalError()
        if notes is not None:
            notes.crashed("JSON-RPC %s raised" % name)
        return
    fault = ctx.out_error
    if notes is None or fault is None:
        return
    if isinstance(fault, ProtocolError) or name is None:
        notes.note(fault.faultstring)
    else:  # a fault is an answer the method chose to give, not a crash
        notes.note("%s: %s: %s" % (name, fault.faultcode, short(fault.faultstring)))


# Ours: the direct path (tasktypes.direct) answers a call itself although it
# listens, since a direct answer writes its errors the same way.
_on_exception_object.tasktypes_own = True


class JsonRpcApplication(WsgiApplication):
    """The WSGI callable serving a spyne ``Application`` whose protocols are
    ``JsonRpc20``: POST only (405 otherwise), one reply per call with an id,
    HTTP 204 when there is none, always ``application/json; charset=utf-8``.

    Each call, alone or in a batch, goes through spyne's server stages with
    a context of its own (see the module docstring), so its events, its
    auxiliary methods (spyne's ``_aux``, run once the call's reply is
    written) and its faults are spyne's. Two kinds of methods are answered
    before spyne looks a name up: ``system_methods`` (``rpc.discover``) and
    ``direct_methods`` (``tasktypes.direct``: task submits and controls
    whose params are plain), unless the name has auxiliary methods, which
    must run.
    """

    def __init__(self, app, system_methods=None, max_batch=DEFAULT_MAX_BATCH,
                 direct_methods=None, **kwargs):
        if not isinstance(app.in_protocol, JsonRpc20) or \
                not isinstance(app.out_protocol, JsonRpc20):
            raise TypeError("JsonRpcApplication needs JsonRpc20 in and out protocols")
        super().__init__(app, **kwargs)
        self.max_batch = max_batch
        #: name -> callable() returning the JSON bytes of a result: methods of
        #: the server itself that take no params (``rpc.discover``), answered
        #: before spyne looks the name up.
        self.system_methods = dict(system_methods or {})
        with_aux = {d.name for d in app.interface.method_id_map.values()
                    if d.aux is not None}
        #: name -> call(params, environ): methods the application answers
        #: without spyne's per-call context when their params are plain
        #: (``tasktypes.direct``); NOT_DIRECT sends a call through spyne.
        self.direct_methods = {name: call for name, call in (direct_methods or {}).items()
                               if name not in with_aux}
        # One function for every server of this application: a listener is
        # kept once, however many servers share the application.
        app.event_manager.add_listener("method_exception_object", _on_exception_object)
        for name in _SPYNE_CALL_LOGGERS:
            log = logging.getLogger(name)
            if not any(isinstance(f, _NotedByTheRequest) for f in log.filters):
                log.addFilter(_NotedByTheRequest())

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") != "POST":
            return _http_error(start_response, "405 Method Not Allowed",
                               "JSON-RPC takes POST", [("Allow", "POST")])
        content_type = environ.get("CONTENT_TYPE", "")
        if content_type != "application/json" and \
                content_type.partition(";")[0].strip().lower() != "application/json":
            # Not a form or text/plain: a web page may post those to us from
            # a visitor's browser without asking (CSRF); application/json
            # needs the browser's CORS preflight, which we do not grant.
            return _http_error(start_response, "415 Unsupported Media Type",
                               "JSON-RPC takes Content-Type: application/json")
        return self._serve(environ, start_response)

    def _serve(self, environ, start_response):
        # A context for the request as a whole only where someone listens
        # to its events: building one costs more than a whole direct call.
        handlers = self.event_manager.handlers
        ctx = WsgiMethodContext(self, environ, JSON_TYPE) if handlers and (
            handlers.get("wsgi_call") or handlers.get("wsgi_close")) else None
        if ctx is not None:
            _as_served(self.event_manager.fire_event, "wsgi_call", ctx)
        # The application in front limits the size (HTTP 413) from
        # CONTENT_LENGTH; a body without one is read whole.
        length = environ.get("CONTENT_LENGTH")
        if length:
            body = environ["wsgi.input"].read(int(length))
        else:
            body = environ["wsgi.input"].read() if "HTTP_TRANSFER_ENCODING" in environ \
                else b""
        # The request's _ErrorNotes, made by the first error (_notes_in).
        environ.pop(_NOTES, None)
        doc = None
        containers = _CONTAINERS_PER_CALL * self.max_batch
        try:
            if len(body) > containers and \
                    body.count(b"{") + body.count(b"[") > containers:
                # Refused before parsing: 10 MB of "[{},{},...]" would take the
                # parser 200 MB and a second of CPU only to be refused after.
                raise InvalidRequest(
                    "Invalid Request: more than %d objects and arrays in one request"
                    % (_CONTAINERS_PER_CALL * self.max_batch))
            doc = parse_json(body)
            if type(doc) is not list:
                body = self._call(doc, environ)
            elif not doc:
                raise InvalidRequest("Invalid Request: empty batch")
            elif len(doc) > self.max_batch:
                raise InvalidRequest(
                    "Invalid Request: a batch of %d calls is over the limit of %d"
                    % (len(doc), self.max_batch))
            elif len(doc) > 1 and IDEMPOTENCY_ENVIRON_KEY in environ:
                # One key must never stand for two submits (tasktypes.idempotency).
                raise InvalidRequest(
                    "Invalid Request: an Idempotency-Key applies to one call; send "
                    "the submit on its own, or the batch without the header")
            else:
                parts = [part for part in (self._call(call, environ) for call in doc) if part]
                body = b"[" + b",".join(parts) + b"]" if parts else b""
        except (ParseError, InvalidRequest) as e:  # the request as a whole
            body = _as_served(self._whole_error, e, environ)
        if ctx is not None:
            _as_served(self.event_manager.fire_event, "wsgi_close", ctx)
        errors = environ.get(_NOTES)
        if errors is not None:
            errors.log(doc_size=len(doc) if type(doc) is list else 1)
        if not body:
            start_response("204 No Content", [])
            return []
        start_response("200 OK", [("Content-Type", JSON_TYPE),
                                  ("Content-Length", str(len(body)))])
        return [body]

    def _whole_error(self, error, environ):
        """The reply to a request that is wrong as a whole."""
        whole = WsgiMethodContext(self, environ, JSON_TYPE)
        whole.in_error = whole.out_error = error
        whole.fire_event("method_exception_object")  # as generate_contexts does
        return self._reply(whole)

    def _call(self, call, environ):
        """One request object -> its reply (bytes, empty for a notification):
        directly where a direct or system method takes it, else through
        spyne's stages."""
        method = call.get("method") if type(call) is dict else None
        if type(method) is not str:
            method = None  # no lookup of an unhashable name; spyne's path says what is wrong
        direct = self.direct_methods.get(method)
        if direct is not None and call.get("jsonrpc") == "2.0":
            req_id = call.get("id", NO_ID)
            # floats and the odd ids: spyne's path says what is wrong
            if req_id is NO_ID or req_id is None or type(req_id) in (str, int):
                try:
                    result = direct(call.get("params"), environ)
                except Exception as exc:
                    return self._direct_failure(exc, method, req_id, environ)
                if result is not NOT_DIRECT:
                    if req_id is NO_ID:
                        return b""
                    reply = _direct_result(result, req_id)
                    if reply is not None:
                        return reply
        return _as_served(self._spyne_call, call, method, environ)

    def _spyne_call(self, call, method, environ):
        ctx = WsgiMethodContext(self, environ, JSON_TYPE)
        ctx.in_document = call  # parsed with the body: create_in_document keeps it
        system = self.system_methods.get(method)
        if system is not None:
            return self._system_reply(ctx, system)
        return self.run_call(ctx)

    def run_call(self, ctx):
        """One request object in ``ctx.in_document`` -> its reply as bytes
        (empty for a notification), through the stages of spyne's
        ``WsgiApplication.handle_rpc`` (spyne 2.14.0)."""
        contexts = self.generate_contexts(ctx)
        p_ctx, others = contexts[0], contexts[1:]
        if p_ctx.in_error is None:
            self.get_in_object(p_ctx)
        if p_ctx.in_error is None:
            self.get_out_object(p_ctx)
        reply = self._reply(p_ctx)
        if others:
            try:
                process_contexts(self, others, p_ctx, error=p_ctx.out_error)
            except Exception:  # as handle_rpc: reported, and the reply stands
                logger.exception("JSON-RPC auxiliary methods of %s raised",
                                 p_ctx.descriptor.name)
        return reply

    def _reply(self, ctx):
        """``get_out_string``, and the context closed: the reply's bytes."""
        try:
            self.get_out_string(ctx)
        except Exception:
            # A result spyne cannot write, or JSON cannot hold (NaN): the
            # method ran, but the client gets an internal error; if even that
            # cannot be written (an id that JSON cannot hold), it goes with
            # the id null. Either way it costs this call only.
            notes = _notes(ctx)
            text = "JSON-RPC result of %s could not be written" % (
                ctx.descriptor and ctx.descriptor.name)
            if notes is not None:
                notes.crashed(text)
            else:
                logger.exception(text)
            ctx.out_error = InternalError()
            ctx.out_document = ctx.out_string = None
            try:
                self.get_out_string(ctx)
            except Exception:
                ctx.out_string = [_INTERNAL_ERROR_NULL_ID]
        ctx.close()
        return b"".join(ctx.out_string)

    @staticmethod
    def _direct_failure(exc, method, req_id, environ):
        """The reply (bytes, empty for a notification) of a direct call
        that raised ``exc``: its Fault, or an internal error, logged."""
        if isinstance(exc, Fault):
            _notes_in(environ).note("%s: %s: %s" % (method, exc.faultcode,
                                                    short(exc.faultstring)))
            failure = exc
        else:  # as spyne's path: an internal error, logged
            _notes_in(environ).crashed("JSON-RPC %s raised" % method)
            failure = InternalError()
        if req_id is NO_ID:
            return b""
        return encode({"jsonrpc": "2.0", "error": JsonRpc20.error_object(failure),
                       "id": req_id})

    def _system_reply(self, ctx, method):
        protocol = self.app.in_protocol
        try:
            protocol.decompose_incoming_envelope(ctx, protocol.REQUEST)
            name = ctx.in_document["method"]
            # Once per HTTP request: a batch of 1000 rpc.discover calls
            # must not cost 1000 copies of the document.
            env = ctx.transport.req_env
            if env.get("tasktypes.system_called") and ctx.inprot_ctx.jsonrpc_id is not NO_ID:
                raise InvalidParams("Invalid params: %s answers once per request" % name)
            env["tasktypes.system_called"] = True
            if ctx.in_body_doc:
                raise InvalidParams("Invalid params: %s takes none" % name)
        except ProtocolError as e:
            ctx.in_error = ctx.out_error = e
            ctx.fire_event("method_exception_object")
            return self._reply(ctx)
        req_id = ctx.inprot_ctx.jsonrpc_id
        ctx.close()
        if req_id is NO_ID:
            return b""
        return b'{"jsonrpc":"2.0","result":%s,"id":%s}' % (method(), encode(req_id))
