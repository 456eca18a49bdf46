"""ommigmon's window: the scene, fed by the cluster's events, and what the mouse asks for.

Nothing here blocks: node changes come through omview.gui.bridge and process changes, by key,
through omprocs' ProcBridge (both coalesced, queued to this thread); migration progress comes as
the engine's Event(kind="migration") through a queued signal; every migration, signal and kill
runs in omview.gui.workers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QPoint, QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import QComboBox, QLabel, QMainWindow, QMenu, QMessageBox, QToolBar, QWidget

from ommigmon.items import ProcKey
from ommigmon.scene import MigScene, MigView
from omprocs import actions
from omprocs.procbridge import ProcBridge
from omview.core.session import Event
from omview.gui.bridge import ClusterBridge
from omview.gui.workers import Workers

BATCH_MS = 250
MENU_ACTIONS = (
    ("home", "Send &home", "migrate it back to its home node"),
    ("best", "Migrate to the &best node", "the node the engine judges best (lowest load per capacity)"),
    ("stop", "&Stop (SIGSTOP)", "pause the process"),
    ("cont", "&Continue (SIGCONT)", "let a paused process run again"),
    ("kill", "&Kill (SIGKILL)…", "end the process at once, after a confirmation"),
    ("migrator", "Open in the &migrator window", "omprocs' migrator window for this process"),
)


class MigmonWindow(QMainWindow):
    """The migration monitor. `cluster`: a started ClusterLike; `main`: the main penguin's node id."""

    _migration = Signal(dict)  # an engine event, queued from the I/O thread
    migrationFinished = Signal(tuple, object)  # (node, pid, start), MigrationResult or exception

    def __init__(self, cluster: Any, main: int | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cluster = cluster
        self.workers = Workers(self)
        self.inflight: dict[tuple[int, int], threading.Event] = {}
        self.last_result: Any = None
        self.last_message = ""
        #: asked before a kill; tests replace it
        self.confirm: Callable[[str, str], bool] = self._ask
        self._procbox: Any = None  # (ProcTableModel,) made when a migrator window is first opened
        self.migrators: dict[ProcKey, Any] = {}
        self.setWindowTitle("ommigmon — migration monitor")
        self.scene = MigScene(self)
        self.view = MigView(self.scene, self)
        self.setCentralWidget(self.view)
        self._build_toolbar()
        self.counts = QLabel()
        self.statusBar().addPermanentWidget(self.counts)

        ids = cluster.node_ids()
        self.main_id = main if main in ids else (ids[0] if ids else 0)
        self.scene.dropped.connect(self._dropped)
        self.scene.sendHome.connect(self.send_home)
        self.scene.menuRequested.connect(self.show_menu)
        self.scene.penguinActivated.connect(self.set_main)

        # 250 ms batches: a square that appears a quarter second late is fine; migrations are
        # followed from their own events (below), not from these batches
        self.bridge = ClusterBridge(cluster, self, min_interval_ms=BATCH_MS)
        self.bridge.nodesChanged.connect(self._nodes_changed)
        self.bridge.linkChanged.connect(lambda nid, _up, _why: self._nodes_changed([nid]))
        # process news by key (omprocs' bridge): a sample names the few rows that changed, so a
        # node's whole table is read only when it was resent in full
        self.procbridge = ProcBridge(cluster, self, min_interval_ms=BATCH_MS)
        self.procbridge.procsChanged.connect(self._procs_batch)
        self._migration.connect(self._on_migration, Qt.ConnectionType.QueuedConnection)
        self._unsubscribe = cluster.subscribe(self._listen)
        self.rebuild()
        self.resize(1100, 860)

    # ------------------------------------------------------------ layout
    def _build_toolbar(self) -> None:
        tb = QToolBar("View", self)
        tb.setMovable(False)
        self.addToolBar(tb)
        tb.addWidget(QLabel(" Main penguin: "))
        self.main_box = QComboBox()
        self.main_box.setToolTip("The node in the middle, with all its processes around it")
        self.main_box.activated.connect(lambda i: self.set_main(int(self.main_box.itemData(i))))
        tb.addWidget(self.main_box)
        tb.addSeparator()
        for text, key, slot, tip in (
            ("Fit", "Ctrl+0", self.fit, "show the whole cluster"),
            ("Zoom in", QKeySequence.StandardKey.ZoomIn, lambda: self._zoom(1.25), "or turn the wheel"),
            ("Zoom out", QKeySequence.StandardKey.ZoomOut, lambda: self._zoom(0.8), "or turn the wheel"),
        ):
            a = QAction(text, self)
            a.setShortcut(key)
            a.setToolTip(tip)
            a.triggered.connect(slot)
            tb.addAction(a)
        tb.addSeparator()
        legend = QLabel(
            "  <span style='color:#111'>■</span> at home &nbsp; <span style='color:#1f9d3a'>■</span> migrated "
            "&nbsp; □ stopped &nbsp;·&nbsp; drag a square onto a penguin to migrate it; double-click: home"
        )
        tb.addWidget(legend)

    def rebuild(self) -> None:
        """Penguins and circles from scratch (start, and when the main penguin changes)."""
        nodes = self.cluster.nodes()
        self.scene.set_nodes(nodes, self.main_id)
        self.main_id = self.scene.main_id
        self.main_box.blockSignals(True)
        self.main_box.clear()
        for st in nodes:
            self.main_box.addItem(f"{st.id}  {st.label}", st.id)
        self.main_box.setCurrentIndex(max(0, self.main_box.findData(self.main_id)))
        self.main_box.blockSignals(False)
        for nid in self.cluster.node_ids():
            self.scene.sync_node(nid, [p for _, p in self.cluster.processes(nid)])
        self.scene.relayout()
        self._update_counts()

    def set_main(self, node: int) -> None:
        if node == self.main_id:
            return
        self.main_id = node
        self.rebuild()
        if not self.view.user_zoomed:
            self.fit()
        self.statusBar().showMessage(f"main penguin: node {node}", 4000)

    def fit(self) -> None:
        self.view.fit()

    def _zoom(self, f: float) -> None:
        self.view.zoom_by(f)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        QTimer.singleShot(0, self.fit)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        if not self.view.user_zoomed:
            self.view.fit()

    def _update_counts(self) -> None:
        sc = self.scene
        guests = sum(1 for it in sc.items_by_key.values() if it.guest)
        down = sum(1 for pg in sc.penguins.values() if not pg.up)
        text = f"{len(sc.penguins)} nodes"
        if down:
            text += f" ({down} down)"
        text += f" · {sc.shown_count()} processes shown, {guests} migrated "
        if text != self.counts.text():
            self.counts.setText(text)

    # ------------------------------------------------------------ cluster events
    def _nodes_changed(self, ids: list[int]) -> None:
        flips = False
        for nid in ids:
            try:
                st = self.cluster.node(nid)
            except KeyError:
                continue
            pg = self.scene.penguins.get(nid)
            flips |= pg is not None and pg.up != st.up
            self.scene.update_node(st)
        if flips:
            self._update_counts()

    def _procs_batch(self, batch: dict[int, tuple[list[tuple[int, int]], bool]]) -> None:
        full = [nid for nid, (_keys, whole) in batch.items() if whole]
        keyed = {nid: keys for nid, (keys, whole) in batch.items() if not whole and keys}
        self._procs_changed(full, keyed)

    def _procs_changed(self, ids: list[int], keyed: dict[int, list[tuple[int, int]]] | None = None) -> None:
        before = self.scene.layout_rect()
        had = self.scene.circles.get(self.main_id)
        rings = had.outer_radius() if had else 0.0
        changed = False
        for nid in ids:
            changed |= self.scene.sync_node(nid, [p for _, p in self.cluster.processes(nid)])
        for nid, keys in (keyed or {}).items():
            changed |= self.scene.sync_keys(nid, keys, self.cluster.process_rows(nid, keys))
        if had is not None and had.outer_radius() > rings + 1 and self.scene.outer_radius() > self.scene._radius:
            self.scene.relayout()  # the main circle grew a ring past the penguins
        if self.scene.layout_rect() != before and not self.view.user_zoomed:
            self.view.fit()  # e.g. the first processes arrived after the window opened
        if changed:
            self._update_counts()

    def _listen(self, ev: Event) -> None:  # I/O thread: only forward
        if ev.kind == "migration":
            self._migration.emit(dict(ev.data))

    def _on_migration(self, d: dict) -> None:
        src, pid = int(d.get("source") or 0), int(d.get("pid") or 0)
        if d.get("final"):
            if d.get("result") == "done" and d.get("new_pid"):
                self.scene.moved(src, pid, int(d.get("dst") or d.get("target") or 0), int(d["new_pid"]))
            elif (src, pid) not in self.inflight:  # someone else's migration that did not happen
                self.scene.stop_busy(src, pid)
            return
        self.scene.set_progress(src, pid, str(d.get("phase", "")), int(d.get("bytes") or 0), int(d.get("total") or 0))

    # ------------------------------------------------------------ migrating
    def _dropped(self, key: tuple, target: int, pos: QPointF) -> None:
        self.migrate(tuple(key), target)  # type: ignore[arg-type]

    def send_home(self, key: tuple) -> None:
        node, pid, _start = key
        item = self.scene.item(node, pid)
        if item is None:
            return
        if not item.guest:
            self.say(f"process {pid} already runs on its home node {node}")
            return
        self.migrate(tuple(key), "home")  # type: ignore[arg-type]

    def migrate(self, key: ProcKey, target: int | str) -> None:
        node, pid, _start = key
        if (node, pid) in self.inflight:
            self.say(f"process {pid} on node {node} is already migrating")
            return
        problem = actions.migration_problem(self.cluster)
        if problem:
            self.scene.bounce(node, pid, f"cannot migrate: {problem}")
            return
        cancel = threading.Event()
        self.inflight[(node, pid)] = cancel
        self.scene.set_progress(node, pid, "preflight", 0, 0)
        what = f"node {target}" if isinstance(target, int) else target
        self.say(f"migrating process {pid} from node {node} to {what}…")
        self.workers.submit(
            actions.do_migrate, self.cluster, key, target, None, cancel,
            on_done=lambda res: self._migrated(key, res),
            on_error=lambda exc: self._migrate_failed(key, exc),
        )

    def _migrated(self, key: ProcKey, res: Any) -> None:
        node, pid, _ = key
        self.inflight.pop((node, pid), None)
        self.last_result = res
        text = actions.migration_text(res)
        if res.ok:
            self.scene.moved(node, pid, int(res.target), int(res.new_pid or 0))
            self.say(f"process {pid}: {text}")
        else:
            self.scene.bounce(node, pid, f"process {pid}: {text}", error=not res.cancelled)
            self.say(f"process {pid} on node {node}: {text}")
        self.migrationFinished.emit(key, res)

    def _migrate_failed(self, key: ProcKey, exc: BaseException) -> None:
        node, pid, _ = key
        self.inflight.pop((node, pid), None)
        self.last_result = exc
        text = actions._error_text(exc)
        self.scene.bounce(node, pid, f"process {pid}: {text}")
        self.say(f"process {pid} on node {node}: {text}")
        self.migrationFinished.emit(key, exc)

    def say(self, text: str) -> None:
        self.last_message = text
        self.statusBar().showMessage(text, 10000)

    # ------------------------------------------------------------ the menu
    def build_menu(self, key: ProcKey) -> QMenu:
        node, pid, _ = key
        item = self.scene.item(node, pid)
        menu = QMenu(self)
        menu.setToolTipsVisible(True)
        title = menu.addAction(f"PID {pid} on node {node}")
        title.setEnabled(False)
        menu.addSeparator()
        busy = (node, pid) in self.inflight
        for what, text, tip in MENU_ACTIONS:
            a = menu.addAction(text)
            a.setToolTip(tip)
            a.setData(what)
            if what == "home" and (item is None or not item.guest):
                a.setEnabled(False)
                a.setToolTip("it already runs on its home node")
            elif what in ("home", "best") and busy:
                a.setEnabled(False)
            a.triggered.connect(lambda _=False, w=what: self.act(key, w))
            if what == "cont":
                menu.addSeparator()
        return menu

    def show_menu(self, key: tuple, screen_pos: QPoint) -> None:
        self.build_menu(tuple(key)).popup(screen_pos)  # type: ignore[arg-type]

    def act(self, key: ProcKey, what: str) -> Any:
        node, pid, _ = key
        if what in ("home", "best"):
            self.migrate(key, what)
        elif what == "migrator":
            return self.open_migrator(key)
        elif what in ("stop", "cont", "kill"):
            sig = {"stop": "STOP", "cont": "CONT", "kill": "KILL"}[what]
            if what == "kill":
                item = self.scene.item(node, pid)
                cmd = item.p.cmd[:300] if item is not None else ""
                if not self.confirm("Kill process", f"Kill process {pid} on node {node} at once (SIGKILL)?\n\n{cmd}"):
                    return
            self.workers.submit(
                actions.do_signal, self.cluster, key, sig,
                on_done=lambda text: self.say(f"process {pid} on node {node}: {text}"),
                on_error=lambda exc: self._signal_failed(key, exc),
            )
        return None

    def _signal_failed(self, key: ProcKey, exc: BaseException) -> None:
        node, pid, _ = key
        text = actions._error_text(exc)
        item = self.scene.item(node, pid)
        self.scene.balloon(item.pos() if item is not None else self.scene.centre(node), f"process {pid}: {text}")
        self.say(f"process {pid} on node {node}: {text}")

    def _ask(self, title: str, text: str) -> bool:
        ans = QMessageBox.question(self, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                   QMessageBox.StandardButton.No)
        return ans == QMessageBox.StandardButton.Yes

    # ------------------------------------------------------------ omprocs' migrator window
    def open_migrator(self, key: ProcKey) -> Any:
        from omprocs.migrator import MigratorWindow
        from omprocs.procmodel import ProcTableModel

        if self._procbox is None:
            model = ProcTableModel(self.cluster, self)
            self.procbridge.procsChanged.connect(model.apply_batch)
            self.procbridge.linkChanged.connect(lambda nid, up, why: model.set_node_down(nid, not up, why))
            self._procbox = (model,)
        model = self._procbox[0]
        w = self.migrators.get(key)
        if w is None:
            if model.get(key) is None:
                self.say(f"process {key[1]} on node {key[0]} has ended")
                return None
            w = MigratorWindow(self.cluster, model, self.workers, key, self)
            w.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            w.destroyed.connect(lambda *_: self.migrators.pop(key, None))
            self.migrators[key] = w
        w.show()
        w.raise_()
        w.activateWindow()
        return w

    # ------------------------------------------------------------ closing
    def closeEvent(self, event: QCloseEvent) -> None:
        for cancel in self.inflight.values():
            cancel.set()  # the engine resumes the process where it was
        self._unsubscribe()
        self.bridge.close()
        self.procbridge.close()
        self.scene.frame.stop()
        self.workers.shutdown(3000)
        super().closeEvent(event)
