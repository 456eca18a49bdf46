"""omprocs at scale (issue 6): 20 000 processes over 50 nodes, 2 % of them changing per second.

Goals: GUI-thread cost per update < 20 ms; a sort on the command line < 50 ms.

Feeds the process box from 50 simulated nodes through the real core (SimFarm → Session →
Cluster → ProcBridge → ProcTableModel.apply), the window shown offscreen at 1280×800, and
times in the GUI thread:
- update: one bridge flush — every node's delta applied to the model (inserts, removals,
  dataChanged) — followed by a synchronous repaint of the visible table, as it happens live;
  "apply" and "repaint" are also shown apart;
- sort: a click on a column header (the model's sort, the proxy's remap, the view's relayout)
  plus the repaint that follows, for the command line and for %CPU;
- filter: typing a text filter (the proxy re-filters 20 000 rows);
- the longest event-loop stall seen by a 10 ms timer while updates arrive.
Times are CPU time of the GUI thread (time.thread_time), so other processes on a busy machine
do not count; one wall-clock line is printed beside them, with the load average.
Prints figures; asserts nothing. Run: QT_QPA_PLATFORM=offscreen .venv/bin/python bench/gui_procs.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from omprocs.procmodel import COL_COMMAND, COL_CPU, COL_PID  # noqa: E402
from omprocs.window import ProcBoxWindow  # noqa: E402
from omview.core.cluster import Cluster  # noqa: E402
from omview.core.simulate import SimFarm  # noqa: E402
from omview.gui import theme  # noqa: E402
from tests.gui_helpers import StallMeter, pump  # noqa: E402

NODES = 50
PER_NODE = 400
CHURN = 0.02
SECONDS = 15


def ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
    return f"median {statistics.median(values):6.1f} ms  p95 {p95:6.1f} ms  max {values[-1]:6.1f} ms  (n={len(values)})"


def main() -> None:
    app = QApplication([])
    theme.apply_theme(app, "light")
    farm = SimFarm(NODES, procs_per_node=PER_NODE, churn=CHURN)
    cluster = Cluster(farm.config(1.0), transport_factory=farm.transport).start()
    t0 = time.perf_counter()
    cluster.wait_until(lambda: all(st.up and len(st.procs) >= PER_NODE for st in cluster._states.values()), 60)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{NODES} nodes × {PER_NODE} processes, {CHURN:.0%} changing per second "
          f"(first full tables in {time.perf_counter() - t0:.1f} s)")
    t0 = time.perf_counter()
    w = ProcBoxWindow(cluster)
    w.resize(1280, 800)
    w.show()
    app.processEvents()
    print(f"window with {w.model.rowCount()} rows built in {(time.perf_counter() - t0) * 1000:.0f} ms")
    pump(1.5)

    # ---- updates as they arrive: time each bridge flush on the GUI thread
    apply_t: list[float] = []
    paint_t: list[float] = []
    update_t: list[float] = []
    wall_t: list[float] = []
    repaint_t: list[float] = []
    counts: list[int] = []
    bridge = w.bridge
    orig_flush = bridge.flush

    def timed_flush() -> None:
        before = w.model.updates
        c0, t0 = time.thread_time(), time.perf_counter()
        orig_flush()
        c1 = time.thread_time()
        app.processEvents()  # the repaint of what changed on screen, as the event loop would do it
        c2, t2 = time.thread_time(), time.perf_counter()
        w.view.viewport().repaint()  # worst case: every visible row changed
        c3 = time.thread_time()
        if w.model.updates > before:
            apply_t.append((c1 - c0) * 1000)
            paint_t.append((c2 - c1) * 1000)
            update_t.append((c2 - c0) * 1000)
            wall_t.append((t2 - t0) * 1000)
            repaint_t.append((c3 - c2) * 1000)
            counts.append(w.model.updates - before)

    bridge._timer.timeout.disconnect()
    bridge._timer.timeout.connect(timed_flush)
    w.view.selectRow(100)
    meter = StallMeter().start()
    pump(SECONDS)
    stall = meter.stop()
    print(f"\nupdates over {SECONDS} s ({sum(counts)} node deltas in {len(update_t)} flushes; rows now "
          f"{w.model.rowCount()}, resets {w.model.resets - 1}):")
    print(f"  apply deltas          {ms(apply_t)}")
    print(f"  paint what changed    {ms(paint_t)}")
    print(f"  update (apply+paint)  {ms(update_t)}   goal < 20 ms")
    print(f"  the same, wall clock  {ms(wall_t)}")
    print(f"  full repaint of the visible rows (worst case) {ms(repaint_t)}")
    print(f"  longest event-loop stall {stall:.0f} ms")

    # ---- sort by clicking headers
    def sort_once(col: int, order: Qt.SortOrder) -> tuple[float, float]:
        t0 = time.thread_time()
        w.view.sortByColumn(col, order)
        app.processEvents()
        t1 = time.thread_time()
        w.view.viewport().repaint()
        return (t1 - t0) * 1000, (time.thread_time() - t1) * 1000

    for name, col in (("command line", COL_COMMAND), ("%CPU", COL_CPU)):
        sorts, paints = [], []
        for i in range(8):
            sort_once(COL_PID, Qt.SortOrder.AscendingOrder)
            s, p = sort_once(col, Qt.SortOrder.AscendingOrder if i % 2 == 0 else Qt.SortOrder.DescendingOrder)
            sorts.append(s)
            paints.append(p)
        total = [a + b for a, b in zip(sorts, paints, strict=True)]
        print(f"\nsort on {name} (20 000 rows):")
        print(f"  sort                  {ms(sorts)}")
        print(f"  sort + repaint        {ms(total)}" + ("   goal < 50 ms" if col == COL_COMMAND else ""))

    # ---- filter
    filt = []
    for text in ("data1", "job-12", "", "alice", "data9", ""):
        t0 = time.thread_time()
        w.proxy.set_filter(text=text)
        app.processEvents()
        filt.append((time.thread_time() - t0) * 1000)
    print(f"\ntext filter over 20 000 rows  {ms(filt)}")
    w.close()
    cluster.stop()
    farm.stop()


if __name__ == "__main__":
    main()
