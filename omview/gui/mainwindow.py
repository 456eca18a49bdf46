"""The omview main window (HOWTO 10.4.1): the node table, the balance gauge, menus, the launcher.

The window owns one cluster at a time. It never blocks: reads are copies from the cluster,
everything that talks to a node goes through `Workers`, and opening another cluster stops the
old one on a plain thread (a hung node's connect may take seconds to give up).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QStyle,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

import omview
from omview.core.balancer import Balancer
from omview.core.cluster import ClusterLike, open_cluster
from omview.core.config import ClusterConfig, ConfigError, load_cluster
from omview.gui import theme
from omview.gui.bridge import ClusterBridge
from omview.gui.execdialog import ExecDialog
from omview.gui.launcher import Launcher, app_command
from omview.gui.nodedialog import NodeDialog
from omview.gui.nodemodel import ALL_NODES, NodeSortProxy, NodeTableModel
from omview.gui.nodeview import NodeTableView
from omview.gui.settingsdialog import Prefs, SettingsDialog
from omview.gui.workers import Workers

ClusterFactory = Callable[[ClusterConfig], ClusterLike]
MAX_RECENT = 8
COLLECTOR_MISSING = "omcollector is not installed with this copy of omview"


def default_factory(config: ClusterConfig) -> ClusterLike:
    """Through the workstation's session hub when it runs or can start, so omview, omprocs and
    ommigmon share one agent per node; in this process otherwise."""
    return open_cluster(config, client="omview")


def settings() -> QSettings:
    return QSettings("omview", "omview")


def load_prefs(s: QSettings | None = None) -> Prefs:
    s = s or settings()
    interval = s.value("interval")
    kh = s.value("known_hosts")
    return Prefs(
        interval=float(interval) if interval not in (None, "") else None,
        known_hosts=str(kh) if kh else None,
        accept_new=str(s.value("accept_new", "false")).lower() == "true",
        theme=str(s.value("theme", "system")),
    )


def save_prefs(p: Prefs, s: QSettings | None = None) -> None:
    s = s or settings()
    s.setValue("interval", "" if p.interval is None else p.interval)
    s.setValue("known_hosts", p.known_hosts or "")
    s.setValue("accept_new", "true" if p.accept_new else "false")
    s.setValue("theme", p.theme)


def apply_prefs(config: ClusterConfig, p: Prefs) -> ClusterConfig:
    """The user's overrides on top of the cluster file (a copy; the file is not touched)."""
    out = dataclasses.replace(config)
    if p.interval is not None:
        out.interval = p.interval
    if p.known_hosts:
        out.known_hosts = os.path.expanduser(p.known_hosts)
    out.accept_new_host_keys = out.accept_new_host_keys or p.accept_new
    return out


def docs_dir() -> Path | None:
    """The docs folder of a checkout; an installed wheel has none."""
    d = Path(omview.__file__).resolve().parent.parent / "docs"
    return d if (d / "architecture.md").is_file() else None


class MainWindow(QMainWindow):
    def __init__(
        self,
        cluster: ClusterLike | None = None,
        cluster_file: str | None = None,
        *,
        factory: ClusterFactory = default_factory,
        prefs: Prefs | None = None,
        restore: bool = True,
    ) -> None:
        super().__init__()
        self.factory = factory
        self.prefs = prefs or load_prefs()
        self.workers = Workers(self)
        self.launcher = Launcher(self)
        self.collector_command = app_command
        self.launcher.failed.connect(self._launch_failed)
        self.cluster: ClusterLike | None = None
        self.cluster_file: str | None = None
        self.bridge: ClusterBridge | None = None
        self.model: NodeTableModel | None = None
        self.dialogs: dict[int, NodeDialog] = {}
        self.exec_dialog: ExecDialog | None = None
        self.balancer: Balancer | None = None  # while the toolbar toggle is on
        self.last_update = 0.0
        self.setWindowTitle("omview")
        self.setMinimumSize(760, 360)
        self._build()
        geo = settings().value("geometry") if restore else None
        if not (isinstance(geo, QByteArray) and self.restoreGeometry(geo)):
            # first start: wide enough for every column, never larger than the screen
            screen = QApplication.primaryScreen()
            avail = screen.availableGeometry() if screen else None
            w, h = 1260, 640
            if avail is not None:
                w, h = min(w, int(avail.width() * 0.95)), min(h, int(avail.height() * 0.85))
            self.resize(w, h)
        if cluster is not None:
            self.set_cluster(cluster, cluster_file)

    # ------------------------------------------------------------ layout
    def _build(self) -> None:
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(6, 6, 6, 4)
        top = QHBoxLayout()
        self.gauge = QProgressBar()
        self.gauge.setRange(0, 100)
        self.gauge.setFormat("Balance %p %")
        self.gauge.setMinimumWidth(190)
        self.gauge.setMaximumWidth(260)
        self.gauge.setTextVisible(True)
        self.gauge.setAccessibleName("Balance efficiency")
        self.gauge.setToolTip(
            "Balance efficiency: 100 % when every up node carries nearly the same load per unit of "
            "capacity.\n100 × (1 − standard deviation / mean of the nodes' loads), the mean taken as at "
            "least 10 %."
        )
        self.source_label = QLabel()
        self.source_label.setToolTip("The cluster shown: its file, or how it was found")
        self.source_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter nodes…")
        self.filter.setClearButtonEnabled(True)
        self.filter.setMaximumWidth(240)
        self.filter.setToolTip("Show only nodes whose row contains this text: id, address, flags… (Ctrl+F)")
        top.addWidget(self.gauge)
        top.addSpacing(10)
        top.addWidget(self.source_label, 1)
        top.addWidget(self.filter)
        lay.addLayout(top)

        self.view = NodeTableView()
        self.view.nodeActivated.connect(self.open_node_dialog)
        self.proxy = NodeSortProxy(self)
        self.filter.textChanged.connect(self._filter_changed)
        lay.addWidget(self.view, 1)
        self.setCentralWidget(central)

        self.summary = QLabel()
        self.summary.setToolTip("Nodes up, mean load, last update")
        self.statusBar().addPermanentWidget(self.summary)
        self._build_actions()
        self._tick = QTimer(self)  # "updated N s ago" keeps moving even when nothing arrives
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._update_summary)
        self._tick.start()

    def _act(
        self,
        text: str,
        tip: str,
        slot: Callable[[], object] | None = None,
        *,
        shortcut: str | None = None,
        icon: QStyle.StandardPixmap | None = None,
        enabled: bool = True,
    ) -> QAction:
        a = QAction(text, self)
        a.setToolTip(tip)
        a.setStatusTip(tip)
        if icon is not None:
            a.setIcon(self.style().standardIcon(icon))
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
        if slot is not None:
            a.triggered.connect(lambda _checked=False: slot())
        a.setEnabled(enabled)
        return a

    def _menu(self, title: str) -> QMenu:
        m = self.menuBar().addMenu(title)
        m.setToolTipsVisible(True)
        return m

    def _build_actions(self) -> None:
        SP = QStyle.StandardPixmap
        self.act_balance = self._act(
            "&Balancer",
            "Automatic load balancing: move CPU-bound jobs to where they run best (openMosix), in this window",
            icon=SP.SP_BrowserReload,
        )
        self.act_balance.setCheckable(True)
        self.act_balance.toggled.connect(self.set_balancing)
        self.act_open = self._act(
            "&Open cluster…",
            "Open a cluster settings file (.toml) or an openMosix map",
            self.choose_cluster_file,
            shortcut="Ctrl+O",
            icon=SP.SP_DialogOpenButton,
        )
        self.act_settings = self._act(
            "&Settings…",
            "Refresh interval, SSH host-key options, palette",
            self.edit_settings,
            shortcut="Ctrl+,",
            icon=SP.SP_FileDialogDetailedView,
        )
        self.act_quit = self._act(
            "&Quit",
            "Close omview (the other apps keep running)",
            self.close,
            shortcut="Ctrl+Q",
            icon=SP.SP_DialogCloseButton,
        )
        self.act_all = self._act(
            "Configure &all nodes…",
            "stay, quiet, lstay, block, start/stop on every node",
            lambda: self.open_node_dialog(ALL_NODES),
            shortcut="Ctrl+A",
            icon=SP.SP_ComputerIcon,
        )
        self.act_procs = self._act(
            "&Process box",
            "Open omprocs: every process of the cluster",
            lambda: self.launch("omprocs"),
            shortcut="Ctrl+P",
            icon=SP.SP_FileDialogListView,
        )
        self.act_migmon = self._act(
            "&Migration monitor",
            "Open ommigmon: processes and migrations as they happen",
            lambda: self.launch("ommigmon"),
            shortcut="Ctrl+M",
            icon=SP.SP_BrowserReload,
        )
        self.act_exec = self._act(
            "Advanced &execution…",
            "Start a program as a job: no migration, run home/on, cpu/io job, decay modes, parallel",
            self.open_exec_dialog,
            shortcut="Ctrl+E",
            icon=SP.SP_MediaPlay,
        )
        self.act_analyzer = self._act(
            "&Analyzer",
            "Open omanalyzer: load and memory history of the cluster",
            lambda: self.launch("omanalyzer"),
            icon=SP.SP_FileDialogContentsView,
        )
        self.act_history = self._act(
            "&History browser",
            "Open omhistory: the process lists of the past",
            lambda: self.launch("omhistory"),
            icon=SP.SP_FileDialogBack,
        )
        have_collector = importlib.util.find_spec("omcollector") is not None
        collector_items = (
            ("&Start collector", "Start omcollector as a daemon for this cluster (omcollector -d)", ["-d"]),
            ("S&top collector", "Stop the running omcollector (omcollector -k)", ["-k"]),
            ("Write &checkpoint…", "Mark this moment in the history, with a label (omcollector -n)", ["-n"]),
            ("&Rotate history", "Save the history as a backup and start a new one (omcollector -r)", ["-r"]),
            ("Collector s&tatus", "Whether a collector runs, and what it writes (omcollector --status)", ["--status"]),
        )
        self.collector_actions = [
            self._act(
                text,
                tip if have_collector else f"{tip} — {COLLECTOR_MISSING}",
                lambda flags=flags, text=text: self.run_collector(flags, text.replace("&", "").rstrip("…")),
                enabled=have_collector,
            )
            for text, tip, flags in collector_items
        ]
        self.act_about = self._act("&About omview", "Version and origin of omview", self.about)
        docs = docs_dir()
        self.act_docs = self._act(
            "&Documentation",
            f"Open {docs}" if docs else "The documentation is not installed with this copy of omview",
            self.open_docs,
            shortcut="F1",
            enabled=docs is not None,
        )

        m = self._menu("&File")
        m.addAction(self.act_open)
        self.recent_menu = m.addMenu("Open &recent")
        self.recent_menu.setToolTipsVisible(True)
        self._rebuild_recent()
        m.addSeparator()
        m.addAction(self.act_settings)
        m.addSeparator()
        m.addAction(self.act_quit)

        m = self._menu("&View")
        m.addAction(self.act_all)
        self.act_filter = self._act(
            "&Filter nodes", "Type to show only matching nodes", lambda: self.filter.setFocus(), shortcut="Ctrl+F"
        )
        m.addAction(self.act_filter)
        pal = m.addMenu("&Palette")
        pal.setToolTipsVisible(True)
        self.theme_group = QActionGroup(self)
        for name in theme.THEMES:
            a = self._act(name.capitalize(), f"Use the {name} palette", lambda n=name: self.set_theme(n))
            a.setCheckable(True)
            a.setChecked(name == self.prefs.theme)
            self.theme_group.addAction(a)
            pal.addAction(a)

        m = self._menu("&Collector")
        for a in self.collector_actions:
            m.addAction(a)
        m = self._menu("&Analyzer")
        m.addAction(self.act_analyzer)
        m.addAction(self.act_history)
        m = self._menu("&Tools")
        m.addAction(self.act_procs)
        m.addAction(self.act_migmon)
        m.addAction(self.act_exec)
        m.addAction(self.act_balance)
        m = self._menu("&Help")
        m.addAction(self.act_docs)
        m.addAction(self.act_about)

        tb = QToolBar("Main")
        tb.setObjectName("main-toolbar")
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for a in (
            self.act_open,
            self.act_settings,
            self.act_all,
            self.act_exec,
            self.act_procs,
            self.act_migmon,
            self.act_analyzer,
            self.act_balance,
        ):
            tb.addAction(a)
        tb.toggleViewAction().setToolTip("Show or hide the toolbar")
        self.addToolBar(tb)
        self.toolbar = tb

    # ------------------------------------------------------------ cluster
    def set_cluster(self, cluster: ClusterLike, cluster_file: str | None) -> None:
        old, old_bridge = self.cluster, self.bridge
        self.act_balance.setChecked(False)  # a balancer belongs to one cluster
        for dlg in list(self.dialogs.values()):
            dlg.close()
        self.dialogs.clear()
        if self.exec_dialog is not None:
            self.exec_dialog.close()
        self.cluster = cluster
        self.cluster_file = cluster_file
        self.bridge = ClusterBridge(cluster, self)
        self.model = NodeTableModel(cluster, self)
        self.model.speedRequested.connect(self.set_speed)
        self.model.aggregateChanged.connect(self._update_summary)
        self.bridge.nodesChanged.connect(self._nodes_changed)
        self.bridge.linkChanged.connect(self._link_changed)
        self.proxy.setSourceModel(self.model)
        if self.view.model() is not self.proxy:
            self.view.setModel(self.proxy)
        src = cluster.config.source or "cluster"
        self.source_label.setText(
            f"<b>{cluster.config.name or 'Cluster'}</b> — {src} — {len(cluster.node_ids())} node(s)"
        )
        self.setWindowTitle(f"omview — {cluster.config.name or src}")
        self._update_summary()
        if old_bridge is not None:
            old_bridge.close()
            old_bridge.deleteLater()
        if old is not None and old is not cluster:
            threading.Thread(target=old.stop, name="omview-stop-cluster", daemon=True).start()

    def _filter_changed(self, text: str) -> None:
        # live re-filtering ("down" shows nodes as they fail) costs a re-sort per tick: only while filtering
        self.proxy.setDynamicSortFilter(bool(text))
        self.proxy.setFilterFixedString(text)

    def _nodes_changed(self, ids: list[int]) -> None:
        if self.model is not None:
            self.model.update_nodes(ids)
            self.last_update = time.monotonic()

    def _link_changed(self, node_id: int, up: bool, reason: str) -> None:
        if not up:
            self.statusBar().showMessage(f"node {node_id} down: {reason}", 8000)

    def open_cluster_file(self, path: str | None, *, remember: bool = True) -> bool:
        """Load a cluster file (None = the usual lookup) and show it; errors in a message box.

        `remember=False` for throw-away clusters (the demo) that must not be reopened next time.
        """
        try:
            config = load_cluster(path)
        except (ConfigError, OSError) as exc:
            QMessageBox.warning(self, "Cannot open cluster", str(exc))
            return False
        self.set_cluster(self.factory(apply_prefs(config, self.prefs)), path)
        if remember:
            if path:
                self._remember(path)
            settings().setValue("cluster_file", path or "")
        return True

    def reopen(self) -> None:
        """Reconnect every node with the current preferences (after Settings)."""
        if self.cluster is None:
            return
        if self.cluster_file:
            self.open_cluster_file(self.cluster_file)
            return
        config = apply_prefs(self.cluster.config, self.prefs)
        self.set_cluster(self.factory(config), None)

    def choose_cluster_file(self) -> None:
        start = self.cluster_file or str(Path.home())
        path, _ = QFileDialog.getOpenFileName(
            self, "Open cluster", start, "Cluster files (*.toml *.map);;All files (*)"
        )
        if path:
            self.open_cluster_file(path)

    def _remember(self, path: str) -> None:
        s = settings()
        recent = [p for p in (s.value("recent") or []) if isinstance(p, str) and p != path]
        recent.insert(0, path)
        s.setValue("recent", recent[:MAX_RECENT])
        self._rebuild_recent()

    def _rebuild_recent(self) -> None:
        self.recent_menu.clear()
        recent = [p for p in (settings().value("recent") or []) if isinstance(p, str)]
        for p in recent:
            a = self._act(p, f"Open {p}", lambda p=p: self.open_cluster_file(p))
            self.recent_menu.addAction(a)
        if not recent:
            a = self._act("(none yet)", "Clusters you open are listed here", enabled=False)
            self.recent_menu.addAction(a)

    # ------------------------------------------------------------ node actions
    def set_speed(self, node_id: int, speed: int) -> None:
        cluster, model = self.cluster, self.model
        if cluster is None or model is None:
            return
        self.statusBar().showMessage(f"setting speed {speed} on node {node_id}…", 5000)

        def done(_state: object) -> None:
            model.speed_settled(node_id)
            self.statusBar().showMessage(f"node {node_id}: speed {speed} set", 5000)

        def failed(exc: BaseException) -> None:
            model.speed_settled(node_id)
            self.statusBar().showMessage(f"node {node_id}: speed not set: {exc}", 15000)

        self.workers.submit(cluster.set_admin, node_id, speed=speed, on_done=done, on_error=failed, context=model)

    def open_node_dialog(self, node_id: int) -> NodeDialog | None:
        if self.cluster is None or self.bridge is None:
            return None
        dlg = self.dialogs.get(node_id)
        if dlg is None:
            dlg = NodeDialog(self.cluster, self.bridge, self.workers, node_id, self.launch_procbox, self)
            dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dlg.destroyed.connect(lambda *_: self.dialogs.pop(node_id, None))
            self.dialogs[node_id] = dlg
        dlg.show()
        dlg.raise_()
        dlg.activateWindow()
        return dlg

    def open_exec_dialog(self) -> ExecDialog | None:
        if self.cluster is None or self.bridge is None:
            return None
        if self.exec_dialog is None:
            history = [h for h in (settings().value("exec/history") or []) if isinstance(h, str)]
            dlg = ExecDialog(self.cluster, self.bridge, self.workers, history, self)
            dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dlg.finished.connect(lambda *_: settings().setValue("exec/history", dlg.history()))
            dlg.destroyed.connect(lambda *_: setattr(self, "exec_dialog", None))
            self.exec_dialog = dlg
        self.exec_dialog.show()
        self.exec_dialog.raise_()
        return self.exec_dialog

    def run_collector(self, flags: list[str], what: str) -> None:
        """omcollector's short commands, in a worker; the answer in the status bar, a failure in a box."""
        args = list(flags)
        if args == ["-n"]:
            label, ok = QInputDialog.getText(self, "Write checkpoint", "Label (may be empty):")
            if not ok:
                return
            args.append(label)
        argv = self.collector_command("omcollector") + args + self.cluster_args()
        self.statusBar().showMessage(f"collector: {what.lower()}…", 5000)

        def run() -> subprocess.CompletedProcess[str]:
            return subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)

        def done(cp: subprocess.CompletedProcess[str]) -> None:
            out = (cp.stdout.strip() or cp.stderr.strip() or "done").splitlines()
            # --status exits 3 for "not running": an answer, not a failure
            if cp.returncode == 0 or (flags == ["--status"] and cp.returncode == 3):
                if flags == ["--status"]:
                    QMessageBox.information(self, "Collector status", "\n".join(out))
                self.statusBar().showMessage(f"collector: {what.lower()}: {out[-1]}", 10000)
            else:
                QMessageBox.warning(
                    self,
                    f"Collector: {what}",
                    f"omcollector exited with {cp.returncode}:\n\n"
                    + "\n".join((cp.stderr.strip() or cp.stdout.strip()).splitlines()[-15:]),
                )

        def failed(exc: BaseException) -> None:
            QMessageBox.warning(self, f"Collector: {what}", f"omcollector could not be run: {exc}")

        self.workers.submit(run, on_done=done, on_error=failed, context=self)

    # ------------------------------------------------------------ other apps
    def cluster_args(self) -> list[str]:
        return ["--cluster", self.cluster_file] if self.cluster_file else []

    def launch(self, name: str, extra: list[str] | None = None) -> None:
        self.launcher.launch(name, (extra or []) + self.cluster_args())
        self.statusBar().showMessage(f"starting {name}…", 3000)

    def launch_procbox(self, node_id: int) -> None:
        self.launch("omprocs", ["--node", str(node_id)] if node_id != ALL_NODES else [])

    def _launch_failed(self, name: str, message: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, f"{name} did not start", message, parent=self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setModal(False)
        box.show()
        self.last_launch_error = message

    # ------------------------------------------------------------ settings, help
    def edit_settings(self) -> None:
        file_interval = self.cluster.config.interval if self.cluster else 1.0
        dlg = SettingsDialog(self.prefs, file_interval, self)
        if dlg.exec() != SettingsDialog.DialogCode.Accepted:
            return
        new = dlg.prefs()
        old, self.prefs = self.prefs, new
        save_prefs(new)
        if new.theme != old.theme:
            self.set_theme(new.theme)
        if (new.interval, new.known_hosts, new.accept_new) != (old.interval, old.known_hosts, old.accept_new):
            self.reopen()

    def set_theme(self, name: str) -> None:
        self.prefs.theme = name
        settings().setValue("theme", name)
        app = QApplication.instance()
        if isinstance(app, QApplication):
            if name == "system":
                app.setPalette(theme.light_palette() if not _system_dark() else theme.dark_palette())
            else:
                theme.apply_theme(app, name)
        for a in self.theme_group.actions():
            a.setChecked(a.text().lower() == name)
        self.view.viewport().update()

    def about(self) -> None:
        QMessageBox.about(
            self,
            "About omview",
            f"<h3>omview {omview.__version__ if hasattr(omview, '__version__') else ''}</h3>"
            "<p>openMosixview (2004) re-created for stock Linux: watch and steer a cluster over SSH.</p>"
            "<p>Node agents over one SSH channel each; migration through CRIU.</p>"
            "<p>License: GPL-2.0-or-later.</p>",
        )

    def open_docs(self) -> None:
        d = docs_dir()
        if d is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(d / "architecture.md")))

    # ------------------------------------------------------------ status
    def _update_summary(self) -> None:
        if self.model is None:
            return
        a = self.model.aggregate
        self.gauge.setValue(round(a.balance))
        load = "—" if a.mean_load is None else f"{a.mean_load:.0f} %"
        ago = ""
        if self.last_update:
            ago = f" · updated {time.monotonic() - self.last_update:.0f} s ago"
        self.summary.setText(f"{a.up}/{a.total} up · mean load {load} · {a.cpus} CPUs{ago}")

    def set_balancing(self, on: bool) -> None:
        """The toolbar toggle: an in-process Balancer on this window's cluster (stopping waits for the
        move in progress, off the GUI thread)."""
        if on and self.balancer is None and self.cluster is not None:
            self.balancer = Balancer(self.cluster, interval=5.0).start()
        elif not on and self.balancer is not None:
            b, self.balancer = self.balancer, None
            threading.Thread(target=b.close, name="omview-balancer-stop", daemon=True).start()
        running = self.balancer is not None
        if self.act_balance.isChecked() != running:
            self.act_balance.setChecked(running)
        self.act_balance.setText("&Balancer: on" if running else "&Balancer")

    def closeEvent(self, event: QCloseEvent) -> None:
        settings().setValue("geometry", self.saveGeometry())
        self.act_balance.setChecked(False)
        for dlg in list(self.dialogs.values()):
            dlg.close()
        if self.bridge is not None:
            self.bridge.close()
        self.workers.shutdown(500)
        super().closeEvent(event)

    def shutdown(self, timeout: float = 3.0) -> None:
        """Stop the cluster's sessions (after the window closed); gives up after `timeout`."""
        if self.cluster is not None:
            t = threading.Thread(target=self.cluster.stop, name="omview-stop", daemon=True)
            t.start()
            t.join(timeout)


def _system_dark() -> bool:
    hints = QApplication.styleHints()
    return bool(hints.colorScheme() == Qt.ColorScheme.Dark)
