"""Part ``empty``: submit -> result of an empty task (``countdown(0, 0)``)
over JSON-RPC, one client, in each store with the server's own workers
(and Ladon's, for comparison); the Redis store through the worker service
is part ``queue``.

Two ways of waiting: ``poll`` calls ``countdown_result`` as fast as the
client can until it stops answering "not finished"; ``wait`` calls
``countdown_wait`` once, then ``countdown_result``. Ladon answers a falsy
result as "no result", so its empty task is ``countdown(1, 0)``, and it has
no wait.
"""

import statistics
import time

from bench import servers, venvs
from bench.client import CallError, Client, task_id_of
from bench.stats import summary_ms

#: JSON-RPC codes that mean "not finished yet".
NOT_FINISHED = (-32002,)


def measure(url, protocol, tasks, mode):
    client = Client(url, protocol)
    steps = 1 if protocol == "ladon" else 0
    submit = client.request("countdown", steps, 0.0)
    times, polls = [], []
    clock = time.perf_counter
    for i in range(tasks + 3):  # the first three warm up
        started = clock()
        task_id = task_id_of(client.parse(client.send(submit)))
        result_request = client.request("countdown_result", task_id)
        count = 0
        if mode == "wait":
            client.call("countdown_wait", task_id, 10.0)
        while True:
            count += 1
            try:
                value = client.parse(client.send(result_request))
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
    result = summary_ms(times)
    result["result_calls_mean"] = round(statistics.mean(polls), 2)
    return result


def run(sizes, redis_server, results, log, with_ladon=True):
    """Fill ``results["empty"]``: {server: {"poll": figures, "wait": figures}}."""
    tasks = sizes["empty_tasks"]
    plan = [("tasktypes/thread", "jsonrpc"), ("tasktypes/redis", "jsonrpc")]
    if with_ladon:
        reason = venvs.ensure_ladon(log)
        if reason:
            results["unavailable"]["ladon"] = reason
        else:
            plan.append(("ladon", "ladon"))
    for name, protocol in plan:
        if name == "ladon":
            server = servers.ladon_server()
        else:
            store = name.partition("/")[2]
            redis_server.flush()
            server = servers.tasktypes_server(
                store, redis_server.url if store == "redis" else None)
        try:
            entry = results["empty"][name] = {"protocol": protocol}
            for mode in ("poll", "wait"):
                if mode == "wait" and name == "ladon":
                    continue
                log("empty task: %s, %s" % (name, mode))
                entry[mode] = measure(server.url, protocol, tasks, mode)
        finally:
            server.stop()
