"""The omanalyzer window (HOWTO 10.7): load and memory overviews, "find out" statistics, export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, QTimer
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHeaderView,
    QLabel,
    QSplitter,
    QStackedWidget,
    QTableView,
    QTabWidget,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from omanalyzer.common import HistoryInfo, HistoryWindowBase
from omanalyzer.data import HIGH_LOAD, Stats, compute_stats, export_csv, fmt_duration, fmt_pct, fmt_time
from omanalyzer.overview import plot_read
from omanalyzer.plots import SPAN_PAD, BandPlot, Lines, prepare
from omanalyzer.statswin import StatsWindow
from omview.core.history import HistoryReader, NodeRecord, SampleSeries
from omview.gui.theme import tune_indicators

SPANS: list[tuple[str, float]] = [("1 h", 3600.0), ("3 h", 3 * 3600.0), ("6 h", 6 * 3600.0), ("12 h", 12 * 3600.0),
                                  ("24 h", 24 * 3600.0), ("whole history", 0.0)]
DEFAULT_SPAN = 12 * 3600.0
REFRESH_MS = 5000
CLUSTER = 0  # the row / the key of the whole cluster
#: Nodes out of view are read this many at a time after the ones on screen: a newer view waits for
#: one such read at most (~0.1 s), not for all of them.
REST_CHUNK = 25

Index = QModelIndex | QPersistentModelIndex


class NodeListModel(QAbstractTableModel):
    """The node list beside the plots: whole cluster first, then each node, figures of the visible span.

    The figures come from the data on screen (bucket means when zoomed out), hence "≈"; the exact
    ones are in the "find out" window.
    """

    HEADERS = ("Node", "≈ Avg load", "Max load", "Statistics")
    COL_NODE, COL_AVG, COL_MAX, COL_FIND = range(4)

    def __init__(self) -> None:
        super().__init__()
        from omanalyzer.common import plot_colors

        self.high = plot_colors().high
        self.nodes: list[NodeRecord] = []
        self.figures: dict[int, tuple[float, float]] = {}

    def set_nodes(self, nodes: list[NodeRecord]) -> None:
        from omanalyzer.common import plot_colors

        self.high = plot_colors().high
        self.beginResetModel()
        self.nodes = list(nodes)
        self.figures = {}
        self.endResetModel()

    def node_at(self, row: int) -> int:
        return CLUSTER if row == 0 else self.nodes[row - 1].id

    def set_figures(self, figures: dict[int, tuple[float, float]]) -> None:
        self.figures = figures
        if self.nodes:
            self.dataChanged.emit(self.index(0, self.COL_AVG), self.index(len(self.nodes), self.COL_MAX))

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.nodes) + 1

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole and section == 1:
            return "Average load of the visible span, from the plotted data"
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, col = index.row(), index.column()
        node = self.node_at(row)
        if role == Qt.ItemDataRole.DisplayRole:
            if col == self.COL_NODE:
                return "Whole cluster" if row == 0 else self.nodes[row - 1].label
            if col in (self.COL_AVG, self.COL_MAX):
                f = self.figures.get(node)
                return "" if f is None else fmt_pct(f[col - 1])
            return ""
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (self.COL_AVG, self.COL_MAX):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole and col == self.COL_NODE and row > 0:
            n = self.nodes[row - 1]
            return f"node {n.id}: {n.address or '?'} ({n.hostname or 'hostname unknown'}), {n.cpus or '?'} CPUs"
        if role == Qt.ItemDataRole.ForegroundRole and col == self.COL_MAX:
            f = self.figures.get(node)
            if f is not None and f[1] > HIGH_LOAD:
                return self.high
        return None


class AnalyzerWindow(HistoryWindowBase):
    APP = "omanalyzer"

    def __init__(self, history_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(history_dir, parent)
        self.setWindowTitle("omanalyzer")
        self.info: HistoryInfo | None = None
        self.stats_windows: list[StatsWindow] = []
        self._in_flight = False
        self._queued: tuple[float, float, int] | None = None
        self.reads = 0
        self.last_export: tuple[str, int] | None = None
        # ---- menus
        self.file_menu.addSeparator()
        self.act_png = self._action(self.file_menu, "Export plot as &PNG…", self.export_png, QKeySequence("Ctrl+E"),
                                    "Save the visible overview as a PNG image")
        self.act_csv = self._action(self.file_menu, "Export data as &CSV…", self.export_csv,
                                    QKeySequence("Ctrl+Shift+E"),
                                    "Save every sample of the visible span (all nodes) as CSV")
        self.file_menu.addSeparator()
        self._action(self.file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        # ---- toolbar
        tb = QToolBar("View", self)
        tb.setObjectName("view")
        tb.setMovable(False)
        self.addToolBar(tb)
        tb.addWidget(QLabel(" Span "))
        self.span_box = QComboBox()
        for text, secs in SPANS:
            self.span_box.addItem(text, secs)
        self.span_box.setCurrentIndex([s for _, s in SPANS].index(DEFAULT_SPAN))
        self.span_box.setToolTip("How much time the overview shows (openMosixanalyzer: 12 h)")
        self.span_box.activated.connect(lambda *_: self.set_span_seconds(float(self.span_box.currentData())))
        tb.addWidget(self.span_box)
        self.act_back = tb.addAction("◀", lambda: self.page(-0.5))
        self.act_back.setToolTip("Earlier: move back half a view (←)")
        self.act_fwd = tb.addAction("▶", lambda: self.page(0.5))
        self.act_fwd.setToolTip("Later: move on half a view (→)")
        self.act_latest = tb.addAction("Latest", self.show_latest)
        self.act_latest.setToolTip("Show the most recent part of the history (End)")
        tb.addSeparator()
        self.refresh_box = QCheckBox("refresh")
        self.refresh_box.setToolTip("Follow the live history: re-read it every few seconds")
        self.refresh_box.toggled.connect(self._refresh_toggled)
        tune_indicators(self.refresh_box)
        tb.addWidget(self.refresh_box)
        tb.addSeparator()
        self.act_cluster = tb.addAction("Find out: whole cluster", lambda: self.find_out(CLUSTER))
        self.act_cluster.setToolTip("Statistics of the whole cluster for the visible span")
        # ---- central
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(6, 4, 6, 4)
        self.header = QLabel("no history open")
        self.header.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        f = self.header.font()
        f.setPointSizeF(f.pointSizeF() * 1.1)
        self.header.setFont(f)
        lay.addWidget(self.header)
        split = QSplitter(Qt.Orientation.Horizontal)
        self.node_model = NodeListModel()
        self.node_view = QTableView()
        self.node_view.setModel(self.node_model)
        self.node_view.verticalHeader().hide()
        self.node_view.setWordWrap(False)
        self.node_view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.node_view.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.node_view.setSelectionMode(QTableView.SelectionMode.SingleSelection)
        self.node_view.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        # widths from the font, not ResizeToContents: that asks every row's every cell again on each
        # change of the figures (100 nodes: ~15 000 data() calls per update of the list)
        fm = self.node_view.fontMetrics()
        find = QToolButton()
        find.setText("Find out")
        for c, text in ((1, "≈ Avg load"), (2, "100.0 %"), (3, "Statistics")):
            self.node_view.horizontalHeader().setSectionResizeMode(c, QHeaderView.ResizeMode.Fixed)
            width = max(fm.horizontalAdvance(NodeListModel.HEADERS[c]), fm.horizontalAdvance(text)) + 16
            self.node_view.setColumnWidth(c, max(width, find.sizeHint().width() + 8) if c == 3 else width)
        self.node_view.activated.connect(lambda idx: self.find_out(self.node_model.node_at(idx.row())))
        self.node_view.setToolTip("Enter or double-click: find out about the node")
        split.addWidget(self.node_view)
        self.tabs = QTabWidget()
        self.load_plot = BandPlot("load")
        self.mem_plot = BandPlot("memory")
        # not pyqtgraph's setXLink/setYLink: a link maps ranges through the views' pixel sizes, and the
        # hidden tab's are stale, so the plot on screen showed 22 bands instead of 12; the range is
        # copied when the tab changes instead (both tabs have the same size)
        self.load_plot.setToolTip("Load per node; red where it is above 75 %. Wheel: zoom time, drag: pan")
        self.tabs.addTab(self.load_plot, "Load overview")
        self.tabs.addTab(self.mem_plot, "Memory overview")
        self.tabs.setTabToolTip(0, "Load of every node over time; checkpoints are blue lines")
        self.tabs.setTabToolTip(1, "Used (solid) and total (dashed) memory of every node")
        self.stack = QStackedWidget()
        self.placeholder = QLabel("No history open.\n\nFile ▸ Open live history (Ctrl+L), a backup, "
                                  "or any history folder.")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setEnabled(False)
        self.stack.addWidget(self.placeholder)
        self.stack.addWidget(self.tabs)
        split.addWidget(self.stack)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setSizes([330, 950])
        lay.addWidget(split, 1)
        self.setCentralWidget(central)
        # only the plot on screen asks: a hidden one has a stale width, and linked views of
        # different widths show proportionally different time ranges
        self.load_plot.wantData.connect(lambda a, b, n: self._want(0, a, b, n))
        self.mem_plot.wantData.connect(lambda a, b, n: self._want(1, a, b, n))
        self.tabs.currentChanged.connect(self._tab_changed)
        # the header follows the view at most 10 times a second: a label change relayouts the window
        self._header_timer = QTimer(self, singleShot=True, interval=100)
        self._header_timer.timeout.connect(self._update_header)
        for p in (self.load_plot, self.mem_plot):
            p.vb.sigXRangeChanged.connect(lambda *_: self._header_timer.start())
            p.hovered.connect(lambda text: self.statusBar().showMessage(text, 4000))
        self.refresh_timer = QTimer(self, interval=REFRESH_MS)
        self.refresh_timer.timeout.connect(self.refresh)
        self._set_enabled(False)
        self.resize(1280, 720)

    # ------------------------------------------------------------ opening
    def _set_enabled(self, on: bool) -> None:
        for a in (self.act_png, self.act_csv, self.act_back, self.act_fwd, self.act_latest, self.act_cluster):
            a.setEnabled(on)
        self.span_box.setEnabled(on)

    def history_opened(self, info: HistoryInfo) -> None:
        self.info = info
        self.stack.setCurrentWidget(self.tabs if info.span is not None else self.placeholder)
        if info.span is None:
            self.placeholder.setText(f"{info.source.title}\n\nNo samples recorded yet: is omcollector running?")
        for p in (self.load_plot, self.mem_plot):
            p.set_nodes(info.nodes)
            p.set_span(info.span)
            p.set_checkpoints(info.checkpoints)
        self.node_model.set_nodes(info.nodes)
        self._find_buttons()
        self._set_enabled(info.span is not None)
        self.refresh_box.setEnabled(info.source.live)
        if not info.source.live:
            self.refresh_box.setChecked(False)
        if info.span is None:
            self.header.setText(f"{info.source.title}: no samples recorded yet")
            return
        self.set_span_seconds(float(self.span_box.currentData()), anchor_end=True)

    def _find_buttons(self) -> None:
        for row in range(self.node_model.rowCount()):
            node = self.node_model.node_at(row)
            b = QToolButton()
            b.setText("Find out")
            b.setAutoRaise(True)
            label = "the whole cluster" if node == CLUSTER else self.node_model.nodes[row - 1].label
            b.setToolTip(f"Statistics of {label} for the visible span")
            b.clicked.connect(lambda *_, n=node: self.find_out(n))
            self.node_view.setIndexWidget(self.node_model.index(row, NodeListModel.COL_FIND), b)

    # ------------------------------------------------------------ view
    def _tab_changed(self, *_: Any) -> None:
        new = self.current_plot()
        old = self.mem_plot if new is self.load_plot else self.load_plot
        (x0, x1), (y0, y1) = old.vb.viewRange()
        new.vb.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
        new._debounce.start()

    def span_seconds(self) -> float:
        t0, t1 = self.current_plot().view_range()
        return t1 - t0

    def set_span_seconds(self, secs: float, anchor_end: bool = False) -> None:
        if not self.info or not self.info.span:
            return
        lo, hi = self.info.span
        if secs <= 0 or secs >= hi - lo:
            t0, t1 = lo, hi if hi > lo else lo + 60
            if secs > 0 and secs > hi - lo:  # a history shorter than the span: show what there is
                t0, t1 = lo, hi
        else:
            end = hi if anchor_end else min(self.current_plot().view_range()[1], hi)
            end = max(end, lo + secs)
            t0, t1 = end - secs, end
        if t1 - t0 < 10:
            t1 = t0 + 10
        self.current_plot().set_view(t0, t1)
        self.current_plot().request()

    def page(self, fraction: float) -> None:
        t0, t1 = self.current_plot().view_range()
        d = (t1 - t0) * fraction
        self.current_plot().set_view(t0 + d, t1 + d)

    def show_latest(self) -> None:
        if self.info and self.info.span:
            t0, t1 = self.current_plot().view_range()
            end = self.info.span[1]
            self.current_plot().set_view(end - (t1 - t0), end)

    def _update_header(self) -> None:
        if not self.info or not self.info.span:
            return
        t0, t1 = self.current_plot().view_range()
        lo, hi = self.info.span
        kind = "live history" if self.info.source.live else "backup"
        self.header.setText(
            f"<b>Start: {fmt_time(t0)}</b> &nbsp;·&nbsp; {fmt_duration(t1 - t0)} view to {fmt_time(t1)}"
            f" &nbsp;·&nbsp; {kind} {fmt_time(lo, False)} – {fmt_time(hi, False)},"
            f" {plural(len(self.info.nodes), 'node')}, {plural(len(self.info.checkpoints), 'checkpoint')}")

    # ------------------------------------------------------------ data
    def _want(self, tab: int, t0: float, t1: float, buckets: int) -> None:
        if self.tabs.currentIndex() == tab:
            self.fetch(t0, t1, buckets)

    def fetch(self, t0: float, t1: float, buckets: int) -> None:
        """One read at a time on the reader thread; while one runs, only the newest request waits.

        The bands on screen are read first and drawn as soon as they arrive (12 of 100 nodes are a
        tenth of the decoding); the other nodes follow, REST_CHUNK per read, until a newer request
        replaces them. Their curves are hidden meanwhile; the node list's figures fill in as they come.
        """
        if self.doc.reader is None or not self.info:
            return
        if self._in_flight:
            self._queued = (t0, t1, buckets)
            return
        ids = [n.id for n in self.info.nodes]
        first = self.current_plot().visible_nodes()
        if not first or len(first) >= len(ids):
            self._read(t0, t1, buckets, ids, [])
        else:
            shown = set(first)
            self._read(t0, t1, buckets, first, [n for n in ids if n not in shown])

    def _read(self, t0: float, t1: float, buckets: int, ids: list[int], rest: list[int]) -> None:
        self._in_flight = True
        plots = (self.load_plot, self.mem_plot)
        wanted = set(ids)
        bands = [(p.kind, {n: o for n, o in p.offsets().items() if n in wanted}) for p in plots]

        def work(r: HistoryReader) -> tuple[dict[int, SampleSeries], list[Lines]]:
            data = plot_read(r, ids, t0, t1, buckets)
            return data, [prepare(kind, data, offsets) for kind, offsets in bands]  # off the GUI thread

        def done(result: tuple[dict[int, SampleSeries], list[Lines]]) -> None:
            data, lines = result
            self.reads += 1
            self._in_flight = False
            for p, ln in zip(plots, lines, strict=True):
                p.set_series(data, t0, t1, buckets, ln)
            QTimer.singleShot(20, self._update_figures)
            if rest and self._queued is None:
                self._read(t0, t1, buckets, rest[:REST_CHUNK], rest[REST_CHUNK:])
            else:
                self._next()

        def failed(exc: BaseException) -> None:
            self._in_flight = False
            from omanalyzer.common import describe

            self.show_error("Cannot read the history", describe(exc))

        self.doc.read(work, done, failed)

    def _next(self) -> None:
        q, self._queued = self._queued, None
        if q is not None:
            self.fetch(*q)

    @property
    def idle(self) -> bool:
        """No read running or waiting and nothing left to draw (tests wait for this)."""
        return (not self._in_flight and self._queued is None and not self.load_plot._debounce.isActive()
                and not self.mem_plot._debounce.isActive() and not self.current_plot().drawing)

    def _update_figures(self) -> None:
        t0, t1 = self.current_plot().view_range()
        figs: dict[int, tuple[float, float]] = {}
        allv = []
        for node, s in self.load_plot.series.items():
            inside = (s.t >= t0) & (s.t <= t1)
            mean = s.load.mean[inside]
            mx = s.load.max[inside]
            mean = mean[np.isfinite(mean)]
            mx = mx[np.isfinite(mx)]
            if len(mean):
                figs[node] = (float(mean.mean()), float(mx.max()))
                allv.append(mean)
        if allv:
            a = np.concatenate(allv)
            figs[CLUSTER] = (float(a.mean()), max(f[1] for f in figs.values()))
        self.node_model.set_figures(figs)

    # ------------------------------------------------------------ refresh
    def _refresh_toggled(self, on: bool) -> None:
        if on:
            self.refresh_timer.start()
            self.refresh()
        else:
            self.refresh_timer.stop()

    def refresh(self) -> None:
        if not self.info or not self.info.source.live:
            return
        old = self.info.span

        def done(info: HistoryInfo) -> None:
            following = old is None or self.current_plot().view_range()[1] >= old[1] - 0.02 * self.span_seconds()
            self.info = info
            for p in (self.load_plot, self.mem_plot):
                p.set_span(info.span)
                p.set_checkpoints(info.checkpoints)
            if [n.id for n in info.nodes] != [n.id for n in self.node_model.nodes]:
                self.history_opened(info)
                return
            if info.span and following:
                w = self.span_seconds()
                self.current_plot().set_view(info.span[1] - w, info.span[1])
            self.current_plot().request()

        self.doc.refresh_info(done)

    # ------------------------------------------------------------ find out
    def find_out(self, node: int) -> StatsWindow | None:
        if not self.info or not self.info.span:
            return None
        names = {n.id: n.label for n in self.info.nodes}
        title = "whole cluster" if node == CLUSTER else names.get(node, str(node))
        t0, t1 = self.current_plot().view_range()
        lo, hi = self.info.span
        t0, t1 = max(t0, lo - SPAN_PAD), min(t1, hi + SPAN_PAD)  # the span's ends, rounding included
        win = StatsWindow(title, self)
        self.stats_windows = [w for w in self.stats_windows if w.isVisible()] + [win]
        target = None if node == CLUSTER else node

        def work(r: HistoryReader) -> Stats:
            return compute_stats(r, t0, t1, target)

        def failed(exc: BaseException) -> None:
            from omanalyzer.common import describe

            win.show_error(describe(exc))

        self.doc.heavy(work, lambda st: win.show_stats(st, names), failed, context=win)
        win.show()
        return win

    # ------------------------------------------------------------ export
    def current_plot(self) -> BandPlot:
        return self.load_plot if self.tabs.currentIndex() == 0 else self.mem_plot

    def export_png(self, path: str | None = None) -> bool:
        if path is None:
            name = "load" if self.tabs.currentIndex() == 0 else "memory"
            path, _ = QFileDialog.getSaveFileName(self, "Export the plot", f"omanalyzer-{name}.png", "PNG (*.png)")
            if not path:
                return False
        ok = bool(self.current_plot().grab().save(path, "PNG"))
        self.statusBar().showMessage(f"plot saved to {path}" if ok else f"could not write {path}", 6000)
        if not ok:
            self.show_error("Export failed", f"could not write {path}")
        return ok

    def export_csv(self, path: str | None = None) -> None:
        if not self.info or not self.info.span:
            return
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export the data", "omanalyzer.csv", "CSV (*.csv)")
            if not path:
                return
        t0, t1 = self.current_plot().view_range()
        target = str(path)
        self.statusBar().showMessage(f"writing {target}…")

        def done(rows: int) -> None:
            self.last_export = (target, rows)
            self.statusBar().showMessage(f"{rows} samples written to {target}", 8000)

        def failed(exc: BaseException) -> None:
            from omanalyzer.common import describe

            self.show_error("Export failed", describe(exc))

        self.last_export = None
        self.doc.heavy(lambda r: export_csv(r, target, t0, t1), done, failed)

    def shutdown(self) -> None:
        self.refresh_timer.stop()
        super().shutdown()


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
