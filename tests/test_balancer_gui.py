"""The main window's balancer toggle (offscreen, simulated nodes: nothing migrates there)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Iterator

import pytest

from omview.gui.mainwindow import MainWindow
from tests.gui_helpers import SimSetup, sim_cluster

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("qsettings_sandbox")]


@pytest.fixture
def sim3() -> Iterator[SimSetup]:
    s = sim_cluster(3)
    assert s.cluster.wait_ready(10)
    yield s
    s.stop()


def test_toolbar_toggle_starts_and_stops_the_balancer(qtbot, qapp, sim3: SimSetup) -> None:  # type: ignore[no-untyped-def]
    w = MainWindow(sim3.cluster, None, factory=sim3.factory, restore=False)
    qtbot.addWidget(w)
    w.show()
    act = w.act_balance
    assert act in w.toolbar.actions() and act.isCheckable() and not act.isChecked() and act.toolTip()
    act.trigger()
    assert act.isChecked() and w.balancer is not None and w.balancer.running
    assert "on" in act.text()
    b = w.balancer
    qtbot.waitUntil(lambda: b.rounds >= 1, timeout=20000)  # rounds run (simulated nodes: no CRIU, no moves)
    assert b.last_round is not None and not b.last_round.plan.moves
    act.trigger()
    assert not act.isChecked() and w.balancer is None and "on" not in act.text()
    qtbot.waitUntil(lambda: not b.running, timeout=10000)
    act.trigger()  # on again, then a new cluster: it belongs to the old one and stops
    assert w.balancer is not None
    b2 = w.balancer
    w.set_cluster(sim3.cluster, None)
    assert w.balancer is None and not act.isChecked()
    qtbot.waitUntil(lambda: not b2.running, timeout=10000)
