"""RedisStore beyond the shared contract: worker processes, their logs,
deaths and kills, Redis going away, and several server processes sharing
one Redis (``python wsgi.py`` children, called over SOAP and JSON-RPC).

Everything is real: a private redis-server, real processes, real signals.
"""

import collections
import logging
import os
import signal
import statistics
import threading
import time

import pytest
import redis

from conftest import (JsonRpcError, ServiceProcess, jsonrpc, soap_fault, soap_service,
                      wait_until)
from fixtures import task_type

from tasktypes import redis_store as redis_store_module
from tasktypes.errors import StoreUnavailable, TaskTimedOut
from tasktypes.model import TaskStatus
from tasktypes.redis_store import (HEARTBEAT_INTERVAL, HEARTBEAT_TTL, KEY_PREFIX,
                                   SOCKET_TIMEOUT, RedisStore)
from tasktypes.testing import RedisServer


@pytest.fixture
def store(redis_url):
    store = RedisStore(redis_url, workers=2)
    yield store
    store.close()


def run(store, name, *args, timeout=10):
    tt = task_type(name)
    task_id = store.submit(tt, args).task_id
    return task_id, store.wait(tt, task_id, timeout)


def worker_pid(redis_url, task_id):
    """The pid of the worker process running ``task_id``, read from Redis."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    pid = wait_until(lambda: client.hget(KEY_PREFIX + "task:%d" % task_id, "pid"))
    return int(pid)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


# -- in this process --------------------------------------------------------

def test_empty_task_takes_a_few_ms(store):
    run(store, "empty")  # starts the fork server and a worker
    tt = task_type("empty")
    times = []
    for _ in range(50):
        started = time.perf_counter()
        state = store.wait(tt, store.submit(tt, ()).task_id, 5)
        times.append(time.perf_counter() - started)
        assert state.status is TaskStatus.DONE
    median = statistics.median(times) * 1000
    print("empty task submit -> done: median %.2f ms" % median)
    assert median < 20


def test_update_progress_is_cheap(store, redis_url):
    client = redis.Redis.from_url(redis_url)
    before = client.info("stats")["total_commands_processed"]
    task_id, state = run(store, "tightLoop", 1_000_000, timeout=30)
    assert state.status is TaskStatus.DONE
    per_call = store.result(task_type("tightLoop"), task_id)
    commands = client.info("stats")["total_commands_processed"] - before
    print("update_progress: %.2f us per call, %d Redis commands" % (per_call, commands))
    assert per_call < 5
    assert commands < 200  # not one write per call


def test_every_log_record_reaches_the_server(store):
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    log = logging.getLogger("tasktypes.tests.fixtures")
    handler = Keep()
    log.addHandler(handler)
    log.setLevel(logging.INFO)  # before the first worker starts: it copies levels
    try:
        task_id, state = run(store, "logMany", 200)
        assert state.status is TaskStatus.DONE
        wait_until(lambda: len(records) >= 200, 5)
    finally:
        log.removeHandler(handler)
        log.setLevel(logging.NOTSET)
    assert [r.getMessage() for r in records] == [
        "[task %d] record %d of 200" % (task_id, i + 1) for i in range(200)]
    assert all(r.task_id == task_id for r in records)


def test_result_that_cannot_be_stored_is_a_failure(store):
    _, state = run(store, "badResult")
    assert state.status is TaskStatus.FAILED
    assert state.message.startswith("the result cannot be stored")


def test_time_limit_stops_a_body_that_never_reports(store, redis_url):
    tt = task_type("silent")
    task_id = store.submit(tt, (30.0,)).task_id
    pid = worker_pid(redis_url, task_id)
    state = store.wait(tt, task_id, 5)
    assert state.status is TaskStatus.FAILED and state.timed_out
    wait_until(lambda: not alive(pid), 5)
    with pytest.raises(TaskTimedOut):
        store.result(tt, task_id)
    assert run(store, "add", 2, 2)[1].status is TaskStatus.DONE


def test_killed_task_process_fails_its_task(store, redis_url):
    tt = task_type("sleepy")
    task_id = store.submit(tt, (30.0,)).task_id
    pid = worker_pid(redis_url, task_id)
    waiter = {}
    thread = threading.Thread(target=lambda: waiter.update(s=store.wait(tt, task_id, 20)))
    thread.start()
    started = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    thread.join(10)
    assert time.monotonic() - started < 3
    assert waiter["s"].status is TaskStatus.FAILED
    assert waiter["s"].message == "the task's process died (killed by SIGKILL)"
    # the slot is free and a fresh worker runs the next task
    assert run(store, "add", 1, 1)[1].status is TaskStatus.DONE


def test_redis_unreachable(redis_server, redis_url):
    store = RedisStore(redis_url, workers=1)
    try:
        task_id, _ = run(store, "add", 1, 1)
        redis_server.stop()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.submit(task_type("add"), (1, 1))
        with pytest.raises(StoreUnavailable):
            store.read(task_type("add"), task_id)
        assert time.monotonic() - started < 6
        redis_server.start()
        assert run(store, "add", 2, 3)[1].status is TaskStatus.DONE
    finally:
        store.close()


def test_missed_cancel_message_still_stops_the_task(store, redis_url):
    """A cancel whose message on the ``ended`` channel never arrives (pub/sub
    is at most once) still stops a body that never reports progress: the
    heartbeat reads the status."""
    tt = task_type("hold")
    task_id = store.submit(tt, (30.0,)).task_id
    pid = worker_pid(redis_url, task_id)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.hset(KEY_PREFIX + "task:%d" % task_id, "status", "cancelled")  # no PUBLISH
    wait_until(lambda: not alive(pid), HEARTBEAT_INTERVAL + 2)
    assert store.read(tt, task_id).status is TaskStatus.CANCELLED
    assert run(store, "add", 1, 1)[1].status is TaskStatus.DONE


def test_slot_stays_taken_until_the_cancelled_process_is_gone(store, redis_url):
    """``stubborn`` (``_max_running=1``) ignores SIGTERM, so its process lives
    for the kill grace after the cancel; the next one must not start before."""
    tt = task_type("stubborn")
    first = store.submit(tt, (30.0,)).task_id
    pid = worker_pid(redis_url, first)
    second = store.submit(tt, (0.0,)).task_id
    assert store.read(tt, second).status is TaskStatus.QUEUED
    assert store.cancel(tt, first).status is TaskStatus.CANCELLED
    wait_until(lambda: store.read(tt, second).status is not TaskStatus.QUEUED, 10,
               interval=0.005)
    assert not alive(pid)
    assert store.wait(tt, second, 10).status is TaskStatus.DONE


def test_listener_survives_bad_messages(store, redis_url, monkeypatch, caplog):
    """Anyone may publish on the channel; nothing published there, and no
    error in handling a message, may stop the listener."""
    # Waiters re-read Redis only every 30 s now: only the listener can wake them.
    monkeypatch.setattr(redis_store_module, "HEARTBEAT_INTERVAL", 30.0)
    handled = threading.Event()
    real_ended = store.runner.ended

    def ended_fails_once(task_id):
        if not handled.is_set():
            handled.set()
            raise RuntimeError("boom")
        real_ended(task_id)
    monkeypatch.setattr(store.runner, "ended", ended_fails_once)
    client = redis.Redis.from_url(redis_url)
    # (again and again until the listener, subscribing meanwhile, gets one)
    wait_until(lambda: client.publish(store.channel, b"4242") and handled.is_set(), 5)
    for data in (b"not a task id", b"", b"1.5", b"\xff\xfe"):
        client.publish(store.channel, data)
    tt = task_type("hold")  # ends after the listener has subscribed again
    task_id = store.submit(tt, (1.5,)).task_id
    started = time.monotonic()
    state = store.wait(tt, task_id, 10)
    assert state.status is TaskStatus.DONE
    assert time.monotonic() - started < 3  # woken by the listener, not at 10 s
    assert store._listener.is_alive()
    assert "malformed message" in caplog.text


def test_final_state_written_once_redis_answers_again(redis_server, redis_url,
                                                      monkeypatch):
    """A task that ends while Redis does not answer (SIGSTOP: its data
    survives) is found done, with its result, once Redis is back."""
    # Heartbeats outlive the pause: the pause must not make the task look
    # lost (what the module docstring says of longer outages).
    monkeypatch.setattr(redis_store_module, "HEARTBEAT_TTL", 30.0)
    store = RedisStore(redis_url, workers=1)
    paused = False
    try:
        tt = task_type("sleepy")
        task_id = store.submit(tt, (0.5,)).task_id
        wait_until(lambda: store.read(tt, task_id).status is TaskStatus.RUNNING)
        os.kill(redis_server.pid, signal.SIGSTOP)
        paused = True
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.read(tt, task_id)
        assert time.monotonic() - started < SOCKET_TIMEOUT + 1  # fails, not hangs
        # the body has ended; Redis refused its final state
        wait_until(lambda: store.runner._unwritten, 10)
        os.kill(redis_server.pid, signal.SIGCONT)
        paused = False
        state = store.wait(tt, task_id, 10)
        assert state.status is TaskStatus.DONE and state.progress == 1.0
        assert store.result(tt, task_id) == 1
        assert run(store, "add", 2, 3)[1].status is TaskStatus.DONE
    finally:
        if paused:
            os.kill(redis_server.pid, signal.SIGCONT)
        store.close()


# -- server processes sharing one Redis --------------------------------------

def redis_env(url, workers):
    return {"TASKTYPES_STORE": "redis", "TASKTYPES_REDIS_URL": url,
            "TASKTYPES_WORKERS": str(workers)}


Pair = collections.namedtuple("Pair", "redis_url server_a a server_b b")


@pytest.fixture(scope="module")
def pair(redis_server):
    """Servers A (one worker) and B (three workers) sharing a Redis of their
    own: the ``redis_url`` fixture empties its Redis before and after every
    test, which would wipe these live servers' heartbeats and slot leases."""
    started = []
    with RedisServer() as own_redis:
        try:
            for workers in (1, 3):
                started.append(ServiceProcess(redis_env(own_redis.url, workers)))
            server_a, server_b = started
            yield Pair(own_redis.url, server_a, soap_service(server_a.url),
                       server_b, soap_service(server_b.url))
        finally:
            for server in started:
                server.stop()


def test_task_followed_through_another_server(pair):
    a, b = pair.a, pair.b
    task_id = a.countdown(3, 0.1)
    progress = b.countdown_progress(task_id)
    assert progress.task_id == task_id
    assert progress.status in ("queued", "running", "done")
    assert b.countdown_wait(task_id, 20).status == "done"
    assert b.countdown_result(task_id) == 3
    assert a.countdown_result(task_id) == 3


def test_wait_on_another_server_wakes_at_the_end(pair):
    """B's wait wakes when the task ends on A: shortly after the end (B also
    re-reads every second, so a late wake-up would show), long before the
    timeout, and the task ended well after the wait had begun."""
    for _ in range(2):
        task_id = pair.a.countdown(15, 0.1)  # 1.5 s
        sent = time.time()
        state = pair.b.countdown_wait(task_id, 20)
        returned = time.time()
        assert state.status == "done"
        ended = state.starttime + state.duration
        assert ended - sent > 1.0, "the task ended before the wait began"
        assert -0.05 < returned - ended < 0.3, returned - ended


def test_task_followed_over_jsonrpc(pair):
    task_id = jsonrpc(pair.server_a.url, "countdown", 3, 0.1)["task_id"]
    assert jsonrpc(pair.server_b.url, "countdown_wait", task_id, 20)["status"] == "done"
    assert jsonrpc(pair.server_b.url, "countdown_result", task_id) == 3


def test_complex_falsy_results_and_task_logs(pair):
    a, b = pair.a, pair.b
    clone = a.cloneInstance("vm1", "copy")
    zero = a.countdown(0, 0)
    assert b.cloneInstance_wait(clone, 20).status == "done"
    info = b.cloneInstance_result(clone)
    assert (info.instance_id, info.name, info.state) == ("vm1-clone", "copy", "running")
    assert list(info.disk_images) == ["copy-disk0.qcow2", "copy-disk1.qcow2"]
    assert b.countdown_wait(zero, 20).status == "done"
    assert b.countdown_result(zero) == 0
    wait_until(lambda: "[task %d] cloneInstance %d: snapshot" % (clone, clone)
               in pair.server_a.read_log(), 5)


def test_cancel_through_another_server(pair):
    a, b = pair.a, pair.b
    running = a.countdown(1000, 0.05)
    queued = a.countdown(1, 0.0)  # A has one worker: this one waits
    pid = worker_pid(pair.redis_url, running)
    assert b.countdown_progress(queued).status == "queued"
    state = b.countdown_cancel(running)
    assert state.status == "cancelled"
    wait_until(lambda: not alive(pid), 5)
    assert b.countdown_wait(queued, 10).status == "done"  # the freed slot ran it
    assert b.countdown_cancel(running).status == "cancelled"
    assert soap_fault(b.countdown_result, running) == "Client.TaskCancelled"


def test_wait_on_a_killed_task_returns_failed(pair):
    a, b = pair.a, pair.b
    task_id = a.countdown(1000, 0.05)
    pid = worker_pid(pair.redis_url, task_id)
    waited = {}
    thread = threading.Thread(target=lambda: waited.update(s=b.countdown_wait(task_id, 20)))
    thread.start()
    thread.join(0.5)
    assert thread.is_alive()  # B is waiting on a running task
    os.kill(pid, signal.SIGKILL)
    thread.join(15)
    returned = time.time()
    state = waited["s"]
    assert state.status == "failed" and "killed by SIGKILL" in state.message
    assert returned - (state.starttime + state.duration) < 0.3  # woken by the end
    assert soap_fault(b.countdown_result, task_id) == "Server.TaskFailed"
    assert b.countdown_wait(a.countdown(1, 0.0), 10).status == "done"  # A runs on


def test_time_limit_over_soap(pair):
    started = time.monotonic()
    task_id = pair.a.slowTask(10)
    state = pair.b.slowTask_wait(task_id, 10)
    assert state.status == "failed" and state.message == "time limit of 3 s exceeded"
    assert time.monotonic() - started < 4.5
    assert soap_fault(pair.b.slowTask_result, task_id) == "Server.TaskTimedOut"


def test_max_running_across_servers(pair):
    ids = [(pair.a if i % 2 else pair.b).slowTask(1) for i in range(6)]
    client = redis.Redis.from_url(pair.redis_url, decode_responses=True)
    most = 0

    def all_done():
        nonlocal most
        with client.pipeline(transaction=True) as pipe:  # one atomic snapshot
            for i in ids:
                pipe.hget(KEY_PREFIX + "task:%d" % i, "status")
            statuses = pipe.execute()
        most = max(most, statuses.count("running"))
        return statuses.count("done") == 6
    wait_until(all_done, 20, interval=0.01)
    assert most == 2


# -- one server process at a time, on the test's own (flushed) Redis ----------

def test_killed_server_frees_its_slots(redis_url, service_process):
    env = redis_env(redis_url, 2)
    doomed, survivor = service_process(env), service_process(env)
    d, s = soap_service(doomed.url), soap_service(survivor.url)
    held = [d.slowTask(2.8), d.slowTask(2.8)]
    pids = [worker_pid(redis_url, task_id) for task_id in held]
    wait_until(lambda: all(s.slowTask_progress(t).status == "running" for t in held))
    starttimes = [s.slowTask_progress(t).starttime for t in held]
    killed = time.time()
    doomed.proc.send_signal(signal.SIGKILL)
    doomed.proc.wait()
    started = time.monotonic()
    task_id = s.slowTask(0.2)
    assert s.slowTask_progress(task_id).status == "queued"  # both slots still held
    assert s.slowTask_wait(task_id, 15).status == "done"
    assert time.monotonic() - started < HEARTBEAT_TTL + 3
    for held_id, starttime in zip(held, starttimes):
        state = s.slowTask_progress(held_id)
        assert state.status == "failed" and "heartbeat" in state.message
        # it ran until the server died: its last heartbeat, not the read
        ran = killed - starttime
        assert ran - HEARTBEAT_INTERVAL - 0.5 < state.duration <= ran + 0.1, \
            (state.duration, ran)
    wait_until(lambda: not any(alive(pid) for pid in pids), 5)


def test_redis_restarted_mid_run(redis_server, redis_url, service_process):
    """Redis stops (and loses its data: the test Redis keeps nothing on disk)
    while a task runs. Meanwhile the store's methods answer StoreUnavailable
    at once and the rest of the service works; afterwards the lost task is
    unknown (TaskNotFound), its process is stopped, and new tasks run."""
    server = service_process(redis_env(redis_url, 1))
    client = soap_service(server.url)
    lost = client.countdown(100, 0.1)  # 10 s, on the only worker
    wait_until(lambda: client.countdown_progress(lost).progress > 0)
    redis_server.stop()
    try:
        started = time.monotonic()
        assert soap_fault(client.countdown_progress, lost) == "Server.StoreUnavailable"
        with pytest.raises(JsonRpcError) as info:
            jsonrpc(server.url, "countdown_progress", lost)
        assert info.value.code == -32010
        assert soap_fault(client.countdown, 1, 0.0) == "Server.StoreUnavailable"
        assert time.monotonic() - started < 3
        assert client.echo("still here") == "still here"
    finally:
        redis_server.start()

    def works():
        try:
            return client.countdown(1, 0.0)
        except Exception:
            return None
    started = time.monotonic()
    task_id = wait_until(works, 10, interval=0.2)
    assert soap_fault(client.countdown_progress, lost) == "Client.TaskNotFound"
    # the one worker was freed from the lost task, long before its 10 s
    assert client.countdown_wait(task_id, 10).status == "done"
    assert time.monotonic() - started < 5
    assert client.countdown_result(task_id) == 1
