"""spyne on Python 3.12 and 3.13: tasktypes/compat.py and its .pth.

The in-process tests check this interpreter. The venv tests install the
package the way the README says (``pip install`` of the checkout, not
editable) into a fresh virtual environment of 3.12 and of 3.13, and talk SOAP
to it with zeep; that is the only way to see the installed .pth at work,
since it runs at interpreter start. Interpreters come from pyenv; a missing
one is a skip on a workstation and a failure in CI (``CI=true``).
"""
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tasktypes import compat

# It builds venvs of 3.10, 3.12 and 3.13 itself: CI runs it once (pytest.ini).
pytestmark = pytest.mark.once

CHECKOUT = Path(__file__).resolve().parent.parent
PYENV_ROOT = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))


def readme_first_example():
    """The README's first Python example, read from README.md itself, so
    that what runs here is the example as written there."""
    text = (CHECKOUT / "README.md").read_text(encoding="utf-8")
    block = text.split("```python\n", 1)[1].split("```", 1)[0]
    assert "from tasktypes import task_rpc" in block
    return block


README_EXAMPLE = readme_first_example()

# Appended to README_EXAMPLE: serves TaskService and drives a task over SOAP.
README_DRIVER = '''
# ---- driver, not part of the README ----
from _serve import serve, zeep
from tasktypes import make_application

with serve(make_application([TaskService])) as base:
    client = zeep.Client(base + "/soap?wsdl")
    assert client.service.echo("hi") == "hi"
    task_id = client.service.countdown(3, 0.05)  # zeep unwraps TaskInfoResponse
    deadline = time.monotonic() + 30
    while True:
        progress = client.service.countdown_progress(task_id)
        if progress.status == "done":
            break
        assert progress.status in ("queued", "running"), progress
        assert time.monotonic() < deadline, progress
        time.sleep(0.05)
    assert progress.progress == 1.0, progress
    assert client.service.countdown_result(task_id) == 3
print("OK")
'''

# Until the core lands: spyne imported first, then tasktypes, as users write
# it; one plain @rpc method with a ComplexModel and an Array, over SOAP.
PLAIN_SPYNE_SCRIPT = '''
from spyne import Application, ServiceBase, rpc, Unicode, Integer, Array, ComplexModel
import tasktypes  # noqa: F401  (after spyne on purpose)
from spyne.protocol.soap import Soap11
from spyne.server.wsgi import WsgiApplication
from _serve import serve, zeep

class Item(ComplexModel):
    __namespace__ = "urn:check"
    name = Unicode
    tags = Array(Unicode)

class CheckService(ServiceBase):
    @rpc(Item, Integer, _returns=Array(Item))
    def repeat(ctx, item, times):
        return [item] * times

app = WsgiApplication(Application([CheckService], "urn:check",
                                  in_protocol=Soap11(validator="lxml"),
                                  out_protocol=Soap11()))
with serve(app) as base:
    client = zeep.Client(base + "/?wsdl")
    items = client.service.repeat({"name": "abc", "tags": {"string": ["x", "y"]}}, 2)
    assert [(i.name, i.tags.string) for i in items] == [("abc", ["x", "y"])] * 2, items
print("OK")
'''

# _serve.py, beside either script: a threaded wsgiref server on a free port.
SERVE = '''
import contextlib, socketserver, threading, zeep
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True

class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass

@contextlib.contextmanager
def serve(app):
    server = make_server("127.0.0.1", 0, app, _Server, _Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield "http://127.0.0.1:%d" % server.server_port
    finally:
        server.shutdown()
        server.server_close()
'''


def find_python(version):
    """The newest pyenv interpreter of ``version`` ("3.12"), or None."""
    found = glob.glob(str(PYENV_ROOT / "versions" / (version + ".*") / "bin" / "python3"))
    found.sort(key=lambda p: [int(x) for x in Path(p).parts[-3].split(".") if x.isdigit()])
    return found[-1] if found else shutil.which("python" + version)


def _clean_env():
    # No PYTHONPATH & co: the venv must import the installed copy, not ours.
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}


def _run(args, cwd, timeout):
    done = subprocess.run(args, cwd=cwd, env=_clean_env(), capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, "%s\n%s\n%s" % (args, done.stdout, done.stderr)
    return done.stdout


def _copy_checkout(dest):
    # Build from a clean copy: an in-tree build writes build/ and *.egg-info
    # into the checkout, and a stale build/lib can ship deleted modules.
    skip = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__",
                                  ".pytest_cache", ".venv*", "bench", "node_modules")
    shutil.copytree(CHECKOUT, dest, ignore=skip)
    return dest


@pytest.fixture(scope="module", params=["3.12", "3.13"])
def venv_python(request, tmp_path_factory):
    """A fresh venv of that Python with the checkout installed (not editable) and zeep."""
    python = find_python(request.param)
    if python is None:
        pytest.skip("no Python %s under %s" % (request.param, PYENV_ROOT / "versions"))
    root = tmp_path_factory.mktemp("venv-" + request.param)
    try:
        _run([python, "-m", "venv", str(root / "venv")], root, 120)
        venv = str(root / "venv" / "bin" / "python")
        source = _copy_checkout(root / "src")
        _run([venv, "-m", "pip", "install", "-q", "--disable-pip-version-check",
              str(source), "zeep"], root, 600)
        yield venv, root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _site_packages(python, cwd):
    return Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     cwd, 60).strip())


@pytest.mark.slow
def test_pth_and_no_service_package_in_a_regular_install(venv_python):
    """Guards packaging: a regular ``pip install`` puts tasktypes-compat.pth
    into site-packages, and no top-level ``service`` package (the shipped
    services stay in the checkout, beside wsgi.py)."""
    python, root = venv_python
    site = _site_packages(python, root)
    assert (site / "tasktypes-compat.pth").is_file()
    assert (site / "tasktypes" / "compat.py").is_file()
    assert not (site / "service").exists()


@pytest.mark.slow
@pytest.mark.parametrize("version", ["3.10", "3.12"])
def test_pth_lands_in_an_editable_install(version, tmp_path):
    """Guards the editable install (``pip install -e .``, the README's first
    command) on the pip each Python's venv ships (23.0 on 3.10): the .pth is
    in site-packages, spyne imports, and ``service`` is not importable from
    elsewhere."""
    python = find_python(version)
    if python is None:
        pytest.fail("no Python %s under %s" % (version, PYENV_ROOT / "versions"))
    _run([python, "-m", "venv", str(tmp_path / "venv")], tmp_path, 120)
    venv = str(tmp_path / "venv" / "bin" / "python")
    source = _copy_checkout(tmp_path / "src")
    _run([venv, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e",
          str(source)], tmp_path, 600)
    assert (_site_packages(venv, tmp_path) / "tasktypes-compat.pth").is_file()
    out = _run([venv, "-c", "import sys, importlib.util, spyne, tasktypes; print("
                "'_tasktypes_compat' in sys.modules, importlib.util.find_spec('service'))"],
               tmp_path, 60)
    assert out.split() == [str(version != "3.10"), "None"]


def test_compat_is_a_no_op_where_not_needed():
    assert compat.NEEDED == (sys.version_info >= (3, 12))
    finders = [f for f in sys.meta_path if getattr(f, "tasktypes_compat", False)]
    assert len(finders) == (1 if compat.NEEDED else 0)
    compat.install()  # twice is harmless
    assert [f for f in sys.meta_path if getattr(f, "tasktypes_compat", False)] == finders


def test_spyne_imports_here():
    import spyne.protocol.soap
    import spyne.server.wsgi
    from spyne.util import six

    assert spyne.__version__
    assert spyne.protocol.soap.Soap11 and spyne.server.wsgi.WsgiApplication
    if compat.NEEDED:
        assert hasattr(type(six._importer), "find_spec")


@pytest.mark.slow
def test_pth_runs_before_any_import(venv_python):
    python, root = venv_python
    out = _run([python, "-c", "import sys; print('_tasktypes_compat' in sys.modules,"
                " 'spyne' in sys.modules, 'lxml' in sys.modules)"], root, 60)
    assert out.split() == ["True", "False", "False"]


@pytest.mark.slow
def test_spyne_first_then_tasktypes_over_soap(venv_python):
    python, root = venv_python
    (root / "_serve.py").write_text(SERVE)
    script = root / "plain_spyne.py"
    script.write_text(PLAIN_SPYNE_SCRIPT)
    assert _run([python, str(script)], root, 120).strip().endswith("OK")


@pytest.mark.slow
def test_readme_first_example_over_soap(venv_python):
    python, root = venv_python
    (root / "_serve.py").write_text(SERVE)
    script = root / "readme_example.py"
    script.write_text(README_EXAMPLE + README_DRIVER)
    assert _run([python, str(script)], root, 120).strip().endswith("OK")
