"""The omview main window (issue 5): model, slider, node dialog, lamps, stalls, launcher, screenshots.

Runs offscreen against simulated nodes (omview.core.simulate), which speak the real protocol
through the real Session/Cluster; the LocalTransport and testbed tests at the end use the real
agent. Screenshots go to tests/screenshots/ — look at them.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from omview.core.cluster import Cluster
from omview.core.config import ClusterConfig, NodeConfig
from omview.gui import theme
from omview.gui.bridge import ClusterBridge
from omview.gui.display import display_problem
from omview.gui.launcher import Launcher
from omview.gui.mainwindow import MainWindow
from omview.gui.nodedialog import SETTINGS, NodeDialog
from omview.gui.nodemodel import (
    ALL_NODES,
    COL_ADDRESS,
    COL_CPUS,
    COL_MIGRATION,
    COL_NODE,
    COL_SPEED,
    COLUMN_COUNT,
    PENDING_ROLE,
    UP_ROLE,
    VALUE_ROLE,
    NodeTableModel,
)
from omview.gui.workers import Workers
from tests.gui_helpers import SimSetup, StallMeter, pump, screenshot, sim_cluster

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("qsettings_sandbox")]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def sim3() -> Iterator[SimSetup]:
    s = sim_cluster(3)
    assert s.cluster.wait_ready(10)
    yield s
    s.stop()


@pytest.fixture
def window(qtbot, light, sim3: SimSetup) -> MainWindow:  # type: ignore[no-untyped-def]
    w = MainWindow(sim3.cluster, None, factory=sim3.factory, restore=False)
    qtbot.addWidget(w)
    w.resize(1280, 520)
    w.show()
    qtbot.waitUntil(lambda: w.model is not None and w.model.aggregate.up == 3, timeout=5000)
    return w


def click(qtbot, button) -> None:  # type: ignore[no-untyped-def]
    """Click a radio button on its indicator: its centre may lie beyond a short label's click area."""
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton, pos=QPoint(8, button.height() // 2))


def proxy_index(w: MainWindow, node_id: int, col: int):  # type: ignore[no-untyped-def]
    assert w.model is not None
    return w.proxy.mapFromSource(w.model.index(w.model.row_of(node_id), col))


# ---------------------------------------------------------------- no display


def test_display_problem_says_what_to_do() -> None:
    assert display_problem({}) is not None
    assert "xvfb-run" in (display_problem({}) or "")
    assert display_problem({"DISPLAY": ":0"}) is None
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}) is None
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}) is None


def test_omview_without_display_prints_one_line_and_exits_1() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    cp = subprocess.run([sys.executable, "-m", "omview.app"], env=env, capture_output=True, text=True, timeout=60)
    assert cp.returncode == 1
    lines = cp.stderr.strip().splitlines()
    assert lines == ["omview: no display (DISPLAY/WAYLAND_DISPLAY unset): run it on a desktop, or under xvfb-run"]


# ---------------------------------------------------------------- model


def test_model_rows_columns_and_all_nodes_row(qtbot, sim3: SimSetup) -> None:  # type: ignore[no-untyped-def]
    model = NodeTableModel(sim3.cluster)
    bridge = ClusterBridge(sim3.cluster)
    bridge.nodesChanged.connect(model.update_nodes)
    assert model.rowCount() == 4  # all nodes + 3
    assert model.columnCount() == COLUMN_COUNT
    qtbot.waitUntil(lambda: model.aggregate.up == 3, timeout=5000)
    assert model.index(0, COL_NODE).data() == "3/3"
    assert model.index(0, COL_ADDRESS).data() == "All nodes"
    assert model.index(0, COL_NODE).data(UP_ROLE) is True
    cpus = sum(n.cpus for n in sim3.farm.nodes.values())
    assert model.index(0, COL_CPUS).data() == str(cpus)
    assert model.aggregate.mem_total == sum(n.mem_total for n in sim3.farm.nodes.values())
    for node_id in (1, 2, 3):
        row = model.row_of(node_id)
        assert model.index(row, COL_NODE).data() == str(node_id)
        assert model.index(row, COL_ADDRESS).data() == f"sim{node_id}"
        assert model.index(row, COL_CPUS).data() == str(sim3.farm.nodes[node_id].cpus)
        assert model.index(row, COL_MIGRATION).data() == "unknown"  # sims report no CRIU text
        assert model.index(row, COL_SPEED).flags() & Qt.ItemFlag.ItemIsEditable
    assert not model.index(0, COL_SPEED).flags() & Qt.ItemFlag.ItemIsEditable
    bridge.close()


def test_bridge_coalesces_200_nodes_into_few_batches(qtbot, light) -> None:  # type: ignore[no-untyped-def]
    s = sim_cluster(200, interval=0.5)
    try:
        bridge = ClusterBridge(s.cluster)
        seen: list[int] = []
        bridge.nodesChanged.connect(lambda ids: seen.extend(ids))
        pump(3.0)
        assert set(seen) == set(range(1, 201))
        # 6 ticks of 200 nodes = 1200+ events; batches are capped at one per 100 ms
        assert bridge.batches <= 3.0 / 0.1 + 2
        print(f"\n200 nodes, 3 s: {len(seen)} node updates in {bridge.batches} batches")
        bridge.close()
    finally:
        s.stop()


# ---------------------------------------------------------------- speed slider


def test_slider_editor_sets_speed_on_the_node(qtbot, window: MainWindow, sim3: SimSetup) -> None:  # type: ignore[no-untyped-def]
    idx = proxy_index(window, 2, COL_SPEED)
    window.view.setCurrentIndex(idx)
    window.view.edit(idx)
    editor = window.view.speed.last_editor
    assert editor is not None
    editor.slider.setValue(23000)
    editor.committed.emit()
    qtbot.waitUntil(lambda: sim3.farm.nodes[2].admin.speed == 23000, timeout=5000)
    assert sim3.cluster.get_admin(2).speed == 23000
    # the display follows the node's real value from its samples
    qtbot.waitUntil(lambda: idx.data(Qt.ItemDataRole.DisplayRole) == "23000", timeout=5000)
    qtbot.waitUntil(lambda: sim3.cluster.node(2).sample.speed == 23000, timeout=5000)  # type: ignore[union-attr]


def test_click_and_drag_on_painted_slider(qtbot, window: MainWindow, sim3: SimSetup) -> None:  # type: ignore[no-untyped-def]
    idx = proxy_index(window, 1, COL_SPEED)
    rect = window.view.speed.slider_rect(window.view.visualRect(idx))
    vp = window.view.viewport()
    start = QPoint(rect.left() + 8, rect.center().y())
    end = QPoint(rect.right() - 4, rect.center().y())
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    QTest.mouseMove(vp, QPoint((start.x() + end.x()) // 2, start.y()))
    QTest.mouseMove(vp, end)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    qtbot.waitUntil(lambda: (sim3.farm.nodes[1].admin.speed or 0) >= 45000, timeout=5000)


def test_painted_address_button_hovers_and_opens_the_node_dialog(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    vp = window.view.viewport()
    idx = proxy_index(window, 2, COL_ADDRESS)
    center = window.view.visualRect(idx).center()
    QTest.mouseMove(vp, center)
    qtbot.waitUntil(lambda: window.view.hover_cell == (idx.row(), COL_ADDRESS), timeout=3000)
    QTest.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, center)
    qtbot.waitUntil(lambda: 2 in window.dialogs and window.dialogs[2].isVisible(), timeout=3000)
    all_nodes = window.view.visualRect(window.view.model().index(0, COL_ADDRESS)).center()
    QTest.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, all_nodes)
    qtbot.waitUntil(lambda: ALL_NODES in window.dialogs, timeout=3000)
    window.view.setFocus()
    window.view.setCurrentIndex(proxy_index(window, 3, COL_ADDRESS))
    QTest.keyClick(window.view, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: 3 in window.dialogs, timeout=3000)
    assert 1 not in window.dialogs  # only the buttons clicked opened a dialog
    for dlg in list(window.dialogs.values()):
        dlg.close()


def test_keyboard_sets_speed(qtbot, window: MainWindow, sim3: SimSetup) -> None:  # type: ignore[no-untyped-def]
    idx = proxy_index(window, 3, COL_SPEED)
    before = int(idx.data(Qt.ItemDataRole.EditRole))
    window.view.setFocus()
    window.view.setCurrentIndex(idx)
    QTest.keyClick(window.view, Qt.Key.Key_F2)
    editor = window.view.speed.last_editor
    assert editor is not None
    QTest.keyClick(editor.slider, Qt.Key.Key_PageUp)
    QTest.keyClick(editor.slider, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: sim3.farm.nodes[3].admin.speed == before + 2500, timeout=5000)


# ---------------------------------------------------------------- lamps


def test_lamp_turns_red_with_reason_and_green_again(qtbot, window: MainWindow, sim3: SimSetup) -> None:  # type: ignore[no-untyped-def]
    idx = proxy_index(window, 2, COL_NODE)
    assert idx.data(UP_ROLE) is True
    sim3.farm.kill(2)
    qtbot.waitUntil(lambda: idx.data(UP_ROLE) is False, timeout=5000)
    assert "down" in idx.data(Qt.ItemDataRole.ToolTipRole)
    assert "unreachable" in idx.data(Qt.ItemDataRole.ToolTipRole)
    assert window.model is not None and window.model.index(0, COL_NODE).data() == "2/3"
    assert not idx.siblingAtColumn(COL_SPEED).flags() & Qt.ItemFlag.ItemIsEditable
    sim3.farm.revive(2)
    qtbot.waitUntil(lambda: idx.data(UP_ROLE) is True, timeout=10000)


def test_painted_rows_say_what_the_roles_say(qtbot, window: MainWindow, sim3: SimSetup) -> None:  # type: ignore[no-untyped-def]
    """The painter reads a per-row record, not data(): it must hold the same texts and values, for
    nodes up, down and with a speed change on its way."""
    model = window.model
    assert model is not None
    sim3.farm.kill(2)
    qtbot.waitUntil(lambda: model.node_state(model.row_of(2)).up is False, timeout=5000)  # type: ignore[union-attr]
    model.setData(model.index(model.row_of(1), COL_SPEED), 23000)
    for row in range(model.rowCount()):
        rp = model.row_paint(row)
        for col in range(COLUMN_COUNT):
            idx = model.index(row, col)
            assert rp.texts[col] == (idx.data() or ""), (row, col)
            assert rp.values[col] == idx.data(VALUE_ROLE), (row, col)
        assert rp.up == model.index(row, COL_NODE).data(UP_ROLE)
        assert rp.pending == bool(model.index(row, COL_SPEED).data(PENDING_ROLE))
        assert rp.editable == bool(model.index(row, COL_SPEED).flags() & Qt.ItemFlag.ItemIsEditable)
    assert model.row_paint(model.row_of(1)).pending
    assert model.row_paint(model.row_of(2)).texts[COL_MIGRATION].startswith("down: ")
    sim3.farm.revive(2)


def test_hung_node_leaves_window_responsive(qtbot, window: MainWindow, sim3: SimSetup) -> None:  # type: ignore[no-untyped-def]
    sim3.farm.hang(3)
    assert window.model is not None
    # a request to the hung node waits for its timeout in a worker, never in the GUI thread
    window.model.setData(window.model.index(window.model.row_of(3), COL_SPEED), 31000)
    meter = StallMeter().start()
    idx = proxy_index(window, 3, COL_NODE)
    qtbot.waitUntil(lambda: idx.data(UP_ROLE) is False, timeout=5000)
    pump(1.0)
    gap = meter.stop()
    print(f"\nhung node: longest event-loop stall {gap:.1f} ms over {meter.ticks} ticks")
    assert gap < 1000
    assert "no sample" in idx.data(Qt.ItemDataRole.ToolTipRole)
    sim3.farm.hang(3, False)


def test_incremental_repaints_match_a_full_repaint(qtbot, light) -> None:  # type: ignore[no-untyped-def]
    """Ticks repaint only the changed cells on screen; what the window shows after many ticks must be
    exactly what painting it whole shows (a column left out of a tick's repaint would stay stale)."""
    s = sim_cluster(40, interval=0.3)
    try:
        s.cluster.wait_ready(15)
        w = MainWindow(s.cluster, None, factory=s.factory, restore=False)
        qtbot.addWidget(w)
        w.resize(1280, 800)
        w.show()
        assert w.bridge is not None and w.model is not None
        qtbot.waitUntil(lambda: w.bridge is not None and w.bridge.batches >= 6, timeout=30000)
        w.bridge.nodesChanged.disconnect()  # freeze the model, then let the last paints happen
        pump(0.3)
        vp = w.view.viewport()
        at = vp.mapTo(w, QPoint(0, 0))
        # offscreen, grabWindow returns the window's backing store: what the incremental paints left
        shown = QApplication.primaryScreen().grabWindow(w.winId()).toImage()
        whole = w.grab().toImage()
        fmt = QImage.Format.Format_RGB32
        shown = shown.copy(at.x(), at.y(), vp.width(), vp.height()).convertToFormat(fmt)
        whole = whole.copy(at.x(), at.y(), vp.width(), vp.height()).convertToFormat(fmt)
        assert not shown.isNull() and shown.size() == whole.size()
        assert shown == whole
        w.close()
    finally:
        s.stop()


def test_event_loop_stall_while_200_nodes_update(qtbot, light) -> None:  # type: ignore[no-untyped-def]
    s = sim_cluster(200, interval=0.5)
    try:
        w = MainWindow(s.cluster, None, factory=s.factory, restore=False)
        qtbot.addWidget(w)
        w.resize(1280, 800)
        w.show()
        meter = StallMeter().start()
        # every node connects and then updates for 4 s more (on a loaded machine connecting takes
        # longer than 4 s: wait for it rather than assume it)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (w.model is not None and w.model.aggregate.up == 200):
            pump(0.2)
        pump(4.0)
        gap = meter.stop()
        print(f"\n200 nodes at 2 Hz: longest event-loop stall {gap:.1f} ms over {meter.ticks} ticks")
        assert gap < 1000
        assert w.model is not None and w.model.aggregate.up == 200
        w.close()
    finally:
        s.stop()


def test_filter_follows_nodes_going_down(qtbot, window: MainWindow, sim3: SimSetup) -> None:  # type: ignore[no-untyped-def]
    window.filter.setText("down")
    assert window.proxy.rowCount() == 1  # only the all-nodes row
    sim3.farm.kill(2)
    qtbot.waitUntil(lambda: window.proxy.rowCount() == 2, timeout=5000)
    assert window.proxy.index(1, COL_NODE).data() == "2"
    window.filter.setText("")
    assert window.proxy.rowCount() == 4
    sim3.farm.revive(2)


# ---------------------------------------------------------------- node dialog


def test_node_dialog_preselects_and_changes_admin_state(qtbot, window: MainWindow, sim3: SimSetup) -> None:  # type: ignore[no-untyped-def]
    sim3.cluster.set_admin(2, block=True)
    pump(1.2)
    dlg = window.open_node_dialog(2)
    assert dlg is not None
    assert dlg.buttons["block"][0].isChecked()  # preselected from the node's real state
    assert dlg.buttons["stay"][0].isChecked()  # automigration on
    expected = {"stay": True, "quiet": True, "lstay": True, "block": False, "stopped": True}
    clicks = {"stay": 1, "quiet": 0, "lstay": 0, "block": 1, "stopped": 1}
    for field, which in clicks.items():
        click(qtbot, dlg.buttons[field][which])
        try:
            qtbot.waitUntil(lambda f=field: getattr(sim3.farm.nodes[2].admin, f) == expected[f], timeout=5000)
        except Exception:
            raise AssertionError(f"{field}: {sim3.farm.nodes[2].admin} log: {dlg.log.toPlainText()}") from None
        qtbot.waitUntil(lambda: not dlg.busy, timeout=5000)
    adm = sim3.cluster.get_admin(2)
    assert (adm.stay, adm.quiet, adm.lstay, adm.block, adm.stopped) == (True, True, True, False, True)
    assert "done" in dlg.log.toPlainText()
    dlg.close()
    # reopened, it shows what the node now has
    pump(1.2)
    dlg2 = window.open_node_dialog(2)
    assert dlg2 is not None and dlg2 is not dlg
    for field, which in clicks.items():
        assert dlg2.buttons[field][which].isChecked(), field


def test_node_dialog_resets_speed_to_measured(qtbot, window: MainWindow, sim3: SimSetup) -> None:  # type: ignore[no-untyped-def]
    sim3.cluster.set_admin(1, speed=30000)
    dlg = window.open_node_dialog(1)
    assert dlg is not None
    qtbot.mouseClick(dlg.reset_speed, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dlg.busy, timeout=5000)
    assert sim3.farm.nodes[1].admin.speed is None
    assert "node 1: measured speed: done" in dlg.log.toPlainText()
    dlg.close()


def test_screenshot_settings_dialog(qtbot, light) -> None:  # type: ignore[no-untyped-def]
    from omview.gui.settingsdialog import Prefs, SettingsDialog

    dlg = SettingsDialog(Prefs(interval=2.0, known_hosts="~/.ssh/known_hosts", accept_new=True), 1.0)
    qtbot.addWidget(dlg)
    dlg.show()
    pump(0.1)
    print(f"\nscreenshot: {screenshot(dlg, 'settings_dialog')}")
    p = dlg.prefs()
    assert (p.interval, p.accept_new) == (2.0, True)
    dlg.use_file_interval.setChecked(True)
    assert dlg.prefs().interval is None


def test_all_nodes_dialog_applies_to_each_node(qtbot, window: MainWindow, sim3: SimSetup) -> None:  # type: ignore[no-untyped-def]
    dlg = window.open_node_dialog(ALL_NODES)
    assert dlg is not None
    click(qtbot, dlg.buttons["quiet"][0])
    qtbot.waitUntil(lambda: all(n.admin.quiet for n in sim3.farm.nodes.values()), timeout=5000)
    qtbot.waitUntil(lambda: not dlg.busy, timeout=5000)
    log = dlg.log.toPlainText()
    for node_id in (1, 2, 3):
        assert f"node {node_id}: Quiet → yes: done" in log
    # mixed state is shown as such, with neither button checked
    sim3.cluster.set_admin(1, quiet=False)
    pump(1.2)
    dlg.refresh()
    a, b = dlg.buttons["quiet"]
    assert not a.isChecked() and not b.isChecked()
    assert "mixed" in dlg.mixed_labels["quiet"].text()


def test_dialog_reports_failure_on_down_node(qtbot, window: MainWindow, sim3: SimSetup) -> None:  # type: ignore[no-untyped-def]
    dlg = NodeDialog(sim3.cluster, window.bridge, Workers(), 3)  # type: ignore[arg-type]
    qtbot.addWidget(dlg)
    sim3.farm.kill(3)
    qtbot.waitUntil(lambda: not sim3.cluster.node(3).up, timeout=5000)
    dlg._clicked(next(s for s in SETTINGS if s.field == "block"), 0)
    qtbot.waitUntil(lambda: "FAILED" in dlg.log.toPlainText(), timeout=5000)
    assert "down" in dlg.log.toPlainText()
    sim3.farm.revive(3)


def test_bring_and_expel_report_per_node(qtbot, window: MainWindow, sim3: SimSetup) -> None:  # type: ignore[no-untyped-def]
    dlg = window.open_node_dialog(ALL_NODES)
    assert dlg is not None
    assert dlg.expel.isEnabled() and dlg.bring.isEnabled(), dlg.expel.toolTip()
    qtbot.mouseClick(dlg.expel, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dlg.busy, timeout=10000)
    log = dlg.log.toPlainText()
    for node_id in (1, 2, 3):  # simulated processes all run at home: nothing to send back
        assert f"node {node_id}: expel: no guest processes" in log, log
    qtbot.mouseClick(dlg.bring, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dlg.busy, timeout=10000)
    assert "node 2: bring: no process of this node runs elsewhere" in dlg.log.toPlainText()
    dlg.close()


def test_exec_dialog_choosers_follow_the_way(qtbot, window: MainWindow, sim3: SimSetup) -> None:  # type: ignore[no-untyped-def]
    dlg = window.open_exec_dialog()
    assert dlg is not None
    names = [b.text() for b in dlg.way_buttons]
    assert names == [
        "no migration",
        "run home",
        "run on",
        "cpu job",
        "io job",
        "no decay",
        "slow decay",
        "fast decay",
        "parallel",
    ]
    dlg.way_buttons[8].setChecked(True)  # parallel
    assert dlg.par_box.isEnabled() and not dlg.host_box.isEnabled()
    dlg.first.setValue(1)
    dlg.last.setValue(3)
    dlg.inverse.setChecked(True)
    assert dlg.targets() == [3, 2, 1]
    dlg.way_buttons[3].setChecked(True)  # cpu job: host chooser, only up nodes
    assert dlg.host_box.isEnabled() and not dlg.par_box.isEnabled()
    sim3.farm.kill(2)
    qtbot.waitUntil(lambda: dlg.up_ids == [1, 3], timeout=5000)
    dlg.dial.setValue(1)
    assert dlg.chosen_node() == 3 and dlg.lcd.intValue() == 3
    assert dlg.way().mode == "cpujob"
    dlg.program.setCurrentText("")
    dlg.run()
    assert "choose a program first" in dlg.log.toPlainText()
    sim3.farm.revive(2)


# ---------------------------------------------------------------- menus, launcher


def test_every_action_has_a_tooltip_and_disabled_ones_say_why(window: MainWindow) -> None:
    for a in window.findChildren(type(window.act_open)):
        if a.isSeparator() or not a.text() or a.menu() is not None:
            continue
        assert a.toolTip() and a.toolTip() != a.text().replace("&", ""), a.text()
        if not a.isEnabled() and a.text() != "(none yet)":
            assert "not" in a.toolTip(), a.text()
    assert all("omcollector" in a.toolTip() for a in window.collector_actions)


def test_collector_menu_runs_omcollector(qtbot, window: MainWindow, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QInputDialog, QMessageBox

    seen: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text, *a: seen.append(text))
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("before upgrade", True))
    script = "import sys; print('args', *sys.argv[1:]); sys.exit(1 if '-k' in sys.argv else 0)"
    window.collector_command = lambda name: [sys.executable, "-c", script]
    window.cluster_file = "/tmp/c.toml"
    checkpoint = next(a for a in window.collector_actions if "checkpoint" in a.text())
    checkpoint.trigger()
    qtbot.waitUntil(
        lambda: "args -n before upgrade --cluster /tmp/c.toml" in window.statusBar().currentMessage(), timeout=10000
    )
    stop = next(a for a in window.collector_actions if "Stop" in a.text().replace("&", ""))
    stop.trigger()
    qtbot.waitUntil(lambda: bool(seen), timeout=10000)
    assert "exited with 1" in seen[0] and "args -k" in seen[0]


def test_launcher_shows_stderr_of_an_app_that_exits_at_once(qtbot, light) -> None:  # type: ignore[no-untyped-def]
    fake = [sys.executable, "-c", "import sys; print('omfake: not yet available', file=sys.stderr); sys.exit(2)"]
    launcher = Launcher(command=lambda name: fake)
    with qtbot.waitSignal(launcher.failed, timeout=5000) as sig:
        launcher.launch("omfake", ["--cluster", "x.toml"])
    name, message = sig.args
    assert name == "omfake"
    assert "status 2" in message and "not yet available" in message


def test_launcher_reports_a_program_that_cannot_start(qtbot, light) -> None:  # type: ignore[no-untyped-def]
    launcher = Launcher(command=lambda name: ["/nonexistent/omview-test-prog"])
    with qtbot.waitSignal(launcher.failed, timeout=2000) as sig:
        launcher.launch("omnothing", [])
    assert "could not be started" in sig.args[1]


def test_launcher_keeps_a_running_app_quiet(qtbot, light) -> None:  # type: ignore[no-untyped-def]
    launcher = Launcher(command=lambda name: [sys.executable, "-c", "import time; time.sleep(3)"])
    with qtbot.waitSignal(launcher.started, timeout=3000):
        item = launcher.launch("omsleep", [])
    assert item is not None and not item.failed
    item.proc.kill()
    item.proc.wait()


def test_window_launch_passes_cluster_file(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    argv: list[list[str]] = []
    window.cluster_file = "/tmp/some-cluster.toml"

    def record(name: str) -> list[str]:
        argv.append([name])
        return [sys.executable, "-c", "import sys; sys.exit(2)"]

    window.launcher.command = record
    with qtbot.waitSignal(window.launcher.failed, timeout=5000):
        window.launch_procbox(2)
    assert window.launcher.running[-1].argv[-4:] == ["--node", "2", "--cluster", "/tmp/some-cluster.toml"]
    qtbot.waitUntil(lambda: hasattr(window, "last_launch_error"), timeout=2000)
    for box in QApplication.topLevelWidgets():
        if box.windowTitle().endswith("did not start"):
            box.close()


def test_settings_reopen_applies_interval(qtbot, window: MainWindow, sim3: SimSetup) -> None:  # type: ignore[no-untyped-def]
    from omview.gui.settingsdialog import Prefs

    old = window.cluster
    window.prefs = Prefs(interval=0.3)
    window.reopen()
    assert window.cluster is not old and window.cluster is not None
    assert window.cluster.config.interval == 0.3
    qtbot.waitUntil(lambda: window.model is not None and window.model.aggregate.up == 3, timeout=5000)


def test_bad_cluster_file_is_reported_and_the_old_cluster_stays(
    qtbot, window: MainWindow, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QMessageBox

    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text, *a: shown.append(text))
    bad = tmp_path / "broken.toml"
    bad.write_text("[[node]]\nid = 'one'\n")
    old = window.cluster
    assert not window.open_cluster_file(str(bad))
    assert shown and "broken.toml" in shown[0]
    assert window.cluster is old


def test_open_map_file_remembers_it(qtbot, window: MainWindow, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from omview.gui.mainwindow import settings

    made: list[ClusterConfig] = []

    def factory(config: ClusterConfig) -> Cluster:
        made.append(config)
        return Cluster(config)  # not started: no SSH to the made-up addresses

    window.factory = factory
    mapfile = tmp_path / "openmosix.map"
    mapfile.write_text("1 192.0.2.1 3\n")
    assert window.open_cluster_file(str(mapfile))
    assert [n.id for n in made[0].nodes] == [1, 2, 3]
    assert window.model is not None and window.model.rowCount() == 4
    assert settings().value("cluster_file") == str(mapfile)
    assert str(mapfile) in (settings().value("recent") or [])
    assert any(a.text() == str(mapfile) for a in window.recent_menu.actions())


def test_prefs_roundtrip_and_apply(qapp) -> None:  # type: ignore[no-untyped-def]
    from omview.gui.mainwindow import apply_prefs, load_prefs, save_prefs
    from omview.gui.settingsdialog import Prefs

    save_prefs(Prefs(interval=2.5, known_hosts="~/kh", accept_new=True, theme="dark"))
    p = load_prefs()
    assert (p.interval, p.known_hosts, p.accept_new, p.theme) == (2.5, "~/kh", True, "dark")
    cfg = apply_prefs(ClusterConfig(nodes=[NodeConfig(id=1, address="192.0.2.1")], interval=1.0), p)
    assert cfg.interval == 2.5 and cfg.accept_new_host_keys and cfg.known_hosts == os.path.expanduser("~/kh")
    save_prefs(Prefs())
    assert load_prefs().interval is None


# ---------------------------------------------------------------- desktop files


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-validate not installed")
def test_desktop_files_validate() -> None:
    files = sorted((ROOT / "resources").glob("*.desktop"))
    assert {f.stem for f in files} >= {"omview", "omprocs", "omanalyzer", "omhistory", "ommigmon"}
    for f in files:
        cp = subprocess.run(["desktop-file-validate", str(f)], capture_output=True, text=True)
        assert cp.returncode == 0 and not cp.stdout.strip(), f"{f.name}: {cp.stdout}{cp.stderr}"
        assert (ROOT / "resources" / f"{f.stem}.svg").is_file()


# ---------------------------------------------------------------- screenshots (look at them)


def test_screenshot_main_window_3_nodes(qtbot, window: MainWindow, sim3: SimSetup) -> None:  # type: ignore[no-untyped-def]
    sim3.cluster.set_admin(2, stay=True, block=True)
    sim3.farm.kill(3)
    qtbot.waitUntil(lambda: not sim3.cluster.node(3).up, timeout=5000)
    pump(1.2)
    window.view.setCurrentIndex(proxy_index(window, 1, COL_ADDRESS))
    path = screenshot(window, "main_3_nodes")
    sim3.farm.revive(3)
    print(f"\nscreenshot: {path}")


def test_screenshot_main_window_200_nodes(qtbot, light) -> None:  # type: ignore[no-untyped-def]
    s = sim_cluster(200, interval=0.5)
    try:
        s.cluster.wait_ready(10)
        for i in (5, 17):
            s.farm.kill(i)
        s.cluster.set_admin(3, quiet=True)
        w = MainWindow(s.cluster, None, factory=s.factory, restore=False)
        qtbot.addWidget(w)
        w.resize(1280, 800)
        w.show()
        pump(1.5)
        # what the picture must show: every node a row, the two switched off counted down
        qtbot.waitUntil(lambda: w.model is not None and w.model.aggregate.up == 198, timeout=10000)
        assert w.model is not None and w.model.rowCount() == 201
        assert w.model.index(0, COL_NODE).data() == "198/200"
        print(f"\nscreenshot: {screenshot(w, 'main_200_nodes')}")
        w.close()
    finally:
        s.stop()


def test_screenshot_node_dialog(qtbot, window: MainWindow, sim3: SimSetup) -> None:  # type: ignore[no-untyped-def]
    sim3.cluster.set_admin(2, lstay=True)
    pump(1.2)
    dlg = window.open_node_dialog(2)
    assert dlg is not None
    click(qtbot, dlg.buttons["block"][0])
    qtbot.waitUntil(lambda: not dlg.busy, timeout=5000)
    print(f"\nscreenshot: {screenshot(dlg, 'node_dialog')}")
    alld = window.open_node_dialog(ALL_NODES)
    assert alld is not None
    pump(0.3)
    print(f"screenshot: {screenshot(alld, 'node_dialog_all')}")


def test_screenshot_exec_dialog(qtbot, window: MainWindow, sim3: SimSetup) -> None:  # type: ignore[no-untyped-def]
    dlg = window.open_exec_dialog()
    assert dlg is not None
    dlg.program.setCurrentText("/usr/bin/python3")
    dlg.args.setCurrentText("-c 'import time; time.sleep(60)'")
    dlg.way_buttons[3].setChecked(True)
    dlg.dial.setValue(1)
    dlg.note("node 2: started job j-3f2a as pid 4711; output in /var/lib/omview/jobs/j-3f2a.out")
    pump(0.2)
    print(f"\nscreenshot: {screenshot(dlg, 'exec_dialog')}")


def test_screenshot_dark_palette(qtbot, qapp: QApplication, sim3: SimSetup) -> None:  # type: ignore[no-untyped-def]
    theme.apply_theme(qapp, "dark")
    try:
        w = MainWindow(sim3.cluster, None, factory=sim3.factory, restore=False)
        qtbot.addWidget(w)
        w.resize(1280, 420)
        w.show()
        sim3.farm.kill(1)
        qtbot.waitUntil(lambda: not sim3.cluster.node(1).up, timeout=5000)
        pump(1.2)
        w.view.setCurrentIndex(proxy_index(w, 2, COL_SPEED))
        print(f"\nscreenshot: {screenshot(w, 'main_dark')}")
        dlg = w.open_node_dialog(2)
        assert dlg is not None
        pump(0.2)
        print(f"screenshot: {screenshot(dlg, 'node_dialog_dark')}")
        sim3.farm.revive(1)
    finally:
        theme.apply_theme(qapp, "light")


# ---------------------------------------------------------------- the real agent (LocalTransport)


def _agent_available() -> bool:
    try:
        import omview.core.agent  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _agent_available(), reason="omview.core.agent is not there yet")
def test_local_agent_node_dialog_and_speed(qtbot, light, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    node = NodeConfig(id=1, address="local", transport="local", state_dir=str(tmp_path / "state"))
    cluster = Cluster(ClusterConfig(nodes=[node], interval=0.5, source="this machine (test)")).start()
    try:
        w = MainWindow(cluster, None, restore=False)
        qtbot.addWidget(w)
        w.show()
        qtbot.waitUntil(lambda: w.model is not None and w.model.aggregate.up == 1, timeout=15000)
        dlg = w.open_node_dialog(1)
        assert dlg is not None
        click(qtbot, dlg.buttons["block"][0])
        qtbot.waitUntil(lambda: not dlg.busy, timeout=10000)
        assert cluster.get_admin(1).block is True, dlg.log.toPlainText()
        assert w.model is not None
        w.model.setData(w.model.index(1, COL_SPEED), 14000)
        qtbot.waitUntil(lambda: cluster.get_admin(1).speed == 14000, timeout=10000)
        qtbot.waitUntil(lambda: cluster.node(1).sample.speed == 14000, timeout=10000)  # type: ignore[union-attr]
        w.close()
    finally:
        cluster.stop()


def _agent_runs_jobs() -> bool:
    """The agent's `run` op (the job API of the migration issue) has landed."""
    if not _agent_available():
        return False
    import inspect

    import omview.core.agent as agent

    return "def op_run" in inspect.getsource(agent)


@pytest.mark.skipif(not _agent_runs_jobs(), reason="the agent has no `run` op yet (job API)")
def test_local_agent_exec_dialog_starts_a_job(qtbot, light, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import signal as _signal

    node = NodeConfig(id=1, address="local", transport="local", state_dir=str(tmp_path / "state"))
    cluster = Cluster(ClusterConfig(nodes=[node], interval=0.5, source="this machine (test)")).start()
    pid = 0
    try:
        w = MainWindow(cluster, None, restore=False)
        qtbot.addWidget(w)
        w.show()
        qtbot.waitUntil(lambda: w.model is not None and w.model.aggregate.up == 1, timeout=15000)
        dlg = w.open_exec_dialog()
        assert dlg is not None
        dlg.program.setCurrentText("/bin/sleep")
        dlg.args.setCurrentText("30")
        dlg.way_buttons[2].setChecked(True)  # run on: the dial's node
        assert dlg.chosen_node() == 1
        dlg.run()
        qtbot.waitUntil(lambda: not dlg.busy, timeout=30000)
        log = dlg.log.toPlainText()
        assert "node 1: started job" in log, log
        pid = int(log.split(" as pid ")[1].split(";")[0].split()[0])
        assert dlg.history()[0] == "/bin/sleep"
    finally:
        if pid:
            try:
                os.kill(pid, _signal.SIGKILL)
            except ProcessLookupError:
                pass
        cluster.stop()


# ---------------------------------------------------------------- the real 3-node SSH testbed


def _omctl_node(cluster_file: str, node_id: int) -> dict:  # type: ignore[type-arg]
    """The node as `omctl status ID --json` reports it: an independent read-back path."""
    import json

    cp = subprocess.run(
        [sys.executable, "-m", "omview.cli", "--cluster", cluster_file, "status", str(node_id), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)  # type: ignore[no-any-return]


def test_testbed_slider_dialog_and_lamps(qtbot, light, testbed) -> None:  # type: ignore[no-untyped-def]
    from omview.core import testbed as tbmod
    from omview.core.config import load_cluster

    cluster_file = str(testbed.cluster_file)
    cluster = Cluster(load_cluster(cluster_file)).start()
    try:
        w = MainWindow(cluster, cluster_file, restore=False)
        qtbot.addWidget(w)
        w.show()
        qtbot.waitUntil(lambda: w.model is not None and w.model.aggregate.up == 3, timeout=60000)
        assert w.model is not None

        # slider → speed on node 2, read back through omctl
        idx = proxy_index(w, 2, COL_SPEED)
        w.view.setCurrentIndex(idx)
        w.view.edit(idx)
        editor = w.view.speed.last_editor
        assert editor is not None
        editor.slider.setValue(17500)
        editor.committed.emit()
        qtbot.waitUntil(lambda: cluster.node(2).sample.speed == 17500, timeout=15000)  # type: ignore[union-attr]
        assert _omctl_node(cluster_file, 2)["speed"] == 17500

        # node dialog: block on node 1, read back through omctl, and off again
        dlg = w.open_node_dialog(1)
        assert dlg is not None
        click(qtbot, dlg.buttons["block"][0])
        qtbot.waitUntil(lambda: not dlg.busy, timeout=15000)
        assert _omctl_node(cluster_file, 1)["admin"]["block"] is True, dlg.log.toPlainText()
        click(qtbot, dlg.buttons["block"][1])
        qtbot.waitUntil(lambda: not dlg.busy, timeout=15000)
        assert _omctl_node(cluster_file, 1)["admin"]["block"] is False

        # lamps: sshd killed → red with a reason; started → green again
        lamp = proxy_index(w, 3, COL_NODE)
        tbmod.stop_sshd(testbed, 3)
        qtbot.waitUntil(lambda: lamp.data(UP_ROLE) is False, timeout=20000)
        assert "down" in lamp.data(Qt.ItemDataRole.ToolTipRole)
        tbmod.start_sshd(testbed, 3)
        qtbot.waitUntil(lambda: lamp.data(UP_ROLE) is True, timeout=60000)

        # a hung sshd (SIGSTOP): red, and the event loop keeps turning (measured from here on:
        # stop_sshd/start_sshd above block this thread themselves)
        meter = StallMeter().start()
        tbmod.hang_sshd(testbed, 1)
        lamp1 = proxy_index(w, 1, COL_NODE)
        qtbot.waitUntil(lambda: lamp1.data(UP_ROLE) is False, timeout=30000)
        tbmod.resume_sshd(testbed, 1)
        gap = meter.stop()
        print(f"\ntestbed: longest event-loop stall {gap:.1f} ms while a node's sshd hung")
        assert gap < 1000
        qtbot.waitUntil(lambda: lamp1.data(UP_ROLE) is True, timeout=60000)
        w.close()
    finally:
        try:
            cluster.set_admin(2, speed=None)
        except Exception:
            pass
        cluster.stop()
