"""Make spyne 2.14 import and run on Python 3.12 and 3.13.

spyne 2.14.0, the newest release, fails at ``import spyne`` on 3.12+: its
vendored ``spyne.util.six`` (six 1.14) serves ``spyne.util.six.moves`` through
a meta path importer that has only ``find_module``/``load_module``, and 3.12
removed that fallback from the import system. Newer six releases add
``find_spec``/``create_module``/``exec_module``; :func:`install` gives spyne's
copy the same three methods. (On 3.13 spyne also imports the removed ``cgi``
module: that is the ``legacy-cgi`` dependency in ``pyproject.toml``, not code here.)

How it takes effect. The fix must be in place before a process first
imports spyne, and users write ``from spyne import ...`` before ``from
tasktypes import ...``. So the package installs ``tasktypes-compat.pth`` into
site-packages (regular and editable installs alike: see ``setup.py``), and
``site`` runs its one line at every interpreter start, in ``multiprocessing``
children too (spawn and forkserver start a new interpreter; fork inherits).
Below 3.12 that line does nothing. On 3.12+ it loads this file by its path, as
``_tasktypes_compat``, without importing the ``tasktypes`` package (which
imports spyne and lxml), and this file's last line calls :func:`install`.
``install`` puts a small finder at the front of ``sys.meta_path`` and imports
nothing. The finder ignores every module but the ones in ``_PATCHES``; for
those it lets the real loader run the module, then patches it. Nothing of
spyne is copied and no installed file is changed. ``tasktypes/__init__.py``
imports this module first, so where the ``.pth`` did not run, importing
tasktypes before spyne is enough::

    import tasktypes                    # from a source checkout, on 3.12+
    from spyne import ServiceBase, rpc  # now imports

Limits:

- No ``.pth`` runs under ``python -S``, nor from a user site-packages under
  ``-s``/``-I``, nor for a source checkout on ``PYTHONPATH`` that was never
  installed: there, on 3.12+, import tasktypes before spyne.
- It fixes spyne 2.14.0. Each patch checks first, so a spyne release that
  fixes the same thing turns it into a no-op.
- SOAP on 3.13 needs ``legacy-cgi``, installed with tasktypes there.
- Below 3.12 nothing happens: :data:`NEEDED` is false and :func:`install`
  returns at once.
"""
import sys

NEEDED = sys.version_info >= (3, 12)


def _patch_six(six):
    """Give spyne's six meta path importer the PEP 451 methods of six 1.16.

    Without ``find_spec`` the 3.12+ import system never asks the importer,
    and every ``spyne.util.six.moves...`` import fails.
    """
    importer = type(getattr(six, "_importer", None))
    if not hasattr(importer, "load_module") or hasattr(importer, "find_spec"):
        return
    from importlib.util import spec_from_loader

    def find_spec(self, fullname, path, target=None):
        if fullname in self.known_modules:
            return spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return self.load_module(spec.name)

    def exec_module(self, module):
        pass

    importer.find_spec = find_spec
    importer.create_module = create_module
    importer.exec_module = exec_module


# Module name -> function that fixes that module once it has run.
_PATCHES = {
    "spyne.util.six": _patch_six,
}


class _PatchingLoader:
    """Runs the real loader, then the patch; the module keeps the real loader."""

    def __init__(self, loader, patch):
        self.loader = loader
        self.patch = patch

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__spec__.loader = module.__loader__ = self.loader
        self.loader.exec_module(module)
        self.patch(module)


class SpyneCompatFinder:
    """Meta path finder that patches the modules in ``_PATCHES`` as they load.

    It finds nothing itself: it asks the finders after it for the real spec
    and wraps that spec's loader.
    """

    # Marker: this file may be loaded twice (by the .pth as _tasktypes_compat,
    # then as tasktypes.compat), and one finder per process is enough.
    tasktypes_compat = True

    def find_spec(self, fullname, path=None, target=None):
        patch = _PATCHES.get(fullname)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if getattr(finder, "tasktypes_compat", False):
                continue
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _PatchingLoader(spec.loader, patch)
                return spec
        return None


def install():
    """Put the fix in place for this process (idempotent, a no-op below 3.12).

    Modules already imported are patched at once; the rest as they load.
    """
    if not NEEDED:
        return
    for name, patch in _PATCHES.items():
        module = sys.modules.get(name)
        if module is not None:
            patch(module)
    if not any(getattr(f, "tasktypes_compat", False) for f in sys.meta_path):
        sys.meta_path.insert(0, SpyneCompatFinder())


install()
