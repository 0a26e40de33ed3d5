"""Dispatch, the supervisor's first step each round: start the claimed
tasks, oldest first, then the parked tasks whose method has a slot free,
each on an idle worker.

A start is the Lua transition queued -> running (``RedisQueue.start``),
which only one worker of the deployment wins; a task whose method is at its
``_max_running`` limit is parked by the store instead, and a task of a type
this process does not know is parked for a worker that has it. It is a
mixin of ``ProcessRunner`` (``Dispatch``), apart because it is the one place
where tasks reach the workers; it uses the runner's ``lock``, ``pool``,
``store``, ``workers``, ``waiting``, ``stopping``, ``feeder``,
``_try_parked``, ``_starting``, ``_stop`` and ``_write``.
"""

import logging
import time

from .decorator import TASK_TYPES
from .errors import StoreUnavailable
from .task_body import error_text
from .worker_pool import Running
from .worker_process import Job

logger = logging.getLogger(__name__)


def task_type_of(key):
    """The task type of ``key`` if a service module loaded here defines it,
    else None: a task of another type is left to a worker that has it
    (parked). Never imported by the name read from Redis: whoever can write
    to Redis must not choose what this process imports."""
    return TASK_TYPES.get(key)


class Dispatch:
    """Starting tasks on idle workers (mixed into ``ProcessRunner``)."""

    def _dispatch(self):
        """Start tasks on idle workers: the claimed entries, oldest first
        (a task whose method is at its limit is parked by the store instead),
        then the parked tasks whose method has a slot free."""
        while True:
            with self.lock:
                if self.stopping or (not self.pool.idle
                                     and len(self.pool.busy) >= self.workers):
                    return
                claimed = self.waiting[0] if self.waiting else None
                if claimed is None and not self._try_parked:
                    return
                self._starting = set()
            try:
                if claimed is not None and task_type_of(claimed.key) is None:
                    # not a type of ours: parked for a worker that has it
                    self.store.park(claimed.task_id, claimed.entry)
                    self._unwait(claimed)
                    continue
                if claimed is not None:
                    worker = self.pool.idle_worker()
                    outcome, args = self.store.start_claimed(claimed.task_id, claimed.entry,
                                                     worker.process.pid)
                    self._unwait(claimed)
                    if outcome != "started":
                        continue  # "gone" (cancelled) or "parked"
                    task_id, key = claimed.task_id, claimed.key
                else:
                    if not self.pool.idle and not self.store.parked_waiting():
                        with self.lock:  # no worker is started for nothing
                            self._try_parked = False
                        return
                    worker = self.pool.idle_worker()
                    taken = self.store.take_parked(worker.process.pid, list(TASK_TYPES))
                    if taken is None:
                        with self.lock:
                            self._try_parked = False
                        return
                    task_id, key, args = taken
            except StoreUnavailable as exc:
                logger.warning("cannot start a task: %s", exc)
                return  # it stays claimed; the next heartbeat tries again
            finally:
                with self.lock:
                    ended_meanwhile, self._starting = self._starting, None
            self._hand(worker, task_type_of(key), task_id, args, task_id in ended_meanwhile)

    def _unwait(self, claimed):
        """``claimed`` is dealt with: off the waiting list, unless a drain
        or close took the list meanwhile (and parked it: the start script
        finds it started, or the parked one is started once)."""
        with self.lock:
            if claimed in self.waiting:
                self.waiting.remove(claimed)

    def _hand(self, worker, task_type, task_id, args, stop):
        """Give a started task to ``worker``."""
        running = Running(task_type, task_id)
        with self.lock:
            self.pool.idle.remove(worker)
            worker.task = running
            if task_type.max_running:
                worker.slot = running
            if task_type.time_limit:
                worker.deadline = time.monotonic() + task_type.time_limit
            self.pool.busy[task_id] = worker
            if stop:  # cancelled while it started
                self._stop.add(task_id)
        self.feeder.room.set()  # the claimed entry is gone: room for another
        try:
            worker.conn.send(Job(task_id, task_type.key, args))
        except Exception as exc:
            with self.lock:
                self.pool.busy.pop(task_id, None)
                worker.task = worker.deadline = worker.slot = None
                self.pool.idle.append(worker)
            self._write(self.store.fail, task_type, task_id,
                        "the task cannot be sent to its process: %s" % error_text(exc))

    def _park(self, claimed):
        try:
            self.store.park(claimed.task_id, claimed.entry)
        except StoreUnavailable as exc:  # XAUTOCLAIM gives it to another worker
            logger.warning("task %d stays claimed: %s", claimed.task_id, exc)
