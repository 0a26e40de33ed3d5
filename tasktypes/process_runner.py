"""Where Redis-store bodies run: long-lived worker processes, each running
one task at a time, fed from the queue in Redis (``redis_queue``).

    runner = ProcessRunner(store, workers=8, progress=ProgressWriter(redis_url))
    runner.start()           # feeder and supervisor threads
    runner.drain(grace=60)   # the worker service's SIGTERM

The same runner serves a web process that runs its own workers (the
zero-setup ``TASKTYPES_STORE=redis python wsgi.py``) and the worker service
(``tasktypes worker``); a web process with ``TASKTYPES_WORKERS=0`` has none
and only submits. Its pieces, one job each:

``WorkerPool``
    the worker processes (``worker_process``): started on demand up to
    ``workers``, replaced when one dies or is killed, terminated (SIGTERM,
    SIGKILL after ``KILL_GRACE``).
``Heartbeat``
    one beat a second: this server lives, so do its tasks and slots.
``Feeder`` (a thread)
    claims entries from the stream (``XREADGROUP``, blocking) as many as
    there are free workers, and every heartbeat takes over entries that a
    dead worker claimed and never started (``XAUTOCLAIM`` after
    ``CLAIM_IDLE``).
the supervisor (a thread, ``ProcessRunner._supervise``)
    dispatch: starts the claimed tasks (the Lua transition queued ->
    running, which only one worker wins; a task whose method is at its
    limit is parked instead) and the parked tasks whose slot came free,
    each on an idle worker; relays the workers' messages (``LogRelay`` for
    their log records, ``Outcome`` for the end of a task); enforces time
    limits and stops tasks that ended elsewhere; beats the ``Heartbeat``.

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

Workers end with the server process, however it dies (SIGKILL included):
each watches the server's pid, not its parent, which is the fork server;
the fork server and the resource tracker exit once the last worker is gone.

Limits: workers are daemonic, so a body cannot start ``multiprocessing``
children of its own (``subprocess`` works).
"""

import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import wait as wait_for
from typing import NamedTuple

from .decorator import TASK_TYPES, TaskType
from .errors import StoreUnavailable
from .task_body import error_text
from . import tasklog
from .worker_process import Job, LogRecord, log_levels, worker_main
from .defaults import CLAIM_IDLE, HEARTBEAT_RETRY, KILL_GRACE, READS_PER_ROUND

logger = logging.getLogger(__name__)

#: Imported once in the fork server, so that a new worker starts in ms.
PRELOAD = ["tasktypes", "tasktypes.worker_process", "tasktypes.redis_store",
           "spyne", "lxml.etree", "redis"]

_start_lock = threading.Lock()


class Claimed(NamedTuple):
    """An entry of the queue this runner claimed and has not started yet."""
    task_id: int
    key: str
    entry: str


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


def task_type_of(key):
    """The task type of ``key`` if a service module loaded here defines it,
    else None: a task of another type is left to a worker that has it
    (parked). Never imported by the name read from Redis: whoever can write
    to Redis must not choose what this process imports."""
    return TASK_TYPES.get(key)


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


class Heartbeat:
    """What tells readers that this server lives: one beat renews its
    heartbeat key, its running tasks and the ``_max_running`` leases it
    holds (until the process of a stopped task is gone), writes the final
    states Redis refused while it was down, and reads the status of the
    tasks running here, so that those that ended elsewhere are stopped even
    if the ``ended`` message was missed. Its lists are guarded by the
    runner's lock."""

    def __init__(self, store, pool, lock):
        self.store = store
        self.pool = pool
        self.lock = lock
        self.unwritten = []  # final states Redis refused while down: retried
        self._failed = False

    def beat(self):
        """``(beaten, ids)``: False if Redis is unreachable; the ids of the
        tasks running here that are no longer ``running`` in Redis."""
        pool = self.pool
        with self.lock:
            busy = list(pool.busy)
            leases = {}
            for worker in list(pool.busy.values()) + pool.dying:
                if worker.slot is not None:  # held until the process is gone
                    leases.setdefault(worker.slot.task_type.key, []).append(
                        worker.slot.task_id)
            unwritten, self.unwritten = self.unwritten, []
        try:
            statuses = self.store.heartbeat(busy, leases)
            while unwritten:
                unwritten[0]()
                unwritten.pop(0)
        except StoreUnavailable as exc:
            if not self._failed:
                logger.warning("heartbeat not written: %s", exc)
                self._failed = True
            with self.lock:
                self.unwritten[:0] = unwritten
            return False, []
        if self._failed:
            logger.info("heartbeat written again")
            self._failed = False
        ended = []
        with self.lock:
            for task_id in busy:
                status = statuses.get(task_id)
                if status != "running" and task_id in pool.busy:
                    logger.info("task %d is %s: stopping its process", task_id,
                                status or "gone from Redis")
                    ended.append(task_id)
        return True, ended


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


class ProcessRunner:
    def __init__(self, store, workers, progress):
        self.store = store
        self.workers = workers
        self.lock = threading.Lock()
        self.pool = WorkerPool(workers, progress, self.lock)
        self.relay = LogRelay(store)
        self.feeder = Feeder(self)
        self.waiting = []    # Claimed, oldest first
        self.stopping = False  # no new tasks (drain, close)
        self._stop = set()   # ids of running tasks that ended elsewhere
        self._starting = None  # ids that ended while dispatch starts a task
        self._try_parked = True
        self.heartbeat = Heartbeat(store, self.pool, self.lock)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._wake_lock = threading.Lock()
        self._thread = None
        self._closed = False

    def prestart(self):
        """Start every worker process now (the worker service: before any
        thread of its own)."""
        while len(self.pool.idle) < self.workers:
            self.pool.new_worker()

    def start(self):
        self._thread = threading.Thread(target=self._supervise, daemon=True,
                                        name="tasktypes-supervisor")
        self._thread.start()
        self.feeder.thread.start()

    def claimed(self, entries):
        """The feeder claimed ``entries``: start them, or give them back if
        this runner stops."""
        with self.lock:
            if not self.stopping:
                self.waiting.extend(entries)
                entries = []
        for entry in entries:
            self._park(entry)
        self._wake()

    def ended(self, task_id):
        """A task ended somewhere (``ended`` channel): stop it if it runs
        here; a slot may have come free, so look at the parked tasks."""
        with self.lock:
            if self._starting is not None:
                self._starting.add(task_id)
            if task_id in self.pool.busy:
                self._stop.add(task_id)
            self._try_parked = True
        self._wake()

    def running(self):
        """Ids of the tasks running here."""
        with self.lock:
            return list(self.pool.busy)

    def drain(self, grace, message):
        """Take no new task and let the running ones end within ``grace``
        seconds; those still running then fail with ``message``. The
        entries claimed but not started are parked for other workers."""
        with self.lock:
            self.stopping = True
            waiting, self.waiting = self.waiting, []
        self.feeder.room.set()
        for entry in waiting:
            self._park(entry)
        deadline = time.monotonic() + grace
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.close(message)

    def close(self, message="the server process stopped"):
        """Stop everything; tasks running here fail with ``message``, the
        entries claimed but not started are parked for other workers."""
        with self.lock:
            self.stopping = True
            self._closed = True
            waiting, self.waiting = self.waiting, []
            pool = self.pool
            pool.closed = True
            busy_ids = set(pool.busy)
            busy = list(pool.busy.values())
            workers = pool.everyone()
            pool.idle, pool.busy, pool.dying = [], {}, []
        self.feeder.room.set()
        self.store.stop_claiming()
        self._wake()
        if self._thread is not None:
            self._thread.join(5)
        if self.feeder.thread.is_alive():
            self.feeder.thread.join(2)
        with self._wake_lock:  # no late wake-up may write to a reused fd
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_w = None
        WorkerPool.stop_all(workers)
        try:
            for entry in waiting:
                self._park(entry)
            for worker in busy:
                logger.warning("task %d (%s): %s", worker.task.task_id,
                               worker.task.task_type.name, message)
                self.store.fail(*worker.task, message)
            for worker in workers:
                if worker.slot is not None and worker.slot.task_id not in busy_ids:
                    self.store.release_slot(*worker.slot)
            if self.workers:
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
        with self.lock:
            busy = list(self.pool.busy.values())
            dying = list(self.pool.dying)
            everyone = self.pool.everyone()
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
        """Beat (``Heartbeat``) and stop the tasks that ended elsewhere.
        False if Redis is unreachable."""
        with self.lock:
            self._try_parked = True  # a slot may have come free anywhere
        beaten, ended = self.heartbeat.beat()
        if ended:
            with self.lock:
                self._stop.update(ended)
            self._wake()  # _enforce right after this round's wait, not a beat later
        return beaten

    def _dispatch(self):
        """Start tasks on idle workers: the claimed entries, oldest first
        (a task whose method is at its limit is parked by the store instead),
        then the parked tasks whose method has a slot free."""
        while True:
            with self.lock:
                if self.stopping or (not self.pool.idle
                                     and len(self.pool.busy) >= self.workers):
                    return
                claimed = self.waiting[0] if self.waiting else None
                if claimed is None and not self._try_parked:
                    return
                self._starting = set()
            try:
                if claimed is not None and task_type_of(claimed.key) is None:
                    # not a type of ours: parked for a worker that has it
                    self.store.park(claimed.task_id, claimed.entry)
                    self._unwait(claimed)
                    continue
                if claimed is not None:
                    worker = self.pool.idle_worker()
                    outcome, args = self.store.start_claimed(claimed.task_id, claimed.entry,
                                                     worker.process.pid)
                    self._unwait(claimed)
                    if outcome != "started":
                        continue  # "gone" (cancelled) or "parked"
                    task_id, key = claimed.task_id, claimed.key
                else:
                    if not self.pool.idle and not self.store.parked_waiting():
                        with self.lock:  # no worker is started for nothing
                            self._try_parked = False
                        return
                    worker = self.pool.idle_worker()
                    taken = self.store.take_parked(worker.process.pid, list(TASK_TYPES))
                    if taken is None:
                        with self.lock:
                            self._try_parked = False
                        return
                    task_id, key, args = taken
            except StoreUnavailable as exc:
                logger.warning("cannot start a task: %s", exc)
                return  # it stays claimed; the next heartbeat tries again
            finally:
                with self.lock:
                    ended_meanwhile, self._starting = self._starting, None
            self._hand(worker, task_type_of(key), task_id, args, task_id in ended_meanwhile)

    def _unwait(self, claimed):
        """``claimed`` is dealt with: off the waiting list, unless a drain
        or close took the list meanwhile (and parked it: the start script
        finds it started, or the parked one is started once)."""
        with self.lock:
            if claimed in self.waiting:
                self.waiting.remove(claimed)

    def _hand(self, worker, task_type, task_id, args, stop):
        """Give a started task to ``worker``."""
        running = Running(task_type, task_id)
        with self.lock:
            self.pool.idle.remove(worker)
            worker.task = running
            if task_type.max_running:
                worker.slot = running
            if task_type.time_limit:
                worker.deadline = time.monotonic() + task_type.time_limit
            self.pool.busy[task_id] = worker
            if stop:  # cancelled while it started
                self._stop.add(task_id)
        self.feeder.room.set()  # the claimed entry is gone: room for another
        try:
            worker.conn.send(Job(task_id, task_type.key, args))
        except Exception as exc:
            with self.lock:
                self.pool.busy.pop(task_id, None)
                worker.task = worker.deadline = worker.slot = None
                self.pool.idle.append(worker)
            self._write(self.store.fail, task_type, task_id,
                        "the task cannot be sent to its process: %s" % error_text(exc))

    def _park(self, claimed):
        try:
            self.store.park(claimed.task_id, claimed.entry)
        except StoreUnavailable as exc:  # XAUTOCLAIM gives it to another worker
            logger.warning("task %d stays claimed: %s", claimed.task_id, exc)

    def _replace(self):
        """Keep the pool as large as it grew: a worker that died or was
        killed gets its successor now, not when the next task comes."""
        while True:
            with self.lock:
                pool = self.pool
                if self._closed or len(pool.idle) + len(pool.busy) >= pool.grown:
                    return
            pool.new_worker()

    def _attend(self, worker):
        """Read what a worker sent; reap it if it exited."""
        # Whether it exited is asked BEFORE its pipe is read: one that exits
        # while the pipe is read may write more meanwhile, and is reaped (and
        # its pipe read to the end) in a later round, its sentinel ready.
        dead = worker.process.exitcode is not None
        try:
            # At most READS_PER_ROUND messages from a live worker: a body that
            # logs in a tight loop must not hold this thread (a dead one's
            # pipe is read to the end: its last words include the result).
            reads = 0
            while worker.conn.poll():
                if reads >= READS_PER_ROUND and not dead:
                    break
                reads += 1
                message = worker.conn.recv()
                if isinstance(message, LogRecord):
                    self.relay.record(message)
                else:
                    self.relay.flush()  # a reader who sees the end sees its lines
                    self._ended_here(worker, message)
        except (EOFError, OSError):
            pass
        self.relay.flush()
        if not dead:
            return
        worker.process.join()
        worker.conn.close()
        with self.lock:
            for pool in (self.pool.idle, self.pool.dying):
                if worker in pool:
                    pool.remove(worker)
            task, slot = worker.task, worker.slot
            worker.slot = None
            if task is not None:
                self.pool.busy.pop(task.task_id, None)
            self._try_parked = True
        self.feeder.room.set()
        if task is not None:
            code = worker.process.exitcode
            how = ("killed by %s" % signal.Signals(-code).name if code < 0
                   else "exited with code %d" % code)
            logger.error("the process of task %d (%s) died: %s", task.task_id,
                         task.task_type.name, how)
            self._write(self.store.fail, *task,
                        "the task's process died (%s)" % how)  # frees the slot too
        elif slot is not None:  # a stopped task's process is gone at last
            self._write(self.store.release_slot, *slot)

    def _ended_here(self, worker, outcome):
        """A worker's ``Outcome``: write the task's end."""
        with self.lock:
            if worker.task is None or worker.task.task_id != outcome.task_id:
                return  # a late word from a task stopped meanwhile
            task_type, slot = worker.task.task_type, worker.slot
            self.pool.busy.pop(outcome.task_id, None)
            worker.task = worker.deadline = worker.slot = None
            if worker.process.exitcode is None:
                self.pool.idle.append(worker)
            self._try_parked = True
        self.feeder.room.set()
        task_id = outcome.task_id
        if outcome.ok:  # finish and fail free the slot with the end
            self._write(self.store.finish, task_type, task_id, outcome.payload,
                        outcome.message)
        elif outcome.ok is not None:
            self._write(self.store.fail, task_type, task_id, outcome.payload,
                        progress=outcome.progress)
        elif slot is not None:  # stopped itself: it ended elsewhere
            self._write(self.store.release_slot, *slot)
        self._wake()

    def _write(self, write, *args, **kwargs):
        try:
            write(*args, **kwargs)
        except StoreUnavailable as exc:
            logger.warning("task %d: final state not written yet: %s", args[1], exc)
            with self.lock:
                self.heartbeat.unwritten.append(lambda: write(*args, **kwargs))
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
        with self.lock:
            busy = self.pool.busy
            stop = [busy[i] for i in self._stop if i in busy]
            self._stop.clear()
            late = [w for w in busy.values()
                    if w.deadline and w.deadline <= now and w not in stop]
        for worker in late:
            task_type, task_id = worker.task
            logger.warning("task %d (%s): %s", task_id, task_type.name,
                           task_type.time_limit_message)
            self._write(self.store.fail, task_type, task_id,
                        task_type.time_limit_message,
                        timed_out=True)  # the slot: not before the process is gone
        for worker in stop + late:
            with self.lock:
                self.pool.busy.pop(worker.task.task_id, None)
                worker.task = worker.deadline = None
            self.pool.terminate(worker, now)
        self.pool.kill_late(now)
