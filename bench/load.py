"""Load generation: ``clients`` threads of this process, each on its own
keep-alive connection, sending one pre-built request for ``seconds``; the
server's CPU is read just before the threads start and just after they
stop, this process's CPU over the same span.

    figures = run_load(url, "jsonrpc", request, clients=8, seconds=2,
                       cpu={"server": lambda: session_cpu_seconds(server.pid)})
    figures["cpu_s"]["server"], figures["client_cpu_s"]

The benchmark pins this process to one CPU and the servers to the other
(``bench/procstat.py``); ``client_busy`` (client CPU over wall time, 1.0 =
one CPU) shows whether the client, not the server, was the limit.
"""

import threading
import time

from bench.client import CallError, Client
from bench.procstat import own_cpu_seconds

#: Every this many answers a client thread parses one: a fault would be a
#: cheap call, and must be counted.
CHECK_EVERY = 25


def run_load(url, protocol, request, clients, seconds, cpu):
    """Calls answered, errors, wall seconds, the CPU seconds that each
    reader of ``cpu`` ({name: function}) saw pass, the client's CPU seconds."""
    counts = [0] * clients
    errors = [0] * clients
    failures = []
    ready = threading.Barrier(clients + 1)
    go = threading.Event()
    stop_at = [0.0]

    def run(n):
        try:
            client = Client(url, protocol)
            client.parse(client.send(request))  # connected, warm, and a real answer
        except Exception as exc:  # one that cannot start must not hang the others
            failures.append("%s: %s" % (type(exc).__name__, exc))
            ready.abort()
            return
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            return
        go.wait()
        end = stop_at[0]
        send, clock = client.send, time.monotonic
        count = failed = 0
        while clock() < end:
            try:
                answer = send(request)
            except (OSError, EOFError, CallError):
                failed += 1
                continue
            count += 1
            if count % CHECK_EVERY == 0:
                try:
                    client.parse(answer)
                except CallError:
                    failed += 1
        counts[n], errors[n] = count, failed
        client.close()

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    try:
        ready.wait(60)
    except threading.BrokenBarrierError:
        raise RuntimeError("a client could not start: %s"
                           % (failures or ["timed out"])[0]) from None
    before = {name: read() for name, read in cpu.items()}
    client_before = own_cpu_seconds()
    started = time.monotonic()
    stop_at[0] = started + seconds
    go.set()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    client_cpu = own_cpu_seconds() - client_before
    return {"calls": sum(counts), "errors": sum(errors), "wall_s": wall,
            "cpu_s": {name: read() - before[name] for name, read in cpu.items()},
            "client_cpu_s": client_cpu}
