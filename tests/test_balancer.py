"""The balancer's pure half: one plan test per openMosix knob, cost vs gain, hysteresis, decay math.

Every test builds a snapshot from literals and reads the plan: which moves, and the reason given
for each process left alone. No cluster, no clock.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest

from omview.core import balancer as bal
from omview.core.model import NodeSample, ProcInfo

NOW = 1000.0


def node(i: int, **kw: Any) -> bal.NodeInfo:
    kw.setdefault("criu", "ready: criu 4.1")
    return bal.NodeInfo(i, **kw)


def job(node_id: int, n: int, *, busy: float = 1.0, now: float | None = None, seen: float = 60.0,
        **kw: Any) -> bal.ProcView:
    kw.setdefault("job", f"{node_id}-{n}")
    key = f"job:{kw['job']}" if kw["job"] else f"{node_id}:{100 + n}:1"
    return bal.ProcView(key, node_id, 100 + n, 1, cmd=f"awk {n}", busy=busy, now=busy if now is None else now,
                        seen=seen, rss=kw.pop("rss", 1 << 20), **kw)


def busy_on(node_id: int, count: int, **kw: Any) -> list[bal.ProcView]:
    return [job(node_id, k, **kw) for k in range(count)]


def snap(nodes: list[bal.NodeInfo], procs: list[bal.ProcView]) -> bal.Snapshot:
    return bal.Snapshot(NOW, tuple(nodes), tuple(procs))


def three(**flags: dict[str, Any]) -> list[bal.NodeInfo]:
    """Nodes 1-3, equal; flags per node as n1={...}."""
    return [node(i, **flags.get(f"n{i}", {})) for i in (1, 2, 3)]


def targets(p: bal.Plan) -> list[int]:
    return sorted(m.target for m in p.moves)


# ---------------------------------------------------------------- the base case


def test_four_jobs_on_one_node_spread_over_three() -> None:
    p = bal.plan(snap(three(), busy_on(1, 4)))
    assert targets(p) == [2, 3]  # 2 / 1 / 1: moving another would not lower the maximum
    assert all(m.node == 1 and "gains" in m.reason for m in p.moves)
    assert p.loads == {1: 4.0, 2: 0.0, 3: 0.0} and p.after == {1: 2.0, 2: 1.0, 3: 1.0}
    left = [s for s in p.skipped]
    assert len(left) == 2 and all(s.reason.startswith("balanced") for s in left)
    text = p.text()
    assert "moves (2):" in text and "left alone (2):" in text and "node 1 4.00 -> 2.00" in text


def test_faster_nodes_get_more() -> None:
    nodes = [node(1), node(2, speed=5000), node(3, speed=20000), node(4, cpus=2, speed=20000)]
    p = bal.plan(snap(nodes, busy_on(1, 9)))
    got = {i: sum(1 for m in p.moves if m.target == i) for i in (2, 3, 4)}
    assert got[4] > got[3] >= got[2] >= 0 and got[3] >= 1, p.text()
    assert max(p.after.values()) <= 2.0 + 1e-9


def test_a_balanced_cluster_moves_nothing() -> None:
    p = bal.plan(snap(three(), busy_on(1, 1) + [job(2, 1, job="x2")] + [job(3, 1, job="x3")]))
    assert not p.moves and len(p.skipped) == 3


# ---------------------------------------------------------------- one test per knob


def test_stay_keeps_processes_from_leaving_the_node() -> None:
    p = bal.plan(snap(three(n1={"stay": True}), busy_on(1, 4)))
    assert not p.moves
    assert all("set to stay" in s.reason for s in p.skipped)
    # stay is about leaving: the node still takes guests
    p = bal.plan(snap(three(n1={"stay": True}), busy_on(2, 4)))
    assert 1 in targets(p)


def test_lstay_keeps_the_nodes_own_processes_but_not_guests() -> None:
    own = busy_on(1, 3)
    guest = job(1, 9, home=3, job="3-9")
    p = bal.plan(snap(three(n1={"lstay": True}), [*own, guest]))
    assert [m.key for m in p.moves] == ["job:3-9"]
    assert all("lstay" in p.skip_for(q.key).reason for q in own)  # type: ignore[union-attr]


def test_block_accepts_no_guests_but_lets_a_process_come_home() -> None:
    p = bal.plan(snap(three(n2={"block": True}), busy_on(1, 4)))
    assert targets(p) == [3, 3]  # 2 / 0 / 2
    assert any("node 2 blocks guests" in s.reason for s in p.skipped)
    home2 = job(1, 5, home=2, job="2-5")
    p = bal.plan(snap(three(n2={"block": True}), [*busy_on(1, 3), home2]))
    assert p.move_for("job:2-5") is not None and p.move_for("job:2-5").target == 2  # type: ignore[union-attr]


def test_quiet_node_takes_no_part() -> None:
    p = bal.plan(snap(three(n2={"quiet": True}), busy_on(1, 4)))
    assert targets(p) == [3, 3] and 2 not in p.loads
    assert any("node 2 is quiet" in n for n in p.notes)
    p = bal.plan(snap(three(n1={"quiet": True}), busy_on(1, 4)))
    assert not p.moves and all("quiet" in s.reason for s in p.skipped)


def test_stopped_node_takes_no_part() -> None:
    p = bal.plan(snap(three(n3={"stopped": True}), busy_on(1, 4)))
    assert targets(p) == [2, 2] and 3 not in p.loads
    p = bal.plan(snap(three(n1={"stopped": True}), busy_on(1, 4)))
    assert not p.moves and all("stopped" in s.reason for s in p.skipped)


def test_down_node_is_never_a_target() -> None:
    p = bal.plan(snap(three(n2={"up": False, "down_reason": "link lost"}), busy_on(1, 4)))
    assert targets(p) == [3, 3] and any("node 2 is down (link lost)" in n for n in p.notes)


def test_locked_process_stays() -> None:
    procs = [job(1, 0, lock=True), *busy_on(1, 4)[1:]]
    p = bal.plan(snap(three(), procs))
    assert p.move_for(procs[0].key) is None
    assert p.skip_for(procs[0].key).reason == "locked to its node (lock)"  # type: ignore[union-attr]
    assert len(p.moves) == 2


def test_nomig_job_stays() -> None:
    procs = busy_on(1, 4, mode="nomig")
    p = bal.plan(snap(three(), procs))
    assert not p.moves and all(s.reason == "nomig job: never migrated" for s in p.skipped)


def test_iojob_stays_near_its_data() -> None:
    procs = busy_on(1, 4, mode="iojob")
    p = bal.plan(snap(three(), procs))
    assert not p.moves and all("io job" in s.reason for s in p.skipped)
    p = bal.plan(snap(three(), busy_on(1, 4, mode="cpujob")))
    assert len(p.moves) == 2


def test_never_a_node_whose_criu_is_not_ready() -> None:
    p = bal.plan(snap(three(n3={"criu": "unavailable: criu not found"}), busy_on(1, 4)))
    assert targets(p) == [2, 2]  # only node 2 may take them: 2 / 2
    assert any("node 3 has no CRIU ready" in s.reason for s in p.skipped)
    assert any("CRIU not ready" in n for n in p.notes)
    p = bal.plan(snap(three(n1={"criu": ""}), busy_on(1, 4)))  # nor away from one
    assert not p.moves and all("CRIU is not ready on node 1" in s.reason for s in p.skipped)


def test_cost_against_gain() -> None:
    # a job seen for 20 s is expected to run 20 s more: moving it to an idle node gains 10 s of CPU
    # (from half a CPU to a whole one); 2 GiB at 50 MB/s is ~44 s frozen: not worth it
    big = [job(1, k, rss=2 << 30, seen=20.0) for k in range(2)]
    p = bal.plan(snap([node(1), node(2)], big))
    assert not p.moves and all(s.reason.startswith("not worth it") for s in p.skipped), p.text()
    # the same job with a small memory moves
    small = [job(1, k, rss=4 << 20, seen=20.0) for k in range(2)]
    assert len(bal.plan(snap([node(1), node(2)], small)).moves) == 1
    # a measured fast link makes the big one worth it
    h = bal.History(bps=2e9, overhead=0.2)
    assert len(bal.plan(snap([node(1), node(2)], big), history=h).moves) == 1


def test_recent_move_hysteresis() -> None:
    procs = busy_on(1, 2)
    h = bal.History(last_move={procs[0].key: NOW - 5, procs[1].key: NOW - 5})
    p = bal.plan(snap([node(1), node(2)], procs), bal.Policy(hold=30.0), h)
    assert not p.moves and all("moved 5 s ago" in s.reason for s in p.skipped)
    h = bal.History(last_move={procs[0].key: NOW - 31, procs[1].key: NOW - 31})
    assert len(bal.plan(snap([node(1), node(2)], procs), bal.Policy(hold=30.0), h).moves) == 1
    h = bal.History(failed={procs[0].key: (NOW - 5, "boom"), procs[1].key: (NOW - 5, "boom")})
    p = bal.plan(snap([node(1), node(2)], procs), history=h)
    assert not p.moves and all("failed 5 s ago: boom" in s.reason for s in p.skipped)


def test_no_ping_pong_between_equal_loads() -> None:
    # 2 on one node and 1 on the other: moving one would just swap the loads
    procs = [*busy_on(1, 2), job(2, 7, job="b7")]
    p = bal.plan(snap([node(1), node(2)], procs))
    assert not p.moves
    # repeated planning over its own outcome converges and then stays put
    procs = busy_on(1, 7)
    nodes = [node(1), node(2, speed=5000), node(3, cpus=2)]
    for _ in range(5):
        p = bal.plan(snap(nodes, procs))
        moved = {m.key: m.target for m in p.moves}
        procs = [bal.ProcView(q.key, moved.get(q.key, q.node), q.pid, q.start, q.cmd, q.job, busy=1, now=1,
                              seen=60, rss=q.rss) for q in procs]
    assert not bal.plan(snap(nodes, procs)).moves


def test_candidates_need_cpu_use_long_enough_and_jobs_only() -> None:
    procs = [job(1, 0, busy=0.3), job(1, 1, seen=1.0), job(1, 2, job=""), *busy_on(1, 3)[:0]]
    p = bal.plan(snap([node(1), node(2)], procs))
    assert not p.moves
    assert "not CPU-bound: decayed CPU use 30% < 50%" in p.skip_for(procs[0].key).reason  # type: ignore[union-attr]
    assert "observed for 1.0 s only" in p.skip_for(procs[1].key).reason  # type: ignore[union-attr]
    assert "not a job" in p.skip_for(procs[2].key).reason  # type: ignore[union-attr]
    p = bal.plan(snap([node(1), node(2)], [procs[2], job(1, 3, job="")]), bal.Policy(jobs_only=False))
    assert len(p.moves) == 1


def test_a_cpujob_is_a_candidate_without_being_observed_first() -> None:
    # declared CPU-bound: the observation would only confirm it, and a round spent waiting for it
    # is a round its whole source node carries it
    procs = [job(1, 0, seen=0.0, mode="cpujob"), job(1, 1, seen=0.0), job(1, 2, seen=0.0, job="x")]
    p = bal.plan(snap(three(), procs), bal.Policy(min_seen=3.0))
    assert [m.key for m in p.moves] == [procs[0].key], p.text()
    assert all("observed for 0.0 s only" in s.reason for s in p.skipped)


def test_max_moves_per_round() -> None:
    p = bal.plan(snap([node(i) for i in range(1, 6)], busy_on(1, 8)), bal.Policy(max_moves=2))
    assert len(p.moves) == 2 and sum("round full" in s.reason for s in p.skipped) >= 1


def test_plan_is_pure_and_serialisable() -> None:
    s = snap(three(), busy_on(1, 4))
    h = bal.History()
    a, b = bal.plan(s, history=h), bal.plan(s, history=h)
    assert a == b and h == bal.History()
    import json

    d = json.loads(json.dumps(a.to_dict()))
    assert len(d["moves"]) == 2 and d["after"]["1"] == 2.0


# ---------------------------------------------------------------- what the tables do not show yet, or show wrongly


def test_the_sources_old_listing_of_a_moved_job_neither_weighs_nor_moves() -> None:
    # job a went 1 -> 2 two seconds ago; node 1's table still lists the old process (its agent has
    # not sampled since). Counted, it would make node 1 look like 2 jobs and send one on to node 3.
    a_old, b = job(1, 0, job="a"), job(1, 1, job="b")
    a_new = bal.ProcView("job:a", 2, 300, 7, cmd="awk 0", job="a", busy=1.0, now=1.0, seen=60.0, rss=1 << 20)
    procs = [a_old, b, a_new]
    h = bal.History(last_move={"job:a": NOW - 2}, sent={"job:a": bal.Sent(1, a_old.pid, 2, 300, NOW - 2)})
    p = bal.plan(snap(three(), procs), bal.Policy(hold=10.0), h)
    assert not p.moves, p.text()
    assert p.loads == {1: 1.0, 2: 1.0, 3: 0.0}
    assert "this is the old listing" in p.skip_for("job:a").reason  # type: ignore[union-attr]
    # without the record the same tables look unbalanced: the rule is what keeps b home
    p = bal.plan(snap(three(), procs), bal.Policy(hold=10.0), bal.History(last_move={"job:a": NOW - 2}))
    assert p.loads[1] == 2.0 and [m.key for m in p.moves] == ["job:b"]
    # once the hold is over the record no longer counts (the tables have long caught up)
    h.sent["job:a"] = bal.Sent(1, a_old.pid, 2, 300, NOW - 11)
    assert bal.plan(snap(three(), procs), bal.Policy(hold=10.0), h).loads[1] == 2.0


def test_a_job_on_its_way_weighs_on_its_target() -> None:
    # job a was sent to node 2 and is in nobody's table yet: node 2 is not as empty as it looks
    procs = [*busy_on(1, 2), job(3, 0, job="c")]
    h = bal.History(last_move={"job:a": NOW - 1}, sent={"job:a": bal.Sent(1, 200, 2, None, NOW - 1)})
    p = bal.plan(snap(three(), procs), bal.Policy(hold=10.0), h)
    assert p.loads == {1: 2.0, 2: 1.0, 3: 1.0} and not p.moves, p.text()
    assert any("counts job:a moved there" in n for n in p.notes)
    # forgotten, node 2 would get one of node 1's jobs on top of a
    p = bal.plan(snap(three(), procs), bal.Policy(hold=10.0), bal.History())
    assert targets(p) == [2]


def test_a_blip_is_not_a_task() -> None:
    # slow nodes (0.2 CPU): an sshd caught runnable once (now 0.5, decayed use 2 %) weighs 2.5
    # tasks per standard CPU there; counted as demand it would send node 2's only job to node 1,
    # and the next blip would send it back
    nodes = [node(1, speed=2000), node(2, speed=2000)]
    sshd = job(2, 5, job="", busy=0.02, now=0.5)
    p = bal.plan(snap(nodes, [job(2, 0), sshd]), bal.Policy(jobs_only=True))
    assert not p.moves and p.loads[2] == pytest.approx(5.1), p.text()
    # a process CPU-bound by its history and now is a whole task: a second job does move
    p = bal.plan(snap(nodes, [*busy_on(2, 2), sshd]))
    assert targets(p) == [1]


def test_tail_a_job_left_on_a_slow_node_moves_to_a_fast_node_that_freed_up() -> None:
    # 1:1:2:4 after the fast node's four jobs ended: the lone jobs on the slow nodes go there, and
    # one of node 3's two (3 jobs at 0.8 CPU: 0.27 each, more than the 0.2 they had)
    nodes = [node(1, speed=2000), node(2, speed=2000), node(3, speed=4000), node(4, speed=8000)]
    procs = [job(1, 0), job(2, 0), *busy_on(3, 2)]
    p = bal.plan(snap(nodes, procs))
    assert sorted((m.node, m.target) for m in p.moves) == [(1, 4), (2, 4), (3, 4)], p.text()
    assert p.after == {1: 0.0, 2: 0.0, 3: 2.5, 4: 3.75}
    # with the fast node still carrying its share nothing moves
    p = bal.plan(snap(nodes, [*procs, *busy_on(4, 4)]))
    assert not p.moves, p.text()


# ---------------------------------------------------------------- decay math


def test_decay_factors_and_steps() -> None:
    assert bal.decay_factor("") == 0.975 and bal.decay_factor("slowdecay") == 0.975
    assert bal.decay_factor("fastdecay") == 0.926 and bal.decay_factor("cpujob", 900, 800) == 0.9
    assert bal.decay_factor("nodecay") is None
    # one interval: u <- f u + (1 - f) b
    assert bal.decay(0.0, 1.0, 1.0, 0.975) == pytest.approx(0.025)
    # n intervals of a busy process from 0: 1 - f^n, whatever the sample spacing
    u = 0.0
    for _ in range(20):
        u = bal.decay(u, 1.0, 0.5, 0.926)
    assert u == pytest.approx(1 - 0.926**10)
    # a longer decay interval slows it down
    assert bal.decay(0.0, 1.0, 1.0, 0.926, interval=4) == pytest.approx(1 - 0.926**0.25)
    # time to become a candidate (50 %) at default settings: slow 28 intervals, fast 10
    assert math.ceil(math.log(0.5) / math.log(0.975)) == 28 and math.ceil(math.log(0.5) / math.log(0.926)) == 10


def test_busy_fraction_is_relative_to_what_a_task_can_get() -> None:
    half = bal.NodeInfo(2, speed=5000)  # half a CPU (a cgroup quota)
    assert bal.busy_fraction(49.0, half, [49.0, 0.5]) == 1.0  # saturated: it gets all there is
    assert bal.busy_fraction(20.0, half, [20.0]) == pytest.approx(0.4)
    one = bal.NodeInfo(1)
    # four CPU-bound tasks sharing one CPU: each gets 25 % and is fully busy
    assert bal.busy_fraction(25.0, one, [25.0] * 4) == 1.0
    assert bal.busy_fraction(2.0, one, [30.0] * 3 + [2.0]) == pytest.approx(2 / 30)
    # an idle node: a 10 % process is 10 % busy
    assert bal.busy_fraction(10.0, bal.NodeInfo(3, cpus=4), [10.0]) == pytest.approx(0.1)
    # runnable (state R) is busy whatever CPU it got: the host may give the node's CPU to others
    assert bal.busy_fraction(3.0, one, [3.0, 3.0], runnable=True) == 1.0
    # where states are known (some process is runnable), a sleeping one is not CPU-bound: on a
    # 0.2-CPU node whose 8 jobs get 2.5 % each, an agent at 1.5 % is 7.5 % of a task, not 60 %
    slow = bal.NodeInfo(1, speed=2000)
    assert bal.busy_fraction(1.5, slow, [2.5] * 8 + [1.5]) == pytest.approx(0.6)
    assert bal.busy_fraction(1.5, slow, [2.5] * 8 + [1.5], states_known=True) == pytest.approx(0.075)


def _p(pid: int, cpu: float, mode: str = "", started: float = 2000.0, nmigs: int = 0) -> ProcInfo:
    return ProcInfo(pid=pid, start=pid, cpu=cpu, job=f"j{pid}", mode=mode, started=started, nmigs=nmigs)


def test_decay_stats_per_mode() -> None:
    st = bal.DecayStats(since=1000.0)
    n = bal.sample_info(1, NodeSample(cpus=1, speed=10000))
    rows = [_p(1, 100.0), _p(2, 100.0, "fastdecay"), _p(3, 100.0, "nodecay"), _p(4, 100.0, "cpujob"),
            _p(5, 100.0, started=10.0)]
    for k in range(11):
        st.observe(1000.0 + k, n, rows, 1, 975, 926)
    got = {p.pid: st.get(bal.proc_key(1, p)) for p in rows}
    assert got[1].value == pytest.approx(1 - 0.975**10)  # type: ignore[union-attr]
    assert got[2].value == pytest.approx(1 - 0.926**10)  # type: ignore[union-attr]
    assert got[3].value == pytest.approx(1.0)  # type: ignore[union-attr]  # the plain mean
    assert got[4].value == pytest.approx(1.0)  # type: ignore[union-attr]  # declared CPU-bound
    assert got[5].value == pytest.approx(1.0)  # type: ignore[union-attr]  # ran before we looked
    assert got[1].seen == pytest.approx(10.0)  # type: ignore[union-attr]
    assert got[5].seen == pytest.approx(1000.0)  # type: ignore[union-attr]  # its age counts as observed
    # the node's decay settings count: slow 500 per 1000 learns in a few intervals
    st2 = bal.DecayStats(since=1000.0)
    for k in range(4):
        st2.observe(1000.0 + k, n, [_p(1, 100.0)], 1, 500, 926)
    assert st2.get("job:j1").value == pytest.approx(1 - 0.5**3)  # type: ignore[union-attr]
    # a sleeping process next to runnable ones weighs its own use, not the starved share
    slow = bal.sample_info(1, NodeSample(cpus=1, speed=2000))
    st3 = bal.DecayStats(since=1000.0)
    jobs8 = [ProcInfo(pid=10 + k, start=1, cpu=2.5, state="R", job=f"a{k}", mode="cpujob", started=2000.0)
             for k in range(8)]
    agent = ProcInfo(pid=7, start=1, cpu=1.5, state="S", cmd="sshd: root@notty", started=10.0)
    for k in range(3):
        st3.observe(1000.0 + k, slow, [*jobs8, agent], 1, 975, 926)
    assert st3.get("1:7:1").now == pytest.approx(0.075) and st3.get("1:7:1").value == pytest.approx(0.075)  # type: ignore[union-attr]
    assert st3.get("job:a0").now == 1.0  # type: ignore[union-attr]
    # our agent and its sshd, busy with a round's migrations, are not demand: only the job counts
    st4 = bal.DecayStats(since=1000.0)
    sshd = ProcInfo(pid=5, start=1, cpu=12.0, state="R", cmd="sshd: root@notty", ppid=3, started=10.0)
    ours = ProcInfo(pid=7, start=1, cpu=15.0, state="R", ppid=5, started=10.0,
                    cmd='python3 -u -c import sys;exec(compile(sys.stdin.buffer.read(n),"omview-agent","exec"))')
    for k in range(3):
        st4.observe(1000.0 + k, slow, [jobs8[0], sshd, ours], 1, 975, 926)
    assert st4.get("1:5:1") is None and st4.get("1:7:1") is None
    assert st4.get("job:a0").now == 1.0  # type: ignore[union-attr]
    other = ProcInfo(pid=9, start=1, cpu=12.0, state="R", cmd="sshd: root@notty", ppid=3, started=10.0)
    st4.observe(1003.0, slow, [jobs8[0], sshd, ours, other], 1, 975, 926)
    assert st4.get("1:9:1") is not None  # another sshd (someone's session) is load like any process
    # a move (nmigs went up) is noticed for the hysteresis, whoever made it
    st2.observe(1005.0, n, [_p(1, 100.0, nmigs=1)], 1, 500, 926)
    assert st2.moved == {"job:j1": 1005.0}


# ---------------------------------------------------------------- the collector records the balancer's moves


def test_collector_records_moves_with_the_plans_reason(tmp_path: Any) -> None:
    from omcollector.collector import Collector, Options
    from omview.core.config import ClusterConfig, NodeConfig
    from omview.core.history import BALANCER_PREFIX, HistoryReader, HistoryWriter, balancer_reason
    from omview.core.session import Event

    assert BALANCER_PREFIX == bal.REASON_PREFIX
    col = Collector(Options(history=tmp_path), ClusterConfig(nodes=[NodeConfig(id=1, address="a"),
                                                                    NodeConfig(id=2, address="b")]))
    col.writer = HistoryWriter(tmp_path, interval=1.0)
    try:
        final = {"final": True, "time": 5.0, "pid": 11, "start": 99, "cmd": "awk", "src": 1, "dst": 2}
        col._on_event(Event("balance", 1, message="move", data={"src": 1, "pid": 11, "start": 99, "dst": 2,
                                                                 "reason": "node 1 load 4.00 -> 3.00"}))
        col._on_event(Event("migration", 1, data={**final, "result": "done", "frozen": 0.3, "reason": ""}))
        col._on_event(Event("balance", 1, message="move", data={"src": 1, "pid": 12, "start": 98, "dst": 2,
                                                                 "reason": "r2"}))
        col._on_event(Event("migration", 1, data={**final, "pid": 12, "start": 98, "result": "failed",
                                                  "reason": "node 2 went down"}))
        col._on_event(Event("migration", 1, data={**final, "pid": 13, "result": "done", "reason": ""}))  # by hand
        col._drain(10.0)
        col.writer.commit(10.0)
        with HistoryReader(tmp_path) as r:
            migs = {m.pid: m for m in r.migrations()}
        assert migs[11].reason == "balancer: node 1 load 4.00 -> 3.00" and migs[11].automatic
        assert migs[12].reason == balancer_reason("r2", "node 2 went down") == "balancer: r2; failed: node 2 went down"
        assert migs[13].reason == "" and not migs[13].automatic
        assert col.balance_status() == {"running": False}
    finally:
        col.writer.close()
        col._wake_r.close()
        col._wake_w.close()


def test_collector_runs_the_balancer_with_balance_and_switches_it(tmp_path: Any) -> None:
    from omcollector import control
    from omcollector.collector import Collector, Options
    from omview.core.cluster import Cluster
    from omview.core.simulate import SimFarm

    farm = SimFarm(2)
    col = Collector(Options(history=tmp_path, balance=True, balance_interval=0.5), farm.config(0.5),
                    cluster_factory=lambda cfg: Cluster(cfg, transport_factory=farm.transport).start())
    try:
        col.open()
        assert col.balancer is not None and col.balancer.running
        assert col.status()["balancer"]["running"] is True
        t = threading.Thread(target=col.run, daemon=True)
        t.start()
        assert control.request(tmp_path, "balance", on=False)["running"] is False and col.balancer is None
        assert control.request(tmp_path, "balance", on=True)["running"] is True
        assert control.request(tmp_path, "balance")["running"] is True  # asking changes nothing
        col.stop()
        t.join(10)
    finally:
        col.close()
        farm.stop()
    assert col.balancer is None
