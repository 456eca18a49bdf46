"""Process migration with real CRIU between the nodes of the real SSH testbed, and its pure parts.

Every integration test ends by counting the copies of its process across the whole machine
(the host sees every node's processes): exactly one, and running. Waits poll with deadlines;
nothing asserts on elapsed wall time except against the migration's own measured duration.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from omview.core import agent as agent_mod
from omview.core import jobs, migration
from omview.core import testbed as tbmod
from omview.core.cluster import Cluster
from omview.core.model import AdminState, NodeSample, NodeState
from omview.core.testbed import Testbed
from tests.criu_helpers import criu_or_skip, host_copies, open_criu_cluster

DEADLINE = 60.0

# ---------------------------------------------------------------- pure: builders and choices


def test_tar_commands_quote_the_folder() -> None:
    assert migration.tar_send_command("/s/images/m1") == "tar -C /s/images/m1 -cf - ."
    assert migration.tar_receive_command("/a b/x") == "tar -C '/a b/x' -xf -"


def test_agent_command_builders() -> None:
    assert agent_mod.job_argv(["sleep", "5"]) == ["unshare", "--pid", "--fork", "setsid", "sleep", "5"]
    for bad in ([], [""], ["ok", 3]):
        with pytest.raises(agent_mod.Fail):
            agent_mod.job_argv(bad)  # type: ignore[arg-type]
    d = agent_mod.criu_dump_argv("/c", 42, "/img")
    assert d[:6] == ["/c", "dump", "-t", "42", "-D", "/img"]
    assert "--leave-stopped" in d and "--manage-cgroups=ignore" in d and "--page-server" not in d
    d = agent_mod.criu_dump_argv("/c", 42, "/img", 4711)
    assert d[-5:] == ["--page-server", "--address", "127.0.0.1", "--port", "4711"]
    r = agent_mod.criu_restore_argv("/c", "/img")
    assert r[:4] == ["/c", "restore", "-D", "/img"] and "--restore-detached" in r
    assert r[r.index("--pidfile") + 1] == "/img/restore.pid"
    p = agent_mod.criu_page_server_argv("/c", "/img", 5000, 7)
    assert p[:4] == ["/c", "page-server", "-D", "/img"]
    assert p[p.index("--address") + 1] == "127.0.0.1" and p[-2:] == ["--status-fd", "7"]


def test_criu_text_and_errors() -> None:
    assert agent_mod.criu_text(None) == ""
    assert agent_mod.criu_text({"ready": True, "version": "4.1.1"}) == "ready: criu 4.1.1"
    assert agent_mod.criu_text({"ready": False, "reason": "not root"}) == "unavailable: not root"
    log = "(00.1) Error (x.c:1): Can't setup RLIMIT_NOFILE for self\n(00.2) Error (y.c:2): boom\n"
    assert agent_mod.criu_errors(log) == ["(00.2) Error (y.c:2): boom"]
    assert agent_mod._hexaddr("0100007F:1F90") == "127.0.0.1:8080"


def _node(i: int, runq: float = 0.0, cpus: int = 1, speed: int = 10000, criu: str = "ready: criu 4.1.1",
          up: bool = True, **admin: Any) -> NodeState:
    s = NodeSample(cpus=cpus, speed=speed, runq=runq, criu=criu, admin=AdminState(**admin))
    return NodeState(id=i, address=f"n{i}", up=up, sample=s)


def test_pick_best_uses_load_per_capacity_and_honours_admin_flags() -> None:
    nodes = [_node(1, runq=0), _node(2, runq=1, cpus=4), _node(3, runq=0, speed=5000)]
    # node 2: (1+1)/4 = 0.5, node 3: (0+1)/0.5 = 2, node 1 is the source
    assert migration.pick_best(nodes, source=1) == 2
    nodes[1] = _node(2, runq=1, cpus=4, block=True)
    assert migration.pick_best(nodes, source=1) == 3
    assert migration.pick_best(nodes, source=1, home=2) == 2  # going home is not a guest
    nodes[2] = _node(3, quiet=True)
    assert migration.pick_best(nodes, source=1) is None
    nodes = [_node(1), _node(2, criu="unavailable: x"), _node(3, up=False), _node(4, stopped=True), _node(5)]
    assert migration.pick_best(nodes, source=1) == 5
    assert migration.pick_best([_node(2), _node(3)], source=1) == 2  # ties: the lower id


def test_targets_ranges_and_parallel_order() -> None:
    assert migration.parse_target("home") == "home" and migration.parse_target("7") == 7
    with pytest.raises(migration.MigrationError):
        migration.parse_target("node7")
    assert jobs.parse_range("2-4") == (2, 4)
    for bad in ("4-2", "x", "3"):
        with pytest.raises(ValueError):
            jobs.parse_range(bad)
    assert jobs.parallel_nodes([1, 2, 3, 5], 2, 5) == [2, 3, 5]
    assert jobs.parallel_nodes([1, 2, 3, 5], 2, 5, inverse=True) == [5, 3, 2]


def test_migration_line_and_json_shape() -> None:
    from omview.cli import migration_line

    r = migration.MigrationResult("m", 1, 2, 10, 99, ok=True, new_pid=20, new_start=5, job="1-ab", nmigs=1,
                                  frozen=0.5, bytes=2048, transfer="page-server", seconds=0.7)
    assert migration_line(r).startswith("1:10 -> 2:20 (job 1-ab, nmigs 1, frozen 0.50 s")
    d = r.to_dict()
    assert d["running_on"] == 2 and d["ok"] and d["timings"] == {}
    r = migration.MigrationResult("m", 1, 2, 10, 99, refused=True, error="nomig job")
    assert migration_line(r) == "1:10: cannot move: nomig job" and r.to_dict()["running_on"] == 1


def test_local_transport_bulk_channel_is_a_real_pipe() -> None:
    from omview.core.config import NodeConfig
    from omview.core.transport import LocalTransport

    t = LocalTransport(NodeConfig(id=1, address="local"))
    assert not t.tunnels
    ch = t.open_exec("tr a-z A-Z; echo done >&2; exit 3")
    ch.write(b"hello " * 10000)
    ch.close_write()
    data = b""
    while chunk := ch.read():
        data += chunk
    assert data == b"HELLO " * 10000
    assert ch.wait(10) == 3 and "done" in ch.stderr_text()
    ch.close()


# ---------------------------------------------------------------- the real thing


@pytest.fixture(scope="module")
def criu_path() -> str:
    return criu_or_skip()


@pytest.fixture(scope="module")
def cluster(testbed: Testbed, criu_path: str) -> Iterator[Cluster]:
    c = open_criu_cluster(testbed, criu_path)
    try:
        yield c
    finally:
        c.stop()


def wait_one_running(marker: str, timeout: float = DEADLINE) -> int:
    """Exactly one copy, running (not stopped), seen twice in a row; returns its host PID."""
    deadline = time.monotonic() + timeout
    seen: list[tuple[int, str]] = []
    stable = 0
    while time.monotonic() < deadline:
        seen = host_copies(marker)
        if len(seen) == 1 and seen[0][1] not in ("T", "t"):
            stable += 1
            if stable >= 3:
                return seen[0][0]
        else:
            stable = 0
        time.sleep(0.2)
    raise AssertionError(f"copies of {marker}: {seen} (want exactly one, running)")


@pytest.fixture
def marker() -> Iterator[str]:
    """A unique word in each test job's command line; every copy is SIGKILLed afterwards
    (a PID-namespace init ignores SIGTERM)."""
    m = f"omjob{time.monotonic_ns()}"
    yield m
    for _ in range(3):
        for pid, _state in host_copies(m):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.1)


COUNTER = ("import sys, time\ni = 0\nwhile True:\n    print(i, time.time(), flush=True)\n"
           "    i += 1\n    time.sleep(0.1)\n")
SLEEPER = "import time\nwhile True:\n    time.sleep(0.2)\n"


def memory_job(mib: int) -> str:
    """A job holding `mib` MiB of varied bytes; prints their sha256 at start and again each time
    the file named by argv[2] appears (so the restored copy checks its own memory)."""
    return (
        "import hashlib, os, sys, time\n"
        f"buf = bytearray(os.urandom(1 << 20)) * {mib}\n"
        f"for i in range({mib}):\n    buf[i << 20] = i % 251\n"
        "print('sum', hashlib.sha256(buf).hexdigest(), flush=True)\n"
        "n = 0\nwhile True:\n    time.sleep(0.1)\n"
        "    if os.path.exists(sys.argv[2] + str(n)):\n"
        "        print('sum', hashlib.sha256(buf).hexdigest(), flush=True)\n        n += 1\n"
    )


def start_job(c: Cluster, node: int, code: str, marker: str, *args: str, mode: str = "",
              ready: str | None = None) -> dict[str, Any]:
    r = c.run_job(node, [sys.executable, "-c", code, marker, *args], mode)
    assert c.wait_until(lambda: c.process(node, r["pid"]) is not None, 20)
    if ready is not None:
        deadline = time.monotonic() + DEADLINE
        while ready not in Path(r["out"]).read_text():
            assert time.monotonic() < deadline, Path(r["err"]).read_text()
            time.sleep(0.1)
    return r


def untouched(c: Cluster, node: int, job: dict[str, Any], mids_before: dict[int, set[str]]) -> None:
    """The refused process runs on as it was, and no node has a new migration file."""
    p = c.process(node, job["pid"])
    assert p is not None and p.start == job["start"]
    assert agent_mod.proc_state(_host_pid(job)) not in ("T", "t")
    assert mig_files(c) == mids_before


def _host_pid(job: dict[str, Any]) -> int:
    """Host PID of a job's process, from its out file's name in /proc/*/fd."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{name}/fd/1") == job["out"] and not Path(f"/proc/{name}/cmdline").read_bytes() \
                    .startswith(b"unshare"):
                return int(name)
        except OSError:
            continue
    raise AssertionError(f"job {job['job']} not found on the host")


def mig_files(c: Cluster) -> dict[int, set[str]]:
    """Migration journals, records and image folders on every node."""
    out: dict[int, set[str]] = {}
    for n in c.config.nodes:
        base = Path(n.state_dir or "")
        names: set[str] = set()
        for sub in ("migrations", "images"):
            if (base / sub).is_dir():
                names |= {f"{sub}/{x}" for x in os.listdir(base / sub)}
        out[n.id] = names
    return out


def test_nodes_report_migration_readiness(cluster: Cluster) -> None:
    for n in cluster.nodes():
        assert n.sample is not None and n.sample.criu.startswith("ready: criu "), n.sample


def test_counter_keeps_counting_through_node1_node2_and_home(cluster: Cluster, marker: str) -> None:
    job = start_job(cluster, 1, COUNTER, marker, ready="3 ")
    p = cluster.process(1, job["pid"])
    assert p is not None and (p.home, p.where, p.nmigs, p.job) == (1, 0, 0, job["job"])
    events: list[Any] = []
    unsub = cluster.subscribe(lambda ev: events.append(ev) if ev.kind == "migration" else None)
    try:
        r1 = migration.migrate(cluster, 1, job["pid"], 2)
        assert r1.ok, r1
        assert cluster.wait_until(lambda: cluster.process(2, r1.new_pid or 0) is not None, 20)
        p = cluster.process(2, r1.new_pid or 0)
        assert p is not None and (p.home, p.where, p.nmigs, p.job) == (1, 2, 1, job["job"])
        time.sleep(0.5)
        r2 = migration.migrate(cluster, 2, r1.new_pid or 0, "home")
        assert r2.ok and r2.target == 1, r2
    finally:
        unsub()
    assert cluster.wait_until(lambda: (q := cluster.process(1, r2.new_pid or 0)) is not None and q.nmigs == 2, 20)
    p = cluster.process(1, r2.new_pid or 0)
    assert p is not None and (p.home, p.where) == (1, 0)
    assert cluster.wait_until(lambda: cluster.process(2, r1.new_pid or 0) is None, 20)
    n_before = len(Path(job["out"]).read_text().splitlines())
    deadline = time.monotonic() + DEADLINE
    while len(Path(job["out"]).read_text().splitlines()) < n_before + 5:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    lines = [ln.split() for ln in Path(job["out"]).read_text().splitlines() if ln.strip()]
    counts = [int(a) for a, _ in lines]
    assert counts == list(range(len(counts))), "a number was lost or printed twice"
    stamps = [float(b) for _, b in lines]
    gap = max(b - a for a, b in zip(stamps, stamps[1:], strict=False))
    assert gap <= max(r1.seconds, r2.seconds) + 0.3, (gap, r1, r2)
    assert Path(job["err"]).read_text() == ""  # nothing (not even unshare) wrote to stderr
    phases = [ev.data["phase"] for ev in events if ev.data["mid"] == r1.mid]
    assert phases[0] == "preflight" and phases[-1] == "done" and "restore" in phases
    final = [ev.data for ev in events if ev.data["mid"] == r1.mid and ev.data["final"]]
    assert len(final) == 1 and final[0]["result"] == "done" and final[0]["dst"] == 2
    wait_one_running(marker)


def test_criu_runs_ahead_of_the_nodes_work_where_the_agent_may_renice() -> None:
    """A frozen process waits for CRIU: its runs get CRIU_NICE (the agent is root here)."""
    out = subprocess.run([sys.executable, "-c", "import os; print(os.getpriority(os.PRIO_PROCESS, 0))"],
                         capture_output=True, text=True, check=True, preexec_fn=agent_mod._criu_priority)
    assert int(out.stdout) == agent_mod.CRIU_NICE < 0


def test_a_moved_process_keeps_its_own_niceness_not_criu_s(cluster: Cluster, marker: str) -> None:
    job = start_job(cluster, 1, SLEEPER, marker)
    agent_pid = int(cluster.session(1).agent_info["pid"])
    # the agent runs ahead of the node's work (root here), the jobs it starts at its start-up niceness
    assert cluster.wait_until(lambda: (a := cluster.process(1, agent_pid)) is not None
                              and a.nice == agent_mod.AGENT_NICE, 20), cluster.process(1, agent_pid)
    first = cluster.process(1, job["pid"])
    assert first is not None and first.nice == 0, first
    cluster.renice(1, job["pid"], 7, job["start"])
    assert cluster.wait_until(lambda: (q := cluster.process(1, job["pid"])) is not None and q.nice == 7, 20)
    r = migration.migrate(cluster, 1, job["pid"], 2)
    assert r.ok, r
    assert cluster.wait_until(lambda: cluster.process(2, r.new_pid or 0) is not None, 20)
    p = cluster.process(2, r.new_pid or 0)
    assert p is not None and p.nice == 7, p
    ((pid, _state),) = host_copies(marker)
    assert os.getpriority(os.PRIO_PROCESS, pid) == 7


def test_256_mib_job_keeps_its_memory(cluster: Cluster, marker: str, tmp_path: Path) -> None:
    trigger = str(tmp_path / "check")
    job = start_job(cluster, 1, memory_job(256), marker, trigger, ready="sum ")
    before = Path(job["out"]).read_text().split()[1]
    progress: list[migration.Progress] = []
    r = migration.migrate(cluster, 1, job["pid"], 3, progress=progress.append)
    assert r.ok, r
    assert r.bytes >= 256 << 20 and r.transfer == "direct"
    dumps = [p for p in progress if p.phase == "dump"]
    assert dumps and dumps[-1].bytes >= 256 << 20 and all(p.total >= p.bytes for p in progress)
    Path(trigger + "0").write_text("")
    deadline = time.monotonic() + DEADLINE
    while Path(job["out"]).read_text().count("sum ") < 2:
        assert time.monotonic() < deadline, Path(job["err"]).read_text()
        time.sleep(0.1)
    after = Path(job["out"]).read_text().split()[3]
    assert after == before and len(after) == len(hashlib.sha256().hexdigest())
    wait_one_running(marker)


# ---------------------------------------------------------------- refusals touch nothing


def test_refusals_touch_nothing(cluster: Cluster, testbed: Testbed, marker: str) -> None:
    job = start_job(cluster, 1, SLEEPER, marker)
    before = mig_files(cluster)

    def refused(target: Any, text: str, **kw: Any) -> None:
        r = migration.migrate(cluster, 1, job["pid"], target, **kw)
        assert r.refused and not r.ok and text in r.error, r
        untouched(cluster, 1, job, before)

    cluster.set_admin(2, block=True)
    try:
        refused(2, "blocked (block)")
    finally:
        cluster.set_admin(2, block=False)
    cluster.set_admin(2, quiet=True)
    try:
        refused(2, "quiet")
    finally:
        cluster.set_admin(2, quiet=False)
    cluster.set_admin(3, stopped=True)
    try:
        refused(3, "stopped")
    finally:
        cluster.set_admin(3, stopped=False)
    refused(2, "soft-dirty", live=True)
    refused(1, "already runs on node 1")
    refused("home", "already on its home node")
    cluster.call(1, "lock", {"pid": job["pid"], "start": job["start"], "lock": True})
    try:
        assert cluster.wait_until(lambda: (p := cluster.process(1, job["pid"])) is not None and p.lock, 10)
        refused(2, "locked")
    finally:
        cluster.call(1, "lock", {"pid": job["pid"], "start": job["start"], "lock": False})
    cluster.set_admin(1, stay=True, lstay=True)
    try:
        refused(2, "stay", automatic=True)
        r = migration.migrate(cluster, 1, job["pid"], 2)  # by hand, stay does not hold it back
        assert r.ok, r
    finally:
        cluster.set_admin(1, stay=False, lstay=False)
    wait_one_running(marker)


def test_nomig_job_is_refused_and_shows_why(cluster: Cluster, marker: str) -> None:
    before = mig_files(cluster)
    job = start_job(cluster, 2, SLEEPER, marker, mode="nomig")
    assert cluster.wait_until(lambda: (p := cluster.process(2, job["pid"])) is not None and p.lock, 10)
    p = cluster.process(2, job["pid"])
    assert p is not None and p.mode == "nomig" and "nomig" in p.cantmove
    r = migration.migrate(cluster, 2, job["pid"], "best")
    assert r.refused and "nomig" in r.error
    untouched(cluster, 2, job, before)


TCP_JOB = ("import socket, sys, time\ns = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen()\n"
           "a = socket.create_connection(s.getsockname())\nb, _ = s.accept()\nprint('up', flush=True)\n"
           "while True:\n    time.sleep(0.2)\n")
FILE_JOB = ("import sys, time\nf = open(sys.argv[2], 'w')\nprint('up', flush=True)\n"
            "while True:\n    time.sleep(0.2)\n")


def test_tcp_connection_is_refused(cluster: Cluster, marker: str) -> None:
    before = mig_files(cluster)
    job = start_job(cluster, 1, TCP_JOB, marker, ready="up")
    r = migration.migrate(cluster, 1, job["pid"], 2)
    assert r.refused and "established TCP connection (127.0.0.1:" in r.error, r
    untouched(cluster, 1, job, before)


def test_open_file_missing_on_target_is_refused(cluster: Cluster, testbed: Testbed, marker: str) -> None:
    private = Path(testbed.nodes[0].state_dir).parent / "private"
    private.mkdir(exist_ok=True)
    # a tmpfs only node 1 sees (its own mount namespace): the file is missing on node 2
    tbmod.node_run(testbed, 1, ["mount", "-t", "tmpfs", "-o", "size=1m", "omtest", str(private)], check=True)
    try:
        before = mig_files(cluster)
        job = start_job(cluster, 1, FILE_JOB, marker, str(private / "data"), ready="up")
        r = migration.migrate(cluster, 1, job["pid"], 2)
        assert r.refused and f"open file {private / 'data'} does not exist on the target" in r.error, r
        untouched(cluster, 1, job, before)
    finally:
        for pid, _ in host_copies(marker):
            os.kill(pid, signal.SIGKILL)
        wait_gone(marker)
        tbmod.node_run(testbed, 1, ["umount", "-l", str(private)])


def wait_gone(marker: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while host_copies(marker):
        assert time.monotonic() < deadline
        time.sleep(0.1)


CLAIM_PID = (
    "import os, subprocess, sys\nwant = int(sys.argv[1])\n"
    "for _ in range(20):\n"
    "    with open('/proc/sys/kernel/ns_last_pid', 'w') as f:\n        f.write(str(want - 1))\n"
    "    p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', sys.argv[2]],\n"
    "                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)\n"
    "    if p.pid == want:\n        print(p.pid)\n        sys.exit(0)\n"
    "    p.kill()\n    p.wait()\n"
    "sys.exit(1)\n"
)


def test_pid_in_use_on_target_is_refused_for_a_process_without_its_own_namespace(
    cluster: Cluster, testbed: Testbed, marker: str
) -> None:
    plain = tbmod.node_exec(testbed, 1, [sys.executable, "-c", "import time; time.sleep(600)", marker])
    try:
        assert cluster.wait_until(lambda: any(marker in p.cmd for _, p in cluster.processes(1)), 20)
        proc = next(p for _, p in cluster.processes(1) if marker in p.cmd)
        if not any(p.pid == proc.pid for _, p in cluster.processes(2)):
            # make node 2 use the same PID (through its ns_last_pid), like a busy real node would
            cp = tbmod.node_run(testbed, 2, [sys.executable, "-c", CLAIM_PID, str(proc.pid), marker])
            assert cp.returncode == 0, cp.stderr
        before = mig_files(cluster)
        r = migration.migrate(cluster, 1, proc.pid, 2)
        assert r.refused and f"PID {proc.pid} is in use on the target node" in r.error, r
        assert mig_files(cluster) == before
        assert cluster.process(1, proc.pid) is not None
        assert agent_mod.proc_state(plain.pid) != "T"
    finally:
        plain.kill()
        plain.wait()


def test_criu_not_ready_on_the_target_is_refused(testbed: Testbed, criu_path: str, marker: str) -> None:
    c = open_criu_cluster(testbed, criu_path, n3="/nonexistent/criu")
    try:
        s3 = c.node(3).sample
        assert s3 is not None and s3.criu == "unavailable: criu not found at the configured path /nonexistent/criu"
        before = mig_files(c)
        job = start_job(c, 1, SLEEPER, marker)
        r = migration.migrate(c, 1, job["pid"], 3)
        assert r.refused and "CRIU is not ready on the target node: criu not found" in r.error, r
        untouched(c, 1, job, before)
        assert migration.pick_best(c.nodes(), 1) == 2
    finally:
        c.stop()


# ---------------------------------------------------------------- faults: exactly one copy


def _agent_host_pid(testbed: Testbed, c: Cluster, node: int) -> int:
    """Host PID of the node's agent (the hello message carries its PID inside the node)."""
    inner = int(c.session(node).agent_info["pid"])
    ns = os.readlink(f"/proc/{testbed.nodes[node - 1].init_pid}/ns/pid")
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{name}/ns/pid") != ns:
                continue
            status = Path(f"/proc/{name}/status").read_text()
        except OSError:
            continue
        nspid = next((ln.split()[1:] for ln in status.splitlines() if ln.startswith("NSpid:")), [])
        if nspid and int(nspid[-1]) == inner:
            return int(name)
    raise AssertionError(f"agent of node {node} not found")


def _once(fn: Callable[[], None]) -> Callable[[], None]:
    done = threading.Event()

    def run() -> None:
        if not done.is_set():
            done.set()
            fn()

    return run


def test_killing_the_target_agent_during_the_transfer(cluster: Cluster, testbed: Testbed, marker: str) -> None:
    job = start_job(cluster, 1, memory_job(200), marker, "/nonexistent", ready="sum ")
    agent = _agent_host_pid(testbed, cluster, 2)
    kill = _once(lambda: os.kill(agent, signal.SIGKILL))

    def progress(p: migration.Progress) -> None:
        if p.phase == "dump" and p.bytes > 16 << 20:
            kill()

    r = migration.migrate(cluster, 1, job["pid"], 2, progress=progress)
    assert not r.ok and r.phase == "dump", r
    assert wait_one_running(marker) == _host_pid(job)
    assert cluster.wait_until(lambda: cluster.node(2).up, 30)


def test_killing_criu_restore(cluster: Cluster, marker: str) -> None:
    # node 2 has half a CPU: restoring 400 MiB there takes long enough to be caught at it
    job = start_job(cluster, 1, memory_job(400), marker, "/nonexistent", ready="sum ")
    stop = threading.Event()
    killed: list[int] = []

    def killer(mid: bytes) -> None:
        """SIGKILL the `criu restore` of this migration (child of the agent's restore helper)."""
        while not stop.is_set() and not killed:
            for name in os.listdir("/proc"):
                try:
                    argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
                    parent = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[1]
                    pargv = Path(f"/proc/{parent}/cmdline").read_bytes()
                except (OSError, IndexError):
                    continue
                if b"--restore-detached" in argv and any(mid in a for a in argv) and b"python" not in argv[0] \
                        and b"python" in pargv.split(b"\0")[0]:
                    os.kill(int(name), signal.SIGKILL)
                    killed.append(int(name))
                    break
            time.sleep(0.001)

    def start_killer(m: migration.Migration) -> None:
        threading.Thread(target=killer, args=(m.mid.encode(),), daemon=True).start()

    try:
        r = migration.migrate(cluster, 1, job["pid"], 2, hooks={"restore": start_killer})
    finally:
        stop.set()
    assert killed, "criu restore was not seen"
    assert not r.ok and r.phase == "restore" and "criu restore failed" in r.error, r
    assert wait_one_running(marker) == _host_pid(job)


def test_dropping_the_source_session_after_the_dump(cluster: Cluster, marker: str) -> None:
    job = start_job(cluster, 1, COUNTER, marker, ready="3 ")
    s = cluster.session(1)
    connects = s.connects

    def drop(m: migration.Migration) -> None:
        s.loop.call_soon(lambda: s._drop("test: dropped after the dump", reconnect=True))

    r = migration.migrate(cluster, 1, job["pid"], 2, hooks={"transfer": drop})
    assert not r.ok and not r.pending and r.phase == "transfer", r
    assert cluster.wait_until(lambda: s.connects > connects, 30)
    wait_one_running(marker)
    lines = Path(job["out"]).read_text().split()
    n = len(lines)
    deadline = time.monotonic() + DEADLINE
    while len(Path(job["out"]).read_text().split()) <= n:
        assert time.monotonic() < deadline, "the source copy was not resumed"
        time.sleep(0.1)


def test_full_image_folder_on_the_target(cluster: Cluster, testbed: Testbed, marker: str) -> None:
    images = Path(testbed.nodes[2].state_dir) / "images"
    images.mkdir(parents=True, exist_ok=True)
    tbmod.node_run(testbed, 3, ["mount", "-t", "tmpfs", "-o", "size=160m", "omtest", str(images)], check=True)
    try:
        job = start_job(cluster, 1, memory_job(100), marker, "/nonexistent", ready="sum ")

        def fill(m: migration.Migration) -> None:  # after the preflight saw room enough
            tbmod.node_run(testbed, 3, ["sh", "-c", f"head -c 150m /dev/zero > {images}/filler"], check=True)

        r = migration.migrate(cluster, 1, job["pid"], 3, hooks={"dump": fill})
        assert not r.ok and r.phase in ("dump", "transfer"), r
        assert wait_one_running(marker) == _host_pid(job)
    finally:
        tbmod.node_run(testbed, 3, ["umount", "-l", str(images)])


def test_cancel_during_the_dump_leaves_it_running_at_the_source(cluster: Cluster, marker: str) -> None:
    job = start_job(cluster, 1, memory_job(200), marker, "/nonexistent", ready="sum ")
    cancel = threading.Event()

    def progress(p: migration.Progress) -> None:
        if p.phase == "dump" and p.bytes > 8 << 20:
            cancel.set()

    handle = migration.start_migration(cluster, 1, job["pid"], 2, progress=progress, cancel=cancel)
    r = handle.future.result(120)
    assert r.cancelled and not r.ok, r
    assert wait_one_running(marker) == _host_pid(job)


@pytest.mark.parametrize("phase", ["prepare", "dump", "transfer"])
def test_cancel_at_each_phase_before_the_commit_point(cluster: Cluster, marker: str, phase: str) -> None:
    job = start_job(cluster, 1, COUNTER, marker, ready="2 ")
    before = mig_files(cluster)
    r = migration.migrate(cluster, 1, job["pid"], 3, hooks={phase: lambda m: m.cancel.set()})
    assert r.cancelled and not r.ok and r.phase == phase, r
    assert wait_one_running(marker) == _host_pid(job)
    # the source journal stays (aborted), nothing else: no images, no target record left receiving
    after = mig_files(cluster)
    # (an earlier fault test's images may still wait out their hold: only this migration's count)
    mine = [n for n in after[1] | after[3] if n.startswith("images/") and r.mid in n]
    new = {n for n in after[1] | after[3] if n.startswith("images/")} - (before[1] | before[3])
    assert not mine and not new, (mine, new, r.mid)
    assert all(not f.endswith(".dst.json") or f in before[3] or "aborted" in
               (Path(cluster.config.node(3).state_dir or "") / f).read_text() for f in after[3])


def test_files_transfer_without_page_server(cluster: Cluster, marker: str) -> None:
    job = start_job(cluster, 1, COUNTER, marker, ready="3 ")
    r = migration.migrate(cluster, 1, job["pid"], 3, stream=False)
    assert r.ok and r.transfer == "files", r
    wait_one_running(marker)


# ---------------------------------------------------------------- omctl


def omctl(testbed: Testbed, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "omview.cli", "--cluster", _criu_cluster_file(testbed), *args],
                          capture_output=True, text=True, timeout=timeout)


def _criu_cluster_file(testbed: Testbed) -> str:
    """The testbed's cluster file with `criu = PATH` for every node (nodes have their own HOME)."""
    path = testbed.cluster_file.with_name("cluster-criu.toml")
    crit = criu_or_skip()
    text = testbed.cluster_file.read_text().replace("[[node]]\n", f"[[node]]\ncriu = {json.dumps(crit)}\n")
    path.write_text(text)
    return str(path)


def test_omctl_run_parallel_inverse_ps_and_migrate_json(cluster: Cluster, testbed: Testbed, marker: str) -> None:
    r = omctl(testbed, "run", "--parallel", "1-3", "--inverse", "--mode", "cpujob", "--",
              sys.executable, "-c", SLEEPER, marker)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [int(ln.split(":")[0]) for ln in lines] == [3, 2, 1]
    refs = [ln.split()[0] for ln in lines]
    assert all(" job " in ln for ln in lines)
    assert cluster.wait_until(lambda: all(cluster.process(int(n), int(p)) for n, p in
                                          (x.split(":") for x in refs)), 20)
    ps = json.loads(omctl(testbed, "ps", "--json").stdout)["processes"]
    mine = [p for p in ps if marker in p["cmd"] and p["job"]]
    assert sorted(p["node"] for p in mine) == [1, 2, 3]
    assert all(p["mode"] == "cpujob" and p["home"] == p["node"] and p["where"] == 0 for p in mine)
    table = omctl(testbed, "ps", "--node", "3").stdout
    assert "HOME" in table.splitlines()[0] and "NMIGS" in table.splitlines()[0]
    r = omctl(testbed, "migrate", refs[0], "2", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] and doc["source"] == 3 and doc["target"] == 2 and doc["running_on"] == 2
    assert doc["home"] == 3 and doc["where"] == 2 and doc["nmigs"] == 1 and doc["frozen"] > 0
    assert "dump" in r.stderr and "restore" in r.stderr  # progress on stderr
    r = omctl(testbed, "migrate", f"2:{doc['new_pid']}", "3", "--live")
    assert r.returncode == 1 and "live migration is not possible" in r.stdout
    r = omctl(testbed, "run", "--on", "2", "--mode", "nomig", "--", sys.executable, "-c", SLEEPER, marker)
    assert r.returncode == 0, r.stderr
    ref = r.stdout.split()[0]
    r = omctl(testbed, "migrate", ref, "best")
    assert r.returncode == 1 and "nomig" in r.stdout
    for pid, _ in host_copies(marker):
        os.kill(pid, signal.SIGKILL)
    wait_gone(marker)


def test_omctl_expel_and_bring(cluster: Cluster, testbed: Testbed, marker: str) -> None:
    job = start_job(cluster, 1, COUNTER, marker, ready="2 ")
    r = migration.migrate(cluster, 1, job["pid"], 2)
    assert r.ok, r
    assert cluster.wait_until(lambda: cluster.process(2, r.new_pid or 0) is not None, 20)
    out = omctl(testbed, "expel", "2")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"2:{r.new_pid} -> 1:" in out.stdout
    assert cluster.wait_until(lambda: any(p.job == job["job"] for _, p in cluster.processes(1)), 20)
    home_copy = next(p for _, p in cluster.processes(1) if p.job == job["job"])
    r = migration.migrate(cluster, 1, home_copy.pid, 3)
    assert r.ok, r
    assert cluster.wait_until(lambda: cluster.process(3, r.new_pid or 0) is not None, 20)
    out = omctl(testbed, "bring", "1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"3:{r.new_pid} -> 1:" in out.stdout
    assert cluster.wait_until(lambda: (p := next((p for _, p in cluster.processes(1) if p.job == job["job"]), None))
                              is not None and p.nmigs == 4 and p.where == 0, 20)
    wait_one_running(marker)
    jobs_home = cluster.call(1, "jobs")["jobs"]
    rec = next(j for j in jobs_home if j["id"] == job["job"])
    assert rec["state"] == "running" and rec["nmigs"] == 4


def test_interrupted_migration_is_resolved_on_reconnect(cluster: Cluster, testbed: Testbed, marker: str) -> None:
    """The workstation vanishes after the dump: the next cluster finds the journal and resumes."""
    job = start_job(cluster, 1, COUNTER, marker, ready="2 ")
    c = open_criu_cluster(testbed, criu_or_skip())
    try:
        stop_here = threading.Event()

        def vanish(m: migration.Migration) -> None:
            stop_here.set()
            raise KeyboardInterrupt  # the engine dies between dump and transfer

        with pytest.raises(KeyboardInterrupt):
            migration.migrate(c, 1, job["pid"], 2, hooks={"transfer": vanish})
        assert stop_here.is_set()
        assert [s for _, s in host_copies(marker)] == ["T"]  # dumped and left stopped
    finally:
        c.stop()
    c = open_criu_cluster(testbed, criu_or_skip())  # its Resolver sweeps node 1 when it comes up
    try:
        wait_one_running(marker)
        assert not c.call(1, "mig_pending")["pending"]
    finally:
        c.stop()


def test_migrate_unknown_process_or_node(cluster: Cluster, marker: str) -> None:
    r = migration.migrate(cluster, 1, 999999, 2)
    assert r.refused and "no process 999999" in r.error
    job = start_job(cluster, 1, SLEEPER, marker)
    r = migration.migrate(cluster, 1, job["pid"], 9)
    assert r.refused and "no node 9" in r.error


@pytest.mark.parametrize("direct", [False, True], ids=["relayed", "direct"])
def test_two_page_server_dumps_from_one_source_at_once(cluster: Cluster, marker: str, direct: bool,
                                                      tmp_path: Path) -> None:
    """Two streamed migrations from node 1 at once (omctl migrate --parallel, the balancer): each
    dump's pages reach its own target's page server, both processes keep their memory. (Relayed,
    the second forward on the source's connection used to take over the first one's.)"""
    jobs = [start_job(cluster, 1, memory_job(96), f"{marker}x{k}", str(tmp_path / f"check{k}-"), ready="sum ")
            for k in (2, 3)]
    at_dump = threading.Barrier(2, timeout=60)
    handles = [migration.start_migration(cluster, 1, job["pid"], k, direct=direct,
                                         hooks={"dump": lambda m: at_dump.wait()})
               for job, k in zip(jobs, (2, 3), strict=True)]
    results = [h.future.result(300) for h in handles]
    for r, k in zip(results, (2, 3), strict=True):
        assert r.ok and r.target == k and r.transfer == ("direct" if direct else "page-server"), (r.error, r.phase, r)
    for job, k in zip(jobs, (2, 3), strict=True):
        wait_one_running(f"{marker}x{k}")
        first = Path(job["out"]).read_text().split()[1]
        (tmp_path / f"check{k}-0").touch()
        deadline = time.monotonic() + DEADLINE
        while Path(job["out"]).read_text().count("sum ") < 2:
            assert time.monotonic() < deadline, Path(job["err"]).read_text()
            time.sleep(0.1)
        assert Path(job["out"]).read_text().split()[3] == first


def test_direct_falls_back_to_the_relay_when_the_source_cannot_reach_the_target(cluster: Cluster,
                                                                                marker: str) -> None:
    job = start_job(cluster, 1, COUNTER, marker, ready="2 ")
    seen: list[migration.Progress] = []

    def elsewhere(m: migration.Migration) -> None:
        m.peer_address = "127.0.0.1"  # the source's own loopback: the target's probe is not there

    r = migration.migrate(cluster, 1, job["pid"], 2, hooks={"prepare": elsewhere}, progress=seen.append)
    assert r.ok and r.transfer == "page-server", r
    assert any("cannot reach node 2" in p.message and "relayed" in p.message for p in seen), seen
    wait_one_running(marker)


# ---------------------------------------------------------------- the source's own deadline


def _journal(c: Cluster, node: int, mid: str) -> dict[str, Any]:
    path = Path(c.config.node(node).state_dir or "") / "migrations" / f"{mid}.src.json"
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def test_the_source_resumes_by_itself_when_the_workstation_vanishes(testbed: Testbed, marker: str) -> None:
    """No handover within the hold: the source agent runs the copy again, with no workstation left
    to resolve anything (its agent lingers after the EOF for that)."""
    c = open_criu_cluster(testbed, criu_or_skip())
    mids: list[str] = []
    try:
        job = start_job(c, 1, COUNTER, marker, ready="2 ")

        def vanish(m: migration.Migration) -> None:
            mids.append(m.mid)
            raise KeyboardInterrupt  # the engine dies between dump and transfer

        with pytest.raises(KeyboardInterrupt):
            migration.migrate(c, 1, job["pid"], 2, hold=3.0, hooks={"transfer": vanish})
        assert [s for _, s in host_copies(marker)] == ["T"]
    finally:
        c.stop()
    assert wait_one_running(marker) == _host_pid(job)
    j = _journal(c, 1, mids[0])
    assert j["state"] == "aborted" and "no handover within 3 s" in j["error"], j


def test_a_handover_after_the_hold_is_refused_and_the_source_runs(cluster: Cluster, marker: str) -> None:
    job = start_job(cluster, 1, COUNTER, marker, ready="2 ")

    def slow(m: migration.Migration) -> None:
        deadline = time.monotonic() + DEADLINE
        while agent_mod.proc_state(_host_pid(job)) in ("T", "t"):  # the hold runs out meanwhile
            assert time.monotonic() < deadline, "the source did not resume the copy by itself"
            time.sleep(0.1)

    r = migration.migrate(cluster, 1, job["pid"], 2, hold=1.0, hooks={"transfer": slow})
    # the images went with the hold: the transfer or else the handover fails, and nothing is restored
    assert not r.ok and not r.pending and r.phase == "transfer", r
    assert wait_one_running(marker) == _host_pid(job)
    j = _journal(cluster, 1, r.mid)
    assert j["state"] == "aborted" and "no handover within 1 s" in j["error"], j
    assert cluster.call(2, "mig_state", {"mid": r.mid})["dst"]["state"] == "aborted"


def test_a_target_lost_before_the_commit_point_does_not_keep_the_source_frozen(
        cluster: Cluster, testbed: Testbed, marker: str) -> None:
    """The target hangs for good after the dump: the engine resumes the source as soon as it
    sees the target down (the target was never asked to restore), not after RECONNECT_WAIT."""
    job = start_job(cluster, 1, COUNTER, marker, ready="2 ")
    try:
        r = migration.migrate(cluster, 1, job["pid"], 3, hooks={"transfer": lambda m: tbmod.hang_sshd(testbed, 3)})
        assert not r.ok and not r.pending and r.phase == "transfer", r
        assert wait_one_running(marker) == _host_pid(job)
        assert _journal(cluster, 1, r.mid)["state"] == "aborted"
    finally:
        tbmod.resume_sshd(testbed, 3)
    assert cluster.wait_until(lambda: cluster.node(3).up, 60), cluster.node(3).reason
    assert cluster.call(3, "mig_cleanup", {"mid": r.mid})["state"] == "aborted"


def _page_server(mid: str) -> int:
    """Host PID of the `criu page-server` of migration `mid`."""
    for name in os.listdir("/proc"):
        try:
            argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"page-server" in argv and any(mid.encode() in a for a in argv):
            return int(name)
    raise AssertionError(f"no page server for {mid}")


def test_a_target_lost_during_a_direct_dump_does_not_keep_the_source_frozen(
        cluster: Cluster, testbed: Testbed, marker: str) -> None:
    """The target hangs as the direct dump starts (its page server stopped, its sshd too): its
    kernel still acknowledges, so no error would ever reach the dump and the process would stay
    frozen. Once the target is seen down the source cuts its page stream (`ss -K`): the dump
    fails, CRIU resumes the process."""
    job = start_job(cluster, 1, memory_job(64), marker, "/nonexistent", ready="sum ")
    stopped: list[int] = []

    def hang(m: migration.Migration) -> None:
        stopped.append(_page_server(m.mid))
        os.kill(stopped[0], signal.SIGSTOP)
        tbmod.hang_sshd(testbed, 3)

    try:
        handle = migration.start_migration(cluster, 1, job["pid"], 3, hooks={"dump": hang})
        r = handle.future.result(DEADLINE * 2)  # without the cut: never
        assert r.transfer == "direct" and not r.ok and not r.pending and r.phase == "dump", r
        assert wait_one_running(marker) == _host_pid(job)
        assert _journal(cluster, 1, r.mid)["state"] == "aborted"
    finally:
        tbmod.resume_sshd(testbed, 3)
        for pid in stopped:  # unless the cleanup the engine queued for node 3 killed it meanwhile
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    assert cluster.wait_until(lambda: cluster.node(3).up, 60), cluster.node(3).reason
    cluster.call(3, "mig_cleanup", {"mid": r.mid})
