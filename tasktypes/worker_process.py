"""One worker process of the Redis store: what runs in the child, and the
messages it exchanges with its supervisor (``process_runner``) over its
private pipe.

    supervisor -> worker: Job(task_id, key, args)       # one task at a time
    worker -> supervisor: LogRecord(attributes) ...      # while it runs
                          Outcome(task_id, ok, ...)      # once, at its end

Logs: the worker's root logger has one ``logging.handlers.QueueHandler``
whose "queue" is the worker's own pipe; every record written before the body
returns is in the pipe before the task's ``Outcome``, so none is lost, and
a worker killed in the middle of a write damages only its own pipe.
"""

import importlib
import logging
import logging.handlers
import os
import select
import signal
import threading
import time
from typing import NamedTuple, Optional

from .decorator import TASK_TYPES
from .documents import decode_arguments, encode_result
from .errors import TaskStopped
from .task_body import error_text, logged_traceback, run_body


class Job(NamedTuple):
    """A task for the worker: its arguments as the queue keeps them (a JSON
    document of the method's declared types), decoded in the worker."""
    task_id: int
    key: str
    args: str


class LogRecord(NamedTuple):
    """A log record of the worker: the record's attributes."""
    attributes: dict


class Outcome(NamedTuple):
    """How a task ended in the worker. ``ok``: True (``payload`` is the
    result document), False (``payload`` is the error text) or None (the
    task was stopped: it ended elsewhere). ``progress`` and ``message`` are
    the last ones the body reported."""
    task_id: int
    ok: Optional[bool]
    payload: Optional[str]
    progress: float
    message: Optional[str]


class _PipeQueue:
    """The "queue" of the worker's QueueHandler: its pipe to the server."""

    def __init__(self, conn, lock):
        self.conn = conn
        self.lock = lock

    def put_nowait(self, record):
        data = dict(record.__dict__)
        with self.lock:
            try:
                self.conn.send(LogRecord(data))
            except Exception:  # an attribute that does not pickle
                plain = {k: v for k, v in data.items()
                         if isinstance(v, (str, int, float, type(None)))}
                self.conn.send(LogRecord(plain))


class _TaskLogHandler(logging.handlers.QueueHandler):
    task_id = None

    def prepare(self, record):
        record = super().prepare(record)
        if self.task_id is not None:
            record.task_id = self.task_id
            record.msg = record.message = "[task %d] %s" % (self.task_id, record.msg)
        return record


def log_levels():
    """The server's logger levels, for the worker to send just the records
    the server would handle (as they are when the worker starts)."""
    levels = {name: log.level for name, log in logging.root.manager.loggerDict.items()
              if isinstance(log, logging.Logger) and log.level}
    levels[""] = logging.root.level
    return levels


def _watch_server(server_pid):
    """Exit at once when the server process is gone, however it died
    (SIGKILL included), so that no body outlives it.

    Not the parent: a worker's parent is the fork server, and the fork
    server lives as long as any process it started holds the "alive" pipe
    that multiprocessing hands to each of them, workers included. So each
    worker watches the server process itself, through a pidfd (Linux 5.3+),
    which becomes readable the moment that process exits; once the workers
    are gone, the fork server and the resource tracker see their pipes close
    and exit too. Where pidfds are missing, it polls twice a second."""
    try:
        pidfd = os.pidfd_open(server_pid)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):
        pidfd = None
    if pidfd is not None:
        watch = select.poll()  # not select(): any descriptor number will do
        watch.register(pidfd, select.POLLIN)
        while not watch.poll():
            pass
    else:
        while True:
            try:
                os.kill(server_pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.5)
    os._exit(1)


def find_task_type(key):
    """The task type of ``key`` ("module:Class.method"), importing its module."""
    if key not in TASK_TYPES:
        importlib.import_module(key.partition(":")[0])
    return TASK_TYPES[key]


def worker_main(conn, progress, levels, server_pid):
    """The worker process: run the ``Job``s that come over ``conn``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the server
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the worker service's handler is not ours
    lock = threading.Lock()
    handler = _TaskLogHandler(_PipeQueue(conn, lock))
    logging.root.handlers[:] = [handler]
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    threading.Thread(target=_watch_server, args=(server_pid,), daemon=True).start()
    progress.start_thread()
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        handler.task_id = job.task_id
        outcome = _run(progress, job)
        handler.task_id = None
        with lock:
            conn.send(outcome)


def _run(progress, job):
    """One task in the worker, to its ``Outcome``."""
    task_id = job.task_id
    update_progress, report = progress.reporter(task_id)
    try:
        task_type = find_task_type(job.key)
        args = decode_arguments(task_type.arg_types, job.args)
        value = run_body(task_type, task_id, args, update_progress)
    except TaskStopped:
        ok, payload = None, None
    except (Exception, SystemExit) as exc:
        logging.getLogger(__name__).error("the task failed:\n%s", logged_traceback(exc))
        ok, payload = False, error_text(exc)
    else:
        try:
            ok, payload = True, encode_result(task_type.returns, value,
                                              progress.max_result)
        except Exception as exc:
            ok, payload = False, "the result cannot be stored: %s" % error_text(exc)
    finally:
        progress.done()
    return Outcome(task_id, ok, payload, report.progress, report.message)
