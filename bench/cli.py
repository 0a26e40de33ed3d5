"""``python -m bench``: run the benchmark's parts, print the markdown tables
for the README's "Performance" section, write ``bench/results.json``.

    python -m bench                         # everything, about 6 minutes
    python -m bench --only polls --quick    # one part, a tenth of the time
    python -m bench --scale 0.01 --output /tmp/results.json   # the smoke test's

Parts (``--only``; each module's docstring says what it measures):
``polls`` (``bench/polls.py``), ``queue`` (``bench/queueing.py``),
``empty`` (``bench/empty.py``), ``update_progress``
(``bench/update_progress.py``), ``lookup`` (``bench/lookup.py``) and
``instructions`` (``bench/instructions.py``, under valgrind).
``--without ladon,rq`` leaves out the programs we compare with (they are
installed into ``bench/.ladon-venv`` and ``bench/.rq-venv`` on first use).

Figures are ratios within one run: machines are shared and noisy. Nothing
here passes or fails on a timing; the targets are reported as met or
missed (``bench/report.py``).
"""

import argparse
import json
import os
import platform
import sys
import time

from bench import empty, instructions, lookup, polls, queueing, report, update_progress
from bench.servers import BENCH, ROOT, RedisServer

DEFAULT_OUTPUT = os.path.join(BENCH, "results.json")
PARTS = ("polls", "queue", "empty", "update_progress", "lookup", "instructions")
OPTIONAL = ("ladon", "rq")

#: Full-run sizes; ``--scale`` multiplies them, down to ``MINIMUM``.
SIZES = {
    "polls_seconds": 5.0,       # per point (server, protocol, call, clients), in all
    "polls_rounds": 5,          # every point visited this many times, in turn
    "queue_tasks": 1000,        # tasks through the queue, per worker count
    "queue_latency": 100,       # empty tasks, one at a time
    "empty_tasks": 200,         # per store and way of waiting
    "loop_calls": 1_000_000,    # update_progress calls in the body
    "lookup_fill": 100_000,     # finished tasks stored for the big lookup
    "lookup_polls": 2000,
    "instruction_calls": 1000,  # polls counted under callgrind, per server and protocol
}
MINIMUM = {"polls_seconds": 0.2, "polls_rounds": 1, "queue_tasks": 16,
           "queue_latency": 5, "empty_tasks": 5, "loop_calls": 10_000,
           "lookup_fill": 100, "lookup_polls": 20,
           "instruction_calls": 20}


def scaled(scale):
    sizes = {}
    for name, value in SIZES.items():
        if name == "polls_rounds":
            sizes[name] = value if scale >= 0.5 else 1
            continue
        value = value * scale
        sizes[name] = max(MINIMUM[name], value if isinstance(SIZES[name], float)
                          else int(value))
    return sizes


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
            "platform": platform.platform(),
            "loadavg": " ".join("%.2f" % v for v in os.getloadavg())}


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="The tasktypes benchmark: prints markdown tables for the README's "
                    "Performance section and writes every figure as JSON.")
    parser.add_argument("--only", default=",".join(PARTS),
                        help="comma-separated parts: %s" % ", ".join(PARTS))
    parser.add_argument("--without", default="",
                        help="leave out programs we compare with: %s" % ", ".join(OPTIONAL))
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every count and duration (0.1: a tenth)")
    parser.add_argument("--quick", action="store_true", help="same as --scale 0.1")
    parser.add_argument("--output", default=DEFAULT_OUTPUT,
                        help="where to write the JSON figures (default %(default)s)")
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.only.split(",") if p.strip()]
    args.without = [p.strip() for p in args.without.split(",") if p.strip()]
    for chosen, allowed in ((args.parts, PARTS), (args.without, OPTIONAL)):
        bad = sorted(set(chosen) - set(allowed))
        if bad:
            parser.error("unknown: %s (choose from %s)" % (", ".join(bad), ", ".join(allowed)))
    if args.quick:
        args.scale = 0.1
    if args.scale <= 0:
        parser.error("--scale must be positive")
    return args


def main(argv=None):
    args = parse_args(argv)
    sizes = scaled(args.scale)
    started = time.monotonic()

    def log(message):
        print("[%6.1f s] %s" % (time.monotonic() - started, message), file=sys.stderr,
              flush=True)

    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)  # the shipped service, for the in-process parts
    results = {"machine": machine(),
               "settings": {"scale": args.scale, "parts": args.parts,
                            "without": args.without, "sizes": sizes},
               "polls": {}, "queue": {}, "empty": {}, "update_progress": {}, "lookup": {},
               "instructions": {},
               "unavailable": {}, "targets": []}
    with_ladon = "ladon" not in args.without
    with RedisServer() as redis_server:
        for part in args.parts:
            try:
                if part == "polls":
                    polls.run(sizes, redis_server, results, log, with_ladon)
                elif part == "queue":
                    queueing.run(sizes, redis_server, results, log,
                                 with_rq="rq" not in args.without)
                elif part == "empty":
                    empty.run(sizes, redis_server, results, log, with_ladon)
                elif part == "update_progress":
                    update_progress.run(sizes, redis_server, results, log)
                elif part == "instructions":
                    instructions.run(sizes, results, log, with_ladon)
                else:
                    lookup.run(sizes, redis_server, results, log)
            except Exception as exc:  # one part's failure must not lose the others
                results["unavailable"][part + " (failed)"] = "%s: %s" % (
                    type(exc).__name__, exc)
                log("%s: FAILED: %s: %s" % (part, type(exc).__name__, exc))
    results["targets"] = report.targets(results)
    results["settings"]["wall_seconds"] = round(time.monotonic() - started, 1)
    print(report.markdown(results))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(results, f, indent=1)
            f.write("\n")
        log("figures written to %s" % args.output)
    return results
