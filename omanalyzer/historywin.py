"""The omhistory window (HOWTO 10.7.4): which processes ran on which node at time T.

A time slider over a 12 h window of the history (start shown top left), a node filter and a text
filter (QSortFilterProxyModel over a QAbstractTableModel); selecting a process shows its CPU and
memory over its whole recorded life and its migrations; double-clicking a migration jumps there.
Every read goes through the window's reader thread; while the slider moves, only the newest
time is queried (one read in flight, the latest request waiting).
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QKeySequence, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QSlider,
    QSplitter,
    QStackedWidget,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from omanalyzer.common import HistoryInfo, HistoryWindowBase, plot_colors
from omanalyzer.data import MIGRATION_OK, fmt_bytes, fmt_duration, fmt_time
from omanalyzer.plots import TimeAxis
from omview.core.history import HistoryReader, MigrationRecord, ProcLife, ProcRecord, ProcSnapshot, ProcTimeline

WINDOW = 12 * 3600.0
#: The slider's reads cover this many seconds on each side of the moment asked for: the steps
#: inside are answered from memory (`ProcTimeline.at`), not by a query each.
READ_AROUND = 900.0
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
KEY_ROLE = Qt.ItemDataRole.UserRole + 2
Index = QModelIndex | QPersistentModelIndex

COLUMNS = ("Node", "PID", "User", "CPU", "Memory", "Started", "Running for", "Command")
COL_NODE, COL_PID, COL_USER, COL_CPU, COL_MEM, COL_STARTED, COL_AGE, COL_CMD = range(len(COLUMNS))


class ProcModel(QAbstractTableModel):
    """The processes running at one moment, as arrays over a `ProcTimeline`'s processes.

    A slider step changes the moment, rarely the set of processes: then only the cpu/rss arrays are
    replaced and one dataChanged covers the changing columns (text is made when a cell is painted,
    for the ~30 rows on screen). Sorted here with numpy on key arrays (the proxy's own sort would
    call data() twice per comparison); a new set of processes is one model reset.
    """

    def __init__(self) -> None:
        super().__init__()
        self.names: dict[int, str] = {}
        self.at = 0.0
        self.sort_column = COL_CPU
        self.sort_order = Qt.SortOrder.DescendingOrder
        self.clear()

    def clear(self) -> None:
        self.beginResetModel()
        self.timeline: ProcTimeline | None = None
        self.index_ = np.empty(0, dtype=np.int64)  # which timeline processes, in (node, pid) order
        self.cpu = np.empty(0)
        self.rss = np.empty(0, dtype=np.int64)
        self.order = np.empty(0, dtype=np.int64)  # display row → position in index_
        self._text: dict[int, tuple[str, ...]] = {}
        self._search: dict[int, str] = {}
        self._node = self._pid = self._started = np.empty(0)
        self.endResetModel()

    def set_snapshot(self, tl: ProcTimeline, snap: ProcSnapshot) -> None:
        """Show `snap`. The same processes as before (most steps of the slider): values replaced in
        place, so the view keeps its state and the proxy does not filter again; else a reset."""
        if tl is self.timeline and np.array_equal(snap.index, self.index_):
            moved = not (np.array_equal(snap.cpu, self.cpu, equal_nan=True) and np.array_equal(snap.rss, self.rss))
            self.at, self.cpu, self.rss = snap.t, snap.cpu, snap.rss
            if moved and self.sort_column in (COL_CPU, COL_MEM):
                self.sort(self.sort_column, self.sort_order)
            if len(self.order):
                self.dataChanged.emit(self.index(0, COL_CPU), self.index(len(self.order) - 1, COL_AGE))
            return
        self.beginResetModel()
        if tl is not self.timeline:
            self.timeline = tl
            self._text, self._search = {}, {}
            self._node = np.array([p.node for p in tl.procs], dtype=np.int64)
            self._pid = np.array([p.pid for p in tl.procs], dtype=np.int64)
            self._started = np.array([p.started or p.appeared for p in tl.procs], dtype=np.float64)
        self.at, self.index_, self.cpu, self.rss = snap.t, snap.index, snap.cpu, snap.rss
        self.order = self._sorted(self.sort_column, self.sort_order)
        self.endResetModel()

    def _key(self, column: int) -> Any:
        """The sort key of every snapshot position: an array, or a list for the text columns."""
        idx = self.index_
        assert self.timeline is not None
        if column == COL_NODE:
            return self._node[idx]
        if column == COL_PID:
            return self._pid[idx]
        if column == COL_CPU:
            return np.where(np.isnan(self.cpu), -1.0, self.cpu)
        if column == COL_MEM:
            return self.rss
        if column in (COL_STARTED, COL_AGE):
            started = self._started[idx]
            return started if column == COL_STARTED else -started  # age grows as start recedes
        procs = self.timeline.procs
        return [procs[i].user if column == COL_USER else procs[i].cmd for i in idx]

    def _sorted(self, column: int, order: Qt.SortOrder) -> npt.NDArray[np.int64]:
        n = len(self.index_)
        if not 0 <= column < len(COLUMNS) or n == 0:
            return np.arange(n)
        key = self._key(column)
        desc = order == Qt.SortOrder.DescendingOrder
        if isinstance(key, list):
            return np.array(sorted(range(n), key=key.__getitem__, reverse=desc), dtype=np.int64)
        return np.argsort(-key if desc else key, kind="stable")

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self.layoutAboutToBeChanged.emit()
        old = self.order
        self.sort_column, self.sort_order = column, order
        self.order = self._sorted(column, order)
        where = np.empty(len(self.order), dtype=np.int64)
        where[self.order] = np.arange(len(self.order))
        for idx in self.persistentIndexList():
            self.changePersistentIndex(idx, self.index(int(where[old[idx.row()]]), idx.column()))
        self.layoutChanged.emit()

    # ------------------------------------------------------------ rows
    def proc_index(self, row: int) -> int:
        return int(self.index_[self.order[row]])

    def record(self, row: int) -> ProcRecord:
        """The process of a row with its cpu/rss at the moment shown (a copy)."""
        assert self.timeline is not None
        pos = int(self.order[row])
        rec = dataclasses.replace(self.timeline.procs[int(self.index_[pos])])
        rec.cpu = None if math.isnan(self.cpu[pos]) else float(self.cpu[pos])
        rec.rss = None if self.rss[pos] < 0 else int(self.rss[pos])
        return rec

    def key(self, row: int) -> tuple[int, int, int]:
        assert self.timeline is not None
        p = self.timeline.procs[self.proc_index(row)]
        return (p.node, p.pid, p.start)

    def search(self, row: int) -> str:
        i = self.proc_index(row)
        text = self._search.get(i)
        if text is None:
            assert self.timeline is not None
            r = self.timeline.procs[i]
            text = self._search[i] = f"{self.names.get(r.node, r.node)}\t{r.pid}\t{r.user}\t{r.cmd}".lower()
        return text

    def node_of(self, row: int) -> int:
        return int(self._node[self.proc_index(row)])

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.order)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: N802
        if orientation == Qt.Orientation.Horizontal:
            if role == Qt.ItemDataRole.DisplayRole:
                return COLUMNS[section]
            if role == Qt.ItemDataRole.ToolTipRole:
                return {COL_CPU: "CPU use at that time, percent of one CPU",
                        COL_MEM: "resident memory at that time",
                        COL_AGE: "how long the process had been running at that time"}.get(section)
        return None

    def _static(self, i: int) -> tuple[str, ...]:
        text = self._text.get(i)
        if text is None:
            assert self.timeline is not None
            r = self.timeline.procs[i]
            started = r.started or r.appeared
            text = self._text[i] = (self.names.get(r.node, str(r.node)), str(r.pid), r.user,
                                    time.strftime("%H:%M:%S", time.localtime(started)), r.cmd)
        return text

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, col = index.row(), index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            pos = int(self.order[row])
            if col == COL_CPU:
                c = self.cpu[pos]
                return "" if math.isnan(c) else f"{c:.1f} %"
            if col == COL_MEM:
                m = int(self.rss[pos])
                return "" if m < 0 else fmt_bytes(m)
            i = int(self.index_[pos])
            if col == COL_AGE:
                return fmt_duration(max(0.0, self.at - float(self._started[i])))
            return self._static(i)[_STATIC[col]]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT if col in (COL_PID, COL_CPU, COL_MEM, COL_AGE) else None
        if role == KEY_ROLE:
            return self.key(row)
        if role == SORT_ROLE:
            key = self._key(col)
            v = key[int(self.order[row])]
            return v.item() if isinstance(v, np.generic) else v
        if role == Qt.ItemDataRole.ToolTipRole and col == COL_CMD:
            return self._static(self.proc_index(row))[4]
        return None

    def row_of(self, key: tuple[int, int, int]) -> int:
        if self.timeline is None:
            return -1
        node, pid, start = key
        for pos in np.flatnonzero((self._node[self.index_] == node) & (self._pid[self.index_] == pid)):
            if self.timeline.procs[int(self.index_[pos])].start == start:
                return int(np.flatnonzero(self.order == pos)[0])
        return -1

    def row_of_pid(self, node: int, pid: int) -> int:
        """The row of a process by node and PID (after a migration its start time may differ)."""
        hit = np.flatnonzero((self._node[self.index_] == node) & (self._pid[self.index_] == pid))
        return int(np.flatnonzero(self.order == hit[0])[0]) if len(hit) else -1


_STATIC = {COL_NODE: 0, COL_PID: 1, COL_USER: 2, COL_STARTED: 3, COL_CMD: 4}
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)


class ProcProxy(QSortFilterProxyModel):
    """Node filter and text filter (any of node, PID, user, command; case-insensitive). Sorting is
    passed to the model (see ProcModel): the proxy keeps the model's order."""

    def __init__(self) -> None:
        super().__init__()
        self.node: int | None = None
        self.text = ""
        # what the filter looks at (node, PID, user, command) never changes for a row: values
        # changing in place must not make the proxy filter 2000 rows again
        self.setDynamicSortFilter(False)

    def set_filters(self, node: int | None, text: str) -> None:
        self.beginFilterChange()
        self.node, self.text = node, text.strip().lower()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        src = self.sourceModel()
        if src is not None:
            src.sort(column, order)

    def filterAcceptsRow(self, row: int, parent: Index) -> bool:  # noqa: N802
        src = self.sourceModel()
        assert isinstance(src, ProcModel)
        if self.node is not None and src.node_of(row) != self.node:
            return False
        return not self.text or self.text in src.search(row)


class HistoryWindow(HistoryWindowBase):
    APP = "omhistory"

    def __init__(self, history_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(history_dir, parent)
        self.setWindowTitle("omhistory")
        self.info: HistoryInfo | None = None
        self.window_start = 0.0
        self.at = 0.0
        self._in_flight = False
        self._queued: float | None = None
        self.reads = 0
        self.selected_key: tuple[int, int, int] | None = None
        self._select_after: tuple[int, int] | None = None  # (node, pid) to select after the next load
        self.life: ProcLife | None = None
        self.proc_migrations: list[MigrationRecord] = []
        self.file_menu.addSeparator()
        self._action(self.file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(6, 4, 6, 4)
        self.header = QLabel("no history open")
        self.header.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.header)
        row = QHBoxLayout()
        self.prev_win = QToolButton()
        self.prev_win.setText("◀◀")
        self.prev_win.setToolTip("The 12 hours before")
        self.prev_win.clicked.connect(lambda: self.move_window(-1))
        self.next_win = QToolButton()
        self.next_win.setText("▶▶")
        self.next_win.setToolTip("The 12 hours after")
        self.next_win.clicked.connect(lambda: self.move_window(1))
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setToolTip("The time whose process list is shown. ←/→: one sample, PgUp/PgDn: 10 minutes")
        self.slider.setPageStep(600)
        self.slider.valueChanged.connect(self._slider_moved)
        self.time_label = QLabel("–")
        f = self.time_label.font()
        f.setBold(True)
        self.time_label.setFont(f)
        self.time_label.setMinimumWidth(200)
        row.addWidget(self.prev_win)
        row.addWidget(self.slider, 1)
        row.addWidget(self.next_win)
        row.addWidget(self.time_label)
        lay.addLayout(row)
        frow = QHBoxLayout()
        frow.addWidget(QLabel("Node"))
        self.node_box = QComboBox()
        self.node_box.setToolTip("Show the processes of one node or of all")
        self.node_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.node_box.currentIndexChanged.connect(self._filters_changed)
        frow.addWidget(self.node_box)
        frow.addWidget(QLabel("Filter"))
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("command, user, PID or node…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setToolTip("Only the processes whose command, user, PID or node contains this text")
        self.filter_edit.textChanged.connect(self._filters_changed)
        frow.addWidget(self.filter_edit, 1)
        self.count_label = QLabel("")
        frow.addWidget(self.count_label)
        lay.addLayout(frow)
        split = QSplitter(Qt.Orientation.Vertical)
        self.model = ProcModel()
        self.proxy = ProcProxy()
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(COL_CPU, Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        hh = self.table.horizontalHeader()
        hh.setStretchLastSection(True)
        for c, w in ((COL_NODE, 90), (COL_PID, 70), (COL_USER, 80), (COL_CPU, 70), (COL_MEM, 90), (COL_STARTED, 80),
                     (COL_AGE, 100)):
            self.table.setColumnWidth(c, w)
        self.table.selectionModel().currentRowChanged.connect(self._current_changed)
        split.addWidget(self.table)
        detail = QWidget()
        dl = QVBoxLayout(detail)
        dl.setContentsMargins(0, 0, 0, 0)
        self.proc_label = QLabel("")
        self.proc_label.setWordWrap(True)
        self.proc_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        dl.addWidget(self.proc_label)
        dsplit = QSplitter(Qt.Orientation.Horizontal)
        self.life_plot = pg.GraphicsLayoutWidget()
        self.cpu_plot = self.life_plot.addPlot(row=0, col=0, axisItems={"bottom": TimeAxis(orientation="bottom")})
        self.mem_plot = self.life_plot.addPlot(row=1, col=0, axisItems={"bottom": TimeAxis(orientation="bottom")})
        self.mem_plot.setXLink(self.cpu_plot)
        self.cpu_plot.setLabel("left", "CPU %")
        self.mem_plot.setLabel("left", "RSS MiB")
        for p in (self.cpu_plot, self.mem_plot):
            p.hideButtons()
            p.setMenuEnabled(False)
            p.showGrid(x=True, y=True, alpha=0.2)
            p.getViewBox().setMouseEnabled(x=True, y=False)
        self.cpu_curve = self.cpu_plot.plot(stepMode="center")
        self.mem_curve = self.mem_plot.plot(stepMode="center")
        self.cpu_now = pg.InfiniteLine(angle=90, movable=False)
        self.mem_now = pg.InfiniteLine(angle=90, movable=False)
        self.cpu_plot.addItem(self.cpu_now)
        self.mem_plot.addItem(self.mem_now)
        self.mig_lines: list[pg.InfiniteLine] = []
        self.life_plot.setToolTip("CPU and resident memory of the selected process over its recorded life; "
                                  "the vertical line is the slider's time")
        dsplit.addWidget(self.life_plot)
        self.mig_model = QStandardItemModel(0, 5, self)
        self.mig_model.setHorizontalHeaderLabels(["Time", "From → to", "Result", "Frozen", "Reason"])
        self.mig_view = QTableView()
        self.mig_view.setModel(self.mig_model)
        self.mig_view.verticalHeader().hide()
        self.mig_view.setWordWrap(False)
        self.mig_view.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.mig_view.setEditTriggers(QTableView.EditTrigger.NoEditTriggers)
        self.mig_view.horizontalHeader().setStretchLastSection(True)
        self.mig_view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.mig_view.setToolTip("Migrations of this process; double-click or Enter: go to that moment")
        self.mig_view.activated.connect(self._migration_activated)
        dsplit.addWidget(self.mig_view)
        dsplit.setSizes([700, 500])
        self.detail_stack = QStackedWidget()
        hint = QLabel("Select a process above: its CPU and memory over its whole life and its migrations show here.")
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint.setEnabled(False)
        self.detail_stack.addWidget(hint)
        self.detail_stack.addWidget(dsplit)
        dl.addWidget(self.detail_stack, 1)
        split.addWidget(detail)
        split.setSizes([430, 260])
        lay.addWidget(split, 1)
        self.setCentralWidget(central)
        self._apply_colors()
        self._set_enabled(False)
        self.resize(1200, 760)

    def _apply_colors(self) -> None:
        c = plot_colors(self.palette())
        self.life_plot.setBackground(c.back)
        for p in (self.cpu_plot, self.mem_plot):
            for name in ("left", "bottom"):
                p.getAxis(name).setPen(pg.mkPen(c.grid))
                p.getAxis(name).setTextPen(pg.mkPen(c.fore))
        self.cpu_curve.setPen(pg.mkPen(c.fore, width=1.5))
        self.mem_curve.setPen(pg.mkPen(c.memory, width=1.5))
        for line in (self.cpu_now, self.mem_now):
            line.setPen(pg.mkPen(c.checkpoint, width=1, style=Qt.PenStyle.DashLine))
        self.colors = c

    def _set_enabled(self, on: bool) -> None:
        for w in (self.slider, self.node_box, self.filter_edit):
            w.setEnabled(on)
        self.prev_win.setEnabled(False)
        self.next_win.setEnabled(False)

    # ------------------------------------------------------------ opening
    def history_opened(self, info: HistoryInfo) -> None:
        self.info = info
        self.model.names = {n.id: n.label for n in info.nodes}
        self.node_box.blockSignals(True)
        self.node_box.clear()
        self.node_box.addItem("All nodes", None)
        for n in info.nodes:
            self.node_box.addItem(n.label, n.id)
        self.node_box.blockSignals(False)
        self.model.clear()
        self._in_flight, self._queued = False, None  # a read of the previous history is dropped unanswered
        self._clear_detail()
        if info.span is None:
            self._set_enabled(False)
            self.header.setText(f"{info.source.title}: nothing recorded yet")
            return
        self._set_enabled(True)
        lo, hi = info.span
        # the last 12 h window, like openMosixhistory's 12 hour view; T starts at the end
        self.window_start = max(lo, hi - WINDOW)
        self._setup_slider()
        self.set_time(hi)

    def _setup_slider(self) -> None:
        assert self.info and self.info.span
        lo, hi = self.info.span
        width = min(WINDOW, hi - self.window_start)
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(1, int(math.ceil(width))))
        self.slider.setSingleStep(max(1, int(round(self.info.interval))))
        self.slider.blockSignals(False)
        self.prev_win.setEnabled(self.window_start > lo + 1)
        self.next_win.setEnabled(self.window_start + WINDOW < hi - 1)
        kind = "live history" if self.info.source.live else "backup"
        self.header.setText(
            f"<b>Start: {fmt_time(self.window_start)}</b> &nbsp;·&nbsp; {fmt_duration(width)} view to "
            f"{fmt_time(self.window_start + width)} &nbsp;·&nbsp; {kind} {self.info.source.folder}")

    def move_window(self, direction: int) -> None:
        if not self.info or not self.info.span:
            return
        lo, hi = self.info.span
        self.window_start = min(max(lo, self.window_start + direction * WINDOW), max(lo, hi - WINDOW))
        self._setup_slider()
        self.set_time(self.window_start + (0 if direction > 0 else min(WINDOW, hi - self.window_start)))

    # ------------------------------------------------------------ time
    def set_time(self, t: float) -> None:
        """Show the processes at `t` (moves the 12 h window if needed)."""
        if not self.info or not self.info.span:
            return
        lo, hi = self.info.span
        t = min(max(t, lo), hi)
        if not self.window_start <= t <= self.window_start + WINDOW:
            self.window_start = max(lo, min(t - WINDOW / 2, hi - WINDOW))
            self._setup_slider()
        value = int(math.ceil(t - self.window_start - 1e-6))
        self.at = t
        self.slider.blockSignals(True)
        self.slider.setValue(value)
        self.slider.blockSignals(False)
        self._time_changed()

    def _slider_moved(self, value: int) -> None:
        self.at = self.window_start + value
        self._time_changed()

    def _time_changed(self) -> None:
        self.time_label.setText(fmt_time(self.at))
        self.time_label.setToolTip(f"{self.at - self.window_start:.0f} s after the start of the view")
        for line in (self.cpu_now, self.mem_now):
            line.setValue(self.at)
        self.query(self.at)

    def query(self, t: float) -> None:
        """Show the processes at `t`: from the timeline in memory when it covers t (a slider step),
        else read the timeline around t on the reader thread (one read in flight, the newest waits)."""
        if self.doc.reader is None:
            return
        node = self.node_box.currentData()
        tl = self.model.timeline
        if tl is not None and tl.covers(t, node) and not self._in_flight:
            self.reads += 1
            self._show(tl, tl.at(t))
            return
        if self._in_flight:
            self._queued = t
            return
        self._in_flight = True
        end = self.info.span[1] if self.info and self.info.span else t
        lo, hi = t - READ_AROUND, max(t, min(t + READ_AROUND, end))

        def work(r: HistoryReader) -> tuple[ProcTimeline, ProcSnapshot]:
            timeline = r.process_timeline(lo, hi, node)
            return timeline, timeline.at(t)

        def done(result: tuple[ProcTimeline, ProcSnapshot]) -> None:
            self.reads += 1
            self._in_flight = False
            if self._queued is not None:
                q, self._queued = self._queued, None
                if not result[0].covers(q, self.node_box.currentData()):
                    self.query(q)
                    return
                result = (result[0], result[0].at(q))
            self._show(*result)

        def failed(exc: BaseException) -> None:
            self._in_flight = False
            from omanalyzer.common import describe

            self.show_error("Cannot read the history", describe(exc))

        self.doc.read(work, done, failed)

    @property
    def idle(self) -> bool:
        return not self._in_flight and self._queued is None

    def _show(self, tl: ProcTimeline, snap: ProcSnapshot) -> None:
        key = self.selected_key
        self.model.set_snapshot(tl, snap)
        self._update_count()
        src = -1
        if self._select_after is not None:
            node, pid = self._select_after
            self._select_after = None
            src = self.model.row_of_pid(node, pid)
        if src < 0 and key is not None:
            src = self.model.row_of(key)
        if src >= 0:
            idx = self.proxy.mapFromSource(self.model.index(src, 0))
            if idx.isValid() and idx != self.table.selectionModel().currentIndex():
                self.table.selectionModel().setCurrentIndex(
                    idx, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
                self.table.scrollTo(idx)

    def _update_count(self) -> None:
        shown, total = self.proxy.rowCount(), self.model.rowCount()
        where = self.node_box.currentText() if self.node_box.currentData() is not None else "all nodes"
        self.count_label.setText(f"{shown} of {total} processes on {where}" if shown != total
                                 else f"{total} processes on {where}")

    def _filters_changed(self, *_: Any) -> None:
        node = self.node_box.currentData()
        self.proxy.set_filters(node, self.filter_edit.text())
        if self.sender() is self.node_box:
            self.query(self.at)  # a node's snapshot alone is a smaller read
        self._update_count()

    # ------------------------------------------------------------ the selected process
    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid():
            return
        key = current.data(KEY_ROLE)
        if key is None or key == self.selected_key:
            return
        self.selected_key = key
        node, pid, start = key

        def work(r: HistoryReader) -> tuple[ProcLife | None, list[MigrationRecord]]:
            life = r.process_life(node, pid, start)
            migs = [m for m in r.migrations() if m.pid == pid and (not m.start or m.start == start)
                    and node in (m.src, m.dst)]
            return life, migs

        self.doc.read(work, lambda res: self._show_life(key, *res))

    def _clear_detail(self) -> None:
        self.selected_key = None
        self.life = None
        self.cpu_curve.setData([], [])
        self.mem_curve.setData([], [])
        self.mig_model.setRowCount(0)
        for line in self.mig_lines:
            self.cpu_plot.removeItem(line)
        self.mig_lines = []
        self.proc_label.setText("")
        self.detail_stack.setCurrentIndex(0)

    def _show_life(self, key: tuple[int, int, int], life: ProcLife | None, migs: list[MigrationRecord]) -> None:
        if key != self.selected_key:
            return
        self.life = life
        self.proc_migrations = migs
        self.detail_stack.setCurrentIndex(1)
        names = self.model.names
        if life is None:
            self.proc_label.setText("This process is not in the history file any more.")
            return
        p = life.proc
        end = p.vanished
        stop = end if end is not None else (self.info.span[1] if self.info and self.info.span else p.appeared)
        lived = f"ended {fmt_time(end)}" if end is not None else "still running at the end of this history"
        self.proc_label.setText(
            f"<b>{p.cmd or '?'}</b> — PID {p.pid} on {names.get(p.node, p.node)}, user {p.user or '?'}; "
            f"recorded from {fmt_time(p.appeared)}, {lived} ({fmt_duration(stop - p.appeared)}); "
            f"{len(migs)} migration{'s' if len(migs) != 1 else ''}")
        if len(life.t):
            # step lines: a value holds until the next point; close at the end of the life
            t = np.r_[life.t, max(stop, life.t[-1])]
            self.cpu_curve.setData(t, life.cpu)
            self.mem_curve.setData(t, life.rss / (1 << 20))
            self.cpu_plot.setYRange(0, max(100.0, float(np.nanmax(life.cpu)) * 1.05), padding=0)
            self.mem_plot.setYRange(0, max(1.0, float(np.nanmax(life.rss)) / (1 << 20) * 1.1), padding=0)
        else:
            self.cpu_curve.setData([], [])
            self.mem_curve.setData([], [])
        # the life, and the migrations even when recorded outside it (a process restored elsewhere)
        x0 = min([p.appeared, *(m.t for m in migs)])
        x1 = max([stop, p.appeared + 10, *(m.t for m in migs)])
        self.cpu_plot.setXRange(x0, x1, padding=0.02)
        for line in self.mig_lines:
            self.cpu_plot.removeItem(line)
        self.mig_lines = []
        self.mig_model.setRowCount(0)
        for m in migs:
            ok = not m.result or m.result.lower() in MIGRATION_OK
            items = [QStandardItem(fmt_time(m.t)),
                     QStandardItem(f"{names.get(m.src, m.src)} → {names.get(m.dst, m.dst)}"),
                     QStandardItem(m.result or "?"),
                     QStandardItem("" if m.frozen is None else f"{m.frozen:.2f} s"),
                     QStandardItem(m.reason)]
            for it in items:
                it.setData(m.t, SORT_ROLE)
                it.setToolTip("double-click: go to this moment")
            self.mig_model.appendRow(items)
            line = pg.InfiniteLine(pos=m.t, angle=90, movable=False,
                                   pen=pg.mkPen(self.colors.checkpoint if ok else self.colors.high, width=1.5),
                                   label="→" + str(names.get(m.dst, m.dst)),
                                   labelOpts={"position": 0.85, "color": self.colors.fore, "fill": self.colors.back})
            line.setToolTip(f"{fmt_time(m.t)}: {names.get(m.src, m.src)} → {names.get(m.dst, m.dst)}, "
                            f"{m.result or '?'}")
            self.cpu_plot.addItem(line)
            self.mig_lines.append(line)
        self.mig_view.resizeColumnsToContents()

    def _migration_activated(self, index: QModelIndex) -> None:
        if 0 <= index.row() < len(self.proc_migrations):
            self.jump_to_migration(self.proc_migrations[index.row()])

    def jump_to_migration(self, m: MigrationRecord) -> None:
        """Go to the moment just after the migration, all nodes, the process selected on its target."""
        self._select_after = (m.dst, m.pid) if (m.result or "ok").lower() in MIGRATION_OK else (m.src, m.pid)
        if self.node_box.currentIndex() != 0:
            self.node_box.blockSignals(True)
            self.node_box.setCurrentIndex(0)
            self.node_box.blockSignals(False)
            self.proxy.set_filters(None, self.filter_edit.text())
        self.selected_key = None
        self.set_time(m.t + 1.0)
