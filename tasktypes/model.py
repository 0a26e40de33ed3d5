"""What a task is, as every store and both protocols see it.

The published types (``TaskInfoResponse``, ``TaskProgressResponse``) are the
wire contract; ``TaskState`` is the store's record of one task, and
``TaskStatus`` reads like prose: ``state.status.is_finished``.

This module imports nothing of ours, so stores, runners and protocols can
all depend on it without cycles.
"""

import enum
import secrets
import time
from dataclasses import dataclass, field

from spyne import ComplexModel, Double, Integer64, Unicode

NAMESPACE = "tasktypes"

#: Task ids stay below 2**53 so that JavaScript numbers hold them exactly.
MAX_TASK_ID = 2 ** 53


def new_task_id():
    """A random positive id below 2**53: unguessable, and exact in JSON."""
    return secrets.randbelow(MAX_TASK_ID - 1) + 1


class TaskStatus(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_finished(self):
        return self in _FINISHED


_FINISHED = frozenset((TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELLED))


class _NoResult:
    """Sentinel for "no result yet": ``None`` is a real result."""

    __slots__ = ()

    def __repr__(self):
        return "NO_RESULT"

    def __bool__(self):
        return False


NO_RESULT = _NoResult()


@dataclass
class TaskState:
    """One task as a store keeps it.

    ``starttime`` is 0.0 until the task leaves the queue; ``duration`` is
    computed by readers from ``starttime`` while running and frozen in
    ``ended`` once it finishes. ``timed_out`` tells a failure by time limit
    from a failure raised by the body, since both show ``failed``.
    """

    task_id: int
    method: str
    status: TaskStatus = TaskStatus.QUEUED
    progress: float = 0.0
    message: str = ""
    starttime: float = 0.0
    endtime: float = 0.0
    timed_out: bool = False
    result: object = field(default=NO_RESULT, repr=False)
    #: For the operator's task list: when it was submitted, and its
    #: arguments as bounded JSON text.
    submitted: float = 0.0
    arguments: str = field(default="", repr=False)

    def duration(self, now=None):
        """Seconds it has run: until ``now`` (default: the clock's now)
        while it runs, until ``endtime`` once it has ended."""
        start = self.starttime
        if not start:
            return 0.0
        end = self.endtime or (time.time() if now is None else now)
        return end - start if end > start else 0.0


# Fields that are always there say so in the WSDL (minOccurs 1, not
# nillable): .NET and Java clients then get long and double, not long? and
# Long. The message may be empty.
_ALWAYS = {"min_occurs": 1, "nillable": False}


class TaskInfoResponse(ComplexModel):
    """What submitting a task returns: the id to poll with."""

    __namespace__ = NAMESPACE
    _type_info = [("task_id", Integer64(**_ALWAYS))]


class TaskProgressResponse(ComplexModel):
    """Where a task stands; see the contract for each field."""

    __namespace__ = NAMESPACE
    _type_info = [
        ("task_id", Integer64(**_ALWAYS)),
        ("progress", Double(**_ALWAYS)),
        ("duration", Double(**_ALWAYS)),
        ("starttime", Double(**_ALWAYS)),
        ("status", Unicode(**_ALWAYS)),
        ("message", Unicode),
    ]

    @classmethod
    def of(cls, state, now=None):
        # Its fields set directly, without ComplexModel.__init__: spyne's
        # generic constructor costs more than the rest of a progress poll,
        # and every field is given here (the protocols read them by name).
        response = cls.__new__(cls)
        response.__dict__ = {
            "task_id": state.task_id,
            "progress": state.progress,
            "duration": state.duration(now),
            "starttime": state.starttime,
            "status": state.status._value_,  # .value is a Python property
            "message": state.message,
        }
        return response


class TaskLogLine(ComplexModel):
    """One line of what a task logged (``m_log``): ``seq`` numbers the
    task's lines from 1, ``time`` is seconds since the epoch."""

    __namespace__ = NAMESPACE
    _type_info = [
        ("seq", Integer64),
        ("time", Double),
        ("level", Unicode),
        ("message", Unicode),
    ]
