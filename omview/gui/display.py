"""A friendly refusal instead of Qt's abort when there is no display to open windows on.

Qt's xcb plugin aborts with a core dump and a page of plugin advice when DISPLAY is unset; an
administrator who typed `omview` over plain SSH deserves one line saying what to do. Every GUI
app of the suite calls `require_display(name)` before building its QApplication.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping


def display_problem(env: Mapping[str, str] = os.environ) -> str | None:
    """Why no window can be shown here, or None. An explicit QT_QPA_PLATFORM (offscreen tests) wins."""
    if env.get("QT_QPA_PLATFORM"):
        return None
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return None
    return "no display (DISPLAY/WAYLAND_DISPLAY unset): run it on a desktop, or under xvfb-run"


def require_display(app_name: str, env: Mapping[str, str] = os.environ) -> None:
    """Exit 1 with one line on stderr when there is no display; return otherwise."""
    problem = display_problem(env)
    if problem:
        print(f"{app_name}: {problem}", file=sys.stderr)
        raise SystemExit(1)
