"""The worker service: ``tasktypes worker`` (also ``python -m tasktypes.worker``)
runs the tasks of a Redis-store deployment on this host, beside or instead
of the web processes, so that tasks outlive web servers (a graceful Apache
reload, a deploy, a killed web process lose nothing).

    TASKTYPES_STORE=redis TASKTYPES_REDIS_URL=redis://h:6379/0 \\
        tasktypes worker [MODULE ...] [--grace SECONDS]

It reads the same ``TASKTYPES_*`` settings as ``wsgi.py`` (``config``):
``TASKTYPES_STORE`` must be ``redis``; ``TASKTYPES_REDIS_URL``;
``TASKTYPES_WORKERS`` worker processes (at least 1); ``TASKTYPES_RESULT_TTL``;
``TASKTYPES_MAX_RESULT``; plus ``TASKTYPES_WORKER_GRACE`` (``--grace``) and
the service modules that define the task types, named on the command line
or in ``TASKTYPES_SERVICES`` (comma-separated; default ``service``, the
shipped one, imported from the current directory: run it where ``wsgi.py``
is).

It logs to stderr, the tasks' own records included (``[task N]`` in front);
its first line names its pid, workers, Redis (without password) and the task
types it runs. SIGTERM (or SIGINT): it takes no new task, gives back the
tasks it had claimed but not started (other workers take them at once), lets
the running ones finish within the grace period, then stops the rest and
fails them with a message that says so, and exits 0.

Its worker processes start before any thread of its own; see
``worker_pool`` for the start method (the fork server) and ``log_relay`` for
why the logs come over a private pipe per worker.
"""

import argparse
import importlib
import logging
import os
import signal
import sys
import threading

from .config import ConfigError, Settings
from .decorator import TASK_TYPES

logger = logging.getLogger("tasktypes.worker")

#: Exit status of a usage or settings error.
EXIT_USAGE = 2

GRACE_MESSAGE = ("the worker service stopped: the task did not end within its "
                 "%g s grace period")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tasktypes worker",
        description="Run the tasks of a Redis-store deployment on this host.")
    parser.add_argument("modules", metavar="MODULE", nargs="*",
                        help="service modules defining the task types (default: "
                             "TASKTYPES_SERVICES, or 'service')")
    parser.add_argument("--grace", type=float, metavar="SECONDS",
                        help="seconds running tasks get to finish after SIGTERM "
                             "(default: TASKTYPES_WORKER_GRACE, or 60)")
    return parser


def load(modules):
    """Import the service modules (from the current directory first); their
    ``@task_rpc`` methods register the task types. Returns the names of the
    task types."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    for name in modules:
        importlib.import_module(name)
    return sorted(task_type.name for task_type in TASK_TYPES.values())


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_environ()
    except ConfigError as exc:
        print("tasktypes worker: bad setting: %s" % exc, file=sys.stderr)
        return EXIT_USAGE
    if settings.store != "redis":
        print("tasktypes worker: TASKTYPES_STORE must be redis (it is %s): the worker "
              "service takes its tasks from the Redis queue; the thread store runs "
              "tasks in the web process" % settings.store, file=sys.stderr)
        return EXIT_USAGE
    if settings.workers < 1:
        print("tasktypes worker: TASKTYPES_WORKERS must be at least 1 here",
              file=sys.stderr)
        return EXIT_USAGE
    grace = settings.worker_grace if args.grace is None else args.grace
    if not 0 <= grace < float("inf"):
        print("tasktypes worker: --grace must be a number of seconds, 0 or more",
              file=sys.stderr)
        return EXIT_USAGE
    modules = args.modules or list(settings.services)
    try:
        names = load(modules)
    except ImportError as exc:
        print("tasktypes worker: cannot load the service modules %s: %s (run it in "
              "the directory of wsgi.py, or name the modules)" % (", ".join(modules), exc),
              file=sys.stderr)
        return EXIT_USAGE

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logger.info("tasktypes worker: pid %d, %d workers, Redis %s, modules %s, "
                "task types: %s", os.getpid(), settings.workers,
                settings.shown_redis_url(), ", ".join(modules), ", ".join(names) or "none")

    stop = threading.Event()

    def stopping(signum, frame):
        stop.set()
    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)

    store = settings.make_store(serve=False)
    store.runner.prestart()  # the worker processes before any thread of ours
    store.serve()
    logger.info("taking tasks from the queue (grace on SIGTERM: %g s)", grace)
    while not stop.wait(0.5):
        pass
    running = store.runner.running()
    logger.info("stopping: no new tasks; %d running get %g s to finish",
                len(running), grace)
    store.drain(grace, GRACE_MESSAGE % grace)
    logger.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
