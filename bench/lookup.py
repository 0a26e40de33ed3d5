"""Part ``lookup``: progress polls (JSON-RPC) with 10 and with
``lookup_fill`` finished tasks stored, per store: a lookup must not slow
down as tasks pile up.

Per store, two servers side by side, one with each fill, both (and
Redis) on one CPU and this client on the other; polls alternate between
them in blocks so that the machine's noise hits both alike. The thread
store's servers fill themselves (``bench/serve.py``); the Redis
store's big fill is one task made through ``RedisStore``'s API and copies
of its keys under new ids (found by the id, not by the store's insides),
written with pipelines.
"""

import os
import time

from bench import servers
from bench.client import Client, finished_task
from bench.procstat import pin, split_cpus
from bench.stats import ratio, summary_us

SMALL_FILL = 10


def pinned(run, started, redis_server):
    """``run()`` with the servers ``started`` and Redis on one CPU and this
    process on the other, as the part ``polls`` pins them: otherwise
    whichever server shares a CPU with the client answers slower, and the
    ratio says so."""
    server_cpu, client_cpu = split_cpus()
    if server_cpu is None:
        return run()
    own = os.sched_getaffinity(0)
    for server in started:
        pin(server.processes(), server_cpu)
    pin([redis_server.pid], server_cpu)
    os.sched_setaffinity(0, {client_cpu})
    try:
        return run()
    finally:
        os.sched_setaffinity(0, own)
        pin([redis_server.pid], own)  # the other parts share Redis unpinned


def measure(targets, polls, block=50):
    """``targets``: {name: (url, task ids to cycle over)}."""
    clients, requests, times = {}, {}, {}
    for name, (url, task_ids) in targets.items():
        client = clients[name] = Client(url, "jsonrpc")
        requests[name] = [client.request("countdown_progress", t) for t in task_ids]
        for request in requests[name] * 5:  # warm up
            if client.parse(client.send(request))["status"] != "done":
                raise RuntimeError("lookup of a task that is not done")
        times[name] = []
    clock = time.perf_counter
    for start in range(0, polls, block):
        for name, client in clients.items():
            send, own, samples = client.send, requests[name], times[name]
            for i in range(start, min(polls, start + block)):
                request = own[i % len(own)]
                started = clock()
                send(request)
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
    """``count`` finished countdown tasks in the Redis at ``redis_url``;
    returns some of their ids."""
    import redis
    from service.task_service import TaskService
    from tasktypes.model import new_task_id
    from tasktypes.redis_store import RedisStore

    countdown = TaskService.countdown.task_type
    store = RedisStore(redis_url)
    try:
        first = store.submit(countdown, (0, 0.0)).task_id
        if store.wait(countdown, first, 30).status.value != "done":
            raise RuntimeError("the template task did not finish")
    finally:
        store.close()
    client = redis.Redis.from_url(redis_url)
    name = str(first).encode()
    # the task's own keys: those whose name holds its id as a whole segment
    keys = [k for k in client.scan_iter(match=b"*" + name + b"*", count=1000)
            if name in k.split(b":")]
    templates = [(k, client.dump(k), client.pttl(k)) for k in keys]
    ids = [first]
    with client.pipeline(transaction=False) as pipe:
        for n in range(count - 1):
            task_id = new_task_id()
            ids.append(task_id)
            new = str(task_id).encode()
            for key, dumped, ttl in templates:
                copy = b":".join(new if part == name else part for part in key.split(b":"))
                pipe.restore(copy, max(ttl, 0), dumped, replace=True)
            if n % 2000 == 1999:
                pipe.execute()
        pipe.execute()
    return ids[:1] + ids[-9:]


def run(sizes, redis_server, results, log):
    big, polls = sizes["lookup_fill"], sizes["lookup_polls"]
    entry = results["lookup"]
    log("lookup: thread store, %d and %d tasks" % (SMALL_FILL, big))
    with servers.tasktypes_server("thread", fill=SMALL_FILL) as small, \
            servers.tasktypes_server("thread", fill=big) as large:
        targets = {str(SMALL_FILL): (small.url, fresh_tasks(small.url)),
                   str(big): (large.url, fresh_tasks(large.url))}
        entry["thread"] = pinned(lambda: measure(targets, polls), (small, large), redis_server)
    log("lookup: redis store, %d and %d tasks" % (SMALL_FILL, big))
    redis_server.flush()
    urls = [redis_server.url[:-1] + str(db) for db in (1, 2)]  # .../0 -> .../1, .../2
    ids = [fill_redis(url, fill) for url, fill in zip(urls, (SMALL_FILL, big))]
    with servers.tasktypes_server("redis", urls[0]) as small, \
            servers.tasktypes_server("redis", urls[1]) as large:
        targets = {str(SMALL_FILL): (small.url, ids[0]), str(big): (large.url, ids[1])}
        entry["redis"] = pinned(lambda: measure(targets, polls), (small, large), redis_server)
    for store in ("thread", "redis"):
        figures = entry[store]
        figures["ratio_median"] = ratio(figures[str(big)]["median_us"],
                                        figures[str(SMALL_FILL)]["median_us"])
    entry["fill"] = big
    for db in (1, 2):
        redis_server.client(db=db).flushdb()
