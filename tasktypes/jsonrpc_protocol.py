"""JSON-RPC 2.0 (https://www.jsonrpc.org/specification) as a spyne protocol:
one request object in, one response object out.

    from spyne import Application
    from tasktypes.jsonrpc_protocol import JsonRpc20

    app = Application(services, tns, in_protocol=JsonRpc20(), out_protocol=JsonRpc20())

``JsonRpc20`` implements spyne's protocol stages (``create_in_document``,
``decompose_incoming_envelope``, ``get_call_handles``, ``deserialize``,
``serialize``, ``create_out_string``); spyne's server runs them. Params are
validated by spyne's soft validator against the method's declared types
(made strict where JSON and Python disagree: ``true`` is no Integer, ``"3"``
no Double), and results are written as plain JSON. Any spyne service works
unchanged. Error codes are the specification's; a fault raised by a method
is mapped through ``tasktypes.errors``.

HTTP, batches and logging are the server's: ``tasktypes.jsonrpc``.

Its parts: the JSON text (``jsonrpc_json``), the params read and
validated (``jsonrpc_params``, the ``deserialize`` stage) and the results
written per type (``jsonrpc_results``); here, the request object checked,
the method found and the response object made.
"""

import logging
import threading

from spyne.model import Boolean, Decimal, Double, Integer
from spyne.protocol.json import JsonDocument

from tasktypes.errors import (InternalError, InvalidParams, InvalidRequest, MethodNotFound,
                              ParseError, codes_of, jsonrpc_code)
from tasktypes.jsonrpc_json import JSON_TYPE, encode, parse_json
from tasktypes.jsonrpc_params import JsonParams
from tasktypes.jsonrpc_results import ResultWriters

logger = logging.getLogger(__name__)

# The specification's error codes (section 5.1), read from the one table.
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = (
    codes_of(cls)[1] for cls in (ParseError, InvalidRequest, MethodNotFound,
                                 InvalidParams, InternalError))

#: The ``id`` of a notification: the request had no "id" member at all.
NO_ID = object()


class JsonRpc20(JsonParams, ResultWriters, JsonDocument):
    """The JSON-RPC 2.0 protocol for one call object.

    ``ctx.in_document`` is one request object (the server,
    ``tasktypes.jsonrpc.JsonRpcApplication``, splits batches);
    ``ctx.out_document`` is the response object, or ``None`` for a
    notification. The id travels in the input protocol context:
    ``ctx.inprot_ctx.jsonrpc_id``.

    Input is soft-validated by default (``validator="soft"``), as SOAP is.
    Results: strings, numbers, booleans and ``None`` as themselves, complex
    models as objects of all their fields (``null`` where unset), arrays as
    lists, dates and times as ISO 8601 strings, decimals as strings; writers
    are built once per type, and anything out of the ordinary goes through
    spyne's own ``_object_to_doc``.
    """

    mime_type = JSON_TYPE
    type = set(JsonDocument.type) | {"jsonrpc"}

    def __init__(self, app=None, validator="soft", **kwargs):
        super().__init__(app, validator, **kwargs)
        # JSON has types of its own: no bool for a number, no string for a
        # number, no number for a bool; integers are fine for doubles.
        self._from_unicode_handlers[Integer] = self._integer_from_json
        self._from_unicode_handlers[Double] = self._double_from_json
        self._from_unicode_handlers[Boolean] = self._boolean_from_json
        self._from_unicode_handlers[Decimal] = self._decimal_from_json
        self._writers = {}      # spyne class -> callable(value) -> JSON value
        self._results = {}      # method descriptor -> callable(out_object)
        self._params = {}       # method descriptor -> _ParamPlan
        self._complex_checks = {}  # class -> names of its multi-valued members
        self._lock = threading.RLock()

    # -- input (``deserialize``, the params: ``JsonParams``) ------------------

    def create_in_document(self, ctx, in_string_encoding=None):
        """Parses the body; any failure is a parse error (-32700). A call of
        a batch comes parsed already: ``ctx.in_string`` is None and
        ``ctx.in_document`` is its request object."""
        if ctx.in_string is not None:
            ctx.in_document = parse_json(b"".join(ctx.in_string))

    def decompose_incoming_envelope(self, ctx, message=JsonDocument.REQUEST):
        """Checks one request object (-32600) and finds its method name."""
        doc = ctx.in_document
        ctx.inprot_ctx.jsonrpc_id = None
        if not isinstance(doc, dict):
            raise InvalidRequest("Invalid Request: not an object")
        if doc.get("jsonrpc") != "2.0":
            raise InvalidRequest('Invalid Request: "jsonrpc" must be "2.0"')
        method = doc.get("method")
        if type(method) is not str:
            raise InvalidRequest('Invalid Request: "method" must be a string')
        req_id = doc.get("id", NO_ID)
        if req_id is not NO_ID and req_id is not None and \
                type(req_id) not in (str, int, float):
            raise InvalidRequest('Invalid Request: "id" must be a string, a number or null')
        params = doc.get("params")  # null is taken as absent, as many clients send it
        if params is not None and type(params) not in (dict, list):
            # The id could be read, so the error answers it (null only where
            # it could not be: the specification, section 5).
            ctx.inprot_ctx.jsonrpc_id = None if req_id is NO_ID else req_id
            raise InvalidRequest('Invalid Request: "params" must be an array or an object')
        ctx.inprot_ctx.jsonrpc_id = req_id
        ctx.in_header_doc = None
        ctx.in_body_doc = params
        ctx.method_request_string = "{%s}%s" % (self.app.interface.get_tns(), method)

    def get_call_handles(self, ctx):
        """The method's descriptors (the primary, then any auxiliary ones);
        none is method not found (-32601)."""
        handles = super().get_call_handles(ctx)
        if not handles:
            raise MethodNotFound("Method not found: %s" % ctx.in_document["method"])
        return handles

    def generate_method_contexts(self, ctx):
        """``[ctx]`` for the primary method, then a copy per auxiliary one.
        spyne's (2.14.0) copies ``ctx`` for the primary too, which costs a
        call some 6 us: ``ctx`` is a call's own context here, made for it by
        the server, so it serves the primary method itself."""
        primary, *auxiliary = self.get_call_handles(ctx)
        contexts = [ctx]
        for descriptor in auxiliary:
            aux_ctx = ctx.copy()
            aux_ctx.descriptor = descriptor
            contexts.append(aux_ctx)
        ctx.descriptor = primary
        return contexts

    def _fire(self, event, ctx):
        # The protocol's own events, through spyne's EventManager, only
        # where someone listens: spyne's builds an empty ordered set per
        # call otherwise, four times a call.
        if self.event_manager.handlers.get(event):
            self.event_manager.fire_event(event, ctx)

    # -- output (the result's writers: ``ResultWriters``) ---------------------

    def serialize(self, ctx, message):
        """Sets ``ctx.out_document``: the response object, or ``None`` when the
        request was a notification (which gets no reply, not even an error)."""
        self._fire("before_serialize", ctx)
        req_id = getattr(ctx.inprot_ctx, "jsonrpc_id", None)
        error = ctx.out_error
        if error is None:
            if req_id is NO_ID:
                ctx.out_document = None
            else:
                result = self._result_writer(ctx.descriptor)(ctx.out_object)
                ctx.out_document = {"jsonrpc": "2.0", "result": result, "id": req_id}
        elif isinstance(error, (ParseError, InvalidRequest)):
            ctx.out_document = {"jsonrpc": "2.0", "error": self.error_object(error),
                                "id": None if req_id is NO_ID else req_id}
        elif req_id is NO_ID:
            ctx.out_document = None
        else:
            ctx.out_document = {"jsonrpc": "2.0", "error": self.error_object(error),
                                "id": req_id}
        self._fire("after_serialize", ctx)

    @staticmethod
    def error_object(fault):
        """The JSON-RPC error object of a spyne Fault: the specification's
        codes for protocol errors, ``tasktypes.errors`` for everything else;
        ``data`` holds the faultcode and whatever the fault carries."""
        message = fault.faultstring
        if not isinstance(message, str):
            message = str(message)
        code = jsonrpc_code(fault)
        data = {}
        extra = getattr(fault, "data", None)
        if isinstance(extra, dict):
            data.update(extra)
        data["faultcode"] = fault.faultcode
        return {"code": code, "message": message, "data": data}

    def create_out_string(self, ctx, out_string_encoding="utf8"):
        """Sets ``ctx.out_string``: the response as UTF-8 JSON, or nothing."""
        if ctx.out_document is None:
            ctx.out_string = []
        else:
            ctx.out_string = [encode(ctx.out_document)]

    def set_app(self, value):
        super().set_app(value)
        if value is None:
            return
        # Build the writers now rather than on a first call under load.
        for descriptor in value.interface.method_id_map.values():
            try:
                self._result_writer(descriptor)
            except Exception:  # noqa: BLE001 - a first call will say what is wrong
                logger.debug("no writer yet for %s", descriptor.name, exc_info=True)
