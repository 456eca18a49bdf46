"""What the process box does to processes: signals, renice, migration — one or many at once.

Every action addresses a process by (node, pid, start). Before anything is sent the key is
checked against the current process table (`Cluster.resolve` with the start time); the agent
checks it again on the node, under a pidfd for signals. A process that ended, or whose PID now
belongs to another process, is refused with a message and never hit.

Blocking calls run in omview.gui.workers; results come back on the GUI thread. A batch shows a
progress dialog (cancel stops what has not started) and ends with one result line per process.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QProgressDialog,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from omprocs.procmodel import ProcKey
from omview.core.session import AgentError
from omview.gui import theme
from omview.gui.workers import Workers

SIGNALS = ("TERM", "KILL", "STOP", "CONT", "HUP", "INT", "USR1", "USR2")
SIGNAL_TIPS = {
    "TERM": "ask the process to end (SIGTERM)",
    "KILL": "end the process at once (SIGKILL); it cannot refuse",
    "STOP": "pause the process (SIGSTOP)",
    "CONT": "let a paused process run again (SIGCONT)",
    "HUP": "hang-up (SIGHUP): many daemons reload their configuration",
    "INT": "interrupt (SIGINT), as Ctrl+C in its terminal",
    "USR1": "user signal 1 (SIGUSR1)",
    "USR2": "user signal 2 (SIGUSR2)",
}
MIGRATION_MISSING = "the migration engine (omview.core.migration, issue 4) is not available in this build"


def ref(key: ProcKey) -> str:
    return f"{key[0]}:{key[1]}"


#: what the agents said when asked whether they speak migration (id(cluster) → reason)
_AGENT_PROBLEMS: dict[int, str] = {}


def migration_problem(cluster: Any) -> str | None:
    """Why processes cannot be migrated from here, or None."""
    try:
        import omview.core.migration  # noqa: F401
    except ImportError:
        return MIGRATION_MISSING
    if not callable(getattr(cluster, "migrate", None)):
        return MIGRATION_MISSING
    return _AGENT_PROBLEMS.get(id(cluster))


def probe_agents(cluster: Any, timeout: float = 10.0) -> str | None:
    """Ask one up node's agent whether it has the migration operations (blocking: a worker).

    The request names no process (pid 0 is invalid), so an agent that has the op refuses it as
    invalid and touches nothing; one without it answers "unknown op". The answer is remembered
    for this cluster and returned (None = migration can be tried)."""
    for st in cluster.nodes():
        if not st.up:
            continue
        try:
            cluster.call(st.id, "mig_check_src", {"pid": 0, "start": 0}, timeout=timeout)
        except AgentError as exc:
            if "unknown op" in str(exc):
                why = (f"the node agents cannot migrate yet (node {st.id}: {exc}; "
                       "the agent side of the migration engine, issue 4, is missing)")
                _AGENT_PROBLEMS[id(cluster)] = why
                return why
            if exc.code in ("down", "timeout"):
                continue
        _AGENT_PROBLEMS.pop(id(cluster), None)
        return None
    return _AGENT_PROBLEMS.get(id(cluster))


def check_current(cluster: Any, key: ProcKey) -> None:
    """Refuse a process that ended or whose PID was reused (AgentError code 'stale')."""
    node, pid, start = key
    cluster.resolve(node, pid, start)


def do_signal(cluster: Any, key: ProcKey, sig: str) -> str:
    check_current(cluster, key)
    node, pid, start = key
    cluster.signal(node, pid, sig, start=start)
    return f"SIG{sig} sent"


def do_renice(cluster: Any, key: ProcKey, nice: int) -> str:
    check_current(cluster, key)
    node, pid, start = key
    cluster.renice(node, pid, nice, start=start)
    return f"nice {nice}"


def migration_text(r: Any) -> str:
    """One line for a MigrationResult."""
    if r.ok:
        where = f"now {r.target}:{r.new_pid}" if r.new_pid else f"now on node {r.target}"
        return f"migrated to node {r.target} ({where}, frozen {r.frozen:.1f} s)"
    if r.refused:
        return f"refused: {r.error}"
    if r.cancelled:
        return "cancelled; it keeps running on node " + str(r.source)
    if r.pending:
        return f"interrupted in {r.phase}: {r.error}; it will be resolved when both nodes answer"
    return f"failed in {r.phase}: {r.error}; it keeps running on node {r.running_on}"


def do_migrate(
    cluster: Any,
    key: ProcKey,
    target: int | str,
    progress: Callable[[Any], None] | None = None,
    cancel: threading.Event | None = None,
) -> Any:
    """Run the real engine (blocking; call it in a worker). Returns the MigrationResult."""
    problem = migration_problem(cluster)
    if problem:
        raise AgentError(problem, "failed", key[0])
    node, pid, start = key
    kw: dict[str, Any] = {"start": start, "progress": progress}
    if cancel is not None:  # reaches the engine here or, relayed, in the session hub
        kw["cancel"] = cancel
    return cluster.migrate(node, pid, target, **kw)


# ---------------------------------------------------------------- results


@dataclass
class Outcome:
    key: ProcKey
    what: str
    ok: bool | None = None  # None: not done (yet)
    text: str = "waiting"


class OutcomeModel(QAbstractTableModel):
    """Per-process results of a batch: process, action, result."""

    HEADERS = ("Process", "Command", "Action", "Result")

    def __init__(self, outcomes: list[Outcome], commands: dict[ProcKey, str], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.outcomes = outcomes
        self.commands = commands

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.outcomes)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        o = self.outcomes[index.row()]
        col = index.column()
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            if col == 0:
                return f"node {o.key[0]}, PID {o.key[1]}"
            if col == 1:
                return " ".join(self.commands.get(o.key, "").split())
            if col == 2:
                return o.what
            return o.text
        if role == Qt.ItemDataRole.ForegroundRole and col == 3:
            c = theme.colors()
            if o.ok is True:
                return c.up
            if o.ok is False:
                return c.down
        return None

    def changed(self, row: int) -> None:
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.HEADERS) - 1))


class ResultsDialog(QDialog):
    def __init__(self, title: str, model: OutcomeModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setMinimumSize(560, 220)
        lay = QVBoxLayout(self)
        ok = sum(1 for o in model.outcomes if o.ok)
        bad = len(model.outcomes) - ok
        self.summary = QLabel(f"{ok} of {len(model.outcomes)} done" + (f", {bad} failed or refused" if bad else ""))
        lay.addWidget(self.summary)
        self.view = QTableView()
        self.view.setModel(model)
        self.view.verticalHeader().setVisible(False)
        self.view.setAlternatingRowColors(True)
        self.view.setWordWrap(False)
        h = self.view.horizontalHeader()
        h.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        h.setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)  # commands can be long:
        self.view.setColumnWidth(1, 220)  # the tooltip has all of it
        h.setStretchLastSection(True)
        self.view.setAccessibleName("Results per process")
        lay.addWidget(self.view, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.resize(860, min(520, 120 + 26 * len(model.outcomes)))


# ---------------------------------------------------------------- batches


@dataclass
class Batch:
    title: str
    outcomes: list[Outcome]
    fn: Callable[[ProcKey], Any]
    describe: Callable[[Any], tuple[bool, str]]
    parallel: bool
    done: int = 0
    next: int = 0
    cancelled: bool = False
    running: set[int] = field(default_factory=set)


class BatchRunner(QObject):
    """Runs one action on several processes in workers, with progress and per-process results.

    `finished(title, outcomes)` at the end; with `show_results` the results dialog opens when
    more than one process was involved or anything failed.
    """

    finished = Signal(str, list)
    progressed = Signal(str, int, int)  # title, done, total

    MAX_PARALLEL = 8

    def __init__(self, workers: Workers, parent: QWidget | None = None, show_results: bool = True) -> None:
        super().__init__(parent)
        self.workers = workers
        self.parent_widget = parent
        self.show_results = show_results
        self.last_dialog: ResultsDialog | None = None
        self.last_progress: QProgressDialog | None = None

    def run(
        self,
        title: str,
        keys: list[ProcKey],
        what: str,
        fn: Callable[[ProcKey], Any],
        *,
        commands: dict[ProcKey, str] | None = None,
        describe: Callable[[Any], tuple[bool, str]] | None = None,
        parallel: bool = True,
    ) -> Batch:
        outcomes = [Outcome(k, what) for k in keys]
        batch = Batch(title, outcomes, fn, describe or (lambda v: (True, str(v))), parallel)
        model = OutcomeModel(outcomes, commands or {}, self)
        dlg = QProgressDialog(f"{title}: 0 of {len(keys)}", "Cancel", 0, len(keys), self.parent_widget)
        dlg.setWindowTitle(title)
        dlg.setMinimumDuration(400 if len(keys) == 1 else 0)
        dlg.setAutoClose(False)
        dlg.setAutoReset(False)
        dlg.canceled.connect(lambda: setattr(batch, "cancelled", True))
        self.last_progress = dlg
        self._pump(batch, model, dlg)
        return batch

    def _pump(self, batch: Batch, model: OutcomeModel, dlg: QProgressDialog) -> None:
        limit = self.MAX_PARALLEL if batch.parallel else 1
        total = len(batch.outcomes)
        while not batch.cancelled and batch.next < total and len(batch.running) < limit:
            i = batch.next
            batch.next += 1
            batch.running.add(i)
            o = batch.outcomes[i]
            o.text = "running…"
            model.changed(i)
            self.workers.submit(
                batch.fn,
                o.key,
                on_done=functools.partial(self._one, batch, model, dlg, i, True),
                on_error=functools.partial(self._one, batch, model, dlg, i, False),
            )
        if batch.cancelled:
            for j in range(batch.next, total):
                batch.outcomes[j].text = "not done: cancelled"
                batch.outcomes[j].ok = False
            batch.done += total - batch.next
            batch.next = total
        if batch.done >= total and not batch.running:
            self._finish(batch, model, dlg)

    def _one(self, batch: Batch, model: OutcomeModel, dlg: QProgressDialog, i: int, ok: bool, value: Any) -> None:
        batch.running.discard(i)
        batch.done += 1
        o = batch.outcomes[i]
        if ok:
            o.ok, o.text = batch.describe(value)
        else:
            o.ok = False
            o.text = _error_text(value)
        model.changed(i)
        dlg.setValue(batch.done)
        dlg.setLabelText(f"{batch.title}: {batch.done} of {len(batch.outcomes)}")
        self.progressed.emit(batch.title, batch.done, len(batch.outcomes))
        self._pump(batch, model, dlg)

    def _finish(self, batch: Batch, model: OutcomeModel, dlg: QProgressDialog) -> None:
        dlg.reset()
        dlg.close()
        dlg.deleteLater()
        self.last_progress = None
        failed = any(not o.ok for o in batch.outcomes)
        if self.show_results and (len(batch.outcomes) > 1 or failed):
            rd = ResultsDialog(batch.title, model, self.parent_widget)
            rd.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            rd.setModal(False)
            rd.show()
            self.last_dialog = rd
        self.finished.emit(batch.title, batch.outcomes)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, AgentError):
        if exc.code == "stale":
            return f"refused: {exc} — not touched"
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
