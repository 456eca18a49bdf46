"""Process deltas from the cluster's I/O thread to the GUI thread, coalesced, by key.

omview.gui.bridge.ClusterBridge says *which nodes* changed; a process table of 20 000 rows
needs *which processes*. This listener keeps, per node, the (pid, start) keys named by the
events since the last flush (a "full" resend marks the node for a complete check) and wakes
the GUI thread once; the GUI thread then hands each node's keys to the model, which re-reads
only those rows. A key is only a name: the model reads the row as it is at flush time, so an
event that was superseded costs nothing and order between events does not matter. The
batching itself (lock, wake-up, timer, link and agent events) is omview.gui.bridge.EventBatcher.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from omview.core.session import Event
from omview.gui.bridge import EventBatcher

DEFAULT_MIN_INTERVAL_MS = 200

Keys = dict[int, set[tuple[int, int]]]


class ProcBridge(EventBatcher):
    #: {node id: ([(pid, start), …], full)} — every node with news, once per flush
    procsChanged = Signal(object)
    nodesChanged = Signal(list)  # node ids whose sample changed (load, speed…)
    flushed = Signal()

    def __init__(
        self, cluster: Any, parent: QObject | None = None, min_interval_ms: int = DEFAULT_MIN_INTERVAL_MS
    ) -> None:
        self._keys: Keys = {}
        self._full: set[int] = set()
        self._nodes: set[int] = set()
        super().__init__(cluster, parent, min_interval_ms)

    def _collect(self, ev: Event) -> None:
        self._nodes.add(ev.node_id)
        if ev.full:
            self._full.add(ev.node_id)
            self._keys.pop(ev.node_id, None)
        elif ev.node_id not in self._full and (ev.new or ev.changed or ev.gone):
            keys = self._keys.setdefault(ev.node_id, set())
            keys.update(ev.new)
            keys.update(ev.changed)
            keys.update(ev.gone)

    def _take(self) -> tuple[Keys, set[int], set[int]]:
        taken = self._keys, self._full, self._nodes
        self._keys, self._full, self._nodes = {}, set(), set()
        return taken

    def _deliver(self, taken: tuple[Keys, set[int], set[int]]) -> None:
        keys, full, nodes = taken
        self.batches += 1
        batch: dict[int, tuple[list[tuple[int, int]], bool]] = {node: ([], True) for node in full}
        for node, ks in keys.items():
            batch[node] = (list(ks), False)
        if batch:
            self.procsChanged.emit(batch)
        if nodes:
            self.nodesChanged.emit(sorted(nodes))
        self.flushed.emit()
