"""Where Redis-store bodies run: long-lived worker processes, each running
one task at a time, fed from the queue in Redis (``redis_queue``).

    runner = ProcessRunner(store, workers=8, progress=ProgressWriter(redis_url))
    runner.start()           # feeder and supervisor threads
    runner.drain(grace=60)   # the worker service's SIGTERM

The same runner serves a web process that runs its own workers (the
zero-setup ``TASKTYPES_STORE=redis python wsgi.py``) and the worker service
(``tasktypes worker``); a web process with ``TASKTYPES_WORKERS=0`` has none
and only submits. Its pieces, one job each:

``WorkerPool`` (``worker_pool``)
    the worker processes (``worker_process``): started on demand up to
    ``workers``, replaced when one dies or is killed, terminated (SIGTERM,
    SIGKILL after ``KILL_GRACE``).
``Heartbeat`` (``heartbeat``)
    one beat a second: this server lives, so do its tasks and slots.
``Feeder`` (a thread, ``queue_feeder``)
    claims entries from the stream (``XREADGROUP``, blocking) as many as
    there are free workers, and every heartbeat takes over entries that a
    dead worker claimed and never started (``XAUTOCLAIM`` after
    ``CLAIM_IDLE``).
the supervisor (a thread, ``ProcessRunner._supervise``)
    dispatch (``task_dispatch``): starts the claimed tasks (the Lua transition queued ->
    running, which only one worker wins; a task whose method is at its
    limit is parked instead) and the parked tasks whose slot came free,
    each on an idle worker; relays the workers' messages (``log_relay`` for
    their log records, ``Outcome`` for the end of a task); enforces time
    limits and stops tasks that ended elsewhere; beats the ``Heartbeat``.

A task's ``_max_running`` slot is released only once its process is gone,
never while a cancelled or timed-out body may still run; why the heartbeat
also stops tasks: ``heartbeat``. How workers start (the fork server), end,
and what a body may not do: ``worker_pool``. How their logs travel:
``log_relay``.
"""

import logging
import os
import signal
import threading
import time
from multiprocessing.connection import wait as wait_for

from .errors import StoreUnavailable
from .heartbeat import Heartbeat
from .log_relay import LogRelay
from .queue_feeder import Feeder
from .task_dispatch import Dispatch
from .worker_pool import WorkerPool
from .worker_process import LogRecord
from .defaults import HEARTBEAT_RETRY, READS_PER_ROUND

logger = logging.getLogger(__name__)


class ProcessRunner(Dispatch):
    """The worker processes of one store in this process, and the threads
    that feed and supervise them (see the module's docstring)."""

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
            # the tasks, not the workers: the supervisor thread, until it has
            # ended below, may still stop a worker and clear its ``task``
            busy = [worker.task for worker in pool.busy.values() if worker.task is not None]
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
            for task in busy:
                logger.warning("task %d (%s): %s", task.task_id, task.task_type.name, message)
                self.store.fail(*task, message)
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
