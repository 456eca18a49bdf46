"""ommigmon's scene: the nodes circle, the process circles, and every animation.

Layout: the main penguin sits in the middle with its processes in rings of squares around it; the
other penguins sit on a circle around that, each with a process circle of its guests (processes
whose home is another node), drawn green with a line from their home penguin. Slots are sticky:
a process keeps its place until it ends, so a circle never reshuffles under the mouse.

Animation: one frame timer (60 Hz) moves travelling squares and turns busy rings; it runs only
while something moves and stops itself afterwards, so an idle monitor costs nothing.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

from PySide6.QtCore import QElapsedTimer, QLineF, QObject, QPoint, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPen, QTransform, QWheelEvent
from PySide6.QtWidgets import (
    QGraphicsLineItem,
    QGraphicsScene,
    QGraphicsSceneHelpEvent,
    QGraphicsView,
    QToolTip,
    QWidget,
)

from ommigmon.items import (
    GUEST_LINE,
    PENGUIN_H,
    Z_LINE,
    Z_PROC,
    Z_TOP,
    Balloon,
    MoreLabel,
    PenguinItem,
    ProcItem,
    ProcKey,
    ring_slot,
    rings_for,
    slots_in_rings,
)
from omview.core.model import NodeState, ProcInfo

# main circle: rings from MAIN_R0 at MAIN_STEP; guest circles around the other penguins
MAIN_R0, MAIN_STEP, MAIN_MAX_RINGS = 62.0, 14.0, 9
GUEST_R0, GUEST_STEP, GUEST_MAX_RINGS = 58.0, 13.0, 3
NODE_SLOT = 150.0  # arc length per outer penguin (full guest circles of neighbours may touch)
FRAME_MS = 16
TRAVEL_S = 0.7  # a migrated square's trip from its old node to its new one
BALLOON_MS = 7000
#: how long the position of a vanished process is kept to start a migration animation from
FORGET_S = 15.0


@dataclass
class Travel:
    item: ProcItem
    start: QPointF
    end: QPointF
    t0: float
    seconds: float


class SlotMap:
    """Sticky slots of one process circle: a process keeps its slot; freed slots are reused first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.of: dict[ProcKey, int] = {}
        self._free: list[int] = []
        self._next = 0

    def take(self, key: ProcKey) -> int | None:
        if key in self.of:
            return self.of[key]
        if self._free:
            i = heapq.heappop(self._free)
        elif self._next < self.capacity:
            i = self._next
            self._next += 1
        else:
            return None
        self.of[key] = i
        return i

    def give(self, key: ProcKey) -> None:
        i = self.of.pop(key, None)
        if i is not None:
            heapq.heappush(self._free, i)

    @property
    def highest(self) -> int:
        return max(self.of.values(), default=-1)


class Circle:
    """One node's process circle: which processes it shows, where, and how many more it has."""

    def __init__(self, main: bool) -> None:
        self.main = main
        if main:
            cap = slots_in_rings(MAIN_MAX_RINGS, MAIN_R0, MAIN_STEP)
        else:
            cap = slots_in_rings(GUEST_MAX_RINGS, GUEST_R0, GUEST_STEP)
        self.slots = SlotMap(cap)
        self.overflow: set[ProcKey] = set()
        self.more = MoreLabel()
        self.start = -math.pi / 2  # angle of slot 0: guests start on the side facing the middle

    def offset(self, index: int) -> tuple[float, float]:
        if self.main:
            return ring_slot(index, MAIN_R0, MAIN_STEP)
        return ring_slot(index, GUEST_R0, GUEST_STEP, self.start)

    def outer_radius(self) -> float:
        if self.main:
            return MAIN_R0 + max(0, rings_for(self.slots.highest + 1, MAIN_R0, MAIN_STEP) - 1) * MAIN_STEP
        return GUEST_R0 + (GUEST_MAX_RINGS - 1) * GUEST_STEP


class MigScene(QGraphicsScene):
    """The model of what is shown, and the items that show it. Fed by the window; Qt-thread only."""

    #: (key, target node, drop position) — a square was dropped on a penguin
    dropped = Signal(tuple, int, QPointF)
    #: key — a square on a remote node was double-clicked
    sendHome = Signal(tuple)
    #: (key, screen position) — right-click on a square
    menuRequested = Signal(tuple, QPoint)
    #: node id — a penguin was double-clicked
    penguinActivated = Signal(int)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setItemIndexMethod(QGraphicsScene.ItemIndexMethod.NoIndex)  # many items move
        self.main_id = 0
        self.penguins: dict[int, PenguinItem] = {}
        self.order: list[int] = []
        self.circles: dict[int, Circle] = {}
        self.items_by_key: dict[ProcKey, ProcItem] = {}
        self._by_pid: dict[tuple[int, int], ProcItem] = {}
        #: per node, what each shown or overflowing key last was
        self._rows: dict[int, dict[ProcKey, ProcInfo]] = {}
        self.departed: set[ProcKey] = set()  # moved away (event seen), until the table drops them
        self.last_pos: dict[tuple[int, int], tuple[QPointF, float]] = {}
        self.expected: dict[tuple[int, int], tuple[QPointF, float]] = {}
        self.travels: dict[ProcItem, Travel] = {}
        self.spinning: set[ProcItem] = set()
        self.balloons: list[Balloon] = []
        self.last_balloon = ""
        self._hot: PenguinItem | None = None
        self._drag_origin: dict[ProcItem, QPointF] = {}
        self.frame = QTimer(self)
        self.frame.setTimerType(Qt.TimerType.PreciseTimer)
        self.frame.setInterval(FRAME_MS)
        self.frame.timeout.connect(self.tick)
        self.zoom = 1.0
        self.frames = 0  # frames run, for tests and the bench
        self.frame_ns = 0  # time spent in tick(), for the bench
        self._clock = QElapsedTimer()
        self._clock.start()

    # ------------------------------------------------------------ nodes
    def node_label(self, node: int) -> str:
        pg = self.penguins.get(node)
        return pg.label() if pg is not None else ""

    def set_nodes(self, states: list[NodeState], main: int) -> None:
        """(Re)build the penguins; keeps nothing of an earlier layout."""
        for pg in self.penguins.values():
            self.removeItem(pg)
        for c in self.circles.values():
            self.removeItem(c.more)
        for key in list(self.items_by_key):
            self._drop_item(key, remember=False)
        self.penguins.clear()
        self.circles.clear()
        self._rows.clear()
        self.order = [st.id for st in states]
        self.main_id = main if main in self.order else (self.order[0] if self.order else 0)
        for st in states:
            pg = PenguinItem(st)
            pg.set_main(st.id == self.main_id)
            self.addItem(pg)
            self.penguins[st.id] = pg
            c = Circle(st.id == self.main_id)
            c.more.setVisible(False)
            self.addItem(c.more)
            self.circles[st.id] = c
        self.relayout()

    def update_node(self, st: NodeState) -> None:
        pg = self.penguins.get(st.id)
        if pg is None:
            return
        was = pg.up
        pg.update_state(st)
        if was != st.up:  # a down node's squares are what it last reported: faded
            for key, item in self.items_by_key.items():
                if key[0] == st.id:
                    item.setOpacity(1.0 if st.up else 0.35)

    def outer_radius(self) -> float:
        n_out = max(1, len(self.order) - 1)
        main = self.circles.get(self.main_id)
        inner = (main.outer_radius() if main else MAIN_R0) + GUEST_R0 + (GUEST_MAX_RINGS - 1) * GUEST_STEP + 70
        return max(inner, n_out * NODE_SLOT / (2 * math.pi))

    def relayout(self) -> None:
        """Put every penguin, circle and square where it belongs now."""
        others = [i for i in self.order if i != self.main_id]
        radius = self.outer_radius()
        self._radius = radius
        centres: dict[int, QPointF] = {self.main_id: QPointF(0, 0)}
        for k, nid in enumerate(others):
            a = -math.pi / 2 + 2 * math.pi * k / max(1, len(others))
            centres[nid] = QPointF(radius * math.cos(a), radius * math.sin(a))
        for nid, pg in self.penguins.items():
            pg.setPos(centres.get(nid, QPointF()))
        self.set_zoom(self.zoom)
        for nid, c in self.circles.items():
            centre = centres.get(nid, QPointF())
            if nid != self.main_id:  # slot 0 faces the main penguin, where most lines come from
                c.start = math.atan2(-centre.y(), -centre.x())
            c.more.setPos(centre + QPointF(0, c.outer_radius() + 16))
        for item in self.items_by_key.values():
            self._place(item, animate=False)
        margin = 160.0
        r = radius + GUEST_R0 + GUEST_MAX_RINGS * GUEST_STEP + margin
        self.setSceneRect(QRectF(-r, -r, 2 * r, 2 * r))

    def layout_rect(self) -> QRectF:
        """What a "fit" shows: every penguin with its circle and label, or the lone main circle."""
        main = self.circles.get(self.main_id)
        inner = (main.outer_radius() if main else MAIN_R0) + 24
        if len(self.order) > 1:
            r = max(inner, getattr(self, "_radius", 0.0) + GUEST_R0 + (GUEST_MAX_RINGS - 1) * GUEST_STEP + 16)
        else:
            r = max(inner, PENGUIN_H)
        return QRectF(-r, -r, 2 * r, 2 * r + 24)

    def set_zoom(self, zoom: float) -> None:
        """The view's scale: labels keep their pixel size; names go when penguins crowd."""
        self.zoom = zoom
        n_out = max(1, len(self.order) - 1)
        spacing = 2 * math.pi * getattr(self, "_radius", 1.0) / n_out if len(self.order) > 2 else 1e9
        compact = spacing * zoom < 96
        for pg in self.penguins.values():
            pg.label_item.set_view(zoom, compact)

    def centre(self, node: int) -> QPointF:
        pg = self.penguins.get(node)
        return pg.pos() if pg is not None else QPointF()

    def penguin_at(self, pos: QPointF) -> PenguinItem | None:
        for it in self.items(pos):
            if isinstance(it, PenguinItem):
                return it
        best: tuple[float, PenguinItem] | None = None
        for pg in self.penguins.values():  # near misses count: penguins are small when zoomed out
            d = QLineF(pg.pos(), pos).length()
            if d < PENGUIN_H * 0.9 and (best is None or d < best[0]):
                best = (d, pg)
        return best[1] if best else None

    # ------------------------------------------------------------ processes
    def wanted(self, node: int, p: ProcInfo) -> bool:
        """Shown: everything on the main node; on the others, their guests (as sync_node picks)."""
        return node == self.main_id or bool(p.home and p.home != node)

    def sync_node(self, node: int, procs: Iterable[ProcInfo]) -> bool:
        """Make the squares of one node match its process table (added, changed, gone).

        Runs for every node with news, once a second each: on a node other than the main one only
        its guests matter, so they are picked out first; rows are compared by identity (the core
        replaces a changed row, never mutates it). Returns whether anything shown changed."""
        circle = self.circles.get(node)
        if circle is None:
            return False
        if node != self.main_id:
            procs = [p for p in procs if p.home and p.home != node]
        rows = self._rows.setdefault(node, {})
        departed = self.departed
        seen: set[ProcKey] = set()
        added: list[tuple[ProcKey, ProcInfo]] = []
        changed = False
        for p in procs:
            key = (node, p.pid, p.start)
            seen.add(key)
            if rows.get(key) is p or key in departed:
                continue
            self._take_row(key, p, rows, circle, added)
            changed = True
        if len(seen) != len(rows) or departed:
            gone = [k for k in rows if k not in seen]
            gone += [k for k in departed if k[0] == node and k not in seen]
            for key in gone:
                self._forget_row(key, rows, circle)
                changed = True
        return self._settle(node, circle, rows, added, changed)

    def sync_keys(self, node: int, keys: list[tuple[int, int]], rows: list[ProcInfo | None]) -> bool:
        """Only these (pid, start) keys of one node changed; `rows` are their current rows (None =
        gone). What a 1 Hz sample usually brings: a few keys, not the node's whole table."""
        circle = self.circles.get(node)
        if circle is None:
            return False
        table = self._rows.setdefault(node, {})
        departed = self.departed
        main = node == self.main_id
        added: list[tuple[ProcKey, ProcInfo]] = []
        changed = False
        for (pid, start), p in zip(keys, rows, strict=True):
            key = (node, pid, start)
            if p is None or not (main or (p.home and p.home != node)):
                if key in table or key in departed:
                    self._forget_row(key, table, circle)
                    changed = True
                continue
            if key in departed or table.get(key) is p:
                continue
            self._take_row(key, p, table, circle, added)
            changed = True
        return self._settle(node, circle, table, added, changed)

    def _take_row(self, key: ProcKey, p: ProcInfo, rows: dict[ProcKey, ProcInfo], circle: Circle,
                  added: list[tuple[ProcKey, ProcInfo]]) -> None:
        """A new or replaced row: update its square in place, or queue a new square."""
        rows[key] = p
        item = self.items_by_key.get(key)
        if item is not None:
            was_guest = item.guest
            item.update_proc(p)
            if item.guest != was_guest:
                self._update_line(item)
        elif key not in circle.overflow:
            added.append((key, p))

    def _forget_row(self, key: ProcKey, rows: dict[ProcKey, ProcInfo], circle: Circle) -> None:
        self.departed.discard(key)
        rows.pop(key, None)
        circle.overflow.discard(key)
        if key in self.items_by_key:
            self._drop_item(key)

    def _settle(self, node: int, circle: Circle, rows: dict[ProcKey, ProcInfo],
                added: list[tuple[ProcKey, ProcInfo]], changed: bool) -> bool:
        """Place the new squares in PID order, then let waiting ones into freed slots."""
        added.sort(key=lambda kp: kp[0][1])
        for key, p in added:
            self._add_item(key, p)
        while circle.overflow and len(circle.slots.of) < circle.slots.capacity:
            key = min(circle.overflow, key=lambda k: k[1])
            circle.overflow.discard(key)
            self._add_item(key, rows[key])
        if changed:
            self._update_more(node)
        return changed

    def _add_item(self, key: ProcKey, p: ProcInfo) -> None:
        node = key[0]
        circle = self.circles[node]
        if circle.slots.take(key) is None:
            circle.overflow.add(key)
            return
        item = ProcItem(self, node, p)
        pg = self.penguins.get(node)
        if pg is not None and not pg.up:
            item.setOpacity(0.35)
        self.items_by_key[key] = item
        self._by_pid[(node, p.pid)] = item
        self.addItem(item)
        origin = self.expected.pop((node, p.pid), None)
        self._place(item, animate=False)
        self._update_line(item)
        if origin is not None and time.monotonic() - origin[1] < FORGET_S:
            self._travel(item, origin[0], item.slot_pos)
        grew = circle.main and circle.slots.of[key] == circle.slots.highest
        if grew and rings_for(circle.slots.highest + 1, MAIN_R0, MAIN_STEP) != rings_for(
            circle.slots.highest, MAIN_R0, MAIN_STEP
        ):
            self._update_more(node)

    def _drop_item(self, key: ProcKey, remember: bool = True) -> None:
        item = self.items_by_key.pop(key, None)
        if item is None:
            return
        if self._by_pid.get((key[0], key[1])) is item:
            del self._by_pid[(key[0], key[1])]
        circle = self.circles.get(key[0])
        if circle is not None:
            circle.slots.give(key)
        if remember:
            self.last_pos[(key[0], key[1])] = (item.pos(), time.monotonic())
            if len(self.last_pos) > 2000:
                self._forget_old()
        self.travels.pop(item, None)
        self.spinning.discard(item)
        self._drag_origin.pop(item, None)
        if item.line is not None:
            self.removeItem(item.line)
            item.line = None
        self.removeItem(item)

    def _forget_old(self) -> None:
        now = time.monotonic()
        for d in (self.last_pos, self.expected):
            for k in [k for k, (_, t) in d.items() if now - t > FORGET_S]:
                del d[k]

    def _place(self, item: ProcItem, animate: bool) -> None:
        circle = self.circles[item.node]
        idx = circle.slots.of.get(item.key)
        if idx is None:
            return
        dx, dy = circle.offset(idx)
        item.slot_pos = self.centre(item.node) + QPointF(dx, dy)
        tr = self.travels.get(item)
        if tr is not None:
            tr.end = item.slot_pos
            return
        if item.dragging or item.migrating:
            return
        if animate:
            self._travel(item, item.pos(), item.slot_pos)
        else:
            item.setPos(item.slot_pos)
            self._update_line(item)

    def _update_line(self, item: ProcItem) -> None:
        if not item.guest:
            if item.line is not None:
                self.removeItem(item.line)
                item.line = None
            return
        if item.line is None:
            item.line = QGraphicsLineItem()
            item.line.setPen(QPen(GUEST_LINE, 0))  # hairline: the raster engine's fast path
            item.line.setZValue(Z_LINE)
            item.line.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
            self.addItem(item.line)
        item.line.setLine(QLineF(self.centre(item.home), item.pos()))

    def _update_more(self, node: int) -> None:
        c = self.circles[node]
        if c.overflow or c.more.hidden:
            c.more.set_count(len(c.overflow))
            c.more.setPos(self.centre(node) + QPointF(0, c.outer_radius() + 16))

    def item(self, node: int, pid: int) -> ProcItem | None:
        return self._by_pid.get((node, pid))

    def shown_count(self) -> int:
        return len(self.items_by_key)

    # ------------------------------------------------------------ migrations
    def set_progress(self, node: int, pid: int, phase: str, done: int, total: int) -> None:
        item = self.item(node, pid)
        if item is None or item.key in self.departed:
            return
        item.migrating = True
        item.phase = phase
        item.progress = min(1.0, done / total) if total > 0 and phase in ("dump", "transfer") else None
        if item.progress is None:
            self.spinning.add(item)
            self._kick()
        else:
            self.spinning.discard(item)
        item.ring_update()

    def moved(self, src: int, pid: int, dst: int, new_pid: int) -> None:
        """A process went from src to dst (its new PID there): its square travels along the line."""
        old = self.item(src, pid)
        if old is not None:
            origin = old.pos()
            self.departed.add(old.key)
            self._drop_item(old.key, remember=False)
        else:
            got = self.last_pos.pop((src, pid), None)
            if got is None:
                return
            origin = got[0]
        new = self.item(dst, new_pid)
        if new is not None:
            self._travel(new, origin, new.slot_pos)
        else:
            self.expected[(dst, new_pid)] = (origin, time.monotonic())

    def bounce(self, node: int, pid: int, reason: str, error: bool = True) -> None:
        """A migration did not happen: the square goes back to its slot and a balloon says why."""
        item = self.item(node, pid)
        if item is not None:
            item.migrating = False
            item.progress = None
            self.spinning.discard(item)
            item.setZValue(Z_PROC)
            self._travel(item, item.pos(), item.slot_pos, 0.35)
            at = item.slot_pos
        else:
            at = self.centre(node)
        self.balloon(at, reason, error)

    def stop_busy(self, node: int, pid: int) -> None:
        item = self.item(node, pid)
        if item is not None and item.migrating:
            item.migrating = False
            self.spinning.discard(item)

    def balloon(self, at: QPointF, text: str, error: bool = True) -> Balloon:
        b = Balloon(text, error)
        b.setPos(at)
        self.addItem(b)
        self.balloons.append(b)
        self.last_balloon = text

        def gone() -> None:
            if b in self.balloons:
                self.balloons.remove(b)
                self.removeItem(b)

        QTimer.singleShot(BALLOON_MS, self, gone)
        return b

    # ------------------------------------------------------------ animation
    def _travel(self, item: ProcItem, start: QPointF, end: QPointF, seconds: float = TRAVEL_S) -> None:
        if QLineF(start, end).length() < 0.5:
            item.setPos(end)
            self._update_line(item)
            return
        item.setPos(start)
        if item.line is not None:
            item.line.setLine(QLineF(self.centre(item.home), start))
        item.setZValue(Z_TOP)
        self.travels[item] = Travel(item, QPointF(start), QPointF(end), time.monotonic(), seconds)
        self._kick()

    def _kick(self) -> None:
        if not self.frame.isActive():
            self.frame.start()

    @property
    def animating(self) -> bool:
        return self.frame.isActive()

    def tick(self) -> None:
        t_in = self._clock.nsecsElapsed()
        now = time.monotonic()
        done: list[ProcItem] = []
        for item, tr in self.travels.items():
            f = min(1.0, (now - tr.t0) / tr.seconds)
            e = f * f * (3 - 2 * f)  # smoothstep: leaves and lands gently
            item.setPos(tr.end if f >= 1.0 else tr.start + (tr.end - tr.start) * e)
            if item.line is not None:
                item.line.setLine(QLineF(self.centre(item.home), item.pos()))
            if f >= 1.0:
                done.append(item)
        for item in done:
            del self.travels[item]
            item.setZValue(Z_PROC)
            self._update_line(item)
        for item in self.spinning:
            item.spin = (item.spin + 9.0) % 360.0
            item.ring_update()
        self.frames += 1
        if not self.travels and not self.spinning:
            self.frame.stop()
        self.frame_ns += self._clock.nsecsElapsed() - t_in

    # ------------------------------------------------------------ from the items (mouse)
    def drag_started(self, item: ProcItem) -> None:
        self._drag_origin[item] = QPointF(item.slot_pos)
        self.travels.pop(item, None)
        item.setZValue(Z_TOP)

    def drag_moved(self, item: ProcItem, pos: QPointF) -> None:
        pg = self.penguin_at(pos)
        if pg is not None and pg.node_id == item.node:
            pg = None
        if pg is not self._hot:
            if self._hot is not None:
                self._hot.set_hot(False)
            if pg is not None:
                pg.set_hot(True)
            self._hot = pg
        if item.line is not None:
            item.line.setLine(QLineF(self.centre(item.home), pos))

    def drag_dropped(self, item: ProcItem, pos: QPointF) -> None:
        if self._hot is not None:
            self._hot.set_hot(False)
            self._hot = None
        self._drag_origin.pop(item, None)
        pg = self.penguin_at(pos)
        if pg is None or pg.node_id == item.node:
            self._travel(item, item.pos(), item.slot_pos, 0.3)
            return
        # the square waits just outside the target penguin, on the side it came from
        d = QLineF(pg.pos(), item.slot_pos)
        if d.length() > 1:
            d.setLength(GUEST_R0)
            self._travel(item, item.pos(), d.p2(), 0.15)
        item.migrating = True
        item.progress = None
        self.spinning.add(item)
        self._kick()
        self.dropped.emit(item.key, pg.node_id, pos)

    def double_clicked(self, item: ProcItem) -> None:
        self.sendHome.emit(item.key)

    def context_requested(self, item: ProcItem, screen_pos: QPoint) -> None:
        self.menuRequested.emit(item.key, screen_pos)

    def tooltip_at(self, pos: QPointF) -> str:
        """The tooltip of the topmost item at `pos` (built on demand: updates never format tooltips)."""
        views = self.views()
        dt = views[0].viewportTransform() if views else QTransform()
        for it in self.items(pos, Qt.ItemSelectionMode.IntersectsItemShape, Qt.SortOrder.DescendingOrder, dt):
            while it is not None and not hasattr(it, "tooltip_text"):
                it = it.parentItem()
            if it is not None and it.isVisible():
                return str(it.tooltip_text())
        return ""

    def helpEvent(self, event: QGraphicsSceneHelpEvent) -> None:
        text = self.tooltip_at(event.scenePos())
        if text:
            QToolTip.showText(event.screenPos(), text, event.widget())
            event.setAccepted(True)
        else:
            QToolTip.hideText()
            event.setAccepted(False)

    def penguin_double_clicked(self, pg: PenguinItem) -> None:
        self.penguinActivated.emit(pg.node_id)


class MigView(QGraphicsView):
    """Zoom with the wheel (around the cursor), pan by dragging the background."""

    zoomed = Signal(float)

    def __init__(self, scene: MigScene, parent: QWidget | None = None) -> None:
        super().__init__(scene, parent)
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.SmoothPixmapTransform)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setOptimizationFlag(QGraphicsView.OptimizationFlag.DontSavePainterState, True)
        self.setBackgroundBrush(QColor("#f3f6f9"))
        self.setMouseTracking(True)
        self.setAccessibleName("Nodes and processes")
        self.zoomed.connect(scene.set_zoom)
        self.user_zoomed = False  # the window keeps fitting the cluster in until the user zooms

    def wheelEvent(self, event: QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(1.2**steps)
        event.accept()

    def zoom_by(self, factor: float) -> None:
        cur = self.transform().m11()
        factor = max(0.05 / cur, min(8.0 / cur, factor))
        self.user_zoomed = True
        self.scale(factor, factor)
        self.zoomed.emit(self.transform().m11())

    def fit(self) -> None:
        sc = self.scene()
        if sc is None:
            return
        r = sc.layout_rect() if isinstance(sc, MigScene) else sc.itemsBoundingRect()
        self.fitInView(r, Qt.AspectRatioMode.KeepAspectRatio)
        self.user_zoomed = False
        self.zoomed.emit(self.transform().m11())

    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:
        super().drawBackground(painter, rect)
        sc = self.scene()
        if not isinstance(sc, MigScene) or len(sc.order) < 2:
            return
        # the nodes circle, faint (a solid opaque hairline: a dashed antialiased circle cost 3 ms a frame)
        painter.setPen(QPen(QColor("#d3dbe3"), 0))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        r = getattr(sc, "_radius", 0.0)
        painter.drawEllipse(QPointF(0, 0), r, r)
