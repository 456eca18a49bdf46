"""The start-up every cluster window of the suite shares (omprocs, ommigmon): flags, display check,
cluster file, application identity, theme, a cluster through the session hub, and a bounded stop."""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable
from typing import Any

from omview.gui.display import require_display


def run_cluster_app(name: str, description: str, node_help: str, make_window: Callable[[Any, int | None], Any],
                    argv: list[str] | None = None) -> int:
    """`make_window(cluster, node)` builds the app's window; returns the exit code."""
    p = argparse.ArgumentParser(prog=name, description=description)
    p.add_argument("--cluster", metavar="FILE", help="cluster settings (.toml) or openMosix map file")
    p.add_argument("--node", metavar="ID", type=int, help=node_help)
    p.add_argument("--theme", choices=("system", "light", "dark"), help="palette (default: as chosen in omview)")
    args = p.parse_args(argv)
    require_display(name)

    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from omview.app import icon_path
    from omview.core.cluster import open_cluster
    from omview.core.config import ConfigError, load_cluster
    from omview.gui import theme
    from omview.gui.mainwindow import apply_prefs, load_prefs

    try:
        config = load_cluster(args.cluster)
    except (ConfigError, OSError) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    if args.node is not None and args.node not in [n.id for n in config.nodes]:
        ids = ", ".join(str(n.id) for n in config.nodes)
        print(f"{name}: no node {args.node} in {config.source or 'the cluster'} (nodes: {ids})", file=sys.stderr)
        return 2

    app = QApplication(sys.argv[:1])
    app.setApplicationName(name)
    app.setOrganizationName("omview")
    app.setDesktopFileName(name)
    icon = icon_path(name)
    if icon:
        app.setWindowIcon(QIcon(str(icon)))
    prefs = load_prefs()
    theme.apply_theme(app, args.theme or prefs.theme)

    cluster = open_cluster(apply_prefs(config, prefs), client=name)
    window = make_window(cluster, args.node)
    window.show()
    code = app.exec()
    # a hung node must not keep a closed window's process alive
    t = threading.Thread(target=cluster.stop, name=f"{name}-stop", daemon=True)
    t.start()
    t.join(3.0)
    return int(code)
