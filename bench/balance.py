"""Load balancer benchmark: makespan of 8 equal CPU jobs started on node 1, against the ideal.

    sudo .venv/bin/python bench/balance.py [--work S] [--share CPUS] [--no-static]

Two testbeds of 4 nodes (root; CPU quotas stand in for speed): equal nodes, and nodes of speed
1:1:2:4. Each run starts 8 copies of the HOWTO's awk loop on node 1 as jobs (mode cpujob) and runs
the Balancer in this process (a round a second) until every copy has ended. Printed per case:

- ideal = total work / total capacity (work: the CPU seconds one job needs, measured here first
  with the same awk on an unconstrained CPU; capacity: the sum of the quotas);
- makespan (start to the last job's end) and makespan / ideal — the goal is <= 1.25;
- unless --no-static: the makespan of the best static placement made by hand (no balancer, jobs
  started where the plan would put them) under the same machine load, and balancer / static. On a
  shared machine the quotas are upper bounds: other work on the host takes CPU the nodes were
  promised, which inflates both makespans; the static run measures that.

The quotas add up to --share CPUs (default 1.6 of this machine's 2) so that the nodes can get them.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from omview.core import balancer as bal  # noqa: E402
from omview.core import criu as criu_mod  # noqa: E402
from omview.core import testbed as tbmod  # noqa: E402
from omview.core.cluster import Cluster  # noqa: E402
from omview.core.config import load_cluster  # noqa: E402

JOBS = 8
NAME = "ombench"


def awk_argv(outer: int, marker: str) -> list[str]:
    return ["awk", f"BEGIN {{for(i=0;i<{outer};i++)for(j=0;j<10000;j++);}}", marker]


def cpu_seconds(outer: int) -> float:
    """CPU seconds of one job (user + system of a child; contention does not count in it)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(awk_argv(outer, "ombench-calibrate"), check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def copies(marker: str) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in argv and not argv[0].endswith(b"unshare") and state not in ("Z", "X"):
            out.append(int(name))
    return out


def open_cluster(tb: tbmod.Testbed) -> Cluster:
    config = load_cluster(str(tb.cluster_file))
    path = criu_mod.find_criu()
    for n in config.nodes:
        n.criu = path
    c = Cluster(config).start()
    if not c.wait_until(lambda: all(n.up and n.sample is not None and n.sample.criu for n in c.nodes()), 90):
        raise SystemExit(f"testbed nodes not ready: {[(n.id, n.reason) for n in c.nodes()]}")
    return c


def static_placement(quotas: list[float]) -> list[int]:
    """Where the jobs go in the best static placement: jobs in proportion to capacity (greedy)."""
    counts = [0] * len(quotas)
    for _ in range(JOBS):
        i = min(range(len(quotas)), key=lambda k: ((counts[k] + 1) / quotas[k], k))
        counts[i] += 1
    return [i + 1 for i, n in enumerate(counts) for _ in range(n)]


def run_case(c: Cluster, outer: int, nodes: list[int], balance: bool, timeout: float,
             parallel: int = 3) -> tuple[float, int, int, float]:
    """Start the jobs on `nodes`; returns (makespan, moves done, most moves of one job, mean move seconds)."""
    marker = f"ombench{time.monotonic_ns()}"
    b = bal.Balancer(c, bal.Policy(min_seen=1.0, hold=10.0, parallel=parallel), interval=1.0) if balance else None
    t0 = time.monotonic()
    try:
        for n in nodes:
            c.run_job(n, awk_argv(outer, marker), "cpujob")
        if b is not None:
            b.start()
        time.sleep(1.0)
        while copies(marker):
            if time.monotonic() - t0 > timeout:
                raise SystemExit(f"jobs still running after {timeout:.0f} s")
            time.sleep(0.2)
        makespan = time.monotonic() - t0
    finally:
        if b is not None:
            b.close()
        for pid in copies(marker):
            os.kill(pid, signal.SIGKILL)
    moves = bal.moves_per_process(b.outcomes) if b is not None else {}
    took = [o.seconds for o in b.outcomes if o.ok] if b is not None else []
    return makespan, sum(moves.values()), max(moves.values(), default=0), sum(took) / max(len(took), 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=float, default=8.0, help="CPU seconds per job (default 8)")
    ap.add_argument("--share", type=float, default=1.6, help="CPUs of this machine the 4 nodes get together")
    ap.add_argument("--no-static", action="store_true", help="skip the static-placement reference runs")
    ap.add_argument("--parallel", type=int, default=3, help="moves at once, one per target (Policy.parallel, 3)")
    ap.add_argument("--only", choices=["equal", "speeds"], help="run one case only")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/balance.py needs root (the testbed)", file=sys.stderr)
        return 2
    probe = 2000
    per = cpu_seconds(probe) / probe
    outer = max(100, round(args.work / per))
    work = cpu_seconds(outer)
    print(f"one job: awk outer loop {outer} = {work:.2f} CPU s (calibrated on this machine); {JOBS} jobs on node 1")
    cases = [("4 equal nodes", [1, 1, 1, 1]), ("speeds 1:1:2:4", [1, 1, 2, 4])]
    rows = []
    if args.only:
        cases = [cases[0] if args.only == "equal" else cases[1]]
    for title, weights in cases:
        quotas = [round(args.share * w / sum(weights), 3) for w in weights]
        ideal = JOBS * work / sum(quotas)
        tb = tbmod.up(4, name=NAME, cpu_quota=quotas, mem_mb=[512] * 4)
        try:
            c = open_cluster(tb)
            try:
                span, moves, most, took = run_case(c, outer, [1] * JOBS, True, 20 * ideal, args.parallel)
                static = None if args.no_static else run_case(c, outer, static_placement(quotas), False, 20 * ideal)[0]
            finally:
                c.stop()
        finally:
            tbmod.down(NAME)
        rows.append((title, quotas, ideal, span, moves, most, static))
        load = os.getloadavg()[0]
        print(f"{title}: quotas {quotas} CPUs, ideal {ideal:.1f} s, makespan {span:.1f} s = {span / ideal:.2f}x ideal"
              f" ({moves} moves of {took:.1f} s on average, at most {most} per job; host load {load:.1f})"
              + ("" if static is None else f"; static best placement {static:.1f} s = {static / ideal:.2f}x ideal,"
                                           f" balancer / static = {span / static:.2f}"), flush=True)
    goal = all(r[3] / r[2] <= 1.25 for r in rows)
    print("goal makespan <= 1.25x ideal: " + ("met" if goal else "not met") + " in every case" * goal)
    return 0


if __name__ == "__main__":
    sys.exit(main())
