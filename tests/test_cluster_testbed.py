"""The core against the real 3-node testbed: OpenSSH servers in namespaces, the agent shipped over SSH."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from omview.core import testbed as tbmod
from omview.core.cluster import Cluster
from omview.core.config import load_cluster
from omview.core.session import AgentError
from omview.core.testbed import Testbed

HOG = "import sys; sys.argv; exec('while True: pass')"


@pytest.fixture(scope="module")
def cluster(testbed: Testbed) -> Iterator[Cluster]:
    c = Cluster(load_cluster(str(testbed.cluster_file))).start()
    try:
        assert c.wait_until(lambda: all(n.up for n in c.nodes()), 30), [n.reason for n in c.nodes()]
        yield c
    finally:
        c.stop()


@pytest.fixture
def node_procs(testbed: Testbed) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes started inside nodes; killed by their host PID afterwards (their nsenter parent)."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait()


def start_on(testbed: Testbed, started: list[subprocess.Popen[bytes]], node_id: int, marker: str,
             code: str = "import time; time.sleep(600)") -> subprocess.Popen[bytes]:
    # a NodeProcess: kill() reaches the command inside the node, not only its host-side nsenter
    p = tbmod.node_exec(testbed, node_id, [sys.executable, "-c", code, marker])
    started.append(p)
    return p


def find(cluster: Cluster, node_id: int, marker: str):
    return next((p for _, p in cluster.processes(node_id) if marker in p.cmd), None)


def test_every_node_is_up_with_its_own_hostname(cluster: Cluster) -> None:
    nodes = cluster.nodes()
    assert [n.id for n in nodes] == [1, 2, 3]
    names = {n.sample.hostname for n in nodes if n.sample}
    assert names == {"node1", "node2", "node3"}


def test_node_limits_follow_their_cgroups(cluster: Cluster) -> None:
    s2 = cluster.node(2).sample
    s1 = cluster.node(1).sample
    assert s1 and s2
    assert s2.cpus == 1 and s2.speed == 5000  # half a CPU: one CPU at half a standard CPU's speed
    assert s2.mem_total == 1024 << 20 and s1.mem_total == 2048 << 20


def test_cpu_hog_raises_only_its_nodes_load_and_shows_only_there(
    cluster: Cluster, testbed: Testbed, node_procs: list[subprocess.Popen[bytes]]
) -> None:
    def idle(i: int) -> bool:
        s = cluster.node(i).sample
        return s is not None and s.load < 30

    # a freshly connected node shows its agent's own start for a few seconds; wait for calm
    assert cluster.wait_until(lambda: all(idle(i) for i in (1, 2, 3)), 60), [n.sample for n in cluster.nodes()]
    marker = f"omview-hog-{time.monotonic_ns()}"
    start_on(testbed, node_procs, 2, marker, HOG)
    assert cluster.wait_until(lambda: find(cluster, 2, marker) is not None, 15)
    assert cluster.wait_until(lambda: (s := cluster.node(2).sample) is not None and s.load > 60, 30), cluster.node(2)
    loads = {n.id: n.sample.load for n in cluster.nodes() if n.sample}
    assert loads[1] < 30 and loads[3] < 30, loads
    assert find(cluster, 1, marker) is None and find(cluster, 3, marker) is None
    hog = find(cluster, 2, marker)
    assert hog is not None and hog.cpu > 20


def test_actions_hit_the_right_process_and_refuse_a_reused_pid(
    cluster: Cluster, testbed: Testbed, node_procs: list[subprocess.Popen[bytes]]
) -> None:
    a, b = f"omview-a-{time.monotonic_ns()}", f"omview-b-{time.monotonic_ns()}"
    start_on(testbed, node_procs, 1, a)
    start_on(testbed, node_procs, 1, b)
    assert cluster.wait_until(lambda: find(cluster, 1, a) and find(cluster, 1, b), 15)
    pa, pb = find(cluster, 1, a), find(cluster, 1, b)
    assert pa and pb
    cluster.signal(1, pa.pid, "STOP")
    assert cluster.wait_until(lambda: (p := find(cluster, 1, a)) is not None and p.state == "T", 10)
    assert find(cluster, 1, b).state != "T"
    cluster.signal(1, pa.pid, "CONT")
    assert cluster.wait_until(lambda: (p := find(cluster, 1, a)) is not None and p.state == "S", 10)
    cluster.renice(1, pb.pid, 5)
    assert cluster.wait_until(lambda: (p := find(cluster, 1, b)) is not None and p.nice == 5, 10)
    assert find(cluster, 1, a).nice == 0
    # same PID, another start time: what a reused PID looks like to the agent
    with pytest.raises(AgentError) as err:
        cluster.call(1, "signal", {"pid": pb.pid, "start": pb.start - 1, "sig": "KILL"})
    assert err.value.code == "stale"
    assert find(cluster, 1, b) is not None
    cluster.signal(1, pb.pid, "KILL")
    assert cluster.wait_until(lambda: find(cluster, 1, b) is None, 10)
    assert find(cluster, 1, a) is not None


def test_stopped_sshd_marks_node_down_and_the_same_session_comes_back(cluster: Cluster, testbed: Testbed) -> None:
    session = cluster.session(3)
    connects = session.connects
    t0 = time.monotonic()
    tbmod.stop_sshd(testbed, 3)
    try:
        assert cluster.wait_until(lambda: not cluster.node(3).up, 10)
        print(f"node 3 down {time.monotonic() - t0:.2f} s after its sshd stopped")
        assert cluster.node(1).up and cluster.node(2).up
    finally:
        tbmod.start_sshd(testbed, 3)
    assert cluster.wait_until(lambda: cluster.node(3).up, 45), cluster.node(3).reason
    assert cluster.session(3) is session and session.connects == connects + 1


def test_hung_node_goes_down_and_up_again_without_a_reconnect(cluster: Cluster, testbed: Testbed) -> None:
    session = cluster.session(2)
    connects = session.connects
    tbmod.hang_sshd(testbed, 2)
    try:
        assert cluster.wait_until(lambda: not cluster.node(2).up, 10)
        assert "no sample" in cluster.node(2).reason
    finally:
        tbmod.resume_sshd(testbed, 2)
    assert cluster.wait_until(lambda: cluster.node(2).up, 20)
    assert session.connects == connects  # the same channel carried on


def test_unknown_and_changed_host_keys_are_refused_with_fingerprints(testbed: Testbed, tmp_path: Path) -> None:
    config = load_cluster(str(testbed.cluster_file))
    # unknown: an empty known_hosts
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    c = Cluster(dataclasses.replace(config, known_hosts=str(empty))).start()
    try:
        assert c.wait_until(lambda: c.node(1).reason.startswith("hostkey"), 15), c.node(1).reason
        reason = c.node(1).reason
        assert "SHA256:" in reason and "accept_new_host_keys" in reason and not c.node(1).up
    finally:
        c.stop()
    # changed: node 1's address with node 2's key
    lines = testbed.known_hosts.read_text().splitlines()
    key2 = next(line for line in lines if line.startswith(testbed.nodes[1].address + " ")).split(" ", 1)[1]
    wrong = tmp_path / "known_hosts_wrong"
    wrong.write_text(f"{testbed.nodes[0].address} {key2}\n")
    c = Cluster(dataclasses.replace(config, known_hosts=str(wrong))).start()
    try:
        assert c.wait_until(lambda: "CHANGED" in c.node(1).reason, 15), c.node(1).reason
        assert c.node(1).reason.count("SHA256:") == 2
    finally:
        c.stop()
    # accept-new: accepted and written down
    fresh = tmp_path / "known_hosts_new"
    fresh.write_text("")
    c = Cluster(dataclasses.replace(config, known_hosts=str(fresh), accept_new_host_keys=True)).start()
    try:
        assert c.wait_until(lambda: c.node(1).up, 20), c.node(1).reason
        assert testbed.nodes[0].address in fresh.read_text()
    finally:
        c.stop()


def test_admin_state_survives_an_agent_restart(testbed: Testbed) -> None:
    config = load_cluster(str(testbed.cluster_file))
    with Cluster(config) as c:
        assert c.wait_until(lambda: c.node(3).up, 20)
        c.set_admin(3, block=True, slow_decay=950)
    with Cluster(config) as c:  # new SSH connections, new agent processes
        assert c.wait_until(lambda: all(n.up for n in c.nodes()), 20)
        admin = c.get_admin(3)
        assert admin.block and admin.slow_decay == 950
        assert not c.get_admin(1).block
        c.set_admin(3, block=False, slow_decay=975)


def omctl(testbed: Testbed, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "omview.cli", "--cluster", str(testbed.cluster_file), *args],
        capture_output=True, text=True, timeout=60,
    )


def test_omctl_speaks_mosctl(testbed: Testbed) -> None:
    r = omctl(testbed, "status", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [n["id"] for n in doc["nodes"]] == [1, 2, 3] and all(n["up"] for n in doc["nodes"])
    assert omctl(testbed, "isup", "2").stdout.strip() == "yes"
    assert omctl(testbed, "setspeed", "2", "7777").returncode == 0
    assert omctl(testbed, "getspeed", "2").stdout.strip() == "7777"
    assert omctl(testbed, "block", "1").returncode == 0
    assert "block yes" in omctl(testbed, "status", "1").stdout
    assert omctl(testbed, "noblock", "1").returncode == 0
    assert "block no" in omctl(testbed, "status", "1").stdout
    r = omctl(testbed, "ps", "--node", "2", "--json")
    procs = json.loads(r.stdout)["processes"]
    assert procs and all(p["node"] == 2 for p in procs)
    assert omctl(testbed, "frobnicate").returncode == 2
    assert omctl(testbed, "kill", "2:notapid").returncode == 2
    r = omctl(testbed, "kill", "2:999999")
    assert r.returncode == 1 and "no process 999999" in r.stderr
    omctl(testbed, "setspeed", "2", "5000")
