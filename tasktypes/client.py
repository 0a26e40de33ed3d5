"""A Python client for any tasktypes service, over JSON-RPC 2.0 and HTTP.

    from tasktypes.client import TaskClient, TaskFailed

    client = TaskClient("http://127.0.0.1:8000")
    task = client.start("countdown", 10, 0.5)        # or steps=10, delay=0.5
    task.wait(on_progress=lambda p: print(p.status, p.progress, p.message))
    print(task.result())                             # 10
    client.call("echo", "hello")                     # a plain method: 'hello'
    client.task("countdown", 4503599627370497).progress()   # attach to an id

Errors the service answers become exceptions, one class per faultcode of the
contract (``TaskNotFound``, ``TaskNotFinished``, ``TaskFailed``,
``TaskCancelled``, ``TaskTimedOut``, ``StoreUnavailable``, ``Busy``,
``IdempotencyConflict``; ``ServiceFault`` for any other fault) and one per
JSON-RPC protocol error (``InvalidParams``...), each with ``code``,
``faultcode``, ``status``, ``progress`` and the raw ``data``. All derive from ``ClientError``, as do
``ServerUnreachable`` (no connection after the retries), ``BadResponse``
(an answer that is not JSON-RPC) and ``WaitTimeout``.

HTTP is done with ``requests``: a pooled keep-alive connection serves a whole
wait loop, each call has its own timeout (a wait's is longer than the wait),
and its exceptions tell "never connected" from "no answer in time", which the
retry rule below needs. The standard library's ``urllib`` reconnects for
every call and mixes those failures in one ``URLError``.

Retries: reads (``progress``, ``result``, ``wait``, ``cancel``, which are
safe to repeat) are retried with exponential backoff when the connection
fails or a proxy answers 502/503/504. So are submits (``start``): each
carries an ``Idempotency-Key`` header (a new UUID, or the caller's
``idempotency_key``), and a retry with that key gets the task the first
attempt started, never a second one (the server remembers the key for its
result TTL). ``call`` is never retried: a plain method may not be safe to
repeat. ``request(..., retry=True)`` retries a plain method the caller knows
to be read-only. A ``TaskClient`` is meant for one thread at a time (as its
``requests.Session`` is).
"""

import itertools
import json
import time
import uuid
from dataclasses import dataclass, field

import requests

#: Seconds between progress polls when ``wait`` reports progress.
POLL_INTERVAL = 0.5

#: Longest single ``m_wait`` asked of the server; it caps waits itself too
#: (``TASKTYPES_MAX_WAIT``), and the client simply asks again.
WAIT_CHUNK = 25.0

_RETRY_STATUSES = (502, 503, 504)


# -- errors ----------------------------------------------------------------

class ClientError(Exception):
    """Anything this client raises."""


class ServerUnreachable(ClientError):
    """No connection to the server (after the retries, for reads)."""


class BadResponse(ClientError):
    """The server's answer is not a JSON-RPC reply (wrong URL, a proxy's
    error page, a server that is not tasktypes)."""

    def __init__(self, message, http_status=None):
        super().__init__(message)
        self.http_status = http_status


class WaitTimeout(ClientError, TimeoutError):
    """``Task.wait(timeout)`` ran out before the task ended; ``progress``
    is where it stood."""

    def __init__(self, message, progress):
        super().__init__(message)
        self.progress = progress


class RpcError(ClientError):
    """An error reply: ``code``, ``message``, and from ``data`` the
    ``faultcode``, the task's ``status`` and ``progress`` (None where the
    server gave none)."""

    code = None
    faultcode = None

    def __init__(self, message, code=None, data=None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.data = data
        data = data if isinstance(data, dict) else {}
        self.faultcode = data.get("faultcode", self.faultcode)
        self.status = data.get("status")
        self.progress = data.get("progress")


class ProtocolError(RpcError):
    """A JSON-RPC protocol error: the request, not the method, is at fault."""


class ParseError(ProtocolError):
    code, faultcode = -32700, "Client.ParseError"


class InvalidRequest(ProtocolError):
    code, faultcode = -32600, "Client.InvalidRequest"


class MethodNotFound(ProtocolError):
    code, faultcode = -32601, "Client.MethodNotFound"


class InvalidParams(ProtocolError):
    code, faultcode = -32602, "Client.InvalidParams"


class InternalError(ProtocolError):
    code, faultcode = -32603, "Server.InternalError"


class ServiceFault(RpcError):
    """A fault the service answered with; those of the contract have their
    own classes below, any other is this one (code -32000)."""

    code = -32000


class TaskNotFound(ServiceFault):
    code, faultcode = -32001, "Client.TaskNotFound"


class TaskNotFinished(ServiceFault):
    code, faultcode = -32002, "Client.TaskNotFinished"


class TaskFailed(ServiceFault):
    code, faultcode = -32003, "Server.TaskFailed"


class TaskCancelled(ServiceFault):
    code, faultcode = -32004, "Client.TaskCancelled"


class TaskTimedOut(ServiceFault):
    code, faultcode = -32005, "Server.TaskTimedOut"


class IdempotencyConflict(ServiceFault):
    """The ``Idempotency-Key`` of a ``start`` was used before for the same
    method with other arguments."""

    code, faultcode = -32006, "Client.IdempotencyConflict"


class StoreUnavailable(ServiceFault):
    code, faultcode = -32010, "Server.StoreUnavailable"


class Busy(ServiceFault):
    code, faultcode = -32011, "Server.Busy"


_FAULTS = {cls.faultcode: cls for cls in (
    TaskNotFound, TaskNotFinished, TaskFailed, TaskCancelled, TaskTimedOut,
    IdempotencyConflict, StoreUnavailable, Busy)}
_CODES = {cls.code: cls for cls in (
    ParseError, InvalidRequest, MethodNotFound, InvalidParams, InternalError,
    *_FAULTS.values())}


def error_from_reply(error):
    """The exception for a JSON-RPC error object: by ``data.faultcode``
    first, then by ``code``."""
    if not isinstance(error, dict):
        return BadResponse("malformed error object: %.200r" % (error,))
    data = error.get("data")
    faultcode = data.get("faultcode") if isinstance(data, dict) else None
    code = error.get("code")
    cls = _FAULTS.get(faultcode) or _CODES.get(code) or (
        ServiceFault if faultcode else RpcError)
    return cls(str(error.get("message", "")), code, data)


# -- progress ------------------------------------------------------------

FINISHED = ("done", "failed", "cancelled")


@dataclass
class Progress:
    """Where a task stands (``m_progress``'s reply)."""

    task_id: int
    progress: float = 0.0
    duration: float = 0.0
    starttime: float = 0.0
    status: str = ""
    message: str = ""
    raw: dict = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, reply):
        if not isinstance(reply, dict) or "status" not in reply:
            raise BadResponse("not a task progress: %.200r" % (reply,))
        return cls(task_id=reply.get("task_id"), progress=reply.get("progress") or 0.0,
                   duration=reply.get("duration") or 0.0,
                   starttime=reply.get("starttime") or 0.0,
                   status=reply.get("status") or "", message=reply.get("message") or "",
                   raw=reply)

    @property
    def finished(self):
        return self.status in FINISHED


# -- the client ------------------------------------------------------------

class TaskClient:
    """A tasktypes service at ``url`` (its base address; ``/jsonrpc`` is
    added unless given). ``timeout``: seconds for one call's answer;
    ``retries`` and ``backoff``: how often and how patiently reads are tried
    again after a connection failure (backoff, 2*backoff, 4*backoff...)."""

    def __init__(self, url, timeout=30.0, retries=4, backoff=0.25, session=None):
        if not url.lower().startswith(("http://", "https://")):
            raise ClientError("the service's URL must start with http:// or https://, "
                              "not %.80r" % url)
        url = url.rstrip("/")
        self.url = url if url.endswith("/jsonrpc") else url + "/jsonrpc"
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.session = session or requests.Session()
        self._ids = itertools.count(1)

    def close(self):
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, method, *args, **kwargs):
        """Call a plain method with positional or named params; its result.
        Never retried (the method may not be safe to repeat)."""
        return self.request(method, _params(args, kwargs))

    def start(self, method, *args, idempotency_key=None, **kwargs):
        """Submit a task of the task-type ``method``: its ``Task`` at once.

        Sent with an ``Idempotency-Key``: ``idempotency_key`` (up to 255 of
        ``A-Za-z0-9-_.:~+/=``), or a new UUID. So it is retried like a read
        when the connection fails: a retry gets the task the lost attempt
        started. Pass your own key to make a retry safe across processes
        (keep it with the work it stands for); the same key with other
        arguments raises ``IdempotencyConflict``."""
        key = str(uuid.uuid4()) if idempotency_key is None else idempotency_key
        reply = self.request(method, _params(args, kwargs), retry=True,
                             headers={"Idempotency-Key": '"%s"' % key})
        if not isinstance(reply, dict) or not isinstance(reply.get("task_id"), int):
            raise BadResponse("%s did not answer a task id (is it a task type?): %.200r"
                              % (method, reply))
        return Task(self, method, reply["task_id"])

    def task(self, method, task_id):
        """The ``Task`` of an existing id, to follow or control it."""
        return Task(self, method, task_id)

    def discover(self):
        """The service's OpenRPC document (``rpc.discover``)."""
        return self.request("rpc.discover", None, retry=True)

    def request(self, method, params, retry=False, timeout=None, headers=None):
        """One JSON-RPC call: its result, or the exception of its error.
        ``params``: a list, a dict or None; ``retry``: try again on
        connection failures (only for calls that are safe to repeat);
        ``headers``: more HTTP headers to send."""
        body = {"jsonrpc": "2.0", "method": method, "id": next(self._ids)}
        if params is not None:
            body["params"] = params
        data = json.dumps(body, allow_nan=False).encode("utf-8")
        timeout = self.timeout if timeout is None else timeout
        attempts = 1 + (self.retries if retry else 0)
        headers = dict(headers or (), **{"Content-Type": "application/json",
                                         "Accept": "application/json"})
        for attempt in range(attempts):
            try:
                response = self.session.post(
                    self.url, data=data, timeout=(min(10.0, timeout), timeout),
                    headers=headers)
            except (requests.ConnectionError, requests.Timeout) as e:
                failure = ServerUnreachable("cannot reach %s: %s" % (self.url, _reason(e)))
            except requests.RequestException as e:  # a bad URL, a reply cut short
                failure = ServerUnreachable("no answer from %s: %s" % (self.url, _reason(e)))
                if not isinstance(e, requests.exceptions.ChunkedEncodingError):
                    raise failure from None
            else:
                if response.status_code not in _RETRY_STATUSES:
                    return self._result(method, response)
                failure = ServerUnreachable("%s answered HTTP %d" % (
                    self.url, response.status_code))
            if attempt + 1 < attempts:
                time.sleep(self.backoff * 2 ** attempt)
        raise failure

    def _result(self, method, response):
        try:
            reply = response.json()
        except ValueError:
            text = response.text.strip().replace("\n", " ")
            raise BadResponse("%s answered HTTP %d, not JSON-RPC: %.200s" % (
                self.url, response.status_code, text), response.status_code) from None
        if not isinstance(reply, dict) or ("result" not in reply and "error" not in reply):
            raise BadResponse("%s answered %.200r, not a JSON-RPC reply" % (self.url, reply),
                              response.status_code)
        if "error" in reply:
            raise error_from_reply(reply["error"])
        return reply["result"]


class Task:
    """One task of a task-type method: follow it, read its result, stop it."""

    def __init__(self, client, method, task_id):
        self.client = client
        self.method = method
        self.task_id = task_id

    def __repr__(self):
        return "Task(%r, %r)" % (self.method, self.task_id)

    def progress(self):
        """Where the task stands now: a ``Progress``."""
        return Progress.of(self._control("progress", self.task_id))

    def result(self):
        """What the task returned; ``TaskNotFinished``, ``TaskFailed``,
        ``TaskCancelled`` or ``TaskTimedOut`` otherwise."""
        return self._control("result", self.task_id)

    def cancel(self):
        """Stop the task (harmless once it has ended): its ``Progress`` after."""
        return Progress.of(self._control("cancel", self.task_id))

    def wait(self, timeout=None, on_progress=None, interval=POLL_INTERVAL):
        """Follow the task until it ends; its final ``Progress``.

        The server tells when it ends: each round is one ``m_wait``, which
        answers the moment the task ends, else after ``WAIT_CHUNK`` seconds,
        or after ``interval`` seconds when ``on_progress`` is given, which
        then gets each reading (``on_progress(progress)``): at most one
        request per ``interval``, and the end seen at once. Should the
        server's waits all be taken (Busy), it polls ``m_progress`` every
        ``interval`` instead. ``timeout`` (seconds, None for no limit) raises
        ``WaitTimeout`` if the task is still going then; the task goes on.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        round_time = WAIT_CHUNK if on_progress is None else interval
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            chunk = round_time if left is None else min(round_time, left)
            try:
                progress = Progress.of(self._control(
                    "wait", self.task_id, chunk, timeout=chunk + self.client.timeout))
            except Busy:  # the server's waits are all taken: poll instead
                progress = self.progress()
                if not progress.finished:
                    time.sleep(interval if left is None else min(interval, left))
            if on_progress is not None:
                on_progress(progress)
            if progress.finished:
                return progress
            if left is not None and left <= 0:
                raise WaitTimeout("%s task %s still %s after %g s" % (
                    self.method, self.task_id, progress.status, timeout), progress)

    def _control(self, role, *params, timeout=None):
        return self.client.request("%s_%s" % (self.method, role), list(params),
                                   retry=True, timeout=timeout)


def _params(args, kwargs):
    if args and kwargs:
        raise TypeError("give params by position or by name, not both")
    if kwargs:
        return kwargs
    return list(args)


def _reason(exc):
    """The innermost reason of a requests exception, in a few words."""
    reason = exc
    while reason.__context__ is not None and reason.__context__ is not reason:
        reason = reason.__context__
    text = str(reason) or type(reason).__name__
    if "Connection refused" in text or isinstance(reason, ConnectionRefusedError):
        return "connection refused (is the server running?)"
    if isinstance(exc, requests.Timeout):
        return "no answer in time"
    if isinstance(reason, ConnectionResetError) or "reset" in text.lower():
        return "the connection was reset"
    return text[:200]
