"""The cluster's data, as every layer sees it.

These dataclasses are the contract between the agent's JSON, the core, the
GUI models and the history store. Field names match the JSON keys the agent
sends, so `from_dict` is a plain keyword construction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

#: openMosix speed of one standard CPU (a Pentium III at 1 GHz in 2004).
STANDARD_SPEED = 10000
#: openMosix decay defaults (per 1000), HOWTO table 8-2.
DEFAULT_SLOW_DECAY = 975
DEFAULT_FAST_DECAY = 926
DEFAULT_DECAY_INTERVAL = 1


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Keep only keys the dataclass knows, so a newer agent's extra keys never break an older core."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(f.name for f in fields(cls))
    return {k: v for k, v in data.items() if k in names}


_FIELD_NAMES: dict[type, frozenset[str]] = {}


@dataclass
class AdminState:
    """A node's openMosix admin flags (HOWTO Ch. 8), kept persistently by its agent."""

    stay: bool = False  # no automatic migration away from this node
    lstay: bool = False  # this node's own processes stay
    block: bool = False  # accept no guest processes
    quiet: bool = False  # take no part in load balancing
    stopped: bool = False  # mosctl stop: the node takes no part in the cluster
    speed: int | None = None  # admin-set speed; None = measured/derived
    decay_interval: int = DEFAULT_DECAY_INTERVAL
    slow_decay: int = DEFAULT_SLOW_DECAY
    fast_decay: int = DEFAULT_FAST_DECAY

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdminState:
        return cls(**_known(cls, data))

    def flags_text(self) -> str:
        """Short flag string for tables and `omctl status`, e.g. 'stay,block'."""
        names = [n for n in ("stay", "lstay", "block", "quiet", "stopped") if getattr(self, n)]
        return ",".join(names) or "-"


@dataclass
class NodeSample:
    """One sample of a node, as pushed by its agent every interval."""

    time: float = 0.0  # agent's wall clock, seconds since the epoch
    hostname: str = ""
    cpus: int = 1  # usable CPUs: affinity and cgroup quota respected
    speed: int = STANDARD_SPEED  # openMosix speed (admin value or derived)
    load: float = 0.0  # openMosix load, see docs/architecture.md
    runq: float = 0.0  # decayed average of runnable tasks the agent can see
    util: float = 0.0  # CPU utilisation of the node in percent of its usable CPUs
    mem_total: int = 0  # bytes, cgroup limit respected
    mem_used: int = 0
    mem_available: int = 0
    uptime: float = 0.0
    nprocs: int = 0
    backend: str = "linux"  # "linux" or "hpc" (an openMosix kernel's /proc/hpc)
    criu: str = ""  # migration readiness text ("" until probed)
    admin: AdminState = field(default_factory=AdminState)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeSample:
        admin = data.get("admin")
        try:  # the usual case, every second per node: the keys are ours, nothing to filter
            kw = dict(data)
            if isinstance(admin, dict):
                kw["admin"] = AdminState(**admin)
            return cls(**kw)
        except TypeError:  # a newer agent's extra keys
            kw = _known(cls, data)
            if isinstance(admin, dict):
                kw["admin"] = AdminState.from_dict(admin)
            return cls(**kw)


@dataclass
class ProcInfo:
    """One process. Identity is (node, pid, start); `start` is the kernel's start time in clock ticks."""

    pid: int
    start: int  # /proc/PID/stat field 22: never changes for the life of a process
    ppid: int = 0
    user: str = ""
    nice: int = 0
    state: str = ""
    cpu: float = 0.0  # percent of one CPU over the last interval
    rss: int = 0  # bytes
    started: float = 0.0  # seconds since the epoch, for display
    cmd: str = ""
    # openMosix view: where 0 = on its home node, else the id of the node it runs on
    home: int = 0
    where: int = 0
    lock: bool = False
    cantmove: str = ""
    nmigs: int = 0
    job: str = ""  # job id when started through the suite
    mode: str = ""  # job mode (nomig, cpujob, ...)

    @property
    def key(self) -> tuple[int, int]:
        return (self.pid, self.start)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProcInfo:
        try:
            return cls(**data)
        except TypeError:  # a newer agent's extra keys (or a missing pid/start, which fails again)
            return cls(**_known(cls, data))


@dataclass
class NodeState:
    """What the workstation knows of one node: its configuration, its link, its last sample."""

    id: int
    address: str
    name: str = ""
    up: bool = False
    reason: str = "not connected yet"  # why it is down, or "" when up
    sample: NodeSample | None = None
    last_seen: float = 0.0  # monotonic time of the last sample
    procs: dict[tuple[int, int], ProcInfo] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name or (self.sample.hostname if self.sample else "") or self.address
