"""JSON-RPC 2.0 (https://www.jsonrpc.org/specification) as a spyne protocol.

    from spyne import Application
    from tasktypes.jsonrpc import JsonRpc20, JsonRpcApplication

    app = Application(services, tns, in_protocol=JsonRpc20(), out_protocol=JsonRpc20())
    wsgi_app = JsonRpcApplication(app)      # POST {"jsonrpc": "2.0", "method": ...}

``JsonRpc20`` is a spyne protocol: the stages of one call are spyne's own
(``create_in_document``, ``decompose_incoming_envelope``, ``deserialize``,
``serialize``, ``create_out_string``), params are validated by spyne's soft
validator against the method's declared types (made strict where JSON and
Python disagree: ``true`` is no Integer, ``"3"`` no Double), and results are
written as plain JSON. Any spyne service works unchanged.

``JsonRpcApplication`` is the WSGI side: HTTP, and the batch layer that spyne's
one-request-one-method model lacks. Error codes are the specification's; a
fault raised by a method is mapped through ``tasktypes.errors``.
"""

import json
import logging
import threading
from decimal import Decimal as D

from spyne import BODY_STYLE_BARE, BODY_STYLE_EMPTY, BODY_STYLE_WRAPPED
from spyne.error import ValidationError
from spyne.model import (Any, AnyDict, Array, Boolean, ComplexModelBase, Date,
                         DateTime, Decimal, Double, Fault, Integer, Time, Unicode)
from spyne.protocol.dictdoc import HierDictDocument
from spyne.protocol.json import JsonDocument
from spyne.server.wsgi import WsgiApplication, WsgiMethodContext

from tasktypes.errors import (InternalError, InvalidParams, InvalidRequest, MethodNotFound,
                              ParseError, ProtocolError, codes_of, jsonrpc_code)
from tasktypes.validation import expected_type
from tasktypes.idempotency import ENVIRON_KEY as IDEMPOTENCY_ENVIRON_KEY
from tasktypes.defaults import CONTAINERS_PER_CALL as _CONTAINERS_PER_CALL
from tasktypes.defaults import MAX_BATCH as DEFAULT_MAX_BATCH

logger = logging.getLogger(__name__)

# The specification's error codes (section 5.1), read from the one table.
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = (
    codes_of(cls)[1] for cls in (ParseError, InvalidRequest, MethodNotFound,
                                 InvalidParams, InternalError))

#: Longest error message or log line quoting client input, in characters.
MAX_QUOTE = 200

_NO_ID = object()  # a notification: the request had no "id" member at all
#: What a direct method (``JsonRpcApplication(direct_methods=...)``) returns
#: to say: not for me, run this call through spyne.
NOT_DIRECT = object()
_JSON_TYPE = "application/json; charset=utf-8"


def _short(text, limit=MAX_QUOTE):
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "... (%d chars)" % len(text)


# The protocol's own errors, in the one table of tasktypes.errors.
JsonRpcError = ProtocolError


def _describe(fault):
    """A client-facing account of a validation fault: where and what."""
    path = getattr(fault, "jsonrpc_path", None)
    if not path:
        return fault.faultstring
    where = "".join("[%d]" % k if type(k) is int else ".%s" % k
                    for k in reversed(path)).lstrip(".")
    value, cls = fault.jsonrpc_value
    try:
        shown = _encode_ascii(value)
    except (TypeError, ValueError, RecursionError):
        shown = repr(value)
    kind = "array" if issubclass(cls, Array) else expected_type(cls)
    return "%s: expected %s, got %s" % (where, kind, _short(shown, MAX_QUOTE // 2))


def _fire(event_manager, event, ctx):
    # EventManager.fire_event, minus building an empty ordered set per call
    # when nobody listens (the usual case, fourteen times a call).
    handlers = event_manager.handlers.get(event)
    if handlers:
        for handler in handlers:
            handler(ctx)


def _fire_ctx(ctx, event):
    # MethodContext.fire_event: the application's listeners, then the method's.
    _fire(ctx.app.event_manager, event, ctx)
    descriptor = ctx.descriptor
    if descriptor is not None:
        for event_manager in descriptor.event_managers:
            _fire(event_manager, event, ctx)


def _reject_constant(name):
    raise ValueError("%s is not JSON" % name)


class Unrepresentable:
    """A number in a request that Python cannot hold as JSON can say it
    (``1e400`` parses to infinity; an integer of more than 4300 digits does
    not parse). Kept as this marker, it is no valid id and no valid param,
    so it costs its own call an error and never the reply of the whole
    request (writing infinity back out would fail)."""

    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return _short(self.text, 40)


def _parse_float(text):
    value = float(text)
    return value if value - value == 0 else Unrepresentable(text)  # not inf


def _parse_int(text):
    try:
        return int(text)
    except ValueError:
        return Unrepresentable(text)


_decode = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_parse_float,
                           parse_int=_parse_int).decode
_encode_utf8 = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"),
                                allow_nan=False).encode
_encode_ascii = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def _encode(doc):
    try:
        return _encode_utf8(doc).encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates ("\ud800" came in, goes out)
        return _encode_ascii(doc).encode("ascii")


def parse_json(body):
    """A request body (bytes) as JSON; any failure is a parse error (-32700)."""
    try:
        return _decode(body.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ParseError("Parse error: body is not UTF-8 (%s)" % e.reason) from None
    except ValueError as e:
        raise ParseError("Parse error: %s" % e) from None
    except RecursionError:
        raise ParseError("Parse error: nested too deeply") from None


class JsonRpc20(JsonDocument):
    """The JSON-RPC 2.0 protocol for one call object.

    ``ctx.in_document`` is one request object (the batch layer in
    ``JsonRpcApplication`` splits arrays); ``ctx.out_document`` is the response
    object, or ``None`` for a notification. The id travels in the input
    protocol context: ``ctx.inprot_ctx.jsonrpc_id``.

    Input is soft-validated by default (``validator="soft"``), as SOAP is.
    Results: strings, numbers, booleans and ``None`` as themselves, complex
    models as objects of all their fields (``null`` where unset), arrays as
    lists, dates and times as ISO 8601 strings, decimals as strings; writers
    are built once per type, and anything out of the ordinary goes through
    spyne's own ``_object_to_doc``.
    """

    mime_type = _JSON_TYPE
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

    # -- input --------------------------------------------------------------

    def _integer_from_json(self, cls, value):
        if type(value) is not int:
            raise ValidationError(value, "%r is not an integer")
        return value

    def _double_from_json(self, cls, value):
        if type(value) is float:
            return value
        if type(value) is int:
            try:
                return float(value)
            except OverflowError:
                pass
        raise ValidationError(value, "%r is not a number")

    def _boolean_from_json(self, cls, value):
        if type(value) is not bool:
            raise ValidationError(value, "%r is not a boolean")
        return value

    def _decimal_from_json(self, cls, value):
        if type(value) is int:
            return D(value)
        if type(value) is float:
            return D(repr(value))
        if type(value) is str:
            return self.decimal_from_unicode(cls, value)
        raise ValidationError(value, "%r is not a decimal")

    def create_in_document(self, ctx, in_string_encoding=None):
        """Parses the body; any failure is a parse error (-32700)."""
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
        req_id = doc.get("id", _NO_ID)
        if req_id is not _NO_ID and req_id is not None and \
                type(req_id) not in (str, int, float):
            raise InvalidRequest('Invalid Request: "id" must be a string, a number or null')
        params = doc.get("params")  # null is taken as absent, as many clients send it
        if params is not None and type(params) not in (dict, list):
            # The id could be read, so the error answers it (null only where
            # it could not be: the specification, section 5).
            ctx.inprot_ctx.jsonrpc_id = None if req_id is _NO_ID else req_id
            raise InvalidRequest('Invalid Request: "params" must be an array or an object')
        ctx.inprot_ctx.jsonrpc_id = req_id
        ctx.in_header_doc = None
        ctx.in_body_doc = params
        ctx.method_request_string = "{%s}%s" % (self.app.interface.get_tns(), method)

    def deserialize(self, ctx, message):
        """Params -> ``ctx.in_object``, validated against the declared types:
        any mismatch, unknown name, missing required param or extra positional
        param is invalid params (-32602)."""
        _fire(self.event_manager, "before_deserialize", ctx)
        if ctx.descriptor is None:
            raise MethodNotFound("Method not found: %s" % ctx.method_request_string)
        plan = self._params.get(ctx.descriptor)
        if plan is None:
            plan = self._params[ctx.descriptor] = _ParamPlan(self, ctx.descriptor)
        params = ctx.in_body_doc
        try:
            ctx.in_object = plan.read(ctx, {} if params is None else params)
        except JsonRpcError:
            raise
        except Fault as e:
            raise InvalidParams("Invalid params: %s" % _describe(e))
        except (TypeError, ValueError, ArithmeticError) as e:
            raise InvalidParams("Invalid params: %s" % _short(repr(e)))
        _fire(self.event_manager, "after_deserialize", ctx)

    def _from_dict_value(self, ctx, key, cls, inst, validator):
        # Remember where a value failed, so that the message can say so.
        try:
            return super()._from_dict_value(ctx, key, cls, inst, validator)
        except ValidationError as e:
            if not hasattr(e, "jsonrpc_path"):
                e.jsonrpc_path = []
                e.jsonrpc_value = (inst, cls)
            e.jsonrpc_path.append(key)
            raise

    def validate(self, key, cls, val):
        # JsonDocument.validate, letting null through to the nullable check.
        HierDictDocument.validate(self, key, cls, val)
        if val is not None and issubclass(cls, (DateTime, Date, Time)) and not (
                type(val) is str and cls.validate_string(cls, val)):
            raise ValidationError(val)

    def _doc_to_object(self, ctx, cls, doc, validator=None):
        # spyne iterates whatever it gets: a string given for an array or a
        # complex value would become a list of characters.
        if doc is not None and validator is self.SOFT_VALIDATION:
            if issubclass(cls, Array):
                if type(doc) is not list:
                    raise ValidationError(doc, "%r is not an array")
            elif issubclass(cls, ComplexModelBase) and not issubclass(cls, (Any, AnyDict)):
                if type(doc) is dict:
                    for key in self._multi_valued(cls):
                        value = doc.get(key)
                        if value is not None and type(value) is not list:
                            raise ValidationError(value, "%r is not an array")
                elif type(doc) is list:
                    keys = [k for k, v in cls.get_flat_type_info(cls).items()
                            if not self.get_cls_attrs(v).exc]
                    multi = self._multi_valued(cls)
                    for key, value in zip(keys, doc):
                        if key in multi and value is not None and type(value) is not list:
                            raise ValidationError(value, "%r is not an array")
                else:
                    raise ValidationError(doc, "%r is not an object")
        return super()._doc_to_object(ctx, cls, doc, validator)

    def _multi_valued(self, cls):
        found = self._complex_checks.get(cls)
        if found is None:
            found = self._complex_checks[cls] = frozenset(
                k for k, v in cls.get_flat_type_info(cls).items()
                if self.get_cls_attrs(v).max_occurs > 1)
        return found

    # -- output -------------------------------------------------------------

    def serialize(self, ctx, message):
        """Sets ``ctx.out_document``: the response object, or ``None`` when the
        request was a notification (which gets no reply, not even an error)."""
        _fire(self.event_manager, "before_serialize", ctx)
        req_id = getattr(ctx.inprot_ctx, "jsonrpc_id", None)
        error = ctx.out_error
        if error is None:
            if req_id is _NO_ID:
                ctx.out_document = None
            else:
                result = self._result_writer(ctx.descriptor)(ctx.out_object)
                ctx.out_document = {"jsonrpc": "2.0", "result": result, "id": req_id}
        elif isinstance(error, (ParseError, InvalidRequest)):
            ctx.out_document = {"jsonrpc": "2.0", "error": self.error_object(error),
                                "id": None if req_id is _NO_ID else req_id}
        elif req_id is _NO_ID:
            ctx.out_document = None
        else:
            ctx.out_document = {"jsonrpc": "2.0", "error": self.error_object(error),
                                "id": req_id}
        _fire(self.event_manager, "after_serialize", ctx)

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
            ctx.out_string = [_encode(ctx.out_document)]

    def _result_writer(self, descriptor):
        writer = self._results.get(descriptor)
        if writer is None:
            with self._lock:
                writer = self._results[descriptor] = self._build_result_writer(descriptor)
        return writer

    def _build_result_writer(self, descriptor):
        # ctx.out_object is always a sequence (see Application.process_request).
        out_message = descriptor.out_message
        if descriptor.is_out_bare():
            write = self._writer(out_message)
            return lambda out: write(out[0])
        fields = [(k, self._field_writer(v)) for k, v in self.sort_fields(out_message)
                  if not self.get_cls_attrs(v).exc]
        if not fields:
            return lambda out: None
        if len(fields) == 1:
            write = fields[0][1]
            return lambda out: write(out[0])
        order = list(out_message.get_flat_type_info(out_message))
        index = {k: i for i, k in enumerate(order)}
        pairs = [(k, index[k], w) for k, w in fields]
        return lambda out: {k: w(out[i]) for k, i, w in pairs}

    def _writer(self, cls):
        """callable(value) -> JSON value for one value of ``cls``."""
        writer = self._writers.get(cls)
        if writer is None:
            with self._lock:
                building = {}
                writer = self._build_writer(cls, building)
                self._writers.update(building)
        return writer

    def _field_writer(self, cls, building=None):
        attrs = self.get_cls_attrs(cls)
        write = self._build_writer(cls, building) if building is not None \
            else self._writer(cls)
        default = attrs.default
        if attrs.max_occurs > 1:
            def write_many(value):
                if value is None:
                    value = default
                    if value is None:
                        return None
                return [write(v) for v in value]
            return write_many
        if default is None:
            return write
        return lambda value: write(default if value is None else value)

    def _build_writer(self, cls, building):
        found = self._writers.get(cls) or building.get(cls)
        if found is not None:
            return found
        generic = self._generic_writer(cls)
        attrs = self.get_cls_attrs(cls)
        if attrs.exc or attrs.out_type is not None or attrs.type is not None or \
                attrs.sanitizer is not None or self.polymorphic:
            writer = generic
        elif issubclass(cls, Array):
            (item,) = cls._type_info.values()
            write_item = self._build_writer(item, building)

            def writer(value):
                if value is None:
                    return None
                return [write_item(v) for v in value]
        elif issubclass(cls, (Any, AnyDict)):
            writer = generic
        elif issubclass(cls, ComplexModelBase):
            writer = self._build_complex_writer(cls, attrs, building, generic)
        else:
            writer = self._build_simple_writer(cls, generic)
        building[cls] = writer
        return writer

    def _generic_writer(self, cls):
        # spyne's own way, for one value of cls.
        to_doc = self._object_to_doc
        if cls.Attributes.max_occurs > 1:  # cls is the item type of a sequence
            def write(value):
                if value is None:
                    return None
                doc = to_doc(cls, [value], set())
                return None if doc is None else doc[0]
            return write
        return lambda value: to_doc(cls, value, set())

    def _build_simple_writer(self, cls, generic):
        # Exactly the right Python type: JSON has it; anything else (dates,
        # decimals, byte arrays, uuids, odd values) goes through spyne.
        if issubclass(cls, Boolean):
            ok = (bool,)
        elif issubclass(cls, Integer):
            ok = (int,)
        elif issubclass(cls, Double):
            ok = (float, int)
        elif issubclass(cls, Unicode):
            ok = (str,)
        else:
            return lambda value: None if value is None else generic(value)

        def writer(value):
            if value is None:
                return None
            if type(value) in ok:
                return value
            return generic(value)
        return writer

    def _build_complex_writer(self, cls, attrs, building, generic):
        if attrs.simple_field is not None or attrs.wrapper or \
                attrs.complex_as not in (None, dict) or self.complex_as is not dict or \
                getattr(cls.Attributes, "serialize_as", None) is list or \
                self.key_encoding is not None:
            return generic
        fields = []
        to_instance = cls.get_serialization_instance

        def writer(value):
            if value is None:
                return None
            if type(value) is dict:  # a plain dict of the fields will do
                return {name: write(value.get(key)) for name, key, write in fields}
            if type(value) in (list, tuple):
                value = to_instance(value)
            return {name: write(getattr(value, key, None)) for name, key, write in fields}
        building[cls] = writer  # before the members: a type may contain itself
        for key, member in self.sort_fields(cls):
            member_attrs = self.get_cls_attrs(member)
            if member_attrs.exc:
                continue
            name = member_attrs.sub_name or key
            fields.append((name, key, self._field_writer(member, building)))
        return writer

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


class _ParamPlan:
    """How one method's params become its arguments, worked out once.

    For the usual (wrapped) methods the arguments are read one by one with
    spyne's ``_from_dict_value`` (its conversion and soft validation) into an
    instance of the method's input message, built without the cost of
    ``ComplexModel.__init__``; a bare method gets spyne's ``_doc_to_object``.
    """

    def __init__(self, protocol, descriptor):
        self.protocol = protocol
        cls = self.message = descriptor.in_message
        fti = cls.get_flat_type_info(cls)
        members = [(k, v) for k, v in fti.items() if not protocol.get_cls_attrs(v).exc]
        self.keys = [k for k, _ in members]
        self.members = []
        for key, member in members:
            attrs = protocol.get_cls_attrs(member)
            self.members.append((key, member, attrs.max_occurs > 1,
                                 attrs.default, attrs.default_factory))
        self.index = {k: i for i, k in enumerate(self.keys)}
        for alt, (member, key) in fti.alt.items():
            if key in self.index:
                self.index.setdefault(alt, self.index[key])
        self.required = [i for i, (_, member) in enumerate(members)
                         if protocol.get_cls_attrs(member).min_occurs > 0]
        self.fast = descriptor.body_style is BODY_STYLE_WRAPPED and \
            len(members) == len(fti) and \
            getattr(cls, "__orig__", None) is None

    def read(self, ctx, params):
        protocol = self.protocol
        members = self.members
        if type(params) is list:
            if len(params) > len(members):
                raise InvalidParams("Invalid params: at most %d expected, %d given"
                                    % (len(members), len(params)))
            pairs = list(enumerate(params))
        else:
            index = self.index
            pairs = []
            for key, value in params.items():
                i = index.get(key)
                if i is None:
                    raise InvalidParams("Invalid params: unknown parameter %r" % key)
                pairs.append((i, value))
        if self.required:
            given = {i for i, _ in pairs}
            for i in self.required:
                if i not in given:
                    raise InvalidParams("Invalid params: missing required parameter %r"
                                        % self.keys[i])
        if not self.fast:
            return protocol._doc_to_object(ctx, self.message, params, protocol.validator)

        values = [factory() if factory is not None else default
                  for _, _, _, default, factory in members]
        validator = protocol.validator
        read = protocol._from_dict_value
        for i, value in pairs:
            key, member, many, _, _ = members[i]
            if many and value is not None:
                if type(value) is not list:
                    error = ValidationError(value)
                    error.jsonrpc_path, error.jsonrpc_value = [key], (value, Array)
                    raise error
                values[i] = [read(ctx, key, member, v, validator) for v in value]
            else:
                values[i] = read(ctx, key, member, value, validator)
        inst = self.message.__new__(self.message)
        inst.__dict__.update(zip(self.keys, values))
        return inst



_INTERNAL_ERROR_NULL_ID = (b'{"jsonrpc":"2.0","error":{"code":-32603,"message":'
                           b'"Internal error","data":{"faultcode":"Server.InternalError"}},'
                           b'"id":null}')


def _http_error(start_response, status, text, headers=()):
    body = ("%s: %s\n" % (status, text)).encode("utf-8")
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body)))] + list(headers))
    return [body]


class _ErrorNotes:
    """What went wrong in one HTTP request, logged as ONE line at its end
    (a batch of 200,000 bad calls makes one line, not 200,000), and the
    traceback of the first crash only."""

    __slots__ = ("count", "first", "crashes")

    def __init__(self):
        self.count = 0
        self.first = None
        self.crashes = 0

    def note(self, text):
        self.count += 1
        if self.first is None:
            self.first = _short(text)

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


def _notes(ctx):
    notes = ctx.transport.req_env.get("tasktypes.jsonrpc_errors")
    if notes is None:  # a call run on its own, outside __call__
        notes = ctx.transport.req_env["tasktypes.jsonrpc_errors"] = _ErrorNotes()
    return notes


class JsonRpcApplication(WsgiApplication):
    """The WSGI callable serving a spyne ``Application`` whose protocols are
    ``JsonRpc20``: POST only (405 otherwise), one reply per call with an id,
    HTTP 204 when there is none, always ``application/json; charset=utf-8``.

    Batches are the one thing spyne's server has no place for: spyne runs one
    method per request. So this layer parses the body once, and for an array
    runs each member through the same per-call pipeline with a context of its
    own, then joins the replies. Everything inside one call (parsing the
    request object, finding the method, params, faults, results) is the
    protocol's and spyne's. The call itself follows
    ``Application.process_request``, without spyne's logging of every client
    fault with a traceback and of whole invalid documents. Auxiliary methods
    (spyne's ``_aux``) are not run: only the primary method of a name is.
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
        #: name -> call(params, environ): methods the application answers
        #: without spyne's per-call context when their params are plain
        #: (``tasktypes.direct``); NOT_DIRECT sends a call through spyne.
        self.direct_methods = dict(direct_methods or {})

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") != "POST":
            return _http_error(start_response, "405 Method Not Allowed",
                               "JSON-RPC takes POST", [("Allow", "POST")])
        media_type = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
        if media_type != "application/json":
            # Not a form or text/plain: a web page may post those to us from
            # a visitor's browser without asking (CSRF); application/json
            # needs the browser's CORS preflight, which we do not grant.
            return _http_error(start_response, "415 Unsupported Media Type",
                               "JSON-RPC takes Content-Type: application/json")

        # A context for the request as a whole only where someone listens
        # to its events: building one costs more than a whole direct call.
        listened = self.event_manager.handlers.get("wsgi_call") or \
            self.event_manager.handlers.get("wsgi_close")
        ctx = WsgiMethodContext(self, environ, _JSON_TYPE) if listened else None
        if ctx is not None:
            _fire(self.event_manager, "wsgi_call", ctx)
        body = self._read_body(environ)
        environ["tasktypes.jsonrpc_errors"] = errors = _ErrorNotes()
        doc = None
        try:
            if body.count(b"{") + body.count(b"[") > _CONTAINERS_PER_CALL * self.max_batch:
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
            errors.note(e.faultstring)
            whole = WsgiMethodContext(self, environ, _JSON_TYPE)
            whole.out_error = e
            body = self._reply(whole)
        if ctx is not None:
            _fire(self.event_manager, "wsgi_close", ctx)
        errors.log(doc_size=len(doc) if type(doc) is list else 1)
        if not body:
            start_response("204 No Content", [])
            return []
        start_response("200 OK", [("Content-Type", _JSON_TYPE),
                                  ("Content-Length", str(len(body)))])
        return [body]

    def _call(self, call, environ):
        """One request object -> its reply (bytes, empty for a notification):
        directly where a direct method takes it, else through spyne."""
        reply = self._direct_reply(call, environ)
        if reply is None:
            reply = self.run_call(self._call_context(environ, call))
        return reply

    @staticmethod
    def _read_body(environ):
        # The application in front limits the size (HTTP 413) from
        # CONTENT_LENGTH; a body without one is read whole.
        stream = environ["wsgi.input"]
        length = environ.get("CONTENT_LENGTH")
        if not length:
            return stream.read() if "HTTP_TRANSFER_ENCODING" in environ else b""
        return stream.read(int(length))

    def _call_context(self, environ, call):
        ctx = WsgiMethodContext(self, environ, _JSON_TYPE)
        ctx.in_document = call
        return ctx

    def run_call(self, ctx):
        """One request object in ``ctx.in_document`` -> its reply as bytes
        (empty for a notification)."""
        protocol = self.app.in_protocol
        try:
            protocol.decompose_incoming_envelope(ctx, protocol.REQUEST)
            system = self.system_methods.get(ctx.in_document["method"])
            if system is not None:
                # Once per HTTP request: a batch of 1000 rpc.discover calls
                # must not cost 1000 copies of the document.
                env = ctx.transport.req_env
                if env.get("tasktypes.system_called") \
                        and ctx.inprot_ctx.jsonrpc_id is not _NO_ID:
                    raise InvalidParams("Invalid params: %s answers once per request"
                                        % ctx.in_document["method"])
                env["tasktypes.system_called"] = True
                return self._system_reply(ctx, system)
            handles = protocol.get_call_handles(ctx)
            if not handles:
                raise MethodNotFound("Method not found: %s" % ctx.in_document["method"])
            ctx.descriptor = handles[0]
            protocol.deserialize(ctx, protocol.REQUEST)
        except JsonRpcError as e:
            _notes(ctx).note(e.faultstring)
            ctx.in_error = ctx.out_error = e
        else:
            self._process(ctx)
        return self._reply(ctx)

    def _direct_reply(self, call, environ):
        """The reply (bytes, empty for a notification) of a call that a
        direct method answers, or None: then spyne's pipeline runs it."""
        if type(call) is not dict or not self.direct_methods:
            return None
        direct = self.direct_methods.get(call.get("method"))
        if direct is None or call.get("jsonrpc") != "2.0":
            return None
        req_id = call.get("id", _NO_ID)
        if req_id is not _NO_ID and req_id is not None and type(req_id) not in (str, int):
            return None  # floats and the odd ids: spyne's path says what is wrong
        notes = environ["tasktypes.jsonrpc_errors"]
        failure = None
        try:
            result = direct(call.get("params"), environ)
        except Fault as fault:
            notes.note("%s: %s: %s" % (call["method"], fault.faultcode,
                                       _short(fault.faultstring)))
            failure = fault
        except Exception:  # as spyne's path: an internal error, logged
            notes.crashed("JSON-RPC %s raised" % call["method"])
            failure = InternalError()
        if failure is not None:
            if req_id is _NO_ID:
                return b""
            return _encode({"jsonrpc": "2.0", "error": JsonRpc20.error_object(failure),
                            "id": req_id})
        if result is NOT_DIRECT:
            return None
        if req_id is _NO_ID:
            return b""
        return _encode({"jsonrpc": "2.0", "result": result, "id": req_id})

    def _system_reply(self, ctx, method):
        if ctx.in_body_doc:
            raise InvalidParams("Invalid params: %s takes none"
                                % ctx.in_document["method"])
        req_id = ctx.inprot_ctx.jsonrpc_id
        ctx.close()
        if req_id is _NO_ID:
            return b""
        return b'{"jsonrpc":"2.0","result":%s,"id":%s}' % (method(), _encode(req_id))

    def _process(self, ctx):
        # Application.process_request, with short logs and no Redirect.
        descriptor = ctx.descriptor
        try:
            _fire_ctx(ctx, "method_call")
            if descriptor.body_style is BODY_STYLE_BARE:
                ctx.in_object = [ctx.in_object]
            elif descriptor.body_style is BODY_STYLE_EMPTY:
                ctx.in_object = []
            ctx.out_object = self.app.call_wrapper(ctx)
            if descriptor.body_style is not BODY_STYLE_WRAPPED or \
                    len(descriptor.out_message._type_info) <= 1:
                ctx.out_object = [ctx.out_object]
            ctx.protocol = ctx.outprot_ctx
            _fire_ctx(ctx, "method_return_object")
        except Fault as e:
            # A fault is an answer the method chose to give, not a crash.
            _notes(ctx).note("%s: %s: %s" % (descriptor.name, e.faultcode,
                                             _short(e.faultstring)))
            ctx.out_error = e
            _fire_ctx(ctx, "method_exception_object")
        except Exception:
            _notes(ctx).crashed("JSON-RPC %s raised" % descriptor.name)
            ctx.out_error = InternalError()
            _fire_ctx(ctx, "method_exception_object")

    def _reply(self, ctx):
        protocol = self.app.out_protocol
        try:
            protocol.serialize(ctx, protocol.RESPONSE)
            protocol.create_out_string(ctx)
        except Exception:
            # A result spyne cannot write, or JSON cannot hold (NaN): the
            # method ran, but the client gets an internal error; if even that
            # cannot be written (an id that JSON cannot hold), it goes with
            # the id null. Either way it costs this call only.
            _notes(ctx).crashed("JSON-RPC result of %s could not be written"
                                % (ctx.descriptor and ctx.descriptor.name))
            ctx.out_error = InternalError()
            try:
                protocol.serialize(ctx, protocol.RESPONSE)
                protocol.create_out_string(ctx)
            except Exception:
                ctx.out_string = [_INTERNAL_ERROR_NULL_ID]
        _fire_ctx(ctx, "method_return_string" if ctx.out_error is None
                       else "method_exception_string")
        ctx.close()
        return b"".join(ctx.out_string)
