"""CPU cost of the node agent with many processes on the node, against a psutil baseline.

Starts N `sleep 600` processes (default 1000), runs the agent at 1 Hz for ~20 s and reports the
agent's CPU in percent of one core; then runs a psutil.process_iter sampler that collects the same
fields at the same rate over the same processes, and prints both and their ratio. Only the sleep
processes this script started are killed, by PID, also when something fails.

    .venv/bin/python bench/agent_cpu.py [-n 1000] [-s 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from omview.core.agent import BOOTSTRAP, agent_source  # noqa: E402

#: The baseline: what a straightforward psutil agent would do each second for the same table.
BASELINE = r"""
import sys, time, psutil
seconds = float(sys.argv[1])
attrs = ["pid", "ppid", "nice", "status", "cpu_times", "memory_info", "create_time"]
known = {}
end = time.monotonic() + seconds
while time.monotonic() < end:
    tick = time.monotonic()
    seen = {}
    for p in psutil.process_iter(attrs):
        key = (p.info["pid"], p.info["create_time"])
        if key not in known:
            try:
                known[key] = (p.username(), " ".join(p.cmdline()))
            except psutil.Error:
                continue
        seen[key] = p.info
    known = {k: v for k, v in known.items() if k in seen}
    psutil.virtual_memory()
    time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
"""


def cpu_seconds(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def run_agent(seconds: float) -> tuple[float, int]:
    """Agent CPU % of one core over `seconds` after its first (full) sample, and its nprocs."""
    src = agent_source()
    agent = subprocess.Popen([sys.executable, "-u", "-c", BOOTSTRAP], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
    assert agent.stdin is not None and agent.stdout is not None
    try:
        agent.stdin.write(str(len(src)).encode() + b"\n" + src)
        with tempfile.TemporaryDirectory() as state:
            req = {"id": 1, "op": "start", "args": {"interval": 1, "state_dir": state}}
            agent.stdin.write(json.dumps(req).encode() + b"\n")
            agent.stdin.flush()
            nprocs = 0
            while True:  # wait for the first sample: startup and the full table are not the steady state
                msg = json.loads(agent.stdout.readline())
                if msg["type"] == "sample":
                    nprocs = msg["node"]["nprocs"]
                    break
            c0, w0 = cpu_seconds(agent.pid), time.monotonic()
            end = w0 + seconds
            while time.monotonic() < end:
                msg = json.loads(agent.stdout.readline())
                if msg["type"] == "sample":
                    nprocs = msg["node"]["nprocs"]
            c1, w1 = cpu_seconds(agent.pid), time.monotonic()
    finally:
        agent.stdin.close()
        agent.wait(10)
    return 100.0 * (c1 - c0) / (w1 - w0), nprocs


def run_baseline(seconds: float) -> float:
    base = subprocess.Popen([sys.executable, "-c", BASELINE, str(seconds + 3)])
    try:
        time.sleep(3)  # its first pass builds the psutil objects: not the steady state either
        c0, w0 = cpu_seconds(base.pid), time.monotonic()
        time.sleep(seconds)
        c1, w1 = cpu_seconds(base.pid), time.monotonic()
    finally:
        base.wait(30)
    return 100.0 * (c1 - c0) / (w1 - w0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1000, help="sleep processes to start")
    ap.add_argument("-s", type=float, default=20.0, help="seconds to measure each sampler")
    opts = ap.parse_args()
    children: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(opts.n):
            children.append(subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL))
        time.sleep(1)
        agent_pct, nprocs = run_agent(opts.s)
        base_pct = run_baseline(opts.s)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
        for child in children:
            child.wait()
    print(f"processes on the node: {nprocs} ({opts.n} started by the bench)")
    print(f"agent, 1 Hz, {opts.s:.0f} s:            {agent_pct:6.3f} % of one core")
    print(f"psutil.process_iter baseline:  {base_pct:6.3f} % of one core")
    if agent_pct > 0:
        print(f"baseline / agent:              {base_pct / agent_pct:6.1f} x")


if __name__ == "__main__":
    main()
