"""Cluster events (plain callbacks on the core's I/O thread) → Qt signals on the GUI thread.

Two reasons for a bridge rather than connecting listeners directly: Qt objects may only be
touched from their own thread, and 200 nodes at 1 Hz are 200+ events a second. A listener
only records *what* changed and wakes the GUI thread once; the GUI thread then hands over
everything collected in one batch, at most every `min_interval_ms`. Models re-read the current
state through the cluster, so no sample is ever stale and none is queued twice.

`EventBatcher` is that mechanism (lock, wake-up, timer, link and agent events passed on in
order); a subclass says what to collect from an event and how to deliver a batch.
`ClusterBridge` collects node ids; omprocs' ProcBridge collects process keys per node.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal

from omview.core.cluster import ClusterLike
from omview.core.session import Event

#: Longest a change waits before the GUI sees it; also the shortest gap between two batches.
DEFAULT_MIN_INTERVAL_MS = 100


class EventBatcher(QObject):
    """Collects events under a lock on the I/O thread; delivers them in batches on the GUI thread."""

    linkChanged = Signal(int, bool, str)  # node id, up, reason — every transition, in order
    agentEvent = Signal(int, str, dict)  # node id, event name, the agent's message

    _kick = Signal()
    _link = Signal(int, bool, str)
    _agent = Signal(int, str, dict)

    def __init__(
        self, cluster: ClusterLike, parent: QObject | None = None, min_interval_ms: int = DEFAULT_MIN_INTERVAL_MS
    ) -> None:
        super().__init__(parent)
        self.cluster = cluster
        self.min_interval_ms = min_interval_ms
        self._lock = threading.Lock()
        self._kicked = False
        self._last_flush = 0.0
        self.batches = 0  # batches delivered so far, for tests and the benches
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

    # what a subclass collects and delivers -------------------------------------
    def _collect(self, ev: Event) -> None:
        """I/O thread, under the lock: note what `ev` changed."""
        raise NotImplementedError

    def _take(self) -> Any:
        """GUI thread, under the lock: everything noted since the last batch, and forget it."""
        raise NotImplementedError

    def _deliver(self, batch: Any) -> None:
        """GUI thread, outside the lock: emit the batch's signals."""
        raise NotImplementedError

    # I/O thread ---------------------------------------------------------------
    def _listen(self, ev: Event) -> None:
        with self._lock:
            self._collect(ev)
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
        """Deliver what has been collected now (tests call this to skip the wait)."""
        self._timer.stop()
        with self._lock:
            batch = self._take()
            self._kicked = False
        self._last_flush = time.monotonic()
        self._deliver(batch)

    def close(self) -> None:
        """Stop listening (the cluster may outlive this bridge, e.g. while a new one is opened)."""
        self._unsubscribe()
        self._timer.stop()


class ClusterBridge(EventBatcher):
    """Which nodes changed: `nodesChanged` with every id collected, sorted, once per batch."""

    nodesChanged = Signal(list)  # node ids whose state or sample changed (coalesced)
    processesChanged = Signal(list)  # node ids whose process table changed (coalesced)

    def __init__(
        self, cluster: ClusterLike, parent: QObject | None = None, min_interval_ms: int = DEFAULT_MIN_INTERVAL_MS
    ) -> None:
        self._nodes: set[int] = set()
        self._procs: set[int] = set()
        super().__init__(cluster, parent, min_interval_ms)

    def _collect(self, ev: Event) -> None:
        self._nodes.add(ev.node_id)
        if ev.full or ev.new or ev.changed or ev.gone:
            self._procs.add(ev.node_id)

    def _take(self) -> tuple[set[int], set[int]]:
        taken = self._nodes, self._procs
        self._nodes, self._procs = set(), set()
        return taken

    def _deliver(self, batch: tuple[set[int], set[int]]) -> None:
        nodes, procs = batch
        if nodes:
            self.batches += 1
            self.nodesChanged.emit(sorted(nodes))
        if procs:
            self.processesChanged.emit(sorted(procs))
