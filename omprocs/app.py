"""Entry point of omprocs: `omprocs [--cluster FILE] [--node ID] [--theme T]`."""

from __future__ import annotations

import argparse
import sys
import threading

from omview.gui.display import require_display


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="omprocs", description="The cluster's process box: see, signal, renice and migrate processes."
    )
    p.add_argument("--cluster", metavar="FILE", help="cluster settings (.toml) or openMosix map file")
    p.add_argument("--node", metavar="ID", type=int, help="show only the processes of this node")
    p.add_argument("--theme", choices=("system", "light", "dark"), help="palette (default: as chosen in omview)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_display("omprocs")

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
        print(f"omprocs: {exc}", file=sys.stderr)
        return 2
    if args.node is not None and args.node not in [n.id for n in config.nodes]:
        ids = ", ".join(str(n.id) for n in config.nodes)
        print(f"omprocs: no node {args.node} in {config.source or 'the cluster'} (nodes: {ids})", file=sys.stderr)
        return 2

    app = QApplication(sys.argv[:1])
    app.setApplicationName("omprocs")
    app.setOrganizationName("omview")
    app.setDesktopFileName("omprocs")
    icon = icon_path("omprocs")
    if icon:
        app.setWindowIcon(QIcon(str(icon)))
    prefs = load_prefs()
    theme.apply_theme(app, args.theme or prefs.theme)

    from omprocs.window import ProcBoxWindow

    cluster = open_cluster(apply_prefs(config, prefs), client="omprocs")
    window = ProcBoxWindow(cluster, node=args.node)
    window.show()
    code = app.exec()
    t = threading.Thread(target=cluster.stop, name="omprocs-stop", daemon=True)
    t.start()
    t.join(3.0)
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
