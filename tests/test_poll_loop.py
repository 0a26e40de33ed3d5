"""The dev server's event loop (``tasktypes/poll_loop.py``), which asks a
connection whether it wants to read or write only when something may have
changed its answer, against every way a connection's answer changes.

A connection the loop forgot to ask again would wait for the next
maintenance pass (each second), which would hide the mistake: here that
pass runs once an hour, and every socket times out after 5 s, so a
forgotten connection fails its test.
"""

import http.client
import json
import socket
import threading
import time

import pytest

from tasktypes import devserver
from tasktypes.devserver import BackgroundServer

from conftest import wait_until

TIMEOUT = 5.0  # seconds a client waits for an answer before failing
BIG = 8 * 1024 * 1024  # a response larger than any socket buffer here
IDLE = 100
REQUESTS = 200


def application(environ, start_response):
    """Echoes the body; ``/big``: 8 MiB; ``/slow``: answers after 0.3 s."""
    body = environ["wsgi.input"].read()
    path = environ["PATH_INFO"]
    if path == "/big":
        body = b"x" * BIG
    elif path == "/slow":
        time.sleep(0.3)
        body = b"slow"
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(body)))])
    return [body]


class Server:
    def __init__(self, background, url):
        self.background, self.url = background, url
        self.port = int(url.rsplit(":", 1)[1])
        self.loop = background.server.poll_loop

    def connect(self, receive_buffer=None):
        sock = socket.socket()
        if receive_buffer:  # before connecting: the window is set then
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.settimeout(TIMEOUT)
        sock.connect(("127.0.0.1", self.port))
        return sock

    def http(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)

    def only_listening(self):
        """Every connection closed is forgotten: only the listener and the
        trigger stay registered."""
        return set(self.loop.registered) == {self.loop.listener, self.loop.trigger_fd}


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setattr(devserver, "CLEANUP_INTERVAL", 3600)
    background = BackgroundServer(application)
    with background as url:
        yield Server(background, url)


def request(path="/", body=b"", headers=""):
    return (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n"
            % (path.encode(), len(body), headers.encode()) + body)


class Reader:
    """Responses read off a raw socket one by one (pipelined ones too)."""

    def __init__(self, sock):
        self.sock, self.buffer = sock, b""

    def _fill(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError("the server closed the connection")
        self.buffer += data

    def head(self):
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return head

    def response(self):
        head = self.head()
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return head.split(b"\r\n")[0], body


def echo(conn, text):
    conn.request("POST", "/", text.encode())
    return conn.getresponse().read().decode()


def test_idle_connections_are_not_asked_on_every_request(server, monkeypatch):
    # waitress's own loop asked every open connection whether it wanted to
    # read or write twice a request, so each idle keep-alive connection
    # taxed every request (~4,300 instructions; python -m bench --only
    # instructions counts a request beside 100 idle ones): count the asks.
    asks = []
    readable = devserver._Channel.readable

    def counted(channel):
        asks.append(channel)
        return readable(channel)

    monkeypatch.setattr(devserver._Channel, "readable", counted)
    idle = [server.http() for _ in range(IDLE)]
    for i, conn in enumerate(idle):  # each has spoken: a keep-alive connection
        assert echo(conn, "idle %d" % i) == "idle %d" % i
    busy = server.http()
    del asks[:]
    for i in range(REQUESTS):
        assert echo(busy, str(i)) == str(i)
    asked = len(asks)
    # A few asks a request, of its own connection (maintenance is off);
    # waitress's loop: 2 x (IDLE + 1) a request, ~40,000 here.
    print("\n%d asks for %d requests beside %d idle connections" % (asked, REQUESTS, IDLE))
    assert asked <= REQUESTS * 4
    for i, conn in enumerate(idle):  # still watched: each is answered
        assert echo(conn, "again %d" % i) == "again %d" % i
    for conn in idle + [busy]:
        conn.close()
    wait_until(server.only_listening, timeout=TIMEOUT)


def test_eight_clients_at_once(server):
    failures = []

    def client(n):
        conn = server.http()
        try:
            for i in range(300):
                text = "%d-%d" % (n, i)
                if echo(conn, text) != text:
                    failures.append(text)
        except OSError as exc:
            failures.append(repr(exc))
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    wait_until(server.only_listening, timeout=TIMEOUT)


def test_pipelined_requests_are_answered_in_order(server):
    sock = server.connect()
    reader = Reader(sock)
    sock.sendall(request("/slow") + request(body=b"two") + request(body=b"three"))
    assert [reader.response() for _ in range(3)] == [
        (b"HTTP/1.1 200 OK", b"slow"), (b"HTTP/1.1 200 OK", b"two"),
        (b"HTTP/1.1 200 OK", b"three")]
    sock.sendall(request(body=b"after"))  # the connection is still read
    assert reader.response() == (b"HTTP/1.1 200 OK", b"after")
    sock.close()


def test_a_large_response_to_a_slow_reader(server):
    # More than the socket buffers hold: the handler thread's send stops
    # short and the loop must take over the writing.
    sock = server.connect(receive_buffer=4096)
    reader = Reader(sock)
    sock.sendall(request("/big"))
    time.sleep(0.5)  # the buffers fill; nobody reads
    status, body = reader.response()
    assert status == b"HTTP/1.1 200 OK" and body == b"x" * BIG
    sock.sendall(request(body=b"next"))
    assert reader.response() == (b"HTTP/1.1 200 OK", b"next")
    sock.close()


def test_expect_100_continue(server):
    sock = server.connect()
    reader = Reader(sock)
    sock.sendall(request(body=b"", headers="Expect: 100-continue\r\n")
                 .replace(b"Content-Length: 0", b"Content-Length: 4"))
    assert reader.head() == b"HTTP/1.1 100 Continue"
    sock.sendall(b"body")
    assert reader.response() == (b"HTTP/1.1 200 OK", b"body")
    # behind a request still in a thread: the thread that finishes it sends
    # the next one's 100 Continue
    sock.sendall(request("/slow") + request(body=b"", headers="Expect: 100-continue\r\n")
                 .replace(b"Content-Length: 0", b"Content-Length: 5"))
    assert reader.response() == (b"HTTP/1.1 200 OK", b"slow")
    assert reader.head() == b"HTTP/1.1 100 Continue"
    sock.sendall(b"later")
    assert reader.response() == (b"HTTP/1.1 200 OK", b"later")
    sock.close()


def test_a_client_gone_mid_request_is_forgotten(server):
    for _ in range(5):
        sock = server.connect()
        sock.sendall(request("/slow"))
        sock.close()
    conn = server.http()
    assert echo(conn, "still") == "still"
    conn.close()
    wait_until(server.only_listening, timeout=TIMEOUT)
