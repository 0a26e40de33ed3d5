"""The worker processes of a ``ProcessRunner``: started on demand up to
``workers``, replaced when one dies or is killed, terminated (SIGTERM,
SIGKILL after ``KILL_GRACE``).

    pool = WorkerPool(workers, progress, lock)
    worker = pool.idle_worker()      # an idle one, or a new one
    pool.terminate(worker, time.monotonic())

How a worker process starts, and what it must not inherit, is a subject
of its own, hence this module:

Start method: ``forkserver``, with tasktypes, spyne, lxml, redis and the
modules of the registered task types preloaded. ``fork`` from a server
process is unsafe: waitress and mod_wsgi run many threads, and a child forked
while another thread holds a lock (logging, the Redis pool, the import lock)
can deadlock; under mod_wsgi on 3.11 a fork straight from a request thread
even exits at once. The worker service starts its first workers before any
thread of its own, where ``fork`` would be safe, but it replaces a worker
that died or was killed while its threads run, so it uses the fork server
too. ``spawn`` is safe but costs ~190 ms per worker against ~9 ms from the
preloaded fork server. Under mod_wsgi ``sys.executable`` may be httpd; then
the environment's own python (``sys.prefix/bin/python3``) runs the fork
server.

A worker does not re-run the server's main script (``wsgi.py`` builds the
whole application when imported): the main module is hidden from
multiprocessing while a worker starts, and the worker imports just the
module named in the task type's key.

Workers end with the server process, however it dies (SIGKILL included):
each watches the server's pid, not its parent, which is the fork server;
the fork server and the resource tracker exit once the last worker is gone.

Limits: workers are daemonic, so a body cannot start ``multiprocessing``
children of its own (``subprocess`` works).
"""

import contextlib
import multiprocessing
import os
import sys
import threading
from typing import NamedTuple

from .decorator import TASK_TYPES, TaskType
from . import tasklog
from .worker_process import log_levels, worker_main
from .defaults import KILL_GRACE

#: Imported once in the fork server, so that a new worker starts in ms.
PRELOAD = ["tasktypes", "tasktypes.worker_process", "tasktypes.redis_store",
           "spyne", "lxml.etree", "redis"]

_start_lock = threading.Lock()


class Running(NamedTuple):
    """What a busy worker runs."""
    task_type: TaskType
    task_id: int


def _context():
    context = multiprocessing.get_context("forkserver")
    if not os.path.basename(sys.executable or "").startswith("python"):
        context.set_executable(os.path.join(sys.prefix, "bin", "python3"))
    modules = sorted({key.partition(":")[0] for key in TASK_TYPES})
    context.set_forkserver_preload(PRELOAD + modules)
    return context


@contextlib.contextmanager
def _main_module_hidden():
    """Keep multiprocessing from importing the main script in the worker."""
    main = sys.modules.get("__main__")
    saved = {name: main.__dict__.pop(name)
             for name in ("__file__", "__spec__") if name in main.__dict__}
    main.__spec__ = None
    try:
        yield
    finally:
        del main.__spec__
        main.__dict__.update(saved)

class _Worker:
    __slots__ = ("process", "conn", "task", "deadline", "kill_at", "slot")

    def __init__(self, process, conn):
        self.process = process
        self.conn = conn
        self.task = None       # Running, while busy
        self.deadline = None   # monotonic time its task's time limit ends
        self.kill_at = None    # monotonic time it gets SIGKILL once terminated
        self.slot = None       # Running of the slot it holds


class WorkerPool:
    """The worker processes: idle, busy (by task id) and dying ones. Its
    lists are guarded by the runner's lock (``lock``)."""

    def __init__(self, size, progress, lock):
        self.size = size
        self.progress = progress
        self.lock = lock
        self.idle = []
        self.busy = {}      # task id -> _Worker
        self.dying = []     # terminated workers not yet reaped
        self.grown = 0      # most workers alive at once so far
        self.closed = False  # no worker may start any more
        self._context = None

    def everyone(self):
        return self.idle + list(self.busy.values()) + self.dying

    def free(self):
        """Workers that could take a task now, started or not (lock held)."""
        return self.size - len(self.busy)

    def idle_worker(self):
        with self.lock:
            if self.idle:
                return self.idle[0]
        return self.new_worker()

    def new_worker(self):
        if self._context is None:
            self._context = _context()
        tasklog.install()  # the levels the worker copies let INFO through
        parent_conn, child_conn = self._context.Pipe()
        process = self._context.Process(
            target=worker_main, name="tasktypes-worker",
            args=(child_conn, self.progress, log_levels(), os.getpid()), daemon=True)
        with _start_lock, _main_module_hidden():
            process.start()
        child_conn.close()
        worker = _Worker(process, parent_conn)
        with self.lock:
            closed = self.closed
            if not closed:
                self.idle.append(worker)
                self.grown = max(self.grown, len(self.idle) + len(self.busy))
        if closed:  # the runner closed while this one started: no orphan
            self.stop_all([worker])
            raise RuntimeError("the worker pool is closed")
        return worker

    def terminate(self, worker, now):
        """SIGTERM now, SIGKILL after the grace (lock not held)."""
        with self.lock:
            worker.kill_at = now + KILL_GRACE
            self.dying.append(worker)
        worker.process.terminate()

    def kill_late(self, now):
        for worker in list(self.dying):
            if worker.kill_at <= now and worker.process.exitcode is None:
                worker.process.kill()
                worker.kill_at = now + 60

    @staticmethod
    def stop_all(workers):
        for worker in workers:
            worker.process.terminate()
        for worker in workers:  # first gone, then their slots free
            worker.process.join(KILL_GRACE)
            if worker.process.exitcode is None:
                worker.process.kill()
                worker.process.join(1)
