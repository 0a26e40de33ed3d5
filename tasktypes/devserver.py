"""A multi-threaded HTTP server for development and tests.

cheroot (CherryPy's server) answers progress polls while other requests are
in flight, and costs far less per request than ``wsgiref`` with
``ThreadingMixIn``. Production deployments use Apache mod_wsgi (``apache/``).

    serve(application, "127.0.0.1", 8000)      # until Ctrl-C or SIGTERM
"""

import signal
import threading

from cheroot.wsgi import Server

#: Server threads; each waiting ``m_wait`` holds one.
DEFAULT_THREADS = 32


def make_server(application, host="127.0.0.1", port=8000, threads=DEFAULT_THREADS):
    server = Server((host, port), application, numthreads=threads,
                    server_name="tasktypes")
    # Bodies are limited by the application (TASKTYPES_MAX_BODY, HTTP 413);
    # cheroot's own limit would answer first with a bare page.
    server.max_request_body_size = 0
    # Idle keep-alive connections must not hold up a stop for long.
    server.shutdown_timeout = 1
    # cheroot closes idle keep-alive connections beyond 10 by default, and a
    # client that sent its next poll just then sees "connection reset".
    server.keep_alive_conn_limit = 1024
    server.request_queue_size = 128
    return server


def serve(application, host="127.0.0.1", port=8000, threads=DEFAULT_THREADS):
    """Serve until Ctrl-C or SIGTERM, then close the application (its store
    reports its tasks instead of leaving them to a heartbeat that stops)."""
    server = make_server(application, host, port, threads)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        server.safe_start()
    finally:
        application.close()


def _exit_on_sigterm(signum, frame):
    raise SystemExit(0)  # cheroot's safe_start stops the server on SystemExit


class BackgroundServer:
    """A server on a thread of this process, for tests and benchmarks.

        with BackgroundServer(application) as url:
            requests.get(url + "/soap?wsdl")
    """

    def __init__(self, application, host="127.0.0.1", port=0, threads=DEFAULT_THREADS):
        self.server = make_server(application, host, port, threads)

    def __enter__(self):
        self.server.prepare()
        host, port = self.server.bind_addr[:2]
        self.thread = threading.Thread(target=self.server.serve, daemon=True)
        self.thread.start()
        return "http://%s:%d" % (host, port)

    def __exit__(self, *exc):
        self.server.stop()
        self.thread.join(5)
