"""Task bodies for the store tests, in a module that worker processes can
import (the Redis store's workers find a body by "module:Class.method").

    store.submit(task_type("add"), (2, 3))
"""

import logging
import math
import os
import signal
import sys
import time

# The checkout, for runs where tasktypes is not installed.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from spyne import (Array, Boolean, ComplexModel, Double, Integer, Integer32, Integer64,
                   ServiceBase, Unicode, UnsignedInteger, UnsignedInteger8, Uuid)
from spyne.model.primitive.number import PositiveInteger

from tasktypes import task_rpc
from tasktypes.decorator import TASK_TYPES

logger = logging.getLogger("tasktypes.tests.fixtures")


class Info(ComplexModel):
    __namespace__ = "tasktypes.tests"
    _type_info = [("name", Unicode), ("size", Integer), ("tags", Array(Unicode))]


class FixtureService(ServiceBase):
    @task_rpc(Integer, Integer, _returns=Integer)
    def add(ctx, a, b, update_progress):
        return a + b

    @task_rpc(_returns=Integer)
    def empty(ctx, update_progress):
        return None

    @task_rpc(_returns=Integer)
    def zero(ctx, update_progress):
        return 0

    @task_rpc(_returns=Unicode)
    def emptyText(ctx, update_progress):
        return ""

    @task_rpc(_returns=Boolean)
    def false(ctx, update_progress):
        return False

    @task_rpc(_returns=Array(Unicode))
    def emptyList(ctx, update_progress):
        return []

    @task_rpc(_returns=Integer)
    def nothing(ctx, update_progress):
        return None

    @task_rpc(Unicode, _returns=Info)
    def info(ctx, name, update_progress):
        return Info(name=name, size=0, tags=["a", ""])

    @task_rpc(Unicode, _returns=Integer)
    def fail(ctx, message, update_progress):
        raise ValueError(message)

    @task_rpc(_returns=Integer)
    def badResult(ctx, update_progress):
        return "not a number"

    @task_rpc(Double, _returns=Integer)
    def sleepy(ctx, seconds, update_progress):
        """Sleeps in steps of 20 ms, reporting progress after each."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.02)
            update_progress(1 - (deadline - time.monotonic()) / seconds if seconds else 1)
        return 1

    @task_rpc(Double, _returns=Integer, _max_running=2)
    def paired(ctx, seconds, update_progress):
        time.sleep(seconds)
        update_progress(1.0)
        return 1

    @task_rpc(Double, _returns=Integer, _time_limit=0.5)
    def limited(ctx, seconds, update_progress):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.02)
            update_progress(0.5)
        return 1

    @task_rpc(Double, _returns=Integer, _time_limit=0.5)
    def silent(ctx, seconds, update_progress):
        """Never reports progress: only killing its process stops it."""
        time.sleep(seconds)
        return 1

    @task_rpc(Double, _returns=Integer)
    def hold(ctx, seconds, update_progress):
        """Never reports progress and has no time limit: only a stop from
        outside (killing its process) ends it early."""
        time.sleep(seconds)
        return 1

    @task_rpc(Double, _returns=Integer)
    def counted(ctx, seconds, update_progress):
        """Counts its runs in Redis (``runs(redis_url, task_id)``), then
        takes ``seconds``, reporting progress every 0.05 s."""
        return _counted(ctx, seconds, update_progress)

    @task_rpc(Double, _returns=Integer, _max_running=2)
    def countedPair(ctx, seconds, update_progress):
        """``counted``, at most two at once deployment-wide."""
        return _counted(ctx, seconds, update_progress)

    @task_rpc(Double, _returns=Integer, _max_running=1)
    def stubborn(ctx, seconds, update_progress):
        """Ignores SIGTERM and never reports: its process outlives a
        terminate by the whole kill grace."""
        previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            time.sleep(seconds)
        finally:
            signal.signal(signal.SIGTERM, previous)
        return 1

    @task_rpc(Unicode, Double, _returns=Integer)
    def report(ctx, kind, hold, update_progress):
        """Reports one progress value named by ``kind``, then holds."""
        value = {"high": 1.5, "low": -2, "half": 0.5, "nan": math.nan,
                 "text": "0.5", "bool": True}[kind]
        update_progress(value, "reported %s" % kind)
        time.sleep(hold)
        return 1

    @task_rpc(Integer, _returns=Double)
    def tightLoop(ctx, calls, update_progress):
        """Calls update_progress ``calls`` times; returns microseconds per call."""
        started = time.perf_counter()
        for i in range(calls):
            update_progress(i / calls)
        return (time.perf_counter() - started) / calls * 1e6

    @task_rpc(Unicode, _returns=Integer)
    def crash(ctx, how, update_progress):
        """Ends its own process as a crash would: "segfault" reads address 0,
        "oom" sends itself SIGKILL, as the kernel's OOM killer does."""
        if how == "segfault":
            import ctypes
            ctypes.string_at(0)
        os.kill(os.getpid(), signal.SIGKILL)
        return 1

    @task_rpc(Integer, _returns=Integer)
    def logThenDie(ctx, count, update_progress):
        """Logs ``count`` records, then is killed (SIGKILL, as by the OOM
        killer): its records must reach the server all the same."""
        for i in range(count):
            logger.info("record %d of %d", i + 1, count)
        os.kill(os.getpid(), signal.SIGKILL)
        return 1

    @task_rpc(Unicode, _returns=Integer)
    def odd(ctx, text, update_progress):
        """Reports, logs and fails with ``text`` (say, a lone surrogate that
        JSON lets a caller send, or markup)."""
        update_progress(0.5, text)
        logger.info("odd: %s", text)
        time.sleep(0.3)  # the progress writer's interval: the message is written
        raise ValueError(text)

    @task_rpc(Integer, _returns=Integer)
    def logMany(ctx, count, update_progress):
        for i in range(count):
            logger.info("record %d of %d", i + 1, count)
        return count

    @task_rpc(Integer, Integer, Double, _returns=Integer)
    def chatty(ctx, count, length, hold, update_progress):
        """Logs ``count`` INFO lines of ``length`` characters (and one DEBUG
        line that no task log keeps), then holds ``hold`` seconds."""
        logger.debug("not kept")
        for i in range(count):
            logger.info("%d:%s", i + 1, "x" * length)
        steps = max(1, int(hold * 20))
        for _ in range(steps):
            time.sleep(hold / steps)
            update_progress(0.5)
        return count


RUNS_KEY = "test:runs:%d"


def _counted(ctx, seconds, update_progress):
    import redis
    client = redis.Redis.from_url(os.environ["TASKTYPES_REDIS_URL"])
    client.incr(RUNS_KEY % ctx.task_id)
    client.expire(RUNS_KEY % ctx.task_id, 3600)
    steps = max(1, int(seconds / 0.05))
    for i in range(steps):
        time.sleep(seconds / steps)
        update_progress((i + 1) / steps)
    return 1


def runs(redis_url, task_id):
    """How many times ``counted`` ran for ``task_id``."""
    import redis
    return int(redis.Redis.from_url(redis_url).get(RUNS_KEY % task_id) or 0)


def task_type(name):
    """The TaskType of the fixture method ``name``."""
    for key, task_type in TASK_TYPES.items():
        if key.endswith(":FixtureService." + name):
            return task_type
    raise KeyError(name)


def _odd(cls):
    def body(ctx, v, update_progress):
        return None
    return task_rpc(cls, _returns=Integer)(body)


class OddTypes(ServiceBase):
    """One task type per param type whose reading has a trap (for the tests
    of submits answered directly): checks beyond the bounds
    (UnsignedInteger's >= 0, an unsigned sized int's exclusive top,
    ``values``, exclusive bounds), and text with lengths, patterns and
    values, or text that becomes something else (Uuid)."""
    odd_unsigned = _odd(UnsignedInteger)
    odd_positive = _odd(PositiveInteger)
    odd_unsigned8 = _odd(UnsignedInteger8)
    odd_int32 = _odd(Integer32)
    odd_int64 = _odd(Integer64(ge=-3, le=3))
    odd_values = _odd(Integer(values=[1, 2, 3]))
    odd_exclusive = _odd(Integer(gt=0, lt=3))
    odd_double = _odd(Double(ge=-1, le=1))
    odd_double_open = _odd(Double(gt=0, lt=1))
    odd_double_values = _odd(Double(values=[0.5, 1.0]))
    odd_text = _odd(Unicode)
    odd_short = _odd(Unicode(min_len=1, max_len=3))
    odd_pattern = _odd(Unicode(pattern="[a-c]+"))
    odd_choice = _odd(Unicode(values=["a", "bc"]))
    odd_uuid = _odd(Uuid)


#: Values on both sides of each of OddTypes' checks, as JSON.
ODD_JSON_VALUES = [
    -5, -1, 0, 1, 2, 3, 4, 255, 256, 2 ** 31 - 1, 2 ** 31, 2 ** 63, -(2 ** 63) - 1,
    0.0, 0.5, 1.0, -0.0, 1.5, 1e308, "", "a", "bc", "abc", "abcd", "d", "\u00e9",
    "\ud800", "a\x00", "12345678-1234-5678-1234-567812345678", True, None, [1], {"a": 1}]
