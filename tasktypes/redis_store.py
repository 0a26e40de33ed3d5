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
    ``read`` answers a finished task's polls from ``FinishedStates``
    (``redis_finished``) without a round trip.

When Redis is unreachable
    Any connection failure is ``StoreUnavailable``; what happens to the
    tasks meanwhile and after: ``redis_client``.

Its other sides are modules of their own, mixed into ``RedisStore``: the
task side the runner calls (``redis_tasks``), the ``ended`` channel's
listener (``redis_listener``) and the operator's task list
(``redis_tasklist``); the body's progress is written from the worker
(``redis_progress``).
"""

import json
import logging
import os
import socket
import threading
import time
import uuid

import redis

from . import idempotency
from .documents import decode_result, encode_arguments
from .errors import Busy, StoreUnavailable, TaskNotFound, ValidationError
from .limits import DEFAULT_MAX_RESULT
from .model import TaskState, TaskStatus, new_task_id
from .tasklog import READ_LIMIT, LogLine
from .process_runner import ProcessRunner
from . import redis_scripts as scripts
from .redis_client import connect, unavailable
from .redis_finished import FinishedStates
from .redis_listener import EndedChannel
from .redis_progress import ProgressWriter
from .redis_queue import RedisQueue
from .redis_quick import QuickCommands
from .redis_tasklist import RedisTaskList
from .redis_tasks import RedisTaskSide
from .store import DEFAULT_RESULT_TTL, DEFAULT_WORKERS, Store, arguments_text
from .defaults import (MAX_ARGUMENTS, HEARTBEAT_INTERVAL, HEARTBEAT_TTL, IDEMPOTENCY_PENDING,
                       KEY_PREFIX, MAX_QUEUED, MAX_QUEUED_WAIT, SOCKET_TIMEOUT)

logger = logging.getLogger(__name__)


#: The message of a task whose server process (a web process running its own
#: workers, or a worker service) stopped beating without ending it: it
#: died, or lost Redis for longer than the heartbeat's TTL.
_LOST_MESSAGE = ("the process running this task stopped answering (its heartbeat was "
                 "lost: it died or lost its connection to Redis)")


class RedisStore(RedisTaskSide, EndedChannel, RedisTaskList, Store):
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
