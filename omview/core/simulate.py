"""Simulated nodes that speak the agent protocol, for GUI scale tests and benchmarks.

A 200-node window cannot be tested against 200 real nodes on a 2-core
machine, so these nodes produce agent messages in-process. They travel the
same path as a real agent's bytes (pipe → IoLoop → Session → Cluster), so
what is measured is the suite, not a shortcut. Never used for a real cluster.
"""

from __future__ import annotations

import json
import math
import os
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from omview.core.config import ClusterConfig, NodeConfig
from omview.core.model import STANDARD_SPEED, AdminState
from omview.core.transport import Stream, Transport


@dataclass
class SimNode:
    id: int
    cpus: int
    speed: int
    mem_total: int
    phase: float
    admin: AdminState = field(default_factory=AdminState)
    procs: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_pid: int = 1000
    seq: int = 0
    up: bool = True


class _SimStream(Stream):
    def __init__(self, farm: SimFarm, node: SimNode) -> None:
        self.farm = farm
        self.node = node
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self._lock = threading.Lock()
        self.closed = False
        self.started = False
        self.full_sent = False
        self._write({"type": "hello", "version": 1, "hostname": f"sim{node.id}", "pid": 0, "backend": "sim"})

    def _write(self, msg: dict[str, Any]) -> None:
        data = json.dumps(msg, separators=(",", ":")).encode() + b"\n"
        with self._lock:
            if self.closed:
                return
            view = memoryview(data)
            while view:
                try:
                    n = os.write(self._w, view)
                except BlockingIOError:
                    time.sleep(0.001)
                    continue
                view = view[n:]

    def fileno(self) -> int:
        return self._r

    def recv(self) -> bytes | None:
        try:
            return os.read(self._r, 1 << 20)
        except BlockingIOError:
            return None
        except OSError:
            return b""

    def send(self, data: bytes) -> None:
        for line in data.splitlines():
            if line.strip():
                self._answer(json.loads(line))

    def _answer(self, req: dict[str, Any]) -> None:
        op, args, rid = req.get("op"), req.get("args") or {}, req.get("id")
        n = self.node
        if n.id in self.farm.hung:
            return
        result: Any = {}
        if op == "start":
            self.started = True
            result = {"hostname": f"sim{n.id}", "backend": "sim"}
        elif op in ("get_admin", "set_admin"):
            for k, v in args.items():
                setattr(n.admin, k, v)
            result = n.admin.to_dict()
        elif op in ("signal", "renice"):
            if int(args.get("pid", -1)) not in n.procs:
                self._write({"type": "reply", "id": rid, "ok": False, "code": "stale", "error": "no such process"})
                return
        self._write({"type": "reply", "id": rid, "ok": True, "result": result})

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            os.close(self._w)
        self.farm.detach(self)

    def stderr_text(self) -> str:
        return ""

    def exit_status(self) -> int | None:
        return 0 if self.closed else None


class SimFarm:
    """Ticks every simulated node once per interval from one thread."""

    def __init__(self, count: int, *, procs_per_node: int = 0, churn: float = 0.02, seed: int = 1) -> None:
        rnd = random.Random(seed)
        self.rnd = rnd
        self.churn = churn
        self.nodes = {
            i: SimNode(
                id=i,
                cpus=rnd.choice([1, 2, 4, 8, 16]),
                speed=rnd.choice([5000, 10000, 10000, 15000, 20000]),
                mem_total=rnd.choice([2, 4, 8, 16, 32]) << 30,
                phase=rnd.random() * 6.28,
            )
            for i in range(1, count + 1)
        }
        for n in self.nodes.values():
            for _ in range(procs_per_node):
                self._spawn(n)
        self._streams: dict[int, _SimStream] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.interval = 1.0
        self._thread: threading.Thread | None = None
        self.hung: set[int] = set()  # nodes frozen by `hang`

    def config(self, interval: float = 1.0) -> ClusterConfig:
        self.interval = interval
        nodes = [NodeConfig(id=i, address=f"sim{i}", name=f"sim{i}", transport="sim") for i in self.nodes]
        return ClusterConfig(nodes=nodes, interval=interval, source=f"{len(nodes)} simulated nodes")

    def transport(self, node: NodeConfig, **_: Any) -> Transport:
        return _SimTransport(node, self)

    def attach(self, node_id: int) -> Stream:
        node = self.nodes[node_id]
        if not node.up:
            from omview.core.transport import TransportError

            raise TransportError("unreachable", f"sim{node_id} is switched off")
        stream = _SimStream(self, node)
        with self._lock:
            self._streams[node_id] = stream
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="simfarm", daemon=True)
                self._thread.start()
        return stream

    def detach(self, stream: _SimStream) -> None:
        with self._lock:
            if self._streams.get(stream.node.id) is stream:
                del self._streams[stream.node.id]

    def stop(self) -> None:
        self._stop.set()

    def kill(self, node_id: int) -> None:
        """Switch a node off: its link breaks at once and reconnects fail until `revive`."""
        self.nodes[node_id].up = False
        with self._lock:
            stream = self._streams.get(node_id)
        if stream is not None:
            stream.close()

    def revive(self, node_id: int) -> None:
        """Switch a node back on; the session's next reconnect attempt succeeds."""
        self.nodes[node_id].up = True

    def hang(self, node_id: int, hung: bool = True) -> None:
        """Freeze a node like a SIGSTOPped sshd: the link stays open, no samples, no replies."""
        if hung:
            self.hung.add(node_id)
        else:
            self.hung.discard(node_id)

    def _spawn(self, n: SimNode) -> None:
        n.next_pid += 1
        pid = n.next_pid
        n.procs[pid] = {
            "pid": pid,
            "start": pid * 10,
            "ppid": 1,
            "user": self.rnd.choice(["root", "alice", "bob", "carol"]),
            "nice": 0,
            "state": "S",
            "cpu": 0.0,
            "rss": self.rnd.randint(1, 500) << 20,
            "started": time.time(),
            "cmd": f"/usr/bin/job-{pid} --input data{pid % 97}.dat",
        }

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                streams = list(self._streams.values())
            for s in streams:
                if s.started and s.node.id not in self.hung:
                    s._write(self.sample(s))

    def sample(self, stream: _SimStream) -> dict[str, Any]:
        n = stream.node
        n.seq += 1
        t = time.time()
        load = max(0.0, 50 + 45 * math.sin(t / 20 + n.phase))
        used = int(n.mem_total * (0.3 + 0.25 * (1 + math.sin(t / 30 + n.phase)) / 2))
        procs: dict[str, Any]
        if not stream.full_sent:
            stream.full_sent = True
            procs = {"full": True, "new": list(n.procs.values()), "changed": [], "gone": []}
        else:
            changed, gone, new = [], [], []
            k = int(len(n.procs) * self.churn)
            pids = list(n.procs)
            for pid in self.rnd.sample(pids, min(k, len(pids))):
                row = n.procs[pid]
                row["cpu"] = round(self.rnd.random() * 100, 1)
                changed.append({"pid": pid, "start": row["start"], "cpu": row["cpu"]})
            if pids and self.rnd.random() < 0.3:
                pid = self.rnd.choice(pids)
                row = n.procs.pop(pid)
                gone.append([pid, row["start"]])
                self._spawn(n)
                new.append(n.procs[n.next_pid])
            procs = {"full": False, "new": new, "changed": changed, "gone": gone}
        return {
            "type": "sample",
            "seq": n.seq,
            "node": {
                "time": t,
                "hostname": f"sim{n.id}",
                "cpus": n.cpus,
                "speed": n.admin.speed or n.speed or STANDARD_SPEED,
                "load": load,
                "runq": load * n.cpus / 100,
                "util": min(100.0, load),
                "mem_total": n.mem_total,
                "mem_used": used,
                "mem_available": n.mem_total - used,
                "uptime": 3600.0,
                "nprocs": len(n.procs),
                "backend": "sim",
                "admin": n.admin.to_dict(),
            },
            "procs": procs,
        }


class _SimTransport(Transport):
    def __init__(self, node: NodeConfig, farm: SimFarm) -> None:
        super().__init__(node)
        self.farm = farm

    def open(self, timeout: float) -> Stream:
        return self.farm.attach(self.node.id)
