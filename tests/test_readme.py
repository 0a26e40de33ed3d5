"""The README's client examples, pasted as they are printed, against
``python wsgi.py``: the curl session (bash, curl and python3, as a new user's
shell has them), the zeep and the suds sessions. Only the address changes,
from the README's ``127.0.0.1:8000`` to the test server's."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, ServiceProcess

README_ADDRESS = "http://127.0.0.1:8000"


def readme_section(title):
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    start = text.index("\n## %s\n" % title)
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def code_blocks(section, language):
    return re.findall(r"```%s\n(.*?)```" % language, section, re.S)


@pytest.fixture(scope="module")
def base_url():
    """``python wsgi.py``, the shipped service as the README runs it."""
    proc = ServiceProcess()
    try:
        yield proc.url
    finally:
        proc.stop()


def run(args):
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, "%s\n%s\n%s" % (args, done.stdout, done.stderr)
    return done.stdout


def test_curl_session_pastes_and_runs(base_url):
    """Guards the README's JSON-RPC curl calls: run as printed, one after the
    other in one shell, each finds the task the first one started (no
    literal task id from somebody else's run)."""
    for command in ("bash", "curl", "python3"):
        if shutil.which(command) is None:
            pytest.skip("%s is needed for the README's curl session" % command)
    script = "\n".join(code_blocks(readme_section("JSON-RPC 2.0 with curl"), "sh") +
                       code_blocks(readme_section("Controls: cancel and wait"), "sh"))
    assert script.count("curl -s") == 5 and "TASK=$(" in script
    # Between the calls, one line per answer so that they can be told apart.
    script = "set -eu\n" + script.replace(README_ADDRESS, base_url) \
        .replace("\ncurl -s", "\necho\ncurl -s")
    lines = [line for line in run(["bash", "-c", script]).splitlines() if line]
    task_id = lines[0]
    assert task_id.isdigit(), lines
    progress, result, cancel, wait = lines[1:]
    assert '"task_id":%s' % task_id in progress and '"id":2' in progress
    assert '"id":3' in result and "TaskNotFound" not in result
    assert '"status":"cancelled"' in cancel or '"status":"done"' in cancel
    assert '"task_id":%s' % task_id in wait and '"id":5' in wait


@pytest.mark.parametrize("client", ["zeep", "suds"])
def test_soap_session_runs(base_url, client, tmp_path):
    """Guards the README's zeep and suds sessions: they run as printed and
    print the countdown's result."""
    blocks = code_blocks(readme_section("A SOAP session with zeep or suds"), "python")
    (block,) = [b for b in blocks if ("import time, zeep" in b) == (client == "zeep")]
    script = tmp_path / ("%s_session.py" % client)
    script.write_text(block.replace(README_ADDRESS, base_url))
    out = run([sys.executable, str(script)]).split()
    assert out[-1] == "10", out
    if client == "suds":
        assert out[:2] == ["done", "1.0"], out
