"""The operator side of ``RedisStore``: the task list (``tasklist``) read
from the index sorted sets, ``tasktypes:index`` and
``tasktypes:index:<method>`` (see ``redis_store`` for the layout).

Walking the index newest first, a page at a time, dropping the entries
whose task expired, is the one non-trivial read of the store and is used
only by the operator's pages, so it lives apart from the client side. It is
a mixin of ``RedisStore`` and uses ``redis``, ``_index_key``, ``_task_key``
and ``max_scanned`` (``Store``).
"""

import math

from .decorator import TASK_TYPES
from .documents import decode_result
from .model import TaskState, TaskStatus
from .redis_client import unavailable
from .store import COUNT_WINDOW


class RedisTaskList:
    """``list_tasks``, ``count_statuses``, ``describe`` (mixed into
    ``RedisStore``)."""

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
