"""The test cluster: a real multi-node cluster on this machine (root only, no mocks).

Every node is
- a network namespace ``<name>-n<i>`` with a veth pair whose host side ``<name>v<i>`` sits on
  the bridge ``<name>br0`` (the bridge holds the subnet's last host address, ``.254`` of a /24);
  the node has ``.<i>``, ``lo`` up and no default route: nothing leaves the machine, no NAT;
- a PID + UTS + mount namespace whose PID 1 is ``testbed_init.py`` (own process list, own
  hostname ``node<i>``, /proc remounted), sharing the filesystem with the host like NFS;
- its own OpenSSH server (``sshd -D``, child of the init) with its own ed25519 host key,
  listening on the node address, port 22, accepting the testbed's client key for root;
- optionally a cgroup (v1 or v2, detected) with a CPU quota and a memory limit, entered by the
  init before it starts sshd, so every process of the node is inside.

Everything lives in ``/var/lib/omview/testbed/<name>/`` (override the parent with
``OMVIEW_TESTBED_BASE``): the client key pair ``id_ed25519``, ``authorized_keys``, ``known_hosts``,
``cluster.toml`` (our settings format), ``testbed.json`` (this module's description) and one
``node<i>/`` per node (host key, sshd_config, logs, ``agent/`` state dir, ``home/``).

SSH sessions on a node get ``HOME=node<i>/home`` (a per-node root home: the workstation's
~/.bashrc and ~/.ssh stay out) and ``PATH=node_path``, by default this Python's bin dir first,
so ``python3`` on a node is the interpreter running the suite (with psutil), as on a cluster
with a shared /usr. Pass ``node_path="/usr/bin:/bin"`` to get the bare system python3.

The init is started with ``nsenter --net=/run/netns/NS unshare --pid --fork --mount-proc --uts``
rather than ``ip netns exec``: the latter remounts /sys and so hides /sys/fs/cgroup from the
node, and agents must be able to read their cgroup limits there.

``up()`` on a name that already exists tears the old testbed down first (idempotent "give me a
fresh cluster"). ``down()`` finds everything by name (namespaces, links, cgroups, processes in
them), so it also cleans up after a crash with no or a stale ``testbed.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_BASE",
    "NodeHealth",
    "NodeProcess",
    "Testbed",
    "TestbedError",
    "TestbedNode",
    "check",
    "claim",
    "down",
    "hang_sshd",
    "leftovers",
    "load",
    "node_argv",
    "node_exec",
    "node_pids",
    "node_run",
    "resume_sshd",
    "root_dir",
    "ssh_argv",
    "start_sshd",
    "status",
    "stop_sshd",
    "up",
]

DEFAULT_BASE = "/var/lib/omview/testbed"
CFS_PERIOD_US = 100_000
_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,9}$")
_STD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_CGROUP_ROOT = Path("/sys/fs/cgroup")
_INIT_SCRIPT = Path(__file__).with_name("testbed_init.py")


class TestbedError(Exception):
    """Any failure of the testbed; the message says what to do."""

    __test__ = False  # not a pytest test class


@dataclass
class TestbedNode:
    __test__ = False

    id: int
    name: str
    address: str
    netns: str
    init_pid: int
    cpu_quota: float | None
    mem_mb: int | None
    state_dir: str
    # extras (defaults keep the record readable when older files lack them)
    init_start: int = 0  # field 22 of /proc/PID/stat of init_pid: guards against a reused PID
    launcher_pid: int = 0  # the waiting `unshare` parent (outside the node's PID namespace)
    node_dir: str = ""
    sshd_config: str = ""
    cgroups: list[str] = field(default_factory=list)  # one dir per hierarchy, empty = none


@dataclass
class Testbed:
    __test__ = False

    name: str
    root: Path
    subnet: str
    nodes: list[TestbedNode]
    cluster_file: Path
    known_hosts: Path
    key_file: Path
    bridge: str = ""
    bridge_address: str = ""
    sshd: str = ""
    cgroup_version: int = 0  # 0 = no cgroups used, 1 or 2
    node_path: str = ""  # PATH of ssh sessions on the nodes

    def node(self, node_id: int) -> TestbedNode:
        for n in self.nodes:
            if n.id == node_id:
                return n
        ids = [n.id for n in self.nodes]
        raise TestbedError(f"testbed {self.name!r} has no node {node_id} (nodes: {ids})")


@dataclass
class NodeHealth:
    init_alive: bool
    sshd_ready: bool  # accepts TCP on port 22 and sends an SSH banner


# ---------------------------------------------------------------- names and small helpers


def _base() -> Path:
    return Path(os.environ.get("OMVIEW_TESTBED_BASE") or DEFAULT_BASE)


def root_dir(name: str) -> Path:
    return _base() / name


def _bridge(name: str) -> str:
    return f"{name}br0"


def _veth(name: str, i: int) -> str:
    return f"{name}v{i}"


def _netns(name: str, i: int) -> str:
    return f"{name}-n{i}"


def _cg_dirname(name: str) -> str:
    return f"omview-{name}"


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise TestbedError(
            f"bad testbed name {name!r}: use 1-10 lowercase letters/digits starting with a letter "
            "(it prefixes interface names, which are limited to 15 characters)"
        )


def _run(
    argv: Sequence[str], *, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    try:
        cp = subprocess.run(list(argv), capture_output=True, text=True, input=input, timeout=60)
    except FileNotFoundError as exc:
        raise TestbedError(f"{argv[0]} not found: {exc}") from exc
    if check and cp.returncode != 0:
        why = cp.stderr.strip() or cp.stdout.strip()
        raise TestbedError(f"`{' '.join(argv)}` failed ({cp.returncode}): {why}")
    return cp


def _need_root() -> None:
    if os.geteuid() != 0:
        raise TestbedError(
            "the testbed must run as root (it creates network namespaces, a bridge and cgroups): "
            "run it with sudo"
        )


def _tool(name: str, package: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/sbin") / name) if p.exists()), None
    )
    if not found:
        raise TestbedError(f"{name} not found: install {package}")
    return found


def _proc_start(pid: int) -> int | None:
    """Start time (field 22 of /proc/PID/stat) or None when the process is gone or a zombie."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = data[data.rindex(")") + 2 :].split()
    if rest[0] in ("Z", "X"):
        return None
    return int(rest[19])


def _ns_id(pid: int | str, kind: str) -> tuple[int, int] | None:
    try:
        st = os.stat(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _all_pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def _pids_in_ns(kind: str, ids: set[tuple[int, int]]) -> list[int]:
    """Live (non-zombie) processes whose namespace of `kind` is one of `ids`."""
    if not ids:
        return []
    out = []
    for pid in _all_pids():
        if pid == os.getpid():
            continue
        if _ns_id(pid, kind) in ids and _proc_start(pid) is not None:
            out.append(pid)
    return out


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _is_pidns_init(pid: int) -> bool:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                parts = line.split()[1:]
                return len(parts) > 1 and parts[-1] == "1"
    except OSError:
        pass
    return False


def _wait_for(cond: Any, timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


def _tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


# ---------------------------------------------------------------- subnet


def _used_networks() -> list[tuple[ipaddress.IPv4Network, str]]:
    used: list[tuple[ipaddress.IPv4Network, str]] = []
    for line in _run(["ip", "-4", "-o", "addr", "show"]).stdout.splitlines():
        parts = line.split()
        if "inet" in parts:
            cidr = parts[parts.index("inet") + 1]
            used.append((ipaddress.IPv4Interface(cidr).network, f"address {cidr} on {parts[1]}"))
    for line in _run(["ip", "-4", "route", "show"]).stdout.splitlines():
        dest = line.split()[0] if line.strip() else ""
        if not dest or dest == "default":
            continue
        with contextlib.suppress(ValueError):
            net = ipaddress.IPv4Network(dest, strict=False)
            if net.prefixlen > 0:
                used.append((net, f"route {line.strip()}"))
    return used


def _conflict(net: ipaddress.IPv4Network, used: Iterable[tuple[ipaddress.IPv4Network, str]]) -> str | None:
    for other, what in used:
        if net.overlaps(other):
            return what
    return None


def _pick_subnet(name: str, n: int, subnet: str | None) -> ipaddress.IPv4Network:
    used = _used_networks()
    wanted = subnet or os.environ.get("OMVIEW_TESTBED_SUBNET")
    if wanted:
        try:
            net = ipaddress.IPv4Network(wanted, strict=False)
        except ValueError as exc:
            raise TestbedError(f"bad subnet {wanted!r}: {exc} (give e.g. 10.213.5.0/24)") from exc
        if net.prefixlen > 24 or net.prefixlen < 8:
            raise TestbedError(f"subnet {net} must be between /8 and /24")
        if n > net.num_addresses - 3:
            raise TestbedError(f"subnet {net} is too small for {n} nodes")
        what = _conflict(net, used)
        if what:
            raise TestbedError(
                f"subnet {net} is in use here ({what}): pass another --subnet / OMVIEW_TESTBED_SUBNET"
            )
        return net
    start = zlib.crc32(name.encode()) % 256
    for k in range(256):
        net = ipaddress.IPv4Network(f"10.213.{(start + k) % 256}.0/24")
        if _conflict(net, used) is None:
            return net
    raise TestbedError("no free /24 under 10.213.0.0/16: pass --subnet / OMVIEW_TESTBED_SUBNET")


# ---------------------------------------------------------------- cgroups


def _cgroup_hierarchies() -> tuple[int, list[Path]]:
    """(version, hierarchy roots to create node cgroups in); (0, []) when unusable."""
    if (_CGROUP_ROOT / "cgroup.controllers").exists():
        return 2, [_CGROUP_ROOT]
    cpus = (_CGROUP_ROOT / "cpu", _CGROUP_ROOT / "cpu,cpuacct")
    cpu = next((p for p in cpus if (p / "cgroup.procs").exists()), None)
    mem = _CGROUP_ROOT / "memory"
    if cpu is not None and (mem / "cgroup.procs").exists():
        return 1, [cpu, mem]
    return 0, []


def _cg_candidates(name: str) -> list[Path]:
    """Every place a testbed of this name may have its cgroup parent (for down after a crash)."""
    out: list[Path] = []
    for base in (_CGROUP_ROOT, _CGROUP_ROOT / "cpu", _CGROUP_ROOT / "cpu,cpuacct", _CGROUP_ROOT / "memory",
                 _CGROUP_ROOT / "unified"):
        d = base / _cg_dirname(name)
        if d.is_dir() and d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as exc:
        raise TestbedError(
            f"cannot write {value!r} to {path}: {exc} (run without cpu_quota/mem_mb to skip cgroups)"
        ) from exc


def _make_cgroups(name: str, version: int, roots: list[Path], node_id: int, cpu_quota: float | None,
                  mem_mb: int | None) -> list[str]:
    dirs: list[str] = []
    if version == 2:
        root = roots[0]
        enabled = (root / "cgroup.subtree_control").read_text().split()
        for ctl in ("cpu", "memory"):
            if ctl not in enabled:
                _write(root / "cgroup.subtree_control", f"+{ctl}")
        parent = root / _cg_dirname(name)
        parent.mkdir(exist_ok=True)
        _write(parent / "cgroup.subtree_control", "+cpu +memory")
        d = parent / f"node{node_id}"
        d.mkdir(exist_ok=True)
        if cpu_quota is not None:
            _write(d / "cpu.max", f"{round(cpu_quota * CFS_PERIOD_US)} {CFS_PERIOD_US}")
        if mem_mb is not None:
            _write(d / "memory.max", str(mem_mb * 1024 * 1024))
            with contextlib.suppress(OSError):
                (d / "memory.swap.max").write_text("0")
        return [str(d)]
    for root in roots:
        d = root / _cg_dirname(name) / f"node{node_id}"
        d.mkdir(parents=True, exist_ok=True)
        dirs.append(str(d))
        if (d / "cpu.cfs_quota_us").exists():
            _write(d / "cpu.cfs_period_us", str(CFS_PERIOD_US))
            if cpu_quota is not None:
                _write(d / "cpu.cfs_quota_us", str(round(cpu_quota * CFS_PERIOD_US)))
        if (d / "memory.limit_in_bytes").exists() and mem_mb is not None:
            _write(d / "memory.limit_in_bytes", str(mem_mb * 1024 * 1024))
            with contextlib.suppress(OSError):  # only with swap accounting
                (d / "memory.memsw.limit_in_bytes").write_text(str(mem_mb * 1024 * 1024))
    return dirs


def _cgroup_procs(d: Path) -> list[int]:
    try:
        return [int(x) for x in (d / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def _remove_cgroup_tree(parent: Path, timeout: float = 5.0) -> list[str]:
    """rmdir parent/node*/ and parent; returns what could not be removed."""
    problems: list[str] = []

    def try_rm(d: Path) -> bool:
        try:
            d.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                return False
            raise

    children = sorted(p for p in parent.iterdir() if p.is_dir()) if parent.is_dir() else []
    for child in children:
        if not _wait_for(lambda c=child: try_rm(c), timeout, 0.05):
            problems.append(f"cgroup {child} still busy (processes: {_cgroup_procs(child)})")
    if parent.exists() and not _wait_for(lambda: try_rm(parent), timeout, 0.05):
        problems.append(f"cgroup {parent} could not be removed")
    return problems


# ---------------------------------------------------------------- description files


def _to_json(tb: Testbed) -> str:
    d = dataclasses.asdict(tb)
    for k in ("root", "cluster_file", "known_hosts", "key_file"):
        d[k] = str(d[k])
    return json.dumps(d, indent=2) + "\n"


def _save(tb: Testbed) -> None:
    path = tb.root / "testbed.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(_to_json(tb))
    os.replace(tmp, path)


def load(name: str = "omtb") -> Testbed:
    """Read the saved description of testbed `name` (no liveness check: see check())."""
    path = root_dir(name) / "testbed.json"
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise TestbedError(f"no testbed {name!r} ({path} missing): start one: `omctl testbed up`") from exc
    except (OSError, ValueError) as exc:
        raise TestbedError(f"cannot read {path}: {exc}: run `omctl testbed down` and up again") from exc
    try:
        node_fields = {f.name for f in dataclasses.fields(TestbedNode)}
        nodes = [TestbedNode(**{k: v for k, v in n.items() if k in node_fields}) for n in d.pop("nodes")]
        tb_fields = {f.name for f in dataclasses.fields(Testbed)}
        d = {k: v for k, v in d.items() if k in tb_fields}
        for k in ("root", "cluster_file", "known_hosts", "key_file"):
            d[k] = Path(d[k])
        return Testbed(nodes=nodes, **d)
    except (KeyError, TypeError) as exc:
        raise TestbedError(f"{path} is not a testbed description ({exc}): run `omctl testbed down`") from exc


def _toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string of a path is a valid TOML basic string


def _cluster_toml(tb: Testbed) -> str:
    out = [
        "[cluster]",
        f"name = {_toml_str(tb.name)}",
        "interval = 1.0",
        f"known_hosts = {_toml_str(str(tb.known_hosts))}",
        "",
        "[defaults]",
        'user = "root"',
        "port = 22",
        f"key = {_toml_str(str(tb.key_file))}",
    ]
    for n in tb.nodes:
        out += [
            "",
            "[[node]]",
            f"id = {n.id}",
            f"name = {_toml_str(n.name)}",
            f"address = {_toml_str(n.address)}",
            f"state_dir = {_toml_str(n.state_dir)}",
        ]
    return "\n".join(out) + "\n"


def _sshd_config(node_dir: Path, address: str, authorized_keys: Path, node_path: str) -> str:
    def q(p: object) -> str:
        return f'"{p}"'

    return "\n".join([
        "# written by omview.core.testbed; one sshd per testbed node",
        f"ListenAddress {address}:22",
        f"HostKey {q(node_dir / 'ssh_host_ed25519_key')}",
        f"PidFile {q(node_dir / 'sshd.pid')}",
        f"AuthorizedKeysFile {q(authorized_keys)}",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "UseDNS no",
        "StrictModes no",
        "MaxStartups 100:30:200",
        "MaxSessions 64",
        "LogLevel ERROR",
        "Subsystem sftp internal-sftp",
        "AcceptEnv none",
        "PrintMotd no",
        # HOME: a per-node home (like /root on a real node), so the workstation's ~/.bashrc and
        # ~/.ssh do not leak into node sessions and PATH stays node_path
        f'SetEnv "HOME={node_dir / "home"}" "PATH={node_path}"',
        "",
    ])


def _keygen(path: Path, comment: str) -> str:
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    return path.with_name(path.name + ".pub").read_text().strip()


def _default_node_path() -> str:
    """PATH on the nodes: this Python's bin dir first (so `python3` on a node is the one running
    the suite, with psutil), then the standard system PATH."""
    bindir = os.path.dirname(sys.executable)
    if bindir and os.path.exists(os.path.join(bindir, "python3")) and bindir not in _STD_PATH.split(":"):
        return f"{bindir}:{_STD_PATH}"
    return _STD_PATH


# ---------------------------------------------------------------- discovery of leftovers


def _our_netns(name: str) -> list[str]:
    cp = _run(["ip", "netns", "list"], check=False)
    rx = re.compile(rf"^{re.escape(name)}-n\d+$")
    return [ln.split()[0] for ln in cp.stdout.splitlines() if ln.split() and rx.match(ln.split()[0])]


def _our_links(name: str) -> list[str]:
    cp = _run(["ip", "-o", "link", "show"], check=False)
    rx = re.compile(rf"^({re.escape(name)}v\d+|{re.escape(_bridge(name))})$")
    out = []
    for ln in cp.stdout.splitlines():
        parts = ln.split(":", 2)
        if len(parts) >= 2:
            ifname = parts[1].strip().split("@")[0]
            if rx.match(ifname):
                out.append(ifname)
    return out


def leftovers(name: str = "omtb") -> list[str]:
    """What of testbed `name` exists on this machine (empty = nothing)."""
    _check_name(name)
    found = [f"netns {n}" for n in _our_netns(name)]
    found += [f"link {n}" for n in _our_links(name)]
    found += [f"cgroup {d}" for d in _cg_candidates(name)]
    if root_dir(name).exists():
        found.append(f"dir {root_dir(name)}")
    return found


# ---------------------------------------------------------------- locks


_held: set[str] = set()  # names whose operation lock this process holds (up calls down inside)


@contextlib.contextmanager
def _op_lock(name: str) -> Iterator[None]:
    """Serialise up/down of one name across processes (flock on <base>/.<name>.lock)."""
    if name in _held:
        yield
        return
    base = _base()
    base.mkdir(parents=True, exist_ok=True)
    fd = os.open(base / f".{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _held.add(name)
        yield
    finally:
        _held.discard(name)
        os.close(fd)


@contextlib.contextmanager
def claim(prefix: str, slots: int = 10) -> Iterator[str]:
    """Hold a testbed name for this process: `prefix` if free, else prefix1 … prefix{slots-1}.

    For test sessions that run at the same time on one machine: each gets its own testbed instead
    of tearing down the other's. A name is held by an flock on <base>/.<name>.claim for the life
    of the `with`; remains of a free name come from a crash and up() removes them.
    """
    base = _base()
    base.mkdir(parents=True, exist_ok=True)
    for i in range(slots):
        name = prefix if i == 0 else f"{prefix}{i}"
        _check_name(name)
        fd = os.open(base / f".{name}.claim", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            yield name
        finally:
            os.close(fd)
        return
    raise TestbedError(f"all {slots} testbed names {prefix}, {prefix}1, … are in use by other processes")


# ---------------------------------------------------------------- up


_launchers: dict[str, list[subprocess.Popen[bytes]]] = {}  # reaped by down() in this process


def _find_init(launcher: subprocess.Popen[bytes], log: Path | None = None, timeout: float = 10.0) -> int:
    """Host PID of the init: the child that `unshare --fork` started."""
    found: list[int] = []

    def look() -> bool:
        if launcher.poll() is not None:
            return True
        try:
            kids = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split()
        except OSError:
            kids = []
        if not kids:
            kids = [str(p) for p in _all_pids() if _ppid(p) == launcher.pid]
        if kids:
            found.append(int(kids[0]))
            return True
        return False

    _wait_for(look, timeout)
    if not found and log is not None:
        raise TestbedError(f"node init did not start (exit {launcher.poll()}):\n{_tail(log)}")
    if not found:
        raise TestbedError(f"node init did not start (launcher {launcher.pid}, exit {launcher.poll()})")
    return found[0]


def _ppid(pid: int) -> int:
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
        return int(data[data.rindex(")") + 2 :].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def _banner(address: str, timeout: float = 1.0) -> bool:
    """True when an SSH server answers on address:22 with its banner."""
    try:
        with socket.create_connection((address, 22), timeout=timeout) as s:
            data = b""
            while b"\n" not in data and len(data) < 512:
                chunk = s.recv(512)
                if not chunk:
                    break
                data += chunk
            if not data.startswith(b"SSH-"):
                return False
            # identify ourselves before closing, so sshd does not log a kex_exchange_identification error
            with contextlib.suppress(OSError):
                s.sendall(b"SSH-2.0-omview_testbed_probe\r\n")
            return True
    except OSError:
        return False


def up(
    n: int,
    *,
    name: str = "omtb",
    subnet: str | None = None,
    cpu_quota: Sequence[float | None] | None = None,
    mem_mb: Sequence[int | None] | None = None,
    node_path: str | None = None,
    timeout: float = 30.0,
) -> Testbed:
    """Start a testbed of `n` nodes and return its description once every sshd answers.

    An existing testbed of the same name is torn down first. `cpu_quota[i]`/`mem_mb[i]` (CPUs as a
    float, MiB; None = unlimited) apply to node i+1. `node_path` is PATH in ssh sessions on the
    nodes (default: this Python's bin dir, then the system PATH). On any failure everything started
    so far is removed again and TestbedError says why.
    """
    _need_root()
    _check_name(name)
    _tool("sshd", "openssh-server")
    for tool, pkg in (("ip", "iproute2"), ("unshare", "util-linux"), ("nsenter", "util-linux"),
                      ("ssh-keygen", "openssh-client")):
        _tool(tool, pkg)
    if not _INIT_SCRIPT.exists():
        raise TestbedError(f"{_INIT_SCRIPT} is missing: reinstall omview")
    if not 1 <= n <= 1000:
        raise TestbedError(f"a testbed has 1 to 1000 nodes (got {n})")
    quotas: list[float | None] = list(cpu_quota) if cpu_quota is not None else [None] * n
    mems: list[int | None] = list(mem_mb) if mem_mb is not None else [None] * n
    if len(quotas) != n or len(mems) != n:
        raise TestbedError(f"cpu_quota and mem_mb need one entry per node ({n}), None for no limit")
    for q in quotas:
        if q is not None and q <= 0:
            raise TestbedError(f"cpu quota {q} must be > 0 CPUs")
    for m in mems:
        if m is not None and m < 16:
            raise TestbedError(f"memory limit {m} MiB is too small for sshd (>= 16)")

    with _op_lock(name):
        return _up_locked(name, n, subnet, quotas, mems, node_path, timeout)


def _up_locked(name: str, n: int, subnet: str | None, quotas: list[float | None], mems: list[int | None],
               node_path: str | None, timeout: float) -> Testbed:
    sshd = _tool("sshd", "openssh-server")
    if leftovers(name):
        down(name)
    net = _pick_subnet(name, n, subnet)
    use_cg = any(q is not None for q in quotas) or any(m is not None for m in mems)
    cg_version, cg_roots = _cgroup_hierarchies() if use_cg else (0, [])
    if use_cg and not cg_version:
        raise TestbedError("CPU/memory limits need cgroups (v1 cpu+memory or v2) under /sys/fs/cgroup: "
                           "drop cpu_quota/mem_mb or mount cgroups")

    if n > net.num_addresses - 3:
        raise TestbedError(f"subnet {net} is too small for {n} nodes: pass a larger --subnet")
    root = root_dir(name)
    tb = Testbed(
        name=name, root=root, subnet=str(net), nodes=[], cluster_file=root / "cluster.toml",
        known_hosts=root / "known_hosts", key_file=root / "id_ed25519", bridge=_bridge(name),
        bridge_address=str(net.broadcast_address - 1), sshd=sshd, cgroup_version=cg_version,
        node_path=node_path or _default_node_path(),
    )
    try:
        _up(tb, n, quotas, mems, cg_roots, net, timeout)
    except BaseException as exc:
        try:
            down(name)
        except TestbedError as exc2:
            exc.add_note(f"cleanup after the failure also failed: {exc2}")
        if isinstance(exc, TestbedError | KeyboardInterrupt):
            raise
        raise TestbedError(f"testbed {name!r} failed to start: {exc!r}") from exc
    return tb


def _up(tb: Testbed, n: int, quotas: list[float | None], mems: list[int | None], cg_roots: list[Path],
        net: ipaddress.IPv4Network, timeout: float) -> None:
    root = tb.root
    root.parent.mkdir(parents=True, exist_ok=True)
    root.mkdir(mode=0o700)
    os.chmod(root, 0o700)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir

    client_pub = _keygen(tb.key_file, f"omview-testbed-{tb.name}")
    authorized = root / "authorized_keys"
    authorized.write_text(client_pub + "\n")
    known_lines = []
    for i in range(1, n + 1):
        nd = root / f"node{i}"
        (nd / "agent").mkdir(parents=True, mode=0o700)
        (nd / "home").mkdir(mode=0o700)
        address = str(net.network_address + i)
        host_pub = _keygen(nd / "ssh_host_ed25519_key", f"node{i}")
        known_lines.append(f"{address} {' '.join(host_pub.split()[:2])}")
        cfg = nd / "sshd_config"
        cfg.write_text(_sshd_config(nd, address, authorized, tb.node_path))
        tb.nodes.append(TestbedNode(
            id=i, name=f"node{i}", address=address, netns=_netns(tb.name, i), init_pid=0,
            cpu_quota=quotas[i - 1], mem_mb=mems[i - 1], state_dir=str(nd / "agent"),
            node_dir=str(nd), sshd_config=str(cfg),
        ))
    tb.known_hosts.write_text("\n".join(known_lines) + "\n")
    tb.cluster_file.write_text(_cluster_toml(tb))
    for node in tb.nodes:
        cp = _run([tb.sshd, "-t", "-f", node.sshd_config], check=False)
        if cp.returncode != 0:
            raise TestbedError(f"sshd rejects {node.sshd_config}: {cp.stderr.strip() or cp.stdout.strip()}")
    _save(tb)

    # network: bridge with the last host address, one netns + veth per node
    prefix = net.prefixlen
    _run(["ip", "link", "add", tb.bridge, "type", "bridge"])
    _run(["ip", "addr", "add", f"{tb.bridge_address}/{prefix}", "dev", tb.bridge])
    _run(["ip", "link", "set", tb.bridge, "up"])
    for node in tb.nodes:
        veth = _veth(tb.name, node.id)
        _run(["ip", "netns", "add", node.netns])
        _run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", node.netns])
        _run(["ip", "link", "set", veth, "master", tb.bridge, "up"])
        _run(["ip", "-n", node.netns, "addr", "add", f"{node.address}/{prefix}", "dev", "eth0"])
        _run(["ip", "-n", node.netns, "link", "set", "eth0", "up"])
        _run(["ip", "-n", node.netns, "link", "set", "lo", "up"])

    # cgroups
    for node in tb.nodes:
        if tb.cgroup_version:
            node.cgroups = _make_cgroups(tb.name, tb.cgroup_version, cg_roots, node.id, node.cpu_quota,
                                         node.mem_mb)
    _save(tb)

    # the inits: start all, move each into its cgroups, then let it start sshd
    unshare, nsenter = _tool("unshare", "util-linux"), _tool("nsenter", "util-linux")
    procs = _launchers.setdefault(tb.name, [])
    for node in tb.nodes:
        nd = Path(node.node_dir)
        argv = [
            nsenter, f"--net=/run/netns/{node.netns}", "--",
            unshare, "--pid", "--fork", "--mount-proc", "--uts", "--",
            sys.executable, "-I", "-u", str(_INIT_SCRIPT), "--hostname", node.name, "--sshd", tb.sshd,
            "--sshd-config", node.sshd_config, "--sshd-log", str(nd / "sshd.log"),
        ]
        with open(nd / "init.log", "ab") as log:
            p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True, close_fds=True, cwd="/")
        procs.append(p)
        node.launcher_pid = p.pid
        node.init_pid = _find_init(p, nd / "init.log")
        node.init_start = _proc_start(node.init_pid) or 0
        _save(tb)
        if p.poll() is not None:
            raise TestbedError(f"node {node.id}'s init ended at once:\n{_tail(nd / 'init.log')}")
        for d in node.cgroups:
            _write(Path(d) / "cgroup.procs", str(node.init_pid))
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        p.stdin.close()
    _save(tb)

    # wait for every sshd
    pending = {node.id for node in tb.nodes}
    deadline = time.monotonic() + timeout
    while pending:
        for node in tb.nodes:
            if node.id not in pending:
                continue
            if _proc_start(node.init_pid) != node.init_start:
                raise TestbedError(f"node {node.id}'s init died:\n{_tail(Path(node.node_dir) / 'init.log')}")
            if _banner(node.address, 0.5):
                pending.discard(node.id)
        if pending and time.monotonic() > deadline:
            node = tb.node(min(pending))
            nd = Path(node.node_dir)
            raise TestbedError(
                f"sshd of node(s) {sorted(pending)} did not answer on port 22 within {timeout:.0f} s; "
                f"node {node.id} init.log:\n{_tail(nd / 'init.log')}\nsshd.log:\n{_tail(nd / 'sshd.log')}"
            )
        if pending:
            time.sleep(0.02)


# ---------------------------------------------------------------- down / status


def down(name: str = "omtb", timeout: float = 15.0) -> None:
    """Remove testbed `name` completely: processes, namespaces, links, cgroups, its directory.

    Works from the saved description and, for whatever it misses (crash, stale json), by name.
    Only kills processes that belong to the testbed: its inits (PID checked against the recorded
    start time), and processes in its network namespaces or cgroups. Nothing there: no-op.
    """
    _need_root()
    _check_name(name)
    with _op_lock(name):
        _down_locked(name, timeout)


def _down_locked(name: str, timeout: float) -> None:
    problems: list[str] = []
    tb: Testbed | None = None
    with contextlib.suppress(TestbedError):
        tb = load(name)

    netns_ids: set[tuple[int, int]] = set()
    for ns in _our_netns(name):
        with contextlib.suppress(OSError):
            st = os.stat(f"/run/netns/{ns}")
            netns_ids.add((st.st_dev, st.st_ino))
    cg_dirs: list[Path] = []
    for parent in _cg_candidates(name):
        cg_dirs += [p for p in parent.iterdir() if p.is_dir()]
    inits: list[int] = []
    if tb is not None:
        for node in tb.nodes:
            if node.init_pid and node.init_start and _proc_start(node.init_pid) == node.init_start:
                inits.append(node.init_pid)
                init_net = _ns_id(node.init_pid, "net")
                if init_net:
                    netns_ids.add(init_net)

    def ours() -> set[int]:
        pids = set(_pids_in_ns("net", netns_ids))
        for d in cg_dirs:
            pids.update(p for p in _cgroup_procs(d) if _proc_start(p) is not None)
        pids.update(p for p in inits if _proc_start(p) is not None)
        pids.discard(os.getpid())
        return pids

    # SIGKILL the PID-namespace inits first (the kernel then kills each whole node), then the rest
    victims = ours()
    for pid in sorted(victims):
        if pid in inits or _is_pidns_init(pid):
            _kill(pid, signal.SIGKILL)
    for pid in sorted(victims):
        _kill(pid, signal.SIGKILL)

    def reap() -> None:
        for p in _launchers.get(name, []):
            p.poll()

    def gone() -> bool:
        reap()
        left = ours()
        for pid in left:
            _kill(pid, signal.SIGKILL)
        return not left

    if not _wait_for(gone, timeout, 0.05):
        problems.append(f"processes still alive: {sorted(ours())}")
    for p in _launchers.pop(name, []):
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=2)

    for ns in _our_netns(name):
        cp = _run(["ip", "netns", "del", ns], check=False)
        if cp.returncode != 0:
            problems.append(f"ip netns del {ns}: {cp.stderr.strip()}")
    bridge = _bridge(name)
    for link in _our_links(name):
        if link != bridge:  # veths vanish with their namespace; delete any that are still here
            _run(["ip", "link", "del", link], check=False)
    if bridge in _our_links(name):
        cp = _run(["ip", "link", "del", bridge], check=False)
        if cp.returncode != 0:
            problems.append(f"ip link del {bridge}: {cp.stderr.strip()}")
    if not _wait_for(lambda: not _our_links(name), 5.0, 0.05):
        problems.append(f"links still present: {_our_links(name)}")

    for parent in _cg_candidates(name):
        problems += _remove_cgroup_tree(parent)

    root = root_dir(name)
    if root.exists():
        shutil.rmtree(root, ignore_errors=True)
        if root.exists():
            problems.append(f"could not remove {root}")
    if problems:
        raise TestbedError(f"down {name!r} left things behind: " + "; ".join(problems))


def status(name: str = "omtb") -> Testbed | None:
    """The saved description of testbed `name`, or None when there is none.

    Use check() for per-node liveness and leftovers() to find remains of a crashed testbed.
    """
    _check_name(name)
    if not (root_dir(name) / "testbed.json").exists():
        return None
    return load(name)


def _init_alive(node: TestbedNode) -> bool:
    return bool(node.init_pid) and _proc_start(node.init_pid) == node.init_start


def check(tb: Testbed) -> dict[int, NodeHealth]:
    """Liveness of every node: init running, sshd answering with its banner."""
    return {
        n.id: NodeHealth(init_alive=_init_alive(n), sshd_ready=_init_alive(n) and _banner(n.address, 1.0))
        for n in tb.nodes
    }


# ---------------------------------------------------------------- per-node control


def _live_init(tb: Testbed, node_id: int) -> TestbedNode:
    node = tb.node(node_id)
    if not _init_alive(node):
        raise TestbedError(
            f"node {node_id} of testbed {tb.name!r} is not running (init {node.init_pid} gone): "
            "run `omctl testbed down` and up again"
        )
    return node


def node_pids(tb: Testbed, node_id: int) -> list[int]:
    """Host PIDs of all live processes of the node (its PID namespace), the init included."""
    node = _live_init(tb, node_id)
    pidns = _ns_id(node.init_pid, "pid")
    if pidns is None:
        return []
    return sorted(_pids_in_ns("pid", {pidns}))


def _sshd_pids(tb: Testbed, node: TestbedNode) -> list[int]:
    sshd = os.path.realpath(tb.sshd)
    out = []
    for pid in node_pids(tb, node.id):
        try:
            if os.path.realpath(f"/proc/{pid}/exe") == sshd:
                out.append(pid)
        except OSError:
            pass
    return out


def stop_sshd(tb: Testbed, node_id: int, timeout: float = 10.0) -> None:
    """SIGKILL every sshd process of the node (listener and sessions); other processes stay."""
    node = _live_init(tb, node_id)
    for pid in _sshd_pids(tb, node):
        _kill(pid, signal.SIGCONT)  # harmless; lets a hung sshd die at once
        _kill(pid, signal.SIGKILL)
    if not _wait_for(lambda: not _sshd_pids(tb, node), timeout):
        raise TestbedError(f"sshd of node {node_id} did not stop: {_sshd_pids(tb, node)}")


def start_sshd(tb: Testbed, node_id: int, timeout: float = 20.0) -> None:
    """Start the node's sshd again (no-op when it is running); returns once it answers."""
    node = _live_init(tb, node_id)
    os.kill(node.init_pid, signal.SIGUSR1)
    if not _wait_for(lambda: _banner(node.address, 0.5), timeout, 0.05):
        raise TestbedError(
            f"sshd of node {node_id} did not come back within {timeout:.0f} s:\n"
            f"{_tail(Path(node.node_dir) / 'init.log')}\n{_tail(Path(node.node_dir) / 'sshd.log')}"
        )


def hang_sshd(tb: Testbed, node_id: int) -> None:
    """SIGSTOP every sshd process of the node: connections hang instead of failing.

    Returns once every one of them is stopped: a stop is delivered asynchronously, and the
    listener may fork a child for a connection in flight, which must be stopped too."""
    node = _live_init(tb, node_id)

    def all_stopped() -> bool:
        pids = _sshd_pids(tb, node)
        for pid in pids:
            _kill(pid, signal.SIGSTOP)
        return all(_proc_state(pid) in ("T", None) for pid in pids)

    if not _wait_for(all_stopped, 5.0, step=0.05):
        raise TestbedError(f"node {node_id}: sshd did not stop within 5 s")


def _proc_state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def resume_sshd(tb: Testbed, node_id: int) -> None:
    """SIGCONT every sshd process of the node."""
    node = _live_init(tb, node_id)
    for pid in _sshd_pids(tb, node):
        _kill(pid, signal.SIGCONT)


def node_argv(tb: Testbed, node_id: int, argv: Sequence[str]) -> list[str]:
    """argv that runs `argv` inside the node (its net, pid, uts and mount namespaces)."""
    node = _live_init(tb, node_id)
    nsenter = _tool("nsenter", "util-linux")
    return [nsenter, "-t", str(node.init_pid), "-n", "-p", "-u", "-m", "--", *argv]


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


class NodeProcess(subprocess.Popen[Any]):
    """A command running inside a node, started by node_exec().

    `pid` is the host-side `nsenter`, which forks the command into the node's PID namespace,
    waits for it and exits with its status (so wait()/returncode/pipes work as usual). Signals
    sent through this object (send_signal, terminate, kill) reach the command itself, not only
    the nsenter. nsenter stops itself when the command is stopped (job control); it is continued
    again when the command is continued or killed through this object, or in poll()/wait() once
    the command is no longer stopped (e.g. after an agent sent SIGCONT to it directly).
    """

    def inner_pid(self) -> int | None:
        """Host PID of the command (the nsenter's child), None before it exists or after it ended."""
        try:
            kids = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        except OSError:
            return None
        return int(kids[0]) if kids else None

    def pid_in_node(self) -> int | None:
        """The command's PID as seen inside the node (what `ps` on the node and the agent show)."""
        inner = self.inner_pid()
        if inner is None:
            return None
        try:
            for line in Path(f"/proc/{inner}/status").read_text().splitlines():
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
        except OSError:
            pass
        return None

    def _unstick(self) -> None:
        if self.returncode is None and _state(self.pid) == "T":
            inner = self.inner_pid()
            if inner is None or _state(inner) != "T":
                _kill(self.pid, signal.SIGCONT)

    def send_signal(self, sig: int) -> None:
        inner = self.inner_pid() if self.returncode is None else None
        if inner is None:
            super().send_signal(sig)
            return
        _kill(inner, sig)
        if sig in (signal.SIGCONT, signal.SIGKILL) and _state(self.pid) == "T":
            _kill(self.pid, signal.SIGCONT)

    def poll(self) -> int | None:
        self._unstick()
        return super().poll()

    def wait(self, timeout: float | None = None) -> int:
        self._unstick()
        return super().wait(timeout)


def node_exec(tb: Testbed, node_id: int, argv: Sequence[str], **popen_kw: Any) -> NodeProcess:
    """Start `argv` inside the node (see NodeProcess); popen_kw as for subprocess.Popen."""
    return NodeProcess(node_argv(tb, node_id, argv), **popen_kw)


def node_run(tb: Testbed, node_id: int, argv: Sequence[str], *, input: str | None = None,
             timeout: float = 60.0, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run `argv` inside the node to completion, capturing text output."""
    return subprocess.run(node_argv(tb, node_id, argv), input=input, capture_output=True, text=True,
                          timeout=timeout, check=check)


def ssh_argv(tb: Testbed, node_id: int, command: str | Sequence[str] | None = None,
             *, user: str = "root", known_hosts: str | Path | None = None) -> list[str]:
    """argv of the real OpenSSH client reaching the node with the testbed's key and known_hosts
    (`known_hosts` replaces the testbed's file), strict host key checking, no prompts."""
    node = tb.node(node_id)
    argv = [
        "ssh", "-i", str(tb.key_file), "-F", "/dev/null",
        "-o", f"UserKnownHostsFile={known_hosts or tb.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
        "-o", "LogLevel=ERROR", f"{user}@{node.address}",
    ]
    if command is not None:
        argv += [command] if isinstance(command, str) else list(command)
    return argv
