"""The build commands that install tasktypes-compat.pth; the metadata is
in pyproject.toml."""

import os

from setuptools import setup
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

    pip (21.3 and newer, the 23.0 of a 3.10 venv included) installs this
    project editable through PEP 660, which build_py_with_pth covers; this
    is for ``python setup.py develop`` and older tools, on setuptools that
    still has its own develop. ``pip uninstall`` leaves this .pth behind; it
    does nothing once tasktypes is gone.
    """

    def install_for_development(self):
        super().install_for_development()
        _write_pth(self, self.install_dir)


# Everything else is in pyproject.toml.
setup(cmdclass={"build_py": build_py_with_pth, "develop": develop_with_pth})
