"""Painting of the node table's cells: lamp, address button, speed slider + LCD, bars.

Painted, not widgets: 200 rows × 9 live widgets would cost a relayout per tick and thousands
of objects; a delegate paints only the visible cells from the model's roles. The one real
widget is the speed editor, created for the cell being edited and gone afterwards.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QAbstractItemModel,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
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
    QPixmapCache,
)
from PySide6.QtWidgets import (
    QApplication,
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
    COL_AVAILABLE,
    COL_CPUS,
    COL_MIGRATION,
    SPEED_MAX,
    SPEED_MIN,
    SPEED_STEP,
    RowPaint,
)

Index = QModelIndex | QPersistentModelIndex

LCD_WIDTH = 66  # pixels of the LCD at the right of the speed cell
PAD = 3


class PaintCtx:
    """What every cell of one repaint shares (palette colours, fonts, the model behind the proxy),
    looked up once per paint event instead of once per cell: at 200 rows the per-cell Python
    and PySide calls, not Qt's drawing, are the cost."""

    def __init__(self, view: QWidget) -> None:
        pal = view.palette()
        self.colors = theme.colors(pal)
        self.highlight = pal.highlight()
        self.alternate = pal.alternateBase()
        self.text = pal.color(QPalette.ColorRole.Text)
        self.highlighted_text = pal.color(QPalette.ColorRole.HighlightedText)
        self.focus = pal.color(QPalette.ColorRole.Highlight)
        self.font = QFont(view.font())
        self.bold = QFont(self.font)
        self.bold.setBold(True)
        self.metrics = QFontMetrics(self.font)
        self.bold_metrics = QFontMetrics(self.bold)
        self.dpr = view.devicePixelRatioF()
        self.palette = pal
        self.button_text = pal.color(QPalette.ColorRole.ButtonText)
        model = view.model() if hasattr(view, "model") else None
        if isinstance(model, QSortFilterProxyModel):
            self.map_to_source: Any = model.mapToSource
            self.source: Any = model.sourceModel()
        else:
            self.map_to_source = None
            self.source = model


_ctx: PaintCtx | None = None
_elided: dict[tuple[str, int, bool], str] = {}


def begin_paint(view: QWidget) -> None:
    """Called by the view at the start of each paint event."""
    global _ctx
    _ctx = PaintCtx(view)


def _context(option: QStyleOptionViewItem) -> PaintCtx:
    if _ctx is None:
        begin_paint(option.widget)  # type: ignore[attr-defined]
    assert _ctx is not None
    return _ctx


def _row(index: Index, ctx: PaintCtx | None = None) -> tuple[RowPaint, int]:
    """The row's paint record straight from our model (through the proxy): no data() calls."""
    if ctx is not None and ctx.source is not None and ctx.map_to_source is not None:
        return ctx.source.row_paint(ctx.map_to_source(index).row()), index.column()
    model = index.model()
    if isinstance(model, QSortFilterProxyModel):
        index = model.mapToSource(index)
        model = model.sourceModel()
    return model.row_paint(index.row()), index.column()  # type: ignore[attr-defined]


def _elide(ctx: PaintCtx, text: str, width: int, bold: bool) -> str:
    key = (text, width, bold)
    out = _elided.get(key)
    if out is None:
        if len(_elided) > 20000:
            _elided.clear()
        fm = ctx.bold_metrics if bold else ctx.metrics
        out = _elided[key] = fm.elidedText(text, Qt.TextElideMode.ElideRight, width)
    return out


_SELECTED = QStyle.StateFlag.State_Selected
_TEXT = QPalette.ColorRole.Text
_HIGHLIGHTED_TEXT = QPalette.ColorRole.HighlightedText
# alignment as plain ints: enum arithmetic per cell is measurable at 200 rows
_VCENTER_LEFT = int((Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft).value)
_VCENTER_RIGHT = int((Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight).value)
_CENTER = int(Qt.AlignmentFlag.AlignCenter.value)
_WHITE = QColor("#ffffff")
_FOCUS = QStyle.StateFlag.State_HasFocus
_HOVER = QStyle.StateFlag.State_MouseOver
_ALTERNATE = QStyleOptionViewItem.ViewItemFeature.Alternate


def _panel(painter: QPainter, option: QStyleOptionViewItem) -> bool:
    """Selection or alternate-row background; True when selected (text then uses HighlightedText)."""
    rect = option.rect  # type: ignore[attr-defined]
    pal = option.palette  # type: ignore[attr-defined]
    if option.state & _SELECTED:  # type: ignore[attr-defined]
        painter.fillRect(rect, pal.highlight())
        return True
    if option.features & _ALTERNATE:  # type: ignore[attr-defined]
        painter.fillRect(rect, pal.alternateBase())
    return False


def _fill(painter: QPainter, option: QStyleOptionViewItem, ctx: PaintCtx, rect: QRect, state: Any) -> bool:
    """_panel with the context's brushes; True when selected."""
    if state & _SELECTED:
        painter.fillRect(rect, ctx.highlight)
        return True
    if option.features & _ALTERNATE:  # type: ignore[attr-defined]
        painter.fillRect(rect, ctx.alternate)
    return False


def _focus_ctx(painter: QPainter, ctx: PaintCtx, rect: QRect, state: Any) -> None:
    if state & _FOCUS:
        painter.setPen(ctx.focus)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(rect.adjusted(1, 1, -2, -2))


def _style(option: QStyleOptionViewItem) -> QStyle:
    widget = option.widget  # type: ignore[attr-defined]
    return widget.style() if widget else QApplication.style()


def _focus(painter: QPainter, option: QStyleOptionViewItem) -> None:
    if option.state & _FOCUS:  # type: ignore[attr-defined]
        painter.save()
        pen_color = option.palette.color(QPalette.ColorRole.Highlight)  # type: ignore[attr-defined]
        painter.setPen(pen_color)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(option.rect.adjusted(1, 1, -2, -2))  # type: ignore[attr-defined]
        painter.restore()


class LampDelegate(QStyledItemDelegate):
    """A round lamp (green up, red down, grey connecting, amber some) and the node id."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        ctx = _context(option)
        rect: QRect = option.rect  # type: ignore[attr-defined]
        state = option.state  # type: ignore[attr-defined]
        selected = _fill(painter, option, ctx, rect, state)
        rp, col = _row(index, ctx)
        c = ctx.colors
        color = {True: c.up, False: c.down, None: c.connecting}.get(rp.up, c.load_high)
        d = min(rect.height() - 2 * PAD - 2, 16)
        painter.drawPixmap(rect.left() + 6, rect.center().y() - d // 2 + 1, _lamp_pixmap(color, d, ctx.dpr))
        painter.setFont(ctx.bold)
        painter.setPen(ctx.highlighted_text if selected else ctx.text)
        painter.drawText(rect.adjusted(d + 12, 0, -PAD, 0), _VCENTER_LEFT, rp.texts[col])
        _focus_ctx(painter, ctx, rect, state)

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        return QSize(78, 26)


class ButtonDelegate(QStyledItemDelegate):
    """A push-button look; a click (or Enter/Space in the view) emits `clicked`."""

    clicked = Signal(QModelIndex)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        ctx = _context(option)
        cell: QRect = option.rect  # type: ignore[attr-defined]
        state = option.state  # type: ignore[attr-defined]
        _fill(painter, option, ctx, cell, state)
        rp, col = _row(index, ctx)
        rect = cell.adjusted(2, 2, -2, -2)
        hover = bool(state & _HOVER)
        focus = bool(state & _FOCUS)
        widget = option.widget  # type: ignore[attr-defined]
        painter.drawPixmap(rect.topLeft(), _button_pixmap(widget, ctx, rect.size(), hover, focus))
        painter.setFont(ctx.bold if rp.aggregate else ctx.font)
        painter.setPen(ctx.button_text)
        painter.drawText(rect, _CENTER, _elide(ctx, rp.texts[col], rect.width() - 8, rp.aggregate))

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


class BarDelegate(QStyledItemDelegate):
    """A flat percent bar with the figure on it; orange above `high` percent (load only)."""

    def __init__(self, kind: str, parent: Any = None, high: float | None = None) -> None:
        super().__init__(parent)
        self.kind = kind
        self.high = high

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        ctx = _context(option)
        cell: QRect = option.rect  # type: ignore[attr-defined]
        state = option.state  # type: ignore[attr-defined]
        _fill(painter, option, ctx, cell, state)
        rp, col = _row(index, ctx)
        c = ctx.colors
        rect = cell.adjusted(PAD + 1, PAD + 1, -PAD - 1, -PAD - 1)
        value = rp.values[col]
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(c.bar_back)
        painter.drawRoundedRect(QRectF(rect), 3, 3)
        split = rect.left()
        if value is not None:
            frac = max(0.0, min(1.0, float(value) / 100.0))
            color = c.memory if self.kind == "memory" else c.load
            if self.high is not None and float(value) >= self.high:
                color = c.load_high
            painter.setBrush(color)
            painter.drawRoundedRect(QRectF(rect.left(), rect.top(), rect.width() * frac, rect.height()), 3, 3)
            split = rect.left() + int(rect.width() * frac)
        # the figure must read on the fill and on the empty part: white over the fill, text colour
        # elsewhere, each clipped to its part
        text = rp.texts[col]
        painter.setFont(ctx.font)
        painter.setClipRect(QRect(split, rect.top(), rect.right() - split + 1, rect.height()))
        painter.setPen(ctx.text)
        painter.drawText(rect, _CENTER, text)
        if split > rect.left():
            painter.setClipRect(QRect(rect.left(), rect.top(), split - rect.left(), rect.height()))
            painter.setPen(_WHITE)
            painter.drawText(rect, _CENTER, text)
        painter.restore()
        _focus_ctx(painter, ctx, cell, state)

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        return QSize(130, 26)


class TextDelegate(QStyledItemDelegate):
    """Plain text painted from the row record: elided, right-aligned figures, the down reason in red."""

    RIGHT = (COL_CPUS, COL_AVAILABLE)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        ctx = _context(option)
        rect: QRect = option.rect  # type: ignore[attr-defined]
        state = option.state  # type: ignore[attr-defined]
        rp, col = _row(index, ctx)
        selected = bool(state & _SELECTED)
        if selected:
            painter.fillRect(rect, ctx.highlight)
        elif option.features & _ALTERNATE:  # type: ignore[attr-defined]
            painter.fillRect(rect, ctx.alternate)
        text_rect = rect.adjusted(PAD + 2, 0, -PAD - 2, 0)
        if selected:
            color = ctx.highlighted_text
        elif rp.down and col == COL_MIGRATION:
            color = ctx.colors.down
        else:
            color = ctx.text
        painter.setFont(ctx.bold if rp.aggregate else ctx.font)
        painter.setPen(color)
        align = _VCENTER_RIGHT if col in self.RIGHT else _VCENTER_LEFT
        painter.drawText(text_rect, align, _elide(ctx, rp.texts[col], text_rect.width(), rp.aggregate))
        if state & _FOCUS:
            painter.setPen(ctx.focus)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(rect.adjusted(1, 1, -2, -2))


def lcd_font() -> QFont:
    f = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    f.setBold(True)
    return f


class SpeedDelegate(QStyledItemDelegate):
    """Slider (left) and LCD (right) painted; editing creates a real SpeedEditor in the cell."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.last_editor: SpeedEditor | None = None
        self._font = lcd_font()
        self._italic = QFont(self._font)
        self._italic.setItalic(True)

    @staticmethod
    def slider_rect(cell: QRect) -> QRect:
        return cell.adjusted(PAD + 2, 1, -(LCD_WIDTH + 2 * PAD), -1)

    @staticmethod
    def lcd_rect(cell: QRect) -> QRect:
        return QRect(cell.right() - LCD_WIDTH - PAD + 1, cell.top() + PAD, LCD_WIDTH, cell.height() - 2 * PAD)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        ctx = _context(option)
        cell: QRect = option.rect  # type: ignore[attr-defined]
        state = option.state  # type: ignore[attr-defined]
        _fill(painter, option, ctx, cell, state)
        rp, col = _row(index, ctx)
        c = ctx.colors
        value = rp.values[col]
        if not rp.aggregate:
            rect = self.slider_rect(cell)
            widget = option.widget  # type: ignore[attr-defined]
            pix = _slider_pixmap(
                widget.style() if widget else QApplication.style(),
                widget,
                ctx.palette,
                rect.size(),
                value,
                rp.editable,
                bool(state & _FOCUS),
                ctx.dpr,
            )
            painter.drawPixmap(rect.topLeft(), pix)
        lcd = cell.adjusted(PAD + 2, PAD, -PAD - 1, -PAD) if rp.aggregate else self.lcd_rect(cell)
        painter.drawPixmap(lcd.topLeft(), _lcd_pixmap(c, lcd.size(), ctx.dpr))
        painter.setFont(self._italic if rp.pending else self._font)
        if rp.pending:
            painter.setPen(c.load_high)
        else:
            painter.setPen(c.lcd_text if rp.editable or rp.aggregate else c.connecting)
        text = "—" if value is None else (f"Σ {value}" if rp.aggregate else str(value))
        painter.drawText(lcd.adjusted(4, 0, -5, 0), _VCENTER_RIGHT, text)
        _focus_ctx(painter, ctx, cell, state)

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        return QSize(230, 26)

    # editing ----------------------------------------------------------------
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


def _text(
    painter: QPainter,
    option: QStyleOptionViewItem,
    rect: QRect | QRectF,
    text: str,
    align: int,
    *,
    bold: bool = False,
    color: QColor | None = None,
    elide: bool = False,
) -> None:
    """Text in the cell's font (bold on request) and the palette's text colour unless given."""
    font: QFont = option.font  # type: ignore[attr-defined]
    if bold and not font.bold():
        font = QFont(font)
        font.setBold(True)
    painter.setFont(font)
    if color is None:
        selected = option.state & _SELECTED  # type: ignore[attr-defined]
        color = option.palette.color(_HIGHLIGHTED_TEXT if selected else _TEXT)  # type: ignore[attr-defined]
    if elide:
        text = painter.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, int(rect.width()))
    painter.setPen(color)
    painter.drawText(rect, align, text)


def _lamp_pixmap(color: QColor, d: int, dpr: float) -> QPixmap:
    """Antialiased lamps are the dearest thing in a row; there are only four colours of them."""
    key = f"omview-lamp-{color.rgba()}-{d}-{dpr}"
    pix = QPixmapCache.find(key)
    if pix is not None and not pix.isNull():
        return pix
    pix = QPixmap(int((d + 2) * dpr), int((d + 2) * dpr))
    pix.setDevicePixelRatio(dpr)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    lamp = QRectF(0.5, 0.5, d, d)
    p.setPen(color.darker(150))
    p.setBrush(color)
    p.drawEllipse(lamp)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor(255, 255, 255, 90))
    p.drawEllipse(QRectF(lamp.left() + d * 0.22, lamp.top() + d * 0.15, d * 0.4, d * 0.3))
    p.end()
    QPixmapCache.insert(key, pix)
    return pix


def _slider_pixmap(
    style: QStyle,
    widget: QWidget | None,
    palette: QPalette,
    size: QSize,
    value: Any,
    editable: bool,
    focus: bool,
    dpr: float,
) -> QPixmap:
    """The style's slider for this value, drawn once per (size, value, state, palette) and reused:
    speeds move in steps of 500, so a 200-node table needs a few dozen distinct pictures."""
    v = max(SPEED_MIN, min(SPEED_MAX, int(value) if value is not None else SPEED_MIN))
    key = f"omview-slider-{size.width()}x{size.height()}-{v}-{editable}-{focus}-{palette.cacheKey()}-{dpr}"
    pix = QPixmapCache.find(key)
    if pix is not None and not pix.isNull():
        return pix
    pix = QPixmap(int(size.width() * dpr), int(size.height() * dpr))
    pix.setDevicePixelRatio(dpr)
    pix.fill(Qt.GlobalColor.transparent)
    sl = QStyleOptionSlider()
    sl.rect = QRect(QPoint(0, 0), size)
    sl.palette = palette
    sl.orientation = Qt.Orientation.Horizontal
    sl.minimum, sl.maximum = SPEED_MIN, SPEED_MAX
    sl.sliderPosition = sl.sliderValue = v
    sl.singleStep, sl.pageStep = SPEED_STEP, 5 * SPEED_STEP
    sl.subControls = QStyle.SubControl.SC_SliderGroove | QStyle.SubControl.SC_SliderHandle
    sl.state = QStyle.StateFlag.State_Enabled if editable else QStyle.StateFlag.State_None
    if focus:
        sl.state |= QStyle.StateFlag.State_HasFocus
    p = QPainter(pix)
    style.drawComplexControl(QStyle.ComplexControl.CC_Slider, sl, p, widget)
    p.end()
    QPixmapCache.insert(key, pix)
    return pix


def _lcd_pixmap(c: theme.Colors, size: QSize, dpr: float) -> QPixmap:
    """The LCD's dark rounded background (digits are drawn on it per cell)."""
    key = f"omview-lcd-{c.lcd_back.rgba()}-{c.lcd_text.rgba()}-{size.width()}x{size.height()}-{dpr}"
    pix = QPixmapCache.find(key)
    if pix is not None and not pix.isNull():
        return pix
    pix = QPixmap(int(size.width() * dpr), int(size.height() * dpr))
    pix.setDevicePixelRatio(dpr)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    border = QColor(c.lcd_text)
    border.setAlpha(70)
    p.setPen(border)
    p.setBrush(c.lcd_back)
    p.drawRoundedRect(QRectF(0.5, 0.5, size.width() - 1, size.height() - 1), 3, 3)
    p.end()
    QPixmapCache.insert(key, pix)
    return pix


def _button_pixmap(widget: QWidget | None, ctx: PaintCtx, size: QSize, hover: bool, focus: bool) -> QPixmap:
    """The style's push-button bevel (no text) for this size and state, drawn once and reused."""
    key = f"omview-button-{size.width()}x{size.height()}-{hover}-{focus}-{ctx.palette.cacheKey()}-{ctx.dpr}"
    pix = QPixmapCache.find(key)
    if pix is not None and not pix.isNull():
        return pix
    pix = QPixmap(int(size.width() * ctx.dpr), int(size.height() * ctx.dpr))
    pix.setDevicePixelRatio(ctx.dpr)
    pix.fill(Qt.GlobalColor.transparent)
    btn = QStyleOptionButton()
    btn.rect = QRect(QPoint(0, 0), size)
    btn.palette = ctx.palette
    btn.state = QStyle.StateFlag.State_Enabled | QStyle.StateFlag.State_Raised
    if hover:
        btn.state |= QStyle.StateFlag.State_MouseOver
    if focus:
        btn.state |= QStyle.StateFlag.State_HasFocus
    style = widget.style() if widget else QApplication.style()
    p = QPainter(pix)
    style.drawControl(QStyle.ControlElement.CE_PushButtonBevel, btn, p, widget)
    p.end()
    QPixmapCache.insert(key, pix)
    return pix
