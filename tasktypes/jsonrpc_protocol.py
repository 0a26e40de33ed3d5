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

spyne internals used here, as read from spyne 2.14.0 (the rest is public):
``_from_unicode_handlers`` (``ProtocolBase``: per-type readers, replaced
for JSON's own types), ``_from_dict_value`` and ``_doc_to_object``
(``HierDictDocument``: reading one value and one object, wrapped to say
where a value failed), ``_object_to_doc`` (``JsonDocument``'s generic
writer, for what the writers built once per type do not take) and a
message class's ``__orig__`` (set by ``customize()``).
"""

import json
import logging
import threading
from decimal import Decimal as D

from spyne import BODY_STYLE_WRAPPED
from spyne.error import ValidationError
from spyne.model import (Any, AnyDict, Array, Boolean, ComplexModelBase, Date,
                         DateTime, Decimal, Double, Fault, Integer, Time, Unicode)
from spyne.protocol.dictdoc import HierDictDocument
from spyne.protocol.json import JsonDocument

from tasktypes.errors import (InternalError, InvalidParams, InvalidRequest, MethodNotFound,
                              ParseError, ProtocolError, codes_of, jsonrpc_code)
from tasktypes.validation import expected_type

logger = logging.getLogger(__name__)

# The specification's error codes (section 5.1), read from the one table.
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = (
    codes_of(cls)[1] for cls in (ParseError, InvalidRequest, MethodNotFound,
                                 InvalidParams, InternalError))

#: Longest error message or log line quoting client input, in characters.
MAX_QUOTE = 200

#: The ``id`` of a notification: the request had no "id" member at all.
NO_ID = object()
JSON_TYPE = "application/json; charset=utf-8"


def short(text, limit=MAX_QUOTE):
    """``text`` cut to ``limit`` characters for a message or a log line,
    saying how long it was."""
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
    return "%s: expected %s, got %s" % (where, kind, short(shown, MAX_QUOTE // 2))


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
        return short(self.text, 40)


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


def encode(doc):
    """A JSON value as the bytes of a reply: UTF-8, or ASCII with escapes
    where the text holds a lone surrogate."""
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

    def deserialize(self, ctx, message):
        """Params -> ``ctx.in_object``, validated against the declared types:
        any mismatch, unknown name, missing required param or extra positional
        param is invalid params (-32602)."""
        self._fire("before_deserialize", ctx)
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
            raise InvalidParams("Invalid params: %s" % short(repr(e)))
        self._fire("after_deserialize", ctx)

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
            write_item = self._build_writer(cls.get_inner_type(), building)

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
            getattr(cls, "__orig__", None) is None  # not a customize()d message

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
