"""``python -m bench.inprocess``: CPU per call inside the application, no HTTP
server: what tasktypes itself adds to each request, over JSON-RPC and SOAP.

For each call it reports microseconds of process CPU, with the submits and
control methods answered directly (``tasktypes.direct`` and ``tasktypes.direct_soap``,
as served) and through spyne's pipeline (the same spyne applications without
direct answers), and each against a plain ``echo`` in the same run. The task
is a finished ``countdown`` (its answers no longer change), and, for
``progress (running)``, one that is still running; a submission of an
empty ``countdown`` counts its task's run where this process runs it (the
thread store). ``--store redis`` starts a private redis-server (the CPU of
Redis itself, and of the Redis store's worker processes, is not counted:
only this process's).

    python -m bench.inprocess [--calls 5000] [--store thread|redis]
"""

import argparse
import io
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from service import services  # noqa: E402
from tasktypes import ThreadStore, make_application  # noqa: E402
from tasktypes.defaults import COUNT_WINDOW  # noqa: E402
from tasktypes.jsonrpc import JsonRpcApplication  # noqa: E402
from tasktypes.soap import SoapApplication  # noqa: E402

SOAP_ENVELOPE = (
    '<?xml version="1.0" encoding="utf-8"?>\n<soap-env:Envelope xmlns:soap-env='
    '"http://schemas.xmlsoap.org/soap/envelope/"><soap-env:Body><ns0:%s xmlns:ns0='
    '"tasktypes">%s</ns0:%s></soap-env:Body></soap-env:Envelope>')


def caller(app, path, content_type):
    def call(body):
        environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": content_type,
                   "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
                   "PATH_INFO": path, "SERVER_NAME": "x", "SERVER_PORT": "1",
                   "wsgi.url_scheme": "http", "QUERY_STRING": ""}
        return b"".join(app(environ, lambda *a: None))
    return call


def cpu_per_call(call, body, calls):
    for _ in range(calls // 10):
        call(body)
    started = time.process_time()
    for _ in range(calls):
        call(body)
    return (time.process_time() - started) / calls * 1e6


def cpu_per_submit(call, body, calls, store):
    """CPU per submission of an empty ``countdown``, its task's own run
    included where the store runs it in this process (the thread store): in
    rounds of at most ``COUNT_WINDOW`` submissions (fewer than the queue's
    bound, so none is refused as Busy, which would be a cheap call), each
    waited out until no task of the window is queued or running."""
    size = min(calls, COUNT_WINDOW)
    rounds = max(1, calls // size)
    used = 0.0
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(size):
            reply = call(body)
        while True:
            counts = store.count_statuses("countdown")
            if not counts.get("queued") and not counts.get("running"):
                break
            time.sleep(0.02)
        used += time.process_time() - started
        if re.search(rb"[Ff]ault|error", reply):
            raise SystemExit("a submission was refused: %r" % reply)
    return used / (rounds * size) * 1e6


def jsonrpc_body(method, **params):
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": params,
                       "id": 1}).encode()


def soap_body(method, **params):
    # as zeep writes it: elements qualified by the service's namespace
    inner = "".join("<ns0:%s>%s</ns0:%s>" % (k, v, k) for k, v in params.items())
    return (SOAP_ENVELOPE % (method, inner, method)).encode()


def open_store(kind):
    """(store, cleanup) of the kind asked for."""
    if kind == "thread":
        store = ThreadStore()
        return store, store.close
    from tasktypes.redis_store import RedisStore
    from tasktypes.testing import RedisServer
    server = RedisServer()
    server.start()
    store = RedisStore(server.url)

    def cleanup():
        store.close()
        server.stop()
    return store, cleanup


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--store", choices=("thread", "redis"), default="thread")
    args = parser.parse_args()
    store, cleanup = open_store(args.store)
    try:
        run(store, args)
    finally:
        cleanup()


def run(store, args):
    application = make_application(services, store=store)
    jsonrpc = application.mounts["/jsonrpc"]
    soap = application.mounts["/soap"]
    protocols = {
        "JSON-RPC": (caller(jsonrpc, "/jsonrpc", "application/json"),
                     caller(JsonRpcApplication(jsonrpc.app,
                                               system_methods=jsonrpc.system_methods),
                            "/jsonrpc", "application/json"),
                     jsonrpc_body),
        "SOAP": (caller(soap, "/soap", "text/xml; charset=utf-8"),
                 caller(SoapApplication(soap.app), "/soap", "text/xml; charset=utf-8"),
                 soap_body),
    }
    direct_call = protocols["JSON-RPC"][0]

    def submit(steps, delay):
        reply = direct_call(jsonrpc_body("countdown", steps=steps, delay=delay))
        return json.loads(reply)["result"]["task_id"]

    def status(task_id):
        reply = direct_call(jsonrpc_body("countdown_progress", task_id=task_id))
        return json.loads(reply)["result"]["status"]

    done = submit(0, 0)
    running = submit(1000, 10)
    deadline = time.monotonic() + 30
    while (status(done), status(running)) != ("done", "running"):
        if time.monotonic() > deadline:
            raise SystemExit("the tasks did not start (store %s)" % args.store)
        time.sleep(0.01)
    print("CPU per call in the application, %s store, %d calls each"
          % (args.store, args.calls))
    print("%-9s %-28s %9s %9s %11s" % ("protocol", "call", "direct", "spyne",
                                        "direct/echo"))
    echoes = {}
    for protocol, (fast_call, slow_call, body) in protocols.items():
        echo = cpu_per_call(fast_call, body("echo", text="x"), args.calls)
        print("%-9s %-28s %8.1fus %9s %11s" % (protocol, "echo (baseline)", echo, "", "1.00"))
        for label, method, params in (
                ("countdown_progress", "countdown_progress", {"task_id": done}),
                ("countdown_progress (running)", "countdown_progress",
                 {"task_id": running}),
                ("countdown_result", "countdown_result", {"task_id": done}),
                ("countdown_wait (timeout 0)", "countdown_wait",
                 {"task_id": done, "timeout": 0})):
            request = body(method, **params)
            assert not re.search(rb"[Ff]ault|error", fast_call(request)), fast_call(request)
            fast = cpu_per_call(fast_call, request, args.calls)
            slow = cpu_per_call(slow_call, request, args.calls)
            print("%-9s %-28s %8.1fus %8.1fus %11.2f" % (protocol, label, fast, slow,
                                                          fast / echo))
        echoes[protocol] = echo
    direct_call(jsonrpc_body("countdown_cancel", task_id=running))
    # after the cancel: a submission's round waits until no countdown runs
    for protocol, (fast_call, slow_call, body) in protocols.items():
        request = body("countdown", steps=0, delay=0)
        fast = cpu_per_submit(fast_call, request, args.calls, store)
        slow = cpu_per_submit(slow_call, request, args.calls, store)
        print("%-9s %-28s %8.1fus %8.1fus %11.2f" % (protocol, "countdown(0, 0) submit",
                                                      fast, slow, fast / echoes[protocol]))


if __name__ == "__main__":
    main()
