"""The durable queue of the Redis store: queued tasks wait in Redis, not in
the memory of the server process that accepted them, and any worker of the
deployment (a ``tasktypes worker`` service, or a web process that runs its
own workers) takes them from there.

    queue = RedisQueue(client, "tasktypes:", consumer="host:pid:abcd")
    entry = queue.submit(task_id, limit, fields, ...)   # hash + entry, atomically
    for task_id, key, entry in queue.claim(4, block_ms=500): ...
    outcome, args = queue.start(task_id, entry, pid, ...)   # "started" wins once

Why a stream with a consumer group, not lists
    A list queue (LPUSH/BRPOPLPUSH into a per-worker "processing" list) has
    to invent what a consumer group has built in: which consumer holds
    which entry (the pending entries list), since when (its idle time), and
    handing over the entries of a consumer that died (``XAUTOCLAIM`` after
    ``CLAIM_IDLE`` seconds), atomically and without a sweeper scanning
    every worker's list. Entries keep their submission order (stream ids
    grow), ``XLEN`` counts what waits, and a cancelled entry is removed by
    id (``XDEL``) wherever it is.

Redis layout (besides the task hash, see ``redis_store``):

``tasktypes:queue`` (stream) and its consumer group ``workers``
    one entry per submitted task (``task``: its id, ``key``: its task type
    key), added by the same Lua script that writes the task's hash
    (``submit``), so no task exists without its entry nor an entry without
    its task. Each worker reads new entries with ``XREADGROUP`` (consumer:
    its server id) only as many as it has free worker processes, so it
    does not hoard the queue.
``tasktypes:parked`` (sorted set)
    tasks taken from the stream whose method was at its ``_max_running``
    limit, scored by their stream id (submission order). A worker looks
    here first, oldest first, for a task whose method has a free slot
    (``take_parked``): so a method at its limit does not hold up the others
    (their entries are read and started past it) and its own tasks still
    start in the order they were submitted, as soon as a slot frees
    anywhere (each ``ended`` message and each heartbeat make a worker look).
    A worker service that stops parks the entries it had claimed but not
    started, so they run elsewhere at once; a worker parks an entry of a
    task type it has not loaded, and takes parked tasks of its own types
    only, so a task waits for a worker that has its service module.

Starting is one Lua script (``start``, ``take_parked``): the task's status
goes from ``queued`` to ``running`` only if it is still queued, its
``_max_running`` slot is taken in the same step, and its entry is
acknowledged and deleted (``XACK`` + ``XDEL``). Two workers that hold the
same entry (one claimed it from a consumer that looked dead) cannot both
start it: the second finds it running and only acknowledges it. An entry of
a cancelled task is deleted by the cancel, and the worker that had claimed
it acknowledges it when it finds the task cancelled.

``Busy``: ``submit`` refuses a task while the stream and the parked set hold
``max_queued`` entries together (``MAX_QUEUED``, deployment-wide).
"""

import redis

from .errors import Busy

#: The consumer group of every worker of the deployment.
GROUP = "workers"

# Shared by the starting scripts. ARGV: [1] task key prefix, [2] slots key
# prefix, [3] lease ms, [4] now, [5] pid, [6] server id, [7] server key,
# [8] ttl ms of a running task, [9] heartbeat ttl ms, [10] ttl ms of the
# queue's keys.
_START_TASK = """
local function take_slot(slots, limit, id, lease)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
  -- No lease runs longer than the lease time from now: one that does was not
  -- written by us (a forged far-future score would hold a slot for ever).
  redis.call('ZREMRANGEBYSCORE', slots, '(' .. (now + lease), '+inf')
  if not redis.call('ZSCORE', slots, id) and redis.call('ZCARD', slots) >= limit then
    return false
  end
  redis.call('ZADD', slots, now + lease, id)
  redis.call('PEXPIRE', slots, lease)
  return true
end

local function start_task(task)
  redis.call('HSET', task, 'status', 'running', 'starttime', ARGV[4], 'alive', ARGV[4],
             'pid', ARGV[5], 'server', ARGV[6])
  redis.call('PEXPIRE', task, ARGV[8])
  -- the reader's test of a lost task needs this server's heartbeat at once
  redis.call('SET', ARGV[7], '1', 'PX', ARGV[9])
  return redis.call('HGET', task, 'args')
end

local function score_of(entry)
  local ms, seq = string.match(entry, '(%d+)-(%d+)')
  return tonumber(ms) * 1000 + math.min(tonumber(seq), 999)
end

local function park(parked, id, entry, ttl)
  redis.call('ZADD', parked, score_of(entry), id)
  redis.call('PEXPIRE', parked, ttl)
end
"""

# KEYS: task, queue, parked, index, index of the method. ARGV: max queued,
# ttl ms, index ttl ms, max indexed, task id, task type key, submit time,
# then the hash's field/value pairs. Returns the entry id, or false (Busy).
_SUBMIT = """
if redis.call('XLEN', KEYS[2]) + redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[1]) then
  return false
end
redis.call('HSET', KEYS[1], unpack(ARGV, 8))
local entry = redis.call('XADD', KEYS[2], '*', 'task', ARGV[5], 'key', ARGV[6])
redis.call('HSET', KEYS[1], 'entry', entry)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
for i = 4, 5 do
  redis.call('ZADD', KEYS[i], ARGV[7], ARGV[5])
  redis.call('ZREMRANGEBYRANK', KEYS[i], 0, -tonumber(ARGV[4]) - 1)
  redis.call('PEXPIRE', KEYS[i], ARGV[3])
end
return entry
"""

# KEYS: queue, parked. ARGV as _START_TASK, then [11] group, [12] task id,
# [13] entry id. {"started", args}, {"gone"} (cancelled, lost, expired) or
# {"parked"} (its method is at its limit: the entry moves to the parked set).
_START = _START_TASK + """
local task = ARGV[1] .. ARGV[12]
local status, key, limit, server = unpack(redis.call('HMGET', task, 'status', 'key', 'limit',
                                                     'server'))
redis.call('XACK', KEYS[1], ARGV[11], ARGV[13])
redis.call('XDEL', KEYS[1], ARGV[13])
if status == 'running' and server == ARGV[6] then
  -- Started by this very server, whose runner did not get the reply (a
  -- resend after a lost reply, or its retry): it is in none of its workers,
  -- so it starts again here rather than stay 'running' with a live heartbeat.
  return {'started', start_task(task)}
end
if status ~= 'queued' then return {'gone'} end
limit = tonumber(limit) or 0
if limit > 0 and not take_slot(ARGV[2] .. key, limit, ARGV[12], tonumber(ARGV[3])) then
  park(KEYS[2], ARGV[12], ARGV[13], ARGV[10])
  return {'parked'}
end
return {'started', start_task(task)}
"""

# KEYS: parked. ARGV as _START_TASK, then [11] how many to look at, [12] the
# task type keys this worker runs, one a line. The oldest parked task of
# those whose method has a free slot, started: {id, key, args}; false if none
# may start. Tasks no longer queued are dropped on the way.
_TAKE_PARKED = _START_TASK + """
local full = {}
local known = {}
for key in string.gmatch(ARGV[12], '[^\\n]+') do known[key] = true end
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[11]) - 1)) do
  local task = ARGV[1] .. id
  local status, key, limit = unpack(redis.call('HMGET', task, 'status', 'key', 'limit'))
  if status ~= 'queued' then
    redis.call('ZREM', KEYS[1], id)
  elseif known[key] and not full[key] then
    limit = tonumber(limit) or 0
    if limit == 0 or take_slot(ARGV[2] .. key, limit, id, tonumber(ARGV[3])) then
      redis.call('ZREM', KEYS[1], id)
      return {id, key, start_task(task)}
    end
    full[key] = true
  end
end
return false
"""

# KEYS: queue, parked. ARGV: group, task id, entry id, task key prefix, ttl
# ms of the queue's keys. Gives
# back an entry claimed but not started (a worker that stops): parked, so
# that any worker takes it next, in its place in the submission order.
_PARK = _START_TASK + """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
if redis.call('HGET', ARGV[4] .. ARGV[2], 'status') == 'queued' then
  park(KEYS[2], ARGV[2], ARGV[3], ARGV[5])
end
return 1
"""

# KEYS: task, queue, parked. ARGV: task id. A cancelled task leaves the queue
# (a worker that had claimed its entry acknowledges it when it gets to it).
_FORGET = """
local entry = redis.call('HGET', KEYS[1], 'entry')
if entry then redis.call('XDEL', KEYS[2], entry) end
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
"""


class RedisQueue:
    """The queue's Redis calls; ``client`` is a decoding redis-py client.

    Errors are redis-py's: the store turns them into ``StoreUnavailable``.
    """

    def __init__(self, client, prefix, consumer, ttl_ms, blocking=None):
        self.redis = client
        #: Milliseconds the queue's keys live after their last write (an
        #: idle deployment's queue expires; workers create it again).
        self.ttl_ms = ttl_ms
        #: A client of its own for the blocking reads (``claim``).
        self.blocking = blocking
        self.consumer = consumer
        self.key = prefix + "queue"
        self.parked_key = prefix + "parked"
        self._submit = client.register_script(_SUBMIT)
        self._start = client.register_script(_START)
        self._take_parked = client.register_script(_TAKE_PARKED)
        self._park = client.register_script(_PARK)
        self._forget = client.register_script(_FORGET)

    # submit side

    def submit(self, task_key, task_id, type_key, fields, max_queued, ttl_ms,
               index_keys, index_ttl_ms, max_indexed, now):
        """Write the task's hash and its entry in one step; raises ``Busy``
        when ``max_queued`` tasks wait already."""
        pairs = [item for pair in fields.items() for item in pair]
        entry = self._submit(
            keys=[task_key, self.key, self.parked_key] + list(index_keys),
            args=[max_queued, ttl_ms, index_ttl_ms, max_indexed, task_id, type_key,
                  repr(now)] + pairs)
        if not entry:
            raise Busy("%d tasks are queued already; try again later" % max_queued)
        return entry

    def forget(self, task_key, task_id):
        """Take a cancelled task out of the queue."""
        self._forget(keys=[task_key, self.key, self.parked_key], args=[task_id])

    def queued(self):
        """Tasks waiting in the queue (claimed but not started included)."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.xlen(self.key)
            pipe.zcard(self.parked_key)
            return sum(pipe.execute())

    # worker side

    def ensure_group(self):
        try:
            self.redis.xgroup_create(self.key, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        else:  # a new stream: it expires like the queue's other keys
            self.redis.pexpire(self.key, self.ttl_ms)

    def claim(self, count, block_ms):
        """Up to ``count`` new entries for this consumer, waiting at most
        ``block_ms`` for the first: ``[(task_id, type_key, entry_id)]``."""
        try:
            reply = (self.blocking or self.redis).xreadgroup(GROUP, self.consumer, {self.key: ">"},
                                              count=count, block=block_ms)
        except redis.ResponseError as exc:
            # NOGROUP: a new Redis, or one that lost its data; UNBLOCKED: the
            # stream was deleted (expired, flushed) while this read waited
            if "NOGROUP" not in str(exc) and "UNBLOCKED" not in str(exc):
                raise
            self.ensure_group()
            return []
        return [_entry(entry_id, fields) for _, entries in reply or ()
                for entry_id, fields in entries if fields]

    def unblock(self):
        """End a ``claim`` waiting in another thread (the store closes)."""
        blocking = self.blocking
        if blocking is not None:
            try:
                blocking.connection_pool.disconnect()
            except Exception:
                pass

    def autoclaim(self, count, min_idle_ms):
        """Entries other consumers claimed ``min_idle_ms`` ago and never
        started (their worker died): now this consumer's."""
        try:
            reply = self.redis.execute_command(
                "XAUTOCLAIM", self.key, GROUP, self.consumer, int(min_idle_ms), "0",
                "COUNT", count)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.ensure_group()
            return []
        claimed = []
        for entry_id, fields in reply[1]:
            if fields:  # Redis 6.2 lists deleted entries as (id, None)
                claimed.append(_entry(entry_id, _pairs(fields)))
            else:
                self.redis.xack(self.key, GROUP, entry_id)
        return claimed

    def start(self, task_id, entry_id, common):
        """Start ``task_id`` from its entry: ``("started", args document)``,
        ``("gone", None)`` or ``("parked", None)``."""
        reply = self._start(keys=[self.key, self.parked_key],
                            args=common + [self.ttl_ms, GROUP, task_id, entry_id])
        return reply[0], (reply[1] if len(reply) > 1 else None)

    def take_parked(self, common, scan, known):
        """The oldest parked task of a type in ``known`` (keys) that may
        start now, started: ``(task_id, type_key, args document)`` or None."""
        reply = self._take_parked(keys=[self.parked_key],
                                  args=common + [self.ttl_ms, scan, "\n".join(known)])
        if not reply:
            return None
        return int(reply[0]), reply[1], reply[2]

    def park(self, task_id, entry_id, task_prefix):
        self._park(keys=[self.key, self.parked_key],
                   args=[GROUP, task_id, entry_id, task_prefix, self.ttl_ms])

    def leave(self):
        """This consumer stops: remove it from the group if it holds nothing."""
        try:
            pending = self.redis.xpending_range(self.key, GROUP, "-", "+", 1,
                                                consumername=self.consumer)
            if not pending:
                self.redis.xgroup_delconsumer(self.key, GROUP, self.consumer)
        except redis.ResponseError:
            pass


def _pairs(fields):
    if isinstance(fields, dict):
        return fields
    return dict(zip(fields[::2], fields[1::2]))


def _entry(entry_id, fields):
    return int(fields["task"]), fields["key"], entry_id
