"""Automatic load balancing with openMosix's knobs (HOWTO Ch. 8; FAQ and Ch. 12 on why a process stays).

Two halves:

- `plan(snapshot, policy, history) -> Plan` is a pure function over plain data (`Snapshot`: node
  states and processes with their decayed CPU use; `Policy`; `History` of moves). It returns the
  moves, each with its reason, and the reason for every process it leaves alone. No I/O, no clock:
  the tests drive it with literals.
- `Balancer` acts: it feeds the decayed CPU statistics from the cluster's samples (`DecayStats`),
  builds a snapshot per round, plans, and executes the moves through the migration engine
  (`cluster.migrate(..., automatic=True)`, so the agents also check stay/lstay/lock themselves).
  The engine's journal guarantees that a node dying in the middle of a move leaves the process on
  exactly one node; the balancer only has to skip the rest of a round's moves that involve it.

The figures (docs/architecture.md, "Balancer"):

- capacity of a node = cpus × speed / 10000 (standard CPUs);
- a process's *busy* fraction = its CPU use over the share one task can get on its node, at most 1;
  the demand of a node is the sum over its processes of the current busy fraction, each capped by
  the decayed one (so a blip is no task), its load `demand / capacity`;
- our own agent and the sshd that serves it are not demand (right after a round they are busy
  with its migrations);
- the balancer's own moves of the last `hold` s count where they went, not where the tables still
  show them: a source's old listing weighs nothing, a job on its way weighs on its target;
- the busy fraction is decayed per decay interval: `u ← f·u + (1 − f)·b` with f = slow (975/1000)
  or, for fastdecay jobs, fast (926/1000); nodecay jobs keep the plain mean since first seen; a
  cpujob is declared CPU-bound and starts at 1;
- a candidate is CPU-bound for long enough: decayed busy ≥ `min_busy`, observed ≥ `min_seen` s (a
  cpujob needs no observation: it is declared CPU-bound, and waiting a round for it costs a round);
- a move must lower the pair's higher load below the source's load minus `margin` (so loads only
  ever decrease lexicographically: no cycles), gain more than `cost_factor` × its cost, and the
  process must not have moved within `hold` s (hysteresis).

Qt-free.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from omview.core.model import (
    DEFAULT_DECAY_INTERVAL,
    DEFAULT_FAST_DECAY,
    DEFAULT_SLOW_DECAY,
    STANDARD_SPEED,
    NodeSample,
    NodeState,
    ProcInfo,
)

log = logging.getLogger("omview.balancer")

#: A node whose processes use this part of its capacity is saturated: its tasks share it.
SATURATED = 0.85
#: Prefix of the history's migration reason for a move the balancer made (see history.py).
REASON_PREFIX = "balancer: "


# ---------------------------------------------------------------- plain data


@dataclass(frozen=True)
class NodeInfo:
    """What the planner needs of one node."""

    id: int
    up: bool = True
    speed: int = STANDARD_SPEED
    cpus: int = 1
    stay: bool = False
    lstay: bool = False
    block: bool = False
    quiet: bool = False
    stopped: bool = False
    criu: str = "ready"  # the agent's readiness text; "ready..." means it can take part in a move
    down_reason: str = ""

    @property
    def capacity(self) -> float:
        return self.cpus * self.speed / STANDARD_SPEED

    @property
    def per_task(self) -> float:
        """The most one single-threaded task can get here, in standard CPUs."""
        return min(self.speed / STANDARD_SPEED, self.capacity)

    @property
    def criu_ready(self) -> bool:
        return self.criu.startswith("ready")


@dataclass(frozen=True)
class ProcView:
    """One process as the planner sees it. `key` is its identity across moves (the job id, or
    node:pid:start for a plain process)."""

    key: str
    node: int
    pid: int
    start: int = 0
    cmd: str = ""
    job: str = ""
    mode: str = ""
    lock: bool = False
    cantmove: str = ""
    home: int = 0  # 0: this node
    rss: int = 0
    busy: float = 0.0  # decayed busy fraction, 0..1
    now: float = 0.0  # the busy fraction of the last samples (smoothed over ~2): the demand it puts on its node now
    seen: float = 0.0  # seconds observed
    nmigs: int = 0


@dataclass(frozen=True)
class Snapshot:
    time: float
    nodes: tuple[NodeInfo, ...]
    procs: tuple[ProcView, ...]


@dataclass(frozen=True)
class Policy:
    min_busy: float = 0.5  # decayed busy fraction that makes a process CPU-bound
    min_seen: float = 3.0  # seconds a process must have been observed
    jobs_only: bool = True  # only processes started as jobs (omctl run) move automatically
    margin: float = 0.25  # the load (tasks per standard CPU) a move must take off the busier node
    hold: float = 30.0  # seconds a process stays where it is after a move (hysteresis)
    retry_after: float = 60.0  # seconds before retrying a process whose automatic move failed
    cost_factor: float = 2.0  # a move's gain must exceed its cost by this factor
    link_bps: float = 50e6  # assumed until measured: the link's bytes per second
    dump_bps: float = 200e6  # assumed until measured: how fast CRIU dumps and restores
    overhead: float = 1.0  # assumed until measured: seconds a move costs besides the bytes
    horizon_min: float = 20.0  # a process is expected to run at least this long still...
    horizon_max: float = 600.0  # ...and as long as it has run, up to this
    max_moves: int = 8  # per round
    parallel: int = 8  # moves of a round done at once (see Balancer._do_all)...
    per_target: int = 8  # ...of them into one target node


@dataclass(frozen=True)
class Sent:
    """A move the balancer has done. Until the nodes' process tables catch up (each agent reports
    its own table, each on its own beat) the source may still list the old process and the target
    not yet the new one; the planner trusts this record over the tables for `Policy.hold` s."""

    node: int  # source
    pid: int  # the process on the source
    target: int
    new_pid: int | None
    time: float
    demand: float = 1.0  # what it weighed on the source


@dataclass
class History:
    """What the planner remembers between rounds (the Balancer keeps it up to date)."""

    last_move: dict[str, float] = field(default_factory=dict)  # key -> time of its last move (anyone's)
    failed: dict[str, tuple[float, str]] = field(default_factory=dict)  # key -> (time, why)
    moves: dict[str, int] = field(default_factory=dict)  # key -> automatic moves done
    sent: dict[str, Sent] = field(default_factory=dict)  # key -> the last move the balancer did of it
    bps: float | None = None  # measured bytes per second of dump + transfer
    overhead: float | None = None  # measured seconds per move besides the bytes


@dataclass(frozen=True)
class Move:
    key: str
    node: int
    pid: int
    start: int
    target: int
    reason: str
    cmd: str = ""
    gain: float = 0.0  # standard-CPU seconds the process is expected to gain
    cost: float = 0.0  # standard-CPU seconds the move is expected to cost
    demand: float = 1.0  # the tasks it takes from the source to the target

    @property
    def ref(self) -> str:
        return f"{self.node}:{self.pid}"


@dataclass(frozen=True)
class Skip:
    key: str
    node: int
    pid: int
    start: int
    reason: str
    cmd: str = ""
    busy: float = 0.0

    @property
    def ref(self) -> str:
        return f"{self.node}:{self.pid}"


@dataclass(frozen=True)
class Plan:
    time: float
    moves: tuple[Move, ...]
    skipped: tuple[Skip, ...]
    loads: Mapping[int, float]  # node -> load before (tasks per standard CPU); taking part only
    after: Mapping[int, float]  # node -> load once the moves are done
    notes: tuple[str, ...] = ()  # node-level remarks (quiet, stopped, down, CRIU)

    def skip_for(self, key: str) -> Skip | None:
        return next((s for s in self.skipped if s.key == key), None)

    def move_for(self, key: str) -> Move | None:
        return next((m for m in self.moves if m.key == key), None)

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time, "moves": [asdict(m) for m in self.moves],
                "skipped": [asdict(s) for s in self.skipped],
                "loads": {str(k): round(v, 3) for k, v in self.loads.items()},
                "after": {str(k): round(v, 3) for k, v in self.after.items()}, "notes": list(self.notes)}

    def text(self, all_procs: bool = True) -> str:
        """The plan for people: loads, moves with reasons, then every process left alone and why."""
        out = ["loads (tasks per standard CPU): " + (", ".join(
            f"node {n} {self.loads[n]:.2f}" + (f" -> {self.after[n]:.2f}" if abs(self.after[n] - self.loads[n]) > 1e-9
                                               else "") for n in sorted(self.loads)) or "no node takes part")]
        out += [f"note: {n}" for n in self.notes]
        if self.moves:
            out.append(f"moves ({len(self.moves)}):")
            out += [f"  {m.ref} -> node {m.target}  {_short(m.cmd)}: {m.reason}" for m in self.moves]
        else:
            out.append("moves: none")
        left = [s for s in self.skipped if all_procs or s.busy >= 0.05]
        out.append(f"left alone ({len(self.skipped)}" + ("" if all_procs else f", {len(left)} shown") + "):")
        out += [f"  {s.ref}  {_short(s.cmd)}: {s.reason}" for s in left]
        return "\n".join(out)


def _short(cmd: str, width: int = 40) -> str:
    cmd = " ".join(cmd.split())
    return cmd if len(cmd) <= width else cmd[: width - 3] + "..."


# ---------------------------------------------------------------- decay


def decay_factor(mode: str, slow: int = DEFAULT_SLOW_DECAY, fast: int = DEFAULT_FAST_DECAY) -> float | None:
    """Per-interval factor for a job of this mode; None for nodecay (a plain mean)."""
    if mode == "nodecay":
        return None
    return (fast if mode == "fastdecay" else slow) / 1000.0


def decay(value: float, sample: float, dt: float, factor: float, interval: float = DEFAULT_DECAY_INTERVAL) -> float:
    """One step of openMosix's decayed statistic over dt seconds: the factor applies once per interval."""
    g = factor ** (max(dt, 0.0) / max(interval, 1e-9))
    return g * value + (1.0 - g) * sample


def busy_fraction(cpu_pct: float, node: NodeInfo, node_cpu_pcts: Iterable[float], runnable: bool = False,
                  states_known: bool = False) -> float:
    """How much a process wants a CPU now (0..1): 1 when it is runnable (state R: it waits for or
    uses a CPU, which is what openMosix's run-queue load counts), else its CPU use as a part of what
    one task can get on its node.

    On a node that is not saturated a task can get `per_task` (one CPU at the node's speed); on a
    saturated one the busiest process's use is the share each runnable task gets. The state matters
    where the CPU is taken by something the agent cannot see (another container on the same host):
    there a CPU-bound task gets little CPU but is still always runnable.

    `states_known`: the node reports run states (some process on it is in R), so one that is not
    runnable now is not CPU-bound, and its use counts against what a task can get on the node, not
    against the starved share of the CPU-bound ones: on a 0.2-CPU node with 8 jobs at 2.5 % each,
    an agent at 1.5 % is not 60 % of a task. Without states (simulated nodes) the share is all
    there is to go by."""
    if runnable:
        return 1.0
    pcts = list(node_cpu_pcts)
    share = node.per_task
    total = sum(pcts) / 100.0
    if pcts and total >= SATURATED * node.capacity and not states_known:
        share = min(share, max(max(pcts) / 100.0, 0.01))
    if share <= 0:
        return 0.0
    return max(0.0, min(1.0, cpu_pct / 100.0 / share))


#: In our agent's command line: omview.core.agent.AGENT_NAME, its code's compile name (the agent
#: module is the node's program, shipped on its own; a test keeps the two equal).
AGENT_TAG = "omview-agent"


@dataclass
class Stat:
    value: float = 0.0
    now: float = 0.0
    seen: float = 0.0
    last: float = 0.0  # time of the last observation
    nmigs: int = 0


class DecayStats:
    """Decayed busy fractions per process key, fed with one node's sample at a time. Thread-safe."""

    def __init__(self, since: float = 0.0) -> None:
        self.since = since  # a process already running before this gets its first value at once
        self.stats: dict[str, Stat] = {}
        self.moved: dict[str, float] = {}  # key -> time its nmigs last went up
        self.lock = threading.Lock()

    def observe(self, t: float, node: NodeInfo, procs: Iterable[ProcInfo], interval: int, slow: int, fast: int) -> None:
        rows = list(procs)
        # the monitor's own processes (our agent and the sshd that serves it) are not demand: what
        # they use right after a round is that round's migrations, and counted as load it drew a
        # job back into the node the round had just emptied (two moves for nothing)
        ours = {p.pid for p in rows if AGENT_TAG in p.cmd}
        if ours:
            ours |= {p.ppid for p in rows if p.pid in ours and p.ppid > 1}
            rows = [p for p in rows if p.pid not in ours]
        pcts = [p.cpu for p in rows]
        states = any(p.state == "R" for p in rows)
        with self.lock:
            for p in rows:
                key = proc_key(node.id, p)
                b = busy_fraction(p.cpu, node, pcts, p.state == "R", states)
                st = self.stats.get(key)
                if st is None:
                    born_before = bool(p.started) and p.started < self.since
                    first = 1.0 if p.mode == "cpujob" else (b if born_before else 0.0)
                    # a process that ran before we looked is credited with its age as observation time
                    seen = max(0.0, t - p.started) if born_before else 0.0
                    st = self.stats[key] = Stat(value=first, now=b, seen=seen, last=t, nmigs=p.nmigs)
                    if p.mode == "nodecay":
                        st.value = b
                    continue
                dt = t - st.last
                if dt <= 0:
                    continue
                f = decay_factor(p.mode, slow, fast)
                if f is None:
                    st.value = (st.value * st.seen + b * dt) / (st.seen + dt) if st.seen + dt > 0 else b
                else:
                    st.value = decay(st.value, b, dt, f, interval)
                # the current demand, smoothed over about two samples so one blip does not count
                st.now, st.seen, st.last = 0.5 * st.now + 0.5 * b, st.seen + dt, t
                if p.nmigs > st.nmigs:
                    self.moved[key] = t
                st.nmigs = p.nmigs

    def get(self, key: str) -> Stat | None:
        with self.lock:
            st = self.stats.get(key)
            return None if st is None else replace(st)

    def forget_older(self, t: float) -> None:
        with self.lock:
            for k in [k for k, s in self.stats.items() if s.last < t]:
                del self.stats[k]


def proc_key(node_id: int, p: ProcInfo) -> str:
    return f"job:{p.job}" if p.job else f"{node_id}:{p.pid}:{p.start}"


# ---------------------------------------------------------------- the plan (pure)


def _move_seconds(rss: int, policy: Policy, history: History) -> float:
    bps = history.bps or min(policy.link_bps, policy.dump_bps)  # streamed: dump and link overlap
    overhead = policy.overhead if history.overhead is None else history.overhead
    return overhead + rss / max(bps, 1.0)


def _demand(p: ProcView) -> float:
    """The tasks a process puts on its node: what it wants now, as far as its decayed history
    agrees. A blip (a helper or an sshd caught runnable on a busy host, CRIU during a move, a
    restored process not yet known as its job) is not a task; a cpujob is one from the start. A
    fresh ordinary CPU hog weighs in as its decayed use rises, as openMosix's decayed load did."""
    return min(1.0, max(0.0, p.now), max(0.0, p.busy))


def _rate(node: NodeInfo, demand: float) -> float:
    """Standard CPUs one task gets on a node carrying `demand` tasks (itself included)."""
    return min(node.per_task, node.capacity / max(demand, 1.0))


def plan(snapshot: Snapshot, policy: Policy | None = None, history: History | None = None) -> Plan:
    """The moves of one round and why; why every other process stays. Pure."""
    policy = policy or Policy()
    history = history or History()
    now = snapshot.time
    nodes = {n.id: n for n in snapshot.nodes}
    notes: list[str] = []
    taking_part: dict[int, NodeInfo] = {}
    for n in snapshot.nodes:
        if not n.up:
            notes.append(f"node {n.id} is down" + (f" ({n.down_reason})" if n.down_reason else ""))
        elif n.stopped:
            notes.append(f"node {n.id} is stopped: it takes no part in the cluster")
        elif n.quiet:
            notes.append(f"node {n.id} is quiet: it takes no part in load balancing")
        elif n.capacity <= 0:
            notes.append(f"node {n.id} has no capacity")
        else:
            taking_part[n.id] = n
            if not n.criu_ready:
                notes.append(f"node {n.id}: CRIU not ready ({n.criu or 'not probed yet'}): no moves to or from it")
            if n.stay:
                notes.append(f"node {n.id} stays: no automatic migration away from it")
            if n.lstay:
                notes.append(f"node {n.id} lstay: its own processes stay")
            if n.block:
                notes.append(f"node {n.id} blocks guests")
    # the balancer's own recent moves: the source's listing of a moved process is stale until its
    # table catches up, and a process not yet listed on its target already weighs there
    recent = {k: sent for k, sent in history.sent.items() if now - sent.time < policy.hold}
    stale = {p.key: recent[p.key] for p in snapshot.procs
             if p.key in recent and p.node == recent[p.key].node and p.pid == recent[p.key].pid}
    listed = {p.key for p in snapshot.procs if p.key not in stale}
    demand = {i: 0.0 for i in taking_part}
    for p in snapshot.procs:
        if p.node in demand and p.key not in stale:
            demand[p.node] += _demand(p)
    for k, sent in sorted(recent.items()):
        if k not in listed and sent.target in demand:
            demand[sent.target] += sent.demand
            notes.append(f"node {sent.target}: counts {k} moved there {now - sent.time:.0f} s ago "
                         "(not in its table yet)")
    loads = {i: demand[i] / node.capacity for i, node in taking_part.items()}
    before = dict(loads)

    skipped: dict[str, Skip] = {}
    candidates: list[ProcView] = []

    def leave(p: ProcView, why: str) -> None:
        skipped[p.key] = Skip(p.key, p.node, p.pid, p.start, why, p.cmd, p.busy)

    for p in snapshot.procs:
        pn = nodes.get(p.node)
        home = p.home or p.node
        if p.key in stale:
            leave(p, f"moved to node {stale[p.key].target} {now - stale[p.key].time:.0f} s ago: this is the old "
                     f"listing (node {p.node}'s table lags)")
        elif pn is None or not pn.up:
            leave(p, f"node {p.node} is down")
        elif pn.stopped:
            leave(p, f"node {p.node} is stopped: it takes no part in the cluster")
        elif pn.quiet:
            leave(p, f"node {p.node} is quiet: it takes no part in load balancing")
        elif p.mode == "nomig":
            leave(p, "nomig job: never migrated")
        elif p.lock:
            leave(p, "locked to its node (lock)")
        elif p.mode == "iojob":
            leave(p, "io job: it stays near its data")
        elif p.cantmove:
            leave(p, f"cannot move: {p.cantmove}")
        elif pn.stay:
            leave(p, f"node {p.node} is set to stay: no automatic migration away from it")
        elif pn.lstay and home == p.node:
            leave(p, f"node {p.node} is set to lstay: its own processes stay")
        elif policy.jobs_only and not p.job:
            leave(p, "not a job: only processes started with omctl run move automatically")
        elif not pn.criu_ready:
            leave(p, f"CRIU is not ready on node {p.node}: {pn.criu or 'not probed yet'}")
        elif p.busy < policy.min_busy:
            leave(p, f"not CPU-bound: decayed CPU use {p.busy:.0%} < {policy.min_busy:.0%}")
        elif p.seen < policy.min_seen and p.mode != "cpujob":  # a cpujob is CPU-bound by declaration
            leave(p, f"observed for {math.floor(p.seen * 10) / 10:.1f} s only (< {policy.min_seen:g} s)")
        elif p.key in history.last_move and now - history.last_move[p.key] < policy.hold:
            leave(p, f"moved {now - history.last_move[p.key]:.0f} s ago: stays {policy.hold:g} s (no ping-pong)")
        elif p.key in history.failed and now - history.failed[p.key][0] < policy.retry_after:
            leave(p, f"its last automatic move failed {now - history.failed[p.key][0]:.0f} s ago: "
                     f"{history.failed[p.key][1]}")
        else:
            candidates.append(p)

    moves: list[Move] = []
    why: dict[str, str] = {}
    pending = list(candidates)
    while pending and len(moves) < policy.max_moves:
        # the busiest source first, its busiest process first
        pending.sort(key=lambda q: (-loads[q.node], -q.busy, q.node, q.pid))
        chosen: tuple[ProcView, Move] | None = None
        for p in pending:
            mv, reason = _best_target(p, taking_part, demand, loads, policy, history)
            if mv is not None:
                chosen = (p, mv)
                break
            why[p.key] = reason
        if chosen is None:
            break
        p, mv = chosen
        d = mv.demand
        demand[p.node] -= d
        demand[mv.target] += d
        loads[p.node] = demand[p.node] / taking_part[p.node].capacity
        loads[mv.target] = demand[mv.target] / taking_part[mv.target].capacity
        moves.append(mv)
        pending.remove(p)
        why.pop(p.key, None)
    for p in pending:
        leave(p, why.get(p.key) or f"round full: at most {policy.max_moves} moves per round")
    order = [skipped[p.key] for p in snapshot.procs if p.key in skipped]
    return Plan(now, tuple(moves), tuple(order), before, dict(loads), tuple(notes))


def _best_target(p: ProcView, taking_part: Mapping[int, NodeInfo], demand: Mapping[int, float],
                 loads: Mapping[int, float], policy: Policy, history: History) -> tuple[Move | None, str]:
    src = taking_part[p.node]
    home = p.home or p.node
    d = max(_demand(p), policy.min_busy)
    l_src = loads[p.node]
    l_src_after = (demand[p.node] - d) / src.capacity
    refused: list[str] = []
    best: tuple[tuple[float, float, int], NodeInfo] | None = None
    for t in taking_part.values():
        if t.id == p.node:
            continue
        if t.block and t.id != home:
            refused.append(f"node {t.id} blocks guests")
            continue
        if not t.criu_ready:
            refused.append(f"node {t.id} has no CRIU ready")
            continue
        l_t_after = (demand[t.id] + d) / t.capacity
        worst = max(l_src_after, l_t_after)
        if worst > l_src - policy.margin:
            continue
        score = (worst, l_t_after, t.id)
        if best is None or score < best[0]:
            best = (score, t)
    if best is None:
        others = [f"node {i} {loads[i]:.2f}" for i in sorted(loads) if i != p.node]
        text = (f"balanced: no node would carry it with less than {l_src - policy.margin:.2f} "
                f"(node {p.node} {l_src:.2f}; " + (", ".join(others) or "no other node takes part") + ")")
        if refused:
            text += "; refused by " + ", ".join(refused)
        return None, text
    t = best[1]
    rate_now = _rate(src, demand[p.node])
    rate_after = _rate(t, demand[t.id] + d)
    horizon = min(policy.horizon_max, max(policy.horizon_min, p.seen))
    gain = (rate_after - rate_now) * horizon
    seconds = _move_seconds(p.rss, policy, history)
    cost = seconds * max(rate_now, rate_after)
    if gain <= policy.cost_factor * cost:
        return None, (f"not worth it: moving to node {t.id} gains {gain:.1f} s of CPU over {horizon:.0f} s, "
                      f"the move costs {cost:.1f} s ({p.rss / 2**20:.0f} MiB, ~{seconds:.1f} s frozen) "
                      f"x {policy.cost_factor:g}")
    reason = (f"node {p.node} load {l_src:.2f} -> {l_src_after:.2f}, node {t.id} {loads[t.id]:.2f} -> "
              f"{(demand[t.id] + d) / t.capacity:.2f}; gains {gain:.1f} s of CPU over {horizon:.0f} s "
              f"for a cost of {cost:.1f} s ({p.rss / 2**20:.0f} MiB, ~{seconds:.1f} s frozen)")
    return Move(p.key, p.node, p.pid, p.start, t.id, reason, p.cmd, round(gain, 3), round(cost, 3), d), ""


# ---------------------------------------------------------------- from the cluster's data


def node_info(st: NodeState) -> NodeInfo:
    if st.sample is None:
        return NodeInfo(st.id, up=False, down_reason=st.reason or "no sample yet", criu="")
    return sample_info(st.id, st.sample, st.up, st.reason)


def sample_info(node_id: int, s: NodeSample, up: bool = True, reason: str = "") -> NodeInfo:
    a = s.admin
    return NodeInfo(node_id, up=up, speed=s.speed, cpus=s.cpus, stay=a.stay, lstay=a.lstay, block=a.block,
                    quiet=a.quiet, stopped=a.stopped, criu=s.criu, down_reason=reason)


def build_snapshot(states: Iterable[NodeState], stats: DecayStats, now: float) -> Snapshot:
    """A planner's snapshot from cluster states (with their process tables) and the decayed stats."""
    nodes: list[NodeInfo] = []
    procs: list[ProcView] = []
    for st in states:
        ni = node_info(st)
        nodes.append(ni)
        for p in st.procs.values():
            key = proc_key(st.id, p)
            s = stats.get(key)
            procs.append(ProcView(key, st.id, p.pid, p.start, p.cmd, p.job, p.mode, p.lock, p.cantmove,
                                  p.home if p.home and p.home != st.id else 0, p.rss,
                                  s.value if s else 0.0, s.now if s else 0.0, s.seen if s else 0.0, p.nmigs))
    return Snapshot(now, tuple(nodes), tuple(procs))


# ---------------------------------------------------------------- acting


@dataclass
class MoveOutcome:
    move: Move
    ok: bool
    error: str = ""
    new_pid: int | None = None
    mid: str = ""
    skipped: bool = False  # not attempted (a node went down during the round, or stop)
    seconds: float = 0.0  # how long the move took
    timings: dict[str, float] = field(default_factory=dict)  # the engine's seconds per phase


@dataclass
class Round:
    plan: Plan
    outcomes: list[MoveOutcome] = field(default_factory=list)


class Balancer:
    """Rounds of plan + act on a cluster (`Cluster` or `HubCluster`): `run_once()`, or `start()`
    a thread that runs one every `interval` s until `stop()`."""

    def __init__(self, cluster: Any, policy: Policy | None = None, *, interval: float = 5.0,
                 dry_run: bool = False, clock: Callable[[], float] = time.time,
                 on_round: Callable[[Round], None] | None = None,
                 migrate_kw: dict[str, Any] | None = None) -> None:
        self.cluster = cluster
        self.policy = policy or Policy()
        self.interval = interval
        self.dry_run = dry_run
        self.clock = clock
        self.on_round = on_round
        self.migrate_kw = migrate_kw or {}  # tests: hooks for the engine (direct clusters only)
        self.history = History()
        self.stats = DecayStats(since=clock())
        self.rounds = 0
        self.outcomes: list[MoveOutcome] = []  # every move attempted since start
        self.last_round: Round | None = None
        #: migrations the engine left to resolve (a node did not come back in time): mid -> (source, target)
        self.pending: dict[str, tuple[int, int]] = {}
        self._round_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsub: Callable[[], None] | None = cluster.subscribe(self._on_event)

    # -- statistics (the cluster's I/O thread: quick)
    def _on_event(self, ev: Any) -> None:
        if ev.kind != "sample" or ev.sample is None:
            return
        try:
            a = ev.sample.admin
            self.stats.observe(self.clock(), sample_info(ev.node_id, ev.sample),
                               [p for _, p in self.cluster.processes(ev.node_id)],
                               a.decay_interval, a.slow_decay, a.fast_decay)
        except Exception:  # a listener must never break the cluster's loop
            log.exception("balancer: statistics update failed")

    def close(self) -> None:
        self.stop()
        if self._unsub is not None:
            self._unsub()
            self._unsub = None

    # -- rounds
    def snapshot(self) -> Snapshot:
        now = self.clock()
        for k, t in list(self.stats.moved.items()):
            if t > self.history.last_move.get(k, 0.0):
                self.history.last_move[k] = t
        self.stats.forget_older(now - 120.0)
        for k in [k for k, sent in self.history.sent.items() if now - sent.time >= self.policy.hold]:
            del self.history.sent[k]
        return build_snapshot(self.cluster.snapshot(), self.stats, now)

    def plan(self) -> Plan:
        return plan(self.snapshot(), self.policy, self._history_copy())

    def _history_copy(self) -> History:
        h = self.history
        return History(dict(h.last_move), dict(h.failed), dict(h.moves), dict(h.sent), h.bps, h.overhead)

    def run_once(self) -> Round:
        """Plan one round and (unless dry_run) do its moves; returns the plan and the outcomes."""
        with self._round_lock:
            self.resolve_pending()
            p = self.plan()
            rnd = Round(p)
            if not self.dry_run:
                rnd.outcomes = self._do_all(p.moves)
                self._settle(rnd)
            self.rounds += 1
            self.last_round = rnd
        if self.on_round is not None:
            try:
                self.on_round(rnd)
            except Exception:
                log.exception("balancer: on_round failed")
        return rnd

    def _do_all(self, moves: Iterable[Move]) -> list[MoveOutcome]:
        """The round's moves, started in plan order, up to `policy.parallel` at once and up to
        `policy.per_target` into one target at once (a move is mostly waiting for CRIU and the link,
        and until the moves are done the source carries every job; on a busy source the dumps
        compete with the jobs for its CPU, and a job frozen for its dump no longer does). Each move
        streams its pages to its target's page server like a single one: writing images on a busy
        source and sending them as files after the dump costs that source CPU it does not have."""
        moves = list(moves)
        out: list[MoveOutcome | None] = [None] * len(moves)
        per_target = max(1, self.policy.per_target)
        workers = min(max(1, self.policy.parallel), len(moves))
        together = workers > 1 and (per_target > 1 or len({mv.target for mv in moves}) > 1)
        if not together:
            return [self._do(mv) for mv in moves]

        pending = list(range(len(moves)))
        running: dict[int, int] = {}  # target -> moves into it now
        cv = threading.Condition()

        def worker() -> None:
            while True:
                with cv:
                    while True:
                        i = next((k for k in pending if running.get(moves[k].target, 0) < per_target), None)
                        if i is not None or not pending:
                            break
                        cv.wait()
                    if i is None:
                        return
                    pending.remove(i)
                    running[moves[i].target] = running.get(moves[i].target, 0) + 1
                try:
                    out[i] = self._do(moves[i])
                finally:
                    with cv:
                        running[moves[i].target] -= 1
                        cv.notify_all()

        threads = [threading.Thread(target=worker, name="omview-balance-move", daemon=True) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return [o for o in out if o is not None]

    def _do(self, mv: Move) -> MoveOutcome:
        if self._stop.is_set():
            return MoveOutcome(mv, False, "the balancer was stopped", skipped=True)
        for n in (mv.node, mv.target):
            st = self.cluster.node(n)
            if not st.up:
                out = MoveOutcome(mv, False, f"node {n} went down during the round", skipped=True)
                self.outcomes.append(out)
                return out
        emit = getattr(self.cluster, "emit", None)
        if callable(emit):
            from omview.core.session import Event

            emit(Event("balance", mv.node, message="move", data={
                "pid": mv.pid, "start": mv.start, "src": mv.node, "dst": mv.target, "reason": mv.reason,
                "key": mv.key, "time": self.clock()}))
        t0 = time.monotonic()
        try:
            r = self.cluster.migrate(mv.node, mv.pid, mv.target, start=mv.start, automatic=True, **self.migrate_kw)
        except Exception as exc:  # an engine bug or a hub that went away: the journal settles it
            from omview.core.session import AgentError

            if isinstance(exc, AgentError):  # e.g. the job ended between the plan and its move: one line
                log.warning("balancer: did not move %s: %s", mv.ref, exc)
            else:
                log.exception("balancer: migration of %s failed", mv.ref)
            out = MoveOutcome(mv, False, str(exc))
        else:
            phases = getattr(r, "timings", None) or {}
            out = MoveOutcome(mv, bool(r.ok), str(r.error), r.new_pid, str(r.mid),
                              timings={str(k): round(float(v), 3) for k, v in phases.items()})
            if r.ok:
                self._measure(r)
            elif getattr(r, "pending", False):
                self.pending[str(r.mid)] = (mv.node, mv.target)
        out.seconds = round(time.monotonic() - t0, 3)
        now = self.clock()
        if out.ok:
            self.history.last_move[mv.key] = now
            self.history.moves[mv.key] = self.history.moves.get(mv.key, 0) + 1
            self.history.sent[mv.key] = Sent(mv.node, mv.pid, mv.target, out.new_pid, now, mv.demand)
            self.history.failed.pop(mv.key, None)
        else:
            self.history.failed[mv.key] = (now, out.error or "failed")
        log.info("balancer: %s -> node %d: %s%s", mv.ref, mv.target, "done" if out.ok else "failed: ",
                 "" if out.ok else out.error)
        self.outcomes.append(out)
        return out

    def resolve_pending(self) -> None:
        """Finish moves the engine left pending (its journal on the source says how) once both nodes
        answer again: until then the process stays stopped on the source, never runs twice."""
        from omview.core.migration import resolve
        from omview.core.session import AgentError

        for mid, (src, dst) in list(self.pending.items()):
            if not (self.cluster.node(src).up and self.cluster.node(dst).up):
                continue
            try:
                state = resolve(self.cluster, src, mid, wait=5.0).get("state")
            except AgentError as exc:
                log.info("balancer: migration %s not resolved yet: %s", mid, exc)
                continue
            log.info("balancer: migration %s resolved: %s", mid, state)
            del self.pending[mid]

    def _measure(self, r: Any) -> None:
        """Measured dump + transfer speed and the fixed part of a move, smoothed."""
        t = float(r.timings.get("dump", 0.0)) + float(r.timings.get("transfer", 0.0))
        b = int(r.bytes or 0)
        if t <= 0 or b < (1 << 20):
            return
        bps = b / t
        over = max(0.0, float(r.seconds or 0.0) - b / bps)
        h = self.history
        h.bps = bps if h.bps is None else 0.7 * h.bps + 0.3 * bps
        h.overhead = over if h.overhead is None else 0.7 * h.overhead + 0.3 * over

    def _settle(self, rnd: Round, timeout: float = 10.0) -> None:
        """Wait until the moved processes show on their new nodes, so the next round sees them there."""
        done = [o for o in rnd.outcomes if o.ok and o.new_pid]
        if not done:
            return

        def arrived() -> bool:
            return all(self.cluster.process(o.move.target, o.new_pid or 0) is not None for o in done)

        self.cluster.wait_until(arrived, timeout)

    # -- the thread
    @property
    def in_round(self) -> bool:
        """A round is being planned or its moves done (a moved process may be in no table now)."""
        return self._round_lock.locked()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Balancer:
        if self.running:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="omview-balancer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the move in progress (a migration is never cut short by this)."""
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
        self._thread = None

    def _loop(self) -> None:
        # let the statistics see a sample or two first
        if self._stop.wait(min(self.interval, max(self.policy.min_seen, 1.0))):
            return
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("balancer: round failed")
            if self._stop.wait(self.interval):
                return


def moves_per_process(outcomes: Iterable[MoveOutcome]) -> dict[str, int]:
    out: dict[str, int] = {}
    for o in outcomes:
        if o.ok:
            out[o.move.key] = out.get(o.move.key, 0) + 1
    return out


__all__ = ["Balancer", "DecayStats", "History", "Move", "NodeInfo", "Plan", "Policy", "ProcView", "Round", "Sent",
           "Skip", "Snapshot", "build_snapshot", "busy_fraction", "decay", "decay_factor", "plan"]
