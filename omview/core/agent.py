"""The node agent: one self-contained module shipped as source to every node.

The workstation starts `python3 -u -c BOOTSTRAP` on the node and writes this file's source to its
stdin (docs/protocol.md). So this module may use only the standard library and psutil, must run on
Python >= 3.9, and must not import omview. Importing it on the workstation only defines things
(`BOOTSTRAP`, `agent_source()` and the helpers the tests use); the agent runs when the module is
executed as `__main__` (the bootstrap exec's it in the interpreter's `__main__` globals).

Threads: the main thread reads requests from stdin, one sampler thread pushes samples; both write
to stdout under one lock, one JSON object per flushed line.

Why /proc is read by hand: psutil builds a Process object and opens several files per process,
~20-40x the CPU of what is done here (bench/agent_cpu.py). The sampler keeps /proc/PID/stat and
/proc/PID/schedstat open and re-reads them with pread (one syscall instead of open/read/close);
it asks the cheaper schedstat whether a single-threaded process ran at all and reads stat only
when it did; it skips parsing when the bytes are unchanged; processes asleep for DORMANT_AFTER
samples are probed every DORMANT_EVERY samples (their deaths are watched through pidfds); new PIDs
are tried one by one, and /proc listed only when many were handed out; the stat files of threads
are kept open for the run-queue count.
Goal: < 0.5 % of one core at 1 Hz with 1000 processes on the node.
"""

from __future__ import annotations

import json
import math
import os
import platform
import pwd
import select
import signal
import socket
import sys
import tempfile
import threading
import time
from typing import Any

PROTOCOL_VERSION = 1

#: The name the agent's code is compiled under: it shows in the agent's command line, which is how
#: the balancer tells our agent from the node's work (same value as omview.core.balancer.AGENT_TAG).
AGENT_NAME = "omview-agent"
#: The `-c` program the workstation runs with `python3 -u -c` (docs/protocol.md, "Bootstrap").
BOOTSTRAP = (
    'import sys;n=int(sys.stdin.buffer.readline());'
    f'exec(compile(sys.stdin.buffer.read(n),"{AGENT_NAME}","exec"))'
)

#: openMosix speed of one standard CPU (same value as omview.core.model.STANDARD_SPEED).
STANDARD_SPEED = 10000

#: Time constant (seconds) of the decayed run-queue average. The kernel's 1-minute loadavg uses
#: 60 s; 5 s lets the GUI show a new busy process within a few seconds while still smoothing the
#: noise of counting runnable tasks once per interval (63 % of a step after 5 s, 95 % after 15 s).
RUNQ_TAU = 5.0

#: Mirrors omview.core.model.AdminState (a test keeps the two equal).
ADMIN_DEFAULTS: dict[str, Any] = {
    "stay": False,
    "lstay": False,
    "block": False,
    "quiet": False,
    "stopped": False,
    "speed": None,
    "decay_interval": 1,
    "slow_decay": 975,
    "fast_decay": 926,
}
_ADMIN_BOOLS = ("stay", "lstay", "block", "quiet", "stopped")
#: key -> (min, max) for the integer admin values.
_ADMIN_INTS = {"speed": (1, 1_000_000), "decay_interval": (1, 3600), "slow_decay": (0, 1000),
               "fast_decay": (0, 1000)}
#: AdminState key -> file in /proc/hpc/admin (HOWTO table 8-2). `stopped` has no file there.
HPC_ADMIN_FILES = {
    "stay": "stay", "lstay": "lstay", "block": "block", "quiet": "quiet", "speed": "speed",
    "decay_interval": "decay-interval", "slow_decay": "slow-decay", "fast_decay": "fast-decay",
}

SIGNALS = {
    "TERM": signal.SIGTERM, "KILL": signal.SIGKILL, "STOP": signal.SIGSTOP, "CONT": signal.SIGCONT,
    "HUP": signal.SIGHUP, "INT": signal.SIGINT, "USR1": signal.SIGUSR1, "USR2": signal.SIGUSR2,
}

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
#: An rss change is reported when it exceeds this many bytes or RSS_REL of the last value sent.
RSS_ABS = 64 * 1024
RSS_REL = 0.01
#: Without a new PID (see /proc/loadavg) /proc is still listed every this many samples.
LIST_EVERY = 10
#: Threads whose stat files a multi-threaded process may keep open (more: opened per read).
TASK_FDS_MAX = 64
#: When at most this many PIDs (or a quarter of the table) were handed out since the last sample,
#: each is tried directly instead of listing /proc: on a busy node PIDs move every second, and
#: listing 1000s of entries then cost a third of the sample; trying a PID already gone is one
#: failed open, a thread's TID one read.
PROBE_NEW_MAX = 64
#: Every process's stat is re-read once per this many samples even if it did not run, for the
#: fields others can change (nice, ppid, rss); the agent's own renice re-reads at once.
REFRESH_EVERY = 30
#: A process that has not run for DORMANT_AFTER samples is probed only every DORMANT_EVERY
#: samples. Most of a node's processes sleep for hours; probing them every second was half of
#: the agent's CPU. The price: a long sleeper that wakes is seen up to DORMANT_EVERY - 1 samples
#: late (its CPU time is not lost: cpu is averaged over the time since its last read). Its death
#: is never late: a process turning dormant puts its pidfd in one epoll set, asked once per sample,
#: and one that exited is read in that sample (no pidfd, e.g. Linux < 5.3: no dormancy). Processes
#: that never sleep that long (most short-lived ones) never cost a pidfd.
DORMANT_AFTER = 10
DORMANT_EVERY = 3
#: A process's owner and command line are read again when its age (or the time since its last
#: exec) has grown fourfold, at least IDENT_FIRST s and at most IDENT_MAX_GAP s later (spread by PID), and
#: at once when its program name changes (exec). A forked server sets its title just after it
#: starts (sshd's "sshd: user@notty", postgres, nginx workers) and drops root for its user, without
#: a new name: an agent that first looked in between kept the old line for good. A process
#: re-executing its own program keeps its name too. Old processes cost one look per 5 minutes
#: (1000 sleepers born in the same second: +0.03-0.08 % of a core while they are young).
IDENT_FIRST = 1.0
IDENT_MAX_GAP = 300.0

_FATAL_PSUTIL = {"type": "fatal", "reason": "psutil is missing on the node",
                 "hint": "install python3-psutil (Debian/Ubuntu) or pip install psutil"}


def agent_source() -> bytes:
    """This module's source, as the workstation ships it (works from a wheel, not only a checkout)."""
    from importlib import resources

    return resources.files("omview.core").joinpath("agent.py").read_bytes()


class Fail(Exception):
    """A request that cannot be served; `code` is one of the protocol's error codes."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------------
# small readers


def _read(path: str, limit: int = 65536) -> bytes | None:
    """Bytes of a small file, or None when it is gone or unreadable (processes vanish any time)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)


def _read_text(path: str) -> str | None:
    data = _read(path)
    return None if data is None else data.decode("utf-8", "replace").strip()


def _read_int(path: str) -> int | None:
    text = _read_text(path)
    if text is None:
        return None
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


def parse_stat(data: bytes) -> tuple[bytes, list[bytes]]:
    """Split /proc/PID/stat into (comm, fields from field 3 on).

    comm may hold spaces and parentheses, so the fields start after the *last* ')'.
    Field N of proc(5) is at index N - 3 of the list.
    """
    right = data.rindex(b")")
    return data[data.index(b"(") + 1:right], data[right + 2:].split()


def stat_start(pid: int, proc: str = "/proc") -> int | None:
    """Field 22 (start time in clock ticks since boot) of a live process, None if it is gone."""
    data = _read(f"{proc}/{pid}/stat", 4096)
    if not data:
        return None
    try:
        return int(parse_stat(data)[1][19])
    except (ValueError, IndexError):
        return None


# ---------------------------------------------------------------------------------------------
# cgroups


def _unescape_mount(path: str) -> str:
    """mountinfo escapes blanks and backslashes as \\ooo."""
    if "\\" not in path:
        return path
    out, i = [], 0
    while i < len(path):
        if path[i] == "\\" and path[i + 1:i + 4].isdigit() and len(path[i + 1:i + 4]) == 3:
            out.append(chr(int(path[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(path[i])
            i += 1
    return "".join(out)


def cgroup_dirs(proc_self: str = "/proc/self") -> dict[str, list[str]]:
    """Folders of this process's cgroups, leaf first and up to the mount, per kind.

    Kinds: "cpu" and "memory" (cgroup v1 controllers) and "v2" (the unified hierarchy). Found
    through mountinfo, so it works whatever the mount points and inside a cgroup namespace;
    when the leaf folder is not visible (a container that sees only its own cgroup at the mount
    point) the mount point itself is the leaf.
    """
    paths: dict[str, str] = {}
    for line in (_read_text(f"{proc_self}/cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            paths["v2"] = parts[2]
        for ctl in parts[1].split(","):
            if ctl in ("cpu", "memory"):
                paths[ctl] = parts[2]
    result: dict[str, list[str]] = {}
    for line in (_read_text(f"{proc_self}/mountinfo") or "").splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        root, mnt = _unescape_mount(fields[3]), _unescape_mount(fields[4])
        if tail[0] == "cgroup2":
            kinds = ["v2"]
        elif tail[0] == "cgroup":
            kinds = [k for k in ("cpu", "memory") if k in tail[2].split(",")]
        else:
            continue
        for kind in kinds:
            if kind not in paths or kind in result:
                continue
            path = paths[kind]
            rel = path[len(root):] if root != "/" and path.startswith(root) else path
            leaf = os.path.normpath(mnt + "/" + rel.lstrip("/"))
            if not os.path.isdir(leaf) or not leaf.startswith(mnt):
                leaf = mnt
            chain = [leaf]
            while chain[-1] != mnt and len(chain[-1]) > len(mnt):
                chain.append(os.path.dirname(chain[-1]))
            result[kind] = chain
    return result


def cgroup_cpu_quota(dirs: dict[str, list[str]]) -> float | None:
    """Tightest CPU quota (in CPUs) over the hierarchy, v1 and v2 alike; None when unlimited."""
    best: float | None = None
    for d in dirs.get("cpu", []):
        quota, period = _read_int(d + "/cpu.cfs_quota_us"), _read_int(d + "/cpu.cfs_period_us")
        if quota is not None and period and quota > 0:
            best = min(best, quota / period) if best is not None else quota / period
    for d in dirs.get("v2", []):
        text = _read_text(d + "/cpu.max")
        if not text:
            continue
        parts = text.split()
        if len(parts) == 2 and parts[0] != "max":
            try:
                q = int(parts[0]) / int(parts[1])
            except (ValueError, ZeroDivisionError):
                continue
            best = min(best, q) if best is not None else q
    return best


def _inactive_file(stat_text: str | None, key: str) -> int:
    for line in (stat_text or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def cgroup_memory(dirs: dict[str, list[str]]) -> tuple[int, int] | None:
    """(limit, used) of the cgroup with the tightest memory limit, None when unlimited.

    `used` leaves out inactive page cache (the kernel reclaims it first), as `docker stats` does.
    """
    best: tuple[int, int] | None = None
    for d in dirs.get("memory", []):
        limit = _read_int(d + "/memory.limit_in_bytes")
        if limit is None or limit >= 1 << 62:
            continue
        if best is None or limit < best[0]:
            usage = _read_int(d + "/memory.usage_in_bytes") or 0
            inactive = _inactive_file(_read_text(d + "/memory.stat"), "total_inactive_file")
            best = (limit, max(0, usage - inactive))
    for d in dirs.get("v2", []):
        text = _read_text(d + "/memory.max")
        if not text or text == "max":
            continue
        try:
            limit = int(text)
        except ValueError:
            continue
        if best is None or limit < best[0]:
            usage = _read_int(d + "/memory.current") or 0
            inactive = _inactive_file(_read_text(d + "/memory.stat"), "inactive_file")
            best = (limit, max(0, usage - inactive))
    return best


def cpus_and_speed(affinity: int, quota: float | None) -> tuple[int, int]:
    """Usable CPUs and the derived openMosix speed.

    A fractional quota makes fewer, slower CPUs: 0.5 CPU -> 1 CPU at half the standard speed,
    so the balancer sees a container as the slower node it really is.
    """
    if quota is None or quota >= affinity:
        return max(1, affinity), STANDARD_SPEED
    cpus = max(1, min(affinity, math.ceil(quota)))
    return cpus, max(1, round(STANDARD_SPEED * quota / cpus))


# ---------------------------------------------------------------------------------------------
# admin state


def default_state_dir() -> str:
    """Where admin.json lives when `start` names no state_dir (docs/protocol.md)."""
    if os.geteuid() == 0:
        return "/var/lib/omview/agent"
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(base, "omview", "agent")


def validate_admin(args: Any) -> dict[str, Any]:
    """Check set_admin arguments; raise Fail('invalid') naming the first bad one."""
    if not isinstance(args, dict):
        raise Fail("invalid", "set_admin needs an object of AdminState fields")
    out: dict[str, Any] = {}
    for key, value in args.items():
        if key in _ADMIN_BOOLS:
            if not isinstance(value, bool):
                raise Fail("invalid", f"{key} must be true or false")
        elif key in _ADMIN_INTS:
            lo, hi = _ADMIN_INTS[key]
            if value is None and key == "speed":
                pass
            elif isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                extra = " or null" if key == "speed" else ""
                raise Fail("invalid", f"{key} must be an integer from {lo} to {hi}{extra}")
        else:
            raise Fail("invalid", f"unknown admin setting {key!r}")
        out[key] = value
    return out


class AdminStore:
    """The admin state kept in STATE_DIR/admin.json, so it survives agent restarts.

    The file is replaced atomically (temporary file in the same folder, fsync, rename) so a crash
    never leaves half a file; the folder is 0700 and the file 0600 because the state is the
    administrator's.
    """

    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, "admin.json")

    def load(self) -> dict[str, Any]:
        state = dict(ADMIN_DEFAULTS)
        data = _read(self.path, 1 << 20)
        if data:
            try:
                saved = json.loads(data)
                state.update(validate_admin({k: v for k, v in saved.items() if k in ADMIN_DEFAULTS}))
            except (ValueError, AttributeError, Fail) as exc:
                _log(f"ignoring unreadable {self.path}: {exc}")
        return state

    def save(self, state: dict[str, Any]) -> None:
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        fd, tmp = tempfile.mkstemp(prefix=".admin.", suffix=".tmp", dir=self.state_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(json.dumps(state, indent=1, sort_keys=True).encode() + b"\n")
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        dfd = os.open(self.state_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


class HpcAdmin:
    """Admin flags of an openMosix kernel: /proc/hpc/admin/* read and written as "0"/"1"/number.

    `stopped` has no file there (mosctl stop goes through setpe), so it stays in admin.json.
    """

    def __init__(self, hpc_root: str, store: AdminStore) -> None:
        self.admin_dir = os.path.join(hpc_root, "admin")
        self.store = store

    def load(self) -> dict[str, Any]:
        state = dict(ADMIN_DEFAULTS)
        state["stopped"] = self.store.load()["stopped"]
        for key, name in HPC_ADMIN_FILES.items():
            value = _read_int(os.path.join(self.admin_dir, name))
            if value is None:
                continue
            state[key] = bool(value) if key in _ADMIN_BOOLS else value
        return state

    def save(self, changes: dict[str, Any]) -> None:
        if "speed" in changes and changes["speed"] is None:  # refuse before writing anything
            raise Fail("invalid", "an openMosix kernel always has a speed: give a number")
        for key, value in changes.items():
            if key == "stopped":
                saved = self.store.load()
                saved["stopped"] = value
                self.store.save(saved)
                continue
            text = str(int(value)) + "\n"
            try:
                with open(os.path.join(self.admin_dir, HPC_ADMIN_FILES[key]), "w") as f:
                    f.write(text)
            except PermissionError as exc:
                raise Fail("denied", f"cannot write {HPC_ADMIN_FILES[key]}: {exc}") from None
            except OSError as exc:
                raise Fail("failed", f"cannot write {HPC_ADMIN_FILES[key]}: {exc}") from None


# ---------------------------------------------------------------------------------------------
# the sampler


class _Proc:
    """What the sampler remembers of one process between samples (slots: 1000s of them)."""

    __slots__ = ("pid", "start", "fd", "sfd", "pfd", "tasks", "sched", "raw", "comm", "ppid", "state", "nice", "ticks",
                 "nthreads", "rss", "info", "sent", "idle", "seen", "born", "ident_due")

    def __init__(self, pid: int, start: int, fd: int, sfd: int) -> None:
        self.pid = pid
        self.start = start
        self.fd = fd  # kept open on /proc/PID/stat, -1 when over the fd budget
        self.sfd = sfd  # kept open on /proc/PID/schedstat, -1 when not used
        self.pfd = -1  # its pidfd in the exit watch once dormant; -1 not yet, -2 cannot (never dormant)
        self.tasks: dict[int, int] | None = None  # thread id -> fd on its stat (_runnable_threads)
        self.sched: bytes | None = b""  # None: read stat at the next sample whatever schedstat says
        self.raw = b""
        self.comm = b""
        self.ppid = 0
        self.state = ""
        self.nice = 0
        self.ticks = 0
        self.nthreads = 1
        self.rss = 0
        self.idle = 0  # samples in a row it did not run
        self.seen = 0.0  # monotonic time of the last stat read
        self.info: dict[str, Any] = {}  # the ProcInfo as last sent
        self.sent = False
        self.born = 0.0  # monotonic time it started, or exec'd last (as far as we know)
        self.ident_due = 0.0  # owner and command line: next read then (monotonic)


class Sampler:
    """Builds NodeSample dicts and process-table deltas from /proc (and /proc/hpc when present)."""

    def __init__(self, proc: str = "/proc", hpc_root: str | None = None, node_id: int | None = None,
                 proc_root: str = "/proc", procs: bool = True) -> None:
        self.proc = proc
        self.procs_enabled = procs
        self.hpc_root = hpc_root if hpc_root and os.path.isdir(hpc_root) else None
        self.backend = "hpc" if self.hpc_root else "linux"
        self.proc_root = proc_root
        self.node_id = node_id
        if self.hpc_root and node_id is None:
            self.node_id = _read_int(os.path.join(self.hpc_root, "admin", "mospe"))
        self.table: dict[int, _Proc] = {}
        self.runq: float | None = None
        self.last_mono: float | None = None
        self.last_uptime_ticks = 0.0
        self.uptime = 0.0  # /proc/uptime at the current sample: processes' ages
        self.last_pid_field = b""
        self.listed: set[str] = set()  # names in /proc at the last listing
        self.scans = 0
        self.own_pid = os.getpid()
        self.users: dict[int, str] = {}
        uptime = self._uptime()
        self.btime = time.time() - uptime
        self.cg = cgroup_dirs(proc + "/self")
        probe = _read(proc + "/self/schedstat", 256) or b""
        self.use_sched = bool(probe.split()) and probe.split()[0] != b"0"
        #: epoll over the pidfds of the processes in the table: which of them exited since the last
        #: sample, in one system call. Only with schedstat (dormancy needs both) and our own /proc.
        self.exits: Any = None
        self.watched: dict[int, _Proc] = {}  # pidfd -> process
        if self.use_sched and proc == "/proc" and hasattr(os, "pidfd_open") and hasattr(select, "epoll"):
            try:
                fd = os.pidfd_open(os.getpid())
                os.close(fd)
                self.exits = select.epoll()
            except OSError:
                self.exits = None
        # Per process: stat and schedstat (and a pidfd); over the budget files are opened per read.
        # A quarter of the fds is kept for the stat files of threads (_runnable_threads).
        fds = _raise_fd_limit() - 64
        self.task_budget = fds // 4
        self.task_fds = 0
        self.fd_budget = (fds - self.task_budget) // (3 if self.exits is not None else 2)
        #: pid -> (start, fields): the job fields (home, where, nmigs, job, mode, lock, cantmove)
        self.extra: dict[int, tuple[int, dict[str, Any]]] = {}
        self.extra_dirty: set[int] = set()
        self.criu_text = ""  # NodeSample.criu, set by the agent before each sample

    def set_extra(self, table: dict[int, tuple[int, dict[str, Any]]]) -> None:
        """New job fields; rows already sent get them as changes in the next sample."""
        self.extra_dirty |= set(self.extra) | set(table)
        self.extra = table

    # -- helpers

    def _uptime(self) -> float:
        text = _read_text(self.proc + "/uptime")
        try:
            return float(text.split()[0]) if text else 0.0
        except ValueError:
            return 0.0

    def _user(self, uid: int) -> str:
        name = self.users.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = str(uid)
            self.users[uid] = name
        return name

    def _cmd(self, pid: int, comm: bytes) -> str:
        data = _read(f"{self.proc}/{pid}/cmdline", 1 << 16)
        if data:
            return data.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")
        return "[" + comm.decode("utf-8", "replace") + "]"

    def _hpc_proc(self, pid: int) -> dict[str, Any]:
        base = f"{self.proc_root}/{pid}/"
        return {
            "where": _read_int(base + "where") or 0,
            "lock": bool(_read_int(base + "lock") or 0),
            "cantmove": _read_text(base + "cantmove") or "",
            "nmigs": _read_int(base + "nmigs") or 0,
        }

    def _runnable_threads(self, p: _Proc, exclude_tid: int) -> int:
        """Threads of a multi-threaded process that are runnable now.

        Their stat files are kept open (up to TASK_FDS_MAX threads) and the task folder is listed
        again only when the thread count changed or a thread ended: a process that runs every
        second then costs one pread per thread instead of a listing and three calls per thread."""
        pid = p.pid
        tasks = p.tasks
        if tasks is None or len(tasks) != p.nthreads:
            self._close_tasks(p)
            try:
                tids = os.listdir(f"{self.proc}/{pid}/task")
            except OSError:
                return 0
            keep = len(tids) <= TASK_FDS_MAX and p.fd >= 0 and self.task_fds + len(tids) <= self.task_budget
            tasks = {}
            for name in tids:
                fd = -1
                if keep:
                    try:
                        fd = os.open(f"{self.proc}/{pid}/task/{name}/stat", os.O_RDONLY | os.O_CLOEXEC)
                        self.task_fds += 1
                    except OSError:  # gone already: read (and missed) below, then listed again
                        pass
                tasks[int(name)] = fd
            if keep:
                p.tasks = tasks
        n = 0
        lost = False
        for tid, fd in tasks.items():
            if pid == self.own_pid and tid == exclude_tid:
                continue
            try:
                data = os.pread(fd, 1024, 0) if fd >= 0 else _read(f"{self.proc}/{pid}/task/{tid}/stat", 1024)
            except OSError:
                data = None
            if not data:
                lost = True
                continue
            r = data.rindex(b")")
            if data[r + 2:r + 3] == b"R":
                n += 1
        if lost and p.tasks is not None:
            self._close_tasks(p)  # a thread ended: list again next time
        return n

    def _close_tasks(self, p: _Proc) -> None:
        if p.tasks:
            for fd in p.tasks.values():
                if fd >= 0:
                    os.close(fd)
                    self.task_fds -= 1
        p.tasks = None

    def _new_pids(self, force: bool) -> list[int]:
        """PIDs in /proc that were not there at the last listing.

        /proc/loadavg's last field is the last PID handed out in our PID namespace: while it does
        not move no process can have appeared (exits are seen by the reads themselves), so the
        listing is skipped, except once per LIST_EVERY samples as a safety net.
        """
        loadavg = _read(self.proc + "/loadavg", 256) or b""
        last = loadavg.rsplit(b" ", 1)[-1].strip()
        if not force and last and last == self.last_pid_field and self.scans % LIST_EVERY:
            return []
        prev, self.last_pid_field = self.last_pid_field, last
        if not force and self.scans % LIST_EVERY and prev.isdigit() and last.isdigit():
            lo, hi = int(prev), int(last)
            if 0 < hi - lo <= max(PROBE_NEW_MAX, len(self.table) // 4):  # no wrap-around: just these
                # some are threads (their /proc/TID is there but not listed): _new_proc drops them
                return list(range(lo + 1, hi + 1))
        names = set(os.listdir(self.proc))
        fresh = names - self.listed if not force else names
        self.listed = names
        return [int(n) for n in fresh if n.isdigit()]

    def invalidate(self, pid: int) -> None:
        """Re-read this process's stat at the next sample (we just changed it, e.g. reniced it)."""
        p = self.table.get(pid)
        if p is not None:
            p.sched = None
            p.idle = 0

    def _forget(self, p: _Proc) -> None:
        if p.pfd >= 0:
            self.watched.pop(p.pfd, None)
        self._close_tasks(p)
        _close(p)  # a closed pidfd leaves the epoll set by itself

    def _exited(self) -> None:
        """Processes that died since the last sample are read in this one, dormant or not."""
        if self.exits is None or not self.watched:
            return
        try:
            events = self.exits.poll(0)
        except OSError:
            return
        for fd, _ in events:
            p = self.watched.pop(fd, None)
            os.close(fd)  # readable for good from now on: stop asking
            if p is not None:
                p.pfd = -2  # dead: read every sample until it is gone (a zombie until reaped)
                p.sched = None
                p.idle = 0

    def _watch(self, p: _Proc) -> None:
        """Watch for the exit of a process turning dormant (only then could its death be seen
        late). pfd -2: it cannot be watched, so it never turns dormant."""
        try:
            p.pfd = os.pidfd_open(p.pid)
        except OSError:  # gone meanwhile (its stat read says so) or out of fds
            p.pfd = -2
            return
        try:
            self.exits.register(p.pfd, select.EPOLLIN)
        except OSError:
            os.close(p.pfd)
            p.pfd = -2
            return
        self.watched[p.pfd] = p

    def close(self) -> None:
        for p in self.table.values():
            self._forget(p)
        self.table.clear()
        self.listed = set()
        self.runq = None
        self.last_mono = None

    # -- one sample

    def sample(self, full: bool, admin: dict[str, Any]) -> dict[str, Any]:
        """Scan /proc once and return {"node": NodeSample, "procs": delta} (procs None if disabled)."""
        exclude_tid = threading.get_native_id()
        mono = time.monotonic()
        dt = (mono - self.last_mono) if self.last_mono is not None else 0.0
        uptime = self.uptime = self._uptime()
        up_ticks = uptime * CLK_TCK
        since_ticks = self.last_uptime_ticks if self.last_mono is not None else up_ticks
        want_procs = self.procs_enabled
        hpc = self.backend == "hpc" and want_procs
        cpu_scale = 100.0 / (CLK_TCK * dt) if dt > 0 else 0.0

        table = self.table
        new: list[dict[str, Any]] = []
        changed: list[dict[str, Any]] = []
        gone: list[list[int]] = []
        runnable = 0
        total_ticks = 0
        pread = os.pread
        stat_fmt = self.proc + "/%d/stat"
        procs = list(table.values())

        # Pass 1, cheap: which processes ran since the last sample? /proc/PID/schedstat (run
        # time, wait time, timeslices) costs the kernel less than half of stat. Unchanged means
        # the process has not run, so its stat is unchanged too, except nice, ppid and rss, which
        # others can change: every process's stat is re-read once per REFRESH_EVERY samples for
        # them. schedstat describes the main thread only, so multi-threaded processes (whose
        # main thread often just waits) always have their stat read: its times cover all threads.
        if self.use_sched and not full:
            stale: list[_Proc] = []
            for p in procs[self.scans % REFRESH_EVERY::REFRESH_EVERY]:
                p.sched = None
            self._exited()
            exits = self.exits
            phase = self.scans % DORMANT_EVERY
            own = self.own_pid
            for p in procs:
                if p.idle >= DORMANT_AFTER and p.pfd == -1 and exits is not None and p.fd >= 0:
                    self._watch(p)
                if (p.idle >= DORMANT_AFTER and p.pid % DORMANT_EVERY != phase and p.sched is not None
                        and p.pfd >= 0):
                    if p.state == "R":
                        runnable += 1
                    continue
                if p.nthreads > 1 or p.pid == own:
                    stale.append(p)
                    continue
                try:
                    if p.sfd >= 0:
                        sched = pread(p.sfd, 128, 0)
                    else:
                        sched = _read(f"{self.proc}/{p.pid}/schedstat", 128) or b""
                except OSError:
                    sched = b""
                if sched == p.sched:
                    p.idle += 1
                    if p.state == "R":
                        runnable += 1  # waiting for a CPU all along
                    if p.sent and p.info["cpu"]:
                        p.info["cpu"] = 0.0
                        changed.append({"pid": p.pid, "start": p.start, "cpu": 0.0})
                else:
                    if p.sched is not None:
                        p.idle = 0  # it ran (a forced re-read is no sign of activity)
                    p.sched = sched
                    stale.append(p)
        else:
            stale = procs

        # Pass 2: read and parse stat of the processes that ran (all of them for a full sample).
        for p in stale:
            pid = p.pid
            try:
                if p.fd >= 0:
                    data = pread(p.fd, 1024, 0)
                else:
                    data = _read(stat_fmt % pid, 1024) or b""
            except OSError:
                data = b""
            if data == p.raw and pid != self.own_pid:  # own threads: always counted below
                p.seen = mono
                if p.nthreads > 1:
                    p.idle += 1  # schedstat was not asked: an unchanged stat is its sign of sleep
                if p.state == "R":
                    runnable += 1
                change: dict[str, Any] = {}
                if want_procs and p.sent and p.info["cpu"]:
                    p.info["cpu"] = 0.0
                    change["cpu"] = 0.0
                if mono >= p.ident_due:
                    change.update(self._recheck_identity(p, mono))
                if change and want_procs and p.sent and not full:
                    changed.append({"pid": pid, "start": p.start, **change})
                continue
            try:
                comm, f = parse_stat(data)
                start = int(f[19])
            except (ValueError, IndexError):
                start = -1
            if start != p.start:
                # exited (empty read) or, without a kept fd, the PID now belongs to someone else
                del table[pid]
                self._forget(p)
                self.listed.discard(str(pid))  # so a reused PID is listed as new
                if p.sent and not full:
                    gone.append([pid, p.start])
                continue
            ticks = int(f[11]) + int(f[12])
            delta = ticks - p.ticks
            total_ticks += delta
            span = mono - p.seen
            p.seen = mono
            if delta or p.nthreads > 1:
                p.idle = 0
            p.raw = data
            p.ticks = ticks
            p.state = f[0].decode()
            p.ppid = int(f[1])
            p.nice = int(f[16])
            p.nthreads = int(f[17])
            p.rss = int(f[21]) * PAGE_SIZE
            if pid == self.own_pid or (p.nthreads > 1 and delta > 0):
                runnable += self._runnable_threads(p, exclude_tid)
            elif p.state == "R":
                runnable += 1
            ident: dict[str, Any] = {}
            if comm != p.comm:
                p.comm = comm  # exec'd: new program, maybe new owner, and a title of its own soon
                p.born = mono
                p.ident_due = mono
            if mono >= p.ident_due:
                ident = self._recheck_identity(p, mono)
            if want_procs:
                cpu = round(delta * 100.0 / (CLK_TCK * span), 1) if delta and span > 0 else 0.0
                if full or not p.sent:
                    p.info["cpu"] = cpu  # reported below with all fields
                else:
                    self._delta(p, cpu, ident, changed)

        # Pass 3: processes that appeared.
        for pid in self._new_pids(full):
            if pid in table:
                continue
            fresh = self._new_proc(pid, stat_fmt % pid)
            if fresh is None:
                continue
            p = fresh
            if p.nthreads > 1:
                runnable += self._runnable_threads(p, exclude_tid)
            elif p.state == "R":
                runnable += 1
            if self.last_mono is not None and p.start >= since_ticks:
                # born since the last sample: all its CPU time is from this interval
                total_ticks += p.ticks
                p.info["cpu"] = round(p.ticks * cpu_scale, 1)

        if hpc and not full:
            by_key = {(c["pid"], c["start"]): c for c in changed}
            for p in table.values():
                if p.sent:
                    self._hpc_delta(p, changed, by_key)

        if want_procs:
            for p in table.values():
                if full or not p.sent:
                    self._fill_info(p, hpc)
                    new.append(dict(p.info))
                    p.sent = True

        if want_procs and self.extra_dirty and not full:
            self._extra_delta(changed)
        self.extra_dirty = set()
        self.scans += 1
        self.last_mono = mono
        self.last_uptime_ticks = up_ticks
        node = self._node(dt, runnable, total_ticks, uptime, len(table), admin)
        table_delta: dict[str, Any] | None = None
        if want_procs:
            table_delta = {"full": full, "new": new, "changed": changed, "gone": gone}
        return {"node": node, "procs": table_delta}

    def _new_proc(self, pid: int, path: str) -> _Proc | None:
        fd = sfd = -1
        sched = b""
        try:
            if len(self.table) < self.fd_budget:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                data = os.pread(fd, 1024, 0)
            else:
                data = _read(path, 1024) or b""
            comm, f = parse_stat(data)
            start = int(f[19])
            if f[35] == b"-1":  # exit_signal -1: a thread, not a process (a PID tried directly)
                raise ValueError
            if fd >= 0 and self.use_sched:
                # after stat (threads cost no second open): if it runs in between, its next
                # schedstat differs from this one anyway
                sfd = os.open(path[:-4] + "schedstat", os.O_RDONLY | os.O_CLOEXEC)
                sched = os.pread(sfd, 128, 0)
        except (OSError, ValueError, IndexError):
            for d in (fd, sfd):
                if d >= 0:
                    os.close(d)
            return None
        self.listed.add(str(pid))
        p = _Proc(pid, start, fd, sfd)
        p.sched = sched
        p.raw = data
        p.comm = comm
        p.state = f[0].decode()
        p.ppid = int(f[1])
        p.nice = int(f[16])
        p.nthreads = int(f[17])
        p.rss = int(f[21]) * PAGE_SIZE
        p.ticks = int(f[11]) + int(f[12])
        p.seen = time.monotonic()
        p.info = {"pid": pid, "start": start, "cpu": 0.0}
        p.born = p.seen - max(self.uptime - start / CLK_TCK, 0.0)
        self._recheck_identity(p, p.seen)
        self.table[pid] = p
        return p

    def _recheck_identity(self, p: _Proc, mono: float) -> dict[str, Any]:
        """Owner and command line now, and when to look next (IDENT_FIRST); returns what changed."""
        gap = min(max(3 * (mono - p.born), IDENT_FIRST), IDENT_MAX_GAP)
        p.ident_due = mono + gap * (0.75 + (p.pid % 8) / 16)
        try:
            uid = os.stat(f"{self.proc}/{p.pid}").st_uid
        except OSError:
            uid = -1
        now = {"user": self._user(uid) if uid >= 0 else "", "cmd": self._cmd(p.pid, p.comm)}
        changed = {k: v for k, v in now.items() if p.info.get(k) != v}
        p.info.update(changed)
        return changed

    def _fill_info(self, p: _Proc, hpc: bool) -> None:
        info = p.info
        info["ppid"] = p.ppid
        info["nice"] = p.nice
        info["state"] = p.state
        info["rss"] = p.rss
        info["started"] = round(self.btime + p.start / CLK_TCK, 2)
        info.setdefault("cpu", 0.0)
        for key, value in (("home", 0), ("where", 0), ("lock", False), ("cantmove", ""), ("nmigs", 0),
                           ("job", ""), ("mode", "")):
            info.setdefault(key, value)
        if hpc:
            info.update(self._hpc_proc(p.pid))
        extra = self.extra.get(p.pid)
        if extra is not None and extra[0] == p.start:
            info.update(extra[1])
        # the model's field order, for readable logs
        order = ("pid", "start", "ppid", "user", "nice", "state", "cpu", "rss", "started", "cmd",
                 "home", "where", "lock", "cantmove", "nmigs", "job", "mode")
        p.info = {k: info[k] for k in order}

    def _extra_delta(self, changed: list[dict[str, Any]]) -> None:
        """Job fields that changed on rows already sent (a job started, locked, migrated)."""
        plain = {"home": 0, "where": 0, "lock": False, "cantmove": "", "nmigs": 0, "job": "", "mode": ""}
        for pid in self.extra_dirty:
            p = self.table.get(pid)
            if p is None or not p.sent:
                continue
            extra = self.extra.get(pid)
            want = extra[1] if extra is not None and extra[0] == p.start else plain
            ch = {k: v for k, v in want.items() if p.info.get(k) != v}
            if not ch:
                continue
            p.info.update(ch)
            mine = next((c for c in changed if c["pid"] == pid and c["start"] == p.start), None)
            if mine is not None:
                mine.update(ch)
            else:
                ch.update(pid=pid, start=p.start)
                changed.append(ch)

    def _delta(self, p: _Proc, cpu: float, ch: dict[str, Any], changed: list[dict[str, Any]]) -> None:
        """Append the fields that changed enough since they were last sent (ch: already changed)."""
        info = p.info
        if cpu != info["cpu"]:
            ch["cpu"] = info["cpu"] = cpu
        if p.state != info["state"]:
            ch["state"] = info["state"] = p.state
        if p.nice != info["nice"]:
            ch["nice"] = info["nice"] = p.nice
        if p.ppid != info["ppid"]:
            ch["ppid"] = info["ppid"] = p.ppid
        diff = abs(p.rss - info["rss"])
        if diff > RSS_ABS or diff > info["rss"] * RSS_REL:
            ch["rss"] = info["rss"] = p.rss
        if ch:
            ch["pid"] = p.pid
            ch["start"] = p.start
            changed.append(ch)

    def _hpc_delta(self, p: _Proc, changed: list[dict[str, Any]],
                   by_key: dict[tuple[int, int], dict[str, Any]]) -> None:
        """openMosix per-process files (where, lock, ...) change without the stat file changing."""
        now = self._hpc_proc(p.pid)
        ch = {k: v for k, v in now.items() if p.info.get(k) != v}
        if not ch:
            return
        p.info.update(ch)
        entry = by_key.get((p.pid, p.start))
        if entry is not None:
            entry.update(ch)
        else:
            ch.update({"pid": p.pid, "start": p.start})
            changed.append(ch)

    def _node(self, dt: float, runnable: int, total_ticks: int, uptime: float, nprocs: int,
              admin: dict[str, Any]) -> dict[str, Any]:
        if self.runq is None or dt <= 0:
            self.runq = float(runnable)
        else:
            decay = math.exp(-dt / RUNQ_TAU)
            self.runq = self.runq * decay + runnable * (1.0 - decay)
        try:
            affinity = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            affinity = os.cpu_count() or 1
        cpus, speed = cpus_and_speed(affinity, cgroup_cpu_quota(self.cg))
        if admin.get("speed"):
            speed = int(admin["speed"])
        load = self.runq * 100.0 / cpus * STANDARD_SPEED / speed
        util = min(100.0, total_ticks / CLK_TCK / (dt * cpus) * 100.0) if dt > 0 else 0.0
        vm = _psutil.virtual_memory()
        total, used, available = int(vm.total), int(vm.total - vm.available), int(vm.available)
        cg = cgroup_memory(self.cg)
        if cg is not None and cg[0] < total:
            total, used = cg
            available = max(0, min(total - used, available))
        node: dict[str, Any] = {
            "time": time.time(), "hostname": socket.gethostname(), "cpus": cpus, "speed": speed,
            "load": round(load, 1), "runq": round(self.runq, 3), "util": round(util, 1),
            "mem_total": total, "mem_used": used, "mem_available": available,
            "uptime": round(uptime, 2), "nprocs": nprocs, "backend": self.backend, "criu": self.criu_text,
            "admin": dict(admin),
        }
        if self.hpc_root is not None:
            self._hpc_node(node)
        return node

    def _hpc_node(self, node: dict[str, Any]) -> None:
        """Node figures from /proc/hpc/nodes/ID (HOWTO table 8-4), over the locally measured ones.

        Units as this agent reads them: CPUs a count, load the openMosix load (same scale as ours:
        100 = one standard CPU busy), speed as admin/speed, util a percentage, mem/rmem/tmem in
        bytes: tmem = total, mem = available as openMosix believes (what its balancer uses),
        rmem = free as Linux believes (so used = tmem - rmem).
        """
        if self.node_id is None:
            return
        base = os.path.join(self.hpc_root or "", "nodes", str(self.node_id))
        vals = {name: _read_int(os.path.join(base, name))
                for name in ("CPUs", "load", "speed", "mem", "rmem", "tmem", "util", "status")}
        if vals["CPUs"]:
            node["cpus"] = vals["CPUs"]
        if vals["speed"]:
            node["speed"] = vals["speed"]
        if vals["load"] is not None:
            node["load"] = float(vals["load"])
            node["runq"] = round(vals["load"] * node["cpus"] * node["speed"] / (100.0 * STANDARD_SPEED), 3)
        if vals["util"] is not None:
            node["util"] = float(vals["util"])
        if vals["tmem"]:
            node["mem_total"] = vals["tmem"]
            if vals["rmem"] is not None:
                node["mem_used"] = max(0, vals["tmem"] - vals["rmem"])
            if vals["mem"] is not None:
                node["mem_available"] = vals["mem"]
        if vals["status"] is not None:
            node["hpc_status"] = vals["status"]


def _close(p: _Proc) -> None:
    for fd in (p.fd, p.sfd, p.pfd):
        if fd >= 0:
            os.close(fd)
    p.fd = p.sfd = p.pfd = -1


def _raise_fd_limit() -> int:
    """Raise the soft open-file limit to the hard one: the sampler keeps one fd per process."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = hard if hard != resource.RLIM_INFINITY else 1 << 20
        want = min(want, 1 << 20)
        if want > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        return int(soft)
    except (ImportError, ValueError, OSError):
        return 1024


def _log(text: str) -> None:
    try:
        sys.stderr.write(f"omview-agent: {text}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


_psutil: Any = None


# ---------------------------------------------------------------------------------------------
# jobs and migration (CRIU)
#
# A job is started as the init of its own PID namespace and as a session leader
# (`unshare --pid --fork setsid CMD`), so CRIU can restore it on any node without PID clashes.
# Its record (STATE_DIR/jobs/<id>/job.json, folder 0700, next to its stdout/stderr files) keeps
# home node, mode, nmigs and where. A migration writes a journal on the source
# (STATE_DIR/migrations/<mid>.src.json) and a record on the target (<mid>.dst.json), so that a
# workstation that lost either node in the middle can resolve it later: the process runs on
# exactly one node. Images live in STATE_DIR/images/<mid>/ on both sides.

JOB_MODES = ("nomig", "cpujob", "iojob", "nodecay", "slowdecay", "fastdecay")


def migration_event(journal: dict[str, Any], node_id: int, changed: float) -> dict[str, Any]:
    """The event a finished source journal becomes (the fields the history's migrations table keeps)."""
    ok = journal.get("state") == "committed"
    error = str(journal.get("error") or "")
    ended = float(journal.get("committed") or changed)
    began = journal.get("time")
    job = journal.get("job") if isinstance(journal.get("job"), dict) else {}
    cmd = job.get("cmd") if isinstance(job, dict) else None
    return {
        "type": "event", "event": "migration", "mid": journal.get("mid"), "pid": journal.get("pid"),
        "start": journal.get("start"), "src": node_id, "dst": journal.get("target"),
        "result": "done" if ok else ("cancelled" if error == "cancelled" else "failed"), "reason": error,
        "time": ended, "cmd": " ".join(cmd) if isinstance(cmd, list) else str(cmd or ""),
        # the process stops when the dump starts and runs again just before the commit
        "frozen": round(ended - float(began), 3) if ok and isinstance(began, (int, float)) else None,
    }
PR_SET_CHILD_SUBREAPER = 36
#: Source journal states; "committed" and "aborted" are final.
MIG_FINAL = ("committed", "aborted")
#: Ops whose work runs in a thread, replying when done (a dump or restore may take seconds).
_MIG_CRIU_FEATURES = ("mem_dirty_track", "uffd", "uffd-noncoop")
#: Seconds a dumped source copy waits, stopped, for the engine's handover (`mig_handover`, sent just
#: before it asks the target to restore) when the engine gives none: then the source agent resumes it
#: by itself. The target cannot have a copy then: it restores only after the handover.
MIG_HOLD = 60.0
#: Niceness of CRIU's runs (dump, page server, restore): a frozen process waits for them, so they
#: go ahead of the node's CPU-bound work (weight 9548 against 1024 per nice-0 task).
CRIU_NICE = -10
#: The agent's own niceness where it may set it (see _raise_agent_priority).
AGENT_NICE = -10
_BASE_NICE = 0  # the niceness the agent was started with: its jobs get it back
_HARMLESS = ("Can't setup RLIMIT_NOFILE for self",)
#: Run as `python3 -c RESTORE_HELPER criu restore ...`: a child subreaper, so tasks a killed or
#: failed `criu restore` leaves behind are re-parented here and killed, never left half-restored.
RESTORE_HELPER = (
    "import ctypes,os,subprocess,sys,time\n"
    "ctypes.CDLL(None,use_errno=True).prctl(36,1,0,0,0)\n"
    "rc=subprocess.call(sys.argv[1:])\n"
    "if rc!=0:\n"
    " me=os.getpid()\n"
    " for _ in range(200):\n"
    "  try:\n"
    "   kids=open('/proc/%d/task/%d/children'%(me,me)).read().split()\n"
    "  except OSError:\n"
    "   kids=[]\n"
    "  if not kids:\n"
    "   break\n"
    "  for k in kids:\n"
    "   try:\n"
    "    os.kill(int(k),9)\n"
    "   except OSError:\n"
    "    pass\n"
    "  try:\n"
    "   while os.waitpid(-1,os.WNOHANG)[0]:\n"
    "    pass\n"
    "  except ChildProcessError:\n"
    "   pass\n"
    "  time.sleep(0.05)\n"
    "sys.exit(rc if rc>=0 else 128-rc)\n"
)


def criu_candidates(configured: str | None, env: dict[str, str] | None = None) -> list[str]:
    """Where to look for criu, as omview.core.criu.candidates: configured, $OMVIEW_CRIU, the
    provisioned wrapper in the cache, criu on PATH."""
    import shutil

    env = dict(os.environ) if env is None else env
    out = [c for c in (configured, env.get("OMVIEW_CRIU")) if c]
    cache = env.get("OMVIEW_CACHE_DIR") or os.path.join(
        env.get("XDG_CACHE_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".cache"), "omview")
    out.append(os.path.join(cache, "criu", "bin", "criu"))
    found = shutil.which("criu", path=env.get("PATH"))
    if found:
        out.append(found)
    return list(dict.fromkeys(out))


def _run_text(argv: list[str], timeout: float = 30.0) -> tuple[int, str]:
    import subprocess

    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout, check=False)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def criu_errors(text: str) -> list[str]:
    """CRIU's error lines, the harmless RLIMIT_NOFILE one dropped."""
    return [ln.strip() for ln in text.splitlines()
            if "Error" in ln and not any(h in ln for h in _HARMLESS)]


def criu_features(path: str) -> dict[str, bool]:
    """The optional kernel features live migration would need (`criu check --feature NAME`)."""
    out: dict[str, bool] = {}
    for name in _MIG_CRIU_FEATURES:
        try:
            rc, text = _run_text([path, "check", "--feature", name], 15)
            out[name] = rc == 0 and "is supported" in text
        except Exception:
            out[name] = False
    return out


def criu_probe(configured: str | None) -> dict[str, Any]:
    """Which criu this node would use, its version and `criu check` verdict, or why none works.

    A configured path that does not work is reported as such (never silently replaced by
    another criu): the administrator asked for that one."""
    st: dict[str, Any] = {"path": None, "version": "", "ready": False, "reason": "", "features": {}}
    cands = [configured] if configured else criu_candidates(None)
    path = next((c for c in cands if os.path.isfile(c) and os.access(c, os.X_OK)), None)
    if path is None:
        st["reason"] = (f"criu not found at the configured path {configured}" if configured else
                        "criu not found on the node: install criu or set criu = PATH for the node")
        return st
    st["path"] = path
    try:
        rc, out = _run_text([path, "--version"], 15)
    except Exception as exc:
        st["reason"] = f"criu does not run: {path}: {exc}"
        return st
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "version" and value.strip():
            st["version"] = value.strip()
            break
    if rc != 0:
        st["reason"] = f"criu does not run: {path} --version exited {rc}"
        return st
    if os.geteuid() != 0:
        st["reason"] = "not root: CRIU needs root or CAP_CHECKPOINT_RESTORE"
        return st
    try:
        rc, out = _run_text([path, "check"], 30)
    except Exception as exc:
        st["reason"] = f"criu check failed: {exc}"
        return st
    if not any(ln.strip().startswith("Looks good") for ln in out.splitlines()):
        errs = criu_errors(out) or [ln.strip() for ln in out.splitlines() if ln.strip()] or ["no output"]
        st["reason"] = f"criu check failed: {errs[-1]}"
        return st
    st["ready"] = True
    return st


def criu_text(st: dict[str, Any] | None) -> str:
    """The NodeSample.criu text: "ready: criu 4.1.1" or "unavailable: <reason>" ("" = probing)."""
    if not st:
        return ""
    if st.get("ready"):
        return f"ready: criu {st.get('version') or '?'}"
    return f"unavailable: {st.get('reason') or 'unknown'}"


# -- pure command builders (tested without I/O)


def job_argv(cmd: list[str]) -> list[str]:
    """A job: init of its own PID namespace (no --mount-proc: CRIU then cannot dump /dev/null)
    and its own session leader, so it restores anywhere without PID clashes."""
    if not cmd or not all(isinstance(c, str) and c for c in cmd):
        raise Fail("invalid", "cmd must be a non-empty list of non-empty strings")
    return ["unshare", "--pid", "--fork", "setsid", *cmd]


def criu_dump_argv(criu: str, pid: int, images: str, port: int | None = None,
                   address: str = "127.0.0.1") -> list[str]:
    argv = [criu, "dump", "-t", str(pid), "-D", images, "-o", "dump.log", "-v2", "--leave-stopped",
            "--manage-cgroups=ignore"]
    if port is not None:
        argv += ["--page-server", "--address", address, "--port", str(port)]
    return argv


def criu_restore_argv(criu: str, images: str) -> list[str]:
    return [criu, "restore", "-D", images, "-o", "restore.log", "-v2", "--restore-detached",
            "--pidfile", os.path.join(images, "restore.pid"), "--manage-cgroups=ignore"]


def criu_page_server_argv(criu: str, images: str, port: int, status_fd: int,
                          address: str = "127.0.0.1") -> list[str]:
    return [criu, "page-server", "-D", images, "-o", "page-server.log", "-v2", "--address", address,
            "--port", str(port), "--status-fd", str(status_fd)]


def _raise_agent_priority() -> None:
    """Run the agent at AGENT_NICE where it may (root), before any thread starts (Linux's
    niceness is per thread; new threads inherit it).

    On a node saturated by N CPU-bound tasks an agent at nice 0 gets 1/(N+1) of the CPU: its
    samples come late (the workstation then calls the node silent) and each migration request
    waits seconds for its turn while the process being moved stays frozen. Like atop, the
    monitor goes ahead of the work it watches; it costs well under 1 % of a CPU. Jobs it starts
    get the niceness the agent was started with (see _job_priority)."""
    global _BASE_NICE
    try:
        _BASE_NICE = os.getpriority(os.PRIO_PROCESS, 0)
        if _BASE_NICE > AGENT_NICE:
            os.setpriority(os.PRIO_PROCESS, 0, AGENT_NICE)
    except OSError:
        pass  # not root: the agent runs at the niceness it was given


def _job_priority() -> None:
    """preexec_fn of a job: the niceness the agent was started with, not the agent's own."""
    try:
        if os.getpriority(os.PRIO_PROCESS, 0) != _BASE_NICE:
            os.setpriority(os.PRIO_PROCESS, 0, _BASE_NICE)
    except OSError:
        pass


def _criu_priority() -> None:
    """preexec_fn of every CRIU run: the niceness CRIU_NICE, where the agent may set it.

    The process being moved stays frozen for as long as CRIU takes, and on a node loaded with N
    CPU-bound tasks a CRIU at nice 0 gets 1/(N+1) of the CPU: 5 s for a dump that takes 0.3 s on an
    idle node. A restored process gets its own niceness back from the images, not CRIU's."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, CRIU_NICE)
    except OSError:
        pass  # not root: CRIU runs at the agent's own niceness


def _die_with_parent() -> None:
    """preexec_fn of a target's page server: SIGKILL it when the agent's thread that started it
    dies, so a dump streaming straight to it fails (and CRIU resumes the source) instead of
    finishing into a folder nobody restores. At CRIU's niceness, too."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    _criu_priority()


# -- process tree inspection


def proc_children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        for k in (_read_text(f"/proc/{pid}/task/{tid}/children") or "").split():
            out.append(int(k))
    return out


def proc_tree(pid: int) -> list[int]:
    """pid and all its descendants, parents first."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        if p in out:
            continue
        out.append(p)
        todo.extend(proc_children(p))
    return out


def _ppid(pid: int) -> int:
    data = _read(f"/proc/{pid}/stat", 1024)
    try:
        return int(parse_stat(data or b"")[1][1])
    except (ValueError, IndexError):
        return 0


def proc_state(pid: int) -> str:
    data = _read(f"/proc/{pid}/stat", 1024)
    try:
        return parse_stat(data or b"")[1][0].decode()
    except (ValueError, IndexError):
        return ""


def proc_ns_init(pid: int) -> bool:
    """True when pid is the init (PID 1) of a PID namespace below ours: its PIDs cannot clash."""
    try:
        if os.readlink(f"/proc/{pid}/ns/pid") == os.readlink("/proc/self/ns/pid"):
            return False
    except OSError:
        return False
    for line in (_read_text(f"/proc/{pid}/status") or "").splitlines():
        if line.startswith("NSpid:"):
            ids = line.split()[1:]
            return len(ids) > 1 and ids[-1] == "1"
    return False


def _socket_inodes(pid: int) -> dict[int, str]:
    out: dict[int, str] = {}
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            out[int(link[8:-1])] = fd
    return out


def _hexaddr(text: str) -> str:
    """/proc/net/tcp "0100007F:1F90" -> "127.0.0.1:8080" (IPv6 shown in hex)."""
    addr, _, port = text.partition(":")
    if len(addr) == 8:
        ip = ".".join(str(int(addr[i:i + 2], 16)) for i in (6, 4, 2, 0))
    else:
        ip = addr
    return f"{ip}:{int(port, 16)}"


def tcp_established(pids: list[int]) -> list[str]:
    """Established TCP connections of these processes, as "local -> remote" (CRIU would need
    --tcp-established and the same addresses on the target)."""
    found: list[str] = []
    for pid in pids:
        inodes = _socket_inodes(pid)
        if not inodes:
            continue
        for table in ("tcp", "tcp6"):
            for line in (_read_text(f"/proc/{pid}/net/{table}") or "").splitlines()[1:]:
                f = line.split()
                if len(f) > 9 and f[3] == "01" and int(f[9]) in inodes:
                    text = f"{_hexaddr(f[1])} -> {_hexaddr(f[2])}"
                    if text not in found:
                        found.append(text)
    return found


_SKIP_FILES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty")


def open_files(pids: list[int]) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """(regular files open with their sizes (None: open for writing), mapped files and the
    working folders, device mappings) of these processes.

    CRIU reopens files by path on restore and checks the size of regular ones; mapped files
    (program, libraries) must exist; device mappings other than the zero/null devices cannot be
    moved at all."""
    import stat as st_mod

    files: dict[str, int | None] = {}
    maps: list[str] = []
    devices: list[str] = []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            fds = []
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if not link.startswith("/") or link.endswith(" (deleted)") or link in _SKIP_FILES:
                continue
            try:
                s = os.stat(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if st_mod.S_ISREG(s.st_mode):
                # a file the process writes to grows while we look; its size is checked by CRIU
                # at restore (the stopped process does not write); read-only ones must match now
                writable = _fd_flags(pid, fd) & 3 != 0
                if writable or files.get(link, 0) is None:
                    files[link] = None
                else:
                    files[link] = s.st_size
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")  # CRIU restores the working folder by path too
            if cwd.startswith("/") and not cwd.endswith(" (deleted)") and cwd not in maps:
                maps.append(cwd)
        except OSError:
            pass
        for line in (_read_text(f"/proc/{pid}/maps") or "").splitlines():
            parts = line.split(None, 5)
            if len(parts) < 6 or not parts[5].startswith("/"):
                continue
            path = parts[5]
            if path.endswith(" (deleted)") or path in maps or path in _SKIP_FILES:
                continue
            if path.startswith("/dev/") and not path.startswith("/dev/shm/"):
                if path not in devices:
                    devices.append(path)
                continue
            maps.append(path)
    return [{"path": p, "size": s} for p, s in sorted(files.items())], maps, devices


def _fd_flags(pid: int, fd: str) -> int:
    for line in (_read_text(f"/proc/{pid}/fdinfo/{fd}") or "").splitlines():
        if line.startswith("flags:"):
            try:
                return int(line.split()[1], 8)
            except (ValueError, IndexError):
                return 0
    return 0


def tree_rss(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        data = _read(f"/proc/{pid}/stat", 1024)
        try:
            total += int(parse_stat(data or b"")[1][21]) * PAGE_SIZE
        except (ValueError, IndexError):
            pass
    return total


def _write_json(path: str, obj: dict[str, Any]) -> None:
    """Atomic, fsync'd: journals must survive an agent or node crash."""
    d = os.path.dirname(path)
    os.makedirs(d, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".j.", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(json.dumps(obj, indent=1, sort_keys=True).encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _read_json(path: str) -> dict[str, Any] | None:
    data = _read(path, 1 << 20)
    if not data:
        return None
    try:
        obj = json.loads(data)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _rmtree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _keep_log(images: str, name: str, mig_dir: str, mid: str) -> None:
    """Keep a failed step's CRIU log beside the journal (the images folder is removed)."""
    import shutil

    try:
        shutil.copyfile(os.path.join(images, name), os.path.join(mig_dir, f"{mid}.{name}"))
    except OSError:
        pass


def _free_port(address: str = "127.0.0.1") -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((address, 0))
        return int(s.getsockname()[1])
    finally:
        s.close()


class _ReachProbe:
    """A listener on every IPv4 address of a target node, for `seconds` at most: each connection
    gets `token`, so the source can tell it reaches this node and not some other listener before
    it streams its dump straight to our page server."""

    def __init__(self, token: bytes, seconds: float = 120.0) -> None:
        self.token = token
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self.until = time.monotonic() + seconds
        self.closed = False
        threading.Thread(target=self._serve, name="omview-reach-probe", daemon=True).start()

    def _serve(self) -> None:
        try:
            import select

            while not self.closed and time.monotonic() < self.until:
                try:
                    if not select.select([self.sock], [], [], 0.5)[0]:
                        continue
                    conn, _ = self.sock.accept()
                except OSError:
                    return
                try:
                    conn.settimeout(2.0)
                    conn.sendall(self.token)
                except OSError:
                    pass
                finally:
                    conn.close()
        finally:
            self.sock.close()

    def close(self) -> None:
        self.closed = True


def _mid_ok(mid: Any) -> str:
    if not isinstance(mid, str) or not mid or len(mid) > 64 or not all(c.isalnum() or c in "-_." for c in mid) \
            or mid.startswith("."):
        raise Fail("invalid", "mid must be a short name of letters, digits, '-', '_' or '.'")
    return mid


class Later:
    """Returned by an op whose work runs in a thread: the reply is sent when `fn()` returns."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn


class JobsMixin:
    """Agent ops for jobs and CRIU migration (see docs/protocol.md, "Jobs and migration")."""

    # provided by Agent
    lock: threading.Lock
    state_dir: str | None
    sampler: Any
    send: Any

    def _jobs_init(self) -> None:
        if getattr(self, "_jobs_ready", False):
            return
        self._jobs_ready = True
        self.node_id: int | None = None
        self.criu_conf: str | None = None
        self.criu_status: dict[str, Any] | None = None
        self.criu_probed = threading.Event()
        self.criu_featured = threading.Event()
        self.jobs: dict[str, dict[str, Any]] = {}  # job id -> record, for jobs running on this node
        # finished migrations announced to our workstation (journal name -> mtime), see migrations_tick
        self.mig_watch_since = time.time()
        self.mig_announced: dict[str, float] = {}
        self.mig_dir_mtime = 0
        self.children: list[Any] = []  # Popen objects to reap (unshare parents, page servers)
        self.mig_procs: dict[str, Any] = {}  # mid -> running criu Popen (dump, page server)
        self.mig_probes: dict[str, _ReachProbe] = {}  # mid -> reachability listener (target side)
        self.mig_seen: dict[str, float] = {}  # source journal name -> mtime last read
        self.mig_holds: dict[str, float] = {}  # source journal name -> time its hold ends (state dumped)
        self.mig_mine: set[str] = set()  # source journals this agent dumped (it lingers for them at EOF)
        self.mig_quiet = False  # the workstation is gone: announce nothing
        self.restoring: set[str] = set()  # mids whose restore runs in this agent
        self.job_cache: dict[str, tuple[int, dict[str, Any] | None]] = {}
        self.jobs_loaded = 0.0

    # -- paths

    def _sdir(self) -> str:
        return self.state_dir or default_state_dir()

    def _jobs_dir(self) -> str:
        return os.path.join(self._sdir(), "jobs")

    def _mig_dir(self) -> str:
        return os.path.join(self._sdir(), "migrations")

    def _img_dir(self, mid: str) -> str:
        return os.path.join(self._sdir(), "images", mid)

    def _mig_lock(self) -> Any:
        """An exclusive lock on the migrations folder: every agent of the node (one per session)
        decides a journal's next state under it, so a hold running out and a handover arriving
        at once cannot both win."""
        import contextlib
        import fcntl

        @contextlib.contextmanager
        def held() -> Any:
            os.makedirs(self._mig_dir(), mode=0o700, exist_ok=True)
            fd = os.open(self._mig_dir(), os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

        return held()

    # -- start-up: criu probe, job table

    def jobs_start(self, args: dict[str, Any]) -> None:
        self._jobs_init()
        criu = args.get("criu")
        if criu is not None and not isinstance(criu, str):
            raise Fail("invalid", "criu must be a path")
        self.node_id = args.get("node_id")
        if criu != self.criu_conf or self.criu_status is None:
            self.criu_conf = criu or None
            self.criu_status = None
            self.criu_probed.clear()
            self.criu_featured.clear()
            threading.Thread(target=self._probe_criu, name="omview-criu-probe", daemon=True).start()
        self._load_jobs()

    def _probe_criu(self) -> None:
        """Readiness first (migrations wait for it), the optional features after."""
        try:
            st = criu_probe(self.criu_conf)
        except Exception as exc:
            st = {"path": None, "version": "", "ready": False, "reason": f"probe failed: {exc}", "features": {}}
        self.criu_status = st
        self.criu_probed.set()
        if st.get("ready"):
            st["features"] = criu_features(st["path"])
        self.criu_featured.set()

    def _criu(self, timeout: float = 60.0) -> dict[str, Any]:
        self._jobs_init()
        if not self.criu_probed.wait(timeout):
            raise Fail("failed", "criu is still being probed on this node; try again")
        return dict(self.criu_status or {})

    def _load_jobs(self) -> None:
        """Jobs recorded as running here whose process is still the same (pid, start).

        Several agents may serve one node (one per workstation connection), and any of them may
        start or restore a job, so the records on disk are the truth: re-read when a job folder's
        mtime changes (a record is replaced by a rename inside it)."""
        found: dict[str, dict[str, Any]] = {}
        try:
            names = os.listdir(self._jobs_dir())
        except OSError:
            names = []
        cache = self.job_cache
        fresh: dict[str, tuple[int, dict[str, Any] | None]] = {}
        for name in names:
            d = os.path.join(self._jobs_dir(), name)
            try:
                mtime = os.stat(d).st_mtime_ns
            except OSError:
                continue
            old = cache.get(name)
            rec = old[1] if old is not None and old[0] == mtime else _read_json(os.path.join(d, "job.json"))
            fresh[name] = (mtime, rec)
            if not rec or rec.get("state") != "running" or not rec.get("pid"):
                continue
            if stat_start(int(rec["pid"])) == rec.get("start"):
                found[rec["id"]] = rec
        self.job_cache = fresh
        with self.lock:
            if found != self.jobs:
                self.jobs = found
                self._publish_jobs()

    def _job_fields(self, rec: dict[str, Any]) -> dict[str, Any]:
        home = int(rec.get("home") or 0)
        here = self.node_id or 0
        nomig = rec.get("mode") == "nomig"
        locked = bool(rec.get("lock")) or nomig
        cant = ""
        if nomig:
            cant = "nomig job: started with --mode nomig, never migrated"
        elif rec.get("lock"):
            cant = "locked: the process is locked to this node"
        return {"home": home, "where": 0 if home == here else here, "nmigs": int(rec.get("nmigs") or 0),
                "job": rec["id"], "mode": rec.get("mode") or "", "lock": locked, "cantmove": cant}

    def _publish_jobs(self) -> None:
        """Hand the sampler the job fields of this node's job processes (called with self.lock)."""
        table = {int(r["pid"]): (int(r["start"]), self._job_fields(r)) for r in self.jobs.values()}
        if self.sampler is not None:
            self.sampler.set_extra(table)

    def _save_job(self, rec: dict[str, Any]) -> None:
        d = os.path.join(self._jobs_dir(), rec["id"])
        os.makedirs(d, mode=0o700, exist_ok=True)
        _write_json(os.path.join(d, "job.json"), rec)

    def jobs_tick(self) -> None:
        """Reap our children; pick up jobs other agents started here; notice jobs that ended."""
        self._jobs_init()
        for p in list(self.children):
            if p.poll() is not None:
                self.children.remove(p)
        if time.monotonic() - self.jobs_loaded > 2.0:
            self.jobs_loaded = time.monotonic()
            self._load_jobs()
        with self.lock:
            gone = [dict(r) for r in self.jobs.values()
                    if stat_start(int(r["pid"])) != r["start"] or proc_state(int(r["pid"])) in ("Z", "")]
        for rec in gone:
            if self._migrating(int(rec["pid"])):
                continue
            path = os.path.join(self._jobs_dir(), rec["id"], "job.json")
            now = _read_json(path)
            with self.lock:
                self.jobs.pop(rec["id"], None)
                self._publish_jobs()
            if not now or now.get("state") != "running" or now.get("pid") != rec["pid"] \
                    or now.get("start") != rec["start"]:
                continue  # migrated away meanwhile: the record says where
            now["state"] = "exited"
            now["ended"] = time.time()
            try:
                self._save_job(now)
            except OSError:
                pass
            self.send({"type": "event", "event": "job_exited", "job": rec["id"], "pid": rec["pid"]})

    def _migrating(self, pid: int) -> bool:
        for name in self._list_mig(".src.json"):
            j = _read_json(os.path.join(self._mig_dir(), name))
            if j and j.get("pid") == pid and j.get("state") not in MIG_FINAL:
                return True
        return False

    def _list_mig(self, suffix: str) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self._mig_dir()) if n.endswith(suffix))
        except OSError:
            return []

    # -- ops: criu and jobs

    def op_criu_status(self, args: dict[str, Any]) -> dict[str, Any]:
        wait = float(args.get("wait", 60))
        self._criu(wait)
        self.criu_featured.wait(wait)
        st = self._criu(0)
        st["text"] = criu_text(st)
        return st

    def op_run(self, args: dict[str, Any]) -> dict[str, Any]:
        """Start CMD as a job: own PID namespace init, own session, stdout/err in its folder."""
        import subprocess
        import uuid

        self._jobs_init()
        cmd = args.get("cmd")
        if not isinstance(cmd, list):
            raise Fail("invalid", "cmd must be a list of strings")
        argv = job_argv(cmd)
        mode = args.get("mode") or ""
        if mode and mode not in JOB_MODES:
            raise Fail("invalid", f"mode must be one of {', '.join(JOB_MODES)}")
        cwd = args.get("cwd")
        if cwd is not None and (not isinstance(cwd, str) or not os.path.isdir(cwd)):
            raise Fail("invalid", f"cwd {cwd!r} is not a folder on this node")
        env = args.get("env")
        if env is not None and not (isinstance(env, dict) and all(isinstance(v, str) for v in env.values())):
            raise Fail("invalid", "env must map names to strings")
        jid = f"{self.node_id or 0}-{uuid.uuid4().hex[:10]}"
        d = os.path.join(self._jobs_dir(), jid)
        os.makedirs(self._jobs_dir(), mode=0o700, exist_ok=True)
        os.makedirs(d, mode=0o700)
        out, err = os.path.join(d, "out"), os.path.join(d, "err")
        fo = open(out, "wb")
        fe = open(err, "wb")
        try:
            full_env = dict(os.environ)
            full_env.update(env or {})
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, cwd=cwd or d,
                                 env=full_env, start_new_session=True, close_fds=True, preexec_fn=_job_priority)
        except OSError as exc:
            _rmtree(d)
            raise Fail("failed", f"cannot start {cmd[0]}: {exc}") from None
        finally:
            fo.close()
            fe.close()
        self.children.append(p)
        pid = None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            kids = proc_children(p.pid)
            if kids:
                pid = kids[0]
                break
            if p.poll() is not None:
                break
            time.sleep(0.005)
        start = stat_start(pid) if pid else None
        if pid is None or start is None:
            raise Fail("failed", f"the job did not start (unshare exited {p.poll()}); see {err}")
        rec = {"id": jid, "cmd": cmd, "mode": mode, "home": self.node_id or 0, "where": 0, "nmigs": 0,
               "pid": pid, "start": start, "dir": d, "out": out, "err": err, "created": time.time(),
               "state": "running", "lock": False}
        self._save_job(rec)
        with self.lock:
            self.jobs[jid] = rec
            self._publish_jobs()
        return {"job": jid, "pid": pid, "start": start, "out": out, "err": err, "dir": d,
                "node": self.node_id}

    def op_jobs(self, args: dict[str, Any]) -> dict[str, Any]:
        """Every job record on this node (running here, away, exited)."""
        out = []
        try:
            names = sorted(os.listdir(self._jobs_dir()))
        except OSError:
            names = []
        for name in names:
            rec = _read_json(os.path.join(self._jobs_dir(), name, "job.json"))
            if rec:
                out.append(rec)
        return {"jobs": out}

    def op_job_set(self, args: dict[str, Any]) -> dict[str, Any]:
        """Update a job record kept here (the home node's where/nmigs, or lock)."""
        self._jobs_init()
        jid = args.get("job")
        if not isinstance(jid, str) or "/" in jid or jid.startswith("."):
            raise Fail("invalid", "job must be a job id")
        path = os.path.join(self._jobs_dir(), jid, "job.json")
        rec = _read_json(path) or args.get("record")
        if not isinstance(rec, dict):
            raise Fail("notfound", f"no job {jid} on this node")
        for key in ("where", "nmigs", "lock", "state"):
            if key in args:
                rec[key] = args[key]
        if "where" in args and args["where"] not in (0, None, self.node_id):
            rec["state"] = "away"
        self._save_job(rec)
        with self.lock:
            if rec["id"] in self.jobs:
                self.jobs[rec["id"]] = rec
                self._publish_jobs()
        return rec

    def op_lock(self, args: dict[str, Any]) -> dict[str, Any]:
        """Lock or unlock a job's process to this node (openMosix /proc/PID/lock)."""
        self._jobs_init()
        pid, start = Agent._target(args)
        with self.lock:
            rec = next((r for r in self.jobs.values() if r["pid"] == pid and r["start"] == start), None)
        if rec is None:
            raise Fail("notfound", f"process {pid} is not a job of this node; only jobs can be locked")
        return self.op_job_set({"job": rec["id"], "lock": bool(args.get("lock", True))})

    # -- ops: migration, source side

    def op_mig_check_src(self, args: dict[str, Any]) -> dict[str, Any]:
        """Everything the source can tell before a migration, touching nothing."""
        self._jobs_init()
        pid, start = Agent._target(args)
        Agent._check_alive(pid, start)
        automatic = bool(args.get("automatic"))
        pids = proc_tree(pid)
        tids = []
        for p in pids:
            try:
                tids += [int(t) for t in os.listdir(f"/proc/{p}/task")]
            except OSError:
                pass
        with self.lock:
            rec = next((dict(r) for r in self.jobs.values() if r["pid"] == pid and r["start"] == start), None)
        files, maps, devices = open_files(pids)
        info: dict[str, Any] = {
            "pid": pid, "start": start, "namespaced": proc_ns_init(pid), "pids": tids, "files": files,
            "maps": maps, "rss": tree_rss(pids), "job": rec, "state": proc_state(pid), "cantmove": "",
        }
        st = self._criu()
        info["criu"] = st
        admin = self.admin_state()  # type: ignore[attr-defined]
        ancestors = set()
        a = os.getpid()
        while a > 1:
            ancestors.add(a)
            data = _read(f"/proc/{a}/stat", 1024)
            try:
                a = int(parse_stat(data or b"")[1][1])
            except (ValueError, IndexError):
                break
        reason = ""
        if not st.get("ready"):
            reason = f"CRIU is not ready on the source node: {st.get('reason')}"
        elif pid == 1 or pid in ancestors or os.getpid() in pids:
            reason = "this is the node's init, the agent or one of its ancestors"
        elif rec and rec.get("mode") == "nomig":
            reason = "nomig job: started with --mode nomig, never migrated"
        elif rec and rec.get("lock"):
            reason = "locked: the process is locked to its node (unlock it first)"
        elif automatic and admin.get("stay"):
            reason = "the node is set to stay: no automatic migration away from it"
        elif automatic and admin.get("lstay") and (not rec or rec.get("home") in (None, 0, self.node_id)):
            reason = "the node is set to lstay: its own processes stay"
        elif self._migrating(pid):
            reason = "a migration of this process is already in progress"
        elif info["state"] in ("Z", "X"):
            reason = "the process is exiting"
        elif devices:
            reason = f"it maps a device ({devices[0]}), which cannot be moved"
        else:
            tcp = tcp_established(pids)
            if tcp:
                reason = f"it has an established TCP connection ({tcp[0]}), which CRIU cannot move to another node"
        info["cantmove"] = reason
        return info

    def op_mig_dump(self, args: dict[str, Any]) -> Later:
        """Checkpoint the tree leaving it stopped; pages to a page server when `port` is given."""
        import subprocess

        self._jobs_init()
        mid = _mid_ok(args.get("mid"))
        pid, start = Agent._target(args)
        Agent._check_alive(pid, start)
        port = args.get("port")
        if port is not None and (not isinstance(port, int) or not 0 < port < 65536):
            raise Fail("invalid", "port must be a TCP port")
        address = args.get("address") or "127.0.0.1"
        try:
            import ipaddress

            address = str(ipaddress.ip_address(address))
        except ValueError:
            raise Fail("invalid", "address must be an IP address (the target's page server)") from None
        hold = args.get("hold", MIG_HOLD)
        if not isinstance(hold, (int, float)) or isinstance(hold, bool) or not 0 < hold <= 86400:
            raise Fail("invalid", "hold must be seconds (0 < hold <= 86400)")
        st = self._criu()
        if not st.get("ready"):
            raise Fail("failed", f"CRIU is not ready on this node: {st.get('reason')}")
        jpath = os.path.join(self._mig_dir(), mid + ".src.json")
        if os.path.exists(jpath):
            raise Fail("invalid", f"migration {mid} already exists here")
        images = self._img_dir(mid)
        os.makedirs(images, mode=0o700)
        journal = {"mid": mid, "pid": pid, "start": start, "target": args.get("target"), "state": "dumping",
                   "images": images, "job": args.get("job"), "time": time.time(), "node": self.node_id,
                   "hold": float(hold), "page_server": [address, port] if port is not None else None}
        _write_json(jpath, journal)
        self.mig_mine.add(mid + ".src.json")
        argv = criu_dump_argv(st["path"], pid, images, port, address)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, close_fds=True, preexec_fn=_criu_priority)
        self.mig_procs[mid] = proc

        def work() -> dict[str, Any]:
            t0 = time.monotonic()
            rc = proc.wait()
            self.mig_procs.pop(mid, None)
            seconds = time.monotonic() - t0
            if rc != 0:
                log = _read_text(os.path.join(images, "dump.log")) or ""
                _keep_log(images, "dump.log", self._mig_dir(), mid)
                errs = criu_errors(log)
                self._resume(pid, start)
                journal["state"] = "aborted"
                journal["error"] = errs[-1] if errs else f"criu dump exited {rc}"
                _write_json(jpath, journal)
                _rmtree(images)
                raise Fail("failed", f"criu dump failed: {journal['error']}")
            files = []
            total = 0
            for name in sorted(os.listdir(images)):
                size = os.path.getsize(os.path.join(images, name))
                files.append([name, size])
                total += size
            with self._mig_lock():
                journal["state"] = "dumped"
                journal["dumped"] = time.time()
                _write_json(jpath, journal)
            return {"images": images, "files": files, "bytes": total, "seconds": round(seconds, 4),
                    "state": proc_state(pid)}

        return Later(work)

    def _resume(self, pid: int, start: int) -> bool:
        """SIGCONT every task of the tree (CRIU left it stopped); True when it runs again."""
        if stat_start(pid) != start:
            return False
        for p in proc_tree(pid):
            try:
                os.kill(p, signal.SIGCONT)
            except OSError:
                pass
        return True

    def _kill_tree(self, pid: int, start: int, timeout: float = 10.0) -> bool:
        """SIGKILL the stopped source copy (a PID-namespace init ignores SIGTERM); True when gone."""
        if stat_start(pid) != start:
            return True
        pidfd = -1
        try:
            if hasattr(os, "pidfd_open"):
                pidfd = os.pidfd_open(pid)
            if stat_start(pid) == start:
                parent = _ppid(pid)
                if parent > 1 and _read_text(f"/proc/{parent}/comm") == "unshare":
                    # the job's `unshare --fork` parent first: killed after its child it writes
                    # "sigprocmask unblock failed" into the job's stderr file
                    try:
                        os.kill(parent, signal.SIGKILL)
                    except OSError:
                        pass
                for p in reversed(proc_tree(pid)):
                    if p != pid:
                        try:
                            os.kill(p, signal.SIGKILL)
                        except OSError:
                            pass
                if pidfd >= 0:
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return True
        finally:
            if pidfd >= 0:
                os.close(pidfd)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.jobs_tick_children()
            if stat_start(pid) != start or proc_state(pid) in ("Z", "X", ""):
                return True
            time.sleep(0.01)
        return False

    def migrations_tick(self) -> None:
        """Announce migrations that left this node and finished since we started, whoever ran them.

        The source's journal is the one record every migration leaves, so each workstation session
        on this node (the collector's among them) hears of a move another app made."""
        d = self._mig_dir()
        self._mig_hold_tick()
        try:
            mtime = os.stat(d).st_mtime_ns
        except OSError:
            return
        if mtime == self.mig_dir_mtime:
            return  # journals are replaced by rename, which touches the folder
        self.mig_dir_mtime = mtime
        with os.scandir(d) as entries:
            for e in entries:
                if not e.name.endswith(".src.json"):
                    continue
                try:
                    changed = e.stat().st_mtime
                except OSError:
                    continue
                if self.mig_seen.get(e.name) == changed:
                    continue
                self.mig_seen[e.name] = changed
                j = _read_json(e.path)
                if not j:
                    continue
                if j.get("state") == "dumped" and j.get("hold"):  # journals without one predate the rule
                    self.mig_holds[e.name] = float(j.get("dumped") or changed) + float(j["hold"])
                else:
                    self.mig_holds.pop(e.name, None)
                if changed < self.mig_watch_since or self.mig_announced.get(e.name) == changed \
                        or j.get("state") not in MIG_FINAL or self.mig_quiet:
                    continue
                self.mig_announced[e.name] = changed
                self.send(migration_event(j, self.node_id or 0, changed))
        self._mig_hold_tick()

    def _mig_hold_tick(self) -> None:
        now = time.time()
        for name, until in list(self.mig_holds.items()):
            if now >= until:
                self.mig_holds.pop(name, None)
                self._mig_expire(name[: -len(".src.json")])

    def _mig_expire(self, mid: str) -> bool:
        """The source's own deadline: a copy dumped `hold` s ago without a handover runs again here.
        True when this call resumed it (the journal is then aborted)."""
        jpath = os.path.join(self._mig_dir(), mid + ".src.json")
        with self._mig_lock():
            j = _read_json(jpath)
            if not j or j.get("state") != "dumped" or not j.get("hold"):
                return False
            hold = float(j["hold"])
            if time.time() < float(j.get("dumped") or 0) + hold:
                return False
            self._resume(int(j["pid"]), int(j["start"]))
            j["state"] = "aborted"
            j["error"] = (f"no handover within {hold:g} s of the dump (workstation or target lost): "
                          "the source resumed it by itself")
            j["expired"] = time.time()
            _write_json(jpath, j)
        _rmtree(j["images"])
        _log(f"migration {mid}: {j['error']}")
        return True

    def mig_linger(self, poll: float = 0.2) -> None:
        """At EOF (the workstation went away): stay while a dump of ours runs or a copy we dumped
        waits for its hold to end, so the source's deadline still resumes it."""
        if not getattr(self, "_jobs_ready", False):
            return
        self.mig_quiet = True
        while self.mig_mine:
            for name in list(self.mig_mine):
                j = _read_json(os.path.join(self._mig_dir(), name))
                if not j or j.get("state") not in ("dumping", "dumped"):
                    self.mig_mine.discard(name)
            if self.mig_mine:
                self.migrations_tick()
                time.sleep(poll)

    def _cut(self, j: dict[str, Any]) -> bool:
        """Destroy a running dump's connection to its page server (`ss -K`): the dump fails at once
        and CRIU resumes the tree, even when the target stopped answering (no reset would come,
        and TCP would retry for many minutes). True when ss ran."""
        ps = j.get("page_server")
        if not ps:
            return False
        try:
            rc, _ = _run_text(["ss", "-K", "-t", "dst", str(ps[0]), "dport", "=", str(int(ps[1]))], 10.0)
        except Exception as exc:  # no ss here: the dump ends when TCP gives up
            _log(f"cannot cut the page stream: {exc}")
            return False
        return rc == 0

    def _cut_until_done(self, j: dict[str, Any], proc: Any) -> None:
        """Cut until the dump ends: CRIU may open its connection only after the first cut."""
        if not j.get("page_server"):
            proc.wait()
            return
        while proc.poll() is None:
            self._cut(j)
            try:
                proc.wait(timeout=0.5)
            except Exception:  # TimeoutExpired: cut again
                pass

    def op_mig_cut(self, args: dict[str, Any]) -> dict[str, Any]:
        """Break a running dump's page stream (cancel, or the target lost during the dump); keeps
        cutting in a thread of its own until the dump has ended."""
        self._jobs_init()
        mid = _mid_ok(args.get("mid"))
        j = _read_json(os.path.join(self._mig_dir(), mid + ".src.json"))
        proc = self.mig_procs.get(mid)
        if j is None or proc is None or proc.poll() is not None or not j.get("page_server"):
            return {"cut": False}
        threading.Thread(target=self._cut_until_done, args=(j, proc), name="omview-mig-cut", daemon=True).start()
        return {"cut": True}

    def op_mig_handover(self, args: dict[str, Any]) -> dict[str, Any]:
        """The engine is about to ask the target to restore: the hold no longer applies, and from
        now on only a commit, or an abort decided on the target's answer, ends the journal.
        Refused once the hold ran out (the copy runs here again)."""
        self._jobs_init()
        mid = _mid_ok(args.get("mid"))
        jpath = os.path.join(self._mig_dir(), mid + ".src.json")
        self._mig_expire(mid)
        with self._mig_lock():
            j = _read_json(jpath)
            if j is None:
                raise Fail("notfound", f"no migration {mid} on this node")
            if j["state"] == "restoring":
                return {"state": "restoring"}
            if j["state"] != "dumped":
                raise Fail("invalid", f"migration {mid} is {j['state']} here ({j.get('error') or 'no handover'}):"
                                      " not handing over")
            j["state"] = "restoring"
            j["handover"] = time.time()
            _write_json(jpath, j)
        return {"state": "restoring"}

    def op_mig_reach(self, args: dict[str, Any]) -> Later:
        """Can this node open TCP connections to the target (its probe listener answers with the
        token)? The address found is where `criu dump --page-server` then connects."""
        host, port, token = args.get("host"), args.get("port"), args.get("token")
        if not isinstance(host, str) or not host or not isinstance(port, int) or not 0 < port < 65536 \
                or not isinstance(token, str) or not token:
            raise Fail("invalid", "mig_reach needs host, port and token")
        tok = token.encode()

        def work() -> dict[str, Any]:
            try:
                infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
            except OSError as exc:
                return {"ok": False, "error": f"cannot resolve {host}: {exc}"}
            why = "no IPv4 address"
            for *_, sa in infos:
                try:
                    with socket.create_connection((str(sa[0]), port), timeout=3.0) as conn:
                        conn.settimeout(3.0)
                        got = b""
                        while len(got) < len(tok):
                            data = conn.recv(len(tok) - len(got))
                            if not data:
                                break
                            got += data
                    if got == tok:
                        return {"ok": True, "address": str(sa[0])}
                    why = f"{sa[0]}:{port} answered, but not as the target's probe"
                except OSError as exc:
                    why = f"{sa[0]}:{port}: {exc}"
            return {"ok": False, "error": why}

        return Later(work)

    def op_mig_received(self, args: dict[str, Any]) -> dict[str, Any]:
        """Bytes in a migration's images folder here (the page server writes pages as they come)."""
        self._jobs_init()
        mid = _mid_ok(args.get("mid"))
        total = 0
        try:
            with os.scandir(self._img_dir(mid)) as entries:
                for e in entries:
                    try:
                        total += e.stat().st_size
                    except OSError:
                        pass
        except OSError:
            pass
        return {"bytes": total}

    def jobs_tick_children(self) -> None:
        for p in list(self.children):
            if p.poll() is not None:
                self.children.remove(p)

    def op_mig_commit(self, args: dict[str, Any]) -> dict[str, Any]:
        """The target runs the process: kill the stopped source copy, close the journal."""
        self._jobs_init()
        mid = _mid_ok(args.get("mid"))
        jpath = os.path.join(self._mig_dir(), mid + ".src.json")
        j = _read_json(jpath)
        if j is None:
            raise Fail("notfound", f"no migration {mid} on this node")
        if j["state"] == "committed":
            return {"state": "committed"}
        with self._mig_lock():  # a commit is a handover too: the hold no longer applies
            j = _read_json(jpath) or j
            if j["state"] not in ("dumped", "restoring"):
                raise Fail("invalid", f"migration {mid} is {j['state']}, not dumped: cannot commit")
            if j["state"] == "dumped":
                j["state"] = "restoring"
                _write_json(jpath, j)
        if not self._kill_tree(int(j["pid"]), int(j["start"])):
            raise Fail("failed", f"the source copy (PID {j['pid']}) did not die")
        j["state"] = "committed"
        j["committed"] = time.time()
        j["new_where"] = args.get("where")
        _write_json(jpath, j)
        _rmtree(j["images"])
        rec = j.get("job")
        with self.lock:
            if rec and rec.get("id") in self.jobs:
                del self.jobs[rec["id"]]
                self._publish_jobs()
        if rec:
            jrec = _read_json(os.path.join(self._jobs_dir(), rec["id"], "job.json"))
            if jrec is not None:
                if int(jrec.get("home") or 0) == (self.node_id or 0):
                    jrec.update(state="away", where=args.get("where"), nmigs=args.get("nmigs", jrec.get("nmigs")),
                                pid=None, start=None)
                else:
                    jrec.update(state="left", where=args.get("where"), pid=None, start=None)
                self._save_job(jrec)
        return {"state": "committed"}

    def op_mig_abort(self, args: dict[str, Any]) -> dict[str, Any]:
        """Give up a migration on the source: the stopped copy runs again."""
        self._jobs_init()
        mid = _mid_ok(args.get("mid"))
        jpath = os.path.join(self._mig_dir(), mid + ".src.json")
        j = _read_json(jpath)
        if j is None:
            return {"state": "none", "running": False}
        if j["state"] == "committed":
            raise Fail("invalid", f"migration {mid} is committed: the process runs on the target")
        proc = self.mig_procs.get(mid)
        if proc is not None and proc.poll() is None:
            self._cut_until_done(j, proc)  # a dump still running resumes the tree itself when it fails
        with self._mig_lock():
            j = _read_json(jpath) or j
            if j["state"] == "committed":
                raise Fail("invalid", f"migration {mid} is committed: the process runs on the target")
            running = self._resume(int(j["pid"]), int(j["start"]))
            if j["state"] != "aborted":
                j["state"] = "aborted"
                j["error"] = args.get("reason") or "aborted"
                _write_json(jpath, j)
        _rmtree(j["images"])
        return {"state": "aborted", "running": running and proc_state(int(j["pid"])) not in ("T", "t")}

    # -- ops: migration, target side

    def op_mig_check_dst(self, args: dict[str, Any]) -> dict[str, Any]:
        """Could this node take the process? Touches nothing."""
        self._jobs_init()
        st = self._criu()
        admin = self.admin_state()  # type: ignore[attr-defined]
        home = args.get("home")
        guest = home not in (None, self.node_id)
        reason = ""
        if not st.get("ready"):
            reason = f"CRIU is not ready on the target node: {st.get('reason')}"
        elif admin.get("stopped"):
            reason = "the target node is stopped (mosctl stop): it takes no part in the cluster"
        elif guest and admin.get("block"):
            reason = "the target node is blocked (block): it accepts no guest processes"
        elif guest and admin.get("quiet"):
            reason = "the target node is quiet: it takes no part in load balancing"
        if not reason:
            for f in args.get("files") or []:
                try:
                    size = os.stat(f["path"]).st_size
                except OSError:
                    reason = f"open file {f['path']} does not exist on the target node"
                    break
                if f["size"] is not None and size != f["size"]:
                    reason = (f"open file {f['path']} has {size} bytes on the target node, {f['size']} on "
                              "the source (CRIU checks the size)")
                    break
        if not reason:
            for path in args.get("maps") or []:
                if not os.path.exists(path):
                    reason = f"{path} (mapped or the working folder) does not exist on the target node"
                    break
        if not reason and not args.get("namespaced"):
            for p in args.get("pids") or []:
                if os.path.exists(f"/proc/{p}"):
                    cmd = (_read_text(f"/proc/{p}/comm") or "?")
                    reason = (f"PID {p} is in use on the target node ({cmd}); the process is not in its own "
                              "PID namespace, so CRIU cannot restore it there (start it with omctl run)")
                    break
        rss = int(args.get("rss") or 0)
        if not reason and rss:
            import shutil

            base = os.path.join(self._sdir(), "images")
            probe = base
            while not os.path.exists(probe) and probe != "/":
                probe = os.path.dirname(probe)
            try:
                free = shutil.disk_usage(probe).free
            except OSError:
                free = 0
            if free < rss + (4 << 20):
                reason = (f"not enough space for the images on the target node: {free >> 20} MiB free in "
                          f"{probe}, about {rss >> 20} MiB needed")
            else:
                vm = _psutil.virtual_memory()
                avail = int(vm.available)
                cg = cgroup_memory(cgroup_dirs())
                if cg is not None:
                    avail = min(avail, max(0, cg[0] - cg[1]))
                if avail < rss:
                    reason = (f"not enough memory on the target node: {avail >> 20} MiB available, "
                              f"{rss >> 20} MiB needed")
        return {"cantmove": reason, "criu": st}

    def op_mig_prepare(self, args: dict[str, Any]) -> dict[str, Any]:
        """Make the images folder and the record; start a page server on 127.0.0.1 if asked."""
        import subprocess

        self._jobs_init()
        mid = _mid_ok(args.get("mid"))
        st = self._criu()
        if not st.get("ready"):
            raise Fail("failed", f"CRIU is not ready on this node: {st.get('reason')}")
        rpath = os.path.join(self._mig_dir(), mid + ".dst.json")
        if os.path.exists(rpath):
            raise Fail("invalid", f"migration {mid} already exists here")
        images = self._img_dir(mid)
        os.makedirs(images, mode=0o700)
        rec = {"mid": mid, "state": "receiving", "images": images, "source": args.get("source"),
               "time": time.time(), "node": self.node_id}
        _write_json(rpath, rec)
        out: dict[str, Any] = {"images": images, "port": None}
        direct = bool(args.get("direct"))
        if args.get("page_server"):
            rfd, wfd = os.pipe()
            # direct: on every address of the node, so the source's dump can connect straight here
            # (127.0.0.1 is among them: the tunnelled fallback still works)
            address = "0.0.0.0" if direct else "127.0.0.1"
            port = _free_port(address)
            try:
                proc = subprocess.Popen(criu_page_server_argv(st["path"], images, port, wfd, address),
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, pass_fds=(wfd,),
                                        preexec_fn=_die_with_parent)
            finally:
                os.close(wfd)
            try:
                import select

                ready, _, _ = select.select([rfd], [], [], 15)
                ok = bool(ready) and os.read(rfd, 1) == b"\0"
            finally:
                os.close(rfd)
            if not ok:
                proc.kill()
                proc.wait()
                log = _read_text(os.path.join(images, "page-server.log")) or ""
                errs = criu_errors(log)
                raise Fail("failed", "criu page-server did not start: " + (errs[-1] if errs else "no reason"))
            self.mig_procs[mid] = proc
            self.children.append(proc)
            rec["page_server"] = proc.pid
            _write_json(rpath, rec)
            out["port"] = port
            if direct:
                probe = _ReachProbe(os.urandom(16).hex().encode())
                self.mig_probes[mid] = probe
                out.update(probe_port=probe.port, token=probe.token.decode())
        return out

    def op_mig_restore(self, args: dict[str, Any]) -> Later:
        """Restore the images (after the page server, if any, has finished); record the result."""
        import subprocess
        import sys as _sys

        self._jobs_init()
        mid = _mid_ok(args.get("mid"))
        rpath = os.path.join(self._mig_dir(), mid + ".dst.json")
        rec = _read_json(rpath)
        if rec is None:
            raise Fail("notfound", f"no migration {mid} on this node")
        if rec["state"] != "receiving":
            raise Fail("invalid", f"migration {mid} is {rec['state']} here: not restoring")
        st = self._criu()
        images = rec["images"]
        rec["state"] = "restoring"
        _write_json(rpath, rec)
        self.restoring.add(mid)
        ps = self.mig_procs.pop(mid, None)
        probe = self.mig_probes.pop(mid, None)
        if probe is not None:
            probe.close()
        job = args.get("job")

        def work() -> dict[str, Any]:
            try:
                return restore()
            finally:
                self.restoring.discard(mid)

        def restore() -> dict[str, Any]:
            if ps is not None:
                try:
                    rc = ps.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    ps.kill()
                    rc = ps.wait()
                if rc != 0:
                    _keep_log(images, "page-server.log", self._mig_dir(), mid)
                    log = _read_text(os.path.join(images, "page-server.log")) or ""
                    errs = criu_errors(log)
                    self._restore_failed(rpath, rec, "criu page-server failed: " +
                                         (errs[-1] if errs else f"exit {rc}"))
            helper = subprocess.Popen([_sys.executable, "-c", RESTORE_HELPER, *criu_restore_argv(st["path"], images)],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, close_fds=True, preexec_fn=_criu_priority)
            rec["helper"] = helper.pid
            rec["helper_start"] = stat_start(helper.pid)
            _write_json(rpath, rec)
            t0 = time.monotonic()
            rc = helper.wait()
            seconds = time.monotonic() - t0
            newpid = _read_int(os.path.join(images, "restore.pid"))
            start = stat_start(newpid) if newpid else None
            if rc != 0 or newpid is None or start is None:
                _keep_log(images, "restore.log", self._mig_dir(), mid)
                log = _read_text(os.path.join(images, "restore.log")) or ""
                errs = criu_errors(log)
                self._restore_failed(rpath, rec, "criu restore failed: " + (errs[-1] if errs else f"exit {rc}"))
            rec.update(state="restored", pid=newpid, start=start, restored=time.time())
            _write_json(rpath, rec)
            out: dict[str, Any] = {"pid": newpid, "start": start, "seconds": round(seconds, 4)}
            if isinstance(job, dict) and job.get("id"):
                jrec = dict(job)
                jrec.update(pid=newpid, start=start, state="running",
                            where=0 if int(jrec.get("home") or 0) == (self.node_id or 0) else self.node_id)
                try:
                    self._save_job(jrec)
                except OSError as exc:
                    _log(f"cannot save job record {jrec['id']}: {exc}")
                with self.lock:
                    self.jobs[jrec["id"]] = jrec
                    self._publish_jobs()
                out["job"] = jrec
            _rmtree(images)
            return out

        return Later(work)

    def _restore_failed(self, rpath: str, rec: dict[str, Any], why: str) -> None:
        rec.update(state="failed", error=why)
        _write_json(rpath, rec)
        _rmtree(rec["images"])
        raise Fail("failed", why)

    def op_mig_cleanup(self, args: dict[str, Any]) -> dict[str, Any]:
        """Target side of an abort: stop a page server, drop the images, fence later restores.
        Never touches a restored process."""
        self._jobs_init()
        mid = _mid_ok(args.get("mid"))
        rpath = os.path.join(self._mig_dir(), mid + ".dst.json")
        rec = _read_json(rpath)
        proc = self.mig_procs.pop(mid, None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        probe = self.mig_probes.pop(mid, None)
        if probe is not None:
            probe.close()
        if rec is None:
            return {"state": "none"}
        if args.get("keep") and rec.get("state") == "receiving":
            return {"state": "receiving"}  # only the page server went: the images come as files
        rec = self._settle_dst(rpath, rec)
        if rec["state"] in ("receiving", "failed"):
            rec["state"] = "aborted"
            _write_json(rpath, rec)
        if rec["state"] != "restoring":
            _rmtree(rec["images"])
        return {"state": rec["state"]}

    def _settle_dst(self, rpath: str, rec: dict[str, Any]) -> dict[str, Any]:
        """A record left "restoring" by an agent that died: decide from the restore's pidfile."""
        if rec.get("state") != "restoring" or rec["mid"] in self.restoring:
            return rec
        helper, hstart = rec.get("helper"), rec.get("helper_start")
        if helper and stat_start(int(helper)) == hstart and proc_state(int(helper)) not in ("Z", ""):
            return rec  # the restore helper of a previous agent is still at work
        newpid = _read_int(os.path.join(rec["images"], "restore.pid"))
        start = stat_start(newpid) if newpid else None
        if newpid and start is not None:
            rec.update(state="restored", pid=newpid, start=start)
        else:
            rec.update(state="failed", error="the restore was interrupted")
        _write_json(rpath, rec)
        return rec

    def op_mig_state(self, args: dict[str, Any]) -> dict[str, Any]:
        """This node's view of a migration: source journal and/or target record, and liveness."""
        self._jobs_init()
        mid = _mid_ok(args.get("mid"))
        out: dict[str, Any] = {"src": None, "dst": None}
        j = _read_json(os.path.join(self._mig_dir(), mid + ".src.json"))
        if j is not None:
            j["alive"] = stat_start(int(j["pid"])) == j["start"] and proc_state(int(j["pid"])) not in ("Z", "")
            j["stopped"] = proc_state(int(j["pid"])) in ("T", "t")
            out["src"] = j
        rpath = os.path.join(self._mig_dir(), mid + ".dst.json")
        r = _read_json(rpath)
        if r is not None:
            r = self._settle_dst(rpath, r)
            if r.get("pid"):
                r["alive"] = stat_start(int(r["pid"])) == r.get("start")
            out["dst"] = r
        return out

    def op_mig_pending(self, args: dict[str, Any]) -> dict[str, Any]:
        """Migrations this node was the source of that are not resolved yet."""
        self._jobs_init()
        out = []
        for name in self._list_mig(".src.json"):
            j = _read_json(os.path.join(self._mig_dir(), name))
            if j and j.get("state") not in MIG_FINAL:
                out.append(j)
        return {"pending": out}


# ---------------------------------------------------------------------------------------------
# the agent


class Agent(JobsMixin):
    """Serves requests from `inp` and pushes samples to `out` (JSON lines)."""

    def __init__(self, inp: Any, out: Any) -> None:
        self.inp = inp
        self.out = out
        self.out_lock = threading.Lock()
        self.lock = threading.Lock()  # sampler state, admin state, start/stop
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.sampler: Sampler | None = None
        self.interval = 1.0
        self.next_due: float | None = None
        self.need_full = True
        self.seq = 0
        self.state_dir: str | None = None
        self.hpc_root = "/proc/hpc"
        self.admin_cache: dict[str, Any] | None = None
        self.thread = threading.Thread(target=self._sample_loop, name="omview-sampler", daemon=True)
        self._jobs_init()

    # -- output

    def send(self, obj: dict[str, Any]) -> None:
        line = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "replace")
        with self.out_lock:
            try:
                self.out.write(line + b"\n")
                self.out.flush()
            except (OSError, ValueError):
                # the workstation went away; nothing left to serve
                os._exit(0)

    # -- admin

    def _admin(self) -> AdminStore | HpcAdmin:
        store = AdminStore(self.state_dir or default_state_dir())
        if os.path.isdir(self.hpc_root):
            return HpcAdmin(self.hpc_root, store)
        return store

    def admin_state(self) -> dict[str, Any]:
        if self.admin_cache is None or os.path.isdir(self.hpc_root):
            self.admin_cache = self._admin().load()
        return dict(self.admin_cache)

    # -- sampling

    def _sample_loop(self) -> None:
        while not self.stop.is_set():
            self.wake.clear()
            with self.lock:
                due = self.next_due
            if due is None:
                self.wake.wait()
                continue
            delay = due - time.monotonic()
            if delay > 0:
                self.wake.wait(delay)
                continue
            with self.lock:
                if self.next_due is None or self.sampler is None:
                    continue
                self._push(self.need_full)
                self.need_full = False
                now = time.monotonic()
                self.next_due += self.interval
                if self.next_due < now:
                    self.next_due = now + self.interval
            try:
                self.jobs_tick()
                self.migrations_tick()
            except Exception as exc:  # bookkeeping must not stop the samples
                _log(f"jobs: {exc!r}")

    def _push(self, full: bool) -> int:
        """Take one sample and write it; called with self.lock held so seq order is line order."""
        assert self.sampler is not None
        admin = self.admin_state()
        self.sampler.criu_text = criu_text(self.criu_status)
        try:
            result = self.sampler.sample(full, admin)
        except Exception as exc:  # a sampling bug must not kill the agent; say so and go on
            _log(f"sample failed: {exc!r}")
            return self.seq
        self.seq += 1
        msg: dict[str, Any] = {"type": "sample", "seq": self.seq, "node": result["node"]}
        if result["procs"] is not None:
            msg["procs"] = result["procs"]
        self.send(msg)
        return self.seq

    # -- requests

    def serve(self) -> None:
        self.thread.start()
        try:
            while True:
                line = self.inp.readline()
                if not line:
                    break  # EOF: the workstation went away
                if not line.strip():
                    continue
                if not self.handle_line(line):
                    break
        finally:
            self.stop.set()
            self.wake.set()
            self.thread.join(timeout=5)
            self.mig_linger()

    def handle_line(self, line: bytes) -> bool:
        """Serve one request line; False when the agent should exit."""
        req_id: Any = None
        try:
            try:
                req = json.loads(line)
            except ValueError as exc:
                raise Fail("invalid", f"not a JSON line: {exc}") from None
            if not isinstance(req, dict):
                raise Fail("invalid", "a request must be a JSON object")
            req_id = req.get("id")
            op = req.get("op")
            args = req.get("args", {})
            if args is None:
                args = {}
            if not isinstance(op, str) or not isinstance(args, dict):
                raise Fail("invalid", "a request needs a string 'op' and an object 'args'")
            handler = getattr(self, "op_" + op, None) if op.isidentifier() else None
            if handler is None:
                raise Fail("invalid", f"unknown op {op!r}")
            result = handler(args)
            if isinstance(result, Later):
                threading.Thread(target=self._reply_later, args=(req_id, result), name=f"omview-{op}",
                                 daemon=True).start()
                return True
        except Fail as exc:
            self.send({"type": "reply", "id": req_id, "ok": False, "error": str(exc), "code": exc.code})
            return True
        except Exception as exc:  # never crash on a request: report it
            _log(f"request failed: {exc!r}")
            self.send({"type": "reply", "id": req_id, "ok": False, "error": f"agent error: {exc}",
                       "code": "failed"})
            return True
        self.send({"type": "reply", "id": req_id, "ok": True, "result": result})
        return op != "shutdown"

    def _reply_later(self, req_id: Any, later: Later) -> None:
        """Run a long op (a CRIU dump or restore) off the request thread; reply when done."""
        try:
            result = later.fn()
        except Fail as exc:
            self.send({"type": "reply", "id": req_id, "ok": False, "error": str(exc), "code": exc.code})
            return
        except Exception as exc:
            _log(f"request failed: {exc!r}")
            self.send({"type": "reply", "id": req_id, "ok": False, "error": f"agent error: {exc}",
                       "code": "failed"})
            return
        self.send({"type": "reply", "id": req_id, "ok": True, "result": result})

    def op_ping(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"time": time.time()}

    def op_shutdown(self, args: dict[str, Any]) -> dict[str, Any]:
        return {}

    def op_start(self, args: dict[str, Any]) -> dict[str, Any]:
        interval = args.get("interval", 1)
        number = isinstance(interval, (int, float)) and not isinstance(interval, bool)
        if not number or not 0.05 <= interval <= 3600:
            raise Fail("invalid", "interval must be a number of seconds from 0.05 to 3600")
        for key in ("state_dir", "hpc_root", "proc_root"):
            if key in args and not isinstance(args[key], str):
                raise Fail("invalid", f"{key} must be a path")
        node_id = args.get("node_id")
        if node_id is not None and (isinstance(node_id, bool) or not isinstance(node_id, int)):
            raise Fail("invalid", "node_id must be an integer")
        procs = args.get("procs", True)
        if not isinstance(procs, bool):
            raise Fail("invalid", "procs must be true or false")
        with self.lock:
            if self.sampler is not None:
                self.sampler.close()
            self.state_dir = args.get("state_dir") or self.state_dir
            self.hpc_root = args.get("hpc_root", "/proc/hpc")
            self.admin_cache = None
            self.sampler = Sampler(hpc_root=self.hpc_root, node_id=node_id,
                                   proc_root=args.get("proc_root", "/proc"), procs=procs)
            self.interval = float(interval)
            self.need_full = True
            self.next_due = time.monotonic()
            backend = self.sampler.backend
        self.jobs_start(args)
        self.wake.set()
        return {"hostname": socket.gethostname(), "backend": backend}

    def op_sample_now(self, args: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if self.sampler is None:
                raise Fail("invalid", "send start first")
            seq = self._push(True)
            self.need_full = False
        return {"seq": seq}

    def op_get_admin(self, args: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            return self.admin_state()

    def op_set_admin(self, args: dict[str, Any]) -> dict[str, Any]:
        changes = validate_admin(args)
        with self.lock:
            target = self._admin()
            if isinstance(target, HpcAdmin):
                target.save(changes)
            else:
                state = self.admin_state()
                state.update(changes)
                try:
                    target.save(state)
                except PermissionError as exc:
                    raise Fail("denied", f"cannot save the admin state: {exc}") from None
                except OSError as exc:
                    raise Fail("failed", f"cannot save the admin state: {exc}") from None
            self.admin_cache = None
            return self.admin_state()

    @staticmethod
    def _target(args: dict[str, Any]) -> tuple[int, int]:
        pid, start = args.get("pid"), args.get("start")
        for name, value in (("pid", pid), ("start", start)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "pid" else 0):
                raise Fail("invalid", f"{name} must be a non-negative integer")
        assert isinstance(pid, int) and isinstance(start, int)
        return pid, start

    @staticmethod
    def _check_alive(pid: int, start: int) -> None:
        if stat_start(pid) != start:
            raise Fail("stale", f"process {pid} is gone or its PID was reused (start time differs); "
                                "refresh and try again")

    def op_signal(self, args: dict[str, Any]) -> dict[str, Any]:
        pid, start = self._target(args)
        name = args.get("sig")
        if not isinstance(name, str) or name.upper().removeprefix("SIG") not in SIGNALS:
            raise Fail("invalid", f"sig must be one of {', '.join(SIGNALS)}")
        sig = SIGNALS[name.upper().removeprefix("SIG")]
        pidfd = -1
        try:
            # With a pidfd the check and the kill address the same process even if the PID is
            # reused in between: the fd pins the process we checked.
            if hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal"):
                try:
                    pidfd = os.pidfd_open(pid)
                except ProcessLookupError:
                    raise Fail("stale", f"process {pid} is gone; refresh and try again") from None
                except OSError:
                    pidfd = -1
            self._check_alive(pid, start)
            if pidfd >= 0:
                signal.pidfd_send_signal(pidfd, sig)
            else:
                os.kill(pid, sig)
        except PermissionError:
            raise Fail("denied", f"not allowed to send SIG{name.upper().removeprefix('SIG')} "
                                 f"to process {pid}") from None
        except ProcessLookupError:
            raise Fail("stale", f"process {pid} is gone; refresh and try again") from None
        finally:
            if pidfd >= 0:
                os.close(pidfd)
        return {}

    def op_renice(self, args: dict[str, Any]) -> dict[str, Any]:
        pid, start = self._target(args)
        nice = args.get("nice")
        if isinstance(nice, bool) or not isinstance(nice, int) or not -20 <= nice <= 19:
            raise Fail("invalid", "nice must be an integer from -20 to 19")
        self._check_alive(pid, start)
        # setpriority(PRIO_PROCESS, pid) changes one thread on Linux; renice every thread so the
        # whole process gets the new priority.
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            tids = [pid]
        try:
            for tid in tids:
                try:
                    os.setpriority(os.PRIO_PROCESS, tid, nice)
                except ProcessLookupError:
                    if tid == pid:
                        raise
        except PermissionError:
            raise Fail("denied", f"not allowed to renice process {pid} to {nice}") from None
        except ProcessLookupError:
            raise Fail("stale", f"process {pid} is gone; refresh and try again") from None
        with self.lock:
            if self.sampler is not None:
                self.sampler.invalidate(pid)
        data = _read(f"/proc/{pid}/stat", 1024)
        try:
            now = int(parse_stat(data or b"")[1][16])
        except (ValueError, IndexError):
            now = nice
        return {"nice": now}


def main() -> None:
    """Run the agent on this node's stdin/stdout until EOF or `shutdown`."""
    global _psutil
    try:
        import psutil
    except ImportError:
        sys.stdout.write(json.dumps(_FATAL_PSUTIL) + "\n")
        sys.stdout.flush()
        sys.exit(3)
    _psutil = psutil
    _raise_agent_priority()
    agent = Agent(sys.stdin.buffer, sys.stdout.buffer)
    agent.send({
        "type": "hello", "version": PROTOCOL_VERSION, "hostname": socket.gethostname(),
        "pid": os.getpid(), "backend": "hpc" if os.path.isdir("/proc/hpc") else "linux",
        "python": platform.python_version(), "psutil": psutil.__version__,
    })
    agent.serve()
    # The sampler may be stuck writing to a workstation that stopped reading; a normal interpreter
    # exit would then wait on the stdout lock. Everything worth keeping (admin.json) is on disk.
    os._exit(0)


if __name__ in ("__main__", AGENT_NAME):
    main()
