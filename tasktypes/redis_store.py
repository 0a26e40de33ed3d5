"""``RedisStore``: task state in Redis, so that every server process and host
sharing one Redis answers progress, result, cancel and wait for any task.

    store = RedisStore("redis://127.0.0.1:6379/0", workers=8, result_ttl=3600)
    state = store.submit(task_type, (10, 0.5))      # queued in Redis
    store.wait(task_type, state.task_id, 30).status

Submitting queues the task in Redis (``redis_queue``); any process of the
deployment with workers takes it from there: this one (``workers`` > 0, the
zero-setup path), another web process, or a worker service (``worker``). A
store with ``workers=0`` only submits. Bodies run in worker processes
(``ProcessRunner``); the process that runs them writes every change of
status, a child writes only its progress.

Redis layout (all names built in ``__init__`` from ``KEY_PREFIX``):

``tasktypes:task:<id>``
    one hash per task: ``method``, ``key`` (its task type), ``status``,
    ``progress``, ``message``, ``starttime``, ``endtime``, ``timed_out``,
    ``args`` (a JSON document of the method's declared argument types),
    ``limit`` (its ``_max_running``, 0 for none), ``entry`` (its queue
    entry), ``ttl`` (the result TTL in ms of the process that accepted it:
    the task is kept that long after its end, whoever ends it), ``result``
    (a JSON document of the method's declared return type: nothing is ever
    a pickle), and, once started, ``server`` (the
    process that runs it), ``pid`` (the worker process) and ``alive`` (that
    server's last heartbeat while the task was unfinished). Every status
    change is a Lua script (``tasktypes.redis_scripts``) that checks the
    status it changes from, so a late progress write or a finishing body
    never overwrites ``cancelled`` or ``failed``. It expires ``ttl`` after
    the task ends; while it runs, the heartbeat
    renews it; a queued one is kept ``MAX_QUEUED_WAIT`` longer.
``tasktypes:queue``, ``tasktypes:parked``
    the queue: a stream with the consumer group ``workers``, and the tasks
    parked while their method is at its limit (``redis_queue``).
``tasktypes:task:<id>:log``
    the task's log (``tasklog``): a list of its newest ``MAX_LINES`` lines,
    each the JSON array ``[seq, time, level, message]``, numbered by the
    hash's ``logseq``; it expires with the task's hash (the end, the
    heartbeat and each append set its TTL to the hash's).
``tasktypes:index`` and ``tasktypes:index:<method>``
    the operator's task list: sorted sets of task ids scored by submit
    time, all tasks and those of one method, trimmed to the newest
    ``MAX_INDEXED`` at each submit. They expire like an unfinished task
    (each submit and heartbeat renew them); an entry whose task has expired
    is dropped when a listing meets it.
``tasktypes:server:<server id>``
    the heartbeat of one server process or worker service with workers,
    renewed every
    ``HEARTBEAT_INTERVAL`` and expiring after ``HEARTBEAT_TTL``. A reader that
    finds a running task whose server has no heartbeat marks it
    failed right there (no sweeper process is needed), with ``alive`` as its
    end: its duration is what it ran up to the last sign of life, at most a
    heartbeat short, however late it is read.
``tasktypes:slots:<task type key>``
    the leases of ``_max_running``: a sorted set of task ids scored by when
    the lease expires (Redis's own clock); the heartbeat renews the leases of
    running tasks, so a dead server's slots come free by themselves. A slot
    is freed when its task's process is free: with the end of a task that
    returned, raised or died, but after a cancelled or timed-out one has been
    terminated, so that no body runs beyond the limit.
``tasktypes:idempotency:<method>:<key>``
    an ``Idempotency-Key`` given to a submit of ``<method>``
    (``tasktypes.idempotency``): the string ``"<task id> <fingerprint>"``
    (the SHA-256 of the method and its canonical arguments), expiring
    ``result_ttl`` after that submit, so always before its task. A submit
    with a key claims it first (``scripts.CLAIM``, one script: ``SET`` if absent,
    else the holder), then writes the task: two concurrent retries make
    one task. A retry that finds a key claimed but its task not written
    yet waits for it; a claim still without its task after
    ``IDEMPOTENCY_PENDING`` seconds (its submit died in between) is taken
    over. A submit that fails after its claim (``Busy``) deletes it.
``tasktypes:ended`` (pub/sub channel)
    carries the id of every task that ends (done, failed, cancelled, lost).
    Each server process listens: its waiters wake, and a cancelled task that
    it runs is terminated, whichever process the cancel came to. Pub/sub
    delivers at most once, so the heartbeat also reads the status of the
    tasks running here and stops those that ended elsewhere.

Polls of finished tasks
    A finished task never changes again, so ``read`` keeps the states of
    the finished tasks it has read (``FinishedStates``: bounded, for a
    minute at most, never past the task's expiry) and answers their polls
    without a round trip.

When Redis is unreachable
    Redis calls time out after ``SOCKET_TIMEOUT`` seconds; any connection
    failure is ``StoreUnavailable`` (SOAP ``Server.StoreUnavailable``,
    JSON-RPC -32010), and the next call simply reconnects. Methods that do
    not touch the store keep working. Running bodies run on; a final state
    Redis refuses is kept by the runner and written at the next heartbeat
    that gets through, so a task that ended during an outage is found
    ``done`` (or ``failed``) once Redis answers again with its data.

    A Redis that comes back *without* its data (restarted with no
    persistence) has lost every task: nothing is recreated from the
    server's memory, since the server knows neither the start time nor the
    other servers' tasks. Such tasks are ``TaskNotFound`` like expired ones;
    the heartbeat finds a task running here gone from Redis and stops its
    process, and a final state retried for it is dropped. New tasks run
    normally.

    Heartbeat keys expire on Redis's clock: an outage longer than about
    ``HEARTBEAT_TTL - HEARTBEAT_INTERVAL`` seconds (a partition, a paused
    Redis) makes the tasks of the servers it cut off look lost to a reader,
    which then fails them, and their servers stop those processes.
"""

import collections
import dataclasses
import functools
import json
import math
import logging
import os
import socket
import threading
import time
import uuid

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .decorator import TASK_TYPES
from . import idempotency
from .documents import decode_result, encode_arguments
from .errors import Busy, StoreUnavailable, TaskNotFound, TaskStopped, ValidationError
from .limits import DEFAULT_MAX_RESULT, MAX_MESSAGE, bounded_text
from .model import TaskState, TaskStatus, new_task_id
from .tasklog import MAX_LINES, READ_LIMIT, LogLine
from .process_runner import ProcessRunner
from . import redis_scripts as scripts
from .redis_queue import RedisQueue
from .redis_quick import QuickCommands
from .store import (COUNT_WINDOW, DEFAULT_RESULT_TTL, DEFAULT_WORKERS, Store,
                    arguments_text)
from .task_body import clamp_progress
from .defaults import (MAX_ARGUMENTS, FINISHED_CACHE_SECONDS, FINISHED_CACHE_SIZE, HEARTBEAT_INTERVAL,
                       HEARTBEAT_TTL, IDEMPOTENCY_PENDING, KEY_PREFIX, MAX_QUEUED,
                       MAX_QUEUED_WAIT, PARKED_SCAN, PROGRESS_INTERVAL, SOCKET_TIMEOUT)

logger = logging.getLogger(__name__)


#: The message of a task whose server process (a web process running its own
#: workers, or a worker service) stopped beating without ending it: it
#: died, or lost Redis for longer than the heartbeat's TTL.
_LOST_MESSAGE = ("the process running this task stopped answering (its heartbeat was "
                 "lost: it died or lost its connection to Redis)")

def connect(redis_url, decode_responses=True):
    """A Redis client whose calls fail within seconds instead of hanging.

    One retry (no backoff) lets a call succeed on the first use of a pooled
    connection that Redis closed while it was down. A timeout is not retried:
    a Redis that does not answer (paused, partitioned) costs a caller
    ``SOCKET_TIMEOUT``, not twice that.
    """
    return redis.Redis.from_url(
        redis_url, decode_responses=decode_responses, socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=SOCKET_TIMEOUT,
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        health_check_interval=30)


def unavailable(function):
    """Turn Redis connection failures into ``StoreUnavailable``, and keep one
    Redis that does not answer from costing every call its timeout.

    After a call timed out (a paused or cut-off Redis), the store's calls
    fail at once until the heartbeat gets through again; every
    ``SOCKET_TIMEOUT`` seconds one call tries Redis again (and fails in its
    timeout) while the others still fail at once. So a JSON-RPC batch of 15
    progress calls gets its StoreUnavailable within one timeout, not 15, and
    requests do not pile up on server threads meanwhile. A refused
    connection fails fast by itself and changes nothing."""
    @functools.wraps(function)
    def wrapper(store, *args, **kwargs):
        silent_until = store._silent_until
        if silent_until:
            now = time.monotonic()
            if silent_until > now:
                raise StoreUnavailable("the task store (Redis) is not answering; "
                                       "try again in a few seconds")
            # This call tries again; the others fail fast while it does.
            store._silent_until = now + SOCKET_TIMEOUT
        try:
            result = function(store, *args, **kwargs)
        except redis.TimeoutError as exc:
            store._silent_until = time.monotonic() + SOCKET_TIMEOUT
            raise StoreUnavailable("the task store (Redis) is not answering: %s"
                                   % exc) from None
        except redis.ConnectionError as exc:
            raise StoreUnavailable("the task store (Redis) is unreachable: %s"
                                   % exc) from None
        if silent_until:
            store._silent_until = 0.0
        return result
    return wrapper


# -- the store ---------------------------------------------------------------

class RedisStore(Store):
    """Tasks in Redis; queued ones wait in Redis (``redis_queue``), bodies
    run in the worker processes of whoever takes them: this process's own
    (``workers`` of them; 0 makes it submit-only) or a worker service's.

    ``redis_url`` is any redis-py URL (``redis://``, ``rediss://``,
    ``unix://``, with password and db). ``max_queued`` bounds the tasks
    queued in Redis, deployment-wide (``Busy`` beyond). ``serve=False``
    leaves the threads and workers to be started later (``serve``): the
    worker service starts its worker processes first.
    """

    shared = True  # Any process sharing the Redis sees every task.
    #: Seconds between a waiter's re-reads of its task, besides its wake-up
    #: through the ``ended`` channel: nobody publishes the death of a server
    #: process, so only a read finds its tasks lost. (Tests make it long to
    #: prove that the wake-up comes from the channel.)
    reread_interval = HEARTBEAT_INTERVAL
    max_arguments = MAX_ARGUMENTS  # bytes of a task's arguments as JSON (defaults.py)
    #: Seconds between the heartbeats the runner beats for this store.
    heartbeat_interval = HEARTBEAT_INTERVAL
    #: Until when (monotonic) calls fail at once: Redis timed out (see ``unavailable``).
    _silent_until = 0.0

    def __init__(self, redis_url, workers=DEFAULT_WORKERS,
                 result_ttl=DEFAULT_RESULT_TTL, max_queued=MAX_QUEUED, prefix=KEY_PREFIX,
                 max_result=DEFAULT_MAX_RESULT, serve=True):
        self.redis_url = redis_url
        self.prefix = prefix
        self.result_ttl = result_ttl
        self.server_id = "%s:%d:%s" % (socket.gethostname(), os.getpid(),
                                       uuid.uuid4().hex[:8])
        self._task_key = prefix + "task:%d"
        self._log_key = self._task_key + ":log"  # the Lua scripts add ":log" too
        self._index_key = prefix + "index"  # ":<method>" for one method's
        self._server_prefix = prefix + "server:"
        self._server_key = self._server_prefix + self.server_id
        self._slots_key = prefix + "slots:%s"
        self._idempotency_key = prefix + "idempotency:%s:%s"  # method, key
        self.channel = prefix + "ended"

        self._ended_ms = int(result_ttl * 1000)
        self._unfinished_ms = int((result_ttl + HEARTBEAT_TTL) * 1000)
        self._heartbeat_ms = int(HEARTBEAT_TTL * 1000)

        self.redis = connect(redis_url)
        self._raw_redis = connect(redis_url, decode_responses=False)
        self._finished = FinishedStates()
        self._malformed = 0
        self._end = self.redis.register_script(scripts.END)
        self._read = self.redis.register_script(scripts.READ)
        self._quick = QuickCommands(self.redis.connection_pool)  # for polls: see read
        self._renew = self.redis.register_script(scripts.RENEW)
        self._beat = self.redis.register_script(scripts.BEAT)
        self._append_log = self.redis.register_script(scripts.APPEND_LOG)
        self._read_log = self.redis.register_script(scripts.READ_LOG)
        self._claim = self.redis.register_script(scripts.CLAIM)

        self._waiters = {}  # task id -> set of Events, woken by the listener
        self._waiters_lock = threading.Lock()
        self._closed = threading.Event()
        self.max_queued = max_queued
        self._queued_ms = int((result_ttl + MAX_QUEUED_WAIT) * 1000)
        self.queue = RedisQueue(self.redis, prefix, self.server_id, self._queued_ms,
                                blocking=connect(redis_url) if workers else None)
        self.runner = None
        if workers:
            self.runner = ProcessRunner(
                self, workers, ProgressWriter(redis_url, prefix, max_result=max_result))
        self._listener = threading.Thread(target=self._listen, daemon=True,
                                          name="tasktypes-redis-listener")
        if serve:
            self.serve()

    def serve(self):
        """Start listening, and taking tasks from the queue if this process
        has workers."""
        if self.runner is not None:
            try:
                self.queue.ensure_group()
            except redis.RedisError as exc:  # the feeder creates it later
                logger.warning("queue not ready yet: %s", exc)
            self.runner.start()
        self._listener.start()

    # client side

    @unavailable
    def submit(self, task_type, args, idempotency_key=None):
        """The task's hash and its queue entry, written in one Lua script
        (``RedisQueue.submit``); ``server`` is set by whoever starts it.
        With an ``idempotency_key``, the key is claimed first (``scripts.CLAIM``):
        a retry gets the first task's id and writes nothing."""
        args_doc = encode_arguments(task_type.arg_types, args)
        if len(args_doc) > self.max_arguments:
            raise ValidationError("the arguments are %d bytes as JSON, over the limit of %d "
                                  "for a task that waits in Redis"
                                  % (len(args_doc), self.max_arguments))
        task_id = new_task_id()
        claimed = None
        if idempotency_key is not None:
            first = self._claim_key(task_type, idempotency_key, args, task_id)
            if first is not None:
                return TaskState(first, task_type.name)
            claimed = self._idempotency_key % (task_type.name, idempotency_key)
        now = time.time()
        fields = {
            "method": task_type.name, "key": task_type.key, "status": "queued",
            "progress": 0.0, "message": "", "starttime": 0.0, "endtime": 0.0,
            "timed_out": 0, "submitted": repr(now), "limit": task_type.max_running or 0,
            "ttl": self._ended_ms,
            "arguments": arguments_text(task_type, args),
            "args": args_doc}
        try:
            self.queue.submit(self._task_key % task_id, task_id, task_type.key, fields,
                              self.max_queued, self._queued_ms,
                              (self._index_key, "%s:%s" % (self._index_key, task_type.name)),
                              self._unfinished_ms, self.max_indexed, now)
        except Busy:
            # refused, nothing written: the key is free again. After any other
            # failure (a timeout, a lost reply) the task may exist: the claim
            # stays, and a retry finds the task, or takes the claim over after
            # IDEMPOTENCY_PENDING if it was never written.
            if claimed is not None:
                self.redis.delete(claimed)
            raise
        return TaskState(task_id, task_type.name)

    def _claim_key(self, task_type, idempotency_key, args, task_id):
        """None if ``idempotency_key`` of this method is now this submit's
        (for ``task_id``), else the id of the task that holds it;
        ``IdempotencyConflict`` if that task had other arguments."""
        fingerprint = idempotency.fingerprint(task_type, args)
        name = self._idempotency_key % (task_type.name, idempotency_key)
        args = ["%d %s" % (task_id, fingerprint), self._ended_ms,
                self._task_key.replace("%d", ""), int(IDEMPOTENCY_PENDING * 1000)]
        deadline = time.monotonic() + IDEMPOTENCY_PENDING + SOCKET_TIMEOUT
        while True:
            outcome, held = self._claim(keys=[name], args=args)
            if outcome == "claimed":
                return None
            first, _, theirs = held.partition(" ")
            if theirs != fingerprint:
                raise idempotency.conflict(task_type.name, idempotency_key)
            if outcome == "found":
                return int(first)
            if time.monotonic() > deadline:  # the script takes it over before
                raise StoreUnavailable("the task of Idempotency-Key %s is still being "
                                       "submitted; try again" % idempotency_key)
            time.sleep(0.01)  # the first submit is between its claim and its task

    @unavailable
    def read(self, task_type, task_id, with_result=False):
        if not with_result:
            known = self._finished.get(task_id, task_type.name)
            if known is not None:
                return known
        return self._read_state(task_type, task_id, with_result, True)

    def _read_state(self, task_type, task_id, with_result, may_end_lost):
        key = self._task_key % task_id
        flag = 1 if with_result else 0
        try:
            values = self._quick.call("EVALSHA", self._read.sha, 1, key,
                                      self._server_prefix, flag)
        except redis.exceptions.NoScriptError:  # a Redis restarted: redis-py loads it
            values = self._read(keys=[key], args=[self._server_prefix, flag])
        method, status, progress, message, starttime, endtime, timed_out, result, lost, ttl \
            = values
        if method != task_type.name:
            raise TaskNotFound("no task %s of %s" % (task_id, task_type.name))
        # kept for the result TTL of the process that accepted it
        ended_ms = int(ttl) if ttl else self._ended_ms
        if lost is not None and may_end_lost:
            # A reader that finds a task whose server is gone marks it failed,
            # ended at its server's last sign of life; scripts.END changes it only
            # if it is still unfinished (it may have ended meanwhile). Then
            # once more what it reads now (failed, or how it ended).
            self._end(keys=[key, self._slots_key % task_type.key],
                      args=[self.channel, task_id, ended_ms, 1, " queued running ",
                            "status", "failed", "message", _LOST_MESSAGE,
                            "endtime", lost or time.time()])
            return self._read_state(task_type, task_id, with_result, False)
        state = TaskState(
            task_id, method, TaskStatus(status), float(progress or 0), message or "",
            float(starttime or 0), float(endtime or 0), timed_out == "1")
        if with_result and state.status is TaskStatus.DONE:
            state.result = decode_result(task_type.returns, result)
        elif state.status.is_finished:
            self._finished.put(state, ended_ms / 1000)
        return state

    @unavailable
    def cancel(self, task_type, task_id):
        state = self.read(task_type, task_id)
        if not state.status.is_finished:
            # The slot stays taken until the runner has stopped the process.
            self._transition(task_type, task_id, " queued running ", False,
                             status="cancelled", message="cancelled")
            self.queue.forget(self._task_key % task_id, task_id)
            state = self.read(task_type, task_id)
        return state

    @unavailable
    def log(self, task_type, task_id, after):
        # Lua numbers are doubles: beyond 2**53 LRANGE would get a float.
        after = max(0, min(after, 2 ** 53))
        method, entries = self._read_log(
            keys=[self._task_key % task_id, self._log_key % task_id],
            args=[after, READ_LIMIT])
        if not method or (task_type is not None and method != task_type.name):
            raise TaskNotFound("no task %s of %s" % (task_id, task_type.name
                                                     if task_type else "any method"))
        lines = []
        for entry in entries:
            seq, created, level, message = json.loads(entry)
            lines.append(LogLine(seq, float(created), level, message))
        return lines

    @unavailable
    def list_tasks(self, method=None, status=None, cursor=None, limit=50):
        index = self._index_key if method is None else "%s:%s" % (self._index_key, method)
        top, seen = "+inf", None  # read below ``top``; at ``top``, only ids before ``seen``
        if cursor is not None:
            top, seen = _parse_cursor(cursor)
        found, gone, scanned, last = [], [], 0, None
        while len(found) < limit and scanned < self.max_scanned:
            want = min(self.max_scanned - scanned, max(limit - len(found), 20))
            batch = self.redis.zrevrangebyscore(index, top, "-inf", start=0,
                                                num=want + 16, withscores=True)
            unread = [(m, score) for m, score in batch
                      if seen is None or repr(score) != top or m < seen]
            fresh = unread[:want]
            if not fresh:
                last = None
                break
            with self.redis.pipeline(transaction=False) as pipe:
                for member, _ in fresh:
                    pipe.hmget(self._task_key % int(member), _LISTED)
                records = pipe.execute()
            for (member, score), values in zip(fresh, records):
                scanned += 1
                last = (score, member)
                if values[0] is None:
                    gone.append(member)
                    continue
                state = _listed_state(int(member), values)
                if status in (None, state.status.value):
                    found.append(state)
                    if len(found) == limit:
                        break
            top, seen = repr(last[0]), last[1]
            if len(batch) < want + 16 and len(unread) == len(fresh) \
                    and last == fresh[-1]:
                last = None  # the index has nothing more
                break
        if gone:
            with self.redis.pipeline(transaction=False) as pipe:
                for key in {index, self._index_key}:
                    pipe.zrem(key, *gone)
                pipe.execute()
        return found, (None if last is None else "%r:%s" % last)

    @unavailable
    def count_statuses(self, method=None):
        index = self._index_key if method is None else "%s:%s" % (self._index_key, method)
        members = self.redis.zrevrange(index, 0, COUNT_WINDOW - 1)
        with self.redis.pipeline(transaction=False) as pipe:
            for member in members:
                pipe.hget(self._task_key % int(member), "status")
            statuses = pipe.execute()
        counts = {}
        for status in statuses:
            if status is not None:
                counts[status] = counts.get(status, 0) + 1
        return counts

    @unavailable
    def describe(self, task_id):
        values = self.redis.hmget(self._task_key % task_id,
                                  _LISTED + ("key", "timed_out", "arguments", "result"))
        if values[0] is None:
            return None
        state = _listed_state(task_id, values)
        key, timed_out, state.arguments, doc = values[len(_LISTED):]
        state.timed_out = timed_out == "1"
        task_type = TASK_TYPES.get(key)
        if state.status is TaskStatus.DONE and task_type is not None and doc is not None:
            state.result = decode_result(task_type.returns, doc)
        return state, task_type

    def wait(self, task_type, task_id, timeout):
        """Wakes through the ``ended`` channel the moment the task ends on any
        host: an end is seen within milliseconds, not at the next poll.

        Besides, it re-reads the task once every ``HEARTBEAT_INTERVAL`` while
        it waits (one Redis call per second per waiter). Nobody publishes the
        death of a server process, so only a read finds its tasks lost (at
        most ``HEARTBEAT_TTL`` plus a second after it died); the re-read also
        covers an end published while the listener was reconnecting."""
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
                event.wait(min(left, self.reread_interval))
                event.clear()
                state = self.read(task_type, task_id)
            return state
        finally:
            with self._waiters_lock:
                events = self._waiters[task_id]
                events.discard(event)
                if not events:
                    del self._waiters[task_id]

    def drain(self, grace, message):
        """The worker service's stop: no new tasks, the running ones get
        ``grace`` seconds, then fail with ``message`` (``ProcessRunner.drain``)."""
        self._closed.set()
        if self.runner is not None:
            self.runner.drain(grace, message)

    def close(self, message="the server process stopped"):
        """Stop; tasks running here fail with ``message``."""
        self._closed.set()
        if self.runner is not None:
            self.runner.close(message)
        self._quick.close()

    # task side: called by the runner in this server process

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

    # the listener: wake waiters, stop tasks cancelled elsewhere

    def _listen(self):
        """The listener thread's loop. It must never die: anyone who can
        publish on the channel could otherwise stop every wake-up and remote
        cancel of this process. Whatever goes wrong, it subscribes again
        after a short pause (the heartbeat and the waiters' re-reads cover
        what it misses meanwhile)."""
        warned = False
        while not self._closed.is_set():
            # Bytes, not text: a message that is not UTF-8 must not break the
            # connection inside redis-py's decoding (and drop what follows).
            pubsub = self._raw_redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.channel)
                if warned:
                    logger.info("Redis is reachable again")
                    warned = False
                while not self._closed.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._received(message)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if not warned:
                    logger.warning("lost the connection to Redis (%s); retrying", exc)
                    warned = True
                self._closed.wait(0.5)
            except Exception:
                logger.exception("the Redis listener hit an error; subscribing again")
                self._closed.wait(0.5)
            finally:
                try:
                    pubsub.close()
                except Exception:
                    pass

    def _received(self, message):
        """One message of the ``ended`` channel; a malformed one is ignored
        (logged the first time, then once every 1000, cut short)."""
        try:
            data = message["data"]
            if not (isinstance(data, bytes) and 0 < len(data) <= 20 and data.isdigit()):
                raise ValueError(data)
            task_id = int(data)
        except (KeyError, TypeError, ValueError):
            self._malformed += 1
            if self._malformed % 1000 == 1:
                logger.warning("ignored a malformed message on %s (%d so far): %.80r",
                               self.channel, self._malformed, message.get("data"))
            return
        try:
            self._ended(task_id)
        except Exception:
            logger.exception("could not handle the end of task %d", task_id)

    def _ended(self, task_id):
        with self._waiters_lock:
            for event in self._waiters.get(task_id, ()):
                event.set()
        if self.runner is not None:
            self.runner.ended(task_id)


#: The fields a task list shows, in the order ``_listed_state`` reads them.
_LISTED = ("method", "status", "progress", "message", "starttime", "endtime",
           "submitted")


def _listed_state(task_id, values):
    method, status, progress, message, starttime, endtime, submitted = values[:7]
    return TaskState(task_id, method, TaskStatus(status), float(progress or 0),
                     message or "", float(starttime or 0), float(endtime or 0),
                     submitted=float(submitted or 0))


def _parse_cursor(cursor):
    """``"<score>:<task id>"`` -> the score (as Redis reads it) and the id."""
    score, _, member = str(cursor).partition(":")
    try:
        if not member.isdigit() or len(member) > 19 or not math.isfinite(float(score)):
            raise ValueError
        return repr(float(score)), member
    except ValueError:
        raise ValueError("bad cursor %.40r" % (cursor,)) from None


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


class ProgressWriter:
    """``update_progress`` for bodies running in a worker process.

    Made in the server process and sent to the worker, where it opens its own
    Redis client: nothing of the server's connections crosses over. A call
    only validates and records the value; a thread of the worker writes the
    latest one every ``PROGRESS_INTERVAL``, so a body may report in a tight
    loop. Once the task is no longer running (cancelled, timed out), the
    body's next call raises ``TaskStopped``.
    """

    def __init__(self, redis_url, prefix=KEY_PREFIX, interval=PROGRESS_INTERVAL,
                 max_result=DEFAULT_MAX_RESULT):
        self.redis_url = redis_url
        self.task_key = prefix + "task:%d"
        self.interval = interval
        #: Bytes of a result document the worker may send (TASKTYPES_MAX_RESULT).
        self.max_result = max_result
        self._current = None

    def start_thread(self):
        """In the worker: the client, the script, and the writing thread."""
        self._client = connect(self.redis_url)
        self._progress = self._client.register_script(scripts.PROGRESS)
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
                report.message = bounded_text(message, MAX_MESSAGE)
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
