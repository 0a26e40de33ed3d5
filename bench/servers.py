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


#: Seconds each server may take to start (``under`` a tool: ``UNDER_TIMEOUT``).
START_TIMEOUT = {"tasktypes": 180, "noop": 60, "ladon": 60}
UNDER_TIMEOUT = 600


def tasktypes_server(store, redis_url=None, workers=None, fill=0, under=()):
    """``python wsgi.py``: the shipped service under the dev server; with
    ``fill``, ``bench/serve.py``, which first fills the thread store with
    that many finished tasks. ``under``: a command that runs the server
    (``bench/instructions.py``'s valgrind)."""
    if fill:
        argv = [sys.executable, "-m", "bench.serve", "--port", "@PORT@",
                "--fill", str(fill)]
    else:
        argv = [sys.executable, os.path.join(ROOT, "wsgi.py"), "--port", "@PORT@"]
    return _server("tasktypes/%s" % store, "tasktypes", argv,
                   tasktypes_env(store, redis_url, workers), under)


def noop_server(under=()):
    """A do-nothing WSGI application behind the same dev server: the floor."""
    return _server("noop", "noop", [sys.executable, HTTPD, "--app", "noop", "--port", "@PORT@"],
                   {"PYTHONUNBUFFERED": "1"}, under)


def ladon_server(under=()):
    """Ladon 1.0.7's service behind the same dev server, in its own venv."""
    return _server("ladon", "ladon", [venvs.python(venvs.LADON_VENV), HTTPD, "--app", "ladon",
                                      "--port", "@PORT@"], {"PYTHONUNBUFFERED": "1"}, under)


def _server(name, kind, argv, env, under):
    if under:  # the same dict and set probing every run: counts that repeat
        env = dict(env, PYTHONHASHSEED="0")
    return ServerProcess(name, [*under, *argv], env, cwd=ROOT,
                         start_timeout=UNDER_TIMEOUT if under else START_TIMEOUT[kind])


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
