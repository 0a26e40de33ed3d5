"""The operator's task list: ``GET /tasks`` and ``GET /tasks/<id>`` (JSON),
and the dashboard page over them at ``/dashboard``.

    app = TaskListApplication(store, token="a long random secret")

A task id is all that guards a task (whoever knows it can read its result
and cancel it), so listing ids is for operators only. Without a token the
application is not mounted at all (404, as for any unknown path). With one,
``/tasks`` answers only requests carrying ``Authorization: Bearer <token>``,
compared in constant time; any other gets 401. The dashboard page itself
holds no data and is served to anyone: it asks for the token and sends it
with each request.

``GET /tasks?method=&status=&limit=&cursor=``
    ``{"tasks": [...], "next": cursor or null, "counts": {status: n}}``:
    newest first; ``next`` goes to the following page; ``counts`` (first
    page only) counts the newest ``COUNT_WINDOW`` tasks per status. Each
    call reads a bounded part of the store's index (``Store.list_tasks``).
``GET /tasks/<id>?log_after=``
    one task: the list's fields, its arguments (JSON text, cut at
    ``MAX_ARGUMENT_CHARS``), its result (done) or error (failed, cancelled),
    and its log lines after ``log_after``.
"""

import hmac
import json
import time
from urllib.parse import parse_qs

from .documents import encode_result
from .errors import TaskError, jsonrpc_code
from .model import TaskStatus
from .store import Store
from .web import page
from .defaults import MAX_PAGE as MAX_LIMIT, MAX_RESULT_CHARS

TASKS_PATH = "/tasks"
DASHBOARD_PATH = "/dashboard"
_JSON = "application/json; charset=utf-8"
_STATUSES = {status.value for status in TaskStatus}


class BadRequest(ValueError):
    """A query parameter the task list cannot use (HTTP 400)."""


class TaskListApplication:
    """The WSGI application of ``/tasks``, ``/tasks/<id>`` and ``/dashboard``."""

    def __init__(self, store, token):
        if not token:
            raise ValueError("the task list needs an operator token")
        self.store = store
        self.token = token.encode("utf-8")
        self.dashboard = page("dashboard.html")

    def __call__(self, environ, start_response):
        path = (environ.get("PATH_INFO") or "/").rstrip("/")
        if path == DASHBOARD_PATH:
            return self.dashboard(environ, start_response)
        if not self._authorized(environ):
            return _json(start_response, "401 Unauthorized",
                         {"error": "this needs Authorization: Bearer <operator token>"},
                         [("WWW-Authenticate", 'Bearer realm="tasktypes"')])
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _json(start_response, "405 Method Not Allowed",
                         {"error": "GET only"}, [("Allow", "GET, HEAD")])
        try:
            query = _query(environ)
            if path == TASKS_PATH:
                return _json(start_response, "200 OK", self.list(query))
            task_id = path[len(TASKS_PATH) + 1:]
            if not (task_id.isdigit() and len(task_id) < 20):
                return _json(start_response, "404 Not Found", {"error": "no such task"})
            detail = self.detail(int(task_id), query)
        except BadRequest as exc:
            return _json(start_response, "400 Bad Request", {"error": str(exc)})
        if detail is None:
            return _json(start_response, "404 Not Found", {"error": "no such task"})
        return _json(start_response, "200 OK", detail)

    def _authorized(self, environ):
        scheme, _, given = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        return scheme.lower() == "bearer" and \
            hmac.compare_digest(given.strip().encode("utf-8"), self.token)

    def list(self, query):
        method = _one(query, "method", max_length=200)
        status = _one(query, "status")
        if status is not None and status not in _STATUSES:
            raise BadRequest("status must be one of %s" % ", ".join(sorted(_STATUSES)))
        limit = _number(query, "limit", 50, 1, MAX_LIMIT)
        cursor = _one(query, "cursor", max_length=100)
        try:
            states, next_cursor = self.store.list_tasks(method, status, cursor, limit)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        reply = {"tasks": [_summary(s) for s in states], "next": next_cursor}
        if cursor is None:
            reply["counts"] = self.store.count_statuses(method)
        return reply

    def detail(self, task_id, query):
        log_after = _number(query, "log_after", 0, 0, 2 ** 63 - 1)
        described = self.store.describe(task_id)
        if described is None:
            return None
        state, task_type = described
        reply = _summary(state)
        reply["arguments"] = state.arguments
        reply["timed_out"] = state.timed_out
        try:
            value = Store.check_result(state)
        except TaskError as exc:
            if state.status.is_finished:
                reply["error"] = {"code": jsonrpc_code(exc), "faultcode": exc.faultcode,
                                  "message": exc.faultstring}
        else:
            if task_type is not None:
                doc = encode_result(task_type.returns, value)
                if len(doc) <= MAX_RESULT_CHARS:
                    reply["result"] = json.loads(doc)["value"] if task_type.returns else None
                else:
                    reply["result_note"] = "%d characters of JSON, not shown" % len(doc)
        try:
            reply["log"] = [line._asdict() for line in
                            self.store.log(None, task_id, log_after)]
        except TaskError:  # expired meanwhile
            reply["log"] = []
        return reply


def _summary(state, now=None):
    return {"task_id": state.task_id, "method": state.method,
            "status": state.status.value, "progress": state.progress,
            "message": state.message, "submitted": state.submitted,
            "starttime": state.starttime, "endtime": state.endtime,
            "duration": state.duration(now or time.time())}


def _query(environ):
    text = environ.get("QUERY_STRING", "")
    if len(text) > 2000:
        raise BadRequest("query string too long")
    try:
        return parse_qs(text, strict_parsing=False, max_num_fields=20)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def _one(query, name, max_length=40):
    values = query.get(name)
    if not values or values[0] == "":
        return None
    if len(values) > 1:
        raise BadRequest("%s given more than once" % name)
    if len(values[0]) > max_length:
        raise BadRequest("%s is longer than %d characters" % (name, max_length))
    return values[0]


def _number(query, name, default, low, high):
    raw = _one(query, name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequest("%s must be an integer from %d to %d" % (name, low, high))
    return int(raw)


def _json(start_response, status, value, headers=()):
    body = json.dumps(value).encode("utf-8")
    start_response(status, [("Content-Type", _JSON), ("Content-Length", str(len(body))),
                            ("Cache-Control", "no-store")] + list(headers))
    return [body]
