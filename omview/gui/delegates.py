"""Painting of the node table: lamp, address button, speed slider + LCD, bars, text.

Painted, not widgets: 200 rows × 9 live widgets would cost a relayout per tick and thousands
of objects. And painted by row, not by delegate: a QTableView hands each visible cell to a
Python delegate with a fresh QStyleOptionViewItem, and at 200 nodes that per-cell round trip,
not Qt's drawing, was most of a repaint. `NodePainter` paints every visible row in one Python
loop; each cell is one blit of a picture cached by what it shows (value, text, colour, state,
size), so a 1 Hz tick mostly blits pictures it already has. The delegates remain for what a
view needs them for: the speed editor and the button's click.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from PySide6.QtCore import (
    QAbstractItemModel,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QRectF,
    QSize,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QFontMetrics,
    QMouseEvent,
    QPainter,
    QPalette,
    QPixmap,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLCDNumber,
    QSlider,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionButton,
    QStyleOptionSlider,
    QStyleOptionViewItem,
    QWidget,
)

from omview.gui import theme
from omview.gui.nodemodel import (
    COL_ADDRESS,
    COL_AVAILABLE,
    COL_CPUS,
    COL_LOAD,
    COL_MEMORY,
    COL_MIGRATION,
    COL_NODE,
    COL_SPEED,
    SPEED_MAX,
    SPEED_MIN,
    SPEED_STEP,
    RowPaint,
)

Index = QModelIndex | QPersistentModelIndex

LCD_WIDTH = 66  # pixels of the LCD at the right of the speed cell
PAD = 3
LOAD_HIGH = 90.0  # percent: the load bar turns orange from here
#: Cell pictures kept; a picture is one cell (≤ 30 KB). Values move in steps (speeds by 500, bars
#: by a pixel), so a busy 200-node table settles at a few hundred distinct pictures.
CELL_CACHE_LIMIT = 1500
TEXT_CACHE_LIMIT = 3000

_SELECTED = QStyle.StateFlag.State_Selected
_FOCUS = QStyle.StateFlag.State_HasFocus
_HOVER = QStyle.StateFlag.State_MouseOver
_ALTERNATE = QStyleOptionViewItem.ViewItemFeature.Alternate
# alignment as plain ints: enum arithmetic per cell is measurable at 200 rows
_VCENTER_LEFT = int((Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft).value)
_CENTER = int(Qt.AlignmentFlag.AlignCenter.value)
_VCENTER_RIGHT = int((Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight).value)
_WHITE = QColor("#ffffff")
_RIGHT_COLUMNS = frozenset((COL_CPUS, COL_AVAILABLE))


def lcd_font() -> QFont:
    f = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    f.setBold(True)
    return f


def slider_rect(cell: QRect) -> QRect:
    return cell.adjusted(PAD + 2, 1, -(LCD_WIDTH + 2 * PAD), -1)


def lcd_rect(cell: QRect) -> QRect:
    return QRect(cell.right() - LCD_WIDTH - PAD + 1, cell.top() + PAD, LCD_WIDTH, cell.height() - 2 * PAD)


def _trim(cache: dict[Any, Any], limit: int) -> None:
    """Forget the oldest quarter once over the limit (insertion order: cheap, and old values of a
    live cluster are the ones least likely to come back)."""
    if len(cache) > limit:
        for key in list(islice(cache, limit // 4)):
            del cache[key]


class NodePainter:
    """Paints the node table's rows; owns the caches, which a palette, font, style or pixel-ratio
    change throws away (all are part of every picture) and a column resize trims (`clear`)."""

    def __init__(self) -> None:
        self._look: tuple[Any, ...] | None = None
        self._cells: dict[tuple[Any, ...], QPixmap] = {}
        self._texts: dict[tuple[str, int, bool, int], tuple[QPixmap, int, int]] = {}

    def clear(self) -> None:
        self._cells.clear()
        self._texts.clear()

    # ------------------------------------------------------------ look
    def prepare(self, widget: QWidget) -> None:
        """Once per paint: the palette and fonts, and a fresh cache if any of them changed."""
        pal = widget.palette()
        font = widget.font()
        dpr = widget.devicePixelRatioF()
        style = widget.style()
        look = (pal.cacheKey(), font.key(), dpr, style.name())
        if look == self._look:
            return
        self._look = look
        self.clear()
        self.widget = widget
        self.style = style
        self.palette = QPalette(pal)
        self.dpr = dpr
        self.colors = theme.colors(pal)
        self.highlight = pal.highlight().color()
        self.alternate = pal.alternateBase().color()
        self.text = pal.color(QPalette.ColorRole.Text)
        self.highlighted_text = pal.color(QPalette.ColorRole.HighlightedText)
        self.focus_color = pal.color(QPalette.ColorRole.Highlight)
        self.button_text = pal.color(QPalette.ColorRole.ButtonText)
        self.font = QFont(font)
        self.bold = QFont(font)
        self.bold.setBold(True)
        self.metrics = QFontMetrics(self.font)
        self.bold_metrics = QFontMetrics(self.bold)
        self.lcd = lcd_font()
        self.lcd_italic = QFont(self.lcd)
        self.lcd_italic.setItalic(True)

    # ------------------------------------------------------------ the table
    def paint_view(self, painter: QPainter, view: QAbstractItemView, areas: list[QRect]) -> None:
        """Every cell of `view` (a QTableView on NodeSortProxy/NodeTableModel) that meets one of
        `areas` (the rectangles of the update region: a tick repaints only the changed columns)."""
        self.prepare(view)
        model = view.model()
        if model is None or not model.rowCount():
            return
        if isinstance(model, QSortFilterProxyModel):
            source: Any = model.sourceModel()
            to_source: Any = model.mapToSource
        else:
            source, to_source = model, None
        index = model.index
        selected = {(i.row(), i.column()) for i in view.selectionModel().selectedIndexes()}
        current = view.currentIndex()
        focus = (current.row(), current.column()) if current.isValid() and view.hasFocus() else None
        hover = getattr(view, "hover_cell", None)
        alternating = view.alternatingRowColors()
        row_at = view.rowViewportPosition  # type: ignore[attr-defined]
        row_height = view.rowHeight  # type: ignore[attr-defined]
        cell = self.paint_cell
        columns: list[tuple[int, int, int]] = []
        for col in range(model.columnCount()):
            w = view.columnWidth(col)  # type: ignore[attr-defined]
            if w > 0 and not view.isColumnHidden(col):  # type: ignore[attr-defined]
                columns.append((col, view.columnViewportPosition(col), w))  # type: ignore[attr-defined]
        rows_left = model.rowCount() - 1
        records: dict[int, RowPaint] = {}
        for area in areas:
            first = view.rowAt(area.top())  # type: ignore[attr-defined]
            if first < 0:
                if area.top() >= 0:
                    continue  # below the last row
                first = 0
            last = view.rowAt(area.bottom())  # type: ignore[attr-defined]
            if last < 0:
                last = rows_left
            left, right = area.left(), area.right()
            cols = [c for c in columns if c[1] <= right and c[1] + c[2] > left]
            if not cols:
                continue
            span_x = cols[0][1]
            span_w = cols[-1][1] + cols[-1][2] - span_x
            for r in range(first, last + 1):
                h = row_height(r)
                if h <= 0:
                    continue
                y = row_at(r)
                rp = records.get(r)
                if rp is None:
                    rp = records[r] = source.row_paint(to_source(index(r, 0)).row() if to_source is not None else r)
                if alternating and r & 1:
                    painter.fillRect(span_x, y, span_w, h, self.alternate)
                for col, x, w in cols:
                    rc = (r, col)
                    cell(painter, x, y, w, h, rp, col, rc in selected, rc == focus, rc == hover)

    # ------------------------------------------------------------ one cell
    def paint_cell(
        self,
        painter: QPainter,
        x: int,
        y: int,
        w: int,
        h: int,
        rp: RowPaint,
        col: int,
        selected: bool = False,
        focus: bool = False,
        hover: bool = False,
    ) -> None:
        """One cell at (x, y) of size w×h; the row's plain/alternate background is already there."""
        if selected:
            painter.fillRect(x, y, w, h, self.highlight)
        if col == COL_NODE:
            color = {True: 0, False: 1, None: 2}.get(rp.up, 3)
            key: tuple[Any, ...] = (COL_NODE, rp.texts[col], color, selected, w, h)
            pix = self._cells.get(key) or self._make(key, self._draw_lamp)
        elif col == COL_ADDRESS:
            key = (COL_ADDRESS, rp.texts[col], rp.aggregate, hover, focus, w, h)
            pix = self._cells.get(key) or self._make(key, self._draw_button)
            painter.drawPixmap(x, y, pix)
            return  # the button shows focus itself
        elif col == COL_SPEED:
            key = (COL_SPEED, rp.values[col], rp.editable, rp.pending, rp.aggregate, focus, w, h)
            pix = self._cells.get(key) or self._make(key, self._draw_speed)
        elif col == COL_LOAD or col == COL_MEMORY:
            value = rp.values[col]
            inner = w - 2 * PAD - 2
            fill = -1 if value is None else int(max(0.0, min(1.0, float(value) / 100.0)) * inner * self.dpr)
            high = col == COL_LOAD and value is not None and float(value) >= LOAD_HIGH
            key = (col, fill, high, rp.texts[col], w, h)
            pix = self._cells.get(key) or self._make(key, self._draw_bar)
        else:
            self._paint_text(painter, x, y, w, h, rp, col, selected)
            pix = None
        if pix is not None:
            painter.drawPixmap(x, y, pix)
        if focus:
            painter.setPen(self.focus_color)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(x + 1, y + 1, w - 3, h - 3)

    def _paint_text(
        self, painter: QPainter, x: int, y: int, w: int, h: int, rp: RowPaint, col: int, selected: bool
    ) -> None:
        width = w - 2 * PAD - 4
        tone = 1 if selected else (2 if rp.down and col == COL_MIGRATION else 0)
        key = (rp.texts[col], width, rp.aggregate, tone)
        entry = self._texts.get(key) or self._text_picture(key)
        pix, advance, height = entry
        left = x + PAD + 2
        painter.drawPixmap(left + width - advance if col in _RIGHT_COLUMNS else left, y + (h - height) // 2, pix)

    def _text_picture(self, key: tuple[str, int, bool, int]) -> tuple[QPixmap, int, int]:
        """The (elided) text in its colour on a transparent picture just its size: a blit costs a
        third of setting pen and font and drawing text, and a row has four such cells."""
        text, width, bold, tone = key
        fm = self.bold_metrics if bold else self.metrics
        text = fm.elidedText(text, Qt.TextElideMode.ElideRight, width)
        advance = fm.horizontalAdvance(text)
        height = fm.height()
        pix = QPixmap(max(1, int((advance + 2) * self.dpr)), max(1, int(height * self.dpr)))
        pix.setDevicePixelRatio(self.dpr)
        pix.fill(Qt.GlobalColor.transparent)
        p = QPainter(pix)
        p.setFont(self.bold if bold else self.font)
        p.setPen((self.text, self.highlighted_text, self.colors.down, _WHITE)[tone])
        p.drawText(0, fm.ascent(), text)
        p.end()
        entry = (pix, advance, height)
        _trim(self._texts, TEXT_CACHE_LIMIT)
        self._texts[key] = entry
        return entry

    # ------------------------------------------------------------ pictures
    def _make(self, key: tuple[Any, ...], draw: Any) -> QPixmap:
        w, h = key[-2], key[-1]
        pix = QPixmap(int(w * self.dpr), int(h * self.dpr))
        pix.setDevicePixelRatio(self.dpr)
        pix.fill(Qt.GlobalColor.transparent)
        p = QPainter(pix)
        draw(p, key, w, h)
        p.end()
        _trim(self._cells, CELL_CACHE_LIMIT)
        self._cells[key] = pix
        return pix

    def _draw_lamp(self, p: QPainter, key: tuple[Any, ...], w: int, h: int) -> None:
        _, text, state, selected = key[:4]
        c = self.colors
        color = (c.up, c.down, c.connecting, c.load_high)[state]
        d = min(h - 2 * PAD - 2, 16)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        lamp = QRectF(6.5, (h - 1) // 2 - d // 2 + 1.5, d, d)
        p.setPen(color.darker(150))
        p.setBrush(color)
        p.drawEllipse(lamp)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(255, 255, 255, 90))
        p.drawEllipse(QRectF(lamp.left() + d * 0.22, lamp.top() + d * 0.15, d * 0.4, d * 0.3))
        p.setFont(self.bold)
        p.setPen(self.highlighted_text if selected else self.text)
        p.drawText(QRect(d + 12, 0, w - d - 12 - PAD, h), _VCENTER_LEFT, text)

    def _draw_button(self, p: QPainter, key: tuple[Any, ...], w: int, h: int) -> None:
        _, text, aggregate, hover, focus = key[:5]
        rect = QRect(2, 2, w - 4, h - 4)
        btn = QStyleOptionButton()
        btn.rect = rect
        btn.palette = self.palette
        btn.state = QStyle.StateFlag.State_Enabled | QStyle.StateFlag.State_Raised
        if hover:
            btn.state |= QStyle.StateFlag.State_MouseOver
        if focus:
            btn.state |= QStyle.StateFlag.State_HasFocus
        self.style.drawControl(QStyle.ControlElement.CE_PushButtonBevel, btn, p, self.widget)
        font = self.bold if aggregate else self.font
        fm = self.bold_metrics if aggregate else self.metrics
        p.setFont(font)
        p.setPen(self.button_text)
        p.drawText(rect, _CENTER, fm.elidedText(text, Qt.TextElideMode.ElideRight, rect.width() - 8))

    def _draw_speed(self, p: QPainter, key: tuple[Any, ...], w: int, h: int) -> None:
        _, value, editable, pending, aggregate, focus = key[:6]
        c = self.colors
        cell = QRect(0, 0, w, h)
        if not aggregate:
            rect = slider_rect(cell)
            sl = QStyleOptionSlider()
            sl.rect = rect
            sl.palette = self.palette
            sl.orientation = Qt.Orientation.Horizontal
            sl.minimum, sl.maximum = SPEED_MIN, SPEED_MAX
            v = max(SPEED_MIN, min(SPEED_MAX, int(value) if value is not None else SPEED_MIN))
            sl.sliderPosition = sl.sliderValue = v
            sl.singleStep, sl.pageStep = SPEED_STEP, 5 * SPEED_STEP
            sl.subControls = QStyle.SubControl.SC_SliderGroove | QStyle.SubControl.SC_SliderHandle
            sl.state = QStyle.StateFlag.State_Enabled if editable else QStyle.StateFlag.State_None
            if focus:
                sl.state |= QStyle.StateFlag.State_HasFocus
            self.style.drawComplexControl(QStyle.ComplexControl.CC_Slider, sl, p, self.widget)
        lcd = cell.adjusted(PAD + 2, PAD, -PAD - 1, -PAD) if aggregate else lcd_rect(cell)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        border = QColor(c.lcd_text)
        border.setAlpha(70)
        p.setPen(border)
        p.setBrush(c.lcd_back)
        p.drawRoundedRect(QRectF(lcd).adjusted(0.5, 0.5, -0.5, -0.5), 3, 3)
        p.setFont(self.lcd_italic if pending else self.lcd)
        if pending:
            p.setPen(c.load_high)
        else:
            p.setPen(c.lcd_text if editable or aggregate else c.connecting)
        text = "—" if value is None else (f"Σ {value}" if aggregate else str(value))
        p.drawText(lcd.adjusted(4, 0, -5, 0), _VCENTER_RIGHT, text)

    def _draw_bar(self, p: QPainter, key: tuple[Any, ...], w: int, h: int) -> None:
        """From two cached parts, the bar (by fill) and the figure (by text and colour): a new load
        value then costs three blits, not rounded antialiased shapes and two text layouts."""
        col, fill, high, text = key[:4]
        rect = QRect(PAD + 1, PAD + 1, w - 2 * PAD - 2, h - 2 * PAD - 2)
        bar_key = (-1, col, fill, high, w, h)  # -1: no cell key starts so
        bar = self._cells.get(bar_key) or self._make(bar_key, self._draw_bar_shape)
        p.drawPixmap(0, 0, bar)
        split = rect.left() + int(fill / self.dpr) if fill >= 0 else rect.left()
        # the figure must read on the fill and on the empty part: white over the fill, text colour
        # elsewhere, each clipped to its part
        dark, advance, height = self._texts.get((text, rect.width(), False, 0)) or self._text_picture(
            (text, rect.width(), False, 0)
        )
        tx = rect.left() + (rect.width() - advance) // 2
        ty = rect.top() + (rect.height() - height) // 2
        p.setClipRect(QRect(split, rect.top(), rect.right() - split + 1, rect.height()))
        p.drawPixmap(tx, ty, dark)
        if split > rect.left():
            white = (
                self._texts.get((text, rect.width(), False, 3)) or self._text_picture((text, rect.width(), False, 3))
            )[0]
            p.setClipRect(QRect(rect.left(), rect.top(), split - rect.left(), rect.height()))
            p.drawPixmap(tx, ty, white)

    def _draw_bar_shape(self, p: QPainter, key: tuple[Any, ...], w: int, h: int) -> None:
        _, col, fill, high = key[:4]
        c = self.colors
        rect = QRect(PAD + 1, PAD + 1, w - 2 * PAD - 2, h - 2 * PAD - 2)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(c.bar_back)
        p.drawRoundedRect(QRectF(rect), 3, 3)
        if fill >= 0:
            p.setBrush(c.memory if col == COL_MEMORY else (c.load_high if high else c.load))
            p.drawRoundedRect(QRectF(rect.left(), rect.top(), fill / self.dpr, rect.height()), 3, 3)


# ---------------------------------------------------------------- delegates
def _row(index: Index) -> RowPaint:
    model = index.model()
    if isinstance(model, QSortFilterProxyModel):
        index = model.mapToSource(index)
        model = model.sourceModel()
    return model.row_paint(index.row())  # type: ignore[attr-defined]


class CellDelegate(QStyledItemDelegate):
    """Paints one cell with the view's NodePainter: the view paints rows itself, so this serves
    whatever else asks a delegate for a cell (a drag image, QAbstractItemView.render)."""

    def __init__(self, painter: NodePainter, parent: Any = None) -> None:
        super().__init__(parent)
        self.painter = painter

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        widget = option.widget or self.parent()  # type: ignore[attr-defined]
        if isinstance(widget, QWidget):
            self.painter.prepare(widget)
        rect: QRect = option.rect  # type: ignore[attr-defined]
        state = option.state  # type: ignore[attr-defined]
        if option.features & _ALTERNATE:  # type: ignore[attr-defined]
            painter.fillRect(rect, self.painter.alternate)
        self.painter.paint_cell(
            painter,
            rect.x(),
            rect.y(),
            rect.width(),
            rect.height(),
            _row(index),
            index.column(),
            bool(state & _SELECTED),
            bool(state & _FOCUS),
            bool(state & _HOVER),
        )

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        return QSize(78, 26)


class ButtonDelegate(CellDelegate):
    """A push-button look; a click (or Enter/Space in the view) emits `clicked`."""

    clicked = Signal(QModelIndex)

    def editorEvent(self, event: Any, model: QAbstractItemModel, option: QStyleOptionViewItem, index: Index) -> bool:
        if (
            isinstance(event, QMouseEvent)
            and event.type() == QMouseEvent.Type.MouseButtonRelease
            and event.button() == Qt.MouseButton.LeftButton
            and option.rect.contains(event.position().toPoint())  # type: ignore[attr-defined]
        ):
            self.clicked.emit(QModelIndex(index))
            return True
        return False

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        fm = option.fontMetrics  # type: ignore[attr-defined]
        return QSize(fm.horizontalAdvance(str(index.data() or "")) + 28, 28)


class SpeedDelegate(CellDelegate):
    """Slider (left) and LCD (right) painted; editing creates a real SpeedEditor in the cell."""

    def __init__(self, painter: NodePainter, parent: Any = None) -> None:
        super().__init__(painter, parent)
        self.last_editor: SpeedEditor | None = None

    slider_rect = staticmethod(slider_rect)
    lcd_rect = staticmethod(lcd_rect)

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        return QSize(230, 26)

    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem, index: Index) -> QWidget:
        editor = SpeedEditor(parent)
        editor.committed.connect(lambda: self._commit(editor))
        self.last_editor = editor
        return editor

    def _commit(self, editor: SpeedEditor) -> None:
        self.commitData.emit(editor)
        self.closeEditor.emit(editor, QStyledItemDelegate.EndEditHint.NoHint)

    def setEditorData(self, editor: QWidget, index: Index) -> None:
        if isinstance(editor, SpeedEditor) and not editor.touched:
            value = index.data(Qt.ItemDataRole.EditRole)
            editor.set_value(int(value) if value is not None else SPEED_MIN)

    def setModelData(self, editor: QWidget, model: QAbstractItemModel, index: Index) -> None:
        if isinstance(editor, SpeedEditor) and editor.touched:
            model.setData(index, editor.value(), Qt.ItemDataRole.EditRole)

    def updateEditorGeometry(self, editor: QWidget, option: QStyleOptionViewItem, index: Index) -> None:
        editor.setGeometry(option.rect)  # type: ignore[attr-defined]


class SpeedEditor(QWidget):
    """The live speed control: a slider and an LCD. Commits on release or Enter, Esc cancels."""

    committed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAutoFillBackground(True)
        self.touched = False
        lay = QHBoxLayout(self)
        lay.setContentsMargins(PAD + 2, 1, PAD, PAD - 1)
        lay.setSpacing(PAD + 2)
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setRange(SPEED_MIN, SPEED_MAX)
        self.slider.setSingleStep(SPEED_STEP)
        self.slider.setPageStep(5 * SPEED_STEP)
        self.slider.setToolTip("openMosix speed: drag, or use the arrow keys; Enter sets it, Esc cancels")
        self.slider.setAccessibleName("Node speed")
        self.lcd = QLCDNumber(5, self)
        self.lcd.setSegmentStyle(QLCDNumber.SegmentStyle.Flat)
        self.lcd.setFixedWidth(LCD_WIDTH)
        self.lcd.setToolTip("Speed to be set (10000 = one standard CPU)")
        c = theme.colors(self.palette())
        pal = self.lcd.palette()
        pal.setColor(QPalette.ColorRole.Window, c.lcd_back)
        pal.setColor(QPalette.ColorRole.WindowText, c.lcd_text)
        self.lcd.setAutoFillBackground(True)
        self.lcd.setPalette(pal)
        lay.addWidget(self.slider, 1)
        lay.addWidget(self.lcd)
        self.slider.valueChanged.connect(self._changed)
        self.slider.sliderReleased.connect(self.committed)
        self.setFocusProxy(self.slider)

    def _changed(self, value: int) -> None:
        self.lcd.display(value)
        self.touched = True

    def set_value(self, value: int) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(value)
        self.slider.blockSignals(False)
        self.lcd.display(self.slider.value())

    def value(self) -> int:
        return int(self.slider.value())

    def set_from_x(self, x: int) -> None:
        """Jump to the value under x (editor coordinates): a click on the painted slider lands here."""
        opt = QStyleOptionSlider()
        self.slider.initStyleOption(opt)
        style = self.slider.style()
        groove = style.subControlRect(
            QStyle.ComplexControl.CC_Slider, opt, QStyle.SubControl.SC_SliderGroove, self.slider
        )
        handle = style.subControlRect(
            QStyle.ComplexControl.CC_Slider, opt, QStyle.SubControl.SC_SliderHandle, self.slider
        )
        local = x - self.slider.x() - groove.left() - handle.width() // 2
        span = max(1, groove.width() - handle.width())
        value = QStyle.sliderValueFromPosition(SPEED_MIN, SPEED_MAX, local, span)
        value = int(round(value / SPEED_STEP) * SPEED_STEP)
        self.slider.setValue(max(SPEED_MIN, min(SPEED_MAX, value)))

    def keyPressEvent(self, event: Any) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.committed.emit()
            return
        super().keyPressEvent(event)
