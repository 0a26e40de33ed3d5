"""CPU time from /proc, and pinning processes to CPUs: how the benchmark
charges each request to the process that served it.

    before = session_cpu_seconds(server.pid)
    ...                                   # load
    used = session_cpu_seconds(server.pid) - before

A server's CPU is utime + stime of every live process of its session (the
server and the worker processes it starts), plus cutime + cstime, the time
of children they have already reaped, so that a worker that exits between
two readings stays counted.
"""

import os
import time

from tasktypes.testing import session_pids

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid):
    """The fields of /proc/<pid>/stat after the command name (state first),
    or None if the process is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rpartition(")")[2].split()
    except OSError:
        return None


def _seconds(pid, fields):
    """The sum of the /proc/<pid>/stat ``fields`` (utime 11, stime 12), in
    seconds (0.0 if the process is gone)."""
    stat = _stat(pid)
    return 0.0 if stat is None else sum(int(stat[i]) for i in fields) / CLK_TCK


def cpu_seconds(pid):
    """utime + stime of one process so far."""
    return _seconds(pid, (11, 12))


def user_seconds(pid):
    """utime of one process so far: the CPU it spent running its own code."""
    return _seconds(pid, (11,))


def system_seconds(pid):
    """stime of one process so far: the kernel's work for it (system calls,
    thread switches)."""
    return _seconds(pid, (12,))


def session_cpu_seconds(sid):
    """utime + stime + cutime + cstime of every live process of session
    ``sid`` (a ``ServerProcess``'s pid is its session's id)."""
    total = 0
    for pid in session_pids(sid):
        fields = _stat(pid)
        if fields is not None:
            total += sum(int(v) for v in fields[11:15])
    return total / CLK_TCK


def own_cpu_seconds():
    """This process's CPU so far, all threads (the client's cost)."""
    return time.process_time()


def pin(pids, cpu):
    """Every thread of every process in ``pids`` on ``cpu`` (None: leave
    them), or on the CPUs of the set ``cpu``. Threads and children created
    later inherit it from their creator."""
    if cpu is None:
        return
    cpus = cpu if isinstance(cpu, (set, frozenset)) else {cpu}
    for pid in pids:
        try:
            tids = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue
        for tid in tids:
            try:
                os.sched_setaffinity(int(tid), cpus)
            except OSError:
                pass  # gone meanwhile


def split_cpus():
    """(server CPU, client CPU): the first two CPUs this process may use,
    or (None, None) on a one-CPU machine, where nothing is pinned."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return cpus[0], cpus[1]


def wait_idle(read, window=0.2, busy=0.05, timeout=20.0):
    """Wait until the CPU seconds that ``read()`` returns grow by less than
    ``busy`` of a CPU over ``window`` seconds (submitted tasks all run, say),
    at most ``timeout`` seconds; False if it never got there."""
    deadline = time.monotonic() + timeout
    last = read()
    while time.monotonic() < deadline:
        time.sleep(window)
        now = read()
        if now - last <= busy * window:
            return True
        last = now
    return False
