"""The node table: one row per node of the cluster, plus the "all nodes" row on top.

Rows are fixed by the cluster configuration, so a tick never inserts or resets anything: the
model re-reads the nodes the bridge names and emits dataChanged for their rows only (adjacent
rows merged into one range, which is what a full 1 Hz batch of 200 nodes becomes). Delegates
read numbers through the roles below; DisplayRole stays plain text for tests, copy and
accessibility.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QFont

from omview.core.balance_metric import balance_efficiency
from omview.core.cluster import Cluster
from omview.core.config import LOCAL
from omview.core.model import NodeState
from omview.gui import theme

COL_NODE = 0  # lamp + node id
COL_ADDRESS = 1  # button: opens the node dialog
COL_SPEED = 2  # slider + LCD
COL_LOAD = 3  # bar, percent of capacity
COL_MEMORY = 4  # bar, used % of total
COL_AVAILABLE = 5  # available memory, text
COL_CPUS = 6
COL_FLAGS = 7  # admin flags
COL_MIGRATION = 8  # CRIU readiness
COLUMN_COUNT = 9

HEADERS = {
    COL_NODE: "Node",
    COL_ADDRESS: "Address",
    COL_SPEED: "Speed",
    COL_LOAD: "Load",
    COL_MEMORY: "Memory",
    COL_AVAILABLE: "Available",
    COL_CPUS: "CPUs",
    COL_FLAGS: "Admin",
    COL_MIGRATION: "Migration",
}
HEADER_TIPS = {
    COL_NODE: "openMosix node id; the lamp is green when the node is up, red when down (hover for why)",
    COL_ADDRESS: "Click (or Enter/Space) to open the node's configuration dialog",
    COL_SPEED: "openMosix speed (10000 = one standard CPU). Drag the slider to set it on the node",
    COL_LOAD: "Load in percent of the node's capacity (run queue per CPU, scaled by speed)",
    COL_MEMORY: "Memory used, in percent of the node's total (cgroup limit respected)",
    COL_AVAILABLE: "Memory still available on the node",
    COL_CPUS: "CPUs the node may use (affinity and cgroup quota respected)",
    COL_FLAGS: "Admin flags: stay, lstay, block, quiet, stopped ('-' = none)",
    COL_MIGRATION: "Migration readiness (CRIU) as the node's agent reports it",
}

# plain ints: comparing the int Qt hands to data() with enum members costs an enum call each time
DISPLAY = int(Qt.ItemDataRole.DisplayRole.value)
EDIT = int(Qt.ItemDataRole.EditRole.value)
TOOLTIP = int(Qt.ItemDataRole.ToolTipRole.value)
FONT = int(Qt.ItemDataRole.FontRole.value)
ALIGN = int(Qt.ItemDataRole.TextAlignmentRole.value)
FOREGROUND = int(Qt.ItemDataRole.ForegroundRole.value)
_LEFT = int((Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter).value)
_RIGHT = int((Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter).value)

_READ_ONLY = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
_EDITABLE = _READ_ONLY | Qt.ItemFlag.ItemIsEditable

_ROLE = int(Qt.ItemDataRole.UserRole.value)
SORT_ROLE = _ROLE + 1  # a number or string that sorts sensibly
VALUE_ROLE = _ROLE + 2  # bar percent (float) / speed (int) / None when unknown
UP_ROLE = _ROLE + 3  # True up, False down, None connecting; "partial" on the all-nodes row
NODE_ID_ROLE = _ROLE + 4  # node id, 0 on the all-nodes row
AGGREGATE_ROLE = _ROLE + 5  # True on the all-nodes row
PENDING_ROLE = _ROLE + 6  # True while a speed change is on its way to the node

ALL_NODES = 0  # node id used for the aggregate row and the all-nodes dialog

SPEED_MIN = 1000
SPEED_MAX = 50000
SPEED_STEP = 500


def fmt_bytes(n: float) -> str:
    """Binary units, three significant digits: what `free -h` users read at a glance."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            if unit == "B":
                return f"{int(value)} B"
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
        value /= 1024
    return f"{value:.0f} TiB"


def migration_text(st: NodeState) -> str:
    return (st.sample.criu if st.sample else "") or "unknown"


@dataclass(slots=True)
class RowPaint:
    """One row as the delegates paint it (see NodeTableModel.row_paint)."""

    texts: tuple[str, ...]
    values: tuple[Any, ...]
    up: Any  # True, False, None (connecting) or "partial" (all-nodes row)
    pending: bool
    editable: bool
    aggregate: bool
    down: bool


@dataclass
class Aggregate:
    """The all-nodes row: what an administrator wants from the cluster as one machine."""

    total: int = 0
    up: int = 0
    mean_load: float | None = None
    cpus: int = 0
    speed: int = 0
    mem_total: int = 0
    mem_used: int = 0
    mem_available: int = 0
    flags: str = "-"
    migration: str = "unknown"
    balance: float = 100.0

    @classmethod
    def of(cls, nodes: Iterable[NodeState]) -> Aggregate:
        agg = cls()
        loads: list[float] = []
        stay = lstay = block = quiet = stopped = 0
        cpus = speed = mem_total = mem_used = mem_available = total = 0
        readiness: set[str] = set()
        # plain locals, not attribute updates: this runs for every node on every 1 Hz tick
        for st in nodes:
            total += 1
            s = st.sample
            if not st.up or s is None:
                continue
            loads.append(s.load)
            cpus += s.cpus
            speed += s.speed
            mem_total += s.mem_total
            mem_used += s.mem_used
            mem_available += s.mem_available
            a = s.admin
            stay += 1 if a.stay else 0
            lstay += 1 if a.lstay else 0
            block += 1 if a.block else 0
            quiet += 1 if a.quiet else 0
            stopped += 1 if a.stopped else 0
            readiness.add(s.criu or "unknown")
        agg.total, agg.up, agg.cpus, agg.speed = total, len(loads), cpus, speed
        agg.mem_total, agg.mem_used, agg.mem_available = mem_total, mem_used, mem_available
        if loads:
            agg.mean_load = sum(loads) / len(loads)
        agg.balance = balance_efficiency(loads)
        counts = (("stay", stay), ("lstay", lstay), ("block", block), ("quiet", quiet), ("stopped", stopped))
        agg.flags = ", ".join(f"{k} ×{v}" for k, v in counts if v) or "-"
        if len(readiness) == 1:
            agg.migration = readiness.pop()
        elif readiness:
            agg.migration = "mixed"
        return agg


class NodeTableModel(QAbstractTableModel):
    """Row 0 is the all-nodes row; rows 1..n are the nodes in configuration order."""

    speedRequested = Signal(int, int)  # node id, speed: the view asked to set it
    aggregateChanged = Signal()

    def __init__(self, cluster: Cluster, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.cluster = cluster
        self._nodes: list[NodeState] = cluster.nodes()
        self._row_of = {st.id: i + 1 for i, st in enumerate(self._nodes)}
        self._pending_speed: dict[int, int] = {}
        self.aggregate = Aggregate.of(self._nodes)
        self._paint_cache: dict[int, RowPaint] = {}
        self._bold = QFont()
        self._bold.setBold(True)

    # ------------------------------------------------------------ updates
    def update_nodes(self, ids: Iterable[int], force: bool = False) -> None:
        """Re-read these nodes from the cluster and repaint what changed in their rows (and the
        all-nodes row). A node whose sample, link and reason are the same as before costs no repaint
        (a process-table event names the node too): samples are replaced, never mutated, so identity
        says "same sample". `force` repaints the named rows whole."""
        spans: dict[int, tuple[int, int]] = {}
        changed = False
        nodes, row_of, pending_speed = self._nodes, self._row_of, self._pending_speed
        ids = list(ids)
        node: Any = self.cluster.node
        if len(ids) > len(nodes) // 2:  # a whole tick: every state copied under one lock acquisition
            node = {st.id: st for st in self.cluster.nodes()}.__getitem__
        for node_id in ids:
            row = row_of.get(node_id)
            if row is None:
                continue
            st = node(node_id)
            old = nodes[row - 1]
            if st.sample is old.sample and st.up == old.up and st.reason == old.reason and not force:
                continue
            nodes[row - 1] = st
            span = _FULL_ROW if force else _changed_columns(old, st)
            pending = pending_speed.get(node_id)
            if pending is not None and st.sample is not None and st.sample.speed == pending:
                del pending_speed[node_id]
                span = (min(span[0], COL_SPEED), max(span[1], COL_SPEED)) if span else (COL_SPEED, COL_SPEED)
            if span is not None:
                spans[row] = span
            changed = True
        if not changed:
            return
        self.aggregate = Aggregate.of(nodes)
        cache = self._paint_cache
        cache.pop(0, None)
        for r in spans:
            cache.pop(r, None)
        # the view repaints the rectangle a dataChanged range covers: adjacent rows as one range,
        # only over the columns that changed in them (at a 1 Hz tick: load, memory, available)
        index, emit = self.index, self.dataChanged.emit
        emit(index(0, 0), index(0, COLUMN_COUNT - 1))
        for first, last in _ranges(sorted(spans)):
            lo = min(spans[r][0] for r in range(first, last + 1) if r in spans)
            hi = max(spans[r][1] for r in range(first, last + 1) if r in spans)
            emit(index(first, lo), index(last, hi))
        self.aggregateChanged.emit()

    def refresh_all(self) -> None:
        self.update_nodes(self._row_of, force=True)

    def speed_settled(self, node_id: int) -> None:
        """The set_admin call ended (either way): show the node's real speed again."""
        if self._pending_speed.pop(node_id, None) is not None:
            row = self._row_of[node_id]
            self._paint_cache.pop(row, None)
            idx = self.index(row, COL_SPEED)
            self.dataChanged.emit(idx, idx)

    # ------------------------------------------------------------ access
    def node_state(self, row: int) -> NodeState | None:
        return self._nodes[row - 1] if 1 <= row <= len(self._nodes) else None

    def row_of(self, node_id: int) -> int:
        return self._row_of[node_id]

    def node_ids(self) -> list[int]:
        return [st.id for st in self._nodes]

    def speed_of(self, st: NodeState) -> int | None:
        pending = self._pending_speed.get(st.id)
        if pending is not None:
            return pending
        return st.sample.speed if st.sample else None

    # ------------------------------------------------------------ Qt model API
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._nodes) + 1

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else COLUMN_COUNT

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return HEADERS.get(section)
        if role == Qt.ItemDataRole.ToolTipRole:
            return HEADER_TIPS.get(section)
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if index.column() == COL_SPEED and index.row() > 0:
            st = self.node_state(index.row())
            if st is not None and st.up and st.sample is not None:
                return _EDITABLE
        return _READ_ONLY

    def setData(
        self, index: QModelIndex | QPersistentModelIndex, value: Any, role: int = Qt.ItemDataRole.EditRole
    ) -> bool:
        if role != Qt.ItemDataRole.EditRole or index.column() != COL_SPEED or index.row() == 0:
            return False
        st = self.node_state(index.row())
        if st is None:
            return False
        speed = max(SPEED_MIN, min(SPEED_MAX, int(value)))
        if speed == self.speed_of(st):
            return False
        self._pending_speed[st.id] = speed
        self._paint_cache.pop(index.row(), None)
        self.dataChanged.emit(index, index)
        self.speedRequested.emit(st.id, speed)
        return True

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        return self._cell(index.row(), index.column(), int(role))

    def row_paint(self, row: int) -> RowPaint:
        """Everything the painter needs for one row, built once per update (painting a row then
        costs no data() calls, which is what keeps a 200-node repaint cheap). The same texts and
        values as DisplayRole and VALUE_ROLE (a test holds the two together)."""
        rp = self._paint_cache.get(row)
        if rp is None:
            rp = self._paint_cache[row] = (
                self._aggregate_paint() if row == 0 else self._node_paint(self._nodes[row - 1])
            )
        return rp

    def _aggregate_paint(self) -> RowPaint:
        cols = range(COLUMN_COUNT)
        return RowPaint(
            texts=tuple(self._aggregate_data(c, DISPLAY) or "" for c in cols),
            values=tuple(self._aggregate_data(c, VALUE_ROLE) for c in cols),
            up=self._aggregate_data(COL_NODE, UP_ROLE),
            pending=False,
            editable=False,
            aggregate=True,
            down=False,
        )

    def _node_paint(self, st: NodeState) -> RowPaint:
        """_text and _value for every column at once: one call per row instead of two per cell."""
        speed = self.speed_of(st)
        speed_text = "" if speed is None else str(speed)
        address = st.address if st.address != LOCAL else (st.name or st.label)
        s = st.sample if st.up else None
        if s is None:
            dash = "—"
            why = f"down: {st.reason}" if not st.up else ""
            texts: tuple[str, ...] = (str(st.id), address, speed_text, dash, dash, dash, dash, "", why)
            values: tuple[Any, ...] = (None, None, speed, None, None, None, None, None, None)
        else:
            mem = 100.0 * s.mem_used / s.mem_total if s.mem_total else None
            texts = (
                str(st.id),
                address,
                speed_text,
                f"{s.load:.0f} %",
                "—" if mem is None else f"{mem:.0f} %",
                fmt_bytes(s.mem_available),
                str(s.cpus),
                s.admin.flags_text(),
                migration_text(st),
            )
            values = (None, None, speed, s.load, mem, None, None, None, None)
        return RowPaint(
            texts=texts,
            values=values,
            up=None if (not st.up and st.reason == "not connected yet") else st.up,
            pending=st.id in self._pending_speed,
            editable=st.up and st.sample is not None,
            aggregate=False,
            down=not st.up,
        )

    def _cell(self, row: int, col: int, role: int) -> Any:
        if row == 0:
            return self._aggregate_data(col, role)
        st = self._nodes[row - 1]
        if role == DISPLAY:
            return self._text(st, col)
        if role == VALUE_ROLE:
            return self._value(st, col)
        if role == SORT_ROLE:
            return self._sort_key(st, col)
        if role == UP_ROLE:
            return None if (not st.up and st.reason == "not connected yet") else st.up
        if role == NODE_ID_ROLE:
            return st.id
        if role == AGGREGATE_ROLE:
            return False
        if role == PENDING_ROLE:
            return st.id in self._pending_speed
        if role == TOOLTIP:
            return self._tooltip(st, col)
        if role == EDIT and col == COL_SPEED:
            return self.speed_of(st)
        if role == FOREGROUND and col == COL_MIGRATION and not st.up:
            return theme.colors().down
        if role == ALIGN:
            return _RIGHT if col in (COL_CPUS, COL_AVAILABLE) else _LEFT
        return None

    # ------------------------------------------------------------ per-node cells
    def _value(self, st: NodeState, col: int) -> Any:
        s = st.sample
        if col == COL_SPEED:
            return self.speed_of(st)
        if s is None or not st.up:
            return None
        if col == COL_LOAD:
            return s.load
        if col == COL_MEMORY:
            return 100.0 * s.mem_used / s.mem_total if s.mem_total else None
        return None

    def _text(self, st: NodeState, col: int) -> str:
        s = st.sample if st.up else None
        if col == COL_NODE:
            return str(st.id)
        if col == COL_ADDRESS:
            # "local" says nothing on a button: this machine's name does
            return st.address if st.address != LOCAL else (st.name or st.label)
        if col == COL_SPEED:
            speed = self.speed_of(st)
            return "" if speed is None else str(speed)
        if s is None:
            if col == COL_MIGRATION and not st.up:
                return f"down: {st.reason}"  # the widest column says why, no hovering needed
            return "—" if col in (COL_LOAD, COL_MEMORY, COL_AVAILABLE, COL_CPUS) else ""
        if col == COL_LOAD:
            return f"{s.load:.0f} %"
        if col == COL_MEMORY:
            return f"{100.0 * s.mem_used / s.mem_total:.0f} %" if s.mem_total else "—"
        if col == COL_AVAILABLE:
            return fmt_bytes(s.mem_available)
        if col == COL_CPUS:
            return str(s.cpus)
        if col == COL_FLAGS:
            return s.admin.flags_text()
        if col == COL_MIGRATION:
            return migration_text(st)
        return ""

    def _sort_key(self, st: NodeState, col: int) -> Any:
        if col in (COL_NODE,):
            return st.id
        if col == COL_ADDRESS:
            return st.address
        value = self._value(st, col)
        if col in (COL_SPEED, COL_LOAD, COL_MEMORY):
            return -1.0 if value is None else float(value)
        s = st.sample if st.up else None
        if col == COL_AVAILABLE:
            return s.mem_available if s else -1
        if col == COL_CPUS:
            return s.cpus if s else -1
        return self._text(st, col)

    def _tooltip(self, st: NodeState, col: int) -> str:
        s = st.sample
        name = st.label
        if col == COL_NODE:
            if st.up:
                return f"Node {st.id} ({name}) is up"
            return f"Node {st.id} ({name}) is down: {st.reason}"
        if col == COL_ADDRESS:
            return f"Configure node {st.id} ({st.address}): stay, quiet, lstay, block, start/stop, proc-box"
        if col == COL_SPEED:
            if st.id in self._pending_speed:
                return f"Setting speed {self._pending_speed[st.id]} on node {st.id}…"
            if not st.up:
                return f"Node {st.id} is down; its speed cannot be set now"
            set_by = "set by the administrator" if s and s.admin.speed else "derived from its CPU quota"
            return f"Speed {self.speed_of(st)} ({set_by}); 10000 = one standard CPU. Drag or press F2 to change"
        if s is None or not st.up:
            return f"Node {st.id} is down: {st.reason}" if not st.up else ""
        if col == COL_LOAD:
            return f"Load {s.load:.1f} % of capacity; run queue {s.runq:.2f} on {s.cpus} CPU(s), util {s.util:.0f} %"
        if col in (COL_MEMORY, COL_AVAILABLE):
            return f"{fmt_bytes(s.mem_used)} used of {fmt_bytes(s.mem_total)}; {fmt_bytes(s.mem_available)} available"
        if col == COL_CPUS:
            return f"{s.cpus} usable CPU(s), {s.nprocs} processes, up {s.uptime / 3600:.1f} h"
        if col == COL_FLAGS:
            a = s.admin
            return (
                f"stay={a.stay} lstay={a.lstay} block={a.block} quiet={a.quiet} stopped={a.stopped} "
                f"decay interval {a.decay_interval}"
            )
        if col == COL_MIGRATION:
            return f"Migration readiness (CRIU): {migration_text(st)}"
        return ""

    # ------------------------------------------------------------ the all-nodes row
    def _aggregate_data(self, col: int, role: int) -> Any:
        a = self.aggregate
        if role == AGGREGATE_ROLE:
            return True
        if role == NODE_ID_ROLE:
            return ALL_NODES
        if role == UP_ROLE:
            if a.total and a.up == a.total:
                return True
            return "partial" if a.up else False
        if role == PENDING_ROLE:
            return False
        if role == VALUE_ROLE:
            if col == COL_LOAD:
                return a.mean_load
            if col == COL_MEMORY:
                return 100.0 * a.mem_used / a.mem_total if a.mem_total else None
            if col == COL_SPEED:
                return a.speed
            return None
        if role == SORT_ROLE:
            return None
        if role == DISPLAY:
            if col == COL_NODE:
                return f"{a.up}/{a.total}"
            if col == COL_ADDRESS:
                return "All nodes"
            if col == COL_SPEED:
                return str(a.speed)
            if col == COL_LOAD:
                return "—" if a.mean_load is None else f"{a.mean_load:.0f} %"
            if col == COL_MEMORY:
                return f"{100.0 * a.mem_used / a.mem_total:.0f} %" if a.mem_total else "—"
            if col == COL_AVAILABLE:
                return fmt_bytes(a.mem_available) if a.up else "—"
            if col == COL_CPUS:
                return str(a.cpus)
            if col == COL_FLAGS:
                return a.flags
            if col == COL_MIGRATION:
                return a.migration
        if role == TOOLTIP:
            if col == COL_NODE:
                return f"{a.up} of {a.total} nodes up"
            if col == COL_ADDRESS:
                return "Configure all nodes at once: each action is applied to every node that is up"
            if col == COL_SPEED:
                return f"Sum of the speeds of the {a.up} nodes that are up"
            if col == COL_LOAD:
                return "Mean load of the nodes that are up"
            if col in (COL_MEMORY, COL_AVAILABLE):
                return (
                    f"{fmt_bytes(a.mem_used)} used of {fmt_bytes(a.mem_total)} on the nodes that are up; "
                    f"{fmt_bytes(a.mem_available)} available"
                )
            if col == COL_CPUS:
                return "CPUs of the nodes that are up"
            if col == COL_FLAGS:
                return "How many up nodes have each admin flag set"
            if col == COL_MIGRATION:
                return "Migration readiness, when all up nodes agree"
        if role == ALIGN:
            return _RIGHT if col in (COL_CPUS, COL_AVAILABLE) else _LEFT
        if role == FONT:
            return self._bold
        return None


def _ranges(rows: list[int]) -> list[tuple[int, int]]:
    """[0, 1, 2, 5, 7, 8] → [(0, 2), (5, 5), (7, 8)]: one dataChanged per run of adjacent rows."""
    out: list[tuple[int, int]] = []
    for r in rows:
        if out and r <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(r, out[-1][1]))
        else:
            out.append((r, r))
    return out


_FULL_ROW = (0, COLUMN_COUNT - 1)


def _changed_columns(old: NodeState, new: NodeState) -> tuple[int, int] | None:
    """First and last column whose painted content may differ between two states of a node, None
    when nothing painted differs (tooltips are read when shown, so they need no repaint)."""
    a, b = old.sample, new.sample
    if old.up != new.up or old.reason != new.reason or a is None or b is None:
        return _FULL_ROW
    cols = []
    if a.hostname != b.hostname:
        cols.append(COL_ADDRESS)  # the button of this machine shows its name
    if a.speed != b.speed:
        cols.append(COL_SPEED)
    if a.load != b.load:
        cols.append(COL_LOAD)
    if a.mem_used != b.mem_used or a.mem_total != b.mem_total:
        cols.append(COL_MEMORY)
    if a.mem_available != b.mem_available:
        cols.append(COL_AVAILABLE)
    if a.cpus != b.cpus:
        cols.append(COL_CPUS)
    if a.admin != b.admin:
        cols.append(COL_FLAGS)
    if a.criu != b.criu:
        cols.append(COL_MIGRATION)
    return (cols[0], cols[-1]) if cols else None


class NodeSortProxy(QSortFilterProxyModel):
    """Sorts by SORT_ROLE and keeps the all-nodes row on top in either order; filters by text."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setFilterKeyColumn(-1)
        # a 1 Hz tick must not re-sort 200 rows under the user's pointer unless asked to
        self.setDynamicSortFilter(False)

    def lessThan(self, left: QModelIndex | QPersistentModelIndex, right: QModelIndex | QPersistentModelIndex) -> bool:
        if left.row() == 0 or right.row() == 0:
            top_first = self.sortOrder() == Qt.SortOrder.AscendingOrder
            return (left.row() == 0) == top_first
        a, b = left.data(SORT_ROLE), right.data(SORT_ROLE)
        if a is None or b is None:
            return a is None and b is not None
        if type(a) is not type(b) and not (isinstance(a, int | float) and isinstance(b, int | float)):
            return str(a) < str(b)
        return bool(a < b)

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        if source_row == 0:
            return True
        return super().filterAcceptsRow(source_row, source_parent)
