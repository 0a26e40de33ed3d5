"""The errors a task-type method can answer with, and their one table.

Each error is a spyne ``Fault``, so SOAP needs nothing more; ``CODES`` maps
each class to its SOAP faultcode and JSON-RPC error code, and every protocol
reads it from here (walking ``type(exc).__mro__``), so a new error is one
class and one line. ``data`` holds what a JSON-RPC error's ``data`` carries
beyond the faultcode (the task's ``status`` and ``progress`` where they apply).
"""

from spyne import Fault


class TaskError(Fault):
    """Base of the task errors; the faultcode comes from ``CODES``."""

    def __init__(self, message, **data):
        super().__init__(faultcode=codes_of(type(self))[0], faultstring=message)
        self.data = data


class TaskNotFound(TaskError):
    """Unknown, expired, or belonging to another method."""


class TaskNotFinished(TaskError):
    """``m_result`` asked before the task ended."""


class TaskFailed(TaskError):
    """The body raised; the message is the exception's type and text."""


class TaskCancelled(TaskError):
    """``m_result`` of a task that was cancelled."""


class TaskTimedOut(TaskError):
    """The task ran past its method's ``_time_limit``."""


class StoreUnavailable(TaskError):
    """The task store (Redis) cannot be reached."""


class Busy(TaskError):
    """The queue of waiting tasks is full, or too many ``m_wait`` calls are
    in progress (``TASKTYPES_MAX_WAITERS``)."""


class InvalidProgress(ValueError):
    """``update_progress`` got NaN or a non-number (raised inside the task)."""


class TaskStopped(BaseException):
    """Raised inside a thread-store body by ``update_progress`` once its task
    is cancelled or timed out. A ``BaseException`` so that a body's own
    ``except Exception:`` does not swallow it."""


#: error class -> (SOAP faultcode, JSON-RPC error code)
CODES = {
    TaskNotFound: ("Client.TaskNotFound", -32001),
    TaskNotFinished: ("Client.TaskNotFinished", -32002),
    TaskFailed: ("Server.TaskFailed", -32003),
    TaskCancelled: ("Client.TaskCancelled", -32004),
    TaskTimedOut: ("Server.TaskTimedOut", -32005),
    StoreUnavailable: ("Server.StoreUnavailable", -32010),
    Busy: ("Server.Busy", -32011),
}

#: JSON-RPC code for any other spyne Fault; its faultcode goes into ``data``.
OTHER_FAULT_CODE = -32000


def codes_of(cls):
    """(SOAP faultcode, JSON-RPC code) of an error class: its own, or that of
    the nearest class above it in ``CODES`` (a subclass of ``TaskNotFound``
    is a TaskNotFound on the wire)."""
    for klass in cls.__mro__:
        if klass in CODES:
            return CODES[klass]
    return ("Server", OTHER_FAULT_CODE)


def jsonrpc_code(fault):
    """The JSON-RPC error code of a spyne Fault (ours or anybody's)."""
    return codes_of(type(fault))[1]
