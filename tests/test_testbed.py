"""The test cluster itself: real namespaces, real sshd, real ssh client, real cgroups.

Tests that break nodes on purpose (down, crash) use their own small testbeds with other names,
so the session testbed stays intact for everyone else.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from omview.core import testbed as tbmod
from omview.core.testbed import Testbed, TestbedError

from .conftest import SshRunner, testbed_unavailable

pytestmark = pytest.mark.testbed


def wait_until(cond: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll `cond` until it holds; fail (not a timing assertion: a deadline for a condition)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def tcp_state(address: str, port: int = 22) -> str:
    """'banner' (an SSH server answered), 'refused', or another short description."""
    try:
        with socket.create_connection((address, port), timeout=5) as s:
            s.settimeout(5)
            data = s.recv(64)
            return "banner" if data.startswith(b"SSH-") else f"no banner: {data!r}"
    except ConnectionRefusedError:
        return "refused"
    except OSError as exc:
        return f"error: {exc}"


def start_job(ssh: SshRunner, node_id: int, tag: str) -> int:
    """Start a detached `sleep` with a unique argument on a node over ssh; its node-local PID."""
    cp = ssh(node_id, f"setsid sleep {tag} </dev/null >/dev/null 2>&1 & echo $!")
    return int(cp.stdout.strip())


def unique_seconds() -> str:
    return f"{3000 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6}"


def host_pids_with_args(tb: Testbed, node_id: int, needle: str) -> list[int]:
    out = []
    for pid in tbmod.node_pids(tb, node_id):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if needle in args:
            out.append(pid)
    return out


# ---------------------------------------------------------------- the session testbed


def test_nodes_answer_over_ssh_with_distinct_hostnames(testbed: Testbed, testbed_ssh: SshRunner) -> None:
    names = {n.id: testbed_ssh(n.id, "hostname").stdout.strip() for n in testbed.nodes}
    assert names == {n.id: f"node{n.id}" for n in testbed.nodes}
    assert len(testbed.nodes) == 3
    assert all(h.init_alive and h.sshd_ready for h in tbmod.check(testbed).values())


def test_files_and_description(testbed: Testbed) -> None:
    root = testbed.root
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert testbed.key_file.exists() and testbed.key_file.with_name("id_ed25519.pub").exists()
    kh = testbed.known_hosts.read_text().splitlines()
    assert [ln.split()[0] for ln in kh] == [n.address for n in testbed.nodes]
    assert all(ln.split()[1] == "ssh-ed25519" and len(ln.split()) == 3 for ln in kh)

    cfg = tomllib.loads(testbed.cluster_file.read_text())
    assert cfg["cluster"] == {"name": testbed.name, "interval": 1.0, "known_hosts": str(testbed.known_hosts)}
    assert cfg["defaults"] == {"user": "root", "port": 22, "key": str(testbed.key_file)}
    assert cfg["node"] == [
        {"id": n.id, "name": n.name, "address": n.address, "state_dir": n.state_dir} for n in testbed.nodes
    ]
    for n in testbed.nodes:
        assert Path(n.state_dir).is_dir() and Path(n.state_dir) == root / n.name / "agent"

    assert tbmod.load(testbed.name) == testbed
    assert tbmod.status(testbed.name) == testbed
    assert tbmod.status("omnone") is None


def test_each_node_sees_only_its_own_processes(testbed: Testbed, testbed_ssh: SshRunner) -> None:
    tag = unique_seconds()
    pid2 = start_job(testbed_ssh, 2, tag)
    try:
        on2 = testbed_ssh(2, "ps -eo pid=,args=").stdout
        on1 = testbed_ssh(1, "ps -eo pid=,args=").stdout
        assert f"sleep {tag}" in on2
        assert f"sleep {tag}" not in on1
        assert any(line.split()[0] == str(pid2) for line in on2.splitlines())
        # PID 1 of every node is its init
        assert testbed_ssh(1, "cat /proc/1/cmdline | tr '\\0' ' '").stdout.count("testbed_init.py") == 1
        # and the host's view of the node agrees
        assert host_pids_with_args(testbed, 2, f"sleep {tag}")
        assert not host_pids_with_args(testbed, 1, f"sleep {tag}")
        assert testbed.nodes[0].init_pid in tbmod.node_pids(testbed, 1)
        assert testbed.nodes[0].init_pid not in tbmod.node_pids(testbed, 2)
    finally:
        testbed_ssh(2, f"kill {pid2}", check=False)


def test_node_exec_runs_inside_the_node(testbed: Testbed) -> None:
    p = tbmod.node_exec(testbed, 2, ["hostname"], stdout=subprocess.PIPE, text=True)
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 0 and out.strip() == "node2"
    cp = tbmod.node_run(testbed, 3, ["sh", "-c", "echo $$; ip -4 -o addr show dev eth0"])
    pid_line, addr_line = cp.stdout.splitlines()
    assert int(pid_line) > 1  # a node-local PID, not the host's
    assert f"inet {testbed.nodes[2].address}/" in addr_line


def test_node_exec_signals_reach_the_command(testbed: Testbed) -> None:
    p = tbmod.node_exec(testbed, 1, ["sleep", unique_seconds()])
    try:
        wait_until(lambda: p.pid_in_node() is not None, what="the command to start")
        inner = p.inner_pid()
        assert inner is not None and inner in tbmod.node_pids(testbed, 1) and p.pid not in tbmod.node_pids(testbed, 1)
        state = lambda pid: Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]  # noqa: E731
        # stopped and continued behind the Popen's back (as an agent does), then killed through it
        os.kill(inner, signal.SIGSTOP)
        wait_until(lambda: state(inner) == "T", what="stopped")
        os.kill(inner, signal.SIGCONT)
        wait_until(lambda: state(inner) != "T", what="continued")
        p.kill()
        assert p.wait(timeout=30) == -signal.SIGKILL
        wait_until(lambda: inner not in tbmod.node_pids(testbed, 1), what="the command to be gone")
    finally:
        p.kill()
        p.wait(timeout=30)


def test_ssh_sessions_get_node_home_and_python_with_psutil(testbed: Testbed, testbed_ssh: SshRunner) -> None:
    out = testbed_ssh(2, "echo $HOME; python3 -c 'import psutil, sys; print(sys.version_info[0])'").stdout
    home, major = out.split()
    assert home == str(testbed.root / "node2" / "home") and major == "3"


def test_nodes_reach_each_other_and_nothing_else(testbed: Testbed, testbed_ssh: SshRunner) -> None:
    n2 = testbed.nodes[1]
    # real ssh from node 1 to node 2 (the key and known_hosts are on the shared filesystem)
    inner = " ".join(tbmod.ssh_argv(testbed, 2, "hostname"))
    assert testbed_ssh(1, inner).stdout.strip() == "node2"
    # plain TCP from inside node 3 to node 2's sshd
    code = (
        "import socket,sys;s=socket.create_connection((sys.argv[1],22),timeout=10);"
        "print(s.recv(64).decode().split('-')[0])"
    )
    cp = tbmod.node_run(testbed, 3, [sys.executable, "-c", code, n2.address], check=True)
    assert cp.stdout.strip() == "SSH"
    # no default route in a node: traffic cannot leave the testbed
    routes = tbmod.node_run(testbed, 1, ["ip", "-4", "route", "show", "table", "main"]).stdout.splitlines()
    assert routes and all(r.startswith(testbed.subnet) for r in routes), routes


def test_stop_and_start_sshd_keeps_jobs(testbed: Testbed, testbed_ssh: SshRunner) -> None:
    node = testbed.nodes[2]
    tag = unique_seconds()
    job = start_job(testbed_ssh, node.id, tag)
    host_job = host_pids_with_args(testbed, node.id, f"sleep {tag}")
    assert len(host_job) == 1
    try:
        tbmod.stop_sshd(testbed, node.id)
        assert tcp_state(node.address) == "refused"
        assert tbmod.check(testbed)[node.id].sshd_ready is False
        assert host_pids_with_args(testbed, node.id, f"sleep {tag}") == host_job  # the job lives on
        tbmod.start_sshd(testbed, node.id)
        assert tcp_state(node.address) == "banner"
        assert f"sleep {tag}" in testbed_ssh(node.id, "ps -eo args=").stdout
        tbmod.start_sshd(testbed, node.id)  # no-op when running
        assert tcp_state(node.address) == "banner"
        # the init reaped the killed sshd (and any orphan): no zombies on the node
        wait_until(lambda: "Z" not in tbmod.node_run(testbed, node.id, ["ps", "-eo", "stat="]).stdout,
                   what="no zombies on the node")
    finally:
        tbmod.start_sshd(testbed, node.id)
        testbed_ssh(node.id, f"kill {job}", check=False)


def test_stop_sshd_also_ends_open_sessions(testbed: Testbed) -> None:
    node = testbed.nodes[0]
    session = subprocess.Popen(tbmod.ssh_argv(testbed, node.id, "echo up; exec sleep 600"),
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert session.stdout is not None and session.stdout.readline().strip() == "up"
        tbmod.stop_sshd(testbed, node.id)
        assert session.wait(timeout=30) != 0  # the session died with its sshd
    finally:
        session.kill()
        session.wait()
        tbmod.start_sshd(testbed, node.id)


def test_hang_and_resume_sshd(testbed: Testbed, testbed_ssh: SshRunner) -> None:
    node = testbed.nodes[1]
    tbmod.hang_sshd(testbed, node.id)
    try:
        sshd = [p for p in tbmod.node_pids(testbed, node.id)
                if os.path.realpath(f"/proc/{p}/exe") == os.path.realpath(testbed.sshd)]
        assert sshd
        states = {Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] for p in sshd}
        assert states == {"T"}
    finally:
        tbmod.resume_sshd(testbed, node.id)
    assert testbed_ssh(node.id, "hostname").stdout.strip() == node.name


def _cgroup_file(pid: int, controller: str, filename: str) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctls, path = line.split(":", 2)
        if controller in ctls.split(","):
            base = Path("/sys/fs/cgroup") / ("cpu" if controller == "cpu" else controller)
            if not base.exists() and controller == "cpu":
                base = Path("/sys/fs/cgroup/cpu,cpuacct")
            return base / path.lstrip("/") / filename
        if ctls == "" and Path("/sys/fs/cgroup/cgroup.controllers").exists():  # v2
            return Path("/sys/fs/cgroup") / path.lstrip("/") / filename
    raise AssertionError(f"no {controller} cgroup for {pid}")


def test_cgroup_limits_apply_to_every_process_of_the_node(testbed: Testbed, testbed_ssh: SshRunner) -> None:
    if testbed.cgroup_version == 0:
        pytest.skip("no cgroups on this machine")
    v2 = testbed.cgroup_version == 2
    for node in testbed.nodes:
        assert node.cpu_quota is not None and node.mem_mb is not None
        quota = round(node.cpu_quota * 100_000)
        if v2:
            assert _cgroup_file(node.init_pid, "", "cpu.max").read_text().split() == [str(quota), "100000"]
            assert int(_cgroup_file(node.init_pid, "", "memory.max").read_text()) == node.mem_mb << 20
        else:
            assert int(_cgroup_file(node.init_pid, "cpu", "cpu.cfs_quota_us").read_text()) == quota
            assert int(_cgroup_file(node.init_pid, "cpu", "cpu.cfs_period_us").read_text()) == 100_000
            mem = _cgroup_file(node.init_pid, "memory", "memory.limit_in_bytes")
            assert int(mem.read_text()) == node.mem_mb << 20
        # a process started over ssh lands in the same cgroups as the init
        own = testbed_ssh(node.id, "cat /proc/self/cgroup").stdout.split()
        assert sorted(own) == sorted(Path(f"/proc/{node.init_pid}/cgroup").read_text().split())
        assert f"omview-{testbed.name}/node{node.id}" in Path(f"/proc/{node.init_pid}/cgroup").read_text()
    assert testbed.nodes[1].cpu_quota == 0.5


def test_known_hosts_are_enforced(testbed: Testbed, testbed_ssh: SshRunner, tmp_path: Path) -> None:
    n1, n2 = testbed.nodes[0], testbed.nodes[1]
    assert testbed_ssh(n1.id, "true").returncode == 0  # StrictHostKeyChecking=yes with our file
    lines = dict(ln.split(" ", 1) for ln in testbed.known_hosts.read_text().splitlines())
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"{n1.address} {lines[n2.address]}\n")  # node 2's key for node 1's address
    cp = testbed_ssh(n1.id, "true", check=False, known_hosts=wrong)
    assert cp.returncode != 0
    assert "host key" in cp.stderr.lower() or "identification has changed" in cp.stderr.lower()
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    cp = testbed_ssh(n1.id, "true", check=False, known_hosts=empty)
    assert cp.returncode != 0 and "host key verification failed" in cp.stderr.lower()


def test_up_refuses_a_subnet_in_use(testbed: Testbed) -> None:
    with pytest.raises(TestbedError, match="in use"):
        tbmod.up(1, name="omtz", subnet=testbed.subnet)
    assert tbmod.leftovers("omtz") == []
    with pytest.raises(TestbedError, match="bad testbed name"):
        tbmod.up(1, name="Bad-Name")
    with pytest.raises(TestbedError, match="no node 9"):
        testbed.node(9)


def test_claim_gives_concurrent_holders_distinct_names() -> None:
    reason = testbed_unavailable()
    if reason:
        pytest.skip(reason)
    with tbmod.claim("omtq") as a, tbmod.claim("omtq") as b:
        assert a != b and a.startswith("omtq") and b.startswith("omtq")
    with tbmod.claim("omtq") as c:  # released again: the first free name is taken again
        assert c == a or a != "omtq"


# ---------------------------------------------------------------- own testbeds: down and crash


@pytest.fixture
def scratch() -> Iterator[str]:
    """Name for a testbed a test may break; removed afterwards whatever happened."""
    reason = testbed_unavailable()
    if reason:
        pytest.skip(reason)
    with tbmod.claim("omtc") as name:
        tbmod.down(name)
        try:
            yield name
        finally:
            tbmod.down(name)


def _cmdline(proc_dir: Path) -> bytes:
    try:
        return (proc_dir / "cmdline").read_bytes()
    except OSError:
        return b""


def _remains(tb: Testbed, pids: list[int]) -> list[str]:
    out = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    out += [f"netns {n.netns}" for n in tb.nodes if n.netns in netns.split()]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    out += [f"link {x}" for x in (tb.bridge, *(f"{tb.name}v{n.id}" for n in tb.nodes)) if f" {x}:" in links
            or f" {x}@" in links]
    out += [f"cgroup {d}" for n in tb.nodes for d in n.cgroups if Path(d).exists()]
    out += [f"pid {p}" for p in pids if Path(f"/proc/{p}").exists()
            and Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
    if tb.root.exists():
        out.append(f"dir {tb.root}")
    return out


def test_down_leaves_nothing_behind(scratch: str) -> None:
    tb = tbmod.up(2, name=scratch, cpu_quota=[0.5, None], mem_mb=[None, 256])
    pids = [p for n in tb.nodes for p in tbmod.node_pids(tb, n.id)]
    assert len(pids) >= 4  # init + sshd on each node
    assert all(n.cgroups for n in tb.nodes)
    tbmod.down(scratch)
    assert _remains(tb, pids) == []
    assert tbmod.leftovers(scratch) == []
    assert tbmod.status(scratch) is None
    tbmod.down(scratch)  # idempotent


def test_up_recovers_after_a_crash(scratch: str) -> None:
    tb = tbmod.up(2, name=scratch, cpu_quota=[0.5, 0.5])
    # a crash: the inits die, the namespaces, bridge, cgroups and files stay; a stray process
    # keeps node 1's network namespace busy
    stray = subprocess.Popen(["ip", "netns", "exec", tb.nodes[0].netns, "sleep", "600"])
    for n in tb.nodes:
        os.kill(n.init_pid, signal.SIGKILL)
    wait_until(lambda: not any(tbmod.check(tb)[n.id].init_alive for n in tb.nodes), what="inits to die")
    assert tbmod.leftovers(scratch)
    tb2 = tbmod.up(2, name=scratch)
    assert stray.wait(timeout=30) == -signal.SIGKILL  # down killed it: it was in our namespace
    for n in tb2.nodes:
        cp = subprocess.run(tbmod.ssh_argv(tb2, n.id, "hostname"), capture_output=True, text=True, timeout=60)
        assert cp.stdout.strip() == n.name, cp.stderr
    assert tb2.cgroup_version == 0 and all(not n.cgroups for n in tb2.nodes)
    assert not any(Path(d).exists() for n in tb.nodes for d in n.cgroups)


def test_failed_up_cleans_up_and_says_why(scratch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = tbmod._sshd_config
    monkeypatch.setattr(tbmod, "_sshd_config", lambda *a: real(*a) + "NoSuchOption yes\n")
    with pytest.raises(TestbedError, match="sshd rejects .*NoSuchOption"):
        tbmod.up(2, name=scratch, cpu_quota=[0.5, 0.5])
    assert tbmod.leftovers(scratch) == []
    monkeypatch.undo()
    # a late failure, with nodes, namespaces and cgroups already there: sshd "never answers"
    monkeypatch.setattr(tbmod, "_banner", lambda *a: False)
    with pytest.raises(TestbedError, match="did not answer on port 22"):
        tbmod.up(2, name=scratch, cpu_quota=[0.5, 0.5], timeout=0.5)
    assert tbmod.leftovers(scratch) == []
    assert not [p for p in Path("/proc").iterdir() if p.name.isdigit()
                and f"/{scratch}/node".encode() in _cmdline(p)]


def test_down_without_description_finds_everything_by_name(scratch: str) -> None:
    tb = tbmod.up(2, name=scratch, mem_mb=[128, 128])
    pids = [p for n in tb.nodes for p in tbmod.node_pids(tb, n.id)]
    (tb.root / "testbed.json").unlink()  # nothing saved: only names are left to go by
    assert tbmod.status(scratch) is None
    assert tbmod.leftovers(scratch)
    tbmod.down(scratch)
    assert _remains(tb, pids) == []
