"""Part ``polls``: what a call costs the server, in CPU, under load.

Servers, each in its own process behind the same dev server (waitress via
``tasktypes.devserver``, same threads, same settings), same Python:

- ``noop``: a do-nothing WSGI application, the floor;
- ``tasktypes/thread`` and ``tasktypes/redis``: the shipped ``wsgi.py``
  (the Redis store on a private redis-server);
- ``ladon``: Ladon 1.0.7's service (``bench/ladon_service.py``), in
  ``bench/.ladon-venv``.

Calls: ``echo`` (a plain call), ``submit`` (``countdown(0, 0)``) and
``progress`` (a progress poll of a finished task), over JSON-RPC and SOAP;
Ladon's ``echo`` and ``progress`` over its JSON-RPC 1.0 and SOAP 1.1
(rpc/encoded) endpoints. Each at 1 and 8 client threads, for the same
time, in rounds that visit every point in turn so that the machine's
noise hits all alike; a point's figures are those of its median round
(by server CPU per call), so that one round disturbed by something else on
the machine does not count.

A submission's server CPU is what the server spent during its window,
running the empty tasks that it started meanwhile included (the thread
store runs them in the server process, the Redis store in its worker
processes); after a submission point the run waits until the server is
idle again, so that no task runs into the next point.

Per point: calls per server CPU-second, the server's CPU read from /proc
(utime + stime of its process and of its worker processes, the Redis
server's apart; the web process's utime and stime apart too: its own code
and the kernel's work for it), the server pinned to one CPU and this
client process to the other, and the client's CPU beside it.
"""

import os

from bench import servers, venvs
from bench.client import Client, finished_task
from bench.load import run_load
from bench.procstat import (cpu_seconds, pin, session_cpu_seconds, split_cpus, system_seconds,
                            user_seconds, wait_idle)
from bench.stats import ratio

CLIENTS = (1, 8)
#: server -> protocols -> calls
PLAN = {
    "noop": {"noop": ("noop",)},
    "tasktypes/thread": {"jsonrpc": ("echo", "submit", "progress"),
                         "soap": ("echo", "submit", "progress")},
    "tasktypes/redis": {"jsonrpc": ("echo", "submit", "progress"),
                        "soap": ("echo", "submit", "progress")},
    "ladon": {"ladon": ("echo", "progress"), "ladon-soap": ("echo", "progress")},
}
#: Our protocol -> Ladon's protocol it is compared with.
LADON_PEER = {"jsonrpc": "ladon", "soap": "ladon-soap"}


def start(name, redis_server):
    if name == "noop":
        return servers.noop_server()
    if name == "ladon":
        return servers.ladon_server()
    store = name.partition("/")[2]
    return servers.tasktypes_server(store, redis_server.url if store == "redis" else None)


def requests_for(server, protocol, calls):
    """{call: request bytes}; the progress poll is of a finished task, and
    each request is sent once here, its answer checked (no fault)."""
    client = Client(server.url, protocol)
    made = {}
    for call in calls:
        if call == "noop":
            made[call] = client.request("noop")
        elif call == "echo":
            made[call] = client.request("echo", "x")
        elif call == "submit":
            made[call] = client.request("countdown", 0, 0.0)
        else:
            made[call] = client.request("countdown_progress", finished_task(client))
        answer = client.parse(client.send(made[call]))  # CallError on a fault
        if call == "progress" and float(answer["progress"]) != 1.0:
            raise RuntimeError("%s progress poll answered %r" % (protocol, answer))
    client.close()
    return made


def run(sizes, redis_server, results, log, with_ladon=True):
    """Fill ``results["polls"]``: {server: {protocol: {call: {clients: figures}}}}."""
    entry = results["polls"]
    server_cpu, client_cpu = split_cpus()
    results["settings"]["pinning"] = (
        "server on CPU %d, client on CPU %d" % (server_cpu, client_cpu)
        if server_cpu is not None else "one CPU: nothing pinned")
    names = [n for n in PLAN if n != "ladon" or with_ladon]
    if "ladon" in names:
        reason = venvs.ensure_ladon(log)
        if reason:
            results["unavailable"]["ladon"] = reason
            log("ladon: unavailable: %s" % reason)
            names.remove("ladon")
    own_affinity = os.sched_getaffinity(0)
    started = {}
    try:
        redis_server.flush()
        pin([redis_server.pid], server_cpu)
        for name in names:
            log("polls: starting %s" % name)
            try:
                started[name] = start(name, redis_server)
            except servers.ServerError as exc:
                results["unavailable"][name] = str(exc)
                log("%s: unavailable: %s" % (name, exc))
        if client_cpu is not None:
            os.sched_setaffinity(0, {client_cpu})
        points = []
        for name, server in started.items():
            pin(server.processes(), server_cpu)
            for protocol, calls in PLAN[name].items():
                made = requests_for(server, protocol, calls)
                for call in calls:
                    for clients in CLIENTS:
                        points.append((name, protocol, call, clients, made[call]))
        by_point = {}
        rounds = sizes["polls_rounds"]
        seconds = sizes["polls_seconds"] / rounds
        for round_ in range(rounds):
            log("polls: round %d of %d, %d points of %.2f s" % (
                round_ + 1, rounds, len(points), seconds))
            for name, protocol, call, clients, request in (
                    points if round_ % 2 == 0 else points[::-1]):
                server = started[name]
                pin(server.processes(), server_cpu)  # worker processes started since
                readers = {"server": lambda: session_cpu_seconds(server.pid),
                           "process": lambda: cpu_seconds(server.pid),
                           "user": lambda: user_seconds(server.pid),
                           "system": lambda: system_seconds(server.pid)}
                if name.endswith("/redis"):
                    readers["redis"] = lambda: cpu_seconds(redis_server.pid)
                figures = run_load(server.url, protocol, request, clients, seconds, readers)
                if call == "submit":  # its tasks must not run into the next point
                    wait_idle(readers["server"])
                measured = {key + "_cpu_s": value
                            for key, value in figures.pop("cpu_s").items()}
                measured.update(figures)
                by_point.setdefault((name, protocol, call, clients), []).append(
                    figures_of(measured))
        for (name, protocol, call, clients), measured in by_point.items():
            entry.setdefault(name, {}).setdefault(protocol, {}).setdefault(call, {})[
                str(clients)] = median_round(measured)
    finally:
        os.sched_setaffinity(0, own_affinity)
        pin([redis_server.pid], own_affinity)  # the other parts share Redis unpinned
        for server in started.values():
            server.stop()
    compare(entry)


def median_round(rounds):
    """The figures of the round whose server CPU per call is the median
    one (a round that something else on the machine disturbed does not
    count), with every round's server µs per call beside them."""
    ordered = sorted(rounds, key=lambda f: f["server_us_per_call"] or float("inf"))
    figures = dict(ordered[(len(ordered) - 1) // 2])
    figures["rounds_server_us_per_call"] = [f["server_us_per_call"] for f in rounds]
    return figures


def figures_of(total):
    calls, cpu = total["calls"], total["server_cpu_s"]
    figures = {"calls": calls, "errors": total["errors"],
               "wall_s": round(total["wall_s"], 2),
               "calls_per_s": round(calls / total["wall_s"], 1),
               "server_cpu_s": round(cpu, 3),
               "server_us_per_call": round(cpu / calls * 1e6, 1) if calls else None,
               "calls_per_server_cpu_s": round(calls / cpu, 1) if cpu else None,
               "client_us_per_call": round(total["client_cpu_s"] / calls * 1e6, 1)
               if calls else None,
               # 1.0: the client used its whole CPU, and may have been the limit
               "client_busy": round(total["client_cpu_s"] / total["wall_s"], 2)}
    if calls:
        # the server process alone, its worker processes left out: what the
        # web tier spends on a submission whose task runs elsewhere
        figures["process_us_per_call"] = round(total["process_cpu_s"] / calls * 1e6, 1)
        # the same process's CPU, its own code's and the kernel's for it
        figures["user_us_per_call"] = round(total["user_cpu_s"] / calls * 1e6, 1)
        figures["system_us_per_call"] = round(total["system_cpu_s"] / calls * 1e6, 1)
    if "redis_cpu_s" in total and calls:
        figures["redis_us_per_call"] = round(total["redis_cpu_s"] / calls * 1e6, 1)
    return figures


def compare(entry):
    """Ratios within the run: against ``echo`` on the same server (server CPU
    per call), against Ladon (calls per server CPU-second), and the µs
    above the do-nothing floor."""
    floor = entry.get("noop", {}).get("noop", {}).get("noop", {})
    ladon = entry.get("ladon", {})
    for name, protocols in entry.items():
        for protocol, calls in protocols.items():
            echo = calls.get("echo", {})
            peer = ladon.get(LADON_PEER.get(protocol), {})
            for call, levels in calls.items():
                for clients, figures in levels.items():
                    us = figures["server_us_per_call"]
                    if call != "echo" and clients in echo:
                        figures["x_echo"] = ratio(us, echo[clients]["server_us_per_call"])
                    if clients in floor and name != "noop":
                        figures["us_above_floor"] = round(
                            us - floor[clients]["server_us_per_call"], 1)
                    if name.startswith("tasktypes") and clients in peer.get(call, {}):
                        figures["x_ladon"] = ratio(
                            figures["calls_per_server_cpu_s"],
                            peer[call][clients]["calls_per_server_cpu_s"])
