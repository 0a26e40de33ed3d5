"""``RedisStore``: task state in Redis, so that every server process and host
sharing one Redis answers progress, result, cancel and wait for any task.

    store = RedisStore("redis://127.0.0.1:6379/0", workers=8, result_ttl=3600)
    state = store.submit(task_type, (10, 0.5))      # runs in a child process
    store.wait(task_type, state.task_id, 30).status

Bodies run in worker processes of this server process (``ProcessRunner``);
the server process writes every change of status, a child writes only its
progress.

Redis layout (all names built in ``__init__`` from ``KEY_PREFIX``):

``tasktypes:task:<id>``
    one hash per task: ``method``, ``status``, ``progress``, ``message``,
    ``starttime``, ``endtime``, ``timed_out``, ``result`` (a JSON document of
    the method's declared return type, never a pickle), ``server`` (who runs
    it) and ``pid`` (the worker process). Every status change is a Lua script
    that checks the status it changes from, so a late progress write or a
    finishing body never overwrites ``cancelled`` or ``failed``. It expires
    ``result_ttl`` after the task ends; before that the heartbeat renews it.
``tasktypes:server:<server id>``
    the heartbeat of one server process, renewed every
    ``HEARTBEAT_INTERVAL`` and expiring after ``HEARTBEAT_TTL``. A reader that
    finds a queued or running task whose server has no heartbeat marks it
    failed right there: no sweeper process is needed.
``tasktypes:slots:<task type key>``
    the leases of ``_max_running``: a sorted set of task ids scored by when
    the lease expires (Redis's own clock); the heartbeat renews the leases of
    running tasks, so a dead server's slots come free by themselves.
``tasktypes:ended`` (pub/sub channel)
    carries the id of every task that ends (done, failed, cancelled, lost).
    Each server process listens: its waiters wake, and a cancelled task that
    it runs is terminated, whichever process the cancel came to.

Redis calls time out after ``SOCKET_TIMEOUT`` seconds; any connection
failure is ``StoreUnavailable``, and the next call simply reconnects.
"""

import functools
import logging
import os
import socket
import threading
import time
import uuid

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .documents import decode_result
from .errors import StoreUnavailable, TaskNotFound, TaskStopped
from .model import TaskState, TaskStatus, new_task_id
from .store import (DEFAULT_RESULT_TTL, DEFAULT_WORKERS, QUEUE_PER_WORKER, Store,
                    clamp_progress)

logger = logging.getLogger(__name__)

KEY_PREFIX = "tasktypes:"
#: Seconds between heartbeats of a server process, and until a silent one
#: counts as dead (its tasks failed, its slots free).
HEARTBEAT_INTERVAL = 1.0
HEARTBEAT_TTL = 4.0
#: Seconds any Redis call may take before the request gets StoreUnavailable.
SOCKET_TIMEOUT = 2.0
#: Seconds between progress writes of a running body (the last value wins).
PROGRESS_INTERVAL = 0.1

_FIELDS = ("method", "status", "progress", "message", "starttime", "endtime",
           "timed_out")

# KEYS: task, slots. ARGV: statuses it may leave (" queued running "),
# channel, task id, ttl ms, then field/value pairs to set.
_END = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status or not string.find(ARGV[1], ' ' .. status .. ' ', 1, true) then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
"""

# KEYS: task, slots. ARGV: server key prefix, now, ttl ms, channel, task id,
# message for a lost task, then the fields to return.
_READ = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'queued' or status == 'running' then
  local server = redis.call('HGET', KEYS[1], 'server')
  if redis.call('EXISTS', ARGV[1] .. server) == 0 then
    redis.call('HSET', KEYS[1], 'status', 'failed', 'message', ARGV[6],
               'endtime', ARGV[2])
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    redis.call('ZREM', KEYS[2], ARGV[5])
    redis.call('PUBLISH', ARGV[4], ARGV[5])
  end
end
return redis.call('HMGET', KEYS[1], unpack(ARGV, 7))
"""

# KEYS: task. ARGV: now, pid.
_START = """
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'running', 'starttime', ARGV[1], 'pid', ARGV[2])
return 1
"""

# KEYS: task. ARGV: progress, then message if there is one.
_PROGRESS = """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[1])
if ARGV[2] then redis.call('HSET', KEYS[1], 'message', ARGV[2]) end
return 1
"""

# KEYS: slots. ARGV: limit, task id, lease ms. Redis's clock, so that hosts
# with skewed clocks agree on when a lease is stale.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[2])
   and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS: slots. ARGV: lease ms, task ids.
_RENEW = """
local t = redis.call('TIME')
local until_ = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', until_, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""


def connect(redis_url):
    """A Redis client whose calls fail within seconds instead of hanging.

    One retry (no backoff) lets a call succeed on the first use of a pooled
    connection that Redis closed while it was down.
    """
    return redis.Redis.from_url(
        redis_url, decode_responses=True, socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=SOCKET_TIMEOUT, retry=Retry(NoBackoff(), 1),
        health_check_interval=30)


def unavailable(function):
    """Turn Redis connection failures into ``StoreUnavailable``."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable("the task store (Redis) is unreachable: %s"
                                   % exc) from None
    return wrapper


# -- the store ---------------------------------------------------------------

class RedisStore(Store):
    """Tasks in Redis, bodies in worker processes of each server process.

    ``redis_url`` is any redis-py URL (``redis://``, ``rediss://``,
    ``unix://``, with password and db). At most ``workers`` bodies run at
    once in this process; more wait here as ``queued``.
    """

    shared = True  # Any process sharing the Redis sees every task.

    def __init__(self, redis_url, workers=DEFAULT_WORKERS,
                 result_ttl=DEFAULT_RESULT_TTL, max_queued=None, prefix=KEY_PREFIX):
        from .process_runner import ProcessRunner  # the runner calls back into us

        self.redis_url = redis_url
        self.prefix = prefix
        self.result_ttl = result_ttl
        self.server_id = "%s:%d:%s" % (socket.gethostname(), os.getpid(),
                                       uuid.uuid4().hex[:8])
        self._task_key = prefix + "task:%d"
        self._server_prefix = prefix + "server:"
        self._server_key = self._server_prefix + self.server_id
        self._slots_key = prefix + "slots:%s"
        self.channel = prefix + "ended"

        self._ended_ms = int(result_ttl * 1000)
        self._unfinished_ms = int((result_ttl + HEARTBEAT_TTL) * 1000)
        self._heartbeat_ms = int(HEARTBEAT_TTL * 1000)

        self.redis = connect(redis_url)
        self._end = self.redis.register_script(_END)
        self._read = self.redis.register_script(_READ)
        self._start = self.redis.register_script(_START)
        self._acquire = self.redis.register_script(_ACQUIRE)
        self._renew = self.redis.register_script(_RENEW)

        self._waiters = {}  # task id -> set of Events, woken by the listener
        self._waiters_lock = threading.Lock()
        self._closed = threading.Event()
        self.runner = ProcessRunner(self, workers, max_queued or workers * QUEUE_PER_WORKER,
                                    ProgressWriter(redis_url, prefix))
        self._listener = threading.Thread(target=self._listen, daemon=True,
                                          name="tasktypes-redis-listener")
        self._listener.start()

    # client side

    @unavailable
    def submit(self, task_type, args):
        task_id = new_task_id()
        key = self._task_key % task_id
        with self.redis.pipeline() as pipe:
            # The heartbeat goes first: a reader must never see a task whose
            # server looks dead only because the first beat has not come yet.
            pipe.set(self._server_key, "1", px=self._heartbeat_ms)
            pipe.hset(key, mapping={
                "method": task_type.name, "key": task_type.key, "status": "queued",
                "progress": 0.0, "message": "", "starttime": 0.0, "endtime": 0.0,
                "timed_out": 0, "server": self.server_id})
            pipe.pexpire(key, self._unfinished_ms)
            pipe.execute()
        try:
            self.runner.enqueue(task_type, task_id, args)
        except Exception:
            self.redis.delete(key)
            raise
        return TaskState(task_id, task_type.name)

    @unavailable
    def read(self, task_type, task_id, with_result=False):
        fields = _FIELDS + ("result",) if with_result else _FIELDS
        values = self._read(
            keys=[self._task_key % task_id, self._slots_key % task_type.key],
            args=[self._server_prefix, time.time(), self._ended_ms, self.channel,
                  task_id, "the server process running this task stopped "
                  "(its heartbeat was lost)"] + list(fields))
        record = dict(zip(fields, values))
        if record["method"] != task_type.name:
            raise TaskNotFound("no task %s of %s" % (task_id, task_type.name))
        state = TaskState(
            task_id, record["method"], TaskStatus(record["status"]),
            float(record["progress"] or 0), record["message"] or "",
            float(record["starttime"] or 0), float(record["endtime"] or 0),
            record["timed_out"] == "1")
        if with_result and state.status is TaskStatus.DONE:
            state.result = decode_result(task_type.returns, record["result"])
        return state

    @unavailable
    def cancel(self, task_type, task_id):
        state = self.read(task_type, task_id)
        if not state.status.is_finished:
            self._transition(task_type, task_id, " queued running ",
                             status="cancelled", message="cancelled")
            state = self.read(task_type, task_id)
        return state

    def wait(self, task_type, task_id, timeout):
        """Wakes through the ``ended`` channel the moment the task ends on any
        host. It also reads the task again every ``HEARTBEAT_INTERVAL``: that
        finds a task whose server died (nobody publishes that) and covers the
        moments the listener spends reconnecting."""
        deadline = time.monotonic() + timeout
        event = threading.Event()
        with self._waiters_lock:
            self._waiters.setdefault(task_id, set()).add(event)
        try:
            state = self.read(task_type, task_id)
            while not state.status.is_finished:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                event.wait(min(left, HEARTBEAT_INTERVAL))
                event.clear()
                state = self.read(task_type, task_id)
            return state
        finally:
            with self._waiters_lock:
                events = self._waiters[task_id]
                events.discard(event)
                if not events:
                    del self._waiters[task_id]

    def close(self):
        self._closed.set()
        self.runner.close()

    # task side: called by the runner in this server process

    @unavailable
    def start(self, task_id, pid):
        """Mark the task running in worker ``pid``; False if it is no longer
        queued (cancelled, or lost)."""
        return bool(self._start(keys=[self._task_key % task_id],
                                args=[time.time(), pid]))

    @unavailable
    def finish(self, task_type, task_id, doc, message):
        fields = {"status": "done", "progress": 1.0, "result": doc}
        if message is not None:
            fields["message"] = message
        self._transition(task_type, task_id, " running ", **fields)

    @unavailable
    def fail(self, task_type, task_id, message, timed_out=False, progress=None):
        fields = {"status": "failed", "message": message, "timed_out": int(timed_out)}
        if progress is not None:
            fields["progress"] = progress
        self._transition(task_type, task_id, " queued running ", **fields)

    @unavailable
    def acquire_slot(self, task_type, task_id):
        """Take one of the method's ``_max_running`` slots, deployment-wide."""
        return bool(self._acquire(keys=[self._slots_key % task_type.key],
                                  args=[task_type.max_running, task_id,
                                        self._heartbeat_ms]))

    @unavailable
    def release_slot(self, task_type, task_id):
        self.redis.zrem(self._slots_key % task_type.key, task_id)

    @unavailable
    def heartbeat(self, task_ids, leases):
        """Keep this server's tasks alive: ``task_ids`` queued or running
        here, ``leases`` maps a task type key to the ids holding its slots."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self._server_key, "1", px=self._heartbeat_ms)
            for task_id in task_ids:
                pipe.pexpire(self._task_key % task_id, self._unfinished_ms)
            for key, ids in leases.items():
                self._renew(keys=[self._slots_key % key],
                            args=[self._heartbeat_ms] + list(ids), client=pipe)
            pipe.execute()

    @unavailable
    def forget_server(self):
        """This server process stops: its heartbeat goes at once."""
        self.redis.delete(self._server_key)

    def _transition(self, task_type, task_id, allowed, **fields):
        fields["endtime"] = time.time()
        pairs = [item for pair in fields.items() for item in pair]
        return self._end(keys=[self._task_key % task_id, self._slots_key % task_type.key],
                         args=[allowed, self.channel, task_id, self._ended_ms] + pairs)

    # the listener: wake waiters, stop tasks cancelled elsewhere

    def _listen(self):
        warned = False
        while not self._closed.is_set():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.channel)
                if warned:
                    logger.info("Redis is reachable again")
                    warned = False
                while not self._closed.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._ended(int(message["data"]))
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if not warned:
                    logger.warning("lost the connection to Redis (%s); retrying", exc)
                    warned = True
                self._closed.wait(0.5)
            finally:
                try:
                    pubsub.close()
                except Exception:
                    pass

    def _ended(self, task_id):
        with self._waiters_lock:
            for event in self._waiters.get(task_id, ()):
                event.set()
        self.runner.ended(task_id)


class ProgressWriter:
    """``update_progress`` for bodies running in a worker process.

    Made in the server process and sent to the worker, where it opens its own
    Redis client: nothing of the server's connections crosses over. A call
    only validates and records the value; a thread of the worker writes the
    latest one every ``PROGRESS_INTERVAL``, so a body may report in a tight
    loop. Once the task is no longer running (cancelled, timed out), the
    body's next call raises ``TaskStopped``.
    """

    def __init__(self, redis_url, prefix=KEY_PREFIX, interval=PROGRESS_INTERVAL):
        self.redis_url = redis_url
        self.task_key = prefix + "task:%d"
        self.interval = interval
        self._current = None

    def start_thread(self):
        """In the worker: the client, the script, and the writing thread."""
        self._client = connect(self.redis_url)
        self._progress = self._client.register_script(_PROGRESS)
        threading.Thread(target=self._write_loop, daemon=True,
                         name="tasktypes-progress").start()

    def reporter(self, task_id):
        """The ``update_progress`` callable for one task."""
        report = _Report(self.task_key % task_id)
        self._current = report

        def update_progress(fraction, message=None):
            if report.stopped:
                raise TaskStopped(task_id)
            report.progress = clamp_progress(fraction)
            if message is not None:
                report.message = str(message)
            report.dirty = True

        return update_progress, report

    def done(self):
        self._current = None

    def _write_loop(self):
        warned = False
        while True:
            time.sleep(self.interval)
            report = self._current
            if report is None or not report.dirty:
                continue
            report.dirty = False
            args = [repr(report.progress)]
            if report.message is not None:
                args.append(report.message)
            try:
                if not self._progress(keys=[report.key], args=args):
                    report.stopped = True
                warned = False
            except redis.RedisError as exc:
                if not warned:
                    logger.warning("progress not written: %s", exc)
                    warned = True


class _Report:
    __slots__ = ("key", "progress", "message", "dirty", "stopped")

    def __init__(self, key):
        self.key = key
        self.progress = 0.0
        self.message = None
        self.dirty = False
        self.stopped = False
