"""The RQ side of the queue benchmark, run in ``bench/.rq-venv`` against RQ
workers that the benchmark started (``bench/servers.py``):

    bench/.rq-venv/bin/python bench/rq_load.py --url redis://... --tasks 1000 --clients 8
    bench/.rq-venv/bin/python bench/rq_load.py --url redis://... --latency 100

The first: ``--clients`` threads enqueue ``--tasks`` empty jobs between
them (``rq_jobs.empty``), then each waits for the result of each of its
jobs; prints the seconds from the first enqueue to the last result. The
second: one job at a time, enqueue -> result (``Job.latest_result``, which
blocks on the result stream, as tasktypes' ``m_wait`` blocks), the median.
One JSON line on stdout either way.
"""

import argparse
import json
import statistics
import sys
import threading
import time

from redis import Redis
from rq import Queue

sys.path.insert(0, __file__.rpartition("/")[0])
import rq_jobs  # noqa: E402


def throughput(url, tasks, clients):
    shares = [tasks // clients + (1 if n < tasks % clients else 0) for n in range(clients)]
    failed = []
    ready = threading.Barrier(clients + 1)

    def client(share):
        queue = Queue("bench", connection=Redis.from_url(url))
        ready.wait()
        jobs = [queue.enqueue(rq_jobs.empty) for _ in range(share)]
        for job in jobs:
            result = job.latest_result(timeout=60)
            if result is None or result.return_value != 0:
                failed.append(job.id)

    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.monotonic()
    for thread in threads:
        thread.join()
    return {"tasks": tasks, "clients": clients, "seconds": time.monotonic() - started,
            "failed": len(failed)}


def latency(url, count):
    queue = Queue("bench", connection=Redis.from_url(url))
    times = []
    for i in range(count + 3):
        started = time.perf_counter()
        job = queue.enqueue(rq_jobs.empty)
        result = job.latest_result(timeout=60)
        elapsed = time.perf_counter() - started
        if result is None or result.return_value != 0:
            raise SystemExit("job %s: no result" % job.id)
        if i >= 3:
            times.append(elapsed)
    return {"n": count, "median_ms": round(statistics.median(times) * 1e3, 3)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--latency", type=int, metavar="JOBS")
    args = parser.parse_args()
    if args.latency:
        print(json.dumps(latency(args.url, args.latency)))
    else:
        print(json.dumps(throughput(args.url, args.tasks, args.clients)))


if __name__ == "__main__":
    main()
