"""The process table view and its delegate.

The delegate paints each cell straight from the model's row record: one Python call per visible
cell instead of the ten data() calls (font, colours, alignment, icon, text…) a stock
QStyledItemDelegate makes, which is what keeps a repaint of a 20 000-row box cheap. DisplayRole
and the other roles stay in the model for copy, tests and accessibility.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QContextMenuEvent, QKeyEvent, QPainter, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QWidget,
)

from omprocs.procmodel import (
    COL_COMMAND,
    COL_CPU,
    COL_HOME,
    COL_MEMORY,
    COL_MIGRATIONS,
    COL_NICE,
    COL_NODE,
    COL_PID,
    COL_STARTED,
    COL_STATE,
    COL_USER,
    ICONS,
    KEY_ROLE,
    ProcKey,
    ProcRow,
    ProcTableModel,
    text,
)
from omview.gui import theme

Index = QModelIndex | QPersistentModelIndex

WIDTHS = {
    COL_PID: 92,
    COL_NODE: 52,
    COL_HOME: 52,
    COL_USER: 84,
    COL_NICE: 46,
    COL_STATE: 50,
    COL_CPU: 58,
    COL_MEMORY: 80,
    COL_MIGRATIONS: 52,
    COL_STARTED: 100,
}
ROW_HEIGHT = 24
PAD = 5
_SELECTED = QStyle.StateFlag.State_Selected
_FOCUS = QStyle.StateFlag.State_HasFocus

_RIGHT = int((Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter).value)
_LEFT = int((Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter).value)
_NUMERIC = frozenset((COL_NODE, COL_HOME, COL_NICE, COL_CPU, COL_MEMORY, COL_MIGRATIONS))
_ELIDE = Qt.TextElideMode.ElideRight
_ELIDED = frozenset((COL_COMMAND, COL_USER, COL_STARTED))
_TEXT = QPalette.ColorRole.Text
_HTEXT = QPalette.ColorRole.HighlightedText


def row_at(index: Index) -> ProcRow | None:
    """The row record behind a view index (through the proxy), without a data() call."""
    model = index.model()
    if isinstance(model, QSortFilterProxyModel):
        index = model.mapToSource(index)
        model = model.sourceModel()
    if isinstance(model, ProcTableModel) and index.isValid():
        return model.row(index.row())
    return None


class _Colors:
    """The palette's colours for one paint pass (looked up once, not per cell)."""

    __slots__ = ("key", "text", "htext", "highlight", "alternate", "grey", "green", "focus")

    def __init__(self, pal: QPalette) -> None:
        self.key = pal.cacheKey()
        self.text = pal.color(_TEXT)
        self.htext = pal.color(_HTEXT)
        self.highlight = pal.highlight()
        self.alternate = pal.alternateBase()
        self.focus = pal.color(QPalette.ColorRole.Highlight).darker(140)
        tc = theme.colors(pal)
        self.grey, self.green = tc.connecting, tc.up


class ProcDelegate(QStyledItemDelegate):
    """Paints a cell from its row record. Reads as few QStyleOption attributes as it can: each
    one is a copy made by the binding (option.font alone costs ~15 µs), and those a row shares
    only for its first cell."""

    def __init__(self, view: ProcTableView) -> None:
        super().__init__(view)
        self.view = view
        self.model: ProcTableModel | None = None
        self.fm = view.fontMetrics()
        self._colors: _Colors | None = None
        # per paint pass and row: cells of a row share the record, colours, icon (the view paints
        # row by row); the pass number comes from the view's paintEvent
        self._row_cache: tuple[Any, ...] | None = None
        self._pass_colors: _Colors | None = None
        self._current = (-1, -1)

    def colors(self, pal: QPalette) -> _Colors:
        c = self._colors
        key = pal.cacheKey()
        if c is None or c.key != key:
            c = self._colors = _Colors(pal)
        return c

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        vrow = index.row()
        cache = self._row_cache
        if cache is None or cache[0] != self.view.paint_pass or cache[1] != vrow:
            # first cell of this row in this paint pass: what every cell of the row shares
            model = self.model
            proxy = index.model()
            if model is None or not isinstance(proxy, QSortFilterProxyModel):
                return
            r = model.row(proxy.mapToSource(index).row())
            c = self._pass_colors if cache is not None and cache[0] == self.view.paint_pass else None
            if c is None:
                c = self._pass_colors = self.colors(option.palette)
                cur = self.view.currentIndex()
                self._current = (cur.row(), cur.column()) if self.view.hasFocus() else (-1, -1)
            selected = bool(option.state & _SELECTED)
            if r.node in model._down:
                pen = c.grey
            else:
                pen = c.htext if selected else c.text
            back = c.highlight if selected else c.alternate if vrow & 1 else None
            icons = ICONS.get()
            icon = icons.migrated if r.migrated else icons.lock if r.cantmove else None
            green = c.green if r.migrated and not selected and r.node not in model._down else pen
            cache = self._row_cache = (self.view.paint_pass, vrow, r, back, pen, green, icon, c)
        _pass, _vrow, r, back, pen, green, icon, c = cache
        col = index.column()
        rect: QRect = option.rect
        if back is not None:
            painter.fillRect(rect, back)
        left = rect.left() + PAD
        if col == COL_PID:
            if icon is not None:
                icon.paint(painter, QRect(left - 1, rect.top() + (rect.height() - 16) // 2, 16, 16))
            left += 18
        painter.setPen(green if col == COL_NODE else pen)
        box = QRect(left, rect.top(), rect.right() - PAD - left + 1, rect.height())
        s = text(r, col)
        if col in _ELIDED:
            s = self.fm.elidedText(s, _ELIDE, box.width())
        painter.drawText(box, _RIGHT if col in _NUMERIC else _LEFT, s)
        if (vrow, col) == self._current:
            painter.setPen(c.focus)
            painter.drawRect(rect.adjusted(0, 0, -1, -1))

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        return QSize(self.fm.horizontalAdvance(str(index.data() or "")) + 2 * PAD + 18, ROW_HEIGHT)


class ProcTableView(QTableView):
    """Rows select whole processes; double-click or Enter opens the migrator (`activated_key`)."""

    activatedKey = Signal(tuple)  # ProcKey
    contextMenuWanted = Signal(object)  # QPoint in global coordinates

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.paint_pass = 0
        self.delegate = ProcDelegate(self)
        self.setItemDelegate(self.delegate)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAlternatingRowColors(True)
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.setSortingEnabled(True)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        vh = self.verticalHeader()
        vh.setVisible(False)
        vh.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vh.setDefaultSectionSize(ROW_HEIGHT)
        self.setAccessibleName("Processes")
        self.doubleClicked.connect(self._activate)

    def paintEvent(self, event: Any) -> None:
        self.paint_pass += 1
        super().paintEvent(event)

    def _source(self) -> ProcTableModel | None:
        model = self.model()
        if isinstance(model, QSortFilterProxyModel):
            model = model.sourceModel()
        return model if isinstance(model, ProcTableModel) else None

    def setModel(self, model: Any) -> None:
        super().setModel(model)
        h = self.horizontalHeader()
        h.setHighlightSections(False)
        h.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        h.setStretchLastSection(True)
        h.setMinimumSectionSize(36)
        h.setSortIndicatorShown(True)
        for col, width in WIDTHS.items():
            self.setColumnWidth(col, width)
        src = self._source()
        self.delegate.model = src
        if src is not None:
            h.setSortIndicator(src.sort_column, src.sort_order)

    def _activate(self, index: QModelIndex) -> None:
        if index.isValid():
            self.activatedKey.emit(tuple(index.siblingAtColumn(0).data(KEY_ROLE)))

    def selected_keys(self) -> list[ProcKey]:
        sm = self.selectionModel()
        if sm is None:
            return []
        return [tuple(i.data(KEY_ROLE)) for i in sm.selectedRows(0)]

    def current_key(self) -> ProcKey | None:
        i = self.currentIndex()
        return tuple(i.siblingAtColumn(0).data(KEY_ROLE)) if i.isValid() else None

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self._activate(self.currentIndex())
            return
        super().keyPressEvent(event)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        self.contextMenuWanted.emit(event.globalPos())
