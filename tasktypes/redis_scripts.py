"""The Lua scripts of the Redis store's task records, one place for all of
them (as RQ keeps its own in ``scripts.py``): each status change is one
script that checks the status it changes from, so a late progress write or
a finishing body never overwrites ``cancelled`` or ``failed``. The queue's
scripts live with the queue (``tasktypes.redis_queue``). Key names are
passed in (``KEYS``), built by ``RedisStore.__init__`` from its prefix.
"""

# The one way a task ends, shared by the scripts below. KEYS: task, slots.
# ARGV[1..4]: channel, task id, ttl ms, "1" to free the task's
# ``_max_running`` slot (even if the task had ended already: "1" means its
# process is free), "0" while its process may still run (the runner frees
# the slot once the process is gone).
END_TASK = """
local function end_task(allowed, status, fields)
  if ARGV[4] == '1' then redis.call('ZREM', KEYS[2], ARGV[2]) end
  if not status or not string.find(allowed, ' ' .. status .. ' ', 1, true) then
    return 0
  end
  redis.call('HSET', KEYS[1], unpack(fields))
  -- kept for the result TTL of the process that accepted it (``ttl``),
  -- whichever process ends it
  local ttl = redis.call('HGET', KEYS[1], 'ttl') or ARGV[3]
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[1] .. ':log', ttl)
  redis.call('PUBLISH', ARGV[1], ARGV[2])
  return 1
end
"""

# ARGV[5]: statuses it may leave (" queued running "), then field/value pairs.
END = END_TASK + """
return end_task(ARGV[5], redis.call('HGET', KEYS[1], 'status'), {unpack(ARGV, 6)})
"""

# What a poll reads, in one short command (EVALSHA, the script, one key, two
# arguments): a poll packs and sends few bytes, and only a task found lost
# pays for more. KEYS: task. ARGV[1]: server key prefix, ARGV[2]: "1" to
# read the result too. Returns method, status, progress, message,
# starttime, endtime, timed_out, result (or nil), then, for a queued or
# running task whose server has no heartbeat, its ``alive`` (its last sign
# of life) or "": ``read`` then ends it as failed (``END``, which checks
# again that it is unfinished) and reads it again; last the task's ``ttl``
# (ms: the result TTL of the process that accepted it).
READ = """
local values = redis.call('HMGET', KEYS[1], 'method', 'status', 'progress', 'message',
                          'starttime', 'endtime', 'timed_out', 'server', 'alive', 'ttl')
if ARGV[2] == '1' then values[11] = redis.call('HGET', KEYS[1], 'result') or false end
local status, server = values[2], values[8]
local lost = false
if (status == 'queued' or status == 'running') and server
   and redis.call('EXISTS', ARGV[1] .. server) == 0 then
  lost = values[9] or ''
end
return {values[1], values[2], values[3], values[4], values[5], values[6], values[7],
        values[11] or false, lost, values[10] or false}
"""

# KEYS: tasks of this server. ARGV: now, ttl ms, task list index. Keeps each
# unfinished task alive, with its log and the task list's indexes (never
# recreating one that is gone) and returns the statuses.
BEAT = """
local statuses = {}
for i, key in ipairs(KEYS) do
  local status = redis.call('HGET', key, 'status')
  if status == 'queued' or status == 'running' then
    redis.call('HSET', key, 'alive', ARGV[1])
    redis.call('PEXPIRE', key, ARGV[2])
    redis.call('PEXPIRE', key .. ':log', ARGV[2])
    redis.call('PEXPIRE', ARGV[3], ARGV[2])
    redis.call('PEXPIRE', ARGV[3] .. ':' .. redis.call('HGET', key, 'method'), ARGV[2])
  end
  statuses[i] = status
end
return statuses
"""

# KEYS: task. ARGV: progress, then message if there is one.
PROGRESS = """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[1])
if ARGV[2] then redis.call('HSET', KEYS[1], 'message', ARGV[2]) end
return 1
"""

# KEYS: task, its log. ARGV: lines kept, then time, level, message of each
# new line. Numbers the lines in the task's hash (``logseq``); the log
# expires with the task. Nothing is written for a task that is gone.
APPEND_LOG = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = (#ARGV - 1) / 3
local seq = redis.call('HINCRBY', KEYS[1], 'logseq', n) - n
for i = 0, n - 1 do
  seq = seq + 1
  redis.call('RPUSH', KEYS[2], cjson.encode({seq, ARGV[2 + 3 * i], ARGV[3 + 3 * i],
                                             ARGV[4 + 3 * i]}))
end
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[1]), -1)
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return seq
"""

# KEYS: task, its log. ARGV: after, limit. The task's method (false if it is
# gone) and its lines numbered above ``after``: the list holds the newest
# lines, numbered up to ``logseq`` without gaps, so they are found by index.
READ_LOG = """
local method, last = unpack(redis.call('HMGET', KEYS[1], 'method', 'logseq'))
if not method then return {false, {}} end
local first = (tonumber(last) or 0) - redis.call('LLEN', KEYS[2]) + 1
local start = math.max(0, tonumber(ARGV[1]) - first + 1)
return {method, redis.call('LRANGE', KEYS[2], start, start + tonumber(ARGV[2]) - 1)}
"""

# KEYS: an idempotency key. ARGV: "<task id> <fingerprint>" of this submit,
# ttl ms, task key prefix, pending ms. Returns {outcome, value held}:
# 'claimed' (the key is this submit's now), 'found' (held by a task that
# exists), 'pending' (held, its task not written yet: claimed less than
# pending ms ago). An older claim without its task is taken over.
CLAIM = """
local held = redis.call('GET', KEYS[1])
-- our own claim already: this very call, resent after a lost reply
if held == ARGV[1] then return {'claimed', held} end
if held then
  local id = string.match(held, '^(%d+) ')
  if id and redis.call('EXISTS', ARGV[3] .. id) == 1 then return {'found', held} end
  if id and redis.call('PTTL', KEYS[1]) > tonumber(ARGV[2]) - tonumber(ARGV[4]) then
    return {'pending', held}
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {'claimed', ARGV[1]}
"""

# KEYS: slots. ARGV: lease ms, task ids.
RENEW = """
local t = redis.call('TIME')
local until_ = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', until_, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""
