"""Migration cost: `omctl migrate` against the same steps done by hand, in the same run.

For each size (64 MiB, 256 MiB, 1 GiB by default) two identical jobs are started on node 1 of a
2-node testbed without memory limits (its own, "ommb"); each holds that much memory of varied
bytes. One is moved by hand, the way an administrator would:

    ssh n1 criu dump -t PID -D DIR --leave-stopped          (to files)
    ssh n1 tar -C DIR -cf - . | ssh n2 tar -C DIR2 -xf -    (two OpenSSH pipes)
    ssh n2 criu restore -D DIR2 --restore-detached           (then kill the stopped source)

the other with `omctl migrate 1:PID 2 --json` (a new process: its connect time is included).
Printed: seconds of each, the ratio omctl / by hand (goal <= 1.5), and the frozen time (the
process not running: dump start to restore end) of each; for 1 GiB the goal is omctl's frozen
time <= half of the by-hand sequence. Root only (testbed, CRIU).

    .venv/bin/python bench/migrate.py [--sizes 64,256,1024] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from omview.core import criu as criu_mod  # noqa: E402
from omview.core import testbed as tbmod  # noqa: E402
from omview.core.cluster import Cluster  # noqa: E402
from omview.core.config import load_cluster  # noqa: E402

NAME = "ommb"


def memory_job(mib: int) -> str:
    return (f"import os, time\nbuf = bytearray(os.urandom(1 << 20)) * {mib}\n"
            f"for i in range({mib}):\n    buf[i << 20] = i % 251\n"
            "print('ready', flush=True)\nwhile True:\n    time.sleep(0.2)\n")


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
    return r


def by_hand(tb: tbmod.Testbed, criu: str, pid: int, tag: str) -> dict[str, float]:
    d1 = f"{tb.root}/hand-{tag}-src"
    d2 = f"{tb.root}/hand-{tag}-dst"
    for d in (d1, d2):
        os.makedirs(d, exist_ok=True)
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
    run(ssh(tb, 1, f"kill -9 {pid}"))
    newpid = int(Path(d2, "pid").read_text())
    run(ssh(tb, 2, f"kill -9 {newpid}"))
    for d in (d1, d2):
        subprocess.run(["rm", "-rf", d])
    return {"dump": t1 - t0, "copy": t2 - t1, "restore": t3 - t2, "total": t3 - t0, "frozen": t3 - t0}


def with_omctl(tb: tbmod.Testbed, cluster_file: str, pid: int) -> dict[str, float]:
    t0 = time.monotonic()
    cp = run([sys.executable, "-m", "omview.cli", "--cluster", cluster_file, "migrate", f"1:{pid}", "2",
              "--json", "--quiet"], cwd=str(ROOT))
    total = time.monotonic() - t0
    doc = json.loads(cp.stdout)
    if not doc["ok"]:
        raise SystemExit(f"omctl migrate failed: {doc['error']}")
    run(ssh(tb, 2, f"kill -9 {doc['new_pid']}"))
    t = doc["timings"]
    return {"dump": t.get("dump", 0.0), "copy": t.get("transfer", 0.0), "restore": t.get("restore", 0.0),
            "engine": doc["seconds"], "total": total, "frozen": doc["frozen"]}


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
            b = start(c, mib, tag + "b")
            hand = by_hand(tb, criu, int(a["pid"]), tag)
            ours = with_omctl(tb, cluster_file, int(b["pid"]))
            rows.append((mib, hand, ours))
            print(f"{mib:5d} MiB  by hand: dump {hand['dump']:.2f} + copy {hand['copy']:.2f} + restore "
                  f"{hand['restore']:.2f} = {hand['total']:.2f} s | omctl: {ours['total']:.2f} s "
                  f"(engine {ours['engine']:.2f}: dump+stream {ours['dump']:.2f}, rest {ours['copy']:.2f}, "
                  f"restore {ours['restore']:.2f}) | ratio {ours['total'] / hand['total']:.2f} | frozen "
                  f"{ours['frozen']:.2f} vs {hand['frozen']:.2f} s ({ours['frozen'] / hand['frozen']:.2f})",
                  flush=True)
    finally:
        c.stop()
        for pid in _leftovers():
            os.kill(pid, signal.SIGKILL)
        if not args.keep:
            tbmod.down(NAME)
    print("\nsize  by-hand s  omctl s  ratio (goal <= 1.5)  frozen omctl/by-hand (goal for 1 GiB <= 0.5)")
    for mib, hand, ours in rows:
        print(f"{mib:4d}  {hand['total']:9.2f}  {ours['total']:7.2f}  {ours['total'] / hand['total']:5.2f}"
              f"                {ours['frozen']:.2f} / {hand['frozen']:.2f} = {ours['frozen'] / hand['frozen']:.2f}")
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
