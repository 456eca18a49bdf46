"""omctl: mosctl, migrate and mps for today's clusters, scriptable.

Exit codes: 0 done, 1 failed (a node down, a refusal), 2 usage. Human output
is aligned columns; `--json` output is stable and documented in docs/omctl.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from omview.core.config import ClusterConfig, ConfigError, load_cluster, parse_node_ref
from omview.core.report import human_bytes, node_json, status_result, table
from omview.quickctl import DEFAULT_TIMEOUT

if TYPE_CHECKING:
    from omview.core.cluster import Cluster, ClusterLike
    from omview.core.model import NodeState

# Commands through a running session hub import no SSH machinery (omview.core.session, transport,
# the I/O loop, thread pools): `omctl status` is mostly Python's start-up and imports, so what is
# only needed by direct connections, migrations or jobs is imported where it is used.

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2

#: mosctl's flag commands → the admin field and value they set
FLAG_COMMANDS: dict[str, tuple[str, bool]] = {
    "stay": ("stay", True),
    "nostay": ("stay", False),
    "lstay": ("lstay", True),
    "nolstay": ("lstay", False),
    "block": ("block", True),
    "noblock": ("block", False),
    "quiet": ("quiet", True),
    "noquiet": ("quiet", False),
    "stop": ("stopped", True),
    "start": ("stopped", False),
}
QUERY_COMMANDS = ("getload", "getspeed", "getmem", "getfree", "getutil", "isup")
SIGNAL_COMMANDS = {"kill": "KILL", "stop": "STOP", "cont": "CONT"}


class UsageError(Exception):
    pass


class Failure(Exception):
    pass


# ---------------------------------------------------------------- formatting (pure)


def ps_rows(procs: Sequence[tuple[int, Any]]) -> str:
    rows = [
        [n, p.pid, p.home or n, p.where, p.nmigs, p.mode or "-", p.user, p.nice, p.state, f"{p.cpu:.1f}",
         human_bytes(p.rss), p.cmd[:200]]
        for n, p in sorted(procs, key=lambda np: (np[0], np[1].pid))
    ]
    return table(rows, ["NODE", "PID", "HOME", "WHERE", "NMIGS", "MODE", "USER", "NI", "S", "%CPU", "RSS",
                        "COMMAND"])


def migration_line(r: Any) -> str:
    """One line for a MigrationResult (pure)."""
    src = f"{r.source}:{r.pid}"
    if r.ok:
        job = f"job {r.job}, " if r.job else ""
        return (f"{src} -> {r.target}:{r.new_pid} ({job}nmigs {r.nmigs}, frozen {r.frozen:.2f} s, "
                f"{human_bytes(r.bytes)} by {r.transfer}, {r.seconds:.2f} s)")
    if r.refused:
        return f"{src}: cannot move: {r.error}"
    what = "cancelled" if r.cancelled else "failed"
    where = f"stays on node {r.source}" if not r.pending else "left stopped on the source until both nodes answer"
    return f"{src}: migration {what} in {r.phase}: {r.error} ({where})"


# ---------------------------------------------------------------- commands


def _connect(config: ClusterConfig, timeout: float, only: int | None = None) -> ClusterLike:
    # the session hub when one runs (no SSH handshake), else our own sessions; OMVIEW_HUB=0/1 forces
    from omview.core.cluster import open_cluster

    cluster = open_cluster(config, start_hub=False, client="omctl")
    if only is not None:
        config.node(only)  # unknown id → ConfigError before waiting
        cluster.wait_until(lambda: _settled(cluster, only), timeout)
    else:
        cluster.wait_ready(timeout)
    return cluster


def status_via_hub(config: ClusterConfig, cluster_arg: str | None, as_json: bool, timeout: float) -> int | None:
    """`omctl status` through a running session hub, which renders the table itself; None when no
    hub answers so (none runs, OMVIEW_HUB=0, another user's, an older hub): then the usual way.
    The lookup is recorded, so the next call finds the hub without this parse (omview.quickctl)."""
    from omview import quickctl
    from omview.core.hubpaths import HubPaths
    from omview.core.rundir import HubError, hub_forbidden

    if hub_forbidden():
        return None
    try:
        paths = HubPaths.for_config(config)
    except HubError:
        return None
    quickctl.remember(cluster_arg, config.consulted, paths.key, config.source, run=str(paths.socket.parent))
    result = quickctl.ask_status(str(paths.socket), timeout)
    return None if result is None else quickctl.print_status(result, config.source, as_json)


def _settled(cluster: Cluster, node_id: int) -> bool:
    st = cluster.node(node_id)
    return st.up or st.reason != "not connected yet"


def _need_up(cluster: Cluster, node_id: int) -> NodeState:
    st = cluster.node(node_id)
    if not st.up or st.sample is None:
        raise Failure(f"node {node_id} ({st.address}) is down: {st.reason}")
    return st


def cmd_status(cluster: Cluster, args: argparse.Namespace) -> int:
    from omview.quickctl import print_status

    return print_status(status_result(cluster.nodes()), cluster.config.source, args.json)


def cmd_node_status(cluster: Cluster, node_id: int, as_json: bool) -> int:
    st = cluster.node(node_id)
    if as_json:
        print(json.dumps(node_json(st), indent=1))
        return EXIT_OK if st.up else EXIT_FAIL
    if not st.up or st.sample is None:
        print(f"node {node_id} ({st.address}): DOWN: {st.reason}")
        return EXIT_FAIL
    s = st.sample
    a = s.admin
    print(
        f"node {node_id} ({st.label}, {st.address}): up\n"
        f"  load {s.load:.0f}  speed {s.speed}  cpus {s.cpus}  util {s.util:.0f}%\n"
        f"  memory {human_bytes(s.mem_used)} used of {human_bytes(s.mem_total)}, "
        f"{human_bytes(s.mem_available)} available\n"
        f"  stay {_yn(a.stay)}  lstay {_yn(a.lstay)}  block {_yn(a.block)}  quiet {_yn(a.quiet)}  "
        f"stopped {_yn(a.stopped)}\n"
        f"  decay interval {a.decay_interval}  slow {a.slow_decay}  fast {a.fast_decay}\n"
        f"  backend {s.backend}" + (f"  migration: {s.criu}" if s.criu else "")
    )
    return EXIT_OK


def _yn(b: bool) -> str:
    return "yes" if b else "no"


def cmd_ps(cluster: Cluster, args: argparse.Namespace) -> int:
    if args.node is not None:
        _need_up(cluster, args.node)
    procs = cluster.processes(args.node)
    if args.json:
        out = [dict(p.to_dict(), node=n) for n, p in procs]
        print(json.dumps({"processes": out}, indent=1))
    else:
        print(ps_rows(procs))
    down = [n for n in cluster.nodes() if not n.up and (args.node is None or n.id == args.node)]
    for n in down:
        print(f"omctl: node {n.id} is down, its processes are not listed: {n.reason}", file=sys.stderr)
    return EXIT_FAIL if down else EXIT_OK


def cmd_query(cluster: Cluster, what: str, node_id: int) -> int:
    st = cluster.node(node_id)
    if what == "isup":
        print("yes" if st.up else "no")
        return EXIT_OK if st.up else EXIT_FAIL
    s = _need_up(cluster, node_id).sample
    assert s is not None
    value = {
        "getload": f"{s.load:.0f}",
        "getspeed": str(s.speed),
        "getmem": str(s.mem_available),
        "getfree": str(max(0, s.mem_total - s.mem_used)),
        "getutil": f"{s.util:.0f}%",
    }[what]
    print(value)
    return EXIT_OK


def cmd_admin(cluster: Cluster, node_id: int, fields: dict[str, Any]) -> int:
    _need_up(cluster, node_id)
    state = cluster.set_admin(node_id, **fields)
    print(f"node {node_id}: " + ", ".join(f"{k} {getattr(state, k)}" for k in fields))
    return EXIT_OK


def cmd_signal(cluster: Cluster, ref: str, sig: str) -> int:
    node_id, pid = parse_node_ref(ref)
    _need_up(cluster, node_id)
    cluster.signal(node_id, pid, sig)
    print(f"{node_id}:{pid}: sent {sig}")
    return EXIT_OK


def cmd_renice(cluster: Cluster, ref: str, nice: int) -> int:
    node_id, pid = parse_node_ref(ref)
    _need_up(cluster, node_id)
    cluster.renice(node_id, pid, nice)
    print(f"{node_id}:{pid}: nice {nice}")
    return EXIT_OK


def cmd_testbed(args: argparse.Namespace) -> int:
    from omview.core import testbed

    if args.action == "up":
        if args.count is None or args.count < 1:
            raise UsageError("testbed up needs a node count, e.g. `omctl testbed up 3`")
        quotas = _float_list(args.cpu_quota, args.count, "--cpu-quota")
        mems = [int(v) for v in _float_list(args.mem_mb, args.count, "--mem-mb")] if args.mem_mb else None
        tb = testbed.up(args.count, name=args.name, subnet=args.subnet, cpu_quota=quotas, mem_mb=mems)
        print(f"testbed {tb.name}: {len(tb.nodes)} nodes up on {tb.subnet}")
        print(f"cluster file: {tb.cluster_file}\nuse: omctl --cluster {tb.cluster_file} status")
        return EXIT_OK
    if args.action == "down":
        testbed.down(args.name)
        print(f"testbed {args.name}: removed")
        return EXIT_OK
    tb = testbed.status(args.name)
    if tb is None:
        print(f"testbed {args.name}: not running")
        return EXIT_FAIL
    health = testbed.check(tb)
    rows = [
        [n.id, n.name, n.address, n.init_pid, n.cpu_quota or "-", n.mem_mb or "-",
         _health_text(health.get(n.id))]
        for n in tb.nodes
    ]
    print(f"testbed {tb.name} on {tb.subnet}, cluster file {tb.cluster_file}")
    print(table(rows, ["ID", "NAME", "ADDRESS", "INIT", "CPU", "MEM MB", "STATE"]))
    return EXIT_OK if all(h.init_alive and h.sshd_ready for h in health.values()) else EXIT_FAIL


def _health_text(h: Any) -> str:
    if h is None or not h.init_alive:
        return "gone (run `omctl testbed down` then `up`)"
    return "ok" if h.sshd_ready else "sshd not answering"


def _float_list(text: str | None, count: int, flag: str) -> list[float] | None:
    if not text:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"{flag} takes numbers separated by commas, e.g. 1,0.5,2; got {text!r}") from None
    if len(values) == 1:
        values = values * count
    if len(values) != count:
        raise UsageError(f"{flag} has {len(values)} values for {count} nodes")
    return values


def _connect_direct(config: ClusterConfig, timeout: float, criu: bool = True) -> Cluster:
    """Sessions in this process (migration needs their SSH connections for the images).

    criu: also wait for every node's migration readiness (choosing `best` needs it; a migration
    to a named node does not: its preflight asks the two agents, which wait for their probe)."""
    from omview.core.cluster import Cluster

    cluster = Cluster(config).start()
    cluster.wait_ready(timeout)
    if criu:
        cluster.wait_until(
            lambda: all(not n.up or (n.sample is not None and n.sample.criu) for n in cluster.nodes()), timeout)
    return cluster


def cmd_run(cluster: Cluster, args: argparse.Namespace) -> int:
    from omview.core import jobs, migration
    from omview.core.session import AgentError

    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise UsageError("run needs a command: omctl run [options] -- CMD ARGS...")
    if args.parallel:
        try:
            first, last = jobs.parse_range(args.parallel)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        nodes = jobs.parallel_nodes(cluster.node_ids(), first, last, args.inverse)
        if not nodes:
            raise UsageError(f"no node of the cluster in {args.parallel}")
    elif args.on is not None:
        cluster.config.node(args.on)
        nodes = [args.on]
    elif args.best:
        best = migration.pick_best(cluster.nodes(), source=0)
        if best is None:
            raise Failure("no eligible node to start on (all down, blocked, quiet or stopped)")
        nodes = [best]
    else:
        nodes = [jobs.home_node(cluster)]
    started = jobs.start_jobs(cluster, nodes, cmd, args.mode or "")
    ok = [j for j in started if isinstance(j, jobs.StartedJob)]
    if args.json:
        print(json.dumps({"jobs": [vars(j) for j in ok],
                          "errors": [{"node": e.node_id, "error": str(e)} for e in started
                                     if isinstance(e, AgentError)]}, indent=1))
    for item in started:
        if isinstance(item, AgentError):
            print(f"omctl: node {item.node_id}: {item}", file=sys.stderr)
        elif not args.json:
            print(f"{item.ref} job {item.job} out {item.out}")
    return EXIT_OK if len(ok) == len(started) else EXIT_FAIL


def _progress_printer(ref: str) -> Callable[[Any], None]:
    last = [""]

    def show(p: Any) -> None:
        text = f"{ref} -> {p.target}: {p.phase}"
        if p.total:
            text += f" {human_bytes(p.bytes)} / {human_bytes(p.total)}"
        if text != last[0]:
            last[0] = text
            print(text, file=sys.stderr, flush=True)

    return show


def cmd_migrate(cluster: Cluster, args: argparse.Namespace) -> int:
    from omview.core import migration

    node_id, pid = parse_node_ref(args.ref)
    try:
        target = migration.parse_target(args.target)
    except migration.MigrationError as exc:
        raise UsageError(str(exc)) from None
    if isinstance(target, int):
        cluster.config.node(target)
    show = None if args.quiet else _progress_printer(args.ref)
    r = migration.migrate(cluster, node_id, pid, target, live=args.live, stream=not args.files, progress=show)
    if args.json:
        print(json.dumps(r.to_dict(), indent=1))
    else:
        print(migration_line(r))
    return EXIT_OK if r.ok else EXIT_FAIL


def cmd_expel_bring(cluster: Cluster, args: argparse.Namespace) -> int:
    from omview.core import migration

    _need_up(cluster, args.node)
    fn = migration.expel if args.command == "expel" else migration.bring
    results = fn(cluster, args.node)
    if args.json:
        print(json.dumps({"migrations": [r.to_dict() for r in results]}, indent=1))
    else:
        for r in results:
            print(migration_line(r))
        if not results:
            what = "guests on" if args.command == "expel" else "processes away from"
            print(f"node {args.node}: no {what} it")
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAIL


def cmd_lock(cluster: Cluster, args: argparse.Namespace) -> int:
    node_id, pid = parse_node_ref(args.ref)
    proc = cluster.resolve(node_id, pid)
    cluster.call(node_id, "lock", {"pid": pid, "start": proc.start, "lock": args.command == "lock"})
    print(f"{node_id}:{pid}: {'locked' if args.command == 'lock' else 'unlocked'}")
    return EXIT_OK


def cmd_balance(args: argparse.Namespace, config: ClusterConfig) -> int:
    """omctl balance: rounds of the automatic load balancer (omview.core.balancer)."""
    import signal
    import threading
    import time

    from omview.core.balancer import Balancer, Policy, Round

    if args.interval <= 0 or args.warmup < 0:
        raise UsageError("--interval must be > 0 and --warmup >= 0 seconds")
    cluster = _connect_direct(config, args.timeout)
    stop = threading.Event()
    failed = [0]

    def show(rnd: Round) -> None:
        if args.json:
            print(json.dumps({"plan": rnd.plan.to_dict(), "outcomes": [
                {"ref": o.move.ref, "target": o.move.target, "ok": o.ok, "error": o.error, "new_pid": o.new_pid,
                 "skipped": o.skipped, "mid": o.mid} for o in rnd.outcomes]}), flush=True)
            return
        if args.dry_run or args.once or rnd.plan.moves:
            print(time.strftime("%H:%M:%S ") + (
                "plan (dry run, nothing moved):" if args.dry_run else "plan:"), flush=True)
            print(rnd.plan.text(all_procs=not args.brief), flush=True)
        for o in rnd.outcomes:
            what = f"-> {o.move.target}:{o.new_pid}" if o.ok else ("skipped" if o.skipped else "failed")
            print(f"{o.move.ref} {what}" + ("" if o.ok else f": {o.error}"), flush=True)
            failed[0] += 0 if o.ok else 1

    b = Balancer(cluster, Policy(), interval=args.interval, dry_run=args.dry_run, on_round=show)
    try:
        if args.daemon:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
        if stop.wait(args.warmup):  # let the decayed statistics see a few samples
            return EXIT_OK
        while True:
            b.run_once()
            if not args.daemon or stop.wait(args.interval):
                break
    finally:
        b.close()
        cluster.stop()
    return EXIT_OK if not failed[0] else EXIT_FAIL


JOB_COMMANDS = ("run", "migrate", "expel", "bring", "lock", "unlock")


def _dispatch_jobs(args: argparse.Namespace, config: ClusterConfig) -> int:
    action: Callable[[Cluster, argparse.Namespace], int] = {
        "run": cmd_run, "migrate": cmd_migrate, "expel": cmd_expel_bring, "bring": cmd_expel_bring,
        "lock": cmd_lock, "unlock": cmd_lock,
    }[args.command]
    if args.command in ("migrate", "lock", "unlock"):
        try:
            parse_node_ref(args.ref)
        except ConfigError as exc:
            raise UsageError(exc.message) from None
    needs_criu = getattr(args, "best", False) or getattr(args, "target", None) == "best"
    cluster = _connect_direct(config, args.timeout, criu=needs_criu)
    try:
        return action(cluster, args)
    finally:
        cluster.stop()


# ---------------------------------------------------------------- parser


class _JobModes:
    """omview.core.jobs.JOB_MODES for argparse's `choices`, looked up only when --mode is given or
    shown: omview.core.jobs imports the SSH session code, which `omctl status` must not pay for."""

    @staticmethod
    def _modes() -> Sequence[str]:
        from omview.core.jobs import JOB_MODES

        return JOB_MODES

    def __contains__(self, value: object) -> bool:
        return value in self._modes()

    def __iter__(self) -> Iterator[str]:
        return iter(self._modes())


class _Unused:
    """The parser of a command this run does not have: takes its arguments and keeps nothing."""

    def add_argument(self, *args: Any, **kw: Any) -> None:
        return None

    def add_mutually_exclusive_group(self, *args: Any, **kw: Any) -> _Unused:
        return self

    def add_argument_group(self, *args: Any, **kw: Any) -> _Unused:
        return self


class _OneCommand:
    """`add_subparsers()` that builds the parser of one command only: argparse makes some thirty
    parsers otherwise, a good part of a one-shot `omctl status`."""

    def __init__(self, sub: Any, only: str) -> None:
        self.sub = sub
        self.only = only
        self.found = False

    def add_parser(self, name: str, **kw: Any) -> Any:
        if name != self.only:
            return _Unused()
        self.found = True
        return self.sub.add_parser(name, **kw)


def _command_of(argv: Sequence[str]) -> str | None:
    """The command word of `argv` (None when there is none, or help is asked for before it)."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--cluster", "--timeout"):
            skip = True
        elif arg in ("-h", "--help"):
            return None
        elif not arg.startswith("-"):
            return arg
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or (`only`) one with the global options and that one command."""
    p = argparse.ArgumentParser(prog="omctl", description="Watch and steer an omview cluster from the shell.")
    p.add_argument("--cluster", metavar="FILE", help="cluster file (.toml) or openMosix map file")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help=f"seconds to wait for nodes (default {DEFAULT_TIMEOUT:g})")
    p.add_argument("-v", "--verbose", action="store_true", help="log connections to stderr")
    sub: Any = p.add_subparsers(dest="command", metavar="COMMAND")
    if only is not None:
        sub = _OneCommand(sub, only)

    s = sub.add_parser("status", help="cluster overview, or `status ID` for one node (mosctl status)")
    s.add_argument("node", nargs="?", type=int)
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("ps", help="processes of the cluster or of one node")
    s.add_argument("--node", type=int)
    s.add_argument("--json", action="store_true")

    for name in FLAG_COMMANDS:
        if name == "stop":
            s = sub.add_parser("stop", help="stop NODE (mosctl stop) or stop ID:PID (SIGSTOP)")
            s.add_argument("target")
            continue
        s = sub.add_parser(name, help=f"mosctl {name} on node ID")
        s.add_argument("node", type=int)
    for name in QUERY_COMMANDS:
        s = sub.add_parser(name, help=f"mosctl {name} ID")
        s.add_argument("node", type=int)
    s = sub.add_parser("setspeed", help="set a node's openMosix speed (10000 = one standard CPU)")
    s.add_argument("node", type=int)
    s.add_argument("speed", type=int)
    s = sub.add_parser("setdecay", help="set a node's decay interval and slow/fast factors (per 1000)")
    s.add_argument("node", type=int)
    s.add_argument("interval", type=int)
    s.add_argument("slow", type=int, nargs="?", default=None)
    s.add_argument("fast", type=int, nargs="?", default=None)
    for name in ("kill", "cont"):
        s = sub.add_parser(name, help=f"send SIG{SIGNAL_COMMANDS[name]} to ID:PID")
        s.add_argument("target")
    s = sub.add_parser("renice", help="set the nice value of ID:PID")
    s.add_argument("target")
    s.add_argument("nice", type=int)

    s = sub.add_parser("hub", help="run the session hub for the cluster (apps start it on demand)")
    s.add_argument("--foreground", action="store_true", help="stay attached, log to stderr")
    s.add_argument("--idle", type=float, help="seconds to stay after the last app leaves (default 60, 0 = forever)")

    s = sub.add_parser("run", help="start a job that can migrate (mosrun): omctl run [--on ID] -- CMD ARGS...")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--on", type=int, metavar="ID", help="start on node ID")
    where.add_argument("--home", action="store_true", help="start on the home node (default)")
    where.add_argument("--best", action="store_true", help="start on the least loaded node per capacity")
    where.add_argument("--parallel", metavar="FIRST-LAST", help="one job on each node in the range")
    s.add_argument("--inverse", action="store_true", help="with --parallel: highest node first")
    s.add_argument("--mode", choices=_JobModes(), metavar="MODE",
                   help="mosrun mode: %(choices)s; nomig jobs never migrate")
    s.add_argument("--json", action="store_true")
    s.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    s = sub.add_parser("migrate", help="move ID:PID to node TARGET, home or best (CRIU)")
    s.add_argument("ref", metavar="ID:PID")
    s.add_argument("target", metavar="TARGET", help="a node id, home or best")
    s.add_argument("--live", action="store_true", help="live migration (refused where the kernel cannot)")
    s.add_argument("--files", action="store_true", help="dump to files, then copy (no page-server streaming)")
    s.add_argument("--quiet", action="store_true", help="no progress on stderr")
    s.add_argument("--json", action="store_true")
    for name, text in (("expel", "send the guest processes on node ID back to their homes"),
                       ("bring", "bring the processes of node ID home from other nodes")):
        s = sub.add_parser(name, help=f"mosctl {name}: {text}")
        s.add_argument("node", type=int)
        s.add_argument("--json", action="store_true")
    for name in ("lock", "unlock"):
        s = sub.add_parser(name, help=f"{name} the job ID:PID to its node (openMosix /proc/PID/lock)")
        s.add_argument("ref", metavar="ID:PID")

    s = sub.add_parser("balance", help="automatic load balancing: plan and move CPU-bound jobs (openMosix)")
    how = s.add_mutually_exclusive_group()
    how.add_argument("--once", action="store_true", help="one round, then exit (default)")
    how.add_argument("--daemon", action="store_true", help="a round every --interval s until interrupted")
    s.add_argument("--dry-run", action="store_true", help="print the plan with every reason, move nothing")
    s.add_argument("--interval", type=float, default=5.0, metavar="S", help="seconds between rounds (5)")
    s.add_argument("--warmup", type=float, default=4.0, metavar="S",
                   help="seconds of samples before the first round (4)")
    s.add_argument("--brief", action="store_true", help="leave idle processes out of the printed plan")
    s.add_argument("--json", action="store_true", help="one JSON document per round")

    s = sub.add_parser("testbed", help="the namespace test cluster on this machine (root)")
    s.add_argument("action", choices=["up", "down", "status"])
    s.add_argument("count", nargs="?", type=int)
    s.add_argument("--name", default="omtb")
    s.add_argument("--subnet")
    s.add_argument("--cpu-quota", help="CPUs per node, e.g. 1,0.5,2 (one value = all nodes)")
    s.add_argument("--mem-mb", help="memory limit per node in MiB, e.g. 512,1024,2048")
    if isinstance(sub, _OneCommand) and not sub.found:
        return build_parser()  # not a command: the whole parser says so and lists them
    return p


def run(argv: Sequence[str]) -> int:
    parser = build_parser(_command_of(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_OK if exc.code == 0 else EXIT_USAGE
    if args.verbose:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        if args.command == "testbed":
            return cmd_testbed(args)
        config = load_cluster(args.cluster)
        if args.command == "hub":
            from omview.core.hub import run_hub

            code = run_hub(config, foreground=args.foreground, idle_timeout=args.idle, verbose=args.verbose)
            return EXIT_OK if code == 0 else EXIT_FAIL
        if args.command == "status" and not args.node:
            code = status_via_hub(config, args.cluster, args.json, args.timeout)
            if code is not None:
                return code
        return _dispatch(args, config)
    except UsageError as exc:
        print(f"omctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        print(f"omctl: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except Failure as exc:
        print(f"omctl: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except Exception as exc:  # a testbed or OS failure: one line, not a traceback
        if _is_agent_error(exc):
            print(f"omctl: {exc}", file=sys.stderr)
            return EXIT_FAIL
        if args.verbose:
            raise
        print(f"omctl: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAIL


def _is_agent_error(exc: BaseException) -> bool:
    """An AgentError can only exist once omview.core.session was imported: no import for the check."""
    session = sys.modules.get("omview.core.session")
    return session is not None and isinstance(exc, session.AgentError)


def _dispatch(args: argparse.Namespace, config: ClusterConfig) -> int:
    cmd = args.command
    if cmd in JOB_COMMANDS:
        return _dispatch_jobs(args, config)
    if cmd == "balance":
        return cmd_balance(args, config)
    node_arg: int | None = getattr(args, "node", None) if cmd != "ps" else args.node
    target = getattr(args, "target", None)
    if target is not None and (":" in target or cmd != "stop"):
        try:
            node_arg = parse_node_ref(target)[0]
        except ConfigError as exc:
            raise UsageError(exc.message) from None
    elif cmd == "stop":
        try:
            node_arg = int(target)
        except ValueError:
            raise UsageError(f"stop takes a node ID or ID:PID, got {target!r}") from None
    action: Callable[[Cluster], int]
    if cmd == "status":
        action = (lambda c: cmd_node_status(c, args.node, args.json)) if args.node else (lambda c: cmd_status(c, args))
    elif cmd == "ps":
        action = lambda c: cmd_ps(c, args)  # noqa: E731
    elif cmd in QUERY_COMMANDS:
        action = lambda c: cmd_query(c, cmd, args.node)  # noqa: E731
    elif cmd == "stop" and target is not None and ":" in target:
        action = lambda c: cmd_signal(c, target, "STOP")  # noqa: E731
    elif cmd in FLAG_COMMANDS:
        field, value = FLAG_COMMANDS[cmd]
        action = lambda c: cmd_admin(c, int(node_arg or 0), {field: value})  # noqa: E731
    elif cmd == "setspeed":
        action = lambda c: cmd_admin(c, args.node, {"speed": args.speed})  # noqa: E731
    elif cmd == "setdecay":
        fields: dict[str, Any] = {"decay_interval": args.interval}
        if args.slow is not None:
            fields["slow_decay"] = args.slow
        if args.fast is not None:
            fields["fast_decay"] = args.fast
        action = lambda c: cmd_admin(c, args.node, fields)  # noqa: E731
    elif cmd in SIGNAL_COMMANDS:
        action = lambda c: cmd_signal(c, target, SIGNAL_COMMANDS[cmd])  # noqa: E731
    elif cmd == "renice":
        action = lambda c: cmd_renice(c, target, args.nice)  # noqa: E731
    else:
        raise UsageError(f"unknown command {cmd}")
    cluster = _connect(config, args.timeout, node_arg if cmd != "status" or args.node else None)
    try:
        return action(cluster)
    finally:
        cluster.stop()


def main(argv: Sequence[str] | None = None) -> int:
    return run(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
