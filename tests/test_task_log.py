"""Each task's log (``m_log``, tasktypes.tasklog), in both stores: what is
kept, its bounds, its expiry, and ``m_log`` over SOAP and JSON-RPC."""

import logging

import pytest

from conftest import jsonrpc, soap_fault, soap_service, wait_until
from fixtures import logger as fixture_logger, task_type

from tasktypes.errors import TaskNotFound
from tasktypes.store import ThreadStore
from tasktypes.limits import cut
from tasktypes.tasklog import MAX_CHARS, MAX_LINES, READ_LIMIT


@pytest.fixture(autouse=True)
def info_logging():
    """The fixtures' logger lets INFO through, as a configured service does
    (``python wsgi.py`` configures INFO)."""
    fixture_logger.setLevel(logging.INFO)
    yield
    fixture_logger.setLevel(logging.NOTSET)


def chatty(store, count, length=10, hold=0.0):
    tt = task_type("chatty")
    task_id = store.submit(tt, (count, length, hold)).task_id
    return tt, task_id


def test_lines_are_kept_numbered_and_read_after_a_seq(make_store):
    """Guards m_log's basics: INFO lines in order, numbered from 1, DEBUG
    not kept, ``after`` returns only newer lines; a task of another method
    or an unknown id is TaskNotFound."""
    store = make_store()
    tt, task_id = chatty(store, 5)
    assert store.wait(tt, task_id, 10).status.value == "done"
    lines = wait_until(lambda: len(store.log(tt, task_id, 0)) == 5
                       and store.log(tt, task_id, 0))
    assert [line.seq for line in lines] == [1, 2, 3, 4, 5]
    assert [line.message for line in lines] == ["%d:%s" % (i, "x" * 10) for i in range(1, 6)]
    assert {line.level for line in lines} == {"INFO"}
    assert all(abs(line.time - lines[0].time) < 60 for line in lines)
    assert [line.seq for line in store.log(tt, task_id, 3)] == [4, 5]
    assert store.log(tt, task_id, 5) == [] and store.log(tt, task_id, 10 ** 12) == []
    with pytest.raises(TaskNotFound):
        store.log(task_type("add"), task_id, 0)
    with pytest.raises(TaskNotFound):
        store.log(tt, 12345, 0)


def test_lines_arrive_while_the_task_runs(make_store):
    """Guards following a log live: the lines are there before the task ends."""
    store = make_store()
    tt, task_id = chatty(store, 3, hold=5.0)
    wait_until(lambda: len(store.log(tt, task_id, 0)) == 3, timeout=5)
    assert store.read(tt, task_id).status.value == "running"
    store.cancel(tt, task_id)


def test_only_the_last_lines_are_kept(make_store):
    """Guards the line-count bound: of MAX_LINES + 50 lines, the last
    MAX_LINES are kept, with their numbers; one read returns at most
    READ_LIMIT."""
    store = make_store()
    tt, task_id = chatty(store, MAX_LINES + 50)
    store.wait(tt, task_id, 20)
    wait_until(lambda: store.log(tt, task_id, MAX_LINES + 49))
    lines = store.log(tt, task_id, 0)
    assert len(lines) == min(MAX_LINES, READ_LIMIT)
    assert lines[0].seq == 51 and lines[-1].seq == MAX_LINES + 50
    assert lines[-1].message.startswith("%d:" % (MAX_LINES + 50))
    assert [line.seq for line in store.log(tt, task_id, MAX_LINES + 40)] == \
        list(range(MAX_LINES + 41, MAX_LINES + 51))


def test_long_lines_are_cut_with_a_marker(make_store):
    """Guards the line-length bound: a 5000-character line is kept as
    MAX_CHARS characters ending with a marker that says how much was cut."""
    store = make_store()
    tt, task_id = chatty(store, 1, length=5000)
    store.wait(tt, task_id, 10)
    (line,) = wait_until(lambda: store.log(tt, task_id, 0))
    full = "1:" + "x" * 5000
    assert line.message == cut(full, MAX_CHARS)
    assert len(line.message) == MAX_CHARS
    assert line.message.endswith("[... %d chars cut]" % (len(full) - MAX_CHARS))


def test_the_log_expires_with_the_task(make_store, request):
    """Guards expiry: once the finished task is forgotten (result TTL), its
    log is gone too, from memory or from Redis."""
    store = make_store(result_ttl=1)
    tt, task_id = chatty(store, 3)
    store.wait(tt, task_id, 10)
    wait_until(lambda: store.log(tt, task_id, 0))

    def forgotten():
        try:
            store.log(tt, task_id, 0)
        except TaskNotFound:
            return True
    wait_until(forgotten, timeout=10, interval=0.1)
    if isinstance(store, ThreadStore):
        assert task_id not in store._logs
    else:
        wait_until(lambda: not store.redis.exists(store._log_key % task_id), timeout=5)


def test_m_log_over_json_rpc_and_soap(service_process):
    """Guards the published control: ``cloneInstance_log`` over JSON-RPC
    and SOAP gives the body's lines as TaskLogLine records; bad ``after``
    is invalid params; an unknown id is TaskNotFound on both."""
    url = service_process().url
    task_id = jsonrpc(url, "cloneInstance", "vm-1", "copy")["task_id"]
    jsonrpc(url, "cloneInstance_wait", task_id, 10)
    lines = jsonrpc(url, "cloneInstance_log", task_id, 0)
    assert [line["seq"] for line in lines] == [1, 2, 3, 4]
    assert set(lines[0]) == {"seq", "time", "level", "message"}
    assert lines[-1]["message"] == "cloneInstance %d: boot" % task_id
    assert jsonrpc(url, "cloneInstance_log", task_id, 3)[0]["seq"] == 4
    with pytest.raises(Exception) as info:
        jsonrpc(url, "cloneInstance_log", task_id, -1)
    assert info.value.code == -32602
    soap = soap_service(url)
    soap_lines = soap.cloneInstance_log(task_id, 2)
    assert [(line.seq, line.level, line.message) for line in soap_lines] == \
        [(l["seq"], l["level"], l["message"]) for l in lines[2:]]
    assert soap_fault(soap.cloneInstance_log, 12345, 0) == "Client.TaskNotFound"


def test_m_log_over_http_with_the_redis_store(service_process, redis_url):
    """Guards the Redis store's path: lines logged in the worker process
    reach ``m_log`` through the server process and Redis."""
    url = service_process({"TASKTYPES_STORE": "redis",
                           "TASKTYPES_REDIS_URL": redis_url}).url
    task_id = jsonrpc(url, "cloneInstance", "vm-1", "copy")["task_id"]
    assert jsonrpc(url, "cloneInstance_wait", task_id, 10)["status"] == "done"
    lines = jsonrpc(url, "cloneInstance_log", task_id, 0)
    assert [line["message"] for line in lines] == [
        "cloneInstance %d: %s" % (task_id, stage)
        for stage in ("snapshot", "copy disks", "register", "boot")]


def test_capture_leaves_unconfigured_logging_as_it_was():
    """Guards install() where logging is not configured: warnings still
    reach stderr through Python's last resort, INFO is not printed, and a
    record logged inside ``capturing`` reaches the sink."""
    import subprocess
    import sys
    code = """if True:
        import logging
        from tasktypes import tasklog
        tasklog.install()
        logging.getLogger("x").warning("still printed")
        logging.getLogger("x").info("not printed")
        with tasklog.capturing(lambda line: print("sink", line[1], line[2])):
            logging.getLogger("x").info("in the task")
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stderr == "still printed\n"
    assert out.stdout == "sink INFO in the task\n"


def test_texts_no_store_could_write_are_kept_escaped(make_store):
    """Guards: a lone surrogate (which JSON lets a caller send) in a progress
    message, a log line and an error text is kept as its escape; in the
    Redis store it once failed the writes, and the task stayed running for
    good. A huge ``after`` reads nothing (Lua's doubles once made it -32603)."""
    store = make_store()
    tt = task_type("odd")
    task_id = store.submit(tt, ("bad \ud800 <b>[/x]</b>",)).task_id
    state = store.wait(tt, task_id, 10)
    assert state.status.value == "failed"
    assert state.message == "ValueError: bad \\ud800 <b>[/x]</b>"
    lines = wait_until(lambda: store.log(tt, task_id, 0))
    assert lines[-1].message.endswith("odd: bad \\ud800 <b>[/x]</b>") or any(
        line.message.endswith("odd: bad \\ud800 <b>[/x]</b>") for line in lines)
    assert store.log(tt, task_id, 10 ** 17) == []
    assert store.log(tt, task_id, 2 ** 63 - 1) == []
