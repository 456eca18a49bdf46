"""What the history costs: collector CPU per sample, database size per day, read-back time for plotting.

`python bench/collector.py [--nodes 100] [--hours 12] [--procs 50] [--dir DIR]`

Time is simulated: the same HistoryWriter calls the collector makes every tick (a sample per node,
the node's full process list, one commit), with the clock advanced by hand, so 12 h of a 100-node
cluster take minutes, not 12 h. The workload, stated because the size depends on it:
- load: a slow wave plus noise, 0.01 resolution; memory: a random walk in 4 KiB pages;
- per node `--procs` processes: 10 % busy (cpu wandering around 90 %, rss growing), the rest idle;
  one process per node replaced every minute (short jobs), commands from a pool of 40;
- process cpu/rss points every 10 s (the collector's default), appear/vanish every tick.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import math
import random
import resource
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omview.core.history import DB_NAME, HistoryReader, HistoryWriter  # noqa: E402
from omview.core.model import NodeSample, ProcInfo  # noqa: E402

COMMANDS = [f"/usr/bin/{name} {arg}" for name in ("python3", "bash", "sshd:", "make", "gcc", "blast", "gromacs",
                                                   "R", "java", "sleep")
            for arg in ("-c job.py", "--input data.dat", "run.sh", "-j2")]


class Node:
    def __init__(self, node_id: int, procs: int, rnd: random.Random) -> None:
        self.id = node_id
        self.rnd = rnd
        self.phase = rnd.random() * 6.28
        self.cpus = rnd.choice([1, 2, 4, 8, 16])
        self.mem_total = rnd.choice([2, 4, 8, 16, 32]) << 30
        self.used = self.mem_total // 3
        self.next_pid = 1000
        self.procs: dict[tuple[int, int], ProcInfo] = {}
        self.busy: set[tuple[int, int]] = set()
        for i in range(procs):
            self.spawn(busy=i < max(1, procs // 10))  # 10 % busy

    def spawn(self, busy: bool) -> None:
        self.next_pid += 1
        p = ProcInfo(pid=self.next_pid, start=self.next_pid * 7, ppid=1, user=self.rnd.choice(["root", "alice", "bob"]),
                     cmd=self.rnd.choice(COMMANDS), cpu=90.0 if busy else 0.0, rss=self.rnd.randint(2, 400) << 20)
        self.procs[p.key] = p
        if busy:
            self.busy.add(p.key)

    def tick(self, t: float, second: int) -> NodeSample:
        for key in self.busy:
            p = self.procs[key]
            self.procs[key] = ProcInfo(pid=p.pid, start=p.start, ppid=p.ppid, user=p.user, cmd=p.cmd,
                                       cpu=min(100.0, max(0.0, p.cpu + self.rnd.gauss(0, 1.5))),
                                       rss=p.rss + (4096 if self.rnd.random() < 0.2 else 0))
        if self.procs and second % 60 == self.id % 60:  # one short job replaced per minute
            key = self.rnd.choice(list(self.procs))
            busy = key in self.busy
            self.busy.discard(key)
            del self.procs[key]
            self.spawn(busy)
        self.used = min(self.mem_total, max(0, self.used + self.rnd.randint(-64, 64) * 4096))
        load = max(0.0, 50 + 40 * math.sin(t / 600 + self.phase) + self.rnd.gauss(0, 3))
        return NodeSample(time=t, hostname=f"n{self.id}", cpus=self.cpus, speed=10000, load=round(load, 2),
                          mem_total=self.mem_total, mem_used=self.used, mem_available=self.mem_total - self.used,
                          nprocs=len(self.procs))


def table_sizes(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"))
    except sqlite3.Error:
        return {}
    finally:
        conn.close()


def cpu_now() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def live(nodes: int, procs: int, seconds: float, directory: Path) -> None:
    """The whole collector in real time over simulated nodes, minus the same cluster without it.

    SimFarm nodes speak the agent protocol in this process (pipe → IoLoop → Session → Cluster), so
    the baseline run (cluster only) is subtracted to leave what the collector adds.
    """
    from omcollector.collector import Collector, Options
    from omview.core.cluster import Cluster
    from omview.core.simulate import SimFarm

    def run(with_collector: bool) -> tuple[float, int]:
        farm = SimFarm(nodes, procs_per_node=procs)
        config = farm.config(1.0)
        cluster_box: list[Cluster] = []

        def factory(cfg: object) -> Cluster:
            c = Cluster(config, transport_factory=farm.transport).start()
            cluster_box.append(c)
            return c

        written = 0
        if with_collector:
            col = Collector(Options(history=directory / "live", interval=1.0), config, cluster_factory=factory)
            col.open()
            cluster_box[0].wait_until(lambda: all(n.up for n in cluster_box[0].nodes()), 60)
            threading.Timer(seconds, col.stop).start()
            c0 = cpu_now()
            col.run()
            used = cpu_now() - c0
            written = col.writer.samples_written if col.writer else 0
            col.close()
        else:
            c = factory(config)
            c.wait_until(lambda: all(n.up for n in c.nodes()), 60)
            c0 = cpu_now()
            time.sleep(seconds)
            used = cpu_now() - c0
            c.stop()
        farm.stop()
        return used, written

    base, _ = run(False)
    full, written = run(True)
    extra = max(0.0, full - base)
    print(f"live, {nodes} simulated nodes × {procs} processes at 1 Hz for {seconds:.0f} s (real time):")
    print(f"  cluster alone          {base / seconds * 100:.1f} % of one core")
    print(f"  cluster + collector    {full / seconds * 100:.1f} % of one core, {written:,} samples written")
    print(f"  the collector adds     {extra / seconds * 100:.1f} % of one core = "
          f"{extra / max(1, written) * 1e6:.0f} µs per sample")


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """fn's result, wall seconds and CPU seconds: the CPU figure is what counts on a busy machine."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def measure_reads(db: Path, busy: set[tuple[int, int]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with HistoryReader(db) as r:
        span = r.span()
        assert span is not None
        runs = [timed(lambda: r.samples_many(None, span[0], span[1], max_points=2000, summaries=True))
                for _ in range(3)]
        out["plot"] = runs
        out["exact"] = [timed(lambda: r.samples_many(None, span[0], span[1], max_points=2000)) for _ in range(2)]
        many = runs[0][0]
        out["nodes"] = len(many)
        _, *out["raw"] = timed(lambda: r.samples_many(None, span[0], span[1]))
        out["raw_rows"] = r._conn.execute("SELECT coalesce(sum(n), 0) FROM sample_chunks").fetchone()[0]
        _, *out["one"] = timed(lambda: r.samples(1, span[1] - 3600, span[1], max_points=1000))
        mid = (span[0] + span[1]) / 2
        at, *out["at"] = timed(lambda: r.processes_at(mid))
        out["at_n"] = len(at)
        key = next(iter(busy)) if busy else None
        life, *out["life"] = timed(lambda: r.process_life(1, *key) if key else None)
        out["life_n"] = len(life.t) if life else 0
        out["lives"] = r._conn.execute("SELECT count(*) FROM procs").fetchone()[0]
        out["points"] = r._conn.execute("SELECT coalesce(sum(n), 0) FROM proc_chunks").fetchone()[0]
        out["hours"] = (span[1] - span[0]) / 3600
    return out


def print_reads(m: dict[str, Any]) -> None:
    plot = m["plot"]
    best_wall = min(x[1] for x in plot)
    best_cpu = min(x[2] for x in plot)
    print(f"process lives            {m['lives']:,}; cpu/rss points {m['points']:,}")
    print(f"read {m['hours']:.0f} h × {m['nodes']} nodes   {best_wall * 1000:.0f} ms wall, "
          f"{best_cpu * 1000:.0f} ms CPU "
          f"(2000 min/max buckets per node from 10 s summaries; best of 3, first {plot[0][1] * 1000:.0f} ms wall)"
          "  (goal < 1 s)")
    ex = m["exact"]
    print(f"  same, exact buckets    {min(x[1] for x in ex) * 1000:.0f} ms wall, "
          f"{min(x[2] for x in ex) * 1000:.0f} ms CPU (from every sample)")
    print(f"read raw, every sample   {m['raw'][0] * 1000:.0f} ms wall, {m['raw'][1] * 1000:.0f} ms CPU "
          f"({m['raw_rows']:,} samples)")
    print(f"one node, last hour      {m['one'][0] * 1000:.1f} ms wall")
    print(f"processes_at(middle)     {m['at'][0] * 1000:.0f} ms wall, {m['at'][1] * 1000:.0f} ms CPU "
          f"({m['at_n']:,} processes)")
    print(f"process_life(busy one)   {m['life'][0] * 1000:.1f} ms wall ({m['life_n']} points)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--hours", type=float, default=12.0)
    ap.add_argument("--procs", type=int, default=50, help="processes per node")
    ap.add_argument("--snapshot-every", type=int, default=10, help="seconds between process cpu/rss points")
    ap.add_argument("--dir", help="history directory (default: a temporary one, removed afterwards)")
    ap.add_argument("--live", type=float, default=30.0, metavar="S",
                    help="also run the real collector over simulated nodes for S seconds (0: skip)")
    ap.add_argument("--read", metavar="DB", help="only measure reading an existing history database")
    args = ap.parse_args()
    if args.read:
        print_reads(measure_reads(Path(args.read)))
        return 0

    tmp = None
    if args.dir:
        hist = Path(args.dir)
    else:
        tmp = tempfile.mkdtemp(prefix="omview-bench-")
        hist = Path(tmp) / "hist"
    rnd = random.Random(1)
    nodes = [Node(i, args.procs, rnd) for i in range(1, args.nodes + 1)]
    t0 = math.floor(time.time() / 600) * 600 - args.hours * 3600  # as if the last 12 h were just recorded
    seconds = int(args.hours * 3600)
    w = HistoryWriter(hist, now=t0)
    for n in nodes:
        w.node(n.id, f"10.0.{n.id // 256}.{n.id % 256}", f"n{n.id}", None, t0)
    writer_cpu = 0.0
    wall = time.perf_counter()
    report_every = max(1, seconds // 12)
    print(f"ingesting {args.nodes} nodes × {seconds} s ({args.hours:g} h simulated), {args.procs} processes "
          f"per node, points every {args.snapshot_every} s ...", flush=True)
    for s in range(seconds):
        t = t0 + s
        samples = [(n, n.tick(t, s)) for n in nodes]
        c0 = time.process_time()
        points = s % args.snapshot_every == 0
        for n, smp in samples:
            w.sample(n.id, t, smp)
            w.processes(n.id, t, n.procs.values(), points=points)
        w.commit(t)
        writer_cpu += time.process_time() - c0
        if s and s % report_every == 0:
            print(f"  {s / 3600:5.1f} h  writer CPU so far {writer_cpu:7.1f} s", flush=True)
    live_size = (hist / DB_NAME).stat().st_size + sum(
        p.stat().st_size for p in hist.glob(DB_NAME + "-*"))
    c0 = time.process_time()
    backup = w.rotate(t0 + seconds)  # what the collector does after 12 h: pack, VACUUM, move aside
    rotate_cpu = time.process_time() - c0
    w.close()
    wall = time.perf_counter() - wall
    n_samples = seconds * args.nodes
    db = backup / DB_NAME
    size = db.stat().st_size
    per_day = size * 86400 / seconds

    reads = measure_reads(db, nodes[0].busy)
    sizes = table_sizes(db)

    print()
    print(f"samples written          {n_samples:,} ({args.nodes} nodes × {seconds:,} s) in {wall:.0f} s wall")
    print(f"writer CPU               {writer_cpu:.1f} s = {writer_cpu / n_samples * 1e6:.1f} µs per sample "
          f"(sample + process list diff + commit), {writer_cpu / seconds * 100:.2f} % of one core at 1 Hz")
    print(f"rotation                 {rotate_cpu:.1f} s CPU (pack the tail, VACUUM, move)")
    print(f"live file before it      {live_size / 1e6:.1f} MB (with the WAL and the row tail's free pages)")
    print(f"database size            {size / 1e6:.1f} MB for {args.hours:g} h (the backup) → {per_day / 1e6:.1f} MB "
          f"per day (goal < 100 MB/day for 100 nodes)")
    print(f"  per sample, all in     {size / n_samples:.2f} bytes")
    for name, b in list(sizes.items())[:8]:
        print(f"  {name:22s} {b / 1e6:8.1f} MB")
    print_reads(reads)
    if args.live > 0:
        print()
        live(args.nodes, args.procs, args.live, hist.parent)
    if tmp:
        shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
