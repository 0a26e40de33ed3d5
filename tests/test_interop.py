"""Clients nobody here wrote, against ``python wsgi.py``, from the WSDL only.

PHP's ``SoapClient`` (``tests/interop/flow.php``) and node-soap
(``tests/interop/flow.js``) each run the whole task flow: submit, progress,
wait, result, a complex result (``cloneInstance``), cancel, and every task
fault (TaskNotFinished, TaskCancelled, TaskFailed, TaskNotFound) plus a
validation fault; suds does the same here in Python. JAX-WS's ``wsimport``
must read the WSDL without a single warning and generate natural
signatures. ``.ci/install-interop.sh`` installs php, node-soap and wsimport;
in CI (``CI=true``) a missing one is a failure that names that script; on a
workstation that has not run it, these tests are skipped with that message,
as the Redis and Apache tests are.
"""

import json
import os
import shutil
import subprocess

import pytest
from suds import WebFault
from suds.client import Client as SudsClient

from conftest import ROOT, ServiceProcess

INTEROP = os.path.join(ROOT, "tests", "interop")
INSTALL = "run `bash .ci/install-interop.sh` (as root) first"


def missing(what):
    """A skip saying how to install ``what`` (a failure under CI: conftest.py)."""
    pytest.skip("%s is not installed: %s" % (what, INSTALL))


def tool(name):
    """The path of the command ``name``, or ``missing``."""
    return shutil.which(name) or missing(name)


@pytest.fixture(scope="module", params=["thread", "redis"])
def base_url(request):
    """``python wsgi.py`` with each store; the module's clients share it."""
    # service_process and redis_url are function-scoped; this module starts
    # its own so that the three clients run against one server per store.
    env = {"TASKTYPES_STORE": request.param}
    redis = None
    if request.param == "redis":
        redis = request.getfixturevalue("redis_server")
        if redis.proc is None:
            redis.start()
        env["TASKTYPES_REDIS_URL"] = redis.url
    proc = ServiceProcess(env)
    try:
        yield proc.url
    finally:
        proc.stop()
        if redis is not None and redis.proc is not None:
            redis.flush()


def run_client(args):
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=INTEROP)
    assert done.returncode == 0, "%s\n%s\n%s" % (args, done.stdout, done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_flow(seen):
    """What every SOAP client must see in the flow of flow.php / flow.js."""
    assert seen["echo"] == "hi"
    assert seen["short_wait"]["status"] == "done"
    assert seen["short_progress"]["progress"] == 1
    assert seen["short_progress"]["message"] == "3 / 3"
    assert seen["short_result"] == 3
    assert seen["long_progress"]["status"] in ("queued", "running")
    assert seen["cancel"]["status"] == "cancelled"
    assert seen["clone_wait"]["status"] == "done"
    assert seen["clone_result"] == {
        "instance_id": "vm-7-clone", "name": "copy", "state": "running",
        "disk_images": ["copy-disk0.qcow2", "copy-disk1.qcow2"]}
    assert seen["failing_wait"]["status"] == "failed"
    # The faultcode is a QName in the envelope's namespace, as SOAP 1.1 has
    # it; clients show it with the server's prefix (README, "Errors").
    faults = {key: seen[key]["faultcode"] for key in
              ("not_finished", "cancelled", "failed", "not_found", "bad_argument")}
    assert faults == {
        "not_finished": "soap11env:Client.TaskNotFinished",
        "cancelled": "soap11env:Client.TaskCancelled",
        "failed": "soap11env:Server.TaskFailed",
        "not_found": "soap11env:Client.TaskNotFound",
        "bad_argument": "soap11env:Client.ValidationError",
    }
    assert seen["failed"]["faultstring"] == "ValueError: disk full"
    assert seen["bad_argument"]["faultstring"] == \
        "steps: expected int (0 to 10000), got '20000'"


def test_php_soapclient_runs_the_whole_flow(base_url):
    """Guards interoperability with PHP's SoapClient (ext-soap): the WSDL,
    document/literal wrapped calls, complex results and faults."""
    php = tool("php")
    modules = subprocess.run([php, "-m"], capture_output=True, text=True).stdout.split()
    if "soap" not in modules:
        missing("PHP's soap extension (Debian php-soap)")
    check_flow(run_client([php, "flow.php", base_url]))


def test_node_soap_runs_the_whole_flow(base_url):
    """Guards interoperability with node-soap (npm "soap")."""
    node = tool("node")
    if not os.path.isdir(os.path.join(INTEROP, "node_modules", "soap")):
        missing("node-soap (tests/interop/node_modules)")
    seen = run_client([node, "flow.js", base_url])
    assert seen["short_id_type"] == "number"
    check_flow(seen)


def test_suds_runs_the_whole_flow(base_url):
    """Guards suds (the README's second Python client): the flow, the
    faults, and a clear fault when the TaskInfoResponse object itself is
    passed back instead of the id inside it."""
    service = SudsClient(base_url + "/soap?wsdl", cache=None).service

    def fault(call, *args):
        with pytest.raises(WebFault) as info:
            call(*args)
        return info.value.fault.faultcode, info.value.fault.faultstring

    assert service.echo("hi") == "hi"
    info = service.countdown(3, 0.05)
    assert service.countdown_wait(info.task_id, 20).status == "done"
    assert service.countdown_result(info.task_id) == 3

    assert fault(service.countdown_progress, info) == (
        "soap11env:Client.ValidationError",
        "task_id: expected long, got child elements (<task_id>)")

    long_id = service.countdown(100, 0.1).task_id
    assert fault(service.countdown_result, long_id)[0] == "soap11env:Client.TaskNotFinished"
    assert service.countdown_cancel(long_id).status == "cancelled"
    assert fault(service.countdown_result, long_id)[0] == "soap11env:Client.TaskCancelled"

    clone = service.cloneInstance("vm-7", "copy").task_id
    assert service.cloneInstance_wait(clone, 20).status == "done"
    result = service.cloneInstance_result(clone)
    assert (result.instance_id, result.name, list(result.disk_images)) == (
        "vm-7-clone", "copy", ["copy-disk0.qcow2", "copy-disk1.qcow2"])

    failing = service.failingTask("disk full", 0).task_id
    assert service.failingTask_wait(failing, 20).status == "failed"
    assert fault(service.failingTask_result, failing) == (
        "soap11env:Server.TaskFailed", "ValueError: disk full")
    assert fault(service.countdown_progress, 12345)[0] == "soap11env:Client.TaskNotFound"


def test_wsimport_reads_the_wsdl_without_a_warning(base_url, tmp_path):
    """Guards the WSDL against a strict consumer: JAX-WS's wsimport reports
    nothing (imported schemas come before the schema that imports them) and,
    with parts named "parameters", unwraps operations into natural Java
    signatures with sized types (int, not BigInteger)."""
    wsimport = tool("wsimport")
    done = subprocess.run([wsimport, "-Xnocompile", "-keep", "-d", str(tmp_path),
                           base_url + "/soap?wsdl"],
                          capture_output=True, text=True, timeout=180)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "[WARNING]" not in output and "[ERROR]" not in output, output
    java = (tmp_path / "tasktypes" / "TaskService.java").read_text()
    flat = " ".join(java.split())
    assert "public TaskInfoResponse countdown( @WebParam(name = \"steps\", " \
           "targetNamespace = \"tasktypes\") int steps, @WebParam(name = \"delay\", " \
           "targetNamespace = \"tasktypes\") double delay);" in flat, java
    assert "public int countdownResult( @WebParam(name = \"task_id\", " \
           "targetNamespace = \"tasktypes\") long taskId);" in flat, java
