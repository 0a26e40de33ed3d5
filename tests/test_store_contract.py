"""The Store contract, run against every store: ThreadStore and RedisStore
(a real private redis-server) must answer the same calls the same way.

Bodies are the fixture methods of ``tests/fixtures.py``.
"""

import threading
import time

import pytest

from conftest import wait_until
from fixtures import Info, task_type

from tasktypes.errors import (Busy, TaskCancelled, TaskFailed, TaskNotFinished,
                              TaskNotFound, TaskTimedOut)
from tasktypes.model import TaskStatus
from tasktypes.store import ThreadStore


@pytest.fixture
def store(make_store):
    return make_store()


def run(store, name, *args, timeout=10):
    """Submit, wait until finished, return (task_id, final state)."""
    tt = task_type(name)
    task_id = store.submit(tt, args).task_id
    state = store.wait(tt, task_id, timeout)
    assert state.status.is_finished, state
    return task_id, state


def test_submit_read_result(store):
    tt = task_type("add")
    state = store.submit(tt, (2, 3))
    assert state.status is TaskStatus.QUEUED and state.task_id > 0
    assert store.read(tt, state.task_id).status in (
        TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.DONE)
    done = store.wait(tt, state.task_id, 10)
    assert done.status is TaskStatus.DONE
    assert done.progress == 1.0 and done.starttime > 0
    assert done.duration(time.time()) >= 0
    assert store.result(tt, state.task_id) == 5


@pytest.mark.parametrize("name,expected", [
    ("zero", 0), ("emptyText", ""), ("false", False), ("emptyList", []),
    ("nothing", None)])
def test_falsy_results_come_back_as_themselves(store, name, expected):
    task_id, state = run(store, name)
    assert state.status is TaskStatus.DONE
    result = store.result(task_type(name), task_id)
    assert result == expected and type(result) is type(expected)


def test_complex_result(store):
    task_id, _ = run(store, "info", "disk")
    result = store.result(task_type("info"), task_id)
    assert isinstance(result, Info)
    assert (result.name, result.size, list(result.tags)) == ("disk", 0, ["a", ""])


def test_failure_text(store):
    task_id, state = run(store, "fail", "it broke")
    assert state.status is TaskStatus.FAILED
    assert state.message == "ValueError: it broke"
    with pytest.raises(TaskFailed) as caught:
        store.result(task_type("fail"), task_id)
    assert caught.value.faultstring == "ValueError: it broke"
    assert caught.value.faultcode == "Server.TaskFailed"


def test_unknown_id(store):
    tt = task_type("add")
    for call in (lambda: store.read(tt, 12345), lambda: store.result(tt, 12345),
                 lambda: store.cancel(tt, 12345), lambda: store.wait(tt, 12345, 0.1)):
        with pytest.raises(TaskNotFound):
            call()


def test_id_of_another_method_is_unknown(store):
    task_id, _ = run(store, "add", 1, 1)
    other = task_type("zero")
    with pytest.raises(TaskNotFound):
        store.read(other, task_id)
    with pytest.raises(TaskNotFound):
        store.result(other, task_id)
    with pytest.raises(TaskNotFound):
        store.cancel(other, task_id)
    assert store.read(task_type("add"), task_id).status is TaskStatus.DONE


@pytest.mark.parametrize("kind,expected", [("high", 1.0), ("low", 0.0), ("half", 0.5)])
def test_progress_is_clamped(store, kind, expected):
    tt = task_type("report")
    task_id = store.submit(tt, (kind, 5.0)).task_id
    state = wait_until(lambda: (lambda s: s if s.message else None)(store.read(tt, task_id)))
    assert state.status is TaskStatus.RUNNING
    assert state.progress == expected and state.message == "reported " + kind
    store.cancel(tt, task_id)


@pytest.mark.parametrize("kind,words", [("nan", "NaN"), ("text", "'0.5'"),
                                        ("bool", "True")])
def test_bad_progress_fails_the_task(store, kind, words):
    task_id, state = run(store, "report", kind, 0.0)
    assert state.status is TaskStatus.FAILED
    assert state.message.startswith("ValueError: ") and words in state.message


def test_result_before_the_end(store):
    tt = task_type("sleepy")
    task_id = store.submit(tt, (5.0,)).task_id
    with pytest.raises(TaskNotFinished):
        store.result(tt, task_id)
    store.cancel(tt, task_id)


def test_cancel_queued_running_finished(make_store):
    store = make_store(workers=1)
    tt = task_type("sleepy")
    running = store.submit(tt, (10.0,)).task_id
    queued = store.submit(tt, (0.0,)).task_id
    wait_until(lambda: store.read(tt, running).status is TaskStatus.RUNNING)
    assert store.read(tt, queued).status is TaskStatus.QUEUED

    state = store.cancel(tt, queued)
    assert state.status is TaskStatus.CANCELLED and state.starttime == 0
    state = store.cancel(tt, running)
    assert state.status is TaskStatus.CANCELLED and state.starttime > 0
    assert store.cancel(tt, running).status is TaskStatus.CANCELLED  # twice: harmless
    with pytest.raises(TaskCancelled):
        store.result(tt, running)

    # the worker is free again; the queued task never ran
    task_id, state = run(store, "add", 1, 2)
    assert state.status is TaskStatus.DONE
    assert store.read(tt, queued).starttime == 0
    assert store.cancel(task_type("add"), task_id).status is TaskStatus.DONE
    assert store.result(task_type("add"), task_id) == 3


def test_wait_times_out(store):
    tt = task_type("sleepy")
    task_id = store.submit(tt, (5.0,)).task_id
    started = time.monotonic()
    state = store.wait(tt, task_id, 0.2)
    assert not state.status.is_finished
    assert time.monotonic() - started >= 0.2
    store.cancel(tt, task_id)


def test_wait_is_woken_by_the_end(store):
    """Guards: a waiter wakes when its task ends (a condition in the thread
    store, the ``ended`` channel in Redis), not at a periodic re-read: the
    Redis store's re-read is made 30 s long, and the waiter must be back
    within 0.25 s of the end the store recorded (a store that re-read or
    polled every second, or a dead listener, fails this)."""
    store.reread_interval = 30.0
    tt = task_type("hold")
    task_id = store.submit(tt, (1.4,)).task_id  # ends between two 1-s polls
    state = store.wait(tt, task_id, 20)
    returned = time.time()
    assert state.status is TaskStatus.DONE
    assert 0 <= returned - state.endtime < 0.25, returned - state.endtime
    assert store.wait(tt, task_id, 10).status is TaskStatus.DONE  # finished: at once


def test_wait_is_woken_by_a_cancel(store):
    """Guards: a cancel wakes the waiters of the task at once (re-read made
    30 s long, as above)."""
    store.reread_interval = 30.0
    tt = task_type("hold")
    task_id = store.submit(tt, (30.0,)).task_id
    wait_until(lambda: store.read(tt, task_id).status is TaskStatus.RUNNING)
    waited = {}
    waiter = threading.Thread(target=lambda: waited.update(
        state=store.wait(tt, task_id, 20), returned=time.time()))
    waiter.start()
    time.sleep(0.3)  # let the waiter wait (it must still be waiting: asserted next)
    assert waiter.is_alive()
    cancelled = store.cancel(tt, task_id)
    waiter.join(20)
    assert waited["state"].status is TaskStatus.CANCELLED
    assert waited["returned"] - cancelled.endtime < 0.25, waited["returned"] - cancelled.endtime


def test_time_limit(store):
    tt = task_type("limited")
    started = time.monotonic()
    task_id = store.submit(tt, (10.0,)).task_id
    state = store.wait(tt, task_id, 5)
    assert time.monotonic() - started < 2.5
    assert state.status is TaskStatus.FAILED
    assert state.message == "time limit of 0.5 s exceeded" and state.timed_out
    with pytest.raises(TaskTimedOut):
        store.result(tt, task_id)


def test_time_limit_of_a_body_that_never_reports(store):
    """Guards: the time limit does not rest on update_progress: a silent
    body is failed at its limit (0.5 s) in both stores."""
    tt = task_type("silent")
    task_id = store.submit(tt, (5.0,)).task_id
    state = store.wait(tt, task_id, 5)
    assert state.status is TaskStatus.FAILED and state.timed_out
    assert state.message == "time limit of 0.5 s exceeded"
    assert state.duration(time.time()) < 1.5


def test_busy_when_the_queue_is_full(make_store):
    """Guards: beyond ``max_queued`` waiting tasks a submit is refused with
    Busy, and nothing of the refused task is kept."""
    store = make_store(workers=1, max_queued=1)
    tt = task_type("hold")
    running = store.submit(tt, (30.0,)).task_id
    wait_until(lambda: store.read(tt, running).status is TaskStatus.RUNNING)
    queued = store.submit(tt, (0.0,)).task_id
    with pytest.raises(Busy) as info:
        store.submit(tt, (0.0,))
    assert info.value.faultcode == "Server.Busy"
    store.cancel(tt, queued)
    store.cancel(tt, running)


def test_a_method_at_its_limit_does_not_hold_up_others(make_store):
    """Guards: a task of a method at its ``_max_running`` limit waits without
    taking a worker from other methods' tasks."""
    store = make_store(workers=3)
    paired = task_type("paired")
    ids = [store.submit(paired, (3.0,)).task_id for _ in range(3)]
    wait_until(lambda: [store.read(paired, i).status for i in ids].count(
        TaskStatus.RUNNING) == 2)
    _, state = run(store, "add", 1, 2)
    assert state.status is TaskStatus.DONE
    statuses = [store.read(paired, i).status for i in ids]
    assert statuses.count(TaskStatus.QUEUED) == 1, statuses  # still waiting
    for task_id in ids:
        store.cancel(paired, task_id)


def test_max_running(store):
    tt = task_type("paired")
    ids = [store.submit(tt, (0.3,)).task_id for _ in range(5)]
    states = [store.wait(tt, i, 15) for i in ids]
    assert [s.status for s in states] == [TaskStatus.DONE] * 5
    # From the start and end times: one read after another could see a task
    # still running and, a moment later, the one that took its slot.
    events = sorted([(s.starttime, 1) for s in states] +
                    [(s.endtime, -1) for s in states])
    most = running = 0
    for _, step in events:
        running += step
        most = max(most, running)
    assert most == 2


def test_finished_tasks_expire(make_store):
    store = make_store(result_ttl=0.5)
    task_id, _ = run(store, "add", 1, 1)
    assert store.result(task_type("add"), task_id) == 2

    def gone():
        try:
            store.read(task_type("add"), task_id)
        except TaskNotFound:
            return True
    wait_until(gone, 5)
