"""Advanced execution (HOWTO 10.4.3–10.4.6): start a program as a job, the way mosrun did.

The nine ways of Table 10-1 map onto the job API (omview.core.jobs): a job is the init of its
own PID namespace on its node, so it can migrate later. "no migration" and "run home" start on
the home node (this machine's node if it is in the cluster, else the lowest id); the others
take the host chooser (a dial over the nodes that are up, its node id on an LCD) or, for
"parallel", a first/last range, optionally in inverse order. The program path is the node's
path (nodes share the filesystem like NFS, as in an openMosix cluster).
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from typing import Any

from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDial,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLCDNumber,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from omview.core import jobs
from omview.core.cluster import Cluster
from omview.gui import theme
from omview.gui.bridge import ClusterBridge
from omview.gui.workers import Workers

HISTORY_MAX = 15


@dataclass(frozen=True)
class Way:
    """One row of Table 10-1: label, job mode, and where it starts (home | host | parallel)."""

    label: str
    mode: str
    where: str
    tip: str


WAYS = (
    Way("no migration", "nomig", "home", "Start on the home node; the job never migrates"),
    Way("run home", "", "home", "Start on the home node; the balancer may move it"),
    Way("run on", "", "host", "Start on the node chosen with the dial"),
    Way("cpu job", "cpujob", "host", "A computation-intensive job, on the chosen node"),
    Way("io job", "iojob", "host", "An I/O-intensive job, on the chosen node"),
    Way("no decay", "nodecay", "host", "A job with no decay, on the chosen node"),
    Way("slow decay", "slowdecay", "host", "A job with slow decay, on the chosen node"),
    Way("fast decay", "fastdecay", "host", "A job with fast decay, on the chosen node"),
    Way("parallel", "", "parallel", "The same job on every node from first to last (or inverse)"),
)


class ExecDialog(QDialog):
    def __init__(
        self,
        cluster: Cluster,
        bridge: ClusterBridge,
        workers: Workers,
        history: list[str] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.cluster = cluster
        self.workers = workers
        self.setWindowTitle("Advanced execution")
        self.setMinimumSize(560, 520)
        self._running = 0
        self.up_ids: list[int] = []

        outer = QVBoxLayout(self)
        prog = QHBoxLayout()
        self.program = QComboBox()
        self.program.setEditable(True)
        self.program.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.program.addItems(history or [])
        self.program.setCurrentText("")
        self.program.lineEdit().setPlaceholderText("program to start, e.g. /usr/bin/python3")
        self.program.setToolTip("The program, as a path on the nodes (they share the filesystem); with a history")
        choose = QPushButton("Run-prog…")
        choose.setToolTip("Choose the program with a file dialog")
        choose.clicked.connect(self._choose)
        prog.addWidget(QLabel("Program:"))
        prog.addWidget(self.program, 1)
        prog.addWidget(choose)
        outer.addLayout(prog)
        args = QHBoxLayout()
        self.args = QComboBox()
        self.args.setEditable(True)
        self.args.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.args.lineEdit().setPlaceholderText("arguments, quoted as in a shell")
        self.args.setToolTip("Command-line arguments (shell quoting; no shell runs them)")
        args.addWidget(QLabel("Arguments:"))
        args.addWidget(self.args, 1)
        outer.addLayout(args)

        box = QGroupBox("How to start (Table 10-1)")
        grid = QGridLayout(box)
        self.ways = QButtonGroup(self)
        self.way_buttons: list[QRadioButton] = []
        for i, way in enumerate(WAYS):
            rb = QRadioButton(way.label)
            rb.setToolTip(way.tip + (f" (mode {way.mode})" if way.mode else ""))
            theme.tune_indicators(rb)
            self.ways.addButton(rb, i)
            self.way_buttons.append(rb)
            grid.addWidget(rb, i // 3, i % 3)
        self.way_buttons[2].setChecked(True)
        self.ways.idToggled.connect(lambda *_: self._update_choosers())
        outer.addWidget(box)

        choosers = QHBoxLayout()
        host = QGroupBox("Host chooser")
        hl = QHBoxLayout(host)
        self.dial = QDial()
        self.dial.setNotchesVisible(True)
        self.dial.setWrapping(False)
        self.dial.setFixedSize(90, 90)
        self.dial.setToolTip("Turn to choose the node (only nodes that are up)")
        self.lcd = QLCDNumber(4)
        self.lcd.setSegmentStyle(QLCDNumber.SegmentStyle.Flat)
        self.lcd.setMinimumSize(90, 44)
        self.lcd.setToolTip("The id of the chosen node")
        self.host_label = QLabel()
        self.host_label.setWordWrap(True)
        col = QVBoxLayout()
        col.addWidget(self.lcd)
        col.addWidget(self.host_label)
        hl.addWidget(self.dial)
        hl.addLayout(col, 1)
        self.dial.valueChanged.connect(self._dial_moved)
        self.host_box = host
        par = QGroupBox("Parallel host chooser")
        pl = QGridLayout(par)
        ids = cluster.node_ids()
        self.first = QSpinBox()
        self.last = QSpinBox()
        for sb, value, what in ((self.first, min(ids), "first"), (self.last, max(ids), "last")):
            sb.setRange(min(ids), max(ids))
            sb.setValue(value)
            sb.setToolTip(f"The {what} node of the range")
        self.inverse = QCheckBox("inverse")
        self.inverse.setToolTip("Start from the last node down to the first")
        theme.tune_indicators(self.inverse)
        pl.addWidget(QLabel("first:"), 0, 0)
        pl.addWidget(self.first, 0, 1)
        pl.addWidget(QLabel("last:"), 1, 0)
        pl.addWidget(self.last, 1, 1)
        pl.addWidget(self.inverse, 2, 0, 1, 2)
        self.par_box = par
        choosers.addWidget(host, 3)
        choosers.addWidget(par, 2)
        outer.addLayout(choosers)

        outer.addWidget(QLabel("Started:"))
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setToolTip("Where each job started (node, PID, job id, output file), or why not")
        self.log.setMinimumHeight(80)
        outer.addWidget(self.log, 1)

        buttons = QDialogButtonBox()
        self.execute = buttons.addButton("Execute", QDialogButtonBox.ButtonRole.AcceptRole)
        self.execute.setToolTip("Start the job(s) now")
        self.execute.setAutoDefault(False)
        close = buttons.addButton(QDialogButtonBox.StandardButton.Close)
        close.setToolTip("Close this dialog (Esc); started jobs keep running")
        self.execute.clicked.connect(self.run)
        close.clicked.connect(self.reject)
        outer.addWidget(buttons)

        bridge.nodesChanged.connect(lambda _ids: self._refresh_hosts())
        self._refresh_hosts()
        self._update_choosers()

    # ------------------------------------------------------------ choosers
    def way(self) -> Way:
        return WAYS[max(0, self.ways.checkedId())]

    def _refresh_hosts(self) -> None:
        current = self.chosen_node()
        self.up_ids = sorted(st.id for st in self.cluster.nodes() if st.up)
        self.dial.blockSignals(True)
        self.dial.setRange(0, max(0, len(self.up_ids) - 1))
        if current in self.up_ids:
            self.dial.setValue(self.up_ids.index(current))
        self.dial.blockSignals(False)
        self._dial_moved(self.dial.value())
        self._update_choosers()

    def _dial_moved(self, value: int) -> None:
        node = self.up_ids[value] if 0 <= value < len(self.up_ids) else None
        self.lcd.display(node if node is not None else "--")
        if node is None:
            self.host_label.setText("no node is up")
        else:
            st = self.cluster.node(node)
            load = f"load {st.sample.load:.0f} %" if st.sample else ""
            self.host_label.setText(f"{st.label}\n{load}")

    def chosen_node(self) -> int | None:
        v = self.dial.value()
        return self.up_ids[v] if 0 <= v < len(self.up_ids) else None

    def _update_choosers(self) -> None:
        where = self.way().where
        self.host_box.setEnabled(where == "host")
        self.par_box.setEnabled(where == "parallel")
        self.execute.setEnabled(where != "host" or bool(self.up_ids))

    def _choose(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Program to run", self.program.currentText() or "/usr/bin")
        if path:
            self.program.setCurrentText(path)

    # ------------------------------------------------------------ execute
    def command(self) -> list[str]:
        program = self.program.currentText().strip()
        if not program:
            raise ValueError("choose a program first")
        try:
            extra = shlex.split(self.args.currentText())
        except ValueError as exc:
            raise ValueError(f"the arguments do not parse: {exc}") from None
        return [program, *extra]

    def targets(self) -> list[int]:
        where = self.way().where
        if where == "home":
            return [jobs.home_node(self.cluster)]
        if where == "host":
            node = self.chosen_node()
            return [] if node is None else [node]
        first, last = self.first.value(), self.last.value()
        if first > last:
            first, last = last, first
        return jobs.parallel_nodes(self.cluster.node_ids(), first, last, self.inverse.isChecked())

    def run(self) -> None:
        try:
            cmd = self.command()
        except ValueError as exc:
            self.note(str(exc))
            return
        nodes = self.targets()
        if not nodes:
            self.note("no node to start on")
            return
        way = self.way()
        self._remember()
        self.note(f"{way.label}: {shlex.join(cmd)} on node(s) {', '.join(map(str, nodes))}…")
        self._running += len(nodes)
        self.execute.setEnabled(False)
        for node in nodes:
            self.workers.submit(
                jobs.run_job,
                self.cluster,
                node,
                cmd,
                way.mode,
                on_done=lambda res, node=node: self._started(node, res, None),
                on_error=lambda exc, node=node: self._started(node, None, exc),
                context=self,
            )

    def _started(self, node: int, res: dict[str, Any] | None, error: BaseException | None) -> None:
        if error is not None:
            self.note(f"node {node}: not started: {error}")
        else:
            r = res or {}
            self.note(
                f"node {node}: started job {r.get('job', '?')} as pid {r.get('pid', '?')}"
                + (f"; output in {r['out']}" if r.get("out") else "")
            )
        self._running -= 1
        if self._running <= 0:
            self._running = 0
            self._update_choosers()

    def _remember(self) -> None:
        for combo in (self.program, self.args):
            text = combo.currentText().strip()
            if not text:
                continue
            i = combo.findText(text)
            if i >= 0:
                combo.removeItem(i)
            combo.insertItem(0, text)
            combo.setCurrentIndex(0)
            while combo.count() > HISTORY_MAX:
                combo.removeItem(combo.count() - 1)

    def history(self) -> list[str]:
        return [self.program.itemText(i) for i in range(self.program.count())]

    def note(self, text: str) -> None:
        self.log.appendPlainText(time.strftime("%H:%M:%S  ") + text)

    @property
    def busy(self) -> bool:
        return self._running > 0
