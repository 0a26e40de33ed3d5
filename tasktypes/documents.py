"""Task results as JSON documents of their method's declared spyne type.

The Redis store keeps results in Redis, and nothing read back from Redis may
be unpickled: whoever can write to Redis must not get code execution in the
server. spyne can write and read any of its types as a JSON document, so a
ComplexModel comes back as the same ComplexModel and falsy results (0, "",
False, [], None) as themselves. The thread store passes its results through
the same round trip, so that a result that does not fit its declared type
fails the task in both stores alike instead of failing the reply.

    doc = encode_result(task_type.returns, value)    # raises if it does not fit
    decode_result(task_type.returns, doc) == value

A queued task's arguments wait in Redis the same way, as one document of
the method's declared argument types (``encode_arguments``), read back by
the worker process that runs the task (``decode_arguments``).
"""

from spyne import ComplexModel
from spyne.context import FakeContext
from spyne.protocol.json import JsonDocument

# One protocol instance for all documents: spyne's get_object_as_json and
# get_json_as_object build a new one per call, which costs more than the
# document itself.
_JSON = JsonDocument(ignore_wrappers=True, complex_as=dict)
# Arguments read back from Redis are checked against their declared types
# and bounds again (soft validation, as spyne checks a request's): whoever
# can write to Redis must not hand a body what no client could send.
_VALIDATING = JsonDocument(ignore_wrappers=True, complex_as=dict, validator="soft")
_wrappers = {}


def _wrapper(returns):
    """A one-field ComplexModel around the declared type, so that spyne
    writes primitives, arrays, None and complex types alike."""
    wrapper = _wrappers.get(returns)
    if wrapper is None:
        wrapper = _wrappers[returns] = ComplexModel.produce(
            "tasktypes.result", "Result", {"value": returns or ComplexModel})
    return wrapper


class ResultTooLarge(ValueError):
    """A result whose document is over the size a store keeps."""


def encode_result(returns, value, max_size=None):
    """What the body returned, as a JSON document of ``returns``; raises if
    the value does not fit the type, or its document has more than
    ``max_size`` bytes (``ResultTooLarge``)."""
    return result_document(returns, value, max_size)[0]


def result_document(returns, value, max_size=None):
    """``(encode_result(returns, value, max_size), what decode_result reads
    back from it)``: the thread store keeps the value read back, which the
    encoding has made already (it checks that the document reads back)."""
    if type(value) is int and _ints_come_back(returns):
        # The round trip of a plain int gives this document and the int
        # back: the same answer without spyne's context and walk (some
        # 80 µs per task).
        doc = _INT_DOCUMENT % value
        if max_size is not None and len(doc) > max_size:
            raise ResultTooLarge("the result is %d bytes as JSON, over the limit of %d "
                                 "(TASKTYPES_MAX_RESULT)" % (len(doc), max_size))
        return doc, value
    return _round_trip(returns, value, max_size)


_INT_DOCUMENT = '{"value": %d}'
_int_types = {}  # returns -> whether an int comes back as itself


def _ints_come_back(returns):
    """Whether the round trip of ints through ``returns`` gives each back
    unchanged in ``_INT_DOCUMENT``: found once per type, by trying."""
    found = _int_types.get(returns)
    if found is None:
        found = True
        try:
            for probe in (0, 7, -12345, 2 ** 53 + 1, 10 ** 30):
                doc, back = _round_trip(returns, probe, None)
                if doc != _INT_DOCUMENT % probe or type(back) is not int or back != probe:
                    found = False
        except Exception:
            found = False
        _int_types[returns] = found
    return found


def _round_trip(returns, value, max_size):
    if returns is None:
        return "null", None
    wrapper = _wrapper(returns)
    # _object_to_doc and _doc_to_object (spyne 2.14.0, JsonDocument) are the
    # halves of its get_object_as_json and get_json_as_object without the
    # protocol those build per call.
    ctx = FakeContext(out_document=[_JSON._object_to_doc(wrapper, wrapper(value=value))])
    _JSON.create_out_string(ctx, "utf8")
    data = b"".join(ctx.out_string)
    if max_size is not None and len(data) > max_size:
        raise ResultTooLarge("the result is %d bytes as JSON, over the limit of %d "
                             "(TASKTYPES_MAX_RESULT)" % (len(data), max_size))
    doc = data.decode("utf-8")
    # spyne writes what it is given; reading it back validates it, here in
    # the task rather than in every reader.
    return doc, decode_result(returns, doc)


def _arguments_wrapper(types):
    key = ("args",) + tuple(types)
    wrapper = _wrappers.get(key)
    if wrapper is None:
        wrapper = _wrappers[key] = ComplexModel.produce(
            "tasktypes.args", "Arguments",
            {"a%d" % i: t for i, t in enumerate(types)})
    return wrapper


def encode_arguments(types, args):
    """Positional ``args`` of a method declared with ``types``, as one JSON
    document (an object ``{"a0": ..., "a1": ...}``)."""
    if not types:
        return "{}"
    wrapper = _arguments_wrapper(types)
    value = wrapper(**{"a%d" % i: a for i, a in enumerate(args)})
    ctx = FakeContext(out_document=[_JSON._object_to_doc(wrapper, value)])
    _JSON.create_out_string(ctx, "utf8")
    return b"".join(ctx.out_string).decode("utf-8")


def decode_arguments(types, doc):
    """The positional arguments ``encode_arguments`` wrote, as a tuple;
    raises spyne's ``ValidationError`` if they do not fit their types."""
    if not types:
        return ()
    wrapper = _arguments_wrapper(types)
    ctx = FakeContext(in_string=[doc.encode("utf-8")])
    _VALIDATING.create_in_document(ctx)
    value = _VALIDATING._doc_to_object(None, wrapper, ctx.in_document, _VALIDATING.validator)
    return tuple(getattr(value, "a%d" % i) for i in range(len(types)))


def decode_result(returns, doc):
    """The value ``encode_result`` wrote as ``doc``."""
    if returns is None:
        return None
    if _int_types.get(returns) and doc.startswith('{"value": ') and doc.endswith("}"):
        digits = doc[10:-1]  # what encode_result's shortcut wrote
        if digits.lstrip("-").isdigit() and digits.isascii():
            return int(digits)
    ctx = FakeContext(in_string=[doc.encode("utf-8")])
    _JSON.create_in_document(ctx)
    return _JSON._doc_to_object(None, _wrapper(returns), ctx.in_document).value
