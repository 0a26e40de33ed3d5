"""Where task bodies run in the thread store: a bounded pool of threads.

Waiting tasks sit in one queue; a free worker takes the oldest task whose
method is under its ``_max_running`` limit, so a method at its limit never
holds up the others. Beyond ``max_queued`` waiting tasks, submissions get
``Busy``: never one unbounded thread per call.

A thread cannot be killed. Cancel and time limit mark the task at once (the
store refuses its later writes), and the body's next ``update_progress``
raises ``TaskStopped`` so that it ends; a body that never reports progress
runs on and its result is discarded.
"""

import collections
import heapq
import itertools
import logging
import os
import threading
import time

from .documents import result_document
from .errors import Busy, TaskStopped
from .task_body import error_text, logged_traceback, run_body
from .tasklog import capturing

logger = logging.getLogger(__name__)


class ThreadRunner:
    """Wakes one sleeping worker per runnable submission, never all of them.

    Every wake of a thread is a context switch and a fight for the GIL with
    the thread that submits (some tens of µs each on one CPU); waking every
    sleeping worker per submission (``notify_all``), most of which find
    nothing to do, made a submission cost twice an ``echo`` with 8 clients.
    So: a submission wakes one sleeping worker, and only if its method has
    a free slot; a worker that has ended a task takes the next one itself
    without sleeping (the slot it freed is its own to fill), and a worker
    that takes a task while another runnable one waits wakes one more
    sleeper, so that no runnable task waits while a worker sleeps.
    """

    def __init__(self, store, workers, max_queued):
        self.store = store
        self.workers = workers
        self.max_queued = max_queued
        self._waiting = collections.deque()  # (task_type, task_id, args)
        self._running = {}  # method name -> tasks running now
        self._queued = {}  # task type -> its tasks waiting now (never 0)
        self._threads = []
        self._sleeping = 0  # workers waiting for a task that nobody woke yet
        self._closed = False
        # ``with self._lock``, not ``with self._cond``: the same lock without
        # Condition's Python-level __enter__ and __exit__.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._limits = TimeLimits()

    def enqueue(self, task_type, task_id, args):
        with self._lock:
            if self._closed:  # no worker would ever take it
                raise Busy("this server is stopping; try again later")
            if len(self._waiting) >= self.max_queued:
                raise Busy("%d tasks are waiting already; try again later"
                           % len(self._waiting))
            self._waiting.append((task_type, task_id, args))
            self._queued[task_type] = self._queued.get(task_type, 0) + 1
            limit = task_type.max_running
            if limit is None or self._running.get(task_type.name, 0) < limit:
                self._wake_one()  # else the worker that frees a slot takes it

    def discard(self, task_id):
        """Forget a waiting task (cancelled), freeing its place in the queue."""
        with self._lock:
            for item in self._waiting:
                if item[1] == task_id:
                    self._waiting.remove(item)
                    self._unqueue(item[0])
                    return

    def close(self):
        with self._lock:
            self._closed = True
            self._sleeping = 0  # they all wake, and end
            self._cond.notify_all()
        self._limits.close()

    def _wake_one(self):
        """A worker for a runnable waiting task: a sleeping one, or a new
        one while there are fewer than ``workers`` (lock held)."""
        if self._sleeping:
            self._sleeping -= 1
            self._cond.notify()
        elif len(self._threads) < self.workers:
            thread = threading.Thread(target=self._work, daemon=True,
                                      name="tasktypes-worker-%d" % len(self._threads))
            thread.start()  # may raise (no more threads): then it is not counted
            self._threads.append(thread)

    def _unqueue(self, task_type):
        left = self._queued[task_type] - 1
        if left:
            self._queued[task_type] = left
        else:
            del self._queued[task_type]

    def _any_runnable(self):
        """Whether a waiting task has a free slot: a look at the few methods
        that have waiting tasks, not at every waiting task."""
        running = self._running
        for task_type in self._queued:
            limit = task_type.max_running
            if limit is None or running.get(task_type.name, 0) < limit:
                return True
        return False

    def _next(self):
        """The oldest waiting task whose method has a free slot, taken (lock
        held); wakes a sleeping worker if another runnable task waits."""
        waiting = self._waiting
        if not waiting or not self._any_runnable():
            return None
        running = self._running
        for i, item in enumerate(waiting):
            task_type = item[0]
            limit = task_type.max_running
            if limit is None or running.get(task_type.name, 0) < limit:
                del waiting[i]
                self._unqueue(task_type)
                running[task_type.name] = running.get(task_type.name, 0) + 1
                if waiting and self._any_runnable():
                    try:
                        self._wake_one()
                    except RuntimeError:  # no thread to be had: this one comes back
                        pass
                return item
        return None  # not reached: _queued counts what _waiting holds

    def _work(self):
        _background()
        item = None
        while True:
            with self._lock:
                if item is not None:
                    self._running[item[0].name] -= 1
                item = self._next()
                while item is None:
                    if self._closed:
                        return
                    self._sleeping += 1
                    self._cond.wait()  # whoever notifies has counted us awake
                    item = self._next()
            try:
                self._run(*item)
            except BaseException as exc:  # ours, not the body's (run_body caught its)
                # the task ends and the worker lives on: a worker that died
                # here would leave its task running and never be replaced
                try:
                    logger.error("the worker of task %d of %s failed: %s", item[1],
                                 item[0].name, error_text(exc), exc_info=exc)
                    self.store.fail(item[0], item[1], "the task's worker failed: %s"
                                    % error_text(exc))
                except BaseException:
                    pass  # the slot is freed and the worker goes on all the same

    def _run(self, task_type, task_id, args):
        store = self.store
        if not store.start(task_id):
            return  # cancelled while queued
        limit = None
        if task_type.time_limit:
            limit = self._limits.watch(task_type.time_limit, self._time_out,
                                       (task_type, task_id))
        try:
            with capturing(lambda line: store.append_log(task_id, [line])):
                self._run_body(task_type, task_id, args)
        finally:
            if limit is not None:
                self._limits.cancel(limit)

    def _time_out(self, task_type, task_id):
        self.store.fail(task_type, task_id, task_type.time_limit_message, True)

    def _run_body(self, task_type, task_id, args):
        store = self.store
        try:
            result = run_body(task_type, task_id, args,
                              lambda fraction, message=None:
                              store.update_progress(task_id, fraction, message))
        except TaskStopped:
            pass
        except BaseException as exc:  # SystemExit too: the task fails, the worker lives
            logger.error("task %d of %s failed:\n%s", task_id, task_type.name,
                         logged_traceback(exc))
            store.fail(task_type, task_id, error_text(exc))
        else:
            try:  # as in the Redis store: a result must fit its declared type
                doc, result = result_document(task_type.returns, result, store.max_result)
            except Exception as exc:
                logger.error("task %d of %s returned what cannot be stored: %s", task_id,
                             task_type.name, error_text(exc))
                store.fail(task_type, task_id,
                           "the result cannot be stored: %s" % error_text(exc))
            else:  # what the document reads back as, read once: no second decode
                store.finish_decoded(task_id, result)


def _background():
    """Make this worker thread SCHED_BATCH (Linux; elsewhere nothing): the
    same share of the CPU, but waking it does not preempt the thread that
    woke it. What a body starts inherits it (threads, processes: the
    kernel's reset-on-fork resets only real-time policies), and so does the
    time-limit thread that a worker starts: all background work, which
    SCHED_BATCH is for; no privilege is needed, and none is gained. Without
    it, a submission's wake switched the server's request thread out at
    once, to a worker that then only waited for the GIL that thread still
    held: some 4 more thread switches per submission."""
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (AttributeError, OSError):
        pass


class TimeLimits:
    """The time limits of running tasks, watched by one thread: what a
    ``threading.Timer`` per task did, without starting a thread for each
    task (some 90 µs of CPU per task). Cancelled limits leave the heap once
    they are half of it, so a long limit that its task never reaches costs
    no memory for long.

    The thread sleeps until the soonest deadline in the heap, cancelled or
    not, and is woken only for a limit due before that: tasks of one method
    that run one after the other (each limit later than the one before)
    never wake it. Dropping each cancelled limit at once instead left it
    sleeping with nothing to wait for, and every next task woke it: two
    thread switches per task.

        limit = limits.watch(seconds, function, args)   # function(*args) then
        limits.cancel(limit)                            # unless cancelled first
    """

    def __init__(self):
        self._heap = []  # [deadline, number, function, args]; function None: cancelled
        self._numbers = itertools.count()
        self._cancelled = 0  # cancelled entries still in the heap
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._thread = None
        self._wakeup = None  # when the thread wakes by itself; None: not before notified
        self._closed = False

    def watch(self, seconds, function, args):
        deadline = time.monotonic() + seconds
        limit = [deadline, next(self._numbers), function, args]
        with self._lock:
            heapq.heappush(self._heap, limit)
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._watch, daemon=True,
                                                name="tasktypes-time-limits")
                self._thread.start()
            elif self._wakeup is None or deadline < self._wakeup:
                self._wakeup = deadline
                self._cond.notify()  # sooner than what the thread waits for
        return limit

    def cancel(self, limit):
        with self._lock:
            if limit[2] is None:
                return  # it fired (or was cancelled) already
            limit[2] = limit[3] = None
            self._cancelled += 1
            if self._cancelled > 64 and self._cancelled * 2 > len(self._heap):
                self._heap = [entry for entry in self._heap if entry[2] is not None]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def close(self):
        with self._lock:
            self._closed = True
            self._cond.notify()

    def _watch(self):
        while True:
            with self._lock:
                function = None
                while function is None:
                    if self._closed:
                        return
                    now = time.monotonic()
                    heap = self._heap
                    while heap and heap[0][0] <= now:
                        limit = heapq.heappop(heap)
                        if limit[2] is None:
                            self._cancelled -= 1
                            continue
                        function, args = limit[2], limit[3]
                        limit[2] = limit[3] = None  # fired: cancel does nothing
                        break
                    else:
                        self._wakeup = heap[0][0] if heap else None
                        self._cond.wait(None if self._wakeup is None else self._wakeup - now)
            try:
                function(*args)
            except Exception:
                logger.exception("a task's time limit could not be enforced")
