"""Part ``queue``: tasks per second through the Redis queue, tasktypes'
worker service against RQ, side by side on the same private Redis.

tasktypes: one submit-only web process (``TASKTYPES_WORKERS=0``) and 1 or 2
worker services (``tasktypes worker service.task_service``, each with
``TASKTYPES_WORKERS=1``: one worker process each); 8 client threads submit
1,000 ``countdown(0, 0)`` between them over JSON-RPC, then each waits for
each of its tasks (``countdown_wait``); the figure is the time from the
first submission to the last task seen done.

RQ: as many ``rq worker`` processes on a queue of the same Redis, twice:
RQ's default worker (``rq``), which forks a work horse per job, and
``rq.SimpleWorker`` (``rq-simple``), which runs each job in the worker
process itself, as tasktypes' worker processes do; 8 client threads
enqueue 1,000 empty jobs (``bench/rq_jobs.py``) and wait for each result
(``bench/rq_load.py``, in ``bench/.rq-venv``). RQ has no web tier: its
clients write to Redis themselves, where tasktypes' go through HTTP.

Also the empty task's submit -> result time through each, one client:
tasktypes ``countdown`` + ``countdown_wait`` + ``countdown_result``, RQ
``enqueue`` + ``Job.latest_result`` (a blocking read of its result stream).
"""

import importlib.util
import json
import subprocess
import threading
import time

from bench import empty, servers, venvs
from bench.client import Client, task_id_of

WORKER_COUNTS = (1, 2)
CLIENTS = 8
#: RQ's side: name -> worker class (None: RQ's default worker)
RQ_WORKERS = {"rq": None, "rq-simple": "rq.SimpleWorker"}


def tasktypes_throughput(url, tasks, clients):
    shares = [tasks // clients + (1 if n < tasks % clients else 0) for n in range(clients)]
    failures = []
    ready = threading.Barrier(clients + 1)

    def client(share):
        try:
            connection = Client(url, "jsonrpc")
            submit = connection.request("countdown", 0, 0.0)
            connection.parse(connection.send(connection.request("echo", "x")))
        finally:
            ready.wait()
        try:
            ids = [task_id_of(connection.parse(connection.send(submit)))
                   for _ in range(share)]
            for task_id in ids:
                deadline = time.monotonic() + 120
                while connection.call("countdown_wait", task_id, 10.0)["status"] != "done":
                    if time.monotonic() > deadline:
                        raise RuntimeError("task %s not done in 120 s" % task_id)
            connection.close()
        except Exception as exc:  # reported with the figures
            failures.append("%s: %s" % (type(exc).__name__, exc))

    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.monotonic()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started
    if failures:
        raise RuntimeError("%d clients failed, first: %s" % (len(failures), failures[0]))
    return {"tasks": tasks, "clients": clients, "seconds": seconds}


def rq_load(redis_url, *args):
    done = subprocess.run([venvs.python(venvs.RQ_VENV), servers.BENCH + "/rq_load.py",
                           "--url", redis_url] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError("rq_load failed: %s" % done.stderr.strip()[-2000:])
    return json.loads(done.stdout.splitlines()[-1])


def rates(figures):
    figures["tasks_per_s"] = round(figures["tasks"] / figures["seconds"], 1)
    figures["seconds"] = round(figures["seconds"], 3)
    return figures


def run_tasktypes(sizes, redis_server, entry, log):
    for count in WORKER_COUNTS:
        redis_server.flush()
        log("queue: tasktypes, %d worker service(s), %d tasks" % (count, sizes["queue_tasks"]))
        web = servers.tasktypes_server("redis", redis_server.url, workers=0)
        workers = []
        try:
            for _ in range(count):
                workers.append(servers.worker_service(redis_server.url, 1))
            figures = rates(tasktypes_throughput(web.url, sizes["queue_tasks"], CLIENTS))
            entry.setdefault(str(count), {})["tasktypes"] = figures
            if count == 1:
                log("queue: tasktypes, empty task submit -> result")
                entry["latency"]["tasktypes"] = empty.measure(
                    web.url, "jsonrpc", sizes["queue_latency"], "wait")
        finally:
            for worker in workers:
                worker.stop()
            web.stop()


def run_rq(sizes, redis_server, entry, log):
    for side, worker_class in RQ_WORKERS.items():
        for count in WORKER_COUNTS:
            redis_server.flush()
            log("queue: %s, %d worker(s), %d tasks" % (side, count, sizes["queue_tasks"]))
            workers = []
            try:
                for n in range(count):
                    workers.append(servers.rq_worker(redis_server.url, "bench-%d" % n,
                                                     worker_class))
                figures = rates(rq_load(redis_server.url, "--tasks", sizes["queue_tasks"],
                                        "--clients", CLIENTS))
                if figures.pop("failed"):
                    raise RuntimeError("RQ jobs without a result")
                entry.setdefault(str(count), {})[side] = figures
                if count == 1:
                    log("queue: %s, empty job enqueue -> result" % side)
                    entry["latency"][side] = rq_load(redis_server.url, "--latency",
                                                     sizes["queue_latency"])
            finally:
                for worker in workers:
                    worker.stop()


def worker_service_missing():
    if importlib.util.find_spec("tasktypes.worker") is None:
        return "tasktypes has no worker service (tasktypes.worker) in this tree"
    return None


def run(sizes, redis_server, results, log, with_rq=True):
    """Fill ``results["queue"]``: {"1": {"tasktypes": .., "rq": ..}, "2": ..,
    "latency": {"tasktypes": .., "rq": ..}}."""
    entry = results["queue"]
    entry["latency"] = {}
    sides = [("tasktypes worker service", worker_service_missing, run_tasktypes)]
    if with_rq:
        sides.append(("rq", lambda: venvs.ensure_rq(log), run_rq))
    for name, missing, part in sides:
        reason = missing()
        if reason:
            results["unavailable"][name] = reason
            log("queue: %s unavailable: %s" % (name, reason))
            continue
        try:
            part(sizes, redis_server, entry, log)
        except (RuntimeError, servers.ServerError) as exc:
            results["unavailable"][name + " (failed)"] = str(exc)
            log("queue: %s FAILED: %s" % (name, exc))
    for count in WORKER_COUNTS:
        figures = entry.get(str(count), {})
        for side in RQ_WORKERS:
            if "tasktypes" in figures and side in figures:
                figures["x_" + side] = round(figures["tasktypes"]["tasks_per_s"]
                                             / figures[side]["tasks_per_s"], 2)
