"""The OpenRPC 1.x document (https://spec.open-rpc.org) of a JSON-RPC
application: every published method with its params, result and errors.

    document = openrpc_document(spyne_app)        # a dict, built once per app
    body = openrpc_json(spyne_app)                # the same, as UTF-8 JSON bytes

``make_application`` serves it at ``GET /openrpc.json`` and as the reply of
``rpc.discover`` on ``/jsonrpc``. It is built from spyne's own descriptors
(``app.interface.service_method_map``: each method's ``in_message`` and
``out_message``), never by hand per method, so it says what the JSON-RPC
protocol accepts:

- params by name and by position (``paramStructure: "either"``), in the
  declared order; ``required`` where ``min_occurs`` is 1 or more; ``null``
  allowed where the type is nillable;
- JSON Schemas (draft-07, as OpenRPC 1.x uses) from the spyne types and their
  ``Attributes``: Integer as ``integer`` (Integer32/Integer64 and friends
  with their bit sizes as bounds), Double as ``number``, ``ge``/``le``/``gt``/
  ``lt`` as ``minimum``/``maximum``/``exclusiveMinimum``/``exclusiveMaximum``,
  Unicode as ``string`` with ``minLength``/``maxLength``/``pattern``,
  ``values`` and Enum as ``enum``, Boolean, Date/DateTime/Time as strings with
  the pattern spyne reads, Array and multi-valued members as ``array``,
  ComplexModel as a ``$ref`` into ``components.schemas``: an object of its
  fields, or an array of their values in declared order, as spyne reads both
  (members unknown to a ComplexModel are ignored by the server, so no schema
  forbids them; null is taken for any Array or ComplexModel);
- errors: ``components.errors`` holds the contract's table, read from
  ``tasktypes.errors.CODES`` (the meaning is each class's docstring, the
  faultcode is in ``data``), with the JSON-RPC protocol errors; each method
  refers to those it can answer.

The ``x-tasktypes`` extension
-----------------------------
Every method of a task type carries the member

    "x-tasktypes": {"task_type": "countdown", "role": "submit"}

where ``task_type`` is the name of the task-type method (``countdown``) and
``role`` is ``submit`` for the method that starts a task, or the control's
role: ``progress``, ``result``, ``cancel``, ``wait`` (and any control added
later, such as ``log``). Plain methods carry no ``x-tasktypes``. Clients (the
``tasktypes`` command line, the browser page) tell task types and controls
by this member, not by guessing from method names. The role comes from ``decorator.TaskRole`` on
each published function, so a new control needs nothing here.

Where the document gives no ``servers``, the endpoint is ``/jsonrpc`` beside
``/openrpc.json``; ``public_url`` (``TASKTYPES_PUBLIC_URL``) makes it absolute.
"""

import datetime
import decimal
import inspect
import json
import re
from importlib import metadata

from spyne.model import (Any, AnyDict, Array, Boolean, ByteArray, ComplexModelBase,
                         Date, DateTime, Decimal, Double, Integer, Time, Unicode, Uuid)
from spyne.model.enum import EnumBase
from spyne.model.primitive.number import PositiveInteger, UnsignedInteger

from . import errors

#: The OpenRPC version the document follows.
OPENRPC_VERSION = "1.3.2"

#: The name of the discovery method (OpenRPC's service discovery).
DISCOVER = "rpc.discover"

#: The extension member that marks the methods of a task type.
EXTENSION = "x-tasktypes"

_OTHER_FAULT = "Fault"

# What a method can answer besides InvalidParams and InternalError, by role.
# A control not named here (one added later) works on a task id: it gets the
# errors of every such call.
_ROLE_ERRORS = {
    None: [_OTHER_FAULT],  # a plain method: whatever Fault it raises
    "submit": [errors.IdempotencyConflict, errors.StoreUnavailable, errors.Busy],
    "result": [errors.TaskNotFound, errors.TaskNotFinished, errors.TaskFailed,
               errors.TaskCancelled, errors.TaskTimedOut, errors.StoreUnavailable],
    # beyond TASKTYPES_MAX_WAITERS waits at once
    "wait": [errors.TaskNotFound, errors.StoreUnavailable, errors.Busy],
}
_TASK_ID_ERRORS = [errors.TaskNotFound, errors.StoreUnavailable]

# The dates and times spyne reads (its own regexes, made whole-string,
# without Python's named groups, and with the ranges of months, days, hours,
# minutes and seconds; a day past its month's end still passes, and the
# server refuses it).
_TIME = r"([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?"
_OFFSET = r"[+-]\d{2}:\d{2}"
_DATE = r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
# A decimal written as a string, as Python's Decimal reads it (no NaN or
# Infinity, which spyne's bounds refuse).
_DECIMAL_PATTERN = r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$"
_DATE_PATTERNS = {
    Date: "^%s(%s|Z)?$" % (_DATE, _OFFSET),
    DateTime: "^%s[T ]%s(Z|%s)?$" % (_DATE, _TIME, _OFFSET),
    Time: "^%s$" % _TIME,
}


def openrpc_document(app):
    """The OpenRPC document of a spyne ``Application`` served by
    ``JsonRpc20``, as a dict; built on the first call and kept on ``app``."""
    document = getattr(app, "tasktypes_openrpc", None)
    if document is None:
        document = app.tasktypes_openrpc = _DocumentBuilder(app).build()
    return document


def openrpc_json(app):
    """``openrpc_document(app)`` as UTF-8 JSON bytes, encoded once."""
    body = getattr(app, "tasktypes_openrpc_json", None)
    if body is None:
        body = app.tasktypes_openrpc_json = json.dumps(
            openrpc_document(app), ensure_ascii=False, separators=(",", ":"),
            allow_nan=False).encode("utf-8")
    return body


def _version():
    try:
        return metadata.version("tasktypes")
    except metadata.PackageNotFoundError:
        return "0"


def _error_objects():
    table = {}
    for cls, (faultcode, code) in errors.jsonrpc_rows().items():
        table[cls.__name__] = {"code": code, "message": _first_line(cls.__doc__),
                               "data": {"faultcode": faultcode}}
    table[_OTHER_FAULT] = {
        "code": errors.OTHER_FAULT_CODE,
        "message": "Any other Fault raised by a service; data.faultcode holds its faultcode.",
        "data": {"faultcode": "Server"}}
    return table


def _first_line(text):
    text = inspect.cleandoc(text or "")
    return " ".join(text.split("\n\n", 1)[0].split())


def _number(value):
    """A JSON number for a spyne bound, or None for an infinite one."""
    if value is None:
        return None
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float):
        return None if value in (float("inf"), float("-inf")) or value != value else value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _error_ref(error):
    name = error if isinstance(error, str) else error.__name__
    return {"$ref": "#/components/errors/%s" % name}


class _DocumentBuilder:
    """Walks one application's methods once; ``schemas`` collects the
    ComplexModels met on the way, by component name."""

    def __init__(self, app):
        self.app = app
        self.protocol = app.in_protocol
        self.schemas = {}
        self.names = {}  # ComplexModel class -> component name

    def build(self):
        document = {
            "openrpc": OPENRPC_VERSION,
            "info": {"title": self.app.name, "version": _version(),
                     "description": "JSON-RPC 2.0 methods; task types are marked with "
                                    "the %s extension member." % EXTENSION},
        }
        public_url = getattr(self.app, "tasktypes_public_url", None)
        if public_url:
            document["servers"] = [{"name": "JSON-RPC 2.0",
                                    "url": public_url.rstrip("/") + "/jsonrpc"}]
        document["methods"] = [self.method(d) for d in self._descriptors()]
        document["components"] = {"schemas": dict(sorted(self.schemas.items())),
                                  "errors": _error_objects()}
        return document

    def _descriptors(self):
        """Each method's primary descriptor, a task type's controls right
        after the method that starts it."""
        groups = {}
        for handles in self.app.interface.service_method_map.values():
            primary = [d for d in handles if d.aux is None]
            if not primary:
                continue
            descriptor = primary[0]
            role = _role_of(descriptor)
            group = role.task_type if role is not None else descriptor.name
            groups.setdefault(group, []).append(descriptor)
        ordered = []
        for members in groups.values():
            members.sort(key=lambda d: _role_of(d).role != "submit" if _role_of(d) else 0)
            ordered.extend(members)
        return ordered

    def method(self, descriptor):
        role = _role_of(descriptor)
        method = {"name": descriptor.name}
        doc = inspect.cleandoc(descriptor.doc or "")
        if doc:
            method["summary"] = _first_line(doc)
            if doc != method["summary"]:
                method["description"] = doc
        method["paramStructure"] = "either"
        method["params"] = self.params(descriptor)
        method["result"] = self.result(descriptor)
        role_name = role.role if role is not None else None
        found = _ROLE_ERRORS.get(role_name, _TASK_ID_ERRORS)
        method["errors"] = [_error_ref(e) for e in found] + [
            _error_ref("InvalidParams"), _error_ref("InternalError")]
        if role is not None:
            method[EXTENSION] = {"task_type": role.task_type, "role": role.role}
        return method

    def params(self, descriptor):
        message = descriptor.in_message
        found = []
        for key, member in message.get_flat_type_info(message).items():
            attrs = self.protocol.get_cls_attrs(member)
            if attrs.exc:
                continue
            param = {"name": key}
            if attrs.doc:
                param["description"] = str(attrs.doc)
            param["required"] = attrs.min_occurs > 0
            param["schema"] = self.member_schema(member)
            found.append(param)
        return found

    def result(self, descriptor):
        out = descriptor.out_message
        if descriptor.is_out_bare():
            return {"name": "result", "schema": self.member_schema(out)}
        fields = [(k, v) for k, v in self.protocol.sort_fields(out)
                  if not self.protocol.get_cls_attrs(v).exc]
        if not fields:
            return {"name": "result", "schema": {"type": "null"}}
        if len(fields) == 1:  # the JSON-RPC protocol writes it unwrapped
            return {"name": fields[0][0], "schema": self.member_schema(fields[0][1])}
        return {"name": "result", "schema": {
            "type": "object",
            "properties": {k: self.member_schema(v) for k, v in fields}}}

    # -- schemas ---------------------------------------------------------

    def member_schema(self, cls):
        """The schema of a param or a ComplexModel member: the type's own,
        a list of it where it is multi-valued, null allowed where nillable."""
        attrs = self.protocol.get_cls_attrs(cls)
        schema = self.type_schema(cls)
        if attrs.max_occurs > 1:
            schema = {"type": "array", "items": schema}
        # spyne reads null as an empty value for an Array or a ComplexModel,
        # whatever its nillable says: the schema says what the server takes.
        if attrs.nullable or issubclass(cls, ComplexModelBase):
            schema = _nullable(schema)
        return schema

    def type_schema(self, cls):
        attrs = self.protocol.get_cls_attrs(cls)
        if issubclass(cls, (Any,)):
            return {}
        if issubclass(cls, AnyDict):
            return {"type": "object"}
        if issubclass(cls, Array):
            item = cls.get_inner_type()
            return {"type": "array", "items": self._item_schema(item)}
        if issubclass(cls, ComplexModelBase):
            return {"$ref": "#/components/schemas/%s" % self.component(cls)}
        schema = self.simple_schema(cls, attrs)
        values = attrs.values
        if issubclass(cls, EnumBase):
            values = cls.__values__
        if values:
            schema["enum"] = [self._enum_value(v) for v in values]
        doc = attrs.doc
        if doc:
            schema["description"] = str(doc)
        return schema

    def _item_schema(self, item):
        # An Array's member is multi-valued by construction: one item of it.
        schema = self.type_schema(item)
        if self.protocol.get_cls_attrs(item).nullable:
            schema = _nullable(schema)
        return schema

    @staticmethod
    def _enum_value(value):
        if isinstance(value, (datetime.date, datetime.time)):
            return value.isoformat()
        if isinstance(value, decimal.Decimal):
            return _number(value)
        return value

    def simple_schema(self, cls, attrs):
        if issubclass(cls, Boolean):
            return {"type": "boolean"}
        if issubclass(cls, Integer):
            return self._number_schema("integer", cls, attrs)
        if issubclass(cls, Double):
            return self._number_schema("number", cls, attrs)
        if issubclass(cls, Decimal):  # the protocol takes numbers and numeric strings
            schema = self._number_schema("number", cls, attrs)
            schema["type"] = ["number", "string"]
            schema["pattern"] = _DECIMAL_PATTERN  # bounds apply to numbers only
            return schema
        for date_cls in (Date, DateTime, Time):  # Date before its base DateTime
            if issubclass(cls, date_cls):
                return {"type": "string", "title": date_cls.get_type_name(),
                        "pattern": _DATE_PATTERNS[date_cls]}
        if issubclass(cls, Uuid):
            return {"type": "string", "format": "uuid"}
        if issubclass(cls, ByteArray):
            return {"type": "string", "contentEncoding": "base64"}
        if issubclass(cls, Unicode):
            schema = {"type": "string"}
            if attrs.min_len:
                schema["minLength"] = int(attrs.min_len)
            if _number(attrs.max_len) is not None:
                schema["maxLength"] = int(attrs.max_len)
            if attrs.pattern is not None:  # spyne matches the whole string
                schema["pattern"] = "^(?:%s)$" % attrs.pattern
            return schema
        return {"description": "a spyne %s value" % cls.get_type_name()}

    def _number_schema(self, kind, cls, attrs):
        schema = {"type": kind}
        # min_bound/max_bound: the bit sizes of Integer32 and friends (spyne
        # 2.14.0's TBoundedInteger attributes)
        low = [_number(attrs.ge), _number(getattr(attrs, "min_bound", None))]
        high = [_number(attrs.le), _number(getattr(attrs, "max_bound", None))]
        if issubclass(cls, UnsignedInteger):
            low.append(1 if issubclass(cls, PositiveInteger) else 0)
            if _number(getattr(attrs, "max_bound", None)) is not None:
                # spyne's unsigned bounded integers take value < max_bound
                high.remove(_number(attrs.max_bound))
                high.append(attrs.max_bound - 1)
        low = [v for v in low if v is not None]
        high = [v for v in high if v is not None]
        if low:
            schema["minimum"] = max(low)
        if high:
            schema["maximum"] = min(high)
        if _number(attrs.gt) is not None:
            schema["exclusiveMinimum"] = _number(attrs.gt)
        if _number(attrs.lt) is not None:
            schema["exclusiveMaximum"] = _number(attrs.lt)
        return schema

    def component(self, cls):
        """The component name of a ComplexModel, its schema added on first use."""
        # customize() makes subclasses; __orig__ is the class it was made
        # from (spyne 2.14.0's ModelBase attribute)
        cls = getattr(cls, "__orig__", None) or cls
        name = self.names.get(cls)
        if name is not None:
            return name
        base = re.sub(r"[^A-Za-z0-9._-]", "_", cls.get_type_name())
        name, n = base, 1
        while name in self.schemas:  # the same type name in two namespaces
            n += 1
            name = "%s%d" % (base, n)
        self.names[cls] = name
        self.schemas[name] = {}  # before the members: a type may contain itself
        properties, required = {}, []
        for key, member in self.protocol.sort_fields(cls):
            member_attrs = self.protocol.get_cls_attrs(member)
            if member_attrs.exc:
                continue
            properties[key] = self.member_schema(member)
            if member_attrs.min_occurs > 0:
                required.append(key)
        # An object of its fields, or (as spyne also reads it) an array of
        # their values in declared order: JSON Schema applies "properties"
        # and "required" to objects only, "items" and "minItems" to arrays.
        schema = {"type": ["object", "array"], "title": cls.get_type_name()}
        doc = cls.__dict__.get("__doc__")
        if doc:
            schema["description"] = _first_line(doc)
        schema["properties"] = properties
        if required:
            schema["required"] = required
        schema["items"] = list(properties.values())
        if required:
            schema["minItems"] = max(list(properties).index(k) for k in required) + 1
        self.schemas[name] = schema
        return name


def _role_of(descriptor):
    """The ``decorator.TaskRole`` of a published function, or None."""
    return getattr(descriptor.function, "tasktypes_role", None)


def _nullable(schema):
    if "enum" in schema:
        return dict(schema, enum=schema["enum"] + [None])
    kind = schema.get("type")
    if isinstance(kind, str) and "$ref" not in schema:
        return dict(schema, type=[kind, "null"])
    if isinstance(kind, list):
        return dict(schema, type=kind + ["null"]) if "null" not in kind else schema
    if not schema or "type" not in schema and "$ref" not in schema:
        return schema  # anything, null included
    return {"anyOf": [schema, {"type": "null"}]}
