"""The history store with synthetic data: packing, gaps, downsampling, processes, upgrades, rotation, full disk."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from omview.core import history as h
from omview.core.history import HistoryError, HistoryReader, HistoryWriter, MigrationRecord
from omview.core.model import NodeSample, ProcInfo

T0 = 1_700_000_000.0  # a window boundary of 600 s: 1_700_000_000 % 600 == 200, so ticks cross one


def sample(load: float, used: int = 1 << 30, total: int = 4 << 30) -> NodeSample:
    return NodeSample(load=load, speed=10000, cpus=4, mem_used=used, mem_total=total, mem_available=total - used,
                      hostname="h")


def fill(w: HistoryWriter, n: int, nodes: tuple[int, ...] = (1, 2), down: dict[int, range] | None = None,
         t0: float = T0) -> None:
    for i in range(n):
        t = t0 + i
        for node in nodes:
            if down and i in down.get(node, range(0)):
                w.sample(node, t, None)
            else:
                w.sample(node, t, sample(10 + (i * 7 + node) % 50, (1 << 30) + i * 4096))
        w.commit(t)


def test_pack_roundtrip_keeps_every_value() -> None:
    rng = np.random.default_rng(1)
    cols = [np.cumsum(rng.integers(900, 1100, 500)), rng.integers(-(1 << 40), 1 << 40, 500),
            np.zeros(500, dtype=np.int64), rng.integers(0, 3, 500)]
    out = h.unpack_columns(h.pack_columns([c.astype(np.int64) for c in cols]))
    for a, b in zip(cols, out, strict=True):
        assert np.array_equal(a, b)
    assert h.unpack_columns(h.pack_columns([np.zeros(0, dtype=np.int64)]))[0].size == 0
    m = np.stack([c.astype(np.int64) for c in cols])
    assert np.array_equal(h.unpack_matrix(h.pack_matrix(m)), m)
    assert np.array_equal(h.unpack_matrix(h.pack_matrix(m[:, :0])), m[:, :0])
    assert np.array_equal(h.unpack_matrix(h.pack_columns(list(m))), m)  # older summaries still read
    for mat in (m, m % 100, m % 30000):  # 8-, 2- and 1-byte deltas
        assert np.array_equal(h.unpack_matrix(h.pack_matrix(mat), [3, 0, 2]), mat[[3, 0, 2]])
    assert np.array_equal(h.unpack_matrix(h.pack_columns(list(m)), [1]), m[[1]])


def test_samples_survive_packing_and_a_down_node_is_a_gap_not_zeros(tmp_path: Path) -> None:
    w = HistoryWriter(tmp_path / "h", now=T0)
    fill(w, 1500, down={2: range(700, 720)})
    with HistoryReader(tmp_path / "h") as r:
        # the first windows are packed by now, the last one is still rows
        assert r._conn.execute("SELECT count(*) FROM sample_chunks").fetchone()[0] > 0
        assert 0 < r._conn.execute("SELECT count(*) FROM samples").fetchone()[0] < 1500 * 2
        s1, s2 = r.samples(1), r.samples(2)
        assert len(s1) == 1500 and len(s2) == 1500
        assert np.allclose(s1.t, T0 + np.arange(1500))
        assert np.allclose(s1.load.mean, [10 + (i * 7 + 1) % 50 for i in range(1500)])
        assert np.allclose(s1.mem_used.mean, [(1 << 30) + i * 4096 for i in range(1500)])
        assert np.isnan(s2.load.mean[700:720]).all() and (s2.up[700:720] == 0).all()
        assert not np.isnan(s2.load.mean[:700]).any() and not (s2.load.mean == 0).any()
        assert np.isnan(s2.mem_used.mean[700:720]).all()
        part = r.samples(1, T0 + 100, T0 + 109)
        assert len(part) == 10 and part.t[0] == T0 + 100
    w.close()
    with HistoryReader(tmp_path / "h") as r:  # close packs everything; the data reads the same
        assert r._conn.execute("SELECT count(*) FROM samples").fetchone()[0] == 0
        # packed every 10 minutes, but into one block per node and hour
        assert r._conn.execute("SELECT count(*) FROM sample_chunks WHERE node = 1").fetchone()[0] == 1
        assert np.allclose(r.samples(1).load.mean, s1.load.mean)
        assert r.span() == (T0, T0 + 1499)


def test_packed_times_read_back_exactly_so_a_window_ending_on_a_sample_holds_it(tmp_path: Path) -> None:
    """Times are stored in ms; read back they are ms / 1000 exactly. (Multiplied by 1e-3 they were one
    ulp off for one value in six: a statistics window ending on its last sample lost that sample.)"""
    base = 1_795_969_500.0
    ts = [base + k + 0.416 for k in range(60)]  # 1795969542.416: ms * 1e-3 != ms / 1000 here
    assert any(round(t * 1000) * 1e-3 != round(t * 1000) / 1000.0 for t in ts)
    w = HistoryWriter(tmp_path / "h", now=ts[0])
    for t in ts:
        w.sample(1, t, sample(20.0))
        w.commit(t)
    w.close()  # packs every row
    with HistoryReader(tmp_path / "h") as r:
        assert r._conn.execute("SELECT count(*) FROM samples").fetchone()[0] == 0
        got = r.samples(1)
        assert list(got.t) == [round(t * 1000) / 1000.0 for t in ts]
        for t in ts:  # a window [t, t] holds exactly the sample at t
            assert len(r.samples(1, t, t)) == 1, t


def test_silence_without_rows_reads_as_a_gap(tmp_path: Path) -> None:
    w = HistoryWriter(tmp_path / "h", now=T0)
    fill(w, 10, nodes=(1,))
    fill(w, 10, nodes=(1,), t0=T0 + 100)  # the collector was not running for 90 s
    w.close()
    s = HistoryReader(tmp_path / "h").samples(1)
    assert len(s) == 21 and np.isnan(s.load.mean[10]) and T0 + 9 < s.t[10] < T0 + 100


def test_downsampling_keeps_extremes_and_gaps(tmp_path: Path) -> None:
    w = HistoryWriter(tmp_path / "h", now=T0)
    for i in range(3600):
        t = T0 + i
        w.sample(1, t, None if 1800 <= i < 2000 else sample(999.0 if i == 1234 else 20 + i % 10))
        w.commit(t)
    w.close()
    with HistoryReader(tmp_path / "h") as r:
        s = r.samples(1, T0, T0 + 3600, max_points=100)
        assert len(s) == 100 and s.width == pytest.approx(36)
        assert np.nanmax(s.load.max) == 999.0  # the one-second spike survives 36:1
        coarse = r.samples(1, T0, T0 + 3600, max_points=100, summaries=True)
        assert np.nanmax(coarse.load.max) == 999.0 and np.isnan(coarse.load.mean[51]) and coarse.up[51] == 0
        zoom = r.samples(1, T0 + 1200, T0 + 1300, max_points=40)  # 2.5 s buckets: from the samples themselves
        assert len(zoom) == 40 and np.nanmax(zoom.load.max) == 999.0 and np.nanmin(zoom.load.min) == 20
        assert np.nanmin(s.load.min) == 20
        assert np.isnan(s.load.mean[51]) and s.up[51] == 0  # 1836..1872 s: all down
        t, y = s.line("load")
        assert len(t) == len(y) == 200 and (np.diff(t) > 0).all()
        everything = r.samples_many(None, None, None, max_points=50)
        assert set(everything) == {1} and len(everything[1]) == 50


def test_long_spans_are_read_from_the_10_second_summaries_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    t0 = 1_700_000_400.0  # a multiple of 10 s, so 20-second buckets hold whole summaries
    w = HistoryWriter(tmp_path / "h", now=t0)
    loads = np.round(rng.uniform(0, 300, 7200), 2)
    down = (np.arange(7200) // 300) % 7 == 3  # five-minute outages
    for i in range(7200):
        w.sample(1, t0 + i, None if down[i] else sample(float(loads[i]), (1 << 30) + int(rng.integers(0, 1000)) * 4096))
        w.commit(t0 + i)
    for packed in (False, True):  # the live file (some rows unpacked) and after close (all packed)
        with HistoryReader(tmp_path / "h") as r:
            fast = r.samples(1, t0, t0 + 7200, max_points=360, summaries=True)  # 20 s buckets
            raw = r.samples(1, t0, t0 + 7200)
            assert fast.width == 20.0 and len(fast) == 360
            some = r.samples(1, t0, t0 + 7200, max_points=360, summaries=True, columns=("load", "mem_available"))
            for band in ("min", "max", "mean"):  # the bands asked for are the same; the others left out
                assert np.array_equal(getattr(some.load, band), getattr(fast.load, band), equal_nan=True)
                assert np.array_equal(getattr(some.mem_available, band), getattr(fast.mem_available, band),
                                      equal_nan=True)
                assert np.isnan(getattr(some.mem_used, band)).all() and np.isnan(getattr(some.cpus, band)).all()
            assert np.array_equal(some.up, fast.up, equal_nan=True) and np.array_equal(some.t, fast.t)
            b = ((raw.t - t0) // 20).astype(int)
            for k in (0, 17, 45, 200, 359):
                sel = (b == k) & (raw.up == 1)
                if sel.any():
                    assert fast.load.min[k] == raw.load.mean[sel].min() and fast.load.max[k] == raw.load.mean[sel].max()
                    assert fast.load.mean[k] == pytest.approx(raw.load.mean[sel].mean(), abs=0.01)
                    assert fast.mem_used.max[k] == raw.mem_used.mean[sel].max()
                    assert fast.mem_available.min[k] == raw.mem_available.mean[sel].min()
                else:
                    assert np.isnan(fast.load.mean[k]) and fast.up[k] == 0
        if not packed:
            w.close()
    conn = sqlite3.connect(tmp_path / "h" / h.DB_NAME)
    conn.execute("UPDATE sample_chunks SET summary = NULL")  # as in a version-2 file: computed while reading
    conn.commit()
    conn.close()
    with HistoryReader(tmp_path / "h") as r:
        again = r.samples(1, t0, t0 + 7200, max_points=360, summaries=True)
        assert np.array_equal(again.load.max, fast.load.max, equal_nan=True)


def test_checkpoints_and_migrations(tmp_path: Path) -> None:
    w = HistoryWriter(tmp_path / "h", now=T0)
    w.checkpoint("job start", T0 + 1)
    w.checkpoint("job end", T0 + 50)
    w.migration(MigrationRecord(t=T0 + 10, pid=42, start=777, cmd="sim", src=1, dst=3, result="ok", frozen=0.25))
    w.migration(MigrationRecord(t=T0 + 20, pid=43, src=2, dst=1, result="failed", reason="criu: dump failed"))
    w.commit(T0 + 50)
    with HistoryReader(tmp_path / "h") as r:
        assert [c.label for c in r.checkpoints()] == ["job start", "job end"]
        assert [c.label for c in r.checkpoints(T0 + 10, T0 + 60)] == ["job end"]
        migs = r.migrations()
        assert [(m.pid, m.src, m.dst, m.result, m.frozen) for m in migs] == [(42, 1, 3, "ok", 0.25),
                                                                             (43, 2, 1, "failed", None)]
        assert migs[1].reason == "criu: dump failed" and r.migrations(T0 + 15, T0 + 30) == [migs[1]]


def proc(pid: int, cpu: float = 0.0, rss: int = 10 << 20, cmd: str = "") -> ProcInfo:
    return ProcInfo(pid=pid, start=pid * 100, ppid=1, user="alice", cmd=cmd or f"job{pid}", cpu=cpu, rss=rss)


def test_processes_are_stored_as_changes(tmp_path: Path) -> None:
    w = HistoryWriter(tmp_path / "h", now=T0)
    for i in range(7200):
        t = T0 + i
        procs = [proc(1, cpu=0.0), proc(2, cpu=100.0 if i < 3000 else 50.0, rss=(20 << 20) + (i // 600) * (4 << 20))]
        if 100 <= i < 200:
            procs.append(proc(3, cpu=float(i % 2) * 30))
        w.processes(5, t, procs, points=(i % 10 == 0))
        w.commit(t)
    w.close()
    with HistoryReader(tmp_path / "h") as r:
        at = {p.pid: p for p in r.processes_at(T0 + 150)}
        assert set(at) == {1, 2, 3} and at[3].appeared == T0 + 100 and at[3].vanished == T0 + 200
        assert at[2].cpu == 100.0 and at[2].user == "alice" and at[2].cmd == "job2"
        assert {p.pid for p in r.processes_at(T0 + 5000)} == {1, 2}
        assert r.processes_at(T0 + 5000, node=4) == []
        assert {p.pid: p.cpu for p in r.processes_at(T0 + 5000)}[2] == 50.0
        idle = r.process_life(5, 1, 100)
        assert idle is not None and len(idle.t) == 1  # never changed: one point for two hours
        busy = r.process_life(5, 2, 200)
        assert busy is not None and 10 <= len(busy.t) <= 20  # cpu once, rss every 10 min
        assert busy.rss[-1] == (20 << 20) + 11 * (4 << 20) and busy.proc.vanished is None
        flappy = r.process_life(5, 3, 300)
        assert flappy is not None and len(flappy.t) == 1  # 0 ↔ 30 % each second, but points only every 10 s at 0 %
        assert r.process_life(5, 99, 1) is None


def test_a_process_timeline_answers_like_processes_at_anywhere_inside(tmp_path: Path) -> None:
    """The slider's timeline against the per-moment query: packed blocks, the row tail of a live
    file, processes appearing and vanishing inside the window, every node or one."""
    w = HistoryWriter(tmp_path / "h", now=T0)

    def tick(i: int) -> None:
        t = T0 + i
        for node in (1, 2):
            procs = [proc(1, cpu=float((i // 700) % 5) * 20, rss=(10 << 20) + (i // 900) * (1 << 20))]
            if (i // 400) % 3 != node:  # comes and goes
                procs.append(proc(2 + i // 1200, cpu=float(node * 10 + (i // 300) % 4)))
            w.processes(node, t, procs)
        w.commit(t)

    for i in range(4000):
        tick(i)

    def agree(r: HistoryReader) -> None:
        for node in (None, 1, 2):
            for mid in (T0 + 5, T0 + 1800.5, T0 + 3700, T0 + 3999):
                tl = r.process_timeline(mid - 300, mid + 300, node)
                assert tl.covers(mid, node) and not tl.covers(mid + 301, node) and not tl.covers(mid, 3)
                for t in (mid - 300, mid - 1, mid, mid + 0.5, mid + 137, mid + 300):
                    ref = r.processes_at(t, node)
                    snap = tl.at(t)
                    got = [tl.procs[int(i)] for i in snap.index]
                    assert [(p.node, p.pid, p.start) for p in got] == [(p.node, p.pid, p.start) for p in ref], t
                    assert [None if math.isnan(c) else c for c in snap.cpu] == [p.cpu for p in ref], t
                    assert [None if m < 0 else int(m) for m in snap.rss] == [p.rss for p in ref], t

    with HistoryReader(tmp_path / "h") as r:  # live: the last minutes are rows, not blocks
        assert r._conn.execute("SELECT count(*) FROM proc_points").fetchone()[0] > 0
        agree(r)
    w.close()
    with HistoryReader(tmp_path / "h") as r:
        agree(r)


def test_restart_closes_processes_that_ended_meanwhile(tmp_path: Path) -> None:
    w = HistoryWriter(tmp_path / "h", now=T0)
    for i in range(10):
        w.sample(1, T0 + i, sample(5))
        w.processes(1, T0 + i, [proc(1), proc(2)])
        w.commit(T0 + i)
    w._conn.close()  # type: ignore[union-attr]  # as if killed: nothing closed properly
    w2 = HistoryWriter(tmp_path / "h", now=T0 + 100)
    w2.processes(1, T0 + 100, [proc(1)])
    w2.commit(T0 + 100)
    with HistoryReader(tmp_path / "h") as r:
        lives = {p.pid: p for p in r.processes_at(T0 + 5)}
        assert lives[2].vanished == T0 + 9  # its last sample, not the restart
        assert [p.pid for p in r.processes_at(T0 + 100)] == [1]


def make_v1(path: Path) -> None:
    path.mkdir(mode=0o700)
    conn = sqlite3.connect(path / h.DB_NAME)
    conn.executescript(h._SCHEMA_V1 + "PRAGMA user_version = 1;")
    conn.execute("INSERT INTO meta VALUES ('created', ?)", (repr(T0),))
    conn.execute("INSERT INTO samples VALUES (1, ?, 1, 42.0, 10000, 2, 1, 2, 1)", (T0,))
    conn.execute("INSERT INTO checkpoints VALUES (?, 'old')", (T0,))
    conn.commit()
    conn.close()


def test_an_older_database_opens_after_an_upgrade(tmp_path: Path) -> None:
    make_v1(tmp_path / "old")
    with HistoryReader(tmp_path / "old") as r:  # a reader never writes: it reads v1 as it is
        assert r.version == 1 and r.migrations() == [] and r.samples(1).load.mean[0] == 42.0
    w = HistoryWriter(tmp_path / "old", now=T0 + 1)
    w.migration(MigrationRecord(t=T0 + 1, pid=7, src=1, dst=2, result="ok"))
    w.sample(1, T0 + 1, sample(43))
    w.commit(T0 + 1)
    with HistoryReader(tmp_path / "old") as r:
        assert r.version == h.SCHEMA_VERSION
        assert [c.label for c in r.checkpoints()] == ["old"]
        assert list(r.samples(1).load.mean) == [42.0, 43.0] and r.migrations()[0].pid == 7
    w.close()


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    HistoryWriter(tmp_path / "h", now=T0).close()
    conn = sqlite3.connect(tmp_path / "h" / h.DB_NAME)
    conn.execute(f"PRAGMA user_version = {h.SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(HistoryError, match="newer"):
        HistoryReader(tmp_path / "h")
    with pytest.raises(HistoryError, match="newer"):
        HistoryWriter(tmp_path / "h")


def test_rotation_keeps_every_sample_and_running_processes(tmp_path: Path) -> None:
    w = HistoryWriter(tmp_path / "h", now=T0)
    w.node(1, "10.0.0.1", "n1", sample(0), T0)
    for i in range(100):
        w.sample(1, T0 + i, sample(i))
        w.processes(1, T0 + i, [proc(1, cpu=50.0)])
        if i == 50:
            w.checkpoint("mid", T0 + i)
        if i < 99:
            w.commit(T0 + i)  # the last tick is still pending when the rotation comes
    backup = w.rotate(T0 + 99.5)
    assert backup.parent == tmp_path / "h" and backup.name.startswith("backup-")
    assert oct(backup.stat().st_mode & 0o777) == "0o700"
    for i in range(100, 120):
        w.sample(1, T0 + i, sample(i))
        w.processes(1, T0 + i, [proc(1, cpu=50.0)])
        w.commit(T0 + i)
    with HistoryReader(backup) as old, HistoryReader(tmp_path / "h") as new:
        assert len(old.samples(1)) == 100 and len(new.samples(1)) == 20
        assert old._conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert [c.label for c in old.checkpoints()] == ["mid"] and new.checkpoints() == []
        carried = new.processes_at(T0 + 110)
        assert [(p.pid, p.cmd, p.user, p.cpu) for p in carried] == [(1, "job1", "alice", 50.0)]
        assert carried[0].appeared == T0 + 99.5
        assert [(n.id, n.name, n.hostname) for n in new.nodes()] == [(1, "n1", "h")]
    files = h.list_histories(tmp_path / "h")
    assert [f.live for f in files] == [False, True]
    assert files[0].start == T0 and files[0].end == T0 + 99 and files[1].start == T0 + 100
    time.sleep(0.01)
    second = w.rotate(T0 + 99.5)  # the same second again: a new folder, never an overwrite
    assert second != backup and second.exists()
    w.close()
    h.remove_history(backup)
    assert not backup.exists()
    with pytest.raises(HistoryError):
        h.remove_history(tmp_path / "h" / h.DB_NAME)


def test_history_dir_is_private_and_never_a_planted_link(tmp_path: Path) -> None:
    d = h.ensure_history_dir(tmp_path / "a" / "hist")
    assert d.stat().st_mode & 0o777 == 0o700
    (tmp_path / "open").mkdir(mode=0o777)
    os.chmod(tmp_path / "open", 0o777)
    assert h.ensure_history_dir(tmp_path / "open").stat().st_mode & 0o777 == 0o700
    (tmp_path / "target").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "target")
    with pytest.raises(HistoryError, match="symlink"):
        h.ensure_history_dir(tmp_path / "link")
    if os.geteuid() == 0:
        (tmp_path / "theirs").mkdir()
        os.chown(tmp_path / "theirs", 65534, 65534)
        with pytest.raises(HistoryError, match="owned by uid 65534"):
            h.ensure_history_dir(tmp_path / "theirs")
    db = HistoryWriter(tmp_path / "db", now=T0).path
    assert db.stat().st_mode & 0o777 == 0o600


def test_a_failing_disk_keeps_a_bounded_backlog_and_nothing_structural(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    w = HistoryWriter(tmp_path / "h", now=T0, max_backlog=5)
    fill(w, 3, nodes=(1,))
    real = HistoryWriter._write

    def refuse(conn: sqlite3.Connection, b: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(HistoryWriter, "_write", staticmethod(refuse))
    for i in range(3, 13):
        w.sample(1, T0 + i, sample(i))
        if i == 4:
            w.checkpoint("during the outage", T0 + i)
            w.processes(1, T0 + i, [proc(9)])
        assert not w.commit(T0 + i)
    assert "disk full" in w.failing and w.backlog == 5 and w.dropped_samples == 5
    monkeypatch.setattr(HistoryWriter, "_write", staticmethod(real))
    assert w.commit(T0 + 13) and w.failing == "" and w.backlog == 0
    with HistoryReader(tmp_path / "h") as r:
        t = r.samples(1).t
        assert list(t[:3]) == [T0, T0 + 1, T0 + 2] and list(t[-5:]) == [T0 + 8, T0 + 9, T0 + 10, T0 + 11, T0 + 12]
        assert [c.label for c in r.checkpoints()] == ["during the outage"]
        assert [p.pid for p in r.processes_at(T0 + 12)] == [9]
    w.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_full_tmpfs_is_survived_and_writing_resumes(tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(mnt)], check=True)
    try:
        w = HistoryWriter(mnt / "h", now=T0)
        ballast = mnt / "ballast"
        fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
        try:  # fill the disk to the last block
            with pytest.raises(OSError):
                while True:
                    os.write(fd, b"\0" * 4096)
        finally:
            os.close(fd)
        fails = 0
        i = 0
        for i in range(200):  # 200 ticks × 100 nodes: far more than the few KB left
            for node in range(100):
                w.sample(node, T0 + i, sample(node))
            if not w.commit(T0 + i):
                fails += 1
                if fails > 3:
                    break
        assert fails > 3 and "disk full" in w.failing, w.failing
        ballast.unlink()
        assert w.commit(T0 + i + 1) and not w.failing
        w.close()
        with HistoryReader(mnt / "h") as r:
            assert r.integrity_ok()
            assert len(r.samples(7).t) == i + 1  # every tick, those written late included
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


WRITER_CHILD = """
import sys, time
from omview.core.history import HistoryWriter
from omview.core.model import NodeSample
w = HistoryWriter(sys.argv[1], interval=0.01)
i = 0
while True:
    t = time.time()
    for n in range(20):
        w.sample(n, t, NodeSample(load=i, mem_total=1 << 30, mem_used=i))
    w.commit(t)
    print(i, flush=True)
    i += 1
"""


def test_kill_9_mid_write_leaves_a_sound_database(tmp_path: Path) -> None:
    p = subprocess.Popen([sys.executable, "-c", WRITER_CHILD, str(tmp_path / "h")], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout is not None
    last = -1
    for line in p.stdout:
        last = int(line)
        if last >= 300:
            break
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    for line in p.stdout.read().split():  # what it reported between our last read and the kill
        last = int(line)
    with HistoryReader(tmp_path / "h") as r:
        assert r.integrity_ok()
        loads = r.samples(3).load.mean
        # every commit reported before the kill is there; at most the one in flight beyond it
        assert last <= np.nanmax(loads) <= last + 1 and len(loads) == int(np.nanmax(loads)) + 1
    w = HistoryWriter(tmp_path / "h")  # and it opens for writing again
    w.close()
    assert math.isfinite(HistoryReader(tmp_path / "h").span()[1])  # type: ignore[index]
