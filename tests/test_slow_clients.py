"""``python wsgi.py`` against idle, slow and smuggling clients, over raw sockets.

What these guard: the dev server reads every request whole, under a total
deadline, before a thread takes it (tasktypes/devserver.py), so 40 sockets
that send nothing, trickle their headers or stall mid-body leave a plain
``echo`` from another client answered at once; ``m_wait`` calls beyond
``TASKTYPES_MAX_WAITERS`` get ``Server.Busy`` instead of the last threads; a
request with both ``Content-Length`` and ``Transfer-Encoding`` is refused and
its connection closed; a taken port is a one-line error.

Timings are asserted with generous bounds (the test machine is shared); the
figures measured are printed (``pytest -s``).
"""

import json
import os
import select
import socket
import subprocess
import sys
import time

import pytest

from tasktypes.decorator import DEFAULT_MAX_WAITERS
from tasktypes.devserver import DEFAULT_THREADS
from tasktypes.config import ConfigError, Settings
from tasktypes.testing import ServerProcess

from conftest import ROOT, JsonRpcError, jsonrpc, wait_until

# Once: the dev server's (waitress's) handling of slow and idle sockets, the
# same whatever Python runs it; CI time.
pytestmark = pytest.mark.once

ATTACKERS = 40
REQUEST_TIMEOUT = 3.0  # the server's total deadline per request, in these tests
MAX_WAITERS = 8
PROMPT = 2.0  # an echo slower than this was held up (its usual time: ~2 ms)


@pytest.fixture
def server():
    """``python wsgi.py`` with a short request deadline and 8 waiters."""
    proc = ServerProcess(
        "python wsgi.py",
        [sys.executable, os.path.join(ROOT, "wsgi.py"), "--port", "@PORT@",
         "--request-timeout", str(REQUEST_TIMEOUT)],
        {"PYTHONUNBUFFERED": "1", "TASKTYPES_MAX_WAITERS": str(MAX_WAITERS)},
        cwd=ROOT, start_timeout=30)
    jsonrpc(proc.url, "echo", "warm-up")  # spyne's first call is slower
    yield proc
    proc.stop()


def echo_seconds(url, count=5):
    """The slowest of ``count`` echo calls, each on a new connection."""
    slowest = 0.0
    for i in range(count):
        started = time.monotonic()
        assert jsonrpc(url, "echo", "ping %d" % i) == "ping %d" % i
        slowest = max(slowest, time.monotonic() - started)
    return slowest


def connect(server, count=ATTACKERS):
    return [socket.create_connection(("127.0.0.1", server.port), 10) for _ in range(count)]


def closed_by_server(sock):
    """True once the server has closed ``sock`` (without blocking)."""
    if not select.select([sock], [], [], 0)[0]:
        return False
    try:
        return sock.recv(65536) == b""
    except OSError:
        return True


def request_bytes(method, params, request_id=1, extra_headers=""):
    body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params,
                       "id": request_id}).encode()
    return ("POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\n%s\r\n" % (len(body), extra_headers)).encode() + body


def attack_report(name, baseline, during):
    print("\n%s: echo %.1f ms before, %.1f ms (slowest of 5) with %d attackers"
          % (name, baseline * 1000, during * 1000, ATTACKERS))


def test_idle_sockets_leave_echo_prompt(server):
    baseline = echo_seconds(server.url)
    socks = connect(server)
    try:
        during = echo_seconds(server.url)
    finally:
        for sock in socks:
            sock.close()
    attack_report("idle sockets", baseline, during)
    assert during < PROMPT


def test_header_tricklers_are_cut_off_by_the_total_deadline(server):
    """One byte every 0.5 s: never idle long enough for an inactivity
    timeout (60 s), so only a deadline for the whole request stops them."""
    baseline = echo_seconds(server.url)
    head = request_bytes("echo", ["x"])
    socks = connect(server)
    started = time.monotonic()
    sent = 0
    during = None
    open_socks = list(socks)
    try:
        while open_socks and time.monotonic() - started < 30:
            for sock in list(open_socks):
                if closed_by_server(sock):
                    open_socks.remove(sock)
                    continue
                try:
                    sock.send(head[sent:sent + 1])
                except OSError:
                    open_socks.remove(sock)
            sent += 1
            if during is None and sent == 3:  # every socket has a request begun
                during = echo_seconds(server.url)
            time.sleep(0.5)
        cut_after = time.monotonic() - started
    finally:
        for sock in socks:
            sock.close()
    attack_report("header tricklers", baseline, during)
    print("tricklers cut off after %.1f s (deadline %.0f s, %d bytes each)"
          % (cut_after, REQUEST_TIMEOUT, sent))
    assert during < PROMPT
    assert not open_socks, "%d tricklers still connected after 30 s" % len(open_socks)
    assert sent < len(head), "a trickler got its whole request through"
    assert cut_after >= REQUEST_TIMEOUT - 0.5


def test_stalled_bodies_leave_echo_prompt_and_are_cut_off(server):
    baseline = echo_seconds(server.url)
    request = request_bytes("echo", ["x" * 1000])
    socks = connect(server)
    try:
        for sock in socks:
            sock.sendall(request[:-500])  # headers and half the body, then nothing
        during = echo_seconds(server.url)
        wait_until(lambda: all(closed_by_server(s) for s in socks), 30, 0.2)
    finally:
        for sock in socks:
            sock.close()
    attack_report("stalled bodies", baseline, during)
    assert during < PROMPT


def read_reply(sock, timeout):
    """One HTTP reply's JSON body from ``sock``, or None if none came in time."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        while len(body) < length:
            body += sock.recv(65536)
    except socket.timeout:
        return None
    return json.loads(body)


def test_waits_beyond_max_waiters_are_busy_and_echo_stays_prompt(server):
    task_id = jsonrpc(server.url, "countdown", 60, 1.0)["task_id"]
    baseline = echo_seconds(server.url)
    socks = connect(server)
    try:
        for i, sock in enumerate(socks):
            sock.sendall(request_bytes("countdown_wait", [task_id, 25.0], i))
        during = echo_seconds(server.url)
        # Busy comes at once; the waits that got a slot answer after 25 s.
        deadline = time.monotonic() + 10
        replies = [read_reply(sock, max(0.05, deadline - time.monotonic()))
                   for sock in socks]
    finally:
        jsonrpc(server.url, "countdown_cancel", task_id)
        for sock in socks:
            sock.close()
    attack_report("pending m_wait calls", baseline, during)
    busy = [r for r in replies if r is not None]
    assert len(busy) == ATTACKERS - MAX_WAITERS, replies
    for reply in busy:
        assert reply["error"]["code"] == -32011, reply
        assert reply["error"]["data"]["faultcode"] == "Server.Busy", reply
    assert during < PROMPT


def test_waits_that_hold_no_thread_are_answered_when_every_slot_is_taken(server):
    """``m_wait(id, 0)`` and an ``m_wait`` of a finished task answer at once:
    they hold no server thread, so they need no slot, and a client gets its
    answer even while ``MAX_WAITERS`` calls wait (a wait that would wait
    gets ``Server.Busy``)."""
    running = jsonrpc(server.url, "countdown", 60, 1.0)["task_id"]
    done = jsonrpc(server.url, "countdown", 0, 0.0)["task_id"]
    wait_until(lambda: jsonrpc(server.url, "countdown_progress", done)["status"] == "done")
    socks = connect(server, MAX_WAITERS + 1)
    try:
        for i, sock in enumerate(socks):
            sock.sendall(request_bytes("countdown_wait", [running, 25.0], i))
        # one of them is Busy at once: the other MAX_WAITERS hold every slot
        ready, _, _ = select.select(socks, [], [], 10)
        assert len(ready) == 1, ready
        reply = read_reply(ready[0], 5)
        assert reply["error"]["data"]["faultcode"] == "Server.Busy", reply
        started = time.monotonic()
        now = jsonrpc(server.url, "countdown_wait", running, 0)
        assert (now["task_id"], now["status"]) == (running, "running")
        finished = jsonrpc(server.url, "countdown_wait", done, 20.0)
        assert (finished["task_id"], finished["status"]) == (done, "done")
        assert time.monotonic() - started < PROMPT
        with pytest.raises(JsonRpcError) as busy:  # a wait that would wait
            jsonrpc(server.url, "countdown_wait", running, 0.5)
        assert busy.value.data["faultcode"] == "Server.Busy"
    finally:
        jsonrpc(server.url, "countdown_cancel", running)
        for sock in socks:
            sock.close()


def test_default_max_waiters_leave_the_dev_server_threads():
    assert Settings.from_environ({}).max_waiters == DEFAULT_MAX_WAITERS
    assert DEFAULT_MAX_WAITERS <= DEFAULT_THREADS // 2
    assert Settings.from_environ({"TASKTYPES_MAX_WAITERS": "4"}).max_waiters == 4
    for bad in ("0", "-1", "2.5", "many"):
        with pytest.raises(ConfigError) as info:
            Settings.from_environ({"TASKTYPES_MAX_WAITERS": bad})
        assert "TASKTYPES_MAX_WAITERS" in str(info.value)


def read_until_closed(sock, timeout=10):
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_length_and_chunked_together_are_refused_and_the_rest_not_read(server, version):
    """Request smuggling: a proxy that goes by Content-Length would take the
    smuggled request below as body; a server that goes by chunked would
    serve it as a second request on the same keep-alive connection."""
    smuggled = b"GET /soap?wsdl HTTP/1.1\r\nHost: x\r\n\r\n"
    body = b"0\r\n\r\n" + smuggled
    head = ("POST /jsonrpc HTTP/%s\r\nHost: x\r\nConnection: keep-alive\r\n"
            "Content-Type: application/json\r\nContent-Length: %d\r\n"
            "Transfer-Encoding: chunked\r\n\r\n" % (version, len(body))).encode()
    with socket.create_connection(("127.0.0.1", server.port), 10) as sock:
        sock.sendall(head + body)
        answer = read_until_closed(sock)  # the server closes the connection
    assert answer.startswith(b"HTTP/1.%s 400 " % version[-1:].encode()), answer[:200]
    assert answer.count(b"HTTP/1.") == 1, answer  # one reply: no WSDL
    assert b"definitions" not in answer
    assert echo_seconds(server.url, 1) < PROMPT


def test_a_bad_chunk_size_is_400(server):
    with socket.create_connection(("127.0.0.1", server.port), 10) as sock:
        sock.sendall(b"POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"zz\r\n{}\r\n0\r\n\r\n")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]


def test_keep_alive_requests_still_work(server):
    """The refusals above leave ordinary keep-alive traffic alone."""
    with socket.create_connection(("127.0.0.1", server.port), 10) as sock:
        for i in range(3):
            sock.sendall(request_bytes("echo", ["k%d" % i], i))
            assert read_reply(sock, 10)["result"] == "k%d" % i


def test_a_port_in_use_is_a_one_line_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, os.path.join(ROOT, "wsgi.py"),
                               "--port", str(port)],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode != 0
    output = (done.stdout + done.stderr).strip()
    assert "serving on" not in output
    assert "Traceback" not in output
    assert len(output.splitlines()) == 1, output
    assert str(port) in output and "--port" in output, output
