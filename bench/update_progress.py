"""Part ``update_progress``: a body calling ``update_progress`` in a tight
loop (``bench/tasks.py``), through each store's API in this process (no
HTTP); a poller reads the progress every millisecond and compares it with
where the body really was (how stale a poller's view is)."""

import json
import statistics
import time

from bench.stats import percentile
from bench.tasks import TIGHT_LOOP, body_position


def measure(store, calls, poll_interval=0.001):
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


def run(sizes, redis_server, results, log):
    from tasktypes import ThreadStore
    from tasktypes.redis_store import RedisStore

    calls = sizes["loop_calls"]
    log("update_progress: thread store, %d calls" % calls)
    store = ThreadStore()
    try:
        results["update_progress"]["thread"] = measure(store, calls)
    finally:
        store.close()
    log("update_progress: redis store, %d calls" % calls)
    redis_server.flush()
    store = RedisStore(redis_server.url)
    try:
        measure(store, 1000)  # the first worker process starts here
        results["update_progress"]["redis"] = measure(store, calls)
    finally:
        store.close()
