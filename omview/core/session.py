"""A live connection to one node's agent: requests, replies, samples, reconnects.

The session object outlives its connections. When the link breaks it is
reopened with back-off (1 s doubling to 30 s); when samples stop for two
intervals the node is shown down but the channel is kept, so a node that only
paused comes back up without anything being restarted.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

from omview.core.config import NodeConfig
from omview.core.ioloop import IoLoop
from omview.core.model import NodeSample, NodeState, ProcInfo
from omview.core.transport import RECV_CHUNK, Stream, Transport, TransportError, explain_early_exit

PROTOCOL_VERSION = 1
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
CONNECT_TIMEOUT = 10.0
#: A node that was silent this long is given up on and reconnected, not just shown down.
ABANDON_AFTER = 15.0
MAX_LINE = 64 * 1024 * 1024
#: How an agent's sample line starts (the agent writes its keys in this order).
SAMPLE_PREFIX = b'{"type":"sample",'
#: A lazy session decodes its stored sample lines at the latest when this many have come.
LAZY_BATCH = 32
_decode = json.JSONDecoder().decode  # json.loads without its per-call checks and encoding sniffing
_PROC_FIELDS = frozenset(f.name for f in dataclasses.fields(ProcInfo))


class AgentError(Exception):
    """The agent refused or could not do a request; `code` as in docs/protocol.md."""

    def __init__(self, message: str, code: str = "failed", node_id: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.node_id = node_id


@dataclass
class Event:
    """What the cluster tells its listeners. Sent from the I/O thread: listeners must be quick."""

    kind: str  # up | down | sample | error | agent
    node_id: int
    message: str = ""
    sample: NodeSample | None = None
    new: list[tuple[int, int]] = field(default_factory=list)
    changed: list[tuple[int, int]] = field(default_factory=list)
    gone: list[tuple[int, int]] = field(default_factory=list)
    full: bool = False
    data: dict[str, Any] = field(default_factory=dict)
    #: a lazy session's sample: the agent's line as it came, not decoded (`sample` is None then)
    raw: bytes = b""


class _Watchdog:
    """One timer per loop and interval checks every session's silence.

    A timer per session meant an extra wake-up of the I/O thread per node per half interval,
    as many as the samples themselves; one sweep over all sessions costs a fraction of that.
    """

    def __init__(self, loop: IoLoop, interval: float) -> None:
        self.loop = loop
        self.interval = interval
        self.sessions: set[Session] = set()
        self.armed = False

    @classmethod
    def of(cls, loop: IoLoop, interval: float) -> _Watchdog:
        key = ("session-watchdog", interval)
        dog = loop.shared.get(key)
        if not isinstance(dog, _Watchdog):
            dog = cls(loop, interval)
            loop.shared[key] = dog
        return dog

    def watch(self, session: Session) -> None:
        """From the loop thread."""
        self.sessions.add(session)
        if not self.armed:
            self.armed = True
            self.loop.call_later(self.interval / 2, self._sweep)

    def unwatch(self, session: Session) -> None:
        self.sessions.discard(session)

    def _sweep(self) -> None:
        now = time.monotonic()
        for session in list(self.sessions):
            try:
                session._check_silence(now)
            except Exception:  # one node's bug must not stop the watch over the others
                session.log.exception("watchdog failed")
        if self.sessions:
            self.loop.call_later(self.interval / 2, self._sweep)
        else:
            self.armed = False


class Session:
    def __init__(
        self,
        config: NodeConfig,
        transport: Transport,
        loop: IoLoop,
        pool: Executor,
        state: NodeState,
        lock: Any,
        emit: Callable[[Event], None],
        interval: float = 1.0,
        lazy: bool = False,
    ) -> None:
        self.config = config
        self.transport = transport
        #: lazy: sample lines are stored as they came and decoded only when the state is read
        #: (`settle`): the session hub passes them on undecoded and reads its own copy of the
        #: state only when an app attaches or a request needs it
        self.lazy = lazy
        self._raw: list[bytes] = []
        self.loop = loop
        self.pool = pool
        self.state = state
        self.lock = lock  # the cluster's lock: guards `state`
        self.emit = emit
        self.interval = interval
        self.log = logging.getLogger(f"omview.session.{config.id}")
        self.connects = 0  # successful attaches, for tests and diagnostics
        self.agent_info: dict[str, Any] = {}
        self._stream: Stream | None = None
        self._buf = bytearray()
        self._pending: dict[int, Future[Any]] = {}
        self._next_id = 1
        self._outbox: deque[bytes] = deque()
        self._draining = False
        self._backoff = BACKOFF_FIRST
        self._closed = False
        self._generation = 0  # bumps per connection, so stale timers do nothing
        self._started = False
        self._watchdog = _Watchdog.of(loop, interval)
        self._hello_at = 0.0  # monotonic time of this connection's hello: silence is counted from there

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.loop.call_soon(self._schedule_connect_now)

    def close(self) -> None:
        self._closed = True
        self.loop.call_soon(lambda: self._drop("closed", reconnect=False))

    def _schedule_connect_now(self) -> None:
        if self._closed or self._stream is not None:
            return
        gen = self._generation
        self.pool.submit(self._connect, gen)

    def _connect(self, gen: int) -> None:
        try:
            stream = self.transport.open(CONNECT_TIMEOUT)
        except TransportError as exc:
            reason = str(exc)
            self.loop.call_soon(lambda: self._connect_failed(gen, reason))
            return
        except Exception as exc:  # paramiko raises more than it documents
            msg = f"unreachable: {type(exc).__name__}: {exc}"
            self.loop.call_soon(lambda: self._connect_failed(gen, msg))
            return
        self.loop.call_soon(lambda: self._attach(gen, stream))

    def _connect_failed(self, gen: int, reason: str) -> None:
        if gen != self._generation or self._closed:
            return
        self._set_down(reason)
        self._retry_later()

    def _retry_later(self) -> None:
        delay = self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_MAX)
        self.log.debug("reconnecting in %.0f s", delay)
        self.loop.call_later(delay, self._schedule_connect_now)

    def _attach(self, gen: int, stream: Stream) -> None:
        if gen != self._generation or self._closed:
            stream.close()
            return
        self._stream = stream
        self._buf.clear()
        self._started = False
        self.loop.add_reader(stream, self._on_readable)
        my_gen = self._generation
        self.loop.call_later(CONNECT_TIMEOUT, lambda: self._hello_timeout(my_gen))

    def _hello_timeout(self, gen: int) -> None:
        if gen == self._generation and self._stream is not None and not self._started:
            self._drop("agent error: no answer from the agent after connecting", reconnect=True)

    def _drop(self, reason: str, reconnect: bool) -> None:
        """Forget the current connection; fail what was waiting on it."""
        stream = self._stream
        self._stream = None
        self._generation += 1
        self._watchdog.unwatch(self)
        if stream is not None:
            self.loop.remove_reader(stream)
            self.pool.submit(stream.close)
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(AgentError(f"node {self.config.id}: {reason}", "down", self.config.id))
        with self.lock:
            self._outbox.clear()
            self._draining = False  # a drain still running belongs to the old generation
        self._set_down(reason)
        if reconnect and not self._closed:
            self._retry_later()

    # ------------------------------------------------------------ reading
    def _on_readable(self) -> None:
        stream = self._stream
        if stream is None:
            return
        while True:
            data = stream.recv()
            if data is None:
                break
            if data == b"":
                self._on_eof(stream)
                return
            self._buf += data
            if len(self._buf) > MAX_LINE:
                self._drop("agent error: a message over 64 MiB", reconnect=True)
                return
            if len(data) < RECV_CHUNK:
                break  # all that was ready: the stream signals again for more (or for the end)
        buf = self._buf
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line = buf[start:nl]
            start = nl + 1
            if not line.strip():
                continue
            if self.lazy and line.startswith(SAMPLE_PREFIX):
                if self._stream is not stream:
                    return
                self._on_raw_sample(bytes(line))
                continue
            try:
                msg = _decode(line.decode("utf-8", "replace"))
            except ValueError:
                self.log.warning("not JSON from agent: %r", bytes(line[:200]))
                continue
            if self._stream is not stream:
                return
            self._handle(msg)
        if start:
            del buf[:start]

    def _on_eof(self, stream: Stream) -> None:
        def finish() -> None:
            status = stream.exit_status()
            err = stream.stderr_text()
            if self._started:
                tail = err.strip().splitlines()[-1:] if err.strip() else []
                reason = "unreachable: connection lost" + (f" ({tail[0]})" if tail else "")
            else:
                reason = "agent error: " + explain_early_exit(status, err, self.config.python)
            if self._stream is stream:
                self._drop(reason, reconnect=True)

        # the exit status may arrive a moment after EOF
        self.loop.remove_reader(stream)
        self.loop.call_later(0.2, finish)

    def _handle(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "sample":
            self._on_sample(msg)
        elif kind == "reply":
            fut = self._pending.pop(int(msg.get("id", 0)), None)
            if fut is not None and not fut.done():
                if msg.get("ok"):
                    fut.set_result(msg.get("result"))
                else:
                    fut.set_exception(
                        AgentError(str(msg.get("error", "failed")), str(msg.get("code", "failed")), self.config.id)
                    )
        elif kind == "hello":
            self._on_hello(msg)
        elif kind == "fatal":
            reason = f"agent error: {msg.get('reason', 'agent failed')}"
            if msg.get("hint"):
                reason += f": {msg['hint']}"
            self._drop(reason, reconnect=True)
        elif kind == "event":
            self.emit(Event("agent", self.config.id, message=str(msg.get("event", "")), data=msg))

    def _on_hello(self, msg: dict[str, Any]) -> None:
        if int(msg.get("version", 0)) != PROTOCOL_VERSION:
            self._drop(
                f"agent error: agent speaks protocol {msg.get('version')}, we speak {PROTOCOL_VERSION}",
                reconnect=False,
            )
            return
        self.agent_info = msg
        self._started = True
        self._backoff = BACKOFF_FIRST
        self.connects += 1
        args: dict[str, Any] = {"interval": self.interval, "node_id": self.config.id}
        if self.config.state_dir:
            args["state_dir"] = self.config.state_dir
        if self.config.criu:
            args["criu"] = self.config.criu  # the node's own criu (docs/criu.md); else the agent looks
        self._send_request("start", args, Future())
        self._hello_at = time.monotonic()
        self._watchdog.watch(self)

    def _check_silence(self, now: float) -> None:
        """Down after two missed samples; reconnect after a long silence (run by the shared sweep)."""
        if self._stream is None:
            self._watchdog.unwatch(self)
            return
        silent = now - max(self.state.last_seen, self._hello_at)
        if self.state.up and silent > 2 * self.interval + 0.5:
            self._set_down(f"unreachable: no sample for {silent:.0f} s")
        if silent > max(ABANDON_AFTER, 5 * self.interval):
            self._drop(f"unreachable: no sample for {silent:.0f} s", reconnect=True)

    def _on_sample(self, msg: dict[str, Any]) -> None:
        procs = msg.get("procs") or {}
        ev = Event("sample", self.config.id, full=bool(procs.get("full")))
        with self.lock:
            if self._raw:
                self.settle()
            was_up = self._seen()
            self._apply(msg, ev)
        self._emit_sample(ev, was_up)

    def _on_raw_sample(self, line: bytes) -> None:
        """A lazy session's sample: stored, the node marked seen, the line passed on as it came."""
        with self.lock:
            was_up = self._seen()
            self._raw.append(line)
            if len(self._raw) >= LAZY_BATCH:  # bounded: decoded in one go, as a batch
                self.settle()
        self._emit_sample(Event("sample", self.config.id, raw=line), was_up)

    def _seen(self) -> bool:
        """Under the lock: a sample came now; whether the node was up before it."""
        st = self.state
        was_up = st.up
        st.last_seen = time.monotonic()
        st.up = True
        st.reason = ""
        return was_up

    def _emit_sample(self, ev: Event, was_up: bool) -> None:
        if not was_up:
            self.log.info("up")
            self.emit(Event("up", self.config.id))
        self.emit(ev)

    @property
    def awaiting_reply(self) -> bool:
        """A request of this connection waits for its reply (loop thread)."""
        return bool(self._pending)

    def settle(self) -> None:
        """Apply the sample lines a lazy session has stored, in order (readers call this first)."""
        with self.lock:
            if not self._raw:
                return
            lines, self._raw = self._raw, []
            try:
                msgs = _decode("[" + b",".join(lines).decode("utf-8", "replace") + "]")
            except ValueError:  # one bad line: keep the good ones
                msgs = []
                for line in lines:
                    try:
                        msgs.append(_decode(line.decode("utf-8", "replace")))
                    except ValueError:
                        self.log.warning("not JSON from agent: %r", line[:200])
            last = len(msgs) - 1
            for i, msg in enumerate(msgs):
                if isinstance(msg, dict):
                    self._apply(msg, None, node=i == last)

    def _apply(self, msg: dict[str, Any], ev: Event | None, node: bool = True) -> None:
        """Under the lock: one sample into the state (the node's figures only if `node`: of a
        batch only the last one's count). The table is changed in place: every reader copies it
        under this lock."""
        st = self.state
        if node:
            st.sample = NodeSample.from_dict(msg.get("node") or {})
            if ev is not None:
                ev.sample = st.sample
        procs = msg.get("procs") or {}
        if not procs:
            return
        if procs.get("full"):
            st.procs = {}
        table = st.procs
        for row in procs.get("new", ()):
            p = ProcInfo.from_dict(row)
            table[p.key] = p
            if ev is not None:
                ev.new.append(p.key)
        for row in procs.get("changed", ()):
            key = (int(row["pid"]), int(row["start"]))
            old = table.get(key)
            if old is None:
                continue
            upd = {k: v for k, v in row.items() if k not in ("pid", "start") and k in _PROC_FIELDS}
            table[key] = dataclasses.replace(old, **upd)
            if ev is not None:
                ev.changed.append(key)
        for pid, start in procs.get("gone", ()):
            if table.pop((int(pid), int(start)), None) is not None and ev is not None:
                ev.gone.append((int(pid), int(start)))

    def _set_down(self, reason: str) -> None:
        with self.lock:
            was_up = self.state.up
            changed = self.state.reason != reason
            self.state.up = False
            self.state.reason = reason
        if was_up or changed:
            self.log.info("down: %s", reason)
            self.emit(Event("down", self.config.id, message=reason))

    # ------------------------------------------------------------ requests
    def request(self, op: str, args: dict[str, Any] | None = None) -> Future[Any]:
        """Send a request; the future holds the result or an AgentError. Never blocks."""
        fut: Future[Any] = Future()
        self.loop.call_soon(lambda: self._send_request(op, args or {}, fut))
        return fut

    def _send_request(self, op: str, args: dict[str, Any], fut: Future[Any]) -> None:
        if self._stream is None or (not self._started and op != "start"):
            reason = self.state.reason or "not connected"
            fut.set_exception(AgentError(f"node {self.config.id} is down: {reason}", "down", self.config.id))
            return
        rid = self._next_id
        self._next_id += 1
        self._pending[rid] = fut
        line = json.dumps({"id": rid, "op": op, "args": args}, separators=(",", ":")).encode() + b"\n"
        with self.lock:
            self._outbox.append(line)
            start_drain = not self._draining
            self._draining = True
        if start_drain:
            self.pool.submit(self._drain, self._stream, self._generation)

    def _drain(self, stream: Stream, gen: int) -> None:
        """Runs in the pool: a slow node's socket never blocks the loop or the caller."""
        while True:
            chunk = self._take_outbox(gen)
            if chunk is None:
                return
            try:
                stream.send(chunk)
            except Exception as exc:
                # a dead agent also shows as EOF, whose reason (with its exit status and stderr) says
                # more than a broken pipe: give the reader a moment to get there first
                reason = f"unreachable: sending failed: {exc}"
                self.loop.call_later(0.5, functools.partial(self._send_failed, gen, reason))
                return

    def _send_failed(self, gen: int, reason: str) -> None:
        if gen == self._generation:
            self._drop(reason, reconnect=True)

    def _take_outbox(self, gen: int) -> bytes | None:
        with self.lock:
            if gen != self._generation:
                return None
            if not self._outbox:
                self._draining = False
                return None
            data = b"".join(self._outbox)
            self._outbox.clear()
            return data
