"""Painting of the node table's cells: lamp, address button, speed slider + LCD, bars.

Painted, not widgets: 200 rows × 9 live widgets would cost a relayout per tick and thousands
of objects; a delegate paints only the visible cells from the model's roles. The one real
widget is the speed editor, created for the cell being edited and gone afterwards.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QPersistentModelIndex, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontDatabase, QMouseEvent, QPainter, QPalette
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
    AGGREGATE_ROLE,
    PENDING_ROLE,
    SPEED_MAX,
    SPEED_MIN,
    SPEED_STEP,
    UP_ROLE,
    VALUE_ROLE,
)

Index = QModelIndex | QPersistentModelIndex

LCD_WIDTH = 66  # pixels of the LCD at the right of the speed cell
PAD = 3


def _panel(painter: QPainter, option: QStyleOptionViewItem, index: Index) -> QStyle:
    """Selection/alternate background the way the style draws it, so keyboard focus stays visible."""
    opt = QStyleOptionViewItem(option)
    QStyledItemDelegate().initStyleOption(opt, index)
    opt.text = ""
    widget = option.widget  # type: ignore[attr-defined]
    style = widget.style() if widget else QApplication.style()
    style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, opt, painter, widget)
    return style


def _focus(painter: QPainter, option: QStyleOptionViewItem, style: QStyle) -> None:
    if option.state & QStyle.StateFlag.State_HasFocus:  # type: ignore[attr-defined]
        painter.save()
        pen_color = option.palette.color(QPalette.ColorRole.Highlight)  # type: ignore[attr-defined]
        painter.setPen(pen_color)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(option.rect.adjusted(1, 1, -2, -2))  # type: ignore[attr-defined]
        painter.restore()


class LampDelegate(QStyledItemDelegate):
    """A round lamp (green up, red down, grey connecting, amber some) and the node id."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        style = _panel(painter, option, index)
        c = theme.colors(option.palette)  # type: ignore[attr-defined]
        up = index.data(UP_ROLE)
        color = {True: c.up, False: c.down, None: c.connecting}.get(up, c.load_high)
        rect: QRect = option.rect  # type: ignore[attr-defined]
        d = min(rect.height() - 2 * PAD - 2, 16)
        lamp = QRectF(rect.left() + 6, rect.center().y() - d / 2 + 1, d, d)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(color.darker(150))
        painter.setBrush(color)
        painter.drawEllipse(lamp)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(255, 255, 255, 90))
        painter.drawEllipse(QRectF(lamp.left() + d * 0.22, lamp.top() + d * 0.15, d * 0.4, d * 0.3))
        text_rect = rect.adjusted(int(lamp.width()) + 12, 0, -PAD, 0)
        _text(painter, option, text_rect, str(index.data() or ""), Qt.AlignmentFlag.AlignVCenter, bold=True)
        painter.restore()
        _focus(painter, option, style)

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        return QSize(78, 26)


class ButtonDelegate(QStyledItemDelegate):
    """A push-button look; a click (or Enter/Space in the view) emits `clicked`."""

    clicked = Signal(QModelIndex)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        style = _panel(painter, option, index)
        btn = QStyleOptionButton()
        btn.rect = option.rect.adjusted(2, 2, -2, -2)  # type: ignore[attr-defined]
        btn.palette = option.palette  # type: ignore[attr-defined]
        btn.state = QStyle.StateFlag.State_Enabled | QStyle.StateFlag.State_Raised
        if option.state & QStyle.StateFlag.State_MouseOver:  # type: ignore[attr-defined]
            btn.state |= QStyle.StateFlag.State_MouseOver
        if option.state & QStyle.StateFlag.State_HasFocus:  # type: ignore[attr-defined]
            btn.state |= QStyle.StateFlag.State_HasFocus
        btn.text = str(index.data() or "")
        widget = option.widget  # type: ignore[attr-defined]
        painter.save()
        if index.data(AGGREGATE_ROLE):
            f = QFont(option.font)  # type: ignore[attr-defined]
            f.setBold(True)
            painter.setFont(f)
            btn.fontMetrics = painter.fontMetrics()
        style.drawControl(QStyle.ControlElement.CE_PushButton, btn, painter, widget)
        painter.restore()

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
        style = _panel(painter, option, index)
        c = theme.colors(option.palette)  # type: ignore[attr-defined]
        rect: QRect = option.rect.adjusted(PAD + 1, PAD + 1, -PAD - 1, -PAD - 1)  # type: ignore[attr-defined]
        value = index.data(VALUE_ROLE)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(c.bar_back)
        painter.drawRoundedRect(QRectF(rect), 3, 3)
        if value is not None:
            frac = max(0.0, min(1.0, float(value) / 100.0))
            color = c.memory if self.kind == "memory" else c.load
            if self.high is not None and float(value) >= self.high:
                color = c.load_high
            fill = QRectF(rect.left(), rect.top(), rect.width() * frac, rect.height())
            painter.setBrush(color)
            painter.drawRoundedRect(fill, 3, 3)
        text = str(index.data() or "")
        # the figure must read on both the fill and the empty part: outline it
        fg = option.palette.color(QPalette.ColorRole.Text)  # type: ignore[attr-defined]
        _text(painter, option, rect, text, Qt.AlignmentFlag.AlignCenter, color=fg, halo=True)
        painter.restore()
        _focus(painter, option, style)

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        return QSize(130, 26)


class TextDelegate(QStyledItemDelegate):
    """Plain text with our focus frame, so every column shows the keyboard position the same way."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        opt = QStyleOptionViewItem(option)
        opt.state &= ~QStyle.StateFlag.State_HasFocus  # type: ignore[attr-defined]
        super().paint(painter, opt, index)
        widget = option.widget  # type: ignore[attr-defined]
        _focus(painter, option, widget.style() if widget else QApplication.style())


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

    @staticmethod
    def slider_rect(cell: QRect) -> QRect:
        return cell.adjusted(PAD + 2, 1, -(LCD_WIDTH + 2 * PAD), -1)

    @staticmethod
    def lcd_rect(cell: QRect) -> QRect:
        return QRect(cell.right() - LCD_WIDTH - PAD + 1, cell.top() + PAD, LCD_WIDTH, cell.height() - 2 * PAD)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        style = _panel(painter, option, index)
        cell: QRect = option.rect  # type: ignore[attr-defined]
        c = theme.colors(option.palette)  # type: ignore[attr-defined]
        value = index.data(VALUE_ROLE)
        aggregate = bool(index.data(AGGREGATE_ROLE))
        editable = bool(index.flags() & Qt.ItemFlag.ItemIsEditable)
        pending = bool(index.data(PENDING_ROLE))
        widget = option.widget  # type: ignore[attr-defined]
        if not aggregate:
            sl = QStyleOptionSlider()
            sl.rect = self.slider_rect(cell)
            sl.palette = option.palette  # type: ignore[attr-defined]
            sl.orientation = Qt.Orientation.Horizontal
            sl.minimum, sl.maximum = SPEED_MIN, SPEED_MAX
            v = int(value) if value is not None else SPEED_MIN
            sl.sliderPosition = sl.sliderValue = max(SPEED_MIN, min(SPEED_MAX, v))
            sl.singleStep, sl.pageStep = SPEED_STEP, 5 * SPEED_STEP
            sl.subControls = QStyle.SubControl.SC_SliderGroove | QStyle.SubControl.SC_SliderHandle
            sl.state = QStyle.StateFlag.State_Enabled if editable else QStyle.StateFlag.State_None
            if option.state & QStyle.StateFlag.State_HasFocus:  # type: ignore[attr-defined]
                sl.state |= QStyle.StateFlag.State_HasFocus
            style.drawComplexControl(QStyle.ComplexControl.CC_Slider, sl, painter, widget)
        lcd = cell.adjusted(PAD + 2, PAD, -PAD - 1, -PAD) if aggregate else self.lcd_rect(cell)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        border = QColor(c.lcd_text)
        border.setAlpha(70)
        painter.setPen(border)
        painter.setBrush(c.lcd_back)
        painter.drawRoundedRect(QRectF(lcd).adjusted(0.5, 0.5, -0.5, -0.5), 3, 3)
        f = QFont(self._font)
        f.setItalic(pending)
        painter.setFont(f)
        painter.setPen(c.load_high if pending else (c.lcd_text if editable or aggregate else c.connecting))
        text = "—" if value is None else (f"Σ {value}" if aggregate else str(value))
        align = Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight
        painter.drawText(lcd.adjusted(4, 0, -5, 0), int(align), text)
        painter.restore()
        _focus(painter, option, style)

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
    rect: QRect,
    text: str,
    align: Qt.AlignmentFlag,
    *,
    bold: bool = False,
    color: QColor | None = None,
    halo: bool = False,
) -> None:
    painter.save()
    f = QFont(option.font)  # type: ignore[attr-defined]
    f.setBold(bold or f.bold())
    painter.setFont(f)
    pal: QPalette = option.palette  # type: ignore[attr-defined]
    selected = bool(option.state & QStyle.StateFlag.State_Selected)  # type: ignore[attr-defined]
    fg = color or pal.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text)
    if halo:
        back = pal.color(QPalette.ColorRole.Base)
        back.setAlpha(170)
        painter.setPen(back)
        for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            painter.drawText(rect.translated(dx, dy), int(align), text)
    painter.setPen(fg)
    painter.drawText(rect, int(align), text)
    painter.restore()
