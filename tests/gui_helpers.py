"""Helpers for the GUI tests: simulated clusters in a window, event-loop stall meter, screenshots."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QElapsedTimer, QTimer
from PySide6.QtWidgets import QApplication, QWidget

from omview.core.cluster import Cluster
from omview.core.config import ClusterConfig
from omview.core.simulate import SimFarm

SCREENSHOTS = Path(__file__).parent / "screenshots"


@dataclass
class SimSetup:
    farm: SimFarm
    cluster: Cluster
    factory: Callable[[ClusterConfig], Cluster]
    clusters: list[Cluster] = field(default_factory=list)

    def stop(self) -> None:
        for c in self.clusters:
            try:
                c.stop()
            except OSError:
                pass  # already stopped by the window when it opened another (Cluster.stop is not idempotent)
        self.farm.stop()


def sim_cluster(n: int, interval: float = 0.5, **farm_kw: object) -> SimSetup:
    """A SimFarm cluster, and a factory that builds more on the same farm (for reopen)."""
    farm = SimFarm(n, **farm_kw)  # type: ignore[arg-type]
    made: list[Cluster] = []

    def factory(config: ClusterConfig) -> Cluster:
        c = Cluster(config, transport_factory=farm.transport).start()
        made.append(c)
        return c

    cluster = factory(farm.config(interval))
    return SimSetup(farm, cluster, factory, made)


def pump(seconds: float) -> None:
    """Run the event loop for a while (also lets queued signals arrive)."""
    app = QApplication.instance()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()  # type: ignore[union-attr]
        time.sleep(0.005)


class StallMeter:
    """A 10 ms QTimer that records the longest gap between its ticks: a frozen loop shows at once."""

    def __init__(self, period_ms: int = 10) -> None:
        self.timer = QTimer()
        self.timer.setInterval(period_ms)
        self.clock = QElapsedTimer()
        self.max_gap_ms = 0.0
        self.ticks = 0
        self.timer.timeout.connect(self._tick)

    def start(self) -> StallMeter:
        self.clock.start()
        self.timer.start()
        return self

    def _tick(self) -> None:
        gap = self.clock.nsecsElapsed() / 1e6
        self.clock.restart()
        self.ticks += 1
        self.max_gap_ms = max(self.max_gap_ms, gap)

    def stop(self) -> float:
        self.timer.stop()
        return self.max_gap_ms


def screenshot(widget: QWidget, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    QApplication.processEvents()
    assert widget.grab().save(str(path)), f"could not write {path}"
    return path
