"""``QuickCommands`` (the Redis store's poll path) against a real
redis-server: replies in step with commands whatever fails, one retry
after Redis closed the connection, redis-py's exceptions otherwise."""

import os
import signal

import pytest
import redis

from tasktypes.redis_quick import QuickCommands


@pytest.fixture
def quick(redis_url):
    client = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=0.5,
                                  socket_connect_timeout=0.5)
    quick = QuickCommands(client.connection_pool)
    yield quick
    quick.close()
    client.close()


def test_replies_and_error_replies(quick):
    """Guards: a command gets its own reply; an error reply is raised as
    redis-py raises it and leaves the connection usable."""
    assert quick.call("SET", "k", "v") == "OK"
    assert quick.call("HMGET", "nothing", "a", "b") == [None, None]
    with pytest.raises(redis.ResponseError):
        quick.call("HGET", "k", "a")  # a string, not a hash
    with pytest.raises(redis.exceptions.NoScriptError):
        quick.call("EVALSHA", "0" * 40, 0)
    assert quick.call("GET", "k") == "v"


def test_a_restarted_redis_is_reconnected_once(quick, redis_server):
    """Guards: the first command after Redis went away and came back (its
    connection closed under it) succeeds; while it is away the command
    fails with redis-py's ConnectionError."""
    assert quick.call("ECHO", "before") == "before"
    redis_server.stop()
    with pytest.raises(redis.ConnectionError):
        quick.call("ECHO", "away")
    redis_server.start()
    assert quick.call("ECHO", "after") == "after"
    redis_server.stop()
    redis_server.start()
    assert quick.call("ECHO", "again") == "again"


def test_a_timed_out_reply_is_never_read_by_the_next_command(quick, redis_server):
    """Guards: a command that timed out (Redis paused) leaves no reply
    behind for the next command on the same connection."""
    assert quick.call("ECHO", "warm") == "warm"
    os.kill(redis_server.pid, signal.SIGSTOP)
    try:
        with pytest.raises(redis.TimeoutError):
            quick.call("ECHO", "late")
    finally:
        os.kill(redis_server.pid, signal.SIGCONT)
    assert quick.call("ECHO", "next") == "next"
    assert quick.call("ECHO", "and next") == "and next"
