"""What the session hub saves: three apps through one hub vs three apps with their own sessions.

Run as root: `python bench/hub.py [--nodes 50] [--seconds 20]`. Builds a testbed (name
"ombenchhub"), then measures, in the same run and over the same wall time each:
  A. one app with its own sessions (the baseline: "one app"),
  B. three apps, each with its own sessions (what the suite cost before the hub),
  C. three apps attached to one session hub (the hub process counted with them).
Each app is its own process that keeps a full copy of the cluster, receives every event and
reads every node and process table once a second, as a GUI app would. Measured: workstation
CPU (the apps, plus the hub in C) and node-agent CPU (every omview agent process on the nodes),
in % of one core, and as ratios to A. Goals (issue 11): node cost independent of the number of
apps (C/A ≈ 1); workstation cost ≤ 1.3 × one app (C/A). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402

from omview.core import hubpaths  # noqa: E402
from omview.core import testbed as tbmod  # noqa: E402
from omview.core.config import load_cluster  # noqa: E402

NAME = "ombenchhub"

APP = textwrap.dedent("""
    import json, sys, time, threading
    from omview.core.cluster import open_cluster
    from omview.core.config import load_cluster
    c = open_cluster(load_cluster(sys.argv[1]), mode=sys.argv[2], client="bench")
    events = [0]
    c.subscribe(lambda ev: events.__setitem__(0, events[0] + 1))
    ok = c.wait_until(lambda: all(n.up for n in c.nodes()), 120)
    print(json.dumps({"ready": ok, "hub": getattr(c, "hub_pid", 0),
                      "down": [n.reason for n in c.nodes() if not n.up][:3]}), flush=True)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    while not stop.wait(1.0):  # a GUI's once-a-second refresh: every node, every process
        nodes = c.nodes()
        procs = c.processes()
    print(json.dumps({"events": events[0]}), flush=True)
    c.stop()
""")


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def agent_pids(tb: tbmod.Testbed) -> list[int]:
    out = []
    for node in tb.nodes:
        for pid in tbmod.node_pids(tb, node.id):
            try:
                if "omview-agent" in " ".join(psutil.Process(pid).cmdline()):
                    out.append(pid)
            except psutil.Error:
                pass
    return out


def phase(tb: tbmod.Testbed, apps: int, mode: str, seconds: float, settle: float) -> dict[str, float]:
    procs = [subprocess.Popen([sys.executable, "-c", APP, str(tb.cluster_file), mode], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(apps)]
    try:
        hub = 0
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            if not line:
                raise SystemExit(f"an app ({mode}) ended before it was ready")
            first = json.loads(line)
            if not first["ready"]:
                raise SystemExit(f"not every node came up ({mode}): {first['down']}")
            hub = hub or int(first["hub"])
        time.sleep(settle)  # past the connect burst
        agents = agent_pids(tb)
        apps_pids = [p.pid for p in procs]
        hubs = [hub] if hub else []
        w0, h0, a0, t0 = cpu_of(apps_pids), cpu_of(hubs), cpu_of(agents), time.monotonic()
        time.sleep(seconds)
        w1, h1, a1, t1 = cpu_of(apps_pids), cpu_of(hubs), cpu_of(agents), time.monotonic()
        wall = t1 - t0
        return {
            "work": 100 * (w1 - w0 + h1 - h0) / wall,
            "apps": 100 * (w1 - w0) / wall,
            "hubcpu": 100 * (h1 - h0) / wall,
            "agents": 100 * (a1 - a0) / wall,
            "nagents": len(agents),
            "hub": float(hub),
        }
    finally:
        for p in procs:
            if p.stdin:
                p.stdin.close()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def stop_hub(pid: int) -> None:
    """End the hub of phase C (ours, by PID) and wait, so the next round's agents are counted alone."""
    if not pid:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and psutil.pid_exists(pid):
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.Error:
            break
        time.sleep(0.1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--settle", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3, help="A, B, C in turn this many times; medians reported")
    ap.add_argument("--keep", action="store_true", help="keep the testbed afterwards")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the testbed needs network namespaces")
    runtime = tempfile.mkdtemp(prefix="omhb")  # the bench's own hub, never a user's
    os.environ["XDG_RUNTIME_DIR"] = runtime
    os.environ["OMVIEW_HUB_IDLE"] = "3"
    print(f"testbed {NAME}: {args.nodes} nodes ...", flush=True)
    tb = tbmod.up(args.nodes, name=NAME)
    rounds: list[tuple[dict[str, float], dict[str, float], dict[str, float]]] = []
    try:
        config = load_cluster(str(tb.cluster_file))
        print(f"measuring {args.seconds:.0f} s per phase, {args.rounds} rounds, interval {config.interval:g} s",
              flush=True)
        for i in range(args.rounds):
            a = phase(tb, 1, "direct", args.seconds, args.settle)
            b = phase(tb, 3, "direct", args.seconds, args.settle)
            c = phase(tb, 3, "hub", args.seconds, args.settle)
            stop_hub(int(c["hub"]))
            rounds.append((a, b, c))
            print(f"round {i + 1}: workstation A {a['work']:.1f} %  B {b['work']:.1f} %  C {c['work']:.1f} % "
                  f"(hub {c['hubcpu']:.1f} %)  C/A {c['work'] / a['work']:.2f};  agents A {a['agents']:.1f} %  "
                  f"B {b['agents']:.1f} %  C {c['agents']:.1f} %  C/A {c['agents'] / a['agents']:.2f};  "
                  f"load {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    finally:
        left = hubpaths.hub_pid(hubpaths.HubPaths.for_config(load_cluster(str(tb.cluster_file))))
        if left:
            os.kill(left, signal.SIGKILL)
        if not args.keep:
            tbmod.down(NAME)
        shutil.rmtree(runtime, ignore_errors=True)
    n = args.nodes

    def med(which: int, key: str) -> float:
        return statistics.median(r[which][key] for r in rounds)

    a = {k: med(0, k) for k in rounds[0][0]}
    b = {k: med(1, k) for k in rounds[0][1]}
    c = {k: med(2, k) for k in rounds[0][2]}
    print()
    print(f"medians of {len(rounds)} rounds, % of one core")
    print(f"{'':34}{'workstation':>14}{'node agents':>14}{'agents':>8}")
    for label, r in (("A  1 app, own sessions", a), ("B  3 apps, own sessions", b), ("C  3 apps via the hub", c)):
        print(f"{label:34}{r['work']:>12.1f} %{r['agents']:>12.1f} %{int(r['nagents']):>8}")
    print()
    ca_work = statistics.median(r[2]["work"] / r[0]["work"] for r in rounds)
    ca_agents = statistics.median(r[2]["agents"] / r[0]["agents"] for r in rounds)
    print(f"per-round ratios, median: workstation C/A {ca_work:.2f}, node agents C/A {ca_agents:.2f}")
    print(f"C split: hub {c['hubcpu']:.1f} %, three apps {c['apps']:.1f} % together")
    print(f"per node: agents {a['agents'] / n:.2f} % (A), {b['agents'] / n:.2f} % (B), {c['agents'] / n:.2f} % (C)")
    print(f"node-agent CPU     C/A = {c['agents'] / a['agents']:.2f}   (goal ≈ 1: independent of the number of apps)"
          f"   B/A = {b['agents'] / a['agents']:.2f}")
    print(f"workstation CPU    C/A = {c['work'] / a['work']:.2f}   (goal ≤ 1.3 × one app)"
          f"   B/A = {b['work'] / a['work']:.2f}   C/B = {c['work'] / b['work']:.2f}")


if __name__ == "__main__":
    main()
