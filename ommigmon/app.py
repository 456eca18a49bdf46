"""Entry point of ommigmon: `ommigmon [--cluster FILE] [--node ID] [--theme T]` (HOWTO 10.8)."""

from __future__ import annotations

import sys
from typing import Any

from omview.gui.appmain import run_cluster_app


def _window(cluster: Any, node: int | None) -> Any:
    from ommigmon.window import MigmonWindow

    return MigmonWindow(cluster, main=node)


def main(argv: list[str] | None = None) -> int:
    return run_cluster_app(
        "ommigmon", "The migration monitor: every node a penguin, every process a square; "
        "drag a process onto a penguin to migrate it.",
        "the main penguin (default: the first node)", _window, argv,
    )


if __name__ == "__main__":
    sys.exit(main())
