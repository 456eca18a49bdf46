"""The load and memory overviews: one band per node in one pyqtgraph plot, time on x.

openMosixanalyzer drew one small graph per node, lines black and red above 75 % load. One plot
with a band per node keeps that look and one shared time axis, while a single ViewBox pans and
zooms 100 nodes at once (100 linked plots would redraw 100 axes per frame).

Data flow: the view range changes → `wantData(t0, t1, buckets)` after a short debounce (the
window asks the reader for at most one bucket per pixel) → `set_series()` stores the answer →
a timer applies it with setData, never more often than the timer allows.

Frame cost: a pan or zoom only changes the view's transform. Each node's line is a plain
`BandCurve` (a PlotCurveItem) holding what the reader gave — already clipped to the view plus a
margin and downsampled to two points per pixel — so nothing is re-clipped or re-downsampled per
frame (pyqtgraph's clipToView/auto-downsampling rebuilt every path on every frame and cost more
than drawing it). Bands scrolled out of the view are hidden, so Qt neither paints them nor asks
their bounds, and a curve keeps its data bounds across view changes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QKeyEvent, QPen
from PySide6.QtWidgets import QWidget

from omanalyzer.common import PlotColors, plot_colors
from omanalyzer.data import HIGH_LOAD, fmt_bytes, fmt_time, split_line
from omview.core.history import Checkpoint, NodeRecord, SampleSeries

#: Height of one node's band in plot units; the curve uses 0..CLIP of it.
BAND = 130.0
#: Load above this is drawn at this height (the value is in the tooltip and the statistics).
CLIP = 118.0
DEBOUNCE_MS = 120
APPLY_MS = 15
#: Nodes whose curves get setData in one turn of the event loop: 100 nodes are drawn in 4 turns,
#: so the window keeps answering while a long history appears.
APPLY_SLICE = 25
#: Extra time fetched on each side of the view, as a fraction of its width: a pan shows data at once.
MARGIN = 0.5
#: Read this much beyond the history's span (see request()).
SPAN_PAD = 1.0


#: Above this many nodes the lines are 1 px wide: Qt strokes a 1 px path in one go, a wider one
#: segment by segment (pyqtgraph's segmented mode), which costs ~4× per frame at 100 nodes.
THIN_ABOVE = 12

Lines = dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


def prepare(kind: str, data: dict[int, SampleSeries], offsets: dict[int, tuple[float, float]]) -> Lines:
    """The arrays each node's two curves get, computed in the worker (no Qt): split at 75 % for load,
    clipped to the band and moved to its offset. offsets[node] = (offset, memory scale)."""
    out: Lines = {}
    for node, (offset, scale) in offsets.items():
        s = data.get(node)
        if s is None or not len(s):
            e = np.empty(0)
            out[node] = (e, e, e, e)
            continue
        if kind == "load":
            x, y = s.line("load")
            sp = split_line(x, y, HIGH_LOAD)
            out[node] = (sp.low_x, np.minimum(sp.low_y, CLIP) + offset, sp.high_x, np.minimum(sp.high_y, CLIP) + offset)
        else:
            x, used = s.line("mem_used")
            _, total = s.line("mem_total")
            ty = np.minimum(total / scale, CLIP) + offset
            keep = _corners(ty)
            out[node] = (x, np.minimum(used / scale, CLIP) + offset, x[keep], ty[keep])
    return out


def _corners(y: np.ndarray) -> np.ndarray:
    """Indices of the points a polyline needs where it is flat: the ends, and every point whose value
    differs from a neighbour's (NaN included), so a gap stays a gap."""
    n = len(y)
    if n < 3:
        return np.arange(n)
    same_prev = np.r_[False, y[1:] == y[:-1]]
    same_next = np.r_[y[:-1] == y[1:], False]
    return np.flatnonzero(~(same_prev & same_next))


class TimeAxis(pg.DateAxisItem):
    """pyqtgraph's date axis, but ticks less than a minute apart read 10:51:07, not "07.000"."""

    def tickStrings(self, values, scale, spacing):  # noqa: N802
        if spacing < 60:
            fmt = "%H:%M:%S"
            out = [time.strftime(fmt, time.localtime(v)) for v in values]
            if spacing < 1:
                out = [f"{o}.{int(round((v % 1) * 1000)):03d}" for o, v in zip(out, values, strict=True)]
            return out
        return super().tickStrings(values, scale, spacing)


class XZoomViewBox(pg.ViewBox):
    """The wheel zooms time only (bands keep their height); dragging pans both ways."""

    def wheelEvent(self, ev, axis=None):  # noqa: N802
        super().wheelEvent(ev, axis=0)


class BandCurve(pg.PlotCurveItem):
    """A node's line. pyqtgraph forgets a curve's data bounds on every view change and recomputes
    them (nanmin/nanmax of every point) for every item on every frame; the data did not change,
    so only the pixel padding is recomputed here."""

    def viewTransformChanged(self) -> None:  # noqa: N802
        self._boundingRect = None
        self.prepareGeometryChange()


class Part:
    """A node's share of the plot's shared item: its red line (load) or its total-memory line.

    One item draws every node's part (NaN-separated): the red parts are short, and one item
    instead of a hundred halves the cost of opening and of every frame. `xData`/`yData` are this
    node's arrays, `opts` the shared item's (its pen)."""

    def __init__(self, item: pg.PlotDataItem) -> None:
        self.item = item
        self.xData: np.ndarray | None = None
        self.yData: np.ndarray | None = None

    @property
    def opts(self) -> dict[str, Any]:
        return self.item.opts


@dataclass
class NodeCurves:
    node: int
    offset: float
    a: BandCurve  # load: the line at or below 75 % (the node's curve); memory: used
    b: Part  # load: the line above 75 % (red); memory: total
    scale: float = 1.0  # memory: bytes per band unit


class BandPlot(pg.PlotWidget):
    """kind = "load" or "memory". Signals wantData(t0, t1, buckets) and hovered(text)."""

    wantData = Signal(float, float, int)
    hovered = Signal(str)

    def __init__(self, kind: str, parent: QWidget | None = None) -> None:
        self.vb = XZoomViewBox()
        self.date_axis = TimeAxis(orientation="bottom")
        super().__init__(parent, viewBox=self.vb, axisItems={"bottom": self.date_axis})
        self.kind = kind
        self.colors: PlotColors = plot_colors()
        self.nodes: list[NodeRecord] = []
        self.curves: dict[int, NodeCurves] = {}
        self.checkpoint_lines: list[pg.InfiniteLine] = []
        self.series: dict[int, SampleSeries] = {}
        self._pending: dict[int, SampleSeries] | None = None
        self._pending_lines: Lines | None = None
        self._lines: Lines = {}
        self._queue: list[int] = []
        self.loaded: tuple[float, float, int] | None = None  # range and buckets of the data shown
        self.node_loaded: dict[int, tuple[float, float, int]] = {}  # the same, per node (reads come in parts)
        self.requests = 0
        self.applied = 0
        self.span: tuple[float, float] | None = None
        self.layout: dict[int, tuple[float, float]] = {}  # node → (band offset, memory scale)
        self.built = False
        # x is not monotonic across nodes, so this one neither clips nor downsamples (it holds little)
        self.shared = BandCurve(connect="finite")
        self.shared.setZValue(1)
        self.plotItem.addItem(self.shared)
        self.guide = pg.PlotCurveItem(connect="finite")
        self.guide.setZValue(-5)
        self.plotItem.addItem(self.guide)
        self.plotItem.hideButtons()
        self.plotItem.setMenuEnabled(False)
        self.vb.setMouseEnabled(x=True, y=True)
        self.plotItem.showGrid(x=True, y=False, alpha=0.25)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._debounce = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._debounce.timeout.connect(self.request)
        self._apply_timer = QTimer(self, singleShot=True, interval=APPLY_MS)
        self._apply_timer.timeout.connect(self._apply)
        self.vb.sigXRangeChanged.connect(lambda *_: self._debounce.start())
        self.vb.sigYRangeChanged.connect(lambda *_: self._cull())
        self.vb.sigResized.connect(lambda *_: self._debounce.start())
        self.scene().sigMouseMoved.connect(self._mouse_moved)
        self.apply_palette()

    # ------------------------------------------------------------ look
    def apply_palette(self) -> None:
        c = self.colors = plot_colors(self.palette())
        self.setBackground(c.back)
        for name in ("left", "bottom"):
            ax = self.plotItem.getAxis(name)
            ax.setPen(pg.mkPen(c.grid))
            ax.setTextPen(pg.mkPen(c.fore))
        self.guide.setPen(pg.mkPen(c.guide, width=1, style=Qt.PenStyle.DashLine))
        self._style_shared()
        for nc in self.curves.values():
            self._style(nc)
        for line in self.checkpoint_lines:
            line.setPen(pg.mkPen(c.checkpoint, width=1.5))
            line.label.setColor(c.checkpoint)

    def _thin(self) -> bool:
        return len(self.nodes) > THIN_ABOVE

    def _style(self, nc: NodeCurves) -> None:
        c = self.colors
        if self.kind == "load":
            nc.a.setPen(pg.mkPen(c.fore, width=1 if self._thin() else 1.3))
        else:
            nc.a.setPen(pg.mkPen(c.memory, width=1 if self._thin() else 1.5))

    def _style_shared(self) -> None:
        c = self.colors
        if self.kind == "load":
            self.shared.setPen(pg.mkPen(c.high, width=1 if self._thin() else 1.8))
        else:
            self.shared.setPen(pg.mkPen(c.fore, width=1, style=Qt.PenStyle.DashLine))

    # ------------------------------------------------------------ structure
    def set_nodes(self, nodes: list[NodeRecord]) -> None:
        """One band per node, the first at the top."""
        self._queue = []
        self._lines = {}
        self._pending = self._pending_lines = None
        self.series = {}
        self.node_loaded = {}
        self.loaded = None
        for nc in self.curves.values():
            self.plotItem.removeItem(nc.a)
        self.shared.setData([], [])
        self.nodes = list(nodes)
        self.curves = {}
        n = len(nodes)
        self.layout = {node.id: ((n - 1 - i) * BAND, (node.mem_total or 1) / 100.0 if self.kind == "memory" else 1.0)
                       for i, node in enumerate(nodes)}
        self.built = False
        self._style_shared()
        if self.isVisible():
            self.build()
        self._ticks()
        self._guide()
        rows = min(n, 12) or 1
        top = n * BAND
        self.vb.setLimits(yMin=-BAND * 0.1, yMax=top + BAND * 0.1, minYRange=BAND, maxYRange=top + BAND * 0.2)
        self.vb.setYRange(top - rows * BAND - BAND * 0.05, top + BAND * 0.02, padding=0)

    def build(self) -> None:
        """Create the nodes' curves (a hidden tab does it when first shown: items cost ~1 ms each)."""
        if self.built:
            return
        self.built = True
        for node in self.nodes:
            offset, scale = self.layout[node.id]
            a = BandCurve(connect="finite", name=f"{node.label}")  # NaN (gaps) needs the finite check
            self.plotItem.addItem(a)
            nc = NodeCurves(node.id, offset, a, Part(self.shared), scale)
            self._style(nc)
            self.curves[node.id] = nc
        self._cull()

    def _cull(self) -> None:
        """Show only the curves of bands in view: the others cost bounds and index work every frame.
        A band scrolled into view whose data is older than the view's asks for a read."""
        _, (y0, y1) = self.vb.viewRange()
        changed = False
        for nc in self.curves.values():
            vis = nc.offset + BAND >= y0 and nc.offset - 1 <= y1
            if vis != nc.a.isVisible():
                nc.a.setVisible(vis)
                changed = True
        if changed:
            self._set_shared({})
        if self.loaded is not None and any(self.node_loaded.get(n) != self.loaded for n in self.visible_nodes()):
            self._debounce.start()

    def visible_nodes(self) -> list[int]:
        """The nodes whose band is (partly) in view, top first: what a read fetches first."""
        _, (y0, y1) = self.vb.viewRange()
        return [node.id for node in self.nodes
                if self.layout[node.id][0] + BAND >= y0 and self.layout[node.id][0] - 1 <= y1]

    def _ticks(self) -> None:
        major, minor = [], []
        for node in self.nodes:
            offset, scale = self.layout[node.id]
            major.append((offset + 50, node.label))
            if self.kind == "load":
                minor += [(offset, "0"), (offset + HIGH_LOAD, "75"), (offset + 100, "100")]
            else:
                minor += [(offset, "0"), (offset + 100, fmt_bytes(scale * 100))]
        left = self.plotItem.getAxis("left")
        left.setTicks([major, minor])
        left.setWidth(110)
        f = QFont(self.font())
        left.setStyle(tickFont=f)

    def _guide(self) -> None:
        """The faint 75 % line of every load band, one item for all (NaN-separated)."""
        if self.kind != "load" or not self.layout or not self.span:
            self.guide.setData([], [])
            return
        lo, hi = self.span
        offs = [offset + HIGH_LOAD for offset, _ in self.layout.values()]
        self.guide.setData(np.tile([lo, hi, hi], len(offs)), np.array([[o, o, np.nan] for o in offs]).ravel())

    def set_span(self, span: tuple[float, float] | None) -> None:
        self.span = span
        if span:
            lo, hi = span
            pad = max((hi - lo) * 0.05, 60.0)
            self.vb.setLimits(xMin=lo - pad, xMax=hi + pad, minXRange=10.0)
        self._guide()

    def set_checkpoints(self, cps: list[Checkpoint]) -> None:
        for line in self.checkpoint_lines:
            self.plotItem.removeItem(line)
        self.checkpoint_lines = []
        c = self.colors
        for cp in cps:
            text = cp.label or "checkpoint"
            line = pg.InfiniteLine(pos=cp.t, angle=90, movable=False, pen=pg.mkPen(c.checkpoint, width=1.5),
                                   label=text, labelOpts={"position": 0.97, "color": c.checkpoint, "fill": c.back,
                                                          "anchors": [(0, 0), (0, 0)]})
            line.setToolTip(f"checkpoint {fmt_time(cp.t)}{': ' + cp.label if cp.label else ''}")
            line.setZValue(5)
            self.plotItem.addItem(line)
            self.checkpoint_lines.append(line)

    # ------------------------------------------------------------ view
    def view_range(self) -> tuple[float, float]:
        (x0, x1), _ = self.vb.viewRange()
        return float(x0), float(x1)

    def set_view(self, t0: float, t1: float) -> None:
        self.vb.setXRange(t0, t1, padding=0)

    def pixel_width(self) -> int:
        return max(int(self.vb.width()), 50)

    def request(self) -> None:
        """Ask for the visible range plus a margin, at most one bucket per pixel of the view."""
        t0, t1 = self.view_range()
        if not (math.isfinite(t0) and math.isfinite(t1)) or t1 <= t0:
            return
        w = t1 - t0
        lo, hi = t0 - MARGIN * w, t1 + MARGIN * w
        if self.span:
            # ±1 s: span() gives the raw first/last times, packed samples carry them rounded to the ms
            s0, s1 = self.span[0] - SPAN_PAD, self.span[1] + SPAN_PAD
            lo, hi = max(lo, s0), min(hi, s1)
            if hi <= lo:
                lo, hi = s0, s1
        buckets = max(10, int(round(self.pixel_width() * (hi - lo) / w)))
        self.requests += 1
        self.wantData.emit(lo, hi, buckets)

    def offsets(self) -> dict[int, tuple[float, float]]:
        """What prepare() needs to know about the bands (a copy, for the worker)."""
        return dict(self.layout)

    def set_series(self, data: dict[int, SampleSeries], t0: float, t1: float, buckets: int,
                   lines: Lines | None = None) -> None:
        """New data from the reader for some or all nodes (and their lines, when the worker prepared
        them); applied on the timer. The other nodes keep what they show."""
        if self._pending is not None:  # not applied yet: the newer parts join it
            if lines is not None and self._pending_lines is not None:
                self._pending_lines = {**self._pending_lines, **lines}
            else:
                self._pending_lines = None
            self._pending = {**self._pending, **data}
        else:
            self._pending, self._pending_lines = data, lines
        self.loaded = (t0, t1, buckets)
        for node in data:
            self.node_loaded[node] = self.loaded
        if self.isVisible() and not self._apply_timer.isActive():  # a hidden tab draws when shown
            self._apply_timer.start()

    def showEvent(self, ev: Any) -> None:  # noqa: N802
        super().showEvent(ev)
        if not self.built:
            self.build()
        if self.drawing and not self._apply_timer.isActive():
            self._apply_timer.start()

    def apply_now(self) -> None:
        self._apply_timer.stop()
        self.build()  # a hidden tab's curves too: the data must not be dropped for want of them
        while self._pending is not None or self._queue:
            self._apply()

    @property
    def drawing(self) -> bool:
        """Data waiting to be applied, or being applied slice by slice."""
        return self._pending is not None or bool(self._queue)

    def _apply(self) -> None:
        data, self._pending = self._pending, None
        if data is not None:  # newer data replaces what was still being applied
            lines, self._pending_lines = self._pending_lines, None
            self.series = {**self.series, **data}
            offsets = {n: o for n, o in self.layout.items() if n in data}
            if lines is None or set(lines) != set(offsets):
                lines = prepare(self.kind, data, offsets)
            self._lines = {**self._lines, **lines}
            self._queue = [n for n in self.curves if n in self._lines]
            self._set_shared(lines)
        for node in self._queue[:APPLY_SLICE]:
            nc = self.curves.get(node)
            if nc is not None and node in self._lines:
                ax, ay, _, _ = self._lines[node]
                nc.a.setData(ax, ay)
        del self._queue[:APPLY_SLICE]
        if self._queue:
            self._apply_timer.start(0)
        elif data is not None or self._lines:
            self._lines = {}
            self.applied += 1

    def _set_shared(self, lines: Lines) -> None:
        """The second line of every node in view into the shared item, at once (one setData, NaN
        between nodes; it is drawn whole, so bands out of view stay out); `lines` holds the nodes
        that changed."""
        xs, ys = [], []
        for node, nc in self.curves.items():
            if node in lines:
                _, _, nc.b.xData, nc.b.yData = lines[node]
            bx, by = nc.b.xData, nc.b.yData
            if nc.a.isVisible() and bx is not None and by is not None and len(bx):
                xs += [bx, bx[-1:]]
                ys += [by, np.array([np.nan])]
        if xs:
            self.shared.setData(np.concatenate(xs), np.concatenate(ys))
        else:
            self.shared.setData([], [])

    # ------------------------------------------------------------ reading values
    def node_at(self, y: float) -> int | None:
        for node, nc in self.curves.items():
            if nc.offset <= y < nc.offset + BAND:
                return node
        return None

    def value_at(self, node: int, t: float) -> str:
        s = self.series.get(node)
        if s is None or not len(s):
            return "no data"
        i = int(np.clip(np.searchsorted(s.t, t) - (1 if s.width == 0 else 0), 0, len(s) - 1))
        if s.width:
            i = int(np.clip((t - s.t[0]) // s.width, 0, len(s) - 1))
        if self.kind == "load":
            lo, hi, mean = s.load.min[i], s.load.max[i], s.load.mean[i]
            if math.isnan(mean):
                return "down / not recorded"
            return f"load {mean:.0f} %" if s.width == 0 or lo == hi else f"load {lo:.0f}–{hi:.0f} % (mean {mean:.0f})"
        used, total = s.mem_used.mean[i], s.mem_total.mean[i]
        if math.isnan(used):
            return "down / not recorded"
        return f"memory {fmt_bytes(used)} of {fmt_bytes(total)}"

    def _mouse_moved(self, pos: QPointF) -> None:
        if not self.plotItem.sceneBoundingRect().contains(pos):
            return
        p = self.vb.mapSceneToView(pos)
        node = self.node_at(p.y())
        if node is None:
            self.setToolTip("")
            return
        label = next((n.label for n in self.nodes if n.id == node), str(node))
        text = f"{label} · {fmt_time(p.x())} · {self.value_at(node, p.x())}"
        self.setToolTip(text)
        self.hovered.emit(text)

    # ------------------------------------------------------------ keyboard
    def keyPressEvent(self, ev: QKeyEvent) -> None:  # noqa: N802
        t0, t1 = self.view_range()
        w = t1 - t0
        k = ev.key()
        (_, _), (y0, y1) = self.vb.viewRange()
        if k == Qt.Key.Key_Left:
            self.set_view(t0 - w / 4, t1 - w / 4)
        elif k == Qt.Key.Key_Right:
            self.set_view(t0 + w / 4, t1 + w / 4)
        elif k in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.set_view(t0 + w / 4, t1 - w / 4)
        elif k == Qt.Key.Key_Minus:
            self.set_view(t0 - w / 2, t1 + w / 2)
        elif k == Qt.Key.Key_Home and self.span:
            self.set_view(self.span[0], self.span[0] + w)
        elif k == Qt.Key.Key_End and self.span:
            self.set_view(self.span[1] - w, self.span[1])
        elif k in (Qt.Key.Key_Up, Qt.Key.Key_PageUp):
            d = BAND if k == Qt.Key.Key_Up else (y1 - y0)
            self.vb.setYRange(y0 + d, y1 + d, padding=0)
        elif k in (Qt.Key.Key_Down, Qt.Key.Key_PageDown):
            d = BAND if k == Qt.Key.Key_Down else (y1 - y0)
            self.vb.setYRange(y0 - d, y1 - d, padding=0)
        else:
            super().keyPressEvent(ev)


def pen_color(item: pg.PlotDataItem) -> str:
    pen: QPen = item.opts["pen"] if isinstance(item.opts["pen"], QPen) else pg.mkPen(item.opts["pen"])
    return pen.color().name()
