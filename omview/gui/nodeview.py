"""The node table view: rows painted in one pass, click-and-drag on the painted slider, keys.

The view paints its rows itself (NodePainter, see delegates.py) instead of asking a delegate
per cell; delegates remain for the speed editor and the address button's click. A click on a
painted slider opens the real editor under the pointer and keeps feeding it the drag, so one
gesture sets a speed as it did in openMosixview, although only one editor widget ever exists.
Enter or Space on an address cell opens the node dialog; F2 or Enter on a speed cell starts
editing; arrow keys move between cells.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QModelIndex, Qt, Signal
from PySide6.QtGui import QKeyEvent, QMouseEvent, QPainter, QPaintEvent
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from omview.gui.delegates import ButtonDelegate, CellDelegate, NodePainter, SpeedDelegate, SpeedEditor
from omview.gui.nodemodel import (
    COL_ADDRESS,
    COL_AVAILABLE,
    COL_CPUS,
    COL_FLAGS,
    COL_LOAD,
    COL_MEMORY,
    COL_NODE,
    COL_SPEED,
    NODE_ID_ROLE,
)

#: Column widths in pixels at the default font: wide enough for "255.255.255.255" and "50000".
WIDTHS = {
    COL_NODE: 74,
    COL_ADDRESS: 140,
    COL_SPEED: 230,
    COL_LOAD: 130,
    COL_MEMORY: 130,
    COL_AVAILABLE: 86,
    COL_CPUS: 52,
    COL_FLAGS: 140,
}


class NodeTableView(QTableView):
    nodeActivated = Signal(int)  # node id (0 = all nodes): open its dialog

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.painter = NodePainter()
        self.cells = CellDelegate(self.painter, self)
        self.buttons = ButtonDelegate(self.painter, self)
        self.speed = SpeedDelegate(self.painter, self)
        self.setItemDelegate(self.cells)
        self.setItemDelegateForColumn(COL_ADDRESS, self.buttons)
        self.setItemDelegateForColumn(COL_SPEED, self.speed)
        self.buttons.clicked.connect(self._button_clicked)
        self.hover_cell: tuple[int, int] | None = None  # (row, column) under the pointer: the button lights up
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectItems)
        self.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed)
        self.setAlternatingRowColors(True)
        self.setShowGrid(False)
        self.setMouseTracking(True)
        self.setWordWrap(False)
        self.setTabKeyNavigation(False)  # Tab leaves the table (filter, toolbar); arrows move in it
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.verticalHeader().setDefaultSectionSize(30)
        self.setSortingEnabled(True)
        self.setToolTip("")
        self.setAccessibleName("Cluster nodes")
        # a resized column makes every cached picture of it the wrong size
        self.horizontalHeader().sectionResized.connect(lambda *_: self.painter.clear())
        self._drag: SpeedEditor | None = None

    def setModel(self, model: Any) -> None:
        super().setModel(model)
        h = self.horizontalHeader()
        h.setHighlightSections(False)
        h.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        h.setStretchLastSection(True)
        h.setMinimumSectionSize(40)
        fm = self.fontMetrics()
        for col, width in WIDTHS.items():
            self.setColumnWidth(col, width)
        # the all-nodes lamp says "200/200": room for the widest count of this cluster
        count = max(1, model.rowCount() - 1) if model is not None else 1
        lamp_text = fm.horizontalAdvance(f"{count}/{count}") if hasattr(fm, "horizontalAdvance") else 40
        self.setColumnWidth(COL_NODE, max(WIDTHS[COL_NODE], lamp_text + 40))
        self.sortByColumn(COL_NODE, Qt.SortOrder.AscendingOrder)

    def paintEvent(self, event: QPaintEvent) -> None:
        region = event.region()
        # a scattered region (rows of a few nodes) is painted rectangle by rectangle; beyond a few
        # rectangles their bounding box costs less than the per-rectangle setup
        areas = list(region) if region.rectCount() <= 8 else [region.boundingRect()]
        painter = QPainter(self.viewport())
        try:
            self.painter.paint_view(painter, self, areas)
        finally:
            painter.end()

    def dataChanged(self, top_left: QModelIndex, bottom_right: QModelIndex, roles: Any = ()) -> None:
        """Repaint the changed cells that are on screen. Qt does so too, but gives up and repaints the
        whole viewport as soon as the range reaches beyond it, which a tick of 200 nodes always does;
        while an editor is open Qt's way runs, as it also refreshes the editor."""
        if self.state() == QAbstractItemView.State.EditingState or top_left == bottom_right:
            super().dataChanged(top_left, bottom_right, roles)
            return
        vp = self.viewport()
        first = max(top_left.row(), max(0, self.rowAt(0)))
        bottom = self.rowAt(vp.height() - 1)
        last = min(bottom_right.row(), bottom if bottom >= 0 else bottom_right.row())
        if first > last:
            return
        y = self.rowViewportPosition(first)
        height = self.rowViewportPosition(last) + self.rowHeight(last) - y
        x = self.columnViewportPosition(top_left.column())
        width = self.columnViewportPosition(bottom_right.column()) + self.columnWidth(bottom_right.column()) - x
        vp.update(x, y, width, height)

    def _button_clicked(self, index: QModelIndex) -> None:
        self.nodeActivated.emit(int(index.data(NODE_ID_ROLE)))

    # hover: only the address button shows it ------------------------------------
    def _set_hover(self, cell: tuple[int, int] | None) -> None:
        if cell == self.hover_cell:
            return
        for old in (self.hover_cell, cell):
            if old is not None and old[1] == COL_ADDRESS and self.model() is not None:
                self.viewport().update(self.visualRect(self.model().index(*old)))
        self.hover_cell = cell

    def viewportEvent(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Leave:
            self._set_hover(None)
        return super().viewportEvent(event)

    # mouse: the painted slider becomes the real one under the pointer -----------
    def mousePressEvent(self, event: QMouseEvent) -> None:
        index = self.indexAt(event.position().toPoint())
        if (
            event.button() == Qt.MouseButton.LeftButton
            and index.isValid()
            and index.column() == COL_SPEED
            and index.flags() & Qt.ItemFlag.ItemIsEditable
        ):
            rect = self.visualRect(index)
            if self.speed.slider_rect(rect).contains(event.position().toPoint()):
                self.setCurrentIndex(index)
                self.speed.last_editor = None
                if self.edit(index, QAbstractItemView.EditTrigger.AllEditTriggers, event) and self.speed.last_editor:
                    self._drag = self.speed.last_editor
                    self._drag.set_from_x(int(event.position().x()) - rect.left())
                    return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._drag is not None:
            index = self.currentIndex()
            self._drag.set_from_x(int(event.position().x()) - self.visualRect(index).left())
            return
        index = self.indexAt(event.position().toPoint())
        self._set_hover((index.row(), index.column()) if index.isValid() else None)
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._drag is not None:
            editor, self._drag = self._drag, None
            editor.committed.emit()
            return
        super().mouseReleaseEvent(event)

    # keys ------------------------------------------------------------------------
    def keyPressEvent(self, event: QKeyEvent) -> None:
        index = self.currentIndex()
        key = event.key()
        activate = (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space)
        if index.isValid() and key in activate and self.state() != QAbstractItemView.State.EditingState:
            if index.column() == COL_ADDRESS:
                self.nodeActivated.emit(int(index.data(NODE_ID_ROLE)))
                return
            if index.column() == COL_SPEED and index.flags() & Qt.ItemFlag.ItemIsEditable:
                self.edit(index)
                return
        super().keyPressEvent(event)
