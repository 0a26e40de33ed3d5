"""The ``tasktypes`` command line against ``python wsgi.py``: in a real
pseudo-terminal (the live progress bar, the final line, Ctrl-C with and
without --cancel-on-interrupt) and with its output piped (plain lines, the
result as JSON on stdout), with its documented exit statuses."""

import json
import os
import re
import signal
import subprocess
import sys

import pexpect
import pytest

from tasktypes.client_cli import (EXIT_CANCELLED, EXIT_INTERRUPTED, EXIT_NOT_FINISHED,
                                  EXIT_OK, EXIT_SERVER_ERROR, EXIT_TASK_FAILED,
                                  EXIT_TIMED_OUT, EXIT_UNREACHABLE, EXIT_USAGE)

from conftest import ServiceProcess

# Once: the console script in a pty, the same whatever Python runs it (the
# client's code runs on every Python in test_client.py); CI time.
pytestmark = pytest.mark.once

# The console script of this interpreter's environment (setup.py's entry point).
SCRIPT = os.path.join(os.path.dirname(sys.executable), "tasktypes")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(scope="module", params=["thread", "redis"])
def server(request):
    env = {}
    if request.param == "redis":
        redis_server = request.getfixturevalue("redis_server")
        if redis_server.proc is None:
            redis_server.start()
        env = {"TASKTYPES_STORE": "redis", "TASKTYPES_REDIS_URL": redis_server.url}
    proc = ServiceProcess(env)
    yield proc.url
    proc.stop()
    if request.param == "redis":
        redis_server.flush()


@pytest.fixture(scope="module")
def url(request):
    """The thread-store server, for what does not depend on the store."""
    proc = ServiceProcess()
    yield proc.url
    proc.stop()


@pytest.fixture(autouse=True, scope="module")
def console_script():
    assert os.path.exists(SCRIPT), (
        "no tasktypes console script beside %s: pip install -e '.[test]'" % sys.executable)


def tasktypes(*args, timeout=60):
    """Run the command with its output piped: (exit status, stdout, stderr)."""
    done = subprocess.run([SCRIPT] + list(args), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout, done.stderr


def in_terminal(*args):
    return pexpect.spawn(SCRIPT, list(args), dimensions=(24, 120), encoding="utf-8",
                         timeout=30)


def started_id(text):
    return int(re.search(r"task (\d+) started", text).group(1))


def test_run_in_a_terminal_draws_a_progress_bar(server):
    """Guards the live bar (bar, percentage, status, message), its final
    line and the result, with exit status 0, with each store."""
    child = in_terminal("run", server, "countdown", "10", "0.2")
    child.expect(pexpect.EOF)
    child.close()
    screen = child.before
    assert child.exitstatus == EXIT_OK
    assert "\x1b[" in screen and "━" in screen  # drawn, in place
    plain = ANSI.sub("", screen)
    assert re.search(r"countdown task \d+ started", plain)
    assert re.search(r"countdown [━╸╺]+ +[1-9]0% 0:00:0\d running [1-9] / 10", plain)
    final = [line.strip() for line in re.split(r"[\r\n]+", plain) if line.strip()]
    assert re.fullmatch(r"countdown ━+ 100% 0:00:0\d done 10 / 10", final[-2])
    assert final[-1] == "10"


def test_run_piped_writes_plain_lines_and_json(server):
    """Guards the output for pipes and logs: one plain line per change on
    stderr, no escape codes, the result as JSON on stdout."""
    status, out, err = tasktypes("run", server, "cloneInstance", "vm-1", "copy")
    assert status == EXIT_OK
    assert json.loads(out)["disk_images"] == ["copy-disk0.qcow2", "copy-disk1.qcow2"]
    assert "\x1b" not in err
    task_id = started_id(err)
    lines = err.splitlines()
    assert lines[0] == "cloneInstance task %d started" % task_id
    assert re.match(r"cloneInstance %d: done 100%% 0:00:0\d boot$" % task_id, lines[-1])
    assert len(lines) == len(set(lines))


def test_a_failing_task(server):
    """Guards exit status 1 and the task's error, with each store."""
    status, out, err = tasktypes("run", server, "failingTask", "boom", "0.1")
    assert (status, out) == (EXIT_TASK_FAILED, "")
    assert re.search(r"error: failingTask task \d+ failed: ValueError: boom", err)


def test_a_time_limit(url):
    """Guards exit status 4 for a task past its time limit."""
    status, out, err = tasktypes("run", url, "slowTask", "5")
    assert status == EXIT_TIMED_OUT
    assert "time limit of 3 s exceeded" in err


def test_ctrl_c_asks_and_cancels(url):
    """Guards Ctrl-C in a terminal: the question, "y" cancels (exit 3)."""
    child = in_terminal("run", url, "countdown", "600", "0.05")
    child.expect("running")
    child.sendintr()
    child.expect(r"Cancel countdown task (\d+)\? \[y/N\] ")
    task_id = child.match.group(1)
    child.sendline("y")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == EXIT_CANCELLED
    assert "countdown task %s cancelled" % task_id in child.before
    status, out, err = tasktypes("status", url, "countdown", task_id)
    assert status == EXIT_OK and json.loads(out)["status"] == "cancelled"
    status, out, err = tasktypes("result", url, "countdown", task_id)
    assert status == EXIT_CANCELLED and "was cancelled" in err


def test_ctrl_c_answered_no_leaves_the_task_running(url):
    """Guards "n": exit 130, the task goes on, and status, wait, cancel and
    result find it by its id."""
    child = in_terminal("run", url, "countdown", "600", "0.05")
    child.expect("running")
    child.sendintr()
    child.expect(r"Cancel countdown task (\d+)\? \[y/N\] ")
    task_id = child.match.group(1)
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == EXIT_INTERRUPTED
    assert "goes on; follow it with: tasktypes wait %s countdown %s" % (url, task_id) \
        in ANSI.sub("", child.before).replace("\r\n", "")
    status, out, err = tasktypes("status", url, "countdown", task_id)
    assert status == EXIT_OK and json.loads(out)["status"] == "running"
    status, out, err = tasktypes("result", url, "countdown", task_id)
    assert status == EXIT_NOT_FINISHED and "is running" in err
    status, out, err = tasktypes("wait", url, "countdown", task_id, "--timeout", "0.5")
    assert status == EXIT_NOT_FINISHED and "still running after 0.5 s; it goes on: " \
        "follow it with: tasktypes wait %s countdown %s" % (url, task_id) in err
    status, out, err = tasktypes("cancel", url, "countdown", task_id)
    assert status == EXIT_OK and json.loads(out)["status"] == "cancelled"
    status, out, err = tasktypes("wait", url, "countdown", task_id)
    assert status == EXIT_CANCELLED


def test_ctrl_c_with_cancel_on_interrupt(server):
    """Guards --cancel-on-interrupt: no question, cancelled at once (exit 3),
    with each store."""
    child = in_terminal("run", "--cancel-on-interrupt", server, "countdown", "600", "0.05")
    child.expect("running")
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == EXIT_CANCELLED
    assert "Cancel" not in child.before
    assert re.search(r"countdown task \d+ cancelled", child.before)


def test_wait_attaches_to_a_task(url):
    """Guards wait URL METHOD TASK_ID: follows an existing task to its result."""
    status, out, err = tasktypes("run", url, "countdown", "0", "0")
    task_id = str(started_id(err))
    status, out, err = tasktypes("wait", url, "countdown", task_id)
    assert (status, out) == (EXIT_OK, "0\n")


def test_methods_lists_signatures_and_task_types(url):
    """Guards methods URL: names, params with types, task types marked."""
    status, out, err = tasktypes("methods", url)
    assert status == EXIT_OK
    assert "  echo(text?: string) -> string" in out
    assert "* countdown(steps: integer, delay: number) -> integer" in out
    assert "* cloneInstance(instance_id: string, new_instance_name: string)" \
        " -> InstanceInformation" in out
    assert "controls: countdown_progress, countdown_result, countdown_cancel, " \
        "countdown_wait" in out
    assert "countdown_progress(" not in out
    status, out, err = tasktypes("methods", "--json", url)
    assert json.loads(out)["openrpc"].startswith("1.")


def test_plain_methods_run_and_print_their_result(url):
    status, out, err = tasktypes("run", url, "echo", "hello")
    assert (status, out) == (EXIT_OK, '"hello"\n')


@pytest.mark.parametrize("args, message", [
    (["countdwn", "3", "1"], "no method 'countdwn' at http://127.0.0.1:%d/jsonrpc; "
                             "did you mean countdown"),
    (["countdown", "3"], "countdown takes 2 arguments, 1 given: "
                         "countdown(steps: integer, delay: number)"),
    (["countdown", "three", "1"], "steps: 'three' is not an integer (write it like 10)"),
    (["countdown", "3", "soon"], "delay: 'soon' is not a number (write it like 0.5)"),
])
def test_usage_errors_say_what_to_fix(url, args, message):
    """Guards exit 2 and a message naming the mistake and the fix."""
    status, out, err = tasktypes("run", url, *args)
    assert status == EXIT_USAGE
    port = int(url.rsplit(":", 1)[1])
    assert message.replace("%d", str(port)) in err


def test_unknown_ids_and_non_task_types(url):
    """Guards exit 5 for an unknown id, 2 for a bad id or a plain method."""
    status, out, err = tasktypes("status", url, "countdown", "4242")
    assert status == EXIT_SERVER_ERROR and "no task 4242 of countdown" in err
    status, out, err = tasktypes("result", url, "countdown", "abc")
    assert status == EXIT_USAGE and "'abc' is not a task id" in err
    status, out, err = tasktypes("cancel", url, "echo", "1")
    assert status == EXIT_USAGE and "echo is not a task type; the task types are: " \
        "countdown, failingTask" in err


def test_an_unreachable_server_and_one_that_goes_away(request):
    """Guards exit 6 with "cannot reach" for a server that is not there and
    for one that dies while its task is followed (no traceback)."""
    proc = ServiceProcess()
    request.addfinalizer(proc.stop)
    status, out, err = tasktypes("methods", "http://127.0.0.1:9")
    assert status == EXIT_UNREACHABLE
    assert "cannot reach http://127.0.0.1:9/jsonrpc: connection refused" in err

    run = subprocess.Popen([SCRIPT, "run", proc.url, "countdown", "600", "0.05"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "started" in run.stderr.readline()
        assert "running" in run.stderr.readline()
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == EXIT_UNREACHABLE
    assert "cannot reach %s/jsonrpc" % proc.url in err and "Traceback" not in err


def test_the_dispatcher_needs_no_client_libraries():
    """Guards the server-install case: ``tasktypes.cli`` (where a server
    subcommand will go) imports neither rich nor requests."""
    code = ("import sys, tasktypes.cli as c; c.build_parser(); "
            "print(sorted(m for m in ('rich', 'requests', 'tasktypes.client') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"
