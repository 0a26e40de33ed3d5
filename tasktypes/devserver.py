"""The HTTP server of ``python wsgi.py``, tests and the benchmark.

    serve(application, "127.0.0.1", 8000)      # until Ctrl-C or SIGTERM

It is waitress, because no idle or slow client may hold a server thread:
waitress reads each request whole (headers and body) in one event loop and
only then hands it to one of its threads, so 40 sockets that send nothing,
trickle their headers or stall mid-body cost a file descriptor each, not a
thread. A thread-per-connection server (cheroot, which this was) gives each
of them a thread until its socket timeout; an ``echo`` then waited 22 s
behind 60 stalled bodies under cheroot, 10 ms under waitress, and waitress
also spends a little less CPU per request (``python -m bench.servers_compare``).

What waitress lacks, added here:

- A total deadline per request. waitress closes a connection only after
  ``channel_timeout`` seconds WITHOUT activity, so a client sending a byte
  every few seconds keeps its half-read request forever. ``DeadlineServer``
  closes a connection whose request has not arrived whole within
  ``request_timeout`` seconds of its first byte, and one that has not sent
  a byte ``request_timeout`` seconds after it connected (silent sockets
  must not fill the connection limit).
- Refusing ``Content-Length`` together with ``Transfer-Encoding`` (400, then
  the connection is closed with whatever followed): waitress lets chunked
  win, as HTTP allows, but a proxy in front may have read the same bytes by
  the length, and the rest as a second request (request smuggling).
- Its defaults: 100 connections at most through ``select()``, which cannot
  watch descriptors above 1023 (FD_SETSIZE); here ``poll()`` and a limit
  under the process's file limit. At the limit waitress stops accepting and
  new clients wait in the listen backlog until a connection closes. Bodies
  are buffered up to the application's ``max_body`` (beyond it waitress
  answers 413 itself), not waitress's 1 GiB.
- An event loop that asks a connection whether it reads or writes only
  when something may have changed its answer (``tasktypes/poll_loop.py``):
  waitress's own loop asked every open connection twice a request, so
  idle keep-alive connections made every request dearer.

Production deployments use Apache mod_wsgi (``apache/``), where
mod_reqtimeout does the same job.
"""

import resource
import signal
import threading
import time

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError
from waitress.server import TcpWSGIServer

from .defaults import CLEANUP_INTERVAL, IDLE_TIMEOUT, MAX_CONNECTIONS
from .defaults import REQUEST_TIMEOUT as DEFAULT_REQUEST_TIMEOUT, SERVER_THREADS as DEFAULT_THREADS
from .poll_loop import PollLoop


class CannotListen(OSError):
    """The server cannot listen on its address (a port in use, say)."""


class _Parser(HTTPRequestParser):
    def __init__(self, adj):
        super().__init__(adj)
        self.started = time.monotonic()  # first byte of this request

    def parse_header(self, header_plus):
        super().parse_header(header_plus)
        # waitress has already removed Transfer-Encoding from HTTP/1.1
        # headers when it set ``chunked``.
        if "CONTENT_LENGTH" in self.headers and (
                self.chunked or "TRANSFER_ENCODING" in self.headers):
            raise ParsingError("both Content-Length and Transfer-Encoding")


class _Channel(HTTPChannel):
    parser_class = _Parser

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.opened = time.monotonic()
        self.spoke = False  # has the client sent a byte yet?

    def received(self, data):
        self.spoke = True
        return super().received(data)

    def add_channel(self, map=None):
        super().add_channel(map)
        self.server.poll_loop.changed(self._fileno)

    def del_channel(self, map=None):
        fd = self._fileno  # None after
        super().del_channel(map)
        self.server.poll_loop.changed(fd)


class DeadlineServer(TcpWSGIServer):
    """waitress's TCP server, with a total deadline per request."""

    channel_class = _Channel

    def __init__(self, application, request_timeout=DEFAULT_REQUEST_TIMEOUT, **options):
        self.request_timeout = request_timeout
        self.stopping = False
        super().__init__(application, adj=Adjustments(**options))
        self.poll_loop = PollLoop(self)

    def maintenance(self, now):
        super().maintenance(now)  # idle connections
        cutoff = time.monotonic() - self.request_timeout
        for channel in self.active_channels.values():
            request = channel.request  # read, not yet complete
            if request is not None and not channel.requests and request.started < cutoff:
                channel.will_close = True
            elif not channel.spoke and channel.opened < cutoff:
                # connected, and not one byte in request_timeout: the
                # connection limit must not be filled with silent sockets
                channel.will_close = True

    def run(self):
        """Serve until ``stop()``, SIGTERM or Ctrl-C."""
        try:
            while not self.stopping:
                self.poll_loop.once(self.adj.asyncore_loop_timeout)
        except (SystemExit, KeyboardInterrupt):
            pass
        finally:
            self.task_dispatcher.shutdown(timeout=1)
            wasyncore.close_all(self._map)

    def stop(self):
        """Make ``run()`` return (from another thread) within a second."""
        self.stopping = True
        try:
            self.pull_trigger()  # at once
        except OSError:
            pass  # the loop has ended, or sees ``stopping`` within its 1 s poll


def make_server(application, host="127.0.0.1", port=8000, threads=DEFAULT_THREADS,
                request_timeout=DEFAULT_REQUEST_TIMEOUT):
    """A ``DeadlineServer`` listening on ``host:port`` (port 0: any free
    one); ``CannotListen`` if it cannot."""
    max_body = getattr(application, "max_body", None)  # TaskTypesApplication's
    options = dict(
        host=host, port=port, threads=threads, server_name=host, ident="tasktypes",
        connection_limit=_connection_limit(), asyncore_use_poll=True,
        channel_timeout=IDLE_TIMEOUT,
        cleanup_interval=CLEANUP_INTERVAL,
        # A client that drops its connection is not the server's error.
        log_socket_errors=False)
    if max_body:
        options["max_request_body_size"] = max_body + 1  # waitress refuses >= this
    try:
        return DeadlineServer(application, request_timeout, **options)
    except OSError as exc:
        raise CannotListen(exc.errno, "cannot listen on %s:%d: %s"
                           % (host, port, exc.strerror or exc)) from None


def _connection_limit():
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    # leave descriptors for the store, its workers, logs and Redis
    return max(16, min(MAX_CONNECTIONS, soft - 100))


def serve(application, host="127.0.0.1", port=8000, threads=DEFAULT_THREADS,
          request_timeout=DEFAULT_REQUEST_TIMEOUT, ready=None):
    """Serve until Ctrl-C or SIGTERM, then close the application (its store
    reports its tasks instead of leaving them to a heartbeat that stops).
    ``ready(url)`` is called once the server listens; ``CannotListen`` if it
    cannot."""
    try:
        server = make_server(application, host, port, threads, request_timeout)
    except CannotListen:
        application.close()
        raise
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        if ready is not None:
            ready("http://%s:%s" % (host, server.effective_port))
        server.run()
    finally:
        application.close()


def _exit_on_sigterm(signum, frame):
    raise SystemExit(0)  # DeadlineServer.run stops on SystemExit


class BackgroundServer:
    """A server on a thread of this process, for tests and benchmarks.

        with BackgroundServer(application) as url:
            requests.get(url + "/soap?wsdl")
    """

    def __init__(self, application, host="127.0.0.1", port=0, threads=DEFAULT_THREADS,
                 request_timeout=DEFAULT_REQUEST_TIMEOUT):
        self.server = make_server(application, host, port, threads, request_timeout)

    def __enter__(self):
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        return "http://%s:%s" % (self.server.effective_host, self.server.effective_port)

    def __exit__(self, *exc):
        self.server.stop()
        self.thread.join(5)
