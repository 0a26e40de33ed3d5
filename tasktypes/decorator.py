"""``task_rpc``: one method body becomes a task type.

    class Reports(ServiceBase):
        @task_rpc(Integer, _returns=Unicode, _time_limit=600, _max_running=2)
        def report(ctx, year, update_progress):
            update_progress(0.5, "half way")
            return "done"

publishes five spyne methods: ``report(year) -> TaskInfoResponse`` (starts the
body in the background), ``report_progress(task_id)``,
``report_result(task_id) -> Unicode``, ``report_cancel(task_id)``,
``report_wait(task_id, timeout)`` and ``report_log(task_id, after)``.

spyne's ``ServiceMeta`` turns each decorated attribute into exactly one
method; our ``explain`` hook runs at that moment, with the service class in
hand, and registers the five sibling methods on the class the same way
``ServiceMeta`` does (``_add_method``: spyne has no public call for a method
that is not in the class body). Published methods find their store on the
spyne ``Application`` (``make_application`` puts it there); a plain spyne
``Application`` gets a process-wide ``ThreadStore``.

In this process a task type is reached from its methods:
``Reports.report.task_type`` (and ``Reports.report_progress.task_type``...).
"""

import math
import threading
import time
from collections import namedtuple

from spyne import Array, Double, Integer64
from spyne.decorator import rpc

from .errors import Busy
from .idempotency import request_key
from .model import TaskInfoResponse, TaskLogLine, TaskProgressResponse
from .defaults import MAX_WAIT as DEFAULT_MAX_WAIT, MAX_WAITERS as DEFAULT_MAX_WAITERS


#: Every task type by its ``key`` ("module:Class.method"). The key is what
#: crosses processes: the Redis store writes it into each task's hash, and
#: the worker side (``task_dispatch.task_type_of``: only task types of the
#: service modules loaded there, never imported by the name read from Redis)
#: and the task list (``redis_tasklist``) look the task type up by it there.
#: Code that has the service class in hand uses ``Service.method.task_type``.
TASK_TYPES = {}

TaskId = Integer64(min_occurs=1, nillable=False)
WaitTimeout = Double(min_occurs=1, nillable=False, ge=0, type_name="WaitSeconds")
LogAfter = Integer64(min_occurs=1, nillable=False, ge=0, type_name="LogSeq")

# Arguments of @rpc that describe what the method returns: they go to
# m_result, the rest to m.
_RESULT_KPARAMS = ("_returns", "_out_variable_name", "_out_variable_names",
                   "_body_style", "_soap_body_style", "_out_message_name")

#: Set as ``tasktypes_role`` on each published function of a task type: the
#: task type's name and the function's role (``submit``, or the control's
#: name: ``progress``, ``result``...). The OpenRPC document reads it.
TaskRole = namedtuple("TaskRole", "task_type role")

_default_store = None
_default_store_lock = threading.Lock()


class TaskType:
    """What a store needs to know of one task-type method."""

    def __init__(self, name, key, body, returns, time_limit, max_running,
                 arg_names=(), arg_types=()):
        self.name = name
        self.arg_names = arg_names  # for the operator's view of a task's arguments
        #: The declared spyne types of the arguments: the Redis store keeps a
        #: queued task's arguments as a JSON document of them (never a pickle).
        self.arg_types = arg_types
        self.key = key
        self.body = body
        self.returns = returns
        self.time_limit = time_limit
        self.max_running = max_running

    @property
    def time_limit_message(self):
        return "time limit of %g s exceeded" % self.time_limit

    def __repr__(self):
        return "TaskType(%r)" % self.key


def store_of(ctx):
    store = getattr(ctx.app, "tasktypes_store", None)
    if store is None:
        store = ctx.app.tasktypes_store = default_store()
    return store


def wait_budget(ctx):
    """Seconds this HTTP request may still spend in ``m_wait``.

    ``TASKTYPES_MAX_WAIT`` bounds the whole request, not each call: a JSON-RPC
    batch of many waits must not hold a server thread for many times the cap.
    """
    max_wait = getattr(ctx.app, "tasktypes_max_wait", DEFAULT_MAX_WAIT)
    environ = getattr(ctx.transport, "req_env", None)
    if environ is None:
        return max_wait
    deadline = environ.setdefault("tasktypes.wait_deadline", time.monotonic() + max_wait)
    return max(0.0, deadline - time.monotonic())


class WaitSlots:
    """At most ``limit`` m_wait calls wait at once: each holds a server thread,
    and a server whose threads all wait answers nobody else. One per
    application, shared by its protocols.

        if not slots.take():     # ``limit`` calls wait already
            raise slots.busy()
        try:
            store.wait(...)
        finally:
            slots.give_back()
    """

    def __init__(self, limit=DEFAULT_MAX_WAITERS):
        self.limit = limit
        self._free = threading.BoundedSemaphore(limit)

    def take(self):
        """A slot if one is free (True), at once either way."""
        return self._free.acquire(blocking=False)

    def give_back(self):
        self._free.release()

    def busy(self):
        return Busy("%d m_wait calls are in progress already, the most this "
                    "server allows; poll the task's progress instead" % self.limit)


#: The slots of applications not built by ``make_application``.
_default_wait_slots = WaitSlots()


def default_store():
    """The store of applications not built by ``make_application``."""
    global _default_store
    with _default_store_lock:
        if _default_store is None:
            from .store import ThreadStore
            _default_store = ThreadStore()
        return _default_store


def task_info(task_id):
    """``TaskInfoResponse(task_id=task_id)``, the same object, built without
    spyne's generic ``ComplexModelBase.__init__`` (its walk over the type's
    fields costs some 6 µs of a submission; the one field is set here)."""
    if not _INFO_IS_TASK_ID:
        return TaskInfoResponse(task_id=task_id)
    info = TaskInfoResponse.__new__(TaskInfoResponse)
    info.task_id = task_id
    return info


#: Whether ``task_id`` is ``TaskInfoResponse``'s only field (else other fields
#: need spyne's defaults, and ``task_info`` takes the long way).
_INFO_IS_TASK_ID = list(TaskInfoResponse.get_flat_type_info(TaskInfoResponse)) == ["task_id"]


def _check_limit(method, option, value, kind):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, kind) \
            or (isinstance(value, float) and not math.isfinite(value)) or value <= 0:
        raise ValueError("@task_rpc method %r: %s must be a positive %s, not %r"
                         % (method, option, kind.__name__ if kind is int else "number",
                            value))
    return value


def _argument_names(f):
    code = f.__code__
    names = code.co_varnames[1:code.co_argcount]  # without ctx
    return tuple(n for n in names if n != "update_progress")


def task_rpc(*params, **kparams):
    """Like spyne's ``rpc``, for a body that runs as a task.

    Takes ``rpc``'s arguments plus ``_time_limit`` (seconds a task may run)
    and ``_max_running`` (tasks of this method running at once). The body
    gets ``update_progress(fraction[, message])`` as a keyword argument.
    """
    time_limit = kparams.pop("_time_limit", None)
    max_running = kparams.pop("_max_running", None)
    result_kparams = {k: kparams.pop(k) for k in _RESULT_KPARAMS if k in kparams}
    returns = result_kparams.get("_returns")
    style = result_kparams.get("_body_style")
    if style == "bare" or (style is not None and result_kparams.get("_soap_body_style") == "rpc"):
        # spyne's bare style (spyne 2.14 decorator._validate_body_style) is
        # bare in and out: m_result's request would be a task id with no
        # name, which neither the JSON-RPC params nor the OpenRPC document
        # can say. A bare result is "out_bare".
        raise ValueError("@task_rpc: a bare body style is bare in and out, and m_result "
                         "takes a named task_id; use _body_style='out_bare' for a bare "
                         "result")

    def explain(f):
        def explain_method(**kwargs):
            name = kwargs["_default_function_name"]
            cls = kwargs["_service_class"]
            task_type = TaskType(
                name, "%s:%s.%s" % (cls.__module__, cls.__qualname__, name), f, returns,
                _check_limit(name, "_time_limit", time_limit, (int, float)),
                _check_limit(name, "_max_running", max_running, int),
                _argument_names(f), params)
            TASK_TYPES[task_type.key] = task_type
            _publish_controls(cls, task_type, result_kparams)

            def submit(ctx, *args):
                state = store_of(ctx).submit(task_type, args,
                                             idempotency_key=request_key(ctx))
                return task_info(state.task_id)

            submit.__doc__ = f.__doc__
            submit.__name__ = submit.__qualname__ = name
            submit.task_type = task_type
            submit.tasktypes_role = TaskRole(name, "submit")
            return rpc(*params, _returns=TaskInfoResponse,
                       _args=_argument_names(f), **kparams)(submit)(**kwargs)

        explain_method._is_rpc = True  # what ServiceMeta looks for (spyne 2.14.0)
        explain_method.__doc__ = f.__doc__
        return explain_method

    return explain


def _publish_controls(cls, task_type, result_kparams):
    name = task_type.name
    def progress(ctx, task_id):
        return TaskProgressResponse.of(store_of(ctx).read(task_type, task_id))

    def result(ctx, task_id):
        return store_of(ctx).result(task_type, task_id)

    def cancel(ctx, task_id):
        return TaskProgressResponse.of(store_of(ctx).cancel(task_type, task_id))

    def wait(ctx, task_id, timeout):
        store = store_of(ctx)
        timeout = min(timeout, wait_budget(ctx))
        slots = getattr(ctx.app, "tasktypes_wait_slots", None) or _default_wait_slots
        if timeout > 0 and slots.take():
            try:
                state = store.wait(task_type, task_id, timeout)
            finally:
                slots.give_back()
        else:
            # A wait that would not wait (a timeout of 0, a finished task)
            # holds no thread, so it needs no slot: answered even when every
            # slot is taken, where only a wait that would wait is Busy.
            state = store.read(task_type, task_id)
            if timeout > 0 and not state.status.is_finished:
                raise slots.busy()
        return TaskProgressResponse.of(state)

    def log(ctx, task_id, after):
        return [TaskLogLine(seq=line.seq, time=line.time, level=line.level,
                            message=line.message)
                for line in store_of(ctx).log(task_type, task_id, after)]

    progress.__doc__ = "Where a %s task stands." % name
    result.__doc__ = "What a finished %s task returned." % name
    cancel.__doc__ = "Stop a queued or running %s task." % name
    wait.__doc__ = ("Where a %s task stands once it has finished, or after "
                    "timeout seconds." % name)
    log.__doc__ = ("What a %s task logged (INFO and above): the lines after "
                   "seq ``after`` (0 for all), oldest first." % name)
    controls = [
        ("_progress", progress, (TaskId,), {"_returns": TaskProgressResponse}),
        ("_result", result, (TaskId,), result_kparams),
        ("_cancel", cancel, (TaskId,), {"_returns": TaskProgressResponse}),
        ("_wait", wait, (TaskId, WaitTimeout), {"_returns": TaskProgressResponse}),
        ("_log", log, (TaskId, LogAfter), {"_returns": Array(TaskLogLine)}),
    ]
    for suffix, function, types, kp in controls:
        method = name + suffix
        function.__name__ = function.__qualname__ = method  # spyne's method key
        function.tasktypes_role = TaskRole(name, suffix[1:])
        function.task_type = task_type
        _add_method(cls, method, rpc(*types, **kp)(function)(
            _default_function_name=method, _service_class=cls))


def _add_method(cls, name, descriptor):
    # The body of spyne's ServiceMeta.__init__ loop (spyne 2.14.0,
    # spyne/service.py), for a method ServiceMeta never sees: it is made by
    # the explain hook of another one.
    setattr(cls, name, staticmethod(descriptor.function))
    descriptor.reset_function(getattr(cls, name))
    getattr(cls, name).descriptor = descriptor
    cls.public_methods[name] = descriptor
