"""All sessions of one cluster: the current state of every node and process, and events.

Every app (the main window, omprocs, ommigmon, the collector, omctl) sees the
cluster through this interface; the GUI bridges `subscribe` callbacks to
queued Qt signals. Reads return copies taken under one lock, so a reader never
sees half a sample. Blocking helpers (`call`, `wait_until`) are for worker
threads and the command line, never for a GUI thread.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from omview.core.config import ClusterConfig
from omview.core.ioloop import IoLoop
from omview.core.model import AdminState, NodeState, ProcInfo
from omview.core.session import AgentError, Event, Session
from omview.core.transport import Transport, make_transport

log = logging.getLogger("omview.cluster")

Listener = Callable[[Event], None]


class Cluster:
    def __init__(
        self,
        config: ClusterConfig,
        *,
        transport_factory: Callable[..., Transport] | None = None,
    ) -> None:
        self.config = config
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._listeners: list[Listener] = []
        self._loop: IoLoop | None = None
        # connects are the slow part (a handshake each); a bounded pool keeps 1000 nodes from
        # meaning 1000 threads, and a hung node only ever holds one worker
        self._pool = ThreadPoolExecutor(max_workers=min(32, 4 + 2 * len(config.nodes)), thread_name_prefix="omview-io")
        factory = transport_factory or make_transport
        self._states: dict[int, NodeState] = {}
        self._sessions: dict[int, Session] = {}
        self._transports = {
            n.id: factory(n, known_hosts=config.known_hosts, accept_new_host_keys=config.accept_new_host_keys)
            for n in config.nodes
        }
        for n in config.nodes:
            self._states[n.id] = NodeState(id=n.id, address=n.address, name=n.name)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> Cluster:
        if self._loop is not None:
            return self
        self._loop = IoLoop()
        for n in self.config.nodes:
            s = Session(
                n,
                self._transports[n.id],
                self._loop,
                self._pool,
                self._states[n.id],
                self._lock,
                self._emit,
                self.config.interval,
            )
            self._sessions[n.id] = s
            s.start()
        return self

    def stop(self) -> None:
        for s in self._sessions.values():
            s.close()
        if self._loop is not None:
            done = threading.Event()
            self._loop.call_soon(done.set)
            done.wait(2)
            self._loop.stop()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ events
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(event)` from the I/O thread for every event; returns the unsubscribe."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def _emit(self, event: Event) -> None:
        with self._lock:
            listeners = list(self._listeners)
            self._changed.notify_all()
        for fn in listeners:
            try:
                fn(event)
            except Exception:
                log.exception("listener failed on %s", event.kind)

    # ------------------------------------------------------------ reading
    def node_ids(self) -> list[int]:
        return [n.id for n in self.config.nodes]

    def node(self, node_id: int) -> NodeState:
        """A copy of one node's state, without its process table (see `processes`)."""
        with self._lock:
            st = self._states.get(node_id)
            if st is None:
                raise KeyError(f"no node {node_id} in {self.config.source or 'the cluster'}")
            return _copy_state(st)

    def nodes(self) -> list[NodeState]:
        with self._lock:
            return [_copy_state(self._states[n.id]) for n in self.config.nodes]

    def processes(self, node_id: int | None = None) -> list[tuple[int, ProcInfo]]:
        """(node id, process) pairs. ProcInfo objects are replaced, never mutated, so sharing is safe."""
        with self._lock:
            ids = [node_id] if node_id is not None else self.node_ids()
            return [(i, p) for i in ids for p in self._states[i].procs.values()]

    def process(self, node_id: int, pid: int) -> ProcInfo | None:
        with self._lock:
            for p in self._states[node_id].procs.values():
                if p.pid == pid:
                    return p
        return None

    def session(self, node_id: int) -> Session:
        return self._sessions[node_id]

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until predicate() holds (checked after every event); for threads and tests."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.5))
        return True

    def wait_ready(self, timeout: float = 15.0) -> bool:
        """Every node up, or known down for a reason (not merely 'not connected yet')."""
        return self.wait_until(
            lambda: all(s.up or s.reason != "not connected yet" for s in self._states.values()), timeout
        )

    # ------------------------------------------------------------ requests
    def request(self, node_id: int, op: str, args: dict[str, Any] | None = None) -> Future[Any]:
        if node_id not in self._sessions:
            fut: Future[Any] = Future()
            fut.set_exception(AgentError(f"no node {node_id} in the cluster", "notfound", node_id))
            return fut
        return self._sessions[node_id].request(op, args)

    def call(self, node_id: int, op: str, args: dict[str, Any] | None = None, timeout: float = 15.0) -> Any:
        """Blocking request: the result, or AgentError."""
        try:
            return self.request(node_id, op, args).result(timeout)
        except FutureTimeout:
            raise AgentError(f"node {node_id} did not answer {op} within {timeout:.0f} s", "timeout", node_id) from None

    def set_admin(self, node_id: int, **fields: Any) -> AdminState:
        state = AdminState.from_dict(self.call(node_id, "set_admin", fields))
        with self._lock:
            st = self._states[node_id]
            if st.sample is not None:
                st.sample = dataclasses.replace(st.sample, admin=state)
        return state

    def get_admin(self, node_id: int) -> AdminState:
        return AdminState.from_dict(self.call(node_id, "get_admin"))

    def resolve(self, node_id: int, pid: int, start: int | None = None) -> ProcInfo:
        """The process to act on, refusing an unknown PID before anything is sent."""
        proc = self.process(node_id, pid)
        if proc is None or (start is not None and proc.start != start):
            raise AgentError(
                f"no process {pid} on node {node_id} (it ended, or the list is not current yet)",
                "stale",
                node_id,
            )
        return proc

    def signal(self, node_id: int, pid: int, sig: str, start: int | None = None) -> None:
        proc = self.resolve(node_id, pid, start)
        self.call(node_id, "signal", {"pid": pid, "start": proc.start, "sig": sig})

    def renice(self, node_id: int, pid: int, nice: int, start: int | None = None) -> None:
        proc = self.resolve(node_id, pid, start)
        self.call(node_id, "renice", {"pid": pid, "start": proc.start, "nice": nice})


def _copy_state(st: NodeState) -> NodeState:
    """Samples are replaced, never mutated, so a shallow copy is a consistent snapshot."""
    out = copy.copy(st)
    out.procs = {}
    return out
