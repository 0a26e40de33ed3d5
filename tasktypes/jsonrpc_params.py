"""A JSON-RPC call's params -> its method's arguments, checked against the
declared types: any mismatch, unknown name, missing required param or extra
positional param is invalid params (-32602), with a message that says where.

spyne's soft validator does the checking, made strict where JSON and
Python disagree (``true`` is no Integer, ``"3"`` no Double, a string is no
array); each method's plan (``_ParamPlan``) is worked out once. It is a
mixin of ``JsonRpc20`` (``jsonrpc_protocol``), whose ``__init__`` registers
the JSON readers below and makes the caches ``_params`` and
``_complex_checks``; it is apart because reading params is the protocol's
one intricate input stage.

spyne internals used here, as read from spyne 2.14.0:
``_from_unicode_handlers`` (``ProtocolBase``: per-type readers, replaced
for JSON's own types), ``_from_dict_value`` and ``_doc_to_object``
(``HierDictDocument``: reading one value and one object, wrapped to say
where a value failed) and a message class's ``__orig__`` (set by
``customize()``).
"""

from decimal import Decimal as D

from spyne import BODY_STYLE_WRAPPED
from spyne.error import ValidationError
from spyne.model import (Any, AnyDict, Array, ComplexModelBase, Date,
                         DateTime, Fault, Time)
from spyne.protocol.dictdoc import HierDictDocument

from tasktypes.errors import InvalidParams, ProtocolError
from tasktypes.jsonrpc_json import MAX_QUOTE, encode_ascii, short
from tasktypes.validation import expected_type

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
        shown = encode_ascii(value)
    except (TypeError, ValueError, RecursionError):
        shown = repr(value)
    kind = "array" if issubclass(cls, Array) else expected_type(cls)
    return "%s: expected %s, got %s" % (where, kind, short(shown, MAX_QUOTE // 2))


class JsonParams:
    """Params read and validated (mixed into ``JsonRpc20``)."""

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
