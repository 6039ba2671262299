"""Plotting is imported only when a plot is asked for."""

from __future__ import annotations

from helpers import fresh_python

# Every rsmm module is imported with an import hook that records rsmm's own matplotlib
# imports. (sys.modules alone cannot tell: TorchGeo's datasets and torchmetrics import
# matplotlib.pyplot themselves.)
SPY = """
import builtins, importlib, pkgutil, sys
import rsmm

real_import = builtins.__import__
found = []

def spy(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__", "")
    if name.split(".")[0] == "matplotlib" and importer.split(".")[0] == "rsmm":
        found.append(f"{importer}: import {name}")
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = spy
names = [m.name for m in pkgutil.walk_packages(rsmm.__path__, "rsmm.")]
for name in names:
    if not name.endswith("__main__"):
        importlib.import_module(name)
print(len(names))
print("\\n".join(found))
"""


def _run(code: str) -> str:
    proc = fresh_python(code)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_no_rsmm_module_imports_matplotlib_when_imported() -> None:
    count, *found = _run(SPY).strip().splitlines()
    assert int(count) > 50  # every module was imported
    assert found == []


def test_packages_without_plotting_peers_leave_matplotlib_out() -> None:
    code = (
        "import sys, rsmm.cli, rsmm.losses, rsmm.augment, rsmm.models, rsmm.manifests\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))"
    )
    assert _run(code).strip() == "[]"
