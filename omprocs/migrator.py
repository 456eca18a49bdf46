"""The migrator window (HOWTO 10.5.2): one process, its live status, and where it can go.

Double-click a node in the list to migrate the process there; "Home" sends it to its home node,
"Best" to the node the engine judges best (omview.core.migration.pick_best). Kill, SIGSTOP and
SIGCONT act at once; the renice slider applies when released. The icon turns green while the
process runs away from its home node. A migration shows its phases and bytes and can be
cancelled before its commit point; a refusal shows the preflight's reason (cantmove).

The window follows its process: after a migration the process has a new (node, pid, start),
taken from the engine's result.
"""

from __future__ import annotations

import threading
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSize,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSlider,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from omprocs import actions
from omprocs.procmodel import STATE_NAMES, ProcKey, ProcRow, ProcTableModel, fmt_started, status_pixmap
from omview.core.model import NodeState
from omview.gui import theme
from omview.gui.nodemodel import fmt_bytes
from omview.gui.workers import Workers

N_ID, N_NAME, N_LOAD, N_SPEED, N_CPUS, N_MEM, N_STATE = range(7)
NODE_HEADERS = ("Node", "Name", "Load", "Speed", "CPUs", "Free memory", "State")
NODE_TIPS = (
    "openMosix node id",
    "Host name or address",
    "Load in percent of the node's capacity",
    "openMosix speed (10000 = one standard CPU)",
    "Usable CPUs",
    "Memory available on the node",
    "Whether the node takes guests: up/down, block, quiet, stopped, CRIU readiness",
)
_RIGHT = int((Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter).value)
SORT_ROLE = int(Qt.ItemDataRole.UserRole.value) + 10
NODE_ROLE = int(Qt.ItemDataRole.UserRole.value) + 11


def node_state_text(st: NodeState, here: int = 0, home: int = 0) -> str:
    if not st.up or st.sample is None:
        return f"down: {st.reason}"
    s = st.sample
    parts = []
    if st.id == here:
        parts.append("process is here")
    if st.id == home:
        parts.append("home")
    a = s.admin
    for flag in ("block", "quiet", "stopped"):
        if getattr(a, flag):
            parts.append(flag)
    if s.criu and not s.criu.startswith("ready"):
        parts.append(f"CRIU: {s.criu}")
    return ", ".join(parts) or "up"


class TargetNodeModel(QAbstractTableModel):
    """The cluster's nodes as migration targets (rows fixed by the configuration; updated in place)."""

    def __init__(self, cluster: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.cluster = cluster
        self.nodes: list[NodeState] = cluster.nodes()
        self._row = {st.id: i for i, st in enumerate(self.nodes)}
        self.here = 0
        self.home = 0

    def update_nodes(self, ids: list[int]) -> None:
        rows = []
        for i in ids:
            r = self._row.get(i)
            if r is not None:
                self.nodes[r] = self.cluster.node(i)
                rows.append(r)
        if rows:
            self.dataChanged.emit(self.index(min(rows), 0), self.index(max(rows), len(NODE_HEADERS) - 1))

    def set_process(self, here: int, home: int) -> None:
        if (here, home) != (self.here, self.home):
            self.here, self.home = here, home
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.nodes) - 1, len(NODE_HEADERS) - 1))

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.nodes)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(NODE_HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return NODE_HEADERS[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            return NODE_TIPS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        st = self.nodes[index.row()]
        col = index.column()
        s = st.sample if st.up else None
        role = int(role)
        if role == int(Qt.ItemDataRole.DisplayRole.value):
            if col == N_ID:
                return str(st.id)
            if col == N_NAME:
                return st.label
            if col == N_STATE:
                return node_state_text(st, self.here, self.home)
            if s is None:
                return "—"
            if col == N_LOAD:
                return f"{s.load:.0f} %"
            if col == N_SPEED:
                return str(s.speed)
            if col == N_CPUS:
                return str(s.cpus)
            if col == N_MEM:
                return fmt_bytes(s.mem_available)
        if role == SORT_ROLE:
            if col in (N_ID,):
                return st.id
            if col == N_NAME:
                return st.label
            if col == N_STATE:
                return node_state_text(st, self.here, self.home)
            if s is None:
                return -1.0
            return {N_LOAD: s.load, N_SPEED: s.speed, N_CPUS: s.cpus, N_MEM: s.mem_available}.get(col, 0)
        if role == NODE_ROLE:
            return st.id
        if role == int(Qt.ItemDataRole.ToolTipRole.value):
            if st.id == self.here:
                return f"The process runs on node {st.id} now"
            if not st.up:
                return f"Node {st.id} is down: {st.reason}"
            return f"Double-click (or Enter) to migrate the process to node {st.id} ({st.label})"
        if role == int(Qt.ItemDataRole.TextAlignmentRole.value):
            return _RIGHT if col in (N_ID, N_LOAD, N_SPEED, N_CPUS, N_MEM) else None
        if role == int(Qt.ItemDataRole.ForegroundRole.value):
            c = theme.colors()
            if not st.up:
                return c.down
            if st.id == self.here:
                return c.up
        return None


class _NodeView(QTableView):
    chosen = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAlternatingRowColors(True)
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.setSortingEnabled(True)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(24)
        self.setAccessibleName("Nodes to migrate to")
        self.setToolTip("Double-click a node (or select it and press Enter) to migrate the process there")
        self.doubleClicked.connect(self._chosen)

    def _chosen(self, index: QModelIndex) -> None:
        if index.isValid():
            self.chosen.emit(int(index.data(NODE_ROLE)))

    def keyPressEvent(self, event: Any) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self._chosen(self.currentIndex())
            return
        super().keyPressEvent(event)


class MigratorWindow(QDialog):
    """Manages one process. `key` follows the process across migrations."""

    migrated = Signal(tuple, tuple)  # old key, new key
    _progress = Signal(object)  # a migration.Progress, from the engine's thread

    def __init__(
        self,
        cluster: Any,
        model: ProcTableModel,
        workers: Workers,
        key: ProcKey,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.cluster = cluster
        self.model = model
        self.workers = workers
        self.key: ProcKey = key
        self.row: ProcRow | None = model.get(key)
        self.busy = False
        self.handle_cancel: threading.Event | None = None
        self.last_result: Any = None
        self.last_message = ""
        self.awaiting = False
        self._left: set[ProcKey] = set()  # keys this window migrated the process away from
        self.problem = actions.migration_problem(cluster)
        self.setWindowTitle(f"omprocs migrator — node {key[0]}, PID {key[1]}")
        self.setMinimumSize(560, 520)
        self._progress.connect(self._on_progress, Qt.ConnectionType.QueuedConnection)
        self._build()
        model.applied.connect(self._applied)
        model.layoutChanged.connect(self.refresh)
        self.refresh()
        if self.problem:
            self.set_problem(self.problem)

    # ------------------------------------------------------------ layout
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        self.icon = QLabel()
        self.icon.setFixedSize(QSize(36, 36))
        self.icon.setToolTip("Green: the process runs away from its home node")
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        top.addWidget(self.icon)
        top.addWidget(self.title, 1)
        lay.addLayout(top)

        box = QGroupBox("Status")
        form = QGridLayout(box)
        self.fields: dict[str, QLabel] = {}
        names = [
            ("node", "Node", "openMosix node column: 0 = on its home node, else the node it runs on"),
            ("runs", "Runs on", "The node the process runs on now"),
            ("home", "Home", "Its home node"),
            ("state", "State", "R running, S sleeping, T stopped, …"),
            ("cpu", "CPU", "CPU use in percent of one CPU"),
            ("mem", "Memory", "Resident memory"),
            ("nice", "Nice", "-20 (highest priority) … 19 (lowest)"),
            ("migs", "Migrations", "How often it has been migrated"),
            ("user", "User", "Owner"),
            ("started", "Started", "Start time (node clock)"),
        ]
        for i, (k, label, tip) in enumerate(names):
            lab = QLabel(label + ":")
            val = QLabel("—")
            val.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            lab.setToolTip(tip)
            val.setToolTip(tip)
            r, c = divmod(i, 2)
            form.addWidget(lab, r, 2 * c)
            form.addWidget(val, r, 2 * c + 1)
            self.fields[k] = val
        form.setColumnStretch(1, 1)
        form.setColumnStretch(3, 1)
        self.cantmove = QLabel()
        self.cantmove.setWordWrap(True)
        form.addWidget(self.cantmove, len(names) // 2 + 1, 0, 1, 4)
        lay.addWidget(box)

        nodes_box = QGroupBox("Nodes — double-click one to migrate the process there")
        nl = QVBoxLayout(nodes_box)
        self.nodes = TargetNodeModel(self.cluster, self)
        self.node_proxy = QSortFilterProxyModel(self)
        self.node_proxy.setSourceModel(self.nodes)
        self.node_proxy.setSortRole(SORT_ROLE)
        self.node_view = _NodeView()
        self.node_view.setModel(self.node_proxy)
        self.node_view.sortByColumn(N_ID, Qt.SortOrder.AscendingOrder)
        h = self.node_view.horizontalHeader()
        h.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        h.setStretchLastSection(True)
        for col, w in ((N_ID, 50), (N_NAME, 120), (N_LOAD, 60), (N_SPEED, 62), (N_CPUS, 48), (N_MEM, 92)):
            self.node_view.setColumnWidth(col, w)
        self.node_view.chosen.connect(self.migrate_to)
        nl.addWidget(self.node_view)
        self.unavailable = QLabel()
        self.unavailable.setWordWrap(True)
        self.unavailable.setVisible(False)
        nl.addWidget(self.unavailable)
        lay.addWidget(nodes_box, 1)

        buttons = QHBoxLayout()
        self.btn_home = self._button("&Home", "Send the process to its home node", lambda: self.migrate_to("home"))
        self.btn_best = self._button(
            "&Best", "Send the process to the best node: lowest load per unit of speed × CPUs, admin flags honoured",
            lambda: self.migrate_to("best"))
        self.btn_kill = self._button("&Kill", "End the process at once (SIGKILL), after a confirmation", self.kill)
        self.btn_stop = self._button("SIG&STOP", "Pause the process", lambda: self.send("STOP"))
        self.btn_cont = self._button("SIG&CONT", "Let a paused process run again", lambda: self.send("CONT"))
        for b in (self.btn_home, self.btn_best, self.btn_kill, self.btn_stop, self.btn_cont):
            buttons.addWidget(b)
        lay.addLayout(buttons)

        nice = QHBoxLayout()
        nl_label = QLabel("&Renice:")
        self.nice = QSlider(Qt.Orientation.Horizontal)
        self.nice.setRange(-20, 19)
        self.nice.setPageStep(5)
        self.nice.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.nice.setTickInterval(5)
        self.nice.setToolTip("Nice value: -20 = highest priority, 0 normal, 19 lowest; applied when released")
        self.nice.setAccessibleName("Nice value")
        nl_label.setBuddy(self.nice)
        self.nice_value = QLabel("0")
        self.nice_value.setMinimumWidth(30)
        self.nice_value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.nice.valueChanged.connect(lambda v: self.nice_value.setText(str(v)))
        self.nice.sliderReleased.connect(self.renice)
        self._nice_keys = False
        nice.addWidget(nl_label)
        nice.addWidget(QLabel("-20"))
        nice.addWidget(self.nice, 1)
        nice.addWidget(QLabel("19"))
        nice.addWidget(self.nice_value)
        lay.addLayout(nice)
        QShortcut(QKeySequence("Ctrl+Return"), self.nice, self.renice)

        prog = QHBoxLayout()
        self.phase = QLabel("")
        self.bar = QProgressBar()
        self.bar.setRange(0, 100)
        self.bar.setTextVisible(True)
        self.btn_cancel = QPushButton("Cancel migration")
        self.btn_cancel.setAutoDefault(False)
        self.btn_cancel.clicked.connect(self.cancel)
        self.btn_cancel.setToolTip("Stop the migration before its commit point; the process keeps running here")
        prog.addWidget(self.phase)
        prog.addWidget(self.bar, 1)
        prog.addWidget(self.btn_cancel)
        self.progress_box = QWidget()
        self.progress_box.setLayout(prog)
        self.progress_box.setVisible(False)
        lay.addWidget(self.progress_box)

        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.message)
        close = QPushButton("Close")
        close.setAutoDefault(False)
        close.clicked.connect(self.close)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(close)
        lay.addLayout(row)
        self.resize(640, 600)

    def _button(self, text: str, tip: str, slot: Any) -> QPushButton:
        b = QPushButton(text)
        b.setToolTip(tip)
        b.setAutoDefault(False)
        b.clicked.connect(lambda _c=False: slot())
        return b

    # ------------------------------------------------------------ state → widgets
    def _applied(self, node: int, inserted: list, changed: list, removed: list) -> None:
        k = self.key
        if node == k[0] and (k in changed or k in removed or k in inserted):
            self.refresh()
        elif inserted and self.row is not None and self.row.p.job and self.model.get(k) is None:
            self.refresh()  # our job may just have arrived on another node

    def nodes_changed(self, ids: list[int]) -> None:
        self.nodes.update_nodes(ids)

    def refresh(self) -> None:
        if self.awaiting:
            # the engine gave no start time: take it from the target's table when it shows up
            node, pid, _ = self.key
            p = self.cluster.process(node, pid)
            if p is not None:
                self.key = (node, pid, p.start)
                self.awaiting = False
        r = self.model.get(self.key)
        if r is None and not self.busy and self.row is not None and self.row.p.job:
            # moved by someone else (omctl, the balancer, another window): a job keeps its id
            moved = self.model.find_job(self.row.p.job, skip=self._left)
            if moved is not None and moved.key != self.key:
                old, self.key = self.key, moved.key
                r = moved
                self.migrated.emit(old, moved.key)
                self.say(f"job {moved.p.job} moved: now {moved.key[0]}:{moved.key[1]}")
        if r is not None:
            self.row = r
        gone = r is None
        show = self.row
        node, pid, _start = self.key
        f = self.fields
        if show is not None:
            p = show.p
            f["node"].setText(str(show.where))
            f["runs"].setText(f"node {show.runs_on}")
            f["home"].setText(f"node {show.home}")
            f["state"].setText(f"{p.state} ({STATE_NAMES.get(p.state, p.state)})")
            f["cpu"].setText(f"{p.cpu:.1f} %")
            f["mem"].setText(fmt_bytes(p.rss))
            f["nice"].setText(str(p.nice))
            f["migs"].setText(str(p.nmigs))
            f["user"].setText(p.user)
            f["started"].setText(fmt_started(p.started))
            if not self.nice.isSliderDown() and not self.nice.hasFocus():
                self.nice.blockSignals(True)
                self.nice.setValue(p.nice)
                self.nice.blockSignals(False)
                self.nice_value.setText(str(p.nice))
            self.nodes.set_process(show.runs_on, show.home)
            cmd = p.cmd if len(p.cmd) < 200 else p.cmd[:200] + "…"
            self.title.setText(f"<b>PID {pid}</b> on node {node}<br>{_html(cmd)}")
            why = show.cantmove
            self.cantmove.setText(f"🔒 Cannot be moved: {why}" if why else "")
            self.cantmove.setVisible(bool(why))
        away = bool(show is not None and show.migrated)
        if away != self.icon.property("green") or self.icon.pixmap().isNull():
            self.icon.setPixmap(status_pixmap(away, 32))
            self.icon.setProperty("green", away)
        self.icon.setToolTip(
            f"Runs away from its home node {show.home}" if show is not None and away else "Runs on its home node")
        if gone and self.last_result is not None and getattr(self.last_result, "ok", False):
            self.title.setText(f"<b>PID {pid}</b> on node {node} — arriving (waiting for the node's next sample)")
        elif gone and not self.busy:
            self.title.setText(f"<b>PID {pid}</b> on node {node} — <b>ended</b> (or its PID was reused)")
        self.setWindowTitle(f"omprocs migrator — node {node}, PID {pid}" + (" (ended)" if gone else ""))
        self._enable()

    def set_problem(self, problem: str | None) -> None:
        self.problem = problem
        for b, tip in ((self.btn_home, "Send the process to its home node"),
                       (self.btn_best, "Send the process to the best node: lowest load per unit of speed × CPUs, "
                                       "admin flags honoured")):
            b.setToolTip(tip if not problem else f"{tip} — unavailable: {problem}")
        self.node_view.setToolTip(
            "Double-click a node (or select it and press Enter) to migrate the process there"
            if not problem else f"Migration unavailable: {problem}")
        self.unavailable.setText(f"Migration unavailable: {problem}" if problem else "")
        self.unavailable.setVisible(bool(problem))
        self._enable()

    def _enable(self) -> None:
        alive = self.model.get(self.key) is not None
        idle = not self.busy
        migrate_ok = alive and idle and self.problem is None
        for b in (self.btn_home, self.btn_best):
            b.setEnabled(migrate_ok)
        self.node_view.setEnabled(migrate_ok)
        for b in (self.btn_kill, self.btn_stop, self.btn_cont):
            b.setEnabled(alive and idle)
        self.nice.setEnabled(alive and idle)
        self.btn_cancel.setEnabled(self.busy and self.handle_cancel is not None)

    @property
    def is_green(self) -> bool:
        return bool(self.icon.property("green"))

    def say(self, text: str, ok: bool | None = None) -> None:
        self.last_message = text
        c = theme.colors()
        color = c.up if ok is True else c.down if ok is False else None
        style = f"color: {color.name()};" if color is not None else ""
        self.message.setStyleSheet(style)
        self.message.setText(text)

    # ------------------------------------------------------------ actions
    def send(self, sig: str) -> None:
        key = self.key
        self.say(f"sending SIG{sig} to {actions.ref(key)}…")
        self.workers.submit(
            actions.do_signal, self.cluster, key, sig,
            on_done=lambda text: self.say(f"{actions.ref(key)}: {text}", True),
            on_error=lambda e: self.say(f"{actions.ref(key)}: {actions._error_text(e)}", False),
            context=self,
        )

    def kill(self) -> None:
        r = self.model.get(self.key)
        cmd = r.p.cmd if r else ""
        ans = QMessageBox.question(
            self, "Kill process",
            f"Kill process {self.key[1]} on node {self.key[0]} at once (SIGKILL)?\n\n{cmd[:300]}",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        if ans == QMessageBox.StandardButton.Yes:
            self.send("KILL")

    def renice(self) -> None:
        key, value = self.key, self.nice.value()
        r = self.model.get(key)
        if r is not None and r.p.nice == value:
            return
        self.say(f"renicing {actions.ref(key)} to {value}…")
        self.workers.submit(
            actions.do_renice, self.cluster, key, value,
            on_done=lambda text: self.say(f"{actions.ref(key)}: {text}", True),
            on_error=lambda e: self.say(f"{actions.ref(key)}: {actions._error_text(e)}", False),
            context=self,
        )

    def migrate_to(self, target: int | str) -> None:
        if self.busy:
            return
        if self.problem:
            self.say(f"cannot migrate: {self.problem}", False)
            return
        if self.model.get(self.key) is None:
            self.say(f"process {actions.ref(self.key)} ended (or its PID was reused): not touched", False)
            return
        if target == self.key[0]:
            self.say(f"the process already runs on node {target}", None)
            return
        self.busy = True
        self.handle_cancel = threading.Event()
        self.progress_box.setVisible(True)
        self.bar.setRange(0, 0)
        self.phase.setText("preflight")
        what = target if isinstance(target, str) else f"node {target}"
        self.say(f"migrating {actions.ref(self.key)} to {what}…")
        self._enable()
        key = self.key
        self.workers.submit(
            actions.do_migrate, self.cluster, key, target, self._progress.emit, self.handle_cancel,
            on_done=lambda res: self._migrated(key, res),
            on_error=lambda e: self._migrate_failed(key, e),
            context=self,
        )

    def _on_progress(self, p: Any) -> None:
        d = p if isinstance(p, dict) else p.to_dict()
        phase = str(d.get("phase", ""))
        total, done = int(d.get("total") or 0), int(d.get("bytes") or 0)
        text = phase + (f" → node {d.get('target')}" if d.get("target") else "")
        if d.get("message"):
            text += f": {d['message']}"
        self.phase.setText(text)
        if total > 0 and phase in ("dump", "transfer"):
            self.bar.setRange(0, 1000)
            self.bar.setValue(min(1000, int(1000 * done / total)))
            self.bar.setFormat(f"{fmt_bytes(done)} of {fmt_bytes(total)}")
        else:
            self.bar.setRange(0, 0)

    def _migrated(self, old: ProcKey, res: Any) -> None:
        self.busy = False
        self.handle_cancel = None
        self.last_result = res
        self.progress_box.setVisible(False)
        text = actions.migration_text(res)
        if res.ok and res.new_pid:
            new = (int(res.target), int(res.new_pid), int(res.new_start or 0))
            self._left.add(old)  # its stopped source copy lingers until the node's next sample
            self.key = new
            self.awaiting = res.new_start is None
            self.migrated.emit(old, new)
        self.say(f"{actions.ref(old)}: {text}", True if res.ok else None if res.cancelled else False)
        self.refresh()

    def _migrate_failed(self, old: ProcKey, exc: BaseException) -> None:
        self.busy = False
        self.handle_cancel = None
        self.progress_box.setVisible(False)
        self.say(f"{actions.ref(old)}: {actions._error_text(exc)}", False)
        self.refresh()

    def cancel(self) -> None:
        if self.handle_cancel is not None:
            self.handle_cancel.set()
            self.phase.setText("cancelling…")

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.busy and self.handle_cancel is not None:
            self.handle_cancel.set()  # the engine resumes the process on its node
        super().closeEvent(event)


def _html(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

