"""The "find out" window: statistics of one node or the whole cluster over the visible span (HOWTO 10.7.2)."""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QGroupBox,
    QHeaderView,
    QLabel,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from omanalyzer.data import Stats, fmt_bytes, fmt_duration, fmt_pct, fmt_time

SORT_ROLE = Qt.ItemDataRole.UserRole + 1


def _item(text: str, sort: Any = None, tip: str = "", right: bool = False) -> QStandardItem:
    it = QStandardItem(text)
    it.setEditable(False)
    it.setData(text if sort is None else sort, SORT_ROLE)
    if tip:
        it.setToolTip(tip)
    if right:
        it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return it


def _table(model: QStandardItemModel, parent: QWidget) -> QTableView:
    proxy = QSortFilterProxyModel(parent)
    proxy.setSourceModel(model)
    proxy.setSortRole(SORT_ROLE)
    view = QTableView(parent)
    view.setModel(proxy)
    view.setSortingEnabled(True)
    view.setAlternatingRowColors(True)
    view.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
    view.verticalHeader().hide()
    view.setWordWrap(False)
    view.setEditTriggers(QTableView.EditTrigger.NoEditTriggers)
    view.horizontalHeader().setStretchLastSection(True)
    view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    view.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
    return view


class StatsWindow(QDialog):
    """Opens at once with "computing…"; `show_stats` fills it when the worker is done."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Find out: {title}")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.stats: Stats | None = None
        lay = QVBoxLayout(self)
        self.heading = QLabel(f"<b>{title}</b> — computing…")
        self.heading.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.heading)
        self.figures = QGroupBox("Figures for the visible span")
        self.grid = QGridLayout(self.figures)
        self.grid.setColumnStretch(1, 1)
        self.grid.setColumnStretch(3, 1)
        self.grid.setHorizontalSpacing(16)
        lay.addWidget(self.figures)
        self.values: dict[str, QLabel] = {}
        self.nodes_box = QGroupBox("Nodes")
        self.nodes_model = QStandardItemModel(0, 8, self)
        self.nodes_model.setHorizontalHeaderLabels(
            ["Node", "Avg load", "Min", "Max", "Load > 75 %", "Avg memory", "Time up", "Migrations in / out"])
        nl = QVBoxLayout(self.nodes_box)
        self.nodes_view = _table(self.nodes_model, self)
        nl.addWidget(self.nodes_view)
        lay.addWidget(self.nodes_box, 2)
        self.busy_box = QGroupBox("Busiest processes (CPU time in the span)")
        self.busy_model = QStandardItemModel(0, 7, self)
        self.busy_model.setHorizontalHeaderLabels(["Node", "PID", "User", "CPU time", "Avg CPU", "Peak RSS", "Command"])
        bl = QVBoxLayout(self.busy_box)
        self.busy_view = _table(self.busy_model, self)
        bl.addWidget(self.busy_view)
        lay.addWidget(self.busy_box, 3)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        lay.addWidget(buttons)
        self.resize(860, 640)

    def _row(self, r: int, c: int, name: str, value: str, tip: str = "") -> None:
        k = QLabel(name)
        v = QLabel(value)
        v.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        if tip:
            k.setToolTip(tip)
            v.setToolTip(tip)
        self.grid.addWidget(k, r, c)
        self.grid.addWidget(v, r, c + 1)
        self.values[name] = v

    def show_error(self, message: str) -> None:
        self.heading.setText(f"{self.heading.text().split(' — ')[0]} — could not compute: {message}")

    def show_stats(self, st: Stats, names: dict[int, str]) -> None:
        self.stats = st
        t = st.total
        span = st.t1 - st.t0
        who = "whole cluster" if st.node is None else names.get(st.node, str(st.node))
        self.heading.setText(f"<b>{who}</b> — {fmt_time(st.t0)} to {fmt_time(st.t1)} ({fmt_duration(span)})")
        nodes = 1 if st.node is not None else max(len(st.per_node), 1)
        possible = span * nodes
        up_pct = min(100.0, 100.0 * t.up_seconds / possible) if possible > 0 else math.nan
        self._row(0, 0, "Average load", fmt_pct(t.load_avg), "mean of every sample the node was up")
        self._row(1, 0, "Minimum load", fmt_pct(t.load_min))
        self._row(2, 0, "Maximum load", fmt_pct(t.load_max))
        self._row(3, 0, "Load above 75 %", fmt_duration(t.high_seconds), "time the load line is drawn red")
        mem_tip = "used memory; the whole cluster: the sum of the nodes' figures"
        self._row(0, 2, "Average memory", f"{fmt_bytes(t.mem_avg)} of {fmt_bytes(t.mem_total)}", mem_tip)
        self._row(1, 2, "Minimum memory", fmt_bytes(t.mem_min), mem_tip)
        self._row(2, 2, "Maximum memory", fmt_bytes(t.mem_max), mem_tip)
        self._row(3, 2, "Time up", f"{fmt_duration(t.up_seconds)} ({fmt_pct(up_pct)})"
                  + (f", down {t.down_periods}×" if t.down_periods else ""),
                  "samples with the node up × the sampling interval" + ("" if st.node is not None else ", summed"))
        if st.node is None:
            mig = f"{t.mig_in} moved" + (f", {t.mig_failed} failed" if t.mig_failed else "")
        else:
            mig = f"{t.mig_in} in, {t.mig_out} out" + (f", {t.mig_failed} failed" if t.mig_failed else "")
        self._row(4, 0, "Migrations", mig, "process migrations recorded by omcollector in the span")
        self._row(4, 2, "Samples", f"{t.samples} (every {st.interval:g} s)")
        self.nodes_box.setVisible(st.node is None)
        self.nodes_model.setRowCount(0)
        for ns in st.per_node:
            self.nodes_model.appendRow([
                _item(ns.label, ns.node),
                _item(fmt_pct(ns.load_avg), _num(ns.load_avg), right=True),
                _item(fmt_pct(ns.load_min), _num(ns.load_min), right=True),
                _item(fmt_pct(ns.load_max), _num(ns.load_max), right=True),
                _item(fmt_duration(ns.high_seconds), ns.high_seconds, right=True),
                _item(fmt_bytes(ns.mem_avg), _num(ns.mem_avg), right=True),
                _item(fmt_duration(ns.up_seconds), ns.up_seconds, right=True),
                _item(f"{ns.mig_in} / {ns.mig_out}" + (f" ({ns.mig_failed} failed)" if ns.mig_failed else ""),
                      ns.mig_in + ns.mig_out, right=True),
            ])
        self.busy_model.setRowCount(0)
        for b in st.busiest:
            p = b.proc
            a_ = max(st.t0, p.appeared)
            b_ = min(st.t1, p.vanished if p.vanished is not None else st.t1)
            avg = 100.0 * b.cpu_seconds / (b_ - a_) if b_ > a_ else math.nan
            self.busy_model.appendRow([
                _item(names.get(p.node, str(p.node)), p.node),
                _item(str(p.pid), p.pid, right=True),
                _item(p.user, p.user),
                _item(fmt_duration(b.cpu_seconds), b.cpu_seconds, right=True),
                _item(fmt_pct(avg), _num(avg), right=True),
                _item(fmt_bytes(b.peak_rss), b.peak_rss, right=True),
                _item(p.cmd, p.cmd, tip=p.cmd),
            ])
        if not st.busiest:
            self.busy_box.setTitle("Busiest processes: none recorded in the span")


def _num(v: float) -> float:
    return -1.0 if math.isnan(v) else v
