"""What the dev server costs per request: waitress (``tasktypes/devserver.py``)
against cheroot, the server it replaced.

    pip install -e ".[bench]"          # cheroot
    python -m bench.servers_compare    # about a minute
    python -m bench.servers_compare --seconds 2 --clients 8

For a do-nothing WSGI application and for the shipped service's JSON-RPC
``echo``, each over a new connection per request and over keep-alive
connections, ``--clients`` client threads in this process send requests for
``--seconds``; the server's CPU time (utime + stime of its process, from
/proc) divided by the requests answered is its cost per request. The server
runs pinned to one CPU and the clients to another, so that they do not take
each other's time; on a one-CPU machine nothing is pinned and the figures
say so. Both servers run the same way: 32 threads, in a child process
started by this module (``--serve``).
"""

import argparse
import http.client
import importlib.util
import json
import os
import signal
import sys
import threading
import time

from bench.procstat import cpu_seconds
from bench.servers import ROOT
from tasktypes.testing import ServerError, ServerProcess

SERVERS = ("cheroot", "waitress")
APPS = ("noop", "echo")
MODES = ("new connection", "keep-alive")
THREADS = 32
ECHO_BODY = json.dumps({"jsonrpc": "2.0", "method": "echo", "params": ["x"],
                        "id": 1}).encode()


def noop_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


# -- the server side: python -m bench.servers_compare --serve KIND --app APP

def serve(kind, app_name, port, cpu):
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})  # before any thread starts: all inherit it
    if app_name == "echo":
        sys.path.insert(0, ROOT)
        from wsgi import application
    else:
        application = noop_app
    if kind == "cheroot":
        from cheroot.wsgi import Server
        # As tasktypes/devserver.py configured it before waitress.
        server = Server(("127.0.0.1", port), application, numthreads=THREADS,
                        server_name="tasktypes")
        server.max_request_body_size = 0
        server.shutdown_timeout = 1
        server.keep_alive_conn_limit = 1024
        server.request_queue_size = 128
        signal.signal(signal.SIGTERM, _exit)
        server.safe_start()  # stops on SystemExit
    else:
        from tasktypes.devserver import make_server
        server = make_server(application, "127.0.0.1", port, THREADS)
        signal.signal(signal.SIGTERM, _exit)
        server.run()  # stops on SystemExit


def _exit(signum, frame):
    raise SystemExit(0)


# -- the client side

def request_once(conn, app_name):
    if app_name == "echo":
        conn.request("POST", "/jsonrpc", ECHO_BODY, {"Content-Type": "application/json"})
    else:
        conn.request("GET", "/")
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError("HTTP %d" % response.status)


def load(port, app_name, mode, clients, seconds):
    """Requests answered by ``clients`` threads in ``seconds``."""
    counts = [0] * clients
    stop = time.monotonic() + seconds
    errors = []

    def client(n):
        conn = None
        try:
            while time.monotonic() < stop:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                request_once(conn, app_name)
                counts[n] += 1
                if mode == "new connection":
                    conn.close()
                    conn = None
        except Exception as exc:  # reported below, with the figures
            errors.append(repr(exc))
        finally:
            if conn is not None:
                conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError("%d client errors, first: %s" % (len(errors), errors[0]))
    return sum(counts)


def measure(kind, app_name, server_cpu, clients, seconds):
    """{mode: (requests per second, server CPU µs per request)}"""
    argv = [sys.executable, "-m", "bench.servers_compare", "--serve", kind,
            "--app", app_name, "--port", "@PORT@"]
    if server_cpu is not None:
        argv += ["--cpu", str(server_cpu)]
    results = {}
    with ServerProcess("%s/%s" % (kind, app_name), argv, {"PYTHONUNBUFFERED": "1"},
                       cwd=ROOT, start_timeout=60) as server:
        load(server.port, app_name, "keep-alive", clients, 0.5)  # warm up
        for mode in MODES:
            before = cpu_seconds(server.pid)
            started = time.monotonic()
            count = load(server.port, app_name, mode, clients, seconds)
            elapsed = time.monotonic() - started
            used = cpu_seconds(server.pid) - before
            results[mode] = (count / elapsed, used / count * 1e6)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="load per server, application and mode (default 5)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    parser.add_argument("--app", choices=APPS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args.serve, args.app, args.port, args.cpu)

    if importlib.util.find_spec("cheroot") is None:
        sys.exit("cheroot is not installed: pip install -e \".[bench]\"")
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu = client_cpus = None
    if len(cpus) >= 2:
        server_cpu, client_cpus = cpus[0], set(cpus[1:2])
        os.sched_setaffinity(0, client_cpus)  # the client threads inherit it
        where = "server on CPU %d, clients on CPU %d" % (server_cpu, cpus[1])
    else:
        where = "one CPU: server and clients share it"
    print("dev server cost per request, %d client threads, %g s each; %s; "
          "load average %s" % (args.clients, args.seconds, where,
                               " ".join("%.2f" % v for v in os.getloadavg())))
    figures = {}
    try:
        for app_name in APPS:
            for kind in SERVERS:
                figures[kind, app_name] = measure(kind, app_name, server_cpu,
                                                  args.clients, args.seconds)
    except (ServerError, RuntimeError) as exc:
        sys.exit("servers_compare: %s" % exc)
    finally:
        os.sched_setaffinity(0, cpus)

    print("%-6s %-15s %-9s %10s %14s" % ("app", "connections", "server", "requests/s",
                                         "server CPU/req"))
    for app_name in APPS:
        for mode in MODES:
            for kind in SERVERS:
                rate, cost = figures[kind, app_name][mode]
                print("%-6s %-15s %-9s %10.0f %11.0f µs" % (app_name, mode, kind, rate, cost))
            ratio = figures["waitress", app_name][mode][1] / figures["cheroot", app_name][mode][1]
            print("%-6s %-15s waitress/cheroot CPU per request: %.2f" % (app_name, mode, ratio))
    print("load average after: %s" % " ".join("%.2f" % v for v in os.getloadavg()))


if __name__ == "__main__":
    main()
