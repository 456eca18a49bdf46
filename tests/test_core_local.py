"""The cluster core against a real agent on this machine (LocalTransport): no root, no SSH."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from omview.core.cluster import Cluster
from omview.core.config import ClusterConfig, NodeConfig
from omview.core.session import AgentError


def local_cluster(tmp_path: Path, lazy: bool = False, **node_kw: object) -> Cluster:
    node = NodeConfig(id=1, address="local", transport="local", state_dir=str(tmp_path / "state"), **node_kw)  # type: ignore[arg-type]
    return Cluster(ClusterConfig(nodes=[node], interval=0.5, source="test"), lazy_samples=lazy).start()


def _started(tmp_path: Path, lazy: bool):
    c = local_cluster(tmp_path, lazy=lazy)
    try:
        assert c.wait_until(lambda: c.node(1).up, 20), c.node(1).reason
        yield c
    finally:
        c.stop()


@pytest.fixture(params=[False, True], ids=["eager", "lazy"])
def cluster(tmp_path: Path, request: pytest.FixtureRequest):
    """Both ways a session takes samples: decoded as they come (apps), or stored and decoded
    when read (the session hub): every reading test must hold for both."""
    yield from _started(tmp_path, request.param)


@pytest.fixture
def eager_cluster(tmp_path: Path):
    yield from _started(tmp_path, False)


@pytest.fixture
def sleeper():
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        p = subprocess.Popen(["sleep", "300"])
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def test_sample_describes_this_machine(cluster: Cluster) -> None:
    st = cluster.node(1)
    assert st.sample is not None
    assert st.sample.cpus >= 1
    assert 0 < st.sample.mem_available <= st.sample.mem_total
    assert st.sample.hostname == os.uname().nodename
    pids = {p.pid for _, p in cluster.processes(1)}
    assert os.getpid() in pids


def test_process_appears_changes_and_goes(cluster: Cluster, sleeper) -> None:
    p = sleeper()
    assert cluster.wait_until(lambda: cluster.process(1, p.pid) is not None, 10)
    cluster.signal(1, p.pid, "STOP")
    assert cluster.wait_until(lambda: (q := cluster.process(1, p.pid)) is not None and q.state == "T", 10)
    cluster.signal(1, p.pid, "CONT")
    assert cluster.wait_until(lambda: (q := cluster.process(1, p.pid)) is not None and q.state == "S", 10)
    cluster.renice(1, p.pid, 7)
    assert cluster.wait_until(lambda: (q := cluster.process(1, p.pid)) is not None and q.nice == 7, 10)
    cluster.signal(1, p.pid, "KILL")
    p.wait()
    assert cluster.wait_until(lambda: cluster.process(1, p.pid) is None, 10)


def test_stale_identity_is_refused_and_nothing_happens(cluster: Cluster, sleeper) -> None:
    p = sleeper()
    assert cluster.wait_until(lambda: cluster.process(1, p.pid) is not None, 10)
    real = cluster.process(1, p.pid)
    assert real is not None
    with pytest.raises(AgentError) as err:
        cluster.call(1, "signal", {"pid": p.pid, "start": real.start + 1, "sig": "KILL"})
    assert err.value.code == "stale"
    assert p.poll() is None  # still running
    with pytest.raises(AgentError) as err:
        cluster.signal(1, p.pid, "KILL", start=real.start + 1)
    assert err.value.code == "stale"
    assert p.poll() is None


def test_admin_state_survives_a_new_agent(tmp_path: Path) -> None:
    c = local_cluster(tmp_path)
    try:
        assert c.wait_until(lambda: c.node(1).up, 20)
        c.set_admin(1, block=True, speed=12345)
    finally:
        c.stop()
    c = local_cluster(tmp_path)
    try:
        assert c.wait_until(lambda: c.node(1).up, 20)
        admin = c.get_admin(1)
        assert admin.block and admin.speed == 12345
        assert c.wait_until(lambda: (s := c.node(1).sample) is not None and s.speed == 12345, 10)
    finally:
        c.stop()


def test_agent_death_marks_down_then_same_session_reconnects(cluster: Cluster) -> None:
    session = cluster.session(1)
    first_pid = session.agent_info["pid"]
    assert session.connects == 1
    os.kill(first_pid, 9)  # the agent is our own child process
    assert cluster.wait_until(lambda: not cluster.node(1).up, 10)
    assert "connection lost" in cluster.node(1).reason or "agent" in cluster.node(1).reason
    assert cluster.wait_until(lambda: cluster.node(1).up, 20)
    assert cluster.session(1) is session
    assert session.connects == 2 and session.agent_info["pid"] != first_pid


def test_requests_to_a_down_or_unknown_node_fail_clearly(tmp_path: Path) -> None:
    c = local_cluster(tmp_path, python="python3-that-does-not-exist")
    try:
        assert c.wait_until(lambda: c.node(1).reason != "not connected yet", 20)
        st = c.node(1)
        assert not st.up
        assert "missing on the node" in st.reason and "install python3" in st.reason
        with pytest.raises(AgentError) as err:
            c.call(1, "ping")
        assert err.value.code == "down"
        with pytest.raises(AgentError) as err:
            c.call(9, "ping")
        assert err.value.code == "notfound"
    finally:
        c.stop()


def test_missing_psutil_is_named_with_the_package_to_install(tmp_path: Path) -> None:
    wrapper = tmp_path / "python-without-psutil"
    # -S: no site-packages, so psutil cannot be imported, as on a node that lacks it
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    wrapper.chmod(0o755)
    c = local_cluster(tmp_path, python=str(wrapper))
    try:
        assert c.wait_until(lambda: "psutil" in c.node(1).reason, 20), c.node(1).reason
        assert "python3-psutil" in c.node(1).reason
        assert not c.node(1).up
    finally:
        c.stop()


def test_events_reach_subscribers_in_order(eager_cluster: Cluster, sleeper) -> None:
    cluster = eager_cluster
    seen: list[str] = []
    news: list[tuple[int, int]] = []

    def on_event(ev) -> None:
        seen.append(ev.kind)
        news.extend(ev.new)

    unsubscribe = cluster.subscribe(on_event)
    p = sleeper()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(k[0] == p.pid for k in news):
        time.sleep(0.1)
    unsubscribe()
    assert "sample" in seen
    assert any(k[0] == p.pid for k in news)


def test_a_lazy_session_passes_lines_on_and_decodes_them_when_read(tmp_path: Path, sleeper) -> None:
    """The hub's sessions: a sample Event carries the agent's line, undecoded; readers see the
    state the lines make, and the stored lines stay few even when nobody reads."""
    from omview.core.session import LAZY_BATCH

    c = local_cluster(tmp_path, lazy=True)
    raws: list[bytes] = []
    decoded: list[object] = []

    def on_event(ev) -> None:
        if ev.kind == "sample":
            raws.append(ev.raw)
            decoded.append(ev.sample)

    unsubscribe = c.subscribe(on_event)
    try:
        assert c.wait_until(lambda: len(raws) >= 3, 20)
        assert all(r.startswith(b'{"type":"sample",') and b"\n" not in r for r in raws)
        assert decoded[:3] == [None, None, None]
        session = c.session(1)
        assert session._raw  # stored, not decoded: no reader asked yet
        p = sleeper()
        assert c.wait_until(lambda: c.process(1, p.pid) is not None, 10)
        assert not session._raw  # the read decoded them
        st = c.node(1)
        assert st.sample is not None and st.sample.hostname == os.uname().nodename
        # unread, the lines are decoded in batches: never more than LAZY_BATCH are kept
        p.kill()
        p.wait()
        n = len(raws)
        deadline = time.monotonic() + 60
        while len(raws) < n + LAZY_BATCH + 2 and time.monotonic() < deadline:
            assert len(session._raw) < LAZY_BATCH
            time.sleep(0.05)
        assert len(raws) >= n + LAZY_BATCH + 2
        assert 0 < len(session._raw) < LAZY_BATCH
        with c._lock:  # straight from the state, no reader's settle: the batch was applied
            assert all(k[0] != p.pid for k in c._states[1].procs)
    finally:
        unsubscribe()
        c.stop()
