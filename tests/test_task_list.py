"""The operator's task list (tasktypes.tasklist and the stores' indexes):
``/tasks`` and ``/tasks/<id>`` over HTTP from ``python wsgi.py`` with each
store, its token, filters, pagination and bounds."""

import pytest
import requests

from conftest import jsonrpc, wait_until
from fixtures import task_type

from tasktypes.config import ConfigError, Settings
from tasktypes.store import MAX_ARGUMENT_CHARS, ThreadStore

TOKEN = "operator-token-0123456789"
AUTH = {"Authorization": "Bearer " + TOKEN}


@pytest.fixture(params=["thread", "redis"])
def url(request, service_process):
    env = {"TASKTYPES_ADMIN_TOKEN": TOKEN}
    if request.param == "redis":
        env.update(TASKTYPES_STORE="redis",
                   TASKTYPES_REDIS_URL=request.getfixturevalue("redis_url"))
    return service_process(env).url


def get(url, path, headers=AUTH, **params):
    return requests.get(url + path, headers=headers, params=params, timeout=30)


def finished(url, method, task_id):
    return jsonrpc(url, method + "_wait", task_id, 10)["status"] in (
        "done", "failed", "cancelled")


def test_off_without_a_token(service_process):
    """Guards the default: no token configured, no task list (404 whatever
    is sent), and /dashboard is not there either."""
    url = service_process().url
    for path in ("/tasks", "/tasks/1", "/dashboard"):
        assert get(url, path).status_code == 404, path


def test_only_the_bearer_token_opens_it(url):
    """Guards the token check: missing, wrong, other scheme -> 401 with a
    Bearer challenge; the right one -> 200. The dashboard page itself (no
    data) is served to anyone."""
    for headers in ({}, {"Authorization": "Bearer wrong-token-000000000"},
                    {"Authorization": "Basic " + TOKEN}, {"Authorization": TOKEN},
                    {"Authorization": "Bearer " + TOKEN[:-1]}):
        for path in ("/tasks", "/tasks/1"):
            reply = get(url, path, headers=headers)
            assert reply.status_code == 401, (headers, path)
            assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert get(url, "/tasks").status_code == 200
    page = get(url, "/dashboard", headers={})
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]


def test_lists_newest_first_with_filters_and_counts(url):
    """Guards the list: newest first, filtered by method and by status,
    counts per status."""
    ids = [jsonrpc(url, "countdown", 1, 0.01)["task_id"] for _ in range(3)]
    failing = jsonrpc(url, "failingTask", "no", 0.01)["task_id"]
    for task_id in ids:
        finished(url, "countdown", task_id)
    finished(url, "failingTask", failing)
    page = get(url, "/tasks").json()
    assert [t["task_id"] for t in page["tasks"]] == [failing] + ids[::-1]
    assert page["next"] is None
    assert page["counts"] == {"done": 3, "failed": 1}
    first = page["tasks"][1]
    assert set(first) == {"task_id", "method", "status", "progress", "message",
                          "submitted", "starttime", "endtime", "duration"}
    assert first["method"] == "countdown" and first["status"] == "done"
    assert first["submitted"] <= first["starttime"] <= first["endtime"]
    by_method = get(url, "/tasks", method="countdown").json()
    assert [t["task_id"] for t in by_method["tasks"]] == ids[::-1]
    assert by_method["counts"] == {"done": 3}
    by_status = get(url, "/tasks", status="failed").json()
    assert [t["task_id"] for t in by_status["tasks"]] == [failing]
    assert get(url, "/tasks", method="nothing").json()["tasks"] == []


def test_pages_follow_the_cursor_without_gaps_or_repeats(url):
    """Guards pagination: limit=3 over 7 tasks gives 3, 3, 1, the last with
    no next cursor, every task exactly once, in order."""
    ids = [jsonrpc(url, "countdown", 1, 0.0)["task_id"] for _ in range(7)]
    seen, cursor, sizes = [], None, []
    while True:
        params = {"limit": 3} if cursor is None else {"limit": 3, "cursor": cursor}
        page = get(url, "/tasks", **params).json()
        sizes.append(len(page["tasks"]))
        seen += [t["task_id"] for t in page["tasks"]]
        cursor = page["next"]
        if cursor is None:
            break
        assert "counts" not in page or len(sizes) == 1
    assert seen == ids[::-1]
    assert sizes == [3, 3, 1]


def test_bad_queries_are_refused(url):
    """Guards input checks: bad status, limit, cursor, repeated parameters
    and ids get 400 or 404, never a server error."""
    for params in ({"status": "bogus"}, {"limit": "0"}, {"limit": "201"},
                   {"limit": "x"}, {"cursor": "garbage"}, {"cursor": "nan:1"},
                   {"cursor": "1:x"}, {"method": "m" * 300}):
        assert get(url, "/tasks", **params).status_code == 400, params
    assert requests.get(url + "/tasks?status=done&status=failed", headers=AUTH,
                        timeout=10).status_code == 400
    for path in ("/tasks/12345", "/tasks/abc", "/tasks/-1", "/tasks/" + "9" * 30):
        assert get(url, path).status_code == 404, path
    assert get(url, "/tasks/1", log_after="-1").status_code in (400, 404)
    assert requests.post(url + "/tasks", headers=AUTH, timeout=10).status_code == 405


def test_one_task_in_detail(url):
    """Guards /tasks/<id>: arguments, timing, result (complex ones as their
    fields), error with its contract code, and the log from a given seq."""
    clone = jsonrpc(url, "cloneInstance", "vm-7", "copy")["task_id"]
    failing = jsonrpc(url, "failingTask", "x" * 200, 0.01)["task_id"]
    finished(url, "cloneInstance", clone)
    finished(url, "failingTask", failing)
    task = get(url, "/tasks/%d" % clone).json()
    assert task["status"] == "done" and task["method"] == "cloneInstance"
    assert task["arguments"] == '{"instance_id": "vm-7", "new_instance_name": "copy"}'
    assert task["result"] == {"instance_id": "vm-7-clone", "name": "copy", "state": "running",
                              "disk_images": ["copy-disk0.qcow2", "copy-disk1.qcow2"]}
    assert "error" not in task and task["duration"] > 0
    assert [line["seq"] for line in task["log"]] == [1, 2, 3, 4]
    assert task["log"][0]["message"].endswith("snapshot")
    later = get(url, "/tasks/%d" % clone, log_after=3).json()
    assert [line["seq"] for line in later["log"]] == [4]
    task = get(url, "/tasks/%d" % failing).json()
    assert task["status"] == "failed" and "result" not in task
    assert task["error"]["code"] == -32003
    assert task["error"]["faultcode"] == "Server.TaskFailed"
    assert task["arguments"] == '{"message": "%s", "delay": 0.01}' % ("x" * 200)


def test_long_arguments_are_kept_cut(make_store):
    """Guards: what the operator's view keeps of a task's arguments is cut
    to MAX_ARGUMENT_CHARS, with a marker, in both stores."""
    store = make_store()
    tt = task_type("fail")
    task_id = store.submit(tt, ("x" * 5000,)).task_id
    state, _ = store.describe(task_id)
    assert len(state.arguments) == MAX_ARGUMENT_CHARS
    assert "chars cut]" in state.arguments


def test_cancelled_task_shows_its_error(url):
    """Guards a cancelled task's detail: status and the TaskCancelled code."""
    task_id = jsonrpc(url, "countdown", 100, 0.1)["task_id"]
    jsonrpc(url, "countdown_cancel", task_id)
    task = get(url, "/tasks/%d" % task_id).json()
    assert task["status"] == "cancelled"
    assert task["error"]["faultcode"] == "Client.TaskCancelled"


# -- the stores' indexes: bounded, expiring --------------------------------

def run_all(store, name, count, *args):
    tt = task_type(name)
    ids = [store.submit(tt, args).task_id for _ in range(count)]
    for task_id in ids:
        store.wait(tt, task_id, 10)
    return ids


def test_the_index_keeps_the_newest_only(make_store):
    """Guards the index's size bound: with max_indexed 5, only the 5 newest
    of 8 tasks are listed (and Redis holds 5 entries per index)."""
    store = make_store()
    store.max_indexed = 5
    ids = run_all(store, "add", 8, 1, 2)
    states, cursor = store.list_tasks()
    assert [s.task_id for s in states] == ids[:2:-1] and cursor is None
    if isinstance(store, ThreadStore):
        assert len(store._index) == 5
    else:
        assert store.redis.zcard(store._index_key) == 5
        assert store.redis.zcard(store._index_key + ":add") == 5


def test_one_call_reads_a_bounded_part_of_the_index(make_store):
    """Guards the cost bound: with max_scanned 4, a filter that matches only
    the oldest of 10 tasks returns empty pages with a cursor until it gets
    there, never reading more than 4 entries per call."""
    store = make_store()
    store.max_scanned = 4
    failed = run_all(store, "fail", 1, "old")
    run_all(store, "add", 9, 1, 2)
    pages, cursor, found = 0, None, []
    while True:
        states, cursor = store.list_tasks(status="failed", cursor=cursor, limit=10)
        pages += 1
        found += [s.task_id for s in states]
        if cursor is None:
            break
    assert found == failed
    assert pages == 3  # 10 entries, 4 per call


def test_the_index_forgets_expired_tasks(make_store):
    """Guards expiry: once tasks are forgotten (result TTL), they leave the
    list, the counts and (Redis) the index."""
    store = make_store(result_ttl=1)
    run_all(store, "add", 3, 1, 2)
    assert len(store.list_tasks()[0]) == 3
    assert store.count_statuses() == {"done": 3}
    wait_until(lambda: store.list_tasks()[0] == [], timeout=10, interval=0.1)
    assert store.count_statuses() == {}
    if not isinstance(store, ThreadStore):
        assert store.redis.zcard(store._index_key) == 0
        wait_until(lambda: not store.redis.exists(store._index_key + ":add"), timeout=10)


def test_the_token_setting_is_checked_and_never_echoed():
    """Guards TASKTYPES_ADMIN_TOKEN: too short or with spaces stops start-up
    with a message naming the variable but not showing the value."""
    assert Settings.from_environ({}).admin_token is None
    assert Settings.from_environ({"TASKTYPES_ADMIN_TOKEN": TOKEN}).admin_token == TOKEN
    for bad in ("short-secret", "has spaces in the middle of it", "é" * 20):
        with pytest.raises(ConfigError) as info:
            Settings.from_environ({"TASKTYPES_ADMIN_TOKEN": bad})
        assert "TASKTYPES_ADMIN_TOKEN" in str(info.value)
        assert bad not in str(info.value)
