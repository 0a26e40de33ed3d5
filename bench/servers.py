"""The processes a benchmark run starts and stops itself: a private Redis;
tasktypes' shipped ``wsgi.py``; Ladon's service and a do-nothing application
behind the same dev server (``bench/httpd.py``); tasktypes worker services
and RQ workers.

    with RedisServer() as redis_server:
        with tasktypes_server("redis", redis_server.url) as server:
            server.url, server.pid          # pid: its session, for /proc

Each is a child in a session of its own that the run ends by its pid
(``tasktypes.testing``), so that nothing outlives the run.
"""

import os
import sys

from bench import venvs
from tasktypes import testing
from tasktypes.testing import ServerError, ServerProcess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
HTTPD = os.path.join(BENCH, "httpd.py")


def tasktypes_env(store, redis_url=None, workers=None):
    env = {"TASKTYPES_STORE": store, "PYTHONUNBUFFERED": "1"}
    if redis_url:
        env["TASKTYPES_REDIS_URL"] = redis_url
    if workers is not None:
        env["TASKTYPES_WORKERS"] = str(workers)
    return env


def tasktypes_server(store, redis_url=None, workers=None, fill=0):
    """``python wsgi.py``: the shipped service under the dev server; with
    ``fill``, ``bench/serve.py``, which first fills the thread store with
    that many finished tasks."""
    if fill:
        argv = [sys.executable, "-m", "bench.serve", "--port", "@PORT@",
                "--fill", str(fill)]
    else:
        argv = [sys.executable, os.path.join(ROOT, "wsgi.py"), "--port", "@PORT@"]
    return ServerProcess("tasktypes/%s" % store, argv,
                         tasktypes_env(store, redis_url, workers), cwd=ROOT,
                         start_timeout=180)


def noop_server():
    """A do-nothing WSGI application behind the same dev server: the floor."""
    return ServerProcess("noop", [sys.executable, HTTPD, "--app", "noop", "--port",
                                  "@PORT@"], {"PYTHONUNBUFFERED": "1"}, cwd=ROOT)


def ladon_server():
    """Ladon 1.0.7's service behind the same dev server, in its own venv."""
    return ServerProcess("ladon", [venvs.python(venvs.LADON_VENV), HTTPD, "--app", "ladon",
                                   "--port", "@PORT@"], {"PYTHONUNBUFFERED": "1"},
                         cwd=ROOT, start_timeout=60)


def service(name, argv, env, ready, cwd=ROOT, start_timeout=60):
    """A child process that listens on no port (a worker service, an RQ
    worker): started once its log shows ``ready``; ``stop()`` ends its
    whole session."""
    return testing.ChildProcess(name, argv, env, cwd=cwd, start_timeout=start_timeout,
                                ready=lambda log: ready in log)


def worker_service(redis_url, workers):
    """``tasktypes worker service.task_service``: ``workers`` processes
    taking tasks from the Redis queue."""
    env = tasktypes_env("redis", redis_url, workers)
    return service("tasktypes worker", [sys.executable, "-m", "tasktypes.worker",
                                        "service.task_service"], env, ready=WORKER_READY)


#: What the worker service logs once its processes take tasks.
WORKER_READY = "taking tasks from the queue"


def rq_worker(redis_url, name, worker_class=None):
    """One ``rq worker`` on the queue ``bench``, importing
    ``bench/rq_jobs.py``: RQ's default worker (a work horse forked per job),
    or ``worker_class`` ("rq.SimpleWorker": each job in the worker itself)."""
    argv = [venvs.python(venvs.RQ_VENV), "-m", "rq.cli", "worker", "--url", redis_url,
            "--name", name]
    if worker_class:
        argv += ["--worker-class", worker_class]
    return service("rq worker", argv + ["bench"],
                   {"PYTHONUNBUFFERED": "1", "PYTHONPATH": BENCH}, ready="Listening on",
                   cwd=BENCH)


class RedisServer(testing.RedisServer):
    """tasktypes.testing's private Redis, failing as the other servers here do."""

    def __enter__(self):
        try:
            self.start()
        except RuntimeError as exc:
            self.close()
            raise ServerError(str(exc)) from None
        return self
