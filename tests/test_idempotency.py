"""Idempotent submission (``Idempotency-Key``, tasktypes.idempotency) against
``python wsgi.py`` over HTTP, with each store and on both protocols: a retry
gets the first task, other arguments are a conflict, another method is
another key, an expired task frees its key, concurrent retries make one task,
bad keys and batches are refused; then the Python client, and each store's
side of it (its map of keys bounded and gone with the tasks).

Tasks are counted with the operator's task list (``/tasks``), which lists
what the store holds: a retry that started a second task shows there.
"""

import threading
import time
import uuid

import pytest
import requests
import zeep
from zeep.transports import Transport

from conftest import ServiceProcess, soap_fault, wait_until
from fixtures import task_type

from tasktypes import client as tc
from tasktypes.errors import IdempotencyConflict, TaskNotFound
from tasktypes.idempotency import parse_key
from tasktypes.store import ThreadStore

TOKEN = "idempotency-test-token"


def _env(store, redis_server, db=0, **settings):
    """A server's environment; ``db``: its Redis database. Every process that
    runs tasks takes them from its database's one queue, and fails one of a
    type it has not loaded, so the module's long-lived server keeps to a
    database of its own, away from the stores of the tests beside it."""
    env = {"TASKTYPES_ADMIN_TOKEN": TOKEN}
    env.update({"TASKTYPES_" + name.upper(): str(value) for name, value in settings.items()})
    if store == "redis":
        if redis_server.proc is None:
            redis_server.start()
        url = "%s/%d" % (redis_server.url.rsplit("/", 1)[0], db)
        env.update(TASKTYPES_STORE="redis", TASKTYPES_REDIS_URL=url)
    return env


@pytest.fixture(scope="module", params=["thread", "redis"])
def server(request):
    """One ``python wsgi.py`` per store for the module; each test uses keys
    of its own and counts tasks by the change it makes."""
    redis_server = request.getfixturevalue("redis_server") \
        if request.param == "redis" else None
    proc = ServiceProcess(_env(request.param, redis_server, db=1))
    yield proc
    proc.stop()
    if redis_server is not None:
        redis_server.flush()


def new_key():
    return str(uuid.uuid4())


def rpc(url, method, params, key=None, quoted=True):
    """One JSON-RPC call with ``key`` in the header: the HTTP response."""
    headers = {}
    if key is not None:
        headers["Idempotency-Key"] = '"%s"' % key if quoted else key
    return requests.post(url + "/jsonrpc", timeout=30, headers=headers, json={
        "jsonrpc": "2.0", "method": method, "params": params, "id": 1})


def submit(url, method, params, key, **options):
    """The task id a JSON-RPC submit answers (fails on an error)."""
    reply = rpc(url, method, params, key, **options).json()
    assert "result" in reply, reply
    return reply["result"]["task_id"]


def soap_client(url):
    return zeep.Client(url + "/soap?wsdl", transport=Transport(operation_timeout=30))


def soap_submit(client, key, method, *args):
    with client.settings(extra_http_headers={"Idempotency-Key": '"%s"' % key}):
        return getattr(client.service, method)(*args)


def task_ids(url, method):
    """The ids of the tasks of ``method`` the server's store holds."""
    reply = requests.get(url + "/tasks", params={"method": method, "limit": 200},
                         headers={"Authorization": "Bearer " + TOKEN}, timeout=30)
    assert reply.status_code == 200, reply.text
    return {task["task_id"] for task in reply.json()["tasks"]}


def test_a_retry_gets_the_first_task_over_json_rpc(server):
    """Guards: the same key and arguments twice -> one task, its id twice,
    quoted (the draft's sf-string) or bare alike; the task runs once."""
    before = task_ids(server.url, "countdown")
    key = new_key()
    first = submit(server.url, "countdown", [2, 0.05], key)
    again = submit(server.url, "countdown", [2, 0.05], key)
    bare = submit(server.url, "countdown", {"steps": 2, "delay": 0.05}, key, quoted=False)
    assert first == again == bare
    assert task_ids(server.url, "countdown") - before == {first}
    wait_until(lambda: rpc(server.url, "countdown_progress", [first]).json()
               ["result"]["status"] == "done")
    # a retry after the end still names the same, finished task
    assert submit(server.url, "countdown", [2, 0.05], key) == first
    assert task_ids(server.url, "countdown") - before == {first}


def test_a_retry_gets_the_first_task_over_soap(server):
    """Guards the same over SOAP (the header through zeep's settings), and
    that a key names one call whichever protocol carries it."""
    client = soap_client(server.url)
    before = task_ids(server.url, "countdown")
    key = new_key()
    first = soap_submit(client, key, "countdown", 2, 0.05)
    assert soap_submit(client, key, "countdown", 2, 0.05) == first
    assert submit(server.url, "countdown", [2, 0.05], key) == first
    assert task_ids(server.url, "countdown") - before == {first}
    unkeyed = client.service.countdown(2, 0.05)  # no header: a task each time
    assert unkeyed != first and client.service.countdown(2, 0.05) != unkeyed


def test_other_arguments_are_a_conflict(server):
    """Guards: the same key with other arguments is
    Client.IdempotencyConflict / -32006 on both protocols, and starts
    nothing."""
    key = new_key()
    first = submit(server.url, "countdown", [2, 0.05], key)
    before = task_ids(server.url, "countdown")
    error = rpc(server.url, "countdown", [3, 0.05], key).json()["error"]
    assert error["code"] == -32006
    assert error["data"]["faultcode"] == "Client.IdempotencyConflict"
    assert key in error["message"] and str(first) not in error["message"]
    client = soap_client(server.url)
    assert soap_fault(lambda: soap_submit(client, key, "countdown", 2, 0.5)) \
        == "Client.IdempotencyConflict"
    assert task_ids(server.url, "countdown") == before


def test_another_method_is_another_key(server):
    """Guards: one key for two methods -> two independent tasks."""
    key = new_key()
    countdown = submit(server.url, "countdown", [1, 0.05], key)
    failing = submit(server.url, "failingTask", ["boom", 0.0], key)
    assert countdown in task_ids(server.url, "countdown")
    assert failing in task_ids(server.url, "failingTask")
    assert submit(server.url, "failingTask", ["boom", 0.0], key) == failing
    assert submit(server.url, "countdown", [1, 0.05], key) == countdown


def test_concurrent_retries_make_one_task(server):
    """Guards: 12 identical submits with one key sent at the same moment,
    half over SOAP, half over JSON-RPC, each on its own connection, get one
    id and leave one task (the store's check-and-create is one step)."""
    for round_ in range(3):
        key = new_key()
        before = task_ids(server.url, "countdown")
        clients = [soap_client(server.url) for _ in range(6)]
        start = threading.Barrier(12)
        ids, errors = [], []

        def over_jsonrpc():
            start.wait()
            ids.append(submit(server.url, "countdown", [3, 0.05], key))

        def over_soap(client):
            start.wait()
            ids.append(soap_submit(client, key, "countdown", 3, 0.05))

        def guarded(function, *args):
            try:
                function(*args)
            except Exception as exc:  # shown by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=guarded, args=(over_jsonrpc,)) for _ in range(6)]
        threads += [threading.Thread(target=guarded, args=(over_soap, c)) for c in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        assert len(ids) == 12 and len(set(ids)) == 1, ids
        assert task_ids(server.url, "countdown") - before == set(ids), round_


@pytest.mark.parametrize("value,reason", [
    ("x" * 256, "longer than 255"),
    ('"%s"' % ("x" * 256), "longer than 255"),
    ("", "not 1 to 255"),
    ('""', "not 1 to 255"),
    ("a b", "not 1 to 255"),
    ("a;b", "not 1 to 255"),
    ('"a\\"b"', "not 1 to 255"),
    ('"unterminated', "not 1 to 255"),
    ('"k";param=1', "not 1 to 255"),
    ("k1, k2", "more than one value"),
    ("caf\u00e9", "not 1 to 255"),
])
def test_bad_keys_are_refused(server, value, reason):
    """Guards: a malformed key is HTTP 400 saying why, on both endpoints,
    before any method runs (nothing is started, nothing kept)."""
    before = task_ids(server.url, "countdown")
    encoded = value.encode("utf-8")  # a non-ASCII header goes out as its bytes
    reply = requests.post(server.url + "/jsonrpc", timeout=30,
                          headers={"Idempotency-Key": encoded,
                                   "Content-Type": "application/json"},
                          data=b'{"jsonrpc": "2.0", "method": "countdown", '
                               b'"params": [1, 0.05], "id": 1}')
    assert reply.status_code == 400
    assert "bad Idempotency-Key header" in reply.text and reason in reply.text
    client = soap_client(server.url)
    with client.settings(extra_http_headers={"Idempotency-Key": encoded}):
        with pytest.raises(zeep.exceptions.TransportError) as info:
            client.service.countdown(1, 0.05)
    assert info.value.status_code == 400
    assert task_ids(server.url, "countdown") == before


def test_two_header_lines_are_refused(server):
    """Guards: the draft allows one Idempotency-Key field; two lines reach
    the application joined by a comma and are refused."""
    import http.client
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    body = b'{"jsonrpc": "2.0", "method": "countdown", "params": [1, 0.05], "id": 1}'
    connection.putrequest("POST", "/jsonrpc")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(len(body)))
    connection.putheader("Idempotency-Key", '"one"')
    connection.putheader("Idempotency-Key", '"two"')
    connection.endheaders(body)
    response = connection.getresponse()
    assert response.status == 400
    assert b"more than one value" in response.read()
    connection.close()


def test_a_batch_takes_the_header_with_one_call_only(server):
    """Guards the batch rule: a batch of two calls with the header is one
    -32600 and starts nothing; a batch of one applies the key to its call;
    a read with a key is answered as without."""
    key = new_key()
    before = task_ids(server.url, "countdown")
    two = [{"jsonrpc": "2.0", "method": "countdown", "params": [1, 0.05], "id": i}
           for i in (1, 2)]
    reply = requests.post(server.url + "/jsonrpc", json=two, timeout=30,
                          headers={"Idempotency-Key": '"%s"' % key}).json()
    assert reply["error"]["code"] == -32600 and reply["id"] is None
    assert "Idempotency-Key applies to one call" in reply["error"]["message"]
    assert task_ids(server.url, "countdown") == before

    one = requests.post(server.url + "/jsonrpc", json=two[:1], timeout=30,
                        headers={"Idempotency-Key": '"%s"' % key}).json()
    first = one[0]["result"]["task_id"]
    assert submit(server.url, "countdown", [1, 0.05], key) == first
    progress = rpc(server.url, "countdown_progress", [first], key).json()
    assert progress["result"]["task_id"] == first
    assert task_ids(server.url, "countdown") - before == {first}


@pytest.mark.parametrize("store", ["thread", "redis"])
def test_a_key_is_free_once_its_task_expired(request, store):
    """Guards: with a result TTL of 1 s, the key's task is done, then gone
    (TaskNotFound); the same key then starts a new task, and a conflict of
    the old arguments is no more."""
    redis_server = request.getfixturevalue("redis_server") if store == "redis" else None
    proc = ServiceProcess(_env(store, redis_server, result_ttl=1))
    request.addfinalizer(proc.stop)
    key = new_key()
    first = submit(proc.url, "countdown", [1, 0.05], key)
    assert submit(proc.url, "countdown", [1, 0.05], key) == first
    wait_until(lambda: "error" in rpc(proc.url, "countdown_progress", [first]).json(),
               timeout=20, interval=0.1)
    assert rpc(proc.url, "countdown_progress", [first]).json()["error"]["code"] == -32001
    second = submit(proc.url, "countdown", [2, 0.05], key)  # other args: no conflict now
    assert second != first
    assert submit(proc.url, "countdown", [2, 0.05], key) == second
    if redis_server is not None:
        redis_server.flush()


# -- the Python client -------------------------------------------------------

def test_the_client_sends_a_key_with_each_start(server):
    """Guards TaskClient.start: its own key repeats the task, other
    arguments raise IdempotencyConflict, and starts without a key are
    tasks of their own (each gets a new UUID)."""
    with tc.TaskClient(server.url, retries=2, backoff=0.1) as client:
        key = new_key()
        task = client.start("countdown", 1, 0.05, idempotency_key=key)
        assert client.start("countdown", steps=1, delay=0.05,
                            idempotency_key=key).task_id == task.task_id
        with pytest.raises(tc.IdempotencyConflict) as info:
            client.start("countdown", 2, 0.05, idempotency_key=key)
        assert info.value.code == -32006
        assert info.value.faultcode == "Client.IdempotencyConflict"
        one, two = client.start("countdown", 1, 0.05), client.start("countdown", 1, 0.05)
        assert len({one.task_id, two.task_id, task.task_id}) == 3
        with pytest.raises(tc.BadResponse) as bad:
            client.start("countdown", 1, 0.05, idempotency_key="no spaces")
        assert bad.value.http_status == 400 and "Idempotency-Key" in str(bad.value)


def test_the_client_retries_a_start(request):
    """Guards: a start whose server is down is retried (it carries a key)
    and succeeds once a server answers on the port."""
    proc = ServiceProcess()
    request.addfinalizer(lambda: proc.stop())
    port = proc.port
    proc.stop()
    back = []
    restart = threading.Timer(0.5, lambda: back.append(ServiceProcess(port=port)))
    restart.start()
    request.addfinalizer(lambda: [p.stop() for p in back])
    with tc.TaskClient(proc.url, retries=8, backoff=0.3) as client:
        task = client.start("countdown", 1, 0.05)
        assert task.wait(timeout=30).status == "done"
    restart.join()


def test_the_client_sends_the_header_on_starts_only(server):
    """Guards: the key goes with start, not with reads or plain calls
    (whose retries need none)."""
    sent = []
    with tc.TaskClient(server.url) as client:
        client.session.hooks["response"].append(
            lambda r, *a, **k: sent.append(r.request.headers.get("Idempotency-Key")))
        task = client.start("countdown", 1, 0.05)
        task.progress()
        client.call("echo", "x")
    assert sent[0].startswith('"') and parse_key(sent[0])
    assert sent[1:] == [None, None]


# -- each store's side --------------------------------------------------------

def test_the_store_contract(make_store):
    """Guards Store.submit(idempotency_key=) on both stores, called as the
    published methods call it."""
    store = make_store()
    add, info = task_type("add"), task_type("info")
    first = store.submit(add, (2, 3), idempotency_key="k1").task_id
    assert store.submit(add, (2, 3), idempotency_key="k1").task_id == first
    with pytest.raises(IdempotencyConflict):
        store.submit(add, (2, 4), idempotency_key="k1")
    assert store.submit(add, (2, 3), idempotency_key="k2").task_id != first
    assert store.submit(add, (2, 3)).task_id != first
    other = store.submit(info, ("disk",), idempotency_key="k1").task_id
    assert other != first and store.read(info, other).method == "info"
    assert store.wait(add, first, 10).status.is_finished
    assert store.result(add, first) == 5


def test_concurrent_submits_to_one_store_make_one_task(make_store):
    """Guards the store's own atomicity (no HTTP in between): 16 threads
    submit with one key at once."""
    store = make_store()
    add = task_type("add")
    for _ in range(3):
        key = new_key()
        start = threading.Barrier(16)
        ids = []

        def go():
            start.wait()
            ids.append(store.submit(add, (1, 1), idempotency_key=key).task_id)

        threads = [threading.Thread(target=go) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(ids) == 16 and len(set(ids)) == 1


def test_the_thread_store_forgets_keys_with_their_tasks():
    """Guards: the thread store's keys are bounded by its tasks and go when
    they expire (result TTL) or are dropped (``max_kept``)."""
    add = task_type("add")
    store = ThreadStore(workers=2, result_ttl=0.3)
    try:
        ids = [store.submit(add, (i, i), idempotency_key="k%d" % i).task_id
               for i in range(20)]
        assert len(store._keys) == 20
        for task_id in ids:
            store.wait(add, task_id, 10)
        wait_until(lambda: store.list_tasks() == ([], None), timeout=10)
        assert len(store._keys) == 0
        with pytest.raises(TaskNotFound):
            store.read(add, ids[0])
        assert store.submit(add, (0, 0), idempotency_key="k0").task_id != ids[0]
    finally:
        store.close()
    kept = ThreadStore(workers=2, max_kept=5)
    try:
        for i in range(20):
            kept.submit(add, (i, i), idempotency_key="k%d" % i)
        # each listing expires the finished tasks over max_kept
        wait_until(lambda: len(kept.list_tasks(limit=50)[0]) == 5, timeout=10)
        assert len(kept._keys) == 5
    finally:
        kept.close()


def test_the_redis_key_expires_with_the_result_ttl(redis_url):
    """Guards the Redis layout: one key per method and key, holding the
    task id and a fingerprint, expiring result_ttl after the submit."""
    from tasktypes.redis_store import RedisStore
    add = task_type("add")
    store = RedisStore(redis_url, workers=2, result_ttl=60)
    try:
        task_id = store.submit(add, (1, 2), idempotency_key="rk").task_id
        client = store.redis
        name = "tasktypes:idempotency:add:rk"
        held = client.get(name)
        assert held.split(" ")[0] == str(task_id) and len(held.split(" ")[1]) == 64
        assert 55_000 < client.pttl(name) <= 60_000
        assert store.wait(add, task_id, 10).status.is_finished
    finally:
        store.close()


def test_a_claim_whose_submit_died_is_taken_over(redis_url, monkeypatch):
    """Guards the Redis claim's two waits: a retry while the first submit
    has claimed the key but not written its task waits for the task; a
    claim left without a task (its submit died) is taken over after
    IDEMPOTENCY_PENDING, not held for the whole TTL."""
    from tasktypes import redis_store
    from tasktypes.idempotency import fingerprint
    monkeypatch.setattr(redis_store, "IDEMPOTENCY_PENDING", 0.5)
    add = task_type("add")
    store = redis_store.RedisStore(redis_url, workers=2, result_ttl=60)
    try:
        name = "tasktypes:idempotency:add:dead"
        # as a submit leaves it that died between its claim and its task
        store.redis.set(name, "%d %s" % (12345, fingerprint(add, (1, 2))), px=60_000)
        task_id = store.submit(add, (1, 2), idempotency_key="dead").task_id
        assert task_id != 12345
        assert store.wait(add, task_id, 10).status.is_finished
        assert store.redis.get(name).startswith("%d " % task_id)
    finally:
        store.close()


# -- the README's examples, as printed --------------------------------------

def test_the_readme_examples_run(server, tmp_path):
    """Guards the README's curl and zeep examples of the header: pasted as
    printed (only the address changes), the retry names the first task and
    other arguments are the conflict."""
    import json
    import subprocess
    import sys
    from test_readme import README_ADDRESS, code_blocks, readme_section
    section = readme_section("Submitting twice safely: Idempotency-Key")
    (curl,), (python,) = code_blocks(section, "sh"), code_blocks(section, "python")
    done = subprocess.run(["bash", "-c", "set -eu\n" + curl.replace(README_ADDRESS, server.url)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    first, again, other = [json.loads(line) for line in done.stdout.splitlines() if line]
    assert first["result"]["task_id"] == again["result"]["task_id"]
    assert other["error"]["code"] == -32006
    assert other["error"]["data"]["faultcode"] == "Client.IdempotencyConflict"
    script = tmp_path / "zeep_idempotency.py"
    script.write_text(python.replace(README_ADDRESS, server.url))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "soap11env:Client.IdempotencyConflict"]


def test_a_retry_waits_for_the_task_of_a_fresh_claim(redis_url):
    """Guards: a retry that finds the key claimed by a submit that has not
    written its task yet neither answers that id at once (it might never
    exist) nor starts a second task: it waits, and answers the id once the
    task is there."""
    from tasktypes.idempotency import fingerprint
    from tasktypes.redis_store import RedisStore
    add = task_type("add")
    store = RedisStore(redis_url, workers=2, result_ttl=60)
    try:
        first = 4503599627370001
        # as the first submit leaves it between its claim and its task
        store.redis.set("tasktypes:idempotency:add:mid",
                        "%d %s" % (first, fingerprint(add, (1, 2))), px=60_000)
        calls = lambda: store.redis.info("commandstats").get(  # noqa: E731
            "cmdstat_evalsha", {}).get("calls", 0)
        before = calls()
        answers = []
        retry = threading.Thread(target=lambda: answers.append(
            store.submit(add, (1, 2), idempotency_key="mid").task_id))
        retry.start()
        wait_until(lambda: calls() >= before + 3)  # it has asked, and asks again
        assert answers == [] and retry.is_alive()
        store.redis.hset("tasktypes:task:%d" % first, mapping={
            "method": "add", "status": "queued"})
        retry.join(10)
        assert answers == [first]
        assert store.redis.zcard("tasktypes:index") == 0  # no task of its own
    finally:
        store.close()


def test_a_bare_spyne_application_checks_the_key_too():
    """Guards the decorator's own check, for task types served without
    ``make_application`` (no HTTP 400 in front): a bad key is the fault
    Client.BadIdempotencyKey, a good one works as everywhere."""
    from spyne import Application
    from fixtures import FixtureService
    from tasktypes.devserver import BackgroundServer
    from tasktypes.jsonrpc import JsonRpc20, JsonRpcApplication
    app = Application([FixtureService], "test", in_protocol=JsonRpc20(),
                      out_protocol=JsonRpc20())
    with BackgroundServer(JsonRpcApplication(app)) as url:
        error = rpc(url, "add", [1, 2], key="no spaces", quoted=False).json()["error"]
        assert error["code"] == -32000
        assert error["data"]["faultcode"] == "Client.BadIdempotencyKey"
        assert "bad Idempotency-Key header" in error["message"]
        key = new_key()
        assert submit(url, "add", [1, 2], key) == submit(url, "add", [1, 2], key)


def test_a_resent_claim_is_the_same_claim(redis_url):
    """Guards _CLAIM against redis-py's resend after a lost reply: the
    script finding its own value answers 'claimed', not 'pending' (which
    would hold the submit up to IDEMPOTENCY_PENDING)."""
    from tasktypes.redis_store import RedisStore
    store = RedisStore(redis_url, workers=0, result_ttl=60)
    try:
        args = ["12345 abc", 60_000, "tasktypes:task:", 10_000]
        name = "tasktypes:idempotency:add:resent"
        assert store._claim(keys=[name], args=args) == ["claimed", "12345 abc"]
        assert store._claim(keys=[name], args=args) == ["claimed", "12345 abc"]
        assert store._claim(keys=[name], args=["999 abc"] + args[1:])[0] == "pending"
    finally:
        store.close()
