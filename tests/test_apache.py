"""The shipped apache/ configurations under a real Apache with mod_wsgi.

Each test starts Debian's ``/usr/sbin/apache2`` in the foreground with a
minimal main configuration in a temporary server root (a free loopback port,
workers as www-data, logs in that root) that ``Include``s one of the SHIPPED
``apache/tasktypes-*.conf`` files with its placeholders filled in, and drives
it over HTTP with zeep and plain JSON-RPC posts. Beside the Redis
configuration runs the worker service as the shipped systemd unit
(apache/tasktypes-worker.service) describes it: its user, directory,
environment and command, started by the test (systemd need not run here),
stopped with SIGTERM to its main process as the unit's KillMode=mixed does.

These tests install nothing: ``.ci/install-apache.sh`` provides Apache and the
venv with mod_wsgi. Without them the tests are skipped (a failure under CI:
see conftest.py). Apache gets the caller's environment without any
``TASKTYPES_*`` variable, plus what a test passes.

Apache serves a copy of the checkout in the server root (wsgi.py, tasktypes/,
service/, apache/): www-data can read it wherever the checkout is. The one
thing the copy adds is test-only: a few lines appended to the copied .wsgi
script put the answering process's pid in an ``X-Tasktypes-Pid`` response
header, so that a test can see which mod_wsgi daemon process answered.
"""

import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
import requests

from conftest import ROOT, free_port, wait_until
from tasktypes.testing import clean_environ, session_pids, stop_session

pytestmark = pytest.mark.apache

APACHE = "/usr/sbin/apache2"
APACHE_MODULES = "/usr/lib/apache2/modules"
VENV = "/opt/tasktypes-apache/venv"
RUN_AS = "www-data"
PID_HEADER = "X-Tasktypes-Pid"
WORKER_UNIT = "tasktypes-worker.service"
SYSTEMD_ANALYZE = "/usr/bin/systemd-analyze"
SOAP_ADDRESS = "{http://schemas.xmlsoap.org/wsdl/soap/}address"

# Appended to the copied .wsgi script only: the pid of the daemon process
# that answered, as a response header.
PID_MIDDLEWARE = '''

# --- added by tests/test_apache.py, not part of the shipped script ---
_tasktypes_application = application


def application(environ, start_response):
    def start_with_pid(status, headers, exc_info=None):
        headers = list(headers) + [("%s", str(os.getpid()))]
        return start_response(status, headers, exc_info)
    return _tasktypes_application(environ, start_with_pid)
''' % PID_HEADER


def missing_prerequisites():
    """Why Apache cannot be run here, or None."""
    if os.geteuid() != 0:
        return "Apache must start as root to run its workers as %s" % RUN_AS
    try:
        pwd.getpwnam(RUN_AS)
    except KeyError:
        return "no user %s" % RUN_AS
    for path in (APACHE, os.path.join(APACHE_MODULES, "mod_mpm_event.so"),
                 os.path.join(VENV, "bin", "mod_wsgi-express"),
                 os.path.join(VENV, "bin", "python")):
        if not os.path.exists(path):
            return "%s is missing" % path
    return None


@pytest.fixture(scope="session")
def mod_wsgi_config():
    """The LoadModule (and WSGIPythonHome) lines for the venv's mod_wsgi."""
    reason = missing_prerequisites()
    if reason:
        pytest.skip("Apache tests need .ci/install-apache.sh to have run: %s" % reason)
    return subprocess.run([os.path.join(VENV, "bin", "mod_wsgi-express"), "module-config"],
                          check=True, capture_output=True, text=True).stdout


class ApacheServer:
    """A private Apache serving one shipped apache/ configuration."""

    def __init__(self, module_config, conf, script, placeholders=None, env=None,
                 port=None):
        self.root = tempfile.mkdtemp(prefix="tasktypes-apache-")
        os.chmod(self.root, 0o755)  # www-data reads the checkout copy in here
        self.port = port or free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.main_conf = os.path.join(self.root, "httpd.conf")
        self.error_log = os.path.join(self.root, "error.log")
        self.proc = None
        self.checkout = checkout = os.path.join(self.root, "checkout")
        self._copy_checkout(checkout)
        values = {"@PORT@": str(self.port), "@CHECKOUT@": checkout, "@VENV@": VENV}
        values.update(placeholders or {})
        for name in (conf, script):
            self._fill(os.path.join(checkout, "apache", name), values)
        with open(os.path.join(checkout, "apache", script), "a") as f:
            f.write(PID_MIDDLEWARE)
        os.mkdir(os.path.join(self.root, "run"))
        with open(self.main_conf, "w") as f:
            f.write(self._main_conf(module_config, os.path.join(checkout, "apache", conf)))
        self.env = clean_environ(env)

    @staticmethod
    def _copy_checkout(checkout):
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        os.mkdir(checkout)
        shutil.copy(os.path.join(ROOT, "wsgi.py"), checkout)
        for folder in ("tasktypes", "service", "apache"):
            shutil.copytree(os.path.join(ROOT, folder), os.path.join(checkout, folder),
                            ignore=ignore)
        for top, dirs, files in os.walk(checkout):
            os.chmod(top, 0o755)
            for name in files:
                os.chmod(os.path.join(top, name), 0o644)

    @staticmethod
    def _fill(path, values, to=None):
        with open(path) as f:
            text = f.read()
        for placeholder, value in values.items():
            text = text.replace(placeholder, value)
        left = set(re.findall(r"@[A-Z_]+@", text))
        assert not left, "%s has placeholders the test does not know: %s" % (
            os.path.basename(path), sorted(left))
        with open(to or path, "w") as f:
            f.write(text)

    def _main_conf(self, module_config, site_conf):
        return """\
ServerRoot "{root}"
ServerName 127.0.0.1
DefaultRuntimeDir "{root}/run"
PidFile "{root}/apache2.pid"
Listen 127.0.0.1:{port}
User {user}
Group {user}
ErrorLog "{root}/error.log"
LogLevel warn wsgi:info
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authz_core_module {modules}/mod_authz_core.so
# The shipped configurations set RequestReadTimeout (slow clients).
LoadModule reqtimeout_module {modules}/mod_reqtimeout.so
{module_config}
WSGISocketPrefix "{root}/run/wsgi"
StartServers 1
ServerLimit 2
ThreadsPerChild 16
MaxRequestWorkers 32
MinSpareThreads 4
MaxSpareThreads 32
# Python runs in the daemon processes only, not in Apache's own workers.
WSGIRestrictEmbedded On
LogFormat "%h \\"%r\\" %>s %{{{pid_header}}}o" tasktypes
CustomLog "{root}/access.log" tasktypes
Include "{site_conf}"
""".format(root=self.root, port=self.port, user=RUN_AS, modules=APACHE_MODULES,
           module_config=module_config.strip(), pid_header=PID_HEADER,
           site_conf=site_conf)

    def start(self):
        check = subprocess.run([APACHE, "-t", "-f", self.main_conf],
                               capture_output=True, text=True, env=self.env)
        assert check.returncode == 0, "apache2 -t: %s%s" % (check.stdout, check.stderr)
        # Its own session: teardown can end Apache and everything it started
        # (daemon processes, task processes) by this one process group id.
        self.proc = subprocess.Popen(
            [APACHE, "-f", self.main_conf, "-DFOREGROUND"], env=self.env,
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.root, "stderr.log"), "w"),
            start_new_session=True)

        def wsdl_served():
            if self.proc.poll() is not None:
                raise AssertionError("apache2 exited with %s:\n%s"
                                     % (self.proc.returncode, self.read_error_log()))
            try:
                return requests.get(self.url + "/soap?wsdl", timeout=10).status_code == 200
            except requests.ConnectionError:
                return False
        wait_until(wsdl_served, 30, 0.2)
        return self

    def read_error_log(self):
        try:
            with open(self.error_log, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def apachectl(self, action):
        """``apache2 -k <action>`` against this server, as an admin would."""
        subprocess.run([APACHE, "-f", self.main_conf, "-k", action], env=self.env,
                       check=True, capture_output=True, timeout=30)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.apachectl("stop")
                self.proc.wait(30)
            except (subprocess.SubprocessError, OSError):
                pass
        if self.proc is not None:
            stop_session(self.proc, 10)  # whatever is left of its session
        print("---- %s ----\n%s" % (self.error_log, self.read_error_log()))
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def apache_server(mod_wsgi_config):
    """Factory: ``apache_server("tasktypes-thread.conf", "tasktypes-thread.wsgi",
    placeholders={...}, env={...})`` starts one; all are stopped after the test."""
    started = []

    def start(conf, script, placeholders=None, env=None, port=None):
        server = ApacheServer(mod_wsgi_config, conf, script, placeholders, env, port)
        started.append(server)
        return server.start()
    yield start
    for server in started:
        server.stop()


def read_unit(path):
    """The [Service] section of a systemd unit file: {key: [values, in order]}.
    The shipped unit uses none of systemd's line continuations or specifiers."""
    section, service = None, {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            assert not line.endswith("\\") and "%" not in line, line
            if line.startswith("["):
                section = line
            elif section == "[Service]":
                key, _, value = line.partition("=")
                service.setdefault(key.strip(), []).append(value.strip())
    return service


def unit_environment(unit):
    """The variables of the unit's Environment= lines (later ones win)."""
    environment = {}
    for value in unit.get("Environment", []):
        for assignment in shlex.split(value):
            name, _, setting = assignment.partition("=")
            environment[name] = setting
    return environment


class WorkerService:
    """The worker service as the shipped apache/tasktypes-worker.service runs
    it beside an ApacheServer: the unit's User, Group, WorkingDirectory (the
    server's checkout copy), Environment and ExecStart (the Apache venv's
    ``tasktypes worker``), its placeholders filled as an admin would. It is a
    child of the test in a session of its own, not a systemd service: systemd
    need not run here. ``env`` is what a drop-in would add.

    ``terminate()`` is the unit's stop: SIGTERM to the main process only
    (``KillMode=mixed``), then, after ``TimeoutStopSec``, SIGKILL to all."""

    def __init__(self, server, redis_url, env=None):
        self.unit_file = os.path.join(server.root, WORKER_UNIT)
        server._fill(os.path.join(server.checkout, "apache", WORKER_UNIT),
                     {"@CHECKOUT@": server.checkout, "@VENV@": VENV, "@REDIS_URL@": redis_url},
                     to=self.unit_file)
        self.unit = read_unit(self.unit_file)
        self.user = self.unit["User"][-1]
        self.group = self.unit["Group"][-1]
        self.cwd = self.unit["WorkingDirectory"][-1]
        self.argv = shlex.split(self.unit["ExecStart"][-1])
        self.stop_timeout = float(self.unit["TimeoutStopSec"][-1])
        self.settings = dict(unit_environment(self.unit), **(env or {}))
        self.log_path = os.path.join(server.root, "worker.log")
        self.proc = None

    def start(self):
        # What systemd gives a service: a plain environment of its own, not
        # the caller's (no TASKTYPES_* from whoever runs the tests).
        account = pwd.getpwnam(self.user)
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "LANG": "C.UTF-8", "HOME": account.pw_dir, "USER": self.user,
               "LOGNAME": self.user}
        env.update(self.settings)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, cwd=self.cwd, env=env, user=self.user, group=self.group,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        return self

    def read_log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def terminate(self):
        """SIGTERM to the main process; its exit status, or None if it was
        still running after TimeoutStopSec (then everything is SIGKILLed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            status = None
        stop_session(self.proc, 10)
        return status

    def stop(self):
        if self.proc is not None:
            self.terminate()
            print("---- %s ----\n%s" % (self.log_path, self.read_log()))


@pytest.fixture
def worker_service():
    """Factory: ``worker_service(server, redis_url, env={...})`` starts the
    shipped unit's worker service beside ``server``; all are stopped (SIGTERM,
    as systemd would) after the test."""
    started = []

    def start(server, redis_url, env=None):
        worker = WorkerService(server, redis_url, env)
        started.append(worker)
        return worker.start()
    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(scope="module")
def thread_apache(mod_wsgi_config):
    server = ApacheServer(mod_wsgi_config, "tasktypes-thread.conf", "tasktypes-thread.wsgi")
    try:
        yield server.start()
    finally:
        server.stop()


# -- clients ---------------------------------------------------------------

def soap_client(url):
    """A zeep service proxy for the server at ``url`` whose every call goes
    over a new connection, and the list of pids that answered, call by call."""
    import zeep

    pids = []

    class Transport(zeep.Transport):
        def post(self, address, message, headers):
            response = super().post(address, message, headers)
            pids.append(response.headers.get(PID_HEADER))
            return response

    session = requests.Session()
    session.headers["Connection"] = "close"
    client = zeep.Client(url + "/soap?wsdl", transport=Transport(session=session))
    return client.service, pids


def jsonrpc(url, method, params, request_id=1):
    response = requests.post(url + "/jsonrpc", timeout=10, json={
        "jsonrpc": "2.0", "method": method, "params": params, "id": request_id})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.get("id") == request_id, body
    assert "error" not in body, body
    return body["result"]


def wsdl_address(url, **headers):
    from lxml import etree

    response = requests.get(url + "/soap?wsdl", headers=headers, timeout=10)
    assert response.status_code == 200
    return [e.get("location") for e in etree.fromstring(response.content).iter(SOAP_ADDRESS)]


def task_processes(server):
    """Pids of the task processes (the venv's Python, not the renamed
    "(wsgi:...)" daemon processes) started by THIS Apache: processes of its
    session, which its daemon processes and their fork servers inherit."""
    found = []
    for pid in session_pids(server.proc.pid):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv0 = f.read().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if argv0.startswith(VENV):
            found.append(pid)
    return found


# -- thread store: one process, many threads --------------------------------

def test_thread_wsdl_address_is_the_request_url(thread_apache):
    assert wsdl_address(thread_apache.url) == [thread_apache.url + "/soap"]
    # The name a client used, e.g. the ServerName, not a fixed one.
    assert wsdl_address(thread_apache.url, Host="tasktypes.example.com:8443") == [
        "http://tasktypes.example.com:8443/soap"]


def test_thread_soap_task_flow(thread_apache):
    service, pids = soap_client(thread_apache.url)
    task_id = service.countdown(3, 0.1)
    assert isinstance(task_id, int) and task_id > 0

    def finished():
        progress = service.countdown_progress(task_id)
        assert progress.task_id == task_id
        assert progress.status in ("queued", "running", "done"), progress
        return progress if progress.status == "done" else None
    progress = wait_until(finished, 20, 0.05)
    assert progress.progress == 1.0
    assert progress.message == "3 / 3"
    assert service.countdown_result(task_id) == 3
    assert service.echo("through Apache") == "through Apache"
    # Every call, each on its own connection, reached the one daemon process.
    assert len(pids) >= 4 and len(set(pids)) == 1, pids


def test_thread_jsonrpc_task_flow(thread_apache):
    url = thread_apache.url
    # m returns a TaskInfoResponse (CONTRACT.md): {"task_id": ...}.
    task_id = jsonrpc(url, "countdown", [3, 0.1])["task_id"]
    assert isinstance(task_id, int) and task_id > 0

    def finished():
        progress = jsonrpc(url, "countdown_progress", [task_id], 2)
        assert progress["status"] in ("queued", "running", "done"), progress
        return progress if progress["status"] == "done" else None
    progress = wait_until(finished, 20, 0.05)
    assert progress["progress"] == 1.0
    assert jsonrpc(url, "countdown_result", [task_id], 3) == 3


def test_thread_trickling_client_is_cut_off_by_apache(thread_apache):
    """mod_reqtimeout as the shipped configuration sets it: a client sending
    its headers one byte every 0.5 s (1,000 times slower than its MinRate) is
    cut off after the header timeout (10 s): the connection closed, with a
    408 if its request line had arrived. A plain echo from another client is
    answered meanwhile."""
    import socket

    head = (b"POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"X-Padding: " + b"p" * 200 + b"\r\n\r\n")
    started = time.monotonic()
    answer = b""
    echo_seconds = None
    with socket.create_connection(("127.0.0.1", thread_apache.port), 10) as sock:
        sock.settimeout(0.5)
        for i, byte in enumerate(head):
            try:
                chunk = sock.recv(4096)
            except socket.timeout:
                chunk = None
            if chunk is not None:  # an answer, or b"" when Apache closed
                answer = chunk
                break
            if time.monotonic() - started > 60:
                break
            sock.send(bytes([byte]))
            if i == 2:
                echo_started = time.monotonic()
                assert jsonrpc(thread_apache.url, "echo", ["meanwhile"]) == "meanwhile"
                echo_seconds = time.monotonic() - echo_started
    cut_after = time.monotonic() - started
    assert echo_seconds is not None, "Apache answered the trickler at once: %r" % answer
    print("Apache cut the trickler off after %.1f s (%r); echo meanwhile %.1f ms"
          % (cut_after, answer[:12], echo_seconds * 1000))
    assert i < len(head) - 1, "the whole request went through"
    # 10 s, the shipped header timeout: not 20 s, mod_reqtimeout's default
    assert 8 < cut_after < 18, cut_after
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert echo_seconds < 5


def test_thread_store_gives_no_multiprocess_warning(thread_apache):
    requests.get(thread_apache.url + "/soap?wsdl", timeout=10)
    log = thread_apache.read_error_log()
    assert "tasks are kept in one process's memory" not in log
    assert "Traceback" not in log, log


def test_thread_store_in_several_processes_loses_tasks(apache_server):
    """The mistake the README warns about: the thread store behind several
    daemon processes (the Redis configuration, with TASKTYPES_STORE=thread in
    Apache's environment, which wins over the .wsgi script's settings)."""
    server = apache_server("tasktypes-redis.conf", "tasktypes-redis.wsgi",
                           placeholders={"@REDIS_URL@": "redis://127.0.0.1:1/0"},
                           env={"TASKTYPES_STORE": "thread", "TASKTYPES_WORKERS": "8"})
    import zeep.exceptions

    service, pids = soap_client(server.url)
    task_id = service.countdown(20, 0.1)
    submitted_by = pids[-1]
    not_found = []
    for _ in range(30):
        try:
            service.countdown_progress(task_id)
        except zeep.exceptions.Fault as fault:
            assert fault.code.endswith("Client.TaskNotFound"), fault.code
            assert "in this server process" in fault.message
            not_found.append(pids[-1])
    assert not_found and submitted_by not in not_found, (submitted_by, pids)
    wait_until(lambda: "tasks are kept in one process's memory" in server.read_error_log(), 10)


# -- Redis store: several processes, tasks in the worker service -------------

def redis_apache(apache_server, redis_url, env=None, port=None):
    return apache_server("tasktypes-redis.conf", "tasktypes-redis.wsgi",
                         placeholders={"@REDIS_URL@": redis_url}, env=env, port=port)


def test_worker_unit_is_valid_and_fits_the_apache_configuration(mod_wsgi_config, redis_url):
    """``systemd-analyze verify`` finds nothing to say about the shipped unit
    (placeholders filled; it also checks that ExecStart's program exists),
    and the unit agrees with the rest of the deployment: Apache's user, a
    stop that signals the main process only and outlasts the grace period,
    settings that exist."""
    if not os.path.exists(SYSTEMD_ANALYZE):
        pytest.skip("%s is missing (Debian: apt-get install systemd; "
                    ".ci/install-apache.sh installs it)" % SYSTEMD_ANALYZE)
    # The files as they would be installed; no need to start Apache.
    server = ApacheServer(mod_wsgi_config, "tasktypes-redis.conf", "tasktypes-redis.wsgi",
                          {"@REDIS_URL@": redis_url})
    try:
        worker = WorkerService(server, redis_url)
        check = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", worker.unit_file],
                               capture_output=True, text=True, timeout=60)
    finally:
        server.stop()
    # verify exits 0 on settings it ignores, but says so on stderr, naming the unit.
    complaints = [line for line in (check.stdout + check.stderr).splitlines()
                  if WORKER_UNIT in line]
    assert check.returncode == 0 and not complaints, check.stdout + check.stderr

    unit = worker.unit
    assert worker.user == RUN_AS and worker.group == RUN_AS
    assert worker.cwd == server.checkout
    assert worker.argv == [os.path.join(VENV, "bin", "tasktypes"), "worker"]
    assert unit["KillSignal"] == ["SIGTERM"] and unit["KillMode"] == ["mixed"]
    assert unit["Restart"] == ["on-failure"]
    settings = worker.settings
    assert settings["TASKTYPES_STORE"] == "redis"
    assert settings["TASKTYPES_REDIS_URL"] == redis_url
    assert worker.stop_timeout > float(settings["TASKTYPES_WORKER_GRACE"])
    # Every setting it makes is one the README's configuration table knows
    # (a misspelt name would be ignored without a word).
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        documented = set(re.findall(r"^\| `(TASKTYPES_[A-Z_]+)` \|", f.read(), re.M))
    assert set(n for n in settings if n.startswith("TASKTYPES_")) <= documented, documented


def test_redis_polls_reach_every_process(apache_server, redis_url, worker_service):
    # Apache's environment reaches wsgi.py at import time, before the .wsgi
    # script's defaults. (A public URL on loopback: tests talk to no other host.)
    port = free_port()
    public = "http://localhost:%d" % port
    server = redis_apache(apache_server, redis_url, env={"TASKTYPES_PUBLIC_URL": public},
                          port=port)
    worker = worker_service(server, redis_url, env={"TASKTYPES_WORKERS": "2"})
    assert wsdl_address(server.url) == [public + "/soap"]

    service, pids = soap_client(server.url)
    task_id = service.cloneInstance("vm-7", "vm-7-copy")
    assert isinstance(task_id, int)
    del pids[:]
    statuses = []
    for _ in range(30):
        progress = service.cloneInstance_progress(task_id)
        assert progress.task_id == task_id
        statuses.append(progress.status)
    assert set(statuses) <= {"queued", "running", "done"}, statuses
    # The polls, each on a new connection, reached all three daemon
    # processes (mod_wsgi hands them out in turn), and every one found the task.
    assert len(pids) == 30 and len(set(pids)) == 3, pids

    wait_until(lambda: service.cloneInstance_progress(task_id).status == "done", 30, 0.1)
    info = service.cloneInstance_result(task_id)
    assert info.instance_id == "vm-7-clone"
    assert info.name == "vm-7-copy"
    assert list(info.disk_images) == ["vm-7-copy-disk0.qcow2", "vm-7-copy-disk1.qcow2"]
    # It ran in the worker service, not in Apache: the body's logging is in
    # the worker's log (the journal, under systemd) and not in Apache's.
    wait_until(lambda: "cloneInstance %s: boot" % task_id in worker.read_log(), 10)
    assert "cloneInstance %s: snapshot" % task_id in worker.read_log()
    assert "cloneInstance %s:" % task_id not in server.read_error_log()
    assert not task_processes(server)


@pytest.mark.parametrize("restart", ["graceful", "stop-start"])
def test_redis_tasks_outlive_apache_restarts(apache_server, redis_url, worker_service,
                                             restart):
    """The shipped Redis configuration as deployed: Apache's daemon processes
    only submit (TASKTYPES_WORKERS=0 in the .wsgi script) and the worker
    service of apache/tasktypes-worker.service runs the tasks beside it.
    ``apache2 -k graceful`` (apachectl graceful, logrotate's nightly reload)
    while two tasks run and a third waits restarts every daemon process; all
    of them end ``done``, and so does a task submitted during the restart.
    The same when Apache is stopped and started again."""
    server = redis_apache(apache_server, redis_url)
    # Two task processes: the third task waits in the queue, in Redis.
    worker = worker_service(server, redis_url, env={"TASKTYPES_WORKERS": "2"})
    service, pids = soap_client(server.url)
    running = [service.countdown(25, 0.2) for _ in range(2)]  # 5 s each
    wait_until(lambda: all(service.countdown_progress(t).status == "running"
                           for t in running), 30, 0.1)
    waiting = service.cloneInstance("vm-9", "vm-9-copy")
    assert service.cloneInstance_progress(waiting).status == "queued"
    assert not task_processes(server), "a task runs in Apache's processes"
    before = set(pids)

    if restart == "graceful":
        server.apachectl("graceful")
    else:
        server.apachectl("stop")
        server.proc.wait(60)
        stop_session(server.proc, 10)
        server.start()

    import zeep.exceptions
    restarting = (requests.RequestException, zeep.exceptions.TransportError)

    def submitted():
        try:
            return service.cloneInstance("vm-10", "vm-10-copy")
        except restarting:
            return None  # daemon processes coming back
    during = wait_until(submitted, 30, 0.05)

    def answered_by_new_process():
        try:
            service.echo("restarted?")
        except restarting:
            return False
        return pids[-1] not in before
    # The daemon processes did restart: new pids answer.
    wait_until(answered_by_new_process, 60, 0.1)

    def ended(read_progress, task_id):
        try:
            progress = read_progress(task_id)
        except restarting:
            return None
        return progress if progress.status not in ("queued", "running") else None
    for read_progress, task_id in [(service.countdown_progress, t) for t in running] + [
            (service.cloneInstance_progress, t) for t in (waiting, during)]:
        progress = wait_until(lambda: ended(read_progress, task_id), 60, 0.2)
        assert progress.status == "done", progress
    assert [service.countdown_result(t) for t in running] == [25, 25]
    assert service.cloneInstance_result(waiting).name == "vm-9-copy"
    assert service.cloneInstance_result(during).name == "vm-10-copy"
    # Each ran once, in the worker service.
    log = worker.read_log()
    for task_id in (waiting, during):
        assert log.count("cloneInstance %s: boot" % task_id) == 1, log
    assert server.proc.poll() is None


def test_worker_unit_stop_lets_running_tasks_finish(apache_server, redis_url,
                                                    worker_service):
    """Stopping the worker service as the unit does (``systemctl stop``:
    SIGTERM to its main process only) while a task runs: the task ends
    ``done`` and the service exits by itself, within TimeoutStopSec. A task
    submitted while no worker service runs waits, and runs once one starts."""
    server = redis_apache(apache_server, redis_url)
    worker = worker_service(server, redis_url, env={"TASKTYPES_WORKERS": "2"})
    service, pids = soap_client(server.url)
    task_id = service.countdown(15, 0.2)  # 3 s
    wait_until(lambda: service.countdown_progress(task_id).progress > 0, 30, 0.1)

    status = worker.terminate()
    assert status == 0, "the worker service did not exit 0 within TimeoutStopSec (%s): %s\n%s" % (
        worker.stop_timeout, status, worker.read_log()[-3000:])
    progress = service.countdown_progress(task_id)
    assert progress.status == "done", progress
    assert service.countdown_result(task_id) == 15

    later = service.cloneInstance("vm-11", "vm-11-copy")
    assert service.cloneInstance_progress(later).status == "queued"
    worker_service(server, redis_url, env={"TASKTYPES_WORKERS": "2"})
    wait_until(lambda: service.cloneInstance_progress(later).status == "done", 60, 0.2)
    assert service.cloneInstance_result(later).name == "vm-11-copy"


@pytest.mark.parametrize("stop", ["graceful-stop", "stop"])
def test_redis_tasks_in_apache_are_not_left_running_when_apache_stops(
        apache_server, redis_url, service_process, stop):
    """Without the worker service (TASKTYPES_WORKERS set in Apache's own
    environment, which wins over the .wsgi script's 0), Apache's daemon
    processes run tasks themselves, as ``python wsgi.py`` does; then stopping
    Apache stops them, and they are reported failed, never left running."""
    server = redis_apache(apache_server, redis_url, env={"TASKTYPES_WORKERS": "2"})
    service, pids = soap_client(server.url)
    task_id = service.taskExample("session-1", 7)  # 30 s of work
    wait_until(lambda: service.taskExample_progress(task_id).progress > 0, 20, 0.1)
    assert task_processes(server), "the running task's process is not to be seen"

    started = time.monotonic()
    server.apachectl(stop)
    server.proc.wait(60)
    # Apache and its daemon processes are gone, and so are the task processes.
    wait_until(lambda: not task_processes(server), 20, 0.2)

    # Another tasktypes server on the same Redis sees how the task ended.
    other = service_process(env={"TASKTYPES_STORE": "redis", "TASKTYPES_REDIS_URL": redis_url})
    import zeep
    reader = zeep.Client(other.url + "/soap?wsdl")

    def ended():
        progress = reader.service.taskExample_progress(task_id)
        return progress if progress.status not in ("queued", "running") else None
    progress = wait_until(ended, 60, 0.5)
    assert progress.status == "failed", progress
    assert time.monotonic() - started < 60
