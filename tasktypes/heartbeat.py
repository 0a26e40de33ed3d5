"""The runner's heartbeat: one beat a second tells readers that this server
process lives, and so do its tasks and the ``_max_running`` slots it holds.

    heartbeat = Heartbeat(store, pool, lock)
    beaten, ended = heartbeat.beat()   # ended: ids to stop here

Stopping does not rest on the ``ended`` channel alone (pub/sub delivers at
most once, and nothing while the listener reconnects): each heartbeat also
reads the status of every task running here and stops any that is no
longer ``running``, so a missed message costs at most a heartbeat. A task's
``_max_running`` slot is released only once its process is gone, never while
a cancelled or timed-out body may still run.
"""

import logging

from .errors import StoreUnavailable

logger = logging.getLogger(__name__)


class Heartbeat:
    """What tells readers that this server lives: one beat renews its
    heartbeat key, its running tasks and the ``_max_running`` leases it
    holds (until the process of a stopped task is gone), writes the final
    states Redis refused while it was down, and reads the status of the
    tasks running here, so that those that ended elsewhere are stopped even
    if the ``ended`` message was missed. Its lists are guarded by the
    runner's lock."""

    def __init__(self, store, pool, lock):
        self.store = store
        self.pool = pool
        self.lock = lock
        self.unwritten = []  # final states Redis refused while down: retried
        self._failed = False

    def beat(self):
        """``(beaten, ids)``: False if Redis is unreachable; the ids of the
        tasks running here that are no longer ``running`` in Redis."""
        pool = self.pool
        with self.lock:
            busy = list(pool.busy)
            leases = {}
            for worker in list(pool.busy.values()) + pool.dying:
                if worker.slot is not None:  # held until the process is gone
                    leases.setdefault(worker.slot.task_type.key, []).append(
                        worker.slot.task_id)
            unwritten, self.unwritten = self.unwritten, []
        try:
            statuses = self.store.heartbeat(busy, leases)
            while unwritten:
                unwritten[0]()
                unwritten.pop(0)
        except StoreUnavailable as exc:
            if not self._failed:
                logger.warning("heartbeat not written: %s", exc)
                self._failed = True
            with self.lock:
                self.unwritten[:0] = unwritten
            return False, []
        if self._failed:
            logger.info("heartbeat written again")
            self._failed = False
        ended = []
        with self.lock:
            for task_id in busy:
                status = statuses.get(task_id)
                if status != "running" and task_id in pool.busy:
                    logger.info("task %d is %s: stopping its process", task_id,
                                status or "gone from Redis")
                    ended.append(task_id)
        return True, ended
