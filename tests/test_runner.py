"""The thread store's runner (``runner.ThreadRunner``, ``runner.TimeLimits``)
under its own rules, with real ``ThreadStore`` objects and task types built
directly (no server): a submission wakes at most one sleeping worker, a
worker that ends a task takes the next itself, a method at its
``_max_running`` limit holds up nobody else, the time-limit thread sleeps
until the soonest deadline and is woken only for a sooner one, and the
result is encoded once. Each test waits on states with generous timeouts;
none asserts how long anything took."""

import os
import random
import subprocess
import sys
import threading

import pytest
from spyne import ComplexModel, Double, Integer, Unicode
from spyne.model.complex import Array

from tasktypes import ThreadStore
from tasktypes.decorator import TaskType
from tasktypes.documents import decode_result, encode_result
from tasktypes.errors import Busy
from tasktypes.model import TaskStatus

from conftest import wait_until

TIMEOUT = 10  # seconds any wait here may take before the test fails


def task_type(name, body, max_running=None, time_limit=None, returns=Integer):
    return TaskType(name, "test:" + name, body, returns, time_limit, max_running,
                    ("arg",))


def status(store, tt, task_id):
    return store.read(tt, task_id).status


@pytest.fixture
def stores():
    """ThreadStores made by the test, closed after it; ``release`` is an
    event that every blocking body also waits on, set before closing, so
    that no body outlives its test."""
    made = []
    release = threading.Event()

    def make(**kwargs):
        store = ThreadStore(**kwargs)
        made.append(store)
        return store
    make.release = release
    yield make
    release.set()
    for store in made:
        store.close()


def blocking(gate, release):
    """A body that runs until ``gate`` (or the test's release) is set."""
    def body(ctx, arg, update_progress):
        while not (gate.is_set() or release.is_set()):
            gate.wait(0.05)
        return arg
    return body


def test_max_running_is_never_exceeded_under_concurrent_submits_and_cancels(stores):
    """Guards: however submissions, cancels (of queued and running tasks)
    and task ends interleave, no method ever runs more bodies at once than
    its ``_max_running``; every task ends."""
    store = stores(workers=6, max_queued=10 ** 6)
    lock = threading.Lock()
    now, peak = {}, {}

    def counted(name):
        def body(ctx, seconds, update_progress):
            with lock:
                now[name] = now.get(name, 0) + 1
                peak[name] = max(peak.get(name, 0), now[name])
            try:
                threading.Event().wait(seconds)
            finally:
                with lock:
                    now[name] -= 1
            return 1
        return body

    types = [task_type(name, counted(name), limit, returns=Integer)
             for name, limit in (("one", 1), ("two", 2), ("three", 3), ("free", None))]
    submitted = []
    errors = []

    def submitter(seed):
        rng = random.Random(seed)
        mine = []
        try:
            for _ in range(150):
                tt = rng.choice(types)
                mine.append((tt, store.submit(tt, (rng.choice((0, 0, 0.001, 0.003)),)).task_id))
                if rng.random() < 0.15:
                    store.cancel(*rng.choice(mine))
                if rng.random() < 0.05:
                    threading.Event().wait(0.002)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        submitted.extend(mine)

    threads = [threading.Thread(target=submitter, args=(seed,)) for seed in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not errors and len(submitted) == 450
    for tt, task_id in submitted:
        state = store.wait(tt, task_id, TIMEOUT)
        assert state.status in (TaskStatus.DONE, TaskStatus.CANCELLED), state
    assert sum(peak.values()) > 0
    for tt in types:
        if tt.max_running is not None:
            assert peak.get(tt.name, 0) <= tt.max_running, (peak, tt.name)


def test_idle_workers_all_start_tasks_at_once(stores):
    """Guards: with N workers asleep (they have run tasks before), N
    submissions start N bodies at once: each submission wakes a sleeper.
    The bodies meet at a barrier that only N bodies running together pass."""
    workers = 4
    store = stores(workers=workers)

    def meet(ctx, barrier_round, update_progress):
        barriers[barrier_round].wait(TIMEOUT)  # BrokenBarrierError fails the task
        return barrier_round

    barriers = [threading.Barrier(workers), threading.Barrier(workers)]
    tt = task_type("meet", meet)
    for barrier_round in (0, 1):  # round 0 starts the threads, round 1 wakes them
        ids = [store.submit(tt, (barrier_round,)).task_id for _ in range(workers)]
        for task_id in ids:
            state = store.wait(tt, task_id, TIMEOUT)
            assert state.status is TaskStatus.DONE, (barrier_round, state)
        wait_until(lambda: store.runner._sleeping == workers, TIMEOUT)


def test_a_freed_slot_starts_the_next_waiting_task_of_its_method(stores):
    """Guards: tasks of a method at its limit wait without a wake-up of their
    own; the worker that frees the slot takes the next. If it did not, they
    would wait forever while workers sleep."""
    store = stores(workers=4)
    gate = threading.Event()
    tt = task_type("serial", blocking(gate, stores.release), max_running=1)
    first = store.submit(tt, (0,)).task_id
    wait_until(lambda: status(store, tt, first) is TaskStatus.RUNNING, TIMEOUT)
    rest = [store.submit(tt, (i,)).task_id for i in range(1, 5)]
    assert [status(store, tt, i) for i in rest] == [TaskStatus.QUEUED] * 4
    gate.set()
    for task_id in [first] + rest:
        assert store.wait(tt, task_id, TIMEOUT).status is TaskStatus.DONE


def test_a_free_method_is_not_held_up_behind_one_at_its_limit(stores):
    """Guards: a free worker takes the oldest task whose method has a free
    slot, passing tasks of a method at its limit."""
    store = stores(workers=2)
    gate = threading.Event()
    held = task_type("held", blocking(gate, stores.release), max_running=1)
    free = task_type("free", lambda ctx, arg, update_progress: arg)
    first = store.submit(held, (0,)).task_id
    wait_until(lambda: status(store, held, first) is TaskStatus.RUNNING, TIMEOUT)
    behind = [store.submit(held, (i,)).task_id for i in (1, 2)]
    passing = [store.submit(free, (i,)).task_id for i in range(5)]
    for task_id in passing:
        assert store.wait(free, task_id, TIMEOUT).status is TaskStatus.DONE
    assert status(store, held, first) is TaskStatus.RUNNING
    assert [status(store, held, i) for i in behind] == [TaskStatus.QUEUED] * 2
    gate.set()
    for task_id in [first] + behind:
        assert store.wait(held, task_id, TIMEOUT).status is TaskStatus.DONE


def test_busy_beyond_max_queued_and_a_cancelled_queued_task_frees_its_place(stores):
    store = stores(workers=1, max_queued=2)
    gate = threading.Event()
    tt = task_type("slow", blocking(gate, stores.release))
    running = store.submit(tt, (0,)).task_id
    wait_until(lambda: status(store, tt, running) is TaskStatus.RUNNING, TIMEOUT)
    queued = [store.submit(tt, (i,)).task_id for i in (1, 2)]
    with pytest.raises(Busy):
        store.submit(tt, (3,))
    assert store.cancel(tt, queued[0]).status is TaskStatus.CANCELLED
    last = store.submit(tt, (4,)).task_id  # the cancelled task's place
    with pytest.raises(Busy):
        store.submit(tt, (5,))
    gate.set()
    for task_id in (running, queued[1], last):
        assert store.wait(tt, task_id, TIMEOUT).status is TaskStatus.DONE
    assert status(store, tt, queued[0]) is TaskStatus.CANCELLED


def test_a_time_limit_fires_among_many_cancelled_limits(stores):
    """Guards: limits of tasks that ended in time stay in the heap (and leave
    it in bulk); the limit of a task that overruns still fires, whether it
    was watched before, among or after hundreds of cancelled ones."""
    store = stores(workers=2, max_queued=10 ** 4)
    quick = task_type("quick", lambda ctx, arg, update_progress: arg, time_limit=30)
    overrun = task_type("overrun", blocking(threading.Event(), stores.release),
                        time_limit=0.3)
    early = store.submit(overrun, (0,)).task_id
    ids = [store.submit(quick, (i,)).task_id for i in range(300)]
    for task_id in ids[:150]:
        assert store.wait(quick, task_id, TIMEOUT).status is TaskStatus.DONE
    late = store.submit(overrun, (1,)).task_id
    for task_id in ids[150:]:
        assert store.wait(quick, task_id, TIMEOUT).status is TaskStatus.DONE
    for task_id in (early, late):
        state = store.wait(overrun, task_id, TIMEOUT)
        assert state.status is TaskStatus.FAILED and state.timed_out, state
        assert state.message == "time limit of 0.3 s exceeded"


def test_a_sooner_time_limit_fires_while_a_longer_one_waits(stores):
    """Guards: the time-limit thread, asleep until a long deadline, is woken
    for a sooner one: the short task ends timed out while the long one
    (limit 60 s) still runs."""
    store = stores(workers=2)
    long = task_type("long", blocking(threading.Event(), stores.release), time_limit=60)
    short = task_type("short", blocking(threading.Event(), stores.release),
                      time_limit=0.2)
    first = store.submit(long, (0,)).task_id
    wait_until(lambda: status(store, long, first) is TaskStatus.RUNNING, TIMEOUT)
    wait_until(lambda: store.runner._limits._wakeup is not None, TIMEOUT)  # asleep
    second = store.submit(short, (0,)).task_id
    state = store.wait(short, second, TIMEOUT)
    assert state.status is TaskStatus.FAILED and state.timed_out, state
    assert state.message == "time limit of 0.2 s exceeded"
    assert status(store, long, first) is TaskStatus.RUNNING


def test_wait_is_woken_when_the_task_ends(stores):
    """Guards: the end of a task notifies ``wait`` calls that wait for it
    (it skips the notify only when nobody waits). A wait of 30 s returns
    once the task ends: before a 5 s time limit of another task fires
    (checked by that task's state, not by a clock)."""
    store = stores(workers=2)
    gate = threading.Event()
    tt = task_type("gated", blocking(gate, stores.release))
    clock = task_type("clock", blocking(threading.Event(), stores.release), time_limit=5)
    task_id = store.submit(tt, (7,)).task_id
    ticking = store.submit(clock, (0,)).task_id
    for task in ((tt, task_id), (clock, ticking)):
        wait_until(lambda: status(store, *task) is TaskStatus.RUNNING, TIMEOUT)
    threading.Timer(0.1, gate.set).start()
    assert store.wait(tt, task_id, 30).status is TaskStatus.DONE
    assert status(store, clock, ticking) is TaskStatus.RUNNING


def test_time_limits_fire_soonest_first_among_cancelled_ones():
    """Guards ``TimeLimits`` directly: live limits of random lengths, watched
    among a thousand cancelled ones (so that the heap is compacted while
    they wait), each fire once and in the order of their deadlines, however
    late the thread gets to them."""
    from tasktypes.runner import TimeLimits

    rng = random.Random(7)
    limits = TimeLimits()
    fired = []
    expected = []
    try:
        for i in range(1000):
            limits.cancel(limits.watch(30, fired.append, ("cancelled",)))
            if i % 20 == 0:
                limit = limits.watch(rng.uniform(0.05, 0.4), fired.append, (i,))
                expected.append((limit[0], i))
        wait_until(lambda: len(fired) >= len(expected), TIMEOUT)
        assert fired == [i for _, i in sorted(expected)]
    finally:
        limits.close()


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH") or sys.platform != "linux",
                    reason="SCHED_BATCH is Linux's")
def test_worker_threads_are_sched_batch_and_run_bodies(stores):
    store = stores(workers=2)
    gate = threading.Event()
    seen = {}

    def body(ctx, arg, update_progress):
        # a process the body starts inherits it (documented in runner._background)
        seen["child"] = subprocess.run(
            [sys.executable, "-c", "import os; print(os.sched_getscheduler(0))"],
            capture_output=True, text=True, timeout=TIMEOUT).stdout.strip()
        seen["tid"] = threading.get_native_id()
        gate.wait(TIMEOUT)
        return arg * 2

    tt = task_type("batch", body)
    task_id = store.submit(tt, (21,)).task_id
    wait_until(lambda: "tid" in seen, TIMEOUT)
    try:
        assert os.sched_getscheduler(seen["tid"]) == os.SCHED_BATCH
        assert seen["child"] == str(os.SCHED_BATCH)
        assert os.sched_getscheduler(0) != os.SCHED_BATCH  # the test's thread is not
    finally:
        gate.set()
    assert store.wait(tt, task_id, TIMEOUT).status is TaskStatus.DONE
    assert store.result(tt, task_id) == 42


class Point(ComplexModel):
    __namespace__ = "test.runner"
    x = Double
    label = Unicode


RESULTS = [
    (Double, 2.5), (Double, 3), (Double, -0.0), (Double, 1e308),
    (Unicode, "é\u2028\x01 \"quoted\" \U0001F600"), (Unicode, ""),
    (Integer, 0), (Integer, -(2 ** 70)), (Integer, True),
    (Array(Integer), [3, 1, 2]), (Array(Unicode), []),
    (Point, Point(x=1.5, label="p")), (None, None), (None, "ignored"),
]


@pytest.mark.parametrize("returns, value", RESULTS)
def test_a_result_reads_back_as_its_round_trip_did(stores, returns, value):
    """Guards: the runner encodes a result once and keeps what that encoding
    reads back: ``store.result`` gives what the old path gave, the decode of
    ``encode_result``'s document (a float for an int of a Double, a list
    for an Array, a ComplexModel equal field by field)."""
    store = stores(workers=1)
    tt = task_type("result", lambda ctx, arg, update_progress: value, returns=returns)
    task_id = store.submit(tt, (0,)).task_id
    assert store.wait(tt, task_id, TIMEOUT).status is TaskStatus.DONE
    got = store.result(tt, task_id)
    expected = decode_result(returns, encode_result(returns, value))
    assert type(got) is type(expected)
    if isinstance(expected, ComplexModel):
        assert got.as_dict() == expected.as_dict()
    else:
        assert got == expected
        if isinstance(expected, float):
            assert repr(got) == repr(expected)  # -0.0 stays -0.0


class Unprintable(Exception):
    raises = RuntimeError

    def __str__(self):
        raise self.raises("no text for this exception")


class UnprintableExiting(Unprintable):
    raises = SystemExit  # a BaseException: it passed an ``except Exception``


@pytest.mark.parametrize("error", [Unprintable, UnprintableExiting])
def test_an_exception_that_cannot_be_printed_fails_its_task_and_the_worker_lives(
        stores, error):
    """Found while writing these tests (as old as the runner): ``_run_body``
    turns a body's exception into text with ``error_text`` (``str(exc)``);
    when ``str`` raised, that escaped ``_work``, the thread died, the task
    stayed ``running`` forever, and with ``workers=1`` nothing ran again.
    Now the text says the message could not be had, and a failure of the
    worker's own code fails its task and leaves the worker alive."""
    store = stores(workers=1)

    def body(ctx, arg, update_progress):
        raise error()

    bad = task_type("unprintable", body)
    good = task_type("good", lambda ctx, arg, update_progress: arg)
    failing = store.submit(bad, (0,)).task_id
    after = store.submit(good, (1,)).task_id
    state = store.wait(bad, failing, TIMEOUT)
    assert state.status is TaskStatus.FAILED
    assert state.message == "%s: (no message: its str() raised %s)" % (
        error.__name__, error.raises.__name__)
    assert store.wait(good, after, TIMEOUT).status is TaskStatus.DONE


def test_a_submission_after_close_is_refused_not_kept_for_ever(stores):
    """Guards: after ``close()`` no worker takes tasks any more; a task
    accepted then would stay queued for ever (the count of sleeping workers
    still counted the ones that had ended): Busy instead."""
    store = stores(workers=2)
    tt = task_type("quick", lambda ctx, arg, update_progress: arg)
    first = store.submit(tt, (1,)).task_id
    assert store.wait(tt, first, TIMEOUT).status is TaskStatus.DONE
    store.close()
    with pytest.raises(Busy):
        store.submit(tt, (2,))
