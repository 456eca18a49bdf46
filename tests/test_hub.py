"""The session hub: one agent per node however many apps run, snapshot + events, recovery after kill -9.

Two halves: simulated nodes (SimFarm in the hub process, fast, no root), and the real 3-node
testbed (fixture `testbed`), where agents are counted on the nodes themselves. Real Unix sockets,
real hub processes (detached, as apps start them); every hub a test starts is ended by its PID.
The GUI-level "omview, omprocs and ommigmon together" test waits for those apps: here the apps
are three HubCluster clients in separate processes (tests/hub_client_app.py-like inline script).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from omview.core import hub as hubmod
from omview.core import hubpaths
from omview.core import session as sessmod
from omview.core import testbed as tbmod
from omview.core.cluster import Cluster, open_cluster
from omview.core.config import default_cluster, load_cluster, load_settings
from omview.core.hub import HubServer
from omview.core.hubclient import HUB_RESTARTED, HubCluster, HubError
from omview.core.hubpaths import HubPaths
from omview.core.model import NodeState
from omview.core.session import AgentError, Event
from omview.core.simulate import SimFarm
from omview.core.testbed import Testbed

SIM_NODES = 3
SIM_INTERVAL = 0.2


# ---------------------------------------------------------------- helpers


def wait_for(cond: Callable[[], Any], timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(step)


def pid_alive(pid: int) -> bool:
    try:
        p = psutil.Process(pid)
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class Hubs:
    """A private runtime folder (XDG_RUNTIME_DIR) and every hub started in it, ended by PID."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pids: set[int] = set()

    def paths(self, config: Any) -> HubPaths:
        return HubPaths.for_config(config)

    def note(self, pid: int) -> int:
        if pid:
            self.pids.add(pid)
        return pid

    def pid_of(self, config: Any) -> int | None:
        pid = hubpaths.hub_pid(self.paths(config))
        if pid:
            self.pids.add(pid)
        return pid

    def end_all(self) -> None:
        for pid in self.pids:
            try:
                if pid_alive(pid) and "omview" in " ".join(psutil.Process(pid).cmdline()):
                    os.kill(pid, signal.SIGKILL)
            except (psutil.Error, ProcessLookupError):
                pass

    def running(self) -> list[int]:
        """PIDs of hub processes serving from our runtime folder."""
        out = []
        for p in psutil.process_iter(["cmdline"]):
            try:
                if "omview.core.hub" in (p.info["cmdline"] or []) and \
                        p.environ().get("XDG_RUNTIME_DIR") == str(self.root) and pid_alive(p.pid):
                    out.append(p.pid)
            except psutil.Error:
                pass
        return out


def sim_config() -> Any:
    return SimFarm(SIM_NODES, procs_per_node=20).config(SIM_INTERVAL)


def sim_command(*extra: str, idle: float = 30) -> list[str]:
    return [sys.executable, "-m", "omview.core.hub", "--simulate", str(SIM_NODES), "--interval", str(SIM_INTERVAL),
            "--procs", "20", "--idle", str(idle), *extra]


def sim_client(hubs: Hubs, *extra: str, name: str = "test", idle: float = 30) -> HubCluster:
    c = HubCluster(sim_config(), hub_command=sim_command(*extra, idle=idle), client=name).start()
    hubs.note(c.hub_pid)
    return c


def keys(c: Any, node_id: int | None = None) -> set[tuple[int, int, int]]:
    return {(n, p.pid, p.start) for n, p in c.processes(node_id)}


def node_view(st: NodeState) -> tuple[Any, ...]:
    return (st.id, st.up, st.reason, st.sample)


def full_view(c: Any) -> tuple[Any, ...]:
    nodes = tuple(node_view(st) for st in c.nodes())
    procs = tuple(sorted(((n, p.pid, p.start), tuple(sorted(vars(p).items()))) for n, p in c.processes()))
    return nodes, procs


# ---------------------------------------------------------------- simulated nodes


def test_paths_are_private_and_per_configuration(hubs: Hubs) -> None:
    a = hubs.paths(sim_config())
    b = hubs.paths(SimFarm(4).config(SIM_INTERVAL))
    assert a.socket != b.socket and a.socket.parent == b.socket.parent == hubs.root / "omview"
    assert (a.socket.parent.stat().st_mode & 0o777) == 0o700
    # the settings an app starts a hub with hash like the app's own configuration
    for config in (default_cluster(), sim_config()):
        paths = hubs.paths(config)
        if config.nodes[0].transport == "sim":
            continue  # simulated nodes are not a settings file's business
        assert hubpaths.config_hash(load_settings(hubmod.write_settings(config, paths))) == paths.key
        assert (paths.settings.stat().st_mode & 0o777) == 0o600


def test_fallback_runtime_dir_is_private_and_not_in_tmp(tmp_path: Path) -> None:
    d = hubpaths.runtime_dir({"HOME": str(tmp_path)})
    assert d == tmp_path / ".cache" / "omview" / "run"
    assert (d.stat().st_mode & 0o777) == 0o700


@pytest.mark.parametrize("passthrough", [True, False], ids=["agent-lines", "encoded-events"])
def test_snapshot_on_attach_equals_the_hubs_cluster(hubs: Hubs, passthrough: bool,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process hub on a SimFarm: an app's copy is the hub's Cluster, row for row, whether the
    hub passes the agents' sample lines through or (lines its lazy sessions do not recognise as
    samples, so they decode them at once) encodes Events."""
    if not passthrough:
        monkeypatch.setattr(sessmod, "SAMPLE_PREFIX", b"no agent line starts like this")
    farm = SimFarm(SIM_NODES, procs_per_node=30, churn=0.2)
    config = farm.config(SIM_INTERVAL)
    server = HubServer(config, transport_factory=farm.transport).start()
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        direct = server.cluster
        assert direct.wait_until(lambda: all(n.up for n in direct.nodes()), 10)
        early = HubCluster(config, autostart=False, client="early").start()
        samples: dict[int, int] = {}
        early.subscribe(lambda ev: samples.__setitem__(ev.node_id, samples.get(ev.node_id, 0) + 1)
                        if ev.kind == "sample" else None)
        # several samples (deltas) and process changes after the snapshot, on every node
        assert early.wait_until(lambda: all(samples.get(i, 0) >= 5 for i in farm.nodes), 10), samples
        for i in farm.nodes:
            farm.hang(i)  # hold every node still: what the hub has is what an app must have
        assert wait_for(lambda: full_view(early) == full_view(direct), 5), "early client diverged"
        late = HubCluster(config, autostart=False, client="late").start()  # attach while nothing moves
        assert full_view(late) == full_view(direct)
        assert [n.id for n in late.nodes()] == [1, 2, 3] and late.session(1).agent_info["hostname"] == "sim1"
        late.stop()
        for i in farm.nodes:
            farm.hang(i, False)
        early.stop()
    finally:
        server.shutdown()
        t.join(10)
        farm.stop()
    assert not server.paths.socket.exists()


def test_samples_reach_apps_as_the_agents_lines(hubs: Hubs) -> None:
    """The hub forwards each agent sample line as it came, the node's id spliced in: no decoding
    and encoding again per sample. Read off the socket as an app would."""
    farm = SimFarm(SIM_NODES, procs_per_node=5)
    config = farm.config(SIM_INTERVAL)
    server = HubServer(config, transport_factory=farm.transport).start()
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        assert server.cluster.wait_until(lambda: all(n.up for n in server.cluster.nodes()), 10)
        sock.connect(str(server.paths.socket))
        sock.sendall(b'{"op":"attach","client":"test"}\n')
        sock.settimeout(10)
        buf = b""
        samples: dict[int, list[dict[str, Any]]] = {}
        while sum(len(v) for v in samples.values()) < 3 * SIM_NODES:
            data = sock.recv(1 << 16)
            assert data, "the hub hung up"
            buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if line.startswith(b'{"n":'):
                    assert b'"type":"sample","seq":' in line[:40], line[:80]
                    msg = json.loads(line)
                    samples.setdefault(msg["n"], []).append(msg)
                else:
                    assert json.loads(line)["type"] in ("hello", "snapshot", "event"), line[:80]
        assert set(samples) == set(farm.nodes)
        for node_id, msgs in samples.items():
            seqs = [m["seq"] for m in msgs]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs  # every line once, in order
            assert all(m["node"]["hostname"] == f"sim{node_id}" for m in msgs)
    finally:
        sock.close()
        server.shutdown()
        t.join(10)
        farm.stop()


def test_omctl_quick_path_asks_the_hub_without_attaching(hubs: Hubs, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """`omctl status` through a recorded lookup: the hub renders the table, builds no snapshot for
    it (the one-question client never attaches), and an edited cluster file voids the record."""
    from omview import quickctl

    farm = SimFarm(SIM_NODES, procs_per_node=5)
    server = HubServer(farm.config(SIM_INTERVAL), transport_factory=farm.transport).start()
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(quickctl, "RACY_NS", 0)
    settings = tmp_path / "sim.toml"
    settings.write_text("# the simulated cluster\n")
    try:
        assert server.cluster.wait_until(lambda: all(n.up for n in server.cluster.nodes()), 10)
        before = server.info()
        assert quickctl.remember("sim.toml", [str(settings)], server.paths.key, "sim.toml")
        assert quickctl.quick_status(["--cluster", "sim.toml", "status"]) == quickctl.EXIT_OK
        table = capsys.readouterr().out.splitlines()
        assert table[0].split()[:4] == ["ID", "NAME", "ADDRESS", "STATE"]
        assert [ln.split()[1] for ln in table[1:]] == ["sim1", "sim2", "sim3"], table
        assert quickctl.quick_status(["--cluster", "sim.toml", "--timeout", "5", "status", "--json"]) == 0
        got = json.loads(capsys.readouterr().out)
        assert got["cluster"] == "sim.toml" and [n["id"] for n in got["nodes"]] == [1, 2, 3]
        after = server.info()
        assert after["connections"] == before["connections"] + 2
        assert after["attaches"] == before["attaches"], "omctl status made the hub build a snapshot"
        with settings.open("a") as f:
            f.write("[cluster]\n")  # the file may now name another cluster, so another hub
        assert quickctl.quick_status(["--cluster", "sim.toml", "status"]) is None
        assert server.info()["connections"] == after["connections"]
    finally:
        server.shutdown()
        t.join(10)
        farm.stop()


def test_any_event_kind_reaches_every_app(hubs: Hubs) -> None:
    """Migration progress (and any later kind) emitted in the hub reaches every attached app: a
    migration started from omprocs shows in ommigmon. Emitted here as the migration engine does."""
    farm = SimFarm(SIM_NODES, procs_per_node=5)
    config = farm.config(SIM_INTERVAL)
    server = HubServer(config, transport_factory=farm.transport).start()
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    apps = [HubCluster(config, autostart=False, client=name).start() for name in ("omprocs", "ommigmon")]
    got: list[list[Event]] = [[], []]
    for app, box in zip(apps, got, strict=True):
        app.subscribe(lambda ev, box=box: box.append(ev) if ev.kind == "migration" else None)
    try:
        progress = {"mid": "m1", "phase": "dump", "source": 2, "target": 3, "pid": 1001, "bytes": 4096, "total": 8192}
        emit = getattr(server.cluster, "emit", None) or server.cluster._emit
        emit(Event("migration", 2, message="dump", data=progress))
        for box in got:
            assert wait_for(lambda box=box: len(box) == 1, 5)
            ev = box[0]
            assert (ev.kind, ev.node_id, ev.message, ev.data) == ("migration", 2, "dump", progress)
    finally:
        for app in apps:
            app.stop()
        server.shutdown()
        t.join(10)
        farm.stop()


def test_events_keep_the_copy_whole_under_churn(hubs: Hubs) -> None:
    """Every sample's new/changed/gone applied: the copy stays equal to a fresh snapshot."""
    c = sim_client(hubs)
    seen: list[Event] = []
    c.subscribe(seen.append)
    try:
        assert c.wait_until(lambda: sum(1 for e in seen if e.kind == "sample" and e.gone) >= 3, 20)
        for _ in range(3):
            fresh = HubCluster(sim_config(), autostart=False).start()
            same = wait_for(lambda fresh=fresh: keys(fresh) == keys(c), 2, 0.005)
            fresh.stop()
            if same:
                break
        assert same
    finally:
        c.stop()


def test_wait_until_predicate_may_read_the_cluster(hubs: Hubs) -> None:
    """A wait_until predicate may call snapshot()/nodes()/processes() on either cluster while
    events flow: it runs without the cluster's lock (it used to hold it, and snapshot() then
    waited for the lock's holder: a TimeoutError on a Cluster, a hang on a HubCluster)."""
    farm = SimFarm(SIM_NODES, procs_per_node=10, churn=0.2)
    config = farm.config(SIM_INTERVAL)
    server = HubServer(config, transport_factory=farm.transport).start()
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    app = HubCluster(config, autostart=False, client="waiter").start()
    try:
        for c in (server.cluster, app):
            samples: list[int] = []
            c.subscribe(lambda ev, box=samples: box.append(ev.node_id) if ev.kind == "sample" else None)
            looks: list[int] = []
            outcome: list[Any] = []

            def predicate(c: Any = c, looks: list[int] = looks, box: list[int] = samples) -> bool:
                states = c.snapshot()
                looks.append(len(states))
                assert [n.id for n in c.nodes()] == [1, 2, 3]
                c.processes()
                return len(box) >= 5 * SIM_NODES and all(st.up and st.procs for st in states)

            def wait(c: Any = c, predicate: Callable[[], bool] = predicate, out: list[Any] = outcome) -> None:
                try:
                    out.append(c.wait_until(predicate, 60))
                except BaseException as exc:
                    out.append(exc)

            waiter = threading.Thread(target=wait, daemon=True)
            waiter.start()
            waiter.join(90)  # a hang guard, not a speed check
            assert not waiter.is_alive(), f"{type(c).__name__}.wait_until hangs when its predicate reads the cluster"
            assert outcome == [True], outcome
            assert len(looks) > 1 and set(looks) == {SIM_NODES}, looks  # called again after events
            assert c.wait_ready(5)
    finally:
        app.stop()
        server.shutdown()
        t.join(10)
        farm.stop()


def test_three_apps_in_three_processes_share_one_hub(hubs: Hubs) -> None:
    """No hub running; three apps start at once: one hub wins the lock, all three use it."""
    script = textwrap.dedent(f"""
        import json, sys
        from omview.core.hubclient import HubCluster
        from omview.core.simulate import SimFarm
        c = HubCluster(SimFarm({SIM_NODES}, procs_per_node=20).config({SIM_INTERVAL}),
                       hub_command={sim_command()!r}, client="app" + sys.argv[1]).start()
        c.wait_until(lambda: all(n.up for n in c.nodes()), 10)
        print(json.dumps({{"hub": c.hub_pid, "procs": len(c.processes())}}), flush=True)
        sys.stdin.read()
        c.stop()
    """)
    apps = [subprocess.Popen([sys.executable, "-c", script, str(i)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True) for i in range(3)]
    try:
        reports = [json.loads(a.stdout.readline()) for a in apps if a.stdout]
        hub_pids = {r["hub"] for r in reports}
        for p in hub_pids:
            hubs.note(p)
        assert len(hub_pids) == 1 and all(r["procs"] == SIM_NODES * 20 for r in reports), reports
        hub_pid = hub_pids.pop()
        probe = HubCluster(sim_config(), autostart=False, client="probe").start()
        info = probe.hub_info()
        probe.stop()
        assert info["pid"] == hub_pid and sum(1 for n in info["clients"] if n.startswith("app")) == 3, info
        assert hubs.running() == [hub_pid]
    finally:
        for a in apps:
            if a.stdin:
                a.stdin.close()
            a.wait(10)


def test_kill_9_the_hub_apps_recover_and_no_node_goes_down(hubs: Hubs) -> None:
    a = sim_client(hubs, name="a")
    b = sim_client(hubs, name="b")
    # the hub they restart reaches its nodes only after a second, as an SSH hub would: until then
    # its snapshot says "not connected yet", which must not turn a lamp red
    a.hub_command = b.hub_command = sim_command("--slow-connect", "1")
    events: list[Event] = []
    a.subscribe(events.append)
    try:
        assert a.wait_until(lambda: all(n.up for n in a.nodes()) and len(keys(a)) == 60, 10)
        old = a.hub_pid
        before = {n.id: n.up for n in a.nodes()}
        t0 = time.monotonic()
        os.kill(old, signal.SIGKILL)
        assert a.wait_until(lambda: not a.hub_connected, 5)
        assert all(n.up for n in a.nodes())  # the link is down, not the nodes
        assert a.wait_until(lambda: a.hub_connected and a.hub_pid != old, 10), a.hub_reason
        assert b.wait_until(lambda: b.hub_connected and b.hub_pid == a.hub_pid, 10), b.hub_reason
        print(f"reattached {time.monotonic() - t0:.2f} s after kill -9")
        hubs.note(a.hub_pid)
        # the process table is whole again: the new hub's full samples (a new farm: new processes)
        assert a.wait_until(lambda: len(keys(a)) == 60 and all(len(keys(a, i)) == 20 for i in (1, 2, 3)), 10)
        assert wait_for(lambda: keys(a) == keys(b), 5)
        assert before == {n.id: True for n in a.nodes()}
        assert not [e for e in events if e.kind == "down"], [e for e in events if e.kind == "down"]
        hub_events = [e.data["up"] for e in events if e.kind == "hub"]
        assert hub_events == [False, True]
        assert not pid_alive(old)
    finally:
        a.stop()
        b.stop()


def test_requests_in_flight_during_kill_complete_or_fail_clearly(hubs: Hubs) -> None:
    """Node 3 of the first hub never answers (as if hung): its requests are in flight when we kill
    the hub. A read is sent again to the new hub and completes; a signal fails with the text."""
    c = sim_client(hubs, "--mute", "3", name="inflight")
    try:
        assert c.wait_until(lambda: len(keys(c, 3)) == 20, 10)
        c.hub_command = sim_command()  # the restarted hub answers
        proc = c.processes(3)[0][1]
        read = c.request(3, "get_admin")
        kill_result: list[BaseException | None] = []

        def send_signal() -> None:
            try:
                c.signal(3, proc.pid, "CONT")
                kill_result.append(None)
            except BaseException as exc:
                kill_result.append(exc)

        t = threading.Thread(target=send_signal)
        t.start()
        time.sleep(0.3)  # let both reach the hub (not a timing assertion: either order is fine below)
        old = c.hub_pid
        os.kill(old, signal.SIGKILL)
        assert read.result(15)["block"] is False  # resent to the new hub, answered there
        t.join(30)
        assert len(kill_result) == 1
        exc = kill_result[0]
        assert isinstance(exc, AgentError) and exc.code == "hub" and str(exc) == HUB_RESTARTED, exc
        hubs.note(c.hub_pid)
        # and after the restart, actions work again
        assert c.wait_until(lambda: c.hub_connected and len(keys(c, 3)) == 20, 10)
        p = c.processes(3)[0][1]
        c.signal(3, p.pid, "CONT")
    finally:
        c.stop()


def test_requests_made_while_the_hub_is_away_are_sent_when_it_is_back(hubs: Hubs) -> None:
    c = sim_client(hubs, name="patient")
    try:
        c.autostart = False  # nobody restarts it until we say so
        old = c.hub_pid
        os.kill(old, signal.SIGKILL)
        assert c.wait_until(lambda: not c.hub_connected, 5)
        fut = c.request(2, "set_admin", {"quiet": True})
        assert not fut.done()
        c.autostart = True
        assert fut.result(15)["quiet"] is True
        hubs.note(c.hub_pid)
        assert c.hub_pid != old
    finally:
        c.stop()


def test_stale_socket_is_cleaned_up_and_a_second_hub_refuses(hubs: Hubs) -> None:
    config = sim_config()
    paths = hubs.paths(config)
    c = sim_client(hubs)
    pid = c.hub_pid
    c.stop()
    # a second hub for the same configuration refuses: the lock is held
    r = subprocess.run(sim_command("--foreground"), capture_output=True, text=True, timeout=30)
    assert r.returncode == 3 and "already runs" in r.stdout + r.stderr and str(pid) in r.stdout + r.stderr
    os.kill(pid, signal.SIGKILL)

    def refused() -> bool:
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(str(paths.socket))
            return False
        except ConnectionRefusedError:
            return True
        finally:
            s.close()

    # the main thread turns zombie before the others have closed the process's files: poll
    assert wait_for(lambda: not pid_alive(pid) and refused(), 15), (pid, hubs.running())
    assert paths.socket.exists()  # kill -9 leaves it behind
    # an app that finds it (without starting a hub) says so and removes it
    with pytest.raises(HubError, match="died"):
        HubCluster(config, autostart=False).start()
    assert not paths.socket.exists()
    # a hub started over a leftover socket file removes it itself
    leftover = socket.socket(socket.AF_UNIX)
    leftover.bind(str(paths.socket))
    leftover.close()
    assert paths.socket.exists()
    c = sim_client(hubs)
    assert c.wait_until(lambda: all(n.up for n in c.nodes()), 10)
    c.stop()


def test_hub_exits_when_idle_and_removes_its_socket(hubs: Hubs) -> None:
    c = sim_client(hubs, idle=1)
    pid = c.hub_pid
    paths = c.paths
    assert c.wait_until(lambda: all(n.up for n in c.nodes()), 10)
    assert pid_alive(pid)
    c.stop()
    assert wait_for(lambda: not pid_alive(pid), 15)
    assert not paths.socket.exists() and hubpaths.hub_pid(paths) is None


def test_another_uid_cannot_attach(hubs: Hubs) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to become another user")
    c = sim_client(hubs)
    paths = c.paths
    probe = textwrap.dedent("""
        import json, os, socket, sys
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)  # a hub that served us would not hang up: fail, do not hang
        try:
            s.connect(sys.argv[1])
        except OSError as exc:
            print(json.dumps({"uid": os.getuid(), "connect": exc.__class__.__name__})); sys.exit()
        try:
            s.sendall(b'{"op": "attach", "client": "intruder"}\\n')  # what an app asks first
        except OSError:
            pass  # refused and hung up already
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (TimeoutError, ConnectionResetError):  # reset: it hung up on our unread request
                break
            if not chunk:
                break
            data += chunk
        print(json.dumps({"uid": os.getuid(), "connect": "ok", "got": data.decode()}))
    """)
    import pwd

    nobody = pwd.getpwnam("nobody")
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable

    def run_probe() -> dict[str, Any]:
        # os.setgroups/setgid/setuid in the forked child before exec (subprocess's user/group)
        r = subprocess.run([python, "-I", "-c", probe, str(paths.socket)], capture_output=True, text=True,
                           timeout=30, user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[], cwd="/")
        assert r.returncode == 0, r.stderr
        return dict(json.loads(r.stdout))

    try:
        # 1. the 0700 folder and the 0600 socket keep other users out
        res = run_probe()
        assert res["uid"] == nobody.pw_uid and res["connect"] == "PermissionError", res
        # 2. even when the file modes let them in, SO_PEERCRED does not: the hub refuses and hangs up
        os.chmod(paths.socket.parent, 0o711)
        os.chmod(hubs.root, 0o711)
        os.chmod(paths.socket, 0o666)
        res = run_probe()
        assert res["connect"] == "ok", res
        msgs = [json.loads(line) for line in res["got"].splitlines() if line]
        assert [m["type"] for m in msgs] == ["refused"] and f"uid {os.getuid()} only" in msgs[0]["reason"], msgs
        assert c.hub_info()["clients"] == [c.client + f" (pid {os.getpid()})"]  # ours still served
    finally:
        os.chmod(paths.socket.parent, 0o700)
        os.chmod(hubs.root, 0o700)
        c.stop()


def test_a_hub_that_cannot_start_says_why_at_once(hubs: Hubs) -> None:
    bad = [sys.executable, "-m", "omview.core.hub", "--cluster", str(hubs.root / "missing.toml")]
    with pytest.raises(HubError, match="missing.toml.*no such file"):
        HubCluster(sim_config(), hub_command=bad).start()
    assert hubs.running() == []


def test_open_cluster_chooses(hubs: Hubs, monkeypatch: pytest.MonkeyPatch) -> None:
    # simulated nodes live in the app: always direct in auto mode
    c = open_cluster(sim_config(), start_hub=False)
    try:
        assert isinstance(c, Cluster)
    finally:
        c.stop()
    config = default_cluster()  # this machine through a local agent: a real hub can serve it
    monkeypatch.setenv("OMVIEW_HUB", "0")
    d = open_cluster(config)
    d.stop()
    assert isinstance(d, Cluster)
    monkeypatch.delenv("OMVIEW_HUB")
    e = open_cluster(config, start_hub=False)  # no hub runs and we may not start one
    e.stop()
    assert isinstance(e, Cluster)
    h = open_cluster(config, mode="hub", client="pytest")  # the default start: python -m omview.core.hub
    try:
        assert isinstance(h, HubCluster)
        hubs.note(h.hub_pid)
        assert h.wait_until(lambda: h.node(1).up, 20), h.node(1).reason
        assert h.call(1, "ping")["time"] > 0
        log = HubPaths.for_config(config).log.read_text()
        assert "pytest" in log and str(h.hub_pid) in log
        auto = open_cluster(config, start_hub=False)  # now one runs: auto takes it
        assert isinstance(auto, HubCluster) and auto.hub_pid == h.hub_pid
        auto.stop()
    finally:
        h.stop()
    os.kill(h.hub_pid, signal.SIGTERM)
    assert wait_for(lambda: not pid_alive(h.hub_pid), 10)


def test_omctl_builds_only_the_parser_of_its_command_and_parses_the_same() -> None:
    """omctl builds the parser of the one command it runs (a good part of a one-shot command's
    time); what it parses is what the whole parser parses."""
    from omview import cli

    for argv in (["status"], ["--cluster", "c.toml", "status", "2", "--json"], ["--timeout", "3", "ps", "--json"],
                 ["block", "3"], ["setdecay", "2", "60"], ["kill", "2:77"], ["hub", "--idle", "0"],
                 ["run", "--best", "--mode", "cpujob", "--", "sleep", "9"], ["migrate", "1:5", "best"],
                 ["testbed", "up", "3"]):
        command = cli._command_of(argv)
        assert command is not None and command in argv
        assert vars(cli.build_parser(command).parse_args(argv)) == vars(cli.build_parser().parse_args(argv)), argv
    assert cli._command_of(["--cluster", "status", "-h"]) is None  # --cluster's value is no command
    assert cli.build_parser("nosuch").format_usage() == cli.build_parser().format_usage()


# ---------------------------------------------------------------- the real testbed


def agent_pids(tb: Testbed) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for node in tb.nodes:
        out[node.id] = []
        for pid in tbmod.node_pids(tb, node.id):
            try:
                if "omview-agent" in " ".join(psutil.Process(pid).cmdline()):
                    out[node.id].append(pid)
            except psutil.Error:
                pass
    return out


def stable(c: Any, node_id: int) -> set[tuple[int, int]]:
    """Process keys of a node without the sessions of whoever is watching (agents, their sshd)."""
    return {(p.pid, p.start) for _, p in c.processes(node_id)
            if "omview-agent" not in p.cmd and not p.cmd.startswith("sshd:")}


APP = textwrap.dedent("""
    import json, sys
    from omview.core.cluster import open_cluster
    from omview.core.config import load_cluster
    c = open_cluster(load_cluster(sys.argv[1]), mode="hub", client=sys.argv[2])
    ok = c.wait_until(lambda: all(n.up for n in c.nodes()), 30)
    print(json.dumps({"hub": c.hub_pid, "up": ok, "procs": len(c.processes())}), flush=True)
    for line in sys.stdin:  # "report" → the app's view, as omprocs would show it
        print(json.dumps({"hub": c.hub_pid, "connected": c.hub_connected,
                          "up": [n.up for n in c.nodes()], "procs": len(c.processes())}), flush=True)
    c.stop()
""")


@pytest.fixture
def apps_on_testbed(testbed: Testbed, hubs: Hubs) -> Iterator[list[subprocess.Popen[str]]]:
    apps: list[subprocess.Popen[str]] = []
    yield apps
    for a in apps:
        if a.stdin:
            a.stdin.close()
        try:
            a.wait(10)
        except subprocess.TimeoutExpired:
            a.kill()
            a.wait()


def start_app(tb: Testbed, apps: list[subprocess.Popen[str]], name: str) -> subprocess.Popen[str]:
    a = subprocess.Popen([sys.executable, "-c", APP, str(tb.cluster_file), name], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    apps.append(a)
    return a


def report(a: subprocess.Popen[str]) -> dict[str, Any]:
    assert a.stdin and a.stdout
    a.stdin.write("report\n")
    a.stdin.flush()
    return dict(json.loads(a.stdout.readline()))


def test_testbed_three_apps_one_agent_per_node_and_kill_9(
    testbed: Testbed, hubs: Hubs, apps_on_testbed: list[subprocess.Popen[str]]
) -> None:
    config = load_cluster(str(testbed.cluster_file))
    # agents of anything else still connected (an earlier test's cluster) are not ours: count the new ones
    others = {n: set(v) for n, v in agent_pids(testbed).items()}

    def ours() -> dict[int, set[int]]:
        return {n: set(v) - others[n] for n, v in agent_pids(testbed).items()}
    firsts = [json.loads(start_app(testbed, apps_on_testbed, name).stdout.readline())  # type: ignore[union-attr]
              for name in ("omview", "omprocs", "ommigmon")]
    hub_pids = {f["hub"] for f in firsts}
    for p in hub_pids:
        hubs.note(p)
    assert len(hub_pids) == 1 and all(f["up"] for f in firsts), firsts
    hub_pid = hub_pids.pop()
    me = HubCluster(config, autostart=False, client="pytest").start()
    events: list[Event] = []
    me.subscribe(events.append)
    try:
        assert me.hub_pid == hub_pid
        # exactly one agent per node, however many apps: counted on the nodes
        assert wait_for(lambda: all(len(v) == 1 for v in ours().values()), 15), (ours(), others)
        before = ours()
        assert len(me.hub_info()["clients"]) == 4
        # kill -9 the hub: every app reattaches by itself, no lamp turns red, tables whole again
        t0 = time.monotonic()
        os.kill(hub_pid, signal.SIGKILL)
        assert me.wait_until(lambda: me.hub_connected and me.hub_pid != hub_pid, 15), me.hub_reason
        hubs.note(me.hub_pid)
        assert me.wait_until(lambda: all(n.up for n in me.nodes()), 15)
        print(f"testbed: reattached {time.monotonic() - t0:.2f} s after kill -9")
        assert not [e for e in events if e.kind == "down"], [(e.node_id, e.message) for e in events]
        for a in apps_on_testbed:
            assert wait_for(lambda a=a: (r := report(a))["connected"] and r["hub"] == me.hub_pid, 15, 0.2)
            r = report(a)
            assert all(r["up"]) and r["procs"] > 0, r
        # the old hub's agents saw their channel close and left; the new hub's are the only ones
        assert wait_for(lambda: all(len(v) == 1 for v in ours().values())
                        and all(ours()[n] != before[n] for n in before), 20), (before, ours())
        # whole: what the apps see is what a direct connection sees (but for each one's own sessions)
        with Cluster(config) as direct:
            assert direct.wait_until(lambda: all(n.up for n in direct.nodes()), 30)
            for i in (1, 2, 3):
                assert wait_for(lambda i=i: stable(me, i) == stable(direct, i), 10), (
                    i, [(who, vars(p)) for who, c in (("hub", me), ("direct", direct)) for _, p in c.processes(i)
                        if (p.pid, p.start) in stable(me, i) ^ stable(direct, i)])
            for a, b in zip(me.nodes(), direct.nodes(), strict=True):
                assert a.up and b.up and a.sample and b.sample
                assert (a.sample.hostname, a.sample.cpus, a.sample.speed, a.sample.mem_total) == (
                    b.sample.hostname, b.sample.cpus, b.sample.speed, b.sample.mem_total)
    finally:
        me.stop()


def test_testbed_requests_during_a_kill_complete_or_fail_clearly(testbed: Testbed, hubs: Hubs) -> None:
    config = load_cluster(str(testbed.cluster_file))
    c = open_cluster(config, mode="hub", client="pytest")
    assert isinstance(c, HubCluster)
    hubs.note(c.hub_pid)
    sleeper = tbmod.node_exec(testbed, 1, [sys.executable, "-c", "import time; time.sleep(600)", "omview-hubtest"])
    try:
        assert c.wait_until(lambda: any("omview-hubtest" in p.cmd for _, p in c.processes(1)), 20)
        proc = next(p for _, p in c.processes(1) if "omview-hubtest" in p.cmd)
        futures: list[Any] = []
        outcomes: list[str] = []
        lock = threading.Lock()

        def hammer(kind: str) -> None:
            for _ in range(200):
                try:
                    if kind == "signal":
                        c.signal(1, proc.pid, "CONT")
                    else:
                        c.renice(1, proc.pid, 3)
                    res = "ok"
                except AgentError as exc:
                    res = "hub" if exc.code == "hub" and str(exc) == HUB_RESTARTED else f"bad {exc.code}: {exc}"
                with lock:
                    outcomes.append(f"{kind}:{res}")

        threads = [threading.Thread(target=hammer, args=(k,)) for k in ("signal", "renice")]
        for t in threads:
            t.start()
        wait_for(lambda: len(outcomes) >= 20, 10)
        old = c.hub_pid
        os.kill(old, signal.SIGKILL)
        futures.append(c.request(2, "get_admin"))
        for t in threads:
            t.join(120)
            assert not t.is_alive()
        assert futures[0].result(20)["stopped"] is False
        hubs.note(c.hub_pid)
        assert c.hub_pid != old
        assert len(outcomes) == 400  # every request ended: done, or a clear failure
        assert not [o for o in outcomes if ":bad" in o], [o for o in outcomes if ":bad" in o]
        assert "renice:hub" not in outcomes  # idempotent: sent again rather than failed
        print({k: outcomes.count(k) for k in set(outcomes)})
    finally:
        sleeper.kill()
        sleeper.wait()
        c.stop()


def _imported(stderr: str) -> set[str]:
    """The modules `python -X importtime` says it imported."""
    return {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if "|" in line}


def test_testbed_omctl_uses_a_running_hub(testbed: Testbed, hubs: Hubs, tmp_path: Path) -> None:
    """omctl as installed (the console script) and by module: through a running hub a command
    costs no SSH handshake, and `omctl status` not even the configuration's parsing once its
    lookup is recorded (omview.quickctl)."""
    script = shutil.which("omctl", path=str(Path(sys.executable).parent))
    assert script, "the omctl console script is missing: make venv installs it"
    cluster = str(tmp_path / "cluster.toml")  # a copy: this test edits it
    shutil.copyfile(testbed.cluster_file, cluster)

    def omctl(*args: str, trace: bool = False, long_way: bool = False) -> subprocess.CompletedProcess[str]:
        entry = ["-m", "omview.cli"] if long_way else [script]
        return subprocess.run([sys.executable, *(["-X", "importtime"] if trace else []), *entry, "--cluster", cluster,
                               *args], capture_output=True, text=True, timeout=60)

    direct = omctl("status", "--json")
    assert direct.returncode == 0, direct.stderr
    r = omctl("hub", long_way=True)
    assert r.returncode == 0 and "session hub" in r.stdout, (r.stdout, r.stderr)
    config = load_cluster(cluster)
    pid = hubs.pid_of(config)
    assert pid
    again = omctl("hub")
    assert again.returncode == 1 and "already runs" in again.stdout + again.stderr
    probe = HubCluster(config, autostart=False).start()
    # a lookup is recorded only once its files are older than a timestamp's tick can hide
    time.sleep(max(0.0, os.stat(cluster).st_ctime + 2.1 - time.time()))
    try:
        assert probe.wait_until(lambda: all(n.up for n in probe.nodes()), 30)
        info = probe.hub_info()
        # 1. the long way: parses the configuration, asks the hub, records the lookup; loads none
        # of the cluster machinery
        traced = omctl("status", "--json", trace=True, long_way=True)
        assert traced.returncode == 0, traced.stderr
        loaded = _imported(traced.stderr)
        assert {"omview.core.hubpaths", "omview.core.config", "omview.quickctl"} <= loaded, sorted(loaded)
        heavy = {"omview.core.session", "omview.core.transport", "omview.core.ioloop", "omview.core.jobs",
                 "omview.core.migration", "omview.core.cluster", "omview.core.hubclient", "omview.core.hub",
                 "omview.core.model", "logging", "concurrent.futures.thread", "subprocess", "paramiko",
                 "psutil", "cryptography", "uuid"}
        assert not loaded & heavy, sorted(loaded & heavy)
        got = json.loads(traced.stdout)
        assert [n["id"] for n in got["nodes"]] == [1, 2, 3] and got["cluster"] == json.loads(direct.stdout)["cluster"]
        assert all(n["up"] and n["hostname"] and n["speed"] and "stay" in n["admin"] for n in got["nodes"]), got
        # 2. the console script with the lookup recorded: no argparse, no configuration parsing, and
        # none of the modules its trim avoids, unless Python's own start-up (site) loaded them
        floor = _imported(subprocess.run([sys.executable, "-X", "importtime", "-c", "pass"], capture_output=True,
                                         text=True, timeout=60).stderr)
        for args in (("status", "--json"), ("status",)):
            quick = omctl(*args, trace=True)
            assert quick.returncode == 0, quick.stderr
            loaded = _imported(quick.stderr)
            assert "omview.quickctl" in loaded, sorted(loaded)
            avoided = {"omview.cli", "omview.core.config", "omview.core.hubpaths", "argparse", "tomllib",
                       "dataclasses", "typing", "socket", "selectors", *heavy}
            assert not (loaded - floor) & avoided, sorted(loaded - floor)
        assert [n["id"] for n in json.loads(omctl("status", "--json").stdout)["nodes"]] == [1, 2, 3]
        table_hub = omctl("status")
        # every one of them asked the hub, and none made it build a snapshot (none attached)
        after = probe.hub_info()
        assert after["connections"] >= info["connections"] + 5 and after["attaches"] == info["attaches"], after
        # the same table as the way without a hub (the hub renders it with the same function)
        os.environ["OMVIEW_HUB"] = "0"
        try:
            table_direct = omctl("status")
        finally:
            del os.environ["OMVIEW_HUB"]
        assert table_hub.returncode == table_direct.returncode == 0
        assert [ln.split()[:4] for ln in table_hub.stdout.splitlines()] == \
            [ln.split()[:4] for ln in table_direct.stdout.splitlines()]
        assert probe.hub_info()["connections"] == after["connections"]  # OMVIEW_HUB=0: not through the hub
        # 3. the cluster file edited: the record is void, the long way answers and records again
        with open(cluster, "a") as f:
            f.write("\n")
        edited = omctl("status", trace=True)
        assert edited.returncode == 0 and "node3" in edited.stdout, edited.stderr
        assert "omview.core.config" in _imported(edited.stderr)
        assert omctl("setspeed", "2", "7777").returncode == 0
        assert probe.wait_until(lambda: (s := probe.node(2).sample) is not None and s.speed == 7777, 10)
        assert omctl("setspeed", "2", "5000").returncode == 0
    finally:
        probe.stop()
        os.kill(pid, signal.SIGTERM)
        assert wait_for(lambda: not pid_alive(pid), 15)


def test_testbed_migration_started_in_one_app_shows_in_another(testbed: Testbed, hubs: Hubs) -> None:
    """omprocs migrates a job through the hub (real CRIU, node 1 → 2); ommigmon, another app on the
    same hub, sees every progress step of it. Both are HubClusters (the GUI apps do not open
    their cluster through open_cluster yet)."""
    from omview.core import criu as criu_mod

    criu = criu_mod.find_criu()
    st = criu_mod.probe(criu, features=False)
    if not st.ready or criu is None:
        pytest.skip(f"no working criu here: {st.reason}")
    config = load_cluster(str(testbed.cluster_file))
    for n in config.nodes:
        n.criu = criu
    omprocs = HubCluster(config, client="omprocs").start()
    hubs.note(omprocs.hub_pid)
    ommigmon = HubCluster(config, autostart=False, client="ommigmon").start()
    marker = f"omhubjob{time.monotonic_ns()}"
    seen: list[dict[str, Any]] = []
    ommigmon.subscribe(lambda ev: seen.append(dict(ev.data)) if ev.kind == "migration" else None)
    try:
        assert ommigmon.wait_until(lambda: all(n.up for n in ommigmon.nodes()), 30), [
            n.reason for n in ommigmon.nodes()]
        try:
            job = omprocs.run_job(1, [sys.executable, "-c", "import time\nwhile True:\n    time.sleep(0.2)\n", marker])
        except AgentError as exc:
            if "unknown op" not in str(exc):
                raise
            pytest.skip(f"the node agent has no jobs/migration yet ({exc})")
        assert omprocs.wait_until(lambda: omprocs.process(1, job["pid"]) is not None, 20)
        steps: list[Any] = []
        r = omprocs.migrate(1, job["pid"], 2, progress=steps.append)
        assert r.ok, r
        # the asking app had every step before its answer (events and replies share one ordered stream)
        own = [p.phase for p in steps if p.mid == r.mid]
        assert own and own[0] == "preflight" and own[-1] == "done" and "restore" in own, own
        # the other app gets the same steps (events are batched: poll)
        assert wait_for(lambda: [d["phase"] for d in seen if d.get("mid") == r.mid] == own, 10), (seen, own)
        assert ommigmon.wait_until(lambda: (p := ommigmon.process(2, r.new_pid or 0)) is not None
                                   and (p.home, p.where, p.nmigs) == (1, 2, 1), 20)
        assert ommigmon.wait_until(lambda: ommigmon.process(1, job["pid"]) is None, 20)
        # Cancel reaches the hub's engine: asked before the engine starts, it stops at the first
        # check, and the process keeps running where it was
        moved = ommigmon.process(2, r.new_pid or 0)
        assert moved is not None
        cancel = threading.Event()
        cancel.set()
        r2 = omprocs.migrate(2, moved.pid, 3, start=moved.start, cancel=cancel)
        assert r2.cancelled and not r2.ok and r2.running_on == 2, r2
        assert ommigmon.wait_until(lambda: (p := ommigmon.process(2, moved.pid)) is not None and p.state != "T", 20)
        assert not [p for _, p in ommigmon.processes(3) if marker in p.cmd]
    finally:
        ommigmon.stop()
        omprocs.stop()
        for _ in range(3):  # every copy of the job, on any node (a PID-namespace init ignores TERM)
            for p in psutil.process_iter(["cmdline"]):
                try:
                    if marker in " ".join(p.info["cmdline"] or []) and p.pid != os.getpid():
                        p.kill()
                except psutil.Error:
                    pass
            time.sleep(0.1)
