"""The feeder of a ``ProcessRunner``: the thread that claims entries of the
queue in Redis (``redis_queue``) for the runner's free workers.

    feeder = Feeder(runner)
    feeder.thread.start()
    feeder.room.set()        # a worker may have come free

It claims (``XREADGROUP``, blocking) as many entries as there are free
workers, and every heartbeat takes over entries that a dead worker claimed
and never started (``XAUTOCLAIM`` after ``CLAIM_IDLE``). It is a thread of
its own because a blocking read of the stream must not hold the
supervisor, which watches the running tasks meanwhile; it hands what it
claims to the runner (``ProcessRunner.claimed``), which starts it.
"""

import logging
import threading
import time
from typing import NamedTuple

from .errors import StoreUnavailable
from .defaults import CLAIM_IDLE

logger = logging.getLogger(__name__)


class Claimed(NamedTuple):
    """An entry of the queue this runner claimed and has not started yet."""
    task_id: int
    key: str
    entry: str

class Feeder:
    """The thread that claims entries of the queue for free workers."""

    #: Milliseconds one blocking read waits for a new entry.
    block_ms = 500

    def __init__(self, runner):
        self.runner = runner
        self.room = threading.Event()  # set when a worker may have come free
        self.thread = threading.Thread(target=self._feed, daemon=True,
                                       name="tasktypes-feeder")

    def _feed(self):
        runner, store = self.runner, self.runner.store
        next_autoclaim = 0.0
        warned = False
        while not runner.stopping:
            with runner.lock:
                free = runner.pool.free() - len(runner.waiting)
            if free <= 0:
                self.room.wait(1.0)
                self.room.clear()
                continue
            try:
                entries = []
                if time.monotonic() >= next_autoclaim:
                    next_autoclaim = time.monotonic() + store.heartbeat_interval
                    entries = store.autoclaim(free, CLAIM_IDLE)
                if not entries:
                    entries = store.claim(free, self.block_ms)
                warned = False
            except StoreUnavailable as exc:
                if not runner.stopping and not warned:
                    logger.warning("cannot read the queue: %s", exc)
                    warned = True
                time.sleep(0.5)
                continue
            except Exception:
                if not runner.stopping:
                    logger.exception("the queue feeder hit an error")
                time.sleep(0.5)
                continue
            if entries:
                runner.claimed([Claimed(*entry) for entry in entries])
