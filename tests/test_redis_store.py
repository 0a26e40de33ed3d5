"""RedisStore beyond the shared contract: worker processes, their logs,
deaths and kills, Redis going away, and several server processes sharing
one Redis (``python wsgi.py`` children, called over SOAP and JSON-RPC).

Everything is real: a private redis-server, real processes, real signals.
"""

import collections
import json
import logging
import os
import signal
import threading
import time

import pytest
import redis

from conftest import (JsonRpcError, jsonrpc, soap_fault, soap_service,
                      wait_until)
from fixtures import task_type

from tasktypes import redis_store as redis_store_module
from tasktypes.errors import StoreUnavailable, TaskNotFound, TaskTimedOut
from tasktypes.model import TaskStatus
from tasktypes.redis_store import (HEARTBEAT_INTERVAL, HEARTBEAT_TTL, KEY_PREFIX,
                                   SOCKET_TIMEOUT, RedisStore)


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

def test_update_progress_writes_are_batched(store, redis_url):
    """Guards: ``update_progress`` only records the value in the worker; a
    thread writes the latest one every 0.1 s, so a million calls make a few
    dozen Redis writes, not one each. (Its speed is measured in bench/.)"""
    client = redis.Redis.from_url(redis_url)
    before = client.info("stats")["total_commands_processed"]
    task_id, state = run(store, "tightLoop", 300_000, timeout=60)
    assert state.status is TaskStatus.DONE
    commands = client.info("stats")["total_commands_processed"] - before
    assert commands < 300, commands


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


def test_records_of_a_killed_worker_all_arrive(store):
    """Guards the log relay (a private pipe per worker, not a shared queue):
    every record a body wrote before its process was SIGKILLed reaches the
    server's logging and the task's log."""
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    log = logging.getLogger("tasktypes.tests.fixtures")
    handler = Keep()
    log.addHandler(handler)
    log.setLevel(logging.INFO)  # before the first worker starts: it copies levels
    try:
        task_id, state = run(store, "logThenDie", 250)
        assert state.status is TaskStatus.FAILED and "SIGKILL" in state.message
        wait_until(lambda: len(records) >= 250, 5)
    finally:
        log.removeHandler(handler)
        log.setLevel(logging.NOTSET)
    assert [r.getMessage() for r in records] == [
        "[task %d] record %d of 250" % (task_id, i + 1) for i in range(250)]
    lines = store.log(task_type("logThenDie"), task_id, 0)
    assert [line.message for line in lines][-1] == "record 250 of 250"


def test_result_that_cannot_be_stored_is_a_failure(store):
    _, state = run(store, "badResult")
    assert state.status is TaskStatus.FAILED
    assert state.message.startswith("the result cannot be stored")


def test_time_limit_stops_a_body_that_never_reports(store, redis_url):
    """Guards: at its time limit a body that never reports progress is
    failed and its process killed within about a second (SIGTERM, SIGKILL
    after the 0.5 s grace), not left running."""
    tt = task_type("silent")
    task_id = store.submit(tt, (30.0,)).task_id
    pid = worker_pid(redis_url, task_id)
    state = store.wait(tt, task_id, 5)
    assert state.status is TaskStatus.FAILED and state.timed_out
    assert state.duration(time.time()) < 1.5
    wait_until(lambda: not alive(pid), 1.5, interval=0.01)
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


@pytest.mark.parametrize("how,signal_name", [("segfault", "SIGSEGV"), ("oom", "SIGKILL")])
def test_crashed_task_process_fails_its_task(store, how, signal_name):
    """Guards: a task process that segfaults, or that the kernel's OOM
    killer ends (SIGKILL), fails its task with the signal named, at once,
    and the next task runs on a fresh worker."""
    task_id, state = run(store, "crash", how)
    assert state.status is TaskStatus.FAILED
    assert state.message == "the task's process died (killed by %s)" % signal_name
    assert run(store, "add", 1, 1)[1].status is TaskStatus.DONE


def test_every_key_expires_and_nothing_is_pickled(store, redis_url):
    """Guards: every ``tasktypes:`` key a flow leaves (tasks done, failed,
    cancelled, timed out, with ``_max_running`` leases and heartbeats) has
    a TTL, and what is stored is text and JSON, never a pickle."""
    run(store, "info", "x")
    run(store, "fail", "no")
    run(store, "paired", 0.05)
    run(store, "limited", 5.0)
    tt = task_type("hold")
    store.cancel(tt, store.submit(tt, (30.0,)).task_id)
    client = redis.Redis.from_url(redis_url)
    keys = client.keys("*")
    assert keys and all(k.startswith(b"tasktypes:") for k in keys), keys
    for key in keys:
        assert client.pttl(key) > 0, key
        kind = client.type(key)
        if kind == b"hash":
            values = list(client.hgetall(key).values())
        elif kind == b"zset":
            values = [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
        else:
            values = [client.get(key)] if kind == b"string" else []
        for value in values:
            assert not value.startswith(b"\x80"), (key, value)  # pickle's PROTO opcode
            value.decode("utf-8")
    tasks = [client.hgetall(k) for k in keys if client.type(k) == b"hash"]
    results = [t[b"result"] for t in tasks if t[b"status"] == b"done"]
    assert len(results) == 2 and all(json.loads(r) is not None for r in results)


def test_redis_unreachable(redis_server, redis_url):
    store = RedisStore(redis_url, workers=1)
    try:
        task_id, _ = run(store, "add", 1, 1)
        redis_server.stop()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.submit(task_type("add"), (1, 1))
        with pytest.raises(StoreUnavailable):
            store.read(task_type("add"), task_id + 1)
        with pytest.raises(StoreUnavailable):
            store.result(task_type("add"), task_id)
        # a finished task this process has read is still answered, from memory
        assert store.read(task_type("add"), task_id).status is TaskStatus.DONE
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
    store.reread_interval = 30.0
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
    assert time.time() - state.endtime < 0.25  # woken by the listener, not at 30 s
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
        wait_until(lambda: store.runner.heartbeat.unwritten, 10)
        os.kill(redis_server.pid, signal.SIGCONT)
        paused = False

        def answered():  # calls fail fast until the heartbeat gets through again
            try:
                return store.wait(tt, task_id, 10)
            except StoreUnavailable:
                return None
        state = wait_until(answered, 10)
        assert state.status is TaskStatus.DONE and state.progress == 1.0
        assert store.result(tt, task_id) == 1
        assert run(store, "add", 2, 3)[1].status is TaskStatus.DONE
    finally:
        if paused:
            os.kill(redis_server.pid, signal.SIGCONT)
        store.close()


# -- server processes sharing one Redis --------------------------------------

def shipped_task_type(name):
    """The TaskType of a method of the shipped service."""
    from service import TaskService
    return TaskService.public_methods[name].function.task_type


def redis_env(url, workers):
    return {"TASKTYPES_STORE": "redis", "TASKTYPES_REDIS_URL": url,
            "TASKTYPES_WORKERS": str(workers)}


Pair = collections.namedtuple("Pair", "redis_url server_a a server_b b")


@pytest.fixture
def pair(redis_url, service_process):
    """Servers A (one worker) and B (three workers) sharing the test's
    private Redis; new for every test, so that no test depends on another."""
    server_a = service_process(redis_env(redis_url, 1))
    server_b = service_process(redis_env(redis_url, 3))
    return Pair(redis_url, server_a, soap_service(server_a.url),
                server_b, soap_service(server_b.url))


def test_task_followed_through_another_server(pair):
    a, b = pair.a, pair.b
    task_id = a.countdown(3, 0.1)
    progress = b.countdown_progress(task_id)
    assert progress.task_id == task_id
    assert progress.status in ("queued", "running", "done")
    assert b.countdown_wait(task_id, 20).status == "done"
    assert b.countdown_result(task_id) == 3
    assert a.countdown_result(task_id) == 3


def other_server(redis_url):
    """A RedisStore in this process: another server process of the
    deployment, submit-only (it takes no task from the queue), whose waits
    re-read Redis only every 30 s, so that only the ``ended`` channel can
    wake them early."""
    store = RedisStore(redis_url, workers=0)
    store.reread_interval = 30.0
    return store


def test_wait_on_another_server_wakes_at_the_end(pair):
    """Guards: a wait on one server wakes when the task ends on another,
    through the ``ended`` channel: within 0.25 s of the recorded end, with
    the waiter's periodic re-read made 30 s long."""
    waiter = other_server(pair.redis_url)
    try:
        tt = shipped_task_type("countdown")
        task_id = pair.a.countdown(10, 0.1)  # 1 s, on server A
        state = waiter.wait(tt, task_id, 20)
        returned = time.time()
        assert state.status is TaskStatus.DONE
        assert state.endtime - state.starttime > 0.9, "ended before the wait began"
        assert 0 <= returned - state.endtime < 0.25, returned - state.endtime
    finally:
        waiter.close()


def test_wait_on_another_server_wakes_at_a_cancel(pair):
    """Guards: a cancel sent to server B wakes a waiter on a third server at
    once (re-read made 30 s long)."""
    waiter = other_server(pair.redis_url)
    try:
        tt = shipped_task_type("countdown")
        task_id = pair.a.countdown(1000, 0.05)
        wait_until(lambda: pair.b.countdown_progress(task_id).status == "running")
        waited = {}
        thread = threading.Thread(target=lambda: waited.update(
            state=waiter.wait(tt, task_id, 20), returned=time.time()))
        thread.start()
        time.sleep(0.3)
        assert thread.is_alive()  # it waits
        cancelled = pair.b.countdown_cancel(task_id)
        thread.join(20)
        assert waited["state"].status is TaskStatus.CANCELLED
        ended = cancelled.starttime + cancelled.duration
        assert waited["returned"] - ended < 0.25, waited["returned"] - ended
    finally:
        waiter.close()


def test_wait_wakes_when_a_task_is_found_lost(redis_url, service_process):
    """Guards: when a server process dies (SIGKILL of it and its workers,
    as a host that loses power), the first read that finds its task lost
    marks it failed and publishes the end, which wakes every waiter at once
    (re-read made 30 s long)."""
    doomed = service_process(redis_env(redis_url, 1))
    task_id = soap_service(doomed.url).countdown(1000, 0.05)
    tt = shipped_task_type("countdown")
    waiter, reader = other_server(redis_url), other_server(redis_url)
    try:
        wait_until(lambda: reader.read(tt, task_id).status is TaskStatus.RUNNING)
        waited = {}
        thread = threading.Thread(target=lambda: waited.update(
            state=waiter.wait(tt, task_id, 30), returned=time.time()))
        thread.start()
        for pid in doomed.processes():
            os.kill(pid, signal.SIGKILL)
        time.sleep(HEARTBEAT_TTL + 0.5)  # until its heartbeat has expired
        assert thread.is_alive()  # nobody has read the task since
        found = time.time()
        state = reader.read(tt, task_id)
        assert state.status is TaskStatus.FAILED and "heartbeat" in state.message
        thread.join(30)
        assert waited["state"].status is TaskStatus.FAILED
        assert waited["returned"] - found < 0.25, waited["returned"] - found
    finally:
        waiter.close()
        reader.close()


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
    # in the log of the server whose worker ran it (they share the queue)
    wait_until(lambda: any("[task %d] cloneInstance %d: snapshot" % (clone, clone)
                           in server.read_log() for server in (pair.server_a,
                                                               pair.server_b)), 5)


def test_cancel_through_another_server(pair):
    a, b = pair.a, pair.b
    # countdown's _max_running is 4, the pair's workers 1 + 3: all busy
    running = [a.countdown(1000, 0.05) for _ in range(4)]
    pids = [worker_pid(pair.redis_url, task_id) for task_id in running]
    queued = a.countdown(1, 0.0)  # this one waits
    assert b.countdown_progress(queued).status == "queued"
    state = b.countdown_cancel(running[0])
    assert state.status == "cancelled"
    wait_until(lambda: not alive(pids[0]), 5)
    assert b.countdown_wait(queued, 10).status == "done"  # the freed slot ran it
    assert b.countdown_cancel(running[0]).status == "cancelled"
    assert soap_fault(b.countdown_result, running[0]) == "Client.TaskCancelled"
    for task_id in running[1:]:
        assert a.countdown_cancel(task_id).status == "cancelled"


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
    # woken by the end, not at the 20 s timeout (a bound far from both, for busy machines)
    assert returned - (state.starttime + state.duration) < 10.0
    assert soap_fault(b.countdown_result, task_id) == "Server.TaskFailed"
    assert b.countdown_wait(a.countdown(1, 0.0), 10).status == "done"  # A runs on


def test_time_limit_over_soap(pair):
    started = time.monotonic()
    task_id = pair.a.slowTask(10)
    state = pair.b.slowTask_wait(task_id, 10)
    assert state.status == "failed" and state.message == "time limit of 3 s exceeded"
    # woken by the time limit (3 s), not at the wait's 10 s timeout; the bound
    # lies between the two, far enough from 3 s for a busy machine
    assert time.monotonic() - started < 8.0
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
    """The tasks run on ``doomed`` (the only server with workers when they
    start: the queue is shared); the survivor starts after them."""
    doomed = service_process(redis_env(redis_url, 4))
    d = soap_service(doomed.url)
    held = [d.countdown(1000, 0.05) for _ in range(4)]  # _max_running is 4
    pids = [worker_pid(redis_url, task_id) for task_id in held]
    survivor = service_process(redis_env(redis_url, 2))
    s = soap_service(survivor.url)
    wait_until(lambda: all(s.countdown_progress(t).status == "running" for t in held))
    starttimes = [s.countdown_progress(t).starttime for t in held]
    killed = time.time()
    doomed.proc.send_signal(signal.SIGKILL)
    doomed.proc.wait()
    started = time.monotonic()
    task_id = s.countdown(2, 0.1)
    assert s.countdown_progress(task_id).status == "queued"  # the slots still held
    assert s.countdown_wait(task_id, 15).status == "done"
    assert time.monotonic() - started < HEARTBEAT_TTL + 3
    for held_id, starttime in zip(held, starttimes):
        state = s.countdown_progress(held_id)
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


def test_polls_of_a_finished_task_need_no_round_trip(store, redis_url):
    """Guards: a finished task never changes again, so a server process that
    has read it once answers further polls from memory (bounded, and never
    past the task's expiry: test_finished_tasks_expire)."""
    task_id, state = run(store, "add", 2, 2)
    assert state.status is TaskStatus.DONE
    tt = task_type("add")
    store.read(tt, task_id)
    client = redis.Redis.from_url(redis_url)
    before = client.info("stats")["total_commands_processed"]
    for _ in range(100):
        assert store.read(tt, task_id).status is TaskStatus.DONE
    assert client.info("stats")["total_commands_processed"] - before < 5
    with pytest.raises(TaskNotFound):
        store.read(task_type("zero"), task_id)  # still bound to its method
    assert store.result(tt, task_id) == 4  # results are read from Redis
