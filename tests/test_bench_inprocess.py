"""Smoke run of ``python -m bench.inprocess`` with tiny counts, on both
stores, so that it cannot rot. It checks that every line came out, with
the direct path answering; it never judges a timing."""

import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT
from tasktypes.testing import redis_server_binary

pytestmark = pytest.mark.once

CALLS = ("countdown_progress", "countdown_progress (running)", "countdown_result",
         "countdown_wait (timeout 0)", "countdown(0, 0) submit")


@pytest.mark.parametrize("store", [
    "thread",
    pytest.param("redis", marks=pytest.mark.skipif(
        redis_server_binary() is None, reason="it starts its own redis-server")),
])
def test_inprocess_benchmark_runs(store):
    run = subprocess.run([sys.executable, "-m", "bench.inprocess", "--calls", "20",
                          "--store", store],
                         cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert run.returncode == 0, run.stdout + run.stderr
    for protocol in ("JSON-RPC", "SOAP"):
        assert re.search(r"^%s +echo \(baseline\) +[0-9.]+us" % protocol, run.stdout, re.M)
        for call in CALLS:
            line = r"^%s +%s +[0-9.]+us +[0-9.]+us +[0-9.]+$" % (protocol, re.escape(call))
            assert re.search(line, run.stdout, re.M), (line, run.stdout)
