"""Where Redis-store bodies run: long-lived worker processes of the server
process, each running one task at a time.

    runner = ProcessRunner(store, workers=8, max_queued=1024,
                           progress=ProgressWriter(redis_url))
    runner.enqueue(task_type, task_id, args)

One supervisor thread per server process starts workers on demand (at most
``workers``), hands each waiting task to an idle one over a private pipe,
relays the workers' log records, and watches them: a worker that dies
(SIGKILL, OOM, segfault) fails its task at once and is replaced; a task past
its ``_time_limit`` or cancelled from any server process (``ended``) gets its
worker terminated (SIGTERM, SIGKILL after ``KILL_GRACE``) and replaced. The
same thread beats the heartbeat that tells readers this server still lives.

Stopping does not rest on the ``ended`` channel alone (pub/sub delivers at
most once, and nothing while the listener reconnects): each heartbeat also
reads the status of every task running here and stops any that is no
longer ``running``, so a missed message costs at most a heartbeat. A task's
``_max_running`` slot is released only once its process is gone, never while
a cancelled or timed-out body may still run.

Start method: ``forkserver``, with tasktypes, spyne, lxml, redis and the
modules of the registered task types preloaded. ``fork`` from a server
process is unsafe: waitress and mod_wsgi run many threads, and a child forked
while another thread holds a lock (logging, the Redis pool, the import lock)
can deadlock; under mod_wsgi on 3.11 a fork straight from a request thread
even exits at once. ``spawn`` is safe but costs ~190 ms per worker against
~9 ms from the preloaded fork server. Since workers live long, that cost is
paid only when a worker starts or is replaced: an empty task goes from
submit to done in a few ms either way. Under mod_wsgi ``sys.executable`` may
be httpd; then the environment's own python (``sys.prefix/bin/python3``)
runs the fork server.

A worker does not re-run the server's main script (``wsgi.py`` builds the
whole application when imported): the main module is hidden from
multiprocessing while a worker starts, and the worker imports just the
module named in the task type's key.

Logs: the worker's root logger has one ``logging.handlers.QueueHandler``
whose "queue" is the worker's own pipe; the supervisor hands each record to
the server's logger of the same name, with ``task_id`` set on the record and
``[task N] `` in front of the message. Every record written before the body
returns is in the pipe before the task's result, so none is lost.
multiprocessing-logging is not used: it works only with ``fork``. A shared
``multiprocessing.Queue`` is not used either: a worker killed while writing
to it would leave its lock taken and its pipe corrupt for all others.

Workers end with the server process, however it dies (SIGKILL included):
each watches the server's pid (``_watch_server``), not its parent, which is
the fork server; the fork server and the resource tracker exit once the
last worker is gone.

Limits: workers are daemonic, so a body cannot start ``multiprocessing``
children of its own (``subprocess`` works).
"""

import collections
import contextlib
import importlib
import logging
import logging.handlers
import multiprocessing
import os
import select
import signal
import sys
import threading
import time
from multiprocessing.connection import wait as wait_for

from .decorator import TASK_TYPES
from .errors import Busy, StoreUnavailable, TaskStopped
from .documents import encode_result
from .task_body import error_text, logged_traceback, run_body
from . import tasklog
from .defaults import HEARTBEAT_RETRY, KILL_GRACE, READS_PER_ROUND

logger = logging.getLogger(__name__)

#: Imported once in the fork server, so that a new worker starts in ms.
PRELOAD = ["tasktypes", "tasktypes.process_runner", "tasktypes.redis_store",
           "spyne", "lxml.etree", "redis"]

_start_lock = threading.Lock()


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
        self.task = None       # (task_type, task_id) while busy
        self.deadline = None   # monotonic time its task's time limit ends
        self.kill_at = None    # monotonic time it gets SIGKILL once terminated
        self.slot = None       # (task_type, task_id) of the slot it holds


class ProcessRunner:
    def __init__(self, store, workers, max_queued, progress):
        self.store = store
        self.workers = workers
        self.max_queued = max_queued
        self.progress = progress
        self._lock = threading.Lock()
        self._waiting = collections.deque()  # (task_type, task_id, args)
        self._idle = []
        self._busy = {}      # task id -> _Worker
        self._dying = []     # terminated workers not yet reaped
        self._stop = set()   # ids of running tasks that ended elsewhere
        self._starting = None  # id of the task _dispatch is starting
        self._beat_failed = False
        self._unwritten = []  # final states Redis refused while down: retried
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._wake_lock = threading.Lock()
        self._context = None
        self._size = 0       # most workers alive at once so far
        self._thread = None
        self._closed = False

    def enqueue(self, task_type, task_id, args):
        with self._lock:
            if self._closed:
                raise StoreUnavailable("the server process is shutting down")
            if len(self._waiting) >= self.max_queued:
                raise Busy("%d tasks are waiting already; try again later"
                           % len(self._waiting))
            self._waiting.append((task_type, task_id, args))
            if self._thread is None:
                self._thread = threading.Thread(target=self._supervise, daemon=True,
                                                name="tasktypes-supervisor")
                self._thread.start()
        self._wake()

    def ended(self, task_id):
        """A task ended somewhere (``ended`` channel): stop it if it runs or
        waits here, and look again at tasks waiting for a free slot."""
        with self._lock:
            # A task being started may have been cancelled right after its
            # start: _dispatch puts it in _busy next, and _enforce stops it.
            if task_id in self._busy or task_id == self._starting:
                self._stop.add(task_id)
            else:
                for item in self._waiting:
                    if item[1] == task_id:
                        self._waiting.remove(item)
                        break
            if not self._waiting and task_id not in self._stop:
                return
        self._wake()

    def close(self):
        with self._lock:
            self._closed = True
            waiting, self._waiting = list(self._waiting), collections.deque()
            busy_ids = set(self._busy)
            busy, self._busy = list(self._busy.values()), {}
            workers = self._idle + busy + self._dying
            self._idle, self._dying = [], []
        self._wake()
        if self._thread is not None:
            self._thread.join(5)
        with self._wake_lock:  # no late wake-up may write to a reused fd
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_w = None
        for worker in workers:
            worker.process.terminate()
        for worker in workers:  # first gone, then their slots free
            worker.process.join(KILL_GRACE)
            if worker.process.exitcode is None:
                worker.process.kill()
                worker.process.join(1)
        try:
            for task_type, task_id, args in waiting:
                self.store.fail(task_type, task_id, "the server process stopped")
            for worker in busy:
                self.store.fail(*worker.task, "the server process stopped")
            for worker in workers:
                if worker.slot is not None and worker.slot[1] not in busy_ids:
                    self.store.release_slot(*worker.slot)
            self.store.forget_server()
        except StoreUnavailable:
            pass

    # the supervisor thread

    def _wake(self):
        with self._wake_lock:
            if self._wake_w is not None:
                try:
                    os.write(self._wake_w, b"x")
                except BlockingIOError:
                    pass  # already awake

    def _supervise(self):
        next_beat = 0.0
        while not self._closed:
            try:
                if time.monotonic() >= next_beat:
                    # After a failed beat, try again soon: a Redis that comes
                    # back must see this server before its heartbeat expires.
                    beaten = self._heartbeat()
                    next_beat = time.monotonic() + (self.store.heartbeat_interval if beaten
                                                    else HEARTBEAT_RETRY)
                self._round(next_beat)
            except Exception:  # never let the thread die: it guards every task
                logger.exception("the task supervisor hit an error")
                time.sleep(0.1)

    def _round(self, next_beat):
        """Start what can start, then sleep until a worker speaks or dies,
        a wake-up comes, or the next deadline, kill or heartbeat is due."""
        self._dispatch()
        with self._lock:
            busy = list(self._busy.values())
            dying = list(self._dying)
            everyone = self._idle + busy + dying
        times = [next_beat] + [w.deadline for w in busy if w.deadline] \
            + [w.kill_at for w in dying]
        handles = {self._wake_r: None}
        for worker in everyone:
            handles[worker.process.sentinel] = worker
        for worker in busy:
            handles[worker.conn] = worker
        ready = wait_for(list(handles), max(0.0, min(times) - time.monotonic()))
        if self._closed:
            return
        if self._wake_r in ready:
            os.read(self._wake_r, 4096)
        for worker in {handles[r] for r in ready if handles[r] is not None}:
            self._attend(worker)
        self._enforce()
        self._replace()

    def _heartbeat(self):
        """Beat, write the final states Redis refused before, and stop the
        tasks that ended elsewhere (their message may have been missed).
        False if Redis is unreachable."""
        with self._lock:
            waiting = [item[1] for item in self._waiting]
            busy = list(self._busy)
            leases = {}
            for worker in list(self._busy.values()) + self._dying:
                if worker.slot is not None:  # held until the process is gone
                    task_type, task_id = worker.slot
                    leases.setdefault(task_type.key, []).append(task_id)
            unwritten, self._unwritten = self._unwritten, []
        try:
            statuses = self.store.heartbeat(waiting + busy, leases)
            while unwritten:
                unwritten[0]()
                unwritten.pop(0)
        except StoreUnavailable as exc:
            if not self._beat_failed:
                logger.warning("heartbeat not written: %s", exc)
                self._beat_failed = True
            with self._lock:
                self._unwritten[:0] = unwritten
            return False
        if self._beat_failed:
            logger.info("heartbeat written again")
            self._beat_failed = False
        stop = False
        with self._lock:
            for task_id in busy:
                status = statuses.get(task_id)
                if status != "running" and task_id in self._busy:
                    logger.info("task %d is %s: stopping its process", task_id,
                                status or "gone from Redis")
                    self._stop.add(task_id)
                    stop = True
            for item in list(self._waiting):
                if item[1] in statuses and statuses[item[1]] != "queued":
                    self._waiting.remove(item)  # cancelled, lost or gone
        if stop:
            self._wake()  # _enforce right after this round's wait, not a beat later
        return True

    def _dispatch(self):
        """Hand waiting tasks to idle workers, oldest first, skipping methods
        whose slots are all taken."""
        full = set()
        while True:
            with self._lock:
                if not self._idle and len(self._idle) + len(self._busy) >= self.workers:
                    return
                item = next((i for i in self._waiting if i[0].key not in full), None)
                if item is None:
                    return
            task_type, task_id, args = item
            with self._lock:
                self._starting = task_id  # ended() now marks it to be stopped
            started = False
            try:
                if task_type.max_running and not self.store.acquire_slot(task_type,
                                                                         task_id):
                    full.add(task_type.key)
                    continue
                worker = self._idle_worker()
                started = self.store.start(task_id, worker.process.pid)
            except StoreUnavailable as exc:
                logger.warning("cannot start task %d: %s", task_id, exc)
                return  # it stays queued; the next heartbeat tries again
            finally:
                # From _waiting into _busy under one lock: there is no moment
                # in which ended() would find the task nowhere.
                with self._lock:
                    self._starting = None
                    if started:
                        if item in self._waiting:
                            self._waiting.remove(item)
                        self._idle.remove(worker)
                        worker.task = (task_type, task_id)
                        if task_type.max_running:
                            worker.slot = worker.task
                        if task_type.time_limit:
                            worker.deadline = time.monotonic() + task_type.time_limit
                        self._busy[task_id] = worker
            if not started:  # cancelled (or lost) while it waited
                with self._lock:
                    if item in self._waiting:
                        self._waiting.remove(item)
                if task_type.max_running:
                    self._write(self.store.release_slot, task_type, task_id)
                continue
            try:
                worker.conn.send((task_id, task_type.key, args))
            except Exception as exc:  # arguments that do not pickle
                with self._lock:
                    self._busy.pop(task_id, None)
                    worker.task = worker.deadline = worker.slot = None
                    self._idle.append(worker)
                self._write(self.store.fail, task_type, task_id,
                            "the arguments cannot be sent to the task process: %s"
                            % error_text(exc))

    def _idle_worker(self):
        with self._lock:
            if self._idle:
                return self._idle[0]
        return self._new_worker()

    def _replace(self):
        """Keep the pool as large as it grew: a worker that died or was
        killed gets its successor now, not when the next task comes."""
        while True:
            with self._lock:
                if self._closed or len(self._idle) + len(self._busy) >= self._size:
                    return
            self._new_worker()

    def _new_worker(self):
        if self._context is None:
            self._context = _context()
        tasklog.install()  # the levels the worker copies let INFO through
        parent_conn, child_conn = self._context.Pipe()
        process = self._context.Process(
            target=_worker_main, name="tasktypes-worker",
            args=(child_conn, self.progress, _log_levels(), os.getpid()),
            daemon=True)
        with _start_lock, _main_module_hidden():
            process.start()
        child_conn.close()
        worker = _Worker(process, parent_conn)
        with self._lock:
            self._idle.append(worker)
            self._size = max(self._size, len(self._idle) + len(self._busy))
        return worker

    def _attend(self, worker):
        """Read what a worker sent; reap it if it exited."""
        logged = {}  # task id -> its new log lines, written at once below
        try:
            # At most READS_PER_ROUND messages from a live worker: a body that
            # logs in a tight loop must not hold this thread (a dead one's
            # pipe is read to the end: its last words include the result).
            reads = 0
            while worker.conn.poll():
                if reads >= READS_PER_ROUND and worker.process.exitcode is None:
                    break
                reads += 1
                self._received(worker, worker.conn.recv(), logged)
        except (EOFError, OSError):
            pass
        self._write_logs(logged)
        if worker.process.exitcode is None:
            return
        worker.process.join()
        worker.conn.close()
        with self._lock:
            for pool in (self._idle, self._dying):
                if worker in pool:
                    pool.remove(worker)
            task, slot = worker.task, worker.slot
            worker.slot = None
            if task is not None:
                self._busy.pop(task[1], None)
        if task is not None:
            code = worker.process.exitcode
            how = ("killed by %s" % signal.Signals(-code).name if code < 0
                   else "exited with code %d" % code)
            logger.error("the process of task %d (%s) died: %s", task[1], task[0].name, how)
            self._write(self.store.fail, task[0], task[1],
                        "the task's process died (%s)" % how)  # frees the slot too
        elif slot is not None:  # a stopped task's process is gone at last
            self._write(self.store.release_slot, *slot)

    def _received(self, worker, message, logged):
        if message[0] == "log":
            record = logging.makeLogRecord(message[1])
            log = logging.getLogger(record.name)
            if log.isEnabledFor(record.levelno):
                log.handle(record)
            task_id = getattr(record, "task_id", None)
            if task_id is not None and record.levelno >= tasklog.LEVEL:
                lines = logged.setdefault(task_id, [])
                lines.append(_task_log_line(record, task_id))
                if len(lines) >= tasklog.MAX_LINES:  # no more is kept anyway
                    self._write_logs(logged)
            return
        self._write_logs(logged)  # a reader who sees the end sees its lines
        _, task_id, ok, payload, progress, text = message
        with self._lock:
            if worker.task is None or worker.task[1] != task_id:
                return  # a late word from a task stopped meanwhile
            task_type, slot = worker.task[0], worker.slot
            self._busy.pop(task_id, None)
            worker.task = worker.deadline = worker.slot = None
            if worker.process.exitcode is None:
                self._idle.append(worker)
        if ok:  # finish and fail free the slot with the end
            self._write(self.store.finish, task_type, task_id, payload, text)
        elif ok is not None:
            self._write(self.store.fail, task_type, task_id, payload, progress=progress)
        elif slot is not None:  # stopped itself: it ended elsewhere
            self._write(self.store.release_slot, *slot)
        self._wake()

    def _write_logs(self, logged):
        for task_id, lines in logged.items():
            try:
                self.store.append_log(task_id, lines)
            except Exception as exc:  # never in the way of the task's end
                logger.warning("task %d: %d log lines lost: %s", task_id, len(lines), exc)
        logged.clear()

    def _write(self, write, *args, **kwargs):
        try:
            write(*args, **kwargs)
        except StoreUnavailable as exc:
            logger.warning("task %d: final state not written yet: %s", args[1], exc)
            with self._lock:
                self._unwritten.append(lambda: write(*args, **kwargs))
        except Exception as exc:
            # Something in the state itself that Redis will never take: no
            # task may stay "running" for that, so it ends failed, plainly.
            logger.exception("task %d: its end could not be recorded", args[1])
            if write != self.store.release_slot:
                self._write(self.store.fail, args[0], args[1],
                            "the task's end could not be recorded (%s)" % type(exc).__name__)

    def _enforce(self):
        """Terminate workers of cancelled and timed-out tasks; SIGKILL the
        ones that outlive their grace."""
        now = time.monotonic()
        with self._lock:
            stop = [self._busy[i] for i in self._stop if i in self._busy]
            self._stop.clear()
            late = [w for w in self._busy.values()
                    if w.deadline and w.deadline <= now and w not in stop]
        for worker in late:
            task_type, task_id = worker.task
            logger.warning("task %d (%s): %s", task_id, task_type.name,
                           task_type.time_limit_message)
            self._write(self.store.fail, task_type, task_id,
                        task_type.time_limit_message, timed_out=True,
                        release=False)  # not before the process is gone
        for worker in stop + late:
            with self._lock:
                self._busy.pop(worker.task[1], None)
                worker.task = worker.deadline = None
                worker.kill_at = now + KILL_GRACE
                self._dying.append(worker)
            worker.process.terminate()
        for worker in list(self._dying):
            if worker.kill_at <= now and worker.process.exitcode is None:
                worker.process.kill()
                worker.kill_at = now + 60


def _task_log_line(record, task_id):
    """A relayed record as its task's log keeps it: without the ``[task N]``
    the worker put in front of it."""
    return tasklog.line_of(record, "[task %d] " % task_id)


# -- the worker process ---------------------------------------------------------

class _PipeQueue:
    """The "queue" of the worker's QueueHandler: its pipe to the server."""

    def __init__(self, conn, lock):
        self.conn = conn
        self.lock = lock

    def put_nowait(self, record):
        data = dict(record.__dict__)
        with self.lock:
            try:
                self.conn.send(("log", data))
            except Exception:  # an attribute that does not pickle
                plain = {k: v for k, v in data.items()
                         if isinstance(v, (str, int, float, type(None)))}
                self.conn.send(("log", plain))


class _TaskLogHandler(logging.handlers.QueueHandler):
    task_id = None

    def prepare(self, record):
        record = super().prepare(record)
        if self.task_id is not None:
            record.task_id = self.task_id
            record.msg = record.message = "[task %d] %s" % (self.task_id, record.msg)
        return record


def _log_levels():
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


def _worker_main(conn, progress, log_levels, server_pid):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the server
    lock = threading.Lock()
    handler = _TaskLogHandler(_PipeQueue(conn, lock))
    logging.root.handlers[:] = [handler]
    for name, level in log_levels.items():
        logging.getLogger(name).setLevel(level)
    threading.Thread(target=_watch_server, args=(server_pid,), daemon=True).start()
    progress.start_thread()
    while True:
        try:
            task_id, key, args = conn.recv()
        except (EOFError, OSError):
            return
        handler.task_id = task_id
        outcome = _run(progress, task_id, key, args)
        handler.task_id = None
        with lock:
            conn.send(outcome)


def _run(progress, task_id, key, args):
    """One task in the worker: ("end", id, ok, result doc or error text,
    last progress, last message); ok is None if the task was stopped."""
    update_progress, report = progress.reporter(task_id)
    try:
        task_type = find_task_type(key)
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
    return ("end", task_id, ok, payload, report.progress, report.message)
