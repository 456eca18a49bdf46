"""Entry point of ommigmon: `ommigmon [--cluster FILE] [--node ID] [--theme T]` (HOWTO 10.8)."""

from __future__ import annotations

import argparse
import sys
import threading

from omview.gui.display import require_display


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="ommigmon",
        description="The migration monitor: every node a penguin, every process a square; "
        "drag a process onto a penguin to migrate it.",
    )
    p.add_argument("--cluster", metavar="FILE", help="cluster settings (.toml) or openMosix map file")
    p.add_argument("--node", metavar="ID", type=int, help="the main penguin (default: the first node)")
    p.add_argument("--theme", choices=("system", "light", "dark"), help="palette (default: as chosen in omview)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_display("ommigmon")

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
        print(f"ommigmon: {exc}", file=sys.stderr)
        return 2
    if args.node is not None and args.node not in [n.id for n in config.nodes]:
        ids = ", ".join(str(n.id) for n in config.nodes)
        print(f"ommigmon: no node {args.node} in {config.source or 'the cluster'} (nodes: {ids})", file=sys.stderr)
        return 2

    app = QApplication(sys.argv[:1])
    app.setApplicationName("ommigmon")
    app.setOrganizationName("omview")
    app.setDesktopFileName("ommigmon")
    icon = icon_path("ommigmon")
    if icon:
        app.setWindowIcon(QIcon(str(icon)))
    prefs = load_prefs()
    theme.apply_theme(app, args.theme or prefs.theme)

    from ommigmon.window import MigmonWindow

    cluster = open_cluster(apply_prefs(config, prefs), client="ommigmon")
    window = MigmonWindow(cluster, main=args.node)
    window.show()
    code = app.exec()
    t = threading.Thread(target=cluster.stop, name="ommigmon-stop", daemon=True)
    t.start()
    t.join(3.0)
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
