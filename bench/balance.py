"""Load balancer benchmark: makespan of 8 equal CPU jobs started on node 1, against the ideal.

    sudo .venv/bin/python bench/balance.py [--work S] [--share CPUS] [--no-static] [--verbose]

Two testbeds of 4 nodes (root; CPU quotas stand in for speed): equal nodes, and nodes of speed
1:1:2:4. Each run starts 8 copies of the HOWTO's awk loop on node 1 as jobs (mode cpujob) and runs
the Balancer in this process (a round a second, bench policy: min_seen 1 s, hold 10 s) until every
copy has ended. Printed per case:

- ideal = total work / total capacity (capacity: the sum of the quotas; work: the least CPU the 8
  jobs were measured to use, in the balancer's run or the static run below — same awk, same nodes,
  no moves — or, with --no-static, the calibration: one job timed first on the host. A CPU second
  does less work while the host's other threads share the core: these differ by 10-20 %);
- makespan (first job's start to the last job's end; a job being moved runs nowhere, so the end
  is taken only outside a balancer round) and makespan / ideal — the goal is <= 1.25; also the
  same from the last job's start against the work left then (the starts are the harness's);
- unless --no-static: the makespan of the best static placement made by hand (no balancer, jobs
  started where the plan would put them) under the same machine load, and balancer / static.

The quotas add up to --share CPUs (default 1.6 of this machine's 2) so that the nodes can get them,
and the testbed's cgroups get the CPU weight of --weight host tasks (default 64): with the default
weight (that of one task) the whole testbed got about 2/(N+1) CPUs against N runnable tasks of other
work, a third of its quotas at a host load of 10, which no placement can make up for.

Because other work on the host steals CPU from the quotas, each case also prints what the jobs
really got: their CPU seconds (summed over every incarnation of each job; a restored process
starts its own count) against makespan x capacity ("delivered"), and per node the part of the CFS
periods in which the node hit its quota (cgroup cpu.stat nr_throttled / nr_periods). A node that
carries jobs but is rarely throttled did not get its quota from the host. --verbose prints every
round's plan (loads, moves and their reasons) and each move's outcome, with the time since start.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
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


def copies(marker: str) -> dict[int, float]:
    """The running copies of this run's jobs: pid -> CPU seconds so far (user + system)."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
            fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if marker.encode() in argv and not argv[0].endswith(b"unshare") and fields[0] not in ("Z", "X"):
            out[int(name)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def cpu_stat(tb: tbmod.Testbed) -> dict[int, dict[str, int]]:
    """Each node's cgroup cpu.stat (v1 or v2): nr_periods, nr_throttled, throttled time."""
    out: dict[int, dict[str, int]] = {}
    for n in tb.nodes:
        for d in n.cgroups:
            f = Path(d) / "cpu.stat"
            if f.exists():
                rows = dict(line.split() for line in f.read_text().splitlines() if len(line.split()) == 2)
                if "nr_periods" in rows:
                    out[n.id] = {k: int(v) for k, v in rows.items()}
    return out


def claim_quotas(tb: tbmod.Testbed, quotas: list[float], weight: float) -> str:
    """Give the testbed the CPU weight of `weight` runnable host tasks, split over the nodes by quota.

    The quotas only cap a node; what it gets below the cap is decided by CPU weight against every
    other cgroup and task of the host. A node's group and the testbed's parent group have the
    default weight, that of ONE host task: with 10 runnable tasks elsewhere the whole 4-node
    cluster gets about 2/11 of the machine, whatever its quotas say, and the ideal (total work /
    sum of quotas) is out of reach for any placement. With the weight raised the nodes get their
    quotas (they still cannot take more: the quotas add up to --share < this machine's CPUs)."""
    if weight <= 0:
        return "default CPU weight (the testbed competes as one host task)"
    done = []
    for n, q in zip(tb.nodes, quotas, strict=True):
        for d in map(Path, n.cgroups):
            share = q / sum(quotas)
            if (d / "cpu.shares").exists():  # v1: default 1024, at most 262144
                (d.parent / "cpu.shares").write_text(str(min(262144, round(1024 * weight))))
                (d / "cpu.shares").write_text(str(max(2, min(262144, round(1024 * weight * share)))))
                done.append(n.id)
            elif (d / "cpu.weight").exists():  # v2: default 100, at most 10000
                (d.parent / "cpu.weight").write_text(str(min(10000, round(100 * weight))))
                (d / "cpu.weight").write_text(str(max(1, min(10000, round(100 * weight * share)))))
                done.append(n.id)
    if not done:
        return "no CPU cgroups: weight unchanged"
    return f"testbed CPU weight = {weight:g} host tasks"


def throttled(before: dict[int, dict[str, int]], after: dict[int, dict[str, int]]) -> str:
    parts = []
    for i in sorted(after):
        d = {k: after[i].get(k, 0) - before.get(i, {}).get(k, 0) for k in after[i]}
        sec = d.get("throttled_usec", 0) / 1e6 + d.get("throttled_time", 0) / 1e9
        parts.append(f"node {i} {d.get('nr_throttled', 0)}/{d.get('nr_periods', 0)} periods throttled ({sec:.1f} s)")
    return "; ".join(parts)


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


@dataclass
class Result:
    makespan: float  # from the first job's start
    started: float = 0.0  # seconds it took to start every job (the harness, not the balancer)
    after: float = 0.0  # from the last job's start to the end
    done_at_start: float = 0.0  # CPU seconds the jobs had already got when the last one started
    moves: int = 0  # moves done
    most: int = 0  # most moves of one job
    took: float = 0.0  # mean seconds per move
    cpu: float = 0.0  # CPU seconds the jobs got, all incarnations
    throttle: str = ""


def run_case(c: Cluster, tb: tbmod.Testbed, outer: int, nodes: list[int], balance: bool, timeout: float,
             parallel: int = bal.Policy.parallel, per_target: int = bal.Policy.per_target,
             verbose: bool = False) -> Result:
    """Start the jobs on `nodes` (with the balancer if `balance`) and wait until every copy has ended."""
    marker = f"ombench{time.monotonic_ns()}"
    t0 = time.monotonic()

    def show(rnd: bal.Round) -> None:
        if rnd.plan.moves or rnd.outcomes:
            print(f"  [{time.monotonic() - t0:6.1f} s] round:\n    " + rnd.plan.text(all_procs=False).replace(
                "\n", "\n    "), flush=True)
            for o in rnd.outcomes:
                print(f"    {o.move.ref} -> node {o.move.target}: " + ("done" if o.ok else f"FAILED {o.error}")
                      + f" in {o.seconds:.1f} s (" + ", ".join(f"{k} {v:.1f}" for k, v in o.timings.items()) + ")",
                      flush=True)

    b = (bal.Balancer(c, bal.Policy(min_seen=1.0, hold=10.0, parallel=parallel, per_target=per_target), interval=1.0,
                      on_round=show if verbose else None) if balance else None)
    seen: dict[int, float] = {}  # pid -> last CPU seconds seen
    stat0 = cpu_stat(tb)
    try:
        for n in nodes:
            c.run_job(n, awk_argv(outer, marker), "cpujob")
        t_all = time.monotonic()
        at_start = copies(marker)
        seen.update(at_start)
        if b is not None:
            b.start()
        time.sleep(1.0)
        t_end = time.monotonic()
        while True:
            now = copies(marker)
            seen.update(now)
            if now:
                t_end = time.monotonic()
            # between a move's dump and its restore no copy runs anywhere: the jobs are over only
            # when none runs outside a balancer round (the round ends once its moves are settled)
            elif b is None or not b.in_round:
                if not copies(marker):
                    break
            if time.monotonic() - t0 > timeout:
                raise SystemExit(f"jobs still running after {timeout:.0f} s")
            time.sleep(0.2)
        r = Result(t_end - t0, started=t_all - t0, after=t_end - t_all, done_at_start=sum(at_start.values()))
    finally:
        if b is not None:
            b.close()
        for pid in copies(marker):
            os.kill(pid, signal.SIGKILL)
    r.throttle = throttled(stat0, cpu_stat(tb))
    r.cpu = sum(seen.values())
    if b is not None:
        moves = bal.moves_per_process(b.outcomes)
        took = [o.seconds for o in b.outcomes if o.ok]
        r.moves, r.most, r.took = sum(moves.values()), max(moves.values(), default=0), sum(took) / max(len(took), 1)
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=float, default=8.0, help="CPU seconds per job (default 8)")
    ap.add_argument("--share", type=float, default=1.6, help="CPUs of this machine the 4 nodes get together")
    ap.add_argument("--no-static", action="store_true", help="skip the static-placement reference runs")
    ap.add_argument("--parallel", type=int, default=bal.Policy.parallel, help="moves at once (Policy.parallel)")
    ap.add_argument("--per-target", type=int, default=bal.Policy.per_target,
                    help="moves at once into one node (Policy.per_target)")
    ap.add_argument("--only", choices=["equal", "speeds"], help="run one case only")
    ap.add_argument("--weight", type=float, default=64.0,
                    help="CPU weight of the testbed, in host tasks (default 64; 0 = the default, one task)")
    ap.add_argument("--verbose", action="store_true", help="print every round's plan and each move's outcome")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/balance.py needs root (the testbed)", file=sys.stderr)
        return 2
    cores = os.cpu_count() or 1
    if not 0 < args.share <= cores:
        print(f"--share {args.share:g}: the quotas must fit this machine's {cores} CPUs (0 < share <= {cores})",
              file=sys.stderr)
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
        limit = 20 * JOBS * work / sum(quotas)  # seconds before a run is given up
        tb = tbmod.up(4, name=NAME, cpu_quota=quotas, mem_mb=[512] * 4)
        try:
            weighed = claim_quotas(tb, quotas, args.weight)
            c = open_cluster(tb)
            try:
                load0 = os.getloadavg()[0]
                r = run_case(c, tb, outer, [1] * JOBS, True, limit, args.parallel, args.per_target, args.verbose)
                load1 = os.getloadavg()[0]
                static = None if args.no_static else run_case(c, tb, outer, static_placement(quotas), False, limit)
            finally:
                c.stop()
        finally:
            tbmod.down(NAME)
        cap = sum(quotas)
        # the work: the least CPU the same 8 jobs were measured to need — in the static run (same awk,
        # same nodes, no moves) or the balancer's run (or the calibration, with --no-static). A CPU
        # second of awk does less work while the host's other threads share the core's caches: the
        # same jobs measured 10-20 % apart from run to run at host loads of 10-70
        total = min(r.cpu, static.cpu if static is not None else JOBS * work)
        ideal = total / cap
        rest = (total - r.done_at_start) / cap  # the ideal from the moment every job runs
        rows.append((title, ideal, r.makespan))
        print(f"{title}: quotas {quotas} CPUs, {weighed}, host load {load0:.1f} -> {load1:.1f}\n"
              f"  work {total:.1f} CPU s, the least of: balancer run {r.cpu:.1f}, "
              + (f"static run {static.cpu:.1f}" if static is not None else f"calibrated {JOBS} x {work:.2f}")
              + f"; ideal {ideal:.1f} s\n"
              f"  balancer: makespan {r.makespan:.1f} s = {r.makespan / ideal:.2f}x ideal; from the last job's "
              f"start (the {JOBS} starts took {r.started:.1f} s) {r.after:.1f} s = {r.after / rest:.2f}x the rest "
              f"{rest:.1f} s; {r.moves} moves of {r.took:.1f} s on average, at most {r.most} per job\n"
              f"  jobs got {r.cpu:.1f} CPU s = {r.cpu / (r.makespan * cap):.0%} of makespan x capacity; "
              f"{r.throttle}", flush=True)
        if static is not None:
            print(f"  static best placement: {static.makespan:.1f} s = {static.makespan / ideal:.2f}x ideal, "
                  f"balancer / static = {r.makespan / static.makespan:.2f}; jobs got "
                  f"{static.cpu / (static.makespan * cap):.0%} of makespan x capacity; {static.throttle}", flush=True)
    goal = all(span / ideal <= 1.25 for _, ideal, span in rows)
    print("goal makespan <= 1.25x ideal: " + ("met" if goal else "not met") + " in every case" * goal)
    return 0


if __name__ == "__main__":
    sys.exit(main())
