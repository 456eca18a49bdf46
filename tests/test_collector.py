"""omcollector as a real process against the 3-node testbed, plus its pieces with simulated nodes.

Every wait polls with a deadline; nothing asserts how long something took, except "at most one
interval lost", which is the promise under test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from omcollector import app, control, service
from omcollector.collector import Collector, Options, migration_from_event
from omcollector.metrics import parse_address, render
from omview.core import testbed as tbmod
from omview.core.cluster import Cluster
from omview.core.history import HistoryReader
from omview.core.model import NodeSample, NodeState
from omview.core.session import Event
from omview.core.simulate import SimFarm
from omview.core.testbed import Testbed

INTERVAL = 1.0
#: What the readers draw as a gap (HistoryReader: silence longer than 2.5 intervals).
GAP = 2.5 * INTERVAL
REPO = Path(__file__).resolve().parents[1]


def wait_for(pred: Callable[[], Any], timeout: float, what: str, step: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


class Running:
    """An omcollector --foreground process; stderr (its log) goes to a file outside the history dir."""

    def __init__(self, history: Path, log: Path, *extra: str, cluster: Path | None = None) -> None:
        self.history = history
        self.log = log
        argv = [sys.executable, "-m", "omcollector", "--foreground", "--history", str(history),
                "--interval", str(INTERVAL), *extra]
        if cluster is not None:
            argv += ["--cluster", str(cluster)]
        with open(log, "ab") as f:
            self.proc = subprocess.Popen(argv, stdout=f, stderr=f, cwd=REPO)
        wait_for(self.status, 60, f"the collector to answer (log: {self.log_text()})")

    def status(self) -> dict[str, Any] | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"collector exited {self.proc.returncode}: {self.log_text()}")
        try:
            return control.request(self.history, "status", timeout=5)
        except control.ControlError:
            return None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "omcollector", *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO)


def up_samples(history: Path, node: int, t0: float | None = None) -> int:
    try:
        with HistoryReader(history) as r:
            s = r.samples(node, t0)
            return int(np.sum(s.up == 1))
    except Exception:
        return 0


@pytest.fixture
def collector(testbed: Testbed, tmp_path: Path) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(*extra: str, history: Path | None = None) -> Running:
        r = Running(history or tmp_path / "hist", tmp_path / "collector.log", *extra, cluster=testbed.cluster_file)
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()


# --------------------------------------------------------------------------- testbed


def test_samples_for_every_node_each_interval_a_checkpoint_and_metrics(
        collector: Callable[..., Running], tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    c = collector("--metrics", "127.0.0.1:0")
    hist = c.history
    wait_for(lambda: all(up_samples(hist, n) >= 12 for n in (1, 2, 3)), 90, "12 samples of every node")
    r = cli("-n", "job 42 started", "--history", str(hist))
    assert r.returncode == 0, r.stderr
    with HistoryReader(hist) as reader:
        assert [c.label for c in reader.checkpoints()] == ["job 42 started"]
        assert [n.id for n in reader.nodes()] == [1, 2, 3]
        assert {n.hostname for n in reader.nodes()} == {"node1", "node2", "node3"}
        for node in (1, 2, 3):
            s = reader.samples(node)
            ok = s.up == 1
            t = s.t[ok]
            # one sample per interval: nothing missing between the first and the last
            assert len(t) >= (t[-1] - t[0]) / INTERVAL - 1, (node, np.diff(t))
            assert np.diff(t).max() < GAP, (node, np.diff(t))
            assert not np.isnan(s.load.mean[ok]).any() and (s.mem_total.mean[ok] > 0).all()
        assert reader.processes_at(time.time() - 2), "process lists recorded"
    host, port = c.status()["metrics"]  # type: ignore[index]
    assert host == "127.0.0.1"
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("node_load1", "node_memory_MemTotal_bytes", "node_memory_MemAvailable_bytes", "node_cpu_count",
                 "omview_node_up", "omview_node_speed", "omview_node_load", "omview_migrations"):
        assert name in fams, (name, sorted(fams))
    up = {s.labels["node"]: s.value for s in fams["omview_node_up"].samples}
    assert up == {"1": 1.0, "2": 1.0, "3": 1.0}
    mem = {s.labels["node"]: s.value for s in fams["node_memory_MemTotal_bytes"].samples}
    assert mem["2"] == 1024 << 20  # node 2's cgroup limit


def test_rotate_makes_a_backup_and_the_new_database_continues(collector: Callable[..., Running]) -> None:
    c = collector()
    hist = c.history
    wait_for(lambda: all(up_samples(hist, n) >= 5 for n in (1, 2, 3)), 90, "5 samples of every node")
    r = cli("-r", "--history", str(hist))
    assert r.returncode == 0, r.stderr
    backup = Path(r.stdout.strip().rsplit(" ", 1)[-1])
    assert backup.parent == hist and backup.name.startswith("backup-") and (backup / "history.sqlite").is_file()
    wait_for(lambda: all(up_samples(hist, n) >= 5 for n in (1, 2, 3)), 60, "5 samples in the new database")
    with HistoryReader(backup) as old, HistoryReader(hist) as new:
        assert old.integrity_ok() and new.integrity_ok()
        for node in (1, 2, 3):
            a, b = old.samples(node), new.samples(node)
            assert a.t[-1] < b.t[0] and b.t[0] - a.t[-1] < GAP, "no sample lost in the rotation"
        assert new.processes_at(time.time() - 1)
    assert [f.live for f in app_histories(hist)] == [False, True]


def app_histories(hist: Path) -> list[Any]:
    from omview.core.history import list_histories

    return list_histories(hist)


def test_kill_9_then_restart_loses_at_most_one_interval(collector: Callable[..., Running]) -> None:
    c = collector()
    hist = c.history
    pidfile = control.pidfile_for(hist)
    wait_for(lambda: all(up_samples(hist, n) >= 5 for n in (1, 2, 3)), 90, "5 samples of every node")
    killed_at = time.time()
    os.kill(c.proc.pid, signal.SIGKILL)
    c.proc.wait()
    assert pidfile.exists() and control.running_pid(pidfile) is None  # stale: nobody holds the lock
    with HistoryReader(hist) as r:
        assert r.integrity_ok()
        for node in (1, 2, 3):
            last = r.samples(node).t[-1]
            # the tick in flight is lost, at most: its samples arrived within an interval before the
            # kill, the committed ones within the interval before that (plus the agents' jitter)
            assert last >= killed_at - GAP, f"node {node}: last sample {killed_at - last:.1f} s before kill"
    c2 = collector()  # what systemd's Restart=on-failure does
    assert f"stale PID file {pidfile} (PID {c.proc.pid}" in c2.log_text()
    wait_for(lambda: all(up_samples(hist, n, killed_at) >= 3 for n in (1, 2, 3)), 90, "samples after the restart")
    with HistoryReader(hist) as r:
        assert r.integrity_ok()


def test_a_node_whose_sshd_stops_leaves_a_gap(collector: Callable[..., Running], testbed: Testbed) -> None:
    c = collector()
    hist = c.history
    wait_for(lambda: all(up_samples(hist, n) >= 5 for n in (1, 2, 3)), 90, "5 samples of every node")
    t_stop = time.time()
    tbmod.stop_sshd(testbed, 3)
    try:
        time.sleep(10)  # the outage under test, not a wait for a result
    finally:
        tbmod.start_sshd(testbed, 3)
    t_start = time.time()
    wait_for(lambda: up_samples(hist, 3, t_start) >= 3, 90, "node 3 back in the history")
    with HistoryReader(hist) as r:
        s = r.samples(3)
        inside = (s.t > t_stop + 3) & (s.t < t_start)
        assert inside.any(), "down rows while the node was away"
        assert (s.up[inside] == 0).all() and np.isnan(s.load.mean[inside]).all()
        up = s.up == 1
        assert not np.isnan(s.load.mean[up]).any() and not (s.mem_total.mean[up] == 0).any()
        assert not (s.load.mean[~np.isnan(s.load.mean)] < 0).any()
        for node in (1, 2):  # the others went on
            t = r.samples(node, t_stop, t_start).t
            assert len(t) >= (t_start - t_stop) / INTERVAL - 2 and np.diff(t).max() < GAP


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_full_disk_is_logged_survived_and_writing_resumes(collector: Callable[..., Running],
                                                          tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mnt)], check=True)
    try:
        c = collector(history=mnt / "hist")
        hist = c.history
        wait_for(lambda: all(up_samples(hist, n) >= 3 for n in (1, 2, 3)), 90, "3 samples of every node")
        ballast = mnt / "ballast"
        fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * 65536)
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * 512)
        finally:
            os.close(fd)
        wait_for(lambda: "disk full" in c.log_text(), 120, "a disk-full error in the log")
        st = wait_for(lambda: (s := c.status()) and s["failing"] and s["backlog"] >= 3 and s, 60, "a backlog")
        assert "disk full" in st["failing"] and c.proc.poll() is None
        full_since = time.time()
        ballast.unlink()
        wait_for(lambda: not c.status()["failing"], 60, "writing to resume")  # type: ignore[index]
        assert "writing to" in c.log_text() and "again" in c.log_text()
        with HistoryReader(hist) as r:
            assert r.integrity_ok()
            for node in (1, 2, 3):
                t = r.samples(node).t
                # what came in while the disk was full was kept and written afterwards
                assert ((t > full_since - 2) & (t < full_since)).any()
                assert np.diff(t).max() < GAP
        c.stop()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_two_collectors_on_one_directory_the_second_refuses(testbed: Testbed, tmp_path: Path) -> None:
    hist = tmp_path / "hist"
    common = ["--history", str(hist), "--cluster", str(testbed.cluster_file), "--interval", "1"]
    first = cli("-d", *common, "--log", str(tmp_path / "d.log"))
    assert first.returncode == 0, first.stderr
    pid = int(first.stdout.split("PID ")[1].split(")")[0])
    try:
        assert control.running_pid(control.pidfile_for(hist)) == pid
        second = cli("-d", *common)
        assert second.returncode == 1 and f"PID {pid}" in second.stderr, second.stderr
        third = cli("--foreground", *common)
        assert third.returncode == 1 and f"PID {pid}" in third.stderr
        wait_for(lambda: up_samples(hist, 1) >= 2, 60, "the daemon's samples")
        st = cli("--status", "--history", str(hist))
        assert st.returncode == 0 and f"PID {pid}" in st.stdout
    finally:
        stop = cli("-k", "--history", str(hist))
    assert stop.returncode == 0 and f"PID {pid}" in stop.stdout, stop.stderr
    assert not control.pidfile_for(hist).exists()
    assert cli("-k", "--history", str(hist)).returncode == 1
    assert cli("--status", "--history", str(hist)).returncode == 3
    # with no collector running, -n writes straight into the database
    assert cli("-n", "offline", "--history", str(hist)).returncode == 0
    with HistoryReader(hist) as r:
        assert [c.label for c in r.checkpoints()] == ["offline"]
    assert "collecting 3 nodes" in (tmp_path / "d.log").read_text()


# --------------------------------------------------------------------------- no testbed needed


def test_usage() -> None:
    assert app.main([]) == 2
    assert app.main(["-h"]) == 0
    assert app.main(["--interval", "0", "-d"]) == 2
    assert app.main(["--metrics", "x:y", "-d"]) == 2
    assert app.main(["-d", "-k"]) == 2
    assert parse_address("9477") == ("127.0.0.1", 9477)
    assert parse_address("[::1]:9477") == ("::1", 9477)
    assert parse_address("0.0.0.0:1") == ("0.0.0.0", 1)


def test_migration_events_are_recorded_and_unknown_ones_ignored(tmp_path: Path) -> None:
    farm = SimFarm(2, procs_per_node=5)
    opts = Options(history=tmp_path / "hist", interval=0.5, metrics=("127.0.0.1", 0))
    col = Collector(opts, farm.config(0.5),
                    cluster_factory=lambda cfg: Cluster(cfg, transport_factory=farm.transport).start())
    try:
        col.open()
        assert col.cluster is not None
        assert col.cluster.wait_until(lambda: all(n.up for n in col.cluster.nodes()), 20)  # type: ignore[union-attr]
        now = time.time()
        col._on_event(Event("migration", 1, data={"pid": 1001, "start": 10010, "cmd": "job", "from": 1, "to": 2,
                                                  "result": "ok", "frozen": 0.4, "time": now}))
        col._on_event(Event("migration", 2, data={"pid": "x"}))  # malformed: skipped with a warning
        col._on_event(Event("agent", 2, message="migration",
                            data={"type": "event", "event": "migration", "pid": 7, "src": 2, "dst": 1,
                                  "result": "failed", "reason": "criu: no"}))
        col._on_event(Event("teleport", 1, data={"anything": 1}))  # a kind from the future
        # a progress step is no record; the same move heard from the engine and the source's agent is one
        col._on_event(Event("migration", 1, message="dump", data={"mid": "m1", "phase": "dump", "final": False,
                                                                  "pid": 5, "src": 1, "dst": 2}))
        final = {"mid": "m1", "pid": 5, "start": 50, "src": 1, "dst": 2, "result": "done", "time": now + 1}
        col._on_event(Event("migration", 1, message="done", data=dict(final, final=True)))
        col._on_event(Event("agent", 1, message="migration", data=dict(final, type="event", event="migration")))
        col.tick(time.time())
        col.tick(time.time() + 0.5)
        with HistoryReader(opts.history) as r:
            migs = r.migrations()
            assert [(m.pid, m.src, m.dst, m.result, m.frozen) for m in migs] == [(1001, 1, 2, "ok", 0.4),
                                                                                 (7, 2, 1, "failed", None),
                                                                                 (5, 1, 2, "done", None)]
            assert migs[1].reason == "criu: no"
        text = col.metrics_text()
        assert 'omview_migrations_total{result="ok"} 1.0' in text
        assert 'omview_migrations_total{result="failed"} 1.0' in text
    finally:
        col.close()
        farm.stop()
    assert migration_from_event(Event("up", 1), 0.0) is None


def test_metrics_of_a_down_node_have_no_values() -> None:
    up = NodeState(id=1, address="a", name="n1", up=True,
                   sample=NodeSample(load=12.5, runq=0.5, cpus=2, mem_total=100, mem_available=60, mem_used=40))
    down = NodeState(id=2, address="b", name='we"ird', up=False, sample=NodeSample(load=99))
    text = render([up, down], {}, {"samples_written": 3.0})
    assert 'omview_node_up{node="2",name="we\\"ird"} 0.0' in text
    assert 'node="2"' not in text.split("# HELP node_load1")[1]
    assert 'node_load1{node="1",name="n1"} 0.5' in text


def test_the_unit_renders_and_verifies(tmp_path: Path) -> None:
    exe = shutil.which("omcollector") or str(Path(sys.executable).parent / "omcollector")
    if not Path(exe).exists():
        pytest.skip("the omcollector script is not installed (pip install -e .)")
    text = service.render([str(Path(exe).resolve())], ["--history", "/var/lib/omcollector"])
    assert "Type=simple" in text and "Restart=on-failure" in text
    assert f"ExecStart={Path(exe).resolve()} --foreground --history /var/lib/omcollector" in text
    assert not any(f"@{k}@" in text for k in ("EXEC", "ARGS", "WANTEDBY"))
    user = service.render([str(Path(exe).resolve())], system=False)
    assert "StateDirectory" not in user and "WantedBy=default.target" in user
    with pytest.raises(ValueError):
        service.render(["omcollector"])
    # install/uninstall into a scratch directory, then systemd's own check of the written file
    r = cli("--install-service", "--unit-dir", str(tmp_path), "--metrics", "127.0.0.1:9477")
    assert r.returncode == 0, r.stderr
    unit = tmp_path / service.UNIT_NAME
    assert "--metrics 127.0.0.1:9477" in unit.read_text()
    analyze = shutil.which("systemd-analyze")
    if analyze:
        v = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60)
        assert v.returncode == 0, v.stdout + v.stderr
        bad = tmp_path / "bad" / service.UNIT_NAME
        bad.parent.mkdir()
        bad.write_text(text.replace(str(Path(exe).resolve()), "/nonexistent/omcollector"))
        v = subprocess.run([analyze, "verify", "--man=no", str(bad)], capture_output=True, text=True, timeout=60)
        assert v.returncode != 0, "the check must be able to fail"
    r = cli("--uninstall-service", "--unit-dir", str(tmp_path))
    assert r.returncode == 0 and not unit.exists()


def test_pid_lock_detects_a_running_and_a_stale_collector(tmp_path: Path) -> None:
    pidfile = tmp_path / "run" / "omcollector.pid"
    pidfile.parent.mkdir()
    pidfile.write_text("999999\n")  # a collector that died without cleaning up
    first = control.PidLock(pidfile)
    first.acquire()
    assert first.stale_pid == 999999
    first.write_pid(4242)
    assert control.running_pid(pidfile) == 4242
    with pytest.raises(control.AlreadyRunning, match="PID 4242"):
        control.PidLock(pidfile).acquire()
    first.release()
    assert not pidfile.exists() and control.running_pid(pidfile) is None
    (tmp_path / "elsewhere").symlink_to(pidfile)
    with pytest.raises(OSError):  # never follows a planted link
        control.PidLock(tmp_path / "elsewhere").acquire()


def test_offline_rotate_and_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from omview.core.history import HistoryWriter, list_histories

    hist = tmp_path / "hist"
    w = HistoryWriter(hist)
    w.sample(1, time.time(), NodeSample(load=5))
    w.close()
    pid = ["--history", str(hist), "--pidfile", str(tmp_path / "pid")]
    assert app.main(["--status", *pid]) == 3
    assert app.main(["-r", *pid]) == 0
    assert "history saved to" in capsys.readouterr().out
    files = list_histories(hist)
    assert [f.live for f in files] == [False, True] and files[0].start is not None
    assert app.main(["-k", *pid]) == 1
