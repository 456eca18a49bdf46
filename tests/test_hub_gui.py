"""Issue 11 with the real apps: omview's main window, omprocs' process box and ommigmon's monitor on
one session hub, on the 3-node SSH testbed (real agents, real CRIU), offscreen.

Each window gets its own cluster from `open_cluster(mode="hub")`, as the apps do, so the hub has
three clients in this one process. Checked: one agent per node however many apps (counted on the
nodes); kill -9 of the hub → the apps attach to a new hub by themselves, no lamp turns red for a
node that stayed up, the process table is whole again; a migration started from omprocs shows its
progress in ommigmon; the dead hub's socket file is replaced, and a stale one is cleaned up.
Screenshots of the three windows go to tests/screenshots/hub_*.png.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QTimer  # noqa: E402

from omview.core import hub as hubmod  # noqa: E402
from omview.core import hubpaths  # noqa: E402
from omview.core.cluster import Cluster, open_cluster  # noqa: E402
from omview.core.config import load_cluster  # noqa: E402
from omview.core.hubclient import HubCluster  # noqa: E402
from omview.core.testbed import Testbed  # noqa: E402
from tests.criu_helpers import criu_or_skip  # noqa: E402
from tests.gui_helpers import screenshot  # noqa: E402
from tests.test_hub import Hubs, agent_pids, pid_alive, stable, wait_for  # noqa: E402

WAIT_MS = 60000  # real agents and CRIU on a loaded 2-core machine
JOB = "import time\nwhile True:\n    time.sleep(0.2)\n"


def criu_config_file(testbed: Testbed) -> Path:
    path = criu_or_skip()
    out = testbed.cluster_file.with_name("cluster-hubgui.toml")
    out.write_text(testbed.cluster_file.read_text().replace("[[node]]\n", f"[[node]]\ncriu = {json.dumps(path)}\n"))
    return out


def kill_marked(marker: str) -> None:
    """Every copy of the job, on any node (the host sees them all; a PID-namespace init ignores TERM)."""
    for _ in range(3):
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == os.getpid():
                continue
            try:
                if marker.encode() in Path(f"/proc/{name}/cmdline").read_bytes():
                    os.kill(int(name), signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.1)


def test_three_real_apps_share_one_hub_survive_kill_9_and_see_each_others_migration(  # type: ignore[no-untyped-def]
    qtbot, light, qsettings_sandbox, testbed: Testbed, hubs: Hubs
) -> None:
    from ommigmon.window import MigmonWindow
    from omprocs.window import ProcBoxWindow
    from omview.gui.mainwindow import MainWindow

    config_file = criu_config_file(testbed)
    config = load_cluster(str(config_file))
    paths = hubs.paths(config)
    others = {n: set(v) for n, v in agent_pids(testbed).items()}  # an earlier test's sessions are not ours

    def ours() -> dict[int, set[int]]:
        return {n: set(v) - others[n] for n, v in agent_pids(testbed).items()}

    clusters: list[HubCluster] = []
    downs: list[tuple[str, int, str]] = []
    for name in ("omview", "omprocs", "ommigmon"):
        c = open_cluster(config, mode="hub", client=name)
        assert isinstance(c, HubCluster)  # three hub clients: the first one started the hub
        hubs.note(c.hub_pid)
        c.subscribe(lambda ev, name=name: downs.append((name, ev.node_id, ev.message)) if ev.kind == "down" else None)
        clusters.append(c)
    main_c, procs_c, migmon_c = clusters
    marker = f"omhubgui{time.monotonic_ns()}"
    try:
        assert len({c.hub_pid for c in clusters}) == 1
        hub_pid = main_c.hub_pid

        main = MainWindow(main_c, str(config_file), restore=False)
        box = ProcBoxWindow(procs_c)
        mig = MigmonWindow(migmon_c, main=1)
        for w, size in ((main, (1000, 420)), (box, (1180, 560)), (mig, (1000, 800))):
            qtbot.addWidget(w)
            w.resize(*size)
            w.show()
        qtbot.waitUntil(lambda: main.model is not None and main.model.aggregate.up == 3, timeout=WAIT_MS)
        job = procs_c.run_job(1, [sys.executable, "-c", JOB, marker])
        qtbot.waitUntil(lambda: box.model.get((1, job["pid"], job["start"])) is not None, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: mig.scene.item(1, job["pid"]) is not None, timeout=WAIT_MS)
        mig.fit()

        # three apps, one agent per node: counted on the nodes themselves
        assert wait_for(lambda: all(len(v) == 1 for v in ours().values()), 20), (ours(), others)
        first_agents = ours()
        assert sorted(main_c.hub_info()["clients"]) == sorted(
            f"{n} (pid {os.getpid()})" for n in ("omview", "omprocs", "ommigmon"))

        # kill -9 the hub; watch the lamps (the main window's up count) on the GUI thread meanwhile
        lowest = [3]
        watch = QTimer()
        watch.timeout.connect(lambda: lowest.__setitem__(0, min(lowest[0], main.model.aggregate.up)))  # type: ignore[union-attr]
        watch.start(20)
        before_kill = {(n, p.pid, p.start) for n, p in procs_c.processes()}
        old = paths.socket.stat()
        os.kill(hub_pid, signal.SIGKILL)
        assert wait_for(lambda: not pid_alive(hub_pid), 10)
        qtbot.waitUntil(lambda: all(c.hub_connected and c.hub_pid != hub_pid for c in clusters), timeout=WAIT_MS)
        new_pid = main_c.hub_pid
        hubs.note(new_pid)
        assert {c.hub_pid for c in clusters} == {new_pid}  # the three met again at one new hub
        assert hubpaths.hub_pid(paths) == new_pid
        # the dead hub's socket file was replaced (a new file may get the freed inode number back:
        # its change time tells them apart)
        new = paths.socket.stat()
        assert (new.st_ino, new.st_ctime_ns) != (old.st_ino, old.st_ctime_ns) and new.st_ctime_ns > old.st_ctime_ns
        assert [p.name for p in paths.socket.parent.glob("hub-*.sock")] == [paths.socket.name]
        # the new hub's agents replace the old ones: still one per node
        assert wait_for(lambda: all(len(v) == 1 for v in ours().values())
                        and all(ours()[n] != first_agents[n] for n in first_agents), 30), (first_agents, ours())
        qtbot.wait(1500)  # a few samples of the new hub on the screen
        watch.stop()
        assert lowest[0] == 3 and main.model.aggregate.up == 3, lowest  # no lamp went red
        assert downs == [], downs
        # the process table is whole again: the box shows what a direct connection sees
        with Cluster(config) as direct:
            assert direct.wait_until(lambda: all(n.up for n in direct.nodes()), 60)
            for i in (1, 2, 3):
                qtbot.waitUntil(lambda i=i: {(p, s) for n, p, s in box_keys(box) if n == i
                                             and (p, s) in stable(direct, i)} == stable(direct, i), timeout=WAIT_MS)
        assert (1, job["pid"], job["start"]) in before_kill and box.model.get((1, job["pid"], job["start"])) is not None

        # a migration started from omprocs: ommigmon shows its progress, then the move
        phases: list[tuple[int, str]] = []
        real_progress = mig.scene.set_progress

        def seen_progress(node: int, pid: int, phase: str, done: int, total: int) -> None:
            phases.append((pid, phase))
            real_progress(node, pid, phase, done, total)

        mig.scene.set_progress = seen_progress  # type: ignore[method-assign]
        finals: list[dict[str, Any]] = []
        migmon_c.subscribe(lambda ev: finals.append(dict(ev.data))
                           if ev.kind == "migration" and ev.data.get("final") else None)
        box.migrate([(1, job["pid"], job["start"])], 2)
        qtbot.waitUntil(lambda: any(f.get("pid") == job["pid"] for f in finals), timeout=WAIT_MS * 3)
        final = next(f for f in finals if f.get("pid") == job["pid"])
        assert final.get("result") == "done", (final, phases)
        qtbot.waitUntil(lambda: [p for _, p in migmon_c.processes(2) if marker in p.cmd] != [], timeout=WAIT_MS)
        moved = next(p for _, p in migmon_c.processes(2) if marker in p.cmd)
        qtbot.waitUntil(lambda: (it := mig.scene.item(2, moved.pid)) is not None and it.guest, timeout=WAIT_MS)
        mine = [ph for pid, ph in phases if pid == job["pid"]]
        assert mine and mine[0] == "preflight" and "dump" in mine and "restore" in mine, phases
        assert mig.scene.item(1, job["pid"]) is None
        qtbot.waitUntil(lambda: box.model.get((2, moved.pid, moved.start)) is not None
                        and box.model.get((1, job["pid"], job["start"])) is None, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: not mig.scene.travels, timeout=WAIT_MS)  # the square has landed at penguin 2
        mig.fit()
        for w, name in ((main, "hub_omview"), (box, "hub_omprocs"), (mig, "hub_ommigmon")):
            path = screenshot(w, name)
            assert path.stat().st_size > 10000, path
    finally:
        for c in clusters:
            c.stop()
        kill_marked(marker)
    # the last app left; kill -9 its hub: the socket file it leaves is stale, and an app cleans it up
    last = hubpaths.hub_pid(paths)
    if last:
        os.kill(last, signal.SIGKILL)
        assert wait_for(lambda: not pid_alive(last), 10)
        assert paths.socket.exists()
        # (the lock goes with the hub's last thread, which may exit a moment after its leader)
        assert wait_for(lambda: hubmod.cleanup_stale(paths), 10) and not paths.socket.exists()


def box_keys(box: Any) -> set[tuple[int, int, int]]:
    return {r.key for r in box.model.rows()}
