"""Entry point of the omview main window: `omview [--cluster FILE] [--demo N] [--theme T]`."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from importlib import resources
from pathlib import Path

from omview.gui.display import require_display

DEMO_NAME = "omdemo"
MAX_DEMO_NODES = 64


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="omview", description="Watch and steer a cluster (openMosixview for stock Linux).")
    p.add_argument("--cluster", metavar="FILE", help="cluster settings (.toml) or openMosix map file")
    p.add_argument(
        "--demo",
        metavar="N",
        type=int,
        help=f"start an N-node test cluster on this machine (root; 1..{MAX_DEMO_NODES}) and show it",
    )
    p.add_argument("--theme", choices=("system", "light", "dark"), help="palette (default: as last chosen)")
    args = p.parse_args(argv)
    if args.demo is not None and not 1 <= args.demo <= MAX_DEMO_NODES:
        p.error(f"--demo expects 1..{MAX_DEMO_NODES} nodes, found {args.demo}")
    return args


def icon_path(app: str) -> Path | None:
    try:
        p = resources.files("resources") / f"{app}.svg"
        return Path(str(p)) if p.is_file() else None
    except (ModuleNotFoundError, OSError):
        return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_display("omview")

    from PySide6.QtCore import Qt
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication, QMessageBox, QProgressDialog

    from omview.gui import theme
    from omview.gui.mainwindow import MainWindow, load_prefs, settings

    app = QApplication(sys.argv[:1])
    app.setApplicationName("omview")
    app.setOrganizationName("omview")
    app.setDesktopFileName("omview")
    icon = icon_path("omview")
    if icon:
        app.setWindowIcon(QIcon(str(icon)))
    prefs = load_prefs()
    if args.theme:
        prefs.theme = args.theme
    theme.apply_theme(app, prefs.theme)
    window = MainWindow(prefs=prefs)
    window.show()
    demo_started = False

    def open_usual() -> None:
        last = str(settings().value("cluster_file") or "")
        if last and Path(last).is_file() and window.open_cluster_file(last):
            return
        window.open_cluster_file(None)

    if args.demo:
        from omview.core import testbed

        if os.geteuid() != 0:
            QMessageBox.warning(
                window,
                "Demo needs root",
                "--demo builds network namespaces, a bridge and one sshd per node: run it as root "
                "(e.g. sudo omview --demo 3). Showing the usual cluster instead.",
            )
            open_usual()
        else:
            progress = QProgressDialog(
                f"Starting a {args.demo}-node test cluster on this machine\n(network namespaces, one sshd per node)…",
                "Cancel",
                0,
                0,
                window,
            )
            progress.setWindowTitle("omview demo")
            progress.setWindowModality(Qt.WindowModality.WindowModal)
            progress.setMinimumDuration(0)
            cancelled = {"yes": False}
            progress.canceled.connect(lambda: cancelled.update(yes=True))
            window.source_label.setText(f"starting the {args.demo}-node demo cluster…")
            demo_started = True

            def finish_progress() -> bool:
                """Close the progress dialog; True when the user had cancelled. (Closing a
                QProgressDialog emits `canceled` itself, so the answer is read first.)"""
                was = cancelled["yes"]
                progress.canceled.disconnect()
                progress.reset()
                progress.close()
                return was

            def up_done(tb: testbed.Testbed) -> None:
                if finish_progress():
                    window.statusBar().showMessage("demo cancelled: removing the test cluster…", 8000)
                    window.workers.submit(testbed.down, DEMO_NAME)
                    open_usual()
                    return
                window.open_cluster_file(str(tb.cluster_file), remember=False)

            def up_failed(exc: BaseException) -> None:
                finish_progress()
                QMessageBox.critical(window, "Demo cluster did not start", str(exc))
                open_usual()

            window.workers.submit(testbed.up, args.demo, name=DEMO_NAME, on_done=up_done, on_error=up_failed)
            progress.show()
    elif args.cluster:
        if not window.open_cluster_file(args.cluster):
            window.open_cluster_file(None)
    else:
        open_usual()

    # Ctrl-C in the terminal or a SIGTERM closes the window properly (settings saved, demo
    # removed); Python only sees signals between bytecodes, so a timer lets it look now and then
    def _quit(*_: object) -> None:
        window.close()
        app.quit()

    signal.signal(signal.SIGINT, _quit)
    signal.signal(signal.SIGTERM, _quit)
    from PySide6.QtCore import QTimer

    wake = QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(250)

    code = app.exec()
    window.shutdown()
    if demo_started:
        from omview.core import testbed

        print("omview: removing the demo cluster…", file=sys.stderr)
        try:
            testbed.down(DEMO_NAME)
        except Exception as exc:  # at exit: say it, do not hide the real exit status
            print(f"omview: demo cluster not removed: {exc}", file=sys.stderr)
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
