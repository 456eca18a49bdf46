"""What watching a cluster costs: workstation CPU per node, agent CPU per node, channel vs exec.

Run as root: `python bench/poll.py [--nodes 10,50] [--seconds 20]`. Builds a testbed of each
size (name "ombench"), connects a Cluster at 1 Hz, and measures over the same wall time:
- workstation CPU (this process, all threads) per node, in % of one core, and split by thread:
  the I/O loop, paramiko's per-connection transport threads, and the rest (pool, main);
- agent CPU per node (the agents' processes on the nodes), in % of one core;
- a request on the open channel vs a fresh `exec` over the same SSH connection, as a ratio.
Figures are printed, never asserted: these machines are noisy, ratios in one run are what count.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paramiko  # noqa: E402
import psutil  # noqa: E402

from omview.core import testbed as tbmod  # noqa: E402
from omview.core.cluster import Cluster  # noqa: E402
from omview.core.config import load_cluster  # noqa: E402

SETTLE = 10.0
NAME = "ompoll"  # not "ombench": bench/balance.py may run at the same time


def cpu_self() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def thread_cpu() -> dict[str, float]:
    """CPU seconds of this process's live threads, grouped: "io" (the I/O loop), "ssh"
    (paramiko transport threads), "other". From /proc/self/task/TID/schedstat (nanoseconds on a
    CPU; the tick-sampled utime/stime miss threads that run for microseconds at a time)."""
    out = {"io": 0.0, "ssh": 0.0, "other": 0.0}
    for t in threading.enumerate():
        try:
            ns = int(Path(f"/proc/self/task/{t.native_id}/schedstat").read_bytes().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        group = "ssh" if isinstance(t, paramiko.Transport) else "io" if t.name == "omview-io" else "other"
        out[group] += ns / 1e9
    return out


def agent_processes(tb: tbmod.Testbed) -> list[psutil.Process]:
    out = []
    for node in tb.nodes:
        for pid in tbmod.node_pids(tb, node.id):
            try:
                p = psutil.Process(pid)
                if "omview-agent" in " ".join(p.cmdline()):
                    out.append(p)
            except psutil.Error:
                pass
    return out


def agents_cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def measure_size(n: int, seconds: float) -> dict[str, float]:
    tb = tbmod.up(n, name=NAME)
    try:
        cluster = Cluster(load_cluster(str(tb.cluster_file))).start()
        try:
            if not cluster.wait_until(lambda: all(s.up for s in cluster.nodes()), 120):
                raise SystemExit(f"not all {n} nodes came up: {[s.reason for s in cluster.nodes() if not s.up]}")
            time.sleep(SETTLE)  # past the connect burst and the testbed's set-up load
            agents = agent_processes(tb)
            c0, a0, t0, w0 = cpu_self(), agents_cpu(agents), thread_cpu(), time.monotonic()
            time.sleep(seconds)
            c1, a1, t1, w1 = cpu_self(), agents_cpu(agents), thread_cpu(), time.monotonic()
            wall = w1 - w0
            rtt = channel_vs_exec(cluster, tb)
        finally:
            cluster.stop()
    finally:
        tbmod.down(NAME)
    return {
        "nodes": n,
        "agents_found": len(agents),
        "ws_pct_per_node": 100 * (c1 - c0) / wall / n,
        "ws_pct_total": 100 * (c1 - c0) / wall,
        "agent_pct_per_node": 100 * (a1 - a0) / wall / max(1, len(agents)),
        **{f"{g}_pct_per_node": 100 * (t1[g] - t0[g]) / wall / n for g in t0},
        "load1": os.getloadavg()[0],
        **rtt,
    }


def channel_vs_exec(cluster: Cluster, tb: tbmod.Testbed, rounds: int = 30) -> dict[str, float]:
    chan = []
    for _ in range(rounds):
        t = time.perf_counter()
        cluster.call(1, "ping")
        chan.append(time.perf_counter() - t)
    node = tb.nodes[0]
    client = paramiko.SSHClient()
    client.load_host_keys(str(tb.known_hosts))
    client.connect(node.address, username="root", key_filename=str(tb.key_file), look_for_keys=False,
                   allow_agent=False)
    execs = []
    try:
        for _ in range(rounds):
            t = time.perf_counter()
            _, out, _ = client.exec_command("cat /proc/loadavg")
            out.read()
            execs.append(time.perf_counter() - t)
        fresh = []
        for _ in range(5):
            t = time.perf_counter()
            c2 = paramiko.SSHClient()
            c2.load_host_keys(str(tb.known_hosts))
            c2.connect(node.address, username="root", key_filename=str(tb.key_file), look_for_keys=False,
                       allow_agent=False)
            _, out, _ = c2.exec_command("cat /proc/loadavg")
            out.read()
            c2.close()
            fresh.append(time.perf_counter() - t)
    finally:
        client.close()
    ch, ex, fr = statistics.median(chan), statistics.median(execs), statistics.median(fresh)
    return {"channel_ms": 1000 * ch, "exec_ms": 1000 * ex, "connect_exec_ms": 1000 * fr,
            "exec_over_channel": ex / ch, "connect_exec_over_channel": fr / ch}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", default="10,50")
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/poll.py needs root (it builds a testbed)", file=sys.stderr)
        return 2
    print(f"{'nodes':>5} {'ws %/node':>10} {'io':>6} {'ssh':>6} {'other':>6} {'ws % all':>9} {'agent %/node':>13} "
          f"{'chan ms':>8} {'exec ms':>8} {'conn+exec ms':>13} {'exec/chan':>10} {'conn/chan':>10} {'load1':>6}")
    for n in (int(x) for x in args.nodes.split(",")):
        r = measure_size(n, args.seconds)
        print(f"{n:>5} {r['ws_pct_per_node']:>10.3f} {r['io_pct_per_node']:>6.3f} {r['ssh_pct_per_node']:>6.3f} "
              f"{r['other_pct_per_node']:>6.3f} {r['ws_pct_total']:>9.2f} {r['agent_pct_per_node']:>13.3f} "
              f"{r['channel_ms']:>8.2f} {r['exec_ms']:>8.1f} {r['connect_exec_ms']:>13.1f} "
              f"{r['exec_over_channel']:>9.0f}x {r['connect_exec_over_channel']:>9.0f}x {r['load1']:>6.2f}", flush=True)
    print("goals: workstation < 0.05 % of a core per node; agent < 0.5 % per node (1000 procs: bench/agent_cpu.py)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
