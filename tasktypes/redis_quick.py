"""One Redis command at a time on connections kept here: the store's
hottest read (a poll of an unfinished task) without the work redis-py's
client and pool do around every command.

redis-py 8 spends about 30 µs of CPU around each command (the pool's lock,
observability counters, a ``poll()`` of the socket for unread data, the
retry and response-callback wrappers), more than the bare round trip costs
(~10 µs here). ``QuickCommands`` keeps its own free list of redis-py
connections, made by the client's pool (same URL, timeouts, TLS, auth) and
used through their own ``send_packed_command``/``read_response``:

- the same one retry as ``redis_client.connect`` gives the client: a
  connection that Redis closed (it restarted, or dropped an idle client)
  fails with ``ConnectionError`` on first use, is reconnected and the
  command sent once more; a timeout is not retried;
- a connection whose exchange failed in any other way than a whole error
  reply (``ResponseError``) is disconnected before it is reused, so no
  reply is ever read by the wrong command (what the pool's ``poll()``
  guards against);
- redis-py's exceptions reach the caller as the client raises them.

Only for commands that may be sent twice (reads): a retried command may
have run once already.

    quick = QuickCommands(client.connection_pool)
    values = quick.call("EVALSHA", sha, 1, key, arg)
"""

import os

import redis


class QuickCommands:
    def __init__(self, pool):
        self._pool = pool
        self._free = []  # list.pop/append: atomic, so no lock
        self._pid = os.getpid()
        self._closed = False

    def call(self, *args):
        """The reply of one command."""
        if self._pid != os.getpid():  # a forked child: the parent's sockets are not its own
            self._free, self._pid = [], os.getpid()
        try:
            connection = self._free.pop()
        except IndexError:
            connection = self._pool.connection_class(**self._pool.connection_kwargs)
        try:
            packed = connection.pack_command(*args)
            try:
                connection.send_packed_command(packed)
                return connection.read_response()
            except redis.ConnectionError:
                connection.disconnect()
                connection.send_packed_command(packed)  # connects again
                return connection.read_response()
        except redis.ResponseError:
            raise  # a whole reply was read: the connection is in step
        except BaseException:
            connection.disconnect()
            raise
        finally:
            if self._closed:
                connection.disconnect()
            else:
                self._free.append(connection)

    def close(self):
        self._closed = True
        while self._free:
            self._free.pop().disconnect()
