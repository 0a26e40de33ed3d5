"""Service classes -> one WSGI application: SOAP 1.1 at ``/soap`` (WSDL at
``/soap?wsdl``), JSON-RPC 2.0 at ``/jsonrpc`` (its OpenRPC document at
``/openrpc.json`` and as ``rpc.discover``), the browser helper and pages
(``/static/``, ``/``: tasktypes.web) and, with an operator token, the task
list (``/tasks``, ``/dashboard``: tasktypes.tasklist).

    application = make_application([TaskService], store=ThreadStore())

Around spyne this adds what a public endpoint needs: request bodies are
limited before they are read (HTTP 413, the same limit for SOAP and
JSON-RPC); a Host header that is not a host name or address, and a body with
both Content-Length and Transfer-Encoding, get HTTP 400; SOAP bodies are read
by ``tasktypes.xmlinput`` (encodings, no DTD, bounded structure); the WSDL's
``soap:address`` is the configured public URL or the request's own address,
never whatever Host header came first; and spyne's logs stay one readable
line per bad request.
"""

import ctypes
import gc
import io
import logging
import re
import time

from spyne import Application, Fault

from .jsonrpc import DEFAULT_MAX_BATCH, JsonRpc20, JsonRpcApplication
from .soap import SOAP_PATH, FastSoap11, SafeSoap11, SoapApplication
from .decorator import DEFAULT_MAX_WAIT, DEFAULT_MAX_WAITERS, WaitSlots
from .errors import TaskError, is_client_fault
from .idempotency import ENVIRON_KEY as IDEMPOTENCY_ENVIRON_KEY
from .idempotency import check_header as check_idempotency_key
from .direct import direct_methods
from .direct_soap import DirectSoap
from .openrpc import DISCOVER, openrpc_json
from .store import ThreadStore
from .web import STATIC_PATH, StaticFiles, page
from .tasklist import DASHBOARD_PATH, TASKS_PATH, TaskListApplication
from .defaults import LARGE_BODY as _LARGE_BODY, RELEASE_EVERY as _RELEASE_EVERY
from .defaults import MAX_BODY as DEFAULT_MAX_BODY, TNS as DEFAULT_TNS

logger = logging.getLogger(__name__)

JSONRPC_PATH = "/jsonrpc"
OPENRPC_PATH = "/openrpc.json"

#: A Host header: a host name or an IPv4 or bracketed IPv6 address, with an
#: optional port. Anything else (control characters, spaces, quotes) would
#: be echoed into the WSDL's address.
_HOST = re.compile(r"(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])"
                   r"(?::[0-9]{1,5})?\Z")

#: Host headers that matched _HOST, so that the clients' usual one or two
#: skip the match; a few dozen at most, whatever the clients send.
_GOOD_HOSTS = set()
_GOOD_HOSTS_KEPT = 32


try:
    _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
except (OSError, AttributeError):  # not glibc
    _malloc_trim = None


def _content_length(environ):
    """The body's length from CONTENT_LENGTH, or 0 if it has none or it is
    not a plain decimal number (the caller refuses those)."""
    length = environ.get("CONTENT_LENGTH") or ""
    if not (length.isascii() and length.isdigit()):
        return 0
    return int(length) if len(length) <= _MAX_LENGTH_DIGITS else 10 ** _MAX_LENGTH_DIGITS


#: Digits of the longest Content-Length read as a number: more is over any
#: limit (and Python refuses to read an int of over 4300 digits).
_MAX_LENGTH_DIGITS = 18


#: Digits of _LARGE_BODY: a Content-Length of fewer cannot be over it.
_LARGE_DIGITS = len(str(_LARGE_BODY))

_released = [0.0]  # monotonic time of the last release


def _release_memory():
    """Give the memory a large request used back to the system, at once.

    Two things keep it otherwise: a request leaves reference cycles (spyne's
    contexts, the frames of a fault) that hold its parsed document and
    response until the cyclic collector happens to run, which after a few
    large requests may be hundreds of MB later; and glibc keeps what a
    thread freed in that thread's arena. A full collection and
    ``malloc_trim`` cost a few ms with a small heap, more with a large one,
    so they run after bodies over ``_LARGE_BODY`` only, and at most once per
    ``_RELEASE_EVERY`` seconds whatever the clients send."""
    now = time.monotonic()
    if now - _released[0] < _RELEASE_EVERY:
        return
    _released[0] = now
    gc.collect()
    if _malloc_trim is not None:
        _malloc_trim(0)


class _ReleaseAfter:
    """A WSGI response that releases memory once the server is done with it
    (the server calls ``close`` after it has sent the last byte)."""

    def __init__(self, result):
        self.result = result

    def __iter__(self):
        return iter(self.result)

    def close(self):
        close = getattr(self.result, "close", None)
        if close is not None:
            close()
        _release_memory()


class TaskTypesApplication:
    """The WSGI application: mounts by path and limits body sizes."""

    def __init__(self, mounts, store, max_body):
        self.mounts = mounts
        self.store = store
        self.max_body = max_body
        self._warned = False

    def __call__(self, environ, start_response):
        if not self._warned:
            self._warn_if_multiprocess(environ)
        path = environ.get("PATH_INFO") or "/"
        if path[-1] != "/":  # the usual case: a mount by its own name
            app = self.mounts.get(path) or self._by_prefix(path)
        else:
            if path not in self.mounts and path.rstrip("/") in self.mounts \
                    and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
                # a page ("/dashboard/") would resolve its relative links under
                # itself: send the browser to the address without the slash
                location = path.rstrip("/")
                if environ.get("QUERY_STRING"):
                    location += "?" + environ["QUERY_STRING"]
                return _plain(start_response, "301 Moved Permanently", location + "\n",
                              [("Location", location)])
            app = self.mounts.get(path.rstrip("/") or "/") or self._by_prefix(path)
        if app is None:
            return _plain(start_response, "404 Not Found",
                          "not found; endpoints: %s\n" % ", ".join(sorted(self.mounts)))
        if IDEMPOTENCY_ENVIRON_KEY in environ:
            bad_key = check_idempotency_key(environ)
            if bad_key is not None:  # before any method runs (tasktypes.idempotency)
                return _plain(start_response, "400 Bad Request", bad_key)
        refusal = self._check_headers(environ)
        if refusal is not None:
            # No "Connection: close" of our own: PEP 3333 forbids hop-by-hop
            # headers (waitress answers one with a 500); the server closes a
            # connection whose body it has not read.
            return _plain(start_response, refusal[0], refusal[1])
        result = app(environ, start_response)
        # (a length under _LARGE_DIGITS digits cannot be over _LARGE_BODY)
        if len(environ.get("CONTENT_LENGTH") or "") >= _LARGE_DIGITS \
                and _content_length(environ) > _LARGE_BODY:
            return _ReleaseAfter(result)
        return result

    def _check_headers(self, environ):
        """Refuse what no honest client sends (an HTTP status and text, or
        None): a Host that is not a host name or address, and a body with
        both Content-Length and Transfer-Encoding (request smuggling: the
        two would disagree on where the next request starts); then a POST
        body over the limit (``_limit_body``)."""
        host = environ.get("HTTP_HOST")
        if host is not None and host not in _GOOD_HOSTS:
            if not _HOST.match(host):
                return "400 Bad Request", "bad Host header\n"
            if len(_GOOD_HOSTS) < _GOOD_HOSTS_KEPT:
                _GOOD_HOSTS.add(host)
        if environ.get("HTTP_TRANSFER_ENCODING") and environ.get("CONTENT_LENGTH"):
            return "400 Bad Request", "both Content-Length and Transfer-Encoding\n"
        if environ.get("REQUEST_METHOD") == "POST":
            length = environ.get("CONTENT_LENGTH")
            if length and length.isdigit() and length.isascii() and \
                    len(length) <= _MAX_LENGTH_DIGITS and int(length) <= self.max_body:
                return None  # the usual POST: a length within the limit
            return self._limit_body(environ)
        return None

    def _by_prefix(self, path):
        """The application mounted at a prefix ("/static/") of ``path``."""
        for prefix, app in self.mounts.items():
            if len(prefix) > 1 and prefix.endswith("/") and path.startswith(prefix):
                return app
        return None

    def close(self):
        """Stop the store's runner and connections."""
        self.store.close()

    def _limit_body(self, environ):
        """Refuse a body over ``max_body`` before reading it (an HTTP status
        and text, or None); give chunked bodies (no Content-Length) a length
        by reading at most the limit."""
        too_large = "413 Request Entity Too Large"
        length = environ.get("CONTENT_LENGTH")
        if length:
            if not (length.isascii() and length.isdigit()):
                return "400 Bad Request", "bad Content-Length: %.40r\n" % length
            if len(length) > _MAX_LENGTH_DIGITS:
                return too_large, "request body of %.20s... bytes is over the limit of %d\n" % (
                    length, self.max_body)
            size = int(length)
            if size > self.max_body:
                return too_large, "request body of %d bytes is over the limit of %d\n" % (
                    size, self.max_body)
            return None
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            try:
                body = environ["wsgi.input"].read(self.max_body + 1)
            except Exception as exc:  # a bad chunk size, a dropped connection
                return "400 Bad Request", "the chunked body cannot be read: %s\n" % (
                    type(exc).__name__)
            if len(body) > self.max_body:
                return too_large, "request body is over the limit of %d bytes\n" % (
                    self.max_body)
        else:
            body = b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return None

    def _warn_if_multiprocess(self, environ):
        self._warned = True
        if environ.get("wsgi.multiprocess") and not self.store.shared:
            logger.warning(
                "this server runs several processes but tasks are kept in one "
                "process's memory (thread store): progress and result calls that "
                "reach another process get TaskNotFound. Use one process with "
                "many threads, or TASKTYPES_STORE=redis.")


def _plain(start_response, status, text, headers=()):
    body = text.encode("utf-8")
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body)))] + list(headers))
    return [body]


def _static_json(body):
    """A WSGI app answering GET and HEAD with ``body`` (JSON bytes); any
    origin may read it, so that OpenRPC tools in a browser can load it."""
    def app(environ, start_response):
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _plain(start_response, "405 Method Not Allowed", "GET only\n",
                          [("Allow", "GET, HEAD")])
        start_response("200 OK", [("Content-Type", "application/json; charset=utf-8"),
                                  ("Content-Length", str(len(body))),
                                  ("Access-Control-Allow-Origin", "*")])
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [body]
    return app


def make_application(services, store=None, tns=DEFAULT_TNS, name="TaskService",
                     public_url=None, max_body=DEFAULT_MAX_BODY,
                     max_wait=DEFAULT_MAX_WAIT, admin_token=None,
                     max_batch=DEFAULT_MAX_BATCH, max_waiters=DEFAULT_MAX_WAITERS):
    """The WSGI application serving ``services`` over SOAP and JSON-RPC.

    ``store`` keeps task state (a new ``ThreadStore`` if not given);
    ``public_url`` is the base URL for the WSDL's address (default: each
    request's own); ``max_body`` limits request bodies in bytes; ``max_wait``
    caps ``m_wait`` in seconds; ``max_waiters`` m_wait calls at most wait at
    once, more get ``Busy`` (keep it under the server's threads);
    ``admin_token`` turns on the operator's task list (``/tasks``,
    ``/dashboard``: tasktypes.tasklist); ``max_batch`` bounds the calls of one
    JSON-RPC batch.
    """
    if store is None:
        store = ThreadStore()
    quiet_spyne_logs()
    wait_slots = WaitSlots(max_waiters)  # shared by SOAP and JSON-RPC

    def spyne_app(protocol_in, protocol_out):
        app = Application(services, tns, name=name,
                          in_protocol=protocol_in, out_protocol=protocol_out)
        app.tasktypes_store = store
        app.tasktypes_max_wait = max_wait
        app.tasktypes_wait_slots = wait_slots
        return app

    soap_app = spyne_app(SafeSoap11(validator="soft"), FastSoap11())
    jsonrpc_app = spyne_app(JsonRpc20(), JsonRpc20())
    jsonrpc_app.tasktypes_public_url = public_url
    openrpc = openrpc_json(jsonrpc_app)  # built now: a bad type stops start-up
    mounts = {
        SOAP_PATH: SoapApplication(soap_app, public_url, max_body, direct=DirectSoap(soap_app)),
        JSONRPC_PATH: JsonRpcApplication(jsonrpc_app, max_batch=max_batch,
                                         system_methods={DISCOVER: lambda: openrpc},
                                         direct_methods=direct_methods(jsonrpc_app)),
        OPENRPC_PATH: _static_json(openrpc),
        STATIC_PATH: StaticFiles(),
        "/": page("index.html"),  # the task page, over tasktypes.js
    }
    if admin_token:
        task_list = TaskListApplication(store, admin_token)
        mounts.update({TASKS_PATH: task_list, TASKS_PATH + "/": task_list,
                       DASHBOARD_PATH: task_list})
    return TaskTypesApplication(mounts, store, max_body)


# -- logs ---------------------------------------------------------------

MAX_LOGGED_CHARS = 2000


class _ShortRecords(logging.Filter):
    """Keeps spyne's records one readable line: a bad request's body is cut
    to ``MAX_LOGGED_CHARS``, and faults that are the client's doing (or task
    outcomes such as TaskFailed, logged where the task ran) lose their
    traceback."""

    def filter(self, record):
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, TaskError) or (isinstance(exc, Fault) and is_client_fault(exc)):
            record.exc_info = None
            record.exc_text = None
            if record.levelno > logging.INFO:
                record.levelno, record.levelname = logging.INFO, "INFO"
        message = record.getMessage()
        if len(message) > MAX_LOGGED_CHARS:
            record.msg = "%s... [%d chars cut]" % (message[:MAX_LOGGED_CHARS],
                                                   len(message) - MAX_LOGGED_CHARS)
            record.args = None
        return True


# spyne 2.14.0's module loggers that write a request's faults and documents.
_SPYNE_LOGGERS = ("spyne.application", "spyne.application.client",
                  "spyne.application.server", "spyne.server._base",
                  "spyne.server.wsgi", "spyne.protocol.soap.soap11",
                  "spyne.protocol.soap.soap11.invalid", "spyne.protocol._base",
                  "spyne.protocol._inbase")


def quiet_spyne_logs():
    for name in _SPYNE_LOGGERS:
        log = logging.getLogger(name)
        if not any(isinstance(f, _ShortRecords) for f in log.filters):
            log.addFilter(_ShortRecords())
