"""The task side of ``RedisStore``: what the process runner
(``process_runner``) calls to take tasks from the queue, start them on a
worker, write their end and their log lines, and beat the heartbeat.

    class RedisStore(RedisTaskSide, EndedChannel, RedisTaskList, Store): ...

The client side (``submit``, ``read``, ``wait``, ...) is what a reader of
the store API looks for, in ``redis_store``; this side is called only by
the runner in a process with workers, so it lives apart. It is a mixin of
``RedisStore`` and uses the attributes ``RedisStore.__init__`` builds: the
client ``redis``, the key names (``prefix``, ``_task_key``, ``_log_key``,
``_slots_key``, ``_index_key``, ``_server_key``, ``channel``, ``server_id``),
the TTLs in ms (``_ended_ms``, ``_unfinished_ms``, ``_heartbeat_ms``), the
registered scripts (``_end``, ``_beat``, ``_renew``, ``_append_log``) and
the ``queue`` (``redis_queue``).
"""

import time

import redis

from .errors import StoreUnavailable
from .redis_client import unavailable
from .tasklog import MAX_LINES
from .defaults import PARKED_SCAN


class RedisTaskSide:
    """The runner's calls into the Redis store (mixed into ``RedisStore``)."""

    def _starting(self, pid):
        return [self.prefix + "task:", self.prefix + "slots:", self._heartbeat_ms,
                time.time(), pid, self.server_id, self._server_key,
                self._unfinished_ms, self._heartbeat_ms]

    @unavailable
    def start_claimed(self, task_id, entry, pid):
        """Start a claimed task in worker ``pid`` (``RedisQueue.start``):
        ``("started", args document)``, ``("gone", None)``, ``("parked", None)``."""
        return self.queue.start(task_id, entry, self._starting(pid))

    @unavailable
    def take_parked(self, pid, known):
        """Start the oldest parked task of the task type keys ``known`` that
        may start now, in worker ``pid``: ``(task_id, key, args document)``
        or None."""
        return self.queue.take_parked(self._starting(pid), PARKED_SCAN, known)

    @unavailable
    def parked_waiting(self):
        return bool(self.redis.zcard(self.queue.parked_key))

    @unavailable
    def park(self, task_id, entry):
        """Give back an entry claimed and not started."""
        self.queue.park(task_id, entry, self.prefix + "task:")

    @unavailable
    def claim(self, count, block_ms):
        return self.queue.claim(count, block_ms)

    @unavailable
    def autoclaim(self, count, min_idle):
        return self.queue.autoclaim(count, min_idle * 1000)

    def stop_claiming(self):
        """End a blocking ``claim`` of the feeder at once."""
        self.queue.unblock()

    @unavailable
    def finish(self, task_type, task_id, doc, message=None):
        """Its process is free, so is its slot."""
        fields = {"status": "done", "progress": 1.0, "result": doc}
        if message is not None:
            fields["message"] = message
        self._transition(task_type, task_id, " running ", True, **fields)

    @unavailable
    def fail(self, task_type, task_id, message, timed_out=False, progress=None):
        """The slot is freed with the end, except at a time limit: then the
        process may still run, and the runner releases the slot once it is
        gone."""
        fields = {"status": "failed", "message": message, "timed_out": int(timed_out)}
        if progress is not None:
            fields["progress"] = progress
        self._transition(task_type, task_id, " queued running ", not timed_out, **fields)

    @unavailable
    def append_log(self, task_id, lines):
        args = [MAX_LINES]
        for created, level, message in lines:
            args += [repr(created), level, message]
        self._append_log(keys=[self._task_key % task_id, self._log_key % task_id],
                         args=args)

    @unavailable
    def release_slot(self, task_type, task_id):
        self.redis.zrem(self._slots_key % task_type.key, task_id)

    def heartbeat(self, task_ids, leases):
        """Keep this server's tasks alive: ``task_ids`` queued or running
        here, ``leases`` maps a task type key to the ids holding its slots.

        Returns ``{task id: status}`` as Redis has it now (None for a task
        that is gone), so that the runner stops what ended elsewhere even if
        it missed the message on the ``ended`` channel. It is also the probe
        of a Redis that stopped answering: it is tried whatever
        ``unavailable`` says, and lets the other calls through again once it
        gets an answer."""
        try:
            statuses = self._heartbeat(list(task_ids), leases)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable("the task store (Redis) is unreachable: %s"
                                   % exc) from None
        self._silent_until = 0.0
        return statuses

    def _heartbeat(self, task_ids, leases):
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self._server_key, "1", px=self._heartbeat_ms)
            if task_ids:
                self._beat(keys=[self._task_key % i for i in task_ids],
                           args=[time.time(), self._unfinished_ms, self._index_key],
                           client=pipe)
            for key, ids in leases.items():
                self._renew(keys=[self._slots_key % key],
                            args=[self._heartbeat_ms] + list(ids), client=pipe)
            replies = pipe.execute()
        return dict(zip(task_ids, replies[1] if task_ids else ()))

    @unavailable
    def forget_server(self):
        """This server process stops: its heartbeat goes at once, and it
        leaves the queue's consumer group."""
        self.redis.delete(self._server_key)
        self.queue.leave()

    def _transition(self, task_type, task_id, allowed, release, **fields):
        fields["endtime"] = time.time()
        pairs = [item for pair in fields.items() for item in pair]
        return self._end(keys=[self._task_key % task_id, self._slots_key % task_type.key],
                         args=[self.channel, task_id, self._ended_ms, int(release),
                               allowed] + pairs)
