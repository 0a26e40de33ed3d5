"""The workers' log records, relayed by the runner's supervisor thread
into the server's logging and into each task's own log (``tasklog``).

    relay = LogRelay(store)
    relay.record(message)   # a worker_process.LogRecord read from a pipe
    relay.flush()           # the task log lines, to the store in batches

Logs: each worker sends its records over its own pipe (``worker_process``);
the supervisor hands each record to the server's logger of the same name,
with ``task_id`` set on the record and ``[task N] `` in front of the
message. multiprocessing-logging (0.4.0, read for this) is not used, in the
worker service either, where its ``fork`` could be arranged: it refuses any
start method but ``fork`` (globally: ``get_start_method() != "fork"`` raises),
starts its receiving thread in the parent when installed, and sends every
child's records into one shared ``multiprocessing.Queue``. A put only hands
the record to the child's feeder thread, so a child that is killed (the
SIGKILL of a cancelled or timed-out task, the OOM killer) loses what that
thread has not written yet; one killed while its feeder thread writes holds
the queue's write lock for ever and leaves half a record in the shared pipe,
which stops or corrupts the records of every other worker. A private pipe per
worker, written synchronously by the ``QueueHandler``, has neither problem:
every record sent before a worker dies is read from its pipe (to the end,
when it dies), a killed worker damages only its own pipe, and a task's
records arrive before its ``Outcome``.
"""

import logging

from . import tasklog

logger = logging.getLogger(__name__)


class LogRelay:
    """The workers' log records into the server's logging, and into each
    task's own log (``tasklog``), written in batches."""

    def __init__(self, store):
        self.store = store
        self._lines = {}  # task id -> its new log lines

    def record(self, message):
        record = logging.makeLogRecord(message.attributes)
        log = logging.getLogger(record.name)
        if log.isEnabledFor(record.levelno):
            log.handle(record)
        task_id = getattr(record, "task_id", None)
        if task_id is not None and record.levelno >= tasklog.LEVEL:
            lines = self._lines.setdefault(task_id, [])
            lines.append(tasklog.line_of(record, "[task %d] " % task_id))
            if len(lines) >= tasklog.MAX_LINES:  # no more is kept anyway
                self.flush()

    def flush(self):
        for task_id, lines in self._lines.items():
            try:
                self.store.append_log(task_id, lines)
            except Exception as exc:  # never in the way of the task's end
                logger.warning("task %d: %d log lines lost: %s", task_id, len(lines), exc)
        self._lines.clear()
