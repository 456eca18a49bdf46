"""ommigmon (issue 9): penguins, process circles, drag-and-drop migration, animation, screenshots.

Offscreen. The layout, overflow, animation timer and menu tests use simulated nodes
(omview.core.simulate); the migration tests drive the real window against the real 3-node SSH
testbed with real CRIU: a QTest drag from a square onto a penguin, a double-click home, a refused
drop. Screenshots go to tests/screenshots/migmon_*.png — look at them.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMenu

import ommigmon.scene as scene_mod
from ommigmon.items import Balloon, PenguinItem, ProcItem, penguin_renderer, ring_slot, rings_for, slots_in_rings
from ommigmon.scene import GUEST_R0, MAIN_R0, MAIN_STEP
from ommigmon.window import MigmonWindow
from omprocs import actions
from omview.core import migration
from omview.core.cluster import Cluster
from omview.core.config import load_cluster
from omview.core.testbed import Testbed
from tests.criu_helpers import criu_or_skip
from tests.gui_helpers import SimSetup, pump, screenshot, sim_cluster

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("qsettings_sandbox")]
ROOT = Path(__file__).resolve().parent.parent
WAIT_MS = 60000  # real migrations on a loaded 2-core machine


def make_guests(setup: SimSetup, every: int = 3, per_node: int = 2) -> int:
    """Mark some simulated processes as guests (home elsewhere), as the agent reports migrated ones."""
    n = 0
    ids = sorted(setup.farm.nodes)
    for nid in ids:
        if nid == 1 or nid % every:
            continue
        for k, pid in enumerate(list(setup.farm.nodes[nid].procs)[:per_node]):
            row = setup.farm.nodes[nid].procs[pid]
            row["home"] = 1 if k == 0 else ids[(nid + 5) % len(ids)] or 1
            if row["home"] == nid:
                row["home"] = 1
            row["where"] = nid
            row["cpu"] = 70.0
            n += 1
    return n


def open_window(qtbot: Any, cluster: Any, main: int | None = None, size: tuple[int, int] = (1100, 860)) -> MigmonWindow:
    w = MigmonWindow(cluster, main=main)
    qtbot.addWidget(w)
    w.resize(*size)
    w.show()
    QTest.qWaitForWindowExposed(w)
    w.fit()
    return w


def viewport_pos(w: MigmonWindow, scene_pos: QPointF) -> QPoint:
    return w.view.mapFromScene(scene_pos)


def drag(qtbot: Any, w: MigmonWindow, item: ProcItem, target: QPointF) -> None:
    """Press on the square, move in steps (as a hand does), release over `target`."""
    vp = w.view.viewport()
    a = viewport_pos(w, item.scenePos())
    b = viewport_pos(w, target)
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    for k in range(1, 9):
        QTest.mouseMove(vp, a + (b - a) * (k / 8))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)


# ---------------------------------------------------------------- pure parts


def test_ring_slots_never_overlap_and_grow_outward() -> None:
    pts = [ring_slot(i, MAIN_R0, MAIN_STEP) for i in range(slots_in_rings(6, MAIN_R0, MAIN_STEP))]
    for i, (x, y) in enumerate(pts):
        for x2, y2 in pts[i + 1 :]:
            assert (x - x2) ** 2 + (y - y2) ** 2 >= (MAIN_STEP * 0.85) ** 2
    radii = [round((x * x + y * y) ** 0.5, 3) for x, y in pts]
    assert radii == sorted(radii) and radii[0] == MAIN_R0
    assert rings_for(0, MAIN_R0, MAIN_STEP) == 0 and rings_for(1, MAIN_R0, MAIN_STEP) == 1
    assert rings_for(slots_in_rings(3, MAIN_R0, MAIN_STEP) + 1, MAIN_R0, MAIN_STEP) == 4


def test_penguin_art_is_ours_and_loads_through_importlib_resources() -> None:
    for down in (False, True):
        r = penguin_renderer(down)
        assert r.isValid() and r.defaultSize().width() > 0
    text = (ROOT / "resources" / "penguin.svg").read_text()
    assert "Drawn for omview" in text


def test_ommigmon_without_display_prints_one_line_and_exits_1() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    cp = subprocess.run([sys.executable, "-c", "import sys; from ommigmon.app import main; sys.exit(main([]))"],
                        env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert cp.returncode == 1 and cp.stderr.strip().count("\n") == 0 and "no display" in cp.stderr, cp.stderr


def test_unknown_main_node_is_a_one_line_error(tmp_path: Path) -> None:
    mapfile = tmp_path / "openmosix.map"
    mapfile.write_text("1 127.0.0.1 1\n")
    code = "import sys; from ommigmon.app import main; sys.exit(main(sys.argv[1:]))"
    cp = subprocess.run([sys.executable, "-c", code, "--cluster", str(mapfile), "--node", "7"],
                        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"}, capture_output=True, text=True,
                        timeout=60, cwd=ROOT)
    assert cp.returncode == 2 and "no node 7" in cp.stderr, cp.stderr


# ---------------------------------------------------------------- simulated nodes


@pytest.fixture
def sim3() -> Iterator[SimSetup]:
    s = sim_cluster(3, procs_per_node=30)
    make_guests(s, every=1, per_node=2)
    assert s.cluster.wait_ready(10)
    yield s
    s.stop()


def test_main_circle_guests_lines_and_down_node(qtbot, light, sim3: SimSetup) -> None:  # type: ignore[no-untyped-def]
    w = open_window(qtbot, sim3.cluster)
    sc = w.scene
    qtbot.waitUntil(lambda: len([k for k in sc.items_by_key if k[0] == 1]) == 30, timeout=10000)
    qtbot.waitUntil(lambda: sum(1 for it in sc.items_by_key.values() if it.guest) == 4, timeout=10000)
    centre = sc.penguins[1].pos()
    for key, it in sc.items_by_key.items():
        d = (it.pos() - sc.penguins[key[0]].pos())
        r = (d.x() ** 2 + d.y() ** 2) ** 0.5
        if key[0] == 1:
            assert not it.guest and it.line is None and MAIN_R0 - 1 <= r <= MAIN_R0 + 3 * MAIN_STEP + 1
        else:
            assert it.guest and it.line is not None and it.line.isVisible()
            assert abs(r - GUEST_R0) < 1
            assert it.line.line().p1() == sc.penguins[it.home].pos()
            tip = sc.tooltip_at(it.scenePos())
            assert "migrated here" in tip and f"PID {key[1]}" in tip and "CPU " in tip and "memory" in tip
    assert centre == QPointF(0, 0)
    screenshot(w, "migmon_sim_3_nodes")
    sim3.farm.kill(3)
    qtbot.waitUntil(lambda: not sc.penguins[3].up, timeout=10000)
    assert "down" in sc.tooltip_at(sc.penguins[3].pos())
    assert all(it.opacity() < 1 for k, it in sc.items_by_key.items() if k[0] == 3)  # faded: last known
    assert all(it.opacity() == 1 for k, it in sc.items_by_key.items() if k[0] != 3)
    screenshot(w, "migmon_node_down")
    # another main penguin: node 2 in the middle, its processes around it
    w.set_main(2)
    assert sc.main_id == 2 and sc.penguins[2].pos() == QPointF(0, 0)
    assert len([k for k in sc.items_by_key if k[0] == 2]) == 30


def test_overflow_shows_plus_n_more(qtbot, light) -> None:  # type: ignore[no-untyped-def]
    s = sim_cluster(2, procs_per_node=700)
    try:
        assert s.cluster.wait_ready(10)
        w = open_window(qtbot, s.cluster)
        sc = w.scene
        cap = sc.circles[1].slots.capacity
        qtbot.waitUntil(lambda: sc.circles[1].more.text == f"+{700 - cap} more", timeout=10000)
        assert len([k for k in sc.items_by_key if k[0] == 1]) == cap
        screenshot(w, "migmon_700_processes")
    finally:
        s.stop()


def test_64_nodes_screenshot_and_the_timer_sleeps_when_idle(qtbot, light) -> None:  # type: ignore[no-untyped-def]
    s = sim_cluster(64, procs_per_node=200)
    guests = make_guests(s)
    try:
        assert s.cluster.wait_ready(20)
        w = open_window(qtbot, s.cluster, size=(1280, 1000))
        sc = w.scene
        qtbot.waitUntil(lambda: sum(1 for it in sc.items_by_key.values() if it.guest) == guests, timeout=20000)
        qtbot.waitUntil(lambda: len([k for k in sc.items_by_key if k[0] == 1]) == 200, timeout=20000)
        w.fit()
        assert not sc.animating
        screenshot(w, "migmon_64_nodes")
        w.view.zoom_by(3.0)
        w.view.centerOn(0, 0)
        screenshot(w, "migmon_64_nodes_zoomed")
        # a move seen in the events animates, and the frame timer stops once it has landed
        guest = next(it for it in sc.items_by_key.values() if it.guest)
        home_item = next(it for k, it in sc.items_by_key.items() if k[0] == 1)
        sc._travel(guest, home_item.pos(), guest.slot_pos)
        assert sc.animating
        qtbot.waitUntil(lambda: not sc.animating, timeout=10000)
        assert guest.pos() == guest.slot_pos and sc.frames > 0
    finally:
        s.stop()


def test_failed_drop_bounces_back_with_a_balloon_and_background_drop_does_nothing(  # type: ignore[no-untyped-def]
    qtbot, light, sim3: SimSetup
) -> None:
    w = open_window(qtbot, sim3.cluster)
    sc = w.scene
    qtbot.waitUntil(lambda: len([k for k in sc.items_by_key if k[0] == 1]) == 30, timeout=10000)
    item = next(it for k, it in sorted(sc.items_by_key.items()) if k[0] == 1)
    slot = QPointF(item.slot_pos)
    # dropped on empty background: no migration, back to its place
    drag(qtbot, w, item, QPointF(sc._radius * 0.5, sc._radius * 0.5))
    assert not w.inflight and not item.migrating
    qtbot.waitUntil(lambda: item.pos() == slot, timeout=5000)
    # dropped on penguin 2: simulated agents cannot migrate, so the engine fails and says so
    drag(qtbot, w, item, sc.penguins[2].pos())
    assert item.migrating and (item.node, item.p.pid) in w.inflight
    qtbot.waitUntil(lambda: not w.inflight, timeout=20000)
    assert sc.last_balloon.startswith(f"process {item.p.pid}: ")
    assert any(isinstance(b, Balloon) for b in sc.items())
    qtbot.waitUntil(lambda: item.pos() == slot and not sc.animating, timeout=5000)
    assert sim3.cluster.process(1, item.p.pid) is not None


def test_menu_offers_the_actions_and_kill_asks_first(qtbot, light, sim3: SimSetup) -> None:  # type: ignore[no-untyped-def]
    w = open_window(qtbot, sim3.cluster)
    sc = w.scene
    qtbot.waitUntil(lambda: any(it.guest for it in sc.items_by_key.values()), timeout=10000)
    at_home = next(it for k, it in sorted(sc.items_by_key.items()) if k[0] == 1)
    guest = next(it for it in sc.items_by_key.values() if it.guest)
    menu = w.build_menu(at_home.key)
    acts = {a.data(): a for a in menu.actions() if a.data()}
    assert set(acts) == {"home", "best", "stop", "cont", "kill", "migrator"}
    assert not acts["home"].isEnabled() and acts["best"].isEnabled()
    assert w.build_menu(guest.key).actions()[2].isEnabled()  # home, for a guest
    asked: list[str] = []
    w.confirm = lambda title, text: asked.append(text) is not None and False  # type: ignore[assignment]
    pid = at_home.p.pid
    w.act(at_home.key, "kill")
    assert asked and f"Kill process {pid}" in asked[0]
    pump(0.3)
    assert pid in sim3.farm.nodes[1].procs  # refused: nothing sent
    w.send_home(at_home.key)
    assert "already runs on its home node" in w.last_message and not w.inflight
    # a right-click on the square pops the menu up
    QTest.mouseClick(w.view.viewport(), Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier,
                     viewport_pos(w, at_home.scenePos()))
    qtbot.waitUntil(lambda: any(m.isVisible() for m in w.findChildren(QMenu)), timeout=5000)
    shown = next(m for m in w.findChildren(QMenu) if m.isVisible())
    assert f"PID {pid}" in shown.actions()[0].text()
    shown.close()
    # "open in the migrator window": omprocs' window for this very process
    mig = w.act(at_home.key, "migrator") or w.migrators.get(at_home.key)
    assert mig is not None and mig.key == at_home.key and mig.isVisible()
    mig.close()


def test_wheel_zooms_background_drag_pans_double_click_makes_main(  # type: ignore[no-untyped-def]
    qtbot, light, sim3: SimSetup
) -> None:
    w = open_window(qtbot, sim3.cluster)
    sc, view = w.scene, w.view
    qtbot.waitUntil(lambda: len(sc.items_by_key) >= 30, timeout=10000)
    z0 = view.transform().m11()
    vp = view.viewport()
    empty = viewport_pos(w, QPointF(sc._radius * 0.6, -sc._radius * 0.6))
    ev = QWheelEvent(QPointF(empty), QPointF(vp.mapToGlobal(empty)), QPoint(), QPoint(0, 240),
                     Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(vp, ev)
    assert view.transform().m11() > z0 * 1.3 and view.user_zoomed
    # once more, so the scene overflows the view both ways whatever the window's shape (the hand
    # pans only what overflows: one step left it fitting across in one run)
    QApplication.sendEvent(vp, QWheelEvent(QPointF(empty), QPointF(vp.mapToGlobal(empty)), QPoint(), QPoint(0, 240),
                                           Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                                           Qt.ScrollPhase.NoScrollPhase, False))
    assert view.horizontalScrollBar().maximum() > 0 and view.verticalScrollBar().maximum() > 0
    centre0 = view.mapToScene(vp.rect().center())
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, empty)
    for k in range(1, 6):
        QTest.mouseMove(vp, empty + QPoint(-30 * k, 20 * k))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, empty + QPoint(-150, 100))
    moved = view.mapToScene(vp.rect().center()) - centre0
    assert moved.x() > 20 and moved.y() < -10, moved  # the scene followed the hand
    w.fit()
    QTest.mouseDClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                      viewport_pos(w, sc.penguins[3].pos()))
    assert sc.main_id == 3 and sc.penguins[3].pos() == QPointF(0, 0) and sc.penguins[3].main
    assert w.main_box.currentData() == 3


# ---------------------------------------------------------------- the real testbed, real CRIU

SLEEPER = "import time\nwhile True:\n    time.sleep(0.2)\n"
MEMORY = ("import os, time\nbuf = bytearray(os.urandom(1 << 20)) * 96\nprint('up', flush=True)\n"
          "while True:\n    time.sleep(0.2)\n")


def criu_cluster_file(testbed: Testbed) -> str:
    path = testbed.cluster_file.with_name("cluster-migmon.toml")
    crit = criu_or_skip()
    path.write_text(testbed.cluster_file.read_text().replace("[[node]]\n", f"[[node]]\ncriu = {json.dumps(crit)}\n"))
    return str(path)


@pytest.fixture(scope="module")
def tb_cluster(testbed: Testbed) -> Iterator[Cluster]:
    c = Cluster(load_cluster(criu_cluster_file(testbed))).start()
    try:
        ok = c.wait_until(lambda: all(n.up and n.sample is not None for n in c.nodes()), 60)
        assert ok, [(n.id, n.reason) for n in c.nodes()]
        problem = actions.probe_agents(c)
        if problem:  # the agent half of the migration engine has not landed in this tree
            pytest.skip(problem)
        ok = c.wait_until(lambda: all(n.sample is not None and n.sample.criu for n in c.nodes()), 60)
        assert ok, [(n.id, n.sample.criu if n.sample else None) for n in c.nodes()]
        yield c
    finally:
        c.stop()


@pytest.fixture
def job_marker() -> Iterator[str]:
    m = f"omjob{time.monotonic_ns()}"
    yield m
    for name in os.listdir("/proc"):  # every copy of the job, on every node (the host sees them all)
        if not name.isdigit():
            continue
        try:
            argv = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        if m.encode() in argv and int(name) != os.getpid():
            try:
                os.kill(int(name), signal.SIGKILL)
            except OSError:
                pass


def start_job(c: Cluster, node: int, code: str, marker: str) -> dict[str, Any]:
    r = c.run_job(node, [sys.executable, "-c", code, marker])
    assert c.wait_until(lambda: c.process(node, r["pid"]) is not None, 30)
    return r


def where_is(c: Cluster, job: str) -> list[tuple[int, int]]:
    return [(n, p.pid) for n, p in c.processes() if p.job == job]


def omctl_ps(testbed: Testbed, marker: str) -> list[dict[str, Any]]:
    cp = subprocess.run([sys.executable, "-m", "omview.cli", "--cluster", criu_cluster_file(testbed), "ps", "--json"],
                        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert cp.returncode == 0, cp.stderr
    return [p for p in json.loads(cp.stdout)["processes"] if marker in p["cmd"] and p["job"]]


def test_drag_to_penguin_2_migrates_then_double_click_sends_it_home(  # type: ignore[no-untyped-def]
    qtbot, light, testbed: Testbed, tb_cluster: Cluster, job_marker: str, monkeypatch
) -> None:
    c = tb_cluster
    job = start_job(c, 1, MEMORY, job_marker)
    w = open_window(qtbot, c)
    sc = w.scene
    # a job on node 1 is a black square around penguin 1
    qtbot.waitUntil(lambda: sc.item(1, job["pid"]) is not None, timeout=WAIT_MS)
    item = sc.item(1, job["pid"])
    assert item is not None and not item.guest and item.line is None
    d = item.pos() - sc.penguins[1].pos()
    assert MAIN_R0 - 1 <= (d.x() ** 2 + d.y() ** 2) ** 0.5 <= MAIN_R0 + 4 * MAIN_STEP
    assert sc.penguins[1].main and sc.penguins[1].pos() == QPointF(0, 0)
    screenshot(w, "migmon_testbed_idle")

    # drag it onto penguin 2: the real engine moves it (progress ring meanwhile)
    monkeypatch.setattr(scene_mod, "TRAVEL_S", 4.0)  # slow trips, so the screenshot catches one
    drag(qtbot, w, item, sc.penguins[2].pos())
    assert item.migrating and (1, job["pid"]) in w.inflight
    qtbot.waitUntil(lambda: item not in sc.travels or not w.inflight, timeout=WAIT_MS)
    if item.migrating:  # waiting beside penguin 2 with its progress ring
        screenshot(w, "migmon_testbed_during_migration")
    qtbot.waitUntil(lambda: not w.inflight, timeout=WAIT_MS)
    res = w.last_result
    assert getattr(res, "ok", False), res
    qtbot.waitUntil(lambda: sc.item(2, res.new_pid) is not None, timeout=WAIT_MS)
    moved = sc.item(2, res.new_pid)
    assert moved is not None
    if sc.travels:
        screenshot(w, "migmon_testbed_migrating")
    qtbot.waitUntil(lambda: where_is(c, job["job"]) == [(2, res.new_pid)], timeout=WAIT_MS)
    qtbot.waitUntil(lambda: sc.item(1, job["pid"]) is None and moved not in sc.travels, timeout=WAIT_MS)
    assert moved.guest and moved.home == 1 and moved.line is not None and moved.line.isVisible()
    assert moved.line.line().p1() == sc.penguins[1].pos() and moved.line.line().p2() == moved.pos()
    assert moved.pos() == moved.slot_pos
    p2 = moved.pos() - sc.penguins[2].pos()
    assert abs((p2.x() ** 2 + p2.y() ** 2) ** 0.5 - GUEST_R0) < 1
    ps = omctl_ps(testbed, job_marker)
    assert [(p["node"], p["pid"], p["home"]) for p in ps] == [(2, res.new_pid, 1)], ps
    screenshot(w, "migmon_testbed_migrated")

    # double-click: home again
    monkeypatch.setattr(scene_mod, "TRAVEL_S", 0.2)
    QTest.mouseDClick(w.view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                      viewport_pos(w, moved.scenePos()))
    assert (2, res.new_pid) in w.inflight
    qtbot.waitUntil(lambda: not w.inflight, timeout=WAIT_MS)
    back = w.last_result
    assert getattr(back, "ok", False) and back.target == 1, back
    qtbot.waitUntil(lambda: where_is(c, job["job"]) == [(1, back.new_pid)], timeout=WAIT_MS)
    qtbot.waitUntil(lambda: (it := sc.item(1, back.new_pid)) is not None and not it.guest
                    and sc.item(2, res.new_pid) is None, timeout=WAIT_MS)
    assert sc.item(1, back.new_pid).line is None  # type: ignore[union-attr]

    # a migration started elsewhere (omctl, the balancer): seen through the engine's events alone
    frames0 = sc.frames
    handle = migration.start_migration(c, 1, back.new_pid, 3)
    res3 = handle.future.result(WAIT_MS / 1000)
    assert res3.ok, res3
    qtbot.waitUntil(lambda: (it := sc.item(3, res3.new_pid)) is not None and it.guest and it.line is not None
                    and sc.item(1, back.new_pid) is None and not sc.animating, timeout=WAIT_MS)
    assert sc.frames > frames0  # it travelled (and the busy ring turned) on the frame timer
    assert not sc.item(3, res3.new_pid).migrating  # type: ignore[union-attr]


def test_refused_drop_shows_the_reason_and_moves_nothing(  # type: ignore[no-untyped-def]
    qtbot, light, testbed: Testbed, tb_cluster: Cluster, job_marker: str
) -> None:
    c = tb_cluster
    job = start_job(c, 1, SLEEPER, job_marker)
    w = open_window(qtbot, c)
    sc = w.scene
    qtbot.waitUntil(lambda: sc.item(1, job["pid"]) is not None, timeout=WAIT_MS)
    item = sc.item(1, job["pid"])
    assert item is not None
    slot = QPointF(item.slot_pos)
    c.set_admin(2, block=True)
    try:
        drag(qtbot, w, item, sc.penguins[2].pos())
        qtbot.waitUntil(lambda: not w.inflight, timeout=WAIT_MS)
        res = w.last_result
        assert res.refused and "block" in res.error, res
        assert "refused" in sc.last_balloon and "block" in sc.last_balloon
        qtbot.waitUntil(lambda: item.pos() == slot and not item.migrating, timeout=10000)
        screenshot(w, "migmon_testbed_refused")
    finally:
        c.set_admin(2, block=False)
    assert where_is(c, job["job"]) == [(1, job["pid"])]
    assert sc.item(1, job["pid"]) is item and not item.guest
    assert all(k[0] == 1 or not k[1] == job["pid"] for k in sc.items_by_key)

    # the menu's stop and continue: a stopped process is a hollow square
    w.act(item.key, "stop")
    qtbot.waitUntil(lambda: item.p.state in ("T", "t"), timeout=WAIT_MS)
    assert item.brush().style() == Qt.BrushStyle.NoBrush
    w.act(item.key, "cont")
    qtbot.waitUntil(lambda: item.p.state not in ("T", "t"), timeout=WAIT_MS)
    assert item.brush().style() != Qt.BrushStyle.NoBrush
    # kill, confirmed: the square goes with the process
    w.confirm = lambda title, text: True  # type: ignore[assignment]
    w.act(item.key, "kill")
    qtbot.waitUntil(lambda: c.process(1, job["pid"]) is None and sc.item(1, job["pid"]) is None, timeout=WAIT_MS)


def test_penguin_item_is_a_drop_target(qtbot, light, sim3: SimSetup) -> None:  # type: ignore[no-untyped-def]
    w = open_window(qtbot, sim3.cluster)
    sc = w.scene
    for nid, pg in sc.penguins.items():
        assert isinstance(sc.penguin_at(pg.pos()), PenguinItem) and sc.penguin_at(pg.pos()).node_id == nid  # type: ignore[union-attr]
        assert sc.penguin_at(pg.pos() + QPointF(8, 20)).node_id == nid  # type: ignore[union-attr]
