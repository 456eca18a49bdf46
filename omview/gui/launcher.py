"""Start the suite's other apps (omprocs, omanalyzer, …) as separate processes on our cluster file.

Why subprocess.Popen and not QProcess: a QProcess kills its program when it is destroyed, so
every process box would vanish with the main window, which openMosixview never did. A Popen
child in its own session outlives us, and we still get what matters from QProcess: a start
failure, or an exit within the first second (the "not yet available" stubs exit 2), is shown
with the program's stderr. Nothing here blocks: the first-second check is a QTimer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

#: gui-script name → module run with `python -m` when the script is not installed next to us.
APP_MODULES = {
    "omview": "omview.app",
    "omprocs": "omprocs.app",
    "omanalyzer": "omanalyzer.app",
    "omhistory": "omanalyzer.history_app",
    "ommigmon": "ommigmon.app",
    "omcollector": "omcollector",
}
WATCH_MS = 1000
REAP_MS = 5000


def app_command(name: str) -> list[str]:
    """The installed gui-script beside our interpreter (a venv or a wheel), else `python -m module`."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which(name)
    if found and Path(sys.executable).parent == Path(found).parent:
        return [found]
    return [sys.executable, "-m", APP_MODULES.get(name, name)]


@dataclass
class Launched:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes]
    stderr_path: str
    failed: bool = False
    message: str = ""
    checked: bool = False
    callbacks: list[Callable[[Launched], None]] = field(default_factory=list)


class Launcher(QObject):
    """`launch(name, args)`; `failed(name, message)` when it could not start or quit within a second."""

    failed = Signal(str, str)
    started = Signal(str)

    def __init__(self, parent: QObject | None = None, command: Callable[[str], list[str]] = app_command) -> None:
        super().__init__(parent)
        self.command = command
        self.running: list[Launched] = []
        self._reaper = QTimer(self)
        self._reaper.setInterval(REAP_MS)
        self._reaper.timeout.connect(self._reap)

    def launch(self, name: str, args: list[str]) -> Launched | None:
        argv = self.command(name) + list(args)
        fd, err_path = tempfile.mkstemp(prefix=f"{name}-", suffix=".stderr")
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=fd,
                start_new_session=True,  # a Ctrl-C in our terminal or our exit does not end it
                close_fds=True,
            )
        except OSError as exc:
            os.close(fd)
            os.unlink(err_path)
            self.failed.emit(name, f"{name} could not be started ({' '.join(argv)}): {exc.strerror or exc}")
            return None
        os.close(fd)
        item = Launched(name, argv, proc, err_path)
        self.running.append(item)
        QTimer.singleShot(WATCH_MS, lambda: self._check(item))
        if not self._reaper.isActive():
            self._reaper.start()
        return item

    def _check(self, item: Launched) -> None:
        item.checked = True
        code = item.proc.poll()
        try:
            err = Path(item.stderr_path).read_text(errors="replace").strip()
        except OSError:
            err = ""
        try:
            os.unlink(item.stderr_path)  # the child keeps its descriptor; we no longer need the name
        except OSError:
            pass
        if code is not None and code != 0:
            item.failed = True
            tail = "\n".join(err.splitlines()[-15:]) or "(it wrote nothing on stderr)"
            item.message = f"{item.name} exited with status {code} at once:\n\n{tail}"
            self.failed.emit(item.name, item.message)
        else:
            self.started.emit(item.name)

    def _reap(self) -> None:
        """Collect exited children so none stays a zombie while we run."""
        self.running = [i for i in self.running if not (i.checked and i.proc.poll() is not None)]
        if not self.running:
            self._reaper.stop()
