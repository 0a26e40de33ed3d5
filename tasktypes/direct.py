"""The control methods of task types (``m_progress``, ``m_result``,
``m_cancel``, ``m_wait``, ``m_log``) answered over JSON-RPC without spyne's
per-call machinery (SOAP: ``tasktypes.direct_soap``, which shares the
context, the param checks and the choice of methods made here).

They are ours, and they are what pollers call most: they need the store and
a task id, not a request context. Through spyne, one poll builds a
``MethodContext`` (its init and some 56 attribute sets), reads its one int
param through the soft validator and fires a dozen events; here a call whose
params are exactly what the method takes (the right names or count, a plain
int id, a finite number of seconds) goes straight to the same function spyne
would call, and its result is written by the protocol's own writer for that
method: the reply is byte for byte spyne's (``tests/test_direct.py``). A call
with anything else in its params goes through spyne, so that every error a
client can get keeps the one message it has. User methods always go through
spyne.

    direct = direct_methods(jsonrpc_app)    # {"countdown_progress": call, ...}
    JsonRpcApplication(jsonrpc_app, direct_methods=direct)
"""

import math

from spyne import Application, Double, Integer, ServiceBase

from .jsonrpc import NOT_DIRECT

_ROLES = ("progress", "result", "cancel", "wait", "log")


class ControlContext:
    """What a control function reads of spyne's context: the application
    (its store, limits) and the request's WSGI environ (its wait budget),
    as ``ctx.app`` and ``ctx.transport.req_env``. The context is its own
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


def param_reader(cls):
    """A check of one param value: the value itself if it is plainly of
    ``cls`` and within its bounds, else NOT_DIRECT."""
    attrs = cls.Attributes
    if math.isfinite(_bound(attrs, "gt", -math.inf)) \
            or math.isfinite(_bound(attrs, "lt", math.inf)):
        return None  # exclusive bounds: left to spyne
    low = _bound(attrs, "ge", -math.inf)
    high = _bound(attrs, "le", math.inf)
    # Integer64 and friends: what spyne's validation allows of their bits
    # (``min_bound``/``max_bound``, spyne 2.14's TBoundedInteger).
    low = max(low, _bound(attrs, "min_bound", -math.inf))
    high = min(high, _bound(attrs, "max_bound", math.inf))
    if issubclass(cls, Integer):
        def read(value):
            if type(value) is not int or value < low or value > high:
                return NOT_DIRECT
            return value
    elif issubclass(cls, Double):
        def read(value):
            if type(value) not in (int, float) or not math.isfinite(value) \
                    or value < low or value > high:
                return NOT_DIRECT
            return float(value)
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
    """The direct call of one control method, or None if one of its params
    is of a type this module does not read itself."""
    fields = list(descriptor.in_message._type_info.items())
    names = [name for name, _ in fields]
    readers = [param_reader(cls) for _, cls in fields]
    if None in readers:
        return None
    count = len(names)
    function = descriptor.function
    write = protocol._direct_result_writer(descriptor)
    managers = event_managers(app, descriptor)

    if count == 1:  # most control methods take a task id only
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


def control_descriptors(app):
    """The descriptors of the control methods of spyne application ``app``
    that may be answered directly: none where a call wrapper was put around
    the methods (``Application.call_wrapper`` or a service class's
    ``call_wrapper`` overridden: authentication, say), which only spyne's
    pipeline runs."""
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
    """``{method name: call(params, environ)}`` for every control method of
    the task types of spyne application ``app`` (whose protocol is
    ``JsonRpc20``). ``call`` returns the result as a JSON value, raises the
    method's Fault, or returns ``NOT_DIRECT``."""
    protocol = app.out_protocol
    found = {}
    for descriptor in control_descriptors(app):
        call = _direct_call(app, protocol, descriptor)
        if call is not None:
            found[descriptor.name] = call
    return found
