"""The session hub: one set of agent sessions per cluster, shared by every app on this workstation.

The suite is several processes (omview, omprocs, ommigmon, omctl, ...). If each opened its own
SSH sessions, every node would run one agent per open app and scan its /proc once per app each
second. The hub owns one in-process `Cluster` for one cluster configuration and serves the apps
over a Unix socket; `omview.core.hubclient.HubCluster` is the app's side.

Where things are (`HubPaths`): a private 0700 folder, `$XDG_RUNTIME_DIR/omview` when that is set
and ours, else `~/.cache/omview/run` (never a guessable name in /tmp). In it, per cluster
configuration (named by a hash of its settings text, so two clusters get two hubs):
`hub-HASH.sock` (0600), `hub-HASH.lock` (flock: one hub per configuration; holds its PID),
`hub-HASH.log` (the detached hub's log), `hub-HASH.toml` (the settings an app started it with).

Protocol (JSON lines, like the agent's; docs/architecture.md "Session hub"):
hub → app: `hello`; once the app sent `attach`, the `snapshot` (every node with its process
table), then the agents' own `sample` lines with the node's id spliced in
(`{"n":ID,"type":"sample",...}`, passed through undecoded), the cluster's other Events as
`event`s; and `reply`s. app → hub: `attach`, and requests with ids: `call` (any agent op on a
node), `method` (a Cluster method named in `METHODS`), `status` (`omctl status`'s rendered table,
asked without attaching), `ping`.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omview.core.config import ClusterConfig, ConfigError, load_cluster, save_cluster
from omview.core.hubpaths import HUB_PROTOCOL, HubPaths, HubRunning
from omview.core.model import NodeSample, NodeState
from omview.core.rundir import HubError

if TYPE_CHECKING:
    from concurrent.futures import Future

# the thread pool and argparse are the server's: imported there, not by every app
# (omview.core.hubclient imports this module for its paths and wire format).

log = logging.getLogger("omview.hub")

#: Seconds the hub stays after its last app left.
DEFAULT_IDLE = 60.0
ENV_IDLE = "OMVIEW_HUB_IDLE"
#: Samples are sent in batches, at most this late: each app wakes once a second (its display's
#: pace), not once per node sample (measured at 50 nodes, an app's reader thread: 0.4 % of a core
#: at 0.1 s, 0.28 % at 0.25 s, 0.17 % at 1 s; most of it waking up). Every other event (down, a
#: migration's progress) and every reply goes at once, with the samples queued before it; an up
#: goes in one piece with the sample that follows it.
FLUSH_DELAY = 1.0
#: The hub reads its agents' streams at most this often while no reply is awaited: reading more
#: often than it forwards gains nothing (IoLoop.set_batching). Under a second, so a node's
#: silence is still seen in time (two missed samples).
HUB_READ_GAP = 0.5
#: An app this far behind is dropped; it reattaches and gets a fresh snapshot.
MAX_BACKLOG = 64 * 1024 * 1024
MAX_REQUEST_LINE = 16 * 1024 * 1024
#: A request for a node the hub has not reached yet waits at most this long for it.
PARK_MAX = 15.0
_NOT_YET = NodeState(0, "").reason

#: Cluster methods an app may call through the hub (`{"op": "method", "method": NAME, "args": [...],
#: "kwargs": {...}}`). Exposing a new Cluster method to every app is one entry here plus its twin
#: in HubCluster; results are sent as JSON (dataclasses as dicts).
METHODS: frozenset[str] = frozenset({"set_admin", "get_admin", "signal", "renice", "resolve", "migrate", "run_job"})
#: Requests that may simply be sent again after the hub restarted (they read, or set absolute values).
IDEMPOTENT_OPS: frozenset[str] = frozenset({"ping", "get_admin", "set_admin", "sample_now", "renice"})
IDEMPOTENT_METHODS: frozenset[str] = frozenset({"get_admin", "set_admin", "renice", "resolve"})


def cleanup_stale(paths: HubPaths) -> bool:
    """Remove a socket file no hub serves (its hub died); True when one was removed.

    Decided by the lock, not by a failed connect alone: a hub holds the lock for as long as it
    lives, and a socket is only ever removed while holding it.
    """
    if not os.path.lexists(paths.socket):
        return False
    try:
        fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a hub runs (or is starting): the file is its
        try:
            os.unlink(paths.socket)
            log.info("removed stale hub socket %s", paths.socket)
            return True
        except FileNotFoundError:
            return False
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket (SO_PEERCRED)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


# --------------------------------------------------------------------------- wire format


def _json_default(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)


def encode(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg, separators=(",", ":"), default=_json_default).encode() + b"\n"


def sample_dict(sample: NodeSample) -> dict[str, Any]:
    """Faster than asdict: samples are flat but for the admin state."""
    d = dict(vars(sample))
    d["admin"] = dict(vars(sample.admin))
    return d


def node_dict(st: NodeState, session: Any = None) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": st.id,
        "address": st.address,
        "name": st.name,
        "up": st.up,
        "reason": st.reason,
        # never settled since this hub started: an app that knew the node keeps what it knew
        "pending": not st.up and st.reason == _NOT_YET,
        "last_seen": st.last_seen,
        "sample": sample_dict(st.sample) if st.sample is not None else None,
        "procs": [vars(p) for p in st.procs.values()],
    }
    if session is not None:
        d["session"] = {"agent_info": session.agent_info, "connects": session.connects}
    return d



# --------------------------------------------------------------------------- the server


class _Client:
    def __init__(self, sock: socket.socket, pid: int, uid: int) -> None:
        self.sock = sock
        self.pid = pid
        self.uid = uid
        self.name = f"pid {pid}"
        self.inbuf = bytearray()
        self.out = bytearray()
        self.lock = threading.Lock()
        self.attached = False  # asked for the snapshot and the event stream
        self.live = False  # receives events
        self.held: list[bytes] | None = None  # events that happened while its snapshot was being encoded
        self.closed = False
        self.writing = False  # registered for EVENT_WRITE

    def fileno(self) -> int:
        return self.sock.fileno()


class HubServer:
    """Serves one cluster configuration to the apps of this user on this workstation.

    `start()` takes the lock, binds the socket and connects the cluster; `serve_forever()` runs
    the socket loop in the calling thread until `shutdown()` or the idle timeout.
    """

    def __init__(
        self,
        config: ClusterConfig,
        *,
        paths: HubPaths | None = None,
        idle_timeout: float = DEFAULT_IDLE,
        transport_factory: Callable[..., Any] | None = None,
        flush_delay: float = FLUSH_DELAY,
    ) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from omview.core.cluster import Cluster  # the hub itself is the one place that needs SSH

        self.config = config
        self.paths = paths or HubPaths.for_config(config)
        self.idle_timeout = idle_timeout
        self.flush_delay = flush_delay
        # lazy: the hub passes each agent's sample line on as it came and decodes its own copy
        # only when it reads the state (an app attaches, a request needs a process)
        self.cluster = Cluster(config, transport_factory=transport_factory, lazy_samples=True,
                               read_gap=min(flush_delay / 2, HUB_READ_GAP))
        self.started_at = time.time()
        self._lock = threading.Lock()
        self._clients: dict[int, _Client] = {}  # by fileno
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        self._listener: socket.socket | None = None
        self._lock_fd: int | None = None
        # methods block (a migration for seconds or minutes): enough workers that admin actions still pass
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="omview-hub")
        self._flush_at: float | None = None
        self._idle_since: float | None = time.monotonic()
        self._stop = False
        self._served = 0  # connections, for info and tests
        self._attaches = 0  # of them, apps that took the snapshot and the event stream
        self._soon: list[tuple[_Client, str]] = []  # apps to drop, from other threads
        # requests for a node this hub has not reached yet (just started): sent once it is up or
        # known down, so an app reattaching after a restart gets answers, not "not connected yet"
        self._parked: dict[int, list[tuple[float, Callable[[], None]]]] = {}
        self._cancels: dict[str, threading.Event] = {}  # migrate requests an app may still cancel
        self._unsubscribe: Callable[[], None] | None = None
        self._up_lines: dict[int, bytes] = {}  # an up event waiting for its sample (I/O thread only)
        self._ident: bytes = b""

    # ------------------------------------------------------------ start and stop
    def start(self) -> HubServer:
        self._take_lock()
        try:
            self._bind()
        except BaseException:
            self._release_lock()
            raise
        self._unsubscribe = self.cluster.subscribe(self._on_event)
        self.cluster.start()
        log.info("hub %d serving %s (%d nodes) on %s", os.getpid(), self.config.source or "cluster",
                 len(self.config.nodes), self.paths.socket)
        return self

    def _take_lock(self) -> None:
        fd = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise HubRunning(
                f"a session hub for this cluster already runs (pid {text or '?'}, socket {self.paths.socket})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # the flock goes with the last descriptor
            self._lock_fd = None

    def _bind(self) -> None:
        path = str(self.paths.socket)
        if os.path.lexists(path):
            # we hold the lock, so no live hub serves it: a dead hub's leftover
            log.info("removing stale socket %s", path)
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.bind(path)
            os.chmod(path, 0o600)  # the folder is 0700 already; the socket itself too
            sock.listen(64)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        st = os.stat(path)
        self._ident = f"{st.st_dev}:{st.st_ino}".encode()
        self._listener = sock
        self._sel.register(sock, selectors.EVENT_READ, "accept")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")

    def shutdown(self) -> None:
        """Stop serving (thread-safe); `serve_forever` returns."""
        self._stop = True
        self._wake()

    def _close(self) -> None:
        if self._listener is not None:
            try:
                st = os.stat(self.paths.socket)
                if f"{st.st_dev}:{st.st_ino}".encode() == self._ident:
                    os.unlink(self.paths.socket)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for c in clients:
            self._drop(c, "hub stopping", unregister=False)
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.cluster.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._release_lock()
        self._sel.close()
        fds, self._wake_r, self._wake_w = (self._wake_r, self._wake_w), -1, -1
        for fd in fds:  # a late _wake() finds -1, never a reused descriptor
            try:
                os.close(fd)
            except OSError:
                pass
        log.info("hub %d stopped", os.getpid())

    def _wake(self) -> None:
        fd = self._wake_w
        if fd < 0:
            return
        try:
            os.write(fd, b"x")
        except (BlockingIOError, OSError):
            pass

    # ------------------------------------------------------------ the loop
    def serve_forever(self) -> None:
        try:
            while not self._stop:
                now = time.monotonic()
                timeout = 1.0
                with self._lock:
                    flush_at = self._flush_at
                    idle_since = self._idle_since if not self._clients else None
                if flush_at is not None:
                    timeout = min(timeout, max(0.0, flush_at - now))
                if idle_since is not None and self.idle_timeout > 0:
                    left = idle_since + self.idle_timeout - now
                    if left <= 0:
                        log.info("no app for %.0f s: exiting", self.idle_timeout)
                        break
                    timeout = min(timeout, left)
                for key, mask in self._sel.select(timeout):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        try:
                            while os.read(self._wake_r, 4096):
                                pass
                        except (BlockingIOError, OSError):
                            pass
                    else:
                        client: _Client = key.data
                        if mask & selectors.EVENT_READ:
                            self._read(client)
                        if mask & selectors.EVENT_WRITE and not client.closed:
                            self._flush(client)
                with self._lock:
                    soon, self._soon = self._soon, []
                for c, why in soon:
                    self._drop(c, why)
                self._release_parked(None)
                with self._lock:
                    due = self._flush_at is not None and self._flush_at <= time.monotonic()
                    if due:
                        self._flush_at = None
                    clients = list(self._clients.values())
                for c in clients:
                    if c.out and (due or not c.writing):
                        self._flush(c)
        finally:
            self._close()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    log.error("cannot accept an app: %s", exc)
                return
            pid, uid, _gid = peer_credentials(sock)
            if uid != os.getuid():
                log.warning("refused pid %d of uid %d: this hub serves uid %d only", pid, uid, os.getuid())
                try:
                    sock.setblocking(False)
                    sock.send(encode({"type": "refused", "reason": f"this session hub serves uid {os.getuid()} only"}))
                except OSError:
                    pass
                sock.close()
                continue
            sock.setblocking(False)
            c = _Client(sock, pid, uid)
            with self._lock:
                self._clients[c.fileno()] = c
                self._idle_since = None
                self._served += 1
            self._sel.register(sock, selectors.EVENT_READ, c)
            self._queue(c, encode({
                "type": "hello", "version": HUB_PROTOCOL, "pid": os.getpid(), "key": self.paths.key,
                "source": self.config.source, "nodes": len(self.config.nodes),
            }), urgent=True)
            # the snapshot waits for the app's `attach`: `omctl status` asks one question and leaves

    def _attach(self, c: _Client) -> None:
        """Snapshot and subscription at one instant (Cluster.snapshot), then the snapshot is sent."""

        def go_live() -> None:
            with c.lock:
                c.held = []
                c.live = True

        try:
            states = self.cluster.snapshot(then=go_live)
        except Exception as exc:
            log.error("snapshot for %s failed: %s", c.name, exc)
            self._drop_later(c, f"snapshot failed: {exc}")
            return
        sessions = {i: self.cluster.session(i) for i in self.cluster.node_ids()}
        line = encode({"type": "snapshot", "nodes": [node_dict(st, sessions.get(st.id)) for st in states]})
        with c.lock:
            held, c.held = c.held or [], None
            c.out += line
            for ev in held:
                c.out += ev
        self._wake()

    def _drop_later(self, c: _Client, reason: str) -> None:
        """From any thread: the loop thread drops the app (the selector is the loop's alone)."""
        with self._lock:
            self._soon.append((c, reason))
        self._wake()

    def _read(self, c: _Client) -> None:
        try:
            data = c.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._drop(c, f"read failed: {exc}")
            return
        if not data:
            self._drop(c, "left")
            return
        c.inbuf += data
        if len(c.inbuf) > MAX_REQUEST_LINE:
            self._drop(c, "a request over 16 MiB")
            return
        while True:
            nl = c.inbuf.find(b"\n")
            if nl < 0:
                return
            line = bytes(c.inbuf[:nl])
            del c.inbuf[: nl + 1]
            if not line.strip():
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                log.warning("%s sent something not JSON: %r", c.name, line[:200])
                continue
            if isinstance(msg, dict):
                self._request(c, msg)

    def _flush(self, c: _Client) -> None:
        n, reason = 0, ""
        with c.lock:
            if c.closed or not c.out:
                want_write = False
            else:
                try:
                    n = c.sock.send(c.out)
                except (BlockingIOError, InterruptedError):
                    n = 0
                except OSError as exc:
                    reason = f"write failed: {exc}"
                    c.out.clear()
                    n = -1
                if n > 0:
                    del c.out[:n]
                want_write = bool(c.out)
        if n == -1:
            self._drop(c, reason)
            return
        if want_write != c.writing and not c.closed:
            c.writing = want_write
            mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0)
            try:
                self._sel.modify(c.sock, mask, c)
            except (KeyError, ValueError, OSError):
                pass

    def _queue(self, c: _Client, data: bytes, urgent: bool | None) -> bool:
        """Thread-safe: add to an app's outbox; urgent (replies) wakes the loop now, events batch
        (None: the caller schedules the flush once for all apps). True when queued."""
        with c.lock:
            if c.closed:
                return False
            if c.held is not None:
                c.held.append(data)
            else:
                c.out += data
            over = len(c.out) > MAX_BACKLOG
        if over:
            log.warning("%s is %d bytes behind: dropping it (it will reattach)", c.name, len(c.out))
            self._drop_later(c, "too far behind")
            return False
        if urgent is not None:
            self._schedule_flush(urgent)
        return True

    def _schedule_flush(self, urgent: bool) -> None:
        with self._lock:
            at = time.monotonic() + (0.0 if urgent else self.flush_delay)
            wake = self._flush_at is None or at < self._flush_at
            if wake:
                self._flush_at = at
        if wake:
            self._wake()

    def _drop(self, c: _Client, reason: str, unregister: bool = True) -> None:
        with c.lock:
            if c.closed:
                return
            c.closed = True
            c.live = False
            c.out.clear()
        with self._lock:
            self._clients.pop(c.fileno(), None)
            if not self._clients:
                self._idle_since = time.monotonic()
        if unregister:
            try:
                self._sel.unregister(c.sock)
            except (KeyError, ValueError, OSError):
                pass
        try:
            c.sock.close()
        except OSError:
            pass
        log.info("%s detached: %s", c.name, reason)
        self._wake()

    # ------------------------------------------------------------ events
    def _on_event(self, ev: Any) -> None:
        """On the cluster's I/O thread: encode once (a sample: pass the agent's line), queue for every live app."""
        # an up is always followed by the sample that brought it (Session._emit_sample): the two go
        # to the apps as one piece, or an app could see the node up with an empty table for a batch
        up = self._up_lines.pop(ev.node_id, b"") if ev.kind == "sample" else b""
        if ev.raw:
            self._broadcast(up + b'{"n":%d,' % ev.node_id + ev.raw[1:] + b"\n")
            return
        msg: dict[str, Any] = {"type": "event", "kind": ev.kind, "node": ev.node_id}
        if ev.message:
            msg["message"] = ev.message
        if ev.sample is not None:
            msg["sample"] = sample_dict(ev.sample)
        if ev.new or ev.changed or ev.gone or ev.full:
            rows = self.cluster.process_rows(ev.node_id, [*ev.new, *ev.changed])
            k = len(ev.new)
            msg["new"] = [vars(p) for p in rows[:k] if p is not None]
            msg["changed"] = [vars(p) for p in rows[k:] if p is not None]
            msg["gone"] = ev.gone
            msg["full"] = ev.full
        if ev.data:
            msg["data"] = ev.data
        if ev.kind == "up":
            s = self.cluster.session(ev.node_id)
            msg["session"] = {"agent_info": s.agent_info, "connects": s.connects}
        if ev.kind == "up":
            self._up_lines[ev.node_id] = encode(msg)
        else:
            self._broadcast(up + encode(msg), urgent=ev.kind != "sample")
        if ev.kind in ("up", "down") and self._parked:
            self._release_parked(ev.node_id)

    def _broadcast(self, line: bytes, urgent: bool = False) -> None:
        """The same bytes to every live app, sent with the next batch (urgent: now)."""
        with self._lock:
            clients = list(self._clients.values())
        queued = False
        for c in clients:
            if c.live:
                queued = self._queue(c, line, urgent=None) or queued
        if queued:
            self._schedule_flush(urgent)

    # ------------------------------------------------------------ requests
    def _request(self, c: _Client, msg: dict[str, Any]) -> None:
        rid = msg.get("id")
        op = msg.get("op")
        try:
            if op == "attach":
                if c.attached:
                    raise _Refused("this link is attached already", "invalid")
                c.attached = True
                c.name = f"{msg.get('client') or 'app'} (pid {c.pid})"
                with self._lock:
                    self._attaches += 1
                log.info("%s attached", c.name)
                self._pool.submit(self._attach, c)
                return
            if op == "call":
                node = int(msg["node"])
                agent_op, args = str(msg["agent_op"]), msg.get("args") or {}

                def forward() -> None:
                    fut = self.cluster.request(node, agent_op, args)
                    fut.add_done_callback(lambda f: self._reply(c, rid, f))

                self._when_settled(node, forward)
                return
            if op == "method":
                name = str(msg.get("method"))
                if name not in METHODS:
                    raise _Refused(f"the hub offers no method {name!r}", "invalid")
                fn = getattr(self.cluster, name)
                margs, mkw = list(msg.get("args") or []), dict(msg.get("kwargs") or {})
                token = mkw.pop("cancel_token", None) if name == "migrate" else None
                if token is not None:
                    # the app's Cancel button: an Event here that `{"op": "cancel"}` sets
                    mkw["cancel"] = self._cancels.setdefault(str(token), threading.Event())

                def run() -> None:
                    fut2: Future[Any] = self._pool.submit(fn, *margs, **mkw)
                    fut2.add_done_callback(lambda f: self._reply(c, rid, f))
                    if token is not None:
                        fut2.add_done_callback(lambda f: self._cancels.pop(str(token), None))

                self._when_settled(int(msg.get("node") or 0), run)
                return
            if op == "cancel":
                ev = self._cancels.setdefault(str(msg.get("token")), threading.Event())
                ev.set()  # also when the migrate request has not reached us yet
                self._queue(c, encode({"type": "reply", "id": rid, "ok": True, "result": {}}), urgent=True)
                return
            if op == "status":  # `omctl status`'s fast path: the table rendered here (omview.core.report)
                wait = min(max(float(msg.get("timeout") or 10.0), 0.0), 60.0)
                self._pool.submit(self._status, wait).add_done_callback(lambda f: self._reply(c, rid, f))
                return
            if op == "ping":
                self._queue(c, encode({"type": "reply", "id": rid, "ok": True, "result": self.info()}), urgent=True)
                return
            raise _Refused(f"unknown op {op!r}", "invalid")
        except _Refused as exc:
            self._queue(c, encode({"type": "reply", "id": rid, "ok": False, "error": str(exc), "code": exc.code}),
                        urgent=True)
        except (KeyError, ValueError, TypeError) as exc:
            self._queue(c, encode({"type": "reply", "id": rid, "ok": False, "error": f"bad request: {exc}",
                                   "code": "invalid"}), urgent=True)

    def _status(self, wait: float) -> dict[str, Any]:
        """What `omctl status` prints, once every node is up or known down (at most `wait` s)."""
        from omview.core.report import status_result

        self.cluster.wait_ready(wait)
        return status_result(self.cluster.nodes())

    def _when_settled(self, node_id: int, fn: Callable[[], None]) -> None:
        """Run `fn` now, or once this hub has reached the node (up, or down for a reason)."""
        try:
            st = self.cluster.node(node_id)
        except KeyError:
            fn()  # the cluster answers "no node N" itself
            return
        if st.up or st.reason != _NOT_YET:
            fn()
            return
        with self._lock:
            self._parked.setdefault(node_id, []).append((time.monotonic() + PARK_MAX, fn))
        # the node may have settled in between: look again
        st = self.cluster.node(node_id)
        if st.up or st.reason != _NOT_YET:
            self._release_parked(node_id)

    def _release_parked(self, node_id: int | None) -> None:
        """Run what waited for `node_id` (None: whatever waited too long)."""
        if not self._parked:
            return
        now = time.monotonic()
        run: list[Callable[[], None]] = []
        with self._lock:
            for nid in list(self._parked):
                keep = []
                for deadline, fn in self._parked[nid]:
                    if nid == node_id or deadline <= now:
                        run.append(fn)
                    else:
                        keep.append((deadline, fn))
                if keep:
                    self._parked[nid] = keep
                else:
                    del self._parked[nid]
        for fn in run:
            try:
                fn()
            except Exception:
                log.exception("forwarding a request failed")

    def _reply(self, c: _Client, rid: Any, fut: Future[Any]) -> None:
        exc = fut.exception()
        if exc is None:
            msg: dict[str, Any] = {"type": "reply", "id": rid, "ok": True, "result": fut.result()}
        else:
            code = getattr(exc, "code", "failed")
            text = str(exc) if getattr(exc, "code", None) else f"{type(exc).__name__}: {exc}"
            if isinstance(exc, KeyError) and exc.args:
                text = str(exc.args[0])
                code = "notfound"
            msg = {"type": "reply", "id": rid, "ok": False, "error": text, "code": code,
                   "node": getattr(exc, "node_id", 0)}
        self._queue(c, encode(msg), urgent=True)

    def info(self) -> dict[str, Any]:
        with self._lock:
            names = [c.name for c in self._clients.values()]
            served, attaches = self._served, self._attaches
        return {"pid": os.getpid(), "key": self.paths.key, "clients": names, "connections": served,
                "attaches": attaches,
                "uptime": time.time() - self.started_at, "time": time.time(), "source": self.config.source}


class _Refused(Exception):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- running one


def idle_from_env(default: float = DEFAULT_IDLE) -> float:
    text = os.environ.get(ENV_IDLE, "")
    try:
        return float(text) if text else default
    except ValueError:
        return default


def _log_to(path: Path) -> None:
    """Point stdout/stderr and logging at the hub's own log (kept short: one old copy)."""
    try:
        if path.stat().st_size > 1 << 20:
            os.replace(path, path.with_suffix(".log.1"))
    except OSError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(name)s[%(process)d]: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def run_hub(
    config: ClusterConfig,
    *,
    foreground: bool = False,
    idle_timeout: float | None = None,
    transport_factory: Callable[..., Any] | None = None,
    verbose: bool = False,
    announce: Callable[[str], None] = print,
) -> int:
    """`omctl hub`: serve `config` until idle. Detached (double fork, setsid, own log) unless
    `foreground`; the detached form returns once the hub listens (0) or failed to (1; 3 when one
    already runs). Must be called before this process starts threads when detaching."""
    idle = idle_from_env() if idle_timeout is None else idle_timeout
    paths = HubPaths.for_config(config)
    if foreground:
        _configure_logging(verbose)
        try:
            server = HubServer(config, paths=paths, idle_timeout=idle, transport_factory=transport_factory).start()
        except HubRunning as exc:
            announce(str(exc))
            return 3
        _on_signals(server)
        announce(f"session hub {os.getpid()} on {paths.socket}")
        server.serve_forever()
        return 0
    r, w = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(w)
        chunks = []
        while True:
            chunk = os.read(r, 4096)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(r)
        os.waitpid(pid, 0)
        text = b"".join(chunks).decode(errors="replace").strip()
        if text.startswith("ok "):
            announce(f"session hub {text[3:]} on {paths.socket} (log {paths.log})")
            return 0
        if text.startswith("running "):
            announce(text[len("running "):])
            return 3
        announce(text or f"the session hub did not start: see {paths.log}")
        return 1
    # first child: a new session, then fork again so the hub is no session leader and no child of ours
    try:
        os.close(r)
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
        os.chdir("/")
        os.umask(0o077)
        _log_to(paths.log)
        _configure_logging(verbose)
        try:
            server = HubServer(config, paths=paths, idle_timeout=idle, transport_factory=transport_factory).start()
        except HubRunning as exc:
            os.write(w, f"running {exc}\n".encode())
            os._exit(3)
        except Exception as exc:
            log.exception("hub did not start")
            os.write(w, f"the session hub did not start: {exc}\n".encode())
            os._exit(1)
        _on_signals(server)
        os.write(w, f"ok {os.getpid()}\n".encode())
        os.close(w)
        server.serve_forever()
        logging.shutdown()
        os._exit(0)
    except BaseException:
        os._exit(1)


def _on_signals(server: HubServer) -> None:
    def stop(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping", signum)
        server.shutdown()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def write_settings(config: ClusterConfig, paths: HubPaths) -> Path:
    """The settings a hub is started with by an app: our own dump, so it hashes like the app's."""
    save_cluster(config, paths.settings)
    return paths.settings


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m omview.core.hub`: what apps start on demand (and tests, with --simulate)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m omview.core.hub")
    p.add_argument("--cluster", metavar="FILE")
    p.add_argument("--foreground", action="store_true")
    p.add_argument("--idle", type=float, default=None, help=f"seconds to stay after the last app (default "
                   f"${ENV_IDLE} or {DEFAULT_IDLE:.0f}; 0 = forever)")
    p.add_argument("--simulate", type=int, metavar="N", help="N simulated nodes (tests and benchmarks)")
    p.add_argument("--interval", type=float, default=1.0, help="sample interval of simulated nodes")
    p.add_argument("--procs", type=int, default=20, help="processes per simulated node")
    p.add_argument("--mute", type=int, metavar="NODE", help="simulated NODE answers no request after start "
                   "(tests: a request stays in flight)")
    p.add_argument("--slow-connect", type=float, default=0.0, metavar="S",
                   help="simulated nodes take S seconds to connect, like an SSH handshake (tests)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    factory: Callable[..., Any] | None = None
    if args.simulate:
        from omview.core.simulate import SimFarm

        farm = SimFarm(args.simulate, procs_per_node=args.procs)
        config = farm.config(args.interval)
        factory = farm.transport if not args.mute else _muting(farm.transport, args.mute)
        if args.slow_connect:
            factory = _slow(factory, args.slow_connect)
    else:
        try:
            config = load_cluster(args.cluster)
        except (ConfigError, HubError) as exc:
            print(f"the session hub did not start: {exc}", flush=True)
            return 1
    return run_hub(config, foreground=args.foreground, idle_timeout=args.idle, transport_factory=factory,
                   verbose=args.verbose)


def _slow(factory: Callable[..., Any], delay: float) -> Callable[..., Any]:
    """Simulated transports that take `delay` seconds to connect."""

    def make(node: Any, **kw: Any) -> Any:
        transport = factory(node, **kw)
        real_open = transport.open

        def open_slowly(timeout: float) -> Any:
            time.sleep(delay)
            return real_open(timeout)

        transport.open = open_slowly
        return transport

    return make


def _muting(factory: Callable[..., Any], mute: int) -> Callable[..., Any]:
    """Simulated transports where node `mute` swallows every request but `start`."""

    def make(node: Any, **kw: Any) -> Any:
        transport = factory(node, **kw)
        if node.id != mute:
            return transport
        real_open = transport.open

        def open_muted(timeout: float) -> Any:
            stream = real_open(timeout)
            real_send = stream.send

            def send(data: bytes) -> None:
                keep = [line for line in data.splitlines() if b'"op":"start"' in line]
                if keep:
                    real_send(b"\n".join(keep) + b"\n")

            stream.send = send
            return stream

        transport.open = open_muted
        return transport

    return make


if __name__ == "__main__":
    sys.exit(main())
