"""Bench of omanalyzer and omhistory on a long, wide history.

    .venv/bin/python bench/analyzer.py [--nodes 100] [--hours 12] [--procs 2000] [--keep DIR]

Writes (once; reused from --keep) a synthetic history through the real HistoryWriter: N nodes ×
H hours at 1 Hz, with P processes per node listed every 30 minutes (5 % churn). Then measures:

1. open and draw: from `open_history()` to the first full draw of the load overview (the window
   grabbed, i.e. every curve on screen painted), goal < 1 s for 12 h × 100 nodes. The analyzer reads
   the bands on screen first (12 of 100) and the other nodes in a second read; the time until
   every node's curve holds its data is printed too;
2. pan/zoom frame time: one view change plus a synchronous repaint of the plot (the re-read that
   follows once the view rests is measured separately; the CPU figure is the GUI thread's),
   goal < 50 ms;
3. omhistory time-slider step with P processes in a node's snapshot: slider moved → rows shown
   (the table repainted), goal < 50 ms; also with every node shown (N × P rows), for information.
   Steps inside the ±15 min the slider has read are answered from memory; the first step after
   a jump reads that window (printed as "slider jump").

Offscreen Qt unless DISPLAY is set. Wall-clock and, where it matters, the CPU time of the process
(a shared machine's load inflates wall-clock; the load average is printed with the figures).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def pump(app, cond, timeout=120.0):
    end = time.monotonic() + timeout
    while not cond():
        app.processEvents()
        if time.monotonic() > end:
            raise RuntimeError("timed out")
        time.sleep(0.0005)


def stats(label: str, xs: list[float], goal: float | None = None, cpu: list[float] | None = None,
          cpu_label: str = "CPU") -> str:
    xs = sorted(xs)
    med = statistics.median(xs)
    p95 = xs[min(len(xs) - 1, int(0.95 * len(xs)))]
    verdict = "" if goal is None else ("  OK" if med < goal else f"  OVER the {goal:.0f} ms goal")
    c = f"   {cpu_label} median {statistics.median(cpu):6.1f} ms" if cpu else ""
    return (f"{label:<40} wall median {med:7.1f} ms  p95 {p95:7.1f} ms  max {xs[-1]:7.1f} ms{c}  (n={len(xs)}, "
            f"load {os.getloadavg()[0]:.0f}){verdict}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--hours", type=float, default=12.0)
    ap.add_argument("--procs", type=int, default=2000)
    ap.add_argument("--keep", default="/tmp/omview-bench-analyzer")
    ap.add_argument("--width", type=int, default=1600)
    ap.add_argument("--height", type=int, default=1000)
    args = ap.parse_args()

    from omanalyzer.overview import plot_read
    from omanalyzer.synth import write_synthetic
    from omview.core.history import HistoryReader

    hist = Path(args.keep) / f"n{args.nodes}-h{args.hours:g}-p{args.procs}"
    if not (hist / "history.sqlite").is_file():
        print(f"writing {args.nodes} nodes × {args.hours:g} h at 1 Hz, {args.procs} processes per node into {hist} …",
              flush=True)
        t = time.perf_counter()
        write_synthetic(hist, nodes=args.nodes, hours=args.hours, procs_per_node=args.procs, proc_every=1800.0,
                        churn=0.05, batch=300)
        print(f"  written in {time.perf_counter() - t:.0f} s", flush=True)
    size = sum(f.stat().st_size for f in hist.glob("history.sqlite*"))
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with HistoryReader(hist) as r:
        lo, hi = r.span()  # type: ignore[misc]
        ids = [n.id for n in r.nodes()]
        n_nodes = len(ids)
        print(f"history: {n_nodes} nodes, {(hi - lo) / 3600:.1f} h, {size / 1e6:.0f} MB")
        for name, fn in (("HistoryReader.samples_many", lambda: r.samples_many(ids, hi - 12 * 3600, hi,
                                                                                  max_points=args.width)),
                         ("HistoryReader.samples_many(summaries=True)", lambda: r.samples_many(
                             ids, hi - 12 * 3600, hi, max_points=args.width, summaries=True)),
                         ("omanalyzer.plot_read (what the analyzer does)", lambda: plot_read(
                             r, ids, hi - 12 * 3600, hi, args.width))):
            walls, cpus = [], []
            for _ in range(3):
                t, c = time.perf_counter(), time.process_time()
                fn()
                walls.append(time.perf_counter() - t)
                cpus.append(time.process_time() - c)
            print(f"   read 12 h × {n_nodes} nodes at {args.width} buckets, {name}: wall {min(walls) * 1000:.0f} ms, "
                  f"CPU {min(cpus) * 1000:.0f} ms (best of 3)")
        t = time.perf_counter()
        n_at = len(r.processes_at((lo + hi) / 2, 1))
        pa_ms = (time.perf_counter() - t) * 1000
    print(f"   processes_at(one node): {n_at} rows in {pa_ms:.0f} ms")

    from PySide6.QtWidgets import QApplication

    import omview.gui  # noqa: F401  (the PySide refcount workaround)
    from omanalyzer.analyzer import AnalyzerWindow
    from omanalyzer.historywin import HistoryWindow
    from omview.gui import theme

    app = QApplication([])
    theme.apply_theme(app, "light")

    # ---------------------------------------------------------------- 1. open and draw
    w = AnalyzerWindow(hist)
    w.resize(args.width, args.height)
    w.show()
    pump(app, lambda: w.isVisible())
    for _ in range(5):
        app.processEvents()
    t0 = time.perf_counter()
    c0 = time.process_time()
    w.open_history(hist)
    pump(app, lambda: w.info is not None)
    t_open = time.perf_counter()
    pump(app, lambda: w.reads >= 1)
    t_read = time.perf_counter()
    w.load_plot.apply_now()
    t_set = time.perf_counter()
    w.grab()  # renders the whole window: every curve on screen painted
    t_draw = time.perf_counter()
    cpu = (time.process_time() - c0) * 1000
    on_screen = [nc for nc in w.load_plot.curves.values() if nc.a.isVisible()]
    assert all(nc.a.xData is not None and len(nc.a.xData) for nc in on_screen), "a band on screen is empty"
    points = sum(len(nc.a.xData) for nc in on_screen if nc.a.xData is not None)
    total = (t_draw - t0) * 1000
    print(f"1. open and first full draw of {n_nodes} nodes × {(hi - lo) / 3600:.0f} h: {total:.0f} ms "
          f"(open {1000 * (t_open - t0):.0f}, read {1000 * (t_read - t_open):.0f}, setData "
          f"{1000 * (t_set - t_read):.0f}, paint {1000 * (t_draw - t_set):.0f}; {len(on_screen)} bands on screen, "
          f"{points} points drawn, plot {w.load_plot.pixel_width()} px wide; CPU {cpu:.0f} ms, load average "
          f"{os.getloadavg()[0]:.1f})  {'OK' if total < 1000 else 'OVER the 1 s goal'}")
    pump(app, lambda: w.idle)
    w.load_plot.apply_now()
    t_all = time.perf_counter()
    cpu_all = (time.process_time() - c0) * 1000
    filled = sum(1 for nc in w.load_plot.curves.values() if nc.a.xData is not None and len(nc.a.xData))
    print(f"   every node's curve set ({filled} of {n_nodes}): {1000 * (t_all - t0):.0f} ms, CPU {cpu_all:.0f} ms")

    # ---------------------------------------------------------------- 2. pan / zoom frames
    plot = w.load_plot
    vp = plot.viewport()
    frames_pan, frames_zoom, cpu_pan, cpu_zoom = [], [], [], []
    for i in range(40):
        a, b = plot.view_range()
        d = (b - a) * 0.02 * (1 if i % 20 < 10 else -1)
        t, c0 = time.perf_counter(), time.thread_time()
        plot.vb.setXRange(a + d, b + d, padding=0)
        app.processEvents()
        vp.repaint()
        frames_pan.append((time.perf_counter() - t) * 1000)
        cpu_pan.append((time.thread_time() - c0) * 1000)
    for i in range(30):
        a, b = plot.view_range()
        f = 0.9 if i < 15 else 1 / 0.9
        c = (a + b) / 2
        t, c0 = time.perf_counter(), time.thread_time()
        plot.vb.setXRange(c - (b - a) * f / 2, c + (b - a) * f / 2, padding=0)
        app.processEvents()
        vp.repaint()
        frames_zoom.append((time.perf_counter() - t) * 1000)
        cpu_zoom.append((time.thread_time() - c0) * 1000)
    # a frame is the GUI thread's work: a re-read the debounce starts when a frame is slow (load)
    # runs in the reader thread and is measured below
    print(stats("2. pan frame (12 h view, 100 curves)", frames_pan, 50, cpu_pan, "GUI-thread CPU"))
    print(stats("   zoom frame", frames_zoom, 50, cpu_zoom, "GUI-thread CPU"))
    # the re-read once the view rests (debounced, off the GUI thread): how long until it is on screen
    requery = []
    for span in (3600.0, 6 * 3600.0, 12 * 3600.0):
        plot.set_view(hi - span, hi)
        t = time.perf_counter()
        reads = w.reads
        pump(app, lambda reads=reads: w.reads > reads and w.idle)
        plot.apply_now()
        vp.repaint()
        requery.append((time.perf_counter() - t) * 1000)
    print("   re-read after the view rests (incl. 120 ms debounce): "
          + ", ".join(f"{h} h {ms:.0f} ms" for h, ms in zip((1, 6, 12), requery, strict=True)))
    stall = measure_stall(app, w)
    print(f"   longest GUI-thread stall while 20 re-reads ran in the worker: {stall:.0f} ms")
    w.shutdown()
    w.close()

    # ---------------------------------------------------------------- 3. omhistory slider
    h = HistoryWindow(hist)
    h.resize(1400, 900)
    h.show()
    h.open_history(hist)
    pump(app, lambda: h.info is not None and h.reads >= 1 and h.idle)
    h.node_box.setCurrentIndex(h.node_box.findData(1))
    pump(app, lambda: h.idle)
    h.set_time((lo + hi) / 2)
    pump(app, lambda: h.idle)
    steps, cpus = [], []
    for _ in range(40):
        reads = h.reads
        t, c0 = time.perf_counter(), time.process_time()
        h.slider.setValue(h.slider.value() + 1)
        pump(app, lambda reads=reads: h.reads > reads and h.idle)
        h.table.viewport().repaint()
        steps.append((time.perf_counter() - t) * 1000)
        cpus.append((time.process_time() - c0) * 1000)
    print(stats(f"3. slider step, one node ({h.model.rowCount()} rows)", steps, 50, cpus))
    jumps, cpus = [], []
    for i in range(6):
        reads = h.reads
        t, c0 = time.perf_counter(), time.process_time()
        h.slider.setValue(h.slider.value() + (2400 if i < 3 else -2400))  # outside what was read: a read
        pump(app, lambda reads=reads: h.reads > reads and h.idle)
        h.table.viewport().repaint()
        jumps.append((time.perf_counter() - t) * 1000)
        cpus.append((time.process_time() - c0) * 1000)
    print(stats("   slider jump of 40 min, one node", jumps, None, cpus))
    h.node_box.setCurrentIndex(0)
    pump(app, lambda: h.idle, 600)
    steps = []
    for _ in range(5):
        reads = h.reads
        t = time.perf_counter()
        h.slider.setValue(h.slider.value() + 1)
        pump(app, lambda reads=reads: h.reads > reads and h.idle, 600)
        h.table.viewport().repaint()
        steps.append((time.perf_counter() - t) * 1000)
    print(stats(f"   slider step, all nodes ({h.model.rowCount()} rows)", steps))
    h.shutdown()
    return 0


def measure_stall(app, w) -> float:
    from PySide6.QtCore import QElapsedTimer, QTimer

    clock = QElapsedTimer()
    worst = [0.0]

    def tick() -> None:
        worst[0] = max(worst[0], clock.nsecsElapsed() / 1e6)
        clock.restart()

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(tick)
    clock.start()
    timer.start()
    plot = w.load_plot
    lo, hi = w.info.span
    for i in range(20):
        span = 3600.0 * (1 + i % 12)
        reads = w.reads
        plot.set_view(hi - span, hi)
        plot.request()
        pump(app, lambda reads=reads: w.reads > reads)
    pump(app, lambda: w.idle)
    timer.stop()
    return worst[0]


if __name__ == "__main__":
    sys.exit(main())
