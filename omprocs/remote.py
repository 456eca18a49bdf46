"""The remote-procs window (HOWTO 10.5.3, "manage procs from remote").

The processes running now on a chosen node that came from other nodes (guests: their home is
another node), with "goto home node" and "goto best node" for the selected ones. It is a second
filter proxy over the process box's own model, so it costs no extra reads and is always current.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from omprocs import actions
from omprocs.procmodel import ProcFilterProxy, ProcTableModel
from omprocs.procview import ProcTableView


class RemoteProcsWindow(QDialog):
    def __init__(
        self,
        cluster: Any,
        model: ProcTableModel,
        runner: actions.BatchRunner,
        node: int | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.cluster = cluster
        self.model = model
        self.runner = runner
        self.problem = actions.migration_problem(cluster)
        self.setMinimumSize(640, 320)
        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        lab = QLabel("Guests &on node:")
        self.node_box = QComboBox()
        self.node_box.setToolTip("The node whose guest processes (migrated here from other nodes) are listed")
        for st in cluster.nodes():
            self.node_box.addItem(f"{st.id} — {st.label}", st.id)
        lab.setBuddy(self.node_box)
        top.addWidget(lab)
        top.addWidget(self.node_box)
        top.addStretch(1)
        self.count = QLabel()
        top.addWidget(self.count)
        lay.addLayout(top)

        self.proxy = ProcFilterProxy(self)
        self.proxy.setSourceModel(model)
        self.view = ProcTableView()
        self.view.setModel(self.proxy)
        self.view.setAccessibleName("Guest processes")
        lay.addWidget(self.view, 1)
        self.empty = QLabel()
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(self.empty)

        buttons = QHBoxLayout()
        self.btn_home = QPushButton("Goto &home node")
        self.btn_home.setToolTip("Migrate the selected processes back to their home nodes")
        self.btn_best = QPushButton("Goto &best node")
        self.btn_best.setToolTip("Migrate the selected processes to the best node for each")
        for b, target in ((self.btn_home, "home"), (self.btn_best, "best")):
            b.setAutoDefault(False)
            b.clicked.connect(lambda _c=False, t=target: self.migrate(t))
            if self.problem:
                b.setToolTip(f"{b.toolTip()} — unavailable: {self.problem}")
            buttons.addWidget(b)
        buttons.addStretch(1)
        close = QPushButton("Close")
        close.setAutoDefault(False)
        close.clicked.connect(self.close)
        buttons.addWidget(close)
        lay.addLayout(buttons)

        self.node_box.currentIndexChanged.connect(self._node_changed)
        self.view.selectionModel().selectionChanged.connect(lambda *_: self._enable())
        for sig in (self.proxy.rowsInserted, self.proxy.rowsRemoved, self.proxy.layoutChanged, self.proxy.modelReset):
            sig.connect(lambda *_: self._update_count())
        if node is not None:
            i = self.node_box.findData(node)
            if i >= 0:
                self.node_box.setCurrentIndex(i)
        self._node_changed()
        self.resize(900, 420)

    def node(self) -> int:
        return int(self.node_box.currentData() or 0)

    def _node_changed(self, *_: Any) -> None:
        n = self.node()
        self.proxy.set_filter(node=n, only_migrated=True)
        self.setWindowTitle(f"omprocs — guests on node {n}")
        self._update_count()
        self._enable()

    def _update_count(self) -> None:
        n = self.proxy.rowCount()
        self.count.setText(f"{n} guest process{'es' if n != 1 else ''} on node {self.node()}")
        self.empty.setText(
            f"No guests on node {self.node()}: no process running there came from another node." if n == 0 else "")
        self.empty.setVisible(n == 0)

    def set_problem(self, problem: str | None) -> None:
        self.problem = problem
        for b, tip in ((self.btn_home, "Migrate the selected processes back to their home nodes"),
                       (self.btn_best, "Migrate the selected processes to the best node for each")):
            b.setToolTip(tip if not problem else f"{tip} — unavailable: {problem}")
        self._enable()

    def _enable(self) -> None:
        any_sel = bool(self.view.selected_keys())
        for b in (self.btn_home, self.btn_best):
            b.setEnabled(any_sel and self.problem is None)

    def migrate(self, target: str) -> None:
        keys = self.view.selected_keys()
        if not keys or self.problem:
            return
        cmds = {k: (r.p.cmd if (r := self.model.get(k)) else "") for k in keys}
        self.runner.run(
            f"Goto {target} node",
            keys,
            f"migrate → {target}",
            lambda k: actions.do_migrate(self.cluster, k, target),
            commands=cmds,
            describe=lambda res: (bool(res.ok), actions.migration_text(res)),
            parallel=False,
        )

