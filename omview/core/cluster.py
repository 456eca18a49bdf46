"""All sessions of one cluster: the current state of every node and process, and events.

Every app (the main window, omprocs, ommigmon, the collector, omctl) sees the
cluster through this interface; the GUI bridges `subscribe` callbacks to
queued Qt signals. Reads return copies taken under one lock, so a reader never
sees half a sample. Blocking helpers (`call`, `wait_until`) are for worker
threads and the command line, never for a GUI thread.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from omview.core.config import TRANSPORTS, ClusterConfig, NodeConfig
from omview.core.model import AdminState, NodeState, ProcInfo
from omview.core.rundir import ENV_HUB
from omview.core.rundir import HUB_OFF as _OFF
from omview.core.rundir import HUB_ON as _ON

if TYPE_CHECKING:
    from concurrent.futures import Future

    from omview.core.ioloop import IoLoop
    from omview.core.session import Event, Session
    from omview.core.transport import Transport

# The sessions, their I/O loop and transports are imported when a Cluster is made, not here:
# `open_cluster` and `ClusterBase` are also what a hub client needs, and `omctl status` through the
# session hub should not pay for SSH machinery it never uses (docs/architecture.md, Session hub).

log = logging.getLogger("omview.cluster")

Listener = Callable[["Event"], None]
_NOT_CONNECTED = NodeState(0, "").reason


#: The I/O loop reads its streams at most this often while no reply is awaited (IoLoop.set_batching):
#: at 1 Hz from 50 nodes a wake-up per sample cost the loop more than the samples did.
READ_GAP = 0.1


class ClusterBase:
    """What both clusters (`Cluster`, `HubCluster`) share: reading the node states and process
    tables under the lock (copies of states; rows are shared, being replaced and never mutated),
    and `wait_until`/`wait_ready`.

    The predicate runs WITHOUT the cluster's lock, so it may read the cluster any way an app
    does (`snapshot()`, `nodes()`, `processes()`): `Cluster.snapshot` needs the I/O thread, which
    needs the lock, and `HubCluster.snapshot` takes its emit lock before the lock. A change that
    lands while the predicate runs is not missed: `_version` counts them (`_notify_changed`), and
    we only sleep when it has not moved since we looked.
    """

    _lock: threading.RLock
    _changed: threading.Condition
    _states: dict[int, NodeState]
    _version: int = 0

    def _notify_changed(self) -> None:
        """Call with `_lock` held, after every change a waiter may be waiting for."""
        self._version += 1
        self._changed.notify_all()

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until predicate() holds (checked after every event); for threads and tests."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                seen = self._version
            if predicate():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with self._changed:
                if self._version == seen:
                    # at most half a second: a few changes (set_admin's) notify nobody
                    self._changed.wait(min(left, 0.5))

    def wait_ready(self, timeout: float = 15.0) -> bool:
        """Every node up, or known down for a reason (not merely 'not connected yet')."""

        def ready() -> bool:
            with self._lock:
                return all(s.up or s.reason != _NOT_CONNECTED for s in self._states.values())

        return self.wait_until(ready, timeout)

    # ------------------------------------------------------------ reading (both clusters)
    config: ClusterConfig

    def node_ids(self) -> list[int]:
        return [n.id for n in self.config.nodes]

    def _settle(self, node_ids: Iterable[int] | None = None) -> None:
        """Under the lock, before a read: bring states up to date (Cluster's lazy sessions)."""

    def node(self, node_id: int) -> NodeState:
        """A copy of one node's state, without its process table (see `processes`)."""
        with self._lock:
            self._settle((node_id,))
            st = self._states.get(node_id)
            if st is None:
                raise KeyError(f"no node {node_id} in {self.config.source or 'the cluster'}")
            return _copy_state(st)

    def nodes(self) -> list[NodeState]:
        with self._lock:
            self._settle()
            return [_copy_state(self._states[n.id]) for n in self.config.nodes]

    def processes(self, node_id: int | None = None) -> list[tuple[int, ProcInfo]]:
        """(node id, process) pairs. ProcInfo objects are replaced, never mutated, so sharing is safe."""
        with self._lock:
            ids = [node_id] if node_id is not None else self.node_ids()
            self._settle(ids)
            return [(i, p) for i in ids for p in self._states[i].procs.values()]

    def process(self, node_id: int, pid: int) -> ProcInfo | None:
        with self._lock:
            self._settle((node_id,))
            for p in self._states[node_id].procs.values():
                if p.pid == pid:
                    return p
        return None

    def process_rows(self, node_id: int, keys: Iterable[tuple[int, int]]) -> list[ProcInfo | None]:
        """The current rows of these (pid, start) keys of one node, None where a key is gone."""
        with self._lock:
            self._settle((node_id,))
            table = self._states[node_id].procs
            return [table.get(k) for k in keys]


class Cluster(ClusterBase):
    def __init__(
        self,
        config: ClusterConfig,
        *,
        transport_factory: Callable[..., Transport] | None = None,
        lazy_samples: bool = False,
        read_gap: float = READ_GAP,
    ) -> None:
        """`lazy_samples`: sessions store sample lines and decode them when the state is read
        (the session hub: its apps get the lines as they came; see Session.lazy). `read_gap`:
        see IoLoop.set_batching (the hub reads at the pace it forwards)."""
        from concurrent.futures import ThreadPoolExecutor

        from omview.core.transport import make_transport

        self.config = config
        self._lazy = lazy_samples
        self._read_gap = read_gap
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._listeners: list[Listener] = []
        self._loop: IoLoop | None = None
        self._stopped = False
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
        from omview.core.ioloop import IoLoop
        from omview.core.session import Session

        self._loop = IoLoop()
        sessions = self._sessions
        self._loop.set_batching(self._read_gap, lambda: any(s.awaiting_reply for s in sessions.values()))
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
                lazy=self._lazy,
            )
            self._sessions[n.id] = s
            s.start()
        from omview.core.migration import Resolver  # finishes migrations interrupted earlier

        self.resolver = Resolver(self)
        return self

    def _settle(self, node_ids: Iterable[int] | None = None) -> None:
        if self._lazy:
            for i in self._sessions if node_ids is None else node_ids:
                s = self._sessions.get(i)
                if s is not None:
                    s.settle()

    def stop(self) -> None:
        self._stopped = True
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
            self._notify_changed()
        for fn in listeners:
            try:
                fn(event)
            except Exception:
                log.exception("listener failed on %s", event.kind)

    # ------------------------------------------------------------ reading
    def session(self, node_id: int) -> Session:
        return self._sessions[node_id]

    def snapshot(self, then: Callable[[], None] | None = None, timeout: float = 5.0) -> list[NodeState]:
        """Every node's state WITH its process table, all taken at one instant.

        `then()` runs at that same instant, before any later event reaches a listener: a listener
        attached there misses nothing after the snapshot and sees nothing in it twice (the session
        hub attaches each app this way). Events are emitted on the I/O thread right after the
        state they describe is stored, so the instant is taken there, between two events.
        """
        out: list[NodeState] = []
        failed: list[BaseException] = []
        done = threading.Event()

        def take() -> None:
            try:
                with self._lock:
                    self._settle()
                    for n in self.config.nodes:
                        st = _copy_state(self._states[n.id])
                        st.procs = dict(self._states[n.id].procs)
                        out.append(st)
                    if then is not None:
                        then()
            except BaseException as exc:  # handed to the caller's thread
                failed.append(exc)
            finally:
                done.set()

        loop = self._loop
        if loop is None or loop.in_loop() or self._stopped:
            take()
        else:
            loop.call_soon(take)
            if not done.wait(timeout):
                raise TimeoutError(f"the cluster's I/O thread did not answer within {timeout:.0f} s")
        if failed:
            raise failed[0]
        return out

    # ------------------------------------------------------------ requests
    def request(self, node_id: int, op: str, args: dict[str, Any] | None = None) -> Future[Any]:
        if node_id not in self._sessions:
            from concurrent.futures import Future

            from omview.core.session import AgentError

            fut: Future[Any] = Future()
            fut.set_exception(AgentError(f"no node {node_id} in the cluster", "notfound", node_id))
            return fut
        return self._sessions[node_id].request(op, args)

    def call(self, node_id: int, op: str, args: dict[str, Any] | None = None, timeout: float = 15.0) -> Any:
        """Blocking request: the result, or AgentError."""
        from concurrent.futures import TimeoutError as FutureTimeout

        from omview.core.session import AgentError

        try:
            return self.request(node_id, op, args).result(timeout)
        except FutureTimeout:
            raise AgentError(f"node {node_id} did not answer {op} within {timeout:.0f} s", "timeout", node_id) from None

    def set_admin(self, node_id: int, **fields: Any) -> AdminState:
        state = AdminState.from_dict(self.call(node_id, "set_admin", fields))
        with self._lock:
            self._settle((node_id,))  # stored samples are older than this answer
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
            from omview.core.session import AgentError

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

    # ------------------------------------------------------------ migration and jobs
    def transport(self, node_id: int) -> Transport:
        """The node's transport, for bulk channels (migration images) beside its session."""
        return self._transports[node_id]

    def emit(self, event: Event) -> None:
        """Send an event of our own (e.g. kind="migration" progress) to every listener."""
        self._emit(event)

    def migrate(self, node_id: int, pid: int, target: int | str, **kw: Any) -> Any:
        """Blocking process migration; see omview.core.migration.migrate (returns MigrationResult)."""
        from omview.core.migration import migrate

        return migrate(self, node_id, pid, target, **kw)

    def run_job(self, node_id: int, cmd: list[str], mode: str = "", **kw: Any) -> dict[str, Any]:
        """Start a job on a node (own PID namespace, own session); see omview.core.jobs."""
        from omview.core.jobs import run_job

        return run_job(self, node_id, cmd, mode, **kw)


class SessionInfo(Protocol):
    """What an app may read of a node's session (a `Session` here, a copy in a hub client)."""

    @property
    def config(self) -> NodeConfig: ...
    @property
    def agent_info(self) -> dict[str, Any]: ...
    @property
    def connects(self) -> int: ...


class ClusterLike(Protocol):
    """The interface every app uses: `Cluster` (sessions in this process) and
    `omview.core.hubclient.HubCluster` (the workstation's session hub) both have it.
    Get one from `open_cluster`; GUI code never needs to know which it has."""

    config: ClusterConfig

    def start(self) -> ClusterLike: ...
    def stop(self) -> None: ...
    def __enter__(self) -> ClusterLike: ...
    def __exit__(self, *exc: object) -> None: ...
    def subscribe(self, listener: Listener) -> Callable[[], None]: ...
    def node_ids(self) -> list[int]: ...
    def node(self, node_id: int) -> NodeState: ...
    def nodes(self) -> list[NodeState]: ...
    def processes(self, node_id: int | None = None) -> list[tuple[int, ProcInfo]]: ...
    def process(self, node_id: int, pid: int) -> ProcInfo | None: ...
    def process_rows(self, node_id: int, keys: Iterable[tuple[int, int]]) -> list[ProcInfo | None]: ...
    def snapshot(self, then: Callable[[], None] | None = None, timeout: float = 5.0) -> list[NodeState]: ...
    def session(self, node_id: int) -> SessionInfo: ...
    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool: ...
    def wait_ready(self, timeout: float = 15.0) -> bool: ...
    def request(self, node_id: int, op: str, args: dict[str, Any] | None = None) -> Future[Any]: ...
    def call(self, node_id: int, op: str, args: dict[str, Any] | None = None, timeout: float = 15.0) -> Any: ...
    def set_admin(self, node_id: int, **fields: Any) -> AdminState: ...
    def get_admin(self, node_id: int) -> AdminState: ...
    def resolve(self, node_id: int, pid: int, start: int | None = None) -> ProcInfo: ...
    def signal(self, node_id: int, pid: int, sig: str, start: int | None = None) -> None: ...
    def renice(self, node_id: int, pid: int, nice: int, start: int | None = None) -> None: ...
    def migrate(self, node_id: int, pid: int, target: int | str, **kw: Any) -> Any: ...
    def run_job(self, node_id: int, cmd: list[str], mode: str = "", **kw: Any) -> dict[str, Any]: ...


def open_cluster(
    config: ClusterConfig, *, mode: str = "auto", start_hub: bool = True, client: str = ""
) -> ClusterLike:
    """A started cluster for an app: through the workstation's session hub, or in this process.

    mode "hub": the hub, started if none runs (HubError if that fails); "direct": own sessions;
    "auto" (default): `$OMVIEW_HUB` decides if set, else the hub when one runs or (with
    `start_hub`) can be started, else own sessions. `client` names the app in the hub's log.
    """
    if mode not in ("auto", "hub", "direct"):
        raise ValueError(f"mode is auto, hub or direct, not {mode!r}")
    env = os.environ.get(ENV_HUB, "").strip().lower()
    if mode == "auto" and env in _ON:
        mode = "hub"
    elif mode == "auto" and env in _OFF:
        mode = "direct"
    if mode == "auto" and any(n.transport not in TRANSPORTS for n in config.nodes):
        mode = "direct"  # e.g. simulated nodes live inside this process
    if mode == "direct":
        return Cluster(config).start()
    from omview.core.hubclient import HubCluster, HubError

    if mode == "hub":
        return HubCluster(config, autostart=True, client=client).start()
    try:
        return HubCluster(config, autostart=start_hub, client=client).start()
    except HubError as exc:
        log.info("no session hub (%s): connecting from this process", exc)
        return Cluster(config).start()


def _copy_state(st: NodeState) -> NodeState:
    """Samples are replaced, never mutated, so a shallow copy is a consistent snapshot (without the
    process table). Every app reads every node once a second: __new__ and a dict update cost a
    third of copy.copy's reduce protocol, or of dataclasses.replace."""
    out = NodeState.__new__(NodeState)
    d = out.__dict__
    d.update(st.__dict__)
    d["procs"] = {}
    return out
