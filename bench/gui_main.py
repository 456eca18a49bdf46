"""Cost of one 1 Hz update of 200 nodes in the GUI thread (issue 5: goal < 10 ms, no stall > 50 ms).

Feeds the main window from 200 simulated nodes through the real core (SimFarm → Session →
Cluster → ClusterBridge), then times, in the GUI thread:
- apply: the slot that applies one batch of 200 node updates (NodeTableModel.update_nodes),
- repaint: a synchronous repaint of the visible table (viewport().repaint()),
- grab: QWidget.grab() of the whole window (what a screenshot costs, for comparison),
and the longest event-loop stall seen by a 10 ms timer while nodes update at 1 Hz.
Prints figures; asserts nothing. Run: QT_QPA_PLATFORM=offscreen .venv/bin/python bench/gui_main.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PySide6.QtWidgets import QApplication  # noqa: E402

from omview.gui import theme  # noqa: E402
from omview.gui.mainwindow import MainWindow  # noqa: E402
from tests.gui_helpers import StallMeter, pump, sim_cluster  # noqa: E402

NODES = 200
ROUNDS = 30


def ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
    return f"median {statistics.median(values):6.2f} ms  p95 {p95:6.2f} ms  max {values[-1]:6.2f} ms"


def main() -> None:
    app = QApplication([])
    theme.apply_theme(app, "light")
    setup = sim_cluster(NODES, interval=1.0)
    setup.cluster.wait_ready(15)
    w = MainWindow(setup.cluster, None, factory=setup.factory, restore=False)
    w.resize(1400, 900)
    w.show()
    pump(1.5)
    assert w.model is not None
    ids = list(range(1, NODES + 1))

    apply_t, repaint_t, grab_t, cpu_t = [], [], [], []
    for _ in range(ROUNDS):
        c0 = time.thread_time()
        t0 = time.perf_counter()
        w.model.update_nodes(ids)
        apply_t.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        w.view.viewport().repaint()
        repaint_t.append((time.perf_counter() - t0) * 1000)
        cpu_t.append((time.thread_time() - c0) * 1000)
        app.processEvents()
    for _ in range(10):
        t0 = time.perf_counter()
        w.grab()
        grab_t.append((time.perf_counter() - t0) * 1000)

    # the real thing: samples arriving at 1 Hz for 10 s, bridge batches, repaints, a 10 ms timer
    batches_before = w.bridge.batches if w.bridge else 0
    meter = StallMeter().start()
    slot_t: list[float] = []
    orig = w.model.update_nodes

    def timed(node_ids: list[int]) -> None:
        t0 = time.perf_counter()
        orig(node_ids)
        w.view.viewport().repaint()
        slot_t.append((time.perf_counter() - t0) * 1000)

    w.model.update_nodes = timed  # type: ignore[method-assign]
    pump(10.0)
    stall = meter.stop()
    batches = (w.bridge.batches if w.bridge else 0) - batches_before

    print(f"omview main window, {NODES} simulated nodes, {w.width()}x{w.height()} window")
    print(f"  apply one batch of {NODES} node updates (model):  {ms(apply_t)}")
    print(f"  synchronous repaint of the visible table:       {ms(repaint_t)}")
    print(f"  GUI-thread CPU time, apply + repaint:           {ms(cpu_t)}  (immune to other load)")
    print(f"  apply + repaint, live 1 Hz for 10 s ({len(slot_t)} batches): {ms(slot_t) if slot_t else 'n/a'}")
    print(f"  QWidget.grab() of the whole window:              {ms(grab_t)}")
    print(f"  longest event-loop stall over 10 s at 1 Hz:      {stall:6.1f} ms ({meter.ticks} ticks of 10 ms)")
    print(f"  bridge batches in 10 s: {batches}")
    print(f"  load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("  goal: apply+repaint < 10 ms per update, no stall > 50 ms")
    w.close()
    setup.stop()


if __name__ == "__main__":
    main()
