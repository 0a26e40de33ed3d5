"""The benchmark: what task types cost against plain calls, over real HTTP on
loopback, against the shipped ``wsgi.py`` under real multi-threaded servers,
and against Ladon 1.0.7 in the same run.

    python -m bench                       # everything, a few minutes
    python -m bench --only latency,empty --quick
    python -m bench --scale 0.1 --output /tmp/results.json

Parts (``--only``):

``latency``
    ``countdown`` submission and ``countdown_progress`` against ``echo`` on
    the same server: median and p99, SOAP and JSON-RPC, per store.
``empty``
    submit -> result of ``countdown(0, 0)``: polling ``countdown_result`` as
    fast as the client can, and with ``countdown_wait``.
``throughput``
    progress polls per second with 1, 8 and 32 concurrent clients (client
    processes, each with threads), and per CPU-second of the server, read
    from /proc before and after.
``update_progress``
    a bench-only task type (``bench/tasks.py``) calling ``update_progress``
    1,000,000 times, through each store's API in this process; a poller
    reads the progress every millisecond and compares it with where the body
    really was.
``lookup``
    progress polls over HTTP with 10 and with 100,000 finished tasks stored.

Servers: cheroot (``python wsgi.py``) per store; mod_wsgi-express per store
where ``.ci/install-apache.sh`` installed it; Ladon's service
(``bench/ladon_service.py``) under cheroot in ``bench/.ladon-venv``. A server
that cannot run is reported as unavailable, with the reason.

Figures are medians and ratios within one run: machines are shared and
noisy. Nothing here passes or fails on a timing; the targets are printed as
met or missed.
"""

import argparse
import importlib
import json
import multiprocessing
import os
import platform
import random
import statistics
import sys
import threading
import time

from bench.client import CallError, Client, task_id_of
from bench import servers

DEFAULT_OUTPUT = os.path.join(servers.BENCH, "results.json")
PARTS = ("latency", "empty", "throughput", "update_progress", "lookup")
SERVER_KINDS = ("cheroot", "mod_wsgi", "ladon")
STORES = ("thread", "redis")
CONCURRENCY = (1, 8, 32)

#: Full-run sizes; ``--scale`` multiplies them.
SIZES = {
    "latency_calls": 2000,      # per kind of call, per server and protocol
    "empty_tasks": 300,         # per store and way of waiting
    "throughput_seconds": 3.0,  # per concurrency level
    "loop_calls": 1_000_000,    # update_progress calls in the body
    "lookup_fill": 100_000,     # finished tasks stored for the big lookup
    "lookup_polls": 2000,
}
MINIMUM = {"latency_calls": 20, "empty_tasks": 5, "throughput_seconds": 0.3,
           "loop_calls": 10_000, "lookup_fill": 100, "lookup_polls": 20}
SMALL_FILL = 10

# JSON-RPC codes / SOAP faultcodes that mean "not finished yet".
NOT_FINISHED = (-32002, "Client.TaskNotFinished")

TARGETS = {
    "submit": 1.15,        # task submission / plain call, median
    "progress": 1.10,      # progress poll / plain call, median
    "empty_redis_ms": 5.0,  # empty Redis-store task, submit -> result, median
    "vs_ladon": 2.0,       # progress polls per second against Ladon's
    "update_us": 2.0,      # update_progress in the Redis store, per call
    "lookup_flat": 1.10,   # progress poll with 100,000 tasks / with 10
}


# -- statistics ------------------------------------------------------------------

def percentile(values, q):
    ordered = sorted(values)
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, int(round(q / 100.0 * (len(ordered) - 1)))))
    return ordered[index]


def summary_us(seconds):
    """Median and p99 of durations in seconds, as microseconds."""
    return {"n": len(seconds), "median_us": round(statistics.median(seconds) * 1e6, 1),
            "p99_us": round(percentile(seconds, 99) * 1e6, 1)}


def ratio(a, b):
    return round(a / b, 3) if a and b else None


# -- part 1: latency -----------------------------------------------------------------

def finished_task(client, steps=0):
    """A finished countdown's id (Ladon: countdown(1, 0), see empty_task)."""
    task_id = task_id_of(client.call("countdown", steps, 0.0))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = client.call("countdown_progress", task_id)
        if client.protocol == "ladon" and float(answer["progress"]) >= 1.0:
            return task_id
        if answer.get("status") == "done":
            return task_id
        time.sleep(0.002)
    raise RuntimeError("countdown did not finish")


def measure_latency(url, protocol, calls):
    """echo, countdown submission and countdown_progress, interleaved so that
    noise hits all three alike."""
    client = Client(url, protocol)
    task_id = finished_task(client)
    bodies = {"echo": client.body("echo", "x"),
              "submit": client.body("countdown", 0, 0.0),
              "progress": client.body("countdown_progress", task_id)}
    kinds = list(bodies)
    samples = {kind: [] for kind in kinds}
    errors = {kind: 0 for kind in kinds}
    clock = time.perf_counter
    send = client.send
    for round_ in range(calls + max(10, calls // 20)):  # the first rounds warm up
        kinds.reverse() if round_ % 2 else None
        for kind in kinds:
            body = bodies[kind]
            started = clock()
            answer = send(body)
            elapsed = clock() - started
            if round_ >= max(10, calls // 20):
                samples[kind].append(elapsed)
            if round_ % 50 == 0:  # parse now and then: a fault would be a cheap call
                try:
                    client.parse(answer)
                except CallError:
                    errors[kind] += 1
    client.close()
    result = {kind: dict(summary_us(samples[kind]), errors=errors[kind]) for kind in kinds}
    for kind in ("submit", "progress"):
        result[kind]["ratio_median"] = ratio(result[kind]["median_us"],
                                             result["echo"]["median_us"])
        result[kind]["ratio_p99"] = ratio(result[kind]["p99_us"], result["echo"]["p99_us"])
    return result


# -- part 2: empty task ----------------------------------------------------------------

def measure_empty(url, protocol, tasks, mode):
    """submit -> result of an empty task; ``mode`` "poll" (countdown_result
    until it stops saying "not finished") or "wait" (countdown_wait, then
    countdown_result). Ladon answers a falsy result as "no result", so its
    empty task is countdown(1, 0), which returns 1 after sleep(0)."""
    client = Client(url, protocol)
    steps = 1 if protocol == "ladon" else 0
    submit = client.body("countdown", steps, 0.0)
    times, polls = [], []
    clock = time.perf_counter
    for i in range(tasks + 3):
        started = clock()
        task_id = task_id_of(client.parse(client.send(submit)))
        result_body = client.body("countdown_result", task_id)
        count = 0
        if mode == "wait":
            client.call("countdown_wait", task_id, 10.0)
        while True:
            count += 1
            try:
                value = client.parse(client.send(result_body))
                break
            except CallError as exc:
                if protocol == "ladon" and "still running" in str(exc):
                    continue
                if exc.code not in NOT_FINISHED:
                    raise
            if clock() - started > 30:
                raise RuntimeError("empty task not done in 30 s")
        elapsed = clock() - started
        if int(value) != steps:
            raise RuntimeError("countdown(%d, 0) returned %r" % (steps, value))
        if i >= 3:
            times.append(elapsed)
            polls.append(count)
    client.close()
    result = summary_us(times)
    result["median_ms"] = round(result["median_us"] / 1000, 3)
    result["result_calls_mean"] = round(statistics.mean(polls), 2)
    return result


# -- part 3: throughput -------------------------------------------------------------

def _throughput_worker(url, protocol, body, threads, seconds, go, results):
    """One client process: ``threads`` keep-alive connections polling from
    the moment ``go`` is set for ``seconds``."""
    counts = [0] * threads
    errors = [0] * threads
    ready = threading.Barrier(threads + 1)

    failures = []

    def run(n):
        try:
            client = Client(url, protocol)
            client.send(body)  # connected and warm before the clock starts
        except Exception as exc:  # a client that cannot start must not hang the others
            failures.append("%s: %s" % (type(exc).__name__, exc))
            ready.abort()
            return
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            return
        go.wait()
        stop_at = time.monotonic() + seconds
        send = client.send
        count = 0
        while time.monotonic() < stop_at:
            try:
                answer = send(body)
            except OSError:  # a server that drops connections under load
                errors[n] += 1
                continue
            count += 1
            if count % 200 == 0:
                try:
                    client.parse(answer)
                except CallError:
                    errors[n] += 1
        counts[n] = count
        client.close()

    pool = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    try:
        ready.wait(60)
    except threading.BrokenBarrierError:
        ready.abort()
        results.put("a client could not start: %s" % (failures or ["timed out"])[0])
        return
    results.put("ready")
    for thread in pool:
        thread.join()
    results.put((sum(counts), sum(errors)))


def measure_throughput(server, protocol, clients, seconds, cpu, kind="progress"):
    """Progress polls (or, ``kind="echo"``, plain calls) per second with
    ``clients`` concurrent keep-alive connections, from up to 2 x nproc
    client processes, and the CPU time the server (and Redis) spent
    meanwhile."""
    client = Client(server.url, protocol)
    if kind == "echo":
        body = client.body("echo", "x")
    else:
        body = client.body("countdown_progress", finished_task(client))
    client.close()
    processes = min(clients, 2 * (os.cpu_count() or 1))
    per_process = [clients // processes + (1 if i < clients % processes else 0)
                   for i in range(processes)]
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    go = context.Event()
    workers = [context.Process(target=_throughput_worker,
                               args=(server.url, protocol, body, n, seconds, go, results))
               for n in per_process]
    for worker in workers:
        worker.start()
    for _ in workers:
        answer = results.get(timeout=90)
        if answer != "ready":
            go.set()
            for worker in workers:
                worker.join(10)
            raise RuntimeError(answer)
    cpu_before = [read() for read in cpu]
    go.set()
    time.sleep(seconds)
    cpu_after = [read() for read in cpu]
    totals = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(10)
    calls = sum(t[0] for t in totals)
    cpu = [after - before for before, after in zip(cpu_before, cpu_after)]
    result = {"kind": kind, "clients": clients, "client_processes": processes,
              "calls": calls,
              "errors": sum(t[1] for t in totals), "seconds": seconds,
              "calls_per_s": round(calls / seconds, 1),
              "server_cpu_s": round(cpu[0], 2),
              "calls_per_server_cpu_s": round(calls / cpu[0], 1) if cpu[0] else None}
    if len(cpu) > 1:  # the Redis server's share
        result["redis_cpu_s"] = round(cpu[1], 2)
    return result


# -- the servers of parts 1-3 ----------------------------------------------------------

def server_specs(kinds):
    specs = []
    for kind in ("cheroot", "mod_wsgi"):
        if kind in kinds:
            specs += [(kind, store) for store in STORES]
    if "ladon" in kinds:
        specs.append(("ladon", "thread"))
    return specs


def start_server(kind, store, redis_server):
    url = redis_server.url if store == "redis" else None
    if kind == "cheroot":
        return servers.cheroot_server(store, url)
    if kind == "mod_wsgi":
        return servers.ModWsgiServer(store, url)
    return servers.ladon_server()


def cpu_readers(server, store, redis_server):
    """Functions reading the CPU seconds of the server (Apache: all of its
    processes, workers that come and go included) and, for the Redis store,
    of Redis."""
    if isinstance(server, servers.ModWsgiServer):
        readers = [lambda: servers.tree_cpu_seconds(server.apache_pid)]
    else:
        readers = [lambda: servers.cpu_seconds(server.pid) or 0.0]
    if store == "redis":
        readers.append(lambda: servers.cpu_seconds(redis_server.pid) or 0.0)
    return readers


def run_servers(parts, sizes, kinds, redis_server, results, log):
    for kind, store in server_specs(kinds):
        name = "%s/%s" % (kind, store)
        reason = None
        if kind == "mod_wsgi":
            reason = servers.mod_wsgi_missing()
        elif kind == "ladon":
            reason = servers.ensure_ladon_venv(log)
        if reason:
            results["unavailable"][name] = reason
            log("%s: unavailable: %s" % (name, reason))
            continue
        if store == "redis":
            redis_server.flush()
        log("%s: starting" % name)
        try:
            server = start_server(kind, store, redis_server)
        except servers.ServerError as exc:
            results["unavailable"][name] = str(exc)
            log("%s: unavailable: %s" % (name, exc))
            continue
        protocols = ("ladon",) if kind == "ladon" else ("soap", "jsonrpc")
        try:
            if "latency" in parts:
                for protocol in protocols:
                    log("%s: latency %s" % (name, protocol))
                    results["latency"].setdefault(name, {})[protocol] = measure_latency(
                        server.url, protocol, sizes["latency_calls"])
            if "empty" in parts:
                protocol = protocols[-1]
                entry = results["empty"].setdefault(name, {"protocol": protocol})
                for mode in ("poll", "wait"):
                    if mode == "wait" and kind == "ladon":
                        entry[mode] = None  # Ladon has no wait
                        continue
                    log("%s: empty task, %s" % (name, mode))
                    entry[mode] = measure_empty(server.url, protocol,
                                                sizes["empty_tasks"], mode)
            if "throughput" in parts:
                protocol = protocols[-1]
                readers = cpu_readers(server, store, redis_server)
                entry = results["throughput"].setdefault(
                    name, {"protocol": protocol, "levels": [], "echo_levels": []})
                for clients in CONCURRENCY:
                    log("%s: throughput, %d clients" % (name, clients))
                    for kind, key in (("progress", "levels"), ("echo", "echo_levels")):
                        entry[key].append(measure_throughput(
                            server, protocol, clients, sizes["throughput_seconds"],
                            readers, kind))
                    poll, echo = entry["levels"][-1], entry["echo_levels"][-1]
                    poll["ratio_to_echo"] = ratio(poll["calls_per_s"], echo["calls_per_s"])
                    poll["cpu_ratio_to_echo"] = ratio(poll["calls_per_server_cpu_s"],
                                                      echo["calls_per_server_cpu_s"])
        except Exception as exc:  # one server's failure must not lose the others
            results["unavailable"][name + " (failed)"] = "%s: %s\n%s" % (
                type(exc).__name__, exc, server.tail())
            log("%s: FAILED: %s" % (name, exc))
        finally:
            server.stop()


# -- part 4: update_progress ------------------------------------------------------------

def measure_update_progress(store, calls, poll_interval=0.001):
    """The tight-loop body through ``store``'s API; polls every
    ``poll_interval`` and returns the body's timings and the staleness of what
    the polls saw."""
    from bench.tasks import TIGHT_LOOP, body_position

    state = store.submit(TIGHT_LOOP, (calls,))
    polls = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        seen = store.read(TIGHT_LOOP, state.task_id)
        after = time.monotonic()
        if seen.status.is_finished:
            break
        if seen.status.value == "running":
            polls.append((after, seen.progress))
        time.sleep(poll_interval)
    doc = json.loads(store.result(TIGHT_LOOP, state.task_id))
    stamps = doc["stamps"]
    step_fraction = 1.0 / doc["calls"]
    lags = []
    for when, progress in polls:
        if when < stamps[0] or progress >= 1.0:
            continue  # before the timed loop began, or already final
        # The value shown went out of date when the body reported the next one.
        outdated_at = body_position(doc, progress + step_fraction)
        lags.append(max(0.0, when - outdated_at))
    result = {"calls": doc["calls"], "us_per_call": round(doc["us_per_call"], 3),
              "us_per_iteration": round(doc["us_per_iteration"], 3),
              "us_bare_iteration": round(doc["us_bare_iteration"], 3),
              "polls": len(lags)}
    if lags:
        result.update(stale_median_ms=round(statistics.median(lags) * 1e3, 3),
                      stale_p99_ms=round(percentile(lags, 99) * 1e3, 3),
                      stale_max_ms=round(max(lags) * 1e3, 3))
    return result


def run_update_progress(sizes, redis_server, results, log):
    from tasktypes import ThreadStore
    from tasktypes.redis_store import RedisStore

    calls = sizes["loop_calls"]
    log("update_progress: thread store, %d calls" % calls)
    store = ThreadStore()
    try:
        results["update_progress"]["thread"] = measure_update_progress(store, calls)
    finally:
        store.close()
    log("update_progress: redis store, %d calls" % calls)
    redis_server.flush()
    store = RedisStore(redis_server.url)
    try:
        measure_update_progress(store, 1000)  # the first worker process starts here
        results["update_progress"]["redis"] = measure_update_progress(store, calls)
    finally:
        close_redis_store(store)


def close_redis_store(store):
    store.close()
    store._listener.join(3)  # before Redis goes: no "lost the connection" warning


# -- part 5: lookups -----------------------------------------------------------------

def measure_lookup(targets, polls, block=50):
    """Progress polls (JSON-RPC) against several servers, in alternating
    blocks of ``block`` polls so that the machine's noise hits all alike;
    ``targets`` maps a name to (url, task ids to cycle over)."""
    clients, bodies, times = {}, {}, {}
    for name, (url, task_ids) in targets.items():
        client = clients[name] = Client(url, "jsonrpc")
        bodies[name] = [client.body("countdown_progress", t) for t in task_ids]
        for body in bodies[name] * 5:  # warm up
            if client.parse(client.send(body))["status"] != "done":
                raise RuntimeError("lookup of a task that is not done")
        times[name] = []
    clock = time.perf_counter
    for start in range(0, polls, block):
        for name, client in clients.items():
            send, own = client.send, bodies[name]
            samples = times[name]
            for i in range(start, min(polls, start + block)):
                body = own[i % len(own)]
                started = clock()
                send(body)
                samples.append(clock() - started)
    for client in clients.values():
        client.close()
    return {name: summary_us(samples) for name, samples in times.items()}


def fresh_tasks(url, count=10):
    client = Client(url, "jsonrpc")
    ids = [finished_task(client) for _ in range(count)]
    client.close()
    return ids


def fill_redis(redis_url, count):
    """``count`` finished countdown tasks in Redis: one through RedisStore's
    API, the rest copies of its hash (same fields, same TTL) under new ids,
    written with pipelines. Returns some of their ids."""
    import redis
    from tasktypes.decorator import TASK_TYPES
    from tasktypes.model import new_task_id
    from tasktypes.redis_store import RedisStore

    importlib.import_module("service.task_service")  # registers countdown
    countdown = TASK_TYPES["service.task_service:TaskService.countdown"]
    store = RedisStore(redis_url)
    try:
        first = store.submit(countdown, (0, 0.0)).task_id
        if store.wait(countdown, first, 30).status.value != "done":
            raise RuntimeError("the template task did not finish")
    finally:
        close_redis_store(store)
    client = redis.Redis.from_url(redis_url)
    key = store._task_key
    template = client.hgetall(key % first)
    ttl = client.pttl(key % first)
    ids = [first]
    with client.pipeline(transaction=False) as pipe:
        for n in range(count - 1):
            task_id = new_task_id()
            ids.append(task_id)
            pipe.hset(key % task_id, mapping=template)
            pipe.pexpire(key % task_id, ttl)
            if n % 2000 == 1999:
                pipe.execute()
        pipe.execute()
    return random.sample(ids, min(10, len(ids)))


def run_lookup(sizes, redis_server, results, log):
    """Per store, two servers side by side: one with 10 finished tasks, one
    with ``lookup_fill``; polls alternate between them."""
    big = sizes["lookup_fill"]
    polls = sizes["lookup_polls"]
    entry = results["lookup"]
    fills = (SMALL_FILL, big)
    # thread store: each server process fills itself (bench/serve.py)
    log("lookup: thread store, %d and %d tasks" % fills)
    with servers.cheroot_server("thread", fill=SMALL_FILL) as small, \
            servers.cheroot_server("thread", fill=big) as large:
        entry["thread"] = measure_lookup({
            str(SMALL_FILL): (small.url, fresh_tasks(small.url)),
            str(big): (large.url, fresh_tasks(large.url))}, polls)
    # redis store: two Redis databases, one server on each
    log("lookup: redis store, %d and %d tasks" % fills)
    redis_server.flush()
    urls = [redis_server.url[:-1] + str(db) for db in (1, 2)]  # .../0 -> .../1, .../2
    ids = [fill_redis(url, fill) for url, fill in zip(urls, fills)]
    with servers.cheroot_server("redis", urls[0]) as small, \
            servers.cheroot_server("redis", urls[1]) as large:
        entry["redis"] = measure_lookup({str(SMALL_FILL): (small.url, ids[0]),
                                         str(big): (large.url, ids[1])}, polls)
    for store in STORES:
        figures = entry[store]
        figures["ratio_median"] = ratio(figures[str(big)]["median_us"],
                                        figures[str(SMALL_FILL)]["median_us"])
    entry["fill"] = big
    redis_server.flush()


# -- targets and the table ----------------------------------------------------------

def evaluate_targets(results):
    targets = []

    def add(name, measured, limit, met, where=""):
        targets.append({"target": name, "where": where, "measured": measured,
                        "limit": limit,
                        "status": "n/a" if met is None else ("met" if met else "missed")})

    for server, protocols in results["latency"].items():
        if server.startswith("ladon"):
            continue
        for protocol, figures in protocols.items():
            where = "%s %s" % (server, protocol)
            r = figures["submit"]["ratio_median"]
            add("submission <= %.2fx plain call (median)" % TARGETS["submit"], r,
                TARGETS["submit"], r is not None and r <= TARGETS["submit"], where)
            r = figures["progress"]["ratio_median"]
            add("progress poll <= %.2fx plain call (median)" % TARGETS["progress"], r,
                TARGETS["progress"], r is not None and r <= TARGETS["progress"], where)
    for server, figures in results["empty"].items():
        if server.endswith("/redis"):
            for mode in ("poll", "wait"):
                if figures.get(mode):
                    ms = figures[mode]["median_ms"]
                    add("empty Redis-store task back in <= %g ms (median)"
                        % TARGETS["empty_redis_ms"], ms, TARGETS["empty_redis_ms"],
                        ms <= TARGETS["empty_redis_ms"], "%s %s" % (server, mode))
    ladon = results["throughput"].get("ladon/thread")
    for server, figures in results["throughput"].items():
        if server.startswith("ladon"):
            continue
        if not ladon:
            add("progress polls >= %gx Ladon's rate" % TARGETS["vs_ladon"], None,
                TARGETS["vs_ladon"], None, server + " (no Ladon figures)")
            continue
        for key, label in (("calls_per_s", "peak polls/s"),
                           ("calls_per_server_cpu_s", "polls per server CPU-s")):
            mine = max((level[key] or 0) for level in figures["levels"])
            theirs = max((level[key] or 0) for level in ladon["levels"])
            r = ratio(mine, theirs)
            add("progress polls >= %gx Ladon's rate" % TARGETS["vs_ladon"], r,
                TARGETS["vs_ladon"], r is not None and r >= TARGETS["vs_ladon"],
                "%s, %s" % (server, label))
    redis = results["update_progress"].get("redis")
    if redis:
        add("update_progress <= %g us per call (Redis store)" % TARGETS["update_us"],
            redis["us_per_call"], TARGETS["update_us"],
            redis["us_per_call"] <= TARGETS["update_us"], "in-process, amortized")
    for store in STORES:
        figures = results["lookup"].get(store)
        if figures:
            r = figures["ratio_median"]
            add("lookup flat from %d to %d tasks (<= %.2fx)" % (
                SMALL_FILL, results["lookup"]["fill"], TARGETS["lookup_flat"]), r,
                TARGETS["lookup_flat"], r is not None and r <= TARGETS["lookup_flat"],
                "%s store, median" % store)
    return targets


def _fmt(value, digits=1):
    if value is None:
        return "-"
    if isinstance(value, float):
        return "%.*f" % (digits, value)
    return str(value)


def format_table(results):
    lines = []
    out = lines.append
    m = results["machine"]
    out("tasktypes benchmark  (%s cores, %s, Python %s, scale %g)" % (
        m["nproc"], m["cpu"], m["python"], results["settings"]["scale"]))
    if results["latency"]:
        out("")
        out("1. latency over HTTP, microseconds (ratio = against echo on the same server)")
        out("%-16s %-8s %8s %8s %8s %8s %8s %8s %7s %7s %7s %7s" % (
            "server", "protocol", "echo", "echo", "submit", "submit", "progr.",
            "progr.", "submit", "submit", "progr.", "progr."))
        out("%-16s %-8s %8s %8s %8s %8s %8s %8s %7s %7s %7s %7s" % (
            "", "", "median", "p99", "median", "p99", "median", "p99",
            "x med", "x p99", "x med", "x p99"))
        for server, protocols in results["latency"].items():
            for protocol, f in protocols.items():
                out("%-16s %-8s %8s %8s %8s %8s %8s %8s %7s %7s %7s %7s" % (
                    server, protocol, _fmt(f["echo"]["median_us"]), _fmt(f["echo"]["p99_us"]),
                    _fmt(f["submit"]["median_us"]), _fmt(f["submit"]["p99_us"]),
                    _fmt(f["progress"]["median_us"]), _fmt(f["progress"]["p99_us"]),
                    _fmt(f["submit"]["ratio_median"], 2), _fmt(f["submit"]["ratio_p99"], 2),
                    _fmt(f["progress"]["ratio_median"], 2),
                    _fmt(f["progress"]["ratio_p99"], 2)))
    if results["empty"]:
        out("")
        out("2. empty task, submit -> result, milliseconds (calls = result calls per task)")
        out("%-16s %-8s %10s %8s %8s %10s %8s" % ("server", "protocol", "poll med",
                                                 "poll p99", "calls", "wait med", "wait p99"))
        for server, f in results["empty"].items():
            poll, wait = f.get("poll"), f.get("wait")
            out("%-16s %-8s %10s %8s %8s %10s %8s" % (
                server, f["protocol"],
                _fmt(poll and poll["median_us"] / 1000, 2),
                _fmt(poll and poll["p99_us"] / 1000, 2),
                _fmt(poll and poll["result_calls_mean"], 1),
                _fmt(wait and wait["median_us"] / 1000, 2),
                _fmt(wait and wait["p99_us"] / 1000, 2)))
        out("   (ladon: countdown(1, 0), since Ladon takes a falsy result for none; "
            "Ladon has no wait)")
    if results["throughput"]:
        out("")
        out("3. progress polls, clients = concurrent keep-alive connections")
        out("   (x echo: against echo calls on the same server, same clients; "
            "server CPU in s over the run)")
        out("%-16s %-8s %7s %9s %7s %10s %8s %11s %8s %9s" % (
            "server", "protocol", "clients", "polls/s", "x echo", "server CPU",
            "redis CPU", "polls/CPU-s", "x echo", "echo/s"))
        for server, f in results["throughput"].items():
            for level, echo in zip(f["levels"], f["echo_levels"]):
                out("%-16s %-8s %7d %9s %7s %10s %8s %11s %8s %9s" % (
                    server, f["protocol"], level["clients"], _fmt(level["calls_per_s"], 0),
                    _fmt(level["ratio_to_echo"], 2), _fmt(level["server_cpu_s"], 2),
                    _fmt(level.get("redis_cpu_s"), 2),
                    _fmt(level["calls_per_server_cpu_s"], 0),
                    _fmt(level["cpu_ratio_to_echo"], 2), _fmt(echo["calls_per_s"], 0)))
        if any(name.startswith("mod_wsgi") for name in results["throughput"]):
            out("   (mod_wsgi server CPU: all of its Apache processes)")
    if results["update_progress"]:
        out("")
        out("4. update_progress in a tight loop, in-process through the store API")
        out("%-8s %10s %9s %9s %8s %7s %9s %9s %9s" % (
            "store", "calls", "us/call", "us/iter", "us bare", "polls", "stale med",
            "stale p99", "stale max"))
        for store, f in results["update_progress"].items():
            out("%-8s %10d %9s %9s %8s %7d %9s %9s %9s" % (
                store, f["calls"], _fmt(f["us_per_call"], 3), _fmt(f["us_per_iteration"], 3),
                _fmt(f["us_bare_iteration"], 3), f["polls"],
                _fmt(f.get("stale_median_ms"), 2), _fmt(f.get("stale_p99_ms"), 2),
                _fmt(f.get("stale_max_ms"), 2)))
        out("   (us/call: net of the bare loop; stale: ms since the body had moved past "
            "the progress a poll saw)")
    if results["lookup"]:
        out("")
        big = results["lookup"]["fill"]
        out("5. progress poll (JSON-RPC, cheroot) with %d and %d finished tasks stored, us"
            % (SMALL_FILL, big))
        out("%-8s %10s %10s %10s %10s %8s" % ("store", "%d med" % SMALL_FILL,
                                              "%d p99" % SMALL_FILL, "%d med" % big,
                                              "%d p99" % big, "ratio"))
        for store in STORES:
            f = results["lookup"].get(store)
            if f:
                small, large = f[str(SMALL_FILL)], f[str(big)]
                out("%-8s %10s %10s %10s %10s %8s" % (
                    store, _fmt(small["median_us"]), _fmt(small["p99_us"]),
                    _fmt(large["median_us"]), _fmt(large["p99_us"]),
                    _fmt(f["ratio_median"], 2)))
    if results["unavailable"]:
        out("")
        out("unavailable:")
        for name, reason in results["unavailable"].items():
            out("  %s: %s" % (name, reason.strip().replace("\n", "\n    ")))
    if results["targets"]:
        out("")
        out("targets")
        for t in results["targets"]:
            out("  %-7s %-48s %-34s %s" % (t["status"], t["target"], t["where"],
                                            _fmt(t["measured"], 3)))
    return "\n".join(lines)


# -- main ----------------------------------------------------------------------------

def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.partition(":")[2].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "platform": platform.platform()}


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PARTS),
                        help="comma-separated parts: %s" % ", ".join(PARTS))
    parser.add_argument("--servers", default=",".join(SERVER_KINDS),
                        help="servers for latency, empty and throughput: %s"
                        % ", ".join(SERVER_KINDS))
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every count and duration (0.1: a tenth)")
    parser.add_argument("--quick", action="store_true", help="same as --scale 0.1")
    parser.add_argument("--output", default=DEFAULT_OUTPUT,
                        help="where to write the JSON figures (default %(default)s)")
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.only.split(",") if p.strip()]
    args.kinds = [k.strip() for k in args.servers.split(",") if k.strip()]
    for name, allowed in ((args.parts, PARTS), (args.kinds, SERVER_KINDS)):
        bad = sorted(set(name) - set(allowed))
        if bad:
            parser.error("unknown: %s (choose from %s)" % (", ".join(bad),
                                                           ", ".join(allowed)))
    if args.quick:
        args.scale = 0.1
    if args.scale <= 0:
        parser.error("--scale must be positive")
    return args


def scaled(scale):
    sizes = {}
    for name, value in SIZES.items():
        value = value * scale
        sizes[name] = max(MINIMUM[name], value if isinstance(SIZES[name], float)
                          else int(value))
    return sizes


def main(argv=None):
    args = parse_args(argv)
    sizes = scaled(args.scale)
    started = time.monotonic()

    def log(message):
        print("[%6.1f s] %s" % (time.monotonic() - started, message), file=sys.stderr,
              flush=True)

    if servers.ROOT not in sys.path:
        sys.path.insert(0, servers.ROOT)
    results = {"machine": machine(),
               "settings": {"scale": args.scale, "parts": args.parts,
                            "servers": args.kinds, "sizes": sizes,
                            "concurrency": list(CONCURRENCY)},
               "latency": {}, "empty": {}, "throughput": {}, "update_progress": {},
               "lookup": {}, "unavailable": {}, "targets": []}
    with servers.RedisServer() as redis_server:
        if set(args.parts) & {"latency", "empty", "throughput"}:
            run_servers(args.parts, sizes, args.kinds, redis_server, results, log)
        if "update_progress" in args.parts:
            run_update_progress(sizes, redis_server, results, log)
        if "lookup" in args.parts:
            run_lookup(sizes, redis_server, results, log)
    results["targets"] = evaluate_targets(results)
    results["settings"]["wall_seconds"] = round(time.monotonic() - started, 1)
    table = format_table(results)
    print(table)
    if args.output:
        with open(args.output, "w") as f:
            json.dump(results, f, indent=1)
            f.write("\n")
        print("\nfigures written to %s (%.0f s)" % (args.output,
                                                    time.monotonic() - started))
    return results
