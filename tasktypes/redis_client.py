"""Redis clients that fail within seconds, and the one rule that turns
Redis's connection failures into ``StoreUnavailable``: how the Redis
store (and its progress writer in the worker) reaches Redis, and what
happens to tasks while Redis does not answer.

    client = connect("redis://127.0.0.1:6379/0")

    @unavailable
    def read(self, ...): ...   # a method of a store with ``_silent_until``

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

import functools
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .errors import StoreUnavailable
from .defaults import SOCKET_TIMEOUT


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
