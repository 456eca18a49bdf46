"""Synthetic histories written through the real HistoryWriter: for tests, screenshots and the bench.

Deterministic: the same arguments give the same database, and `load_of(node, t)` / the returned
`Synth` tell a test what it must find there without reading the database back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from omview.core.history import HistoryWriter, MigrationRecord
from omview.core.model import NodeSample, ProcInfo

GIB = 1 << 30


@dataclass
class Synth:
    path: Path
    nodes: int
    t0: float
    t1: float
    interval: float
    t: np.ndarray
    load: dict[int, np.ndarray]  # per node, NaN while down
    mem_used: dict[int, np.ndarray]
    mem_total: dict[int, int]
    down: dict[int, list[tuple[float, float]]] = field(default_factory=dict)
    checkpoints: list[tuple[float, str]] = field(default_factory=list)
    migrations: list[MigrationRecord] = field(default_factory=list)
    procs: dict[int, list[tuple[int, str, float, float | None, float]]] = field(default_factory=dict)
    # per node: (pid, cmd, appeared, vanished, cpu)


def load_curve(node: int, t: np.ndarray, t0: float) -> np.ndarray:
    """A day-like load: a slow wave per node, a few bursts above 75 %, some noise, never negative."""
    rel = t - t0
    phase = node * 0.7
    base = 35 + 25 * np.sin(2 * math.pi * rel / (3 * 3600) + phase)
    rng = np.random.default_rng(node)
    noise = rng.normal(0, 4, len(t))
    burst = np.zeros(len(t))
    period = 2400 + 300 * (node % 5)
    start = (rel + 400 * node) % period
    burst[start < 300] = 45.0 + 10 * (node % 3)
    return np.clip(np.round(base + noise + burst, 2), 0, 400)


def write_synthetic(path: Path, nodes: int = 6, hours: float = 2.0, interval: float = 1.0,
                    t_end: float | None = None, procs_per_node: int = 8, proc_every: float = 60.0,
                    down: bool = True, checkpoints: int = 2, migrations: int = 3,
                    churn: float = 0.1, batch: int = 600) -> Synth:
    """Write a history of `nodes` × `hours` at `interval` into folder `path`; returns what was written."""
    t_end = math.floor(t_end if t_end is not None else 1_790_000_000.0)
    t0 = t_end - hours * 3600.0
    t = t0 + interval * np.arange(int(hours * 3600 / interval))
    w = HistoryWriter(path, interval=interval, now=t0)
    syn = Synth(Path(path), nodes, float(t[0]), float(t[-1]), interval, t, {}, {}, {})
    cpus = {n: 1 + n % 4 for n in range(1, nodes + 1)}
    for n in range(1, nodes + 1):
        syn.mem_total[n] = (4 + 4 * (n % 3)) * GIB
        w.node(n, f"10.0.0.{n}", f"node{n}", NodeSample(hostname=f"node{n}", cpus=cpus[n], mem_total=syn.mem_total[n]),
               t=t0)
        load = load_curve(n, t, t0)
        used = (0.25 + 0.5 * (load / 150.0).clip(0, 1)) * syn.mem_total[n]
        used = np.floor(used / 1024) * 1024
        syn.down[n] = []
        if down and n % 3 == 0:  # every third node is down for 5 minutes in the middle
            a = t0 + hours * 3600 * 0.5
            syn.down[n].append((a, a + 300))
        mask = np.zeros(len(t), dtype=bool)
        for a, b in syn.down[n]:
            mask |= (t >= a) & (t < b)
        load = np.where(mask, np.nan, load)
        used = np.where(mask, np.nan, used)
        syn.load[n], syn.mem_used[n] = load, used
    # processes: a fixed set per node plus churn, listed every `proc_every` seconds
    rng = np.random.default_rng(7)
    live: dict[int, dict[int, tuple[str, float, float]]] = {n: {} for n in range(1, nodes + 1)}
    next_pid = {n: 1000 for n in range(1, nodes + 1)}
    for n in range(1, nodes + 1):
        syn.procs[n] = []
    proc_ticks = set(np.flatnonzero(((t - t0) % proc_every) < interval / 2).tolist()) if procs_per_node else set()
    for i in range(len(t)):
        ti = float(t[i])
        for n in range(1, nodes + 1):
            if np.isnan(syn.load[n][i]):
                w.sample(n, ti, None)
                continue
            w.sample(n, ti, NodeSample(time=ti, hostname=f"node{n}", cpus=cpus[n], load=float(syn.load[n][i]),
                                       mem_total=syn.mem_total[n], mem_used=int(syn.mem_used[n][i]),
                                       mem_available=int(syn.mem_total[n] - syn.mem_used[n][i])))
            if i in proc_ticks:
                procs = live[n]
                gone = [pid for pid in procs if rng.random() < churn] if procs else []
                for pid in gone:
                    cmd, app, cpu = procs.pop(pid)
                    syn.procs[n].append((pid, cmd, app, ti, cpu))
                while len(procs) < procs_per_node:
                    pid = next_pid[n]
                    next_pid[n] += 1
                    cpu = float(round(rng.uniform(0, 100), 1))
                    procs[pid] = (f"job{pid % 97} --node {n} --part {pid}", ti, cpu)
                w.processes(n, ti, [ProcInfo(pid=pid, start=pid * 10, ppid=1, user="alice" if pid % 2 else "bob",
                                             cpu=c, rss=(64 << 20) + pid * 4096, started=a, cmd=cmd)
                                    for pid, (cmd, a, c) in procs.items()])
        if i % batch == batch - 1:
            w.commit(ti)
    for n in range(1, nodes + 1):
        for pid, (cmd, a, cpu) in live[n].items():
            syn.procs[n].append((pid, cmd, a, None, cpu))
    for k in range(checkpoints):
        ct = float(t0 + (k + 1) * hours * 3600 / (checkpoints + 1)) + 0.5
        label = f"job {k + 1} {'started' if k % 2 == 0 else 'finished'}"
        w.checkpoint(label, ct)
        syn.checkpoints.append((ct, label))
    for k in range(migrations):
        src = 1 + k % nodes
        dst = 1 + (k + 1) % nodes
        pid = 1000 + k
        m = MigrationRecord(t=float(t0 + (k + 1) * hours * 3600 / (migrations + 2)), pid=pid, start=pid * 10,
                            cmd=f"job{pid % 97}", src=src, dst=dst, result="ok" if k != 1 else "failed",
                            frozen=0.35, reason="" if k != 1 else "criu: target refused")
        w.migration(m)
        syn.migrations.append(m)
    w.commit(float(t[-1]))
    w.close()
    return syn
