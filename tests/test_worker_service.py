"""The worker service (``tasktypes worker``) and the durable queue: tasks
outlive web servers, and worker hosts come and go.

Everything is real: the test's private redis-server, ``python wsgi.py``
web servers (submit-only: ``TASKTYPES_WORKERS=0``), worker services as
their own process sessions, real signals. ``counted`` (tests/fixtures.py)
counts its runs in Redis, so a test sees that no task ran twice.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import redis

from conftest import ROOT, soap_fault, soap_service, wait_until
from fixtures import runs, task_type
from service import TaskService

from tasktypes.defaults import CLAIM_IDLE, HEARTBEAT_TTL
from tasktypes.errors import Busy, TaskNotFound
from tasktypes.model import TaskStatus
from tasktypes.redis_queue import GROUP
from tasktypes.redis_store import KEY_PREFIX, RedisStore
from tasktypes.testing import ChildProcess, clean_environ, session_pids, stop_session
from tasktypes.worker import GRACE_MESSAGE

TESTS = os.path.dirname(os.path.abspath(__file__))


class WorkerService(ChildProcess):
    """``python -m tasktypes.worker`` in its own session, run from the
    checkout (where wsgi.py is), loading the shipped service and the test
    fixtures; started once its log says it takes tasks."""

    def __init__(self, redis_url, workers=2, grace=None, env=None,
                 modules=("service", "fixtures")):
        env = dict(env or {}, TASKTYPES_STORE="redis", TASKTYPES_REDIS_URL=redis_url,
                   TASKTYPES_WORKERS=str(workers), PYTHONPATH=TESTS,
                   PYTHONUNBUFFERED="1")
        argv = [sys.executable, "-m", "tasktypes.worker", *modules]
        if grace is not None:
            argv += ["--grace", str(grace)]
        super().__init__("tasktypes worker", argv, env, cwd=ROOT,
                         ready=lambda log: "taking tasks" in log)

    def kill(self):
        """SIGKILL every process of the service, as a host that loses power."""
        for pid in session_pids(self.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)
        wait_until(lambda: not session_pids(self.pid), 10)


@pytest.fixture
def worker_service(redis_url):
    started = []

    def start(**options):
        service = WorkerService(redis_url, **options)
        started.append(service)
        return service
    yield start
    for service in started:
        service.stop()


@pytest.fixture
def submitter(redis_url):
    """A submit-only RedisStore in this process (a web process with
    ``TASKTYPES_WORKERS=0``)."""
    store = RedisStore(redis_url, workers=0)
    yield store
    store.close()


def web_env(redis_url):
    return {"TASKTYPES_STORE": "redis", "TASKTYPES_REDIS_URL": redis_url,
            "TASKTYPES_WORKERS": "0"}


def statuses(store, tt, ids):
    return [store.read(tt, i).status for i in ids]


# -- web tier and worker tier apart ---------------------------------------------

def test_submit_only_web_server_runs_nothing_itself(redis_url, service_process,
                                                    worker_service):
    """Guards TASKTYPES_WORKERS=0: the web process queues; the task runs only
    once a worker service is there, in that service's processes."""
    web = service_process(web_env(redis_url))
    client = soap_service(web.url)
    task_id = client.countdown(2, 0.05)
    time.sleep(1.0)  # nothing may take it meanwhile (nothing to wait for)
    assert client.countdown_progress(task_id).status == "queued"
    service = worker_service(workers=1)
    assert client.countdown_wait(task_id, 15).status == "done"
    server = redis.Redis.from_url(redis_url, decode_responses=True).hget(
        KEY_PREFIX + "task:%d" % task_id, "server")
    assert int(server.split(":")[-2]) == service.pid
    assert "[task %d]" % task_id not in web.read_log()


def test_task_of_web_a_followed_cancelled_waited_fetched_on_web_b(
        redis_url, service_process, worker_service):
    worker_service(workers=2)
    a = soap_service(service_process(web_env(redis_url)).url)
    b = soap_service(service_process(web_env(redis_url)).url)
    done = a.countdown(10, 0.1)
    doomed = a.countdown(1000, 0.05)
    wait_until(lambda: b.countdown_progress(doomed).progress > 0, 15)
    assert b.countdown_wait(done, 15).status == "done"
    assert b.countdown_result(done) == 10
    assert b.countdown_cancel(doomed).status == "cancelled"
    assert soap_fault(a.countdown_result, doomed) == "Client.TaskCancelled"
    assert b.countdown_wait(a.countdown(1, 0.0), 15).status == "done"  # its worker is free


def test_web_servers_killed_and_restarted_lose_nothing(redis_url, service_process,
                                                       worker_service):
    """Web servers SIGKILLed (every process of theirs) while a task runs and
    another waits queued; restarted ones find both done."""
    worker_service(workers=1)
    web = service_process(web_env(redis_url))
    client = soap_service(web.url)
    running = client.countdown(20, 0.1)
    queued = client.countdown(5, 0.1)
    wait_until(lambda: client.countdown_progress(running).status == "running", 15)
    assert client.countdown_progress(queued).status == "queued"
    for pid in web.processes():
        os.kill(pid, signal.SIGKILL)
    web.proc.wait(10)
    again = soap_service(service_process(web_env(redis_url)).url)
    assert again.countdown_progress(running).status == "running"
    assert again.countdown_wait(running, 20).status == "done"
    assert again.countdown_wait(queued, 20).status == "done"
    assert again.countdown_result(queued) == 5


# -- stopping a worker service --------------------------------------------------

def test_sigterm_lets_running_tasks_finish(redis_url, submitter, worker_service):
    """SIGTERM: the running tasks finish (within the grace), the service
    exits 0, and a task still queued runs on the next worker service."""
    tt = task_type("counted")
    service = worker_service(workers=2, grace=30)
    # long enough that both still run when the signal is handled, on a busy machine too
    running = [submitter.submit(tt, (5.0,)).task_id for _ in range(2)]
    wait_until(lambda: statuses(submitter, tt, running) == [TaskStatus.RUNNING] * 2, 15)
    # both bodies under way in their worker processes (not only marked running)
    wait_until(lambda: all(submitter.read(tt, i).progress > 0 for i in running), 15)
    queued = submitter.submit(tt, (0.1,)).task_id
    service.proc.send_signal(signal.SIGTERM)
    assert service.proc.wait(30) == 0, service.read_log()
    assert statuses(submitter, tt, running) == [TaskStatus.DONE] * 2, (
        [submitter.read(tt, i).message for i in running], service.read_log())
    assert submitter.read(tt, queued).status is TaskStatus.QUEUED
    log = service.read_log()
    assert "stopping: no new tasks; 2 running" in log
    assert "pid %d, 2 workers, Redis %s" % (service.pid, redis_url) in log.splitlines()[0]
    worker_service(workers=1)
    assert submitter.wait(tt, queued, 15).status is TaskStatus.DONE
    assert [runs(redis_url, i) for i in running + [queued]] == [1, 1, 1]


def test_sigterm_after_the_grace_fails_what_still_runs(redis_url, submitter,
                                                       worker_service):
    tt = task_type("counted")
    service = worker_service(workers=1, grace=0.5)
    task_id = submitter.submit(tt, (60.0,)).task_id
    wait_until(lambda: submitter.read(tt, task_id).progress > 0, 15)
    service.proc.send_signal(signal.SIGTERM)
    assert service.proc.wait(15) == 0, service.read_log()
    state = submitter.read(tt, task_id)
    assert state.status is TaskStatus.FAILED
    assert state.message == GRACE_MESSAGE % 0.5
    assert "grace period" in state.message
    wait_until(lambda: not session_pids(service.pid), 10)  # its workers are gone


# -- a worker host that dies ------------------------------------------------------

def test_killed_worker_service(redis_url, submitter, worker_service):
    """SIGKILL of a whole worker service: its running tasks are failed within
    a few heartbeats; the tasks still queued, and one claimed by a consumer
    that died before starting it, run on a second worker service; no task
    runs twice."""
    tt = task_type("counted")
    doomed = worker_service(workers=2)
    running = [submitter.submit(tt, (60.0,)).task_id for _ in range(2)]
    wait_until(lambda: all(runs(redis_url, i) for i in running), 15)  # bodies began
    queued = [submitter.submit(tt, (0.2,)).task_id for _ in range(3)]
    # A consumer that claims an entry and dies before starting it.
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    claimed = client.xreadgroup(GROUP, "dead-host:1:x", {KEY_PREFIX + "queue": ">"},
                                count=1)
    claimed_id = int(claimed[0][1][0][1]["task"])
    assert claimed_id == queued[0]
    doomed.kill()
    killed = time.monotonic()
    # its tasks are lost: the first read after its heartbeat expired says so
    wait_until(lambda: statuses(submitter, tt, running) == [TaskStatus.FAILED] * 2,
               HEARTBEAT_TTL + 3, interval=0.2)
    assert time.monotonic() - killed < HEARTBEAT_TTL + 3
    assert all("heartbeat" in submitter.read(tt, i).message for i in running)
    worker_service(workers=2)
    for task_id in queued:
        assert submitter.wait(tt, task_id, CLAIM_IDLE + 15).status is TaskStatus.DONE
    assert [runs(redis_url, i) for i in running + queued] == [1] * 5


# -- across worker services -------------------------------------------------------

def test_cancel_and_max_running_across_two_worker_services(redis_url, submitter,
                                                           worker_service):
    tt = task_type("countedPair")  # _max_running=2, deployment-wide
    worker_service(workers=2)
    worker_service(workers=2)
    ids = [submitter.submit(tt, (0.6,)).task_id for _ in range(6)]
    never = ids[4]
    assert submitter.cancel(tt, never).status is TaskStatus.CANCELLED
    most = 0

    client = redis.Redis.from_url(redis_url, decode_responses=True)

    def all_ended():
        nonlocal most
        with client.pipeline(transaction=True) as pipe:  # one atomic snapshot
            for i in ids:
                pipe.hget(KEY_PREFIX + "task:%d" % i, "status")
            now = pipe.execute()
        most = max(most, now.count("running"))
        return all(s in ("done", "failed", "cancelled") for s in now)
    wait_until(all_ended, 30, interval=0.01)
    assert most == 2
    assert [runs(redis_url, i) for i in ids] == [1, 1, 1, 1, 0, 1]
    # a running task cancelled from here stops in the other process
    long = submitter.submit(tt, (60.0,)).task_id
    wait_until(lambda: submitter.read(tt, long).progress > 0, 15)
    assert submitter.cancel(tt, long).status is TaskStatus.CANCELLED
    short = submitter.submit(tt, (0.1,)).task_id
    assert submitter.wait(tt, short, 15).status is TaskStatus.DONE


def test_a_method_at_its_limit_does_not_hold_up_others(redis_url, submitter,
                                                       worker_service):
    """Parked tasks wait for their slot; tasks of other methods submitted
    after them start at once on the free workers."""
    pair, other = task_type("countedPair"), task_type("counted")
    worker_service(workers=4)
    held = [submitter.submit(pair, (3.0,)).task_id for _ in range(3)]
    quick = submitter.submit(other, (0.1,)).task_id
    assert submitter.wait(other, quick, 10).status is TaskStatus.DONE
    assert statuses(submitter, pair, held).count(TaskStatus.QUEUED) == 1
    for task_id in held:
        assert submitter.wait(pair, task_id, 15).status is TaskStatus.DONE


def test_a_task_waits_for_a_worker_that_has_its_type(redis_url, submitter,
                                                     worker_service):
    """A worker service without the fixtures module leaves their tasks
    queued (parked), never failed; one that has it runs them."""
    tt = task_type("counted")
    worker_service(workers=2, modules=("service",))
    task_id = submitter.submit(tt, (0.0,)).task_id
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    wait_until(lambda: client.zscore(KEY_PREFIX + "parked", task_id) is not None, 10)
    assert submitter.read(tt, task_id).status is TaskStatus.QUEUED
    worker_service(workers=1)
    assert submitter.wait(tt, task_id, 15).status is TaskStatus.DONE
    assert runs(redis_url, task_id) == 1


# -- the bound of the queue -----------------------------------------------------

def test_busy_bounds_the_queue_deployment_wide(redis_url):
    """Guards Server.Busy: ``max_queued`` tasks queued in Redis in all, from
    whichever web process; a cancel makes room."""
    tt = task_type("counted")
    first = RedisStore(redis_url, workers=0, max_queued=3)
    second = RedisStore(redis_url, workers=0, max_queued=3)
    try:
        ids = [first.submit(tt, (0.0,)).task_id, second.submit(tt, (0.0,)).task_id,
               first.submit(tt, (0.0,)).task_id]
        for store in (first, second):
            with pytest.raises(Busy) as info:
                store.submit(tt, (0.0,))
            assert info.value.faultcode == "Server.Busy"
        assert second.cancel(tt, ids[1]).status is TaskStatus.CANCELLED
        assert second.submit(tt, (0.0,)).status is TaskStatus.QUEUED
        assert first.queue.queued() == 3
    finally:
        first.close()
        second.close()


def test_the_worker_refuses_the_thread_store_and_bad_settings():
    for env, expected in [({}, "TASKTYPES_STORE must be redis"),
                          ({"TASKTYPES_STORE": "redis", "TASKTYPES_WORKERS": "0"},
                           "TASKTYPES_WORKERS must be at least 1"),
                          ({"TASKTYPES_STORE": "redis", "TASKTYPES_WORKER_GRACE": "soon"},
                           "TASKTYPES_WORKER_GRACE"),
                          ({"TASKTYPES_STORE": "redis", "TASKTYPES_SERVICES": "nosuchmodule"},
                           "cannot load the service modules nosuchmodule")]:
        proc = subprocess.run([sys.executable, "-m", "tasktypes.cli", "worker"],
                              cwd=ROOT, env=clean_environ(env), capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert expected in proc.stderr and "Traceback" not in proc.stderr


# -- the one-winner start, consumer by consumer ---------------------------------

def test_a_task_starts_once_whoever_holds_its_entry(redis_url, submitter):
    """Two consumers holding one entry (the second took it over from the
    first, as from one that looked dead): only the first start wins; a task
    cancelled while its entry was claimed is never started."""
    tt = task_type("counted")
    first, second = (RedisStore(redis_url, workers=0) for _ in range(2))
    try:
        first.queue.ensure_group()
        task_id = submitter.submit(tt, (0.0,)).task_id
        [(claimed_id, key, entry)] = first.claim(1, 100)
        assert (claimed_id, key) == (task_id, tt.key)
        [(taken_id, _, taken_entry)] = second.autoclaim(1, 0)  # idle for 0 s
        assert (taken_id, taken_entry) == (task_id, entry)
        outcome, args = second.start_claimed(task_id, entry, 4242)
        assert outcome == "started" and args == '{"a0": 0.0}'
        assert first.start_claimed(task_id, entry, 4343) == ("gone", None)
        assert submitter.read(tt, task_id).status is TaskStatus.RUNNING
        # the winner asking again (its reply was lost, or redis-py resent the
        # script) starts it again rather than leave it running in no worker
        assert second.start_claimed(task_id, entry, 4242) == ("started", '{"a0": 0.0}')

        cancelled = submitter.submit(tt, (0.0,)).task_id
        [(claimed_id, _, entry)] = first.claim(1, 100)
        assert claimed_id == cancelled
        assert submitter.cancel(tt, cancelled).status is TaskStatus.CANCELLED
        assert first.start_claimed(cancelled, entry, 4242) == ("gone", None)
        assert submitter.read(tt, cancelled).status is TaskStatus.CANCELLED
        assert first.queue.queued() == 0
    finally:
        first.close()
        second.close()


def test_the_worker_runs_on_a_server_install(redis_url, submitter):
    """Guards cli.py's rule: ``tasktypes worker`` needs none of the client
    extra (requests, rich), made unimportable here, and runs tasks."""
    code = ("import sys; sys.modules.update(requests=None, rich=None); "
            "import tasktypes.cli as c; sys.exit(c.main(['worker', '--grace', '1']))")
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            env=clean_environ({"TASKTYPES_STORE": "redis",
                                               "TASKTYPES_REDIS_URL": redis_url,
                                               "TASKTYPES_WORKERS": "1"}))
    try:
        tt = TaskService.public_methods["countdown"].function.task_type
        task_id = submitter.submit(tt, (2, 0.01)).task_id
        assert submitter.wait(tt, task_id, 30).status is TaskStatus.DONE
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        stop_session(proc)
        log.seek(0)
        output = log.read().decode()
    assert "task types: cloneInstance, countdown" in output, output


def test_arguments_are_bounded_and_checked_again_in_the_worker(redis_url, submitter):
    """Guards what a queued task's arguments may cost Redis (a client fault
    over MAX_ARGUMENTS, nothing written, no Idempotency-Key left claimed)
    and that a worker checks what it reads back: arguments changed in Redis
    to what no client could send (countdown's steps are at most 10,000)
    fail the task instead of reaching the body."""
    from tasktypes.errors import ValidationError
    echo_type = task_type("info")
    submitter.max_arguments = 100
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    with pytest.raises(ValidationError) as caught:
        submitter.submit(echo_type, ("x" * 200,), idempotency_key="big")
    assert "over the limit of 100" in caught.value.faultstring
    assert client.keys("*") == []
    submitter.max_arguments = 1024

    countdown = TaskService.public_methods["countdown"].function.task_type
    task_id = submitter.submit(countdown, (1, 0.0)).task_id
    client.hset(KEY_PREFIX + "task:%d" % task_id, "args", '{"a0": 99999, "a1": 0.0}')
    store = RedisStore(redis_url, workers=1)
    try:
        state = store.wait(countdown, task_id, 30)
        assert state.status is TaskStatus.FAILED, state
        assert "could not be validated" in state.message
    finally:
        store.close()


def test_a_task_is_kept_for_its_accepting_process_result_ttl(redis_url):
    """Guards the per-task TTL: a task accepted by a process with a result
    TTL of 1 s is gone after it, also for a process with a TTL of an hour
    that ran it and read it finished (its cache of finished states keeps
    nothing past the task's own expiry)."""
    tt = task_type("add")
    accepting = RedisStore(redis_url, workers=0, result_ttl=1)
    running = RedisStore(redis_url, workers=1, result_ttl=3600)
    try:
        task_id = accepting.submit(tt, (2, 3)).task_id
        assert running.wait(tt, task_id, 30).status is TaskStatus.DONE
        assert running.read(tt, task_id).status is TaskStatus.DONE  # cached now
        with pytest.raises(TaskNotFound):
            wait_until(lambda: running.read(tt, task_id) and False, timeout=10, interval=0.2)
    finally:
        accepting.close()
        running.close()
