"""RedisStore beyond the shared contract: worker processes, their logs,
deaths and kills, Redis going away, and several server processes sharing
one Redis (``python wsgi.py`` children, called over SOAP and JSON-RPC).

Everything is real: a private redis-server, real processes, real signals.
"""

import logging
import os
import signal
import statistics
import threading
import time

import pytest
import redis
import requests

from conftest import ServiceProcess, wait_until
from fixtures import task_type

from tasktypes.errors import StoreUnavailable, TaskTimedOut
from tasktypes.model import TaskStatus
from tasktypes.redis_store import HEARTBEAT_TTL, KEY_PREFIX, RedisStore


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


# -- server processes sharing one Redis --------------------------------------

def soap(server):
    import zeep
    from zeep.transports import Transport
    return zeep.Client(server.url + "/soap?wsdl",
                       transport=Transport(operation_timeout=30)).service


def jsonrpc(server, method, *params):
    reply = requests.post(server.url + "/jsonrpc", timeout=30, json={
        "jsonrpc": "2.0", "method": method, "params": list(params), "id": 1}).json()
    assert "error" not in reply, reply
    return reply["result"]


def soap_fault(call):
    import zeep.exceptions
    with pytest.raises(zeep.exceptions.Fault) as caught:
        call()
    return caught.value.code.split(":", 1)[-1]  # without the namespace prefix


def redis_env(url, workers):
    return {"TASKTYPES_STORE": "redis", "TASKTYPES_REDIS_URL": url,
            "TASKTYPES_WORKERS": str(workers)}


@pytest.fixture(scope="module")
def pair(redis_server):
    """Servers A (one worker) and B (three workers) sharing the Redis."""
    started = []
    try:
        for workers in (1, 3):
            started.append(ServiceProcess(redis_env(redis_server.url, workers)))
        yield started[0], soap(started[0]), started[1], soap(started[1])
    finally:
        for server in started:
            server.stop()


def test_task_followed_through_another_server(redis_url, pair):
    server_a, a, server_b, b = pair
    task_id = a.countdown(3, 0.1)
    progress = b.countdown_progress(task_id)
    assert progress.task_id == task_id
    assert progress.status in ("queued", "running", "done")
    started = time.monotonic()
    state = b.countdown_wait(task_id, 20)  # wakes when the task ends on A
    assert state.status == "done" and state.progress == 1.0
    assert time.monotonic() - started < 2
    assert b.countdown_result(task_id) == 3
    assert a.countdown_result(task_id) == 3


def test_task_followed_over_jsonrpc(redis_url, pair):
    server_a, a, server_b, b = pair
    task_id = jsonrpc(server_a, "countdown", 3, 0.1)["task_id"]
    assert jsonrpc(server_b, "countdown_wait", task_id, 20)["status"] == "done"
    assert jsonrpc(server_b, "countdown_result", task_id) == 3


def test_complex_falsy_results_and_task_logs(redis_url, pair):
    server_a, a, server_b, b = pair
    clone = a.cloneInstance("vm1", "copy")
    zero = a.countdown(0, 0)
    assert b.cloneInstance_wait(clone, 20).status == "done"
    info = b.cloneInstance_result(clone)
    assert (info.instance_id, info.name, info.state) == ("vm1-clone", "copy", "running")
    assert list(info.disk_images) == ["copy-disk0.qcow2", "copy-disk1.qcow2"]
    assert b.countdown_wait(zero, 20).status == "done"
    assert b.countdown_result(zero) == 0
    wait_until(lambda: "[task %d] cloneInstance %d: snapshot" % (clone, clone)
               in server_a.read_log(), 5)


def test_cancel_through_another_server(redis_url, pair):
    server_a, a, server_b, b = pair
    running = a.countdown(1000, 0.05)
    queued = a.countdown(1, 0.0)  # A has one worker: this one waits
    pid = worker_pid(redis_url, running)
    assert b.countdown_progress(queued).status == "queued"
    state = b.countdown_cancel(running)
    assert state.status == "cancelled"
    wait_until(lambda: not alive(pid), 5)
    assert b.countdown_wait(queued, 10).status == "done"  # the freed slot ran it
    assert b.countdown_cancel(running).status == "cancelled"
    assert soap_fault(lambda: b.countdown_result(running)) == "Client.TaskCancelled"


def test_wait_on_a_killed_task_returns_failed(redis_url, pair):
    server_a, a, server_b, b = pair
    task_id = a.countdown(1000, 0.05)
    pid = worker_pid(redis_url, task_id)
    waited = {}
    thread = threading.Thread(target=lambda: waited.update(s=b.countdown_wait(task_id, 20)))
    thread.start()
    time.sleep(0.2)  # let the wait begin on B
    started = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    thread.join(15)
    assert time.monotonic() - started < 3
    assert waited["s"].status == "failed" and "killed by SIGKILL" in waited["s"].message
    assert soap_fault(lambda: b.countdown_result(task_id)) == "Server.TaskFailed"
    assert b.countdown_wait(a.countdown(1, 0.0), 10).status == "done"  # A runs on


def test_time_limit_over_soap(redis_url, pair):
    server_a, a, server_b, b = pair
    started = time.monotonic()
    task_id = a.slowTask(10)
    state = b.slowTask_wait(task_id, 10)
    assert state.status == "failed" and state.message == "time limit of 3 s exceeded"
    assert time.monotonic() - started < 4.5
    assert soap_fault(lambda: b.slowTask_result(task_id)) == "Server.TaskTimedOut"


def test_max_running_across_servers(redis_url, pair):
    server_a, a, server_b, b = pair
    ids = [(a if i % 2 else b).slowTask(1) for i in range(6)]
    client = redis.Redis.from_url(redis_url, decode_responses=True)
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


def test_killed_server_frees_its_slots(redis_url, service_process):
    env = redis_env(redis_url, 2)
    doomed, survivor = service_process(env), service_process(env)
    d, s = soap(doomed), soap(survivor)
    held = [d.slowTask(2.8), d.slowTask(2.8)]
    pids = [worker_pid(redis_url, task_id) for task_id in held]
    wait_until(lambda: all(s.slowTask_progress(t).status == "running" for t in held))
    doomed.proc.send_signal(signal.SIGKILL)
    doomed.proc.wait()
    started = time.monotonic()
    task_id = s.slowTask(0.2)
    assert s.slowTask_progress(task_id).status == "queued"  # both slots still held
    assert s.slowTask_wait(task_id, 15).status == "done"
    assert time.monotonic() - started < HEARTBEAT_TTL + 3
    for held_id in held:
        state = s.slowTask_progress(held_id)
        assert state.status == "failed" and "heartbeat" in state.message
    wait_until(lambda: not any(alive(pid) for pid in pids), 5)


def test_redis_restarted_mid_run(redis_server, redis_url, service_process):
    server = service_process(redis_env(redis_url, 1))
    client = soap(server)
    assert client.countdown_wait(client.countdown(1, 0.0), 10).status == "done"
    redis_server.stop()
    try:
        assert client.echo("still here") == "still here"
        started = time.monotonic()
        assert soap_fault(lambda: client.countdown(1, 0.0)) == "Server.StoreUnavailable"
        assert time.monotonic() - started < 6
    finally:
        redis_server.start()

    def works():
        try:
            return client.countdown(1, 0.0)
        except Exception:
            return None
    task_id = wait_until(works, 10, interval=0.2)
    assert client.countdown_wait(task_id, 10).status == "done"
    assert client.countdown_result(task_id) == 1
