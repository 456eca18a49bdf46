"""The things on ommigmon's canvas: penguins (nodes), process squares, balloons, "+N more" labels.

Items paint themselves with plain QPainter calls and hold no timers: the scene drives every
animation from one frame timer (see ommigmon.scene). Geometry is in scene units; labels and
balloons ignore the view's scale so they stay readable when zoomed out over 64 nodes.
"""

from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPen
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsRectItem,
    QGraphicsSceneMouseEvent,
    QStyleOptionGraphicsItem,
    QWidget,
)

from omview.core.model import NodeState, ProcInfo

if TYPE_CHECKING:
    from ommigmon.scene import MigScene

ProcKey = tuple[int, int, int]  # node it runs on, pid, start

PENGUIN_W = 56.0
PENGUIN_H = 64.0
SQUARE = 9.0  # a process square at 0 % CPU; grows to SQUARE_MAX at 100 %
SQUARE_MAX = 12.0
HOME_COLOR = QColor("#111111")
GUEST_COLOR = QColor("#1f9d3a")
GUEST_LINE = QColor("#86c995")  # opaque: long alpha-blended lines are what made frames slow
IDLE_HOME = QColor("#3c3c3c")  # below 5 % CPU: a shade lighter
IDLE_GUEST = QColor("#5fbf72")
DROP_COLOR = QColor("#2e7dd7")
REFUSED_COLOR = QColor("#d32f2f")

#: z order: lines under penguins under squares; a dragged or travelling square above all
Z_LINE, Z_NODE, Z_PROC, Z_LABEL, Z_TOP, Z_BALLOON = 1, 2, 3, 4, 10, 20


@lru_cache(maxsize=4)
def penguin_renderer(down: bool) -> QSvgRenderer:
    """Our penguin art from the `resources` package (importlib.resources, works from a wheel)."""
    name = "penguin-down.svg" if down else "penguin.svg"
    data = (resources.files("resources") / name).read_bytes()
    r = QSvgRenderer(data)
    if not r.isValid():
        raise RuntimeError(f"resources/{name} is not a valid SVG")
    return r


def square_size(cpu: float) -> float:
    return SQUARE + (SQUARE_MAX - SQUARE) * max(0.0, min(1.0, cpu / 100.0))


def fmt_mem(n: int) -> str:
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n} B"


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def proc_tooltip(node: int, p: ProcInfo, node_label: str = "") -> str:
    home = p.home or node
    where = f"node {node}" + (f" ({_esc(node_label)})" if node_label else "")
    lines = [
        f"<b>PID {p.pid}</b> on {where}",
        f"home node {home}" + ("" if home == node else " — <span style='color:#1f9d3a'>migrated here</span>"),
        f"<tt>{_esc(p.cmd[:300]) or '?'}</tt>",
        f"CPU {p.cpu:.1f} %, memory {fmt_mem(p.rss)}, user {_esc(p.user) or '?'}, state {_esc(p.state) or '?'}",
    ]
    if p.nmigs:
        lines.append(f"migrations: {p.nmigs}")
    if p.cantmove:
        lines.append(f"cannot move: {_esc(p.cantmove)}")
    lines.append("<i>drag onto a penguin to migrate; right-click for more</i>")
    return "<br>".join(lines)


# ---------------------------------------------------------------- ring layout


def ring_capacity(ring: int, r0: float, step: float) -> int:
    return max(1, int(2 * math.pi * (r0 + ring * step) / step))


def ring_slot(index: int, r0: float, step: float, start: float = -math.pi / 2) -> tuple[float, float]:
    """Offset of slot `index` in rings growing outward: ring k has radius r0 + k·step and as many
    slots as fit at `step` apart; slot 0 is at angle `start` (default: the top), then clockwise."""
    ring = 0
    while True:
        cap = ring_capacity(ring, r0, step)
        if index < cap:
            break
        index -= cap
        ring += 1
    r = r0 + ring * step
    # stagger alternate rings by half a slot so the rings read as a spiral, not spokes
    a = start + 2 * math.pi * (index + (0.5 if ring % 2 else 0.0)) / cap
    return r * math.cos(a), r * math.sin(a)


def slots_in_rings(rings: int, r0: float, step: float) -> int:
    return sum(ring_capacity(k, r0, step) for k in range(rings))


def rings_for(count: int, r0: float, step: float) -> int:
    rings, total = 0, 0
    while total < count:
        total += ring_capacity(rings, r0, step)
        rings += 1
    return rings


# ---------------------------------------------------------------- items


class PenguinItem(QGraphicsItem):
    """One node: the penguin, red with a cross when down; id and name underneath."""

    def __init__(self, st: NodeState) -> None:
        super().__init__()
        self.node_id = st.id
        self.st = st
        self.main = False
        self.hot = False  # a dragged square hovers over this penguin
        self.setZValue(Z_NODE)
        self.setAcceptHoverEvents(False)
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.label_item = NodeLabel(self)
        self.update_state(st)

    def boundingRect(self) -> QRectF:
        return QRectF(-PENGUIN_W / 2 - 10, -PENGUIN_H / 2 - 10, PENGUIN_W + 20, PENGUIN_H + 20)

    def shape(self) -> QPainterPath:
        p = QPainterPath()
        p.addRoundedRect(QRectF(-PENGUIN_W / 2 - 4, -PENGUIN_H / 2 - 4, PENGUIN_W + 8, PENGUIN_H + 8), 10, 10)
        return p

    @property
    def up(self) -> bool:
        return self.st.up

    def label(self) -> str:
        return self.st.label

    def update_state(self, st: NodeState) -> None:
        old = None if self.st is st else self.st
        self.st = st
        if old is None or old.up != st.up or old.label != st.label:  # the load alone repaints nothing
            self.label_item.refresh()
            self.update()

    def tooltip_text(self) -> str:
        """Built when the mouse asks (MigScene.helpEvent), not on every sample."""
        st = self.st
        s = st.sample
        if st.up and s is not None:
            tip = (f"<b>node {st.id}</b> {_esc(st.label)} — up<br>load {s.load:.0f} %, {s.cpus} CPU, "
                   f"speed {s.speed}, {s.nprocs} processes<br>admin: {s.admin.flags_text()}")
            if s.criu:
                tip += f"<br>migration: {_esc(s.criu)}"
        else:
            tip = f"<b>node {st.id}</b> {_esc(st.label)} — <span style='color:#d32f2f'>down</span>: {_esc(st.reason)}"
        return tip + "<br><i>drop a process here to migrate it; double-click: make this the main penguin</i>"

    def set_hot(self, hot: bool) -> None:
        if hot != self.hot:
            self.hot = hot
            self.update()

    def set_main(self, main: bool) -> None:
        if main != self.main:
            self.main = main
            self.label_item.update()
            self.update()

    def mousePressEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            event.accept()  # so the double-click reaches us (a press elsewhere pans the view)
        else:
            event.ignore()

    def mouseDoubleClickEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        sc = self.scene()
        if event.button() == Qt.MouseButton.LeftButton and hasattr(sc, "penguin_double_clicked"):
            sc.penguin_double_clicked(self)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        body = QRectF(-PENGUIN_W / 2, -PENGUIN_H / 2, PENGUIN_W, PENGUIN_H)
        if self.hot:
            painter.setPen(QPen(DROP_COLOR, 3))
            painter.setBrush(QColor(46, 125, 215, 40))
            painter.drawRoundedRect(body.adjusted(-6, -6, 6, 6), 12, 12)
        elif self.main:
            painter.setPen(QPen(QColor("#f0a33a"), 2, Qt.PenStyle.DashLine))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawEllipse(QPointF(0, 0), PENGUIN_W / 2 + 6, PENGUIN_H / 2 + 6)
        penguin_renderer(not self.st.up).render(painter, body)


class NodeLabel(QGraphicsItem):
    """"ID name" under a penguin, the same size at every zoom (readable over 64 nodes)."""

    def __init__(self, parent: PenguinItem) -> None:
        super().__init__(parent)
        self.penguin = parent
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)  # text is drawn once, then blitted
        self._font = QFont()
        self._font.setPixelSize(12)
        self._bold = QFont(self._font)
        self._bold.setBold(True)
        self._parts = ("", "")
        self._w = 0.0
        self._y = PENGUIN_H / 2 + 2  # pixels below the penguin's centre at the current zoom
        self.compact = False  # only the id: penguins are too close together for names

    def set_view(self, zoom: float, compact: bool) -> None:
        """The view's scale: the label stays 12 px but hangs just below the (scaled) penguin."""
        y = PENGUIN_H / 2 * zoom + 1
        if abs(y - self._y) > 0.2 or compact != self.compact:
            self.prepareGeometryChange()
            self._y = y
            self.compact = compact
            self._parts = ("", "")
            self.refresh()

    def refresh(self) -> None:
        st = self.penguin.st
        name = "" if self.compact else QFontMetricsF(self._font).elidedText(
            st.label, Qt.TextElideMode.ElideMiddle, 110)
        parts = (str(st.id), name)
        if parts != self._parts:
            self.prepareGeometryChange()
            self._parts = parts
            self._w = QFontMetricsF(self._bold).horizontalAdvance(parts[0] + (" " if name else "")) + QFontMetricsF(
                self._font).horizontalAdvance(parts[1]) + 10
        self.update()

    def boundingRect(self) -> QRectF:
        return QRectF(-self._w / 2, self._y, self._w, 17)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        up = self.penguin.st.up
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = self.boundingRect()
        painter.setPen(Qt.PenStyle.NoPen)
        if self.penguin.main:
            painter.setBrush(QColor("#f0a33a"))
        else:
            painter.setBrush(QColor(255, 255, 255, 225) if up else QColor("#fde7e7"))
        painter.drawRoundedRect(r, 8, 8)
        ident, name = self._parts
        painter.setFont(self._bold)
        painter.setPen(REFUSED_COLOR if not up else QColor("#111111"))
        x, base = r.left() + 5, r.top() + 13
        painter.drawText(QPointF(x, base), ident)
        if name:
            x += QFontMetricsF(self._bold).horizontalAdvance(ident + " ")
            painter.setFont(self._font)
            painter.setPen(QColor("#9b1c1c") if not up else QColor("#2b2b2b"))
            painter.drawText(QPointF(x, base), name)


class ProcItem(QGraphicsRectItem):
    """One process: a small square, black at home, green away from its home node.

    Painted by Qt itself (a rect item: no Python per paint, which is what keeps a frame with
    hundreds of squares cheap); a progress ring is a child item that exists only while migrating.
    Mouse: press + move drags it (the scene finds the penguin under the drop); double-click sends a
    guest home; right-click opens the window's menu."""

    def __init__(self, scene: MigScene, node: int, p: ProcInfo) -> None:
        super().__init__()
        self.mscene = scene
        self.node = node
        self.p = p
        self.size = 0.0
        self._style: tuple[Any, ...] = ()
        self.slot_pos = QPointF()  # where it belongs in its circle
        self._migrating = False
        self.ring: Ring | None = None
        self.progress: float | None = None  # 0..1 when bytes are known, None = busy
        self.phase = ""
        self.spin = 0.0
        self._press: QPointF | None = None
        self.dragging = False
        self.line: Any = None  # QGraphicsLineItem from the home penguin, for guests
        self.setZValue(Z_PROC)
        self.setAcceptedMouseButtons(Qt.MouseButton.LeftButton | Qt.MouseButton.RightButton)
        self.setCursor(Qt.CursorShape.OpenHandCursor)
        self.update_proc(p)

    @property
    def key(self) -> ProcKey:
        return (self.node, self.p.pid, self.p.start)

    @property
    def home(self) -> int:
        return self.p.home or self.node

    @property
    def guest(self) -> bool:
        return self.home != self.node

    @property
    def migrating(self) -> bool:
        return self._migrating

    @migrating.setter
    def migrating(self, on: bool) -> None:
        if on == self._migrating:
            return
        self._migrating = on
        if on and self.ring is None:
            self.ring = Ring(self)
        elif not on and self.ring is not None:
            ring, self.ring = self.ring, None
            ring.setParentItem(None)
            if ring.scene() is not None:
                ring.scene().removeItem(ring)
        self.restyle()

    def ring_update(self) -> None:
        if self.ring is not None:
            self.ring.update()

    def tooltip_text(self) -> str:
        return proc_tooltip(self.node, self.p, self.mscene.node_label(self.node))

    def update_proc(self, p: ProcInfo) -> None:
        self.p = p
        self.restyle()

    def restyle(self) -> None:
        """Size from CPU use, colour from home/guest, hollow when stopped: set only what changed."""
        p = self.p
        size = square_size(p.cpu)
        if p.cpu < 5 and not self._migrating:
            color = IDLE_GUEST if self.guest else IDLE_HOME
        else:
            color = GUEST_COLOR if self.guest else HOME_COLOR
        stopped = p.state in ("T", "t")
        style = (size, color.rgba(), stopped)
        if style == self._style:
            return
        self._style = style
        if size != self.size:
            self.size = size
            h = size / 2
            self.setRect(QRectF(-h, -h, size, size))
        if stopped:  # paused: hollow
            self.setBrush(Qt.BrushStyle.NoBrush)
            self.setPen(QPen(color, 2))
        else:
            self.setBrush(QBrush(color))
            self.setPen(Qt.PenStyle.NoPen)


    # ---------------------------------------------------------------- mouse
    def mousePressEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and not self.migrating:
            self._press = event.scenePos()
            self.dragging = False
            event.accept()
        elif event.button() == Qt.MouseButton.RightButton:
            event.accept()
        else:
            event.ignore()

    def mouseMoveEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        if self._press is None:
            return
        if not self.dragging:
            if (event.scenePos() - self._press).manhattanLength() < 4:
                return
            self.dragging = True
            self.mscene.drag_started(self)
        self.setPos(event.scenePos())
        self.mscene.drag_moved(self, event.scenePos())

    def mouseReleaseEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        if event.button() == Qt.MouseButton.RightButton:
            self.mscene.context_requested(self, event.screenPos())
            return
        if self._press is not None and self.dragging:
            self.mscene.drag_dropped(self, event.scenePos())
        self._press = None
        self.dragging = False

    def mouseDoubleClickEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.mscene.double_clicked(self)


class Ring(QGraphicsItem):
    """The progress ring around a migrating square, with the phase beside it: an arc that fills
    with the bytes sent (dump, transfer), or a turning quarter while a phase has no byte count."""

    R = SQUARE_MAX / 2 + 6

    def __init__(self, parent: ProcItem) -> None:
        super().__init__(parent)
        self.proc = parent
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemStacksBehindParent)  # the square stays on top
        self._font = QFont()
        self._font.setPixelSize(10)

    def text(self) -> str:
        p = self.proc
        if p.progress is not None:
            return f"{p.phase} {100 * p.progress:.0f} %"
        return p.phase or "migrating"

    def boundingRect(self) -> QRectF:
        r = self.R + 2
        return QRectF(-r, -r, 2 * r + 90, 2 * r)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = QRectF(-self.R, -self.R, 2 * self.R, 2 * self.R)
        painter.setBrush(QColor(255, 255, 255, 150))
        painter.setPen(QPen(QColor(46, 125, 215, 90), 3))
        painter.drawEllipse(r)
        painter.setPen(QPen(DROP_COLOR, 3, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        if self.proc.progress is None:
            painter.drawArc(r, int(-self.proc.spin * 16), 100 * 16)
        else:
            painter.drawArc(r, 90 * 16, int(-360 * 16 * max(0.02, self.proc.progress)))
        painter.setFont(self._font)
        painter.setPen(QColor("#1d4f91"))
        painter.drawText(QPointF(self.R + 4, 4), self.text())


class MoreLabel(QGraphicsItem):
    """"+N more" under a full process circle (scale-independent text)."""

    def __init__(self) -> None:
        super().__init__()
        self.text = ""
        self.hidden = 0
        self.setZValue(Z_LABEL)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self._font = QFont()
        self._font.setPixelSize(12)
        self._font.setBold(True)

    def set_count(self, n: int) -> None:
        text = f"+{n} more" if n > 0 else ""
        if text != self.text:
            self.prepareGeometryChange()
            self.text = text
            self.setVisible(bool(text))
            self.hidden = n

    def tooltip_text(self) -> str:
        return f"{self.hidden} more processes than this circle shows; omprocs lists them all"

    def boundingRect(self) -> QRectF:
        w = QFontMetricsF(self._font).horizontalAdvance(self.text) + 10
        return QRectF(-w / 2, -9, w, 18)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = self.boundingRect()
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(255, 255, 255, 210))
        painter.drawRoundedRect(r, 8, 8)
        painter.setPen(QColor("#333333"))
        painter.setFont(self._font)
        painter.drawText(r, Qt.AlignmentFlag.AlignCenter, self.text)


class Balloon(QGraphicsItem):
    """A speech balloon with a reason (a refused or failed migration); the scene removes it later."""

    MAX_W = 320.0

    def __init__(self, text: str, error: bool = True) -> None:
        super().__init__()
        self.text = text
        self.error = error
        self.setZValue(Z_BALLOON)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self._font = QFont()
        self._font.setPixelSize(12)
        fm = QFontMetricsF(self._font)
        self._rect = fm.boundingRect(QRectF(0, 0, self.MAX_W, 2000), int(Qt.TextFlag.TextWordWrap), text)
        self._rect.adjust(-8, -6, 8, 6)
        # the tail points at the item's position (0, 0); the body sits above and to the right
        self._rect.moveBottomLeft(QPointF(-14, -12))

    def boundingRect(self) -> QRectF:
        return self._rect.adjusted(-2, -2, 2, 16)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        border = REFUSED_COLOR if self.error else GUEST_COLOR
        path = QPainterPath()
        path.addRoundedRect(self._rect, 7, 7)
        tail = QPainterPath()
        tail.moveTo(-4, self._rect.bottom() - 1)
        tail.lineTo(0, 0)
        tail.lineTo(8, self._rect.bottom() - 1)
        tail.closeSubpath()
        path = path.united(tail)
        painter.setPen(QPen(border, 1.5))
        painter.setBrush(QColor("#fff8e6") if self.error else QColor("#effaf1"))
        painter.drawPath(path)
        painter.setPen(QColor("#202020"))
        painter.setFont(self._font)
        painter.drawText(self._rect.adjusted(8, 6, -8, -6), int(Qt.TextFlag.TextWordWrap), self.text)
