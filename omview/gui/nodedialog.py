"""The node configuration dialog (HOWTO 10.4.2): mosctl's common commands for one node or all.

Every choice is preselected from the node's real admin state, which the original could not do
(its FAQ 10.9.5). A click applies at once through a worker, as the original's buttons ran
mosctl at once; the result or the error of every node is written in the dialog's log. For
"all nodes" each action goes to every node that is up, one request each, so a hung node
delays only its own line.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from omview.core.cluster import Cluster
from omview.core.model import AdminState, NodeState
from omview.gui import theme
from omview.gui.bridge import ClusterBridge
from omview.gui.nodemodel import ALL_NODES
from omview.gui.workers import Workers

MIGRATION_MISSING = "Needs the migration engine (issue 4), which is not built yet"


@dataclass(frozen=True)
class Setting:
    """One mosctl switch as a radio pair; `on_value` is the AdminState value of the first button."""

    field: str
    label: str
    first: str
    second: str
    on_value: bool
    tip: str


SETTINGS = (
    Setting(
        "stay",
        "Automigration",
        "on",
        "off (stay)",
        False,
        "off = mosctl stay: processes are not migrated away from this node automatically",
    ),
    Setting("quiet", "Quiet", "yes", "no", True, "yes = mosctl quiet: the node stops taking part in load balancing"),
    Setting(
        "lstay",
        "Local processes stay",
        "yes",
        "no",
        True,
        "yes = mosctl lstay: this node's own processes are never migrated away",
    ),
    Setting(
        "block",
        "Block guests",
        "yes",
        "no",
        True,
        "yes = mosctl block: the node accepts no guest processes from other nodes",
    ),
    Setting(
        "stopped",
        "Participation",
        "started",
        "stopped",
        False,
        "stopped = mosctl stop: the node takes no part in the cluster until started again",
    ),
)


class NodeDialog(QDialog):
    def __init__(
        self,
        cluster: Cluster,
        bridge: ClusterBridge,
        workers: Workers,
        node_id: int,
        launch_procbox: Callable[[int], None] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.cluster = cluster
        self.workers = workers
        self.node_id = node_id
        self.launch_procbox = launch_procbox
        self._busy: dict[str, int] = {}
        self.groups: dict[str, QButtonGroup] = {}
        self.buttons: dict[str, tuple[QRadioButton, QRadioButton]] = {}
        self.mixed_labels: dict[str, QLabel] = {}
        self.setWindowTitle(self._title())
        self.setMinimumSize(460, 430)

        outer = QVBoxLayout(self)
        self.header = QLabel()
        f = QFont(self.header.font())
        f.setPointSizeF(f.pointSizeF() * 1.15)
        f.setBold(True)
        self.header.setFont(f)
        self.status = QLabel()
        self.status.setWordWrap(True)
        outer.addWidget(self.header)
        outer.addWidget(self.status)

        box = QGroupBox("openMosix settings (applied at once)")
        grid = QGridLayout(box)
        grid.setColumnStretch(3, 1)
        for row, s in enumerate(SETTINGS):
            label = QLabel(s.label + ":")
            label.setToolTip(s.tip)
            a, b = QRadioButton(s.first), QRadioButton(s.second)
            theme.tune_indicators(a)
            theme.tune_indicators(b)
            a.setToolTip(f"{s.label}: {s.first}. {s.tip}")
            b.setToolTip(f"{s.label}: {s.second}. {s.tip}")
            group = QButtonGroup(self)
            group.addButton(a, 0)
            group.addButton(b, 1)
            group.idClicked.connect(lambda which, s=s: self._clicked(s, which))
            mixed = QLabel()
            mixed.setToolTip("The nodes that are up do not all agree on this setting")
            label.setBuddy(a)
            grid.addWidget(label, row, 0)
            grid.addWidget(a, row, 1)
            grid.addWidget(b, row, 2)
            grid.addWidget(mixed, row, 3)
            self.groups[s.field] = group
            self.buttons[s.field] = (a, b)
            self.mixed_labels[s.field] = mixed
        outer.addWidget(box)

        actions = QHBoxLayout()
        self._cancel: list[threading.Event] = []
        self._migrating = 0
        self.bring = QPushButton("Bring")
        self.expel = QPushButton("Expel")
        self.bring.clicked.connect(lambda: self._migrate("bring"))
        self.expel.clicked.connect(lambda: self._migrate("expel"))
        self.migration_problem = migration_problem(cluster)
        whose = "every up node's" if node_id == ALL_NODES else "this node's"
        tips = {
            self.bring: f"mosctl bring: migrate {whose} own processes back home from the other nodes (CRIU)",
            self.expel: f"mosctl expel: send the guest processes on {whose.replace(' own', '')} node back home",
        }
        for btn, tip in tips.items():
            btn.setToolTip(tip if not self.migration_problem else f"{tip}. {self.migration_problem}")
            btn.setEnabled(self.migration_problem is None)
        self.reset_speed = QPushButton("Measured speed")
        self.reset_speed.setToolTip(
            "Forget the speed set by hand: the node reports its speed from its CPU quota again "
            "(10000 = one standard CPU)"
        )
        self.reset_speed.setAutoDefault(False)
        self.reset_speed.clicked.connect(self._reset_speed)
        self.procbox = QPushButton("Remote proc-box…")
        what = "every node" if node_id == ALL_NODES else f"node {node_id}"
        self.procbox.setToolTip(f"Open the process box (omprocs) showing {what}; it runs here and talks SSH")
        self.procbox.setEnabled(launch_procbox is not None)
        self.procbox.clicked.connect(self._procbox)
        for btn in (self.bring, self.expel, self.procbox):
            btn.setAutoDefault(False)  # Enter must never start a migration by surprise
        actions.addWidget(self.bring)
        actions.addWidget(self.expel)
        if self.migration_problem:
            why = QLabel("migration unavailable")
            why.setToolTip(self.migration_problem)
            why.setEnabled(False)
            actions.addWidget(why)
        actions.addStretch(1)
        actions.addWidget(self.reset_speed)
        actions.addWidget(self.procbox)
        outer.addLayout(actions)

        outer.addWidget(QLabel("Results:"))
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        self.log.setToolTip("What each action did on each node, newest last")
        self.log.setMinimumHeight(90)
        outer.addWidget(self.log, 1)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        close = buttons.button(QDialogButtonBox.StandardButton.Close)
        close.setToolTip("Close this dialog (Esc)")
        close.setDefault(True)
        outer.addWidget(buttons)

        bridge.nodesChanged.connect(self._nodes_changed)
        self.refresh()
        self.buttons[SETTINGS[0].field][0].setFocus()

    # ------------------------------------------------------------ state → buttons
    def _title(self) -> str:
        if self.node_id == ALL_NODES:
            return "Configure all nodes"
        return f"Configure node {self.node_id}"

    def targets(self) -> list[NodeState]:
        """The nodes an action goes to: this one, or every node that is up."""
        if self.node_id == ALL_NODES:
            return [st for st in self.cluster.nodes() if st.up]
        return [self.cluster.node(self.node_id)]

    def refresh(self) -> None:
        if self.node_id == ALL_NODES:
            nodes = self.cluster.nodes()
            up = [st for st in nodes if st.up and st.sample]
            self.header.setText(f"All nodes ({len(nodes)})")
            self.status.setText(f"{len(up)} of {len(nodes)} up; actions apply to each node that is up")
            admins = [st.sample.admin for st in up if st.sample]
        else:
            st = self.cluster.node(self.node_id)
            name = f" ({st.label})" if st.label != st.address else ""
            self.header.setText(f"Node {st.id}: {st.address}{name}")
            if st.up and st.sample:
                smp = st.sample
                self.status.setText(
                    f"up · {smp.cpus} CPU(s) · speed {smp.speed} · load {smp.load:.0f} % · "
                    f"flags {smp.admin.flags_text()}"
                )
            else:
                self.status.setText(f"down: {st.reason}")
            admins = [st.sample.admin] if st.up and st.sample else []
        for s in SETTINGS:
            if self._busy.get(s.field):
                continue
            self._preselect(s, admins)

    def _preselect(self, s: Setting, admins: list[AdminState]) -> None:
        group = self.groups[s.field]
        a, b = self.buttons[s.field]
        values = {bool(getattr(adm, s.field)) for adm in admins}
        enabled = bool(admins)
        a.setEnabled(enabled)
        b.setEnabled(enabled)
        mixed = self.mixed_labels[s.field]
        if len(values) == 1:
            which = 0 if values.pop() == s.on_value else 1
            group.button(which).setChecked(True)
            mixed.setText("")
        else:
            group.setExclusive(False)
            a.setChecked(False)
            b.setChecked(False)
            group.setExclusive(True)
            if len(values) > 1:
                n_first = sum(1 for adm in admins if bool(getattr(adm, s.field)) == s.on_value)
                mixed.setText(f"mixed: {n_first} {s.first}, {len(admins) - n_first} {s.second}")
            else:
                mixed.setText("node down" if self.node_id != ALL_NODES else "no node up")

    def _nodes_changed(self, ids: list[int]) -> None:
        if self.node_id == ALL_NODES or self.node_id in ids:
            self.refresh()

    # ------------------------------------------------------------ actions
    def _clicked(self, s: Setting, which: int) -> None:
        value = s.on_value if which == 0 else not s.on_value
        choice = s.first if which == 0 else s.second
        targets = self.targets()
        if not targets:
            self.note(f"{s.label} → {choice}: no node is up")
            return
        self._busy[s.field] = self._busy.get(s.field, 0) + len(targets)
        for btn in self.buttons[s.field]:
            btn.setEnabled(False)
        for st in targets:
            self.workers.submit(
                self.cluster.set_admin,
                st.id,
                **{s.field: value},
                on_done=lambda _adm, st=st: self._done(s, st.id, choice, None),
                on_error=lambda exc, st=st: self._done(s, st.id, choice, exc),
                context=self,
            )

    def _done(self, s: Setting, node_id: int, choice: str, error: BaseException | None) -> None:
        if error is None:
            self.note(f"node {node_id}: {s.label} → {choice}: done")
        else:
            self.note(f"node {node_id}: {s.label} → {choice}: FAILED: {error}")
        self._busy[s.field] -= 1
        if self._busy[s.field] <= 0:
            self._busy.pop(s.field)
            self.refresh()

    def _migrate(self, what: str) -> None:
        """bring/expel on each target node, in workers; every moved process gets a result line."""
        from omview.core import migration

        fn = migration.bring if what == "bring" else migration.expel
        targets = self.targets()
        if not targets:
            self.note(f"{what}: no node is up")
            return
        for btn in (self.bring, self.expel):
            btn.setEnabled(False)
        self._migrating += len(targets)
        self.note(f"{what} on {len(targets)} node(s)…" if len(targets) > 1 else f"{what} on node {targets[0].id}…")
        for st in targets:
            cancel = threading.Event()
            self._cancel.append(cancel)
            self.workers.submit(
                fn,
                self.cluster,
                st.id,
                cancel=cancel,
                on_done=lambda results, st=st: self._migrated(what, st.id, results, None),
                on_error=lambda exc, st=st: self._migrated(what, st.id, [], exc),
                context=self,
            )

    def _migrated(self, what: str, node_id: int, results: list[Any], error: BaseException | None) -> None:
        if error is not None:
            self.note(f"node {node_id}: {what}: FAILED: {error}")
        elif not results:
            nothing = "no process of this node runs elsewhere" if what == "bring" else "no guest processes"
            self.note(f"node {node_id}: {what}: {nothing}")
        for r in results:
            if r.ok:
                self.note(
                    f"node {node_id}: {what}: pid {r.pid} node {r.source} → node {r.target} "
                    f"(now pid {r.new_pid}, frozen {r.frozen:.1f} s)"
                )
            else:
                how = "refused" if r.refused else ("cancelled" if r.cancelled else "FAILED")
                self.note(f"node {node_id}: {what}: pid {r.pid} on node {r.source}: {how}: {r.error}")
        self._migrating -= 1
        if self._migrating <= 0:
            self._migrating = 0
            self._cancel.clear()
            for btn in (self.bring, self.expel):
                btn.setEnabled(self.migration_problem is None)

    def done(self, result: int) -> None:
        """Closing the dialog cancels migrations not yet past their commit point."""
        for ev in self._cancel:
            ev.set()
        super().done(result)

    def _reset_speed(self) -> None:
        targets = self.targets()
        if not targets:
            self.note("measured speed: no node is up")
            return
        self._busy["speed"] = self._busy.get("speed", 0) + len(targets)
        self.reset_speed.setEnabled(False)
        for st in targets:
            self.workers.submit(
                self.cluster.set_admin,
                st.id,
                speed=None,
                on_done=lambda _a, st=st: self._speed_done(st.id, None),
                on_error=lambda exc, st=st: self._speed_done(st.id, exc),
                context=self,
            )

    def _speed_done(self, node_id: int, error: BaseException | None) -> None:
        self.note(f"node {node_id}: measured speed: " + ("done" if error is None else f"FAILED: {error}"))
        self._busy["speed"] -= 1
        if self._busy["speed"] <= 0:
            self._busy.pop("speed")
            self.reset_speed.setEnabled(True)

    def _procbox(self) -> None:
        if self.launch_procbox is not None:
            self.launch_procbox(self.node_id)
            what = "all nodes" if self.node_id == ALL_NODES else f"node {self.node_id}"
            self.note(f"process box for {what} started")

    def note(self, text: str) -> None:
        self.log.appendPlainText(time.strftime("%H:%M:%S  ") + text)

    @property
    def busy(self) -> bool:
        return bool(self._busy) or self._migrating > 0


def migration_problem(cluster: object) -> str | None:
    """Why bring/expel cannot run from here, or None."""
    try:
        import omview.core.migration  # noqa: F401
    except ImportError:
        return MIGRATION_MISSING
    return None
