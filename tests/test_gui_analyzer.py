"""omanalyzer and omhistory (issue 8): the history, drawn.

Histories come from two places: the real omcollector recording the 3-node testbed (with a CPU hog,
a checkpoint, a rotation into a backup, and a migration recorded through the HistoryWriter API the
collector uses — see `tb_history`), and synthetic ones written through the same HistoryWriter
(omanalyzer.synth), whose true values the tests know without reading the database back.
Offscreen Qt; screenshots go to tests/screenshots/ — look at them.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import csv
import math
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from omanalyzer.analyzer import CLUSTER, AnalyzerWindow
from omanalyzer.common import plot_colors
from omanalyzer.data import HIGH_LOAD, MIGRATION_OK, drawn_segments, split_line
from omanalyzer.historywin import COL_PID, KEY_ROLE, HistoryWindow
from omanalyzer.plots import BAND, BandPlot
from omanalyzer.statswin import StatsWindow
from omanalyzer.synth import Synth, write_synthetic
from omview.core.history import HistoryError, HistoryReader, HistoryWriter, MigrationRecord, unpack_columns
from omview.core.testbed import Testbed
from omview.gui import theme
from tests.gui_helpers import screenshot

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("qsettings_sandbox")]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def syn(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """6 nodes × 2 h at 1 Hz: bursts above 75 %, node 3 and 6 down 5 minutes, checkpoints, migrations."""
    return write_synthetic(tmp_path_factory.mktemp("syn") / "hist", nodes=6, hours=2.0)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The large one: 12 h × 8 nodes at 1 Hz (345 600 samples), processes every 5 minutes."""
    return write_synthetic(tmp_path_factory.mktemp("big") / "hist", nodes=8, hours=12.0, procs_per_node=20,
                           proc_every=300.0)


def open_analyzer(qtbot: Any, path: Path | str, size: tuple[int, int] = (1280, 720)) -> AnalyzerWindow:
    w = AnalyzerWindow(Path(path) if Path(path).is_dir() else Path(path).parent)
    qtbot.addWidget(w)
    w.resize(*size)
    w.show()
    w.open_history(path)
    qtbot.waitUntil(lambda: w.info is not None or bool(w.last_error), timeout=20000)
    assert not w.last_error, w.last_error
    settle(qtbot, w)
    return w


def settle(qtbot: Any, w: AnalyzerWindow) -> None:
    """Wait until every requested read has arrived, then draw it now."""
    reads = w.reads
    qtbot.waitUntil(lambda: w.reads > 0 and w.idle, timeout=20000)
    qtbot.wait(10)
    qtbot.waitUntil(lambda: w.idle, timeout=20000)
    for p in (w.load_plot, w.mem_plot):
        p.apply_now()
    assert w.reads >= reads


def set_view(qtbot: Any, w: AnalyzerWindow, t0: float, t1: float) -> None:
    w.load_plot.set_view(t0, t1)
    qtbot.waitUntil(lambda: w.load_plot._debounce.isActive() or not w.idle, timeout=5000)
    settle(qtbot, w)
    lo, hi, _ = w.load_plot.loaded  # type: ignore[misc]
    s0, s1 = w.info.span  # type: ignore[union-attr, misc]
    assert lo <= max(t0, s0) and hi >= min(t1, s1), "the data on screen covers the view"


def open_history_win(qtbot: Any, path: Path | str) -> HistoryWindow:
    w = HistoryWindow(Path(path))
    qtbot.addWidget(w)
    w.resize(1200, 760)
    w.show()
    w.open_history(path)
    qtbot.waitUntil(lambda: (w.info is not None and w.reads > 0 and w.idle) or bool(w.last_error), timeout=20000)
    assert not w.last_error, w.last_error
    return w


def wait_rows(qtbot: Any, w: HistoryWindow) -> None:
    qtbot.waitUntil(lambda: w.idle, timeout=20000)


# --------------------------------------------------------------------------- the red line, exactly


def above_length(x: np.ndarray, y: np.ndarray, level: float = HIGH_LOAD) -> float:
    """Independent of split_line: how much of the polyline's x extent lies above `level`."""
    total = 0.0
    for i in range(len(x) - 1):
        a, b = y[i], y[i + 1]
        if not (math.isfinite(a) and math.isfinite(b)):
            continue
        dx = x[i + 1] - x[i]
        if a > level and b > level:
            total += dx
        elif a > level or b > level:
            hi, lo = (a, b) if a > level else (b, a)
            total += dx * (hi - level) / (hi - lo)
    return total


def check_colours(x: np.ndarray, y: np.ndarray, low: tuple[Any, Any],
                  high: tuple[Any, Any], offset: float = 0.0, clip: float = math.inf) -> None:
    """Red segments are exactly the parts above 75, black ones the rest, and together they are the line."""
    red = drawn_segments(high[0], None if high[1] is None else high[1] - offset)
    black = drawn_segments(low[0], None if low[1] is None else low[1] - offset)
    for x0, y0, x1, y1 in red:
        assert min(y0, y1) >= HIGH_LOAD - 1e-6 and (y0 + y1) / 2 > HIGH_LOAD, (x0, y0, x1, y1)
    for x0, y0, x1, y1 in black:
        assert max(y0, y1) <= HIGH_LOAD + 1e-6, (x0, y0, x1, y1)
    finite = np.isfinite(y[:-1]) & np.isfinite(y[1:])
    whole = float(np.sum(np.diff(x)[finite]))
    red_len = sum(s[2] - s[0] for s in red)
    black_len = sum(s[2] - s[0] for s in black)
    assert red_len + black_len == pytest.approx(whole, rel=1e-9, abs=1e-3)  # x is epoch seconds
    assert red_len == pytest.approx(above_length(x, np.minimum(y, clip)), rel=1e-9, abs=1e-3)


def test_split_line_puts_the_colour_change_at_the_crossing() -> None:
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    y = np.array([50.0, 100.0, 50.0, 75.0, 75.0, 80.0, np.nan])
    s = split_line(x, y)
    red = drawn_segments(s.high_x, s.high_y)
    black = drawn_segments(s.low_x, s.low_y)
    # 50 → 100 crosses at x = 0.5; 100 → 50 at 1.5; a line sitting at 75 is not above it
    assert red == [(0.5, 75.0, 1.0, 100.0), (1.0, 100.0, 1.5, 75.0), (4.0, 75.0, 5.0, 80.0)]
    assert black == [(0.0, 50.0, 0.5, 75.0), (1.5, 75.0, 2.0, 50.0), (2.0, 50.0, 3.0, 75.0), (3.0, 75.0, 4.0, 75.0)]
    check_colours(x, y, (s.low_x, s.low_y), (s.high_x, s.high_y))
    # a short dip between two peaks is black, not bridged by the red line
    s = split_line(np.arange(5.0), np.array([90.0, 90.0, 70.0, 90.0, 90.0]))
    assert not any(seg[0] > 1.0 and seg[2] < 3.0 for seg in drawn_segments(s.high_x, s.high_y))


def test_plots_read_summaries_for_wide_buckets_and_every_sample_when_zoomed_in(big: Synth) -> None:
    from omanalyzer.overview import plot_read

    with HistoryReader(big.path) as r:
        ids = [n.id for n in r.nodes()]
        exact = r.samples_many(ids, big.t0, big.t1, max_points=1200)
        calls: list[bool] = []
        real = r.samples_many

        def spy(*a: Any, **kw: Any) -> Any:
            calls.append(bool(kw.get("summaries")))
            return real(*a, **kw)

        r.samples_many = spy  # type: ignore[method-assign]
        wide = plot_read(r, ids, big.t0, big.t1, 1200)  # 36 s buckets
        narrow = plot_read(r, ids, big.t0 + 3600, big.t0 + 4200, 1200)  # raw: 600 samples
    assert calls == [True, False]
    for n in ids:
        a, b = wide[n], exact[n]
        assert len(a) == len(b) == 1200 and np.allclose(a.t, b.t)
        # summaries are exact to 10 s: the extremes of a 36 s bucket are the same samples' or a neighbour's
        ok = np.isfinite(a.load.max) & np.isfinite(b.load.max)
        assert np.nanmax(a.load.max) == pytest.approx(np.nanmax(b.load.max))
        assert np.mean(np.isclose(a.load.max[ok], b.load.max[ok])) > 0.5
        assert narrow[n].width == 0 and len(narrow[n].t) >= 600


def test_load_overview_one_curve_per_node_red_exactly_above_75(qtbot, light, syn: Synth) -> None:
    w = open_analyzer(qtbot, syn.path)
    plot = w.load_plot
    assert sorted(plot.curves) == list(range(1, syn.nodes + 1))
    c = plot_colors(plot.palette())
    for nc in plot.curves.values():
        assert nc.a.opts["pen"].color() == c.fore and nc.b.opts["pen"].color() == c.high
        assert nc.a in plot.plotItem.items and nc.b.item is plot.shared and plot.shared in plot.plotItem.items
    # the shared red item draws exactly the nodes' red parts
    sx, sy = plot.shared.xData, plot.shared.yData
    parts = [seg for nc in plot.curves.values() for seg in drawn_segments(nc.b.xData, nc.b.yData)]
    assert sorted(drawn_segments(sx, sy)) == sorted(parts)
    # zoomed in to raw samples around node 1's first burst (the synthetic truth says where)
    above = np.flatnonzero(syn.load[1] > HIGH_LOAD)
    t_burst = float(syn.t[above[0]])
    set_view(qtbot, w, t_burst - 300, t_burst + 300)
    for node, nc in plot.curves.items():
        s = plot.series[node]
        assert s.width == 0, "10 minutes are drawn from raw samples"
        x, y = s.line("load")
        check_colours(x, y, (nc.a.xData, nc.a.yData), (nc.b.xData, nc.b.yData), nc.offset, clip=np.inf)
    # the truth: node 1's red starts between the last sample at or below 75 and the first above it
    red = drawn_segments(plot.curves[1].b.xData, plot.curves[1].b.yData - plot.curves[1].offset)  # type: ignore[operator, arg-type]
    assert red, "node 1's burst is drawn red"
    first = min(seg[0] for seg in red if seg[0] >= t_burst - 300)
    assert syn.t[above[0] - 1] <= first <= syn.t[above[0]]
    # zoomed out (downsampled min/max line): the same rule holds on what is drawn
    set_view(qtbot, w, syn.t0, syn.t1)
    for node, nc in plot.curves.items():
        s = plot.series[node]
        assert s.width > 0
        x, y = s.line("load")
        check_colours(x, y, (nc.a.xData, nc.a.yData), (nc.b.xData, nc.b.yData), nc.offset)


def test_down_periods_are_gaps_and_checkpoints_blue_lines_at_their_time(qtbot, light, syn: Synth) -> None:
    w = open_analyzer(qtbot, syn.path)
    plot = w.load_plot
    assert [(ln.value(), ln.label.format) for ln in plot.checkpoint_lines] == syn.checkpoints
    assert all(ln.pen.color() == plot_colors(plot.palette()).checkpoint for ln in plot.checkpoint_lines)
    assert [ln.value() for ln in w.mem_plot.checkpoint_lines] == [t for t, _ in syn.checkpoints]
    (a, b), = syn.down[3]
    w.tabs.setCurrentIndex(1)  # the memory plot builds its curves when first shown
    set_view(qtbot, w, a - 200, b + 200)
    for item in (plot.curves[3].a, plot.curves[3].b, w.mem_plot.curves[3].a):
        for x0, _, x1, _ in drawn_segments(item.xData, item.yData):
            assert x1 <= a + 2 or x0 >= b - 1, f"a line drawn across the down period: {x0 - a:.1f}..{x1 - a:.1f}"
    assert drawn_segments(plot.curves[2].a.xData, plot.curves[2].a.yData), "node 2 was up all along"


def test_reads_at_most_the_pixels_and_requery_on_zoom(qtbot, light, big: Synth) -> None:
    w = open_analyzer(qtbot, big.path)
    plot = w.load_plot
    t0, t1 = plot.view_range()
    assert t1 - t0 == pytest.approx(12 * 3600, abs=2)
    lo, hi, buckets = plot.loaded  # type: ignore[misc]
    px = plot.pixel_width()
    assert buckets <= px * (hi - lo) / (t1 - t0) + 1, "one bucket per pixel of the view, no more"
    for s in plot.series.values():
        assert 0 < len(s) <= buckets and s.width > 0
        assert len(plot.curves[s.node].a.xData) <= 4 * buckets  # the min/max line and its crossings
    reads = w.reads
    mid = (t0 + t1) / 2
    set_view(qtbot, w, mid, mid + 600)
    assert w.reads > reads, "zooming in reads again"
    assert all(s.width == 0 for s in plot.series.values()), "10 minutes: every sample"
    # a drag (pan) re-reads too, once it rests
    reads = w.reads
    plot.vb.translateBy(x=-300)
    qtbot.waitUntil(lambda: w.reads > reads and w.idle, timeout=20000)


def test_statistics_match_the_database(qtbot, light, syn: Synth) -> None:
    w = open_analyzer(qtbot, syn.path)
    t0, t1 = syn.t0 + 1800, syn.t0 + 5400
    set_view(qtbot, w, t0, t1)
    v0, v1 = w.load_plot.view_range()
    truth = independent_stats(syn.path / "history.sqlite", v0, v1)
    for node in (2, 3, CLUSTER):
        win = w.find_out(node)
        assert isinstance(win, StatsWindow)
        qtbot.addWidget(win)
        qtbot.waitUntil(lambda win=win: win.stats is not None, timeout=30000)
        st = win.stats
        assert st is not None and (st.t0, st.t1) == pytest.approx((v0, v1))
        if node == CLUSTER:
            loads = np.concatenate([truth[n]["load"] for n in truth])
            assert st.total.load_avg == pytest.approx(loads.mean(), rel=1e-9)
            assert st.total.load_max == pytest.approx(loads.max())
            assert [ns.node for ns in st.per_node] == sorted(truth)
            assert st.total.mig_in == sum(1 for m in truth_migrations(syn, v0, v1) if m[2] in MIGRATION_OK)
            continue
        tr = truth[node]
        assert st.total.samples == len(tr["load"])
        assert st.total.load_avg == pytest.approx(tr["load"].mean(), rel=1e-9)
        assert (st.total.load_min, st.total.load_max) == pytest.approx((tr["load"].min(), tr["load"].max()))
        assert st.total.mem_avg == pytest.approx(tr["used"].mean(), rel=1e-9)
        assert (st.total.mem_min, st.total.mem_max) == pytest.approx((tr["used"].min(), tr["used"].max()))
        assert st.total.up_seconds == pytest.approx(len(tr["load"]) * syn.interval)
        assert st.total.high_seconds == pytest.approx(np.sum(tr["load"] > HIGH_LOAD) * syn.interval)
        migs = truth_migrations(syn, v0, v1)
        assert st.total.mig_in == sum(1 for t, _s, r, d in migs if d == node and r in MIGRATION_OK)
        assert st.total.mig_out == sum(1 for t, s, r, _d in migs if s == node and r in MIGRATION_OK)
        # the synthetic truth agrees too (it never went through the database)
        inside = (syn.t >= v0) & (syn.t <= v1) & np.isfinite(syn.load[node])
        assert st.total.load_avg == pytest.approx(syn.load[node][inside].mean(), rel=1e-6)
        # busiest process: constant cpu per process, so CPU seconds = cpu × time alive in the span
        expect = []
        for pid, _cmd, app, van, cpu in syn.procs[node]:
            a, b = max(v0, app), min(v1, van if van is not None else v1)
            if b > a:
                expect.append((cpu * (b - a) / 100.0, pid))
        expect.sort(reverse=True)
        got = [(b.cpu_seconds, b.proc.pid) for b in st.busiest]
        assert got[0][1] == expect[0][1] and got[0][0] == pytest.approx(expect[0][0], rel=1e-3)
        assert win.values["Average load"].text() == f"{tr['load'].mean():.1f} %"
    assert win is not None
    screenshot(win, "analyzer_stats_cluster")


def independent_stats(db: Path, t0: float, t1: float) -> dict[int, dict[str, np.ndarray]]:
    """Load and used memory of the up samples in [t0, t1], straight from the tables with sqlite3.

    Packed blocks are decoded with the store's codec (unpack_columns, tested in test_history); the
    selection, scaling and figures are done here, not by the reader.
    """
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    rows: dict[int, list[tuple[float, float, float, float]]] = {}
    for node, t, up, load, used in con.execute("SELECT node, t, up, load, mem_used FROM samples"):
        rows.setdefault(node, []).append((t, up, load if up else math.nan, used if up else math.nan))
    for node, data in con.execute("SELECT node, data FROM sample_chunks"):
        c = unpack_columns(data)
        for t, up, load, used in zip(c[0] / 1000.0, c[1], c[2] / 100.0, c[5] * 1024.0, strict=True):
            rows.setdefault(node, []).append((t, up, load if up else math.nan, used if up else math.nan))
    con.close()
    out = {}
    for node, r in rows.items():
        a = np.array(r)
        sel = (a[:, 0] >= t0) & (a[:, 0] <= t1) & (a[:, 1] == 1)
        out[node] = {"load": a[sel, 2], "used": a[sel, 3]}
    return out


def truth_migrations(syn: Synth, t0: float, t1: float) -> list[tuple[float, int, str, int]]:
    con = sqlite3.connect(f"file:{syn.path / 'history.sqlite'}?mode=ro", uri=True)
    try:
        return [(t, s, r, d) for t, s, r, d in con.execute(
            "SELECT t, src, result, dst FROM migrations WHERE t BETWEEN ? AND ?", (t0, t1))]
    finally:
        con.close()


# --------------------------------------------------------------------------- omhistory


def expected_procs(syn: Synth, t: float, node: int | None = None) -> set[tuple[int, int]]:
    return {(n, pid) for n, lst in syn.procs.items() if node in (None, n)
            for pid, _c, app, van, _cpu in lst if app <= t and (van is None or van > t)}


def shown(w: HistoryWindow) -> set[tuple[int, int]]:
    keys = set()
    for r in range(w.proxy.rowCount()):
        node, pid, _start = w.proxy.index(r, 0).data(KEY_ROLE)
        keys.add((node, pid))
    return keys


def test_time_slider_shows_the_processes_that_ran_then(qtbot, light, syn: Synth) -> None:
    w = open_history_win(qtbot, syn.path)
    assert w.slider.minimum() == 0 and w.slider.maximum() == pytest.approx(syn.t1 - syn.t0, abs=1)
    assert shown(w) == expected_procs(syn, syn.t1)
    for frac in (0.1, 0.37, 0.8):
        value = int((syn.t1 - syn.t0) * frac)
        w.slider.setValue(value)  # as a drag or a click on the groove does
        wait_rows(qtbot, w)
        t = syn.t0 + value
        assert w.at == t
        assert shown(w) == expected_procs(syn, t), frac
    # keyboard: one interval per arrow key
    w.slider.setFocus()
    before = w.at
    QTest.keyClick(w.slider, Qt.Key.Key_Right)
    wait_rows(qtbot, w)
    assert w.at == before + syn.interval and shown(w) == expected_procs(syn, w.at)
    # node filter and text filter
    w.node_box.setCurrentIndex(w.node_box.findData(2))
    wait_rows(qtbot, w)
    assert shown(w) == expected_procs(syn, w.at, 2)
    some = sorted(expected_procs(syn, w.at, 2))[0][1]
    w.filter_edit.setText(f"part {some}")
    assert shown(w) == {(2, some)}
    assert w.count_label.text().startswith("1 of ")
    w.filter_edit.clear()
    w.node_box.setCurrentIndex(0)
    wait_rows(qtbot, w)
    assert shown(w) == expected_procs(syn, w.at)
    # sorting (done by the model): by CPU, highest first, then by PID after a header click
    cpus = [w.model.record(w.proxy.mapToSource(w.proxy.index(r, 0)).row()).cpu or 0.0
            for r in range(w.proxy.rowCount())]
    assert cpus == sorted(cpus, reverse=True)
    w.table.horizontalHeader().setSortIndicator(COL_PID, Qt.SortOrder.AscendingOrder)
    pids = [int(w.proxy.index(r, COL_PID).data()) for r in range(w.proxy.rowCount())]
    assert pids == sorted(pids)
    w.slider.setValue(w.slider.value() - 60)
    wait_rows(qtbot, w)
    pids = [int(w.proxy.index(r, COL_PID).data()) for r in range(w.proxy.rowCount())]
    assert pids == sorted(pids), "a new snapshot keeps the order"


def test_selecting_a_process_shows_its_life_and_a_migration_jumps_there(qtbot, light, syn: Synth) -> None:
    m = syn.migrations[0]  # pid 1000 from node 1 to node 2, "ok"
    w = open_history_win(qtbot, syn.path)
    life_of = next(p for p in syn.procs[m.src] if p[0] == m.pid)
    w.set_time(life_of[2] + 1)
    wait_rows(qtbot, w)
    row = next(r for r in range(w.proxy.rowCount())
               if w.proxy.index(r, 0).data(KEY_ROLE) == (m.src, m.pid, m.start))
    w.table.selectRow(row)
    qtbot.waitUntil(lambda: w.life is not None and w.life.proc.pid == m.pid, timeout=10000)
    assert w.life is not None and w.life.proc.appeared == life_of[2]
    assert len(w.cpu_curve.xData) == len(w.life.t) + 1  # a step line closed at the end of the life
    assert w.mig_model.rowCount() == 1 and "→" in w.mig_model.index(0, 1).data()
    screenshot(w, "omhistory_process")
    w.mig_view.setFocus()
    w.mig_view.setCurrentIndex(w.mig_model.index(0, 0))
    QTest.keyClick(w.mig_view, Qt.Key.Key_Return)  # what a double-click does too (activated)
    wait_rows(qtbot, w)
    assert w.at == pytest.approx(m.t + 1, abs=1)
    assert shown(w) == expected_procs(syn, w.at)
    if (m.dst, m.pid) in shown(w):
        cur = w.table.currentIndex()
        assert cur.isValid() and cur.data(KEY_ROLE)[:2] == (m.dst, m.pid)


# --------------------------------------------------------------------------- files


def test_open_a_backup_from_the_file_menu_and_the_live_one_again(qtbot, light, tmp_path: Path) -> None:
    hist = tmp_path / "hist"
    old = write_synthetic(hist, nodes=3, hours=0.5, procs_per_node=3, t_end=1_790_000_000.0)
    w = HistoryWriter(hist, interval=1.0, now=old.t1 + 1)
    backup = w.rotate(old.t1 + 1)
    for k in range(120):
        t = old.t1 + 2 + k
        for n in (1, 2, 3):
            from omview.core.model import NodeSample

            w.sample(n, t, NodeSample(load=90.0, cpus=1, mem_total=1 << 30, mem_used=1 << 29))
    w.checkpoint("after rotation", old.t1 + 60)
    w.commit(old.t1 + 200)
    w.close()
    win = open_analyzer(qtbot, hist)
    assert win.doc.source is not None and win.doc.source.live and win.refresh_box.isEnabled()
    assert [ln.label.format for ln in win.load_plot.checkpoint_lines] == ["after rotation"]
    win._fill_backups()  # what opening the menu does: the listing arrives from a worker
    qtbot.waitUntil(lambda: win.backup_listings > 0, timeout=10000)
    acts = [a for a in win.backups_menu.actions() if a.isEnabled()]
    assert [a.text().split()[0] for a in acts] == [backup.name]
    acts[0].trigger()
    qtbot.waitUntil(lambda: win.doc.source is not None and not win.doc.source.live, timeout=10000)
    settle(qtbot, win)
    assert "backup" in win.windowTitle() and not win.refresh_box.isEnabled()
    assert win.info is not None and win.info.span == pytest.approx((old.t0, old.t1))
    assert [(ln.value(), ln.label.format) for ln in win.load_plot.checkpoint_lines] == old.checkpoints
    win._fill_recent()
    assert [a.text() for a in win.recent_menu.actions()][:2] == [str(backup), str(hist)]
    win.act_live.trigger()
    qtbot.waitUntil(lambda: win.doc.source is not None and win.doc.source.live, timeout=10000)
    # omhistory opens the backup folder given on its own
    hw = open_history_win(qtbot, backup)
    assert hw.doc.source is not None and not hw.doc.source.live and hw.model.rowCount() > 0


def corrupt_files(tmp_path: Path, good: Path) -> dict[str, tuple[Path, str]]:
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "history.sqlite").write_bytes(os.urandom(64 << 10))
    foreign = tmp_path / "foreign.sqlite"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
    con.execute("CREATE TABLE samples (x)")  # a name in common is not enough
    con.commit()
    con.close()
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    data = bytearray((good / "history.sqlite").read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    data[page:] = os.urandom(len(data) - page)  # the schema page survives, every table's pages are noise
    (damaged / "history.sqlite").write_bytes(bytes(data))
    empty = tmp_path / "empty"
    empty.mkdir()
    return {"junk": (junk, "not a history database"), "foreign": (foreign, "not a history database"),
            "damaged": (damaged, "damaged"), "empty": (empty, "no history database")}


def test_a_corrupt_or_foreign_file_gives_a_clear_error(qtbot, light, syn: Synth, tmp_path: Path) -> None:
    from PySide6.QtWidgets import QMessageBox

    cases = corrupt_files(tmp_path, syn.path)
    with pytest.raises(HistoryError, match="not a history database"):
        HistoryReader(cases["foreign"][0])
    for cls in (AnalyzerWindow, HistoryWindow):
        w = cls(tmp_path)
        qtbot.addWidget(w)
        w.show()
        for name, (path, words) in cases.items():
            w.last_error = ""
            w.open_history(path)
            qtbot.waitUntil(lambda w=w: bool(w.last_error), timeout=10000)
            assert words in w.last_error and str(path) in w.last_error, (cls.__name__, name, w.last_error)
            box = w.error_box
            assert isinstance(box, QMessageBox) and box.isVisible() and box.icon() == QMessageBox.Icon.Critical
            if name == "damaged" and cls is AnalyzerWindow:
                screenshot(box, "analyzer_error_damaged")
        # and a good one opens after all that
        w.last_error = ""
        w.open_history(syn.path)
        qtbot.waitUntil(lambda w=w: w.info is not None and w.doc.source is not None, timeout=10000)
        assert not w.last_error


def test_export_png_and_csv(qtbot, light, syn: Synth, tmp_path: Path) -> None:
    w = open_analyzer(qtbot, syn.path)
    set_view(qtbot, w, syn.t0 + 600, syn.t0 + 900)
    png = tmp_path / "load.png"
    assert w.export_png(str(png))
    img = QImage(str(png))
    assert not img.isNull() and img.width() == w.load_plot.width()
    out = tmp_path / "data.csv"
    w.export_csv(str(out))
    qtbot.waitUntil(lambda: getattr(w, "last_export", None) is not None, timeout=20000)
    v0, v1 = w.load_plot.view_range()
    with open(out) as f:
        rows = list(csv.DictReader(f))
    expected = sum(int(np.sum((syn.t >= v0) & (syn.t <= v1))) for _ in range(syn.nodes))
    assert len(rows) == expected == w.last_export[1]  # type: ignore[index]
    r = next(r for r in rows if r["node"] == "1")
    i = int(np.searchsorted(syn.t, float(r["epoch"])))
    assert float(r["load"]) == pytest.approx(syn.load[1][i]) and r["name"] == "node1" and r["up"] == "1"


def test_refresh_follows_the_live_history(qtbot, light, tmp_path: Path) -> None:
    from omview.core.model import NodeSample

    hist = tmp_path / "hist"
    s = write_synthetic(hist, nodes=2, hours=0.25, procs_per_node=0, checkpoints=0, migrations=0)
    w = open_analyzer(qtbot, hist)
    assert w.info is not None and w.info.span is not None and w.info.span[1] == s.t1
    wr = HistoryWriter(hist, interval=1.0, now=s.t1 + 1)
    for k in range(1, 61):
        for n in (1, 2):
            wr.sample(n, s.t1 + k, NodeSample(load=99.0, cpus=1, mem_total=1 << 30, mem_used=1 << 28))
    wr.checkpoint("new job", s.t1 + 30)
    wr.commit(s.t1 + 61)
    w.refresh_box.setChecked(True)
    qtbot.waitUntil(lambda: w.info is not None and w.info.span is not None and w.info.span[1] == s.t1 + 60,
                    timeout=20000)
    settle(qtbot, w)
    assert w.load_plot.view_range()[1] == pytest.approx(s.t1 + 60)
    assert [ln.label.format for ln in w.load_plot.checkpoint_lines] == ["new job"]
    assert np.nanmax(w.load_plot.series[1].load.max) == 99.0
    w.refresh_box.setChecked(False)
    wr.close()


def test_keyboard_navigation_and_tooltips(qtbot, light, syn: Synth) -> None:
    from PySide6.QtWidgets import QToolBar

    w = open_analyzer(qtbot, syn.path)
    plot = w.load_plot
    set_view(qtbot, w, syn.t0 + 1200, syn.t0 + 2400)
    plot.setFocus()
    QTest.keyClick(plot, Qt.Key.Key_Right)
    assert plot.view_range() == pytest.approx((syn.t0 + 1500, syn.t0 + 2700))
    QTest.keyClick(plot, Qt.Key.Key_Plus)
    assert plot.view_range() == pytest.approx((syn.t0 + 1800, syn.t0 + 2400))
    QTest.keyClick(plot, Qt.Key.Key_End)
    assert plot.view_range()[1] == pytest.approx(syn.t1)
    settle(qtbot, w)
    # Enter on a node in the list: its statistics
    w.node_view.setFocus()
    w.node_view.setCurrentIndex(w.node_model.index(2, 0))
    QTest.keyClick(w.node_view.viewport(), Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: any(s.windowTitle() == "Find out: node2" for s in w.stats_windows), timeout=5000)
    for s in w.stats_windows:
        qtbot.addWidget(s)
    acts = list(w.file_menu.actions()) + [a for tb in w.findChildren(QToolBar) for a in tb.actions()]
    for a in acts:
        if a.isSeparator() or a.menu() is not None or not a.text():
            continue
        assert a.toolTip().strip(), a.text()
    assert w.refresh_box.toolTip() and w.span_box.toolTip() and plot.toolTip()
    h = open_history_win(qtbot, syn.path)
    for widget in (h.slider, h.node_box, h.filter_edit, h.life_plot, h.mig_view):
        assert widget.toolTip(), widget
    # the slider moves with the keyboard, a page is 10 minutes
    h.slider.setFocus()
    before = h.at
    QTest.keyClick(h.slider, Qt.Key.Key_PageDown)
    wait_rows(qtbot, h)
    assert abs(h.at - before) == 600


def test_without_display_both_apps_say_so_in_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    for app, module in (("omanalyzer", "omanalyzer.app"), ("omhistory", "omanalyzer.history_app")):
        cp = subprocess.run([sys.executable, "-m", module, "--history", "/nonexistent"], env=env,
                            capture_output=True, text=True, timeout=60, cwd=REPO)
        assert cp.returncode == 1
        assert cp.stderr.strip().splitlines() == [f"{app}: no display (DISPLAY/WAYLAND_DISPLAY unset): run it on a "
                                                  "desktop, or under xvfb-run"]


# --------------------------------------------------------------------------- screenshots


def test_screenshots_synthetic(qtbot, qapp: QApplication, big: Synth, syn: Synth) -> None:
    theme.apply_theme(qapp, "light")
    w = open_analyzer(qtbot, big.path)
    print(f"\nscreenshot: {screenshot(w, 'analyzer_load_12h_8_nodes')}")
    w.tabs.setCurrentIndex(1)
    qtbot.waitUntil(lambda: w.mem_plot.isVisible(), timeout=5000)
    settle(qtbot, w)
    # the memory tab shows the load tab's range, and every node's lines
    assert w.mem_plot.view_range() == w.load_plot.view_range()
    assert all(nc.a.xData is not None and len(nc.a.xData) for nc in w.mem_plot.curves.values())
    print(f"screenshot: {screenshot(w, 'analyzer_memory_12h_8_nodes')}")
    win = w.find_out(3)
    assert win is not None
    qtbot.addWidget(win)
    qtbot.waitUntil(lambda: win.stats is not None, timeout=30000)
    print(f"screenshot: {screenshot(win, 'analyzer_stats_node')}")
    try:
        theme.apply_theme(qapp, "dark")
        d = open_analyzer(qtbot, syn.path)
        print(f"screenshot: {screenshot(d, 'analyzer_load_dark')}")
        h = open_history_win(qtbot, syn.path)
        h.table.selectRow(0)
        qtbot.waitUntil(lambda: h.life is not None, timeout=10000)
        print(f"screenshot: {screenshot(h, 'omhistory_dark')}")
    finally:
        theme.apply_theme(qapp, "light")
        qapp.setPalette(theme.light_palette())


# --------------------------------------------------------------------------- the real collector


def _wait(pred: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.3)


def _samples(hist: Path, node: int, above: float | None = None) -> int:
    try:
        with HistoryReader(hist) as r:
            s = r.samples(node)
            ok = s.up == 1
            return int(np.sum(ok & (s.load.mean > above))) if above is not None else int(np.sum(ok))
    except (HistoryError, sqlite3.Error):
        return 0


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    cp = subprocess.run([sys.executable, "-m", "omcollector", *args], capture_output=True, text=True, timeout=120,
                        cwd=REPO)
    assert cp.returncode == 0, cp.stderr
    return cp


@pytest.fixture(scope="module")
def tb_history(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The real omcollector records the testbed: a CPU hog on node 2 (half a CPU, so its load passes
    75 %), a marked sleep on node 1, a checkpoint, a rotation into a backup, a second checkpoint.

    The migration engine (omctl migrate) is still being written and its events reach only the
    process that runs it, so the migration is recorded afterwards through HistoryWriter.migration,
    the call the collector makes for each migration event it receives.
    """
    from tests.conftest import run_ssh

    base = tmp_path_factory.mktemp("tbhist")
    hist = base / "hist"
    log = open(base / "collector.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "omcollector", "--foreground", "--history", str(hist),
                             "--interval", "1", "--snapshot-every", "2", "--cluster", str(testbed.cluster_file)],
                            stdout=log, stderr=log, cwd=REPO)
    out: dict[str, Any] = {"hist": hist}
    try:
        _wait(lambda: all(_samples(hist, n) >= 6 for n in (1, 2, 3)), 90, "6 samples of every node")
        run_ssh(testbed, 1, "setsid nohup sleep 123.5 </dev/null >/dev/null 2>&1 &")
        run_ssh(testbed, 2, "setsid nohup timeout 45 sh -c 'while :; do :; done' </dev/null >/dev/null 2>&1 &")
        out["hog_t"] = time.time()
        _cli("-n", "hog started", "--history", str(hist))
        _wait(lambda: _samples(hist, 2, above=HIGH_LOAD) >= 8, 90, "node 2 above 75 % for 8 samples")
        backup = Path(_cli("-r", "--history", str(hist)).stdout.strip().rsplit(" ", 1)[-1])
        out["backup"] = backup
        _wait(lambda: all(_samples(hist, n) >= 6 for n in (1, 2, 3)), 90, "6 samples in the new file")
        _cli("-n", "after rotation", "--history", str(hist))
        _wait(lambda: all(_samples(hist, n) >= 10 for n in (1, 2, 3)), 90, "10 samples in the new file")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    with HistoryReader(hist) as r:
        lo, hi = r.span()  # type: ignore[misc]
        sleeper = next(p for p in r.processes_at(hi - 1, 1) if p.cmd.startswith("sleep 123.5"))
    w = HistoryWriter(hist, interval=1.0)
    mig = MigrationRecord(t=(lo + hi) / 2, pid=sleeper.pid, start=sleeper.start, cmd=sleeper.cmd, src=1, dst=3,
                          result="ok", frozen=0.21)
    w.migration(mig)
    w.commit()
    w.close()
    out["migration"] = mig
    out["sleeper"] = sleeper
    return out


def test_testbed_history_in_omanalyzer(qtbot, light, tb_history: dict[str, Any]) -> None:
    backup: Path = tb_history["backup"]
    w = open_analyzer(qtbot, backup)
    plot = w.load_plot
    assert sorted(plot.curves) == [1, 2, 3]
    assert [n.hostname for n in w.info.nodes] == ["node1", "node2", "node3"]  # type: ignore[union-attr]
    with HistoryReader(backup) as r:
        cps = r.checkpoints()
        lo, hi = r.span()  # type: ignore[misc]
        raw = {n: r.samples(n) for n in (1, 2, 3)}
    assert [c.label for c in cps] == ["hog started"]
    assert [(ln.value(), ln.label.format) for ln in plot.checkpoint_lines] == [(cps[0].t, "hog started")]
    assert lo <= cps[0].t <= hi
    for node, nc in plot.curves.items():
        s = plot.series[node]
        assert s.width == 0  # a short history: every sample on screen
        x, y = s.line("load")
        check_colours(x, y, (nc.a.xData, nc.a.yData), (nc.b.xData, nc.b.yData), nc.offset)
        assert np.array_equal(s.t[s.up == 1], raw[node].t[raw[node].up == 1])
    assert drawn_segments(plot.curves[2].b.xData, plot.curves[2].b.yData), "the hog's node is red"
    assert np.nanmax(raw[1].load.mean) <= HIGH_LOAD or drawn_segments(plot.curves[1].b.xData, plot.curves[1].b.yData)
    # the statistics of node 2 against sqlite3
    win = w.find_out(2)
    assert win is not None
    qtbot.addWidget(win)
    qtbot.waitUntil(lambda: win.stats is not None, timeout=30000)
    v0, v1 = win.stats.t0, win.stats.t1  # type: ignore[union-attr]
    truth = independent_stats(backup / "history.sqlite", v0, v1)[2]
    assert win.stats.total.samples == len(truth["load"])  # type: ignore[union-attr]
    assert win.stats.total.load_avg == pytest.approx(truth["load"].mean(), rel=1e-9)  # type: ignore[union-attr]
    assert win.stats.total.load_max == pytest.approx(truth["load"].max())  # type: ignore[union-attr]
    assert win.stats.total.mem_avg == pytest.approx(truth["used"].mean(), rel=1e-9)  # type: ignore[union-attr]
    # the hog is among the busiest (first, unless this machine starved it of CPU)
    hog = [b for b in win.stats.busiest if "while" in b.proc.cmd]  # type: ignore[union-attr]
    assert hog and hog[0].cpu_seconds > 0, [b.proc.cmd for b in win.stats.busiest]  # type: ignore[union-attr]
    print(f"\nscreenshot: {screenshot(w, 'analyzer_testbed_backup')}")
    print(f"screenshot: {screenshot(win, 'analyzer_stats_testbed_node2')}")
    # the live file: the second checkpoint
    w.open_history(tb_history["hist"])
    qtbot.waitUntil(lambda: w.doc.source is not None and w.doc.source.live, timeout=10000)
    settle(qtbot, w)
    assert [ln.label.format for ln in plot.checkpoint_lines] == ["after rotation"]


def test_testbed_history_in_omhistory(qtbot, light, tb_history: dict[str, Any]) -> None:
    w = open_history_win(qtbot, tb_history["backup"])
    w.set_time(tb_history["hog_t"] + 8)
    wait_rows(qtbot, w)
    cmds = {(w.proxy.index(r, 0).data(KEY_ROLE)[0], w.model.record(w.proxy.mapToSource(w.proxy.index(r, 0)).row())
             .cmd) for r in range(w.proxy.rowCount())}
    assert any(n == 2 and "while" in c for n, c in cmds), sorted(cmds)
    assert any(n == 1 and c.startswith("sleep 123.5") for n, c in cmds)
    assert {n for n, _ in cmds} == {1, 2, 3}
    # the live file holds the migration: select the sleeper, see it, jump to it
    w.open_history(tb_history["hist"])
    qtbot.waitUntil(lambda: w.doc.source is not None and w.doc.source.live and w.idle, timeout=10000)
    m: MigrationRecord = tb_history["migration"]
    sl = tb_history["sleeper"]
    w.set_time(m.t - 1)
    wait_rows(qtbot, w)
    w.filter_edit.setText("sleep 123.5")
    rows = [r for r in range(w.proxy.rowCount()) if w.proxy.index(r, 0).data(KEY_ROLE) == (1, sl.pid, sl.start)]
    assert rows
    w.table.selectRow(rows[0])
    qtbot.waitUntil(lambda: w.mig_model.rowCount() == 1, timeout=10000)
    assert w.proxy.index(rows[0], COL_PID).data() == str(sl.pid)
    w.jump_to_migration(w.proc_migrations[0])
    wait_rows(qtbot, w)
    assert w.at == pytest.approx(m.t + 1, abs=1)
    print(f"\nscreenshot: {screenshot(w, 'omhistory_testbed')}")


def test_band_plot_layout() -> None:
    assert BAND > 100  # a band holds 0..100 % with room to spare; tests above rely on offsets per band
    assert issubclass(BandPlot, object)
