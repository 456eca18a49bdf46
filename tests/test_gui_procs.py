"""omprocs (issue 6): the process box, the migrator window and the remote-procs window.

Offscreen Qt. The model, filter, sort and tree run against a synthetic 20 000-process cluster
(`SnapCluster`: the real model, fed the way the core feeds it) and against simulated nodes
(omview.core.simulate, the real Session/Cluster path). The testbed tests at the end start real
jobs on the 3-node SSH testbed and migrate them with real CRIU from the migrator window.
Screenshots go to tests/screenshots/ — look at them.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import dataclasses
import json
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox

from omprocs import actions
from omprocs.migrator import N_ID, NODE_ROLE, MigratorWindow
from omprocs.procmodel import (
    COL_COMMAND,
    COL_CPU,
    COL_HOME,
    COL_MEMORY,
    COL_MIGRATIONS,
    COL_NICE,
    COL_NODE,
    COL_PID,
    COL_STARTED,
    COL_STATE,
    COL_USER,
    COLUMN_COUNT,
    KEY_ROLE,
    LOCKED_ROLE,
    MIGRATED_ROLE,
    ProcFilterProxy,
    ProcTableModel,
)
from omprocs.proctree import ProcTreeModel
from omprocs.window import ProcBoxWindow
from omview.core.cluster import Cluster
from omview.core.config import ClusterConfig, NodeConfig
from omview.core.model import NodeSample, NodeState, ProcInfo
from omview.core.session import AgentError, Event
from omview.core.simulate import SimFarm
from omview.gui import theme
from tests.gui_helpers import pump, screenshot

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("qsettings_sandbox")]
ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- a synthetic cluster


class SnapCluster:
    """The reading half of ClusterLike over plain dicts, for 20 000-row model tests."""

    def __init__(self, tables: dict[int, dict[tuple[int, int], ProcInfo]]) -> None:
        self.tables = tables
        self.config = ClusterConfig(nodes=[NodeConfig(id=i, address=f"n{i}") for i in tables], source="synthetic")
        self.listeners: list[Callable[[Event], None]] = []

    def node_ids(self) -> list[int]:
        return list(self.tables)

    def nodes(self) -> list[NodeState]:
        return [self.node(i) for i in self.tables]

    def node(self, i: int) -> NodeState:
        s = NodeSample(hostname=f"n{i}", cpus=2, speed=10000, load=10.0 * i, mem_total=8 << 30,
                       mem_available=4 << 30, criu="ready (test)")
        return NodeState(id=i, address=f"n{i}", up=True, reason="", sample=s)

    def processes(self, node_id: int | None = None) -> list[tuple[int, ProcInfo]]:
        ids = [node_id] if node_id is not None else list(self.tables)
        return [(i, p) for i in ids for p in self.tables[i].values()]

    def process_rows(self, node_id: int, keys: Iterable[tuple[int, int]]) -> list[ProcInfo | None]:
        t = self.tables[node_id]
        return [t.get(k) for k in keys]

    def process(self, node_id: int, pid: int) -> ProcInfo | None:
        return next((p for p in self.tables[node_id].values() if p.pid == pid), None)

    def subscribe(self, fn: Callable[[Event], None]) -> Callable[[], None]:
        self.listeners.append(fn)
        return lambda: None

    def resolve(self, node_id: int, pid: int, start: int | None = None) -> ProcInfo:
        p = self.process(node_id, pid)
        if p is None or (start is not None and p.start != start):
            raise AgentError(f"no process {pid} on node {node_id}", "stale", node_id)
        return p


USERS = ["root", "alice", "bob", "carol", "dave"]


def synthetic(n: int, nodes: int = 50, seed: int = 7) -> SnapCluster:
    rnd = random.Random(seed)
    tables: dict[int, dict[tuple[int, int], ProcInfo]] = {i: {} for i in range(1, nodes + 1)}
    for k in range(n):
        node = 1 + k % nodes
        pid = 100 + k
        home = rnd.choice([0] * 9 + [1 + (node % nodes)])  # every tenth one is a guest from another node
        p = ProcInfo(pid=pid, start=1000 + k, ppid=1, user=rnd.choice(USERS), nice=rnd.randint(-5, 10),
                     state=rnd.choice("RSSSDT"), cpu=round(rnd.random() * 100, 1), rss=rnd.randint(1, 4000) << 20,
                     started=1.7e9 + rnd.random() * 1e5, cmd=f"/opt/app/bin/w{rnd.randint(0, 99999):05d} --n {k}",
                     home=home, nmigs=1 if home else 0, lock=rnd.random() < 0.02)
        tables[node][p.key] = p
    return SnapCluster(tables)


def column_values(proxy: ProcFilterProxy, col: int) -> list[Any]:
    """The sort key of every shown row, read from the row records (what the view paints)."""
    src = proxy.source()
    out = []
    for r in range(proxy.rowCount()):
        row = src.row(proxy.mapToSource(proxy.index(r, 0)).row())
        p = row.p
        out.append({
            COL_PID: p.pid, COL_NODE: row.where, COL_HOME: row.home, COL_USER: p.user, COL_NICE: p.nice,
            COL_STATE: p.state, COL_CPU: p.cpu, COL_MEMORY: p.rss, COL_MIGRATIONS: p.nmigs,
            COL_STARTED: p.started, COL_COMMAND: p.cmd,
        }[col])
    return out


# ---------------------------------------------------------------- model: 20 000 rows


def test_model_columns_and_openmosix_node_meaning(qapp: QApplication) -> None:
    c = SnapCluster({
        1: {(10, 1): ProcInfo(pid=10, start=1, user="alice", cmd="here", state="S")},
        2: {(20, 2): ProcInfo(pid=20, start=2, user="bob", cmd="guest", home=1, nmigs=1, state="R"),
            (21, 3): ProcInfo(pid=21, start=3, cmd="locked", lock=True, cantmove="uses a device")},
    })
    m = ProcTableModel(c)
    assert m.columnCount() == COLUMN_COUNT == 11
    headers = [m.headerData(i, Qt.Orientation.Horizontal) for i in range(COLUMN_COUNT)]
    assert headers == ["PID", "Node", "Home", "User", "Nice", "State", "%CPU", "Memory", "Migr.", "Started",
                       "Command line"]
    by_cmd = {m.index(r, COL_COMMAND).data(): r for r in range(m.rowCount())}
    here, guest, locked = by_cmd["here"], by_cmd["guest"], by_cmd["locked"]
    # openMosix: 0 = on its home node; else the node it runs on
    assert (m.index(here, COL_NODE).data(), m.index(here, COL_HOME).data()) == ("0", "1")
    assert (m.index(guest, COL_NODE).data(), m.index(guest, COL_HOME).data()) == ("2", "1")
    assert m.index(guest, COL_PID).data(MIGRATED_ROLE) is True
    assert m.index(here, COL_PID).data(MIGRATED_ROLE) is False
    assert m.index(guest, COL_PID).data(KEY_ROLE) == (2, 20, 2)
    assert m.index(locked, COL_PID).data(LOCKED_ROLE) == "uses a device"
    assert "uses a device" in m.index(locked, COL_PID).data(Qt.ItemDataRole.ToolTipRole)
    assert not m.index(locked, COL_PID).data(Qt.ItemDataRole.DecorationRole).isNull()
    for col in range(COLUMN_COUNT):
        assert m.headerData(col, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole)


@pytest.mark.parametrize("col", [COL_PID, COL_NODE, COL_HOME, COL_USER, COL_NICE, COL_STATE, COL_CPU, COL_MEMORY,
                                 COL_MIGRATIONS, COL_STARTED, COL_COMMAND])
def test_sort_every_column_on_20000_rows(qapp: QApplication, col: int) -> None:
    m = ProcTableModel(synthetic(20000))
    proxy = ProcFilterProxy(me="alice")
    proxy.setSourceModel(m)
    assert proxy.rowCount() == 20000
    for order in (Qt.SortOrder.AscendingOrder, Qt.SortOrder.DescendingOrder):
        proxy.sort(col, order)
        values = column_values(proxy, col)
        assert values == sorted(values, reverse=order == Qt.SortOrder.DescendingOrder)
        assert len(values) == 20000


def test_filter_on_20000_rows(qapp: QApplication) -> None:
    c = synthetic(20000)
    m = ProcTableModel(c)
    proxy = ProcFilterProxy(me="alice")
    proxy.setSourceModel(m)
    allp = [(n, p) for n, p in c.processes()]

    def expect(fn: Callable[[int, ProcInfo], bool]) -> int:
        return sum(1 for n, p in allp if fn(n, p))

    calls: list[int] = []
    orig = proxy._accepts_row
    proxy._accepts_row = lambda row, parent: (calls.append(1), orig(row, parent))[1]  # type: ignore[method-assign]
    proxy.sort(COL_COMMAND, Qt.SortOrder.AscendingOrder)
    assert not proxy.python_filter and not calls  # no criterion: Qt filters alone, no call per row
    proxy.set_filter(text="w123")
    assert proxy.python_filter and len(calls) == 20000
    assert proxy.rowCount() == expect(lambda n, p: "w123" in p.cmd.lower() or "w123" in p.user) > 0
    proxy.set_filter(text="", user="bob")
    assert proxy.rowCount() == expect(lambda n, p: p.user == "bob") > 0
    proxy.set_filter(user="", node=7)
    assert proxy.rowCount() == 400
    assert {proxy.index(r, 0).data(KEY_ROLE)[0] for r in range(proxy.rowCount())} == {7}
    proxy.set_filter(node=0, only_migrated=True)
    migrated = expect(lambda n, p: bool(p.home) and p.home != n)
    assert proxy.rowCount() == migrated > 0
    proxy.set_filter(only_migrated=False, only_mine=True)
    assert proxy.rowCount() == expect(lambda n, p: p.user == "alice")
    proxy.set_filter(only_mine=True, text="--n 1")  # combined
    assert proxy.rowCount() == expect(lambda n, p: p.user == "alice" and "--n 1" in p.cmd)
    # sorting a filtered view keeps the filter
    proxy.sort(COL_COMMAND, Qt.SortOrder.DescendingOrder)
    values = column_values(proxy, COL_COMMAND)
    assert values == sorted(values, reverse=True) and all("--n 1" in v for v in values)
    proxy.set_filter(text="", only_mine=False)
    assert proxy.rowCount() == 20000 and not proxy.python_filter
    # the inlined filter and `accepts` (the tree's) agree on every row, for every criterion
    rows = proxy.source().rows()
    for kw in ({"text": "w77"}, {"user": "carol"}, {"node": 9}, {"only_migrated": True}, {"only_mine": True}):
        proxy.set_filter(text="", user="", node=0, only_migrated=False, only_mine=False)
        proxy.set_filter(**kw)  # type: ignore[arg-type]
        assert [orig(i, QModelIndex()) for i in range(len(rows))] == [proxy.accepts(r) for r in rows]


def test_incremental_updates_insert_change_remove_without_reset(qapp: QApplication, qtbot) -> None:  # type: ignore[no-untyped-def]
    c = synthetic(20000)
    m = ProcTableModel(c)
    proxy = ProcFilterProxy(me="alice")
    proxy.setSourceModel(m)
    proxy.sort(COL_COMMAND, Qt.SortOrder.AscendingOrder)
    seen: dict[str, int] = {"reset": 0, "ins": 0, "rem": 0, "chg": 0, "layout": 0}
    m.modelReset.connect(lambda: seen.__setitem__("reset", seen["reset"] + 1))
    m.rowsInserted.connect(lambda *_: seen.__setitem__("ins", seen["ins"] + 1))
    m.rowsRemoved.connect(lambda *_: seen.__setitem__("rem", seen["rem"] + 1))
    m.dataChanged.connect(lambda *_: seen.__setitem__("chg", seen["chg"] + 1))
    m.layoutChanged.connect(lambda *_: seen.__setitem__("layout", seen["layout"] + 1))
    t = c.tables[3]
    keys = list(t)
    gone, changed = keys[:5], keys[5:25]
    for k in gone:
        del t[k]
    for k in changed:
        t[k] = dataclasses.replace(t[k], cpu=99.5, state="R")
    new = [ProcInfo(pid=90000 + i, start=5000000 + i, user="eve", cmd=f"/opt/app/bin/new{i}") for i in range(7)]
    for p in new:
        t[p.key] = p
    m.apply(3, gone + changed + [p.key for p in new])
    assert seen["reset"] == 0 and seen["layout"] == 0
    assert seen["rem"] >= 1 and seen["ins"] == 7 and seen["chg"] >= 1
    assert m.rowCount() == proxy.rowCount() == 20000 - 5 + 7
    for k in gone:
        assert m.get((3, *k)) is None
    for k in changed:
        r = m.get((3, *k))
        assert r is not None and r.p.cpu == 99.5
    # new rows landed at their sorted place
    values = column_values(proxy, COL_COMMAND)
    assert values == sorted(values)
    # every row's index entry is right after the shuffle
    for i in range(0, m.rowCount(), 97):
        assert m.row_of(m.row(i).key) == i
    # a full resend of node 3 that lost one more and changed nothing else
    del t[keys[30]]
    m.apply(3, [], full=True)
    assert m.get((3, *keys[30])) is None and m.rowCount() == 20001
    assert seen["reset"] == 0


def test_selection_and_scroll_survive_updates(qtbot, light) -> None:  # type: ignore[no-untyped-def]
    c = synthetic(20000)
    w = ProcBoxWindow(c)
    qtbot.addWidget(w)
    w.show()
    w.view.sortByColumn(COL_PID, Qt.SortOrder.AscendingOrder)
    w.view.scrollTo(w.proxy.index(5000, 0), w.view.ScrollHint.PositionAtTop)
    w.view.selectRow(5003)
    key = w.view.selected_keys()[0]
    scroll = w.view.verticalScrollBar().value()
    top_key = w.view.indexAt(w.view.viewport().rect().topLeft()).data(KEY_ROLE)
    # changes everywhere, removals below and above the selection, inserts at the end
    rnd = random.Random(3)
    for node, t in c.tables.items():
        ks = list(t)
        for k in rnd.sample(ks, 8):
            t[k] = dataclasses.replace(t[k], cpu=1.0)
        victim = ks[-1]
        if (node, *victim) != key:
            del t[victim]
        p = ProcInfo(pid=500000 + node, start=9000000 + node, cmd="late")
        t[p.key] = p
        w.model.apply(node, ks + [p.key])
    pump(0.2)
    assert w.model.resets == 1
    assert w.view.selected_keys() == [key]
    # rows removed above the top row move it up by exactly that many rows; the same process stays on top
    assert w.view.indexAt(w.view.viewport().rect().topLeft()).data(KEY_ROLE) == top_key or \
        abs(w.view.verticalScrollBar().value() - scroll) <= 50 * w.view.verticalHeader().defaultSectionSize()


# ---------------------------------------------------------------- the tree


def tree_cluster() -> SnapCluster:
    t1 = {
        (1, 10): ProcInfo(pid=1, start=10, ppid=0, cmd="init"),
        (50, 20): ProcInfo(pid=50, start=20, ppid=1, cmd="bash"),
        (60, 30): ProcInfo(pid=60, start=30, ppid=50, cmd="make"),
        (61, 31): ProcInfo(pid=61, start=31, ppid=60, cmd="cc"),
    }
    t2 = {(7, 5): ProcInfo(pid=7, start=5, ppid=0, cmd="other init", user="bob")}
    return SnapCluster({1: t1, 2: t2})


def test_tree_by_parent_updates_incrementally(qtbot, light) -> None:  # type: ignore[no-untyped-def]
    c = tree_cluster()
    m = ProcTableModel(c)
    tree = ProcTreeModel(m)
    tree.set_active(True)
    resets: list[int] = []
    tree.modelReset.connect(lambda: resets.append(1))

    def names(parent: QModelIndex = QModelIndex()) -> list[str]:  # noqa: B008
        return [tree.index(r, COL_COMMAND, parent).data() for r in range(tree.rowCount(parent))]

    def find(cmd: str, parent: QModelIndex = QModelIndex()) -> QModelIndex:  # noqa: B008
        for r in range(tree.rowCount(parent)):
            i = tree.index(r, 0, parent)
            if tree.index(r, COL_COMMAND, parent).data() == cmd:
                return i
            got = find(cmd, i)
            if got.isValid():
                return got
        return QModelIndex()

    assert tree.rowCount() == 2  # node groups
    g1 = tree.index(0, 0)
    assert "node 1" in g1.data()
    assert names(g1) == ["init"]
    make = find("make")
    assert names(make) == ["cc"] and tree.parent(make).siblingAtColumn(COL_COMMAND).data() == "bash"
    # a new child of make, then make ends: its child moves up to the node, like an orphan to init
    t1 = c.tables[1]
    t1[(62, 40)] = ProcInfo(pid=62, start=40, ppid=60, cmd="ld")
    m.apply(1, [(62, 40)])
    assert sorted(names(find("make"))) == ["cc", "ld"]
    del t1[(60, 30)]
    m.apply(1, [(60, 30)])
    assert not find("make").isValid()
    assert set(names(tree.index(0, 0))) >= {"init", "cc", "ld"}
    # the kernel re-parents them to init: the tree follows the ppid change
    t1[(61, 31)] = dataclasses.replace(t1[(61, 31)], ppid=1)
    m.apply(1, [(61, 31)])
    assert "cc" in names(find("init"))
    assert not resets
    # the filter keeps the ancestors of a match
    proxy = ProcFilterProxy()
    proxy.setSourceModel(m)
    from omprocs.proctree import TreeFilterProxy

    tp = TreeFilterProxy(proxy)
    tp.setSourceModel(tree)
    proxy.set_filter(text="cc")
    assert tp.rowCount() == 1  # only node 1's group
    g = tp.index(0, 0)
    init = tp.index(0, 0, g)
    assert init.siblingAtColumn(COL_COMMAND).data() == "init"
    assert tp.index(0, COL_COMMAND, init).data() == "cc"
    # sorting the tree sorts siblings
    tree.sort(COL_COMMAND, Qt.SortOrder.DescendingOrder)
    proxy.set_filter(text="")
    g1 = tree.index(0, 0)
    assert names(g1) == sorted(names(g1), reverse=True)


# ---------------------------------------------------------------- simulated nodes: bridge, window, actions


def sim(n: int = 3, procs: int = 30, guests: bool = True, interval: float = 0.3) -> tuple[SimFarm, Cluster]:
    """Simulated nodes; with `guests`, a few processes on nodes 2 and 3 came from node 1 and one is locked."""
    farm = SimFarm(n, procs_per_node=procs, churn=0.1)
    if guests:
        for node in (2, 3):
            for pid in list(farm.nodes[node].procs)[:3]:
                farm.nodes[node].procs[pid].update(home=1, nmigs=1, user="alice")
        first = next(iter(farm.nodes[1].procs))
        farm.nodes[1].procs[first].update(lock=True, cantmove="maps /dev/nvidia0 (a device)")
    cluster = Cluster(farm.config(interval), transport_factory=farm.transport).start()
    assert cluster.wait_until(lambda: all(st.up and st.procs for st in cluster._states.values()), 10)
    return farm, cluster


@pytest.fixture
def sim3() -> Iterator[tuple[SimFarm, Cluster]]:
    farm, cluster = sim()
    yield farm, cluster
    cluster.stop()
    farm.stop()


@pytest.fixture
def box(qtbot, light, sim3) -> ProcBoxWindow:  # type: ignore[no-untyped-def]
    _farm, cluster = sim3
    w = ProcBoxWindow(cluster)
    qtbot.addWidget(w)
    w.resize(1180, 560)
    w.show()
    qtbot.waitUntil(lambda: w.model.rowCount() >= 90, timeout=5000)
    return w


def test_bridge_follows_the_agents_deltas_without_reset(qtbot, box: ProcBoxWindow, sim3) -> None:  # type: ignore[no-untyped-def]
    farm, cluster = sim3
    box.view.selectRow(4)
    key = box.view.selected_keys()[0]
    updates = box.model.updates
    pump(2.0)  # several ticks with churn: changes, a new and a gone process now and then
    assert box.model.updates > updates
    assert box.model.resets == 1
    # the table is exactly the cluster's
    want = {(n, p.pid, p.start) for n, p in cluster.processes()}
    box.bridge.flush()
    qtbot.waitUntil(lambda: {r.key for r in box.model.rows()} == {(n, p.pid, p.start) for n, p in cluster.processes()},
                    timeout=3000)
    assert len(want) > 0
    if box.model.get(key) is not None:
        assert box.view.selected_keys() == [key]


def test_node_down_greys_its_rows_and_says_why(qtbot, box: ProcBoxWindow, sim3) -> None:  # type: ignore[no-untyped-def]
    farm, _cluster = sim3
    farm.kill(2)
    qtbot.waitUntil(lambda: box.model.node_down(2) is not None, timeout=5000)
    r = next(i for i in range(box.model.rowCount()) if box.model.row(i).node == 2)
    assert "down" in box.model.index(r, COL_PID).data(Qt.ItemDataRole.ToolTipRole)
    farm.revive(2)
    qtbot.waitUntil(lambda: box.model.node_down(2) is None, timeout=8000)


def test_filter_box_widgets_drive_the_proxy(qtbot, box: ProcBoxWindow) -> None:  # type: ignore[no-untyped-def]
    total = box.model.rowCount()
    box.only_migrated.setChecked(True)
    assert 0 < box.proxy.rowCount() < total
    assert all(box.proxy.index(r, 0).data(MIGRATED_ROLE) for r in range(box.proxy.rowCount()))
    box.only_migrated.setChecked(False)
    box.filter_node.setCurrentIndex(box.filter_node.findData(2))
    assert {box.proxy.index(r, 0).data(KEY_ROLE)[0] for r in range(box.proxy.rowCount())} == {2}
    box.filter_node.setCurrentIndex(0)
    QTest.keyClicks(box.filter_text, "job-10")
    qtbot.waitUntil(lambda: box.proxy.text == "job-10", timeout=2000)
    assert all("job-10" in box.proxy.index(r, COL_COMMAND).data() for r in range(box.proxy.rowCount()))
    box.filter_text.clear()
    box.filter_user.setEditText("alice")
    assert all(box.proxy.index(r, COL_USER).data() == "alice" for r in range(box.proxy.rowCount()))
    box.filter_user.setEditText("")
    box.only_mine.setChecked(True)
    assert all(box.proxy.index(r, COL_USER).data() == box.proxy.me for r in range(box.proxy.rowCount()))
    box.only_mine.setChecked(False)
    assert box.proxy.rowCount() == box.model.rowCount()


def test_multi_select_signal_renice_with_results_and_stale_refused(qtbot, box: ProcBoxWindow, sim3) -> None:  # type: ignore[no-untyped-def]
    farm, cluster = sim3
    box.only_migrated.setChecked(True)  # the guests do not churn away? they may: take what is there now
    box.only_migrated.setChecked(False)
    box.view.sortByColumn(COL_PID, Qt.SortOrder.AscendingOrder)
    box.view.selectRow(0)
    box.view.selectionModel().select(box.proxy.index(1, 0), box.view.selectionModel().SelectionFlag.Select
                                     | box.view.selectionModel().SelectionFlag.Rows)
    keys = box.view.selected_keys()
    assert len(keys) == 2
    # a third key whose PID is reused by another process (other start time): refused, never hit
    n, pid, start = keys[0]
    stale = (n, pid, start + 1)
    with qtbot.waitSignal(box.runner.finished, timeout=10000) as sig:
        box.runner.run("SIGSTOP", keys + [stale], "SIGSTOP", lambda k: actions.do_signal(cluster, k, "STOP"),
                       commands={k: box.model.get(k).p.cmd if box.model.get(k) else "" for k in keys})
    outcomes = sig.args[1]
    assert [o.ok for o in outcomes] == [True, True, False]
    assert "refused" in outcomes[2].text and "not touched" in outcomes[2].text
    dlg = box.runner.last_dialog
    assert dlg is not None and dlg.view.model().rowCount() == 3
    screenshot(dlg, "procs_results")
    dlg.close()
    # renice through the window: the input dialog answered, one result per process
    from PySide6.QtWidgets import QInputDialog

    orig = QInputDialog.getInt
    QInputDialog.getInt = staticmethod(lambda *a, **k: (7, True))  # type: ignore[method-assign]
    try:
        with qtbot.waitSignal(box.runner.finished, timeout=10000) as sig:
            box.renice()
    finally:
        QInputDialog.getInt = orig  # type: ignore[method-assign]
    assert [o.what for o in sig.args[1]] == ["renice 7", "renice 7"] and all(o.ok for o in sig.args[1])
    if box.runner.last_dialog is not None:
        box.runner.last_dialog.close()


def test_kill_asks_first(qtbot, box: ProcBoxWindow, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    box.view.selectRow(0)
    sent: list[Any] = []
    monkeypatch.setattr(box.runner, "run", lambda *a, **k: sent.append(a))
    asked: list[str] = []

    def no(parent, title, text, *a, **k):  # type: ignore[no-untyped-def]
        asked.append(text)
        return QMessageBox.StandardButton.No

    monkeypatch.setattr(QMessageBox, "question", no)
    box.act_kill.trigger()
    assert asked and "SIGKILL" in asked[0] and not sent
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    box.act_kill.trigger()
    assert len(sent) == 1 and sent[0][0] == "SIGKILL"


def test_actions_need_a_selection_and_say_so(box: ProcBoxWindow) -> None:
    box.view.clearSelection()
    for a in (box.act_stop, box.act_cont, box.act_renice, box.act_kill, box.act_migrate):
        assert not a.isEnabled()
        assert a.toolTip()
    box.view.selectRow(0)
    for a in (box.act_stop, box.act_cont, box.act_renice, box.act_kill):
        assert a.isEnabled()


def test_migration_buttons_disabled_with_reason_without_engine(qtbot, light) -> None:  # type: ignore[no-untyped-def]
    c = synthetic(50, nodes=2)  # a cluster object without migrate()
    w = ProcBoxWindow(c)
    qtbot.addWidget(w)
    w.view.selectRow(0)
    assert not w.act_migrate.isEnabled() and "unavailable" in w.act_migrate.toolTip()
    m = MigratorWindow(c, w.model, w.workers, w.view.selected_keys()[0], w)
    qtbot.addWidget(m)
    assert not m.btn_home.isEnabled() and "unavailable" in m.btn_home.toolTip()
    assert not m.node_view.isEnabled()


def test_migrator_window_live_status_and_nodes(qtbot, box: ProcBoxWindow, sim3) -> None:  # type: ignore[no-untyped-def]
    _farm, cluster = sim3
    guest = next(r for r in box.model.rows() if r.migrated)
    m = box.open_migrator(guest.key)
    assert m is not None
    assert m.is_green  # runs away from home
    assert m.fields["home"].text() == "node 1" and m.fields["node"].text() == str(guest.node)
    assert m.nodes.rowCount() == 3
    assert m.node_view.model().index(0, N_ID).data(NODE_ROLE) in (1, 2, 3)
    here = next(r for r in box.model.rows() if not r.migrated and not r.cantmove)
    m2 = box.open_migrator(here.key)
    assert m2 is not None and not m2.is_green
    # renice slider shows its value
    m2.nice.setValue(-7)
    assert m2.nice_value.text() == "-7"
    # a process that ends: the window says so and its buttons go grey
    t = cluster._states[here.node].procs
    with cluster._lock:
        cluster._states[here.node].procs = {k: v for k, v in t.items() if k != (here.p.pid, here.p.start)}
    box.model.apply(here.node, [(here.p.pid, here.p.start)])
    assert "ended" in m2.title.text() and not m2.btn_kill.isEnabled()
    m.close()
    m2.close()


def test_migrator_shows_phases_cancels_and_shows_refusals(qtbot, box: ProcBoxWindow, sim3, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The window's side of a migration, with the engine's calls answered by a stand-in (the real
    engine runs in the testbed tests): phases and bytes shown, Cancel reaches the engine, a
    refusal shows the preflight's reason, buttons are off while it runs."""
    import threading

    from omview.core.migration import MigrationResult, Progress

    _farm, cluster = sim3
    calls: list[tuple[Any, ...]] = []
    refuse = {"on": False}

    def engine(node, pid, target, *, start=None, progress=None, cancel=None, **kw):  # type: ignore[no-untyped-def]
        calls.append((node, pid, target, start, cancel is not None))
        r = MigrationResult("m1", node, 3 if target == "best" else int(target) if target != "home" else 1, pid,
                            start or 0)
        if refuse["on"]:
            r.refused, r.error = True, "process is locked (openMosix lock)"
            return r
        progress(Progress("m1", "preflight", node, r.target, pid))
        progress(Progress("m1", "dump", node, r.target, pid, bytes=64 << 20, total=256 << 20))
        assert cancel is not None
        cancel.wait(30)
        r.cancelled, r.error, r.phase = True, "cancelled", "dump"
        return r

    monkeypatch.setattr(cluster, "migrate", engine, raising=False)
    row = next(r for r in box.model.rows() if not r.migrated and r.node == 2)
    m = box.open_migrator(row.key)
    assert m is not None
    m.migrate_to(3)
    assert m.busy and not m.btn_home.isEnabled() and not m.btn_kill.isEnabled()
    qtbot.waitUntil(lambda: m.phase.text().startswith("dump"), timeout=5000)
    assert m.bar.maximum() == 1000 and m.bar.value() == 250 and "64.0 MiB of 256 MiB" in m.bar.format()
    assert m.btn_cancel.isEnabled()
    m.btn_cancel.click()
    qtbot.waitUntil(lambda: not m.busy, timeout=10000)
    assert calls[-1] == (2, row.p.pid, 3, row.p.start, True)  # (node, pid, start) went to the engine
    assert m.last_result.cancelled and "cancelled; it keeps running on node 2" in m.last_message
    assert m.key == row.key and m.btn_home.isEnabled()
    refuse["on"] = True
    m.btn_best.click()
    qtbot.waitUntil(lambda: not m.busy, timeout=10000)
    assert "refused: process is locked (openMosix lock)" in m.last_message
    assert calls[-1][2] == "best"
    m.close()
    assert threading.active_count() > 0


def test_migrator_follows_a_job_moved_elsewhere(qtbot, light) -> None:  # type: ignore[no-untyped-def]
    c = SnapCluster({
        1: {(10, 1): ProcInfo(pid=10, start=1, cmd="job", job="1-ab")},
        2: {(11, 2): ProcInfo(pid=11, start=2, cmd="other")},
    })
    m = ProcTableModel(c)
    from omview.gui.workers import Workers

    w = MigratorWindow(c, m, Workers(), (1, 10, 1))
    qtbot.addWidget(w)
    assert not w.is_green
    # the balancer moved it to node 2: gone from node 1, there under another PID, same job id
    del c.tables[1][(10, 1)]
    m.apply(1, [(10, 1)])  # node 1's sample comes first …
    assert "ended" in w.title.text() and not w.btn_kill.isEnabled()
    c.tables[2][(30, 9)] = ProcInfo(pid=30, start=9, cmd="job", job="1-ab", home=1, nmigs=1)
    m.apply(2, [(30, 9)])  # … then node 2's
    assert w.key == (2, 30, 9) and w.btn_kill.isEnabled()
    assert w.is_green and w.fields["home"].text() == "node 1" and "moved" in w.last_message


def test_remote_procs_window_lists_guests(qtbot, box: ProcBoxWindow) -> None:  # type: ignore[no-untyped-def]
    r = box.open_remote()
    r.node_box.setCurrentIndex(r.node_box.findData(2))
    keys = {r.proxy.index(i, 0).data(KEY_ROLE) for i in range(r.proxy.rowCount())}
    want = {row.key for row in box.model.rows() if row.node == 2 and row.migrated}
    assert keys == want and keys
    assert not r.btn_home.isEnabled()  # nothing selected yet
    r.view.selectRow(0)
    assert r.btn_home.isEnabled() == (r.problem is None)
    r.node_box.setCurrentIndex(r.node_box.findData(1))
    assert r.proxy.rowCount() == 0 and r.empty.isVisibleTo(r)
    r.close()


def test_goto_home_for_several_guests_reports_each(qtbot, box: ProcBoxWindow, sim3, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Remote-procs window, several guests selected, "goto home node": one engine call per process,
    in turn, a progress dialog, and a result line each (the engine answered by a stand-in)."""
    from omview.core.migration import MigrationResult

    _farm, cluster = sim3
    calls: list[tuple[Any, ...]] = []

    def engine(node, pid, target, *, start=None, progress=None, cancel=None, **kw):  # type: ignore[no-untyped-def]
        calls.append((node, pid, target, start))
        r = MigrationResult("m", node, 1, pid, start or 0)
        if len(calls) == 2:
            r.refused, r.error = True, "node 1 is blocked (mosctl block)"
        else:
            r.ok, r.new_pid, r.new_start, r.frozen = True, 4000 + len(calls), 7, 0.4
        return r

    monkeypatch.setattr(cluster, "migrate", engine, raising=False)
    r = box.open_remote()
    r.node_box.setCurrentIndex(r.node_box.findData(2))
    r.view.selectAll()
    keys = r.view.selected_keys()
    assert len(keys) >= 2 and r.btn_home.isEnabled()
    with qtbot.waitSignal(box.runner.finished, timeout=10000) as sig:
        r.btn_home.click()
    outcomes = sig.args[1]
    assert [c[:3] for c in calls] == [(k[0], k[1], "home") for k in keys]
    assert [c[3] for c in calls] == [k[2] for k in keys]  # the start time goes with every request
    assert outcomes[0].ok and "migrated to node 1" in outcomes[0].text
    assert outcomes[1].ok is False and "refused: node 1 is blocked" in outcomes[1].text
    dlg = box.runner.last_dialog
    assert dlg is not None and dlg.view.model().rowCount() == len(keys)
    screenshot(dlg, "procs_results_migrate")
    dlg.close()
    r.close()


def test_node_scope_shows_one_node(qtbot, light, sim3) -> None:  # type: ignore[no-untyped-def]
    _farm, cluster = sim3
    w = ProcBoxWindow(cluster, node=2)
    qtbot.addWidget(w)
    assert w.model.rowCount() > 0
    assert {w.model.row(i).node for i in range(w.model.rowCount())} == {2}
    assert w.filter_node.count() == 2 and w.filter_node.itemData(1) == 2
    assert "node 2" in w.windowTitle()
    w.bridge.flush()
    pump(0.8)
    assert {w.model.row(i).node for i in range(w.model.rowCount())} == {2}


# ---------------------------------------------------------------- screenshots


def test_screenshot_process_box(qtbot, box: ProcBoxWindow) -> None:  # type: ignore[no-untyped-def]
    box.view.sortByColumn(COL_NODE, Qt.SortOrder.DescendingOrder)
    box.view.selectRow(3)  # (the simulation ends 3:1002 on its first tick: seeded)
    box.view.setFocus()
    pump(0.3)
    assert box.view.selected_keys()
    assert screenshot(box, "procs_box").stat().st_size > 10000


def test_screenshot_process_box_tree(qtbot, box: ProcBoxWindow) -> None:  # type: ignore[no-untyped-def]
    box.tree_box.setChecked(True)
    pump(0.3)
    assert box.stack.currentWidget() is box.tree_view
    assert screenshot(box, "procs_tree").stat().st_size > 10000


def test_screenshot_migrator(qtbot, box: ProcBoxWindow) -> None:  # type: ignore[no-untyped-def]
    guest = next(r for r in box.model.rows() if r.migrated)
    m = box.open_migrator(guest.key)
    assert m is not None
    m.progress_box.setVisible(True)  # how a migration in progress looks
    m.phase.setText("transfer → node 1")
    m.bar.setRange(0, 1000)
    m.bar.setValue(420)
    m.bar.setFormat("108 MiB of 256 MiB")
    m.say(f"migrating {guest.node}:{guest.p.pid} to home…")
    m.busy = True
    m.handle_cancel = __import__("threading").Event()
    m._enable()
    pump(0.2)
    assert screenshot(m, "procs_migrator").stat().st_size > 5000
    m.close()


def test_screenshot_remote_procs(qtbot, box: ProcBoxWindow) -> None:  # type: ignore[no-untyped-def]
    r = box.open_remote()
    r.node_box.setCurrentIndex(r.node_box.findData(3))
    r.view.selectRow(0)
    pump(0.2)
    assert screenshot(r, "procs_remote").stat().st_size > 5000
    r.close()


def test_screenshot_dark(qtbot, qapp: QApplication, sim3) -> None:  # type: ignore[no-untyped-def]
    _farm, cluster = sim3
    theme.apply_theme(qapp, "dark")
    try:
        w = ProcBoxWindow(cluster)
        qtbot.addWidget(w)
        w.resize(1180, 520)
        w.show()
        qtbot.waitUntil(lambda: w.model.rowCount() >= 90, timeout=5000)
        w.view.sortByColumn(COL_NODE, Qt.SortOrder.DescendingOrder)
        w.view.selectRow(2)
        screenshot(w, "procs_box_dark")
        guest = next(r for r in w.model.rows() if r.migrated)
        m = w.open_migrator(guest.key)
        assert m is not None
        pump(0.2)
        screenshot(m, "procs_migrator_dark")
        m.close()
    finally:
        theme.apply_theme(qapp, "light")


# ---------------------------------------------------------------- the app


def test_omprocs_without_display_prints_one_line_and_exits_1() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    cp = subprocess.run([sys.executable, "-m", "omprocs.app"], env=env, capture_output=True, text=True, timeout=60,
                        cwd=ROOT)
    assert cp.returncode == 1
    assert cp.stderr.strip().splitlines() == [
        "omprocs: no display (DISPLAY/WAYLAND_DISPLAY unset): run it on a desktop, or under xvfb-run"]


def test_omprocs_unknown_node_is_a_usage_error(tmp_path: Path) -> None:
    f = tmp_path / "c.map"
    f.write_text("1 127.0.0.1 1\n")
    cp = subprocess.run([sys.executable, "-m", "omprocs.app", "--cluster", str(f), "--node", "9"],
                        env=dict(os.environ, QT_QPA_PLATFORM="offscreen"), capture_output=True, text=True,
                        timeout=60, cwd=ROOT)
    assert cp.returncode == 2 and "no node 9" in cp.stderr


# ---------------------------------------------------------------- the real testbed


@pytest.fixture(scope="module")
def tb_cluster(testbed) -> Iterator[Cluster]:  # type: ignore[no-untyped-def]
    from omview.core import criu as criu_mod
    from omview.core.config import load_cluster

    config = load_cluster(str(testbed.cluster_file))
    path = criu_mod.find_criu()
    st = criu_mod.probe(path, features=False)
    if st.ready:
        for n in config.nodes:
            n.criu = path
    c = Cluster(config).start()
    try:
        assert c.wait_until(lambda: all(n.up and n.sample is not None for n in c.nodes()), 60)
        if st.ready:
            c.wait_until(lambda: all(n.sample and n.sample.criu for n in c.nodes()), 30)
        c.criu_ready = st.ready  # type: ignore[attr-defined]
        c.criu_reason = st.reason  # type: ignore[attr-defined]
        yield c
    finally:
        c.stop()


@pytest.fixture
def tb_box(qtbot, light, tb_cluster) -> Iterator[ProcBoxWindow]:  # type: ignore[no-untyped-def]
    w = ProcBoxWindow(tb_cluster)
    qtbot.addWidget(w)
    w.resize(1180, 560)
    w.show()
    yield w
    w.close()


@pytest.fixture
def job_marker() -> Iterator[str]:
    m = f"omprocsjob{time.monotonic_ns()}"
    yield m
    while STARTED:
        p = STARTED.pop()
        if p.poll() is None:
            p.kill()
        p.wait()
    for _ in range(3):
        for pid in host_pids(m):
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        time.sleep(0.1)


def host_pids(marker: str) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            argv = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in argv and not argv.startswith(b"unshare"):
            out.append(int(name))
    return out


SLEEPER = "import time\nwhile True:\n    time.sleep(0.2)\n"


def start_job(c: Cluster, node: int, marker: str, testbed: Any = None) -> tuple[int, int, int]:
    """A job through the suite (omctl run's path); without the agent's `run` op (migration
    engine not merged), a plain process started inside the node (`testbed` needed then)."""
    argv = [sys.executable, "-c", SLEEPER, marker]
    try:
        r = c.run_job(node, argv)
    except AgentError as exc:
        if "unknown op" not in str(exc) or testbed is None:
            raise
        from omview.core import testbed as tbmod

        STARTED.append(tbmod.node_exec(testbed, node, argv))
        found: list[ProcInfo] = []

        def look() -> bool:
            found[:] = [p for _n, p in c.processes(node) if marker in p.cmd and "nsenter" not in p.cmd]
            return len(found) == 1

        assert c.wait_until(look, 20), found
        return (node, found[0].pid, found[0].start)
    assert c.wait_until(lambda: c.process(node, r["pid"]) is not None, 20)
    return (node, int(r["pid"]), int(r["start"]))


STARTED: list[Any] = []


def row_in_box(qtbot, w: ProcBoxWindow, key: tuple[int, int, int], timeout: int = 20000):  # type: ignore[no-untyped-def]
    """The box's row of this process, once the node's samples have brought it."""

    def look() -> bool:
        w.bridge.flush()
        return w.model.get(key) is not None

    qtbot.waitUntil(look, timeout=timeout)
    return w.model.get(key)


def omctl_ps(testbed) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    cp = subprocess.run([sys.executable, "-m", "omview.cli", "--cluster", str(testbed.cluster_file), "ps", "--json"],
                        capture_output=True, text=True, timeout=120, cwd=ROOT, env=dict(os.environ, OMVIEW_HUB="0"))
    assert cp.returncode == 0, cp.stderr
    return list(json.loads(cp.stdout)["processes"])


def test_testbed_job_appears_with_its_node_and_home(qtbot, tb_box: ProcBoxWindow, tb_cluster,  # type: ignore[no-untyped-def]
                                                    testbed, job_marker) -> None:
    key = start_job(tb_cluster, 1, job_marker, testbed)
    r = row_in_box(qtbot, tb_box, key)
    assert r.key == key and job_marker in r.p.cmd
    row = tb_box.model.row_of(key)
    assert row is not None
    assert tb_box.model.index(row, COL_NODE).data() == "0"  # on its home node
    assert tb_box.model.index(row, COL_HOME).data() == "1"
    assert tb_box.model.index(row, COL_PID).data() == str(key[1])


def test_testbed_stop_cont_renice_kill_hit_the_right_process(qtbot, tb_box: ProcBoxWindow, tb_cluster,  # type: ignore[no-untyped-def]
                                                             testbed, job_marker, monkeypatch) -> None:
    key = start_job(tb_cluster, 2, job_marker + "a", testbed)
    other = start_job(tb_cluster, 2, job_marker + "b", testbed)
    row_in_box(qtbot, tb_box, other)
    m = tb_box.open_migrator(key)
    assert m is not None

    def state(k: tuple[int, int, int]) -> str:
        p = tb_cluster.process(k[0], k[1])
        return p.state if p is not None and p.start == k[2] else "gone"

    m.btn_stop.click()
    qtbot.waitUntil(lambda: state(key) == "T", timeout=15000)
    assert state(other) != "T"
    m.btn_cont.click()
    qtbot.waitUntil(lambda: state(key) in ("S", "R"), timeout=15000)
    m.nice.setValue(9)
    m.renice()
    qtbot.waitUntil(lambda: (p := tb_cluster.process(2, key[1])) is not None and p.nice == 9, timeout=15000)
    assert tb_cluster.process(2, other[1]).nice == 0  # type: ignore[union-attr]
    qtbot.waitUntil(lambda: m.fields["nice"].text() == "9", timeout=15000)  # the window follows the node
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    m.btn_kill.click()
    qtbot.waitUntil(lambda: not m.last_message.startswith("sending"), timeout=30000)
    assert m.last_message == f"2:{key[1]}: SIGKILL sent"
    # dead: gone, or a zombie until its parent reaps it (here a plain process under a stopped nsenter)
    qtbot.waitUntil(lambda: state(key) in ("gone", "Z"), timeout=60000)
    assert state(other) in ("S", "R")
    m.close()


def test_testbed_reused_pid_is_refused(qtbot, tb_box: ProcBoxWindow, tb_cluster, testbed, job_marker) -> None:  # type: ignore[no-untyped-def]
    node, pid, start = start_job(tb_cluster, 3, job_marker, testbed)
    row_in_box(qtbot, tb_box, (node, pid, start))
    # the same PID with another start time: what a box still showing an ended process would send
    stale = (node, pid, start - 1)
    with pytest.raises(AgentError) as err:
        actions.do_signal(tb_cluster, stale, "KILL")
    assert err.value.code == "stale"
    # and the agent itself refuses it too, even if the workstation's list were wrong
    with pytest.raises(AgentError) as err2:
        tb_cluster.call(node, "signal", {"pid": pid, "start": start - 1, "sig": "KILL"})
    assert err2.value.code == "stale"
    assert tb_cluster.process(node, pid) is not None  # still alive
    with qtbot.waitSignal(tb_box.runner.finished, timeout=15000) as sig:
        tb_box.runner.run("SIGKILL", [stale], "SIGKILL", lambda k: actions.do_signal(tb_cluster, k, "KILL"))
    assert sig.args[1][0].ok is False and "refused" in sig.args[1][0].text
    assert tb_cluster.process(node, pid) is not None
    if tb_box.runner.last_dialog is not None:
        tb_box.runner.last_dialog.close()


def test_testbed_migration_buttons_follow_what_the_agents_can_do(qtbot, tb_box: ProcBoxWindow, tb_cluster,  # type: ignore[no-untyped-def]
                                                                  testbed, job_marker) -> None:
    """Until the agents have the migration ops, migration is disabled with the reason, not tried."""
    qtbot.waitUntil(lambda: not tb_box._probing, timeout=20000)
    key = start_job(tb_cluster, 1, job_marker, testbed)
    row_in_box(qtbot, tb_box, key)
    tb_box.view.selectRow(tb_box.proxy.mapFromSource(tb_box.model.index(tb_box.model.row_of(key), 0)).row())
    m = tb_box.open_migrator(key)
    assert m is not None
    problem = actions.migration_problem(tb_cluster)
    if problem is None:
        assert tb_box.act_migrate.isEnabled() and m.btn_home.isEnabled() and m.node_view.isEnabled()
    else:
        assert "unknown op" in problem
        assert not tb_box.act_migrate.isEnabled() and problem in tb_box.act_migrate.toolTip()
        assert not m.btn_home.isEnabled() and not m.btn_best.isEnabled() and not m.node_view.isEnabled()
        assert problem in m.btn_best.toolTip()
        screenshot(m, "procs_migrator_testbed_no_engine")
    m.close()


def test_testbed_migrate_from_the_migrator_and_home_again(qtbot, tb_box: ProcBoxWindow, tb_cluster, testbed,  # type: ignore[no-untyped-def]
                                                          job_marker) -> None:
    qtbot.waitUntil(lambda: not tb_box._probing, timeout=20000)
    if actions.migration_problem(tb_cluster):
        pytest.skip(actions.migration_problem(tb_cluster) or "")
    if not getattr(tb_cluster, "criu_ready", False):
        pytest.skip(f"no working criu here: {getattr(tb_cluster, 'criu_reason', '')}")
    key = start_job(tb_cluster, 1, job_marker)
    row_in_box(qtbot, tb_box, key)
    m = tb_box.open_migrator(key)
    assert m is not None and not m.is_green
    # double-click node 2 in the node list
    proxy = m.node_view.model()
    r2 = next(r for r in range(proxy.rowCount()) if proxy.index(r, N_ID).data(NODE_ROLE) == 2)
    rect = m.node_view.visualRect(proxy.index(r2, 1))
    QTest.mouseClick(m.node_view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    QTest.mouseDClick(m.node_view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert m.busy and m.progress_box.isVisibleTo(m), m.last_message
    phases: list[str] = []
    m.phase.linkHovered.connect(lambda *_: None)
    qtbot.waitUntil(lambda: (phases.append(m.phase.text()), not m.busy)[1], timeout=120000)
    res = m.last_result
    assert res is not None and res.ok, (m.last_message, res)
    assert m.key[0] == 2, (res, m.last_message)
    qtbot.waitUntil(lambda: tb_box.model.get(m.key) is not None, timeout=20000)
    # the restored process can be listed one sample before the target's agent has its job record
    # (then it reads as a local process of node 2): its job fields follow as a change
    qtbot.waitUntil(lambda: tb_box.model.index(tb_box.model.row_of(m.key), COL_NODE).data() == "2", timeout=10000)
    row = tb_box.model.row_of(m.key)
    assert tb_box.model.index(row, COL_NODE).data() == "2"  # runs on node 2 …
    assert tb_box.model.index(row, COL_HOME).data() == "1"  # … away from home node 1
    assert tb_box.model.index(row, COL_PID).data(MIGRATED_ROLE) is True
    qtbot.waitUntil(lambda: m.is_green, timeout=10000)
    screenshot(m, "procs_migrator_testbed_away")
    ps = [p for p in omctl_ps(testbed) if job_marker in p["cmd"]]
    assert [(p["node"], p["home"]) for p in ps] == [(2, 1)]
    assert len(host_pids(job_marker)) == 1
    # Home brings it back
    m.btn_home.click()
    qtbot.waitUntil(lambda: not m.busy, timeout=120000)
    assert m.last_result is not None and m.last_result.ok, m.last_message
    assert m.key[0] == 1
    qtbot.waitUntil(lambda: tb_box.model.get(m.key) is not None, timeout=20000)
    row = tb_box.model.row_of(m.key)
    assert tb_box.model.index(row, COL_NODE).data() == "0"
    qtbot.waitUntil(lambda: not m.is_green, timeout=10000)
    ps = [p for p in omctl_ps(testbed) if job_marker in p["cmd"]]
    assert [p["node"] for p in ps] == [1]
    assert len(host_pids(job_marker)) == 1
    m.close()


def test_testbed_migrate_several_then_goto_home_from_the_remote_window(  # type: ignore[no-untyped-def]
        qtbot, tb_box: ProcBoxWindow, tb_cluster, testbed, job_marker) -> None:
    qtbot.waitUntil(lambda: not tb_box._probing, timeout=20000)
    if actions.migration_problem(tb_cluster):
        pytest.skip(actions.migration_problem(tb_cluster) or "")
    keys = [start_job(tb_cluster, 1, job_marker + s) for s in "ab"]
    for k in keys:
        row_in_box(qtbot, tb_box, k)
    # select both in the box, migrate them to node 3: one result line each
    from PySide6.QtCore import QItemSelectionModel

    sm = tb_box.view.selectionModel()
    for k in keys:
        src = tb_box.model.index(tb_box.model.row_of(k), 0)  # type: ignore[arg-type]
        sm.select(tb_box.proxy.mapFromSource(src),
                  QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows)
    assert sorted(tb_box.selected_keys()) == sorted(keys)
    with qtbot.waitSignal(tb_box.runner.finished, timeout=240000) as sig:
        tb_box.migrate(tb_box.selected_keys(), 3)
    assert [o.ok for o in sig.args[1]] == [True, True], [o.text for o in sig.args[1]]
    assert all("migrated to node 3" in o.text for o in sig.args[1])
    if tb_box.runner.last_dialog is not None:
        screenshot(tb_box.runner.last_dialog, "procs_results_testbed")
        tb_box.runner.last_dialog.close()
    ps = [p for p in omctl_ps(testbed) if job_marker in p["cmd"]]
    assert sorted((p["node"], p["home"]) for p in ps) == [(3, 1), (3, 1)]
    # the remote-procs window of node 3 lists both guests; "goto home node" brings them back
    r = tb_box.open_remote()
    r.node_box.setCurrentIndex(r.node_box.findData(3))
    qtbot.waitUntil(lambda: (tb_box.bridge.flush(), r.proxy.rowCount() == 2)[1], timeout=20000)
    screenshot(r, "procs_remote_testbed")
    r.view.selectAll()
    with qtbot.waitSignal(tb_box.runner.finished, timeout=240000) as sig:
        r.btn_home.click()
    assert [o.ok for o in sig.args[1]] == [True, True], [o.text for o in sig.args[1]]
    ps = [p for p in omctl_ps(testbed) if job_marker in p["cmd"]]
    assert sorted(p["node"] for p in ps) == [1, 1]
    qtbot.waitUntil(lambda: (tb_box.bridge.flush(), r.proxy.rowCount() == 0)[1], timeout=20000)
    if tb_box.runner.last_dialog is not None:
        tb_box.runner.last_dialog.close()
    r.close()


def test_testbed_refusal_shows_the_preflight_reason(qtbot, tb_box: ProcBoxWindow, tb_cluster, job_marker) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: not tb_box._probing, timeout=20000)
    if actions.migration_problem(tb_cluster):
        pytest.skip(actions.migration_problem(tb_cluster) or "")
    run = getattr(tb_cluster, "run_job", None)
    if run is None:
        pytest.skip("jobs are not available in this build")
    r = run(1, [sys.executable, "-c", SLEEPER, job_marker], "nomig")
    key = (1, int(r["pid"]), int(r["start"]))
    row_in_box(qtbot, tb_box, key)
    m = tb_box.open_migrator(key)
    assert m is not None
    m.btn_best.click()
    qtbot.waitUntil(lambda: not m.busy, timeout=60000)
    assert m.last_result is not None and m.last_result.refused
    assert "refused" in m.last_message and "nomig" in m.last_message
    assert tb_cluster.process(1, key[1]) is not None
    m.close()


def test_screenshot_testbed_box(qtbot, tb_box: ProcBoxWindow, tb_cluster, testbed, job_marker) -> None:  # type: ignore[no-untyped-def]
    row_in_box(qtbot, tb_box, start_job(tb_cluster, 2, job_marker, testbed))
    tb_box.filter_text.setText("omprocsjob")
    qtbot.waitUntil(lambda: tb_box.proxy.text == "omprocsjob", timeout=3000)
    tb_box.view.selectRow(0)
    qtbot.waitUntil(lambda: tb_box.summary.text().startswith(f"{tb_box.proxy.rowCount()} of"), timeout=3000)
    screenshot(tb_box, "procs_box_testbed")
    # the tree of the real nodes: init → sshd → the agent's session, and our job
    tb_box.filter_text.setText("")
    qtbot.waitUntil(lambda: tb_box.proxy.text == "", timeout=3000)
    tb_box.tree_box.setChecked(True)
    tb_box.tree_view.expandAll()
    pump(0.3)
    tree = tb_box.tree_model
    assert tree is not None and tree.rowCount() == 3
    screenshot(tb_box, "procs_tree_testbed")
    tb_box.tree_box.setChecked(False)

