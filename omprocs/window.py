"""The process box (HOWTO 10.5.1): every process of the cluster, or of one node, in one table.

A filter bar (text, user, node, only migrated, only mine), sorting on every column, an optional
tree by parent, multi-select actions (signal, renice, migrate) with progress and per-process
results, the migrator window on double-click and the remote-procs window. Nothing here blocks:
reads are copies from the cluster, every request goes through omview.gui.workers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from omprocs import actions
from omprocs.migrator import MigratorWindow
from omprocs.procbridge import ProcBridge
from omprocs.procmodel import ProcFilterProxy, ProcKey, ProcTableModel
from omprocs.proctree import ProcTreeModel, ProcTreeView
from omprocs.procview import ProcTableView
from omprocs.remote import RemoteProcsWindow
from omview.gui import theme
from omview.gui.workers import Workers

ALL = 0


class ProcBoxWindow(QMainWindow):
    def __init__(self, cluster: Any, node: int | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cluster = cluster
        self.scope = node
        self.workers = Workers(self)
        self.runner = actions.BatchRunner(self.workers, self)
        self.bridge = ProcBridge(cluster, self)
        self.model = ProcTableModel(cluster, self, nodes=[node] if node is not None else None)
        self.proxy = ProcFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.tree_model: ProcTreeModel | None = None
        self.migrators: dict[ProcKey, MigratorWindow] = {}
        self.remote: RemoteProcsWindow | None = None
        self.problem = actions.migration_problem(cluster)
        where = f"node {node}" if node is not None else (cluster.config.name or cluster.config.source or "cluster")
        self.setWindowTitle(f"omprocs — {where}")
        self.setMinimumSize(720, 360)
        self._build()
        self.bridge.procsChanged.connect(self._procs_changed)
        self.bridge.nodesChanged.connect(self._nodes_changed)
        self.bridge.linkChanged.connect(self._link_changed)
        self.resize(1180, 680)
        self._probing = False
        if self.problem is None:
            self.probe_migration()

    def probe_migration(self) -> None:
        """Find out once whether the node agents speak migration (buttons say why not)."""
        if getattr(self, "_probing", False):
            return
        self._probing = True

        def done(problem: object) -> None:
            self._probing = False
            self.set_migration_problem(problem if isinstance(problem, str) else None)

        def failed(_exc: BaseException) -> None:
            self._probing = False

        self.workers.submit(actions.probe_agents, self.cluster, on_done=done, on_error=failed, context=self)

    def set_migration_problem(self, problem: str | None) -> None:
        self.problem = problem
        if problem:  # the whole reason is in the tooltips; the status bar has room for little
            self.statusBar().showMessage("Migration unavailable: hover “Migrate…” to see why", 15000)
        self.act_migrate.setToolTip("Migrate the selected processes: home, best or a node you pick (Ctrl+M)")
        for w in self.migrators.values():
            w.set_problem(problem)
        if self.remote is not None:
            self.remote.set_problem(problem)
        self._selection_changed()

    # ------------------------------------------------------------ layout
    def _build(self) -> None:
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(6, 6, 6, 4)
        bar = QHBoxLayout()
        self.filter_text = QLineEdit()
        self.filter_text.setPlaceholderText("Filter: PID, user or command…")
        self.filter_text.setClearButtonEnabled(True)
        self.filter_text.setToolTip("Show only processes whose PID, user or command line contains this text (Ctrl+F)")
        self.filter_text.setMinimumWidth(220)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(180)
        self._debounce.timeout.connect(self._apply_text)
        self.filter_text.textChanged.connect(lambda _t: self._debounce.start())
        self.filter_user = QComboBox()
        self.filter_user.setEditable(True)
        self.filter_user.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.filter_user.setToolTip("Show only processes of this user (type a name or pick one)")
        edit = self.filter_user.lineEdit()
        if edit is not None:
            edit.setPlaceholderText("all users")
        self.filter_user.setMinimumWidth(120)
        self.filter_user.currentTextChanged.connect(lambda t: self.proxy.set_filter(user=t))
        self.filter_user.installEventFilter(self)
        self._fill_users()
        self.filter_node = QComboBox()
        self.filter_node.setToolTip("Show only processes running on this node")
        self.filter_node.addItem("all nodes", ALL)
        for st in self.cluster.nodes():
            if self.scope is None or st.id == self.scope:
                self.filter_node.addItem(f"node {st.id} — {st.label}", st.id)
        self.filter_node.currentIndexChanged.connect(
            lambda _i: self.proxy.set_filter(node=int(self.filter_node.currentData() or 0)))
        self.only_migrated = QCheckBox("only &migrated")
        self.only_migrated.setToolTip("Show only processes running away from their home node")
        self.only_migrated.toggled.connect(lambda on: self.proxy.set_filter(only_migrated=on))
        self.only_mine = QCheckBox(f"only m&ine ({self.proxy.me or '?'})")
        self.only_mine.setToolTip(f"Show only processes of {self.proxy.me or 'the user running omprocs'}")
        self.only_mine.toggled.connect(lambda on: self.proxy.set_filter(only_mine=on))
        self.tree_box = QCheckBox("&tree")
        self.tree_box.setToolTip("Show the processes as a tree by parent process, per node")
        self.tree_box.toggled.connect(self.set_tree)
        for box in (self.only_migrated, self.only_mine, self.tree_box):
            theme.tune_indicators(box)  # unchecked boxes stay visible on the dark palette
        bar.addWidget(self.filter_text, 2)
        bar.addWidget(self.filter_user)
        bar.addWidget(self.filter_node)
        bar.addWidget(self.only_migrated)
        bar.addWidget(self.only_mine)
        bar.addWidget(self.tree_box)
        lay.addLayout(bar)

        self.stack = QStackedWidget()
        self.view = ProcTableView()
        self.view.setModel(self.proxy)
        self.view.activatedKey.connect(self.open_migrator)
        self.view.contextMenuWanted.connect(self._context_menu)
        self.view.selectionModel().selectionChanged.connect(lambda *_: self._selection_changed())
        self.stack.addWidget(self.view)
        self.tree_view = ProcTreeView()
        self.tree_view.activatedKey.connect(self.open_migrator)
        self.tree_view.contextMenuWanted.connect(self._context_menu)
        self.stack.addWidget(self.tree_view)
        lay.addWidget(self.stack, 1)

        self._build_actions()
        row = QHBoxLayout()
        for a in (self.act_remote, self.act_migrate, self.act_stop, self.act_cont, self.act_renice, self.act_kill):
            b = QPushButton(a.text().replace("…", "") + ("…" if a.text().endswith("…") else ""))
            b.setToolTip(a.toolTip())
            b.setAutoDefault(False)
            b.clicked.connect(a.trigger)
            a.changed.connect(lambda b=b, a=a: (b.setEnabled(a.isEnabled()), b.setToolTip(a.toolTip())))
            b.setEnabled(a.isEnabled())
            row.addWidget(b)
            if a is self.act_migrate:
                self.migrate_button = b
        self.signal_button = QPushButton("Signal")
        self.signal_button.setToolTip("Send another signal to the selected processes")
        self.signal_button.setMenu(self.signal_menu)
        row.addWidget(self.signal_button)
        row.addStretch(1)
        lay.addLayout(row)
        self.setCentralWidget(central)
        self.summary = QLabel()
        self.summary.setToolTip("Processes known, shown, selected; nodes up")
        self.statusBar().addPermanentWidget(self.summary)
        for sig in (self.proxy.rowsInserted, self.proxy.rowsRemoved, self.proxy.modelReset, self.proxy.layoutChanged,
                    self.proxy.filterChanged):
            sig.connect(self._schedule_summary)
        self._summary_timer = QTimer(self)
        self._summary_timer.setSingleShot(True)
        self._summary_timer.setInterval(250)
        self._summary_timer.timeout.connect(self._update_summary)
        self._update_summary()
        self._selection_changed()

    def _act(self, text: str, tip: str, slot: Callable[[], object], shortcut: str | None = None) -> QAction:
        a = QAction(text, self)
        a.setToolTip(tip)
        a.setStatusTip(tip)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
            a.setToolTip(f"{tip} ({QKeySequence(shortcut).toString()})")
        a.triggered.connect(lambda _c=False: slot())
        self.addAction(a)
        return a

    def _build_actions(self) -> None:
        self.act_remote = self._act(
            "Manage procs from &remote…",
            "Open the remote-procs window: guests that came to a node from other nodes",
            self.open_remote, "Ctrl+R")
        self.act_migrate = self._act(
            "&Migrate…", "Migrate the selected processes: home, best or a node you pick", self.migrate_menu, "Ctrl+M")
        self.act_stop = self._act("SIG&STOP", "Pause the selected processes", lambda: self.signal("STOP"))
        self.act_cont = self._act(
            "SIG&CONT", "Let the selected paused processes run again", lambda: self.signal("CONT"))
        self.act_renice = self._act("Re&nice…", "Set the nice value of the selected processes", self.renice)
        self.act_kill = self._act("&Kill…", "Kill the selected processes (SIGKILL), after a confirmation",
                                  lambda: self.signal("KILL"), "Del")
        self.act_open = self._act("&Open migrator", "Open the migrator window of the current process",
                                  self._open_current)
        self.act_filter = self._act("&Filter", "Type to filter the processes", self.filter_text.setFocus, "Ctrl+F")
        self.signal_menu = QMenu(self)
        self.signal_menu.setToolTipsVisible(True)
        for sig in actions.SIGNALS:
            a = self.signal_menu.addAction(f"SIG{sig}")
            a.setToolTip(actions.SIGNAL_TIPS[sig])
            a.triggered.connect(lambda _c=False, s=sig: self.signal(s))

        m = self.menuBar().addMenu("&Process")
        m.setToolTipsVisible(True)
        for a in (self.act_open, self.act_migrate, self.act_stop, self.act_cont, self.act_renice, self.act_kill):
            m.addAction(a)
        sm = m.addMenu("Send &signal")
        sm.setToolTipsVisible(True)
        for a in self.signal_menu.actions():
            sm.addAction(a)
        m.addSeparator()
        quit_ = self._act("&Quit", "Close omprocs", self.close, "Ctrl+Q")
        m.addAction(quit_)
        v = self.menuBar().addMenu("&View")
        v.addAction(self.act_filter)
        v.addAction(self.act_remote)

    # ------------------------------------------------------------ updates
    def _procs_changed(self, batch: dict) -> None:
        self.model.apply_batch(batch)

    def _nodes_changed(self, ids: list[int]) -> None:
        for w in self.migrators.values():
            w.nodes_changed(ids)

    def _link_changed(self, node: int, up: bool, reason: str) -> None:
        self.model.set_node_down(node, not up, reason)
        if up and self.problem is not None and actions.migration_problem(self.cluster) == self.problem:
            self.probe_migration()  # a node came (back): its agent may be newer
        if not up:
            self.statusBar().showMessage(f"node {node} down: {reason}", 8000)
        self._schedule_summary()

    def _schedule_summary(self, *_: Any) -> None:
        if not self._summary_timer.isActive():
            self._summary_timer.start()

    def _update_summary(self) -> None:
        total = self.model.rowCount()
        shown = self.proxy.rowCount()
        nodes = self.cluster.nodes()
        up = sum(1 for n in nodes if n.up)
        sel = len(self.selected_keys())
        text = f"{shown} of {total} processes shown · {up}/{len(nodes)} nodes up"
        if sel:
            text += f" · {sel} selected"
        self.summary.setText(text)

    def _apply_text(self) -> None:
        self.proxy.set_filter(text=self.filter_text.text())

    def _fill_users(self) -> None:
        current = self.filter_user.currentText()
        users = sorted({r.p.user for r in self.model.rows() if r.p.user})
        self.filter_user.blockSignals(True)
        self.filter_user.clear()
        self.filter_user.addItem("")
        self.filter_user.addItems(users)
        self.filter_user.setEditText(current)
        self.filter_user.blockSignals(False)

    def eventFilter(self, obj: Any, event: Any) -> bool:
        # the user list is read when it is about to be shown, not kept up to date per tick
        if obj is self.filter_user and event.type() == event.Type.MouseButtonPress:
            self._fill_users()
        return super().eventFilter(obj, event)

    def _selection_changed(self) -> None:
        keys = self.selected_keys()
        any_sel = bool(keys)
        for a in (self.act_stop, self.act_cont, self.act_renice, self.act_kill):
            a.setEnabled(any_sel)
        self.act_migrate.setEnabled(any_sel and self.problem is None)
        if self.problem:
            self.act_migrate.setToolTip(f"Migrate the selected processes — unavailable: {self.problem}")
        self.act_open.setEnabled(any_sel)
        self.signal_button.setEnabled(any_sel) if hasattr(self, "signal_button") else None
        self._schedule_summary()

    # ------------------------------------------------------------ tree
    def set_tree(self, on: bool) -> None:
        if on:
            if self.tree_model is None:
                self.tree_model = ProcTreeModel(self.model, self)
                self.tree_view.set_models(self.tree_model, self.proxy)
                self.tree_view.selectionModel().selectionChanged.connect(lambda *_: self._selection_changed())
            self.tree_model.set_active(True)
            self.tree_view.expand_top()
            self.stack.setCurrentWidget(self.tree_view)
        else:
            if self.tree_model is not None:
                self.tree_model.set_active(False)
            self.stack.setCurrentWidget(self.view)
        self._selection_changed()

    # ------------------------------------------------------------ selection
    def selected_keys(self) -> list[ProcKey]:
        if self.stack.currentWidget() is self.tree_view:
            return self.tree_view.selected_keys()
        return self.view.selected_keys()

    def _commands(self, keys: list[ProcKey]) -> dict[ProcKey, str]:
        return {k: (r.p.cmd if (r := self.model.get(k)) else "") for k in keys}

    def _context_menu(self, pos: QPoint) -> None:
        m = QMenu(self)
        m.setToolTipsVisible(True)
        for a in (self.act_open, self.act_migrate, self.act_stop, self.act_cont, self.act_renice, self.act_kill):
            m.addAction(a)
        sm = m.addMenu("Send signal")
        sm.setEnabled(bool(self.selected_keys()))
        for a in self.signal_menu.actions():
            sm.addAction(a)
        m.exec(pos)

    # ------------------------------------------------------------ actions
    def signal(self, sig: str) -> None:
        keys = self.selected_keys()
        if not keys:
            return
        if sig == "KILL":
            lines = "\n".join(f"  {k[0]}:{k[1]}  {self._commands([k])[k][:70]}" for k in keys[:10])
            more = f"\n  … and {len(keys) - 10} more" if len(keys) > 10 else ""
            ans = QMessageBox.question(
                self, "Kill processes",
                f"Kill {len(keys)} process{'es' if len(keys) > 1 else ''} at once (SIGKILL)?\n\n{lines}{more}",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
            if ans != QMessageBox.StandardButton.Yes:
                return
        self.runner.run(f"SIG{sig}", keys, f"SIG{sig}", lambda k: actions.do_signal(self.cluster, k, sig),
                        commands=self._commands(keys))

    def renice(self) -> None:
        keys = self.selected_keys()
        if not keys:
            return
        first = self.model.get(keys[0])
        value, ok = QInputDialog.getInt(
            self, "Renice", f"Nice value for {len(keys)} process(es)\n(-20 highest priority … 19 lowest):",
            first.p.nice if first else 0, -20, 19, 1)
        if not ok:
            return
        self.runner.run(f"Renice to {value}", keys, f"renice {value}",
                        lambda k: actions.do_renice(self.cluster, k, value), commands=self._commands(keys))

    def migrate_menu(self) -> None:
        keys = self.selected_keys()
        if not keys or self.problem:
            return
        m = QMenu(self)
        m.setToolTipsVisible(True)
        m.addAction("Home node", lambda: self.migrate(keys, "home")).setToolTip("Each process to its home node")
        m.addAction("Best node", lambda: self.migrate(keys, "best")).setToolTip(
            "Each process to the best node: lowest load per unit of speed × CPUs")
        m.addSeparator()
        for st in self.cluster.nodes():
            a = m.addAction(f"Node {st.id} — {st.label}", functools.partial(self.migrate, keys, st.id))
            a.setEnabled(st.up)
            a.setToolTip("" if st.up else f"down: {st.reason}")
        btn = getattr(self, "migrate_button", None)
        pos = btn.mapToGlobal(btn.rect().bottomLeft()) if btn is not None and btn.isVisible() else self.cursor().pos()
        self.last_menu = m
        m.popup(pos)

    def migrate(self, keys: list[ProcKey], target: int | str) -> None:
        if self.problem:
            return
        what = target if isinstance(target, str) else f"node {target}"
        self.runner.run(
            f"Migrate to {what}", keys, f"migrate → {what}",
            lambda k: actions.do_migrate(self.cluster, k, target),
            commands=self._commands(keys),
            describe=lambda res: (bool(res.ok), actions.migration_text(res)),
            parallel=False,
        )

    # ------------------------------------------------------------ windows
    def _open_current(self) -> None:
        keys = self.selected_keys()
        if keys:
            self.open_migrator(keys[0])

    def open_migrator(self, key: ProcKey) -> MigratorWindow | None:
        key = tuple(key)  # type: ignore[assignment]
        w = self.migrators.get(key)
        if w is None:
            if self.model.get(key) is None:
                self.statusBar().showMessage(f"process {key[1]} on node {key[0]} has ended", 5000)
                return None
            w = MigratorWindow(self.cluster, self.model, self.workers, key, self)
            w.setWindowIcon(self.windowIcon())
            w.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            w.destroyed.connect(lambda *_: self._forget_migrator(w))
            w.migrated.connect(self._migrator_moved)
            self.migrators[key] = w
        w.show()
        w.raise_()
        w.activateWindow()
        return w

    def _forget_migrator(self, w: MigratorWindow) -> None:
        for k, v in list(self.migrators.items()):
            if v is w:
                del self.migrators[k]

    def _migrator_moved(self, old: tuple, new: tuple) -> None:
        w = self.migrators.pop(old, None)
        if w is not None:
            self.migrators[new] = w

    def open_remote(self) -> RemoteProcsWindow:
        if self.remote is None:
            node = self.scope if self.scope is not None else int(self.filter_node.currentData() or 0) or None
            self.remote = RemoteProcsWindow(self.cluster, self.model, self.runner, node, self)
            self.remote.setWindowIcon(self.windowIcon())
            self.remote.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            self.remote.destroyed.connect(lambda *_: setattr(self, "remote", None))
        self.remote.show()
        self.remote.raise_()
        return self.remote

    def closeEvent(self, event: QCloseEvent) -> None:
        for w in list(self.migrators.values()):
            w.close()
        if self.remote is not None:
            self.remote.close()
        self.bridge.close()
        self.workers.shutdown(500)
        super().closeEvent(event)

