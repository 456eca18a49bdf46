"""Process deltas from the cluster's I/O thread to the GUI thread, coalesced, by key.

omview.gui.bridge.ClusterBridge says *which nodes* changed; a process table of 20 000 rows
needs *which processes*. This listener keeps, per node, the (pid, start) keys named by the
events since the last flush (a "full" resend marks the node for a complete check) and wakes
the GUI thread once; the GUI thread then hands each node's keys to the model, which re-reads
only those rows. A key is only a name: the model reads the row as it is at flush time, so an
event that was superseded costs nothing and order between events does not matter.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal

from omview.core.session import Event

DEFAULT_MIN_INTERVAL_MS = 200


class ProcBridge(QObject):
    #: {node id: ([(pid, start), …], full)} — every node with news, once per flush
    procsChanged = Signal(object)
    nodesChanged = Signal(list)  # node ids whose sample changed (load, speed…)
    linkChanged = Signal(int, bool, str)
    agentEvent = Signal(int, str, dict)
    flushed = Signal()

    _kick = Signal()
    _link = Signal(int, bool, str)
    _agent = Signal(int, str, dict)

    def __init__(
        self, cluster: Any, parent: QObject | None = None, min_interval_ms: int = DEFAULT_MIN_INTERVAL_MS
    ) -> None:
        super().__init__(parent)
        self.cluster = cluster
        self.min_interval_ms = min_interval_ms
        self._lock = threading.Lock()
        self._keys: dict[int, set[tuple[int, int]]] = {}
        self._full: set[int] = set()
        self._nodes: set[int] = set()
        self._kicked = False
        self._last_flush = 0.0
        self.batches = 0
        queued = Qt.ConnectionType.QueuedConnection
        self._kick.connect(self._on_kick, queued)
        self._link.connect(self.linkChanged, queued)
        self._agent.connect(self.agentEvent, queued)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.flush)
        self._unsubscribe = cluster.subscribe(self._listen)
        unsubscribe = self._unsubscribe
        self.destroyed.connect(lambda *_: unsubscribe())

    # I/O thread ---------------------------------------------------------------
    def _listen(self, ev: Event) -> None:
        with self._lock:
            self._nodes.add(ev.node_id)
            if ev.full:
                self._full.add(ev.node_id)
                self._keys.pop(ev.node_id, None)
            elif ev.node_id not in self._full and (ev.new or ev.changed or ev.gone):
                keys = self._keys.setdefault(ev.node_id, set())
                keys.update(ev.new)
                keys.update(ev.changed)
                keys.update(ev.gone)
            kick = not self._kicked
            self._kicked = True
        if ev.kind in ("up", "down"):
            self._link.emit(ev.node_id, ev.kind == "up", ev.message)
        elif ev.kind == "agent":
            self._agent.emit(ev.node_id, ev.message, dict(ev.data))
        if kick:
            self._kick.emit()

    # GUI thread ---------------------------------------------------------------
    def _on_kick(self) -> None:
        if self._timer.isActive():
            return
        since = (time.monotonic() - self._last_flush) * 1000
        self._timer.start(int(max(0.0, self.min_interval_ms - since)))

    def flush(self) -> None:
        """Hand over what was collected (tests call this to skip the wait)."""
        self._timer.stop()
        with self._lock:
            keys, self._keys = self._keys, {}
            full, self._full = self._full, set()
            nodes, self._nodes = self._nodes, set()
            self._kicked = False
        self._last_flush = time.monotonic()
        self.batches += 1
        batch: dict[int, tuple[list[tuple[int, int]], bool]] = {node: ([], True) for node in full}
        for node, ks in keys.items():
            batch[node] = (list(ks), False)
        if batch:
            self.procsChanged.emit(batch)
        if nodes:
            self.nodesChanged.emit(sorted(nodes))
        self.flushed.emit()

    def close(self) -> None:
        self._unsubscribe()
        self._timer.stop()
