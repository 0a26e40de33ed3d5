"""The states of the finished tasks a process has read, so that the polls
of a finished task cost no Redis round trip (``RedisStore.read``).

A finished task never changes again, so ``read`` keeps the states of the
finished tasks it has read (bounded, for a minute at most, never past the
task's expiry) and answers their polls without a round trip.

    finished = FinishedStates()
    finished.put(state, result_ttl)        # a finished state, as read
    finished.get(task_id, method)          # a copy of it, or None
"""

import collections
import dataclasses
import threading
import time

from .defaults import FINISHED_CACHE_SECONDS, FINISHED_CACHE_SIZE


class FinishedStates:
    """The states of finished tasks this process has read, so that polling a
    finished task needs no Redis round trip: once finished, a task never
    changes again (every Lua transition checks the status it leaves). At
    most ``FINISHED_CACHE_SIZE`` of them, each kept ``FINISHED_CACHE_SECONDS``
    at most and never past the task's own expiry, so an expired task is
    TaskNotFound as before; a Redis that lost its data is seen within that
    bound. Results are not kept here (they may be large)."""

    def __init__(self, size=FINISHED_CACHE_SIZE, seconds=FINISHED_CACHE_SECONDS):
        self.size = size
        self.seconds = seconds
        self._states = collections.OrderedDict()  # task id -> (state, until)
        self._lock = threading.Lock()

    def get(self, task_id, method):
        """A copy of the kept state of ``task_id`` of ``method``, or None."""
        with self._lock:
            found = self._states.get(task_id)
            if found is None:
                return None
            state, until = found
            if until <= time.time():
                del self._states[task_id]
                return None
        return dataclasses.replace(state) if state.method == method else None

    def put(self, state, result_ttl):
        until = min(time.time() + self.seconds, state.endtime + result_ttl)
        with self._lock:
            self._states[state.task_id] = (dataclasses.replace(state), until)
            self._states.move_to_end(state.task_id)
            while len(self._states) > self.size:
                self._states.popitem(last=False)
