"""The servers a benchmark run starts and stops itself: a private Redis, the
shipped ``wsgi.py`` under cheroot or mod_wsgi-express, and the Ladon service
in its own virtual environment.

    with RedisServer() as redis_server:
        with tasktypes_server("redis", redis_server.url) as server:
            server.url, server.pid          # pid: the process serving requests

Every server is a child process that the run ends by its pid. Nothing here
needs pytest: the private Redis and the server processes come from
``tasktypes.testing``, which the test suite uses too.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

from tasktypes import testing
from tasktypes.testing import ServerError, ServerProcess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
LADON_VENV = os.path.join(BENCH, ".ladon-venv")
LADON_VERSION = "1.0.7"
MOD_WSGI_EXPRESS = "/opt/tasktypes-apache/venv/bin/mod_wsgi-express"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of a process so far, from /proc (None if it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree_cpu_seconds(pid):
    """CPU seconds of ``pid``, its children that it has reaped, and its live
    descendants: processes that come and go (Apache's workers) stay counted."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    own = sum(int(v) for v in fields[11:15]) / CLK_TCK  # utime stime cutime cstime
    return own + sum(tree_cpu_seconds(child) for child in children(pid))


def children(pid):
    """Pids of the direct children of ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    if int(f.read().rpartition(")")[2].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return found


def _command_line(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def tasktypes_env(store, redis_url=None):
    env = {"TASKTYPES_STORE": store, "PYTHONUNBUFFERED": "1"}
    if redis_url:
        env["TASKTYPES_REDIS_URL"] = redis_url
    return env


def cheroot_server(store, redis_url=None, fill=0):
    """``python wsgi.py`` (the dev server, 32 threads; the kind is still
    called "cheroot", its server before waitress); with ``fill``, the bench's
    own launcher, which first fills the thread store with that many
    finished tasks through the store's API."""
    if fill:
        argv = [sys.executable, "-m", "bench.serve", "--port", "@PORT@",
                "--fill", str(fill)]
    else:
        argv = [sys.executable, os.path.join(ROOT, "wsgi.py"), "--port", "@PORT@"]
    return ServerProcess("cheroot/%s" % store, argv, tasktypes_env(store, redis_url),
                         start_timeout=180)


def mod_wsgi_missing():
    """Why mod_wsgi-express cannot be run here, or None."""
    if not os.path.exists(MOD_WSGI_EXPRESS):
        return "%s is missing (run .ci/install-apache.sh)" % MOD_WSGI_EXPRESS
    if os.geteuid() == 0:
        try:
            import pwd
            pwd.getpwnam("www-data")
        except KeyError:
            return "running as root and there is no www-data user for Apache's workers"
    return None


class ModWsgiServer(ServerProcess):
    """``mod_wsgi-express start-server wsgi.py``: Apache with one daemon
    process of 32 threads, as ``apache/`` deploys it; ``pid`` is the daemon
    process that runs the application."""

    def __init__(self, store, redis_url=None):
        self.root = tempfile.mkdtemp(prefix="tasktypes-bench-apache-")
        os.chmod(self.root, 0o755)
        argv = [MOD_WSGI_EXPRESS, "start-server", os.path.join(ROOT, "wsgi.py"),
                "--host", "127.0.0.1", "--port", "@PORT@", "--threads", "32",
                "--server-root", self.root, "--log-to-terminal"]
        if os.geteuid() == 0:
            argv += ["--user", "www-data", "--group", "www-data"]
        super().__init__("mod_wsgi/%s" % store, argv, tasktypes_env(store, redis_url))
        self.apache_pid = self.proc.pid
        self.pid = None
        deadline = time.monotonic() + 20
        while self.pid is None and time.monotonic() < deadline:
            for child in children(self.apache_pid):
                if _command_line(child).startswith("(wsgi:"):
                    self.pid = child
            time.sleep(0.05)
        if self.pid is None:
            self.stop()
            raise ServerError("mod_wsgi daemon process not found")

    def stop(self):
        super().stop()
        shutil.rmtree(self.root, ignore_errors=True)


# -- Ladon ---------------------------------------------------------------------

def ladon_python():
    return os.path.join(LADON_VENV, "bin", "python")


def ensure_ladon_venv(log=print):
    """Make ``bench/.ladon-venv`` with Ladon 1.0.7 and cheroot if needed.
    Returns None, or why Ladon is unavailable."""
    python = ladon_python()
    check = [python, "-c", "import ladon, cheroot, importlib.metadata as m; "
             "assert m.version('ladon') == %r" % LADON_VERSION]
    if os.path.exists(python) and subprocess.run(check, capture_output=True).returncode == 0:
        return None
    log("installing ladon==%s into %s ..." % (LADON_VERSION, LADON_VENV))
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", LADON_VENV], check=True,
                       capture_output=True, timeout=120)
        subprocess.run([python, "-m", "pip", "install", "-q",
                        "ladon==%s" % LADON_VERSION, "cheroot"],
                       check=True, capture_output=True, timeout=300)
        subprocess.run(check, check=True, capture_output=True, timeout=60)
    except subprocess.CalledProcessError as exc:
        output = (exc.stderr or exc.stdout or b"").decode(errors="replace").strip()
        return "could not install ladon==%s: %s" % (LADON_VERSION,
                                                     output.splitlines()[-1:] or exc)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "could not install ladon==%s: %s" % (LADON_VERSION, exc)
    return None


def ladon_server():
    return ServerProcess("cheroot/ladon", [ladon_python(),
                                            os.path.join(BENCH, "ladon_service.py"),
                                            "--port", "@PORT@"], {"PYTHONUNBUFFERED": "1"})


# -- Redis ---------------------------------------------------------------------

class RedisServer(testing.RedisServer):
    """tasktypes.testing's private Redis, failing as the other servers here do."""

    def __enter__(self):
        try:
            self.start()
        except RuntimeError as exc:
            self.close()
            raise ServerError(str(exc)) from None
        return self
