"""Where task state lives: the ``Store`` interface and the in-process
``ThreadStore``.

A store has three sides, all documented on ``Store`` (as huey documents its
``BaseStorage``), which ``ThreadStore`` and ``RedisStore`` implement with the
same signatures; the contract tests in ``tests/test_store_contract.py`` run
against both:

- the client side, called by the published methods (``m``, ``m_progress``,
  ...): ``submit``, ``read``, ``result``, ``cancel``, ``wait``, ``log``;
- the operator side, called by the task list: ``list_tasks``,
  ``count_statuses``, ``describe``;
- the task side, called by the store's runner when a body has run:
  ``finish``, ``fail``, ``append_log``. A result reaches it as a JSON
  document of its declared type in both stores (``documents``).

How a runner takes a task and where progress goes follow where bodies run,
and are each store's own: the thread runner gets its tasks in memory and
calls ``ThreadStore.start`` and ``update_progress``; the Redis runner takes
them from the queue in Redis (``RedisStore.start_claimed``, ``take_parked``)
and its bodies write their progress to Redis from the worker process
(``ProgressWriter``).

    store = ThreadStore(workers=8, result_ttl=3600)
    state = store.submit(task_type, (10, 0.5))
    store.read(task_type, state.task_id).progress
"""

import bisect
import collections
import json
import logging
import threading
import time

from .documents import decode_result
from .errors import (TaskCancelled, TaskFailed, TaskNotFinished,
                     TaskNotFound, TaskStopped, TaskTimedOut)
from . import idempotency
from .limits import DEFAULT_MAX_RESULT, MAX_MESSAGE, bounded_text, cut
from .model import NO_RESULT, TaskState, TaskStatus, new_task_id
from .runner import ThreadRunner
from .task_body import clamp_progress
from .tasklog import TaskLog
from .defaults import (COUNT_WINDOW, MAX_ARGUMENT_CHARS, MAX_INDEXED, MAX_SCANNED,
                       QUEUE_PER_WORKER)
from .defaults import RESULT_TTL as DEFAULT_RESULT_TTL, WORKERS as DEFAULT_WORKERS

logger = logging.getLogger(__name__)

_new_state = object.__new__


def arguments_text(task_type, args):
    """A task's arguments as the operator sees them: JSON of name -> value,
    cut to ``MAX_ARGUMENT_CHARS``. Made once, at submit; never parsed back."""
    names = list(task_type.arg_names or ())
    names += ["arg%d" % i for i in range(len(names), len(args))]
    try:
        text = _ARGUMENTS_JSON.encode(dict(zip(names, args)))
    except (TypeError, ValueError, RecursionError) as exc:
        text = "(arguments not shown: %s)" % exc
    return cut(text, MAX_ARGUMENT_CHARS)


def _plain(value):
    as_dict = getattr(value, "as_dict", None)  # a spyne ComplexModel
    if callable(as_dict):
        return as_dict()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


# What json.dumps(..., default=_plain) writes, without building an encoder
# per call (a third of the text's cost); encode() keeps no state between calls.
_ARGUMENTS_JSON = json.JSONEncoder(default=_plain)


class Store:
    """Task state behind the published methods; one subclass per backend.

    Subclasses implement every method below that raises
    ``NotImplementedError``: the client side, the operator side and the task
    side; ``result`` and ``check_result`` are built from them. A task moves
    ``queued`` -> ``running`` -> one of ``done``, ``failed``, ``cancelled``;
    a finished task never changes again (each backend checks the status a
    change leaves, so a late write never overwrites an end), and it is kept
    ``result_ttl`` seconds, then forgotten (``TaskNotFound``).
    """

    shared = False  # Can other server processes see this store's tasks?
    # Bounds of the task list's index and of one listing call (tests lower them).
    max_indexed = MAX_INDEXED
    max_scanned = MAX_SCANNED

    def submit(self, task_type, args, idempotency_key=None):
        """Create a task of ``task_type`` with positional ``args`` and queue it
        to run. Returns its ``TaskState``; raises ``Busy`` when the queue is
        full.

        With an ``idempotency_key`` (``tasktypes.idempotency``): within
        ``result_ttl`` of the submit that first gave that key for this
        method, returns that task's state instead of creating one, or raises
        ``IdempotencyConflict`` if the arguments differ. Concurrent submits
        with one key create one task."""
        raise NotImplementedError

    def read(self, task_type, task_id, with_result=False):
        """The ``TaskState`` of ``task_id``, which must belong to
        ``task_type``; raises ``TaskNotFound`` otherwise. ``result`` is filled
        in only when asked for, so that polls stay cheap."""
        raise NotImplementedError

    def cancel(self, task_type, task_id):
        """Cancel a queued or running task; a finished one is left as it is.
        Returns the state after the cancel."""
        raise NotImplementedError

    def wait(self, task_type, task_id, timeout):
        """The state once the task has finished, or after ``timeout`` seconds,
        whichever comes first. Waiters are woken when the task ends (a
        condition, Redis pub/sub), not by polling its state."""
        raise NotImplementedError

    def log(self, task_type, task_id, after):
        """The task's log lines (``tasklog.LogLine``) with ``seq`` greater
        than ``after``, oldest first, at most ``tasklog.READ_LIMIT``.
        ``task_type`` None (the operator's view) accepts a task of any
        method."""
        raise NotImplementedError

    # operator side: the task list (tasktypes.tasklist)

    def list_tasks(self, method=None, status=None, cursor=None, limit=50):
        """The newest tasks first, of ``method`` and in ``status`` if given:
        ``(states, next_cursor)``; ``next_cursor`` is None at the end. Reads
        at most ``MAX_SCANNED`` index entries, so a page may hold fewer than
        ``limit`` tasks and still have a next one. A cursor is an opaque
        string from an earlier call; a malformed one raises ``ValueError``."""
        raise NotImplementedError

    def count_statuses(self, method=None):
        """``{status: count}`` over the newest ``COUNT_WINDOW`` tasks (of
        ``method`` if given)."""
        raise NotImplementedError

    def describe(self, task_id):
        """``(state, task_type)`` of any task: its ``TaskState`` with
        ``submitted``, ``arguments`` and its result if it is done, and its
        ``TaskType`` (None if this process does not know it, and then no
        result); None if there is no such task."""
        raise NotImplementedError

    def result(self, task_type, task_id):
        """What the body returned; raises the error that says why not."""
        return self.check_result(self.read(task_type, task_id, with_result=True))

    @staticmethod
    def check_result(state):
        status = state.status
        data = {"status": status.value, "progress": state.progress}
        if status is TaskStatus.DONE:
            return state.result
        if status is TaskStatus.CANCELLED:
            raise TaskCancelled("task %d was cancelled" % state.task_id, **data)
        if status is TaskStatus.FAILED:
            if state.timed_out:
                raise TaskTimedOut(state.message, **data)
            raise TaskFailed(state.message, **data)
        raise TaskNotFinished("task %d is %s" % (state.task_id, status.value), **data)

    # task side: what a runner calls once a body has run

    def finish(self, task_type, task_id, doc, message=None):
        """The body of a running task returned: ``doc`` is its result as a
        JSON document of ``task_type.returns`` (``documents.encode_result``,
        at most ``max_result`` bytes), ``message`` the last progress message
        the body reported, if any. The task ends ``done`` with progress 1.0,
        unless it is no longer running (a cancel or its time limit won)."""
        raise NotImplementedError

    def fail(self, task_type, task_id, message, timed_out=False, progress=None):
        """The task ends ``failed`` with ``message`` (what clients see, from
        ``task_body.error_text``), ``timed_out`` if its time limit ended it,
        at its last reported ``progress`` if given. No change to a task that
        has ended already."""
        raise NotImplementedError

    def append_log(self, task_id, lines):
        """Keep ``(time, level, message)`` lines of the task's own log
        (``tasklog``: the newest ``MAX_LINES``); nothing for a task that is
        gone."""
        raise NotImplementedError

    def close(self):
        """Release threads, processes and connections."""


class ThreadStore(Store):
    """Tasks in this process's memory, bodies on a bounded pool of threads.

    Only the process that ran ``submit`` knows a task: deploy it as one
    server process (with many threads).
    """

    def __init__(self, workers=DEFAULT_WORKERS, result_ttl=DEFAULT_RESULT_TTL,
                 max_queued=None, max_kept=1_000_000, max_result=DEFAULT_MAX_RESULT):
        self.result_ttl = result_ttl
        self.max_result = max_result
        self.max_kept = max_kept
        self._tasks = {}
        self._logs = {}  # task id -> TaskLog, once it has logged
        self._types = {}  # task id -> TaskType, for the operator's view
        self._keys = idempotency.KeyMap()  # Idempotency-Keys, forgotten with their tasks
        # (submission number, task id), oldest first, for the task list
        self._index = []
        self._submissions = 0
        # Finished task ids in the order they ended: expiry pops from the left.
        self._finished = collections.OrderedDict()
        self._lock = threading.Lock()
        self._ended = threading.Condition(self._lock)
        self._waiters = 0  # wait() calls waiting on _ended: none, no notify
        self.runner = ThreadRunner(self, workers,
                                   max_queued or workers * QUEUE_PER_WORKER)

    # client side

    def submit(self, task_type, args, idempotency_key=None):
        arguments = arguments_text(task_type, args)  # not under the lock: it may be long
        if idempotency_key is not None:
            fingerprint = idempotency.fingerprint(task_type, args)
        task_id = new_task_id()  # not under the lock: it reads the OS's random source
        with self._lock:
            now = time.time()
            self._expire(now)
            if idempotency_key is not None:
                first = self._keys.find(task_type.name, idempotency_key, fingerprint, now)
                if first is not None:
                    return self._copy(self._tasks[first])
            while task_id in self._tasks:
                task_id = new_task_id()
            state = TaskState(task_id, task_type.name, submitted=now, arguments=arguments)
            self.runner.enqueue(task_type, task_id, args)  # raises Busy
            self._tasks[task_id] = state
            self._types[task_id] = task_type
            self._submissions += 1
            self._index.append((self._submissions, task_id))
            del self._index[:-self.max_indexed]  # the newest only (a memmove)
            if idempotency_key is not None:
                self._keys.add(task_type.name, idempotency_key, fingerprint, task_id,
                               now + self.result_ttl)
            return self._copy(state)

    def read(self, task_type, task_id, with_result=False):
        with self._lock:
            return self._copy(self._get(task_type, task_id), with_result)

    def cancel(self, task_type, task_id):
        with self._lock:
            state = self._get(task_type, task_id)
            if state.status is TaskStatus.QUEUED:
                self.runner.discard(task_id)
            if not state.status.is_finished:
                self._end(state, TaskStatus.CANCELLED, "cancelled")
            return self._copy(state)

    def wait(self, task_type, task_id, timeout):
        deadline = time.monotonic() + timeout
        with self._lock:
            state = self._get(task_type, task_id)
            while not state.status.is_finished:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._waiters += 1
                try:
                    self._ended.wait(left)
                finally:
                    self._waiters -= 1
            return self._copy(state)

    def log(self, task_type, task_id, after):
        with self._lock:
            if task_type is not None:
                self._get(task_type, task_id)
            elif task_id not in self._tasks:
                raise TaskNotFound("no task %s" % task_id)
            task_log = self._logs.get(task_id)
            return task_log.after(after) if task_log is not None else []

    def list_tasks(self, method=None, status=None, cursor=None, limit=50):
        before = None if cursor is None else _positive_int(cursor)
        found = []
        with self._lock:
            self._expire(time.time())
            index = self._index
            end = len(index) if before is None else bisect.bisect_left(index, (before,))
            i = end
            while i > 0 and len(found) < limit and end - i < self.max_scanned:
                i -= 1
                state = self._tasks.get(index[i][1])
                if state is not None and method in (None, state.method) \
                        and status in (None, state.status.value):
                    found.append(self._copy(state))
            return found, (str(index[i][0]) if i > 0 else None)

    def count_statuses(self, method=None):
        with self._lock:
            self._expire(time.time())
            counts = collections.Counter()
            for _, task_id in self._index[-COUNT_WINDOW:]:
                state = self._tasks.get(task_id)
                if state is not None and method in (None, state.method):
                    counts[state.status.value] += 1
            return dict(counts)

    def describe(self, task_id):
        with self._lock:
            self._expire(time.time())
            state = self._tasks.get(task_id)
            if state is None:
                return None
            return self._copy(state, with_result=True), self._types.get(task_id)

    # task side (see Store)

    def append_log(self, task_id, lines):
        with self._lock:
            if task_id in self._tasks:
                task_log = self._logs.get(task_id)
                if task_log is None:
                    task_log = self._logs[task_id] = TaskLog()
                for line in lines:
                    task_log.append(*line)

    def start(self, task_id):
        """Mark the task running; False if it was cancelled while queued."""
        with self._lock:
            state = self._tasks.get(task_id)
            if state is None or state.status is not TaskStatus.QUEUED:
                return False
            state.status = TaskStatus.RUNNING
            state.starttime = time.time()
            return True

    def update_progress(self, task_id, fraction, message=None):
        fraction = clamp_progress(fraction)
        with self._lock:
            state = self._tasks.get(task_id)
            if state is None or state.status is not TaskStatus.RUNNING:
                raise TaskStopped(task_id)
            state.progress = fraction
            if message is not None:
                state.message = bounded_text(message, MAX_MESSAGE)

    def finish(self, task_type, task_id, doc, message=None):
        self.finish_decoded(task_id, decode_result(task_type.returns, doc), message)

    def finish_decoded(self, task_id, result, message=None):
        """``finish`` with the result as ``decode_result`` reads it back
        (the runner has it from ``documents.result_document``)."""
        with self._lock:
            state = self._tasks.get(task_id)
            if state is not None and state.status is TaskStatus.RUNNING:
                state.result = result
                state.progress = 1.0
                self._end(state, TaskStatus.DONE, message)

    def fail(self, task_type, task_id, message, timed_out=False, progress=None):
        with self._lock:
            state = self._tasks.get(task_id)
            if state is not None and not state.status.is_finished:
                state.timed_out = timed_out
                if progress is not None:
                    state.progress = progress
                self._end(state, TaskStatus.FAILED, message)

    def close(self):
        self.runner.close()

    # internals (called with the lock held)

    def _get(self, task_type, task_id):
        self._expire(time.time())
        state = self._tasks.get(task_id)
        if state is None or state.method != task_type.name:
            raise TaskNotFound(
                "no task %s of %s in this server process: unknown, expired, or "
                "started by another process (the thread store keeps tasks in the "
                "memory of the process that started them)" % (task_id, task_type.name))
        return state

    def _end(self, state, status, message=None):
        state.status = status
        if message is not None:
            state.message = message
        state.endtime = time.time()
        self._finished[state.task_id] = state.endtime + self.result_ttl
        if self._waiters:
            self._ended.notify_all()

    def _expire(self, now):
        finished = self._finished
        while finished:
            task_id = next(iter(finished))  # the first to end
            if finished[task_id] > now and len(finished) <= self.max_kept:
                break
            del finished[task_id]
            self._tasks.pop(task_id, None)
            self._logs.pop(task_id, None)
            self._types.pop(task_id, None)
            self._keys.forget(task_id)

    @staticmethod
    def _copy(state, with_result=False):
        # A copy of the fields' dict (one C call: half of what the
        # dataclass's __init__ with every field costs, on every poll).
        fields = state.__dict__.copy()
        if not with_result:
            fields["result"] = NO_RESULT
        copy = _new_state(TaskState)
        copy.__dict__ = fields
        return copy


def _positive_int(cursor):
    if not (isinstance(cursor, str) and cursor.isdigit() and len(cursor) < 20):
        raise ValueError("bad cursor %.40r" % (cursor,))
    return int(cursor)
