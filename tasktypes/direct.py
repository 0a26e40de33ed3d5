"""The methods of task types that pollers and submitters call most (the
controls ``m_progress``, ``m_result``, ``m_cancel``, ``m_wait``, ``m_log``,
and the submit ``m(args)`` itself) answered over JSON-RPC without spyne's
per-call machinery (SOAP: ``tasktypes.direct_soap``, which shares the
context, the param checks and the choice of methods made here).

They are ours: the function spyne would call is tasktypes' own (the store's
read, or its submit; a task's body runs on a worker either way, with its
own ``TaskContext``), and it needs the store, the params and the request's
environ (its wait budget, its ``Idempotency-Key``), not a request context.
Through spyne, one poll builds a ``MethodContext`` (its init and some 56
attribute sets), reads its one int param through the soft validator and
fires a dozen events; here a call whose params are exactly what the method
takes (the right names or count; ints, finite numbers and strings that
pass their types' own spyne checks) goes straight to the same function
spyne would call, and its result is written by the protocol's own writer
for that method: the reply is byte for byte spyne's
(``tests/test_direct.py``). A call with anything else in its params goes
through spyne, so that every error a client can get keeps the one message
it has; so does every call of a method with a param of another type (a
date, a UUID, a complex value). The task bodies, and every method that is
not a task type's, always go through spyne.

    direct = direct_methods(jsonrpc_app)    # {"countdown_progress": call, ...}
    JsonRpcApplication(jsonrpc_app, direct_methods=direct)
"""

import math

from spyne import (Application, Double, Integer, Integer8, Integer16, Integer32, Integer64,
                   ServiceBase, Unicode, Uuid)

from .jsonrpc import NOT_DIRECT

_ROLES = ("submit", "progress", "result", "cancel", "wait", "log")


class ControlContext:
    """What a function answered directly reads of spyne's context: the
    application (its store, limits) and the request's WSGI environ (its
    wait budget, its Idempotency-Key), as ``ctx.app`` and
    ``ctx.transport.req_env``. The context is its own
    transport (a property, not a second object or a reference cycle): one
    allocation per call, not two."""

    __slots__ = ("app", "req_env")

    def __init__(self, app, environ):
        self.app = app
        self.req_env = environ

    @property
    def transport(self):
        return self


def _bound(attrs, name, default):
    value = getattr(attrs, name, None)
    return default if value is None else value


#: spyne's checks of a number (``validate_native``, spyne 2.14) that test
#: nothing but ``ge``, ``le``, ``gt``, ``lt``, a sized int's bits and
#: ``values``: for these the reader checks the bounds itself (a poll's id
#: is read on every poll). Any other (UnsignedInteger's ``>= 0``, the
#: unsigned sized ints' exclusive top, a type of the service's own) is
#: called as spyne calls it.
_BOUNDS_ONLY = frozenset(c.validate_native for c in (Integer, Integer64, Integer32,
                                                      Integer16, Integer8, Double))


def _bounds(cls):
    """(low, high) of a number type whose spyne check is bounds only, or
    None: then the reader calls spyne's check."""
    attrs = cls.Attributes
    if cls.validate_native not in _BOUNDS_ONLY or attrs.values \
            or math.isfinite(_bound(attrs, "gt", -math.inf)) \
            or math.isfinite(_bound(attrs, "lt", math.inf)):
        return None
    low = _bound(attrs, "ge", -math.inf)
    high = _bound(attrs, "le", math.inf)
    # Integer64 and friends: what their validate_native allows of their bits
    # (``min_bound``/``max_bound``, spyne 2.14's TBoundedInteger).
    low = max(low, _bound(attrs, "min_bound", -math.inf))
    high = min(high, _bound(attrs, "max_bound", math.inf))
    return low, high


def _as_float(value):
    """A JSON number as spyne's JSON reader gives a Double (a float), or
    None where it is not plainly one: another type, not finite, or an int
    too large for a float (spyne's to refuse, with its message)."""
    if type(value) is float:
        return value if math.isfinite(value) else None
    if type(value) is int and -_FLOAT_INTS < value < _FLOAT_INTS:
        return float(value)
    return None


_FLOAT_INTS = 2 ** 1000  # ints that float() takes without OverflowError (< 2 ** 1024)


def param_reader(cls):
    """A check of one JSON param value: the value spyne's path would give the
    method if it is plainly of ``cls`` and passes spyne's own checks, else
    NOT_DIRECT (spyne then reads it, and says what is wrong). None for a
    type read otherwise: a parser or per-protocol attributes of its own,
    text that becomes something else (``Uuid``) or None (``empty_is_none``),
    any type but the numbers and text."""
    attrs = cls.Attributes
    if attrs.parser is not None or attrs.prot_attrs:
        return None
    validate = cls.validate_native
    bounds = _bounds(cls) if issubclass(cls, (Integer, Double)) else None
    if issubclass(cls, Integer):
        if bounds is None:
            def read(value):
                if type(value) is not int or not validate(cls, value):
                    return NOT_DIRECT
                return value
        else:  # a task id: every poll's, so in line
            low, high = bounds

            def read(value):
                if type(value) is not int or value < low or value > high:
                    return NOT_DIRECT
                return value
    elif issubclass(cls, Double):
        low, high = bounds or (-math.inf, math.inf)

        def read(value):
            value = _as_float(value)
            if value is None or value < low or value > high \
                    or (bounds is None and not validate(cls, value)):
                return NOT_DIRECT
            return value
    elif issubclass(cls, Unicode) and not issubclass(cls, Uuid) and not attrs.empty_is_none:
        # spyne 2.14's HierDictDocument._from_dict_value for a str: the
        # type's validate_string (lengths, pattern), the str itself, then
        # validate_native (values, unicode_pattern)
        validate_string = cls.validate_string

        def read(value):
            if type(value) is not str or not validate_string(cls, value) \
                    or not validate(cls, value):
                return NOT_DIRECT
            return value
    else:
        return None
    return read


def event_managers(app, descriptor):
    """The event managers spyne's pipeline fires for a call of
    ``descriptor`` (the application's, its protocols', the method's and its
    service class's: spyne 2.14's ``MethodContext.fire_event`` and
    protocols)."""
    return (app.event_manager, app.in_protocol.event_manager,
            app.out_protocol.event_manager) + tuple(descriptor.event_managers)


def listened(managers):
    """Whether anyone listens on these event managers: then a call goes
    through spyne, which fires the events a direct answer skips (a
    ``method_call`` listener that checks credentials, say). Asked per call:
    listeners may come at any time. tasktypes' own listeners (marked
    ``tasktypes_own``: the JSON-RPC server's note of a method's exception,
    for its log line and its InternalError, which a direct answer does
    itself) do not count."""
    for manager in managers:
        handlers = manager.handlers
        if not handlers:  # most managers have no listener at all
            continue
        for found in handlers.values():
            # spyne's ordered set keeps its members as the keys of ``map``:
            # a dict's iteration, not the set's Python generator
            for handler in getattr(found, "map", found):
                if not getattr(handler, "tasktypes_own", False):
                    return True
    return False


def _direct_call(app, protocol, descriptor):
    """The direct call of one submit or control method, or None if one of
    its params is of a type this module does not read itself."""
    fields = list(descriptor.in_message._type_info.items())
    names = [name for name, _ in fields]
    readers = [param_reader(cls) for _, cls in fields]
    if None in readers:
        return None
    count = len(names)
    function = descriptor.function
    write = protocol._direct_result_writer(descriptor)
    managers = event_managers(app, descriptor)

    if count == 1:  # most controls take a task id only
        name, read = names[0], readers[0]

        def call(params, environ):
            if listened(managers):
                return NOT_DIRECT
            if type(params) is dict:
                if len(params) != 1 or name not in params:
                    return NOT_DIRECT
                value = read(params[name])
            elif type(params) is list and len(params) == 1:
                value = read(params[0])
            else:
                return NOT_DIRECT
            if value is NOT_DIRECT:
                return NOT_DIRECT
            return write([function(ControlContext(app, environ), value)])

        return call

    def call(params, environ):
        if listened(managers):
            return NOT_DIRECT
        if type(params) is list:
            if len(params) != count:
                return NOT_DIRECT
            values = params
        elif type(params) is dict and len(params) == count:
            try:
                values = [params[name] for name in names]
            except KeyError:
                return NOT_DIRECT
        else:
            return NOT_DIRECT
        args = []
        for read, value in zip(readers, values):
            value = read(value)
            if value is NOT_DIRECT:
                return NOT_DIRECT
            args.append(value)
        return write([function(ControlContext(app, environ), *args)])

    return call


def direct_descriptors(app):
    """The descriptors of the task types' methods (submits and controls) of
    spyne application ``app`` that may be answered directly: none where a
    call wrapper was put around the methods (``Application.call_wrapper``
    or a service class's ``call_wrapper`` overridden: authentication, say),
    which only spyne's pipeline runs."""
    if type(app).call_wrapper is not Application.call_wrapper:
        return
    for descriptor in app.interface.method_id_map.values():
        role = getattr(descriptor.function, "tasktypes_role", None)
        if role is None or role.role not in _ROLES or descriptor.aux is not None:
            continue
        service = descriptor.service_class
        if service is None or getattr(service.call_wrapper, "__func__", None) \
                is not ServiceBase.call_wrapper.__func__:
            continue
        yield descriptor


def direct_methods(app):
    """``{method name: call(params, environ)}`` for every submit and control
    method of the task types of spyne application ``app`` (its protocol
    ``JsonRpc20``) whose params are all read here. ``call`` returns the
    result as a JSON value, raises the method's Fault, or returns
    ``NOT_DIRECT``."""
    protocol = app.out_protocol
    found = {}
    for descriptor in direct_descriptors(app):
        call = _direct_call(app, protocol, descriptor)
        if call is not None:
            found[descriptor.name] = call
    return found
