"""The collector's main loop: cluster events in, one history transaction per tick out.

Threads: the cluster's I/O thread only appends events to a queue (listeners must be quick); the
metrics server answers scrapes on its own thread; everything else — ticks, the control socket,
rotation, signals — runs on the main thread, so the history writer has one user and needs no lock.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omcollector import control
from omcollector.metrics import MetricsServer, render
from omview.core.cluster import Cluster
from omview.core.config import ClusterConfig
from omview.core.history import HistoryError, HistoryWriter, MigrationRecord, balancer_reason
from omview.core.session import Event

log = logging.getLogger("omcollector")


@dataclass
class Options:
    history: Path
    interval: float | None = None  # None: the cluster file's interval
    rotate_every: float = 12 * 3600.0
    snapshot_every: float = 10.0  # process cpu/rss points
    metrics: tuple[str, int] | None = None
    balance: bool = False  # run the load balancer (omview.core.balancer) in the service
    balance_interval: float = 5.0


def migration_from_event(ev: Event, now: float) -> MigrationRecord | None:
    """A migration event as the engine emits it (`Event(kind="migration", data={...})`), or None.

    Lenient about key names (from/src, to/dst, time/t) because the engine is younger than this
    table; a malformed event is logged and skipped, never fatal.
    """
    if ev.kind == "migration":
        d = ev.data
        if d.get("final") is False:
            return None  # a progress step; the engine's final event carries the record
    elif ev.kind == "agent" and ev.message == "migration":
        d = ev.data.get("data", ev.data) if isinstance(ev.data.get("data"), dict) else ev.data
    else:
        return None
    try:
        frozen = d.get("frozen", d.get("frozen_time"))
        return MigrationRecord(
            t=float(d.get("time", d.get("t", now))),
            pid=int(d.get("pid", 0)),
            start=int(d.get("start", 0)),
            cmd=str(d.get("cmd", "")),
            src=int(d.get("from", d.get("src", ev.node_id)) or 0),
            dst=int(d.get("to", d.get("dst", 0)) or 0),
            result=str(d.get("result", ev.message or "")),
            frozen=None if frozen is None else float(frozen),
            reason=str(d.get("reason", "")),
        )
    except (TypeError, ValueError) as exc:
        log.warning("ignoring a malformed migration event from node %s: %s (%r)", ev.node_id, exc, d)
        return None


def open_direct(config: ClusterConfig) -> Cluster:
    """A started cluster with the collector's own sessions (open_cluster's mode "direct").

    Not the session hub: the collector is a system service that runs from boot, with no desktop
    session whose hub it could share, and it must not stop when a hub stops.
    """
    from omview.core import cluster as cluster_mod

    opener = getattr(cluster_mod, "open_cluster", None)
    if opener is not None:
        started: Cluster = opener(config, mode="direct", client="omcollector")
        return started
    return Cluster(config).start()


class Collector:
    def __init__(self, options: Options, config: ClusterConfig,
                 cluster_factory: Callable[[ClusterConfig], Cluster] = open_direct) -> None:
        self.options = options
        self.interval = options.interval or config.interval
        self.config = dataclasses.replace(config, interval=self.interval)
        self.cluster_factory = cluster_factory
        self.writer: HistoryWriter | None = None
        self.cluster: Cluster | None = None
        self.metrics: MetricsServer | None = None
        self._events: collections.deque[tuple[float, Event]] = collections.deque(maxlen=1_000_000)
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._pending_signals: collections.deque[int] = collections.deque()
        self._known: set[int] = set()  # nodes seen up in this run: only they get "down" rows
        self._mig_counts: dict[str, int] = collections.Counter()
        #: migration ids already written (insertion-ordered, bounded): a move is heard once per source
        self._recorded_mids: dict[str, None] = {}
        self._next_snapshot = 0.0
        self._ctl: socket.socket | None = None
        self.balancer: Any = None  # omview.core.balancer.Balancer while it runs (--balance)
        #: (src, pid, start) -> the balancer's reason, until the engine's final event for that move
        self._balance_reasons: dict[tuple[int, int, int], str] = {}

    # ------------------------------------------------------------ life
    def open(self) -> None:
        """Everything that can fail at start, so a daemon's parent can report it."""
        self.writer = HistoryWriter(self.options.history, interval=self.interval)
        for n in self.config.nodes:
            self.writer.node(n.id, n.address, n.name)
        self._ctl = control.bind_control(self.writer.dir)
        if self.options.metrics:
            self.metrics = MetricsServer(self.options.metrics, self.metrics_text)
            self.metrics.start()
            log.info("metrics on http://%s:%d/metrics", *self.metrics.address)
        self.cluster = self.cluster_factory(self.config)  # started: the first sample or two may pass unseen
        self.cluster.subscribe(self._on_event)
        if self.options.balance:
            self.set_balancing(True)
        log.info("collecting %d nodes from %s every %.3g s into %s", len(self.config.nodes),
                 self.config.source or "the default cluster", self.interval, self.writer.path)

    def close(self) -> None:
        self.set_balancing(False)
        if self.cluster is not None:
            self.cluster.stop()
        if self.metrics is not None:
            self.metrics.stop()
        if self.writer is not None:
            self._drain(time.time())
            self.writer.close()
            if self.writer.failing:
                log.error("stopped with %d ticks not written: %s", self.writer.backlog, self.writer.failing)
        if self._ctl is not None:
            self._ctl.close()
            with contextlib.suppress(OSError):
                os.unlink(control.socket_path(self.options.history))
        self._wake_r.close()
        self._wake_w.close()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def install_signals(self) -> None:
        def on_signal(signum: int, _frame: Any) -> None:
            self._pending_signals.append(signum)
            with contextlib.suppress(OSError):
                self._wake_w.send(b"s")

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, on_signal)

    # ------------------------------------------------------------ events (I/O thread)
    def _on_event(self, ev: Event) -> None:
        if ev.kind in ("sample", "migration", "balance") or (ev.kind == "agent" and ev.message == "migration"):
            self._events.append((time.time(), ev))
        # up/down/error/other agent events: the tick reads node state; unknown kinds are ignored

    # ------------------------------------------------------------ main loop
    def run(self) -> None:
        assert self.writer is not None and self._ctl is not None
        next_tick = time.monotonic() + self.interval
        while not self._stop.is_set():
            wait = max(0.0, next_tick - time.monotonic())
            try:
                readable, _, _ = select.select([self._ctl, self._wake_r], [], [], wait)
            except InterruptedError:
                readable = []
            if self._wake_r in readable:
                with contextlib.suppress(BlockingIOError, OSError):
                    self._wake_r.recv(4096)
            self._handle_signals()
            if self._ctl in readable:
                self._serve_control()
            if time.monotonic() >= next_tick:
                self.tick(time.time())
                next_tick += self.interval
                if next_tick < time.monotonic():  # we fell behind (a slow disk): skip, don't burst
                    next_tick = time.monotonic() + self.interval

    def _handle_signals(self) -> None:
        while self._pending_signals:
            sig = self._pending_signals.popleft()
            if sig in (signal.SIGTERM, signal.SIGINT):
                log.info("stopping on %s", signal.Signals(sig).name)
                self._stop.set()
            elif sig == signal.SIGUSR1:
                self.checkpoint("")
            elif sig in (signal.SIGUSR2, signal.SIGHUP):
                with contextlib.suppress(HistoryError):
                    self.rotate()

    def tick(self, now: float) -> None:
        """Write what happened since the last tick, in one transaction."""
        w, cluster = self.writer, self.cluster
        assert w is not None and cluster is not None
        sampled = self._drain(now)
        snapshot = now >= self._next_snapshot
        if snapshot:
            self._next_snapshot = now + self.options.snapshot_every
        for st in cluster.nodes():
            if st.up and st.id in sampled:
                self._known.add(st.id)
                w.node(st.id, st.address, st.name, st.sample, now)
                w.processes(st.id, now, [p for _, p in cluster.processes(st.id)], points=snapshot)
            elif not st.up and st.id in self._known:
                w.sample(st.id, now, None)  # a gap, not zeros
        w.commit(now)
        if not w.failing and w.age(now) >= self.options.rotate_every:
            with contextlib.suppress(HistoryError):
                self.rotate(now)

    def _drain(self, now: float) -> set[int]:
        """Move queued events into the writer; the nodes that sent a sample."""
        w = self.writer
        assert w is not None
        sampled: set[int] = set()
        while self._events:
            t, ev = self._events.popleft()
            if ev.kind == "sample" and ev.sample is not None:
                w.sample(ev.node_id, t, ev.sample)
                sampled.add(ev.node_id)
                continue
            if ev.kind == "balance":
                self._note_balance(ev)
                continue
            rec = migration_from_event(ev, t)
            mid = str(ev.data.get("mid") or "")
            if rec is not None and mid and mid in self._recorded_mids:
                continue  # heard twice: from our own engine and from the source node's agent
            if rec is not None:
                if mid:
                    self._recorded_mids[mid] = None
                    while len(self._recorded_mids) > 10000:
                        del self._recorded_mids[next(iter(self._recorded_mids))]
                self._tag_balanced(rec)
                w.migration(rec)
                self._mig_counts[rec.result or "unknown"] += 1
        return sampled

    # ------------------------------------------------------------ the load balancer (--balance)
    def set_balancing(self, on: bool) -> bool:
        """Start or stop the balancer on the collector's cluster; returns whether it runs."""
        if on and self.balancer is None and self.cluster is not None:
            from omview.core.balancer import Balancer

            self.balancer = Balancer(self.cluster, interval=self.options.balance_interval).start()
            log.info("load balancer started (a round every %.3g s)", self.options.balance_interval)
        elif not on and self.balancer is not None:
            self.balancer.close()
            self.balancer = None
            log.info("load balancer stopped")
        return self.balancer is not None

    def _note_balance(self, ev: Event) -> None:
        d = ev.data
        try:
            key = (int(d["src"]), int(d["pid"]), int(d["start"]))
        except (KeyError, TypeError, ValueError):
            return
        if len(self._balance_reasons) > 1000:
            self._balance_reasons.clear()
        self._balance_reasons[key] = str(d.get("reason", ""))

    def _tag_balanced(self, rec: MigrationRecord) -> None:
        """The engine's record of a move the balancer asked for gets the balancer's reason."""
        reason = self._balance_reasons.pop((rec.src, rec.pid, rec.start), None)
        if reason is not None:
            rec.reason = balancer_reason(reason, rec.reason if rec.result != "done" else "")

    def balance_status(self) -> dict[str, Any]:
        b = self.balancer
        if b is None:
            return {"running": False}
        return {"running": b.running, "rounds": b.rounds, "interval": b.interval,
                "moves": sum(1 for o in b.outcomes if o.ok), "failed": sum(1 for o in b.outcomes if not o.ok)}

    # ------------------------------------------------------------ actions
    def checkpoint(self, label: str) -> float:
        assert self.writer is not None
        t = self.writer.checkpoint(label)
        self.writer.commit()
        log.info("checkpoint %r at %s", label, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)))
        return t

    def rotate(self, now: float | None = None) -> Path:
        assert self.writer is not None
        self._drain(time.time() if now is None else now)  # every sample so far goes into the old file
        try:
            target = self.writer.rotate(now)
        except HistoryError as exc:
            log.error("rotation failed: %s", exc)
            raise
        log.info("history saved to %s; a new one started", target)
        return target

    def status(self) -> dict[str, Any]:
        w, cluster = self.writer, self.cluster
        assert w is not None and cluster is not None
        nodes = cluster.nodes()
        return {
            "pid": os.getpid(),
            "history": str(w.dir),
            "database": str(w.path),
            "interval": self.interval,
            "nodes": len(nodes),
            "nodes_up": sum(1 for n in nodes if n.up),
            "samples_written": w.samples_written,
            "backlog": w.backlog,
            "dropped_samples": w.dropped_samples,
            "failing": w.failing,
            "created": w.created,
            "metrics": list(self.metrics.address) if self.metrics else None,
            "balancer": self.balance_status(),
        }

    def metrics_text(self) -> str:
        assert self.cluster is not None and self.writer is not None
        w = self.writer
        stats = {"samples_written": float(w.samples_written), "backlog": float(w.backlog),
                 "failing": 1.0 if w.failing else 0.0}
        return render(self.cluster.nodes(), dict(self._mig_counts), stats)

    def _serve_control(self) -> None:
        assert self._ctl is not None
        while True:
            try:
                conn, _ = self._ctl.accept()
            except (BlockingIOError, InterruptedError):
                return
            msg = control.read_request(conn)
            if msg is None:
                control.answer(conn, {"ok": False, "error": "expected one JSON line"})
                continue
            op = msg.get("op")
            try:
                if op == "status":
                    reply: dict[str, Any] = {"ok": True, **self.status()}
                elif op == "checkpoint":
                    t = self.checkpoint(str(msg.get("label") or ""))
                    failing = self.writer.failing if self.writer else ""
                    reply = {"ok": True, "t": t, "written": not failing, "failing": failing}
                elif op == "rotate":
                    reply = {"ok": True, "backup": str(self.rotate())}
                elif op == "balance":  # {"op": "balance", "on": true|false} or no "on": just ask
                    if "on" in msg:
                        self.set_balancing(bool(msg["on"]))
                    reply = {"ok": True, **self.balance_status()}
                elif op == "stop":
                    log.info("stopping on request")
                    self._stop.set()
                    reply = {"ok": True, "pid": os.getpid()}
                else:
                    reply = {"ok": False, "error": f"unknown request {op!r}"}
            except HistoryError as exc:
                reply = {"ok": False, "error": str(exc)}
            control.answer(conn, reply)
