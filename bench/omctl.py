"""What one `omctl status` costs through a running session hub, against Python's own start-up.

Run as root: `python bench/omctl.py [--nodes 3] [--runs 30]`. Builds a testbed (name "omctlb"),
starts a hub for it in a private run folder, and times whole processes, start to exit, in
interleaved rounds so that each kind sees the same machine:
- `python -c pass` with this venv's interpreter: the floor every command pays;
- `omctl status` as installed, its lookup recorded (omview.quickctl: no configuration parsing);
- the long way through the hub (`python -m omview.cli status`: argparse, the cluster file);
- `OMVIEW_HUB=0 omctl status`: its own SSH sessions (fewer runs: a handshake per node).
Prints min / median ms and each median as a ratio to the floor's. Figures are printed, never
asserted: these machines are noisy, ratios in one run are what count.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omview.core import hubpaths  # noqa: E402
from omview.core import testbed as tbmod  # noqa: E402
from omview.core.config import load_cluster  # noqa: E402

NAME = "omctlb"


def timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True, timeout=120)
    elapsed = (time.perf_counter() - t0) * 1000
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--runs", type=int, default=30, help="rounds (default 30); the direct way runs every 6th")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the testbed needs network namespaces")
    python = sys.executable
    omctl = shutil.which("omctl", path=str(Path(python).parent))
    if omctl is None:
        raise SystemExit("no omctl next to this Python: run `make venv` and this script with .venv/bin/python")
    run_dir = tempfile.mkdtemp(prefix="omctlb-")
    os.chmod(run_dir, 0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": run_dir}
    env.pop("OMVIEW_HUB", None)
    tb = tbmod.up(args.nodes, name=NAME)
    hub_pid = None
    try:
        cluster = str(tb.cluster_file)
        os.environ["XDG_RUNTIME_DIR"] = run_dir  # for hubpaths below
        subprocess.run([omctl, "--cluster", cluster, "hub"], env=env, check=True, timeout=60,
                       stdout=subprocess.DEVNULL)
        hub_pid = hubpaths.hub_pid(hubpaths.HubPaths.for_config(load_cluster(cluster)))
        time.sleep(max(0.0, os.stat(cluster).st_ctime + 2.1 - time.time()))  # old enough to record
        timed([omctl, "--cluster", cluster, "status"], env)  # every node up, the lookup recorded
        kinds = {
            "python -c pass": ([python, "-c", "pass"], env, 1),
            "omctl status (hub, recorded lookup)": ([omctl, "--cluster", cluster, "status"], env, 1),
            "omctl status (hub, the long way)": ([python, "-m", "omview.cli", "--cluster", cluster, "status"], env, 1),
            "omctl status (own SSH sessions)": ([omctl, "--cluster", cluster, "status"], {**env, "OMVIEW_HUB": "0"}, 6),
        }
        times: dict[str, list[float]] = {k: [] for k in kinds}
        for i in range(args.runs):
            for name, (argv, kenv, every) in kinds.items():
                if i % every == 0:
                    times[name].append(timed(argv, kenv))
        floor = statistics.median(times["python -c pass"])
        print(f"{args.nodes} nodes, {args.runs} rounds, load {os.getloadavg()[0]:.2f}")
        for name, ts in times.items():
            med = statistics.median(ts)
            print(f"  {name:38s} min {min(ts):6.1f}  median {med:6.1f} ms  ({len(ts):2d} runs)  "
                  f"= {med / floor:4.2f} x python -c pass")
    finally:
        if hub_pid:
            os.kill(hub_pid, signal.SIGTERM)
        tbmod.down(NAME)
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
