"""A bench-only task type: a body that calls ``update_progress`` in a tight
loop and times itself, run through a store's API (no HTTP, no shipped
service has such a method).

    store.submit(TIGHT_LOOP, (1_000_000,))

The body first times the same loop calling a no-op, so that the loop's own
cost is not charged to ``update_progress``, then the real loop, stamping the
clock every ``calls / STAMPS`` calls; ``time.monotonic`` is one clock for
every process of the machine, so a poller in another process can tell where
the body really was when it read the progress.
"""

import json
import time

from spyne import Integer, ServiceBase, Unicode

from tasktypes import task_rpc

#: Clock stamps the body takes during its loop (the loop is split in as many
#: equal runs).
STAMPS = 1000


def _noop(fraction, message=None):
    pass


class BenchService(ServiceBase):
    @task_rpc(Integer(min_occurs=1, nillable=False), _returns=Unicode)
    def tight_loop(ctx, calls, update_progress):
        """``calls`` calls of update_progress((i + 1) / calls); returns a JSON
        document: net and gross microseconds per call, and the stamps."""
        step = max(1, calls // STAMPS)
        runs = calls // step

        def loop(report, stamps):
            for k in range(runs):
                if stamps is not None:
                    stamps.append(time.monotonic())
                for i in range(k * step, (k + 1) * step):
                    report((i + 1) / calls)

        started = time.perf_counter()
        loop(_noop, None)
        bare = time.perf_counter() - started
        stamps = []
        started = time.perf_counter()
        loop(update_progress, stamps)
        gross = time.perf_counter() - started
        stamps.append(time.monotonic())
        n = runs * step
        return json.dumps({"calls": n, "step": step, "stamps": stamps,
                           "us_per_call": (gross - bare) / n * 1e6,
                           "us_per_iteration": gross / n * 1e6,
                           "us_bare_iteration": bare / n * 1e6})


TIGHT_LOOP = BenchService.tight_loop.task_type


def body_position(doc, fraction):
    """When the body reported ``fraction`` (interpolated between stamps)."""
    n, step, stamps = doc["calls"], doc["step"], doc["stamps"]
    index = min(max(fraction * n, 0.0), float(n))
    k = min(int(index // step), len(stamps) - 2)
    return stamps[k] + (index - k * step) / step * (stamps[k + 1] - stamps[k])
