"""The benchmark's Ladon 1.0.7 service: ``echo`` and a task-type
``countdown``, the same methods as ``service/task_service.py``, served by
cheroot like ``python wsgi.py``.

Runs in the benchmark's own virtual environment (``bench/.ladon-venv``, made by
``bench.ladon``), never in the tasktypes one:

    bench/.ladon-venv/bin/python bench/ladon_service.py --port 8001

JSON-RPC 1.0 is then at ``/LadonTaskService/jsonrpc10`` (positional params,
``id`` required) and SOAP at ``/LadonTaskService/soap11``. Ladon keeps tasks
in this process's memory and runs each in a new thread (its default
task-type mode: no ``redis_server``/``memcache_server``).
"""

import argparse
import inspect
import os
import sys
import time
from collections import namedtuple

# Ladon 1.0.7 calls inspect.getargspec, removed in Python 3.11: put it back
# before anything of Ladon runs.
if not hasattr(inspect, "getargspec"):
    ArgSpec = namedtuple("ArgSpec", "args varargs keywords defaults")

    def getargspec(function):
        spec = inspect.getfullargspec(function)
        return ArgSpec(spec.args, spec.varargs, spec.varkw, spec.defaults)

    inspect.getargspec = getargspec

from ladon.ladonizer import ladonize  # noqa: E402
from ladon.compat import PORTABLE_STRING  # noqa: E402


class LadonTaskService(object):
    """echo and countdown, as tasktypes' shipped service has them."""

    @ladonize(PORTABLE_STRING, rtype=PORTABLE_STRING)
    def echo(self, text):
        return text

    @ladonize(int, float, rtype=int, tasktype=True)
    def countdown(self, steps, delay, **kw):
        update_progress = kw["update_progress"]
        for i in range(steps):
            time.sleep(delay)
            update_progress(float(i + 1) / steps)
        return steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--threads", type=int, default=32)
    args = parser.parse_args()

    # Ladon imports its services by module name: let it find this one, as
    # run, instead of registering the same classes a second time.
    sys.modules.setdefault("ladon_service", sys.modules[__name__])
    here = os.path.dirname(os.path.abspath(__file__))
    from ladon.server.wsgi_application import LadonWSGIApplication
    from cheroot.wsgi import Server

    application = LadonWSGIApplication(["ladon_service"], [here])
    server = Server((args.host, args.port), application, numthreads=args.threads,
                    server_name="ladon")
    server.shutdown_timeout = 1
    import signal

    def stop(signum, frame):
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, stop)
    print("ladon serving on http://%s:%d/LadonTaskService/jsonrpc10" % (
        args.host, args.port), flush=True)
    server.safe_start()


if __name__ == "__main__":
    main()
