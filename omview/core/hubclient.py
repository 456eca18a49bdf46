"""An app's side of the session hub: `HubCluster`, the same interface as `Cluster`.

The hub (omview.core.hub) owns the agent sessions; a HubCluster keeps its own copy of every
node's state and process table, filled by the hub's snapshot on attach and kept current by its
event stream, and sends requests to the hub, which forwards them to the node and answers the app
that asked. Reads are as cheap as with a Cluster: they never leave this process.

When the hub goes away (it died, or exited idle while we were attached: it cannot while we are),
the link is marked down (`hub_connected`, an Event of kind "hub") but no node is: the last state
stays. The client reconnects within a fraction of a second, starting a new hub when none answers,
and merges the new snapshot: a node the new hub has not reached yet keeps its last state until
it has. Requests waiting for a reply when the link broke are sent again if they only read or set
absolute values (`hub.IDEMPOTENT_OPS`); others fail with a clear AgentError (code "hub"), since
the old hub may have done them. Requests made while the link is down wait for it.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from omview.core.cluster import ClusterBase, _copy_state
from omview.core.config import ClusterConfig, NodeConfig
from omview.core.hub import IDEMPOTENT_METHODS, IDEMPOTENT_OPS, cleanup_stale, encode, write_settings
from omview.core.hubpaths import HUB_PROTOCOL, HubPaths
from omview.core.model import AdminState, NodeSample, NodeState, ProcInfo
from omview.core.rundir import HubError

if TYPE_CHECKING:
    from omview.core.session import AgentError, Event

log = logging.getLogger("omview.hubclient")

__all__ = ["HubCluster", "HubError", "HubSessionInfo", "HUB_RESTARTED"]

HUB_RESTARTED = "the session hub restarted; the request may not have been done: check and retry"
#: How long to keep trying to reach (or start) a hub before requests waiting for it fail.
UNREACHABLE_AFTER = 20.0
#: Time for a hub we started to listen, on the first attach.
START_TIMEOUT = 15.0
RECV_SIZE = 1 << 20
RECONNECT_FIRST = 0.05
RECONNECT_MAX = 1.0
#: Not more often than this do we start a hub (the others race for its lock and lose quietly).
SPAWN_EVERY = 2.0

Listener = Callable[["Event"], None]

_SAMPLE_FIELDS = frozenset(f.name for f in dataclasses.fields(NodeSample))
_ADMIN_FIELDS = frozenset(f.name for f in dataclasses.fields(AdminState))
_PROC_FIELDS = frozenset(f.name for f in dataclasses.fields(ProcInfo))


def _agent_error(message: str, code: str, node_id: int) -> AgentError:
    """omview.core.session is imported only when needed: `omctl status` through the hub never
    needs its SSH machinery (transport, I/O loop), and its import is a good part of omctl's start."""
    from omview.core.session import AgentError

    return AgentError(message, code, node_id)


_EVENT: Any = None  # omview.core.session.Event, once an event came


def _event(kind: str, node_id: int, **kw: Any) -> Event:
    global _EVENT
    if _EVENT is None:
        from omview.core.session import Event

        _EVENT = Event
    return _EVENT(kind, node_id, **kw)


def _sample(d: dict[str, Any]) -> NodeSample:
    """NodeSample.from_dict, without its per-call field lookups when the hub speaks our version."""
    admin = d.get("admin")
    if d.keys() <= _SAMPLE_FIELDS and isinstance(admin, dict) and admin.keys() <= _ADMIN_FIELDS:
        return NodeSample(**dict(d, admin=AdminState(**admin)))
    return NodeSample.from_dict(d)


def _proc(d: dict[str, Any]) -> ProcInfo:
    return ProcInfo(**d) if d.keys() <= _PROC_FIELDS else ProcInfo.from_dict(d)


@dataclass
class HubSessionInfo:
    """What an app can read of a node's session in the hub (the Session object lives there)."""

    config: NodeConfig
    agent_info: dict[str, Any] = field(default_factory=dict)
    connects: int = 0


@dataclass
class _Pending:
    msg: dict[str, Any]
    future: Future[Any]
    idempotent: bool
    created: float
    sent_gen: int = -1  # link generation it was sent on; -1 = waiting for a link


class HubCluster(ClusterBase):
    """A cluster served by the session hub. See `omview.core.cluster.ClusterLike`.

    `autostart`: start a hub (detached) when none answers; `hub_command`: the argv that starts
    one (default `python -m omview.core.hub --cluster <our settings>`), for tests and benchmarks;
    `client`: the app's name in the hub's log.
    """

    def __init__(
        self,
        config: ClusterConfig,
        *,
        autostart: bool = True,
        hub_command: Sequence[str] | None = None,
        client: str = "",
        paths: HubPaths | None = None,
    ) -> None:
        self.config = config
        self.autostart = autostart
        self.hub_command = list(hub_command) if hub_command else None
        self.client = client or os.path.basename(sys.argv[0] or "app")
        self.paths = paths or HubPaths.for_config(config)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._emit_lock = threading.RLock()  # apply+emit vs snapshot(then): one instant
        self._listeners: list[Listener] = []
        self._states = {n.id: NodeState(id=n.id, address=n.address, name=n.name) for n in config.nodes}
        self._sessions = {n.id: HubSessionInfo(n) for n in config.nodes}
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count(1)
        self._sock: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._gen = 0  # bumps per link
        self._thread: threading.Thread | None = None
        self._closed = False
        self._started = False
        self._have_snapshot = False
        self._last_spawn = 0.0
        self._spawn_failed = False
        self._pushback = b""  # bytes read past the snapshot during a handshake
        self.hub_connected = False
        self.hub_reason = "not attached yet"
        self.hub_pid = 0
        self.attaches = 0  # snapshots received: 1 + reattaches

    # ------------------------------------------------------------ lifecycle
    def start(self) -> HubCluster:
        """Attach (starting a hub if allowed and needed) and take the snapshot; HubError if not possible."""
        if self._started:
            return self
        deadline = time.monotonic() + START_TIMEOUT
        sock, why = self._connect_once(spawn=self.autostart)
        delay = RECONNECT_FIRST
        while sock is None:
            if not self.autostart or time.monotonic() > deadline or self._spawn_failed:
                raise HubError(why)
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
            sock, why = self._connect_once(spawn=True)
        try:
            self._handshake(sock, deadline)
        except BaseException:
            sock.close()
            raise
        self._started = True
        self._thread = threading.Thread(target=self._run, name="omview-hubclient", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closed = True
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        if sock is not None:
            sock.close()
        with self._lock:
            pending, self._pending = self._pending, {}
        for p in pending.values():
            if not p.future.done():
                p.future.set_exception(_agent_error("the cluster was closed", "down", int(p.msg.get("node", 0))))

    def __enter__(self) -> HubCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ the link
    def _connect_once(self, spawn: bool) -> tuple[socket.socket | None, str]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(str(self.paths.socket))
            return sock, ""
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            why = "no session hub runs" if isinstance(exc, FileNotFoundError) else "the session hub died"
            if isinstance(exc, ConnectionRefusedError):
                cleanup_stale(self.paths)
        except OSError as exc:
            sock.close()
            return None, f"cannot reach the session hub at {self.paths.socket}: {exc.strerror or exc}"
        if spawn and time.monotonic() - self._last_spawn > SPAWN_EVERY:
            self._last_spawn = time.monotonic()
            try:
                self._spawn()
            except (OSError, HubError) as exc:
                self._spawn_failed = True
                return None, f"{why}, and starting one failed: {exc}"
            return self._connect_once(spawn=False)  # it listens now (or another app's hub does)
        return None, why

    def _spawn(self) -> None:
        """Start a hub, detached, and wait until it listens: the process we start double-forks and
        ends once the hub's socket is bound (exit 0), another app's hub won the race (3), or the
        hub could not start (1, HubError with its words: an app then opens its own sessions)."""
        argv = self.hub_command
        if argv is None:
            settings = write_settings(self.config, self.paths)
            argv = [sys.executable, "-m", "omview.core.hub", "--cluster", str(settings)]
        import subprocess

        log.info("starting a session hub: %s", " ".join(argv))
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
        try:
            out, _ = proc.communicate(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()  # the starter only; a hub that got as far as listening stays
            proc.communicate()
            raise HubError(f"the session hub did not start within {START_TIMEOUT:.0f} s") from None
        if proc.returncode not in (0, 3):
            text = out.decode(errors="replace").strip().splitlines()
            raise HubError(text[-1] if text else f"the session hub exited with status {proc.returncode}")

    def _handshake(self, sock: socket.socket, deadline: float) -> None:
        """Read hello and snapshot on a fresh link (blocking, bounded), then make it the link."""
        sock.settimeout(max(0.5, deadline - time.monotonic()))
        try:  # the hub sends the snapshot once asked (a one-question client like omctl never asks)
            sock.sendall(encode({"op": "attach", "client": self.client, "pid": os.getpid()}))
        except OSError as exc:
            raise HubError(f"the session hub link failed: {exc}") from None
        buf = bytearray()
        hello: dict[str, Any] | None = None
        snapshot: dict[str, Any] | None = None
        rest = b""
        try:
            while snapshot is None:
                data = sock.recv(1 << 20)
                if not data:
                    raise HubError("the session hub closed the connection")
                buf += data
                while snapshot is None:
                    nl = buf.find(b"\n")
                    if nl < 0:
                        break
                    msg = json.loads(bytes(buf[:nl]))
                    del buf[: nl + 1]
                    kind = msg.get("type")
                    if kind == "refused":
                        raise HubError(f"the session hub refused us: {msg.get('reason')}")
                    if kind == "hello":
                        if int(msg.get("version", 0)) != HUB_PROTOCOL:
                            raise HubError(f"the session hub speaks protocol {msg.get('version')}, we {HUB_PROTOCOL}")
                        hello = msg
                    elif kind == "snapshot":
                        snapshot = msg
                rest = bytes(buf)
        except TimeoutError:
            raise HubError("the session hub did not send its snapshot in time") from None
        except (OSError, ValueError) as exc:
            raise HubError(f"the session hub link failed: {exc}") from None
        if hello is None:
            raise HubError("the session hub sent no hello")
        sock.settimeout(None)
        with self._send_lock:
            self._sock = sock
            self._gen += 1
            gen = self._gen
        self.hub_pid = int(hello.get("pid", 0))
        self._apply_snapshot(snapshot)
        with self._lock:
            self.hub_connected = True
            self.hub_reason = ""
            self._notify_changed()
        if self.attaches > 1:
            self._emit(_event("hub", 0, message="attached to the session hub again", data={"up": True,
                                                                                          "pid": self.hub_pid}))
        self._resend(gen)
        self._pushback = rest

    def _send_raw(self, msg: dict[str, Any], gen: int) -> bool:
        data = encode(msg)
        with self._send_lock:
            if self._sock is None or gen != self._gen:
                return False
            try:
                self._sock.sendall(data)
                return True
            except OSError:
                return False  # the reader sees the link break and handles it

    def _resend(self, gen: int) -> None:
        """Send what waited for a link: new requests, and idempotent ones the last hub never answered."""
        with self._lock:
            waiting = [(rid, p) for rid, p in self._pending.items() if p.sent_gen != gen]
            for _, p in waiting:
                p.sent_gen = gen
        for rid, p in sorted(waiting, key=lambda x: x[0]):
            self._send_raw(dict(p.msg, id=rid), gen)

    def _run(self) -> None:
        """The reader: apply what the hub sends; reattach when the link breaks."""
        buf = bytearray(self._pushback)
        chunk = bytearray(RECV_SIZE)  # reused: a fresh 1 MiB bytes per recv costs mmap/munmap each time
        view = memoryview(chunk)
        while not self._closed:
            sock = self._sock
            if sock is None:
                break
            self._dispatch(self._messages(buf))
            try:
                n = sock.recv_into(view)
            except OSError:
                n = 0
            if n:
                buf += view[:n]
                continue
            if self._closed:
                break
            buf.clear()
            self._link_lost(sock, f"the session hub (pid {self.hub_pid}) went away")
            if not self._reattach():
                break
            buf += self._pushback

    @staticmethod
    def _messages(buf: bytearray) -> list[Any]:
        """Every complete line in `buf`, parsed in one go (one JSON array: cheaper than line by line)."""
        end = buf.rfind(b"\n")
        if end < 0:
            return []
        lines = [x for x in bytes(buf[:end]).split(b"\n") if x.strip()]
        del buf[: end + 1]
        try:
            return list(json.loads(b"[" + b",".join(lines) + b"]"))
        except ValueError:  # one bad line: keep the good ones
            out = []
            for line in lines:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    log.warning("not JSON from the session hub: %r", line[:200])
            return out

    def _link_lost(self, sock: socket.socket, reason: str) -> None:
        with self._send_lock:
            if self._sock is sock:
                self._sock = None
                self._gen += 1
        try:
            sock.close()
        except OSError:
            pass
        failed: list[_Pending] = []
        with self._lock:
            self.hub_connected = False
            self.hub_reason = reason
            for rid, p in list(self._pending.items()):
                if p.sent_gen >= 0 and not p.idempotent:
                    failed.append(self._pending.pop(rid))
                else:
                    p.sent_gen = -1
            self._notify_changed()
        log.warning("%s: reattaching", reason)
        for p in failed:
            if not p.future.done():
                p.future.set_exception(_agent_error(HUB_RESTARTED, "hub", int(p.msg.get("node", 0))))
        self._emit(_event("hub", 0, message=reason, data={"up": False}))

    def _reattach(self) -> bool:
        delay = RECONNECT_FIRST
        lost_at = time.monotonic()
        while not self._closed:
            sock, why = self._connect_once(spawn=self.autostart)
            if sock is not None:
                try:
                    self._handshake(sock, time.monotonic() + 10)
                    return True
                except HubError as exc:
                    sock.close()
                    why = str(exc)
            with self._lock:
                self.hub_reason = f"reattaching to the session hub: {why}"
            if time.monotonic() - lost_at > UNREACHABLE_AFTER:
                self._fail_waiting(f"the session hub is not reachable: {why}")
            time.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX)
        return False

    def _fail_waiting(self, text: str) -> None:
        with self._lock:
            waiting = [rid for rid, p in self._pending.items() if p.sent_gen < 0]
            failed = [self._pending.pop(rid) for rid in waiting]
        for p in failed:
            if not p.future.done():
                p.future.set_exception(_agent_error(text, "hub", int(p.msg.get("node", 0))))

    # ------------------------------------------------------------ applying what the hub sends
    def _dispatch(self, msgs: list[Any]) -> None:
        """One read's messages in order: runs of node events are applied together (`_apply_events`);
        a reply is handled after the events before it, so a caller has every progress step first."""
        run: list[dict[str, Any]] = []
        for msg in msgs:
            if not isinstance(msg, dict):
                continue
            if msg.get("type") in ("sample", "event"):
                run.append(msg)
                continue
            if run:
                self._apply_events(run)
                run = []
            try:
                self._handle(msg)
            except Exception:
                log.exception("bad message from the session hub: %r", str(msg)[:200])
        if run:
            self._apply_events(run)

    def _apply_events(self, msgs: list[dict[str, Any]]) -> None:
        """Apply a batch under one lock and one notify, then emit its Events in order; the batch
        is one instant for `snapshot(then=...)` (the emit lock is held throughout)."""
        out: list[Event] = []
        with self._emit_lock:
            with self._lock:
                for msg in msgs:
                    try:
                        if "n" in msg:
                            self._apply_agent_sample(msg, out)
                        else:
                            self._apply_event(msg, out)
                    except Exception:
                        log.exception("bad message from the session hub: %r", str(msg)[:200])
                self._notify_changed()
                listeners = list(self._listeners)
            for ev in out:
                for fn in listeners:
                    try:
                        fn(ev)
                    except Exception:
                        log.exception("listener failed on %s", ev.kind)

    def _handle(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind in ("event", "sample"):
            self._apply_events([msg])
        elif kind == "reply":
            with self._lock:
                p = self._pending.pop(int(msg.get("id", 0)), None)
            if p is None or p.future.done():
                return
            if msg.get("ok"):
                p.future.set_result(msg.get("result"))
            else:
                node = int(msg.get("node") or p.msg.get("node") or 0)
                text, code = str(msg.get("error", "failed")), str(msg.get("code", "failed"))
                p.future.set_exception(_agent_error(text, code, node))
        elif kind == "snapshot":
            self._apply_snapshot(msg)

    def _apply_snapshot(self, msg: dict[str, Any]) -> None:
        first = not self._have_snapshot
        events: list[Event] = []
        with self._emit_lock:
            with self._lock:
                for d in msg.get("nodes", ()):
                    st = self._states.get(int(d["id"]))
                    if st is None:
                        continue
                    sess = d.get("session")
                    if sess:
                        info = self._sessions[st.id]
                        info.agent_info = dict(sess.get("agent_info") or {})
                        info.connects = int(sess.get("connects", 0))
                    if d.get("pending") and not first:
                        continue  # the new hub has not reached it yet: keep what we knew
                    was_up, old = st.up, st.procs
                    st.up = bool(d.get("up"))
                    st.reason = str(d.get("reason", ""))
                    st.last_seen = float(d.get("last_seen") or 0.0)
                    st.sample = _sample(d["sample"]) if d.get("sample") else None
                    table = {}
                    for row in d.get("procs", ()):
                        p = _proc(row)
                        table[p.key] = p
                    st.procs = table
                    if first:
                        continue
                    if st.up != was_up:
                        events.append(_event("up", st.id) if st.up else _event("down", st.id, message=st.reason))
                    if st.up:
                        events.append(_event("sample", st.id, sample=st.sample, full=True, new=list(table),
                                            gone=[k for k in old if k not in table]))
                self._have_snapshot = True
                self.attaches += 1
                self._notify_changed()
            for ev in events:
                self._emit(ev)

    def _apply_event(self, msg: dict[str, Any], out: list[Event]) -> None:
        """A hub `event` (with self._lock held): state changed, its Event appended to `out`."""
        kind = str(msg.get("kind", ""))
        node_id = int(msg.get("node", 0))
        st = self._states.get(node_id)
        if kind == "sample" and st is not None:
            if not st.up:
                out.append(_event("up", node_id))
            out.append(self._apply_sample(st, msg))
        elif kind == "up" and st is not None:
            sess = msg.get("session")
            if sess:
                info = self._sessions[node_id]
                info.agent_info = dict(sess.get("agent_info") or {})
                info.connects = int(sess.get("connects", 0))
            if not st.up:
                out.append(_event("up", node_id))
            st.up, st.reason = True, ""
        elif kind == "down" and st is not None:
            reason = str(msg.get("message", ""))
            if st.up or st.reason != reason:
                out.append(_event("down", node_id, message=reason))
            st.up, st.reason = False, reason
        else:
            out.append(_event(kind, node_id, message=str(msg.get("message", "")),
                              data=dict(msg.get("data") or {}),
                              sample=_sample(msg["sample"]) if msg.get("sample") else None,
                              new=[(int(r["pid"]), int(r["start"])) for r in msg.get("new", ())],
                              changed=[(int(r["pid"]), int(r["start"])) for r in msg.get("changed", ())],
                              gone=[(int(a), int(b)) for a, b in msg.get("gone", ())], full=bool(msg.get("full"))))

    def _apply_agent_sample(self, msg: dict[str, Any], out: list[Event]) -> None:
        """An agent's own sample line, passed through by the hub (with self._lock held): applied as
        the hub's Session applied it (changed rows carry only what changed), so the copy stays
        the hub's. The table is changed in place: every reader copies it under the lock."""
        st = self._states.get(msg["n"])
        if st is None:
            return
        procs = msg.get("procs") or {}
        full = bool(procs.get("full"))
        ev = _event("sample", st.id, sample=_sample(msg.get("node") or {}), full=full)
        if not st.up:
            out.append(_event("up", st.id))
        st.sample = ev.sample
        st.last_seen = time.monotonic()
        st.up, st.reason = True, ""
        if procs:
            table = st.procs
            if full:
                old = table
                table = st.procs = {}
            for row in procs.get("new", ()):
                p = _proc(row)
                table[p.key] = p
                ev.new.append(p.key)
            for row in procs.get("changed", ()):
                key = (row["pid"], row["start"])
                was = table.get(key)
                if was is None:
                    continue
                p = ProcInfo.__new__(ProcInfo)  # rows are replaced, never mutated: a copy with the changes
                d = p.__dict__
                d.update(was.__dict__)
                d.update(row if row.keys() <= _PROC_FIELDS else {k: v for k, v in row.items() if k in _PROC_FIELDS})
                table[key] = p
                ev.changed.append(key)
            for pid, start in procs.get("gone", ()):
                key = (pid, start)
                if table.pop(key, None) is not None:
                    ev.gone.append(key)
            if full:
                ev.gone.extend(k for k in old if k not in table)
        out.append(ev)

    def _apply_sample(self, st: NodeState, msg: dict[str, Any]) -> Event:
        sample = _sample(msg.get("sample") or {})
        full = bool(msg.get("full"))
        ev = _event("sample", st.id, sample=sample, full=full)
        st.sample = sample
        st.last_seen = time.monotonic()
        st.up, st.reason = True, ""
        if "new" in msg or full:
            old = st.procs
            table = {} if full else old
            for row in msg.get("new", ()):
                p = _proc(row)
                table[p.key] = p
                ev.new.append(p.key)
            for row in msg.get("changed", ()):
                p = _proc(row)
                table[p.key] = p
                ev.changed.append(p.key)
            for pid, start in msg.get("gone", ()):
                key = (int(pid), int(start))
                if table.pop(key, None) is not None:
                    ev.gone.append(key)
            if full:
                ev.gone.extend(k for k in old if k not in table)
            st.procs = table
        return ev

    def _emit(self, event: Event) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for fn in listeners:
            try:
                fn(event)
            except Exception:
                log.exception("listener failed on %s", event.kind)

    # ------------------------------------------------------------ events
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(event)` from the hub link's reader thread for every event; returns the
        unsubscribe. Besides the Cluster's kinds there is "hub" (node 0, data {"up": bool}): the
        link to the hub broke or came back; nodes keep their last state meanwhile."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    # ------------------------------------------------------------ reading (the rest is in ClusterBase)
    def snapshot(self, then: Callable[[], None] | None = None, timeout: float = 5.0) -> list[NodeState]:
        with self._emit_lock, self._lock:
            out = []
            for i in self.node_ids():
                st = _copy_state(self._states[i])
                st.procs = dict(self._states[i].procs)
                out.append(st)
            if then is not None:
                then()
            return out

    def session(self, node_id: int) -> HubSessionInfo:
        """A copy of what the hub knows of the node's session (agent hello, connects)."""
        with self._lock:
            return dataclasses.replace(self._sessions[node_id])

    # ------------------------------------------------------------ requests
    def _submit(self, msg: dict[str, Any], idempotent: bool) -> Future[Any]:
        fut: Future[Any] = Future()
        if self._closed or not self._started:
            fut.set_exception(_agent_error("the cluster is not started", "down", int(msg.get("node", 0))))
            return fut
        rid = next(self._ids)
        p = _Pending(msg, fut, idempotent, time.monotonic())
        with self._send_lock:
            gen = self._gen if self._sock is not None else -1
        with self._lock:
            self._pending[rid] = p
            if gen >= 0:
                p.sent_gen = gen
        if gen >= 0 and not self._send_raw(dict(msg, id=rid), gen):
            with self._lock:
                if p.sent_gen == gen:
                    p.sent_gen = -1  # never left: it is sent on the next link
        return fut

    def request(self, node_id: int, op: str, args: dict[str, Any] | None = None) -> Future[Any]:
        """Forwarded by the hub to the node's agent; the future holds the result or an AgentError."""
        if node_id not in self._states:
            fut: Future[Any] = Future()
            fut.set_exception(_agent_error(f"no node {node_id} in the cluster", "notfound", node_id))
            return fut
        return self._submit({"op": "call", "node": node_id, "agent_op": op, "args": args or {}},
                            op in IDEMPOTENT_OPS)

    def call(self, node_id: int, op: str, args: dict[str, Any] | None = None, timeout: float = 15.0) -> Any:
        try:
            return self.request(node_id, op, args).result(timeout)
        except FutureTimeout:
            raise _agent_error(f"node {node_id} did not answer {op} within {timeout:.0f} s", "timeout",
                               node_id) from None

    def method(self, name: str, *args: Any, timeout: float = 20.0, **kwargs: Any) -> Any:
        """Run a Cluster method in the hub (one of hub.METHODS); the JSON of its result."""
        node = args[0] if args and isinstance(args[0], int) else 0
        fut = self._submit({"op": "method", "method": name, "node": node, "args": list(args), "kwargs": kwargs},
                           name in IDEMPOTENT_METHODS)
        try:
            return fut.result(timeout)
        except FutureTimeout:
            raise _agent_error(f"the session hub did not answer {name} within {timeout:.0f} s", "timeout",
                             node) from None

    def set_admin(self, node_id: int, **fields: Any) -> AdminState:
        state = AdminState.from_dict(self.method("set_admin", node_id, **fields))
        with self._lock:
            st = self._states.get(node_id)
            if st is not None and st.sample is not None:
                st.sample = dataclasses.replace(st.sample, admin=state)
        return state

    def get_admin(self, node_id: int) -> AdminState:
        return AdminState.from_dict(self.method("get_admin", node_id))

    def resolve(self, node_id: int, pid: int, start: int | None = None) -> ProcInfo:
        """Against our copy of the table, as Cluster does against its own: no round trip."""
        proc = self.process(node_id, pid)
        if proc is None or (start is not None and proc.start != start):
            raise _agent_error(
                f"no process {pid} on node {node_id} (it ended, or the list is not current yet)", "stale", node_id
            )
        return proc

    def signal(self, node_id: int, pid: int, sig: str, start: int | None = None) -> None:
        proc = self.resolve(node_id, pid, start)
        self.method("signal", node_id, pid, sig, start=proc.start)

    def renice(self, node_id: int, pid: int, nice: int, start: int | None = None) -> None:
        proc = self.resolve(node_id, pid, start)
        self.method("renice", node_id, pid, nice, start=proc.start)

    def migrate(self, node_id: int, pid: int, target: int | str, *, progress: Callable[[Any], None] | None = None,
                timeout: float = 3600.0, **kw: Any) -> Any:
        """As Cluster.migrate, done by the hub's migration engine; its progress reaches every app as
        Events of kind "migration". `progress(Progress)` is called for this migration's steps.
        `cancel` (a threading.Event) is relayed to the hub; `hooks` cannot be (they would have to
        run in the hub's process)."""
        if kw.get("hooks") is not None:
            raise ValueError("hooks do not pass through the session hub: open the cluster with mode='direct'")
        kw.pop("hooks", None)
        cancel: threading.Event | None = kw.pop("cancel", None)
        done = threading.Event()
        if cancel is not None:
            import uuid

            token = uuid.uuid4().hex
            kw["cancel_token"] = token

            def relay_cancel() -> None:
                while not done.is_set():
                    if cancel.wait(0.2):
                        self._submit({"op": "cancel", "token": token}, True)
                        return

            threading.Thread(target=relay_cancel, name="omview-hub-cancel", daemon=True).start()
        from omview.core.migration import MigrationResult, Progress

        def mine(ev: Event) -> None:
            d = ev.data
            if ev.kind == "migration" and progress is not None and d.get("source") == node_id and d.get("pid") == pid:
                progress(Progress(**{k: v for k, v in d.items() if k in Progress.__dataclass_fields__}))

        unsubscribe = self.subscribe(mine)
        try:
            res = self.method("migrate", node_id, pid, target, timeout=timeout, **kw)
        finally:
            done.set()
            unsubscribe()
        return MigrationResult(**{k: v for k, v in res.items() if k in MigrationResult.__dataclass_fields__})

    def run_job(self, node_id: int, cmd: list[str], mode: str = "", **kw: Any) -> dict[str, Any]:
        """As Cluster.run_job, through the hub (not idempotent: a restart fails it clearly)."""
        return dict(self.method("run_job", node_id, list(cmd), mode, timeout=float(kw.get("timeout", 30.0)) + 10, **kw))

    def hub_info(self, timeout: float = 5.0) -> dict[str, Any]:
        """The hub's pid, its apps, uptime (a round trip)."""
        fut = self._submit({"op": "ping"}, True)
        return dict(fut.result(timeout))
