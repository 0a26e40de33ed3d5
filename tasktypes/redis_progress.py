"""The body's side of the Redis store: ``update_progress`` in the worker
process, written to the task's hash by a thread of its own.

    writer = ProgressWriter(redis_url)       # in the server process
    writer.start_thread()                    # in the worker, once
    update_progress, report = writer.reporter(task_id)

It is its own module because it runs in another process than the store:
the worker gets this object (pickled by multiprocessing when the worker
starts: a URL and a few numbers, never a connection) and opens its own
client. Only the progress script (``redis_scripts.PROGRESS``) is run from
here; every change of status is the server process's (``redis_tasks``).
"""

import logging
import threading
import time

import redis

from .errors import TaskStopped
from .limits import DEFAULT_MAX_RESULT, MAX_MESSAGE, bounded_text
from . import redis_scripts as scripts
from .redis_client import connect
from .task_body import clamp_progress
from .defaults import KEY_PREFIX, PROGRESS_INTERVAL

logger = logging.getLogger(__name__)


class ProgressWriter:
    """``update_progress`` for bodies running in a worker process.

    Made in the server process and sent to the worker, where it opens its own
    Redis client: nothing of the server's connections crosses over. A call
    only validates and records the value; a thread of the worker writes the
    latest one every ``PROGRESS_INTERVAL``, so a body may report in a tight
    loop. Once the task is no longer running (cancelled, timed out), the
    body's next call raises ``TaskStopped``.
    """

    def __init__(self, redis_url, prefix=KEY_PREFIX, interval=PROGRESS_INTERVAL,
                 max_result=DEFAULT_MAX_RESULT):
        self.redis_url = redis_url
        self.task_key = prefix + "task:%d"
        self.interval = interval
        #: Bytes of a result document the worker may send (TASKTYPES_MAX_RESULT).
        self.max_result = max_result
        self._current = None

    def start_thread(self):
        """In the worker: the client, the script, and the writing thread."""
        self._client = connect(self.redis_url)
        self._progress = self._client.register_script(scripts.PROGRESS)
        threading.Thread(target=self._write_loop, daemon=True,
                         name="tasktypes-progress").start()

    def reporter(self, task_id):
        """The ``update_progress`` callable for one task."""
        report = _Report(self.task_key % task_id)
        self._current = report

        def update_progress(fraction, message=None):
            if report.stopped:
                raise TaskStopped(task_id)
            report.progress = clamp_progress(fraction)
            if message is not None:
                report.message = bounded_text(message, MAX_MESSAGE)
            report.dirty = True

        return update_progress, report

    def done(self):
        self._current = None

    def _write_loop(self):
        warned = False
        while True:
            time.sleep(self.interval)
            report = self._current
            if report is None or not report.dirty:
                continue
            report.dirty = False
            args = [repr(report.progress)]
            if report.message is not None:
                args.append(report.message)
            try:
                if not self._progress(keys=[report.key], args=args):
                    report.stopped = True
                warned = False
            except redis.RedisError as exc:
                if not warned:
                    logger.warning("progress not written: %s", exc)
                    warned = True


class _Report:
    __slots__ = ("key", "progress", "message", "dirty", "stopped")

    def __init__(self, key):
        self.key = key
        self.progress = 0.0
        self.message = None
        self.dirty = False
        self.stopped = False
