"""The ``ended`` channel of ``RedisStore``: the thread that listens for the
ids of tasks that end anywhere, wakes this process's waiters (``wait``) and
has the runner stop a task that runs here and ended elsewhere (a cancel
that came to another process).

It is a mixin of ``RedisStore`` (``_listener`` runs ``_listen``), apart
because it is a thread with its own failure rules: it must never die, and
whatever anyone publishes on the channel is checked before it is used. It
uses ``_raw_redis`` (a client that does not decode), ``channel``,
``_closed``, ``_malformed``, ``_waiters`` (with ``_waiters_lock``) and
``runner``, all set by ``RedisStore.__init__``.
"""

import logging

import redis

logger = logging.getLogger(__name__)


class EndedChannel:
    """Listening on the ``ended`` channel (mixed into ``RedisStore``)."""

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
