"""``python -m bench.inprocess``: CPU per JSON-RPC call inside the application,
no HTTP server: what tasktypes itself adds to each request.

For each call it reports microseconds of process CPU, with the control
methods answered directly (``tasktypes.direct``, as served) and through
spyne's pipeline (the same application without direct methods), and each
against a plain ``echo`` in the same run. The store is the thread store, the
task a finished ``countdown`` (its answers no longer change).

    python -m bench.inprocess [--calls 5000]
"""

import argparse
import io
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from service import services  # noqa: E402
from tasktypes import ThreadStore, make_application  # noqa: E402
from tasktypes.jsonrpc import JsonRpcApplication  # noqa: E402


def caller(app):
    def call(body):
        environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/json",
                   "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
                   "PATH_INFO": "/jsonrpc", "SERVER_NAME": "x", "SERVER_PORT": "1",
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    store = ThreadStore()
    direct = make_application(services, store=store).mounts["/jsonrpc"]
    through_spyne = JsonRpcApplication(direct.app, system_methods=direct.system_methods)
    direct_call, spyne_call = caller(direct), caller(through_spyne)

    def body(method, *params):
        return json.dumps({"jsonrpc": "2.0", "method": method, "params": list(params),
                           "id": 1}).encode()
    task_id = json.loads(direct_call(body("countdown", 0, 0)))["result"]["task_id"]
    while json.loads(direct_call(body("countdown_progress", task_id)))["result"]["status"] \
            != "done":
        time.sleep(0.01)
    echo = cpu_per_call(direct_call, body("echo", "x"), args.calls)
    print("CPU per call in the application, thread store, %d calls each" % args.calls)
    print("%-22s %9s %9s %9s" % ("call", "direct", "spyne", "direct/echo"))
    print("%-22s %8.1fus %9s %9s" % ("echo (baseline)", echo, "", "1.00"))
    for method, params in (("countdown_progress", [task_id]), ("countdown_result", [task_id]),
                           ("countdown_wait", [task_id, 0])):
        request = body(method, *params)
        fast, slow = cpu_per_call(direct_call, request, args.calls), \
            cpu_per_call(spyne_call, request, args.calls)
        print("%-22s %8.1fus %8.1fus %9.2f" % (method, fast, slow, fast / echo))
    store.close()


if __name__ == "__main__":
    main()
