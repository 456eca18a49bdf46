"""CPU cost of the node agent with many processes on the node, against a psutil baseline.

Starts N `sleep 600` processes (default 1000), runs the agent at 1 Hz and, after a warm-up of W
samples (the first sample reads everything; sleepers are probed less often once they have slept
for a while), measures its CPU over ~S seconds in percent of one core. Then a psutil.process_iter
sampler that collects the same fields at the same rate over the same processes is measured the
same way; both figures and their ratio are printed. No assertions: the figures are the result.

`--ns` runs the agent, the sleepers and the baseline in a fresh PID namespace (root, util-linux),
so other work on this machine neither adds processes to the table nor varies between runs.

Only the sleep processes this script started are killed, by PID, also when something fails.

    .venv/bin/python bench/agent_cpu.py [-n 1000] [-s 20] [-w 12] [--ns]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
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

#: In --ns mode the namespace's first process starts the sleepers, then becomes the agent.
NS_SPAWN = 'i=0; while [ "$i" -lt {n} ]; do sleep 600 & i=$((i+1)); done; exec "$0" "$@"'


def cpu_seconds(pid: int) -> float:
    """CPU of the process's live threads from /proc/PID/task/*/schedstat (nanoseconds): the tick
    counts of cpu_times() are 10 ms steps, a quarter of what 0.25 % of a core uses in 15 s."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        tids = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as fh:
                total += int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    if total:
        return total / 1e9
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def only_child(pid: int) -> int:
    """PID of the one child of `pid` (unshare/nsenter fork the real program), waiting for it."""
    deadline = time.monotonic() + 30
    while True:
        kids = psutil.Process(pid).children()
        if kids:
            return kids[0].pid
        if time.monotonic() > deadline:
            raise RuntimeError(f"process {pid} started no child")
        time.sleep(0.05)


class Bench:
    def __init__(self, n: int, seconds: float, warmup: int, ns: bool) -> None:
        self.n, self.seconds, self.warmup, self.ns = n, seconds, warmup, ns
        self.sleepers: list[int] = []  # PIDs (as this machine sees them) of the sleeps we started
        self.popens: list[subprocess.Popen[bytes]] = []
        self.agent: subprocess.Popen[bytes] | None = None
        self.agent_pid = 0  # the agent's PID as this machine sees it

    def start_sleepers_here(self) -> None:
        for _ in range(self.n):
            p = subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL)
            self.popens.append(p)
            self.sleepers.append(p.pid)

    def start_agent(self) -> None:
        argv = [sys.executable, "-u", "-c", BOOTSTRAP]
        if self.ns:
            argv = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
                    "sh", "-c", NS_SPAWN.format(n=self.n), *argv]
        self.agent = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.agent_pid = only_child(self.agent.pid) if self.ns else self.agent.pid
        assert self.agent.stdin is not None
        src = agent_source()
        self.agent.stdin.write(str(len(src)).encode() + b"\n" + src)
        self.agent.stdin.flush()

    def run_agent(self) -> tuple[float, int]:
        """Agent CPU % of one core over the measured stretch, and its nprocs."""
        agent = self.agent
        assert agent is not None and agent.stdin is not None and agent.stdout is not None
        with tempfile.TemporaryDirectory() as state:
            req = {"id": 1, "op": "start", "args": {"interval": 1, "state_dir": state}}
            agent.stdin.write(json.dumps(req).encode() + b"\n")
            agent.stdin.flush()
            nprocs, samples = 0, 0
            while samples < self.warmup:
                msg = json.loads(agent.stdout.readline())
                if msg["type"] == "sample":
                    samples += 1
            c0, w0 = cpu_seconds(self.agent_pid), time.monotonic()
            while time.monotonic() < w0 + self.seconds:
                msg = json.loads(agent.stdout.readline())
                if msg["type"] == "sample":
                    nprocs = msg["node"]["nprocs"]
            c1, w1 = cpu_seconds(self.agent_pid), time.monotonic()
        return 100.0 * (c1 - c0) / (w1 - w0), nprocs

    def run_baseline(self) -> float:
        argv = [sys.executable, "-c", BASELINE, str(self.seconds + 6)]
        if self.ns:
            argv = ["nsenter", "--target", str(self.agent_pid), "--pid", "--mount", "--", *argv]
        base = subprocess.Popen(argv)
        try:
            pid = only_child(base.pid) if self.ns else base.pid
            time.sleep(3)  # its first pass builds the psutil objects: not the steady state either
            c0, w0 = cpu_seconds(pid), time.monotonic()
            time.sleep(self.seconds)
            c1, w1 = cpu_seconds(pid), time.monotonic()
        finally:
            base.wait(60)
        return 100.0 * (c1 - c0) / (w1 - w0)

    def cleanup(self) -> None:
        if self.ns and self.agent_pid:
            try:
                self.sleepers = [c.pid for c in psutil.Process(self.agent_pid).children()
                                 if c.name() == "sleep"]
            except psutil.Error:
                self.sleepers = []
        for pid in self.sleepers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in self.popens:
            p.wait()
        if self.agent is not None:
            if self.agent.stdin is not None:
                self.agent.stdin.close()
            if self.agent.stdout is not None:
                self.agent.stdout.read()  # the agent ends at EOF; drain what it still says
            self.agent.wait(30)

    def run(self) -> None:
        try:
            if not self.ns:
                self.start_sleepers_here()
            self.start_agent()
            agent_pct, nprocs = self.run_agent()
            base_pct = self.run_baseline()
        finally:
            self.cleanup()
        where = "in its own PID namespace" if self.ns else "on this machine"
        print(f"processes seen by the agent: {nprocs} ({self.n} sleeps started by the bench), {where}; "
              f"load average {os.getloadavg()[0]:.2f}")
        print(f"agent, 1 Hz, {self.seconds:.0f} s after {self.warmup} samples: {agent_pct:6.3f} % of one core")
        print(f"psutil.process_iter baseline:          {base_pct:6.3f} % of one core")
        if agent_pct > 0:
            print(f"baseline / agent:                      {base_pct / agent_pct:6.1f} x")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("-n", type=int, default=1000, help="sleep processes to start")
    ap.add_argument("-s", type=float, default=20.0, help="seconds to measure each sampler")
    ap.add_argument("-w", type=int, default=12, help="agent samples before measuring")
    ap.add_argument("--ns", action="store_true", help="run everything in a fresh PID namespace")
    opts = ap.parse_args()
    Bench(opts.n, opts.s, opts.w, opts.ns).run()


if __name__ == "__main__":
    main()
