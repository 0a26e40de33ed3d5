"""A JSON-RPC method's result -> the JSON value of its ``result`` member,
written per the method's declared return type.

Strings, numbers, booleans and ``None`` as themselves, complex models as
objects of all their fields (``null`` where unset), arrays as lists, dates
and times as ISO 8601 strings, decimals as strings. A writer is built once
per type (and once per method for its result), so writing a result costs no
walk of spyne's type information; anything out of the ordinary goes through
spyne's own ``_object_to_doc`` (``JsonDocument``'s generic writer).

It is a mixin of ``JsonRpc20`` (``jsonrpc_protocol``), whose ``__init__``
makes the caches ``_writers`` and ``_results`` and their ``_lock``; the
direct path (``direct``) uses ``_direct_result_writer``. It is apart because
the writers are half of the protocol's code and none of its stages.
"""

from json.encoder import encode_basestring
from math import isfinite
from operator import attrgetter

from spyne.model import (Any, AnyDict, Array, Boolean, ComplexModelBase, Double,
                         Integer, Unicode)

from tasktypes.float_text import float_text
from tasktypes.jsonrpc_json import JsonText


class ResultWriters:
    """Results written as JSON per type (mixed into ``JsonRpc20``)."""

    def _result_writer(self, descriptor):
        writer = self._results.get(descriptor)
        if writer is None:
            with self._lock:
                writer = self._results[descriptor] = self._build_result_writer(descriptor)
        return writer

    def _direct_result_writer(self, descriptor):
        """``_result_writer`` for the direct path (``direct``), whose replies
        take JSON text as well as JSON values: a result that is one complex
        model of plain fields (a poll's ``TaskProgressResponse``) is written
        as text by a template made once, not as a dict that the encoder then
        walks key by key (~10 k instructions less a poll, of ~105 k). What
        the template does not take as it is goes to
        ``_result_writer``: an instance of another class, a field of
        another type than the one its field declares (None, an int in a
        float field, a subclass), a float that is not finite."""
        write = self._result_writer(descriptor)
        plan = self._text_plan(descriptor)
        if plan is None:
            return write
        cls, names, types = plan
        get = attrgetter(*(key for key, _ in names))
        floats = [i for i, t in enumerate(types) if t is float]
        strings = [i for i, t in enumerate(types) if t is str]
        template = "{%s}" % ",".join(
            "%s:%s" % (encode_basestring(name).replace("%", "%%"), "%r" if t is int else "%s")
            for (_, name), t in zip(names, types))

        def write_text(out):
            value = out[0]
            if type(value) is not cls:
                return write(out)
            try:
                values = get(value)
            except AttributeError:  # unset: the writer's None
                return write(out)
            if [*map(type, values)] != types:
                return write(out)
            values = [*values]
            for i in floats:
                number = values[i]
                if not isfinite(number):  # the encoder's ValueError
                    return write(out)
                values[i] = float_text(number)  # the encoder's repr, remembered
            for i in strings:
                values[i] = encode_basestring(values[i])
            try:
                return JsonText(template % tuple(values))
            except ValueError:  # an int of over 4300 digits: as the encoder fails
                return write(out)
        return write_text

    def _text_plan(self, descriptor):
        """``(cls, [(key, name)], [type])`` where the result is one complex
        model ``cls`` whose fields ``_result_writer`` writes as they are
        (``_plain_types``) when they are ints, floats or strings; else None."""
        if descriptor.is_out_bare():
            return None
        wrapped = [v for _, v in self.sort_fields(descriptor.out_message)
                   if not self.get_cls_attrs(v).exc]
        if len(wrapped) != 1:
            return None
        cls = wrapped[0]
        attrs = self.get_cls_attrs(cls)
        if attrs.max_occurs > 1 or attrs.default is not None:
            return None
        fields = getattr(self._writer(cls), "plan", None)  # a complex writer's
        if not fields or len(fields) < 2:
            return None
        types = [_EXACT.get(plain) for _, _, plain, _ in fields]
        if None in types:
            return None
        return cls, [(key, name) for name, key, _, _ in fields], types

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
        ok = _json_types(cls)
        if ok is None:
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
        # (name, key, plain, write): ``plain`` the Python types that a field
        # writes as themselves (a simple type with no default, one value),
        # checked inline: a poll's response is six such fields, and six
        # calls of their writers cost more than the rest of its writing.
        fields = []
        to_instance = cls.get_serialization_instance

        def writer(value):
            if value is None:
                return None
            if type(value) is dict:  # a plain dict of the fields will do
                return {name: write(value.get(key)) for name, key, _, write in fields}
            if type(value) in (list, tuple):
                value = to_instance(value)
            return {name: field if type(field := getattr(value, key, None)) in plain
                    else write(field) for name, key, plain, write in fields}
        writer.plan = fields  # for _text_plan
        building[cls] = writer  # before the members: a type may contain itself
        for key, member in self.sort_fields(cls):
            member_attrs = self.get_cls_attrs(member)
            if member_attrs.exc:
                continue
            name = member_attrs.sub_name or key
            fields.append((name, key, self._plain_types(member, member_attrs),
                           self._field_writer(member, building)))
        return writer

    def _plain_types(self, cls, attrs):
        """The Python types that ``_field_writer(cls)`` gives back unchanged
        (those of ``_build_simple_writer``), or () where it may do more."""
        if attrs.max_occurs > 1 or attrs.default is not None or attrs.exc or \
                attrs.out_type is not None or attrs.type is not None or \
                attrs.sanitizer is not None or self.polymorphic:
            return ()
        return _json_types(cls) or ()


#: Plain types of a field (``_plain_types``) -> the one type that
#: ``_direct_result_writer`` writes for it: ints, floats (an int in
#: a float field goes to the writer), strings.
_EXACT = {(int,): int, (float, int): float, (str,): str}


def _json_types(cls):
    """The Python types that JSON writes as themselves for simple type
    ``cls`` (exactly those types: a subclass goes through spyne), or None."""
    if issubclass(cls, Boolean):
        return (bool,)
    if issubclass(cls, Integer):
        return (int,)
    if issubclass(cls, Double):
        return (float, int)
    if issubclass(cls, Unicode):
        return (str,)
    return None
