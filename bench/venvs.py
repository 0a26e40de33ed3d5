"""The virtual environments of the programs we compare with, each with the
same Python as the benchmark: Ladon 1.0.7 (``bench/.ladon-venv``, with the
same waitress as ours, so that it runs behind the same dev server) and RQ
(``bench/.rq-venv``). Made on first use; a machine that cannot install them
gets the reason, and the benchmark reports it instead of their figures.
"""

import importlib.metadata
import os
import subprocess
import sys

BENCH = os.path.dirname(os.path.abspath(__file__))
LADON_VERSION = "1.0.7"


def python(venv):
    return os.path.join(venv, "bin", "python")


def ensure(venv, requirements, check, log=print):
    """Make ``venv`` with ``requirements`` unless ``check`` (Python code)
    already passes in it. Returns None, or why it cannot be had."""
    interpreter = python(venv)
    probe = [interpreter, "-c", check]
    if os.path.exists(interpreter) and subprocess.run(probe, capture_output=True).returncode == 0:
        return None
    log("installing %s into %s ..." % (" ".join(requirements), venv))
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True,
                       capture_output=True, timeout=120)
        subprocess.run([interpreter, "-m", "pip", "install", "-q"] + requirements,
                       check=True, capture_output=True, timeout=300)
        subprocess.run(probe, check=True, capture_output=True, timeout=60)
    except subprocess.CalledProcessError as exc:
        output = (exc.stderr or exc.stdout or b"").decode(errors="replace").strip()
        return "could not install %s: %s" % (" ".join(requirements),
                                              (output.splitlines() or [exc])[-1])
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "could not install %s: %s" % (" ".join(requirements), exc)
    return None


LADON_VENV = os.path.join(BENCH, ".ladon-venv")
RQ_VENV = os.path.join(BENCH, ".rq-venv")


def ensure_ladon(log=print):
    waitress = importlib.metadata.version("waitress")
    return ensure(LADON_VENV, ["ladon==%s" % LADON_VERSION, "waitress==%s" % waitress],
                  "import ladon, waitress, importlib.metadata as m; "
                  "assert m.version('ladon') == %r; assert m.version('waitress') == %r"
                  % (LADON_VERSION, waitress), log)


def ensure_rq(log=print):
    return ensure(RQ_VENV, ["rq"], "import rq", log)
