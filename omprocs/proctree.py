"""The process box as a tree: per node, each process under its parent.

A QAbstractItemModel over the table model's rows. Built when the tree is first shown, then kept
current from the table model's `applied` deltas (insert under the parent, remove after moving
the children up to the node, move on a parent change, dataChanged otherwise) — never a reset per
tick. While the table is shown the tree stops listening and is rebuilt once when shown again.
Items are addressed by integer ids (createIndex's internal id), never by Python objects.
"""

from __future__ import annotations

import itertools
from typing import Any

from PySide6.QtCore import (
    QAbstractItemModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSize,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtWidgets import QAbstractItemView, QStyledItemDelegate, QStyleOptionViewItem, QTreeView, QWidget

from omprocs.procmodel import (
    COL_PID,
    COLUMN_COUNT,
    SORT_KEYS,
    ProcFilterProxy,
    ProcKey,
    ProcTableModel,
    cell,
    filter_changed,
    filter_changing,
    header_data,
)
from omprocs.procview import WIDTHS

Index = QModelIndex | QPersistentModelIndex
DISPLAY = int(Qt.ItemDataRole.DisplayRole.value)
TOOLTIP = int(Qt.ItemDataRole.ToolTipRole.value)
ALIGN = int(Qt.ItemDataRole.TextAlignmentRole.value)
_LEFT = int((Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter).value)
ROW_HEIGHT = 22
_READ_ONLY = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable


class _Item:
    __slots__ = ("id", "key", "node", "parent", "children", "row")

    def __init__(self, id_: int, key: ProcKey | None, node: int, parent: int) -> None:
        self.id = id_
        self.key = key
        self.node = node
        self.parent = parent  # item id, 0 = root
        self.children: list[int] = []
        self.row = 0


class ProcTreeModel(QAbstractItemModel):
    def __init__(self, table: ProcTableModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.table = table
        self.active = False
        self._ids = itertools.count(1 << 24)
        self._items: dict[int, _Item] = {}
        self._by_key: dict[ProcKey, int] = {}
        self._by_pid: dict[tuple[int, int], int] = {}  # (node, pid) → item id of the live process
        self.root = _Item(0, None, 0, -1)
        self.sort_column = COL_PID
        self.sort_order = Qt.SortOrder.AscendingOrder
        self.moves = 0
        self._labels: dict[int, str] = {}

    # ------------------------------------------------------------ building
    def set_active(self, on: bool) -> None:
        if on == self.active:
            return
        self.active = on
        if on:
            self.rebuild()
            self.table.applied.connect(self._applied)
        else:
            self.table.applied.disconnect(self._applied)

    def rebuild(self) -> None:
        self._labels = {st.id: st.label for st in self.table.cluster.nodes()}
        self.beginResetModel()
        self._items = {0: self.root}
        self.root.children = []
        self._by_key = {}
        self._by_pid = {}
        rows = sorted(self.table.rows(), key=lambda r: (r.node, r.p.start, r.p.pid))
        groups: dict[int, _Item] = {}
        for node in sorted({r.node for r in rows} | set(self.table.node_ids())):
            g = _Item(node, None, node, 0)  # node groups use the node id as item id
            g.row = len(self.root.children)
            self.root.children.append(node)
            self._items[node] = g
            groups[node] = g
        for r in rows:
            iid = next(self._ids)
            self._by_key[r.key] = iid
            self._by_pid[(r.node, r.p.pid)] = iid
        for r in rows:
            iid = self._by_key[r.key]
            parent = self._by_pid.get((r.node, r.p.ppid))
            if parent is None or parent == iid:
                parent = r.node
            it = _Item(iid, r.key, r.node, parent)
            self._items[iid] = it
        for it in list(self._items.values()):
            if it.key is not None:
                p = self._items[it.parent]
                it.row = len(p.children)
                p.children.append(it.id)
        self._sort_all()
        self.endResetModel()

    # ------------------------------------------------------------ incremental
    def _index_of(self, iid: int, col: int = 0) -> QModelIndex:
        if iid == 0:
            return QModelIndex()
        it = self._items[iid]
        return self.createIndex(it.row, col, iid)

    def _renumber(self, parent: _Item, start: int = 0) -> None:
        items = self._items
        for i in range(start, len(parent.children)):
            items[parent.children[i]].row = i

    def _group(self, node: int) -> _Item:
        g = self._items.get(node)
        if g is None:
            g = _Item(node, None, node, 0)
            self.beginInsertRows(QModelIndex(), len(self.root.children), len(self.root.children))
            g.row = len(self.root.children)
            self.root.children.append(node)
            self._items[node] = g
            self.endInsertRows()
        return g

    def _move(self, it: _Item, new_parent: _Item) -> None:
        old = self._items[it.parent]
        if old is new_parent:
            return
        dest = len(new_parent.children)
        self.beginMoveRows(self._index_of(old.id), it.row, it.row, self._index_of(new_parent.id), dest)
        del old.children[it.row]
        self._renumber(old, it.row)
        it.parent = new_parent.id
        it.row = dest
        new_parent.children.append(it.id)
        self.endMoveRows()
        self.moves += 1

    def _applied(self, node: int, inserted: list, changed: list, removed: list) -> None:
        items = self._items
        for key in removed:
            iid = self._by_key.pop(tuple(key), None)
            if iid is None:
                continue
            it = items[iid]
            if self._by_pid.get((node, key[1])) == iid:
                del self._by_pid[(node, key[1])]
            group = self._group(node)
            for child in list(it.children):
                self._move(items[child], group)  # orphans go up to the node, as to init
            parent = items[it.parent]
            self.beginRemoveRows(self._index_of(parent.id), it.row, it.row)
            del parent.children[it.row]
            self._renumber(parent, it.row)
            del items[iid]
            self.endRemoveRows()
        new_rows = [r for k in inserted if (r := self.table.get(tuple(k))) is not None]
        new_rows.sort(key=lambda r: (r.p.start, r.p.pid))  # parents start before their children
        for r in new_rows:
            if r.key in self._by_key:
                continue
            iid = next(self._ids)
            self._by_key[r.key] = iid
            self._by_pid[(node, r.p.pid)] = iid
            parent_id = self._by_pid.get((node, r.p.ppid))
            parent = items[parent_id] if parent_id is not None and parent_id != iid else self._group(node)
            it = _Item(iid, r.key, node, parent.id)
            items[iid] = it
            pos = len(parent.children)
            self.beginInsertRows(self._index_of(parent.id), pos, pos)
            it.row = pos
            parent.children.append(iid)
            self.endInsertRows()
        last = COLUMN_COUNT - 1
        spans: dict[int, list[int]] = {}  # parent id → [first row, last row] changed under it
        for key in changed:
            iid = self._by_key.get(tuple(key))
            if iid is None:
                continue
            it = items[iid]
            r = self.table.get(tuple(key))
            if r is None:
                continue
            want = self._by_pid.get((node, r.p.ppid))
            want_item = items[want] if want is not None and want != iid else self._group(node)
            if want_item.id != it.parent and not self._is_descendant(want_item.id, iid):
                self._move(it, want_item)
            span = spans.get(it.parent)
            if span is None:
                spans[it.parent] = [it.row, it.row]
            else:
                span[0], span[1] = min(span[0], it.row), max(span[1], it.row)
        # one signal per parent: the proxy walks the ancestors of every signal it gets
        for parent_id, (a, b) in spans.items():
            p = items[parent_id]
            self.dataChanged.emit(self.createIndex(a, 0, p.children[a]), self.createIndex(b, last, p.children[b]))

    def _is_descendant(self, iid: int, ancestor: int) -> bool:
        items = self._items
        while iid and iid in items:
            if iid == ancestor:
                return True
            iid = items[iid].parent
        return False

    # ------------------------------------------------------------ sorting
    def _sort_all(self) -> None:
        keyf = SORT_KEYS[self.sort_column]
        desc = self.sort_order == Qt.SortOrder.DescendingOrder
        table = self.table
        items = self._items

        def k(iid: int) -> Any:
            key = items[iid].key
            r = table.get(key) if key is not None else None
            return (0, keyf(r)) if r is not None else (1,)

        for it in items.values():
            if it.id == 0:
                continue  # node groups stay in node order
            if len(it.children) > 1:
                it.children.sort(key=k, reverse=desc)
                self._renumber(it)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if column not in SORT_KEYS:
            return
        self.layoutAboutToBeChanged.emit()
        persistent = self.persistentIndexList()
        keep = [(i.internalId(), i.column()) for i in persistent]
        self.sort_column, self.sort_order = column, order
        self._sort_all()
        new = [self._index_of(iid, col) if iid in self._items else QModelIndex() for iid, col in keep]
        self.changePersistentIndexList(persistent, new)
        self.layoutChanged.emit()

    # ------------------------------------------------------------ Qt model API
    def index(self, row: int, column: int, parent: Index = QModelIndex()) -> QModelIndex:  # noqa: B008
        pid = parent.internalId() if parent.isValid() else 0
        p = self._items.get(pid)
        if p is None or not 0 <= row < len(p.children) or not 0 <= column < COLUMN_COUNT:
            return QModelIndex()
        return self.createIndex(row, column, p.children[row])

    def parent(self, index: Index = QModelIndex()) -> QModelIndex:  # type: ignore[override]  # noqa: B008
        if not index.isValid():
            return QModelIndex()
        it = self._items.get(index.internalId())
        if it is None or it.parent <= 0:
            return QModelIndex()
        p = self._items[it.parent]
        return self.createIndex(p.row, 0, p.id)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        if parent.isValid():
            if parent.column() != 0:
                return 0
            it = self._items.get(parent.internalId())
            return len(it.children) if it is not None else 0
        return len(self.root.children)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return COLUMN_COUNT

    def hasChildren(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008
        return self.rowCount(parent) > 0

    def flags(self, index: Index) -> Qt.ItemFlag:
        return _READ_ONLY

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        return header_data(section, orientation, role)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        it = self._items.get(index.internalId())
        if it is None:
            return None
        role = int(role)
        if it.key is None:
            if role == DISPLAY and index.column() == 0:
                down = self.table.node_down(it.node)
                n = len(self.table._per_node.get(it.node, ()))
                label = self._labels.get(it.node, "")
                return (f"node {it.node}" + (f" — {label}" if label else "") + f" ({n} process{'es' if n != 1 else ''})"
                        + (" — down" if down is not None else ""))
            if role == TOOLTIP:
                return f"Processes of node {it.node} whose parent is not in its list (children of its init)"
            return None
        r = self.table.get(it.key)
        if r is None:
            return None
        if role == ALIGN and index.column() == COL_PID:
            return _LEFT  # the branch lines lead to the PID
        return cell(r, index.column(), role, self.table._down)

    def key_of(self, index: Index) -> ProcKey | None:
        it = self._items.get(index.internalId()) if index.isValid() else None
        return it.key if it is not None else None


class TreeFilterProxy(QSortFilterProxyModel):
    """The table proxy's filter on the tree: a match keeps its ancestors (recursive filtering).

    Like the table's proxy, the Python filter is installed only while a criterion is set."""

    def __init__(self, table_proxy: ProcFilterProxy, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.table_proxy = table_proxy
        self.tree: ProcTreeModel | None = None
        self.setDynamicSortFilter(False)
        self.setRecursiveFilteringEnabled(True)
        table_proxy.filterAboutToChange.connect(lambda: filter_changing(self))
        table_proxy.filterChanged.connect(self._filter_changed)

    def setSourceModel(self, model: QAbstractItemModel) -> None:
        super().setSourceModel(model)
        self.tree = model if isinstance(model, ProcTreeModel) else None
        if self.table_proxy._active:
            self.filterAcceptsRow = self._accepts_row  # type: ignore[method-assign]

    def _filter_changed(self) -> None:
        if self.table_proxy._active:
            self.filterAcceptsRow = self._accepts_row  # type: ignore[method-assign]
        elif "filterAcceptsRow" in self.__dict__:
            del self.filterAcceptsRow
        filter_changed(self)

    def _accepts_row(self, source_row: int, source_parent: Index) -> bool:
        tree = self.tree
        if tree is None:
            return True
        items = tree._items
        parent = items.get(source_parent.internalId() if source_parent.isValid() else 0)
        if parent is None or not 0 <= source_row < len(parent.children):
            return False
        key = items[parent.children[source_row]].key
        if key is None:
            return False  # a node group: shown when one of its processes matches
        r = tree.table.get(key)
        return r is not None and self.table_proxy.accepts(r)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        src = self.sourceModel()
        if src is not None:
            src.sort(column, order)


class _RowDelegate(QStyledItemDelegate):
    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        s = super().sizeHint(option, index)
        return QSize(s.width(), max(s.height(), ROW_HEIGHT))


class ProcTreeView(QTreeView):
    activatedKey = Signal(tuple)
    contextMenuWanted = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAlternatingRowColors(True)
        self.setUniformRowHeights(True)
        self.setItemDelegate(_RowDelegate(self))
        self.setSortingEnabled(True)
        self.setAccessibleName("Processes by parent")
        self.doubleClicked.connect(self._activate)
        self.tree: ProcTreeModel | None = None
        self.proxy: TreeFilterProxy | None = None

    def set_models(self, tree: ProcTreeModel, table_proxy: ProcFilterProxy) -> None:
        self.tree = tree
        table = tree.table
        col, order = table.sort_column, table.sort_order  # the tree starts in the table's order
        self.proxy = TreeFilterProxy(table_proxy, self)
        self.proxy.setSourceModel(tree)
        self.setModel(self.proxy)  # (sorts by the header's default indicator)
        for sig in (self.proxy.rowsInserted, self.proxy.layoutChanged, self.proxy.modelReset):
            sig.connect(self._span_groups)
        self.header().setSortIndicator(col, order)
        tree.sort(col, order)
        self.setColumnWidth(COL_PID, 170)
        for c, w in WIDTHS.items():
            if c != COL_PID:
                self.setColumnWidth(c, w)

    #: Above this many processes the node groups start collapsed: a QTreeView lays out every
    #: expanded item after each insert or removal, and asks the model about each one.
    EXPAND_LIMIT = 3000

    def _span_groups(self, *_: Any) -> None:
        """Node rows ("node 2 — name (n processes)") span the whole width."""
        if self.proxy is not None:
            root = QModelIndex()
            for r in range(self.proxy.rowCount()):
                self.setFirstColumnSpanned(r, root, True)

    def expand_top(self) -> None:
        self._span_groups()
        if self.proxy is None or self.tree is None:
            return
        if len(self.tree.table.rows()) > self.EXPAND_LIMIT:
            return
        for r in range(self.proxy.rowCount()):
            self.expand(self.proxy.index(r, 0))

    def _key(self, index: QModelIndex) -> ProcKey | None:
        if self.proxy is None or self.tree is None or not index.isValid():
            return None
        return self.tree.key_of(self.proxy.mapToSource(index.siblingAtColumn(0)))

    def _activate(self, index: QModelIndex) -> None:
        k = self._key(index)
        if k is not None:
            self.activatedKey.emit(k)

    def selected_keys(self) -> list[ProcKey]:
        sm = self.selectionModel()
        if sm is None:
            return []
        return [k for i in sm.selectedRows(0) if (k := self._key(i)) is not None]

    def keyPressEvent(self, event: Any) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self._activate(self.currentIndex())
            return
        super().keyPressEvent(event)

    def contextMenuEvent(self, event: Any) -> None:
        self.contextMenuWanted.emit(event.globalPos())

