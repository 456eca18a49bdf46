"""A migration made by one app reaches every other session on the source node, so the collector
records moves that omctl, omprocs or the balancer made (each with its own sessions)."""

from __future__ import annotations

from typing import Any

from omcollector.collector import migration_from_event
from omview.core import agent as agent_mod
from omview.core.cluster import Cluster
from omview.core.session import Event
from omview.core.testbed import Testbed
from tests.criu_helpers import open_criu_cluster
from tests.test_migration import SLEEPER, cluster, criu_path, marker, start_job, wait_one_running

__all__ = ["cluster", "criu_path", "marker"]  # module fixtures shared with test_migration


def test_journal_event_shape() -> None:
    j = {"mid": "m9", "pid": 40, "start": 400, "target": 3, "state": "committed", "time": 100.0,
         "committed": 101.5, "job": {"cmd": ["python3", "-c", "x"]}}
    ev = agent_mod.migration_event(j, 2, 101.6)
    assert (ev["src"], ev["dst"], ev["result"], ev["frozen"], ev["cmd"]) == (2, 3, "done", 1.5, "python3 -c x")
    aborted = dict(j, state="aborted", error="cancelled", committed=None)
    ev = agent_mod.migration_event(aborted, 2, 102.0)
    assert (ev["result"], ev["frozen"], ev["time"]) == ("cancelled", None, 102.0)
    assert agent_mod.migration_event(dict(aborted, error="criu restore failed"), 2, 1.0)["result"] == "failed"


def test_a_move_made_elsewhere_is_heard_by_another_session(
    cluster: Cluster, testbed: Testbed, criu_path: str, marker: str
) -> None:
    watcher = open_criu_cluster(testbed, criu_path)  # stands for the collector: sessions of its own
    heard: list[Event] = []
    samples: list[int] = []

    def listen(ev: Event) -> None:
        if ev.kind == "agent" and ev.message == "migration":
            heard.append(ev)
        elif ev.kind == "sample" and ev.node_id == 1:
            samples.append(1)

    watcher.subscribe(listen)
    try:
        job = start_job(cluster, 1, SLEEPER, marker)
        r = cluster.migrate(1, job["pid"], 2)
        assert r.ok, r
        wait_one_running(marker)

        def record() -> Any:
            mine = [ev for ev in heard if ev.data.get("mid") == r.mid]
            return migration_from_event(mine[0], 0.0) if mine else None

        assert watcher.wait_until(lambda: record() is not None, 20), heard
        rec = record()
        assert (rec.pid, rec.start, rec.src, rec.dst, rec.result) == (job["pid"], job["start"], 1, 2, "done")
        assert rec.frozen is not None and 0 < rec.frozen < r.seconds + 1
        assert marker in rec.cmd
        seen = len(samples)
        assert watcher.wait_until(lambda: len(samples) >= seen + 3, 20)  # later ticks repeat nothing
        assert len([ev for ev in heard if ev.data.get("mid") == r.mid]) == 1  # once, not every sample
    finally:
        watcher.stop()
