"""Entry point of omanalyzer: `omanalyzer [--history DIR|FILE] [--theme T]` (HOWTO 10.7)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omanalyzer.common import HistoryWindowBase


def main(argv: list[str] | None = None) -> int:
    from omanalyzer.common import run

    def make(history_dir: Path) -> HistoryWindowBase:
        from omanalyzer.analyzer import AnalyzerWindow

        return AnalyzerWindow(history_dir)

    return run("omanalyzer", "Load and memory history of the cluster, as recorded by omcollector.", argv, make)


if __name__ == "__main__":
    sys.exit(main())
