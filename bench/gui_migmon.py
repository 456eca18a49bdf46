"""ommigmon at 64 nodes × 200 processes: frame time while squares travel, CPU while nothing moves.

Feeds the migration monitor from 64 simulated nodes (SimFarm → Session → Cluster → ClusterBridge,
the real path) with 200 processes each and a few guests per node, in a 1280×1000 window showing
the whole cluster, then measures in the GUI thread:

- frame: one animation frame = MigScene.tick() + a synchronous viewport repaint, for
  (a) one travelling square (a migration), (b) 200 squares travelling at once (the main node
  emptied onto the others: the worst case), wall and GUI-thread CPU time;
- live: the frame timer left to run for 3 s with 200 squares in flight (achieved frames/s);
- idle: GUI-thread CPU over 20 s of app.exec() while samples arrive at 1 Hz from every node
  (processes change CPU, start and end: the sim's churn) and nothing moves, and the whole
  process's CPU with the window against the same 20 s without it (the difference is ommigmon).

Prints figures; asserts nothing. Run: QT_QPA_PLATFORM=offscreen .venv/bin/python bench/gui_migmon.py
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from ommigmon.window import MigmonWindow  # noqa: E402
from omview.gui import theme  # noqa: E402
from tests.gui_helpers import pump, sim_cluster  # noqa: E402

NODES = 64
PROCS = 200
FRAMES = 120
IDLE_S = 20.0


def ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
    return f"median {statistics.median(values):6.2f} ms  p95 {p95:6.2f} ms  max {values[-1]:6.2f} ms"


def cpu_over(app: QApplication, seconds: float) -> tuple[float, float]:
    """(GUI-thread CPU s, process CPU s) over `seconds` of a plain event loop."""
    t0, p0 = time.thread_time(), time.process_time()
    QTimer.singleShot(int(seconds * 1000), app.quit)
    app.exec()
    return time.thread_time() - t0, time.process_time() - p0


def frames(w: MigmonWindow, n: int) -> tuple[list[float], list[float]]:
    sc = w.scene
    sc.frame.stop()  # frames by hand, each timed
    vp = w.view.viewport()
    wall, cpu = [], []
    for _ in range(n):
        c0, t0 = time.thread_time(), time.perf_counter()
        sc.tick()
        vp.repaint()
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.thread_time() - c0) * 1000)
    return wall, cpu


def launch(w: MigmonWindow, keys: list, seconds: float) -> None:
    sc = w.scene
    rnd = random.Random(5)
    others = [n for n in sc.order if n != sc.main_id]
    for key in keys:
        item = sc.items_by_key.get(key)
        if item is None:  # ended meanwhile (the simulated nodes' churn)
            continue
        target = sc.centre(rnd.choice(others))
        sc._travel(item, target, item.slot_pos, seconds)


def main() -> None:
    app = QApplication([])
    theme.apply_theme(app, "light")
    setup = sim_cluster(NODES, interval=1.0, procs_per_node=PROCS)
    guests = 0
    for nid, node in setup.farm.nodes.items():
        if nid % 4 == 0:
            for pid in list(node.procs)[:3]:
                node.procs[pid].update(home=1, where=nid, cpu=60.0)
                guests += 1
    setup.cluster.wait_ready(30)
    pump(2.0)

    # the cluster alone (sessions + the simulated nodes), no window: the baseline
    _, base_proc = cpu_over(app, IDLE_S)

    w = MigmonWindow(setup.cluster)
    w.resize(1280, 1000)
    w.show()
    pump(3.0)
    w.fit()
    pump(0.5)
    sc = w.scene
    main_keys = [k for k in sc.items_by_key if k[0] == sc.main_id]

    launch(w, main_keys[:1], 1e6)
    one_wall, one_cpu = frames(w, FRAMES)
    for it in list(sc.travels):
        sc.travels.pop(it)
        it.setPos(it.slot_pos)
    main_keys = [k for k in sc.items_by_key if k[0] == sc.main_id]
    launch(w, main_keys, 1e6)
    all_wall, all_cpu = frames(w, FRAMES)
    sc.travels.clear()
    for k in main_keys:
        if k in sc.items_by_key:
            sc.items_by_key[k].setPos(sc.items_by_key[k].slot_pos)
    w.view.viewport().repaint()

    # live: the timer drives 200 squares for 3 s
    launch(w, main_keys, 3.0)
    f0 = sc.frames
    t0 = time.perf_counter()
    while sc.animating and time.perf_counter() - t0 < 10:
        app.processEvents()
        time.sleep(0.001)
    live_s = time.perf_counter() - t0
    live_frames = sc.frames - f0

    # idle: nothing moves, samples keep arriving
    assert not sc.animating
    f0 = sc.frames
    gui_cpu, proc_cpu = cpu_over(app, IDLE_S)
    idle_frames = sc.frames - f0

    print(f"ommigmon, {NODES} simulated nodes x {PROCS} processes ({guests} guests), "
          f"{w.width()}x{w.height()} window, {sc.shown_count()} squares shown")
    print(f"  frame, 1 square travelling (tick + full repaint): {ms(one_wall)}")
    print(f"       GUI-thread CPU:                              {ms(one_cpu)}")
    print(f"  frame, {len(main_keys)} squares travelling at once:          {ms(all_wall)}")
    print(f"       GUI-thread CPU:                              {ms(all_cpu)}")
    print(f"  live: {live_frames} frames in {live_s:.2f} s = {live_frames / live_s:.0f} frames/s "
          f"(timer at {1000 // 16} Hz), timer stopped afterwards: {not sc.animating}")
    print(f"  idle {IDLE_S:.0f} s (1 Hz samples from {NODES} nodes, churn on): GUI thread "
          f"{100 * gui_cpu / IDLE_S:.2f} % of a core, {idle_frames} animation frames")
    print(f"       whole process {100 * proc_cpu / IDLE_S:.2f} % vs {100 * base_proc / IDLE_S:.2f} % without the "
          f"window: ommigmon adds {100 * (proc_cpu - base_proc) / IDLE_S:.2f} % of a core")
    print(f"  load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("  goals: frame < 16 ms; idle < 1 % of one core")
    w.close()
    setup.stop()


if __name__ == "__main__":
    main()
