import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.develop import develop

# tasktypes-compat.pth: site.py runs its one line at every interpreter start.
# Below Python 3.12 it does nothing; from 3.12 on it loads tasktypes/compat.py
# by its path, without importing the tasktypes package (that would import
# spyne and lxml in every Python process), so that spyne is fixed before any
# code imports it. tasktypes/compat.py explains what it fixes and why.
PTH_NAME = "tasktypes-compat.pth"
PTH_BOOT = """\
import importlib.util, os, sys
spec = importlib.util.find_spec("tasktypes")
for folder in (spec and spec.submodule_search_locations) or ():
    path = os.path.join(folder, "compat.py")
    if os.path.isfile(path):
        spec = importlib.util.spec_from_file_location("_tasktypes_compat", path)
        module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        break
"""
PTH_LINE = "import sys; sys.version_info >= (3, 12) and exec(%r, {})\n" % PTH_BOOT


def _write_pth(command, folder):
    command.mkpath(folder)
    with open(os.path.join(folder, PTH_NAME), "w", encoding="utf-8") as f:
        f.write(PTH_LINE)


class build_py_with_pth(build_py):
    """build_py that also puts tasktypes-compat.pth at the root of the wheel.

    A regular wheel is built from build_lib. An editable (PEP 660) wheel is
    not: setuptools builds it from a separate folder that it makes the
    install target ("install_lib") while build_py runs, so the .pth goes there.
    """

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            _write_pth(self, self.get_finalized_command("install").install_lib)
        else:
            _write_pth(self, self.build_lib)

    def get_outputs(self, include_bytecode=True):
        outputs = super().get_outputs(include_bytecode)
        if not getattr(self, "editable_mode", False):
            outputs.append(os.path.join(self.build_lib, PTH_NAME))
        return outputs


class develop_with_pth(develop):
    """Legacy ``setup.py develop``: write the .pth beside the egg link.

    Older pip (the 23.0 of a 3.10 venv, say) runs it for ``pip install -e``
    of a project without pyproject.toml when setuptools is installed. Newer
    setuptools never calls this method: its develop runs pip's PEP 660
    install, which build_py_with_pth covers. ``pip uninstall`` leaves this
    .pth behind; it does nothing once tasktypes is gone.
    """

    def install_for_development(self):
        super().install_for_development()
        _write_pth(self, self.install_dir)


setup(
    name="tasktypes",
    version="0.1.0",
    description="Long-running task-type methods for spyne SOAP and JSON-RPC services",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tasktypes", "tasktypes.*", "service", "service.*"]),
    python_requires=">=3.10",
    cmdclass={"build_py": build_py_with_pth, "develop": develop_with_pth},
    install_requires=[
        "spyne==2.14.0",
        "lxml>=4.9",
        "redis>=4.5",
        # No multiprocessing-logging: it works only with the fork start
        # method, and the Redis store's workers come from a forkserver
        # (tasktypes/process_runner.py says why); logs travel by QueueHandler.
        # The dev server (tasktypes/devserver.py): waitress reads each request
        # whole before a thread takes it, so slow or idle clients hold no
        # thread (cheroot, before it, gave each connection a thread).
        "waitress>=3.0",
        # spyne's SOAP imports cgi, removed from the standard library in 3.13.
        'legacy-cgi>=2.6; python_version >= "3.13"',
    ],
    extras_require={
        "test": [
            "pytest>=7",
            "zeep>=4.2",
            "requests>=2.28",
            "jsonrpcclient>=4",
        ],
        # python -m bench.servers_compare measures the dev server against cheroot.
        "bench": ["cheroot>=10"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Internet :: WWW/HTTP :: WSGI :: Application",
    ],
)
