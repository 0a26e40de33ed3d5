"""Part ``instructions``: what a progress poll costs the server, counted in
instructions by valgrind's callgrind over the whole server process (every
thread: waitress's loop, its handler threads, the application).

Server CPU (part ``polls``) is the figure the targets are stated in, but on
a shared VM it moves by ±20 % between rounds, and much of it is the
kernel's, the same for every server behind the same dev server. An
instruction count is the same from run to run, whatever else the machine
does (``valgrind --tool=callgrind``, "seen here: the same total twice, once
with the other core loaded"), so it says what the application itself adds.

Servers, each started under callgrind behind the same dev server, one at a
time, instrumentation switched on only after start-up (``--instr-atstart=no``,
then ``callgrind_control --instr=on``: imports are not counted and go
faster):

- ``noop``: the do-nothing application, sent each poll's own request bytes
  (the floor: what the server costs to receive that body and answer);
- ``tasktypes/thread``: ``python wsgi.py``, a poll of a finished task over
  JSON-RPC and over SOAP;
- ``ladon``: Ladon 1.0.7's poll over its JSON-RPC 1.0 and SOAP 1.1;
- ``idle``: the floor's JSON-RPC poll once more, beside 100 idle keep-alive
  connections (each has made one request): what an open connection adds to
  every request (``tasktypes/poll_loop.py`` does not ask idle ones: a few
  hundred instructions each, ``poll()``'s array, against ~8,600 when
  waitress's own loop asked every connection twice a request).

Per call: warm-up requests, ``callgrind_control --zero``, ``calls`` requests
from one client on one keep-alive connection, ``callgrind_control --dump``;
the dump's total divided by ``calls``. Where valgrind is not installed the
part is reported unavailable (Debian: ``apt-get install valgrind``).
"""

import glob
import os
import shutil
import signal
import subprocess
import tempfile

from bench import servers, venvs
from bench.client import Client, finished_task

#: Requests before counting: imports done on first use, caches filled.
WARMUP = 50
#: The protocols whose polls are counted, per server.
PROTOCOLS = {"tasktypes/thread": ("jsonrpc", "soap"), "ladon": ("ladon", "ladon-soap")}
#: Our protocol -> Ladon's, for the same poll.
LADON_PEER = {"jsonrpc": "ladon", "soap": "ladon-soap"}
#: Idle keep-alive connections beside the floor's poll, counted once more.
IDLE_CONNECTIONS = 100
#: Seconds one ``callgrind_control`` command may take.
CONTROL_TIMEOUT = 120


def unavailable():
    """Why this part cannot run here, or None."""
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            return "%s is not installed (Debian: apt-get install valgrind)" % tool
    return None


def run(sizes, results, log, with_ladon=True):
    """Fill ``results["instructions"]``: {server: {protocol: figures}}."""
    reason = unavailable()
    if reason:
        results["unavailable"]["instructions"] = reason
        log("instructions: unavailable: %s" % reason)
        return
    calls = sizes["instruction_calls"]
    entry = results["instructions"]
    entry["calls"] = calls
    names = ["tasktypes/thread"]
    if with_ladon:
        reason = venvs.ensure_ladon(log)
        if reason:
            results["unavailable"]["ladon"] = reason
        else:
            names.append("ladon")
    names.append("noop")  # last: it is sent every poll's bytes
    requests = {}
    with tempfile.TemporaryDirectory(prefix="tasktypes-callgrind-") as out_dir:
        for name in names:
            log("instructions: %s under callgrind, %d polls a protocol" % (name, calls))
            under = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                     "--callgrind-out-file=%s/%s.%%p" % (out_dir, name.replace("/", "-"))]
            server = (servers.noop_server(under) if name == "noop"
                      else servers.ladon_server(under) if name == "ladon"
                      else servers.tasktypes_server("thread", under=under))
            try:
                if name != "noop":
                    for protocol in PROTOCOLS[name]:
                        requests[protocol] = _poll(server, protocol)
                _control(server, "--instr=on")
                for protocol in (requests if name == "noop" else PROTOCOLS[name]):
                    total = _count(server, "noop" if name == "noop" else protocol,
                                   requests[protocol], calls, out_dir)
                    entry.setdefault(name, {})[protocol] = {
                        "instructions_per_call": round(total / calls)}
                if name == "noop" and "jsonrpc" in requests:
                    entry["idle"] = _beside_idle(server, requests["jsonrpc"], calls, out_dir)
            finally:
                server.stop()
    compare(entry)


def _count(server, protocol, request, calls, out_dir):
    """Instructions the server executed for ``calls`` of ``request``, sent
    one after the other on one connection, after ``WARMUP`` uncounted."""
    client = Client(server.url, protocol)
    try:
        for _ in range(WARMUP):
            client.send(request)
        _control(server, "--zero")
        for _ in range(calls):
            answer = client.send(request)
        total = _dump_total(server, out_dir)
        client.parse(answer)  # CallError if the counted polls were faults
        return total
    finally:
        client.close()


def _beside_idle(server, request, calls, out_dir):
    """The floor's JSON-RPC poll again, with ``IDLE_CONNECTIONS`` other
    keep-alive connections open that have each made one request and then
    wait: what every open connection adds to each request."""
    idle = []
    try:
        for _ in range(IDLE_CONNECTIONS):
            idle.append(Client(server.url, "noop"))
            idle[-1].send(request)
        total = _count(server, "noop", request, calls, out_dir)
    finally:
        for client in idle:
            client.close()
    return {"connections": IDLE_CONNECTIONS, "instructions_per_call": round(total / calls)}


def _poll(server, protocol):
    """The request bytes of a progress poll of a finished task, answered once."""
    client = Client(server.url, protocol)
    try:
        request = client.request("countdown_progress", finished_task(client))
        client.parse(client.send(request))  # CallError on a fault
        return request
    finally:
        client.close()


def _control(server, command):
    """One ``callgrind_control`` command to ``server``: it exits 0 whatever
    happened (valgrind 3.19), so its "OK." is what says it was done. In a
    session of its own, so that a timeout ends the ``vgdb`` it runs too."""
    control = subprocess.Popen(["callgrind_control", command, str(server.pid)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output, _ = control.communicate(timeout=CONTROL_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(control.pid, signal.SIGKILL)
        control.communicate()
        raise RuntimeError("callgrind_control %s did not answer in %d s"
                           % (command, CONTROL_TIMEOUT)) from None
    if "OK." not in output:
        raise RuntimeError("callgrind_control %s failed: %s" % (command, output.strip()))


def _dump_total(server, out_dir):
    """Dump the counters of ``server`` and return the dump's total."""
    before = set(glob.glob(os.path.join(out_dir, "*")))
    _control(server, "--dump")
    dumps = set(glob.glob(os.path.join(out_dir, "*"))) - before
    if len(dumps) != 1:
        raise RuntimeError("callgrind wrote %d dumps, not one" % len(dumps))
    with open(dumps.pop()) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
                if total <= 0:
                    raise RuntimeError("callgrind counted nothing: is it instrumenting?")
                return total
    raise RuntimeError("no total in callgrind's dump")


def compare(entry):
    """Instructions above the floor (the do-nothing application sent the
    same bytes), and Ladon's instructions per poll over ours."""
    floor = entry.get("noop", {})
    ladon = entry.get("ladon", {})
    if "idle" in entry and "jsonrpc" in floor:
        entry["idle"]["x_floor"] = round(entry["idle"]["instructions_per_call"]
                                         / floor["jsonrpc"]["instructions_per_call"], 2)
    for name in ("tasktypes/thread", "ladon"):
        for protocol, figures in entry.get(name, {}).items():
            if protocol in floor:
                figures["above_floor"] = (figures["instructions_per_call"]
                                          - floor[protocol]["instructions_per_call"])
    for protocol, figures in entry.get("tasktypes/thread", {}).items():
        peer = ladon.get(LADON_PEER[protocol])
        if peer:
            figures["x_ladon"] = round(peer["instructions_per_call"]
                                       / figures["instructions_per_call"], 2)
            if "above_floor" in figures and "above_floor" in peer:
                figures["x_ladon_above_floor"] = round(
                    peer["above_floor"] / figures["above_floor"], 2)
