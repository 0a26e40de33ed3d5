"""The benchmark's Ladon 1.0.7 service: ``echo`` and a task-type
``countdown``, the same methods as ``service/task_service.py``.

Runs in the benchmark's own virtual environment (``bench/.ladon-venv``, made
by ``bench/venvs.py``), never in the tasktypes one, behind the same dev server
as tasktypes (``bench/httpd.py``):

    bench/.ladon-venv/bin/python bench/httpd.py --app ladon --port 8001

JSON-RPC 1.0 is then at ``/LadonTaskService/jsonrpc10`` (positional params,
``id`` required) and SOAP 1.1 (rpc/encoded) at ``/LadonTaskService/soap11``,
its WSDL at ``/LadonTaskService/soap11/description``. Ladon keeps tasks in
this process's memory and runs each in a new thread (its default task-type
mode: no ``redis_server``/``memcache_server``).
"""

import inspect
import os
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


def application():
    """Ladon's WSGI application serving this module's service."""
    from ladon.server.wsgi_application import LadonWSGIApplication

    return LadonWSGIApplication([__name__], [os.path.dirname(os.path.abspath(__file__))])
