"""Migration cost: `omctl migrate` against the same steps done by hand, in the same run.

For each size (64 MiB, 256 MiB, 1 GiB by default) three identical jobs are started, one after
the other, on node 1 of a 2-node testbed without memory limits (its own, "ommb"); each holds
that much memory of varied bytes. The first is moved by hand, the way an administrator would:

    ssh n1 criu dump -t PID -D DIR --leave-stopped          (to files)
    ssh n1 tar -C DIR -cf - . | ssh n2 tar -C DIR2 -xf -    (two OpenSSH pipes)
    ssh n2 criu restore -D DIR2 --restore-detached           (then kill the stopped source)

the second with `omctl migrate 1:PID 2 --json` (a new process: its connect time is included;
the default path: pages from the source's dump straight to the target's page server), the third
with the engine's relayed path (`migrate(..., direct=False)` in this process: the pages pass
through the workstation's two SSH connections; the default before node-to-node streaming).
Printed for each: seconds, frozen time (the process not running: dump start to restore end),
and CPU seconds: the workstation's (this process and its children: ssh, omctl) and the testbed's
(every process in the nodes' network namespaces but the jobs: sshd, agents, criu, tar; sampled
10 times a second, so processes shorter than that are missed), with the load average. Ratios:
omctl / by hand (goal <= 1.5) and, for 1 GiB, frozen omctl / by hand (goal <= 0.5). Root only.

    .venv/bin/python bench/migrate.py [--sizes 64,256,1024] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from omview.core import criu as criu_mod  # noqa: E402
from omview.core import migration  # noqa: E402
from omview.core import testbed as tbmod  # noqa: E402
from omview.core.cluster import Cluster  # noqa: E402
from omview.core.config import load_cluster  # noqa: E402

NAME = "ommb"


def memory_job(mib: int) -> str:
    return (f"import os, time\nbuf = bytearray(os.urandom(1 << 20)) * {mib}\n"
            f"for i in range({mib}):\n    buf[i << 20] = i % 251\n"
            "print('ready', flush=True)\nwhile True:\n    time.sleep(0.2)\n")


TICK = os.sysconf("SC_CLK_TCK")
JOB_MARK = b"bytearray(os.urandom("


class NodeCpu:
    """CPU seconds of the testbed's processes (sshd, agents, criu, tar) while it runs: each
    process's utime+stime growth between samples, 10 samples a second. The jobs (their command
    line has JOB_MARK) are left out: killing one must not count."""

    def __init__(self, tb: tbmod.Testbed, skip: bytes = b"") -> None:
        self.nets = {os.stat(f"/run/netns/{n.netns}").st_ino for n in tb.nodes}
        self.skip = skip or JOB_MARK
        self.first: dict[tuple[int, int], int] = {}
        self.last: dict[tuple[int, int], int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                if os.stat(f"/proc/{name}/ns/net").st_ino not in self.nets:
                    continue
                if self.skip in Path(f"/proc/{name}/cmdline").read_bytes():
                    continue
                f = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            key = (int(name), int(f[19]))  # pid, start time
            ticks = int(f[11]) + int(f[12])
            self.first.setdefault(key, ticks)
            self.last[key] = ticks

    def _run(self) -> None:
        t0 = time.thread_time()
        while not self.stop.wait(0.1):
            self._sample()
        self.own = time.thread_time() - t0  # the sampler's CPU, not the workstation's

    own = 0.0

    def __enter__(self) -> NodeCpu:
        self._sample()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self._sample()

    @property
    def seconds(self) -> float:
        return sum(self.last[k] - self.first[k] for k in self.last) / TICK


class Meter:
    """Wall clock, CPU of this process and its children, the testbed's CPU, load average."""

    def __init__(self, tb: tbmod.Testbed, tag: str) -> None:
        self.nodes = NodeCpu(tb)

    def __enter__(self) -> Meter:
        self.t0 = time.monotonic()
        self.r0 = _rusage()
        self.nodes.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.nodes.__exit__()
        self.wall = time.monotonic() - self.t0
        self.cpu_ws = _rusage() - self.r0 - self.nodes.own
        self.cpu_nodes = self.nodes.seconds
        self.load = os.getloadavg()[0]


def _rusage() -> float:
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def ssh(tb: tbmod.Testbed, node: int, cmd: str) -> list[str]:
    return tbmod.ssh_argv(tb, node, cmd)


def run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    cp = subprocess.run(argv, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if cp.returncode != 0:
        raise SystemExit(f"failed ({cp.returncode}): {' '.join(argv)[:200]}\n{cp.stderr[-2000:]}")
    return cp


def start(c: Cluster, mib: int, tag: str) -> dict[str, object]:
    r = c.run_job(1, [sys.executable, "-c", memory_job(mib), tag])
    deadline = time.monotonic() + 120
    while "ready" not in Path(str(r["out"])).read_text():
        if time.monotonic() > deadline:
            raise SystemExit(f"job did not fill its memory: {Path(str(r['err'])).read_text()}")
        time.sleep(0.2)
    if not c.wait_until(lambda: c.process(1, int(r["pid"])) is not None, 30):
        raise SystemExit(f"job {r['pid']} not in node 1's process list")
    return r


def by_hand(tb: tbmod.Testbed, criu: str, pid: int, tag: str) -> dict[str, Any]:
    d1 = f"{tb.root}/hand-{tag}-src"
    d2 = f"{tb.root}/hand-{tag}-dst"
    for d in (d1, d2):
        os.makedirs(d, exist_ok=True)
    meter = Meter(tb, tag).__enter__()
    t0 = time.monotonic()
    run(ssh(tb, 1, f"{shlex.quote(criu)} dump -t {pid} -D {d1} -o dump.log --leave-stopped"
                   " --manage-cgroups=ignore"))
    t1 = time.monotonic()
    pipe = (f"{shlex.join(ssh(tb, 1, f'tar -C {d1} -cf - .'))} | "
            f"{shlex.join(ssh(tb, 2, f'tar -C {d2} -xf -'))}")
    run(["bash", "-o", "pipefail", "-c", pipe])
    t2 = time.monotonic()
    run(ssh(tb, 2, f"{shlex.quote(criu)} restore -D {d2} -o restore.log --restore-detached"
                   f" --pidfile {d2}/pid --manage-cgroups=ignore"))
    t3 = time.monotonic()
    meter.__exit__()
    run(ssh(tb, 1, f"kill -9 {pid}"))
    newpid = int(Path(d2, "pid").read_text())
    run(ssh(tb, 2, f"kill -9 {newpid}"))
    for d in (d1, d2):
        subprocess.run(["rm", "-rf", d])
    return {"dump": t1 - t0, "copy": t2 - t1, "restore": t3 - t2, "total": t3 - t0, "frozen": t3 - t0,
            "cpu_ws": meter.cpu_ws, "cpu_nodes": meter.cpu_nodes, "load": meter.load}


def with_omctl(tb: tbmod.Testbed, cluster_file: str, pid: int, tag: str) -> dict[str, Any]:
    with Meter(tb, tag) as meter:
        t0 = time.monotonic()
        cp = run([sys.executable, "-m", "omview.cli", "--cluster", cluster_file, "migrate", f"1:{pid}", "2",
                  "--json", "--quiet"], cwd=str(ROOT))
        total = time.monotonic() - t0
        time.sleep(0.3)  # the sshd sessions of omctl's connections end
    doc = json.loads(cp.stdout)
    if not doc["ok"]:
        raise SystemExit(f"omctl migrate failed: {doc['error']}")
    run(ssh(tb, 2, f"kill -9 {doc['new_pid']}"))
    t = doc["timings"]
    return {"dump": t.get("dump", 0.0), "copy": t.get("transfer", 0.0), "restore": t.get("restore", 0.0),
            "engine": doc["seconds"], "total": total, "frozen": doc["frozen"], "transfer": doc["transfer"],
            "cpu_ws": meter.cpu_ws, "cpu_nodes": meter.cpu_nodes, "load": meter.load}


def relayed(tb: tbmod.Testbed, c: Cluster, pid: int, tag: str) -> dict[str, Any]:
    """The engine's relayed path, in this process (its cluster is connected already)."""
    with Meter(tb, tag) as meter:
        r = migration.migrate(c, 1, pid, 2, direct=False)
    if not r.ok:
        raise SystemExit(f"relayed migration failed: {r.error}")
    run(ssh(tb, 2, f"kill -9 {r.new_pid}"))
    t = r.timings
    return {"dump": t.get("dump", 0.0), "copy": t.get("transfer", 0.0), "restore": t.get("restore", 0.0),
            "engine": r.seconds, "total": r.seconds, "frozen": r.frozen, "transfer": r.transfer,
            "cpu_ws": meter.cpu_ws, "cpu_nodes": meter.cpu_nodes, "load": meter.load}


def line(name: str, m: dict[str, Any]) -> str:
    return (f"  {name:8s} dump {m['dump']:5.2f} copy {m['copy']:5.2f} restore {m['restore']:5.2f} | "
            f"total {m['total']:6.2f} s (engine {m.get('engine', m['total']):6.2f}) frozen {m['frozen']:6.2f} s | "
            f"CPU workstation {m['cpu_ws']:5.2f} s "
            f"nodes {m['cpu_nodes']:5.2f} s | load {m['load']:.1f}"
            + (f" [{m['transfer']}]" if "transfer" in m else ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="64,256,1024", help="MiB, comma separated")
    ap.add_argument("--keep", action="store_true", help="leave the testbed running")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/migrate.py needs root (testbed, CRIU)", file=sys.stderr)
        return 2
    criu = criu_mod.find_criu()
    st = criu_mod.probe(criu, features=False)
    if not st.ready or criu is None:
        print(f"no working criu: {st.reason}", file=sys.stderr)
        return 2
    tb = tbmod.up(2, name=NAME)
    cluster_file = str(tb.cluster_file.with_name("cluster-criu.toml"))
    text = tb.cluster_file.read_text().replace("[[node]]\n", f"[[node]]\ncriu = {json.dumps(criu)}\n")
    Path(cluster_file).write_text(text)
    config = load_cluster(cluster_file)
    c = Cluster(config).start()
    rows = []
    try:
        if not c.wait_until(lambda: all(n.up and n.sample is not None and n.sample.criu for n in c.nodes()), 60):
            raise SystemExit(f"testbed not up: {[n.reason for n in c.nodes()]}")
        for mib in [int(x) for x in args.sizes.split(",")]:
            tag = f"mb{mib}-{os.getpid()}"
            a = start(c, mib, tag + "a")
            hand = by_hand(tb, criu, int(a["pid"]), tag)
            b = start(c, mib, tag + "b")
            ours = with_omctl(tb, cluster_file, int(b["pid"]), tag)
            d = start(c, mib, tag + "c")
            relay = relayed(tb, c, int(d["pid"]), tag)
            rows.append((mib, hand, ours, relay))
            print(f"{mib:5d} MiB\n{line('by hand', hand)}\n{line('omctl', ours)}\n{line('relayed', relay)}\n"
                  f"  ratio omctl/by hand {ours['total'] / hand['total']:.2f}, frozen "
                  f"{ours['frozen'] / hand['frozen']:.2f} (relayed: {relay['frozen'] / hand['frozen']:.2f})",
                  flush=True)
    finally:
        c.stop()
        for pid in _leftovers():
            os.kill(pid, signal.SIGKILL)
        if not args.keep:
            tbmod.down(NAME)
    print("\nsize  by-hand s (frozen)  omctl s  frozen  ratio (goal <= 1.5)  frozen omctl/by-hand (goal 1 GiB <= 0.5)"
          "  relayed frozen (ratio)")
    for mib, hand, ours, relay in rows:
        print(f"{mib:4d}  {hand['total']:9.2f}           {ours['total']:7.2f}  {ours['frozen']:6.2f}"
              f"  {ours['total'] / hand['total']:5.2f}                {ours['frozen'] / hand['frozen']:5.2f}"
              f"                                   {relay['frozen']:6.2f} ({relay['frozen'] / hand['frozen']:.2f})")
    return 0


def _leftovers() -> list[int]:
    """Host PIDs of this run's jobs (their command line carries our tag)."""
    mark = f"-{os.getpid()}".encode()
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                if mark in Path(f"/proc/{name}/cmdline").read_bytes() and b"bench/migrate.py" not in \
                        Path(f"/proc/{name}/cmdline").read_bytes():
                    out.append(int(name))
            except OSError:
                pass
    return out


if __name__ == "__main__":
    sys.exit(main())
