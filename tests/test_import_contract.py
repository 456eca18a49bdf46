"""omview.core must stay Qt-free: the collector, omctl and the agent's tests run without a display."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import omview.core

CHECK = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
bad = sorted(m for m in sys.modules if m.split('.')[0] in {'PySide6', 'shiboken6', 'pyqtgraph', 'PyQt5', 'PyQt6'}
             or m.startswith(('omview.gui', 'omprocs', 'omanalyzer', 'ommigmon')))
print(','.join(bad))
"""


def core_modules() -> list[str]:
    return sorted(f"omview.core.{m.name}" for m in pkgutil.iter_modules(omview.core.__path__))


def test_core_has_modules_to_check() -> None:
    mods = core_modules()
    assert "omview.core.cluster" in mods and "omview.core.agent" in mods


def test_importing_every_core_module_pulls_in_no_qt() -> None:
    out = subprocess.run([sys.executable, "-c", CHECK, *core_modules()], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"omview.core imported GUI modules: {out.stdout.strip()}"


def test_omctl_runs_without_qt() -> None:
    out = subprocess.run([sys.executable, "-c", CHECK, "omview.cli"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
