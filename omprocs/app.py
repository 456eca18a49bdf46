"""Entry point of omprocs: `omprocs [--cluster FILE] [--node ID] [--theme T]`."""

from __future__ import annotations

import sys
from typing import Any

from omview.gui.appmain import run_cluster_app


def _window(cluster: Any, node: int | None) -> Any:
    from omprocs.window import ProcBoxWindow

    return ProcBoxWindow(cluster, node=node)


def main(argv: list[str] | None = None) -> int:
    return run_cluster_app(
        "omprocs", "The cluster's process box: see, signal, renice and migrate processes.",
        "show only the processes of this node", _window, argv,
    )


if __name__ == "__main__":
    sys.exit(main())
