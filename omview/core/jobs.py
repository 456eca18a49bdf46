"""Jobs: commands started through the suite so that they can migrate (mosrun's modes).

A job runs as the init of its own PID namespace and as a session leader on its node (the
agent's `run` op), with stdout/stderr in a 0700 folder under the agent's state dir. Its
record (home, mode, nmigs, where) travels with it when it migrates. Modes are mosrun's:
`nomig` is never migrated; cpujob, iojob, nodecay, slowdecay and fastdecay are kept for the
balancer. Qt-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from omview.core.session import AgentError

if TYPE_CHECKING:
    from omview.core.cluster import Cluster

JOB_MODES = ("nomig", "cpujob", "iojob", "nodecay", "slowdecay", "fastdecay")


@dataclass
class StartedJob:
    node: int
    pid: int
    start: int
    job: str
    out: str
    err: str

    @property
    def ref(self) -> str:
        return f"{self.node}:{self.pid}"


def parse_range(text: str) -> tuple[int, int]:
    """"FIRST-LAST" -> (first, last), as the parallel host chooser took them."""
    first, sep, last = text.partition("-")
    try:
        a, b = int(first), int(last)
    except ValueError:
        raise ValueError(f"a node range is FIRST-LAST, e.g. 1-4, not {text!r}") from None
    if not sep or a > b:
        raise ValueError(f"a node range is FIRST-LAST with FIRST <= LAST, not {text!r}")
    return a, b


def parallel_nodes(ids: Sequence[int], first: int, last: int, inverse: bool = False) -> list[int]:
    """The cluster's node ids within first..last, ascending or (inverse) descending."""
    chosen = sorted(i for i in ids if first <= i <= last)
    return chosen[::-1] if inverse else chosen


def home_node(cluster: Cluster) -> int:
    """Where `omctl run --home` starts a job: the local node if there is one, else the lowest id."""
    local = [n.id for n in cluster.config.nodes if n.is_local]
    return local[0] if local else min(cluster.node_ids())


def run_job(cluster: Cluster, node_id: int, cmd: list[str], mode: str = "", *, cwd: str | None = None,
            env: dict[str, str] | None = None, timeout: float = 30.0) -> dict[str, Any]:
    """Start `cmd` as a job on node_id; returns the agent's answer (job, pid, start, out, err)."""
    if mode and mode not in JOB_MODES:
        raise ValueError(f"mode must be one of {', '.join(JOB_MODES)}, not {mode!r}")
    if not cmd:
        raise ValueError("no command to run")
    args: dict[str, Any] = {"cmd": list(cmd), "mode": mode}
    if cwd:
        args["cwd"] = cwd
    if env:
        args["env"] = env
    res: dict[str, Any] = cluster.call(node_id, "run", args, timeout=timeout)
    return res


def start_jobs(cluster: Cluster, nodes: Sequence[int], cmd: list[str], mode: str = "",
               **kw: Any) -> list[StartedJob | AgentError]:
    """One job per node in order; a node that refuses yields its AgentError in place."""
    out: list[StartedJob | AgentError] = []
    for n in nodes:
        try:
            r = run_job(cluster, n, cmd, mode, **kw)
            out.append(StartedJob(n, int(r["pid"]), int(r["start"]), str(r["job"]), str(r["out"]), str(r["err"])))
        except AgentError as exc:
            out.append(exc)
    return out
