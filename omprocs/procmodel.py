"""The process box's model: one row per process of the cluster, updated from the agents' deltas.

Why rows are sorted here and not in the proxy: QSortFilterProxyModel sorts by calling lessThan,
or data() twice per comparison, and with a Python model each call crosses into Python — about
600 000 calls for 20 000 rows, seconds per click. Python's own sort with a key function does
the same in a few milliseconds. So `ProcTableModel.sort` orders its rows (a layout change that
keeps selection and current row), new rows are inserted at their sorted place, and the proxy
(`ProcFilterProxy`) only filters; its `sort` hands the request to us. Rows are not re-sorted
when a value changes: a 1 Hz tick must not move rows under the pointer (click the header to
re-sort), exactly as the main window's node table does.

Updates are incremental: the bridge (`omprocs.procbridge`) names the (pid, start) keys that are
new, changed or gone per node; `apply` re-reads only those rows and emits beginInsertRows,
beginRemoveRows or dataChanged for them — never a reset per tick.
"""

from __future__ import annotations

import bisect
import getpass
import time
from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any

from PySide6.QtCore import (
    QAbstractItemModel,
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPointF,
    QRectF,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap

from omview.core.model import ProcInfo
from omview.gui import theme
from omview.gui.nodemodel import fmt_bytes

COL_PID = 0
COL_NODE = 1  # openMosix: 0 = on its home node, else the id of the node it runs on
COL_HOME = 2
COL_USER = 3
COL_NICE = 4
COL_STATE = 5
COL_CPU = 6
COL_MEMORY = 7
COL_MIGRATIONS = 8
COL_STARTED = 9
COL_COMMAND = 10
COLUMN_COUNT = 11

HEADERS = {
    COL_PID: "PID",
    COL_NODE: "Node",
    COL_HOME: "Home",
    COL_USER: "User",
    COL_NICE: "Nice",
    COL_STATE: "State",
    COL_CPU: "%CPU",
    COL_MEMORY: "Memory",
    COL_MIGRATIONS: "Migr.",
    COL_STARTED: "Started",
    COL_COMMAND: "Command line",
}
HEADER_TIPS = {
    COL_PID: "Process id on the node it runs on. Green icon: migrated away from its home node; "
    "lock: it cannot be moved (hover for why)",
    COL_NODE: "openMosix node column: 0 = running on its home node, otherwise the id of the node it runs on",
    COL_HOME: "The process's home node (where it was started)",
    COL_USER: "Owner of the process",
    COL_NICE: "Nice value, -20 (highest priority) to 19 (lowest)",
    COL_STATE: "R running, S sleeping, D disk wait, T stopped, Z zombie, I idle",
    COL_CPU: "CPU use in percent of one CPU over the last interval",
    COL_MEMORY: "Resident memory",
    COL_MIGRATIONS: "How often the process has been migrated",
    COL_STARTED: "When the process started (node clock)",
    COL_COMMAND: "Command line",
}
STATE_NAMES = {
    "R": "running",
    "S": "sleeping",
    "D": "waiting for disk",
    "T": "stopped",
    "t": "traced",
    "Z": "zombie",
    "X": "dead",
    "I": "idle",
    "P": "parked",
}

DISPLAY = int(Qt.ItemDataRole.DisplayRole.value)
DECORATION = int(Qt.ItemDataRole.DecorationRole.value)
TOOLTIP = int(Qt.ItemDataRole.ToolTipRole.value)
ALIGN = int(Qt.ItemDataRole.TextAlignmentRole.value)
FOREGROUND = int(Qt.ItemDataRole.ForegroundRole.value)
_USER = int(Qt.ItemDataRole.UserRole.value)
KEY_ROLE = _USER + 1  # (node, pid, start) of the row
MIGRATED_ROLE = _USER + 2  # True when the process runs away from its home node
LOCKED_ROLE = _USER + 3  # the cantmove reason ("" when movable)
_LEFT = int((Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter).value)
_RIGHT = int((Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter).value)
_NUMERIC = frozenset((COL_PID, COL_NODE, COL_HOME, COL_NICE, COL_CPU, COL_MEMORY, COL_MIGRATIONS))
_READ_ONLY = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

#: (node, pid, start): how every action addresses a process.
ProcKey = tuple[int, int, int]


class ProcRow:
    """One process as the model keeps it: the node whose table holds it, and its ProcInfo."""

    __slots__ = ("node", "p", "key", "pos", "_hay")

    def __init__(self, node: int, p: ProcInfo) -> None:
        self.node = node
        self.p = p
        self.key: ProcKey = (node, p.pid, p.start)
        self.pos = 0  # its row in the model, renumbered after every structural change
        self._hay: str | None = None

    def update(self, p: ProcInfo) -> None:
        self.p = p
        self._hay = None

    @property
    def home(self) -> int:
        return self.p.home or self.node

    @property
    def runs_on(self) -> int:
        return self.p.where or self.node

    @property
    def where(self) -> int:
        """The openMosix node column: 0 on its home node, else the node it runs on."""
        on = self.p.where or self.node
        return 0 if on == (self.p.home or self.node) else on

    @property
    def migrated(self) -> bool:
        return self.where != 0

    @property
    def cantmove(self) -> str:
        """Why the process cannot be moved, "" when nothing is known against it."""
        p = self.p
        if p.cantmove:
            return p.cantmove
        if p.lock:
            return "locked (it stays on its node)"
        if p.mode == "nomig":
            return "started as a nomig job: never migrated"
        return ""

    @property
    def hay(self) -> str:
        """What the text filter searches: pid, user, command line, lower case."""
        h = self._hay
        if h is None:
            p = self.p
            h = self._hay = f"{p.pid} {p.user} {p.cmd}".lower()
        return h


def _sort_keys() -> dict[int, Callable[[ProcRow], Any]]:
    return {
        COL_PID: lambda r: (r.p.pid, r.node),
        COL_NODE: lambda r: (r.where, r.node, r.p.pid),
        COL_HOME: lambda r: (r.home, r.p.pid),
        COL_USER: attrgetter("p.user"),
        COL_NICE: attrgetter("p.nice"),
        COL_STATE: attrgetter("p.state"),
        COL_CPU: attrgetter("p.cpu"),
        COL_MEMORY: attrgetter("p.rss"),
        COL_MIGRATIONS: attrgetter("p.nmigs"),
        COL_STARTED: attrgetter("p.started"),
        COL_COMMAND: attrgetter("p.cmd"),
    }


SORT_KEYS = _sort_keys()


def fmt_started(t: float, now: float | None = None) -> str:
    if not t:
        return ""
    now = now or time.time()
    lt = time.localtime(t)
    if now - t < 20 * 3600:
        return time.strftime("%H:%M:%S", lt)
    return time.strftime("%b %d %H:%M", lt)


def status_pixmap(away: bool, size: int = 32) -> QPixmap:
    """The migrator's big icon: green with an arrow when away from home, grey at home."""
    return _icon_pixmap("migrated" if away else "home", size)


def _icon_pixmap(kind: str, size: int = 16) -> QPixmap:
    pm = QPixmap(size, size)
    pm.fill(Qt.GlobalColor.transparent)
    if kind == "blank":
        return pm
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    if kind == "home":
        c = theme.colors().connecting
        p.setPen(QPen(c.darker(130), 1))
        p.setBrush(c)
        p.drawEllipse(QRectF(1.5, 1.5, size - 3, size - 3))
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor("#ffffff"))
        r = size / 5
        p.drawEllipse(QPointF(size / 2, size / 2), r, r)
    elif kind == "migrated":
        green = theme.colors().up
        p.setPen(QPen(green.darker(130), 1))
        p.setBrush(green)
        p.drawEllipse(QRectF(1.5, 1.5, size - 3, size - 3))
        # a white arrow: "runs elsewhere"
        p.setPen(QPen(QColor("#ffffff"), max(1.6, size / 10)))
        m = size / 2
        e = size * 0.28
        p.drawLine(QPointF(e, m), QPointF(size - e, m))
        p.drawLine(QPointF(size - e, m), QPointF(m + size * 0.03, m - size * 0.22))
        p.drawLine(QPointF(size - e, m), QPointF(m + size * 0.03, m + size * 0.22))
    elif kind == "lock":
        body = QColor("#b8860b")
        p.setPen(QPen(body.darker(140), 1.6))
        p.setBrush(Qt.BrushStyle.NoBrush)
        path = QPainterPath()
        path.moveTo(5, 8)
        path.lineTo(5, 5.5)
        path.arcTo(QRectF(5, 2, 6, 7), 180, -180)
        path.lineTo(11, 8)
        p.drawPath(path)
        p.setPen(QPen(body.darker(150), 1))
        p.setBrush(body)
        p.drawRoundedRect(QRectF(3, 7.5, 10, 7), 1.5, 1.5)
    p.end()
    return pm


class _Icons:
    """Built on first use (a QPixmap needs the QApplication), rebuilt when the palette flips."""

    def __init__(self) -> None:
        self._dark: bool | None = None
        self.migrated = self.lock = self.blank = QIcon()

    def get(self) -> _Icons:
        dark = theme.is_dark()
        if dark != self._dark:
            self._dark = dark
            self.migrated = QIcon(_icon_pixmap("migrated"))
            self.lock = QIcon(_icon_pixmap("lock"))
            self.blank = QIcon(_icon_pixmap("blank"))
        return self


ICONS = _Icons()


def _ranges(rows: Iterable[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for r in sorted(rows):
        if out and r <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(r, out[-1][1]))
        else:
            out.append((r, r))
    return out


def header_data(section: int, orientation: Qt.Orientation, role: int) -> Any:
    """The column titles and their tooltips, shared by the table and the tree of processes."""
    if orientation != Qt.Orientation.Horizontal:
        return None
    if role == Qt.ItemDataRole.DisplayRole:
        return HEADERS.get(section)
    if role == Qt.ItemDataRole.ToolTipRole:
        return HEADER_TIPS.get(section)
    return None


class ProcTableModel(QAbstractTableModel):
    """Every process of the cluster (or of `nodes`), sorted by one column.

    `applied(node, inserted, changed, removed)` (lists of ProcKey) follows every incremental
    update, for views that keep their own structure (the tree, the migrator window).
    """

    applied = Signal(int, list, list, list)

    def __init__(self, cluster: Any, parent: QObject | None = None, nodes: Iterable[int] | None = None) -> None:
        super().__init__(parent)
        self.cluster = cluster
        self.scope: set[int] | None = set(nodes) if nodes is not None else None
        self._rows: list[ProcRow] = []
        self._index: dict[ProcKey, ProcRow] = {}
        self._per_node: dict[int, set[ProcKey]] = {}
        self._down: dict[int, str] = {}
        self.sort_column = COL_PID
        self.sort_order = Qt.SortOrder.AscendingOrder
        self._unsorted = True  # values changed since the last sort: the same header click re-sorts
        self.updates = 0  # incremental batches applied, for tests and the bench
        self.resets = 0
        self.load()

    # ------------------------------------------------------------ loading
    def node_ids(self) -> list[int]:
        ids = self.cluster.node_ids()
        return [i for i in ids if self.scope is None or i in self.scope]

    def load(self) -> None:
        """Read every process now (at start and when the cluster is replaced): the one reset."""
        self.beginResetModel()
        rows = [ProcRow(n, p) for n, p in self.cluster.processes() if self.scope is None or n in self.scope]
        rows.sort(key=SORT_KEYS[self.sort_column], reverse=self.sort_order == Qt.SortOrder.DescendingOrder)
        self._rows = rows
        self._index = {r.key: r for r in rows}
        self._reindex(0)
        self._unsorted = False
        self._per_node = {}
        for r in rows:
            self._per_node.setdefault(r.node, set()).add(r.key)
        self._down = {st.id: st.reason for st in self.cluster.nodes() if not st.up}
        self.resets += 1
        self.endResetModel()

    def _reindex(self, start: int) -> None:
        """Renumber rows from `start` on (a slot per row: three times cheaper than a dict of positions)."""
        for i, r in enumerate(self._rows[start:], start):
            r.pos = i

    # ------------------------------------------------------------ incremental updates
    def apply(self, node: int, keys: Iterable[tuple[int, int]], full: bool = False) -> None:
        """Re-read these (pid, start) keys of one node; see `apply_batch`."""
        self.apply_batch({node: (keys, full)})

    def apply_batch(self, batch: dict[int, tuple[Iterable[tuple[int, int]], bool]]) -> None:
        """Re-read the named (pid, start) keys of each node and insert, update or remove their rows.

        `batch`: node → (keys, full); `full` means the node's whole table was resent, so every
        row of the node is checked. All nodes of one bridge flush go through here together, so
        the row index is renumbered once per flush, not once per node.
        """
        index = self._index
        rows = self._rows
        changed_rows: list[int] = []
        removed: list[ProcKey] = []
        inserted: list[ProcRow] = []
        per_node: dict[int, tuple[list[ProcKey], list[ProcKey], list[ProcKey]]] = {}
        for node, (keys, full) in batch.items():
            if self.scope is not None and node not in self.scope:
                continue
            wanted = set(keys)
            mine = self._per_node.setdefault(node, set())
            if full:
                wanted |= {(pid, start) for _n, pid, start in mine}
                wanted |= {p.key for _n, p in self.cluster.processes(node)}
            if not wanted:
                continue
            order = list(wanted)
            fresh = self.cluster.process_rows(node, order)
            ins: list[ProcKey] = []
            chg: list[ProcKey] = []
            rem: list[ProcKey] = []
            for (pid, start), p in zip(order, fresh, strict=True):
                key = (node, pid, start)
                row = index.get(key)
                if p is None:
                    if row is not None:
                        rem.append(key)
                        mine.discard(key)
                elif row is None:
                    r = ProcRow(node, p)
                    index[key] = r
                    inserted.append(r)
                    ins.append(key)
                    mine.add(key)
                elif row.p is not p:
                    row.update(p)
                    changed_rows.append(row.pos)
                    chg.append(key)
            removed.extend(rem)
            per_node[node] = (ins, chg, rem)
            self.updates += 1
        if changed_rows:
            self._unsorted = True
            last = COLUMN_COUNT - 1
            # one signal per run of rows, never one spanning signal: the view then repaints only
            # the changed rows it shows (a spanning range repaints the whole viewport)
            for a, b in _ranges(changed_rows):
                self.dataChanged.emit(self.index(a, 0), self.index(b, last))
        low = len(rows)
        if removed:
            positions = sorted(index.pop(k).pos for k in removed)
            # contiguous runs, highest first, so the lower positions stay valid
            for a, b in reversed(_ranges(positions)):
                self.beginRemoveRows(QModelIndex(), a, b)
                del rows[a : b + 1]
                self.endRemoveRows()
            low = positions[0]
        if inserted:
            keyf = SORT_KEYS[self.sort_column]
            desc = self.sort_order == Qt.SortOrder.DescendingOrder
            for r in inserted:
                k = keyf(r)
                pos = _bisect_desc(rows, k, keyf) if desc else bisect.bisect_right(rows, k, key=keyf)
                self.beginInsertRows(QModelIndex(), pos, pos)
                rows.insert(pos, r)
                self.endInsertRows()
                low = min(low, pos)
        if low < len(rows):
            self._reindex(low)
        for node, (ins, chg, rem) in per_node.items():
            if ins or chg or rem:
                self.applied.emit(node, ins, chg, rem)

    def set_node_down(self, node: int, down: bool, reason: str = "") -> None:
        """Rows of a down node are shown greyed (their data is from before it went down)."""
        if down:
            self._down[node] = reason
        elif self._down.pop(node, None) is None:
            return
        rows = [self._index[k].pos for k in self._per_node.get(node, ()) if k in self._index]
        if rows:
            for a, b in _ranges(rows):
                self.dataChanged.emit(self.index(a, 0), self.index(b, COLUMN_COUNT - 1))

    # ------------------------------------------------------------ sorting
    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if column not in SORT_KEYS:
            return
        if (column, order) == (self.sort_column, self.sort_order) and not self._unsorted:
            return  # QTableView.sortByColumn asks twice (indicator signal + direct call)
        self.layoutAboutToBeChanged.emit()
        persistent = self.persistentIndexList()
        keep = [(self._rows[i.row()].key, i.column()) if 0 <= i.row() < len(self._rows) else None for i in persistent]
        self.sort_column, self.sort_order = column, order
        self._rows.sort(key=SORT_KEYS[column], reverse=order == Qt.SortOrder.DescendingOrder)
        self._reindex(0)
        self._unsorted = False
        new = [self.index(self._index[k[0]].pos, k[1]) if k is not None else QModelIndex() for k in keep]
        self.changePersistentIndexList(persistent, new)
        self.layoutChanged.emit()

    # ------------------------------------------------------------ access
    def row(self, row: int) -> ProcRow:
        return self._rows[row]

    def row_of(self, key: ProcKey) -> int | None:
        r = self._index.get(key)
        return r.pos if r is not None else None

    def get(self, key: ProcKey) -> ProcRow | None:
        """The live row record of a process (updated in place while the process lives), or None."""
        return self._index.get(key)

    def rows(self) -> list[ProcRow]:
        return self._rows

    def find_job(self, job: str, skip: set[ProcKey] | frozenset[ProcKey] = frozenset()) -> ProcRow | None:
        """The row of a suite job by its id (a job keeps its id when it migrates; its PID may not)."""
        if not job:
            return None
        return next((r for r in self._rows if r.p.job == job and r.key not in skip), None)

    def node_down(self, node: int) -> str | None:
        return self._down.get(node)

    # ------------------------------------------------------------ Qt model API
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else COLUMN_COUNT

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        return _READ_ONLY

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        return header_data(section, orientation, role)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        return cell(self._rows[index.row()], index.column(), int(role), self._down)


def _bisect_desc(rows: list[ProcRow], k: Any, keyf: Callable[[ProcRow], Any]) -> int:
    """Insertion point of key k in rows sorted descending by keyf (after equal keys)."""
    lo, hi = 0, len(rows)
    while lo < hi:
        mid = (lo + hi) // 2
        if k > keyf(rows[mid]):
            hi = mid
        else:
            lo = mid + 1
    return lo


def text(r: ProcRow, col: int) -> str:
    p = r.p
    if col == COL_PID:
        return str(p.pid)
    if col == COL_NODE:
        return str(r.where)
    if col == COL_HOME:
        return str(r.home)
    if col == COL_USER:
        return p.user
    if col == COL_NICE:
        return str(p.nice)
    if col == COL_STATE:
        return p.state
    if col == COL_CPU:
        return f"{p.cpu:.1f}"
    if col == COL_MEMORY:
        return fmt_bytes(p.rss)
    if col == COL_MIGRATIONS:
        return str(p.nmigs)
    if col == COL_STARTED:
        return fmt_started(p.started)
    if col == COL_COMMAND:
        cmd = p.cmd
        return cmd.replace("\n", " ").replace("\t", " ") if "\n" in cmd or "\t" in cmd else cmd
    return ""


def tooltip(r: ProcRow, col: int, down: dict[int, str]) -> str:
    p = r.p
    if r.node in down:
        return f"Node {r.node} is down ({down[r.node]}): this row is from before; actions wait for it"
    if col == COL_PID:
        lines = [f"Process {p.pid} on node {r.runs_on} (start {p.start})"]
        if r.migrated:
            lines.append(f"Migrated: runs on node {r.runs_on}, its home is node {r.home}")
        why = r.cantmove
        if why:
            lines.append(f"Cannot be moved: {why}")
        if p.job:
            lines.append(f"Job {p.job}" + (f" ({p.mode})" if p.mode else ""))
        lines.append("Double-click (or Enter) opens the migrator window")
        return "\n".join(lines)
    if col == COL_NODE:
        return "On its home node" if not r.migrated else f"Runs on node {r.runs_on}, away from home node {r.home}"
    if col == COL_STATE:
        return STATE_NAMES.get(p.state, p.state)
    if col == COL_MEMORY:
        return f"{p.rss:,} bytes resident"
    if col == COL_STARTED:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(p.started)) if p.started else ""
    if col == COL_COMMAND:
        return p.cmd
    return ""


def cell(r: ProcRow, col: int, role: int, down: dict[int, str]) -> Any:
    if role == DISPLAY:
        return text(r, col)
    if role == DECORATION:
        if col != COL_PID:
            return None
        icons = ICONS.get()
        if r.migrated:
            return icons.migrated
        if r.cantmove:
            return icons.lock
        return icons.blank
    if role == ALIGN:
        return _RIGHT if col in _NUMERIC else _LEFT
    if role == FOREGROUND:
        if r.node in down:
            return theme.colors().connecting
        if col == COL_NODE and r.migrated:
            return theme.colors().up
        return None
    if role == TOOLTIP:
        return tooltip(r, col, down)
    if role == KEY_ROLE:
        return r.key
    if role == MIGRATED_ROLE:
        return r.migrated
    if role == LOCKED_ROLE:
        return r.cantmove
    return None


class ProcFilterProxy(QSortFilterProxyModel):
    """Filters by text, user, node, "only migrated" and "only mine"; sorting is the source's.

    `sort` is passed to the source model (see the module comment); this proxy's own sort column
    stays -1, so its order is the source's order with the rejected rows left out.

    Why the filter is switched on and off: QSortFilterProxyModel calls filterAcceptsRow for every
    source row whenever the source's layout changes, and a Python override makes that 20 000
    calls into Python per sort even with nothing to filter. So the Python filter is installed on
    this object only while a criterion is set (shiboken looks a virtual's override up on the
    object each time; tests/test_gui_procs.py checks both states); without one, Qt's own
    filterAcceptsRow accepts every row without calling back.
    """

    filterAboutToChange = Signal()
    filterChanged = Signal()

    def __init__(self, parent: QObject | None = None, me: str | None = None) -> None:
        super().__init__(parent)
        self.setDynamicSortFilter(False)
        self.me = me if me is not None else _whoami()
        self.text = ""
        self.user = ""
        self.node = 0  # 0 = every node
        self.only_migrated = False
        self.only_mine = False
        self._active = False
        self._rows: list[ProcRow] = []

    def setSourceModel(self, model: QAbstractItemModel) -> None:
        super().setSourceModel(model)
        if isinstance(model, ProcTableModel):
            self._rows = model._rows
            model.modelReset.connect(self._source_reset)

    def _source_reset(self) -> None:
        src = self.sourceModel()
        if isinstance(src, ProcTableModel):
            self._rows = src._rows

    def source(self) -> ProcTableModel:
        src = self.sourceModel()
        assert isinstance(src, ProcTableModel)
        return src

    def set_filter(
        self,
        *,
        text: str | None = None,
        user: str | None = None,
        node: int | None = None,
        only_migrated: bool | None = None,
        only_mine: bool | None = None,
    ) -> None:
        self.filterAboutToChange.emit()
        if text is not None:
            self.text = text.strip().lower()
        if user is not None:
            self.user = user.strip()
        if node is not None:
            self.node = node
        if only_migrated is not None:
            self.only_migrated = only_migrated
        if only_mine is not None:
            self.only_mine = only_mine
        self._active = bool(self.text or self.user or self.node or self.only_migrated or self.only_mine)
        filter_changing(self)
        if self._active:
            self.filterAcceptsRow = self._accepts_row  # type: ignore[method-assign]
        elif "filterAcceptsRow" in self.__dict__:
            del self.filterAcceptsRow
        filter_changed(self)
        self.filterChanged.emit()

    @property
    def python_filter(self) -> bool:
        """True while the Python filter is installed (a criterion is set)."""
        return "filterAcceptsRow" in self.__dict__

    def _accepts_row(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        # `accepts` inlined, cheapest tests first: called for every row while a criterion is set
        r = self._rows[source_row]
        p = r.p
        if self.user and p.user != self.user:
            return False
        if self.only_mine and p.user != self.me:
            return False
        node = r.node
        if self.node and (p.where or node) != self.node:
            return False
        if self.only_migrated and (p.where or node) == (p.home or node):
            return False
        if self.text:
            hay = r._hay
            if hay is None:
                hay = r.hay
            return self.text in hay
        return True

    def accepts(self, r: ProcRow) -> bool:
        """The same filter in Python, for one row (the tree's proxy uses it)."""
        if self.node and r.runs_on != self.node:
            return False
        if self.only_migrated and not r.migrated:
            return False
        p = r.p
        if self.user and p.user != self.user:
            return False
        if self.only_mine and p.user != self.me:
            return False
        return not self.text or self.text in r.hay

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        src = self.sourceModel()
        if src is not None:
            src.sort(column, order)

    def key_at(self, row: int) -> ProcKey:
        return self._rows[self.mapToSource(self.index(row, 0)).row()].key


def filter_changing(proxy: QSortFilterProxyModel) -> None:
    """Qt >= 6.9 wants to hear before the filter's inputs change; older Qt has no such call."""
    begin = getattr(proxy, "beginFilterChange", None)
    if begin is not None:
        begin()


def filter_changed(proxy: QSortFilterProxyModel) -> None:
    """Re-filter the rows (endFilterChange on Qt >= 6.10, invalidateRowsFilter before)."""
    direction = getattr(QSortFilterProxyModel, "Direction", None)
    if direction is not None and hasattr(proxy, "endFilterChange"):
        proxy.endFilterChange(direction.Rows)
    else:
        proxy.invalidateRowsFilter()


def _whoami() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""
