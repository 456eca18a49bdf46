"""Process migration with CRIU: preflight, dump, transfer, restore, then commit or resume.

The engine runs on the workstation and drives two agents (docs/protocol.md, "Jobs and
migration"). Its one promise: afterwards the process runs on exactly one node, never zero,
never two. Everything before the restore is undone by resuming the stopped source copy; once
the target may have restored it, the source copy is only ever killed after the target says
its copy exists. A journal on the source node (written by its agent) lets `resolve()` finish
an interrupted migration when both nodes answer again; `Resolver` does that on every reconnect.

Transfer (see docs/architecture.md, "Migration"): by default the memory pages stream while
the dump runs, from `criu dump --page-server` on the source straight to `criu page-server` on the
target's address, once the source has shown it reaches the target (a token from a probe
listener): the bytes never pass through the workstation, whose relay was nearly all of the
frozen time. When the source cannot reach the target, the same stream goes through our two SSH
connections (a remote port forward on the source's, a direct-tcpip channel on the target's). The
small remaining images follow as a tar stream over one exec channel on each connection. Without
either (a local transport, `stream=False`) everything goes as a tar stream after the dump.

The source resumes a dumped copy by itself when no handover (`mig_handover`, sent just before
the restore is asked for) came within its hold: a lost workstation or target never leaves a
process frozen before the commit point.

Qt-free; blocking calls run on the caller's thread (`migrate`) or a thread of their own
(`start_migration`), never on the cluster's I/O thread.
"""

from __future__ import annotations

import logging
import shlex
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from omview.core import criu as criu_mod
from omview.core.model import STANDARD_SPEED, NodeState, ProcInfo
from omview.core.session import AgentError, Event
from omview.core.transport import BulkChannel, Transport, TransportError

if TYPE_CHECKING:
    from omview.core.cluster import Cluster

log = logging.getLogger("omview.migration")

PHASES = ("preflight", "prepare", "dump", "transfer", "restore", "commit", "done")
#: How long a dump or restore may take (a 1 GiB process takes seconds; swapping nodes far more).
CRIU_TIMEOUT = 900.0
#: How long the engine waits for a node that dropped out in the middle to come back.
RECONNECT_WAIT = 45.0
#: Before the commit point, how long an abort waits for the target's fence before it resumes the
#: source anyway (safe: a target restores only after the source's handover).
FENCE_WAIT = 10.0
#: At most this many progress events per second.
PROGRESS_RATE = 10.0
#: How long the source keeps a dumped copy stopped without a handover before resuming it by itself
#: (agent's MIG_HOLD); the engine adds the time a files transfer may take at SLOW_RATE.
HOLD = 60.0
SLOW_RATE = 5e6

Target = int | str  # a node id, "home" or "best"
#: Migrations this process is running now: the resolver leaves them alone.
ACTIVE: set[str] = set()
#: A journal younger than this may belong to a migration another workstation is running.
RESOLVE_AFTER = 10.0
ProgressFn = Callable[["Progress"], None]


class MigrationError(Exception):
    """Invalid arguments (unknown node, bad target): nothing was attempted."""


@dataclass
class Progress:
    """One step of a migration, for progress bars and the event stream."""

    mid: str
    phase: str
    source: int
    target: int
    pid: int
    bytes: int = 0
    total: int = 0
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MigrationResult:
    """What happened. `ok` or not, the process runs on exactly one node afterwards (or, if a
    node vanished for good in the middle, stays stopped on the source until `resolve` can ask
    both: then `pending` is True)."""

    mid: str
    source: int
    target: int
    pid: int
    start: int
    ok: bool = False
    refused: bool = False  # preflight said no; nothing was touched
    cancelled: bool = False
    pending: bool = False  # left for the resolver (a node did not come back in time)
    error: str = ""  # the cantmove text when refused, else why it failed
    phase: str = "preflight"  # the last phase entered
    new_pid: int | None = None
    new_start: int | None = None
    job: str = ""
    home: int = 0
    where: int = 0
    nmigs: int = 0
    #: "direct" (pages from the source's dump straight to the target's page server), "page-server"
    #: (the same stream relayed through the workstation's SSH tunnels) or "files"
    transfer: str = ""
    bytes: int = 0
    frozen: float = 0.0  # seconds the process did not run (dump start to restore end)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def running_on(self) -> int:
        return self.target if self.ok else self.source

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["running_on"] = self.running_on
        return d


# ---------------------------------------------------------------- pure helpers


def new_mid() -> str:
    """A migration id: sortable by time, unique enough across workstations."""
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def tar_send_command(images: str) -> str:
    """Shell command that writes the images folder as a tar stream to stdout."""
    return f"tar -C {shlex.quote(images)} -cf - ."


def tar_receive_command(images: str) -> str:
    """Shell command that unpacks a tar stream from stdin into the images folder."""
    return f"tar -C {shlex.quote(images)} -xf -"


def criu_ready(st: NodeState) -> bool:
    return bool(st.sample and st.sample.criu.startswith("ready"))


def capacity(st: NodeState) -> float:
    s = st.sample
    return 0.0 if s is None else s.cpus * s.speed / STANDARD_SPEED


def pick_best(nodes: Sequence[NodeState], source: int, home: int = 0) -> int | None:
    """The eligible node with the lowest load per unit of speed x CPUs once the process is there.

    Eligible: up, CRIU ready, not the source, not stopped, and not blocked or quiet unless it
    is the process's home (a process going home is no guest). Score (runq + 1) / capacity,
    so a fast idle node beats a slow idle one; ties go to the lower id."""
    best: tuple[float, int] | None = None
    for st in nodes:
        s = st.sample
        if st.id == source or not st.up or s is None or not criu_ready(st) or s.admin.stopped:
            continue
        if st.id != home and (s.admin.block or s.admin.quiet):
            continue
        cap = capacity(st)
        if cap <= 0:
            continue
        score = (s.runq + 1.0) / cap
        if best is None or (score, st.id) < best:
            best = (score, st.id)
    return None if best is None else best[1]


def parse_target(text: str) -> Target:
    """"home", "best" or a node id (omctl's TARGET argument)."""
    if text in ("home", "best"):
        return text
    try:
        return int(text)
    except ValueError:
        raise MigrationError(f"target must be a node id, home or best, not {text!r}") from None


# ---------------------------------------------------------------- byte pumps


def pump(src: BulkChannel, dst: BulkChannel, count: Callable[[int], None] | None = None) -> int:
    """Copy src to dst until src ends, then send EOF on dst; returns the bytes copied."""
    n = 0
    while True:
        data = src.read()
        if not data:
            break
        dst.write(data)
        n += len(data)
        if count is not None:
            count(len(data))
    dst.close_write()
    return n


class Tunnel:
    """Joins each connection to the source's forwarded port with one to the target's page server."""

    def __init__(self, target: Transport, port: int, count: Callable[[int], None]) -> None:
        self.target = target
        self.port = port
        self.count = count
        self.channels: list[BulkChannel] = []
        self.errors: list[str] = []
        self.closed = False
        self.lock = threading.Lock()

    def accept(self, src: BulkChannel) -> None:
        """Called from paramiko's thread: never block it."""
        threading.Thread(target=self._join, args=(src,), name="omview-tunnel", daemon=True).start()

    def _join(self, src: BulkChannel) -> None:
        with self.lock:
            if self.closed:
                src.close()
                return
            self.channels.append(src)
        try:
            dst = self.target.open_tunnel("127.0.0.1", self.port)
        except TransportError as exc:
            self.errors.append(str(exc))
            src.close()
            return
        with self.lock:
            self.channels.append(dst)
            if self.closed:
                self.close()
                return
        back = threading.Thread(target=self._safe_pump, args=(dst, src, None), daemon=True)
        back.start()
        self._safe_pump(src, dst, self.count)
        back.join()
        src.close()
        dst.close()

    def _safe_pump(self, a: BulkChannel, b: BulkChannel, count: Callable[[int], None] | None) -> None:
        try:
            pump(a, b, count)
        except Exception as exc:  # a channel closed under us: the dump sees it and fails
            if not self.closed:
                self.errors.append(str(exc))
            for ch in (a, b):
                ch.close()

    def close(self) -> None:
        """Break the stream: a dump still running fails and CRIU resumes the process."""
        with self.lock:
            self.closed = True
            chans = list(self.channels)
        for ch in chans:
            ch.close()


# ---------------------------------------------------------------- the engine


class _Cancelled(Exception):
    pass


class _Failed(Exception):
    pass


class Migration:
    """One migration; `run()` does it on the calling thread. Use `migrate()` or `start_migration()`."""

    def __init__(
        self,
        cluster: Cluster,
        node_id: int,
        pid: int,
        target: Target,
        *,
        start: int | None = None,
        live: bool = False,
        stream: bool = True,
        direct: bool = True,
        hold: float | None = None,
        automatic: bool = False,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
        hooks: dict[str, Callable[[Migration], None]] | None = None,
    ) -> None:
        self.cluster = cluster
        self.direct = direct
        #: the source's own deadline (s after the dump) when no handover comes; None: HOLD (+ files time)
        self.hold = hold
        self.source = node_id
        self.pid = pid
        self.start_arg = start
        self.target_arg = target
        self.live = live
        self.stream = stream
        self.automatic = automatic
        self.progress_fn = progress
        self.cancel = cancel or threading.Event()
        #: test hooks, called at the start of a phase: {"dump": fn(migration), ...}
        self.hooks = hooks or {}
        self.mid = new_mid()
        self.result = MigrationResult(self.mid, node_id, 0, pid, start or 0)
        self._last_emit = 0.0
        self._bytes = 0
        self._total = 0
        self._down: set[int] = set()
        self.cmd = ""
        self._address = ""  # the target's address as the source reaches it (direct transfer)
        #: the name or address the source dials for the target's page server; None: the target's
        #: address in the cluster file (set it where nodes reach each other on another network)
        self.peer_address: str | None = None
        #: why the direct transfer was not possible (then the pages were relayed), or ""
        self.direct_error = ""
        self._unsub: Callable[[], None] | None = None

    # -- progress and events

    def _emit(self, phase: str, message: str = "", force: bool = True, final: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_emit < 1.0 / PROGRESS_RATE:
            return
        self._last_emit = now
        p = Progress(self.mid, phase, self.source, self.result.target, self.pid, self._bytes,
                     max(self._total, self._bytes), message)
        if self.progress_fn is not None:
            try:
                self.progress_fn(p)
            except Exception:
                log.exception("progress callback failed")
        emit = getattr(self.cluster, "emit", None)
        if callable(emit):
            data = p.to_dict()
            data["final"] = final
            if final:  # one record per migration for the history (omcollector)
                r = self.result
                data.update(result=phase, src=r.source, dst=r.target, start=r.start, cmd=self.cmd,
                            frozen=r.frozen if r.ok else None, reason=r.error, time=time.time(),
                            new_pid=r.new_pid, job=r.job, nmigs=r.nmigs)
            emit(Event("migration", self.source, message=phase, data=data))

    def _phase(self, phase: str, message: str = "") -> None:
        self.result.phase = phase
        self._emit(phase, message)
        hook = self.hooks.get(phase)
        if hook is not None:
            hook(self)

    def _count(self, n: int) -> None:
        self._bytes += n
        self._emit(self.result.phase, force=False)

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise _Cancelled()

    def _on_event(self, ev: Event) -> None:
        if ev.kind == "down" and ev.node_id in (self.source, self.result.target):
            self._down.add(ev.node_id)

    # -- requests

    def _call(self, node: int, op: str, args: dict[str, Any], timeout: float = 30.0) -> Any:
        return self.cluster.call(node, op, args, timeout=timeout)

    def _wait(self, fut: Future[Any], timeout: float, watch: Callable[[], None] | None = None) -> Any:
        """Wait for a long request, calling watch() every 0.1 s (cancel, a node going down)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return fut.result(0.1)
            except FutureTimeout:
                if time.monotonic() > deadline:
                    raise AgentError(f"no answer within {timeout:.0f} s", "timeout") from None
                if watch is not None:
                    watch()

    # -- the phases

    def run(self) -> MigrationResult:
        r = self.result
        t0 = time.monotonic()
        self._unsub = self.cluster.subscribe(self._on_event)
        ACTIVE.add(self.mid)
        try:
            self._run()
        except MigrationError as exc:
            r.refused = True
            r.error = str(exc)
        finally:
            ACTIVE.discard(self.mid)
            if self._unsub is not None:
                self._unsub()
            r.seconds = round(time.monotonic() - t0, 4)
            r.bytes = self._bytes
        self._emit("done" if r.ok else ("refused" if r.refused else ("cancelled" if r.cancelled else "failed")),
                   r.error, final=True)
        return r

    def _refuse(self, text: str) -> None:
        raise MigrationError(text)

    def _run(self) -> None:
        r = self.result
        c = self.cluster
        self._phase("preflight")
        try:
            proc = c.resolve(self.source, self.pid, self.start_arg)
        except KeyError as exc:
            raise MigrationError(str(exc).strip("'\"")) from None
        except AgentError as exc:
            raise MigrationError(str(exc)) from None
        r.start = proc.start
        self.cmd = proc.cmd
        self._preflight(proc)
        r.target = self._target
        try:
            self._check_cancel()
            self._transfer_and_restore()
        except _Cancelled:
            r.cancelled = True
            r.error = "cancelled"
            self._abort("cancelled")
        except (_Failed, AgentError, TransportError) as exc:
            r.error = str(exc)
            if r.phase in ("restore", "commit"):
                self._settle()
            else:
                self._abort(r.error)

    def _preflight(self, proc: ProcInfo) -> None:
        c = self.cluster
        src = c.node(self.source)
        if not src.up:
            self._refuse(f"node {self.source} is down: {src.reason}")
        home = proc.home or self.source
        if self.live:
            st = self._call(self.source, "criu_status", {})
            blockers = criu_mod.live_blockers(st.get("features") or {})
            if blockers:
                self._refuse("live migration is not possible on node "
                             f"{self.source}: " + "; ".join(blockers))
            self._refuse("live migration (pre-dump rounds or lazy pages) is not implemented yet; "
                         "migrate without --live")
        t = self.target_arg
        if t == "home":
            if home == self.source:
                self._refuse(f"process {self.pid} is already on its home node {home}")
            target = home
        elif t == "best":
            best = pick_best(c.nodes(), self.source, home)
            if best is None:
                self._refuse("no eligible node: every other node is down, blocked, quiet, stopped or without CRIU")
            assert best is not None
            target = best
        elif isinstance(t, int) and not isinstance(t, bool):
            target = t
        else:
            raise MigrationError(f"target must be a node id, home or best, not {t!r}")
        if target == self.source:
            self._refuse(f"process {self.pid} already runs on node {target}")
        try:
            dst = c.node(target)
        except KeyError:
            raise MigrationError(f"no node {target} in the cluster") from None
        self._target = target
        self.result.target = target
        if not dst.up:
            self._refuse(f"node {target} is down: {dst.reason}")
        info = self._call(self.source, "mig_check_src",
                          {"pid": proc.pid, "start": proc.start, "automatic": self.automatic}, 90)
        if info.get("cantmove"):
            self._refuse(info["cantmove"])
        rec = info.get("job")
        if rec is None:
            rec = {"id": f"p-{self.mid}", "cmd": proc.cmd, "mode": "", "home": self.source, "nmigs": 0,
                   "created": time.time(), "lock": False}
        self.job = dict(rec)
        home = int(self.job.get("home") or self.source)
        ans = self._call(target, "mig_check_dst", {
            "namespaced": info["namespaced"], "pids": info["pids"], "files": info["files"],
            "maps": info["maps"], "rss": info["rss"], "home": home,
        }, 90)
        if ans.get("cantmove"):
            self._refuse(ans["cantmove"])
        self._total = int(info.get("rss") or 0)
        self.result.job = self.job["id"] if info.get("job") else ""
        self.result.home = home
        if not callable(getattr(c, "transport", None)):
            self._refuse("this cluster object has no SSH connections of its own (a session-hub client): "
                         "migrate from a direct Cluster")

    def _transport(self, node: int) -> Transport:
        get = getattr(self.cluster, "transport", None)
        if not callable(get):
            raise _Failed("this cluster object has no transports (a hub client?): migrate from a direct Cluster")
        t: Transport = get(node)
        return t

    def _transfer_and_restore(self) -> None:
        r = self.result
        src_t, dst_t = self._transport(self.source), self._transport(r.target)
        tunnels = src_t.tunnels and dst_t.tunnels
        want_ps = self.stream and (self.direct or tunnels)
        holder: list[Tunnel] = []
        stop_forward: Callable[[], None] | None = None
        self._phase("prepare")
        tunnel: Tunnel | None = None
        args: dict[str, Any] = {"mid": self.mid, "pid": self.pid, "start": r.start, "target": r.target,
                                "job": self.job}
        try:
            prep = self._call(r.target, "mig_prepare", {"mid": self.mid, "source": self.source,
                                                        "page_server": want_ps, "direct": want_ps and self.direct},
                              60)
            self._prepared = True
            mode = "files"
            if want_ps and self.direct:
                mode = self._reach(prep)
                if mode == "direct":
                    args["address"], args["port"] = self._address, int(prep["port"])
            if want_ps and mode == "files" and tunnels:
                # ask for the forward first: a server that forbids it means files, not failure
                try:
                    port, stop_forward = src_t.forward_remote(
                        lambda ch: holder[0].accept(ch) if holder else ch.close())
                    tunnel = Tunnel(dst_t, int(prep["port"]), self._count)
                    holder.append(tunnel)
                    args["port"] = port
                    mode = "page-server"
                except TransportError as exc:
                    log.info("node %s: no port forwarding (%s): images go as files", self.source, exc)
            if want_ps and mode == "files":  # the page server has no client: stop it, keep the record
                self._call(r.target, "mig_cleanup", {"mid": self.mid, "keep": True}, 60)
            r.transfer = mode
            args["hold"] = self.hold or HOLD + (self._total / SLOW_RATE if mode == "files" else 0.0)
            self._check_cancel()
            self._phase("dump", f"pages: {mode}")
            t_freeze = time.monotonic()
            fut = self.cluster.request(self.source, "mig_dump", args)
            self._dumping = True
            fenced: list[bool] = []
            polled = [0.0]

            def watch() -> None:
                if self.cancel.is_set() or r.target in self._down:
                    if tunnel is not None:
                        tunnel.close()  # the dump fails, CRIU resumes the process
                    elif mode == "direct" and not fenced:
                        # the page server goes, or (a target that stopped answering) the source cuts
                        # its connection: the dump fails, CRIU resumes the process
                        fenced.append(True)
                        for node, op in ((r.target, "mig_cleanup"), (self.source, "mig_cut")):
                            try:
                                self.cluster.request(node, op, {"mid": self.mid})
                            except Exception as exc:  # a dead target's page server died with its agent
                                log.info("migration %s: %s request failed: %s", self.mid, op, exc)
                elif mode == "direct" and time.monotonic() - polled[0] >= 0.2:
                    polled[0] = time.monotonic()
                    self._poll_received()

            try:
                dumped = self._wait(fut, CRIU_TIMEOUT, watch)
            except AgentError as exc:
                if self.cancel.is_set():
                    raise _Cancelled() from None
                if r.target in self._down:
                    raise _Failed(f"node {r.target} went down during the dump: {exc}") from None
                raise
            r.timings["dump"] = round(time.monotonic() - t_freeze, 4)
        finally:
            if stop_forward is not None:
                stop_forward()
            if tunnel is not None:
                tunnel.close()
        if tunnel is not None and tunnel.errors:
            log.info("tunnel: %s", tunnel.errors)
        if mode == "direct":  # the last of the pages the target received
            n = int(self._call(r.target, "mig_received", {"mid": self.mid}).get("bytes") or 0)
            if n > self._bytes:
                self._bytes = n
                self._emit("dump")
        self._check_cancel()
        if r.target in self._down:
            raise _Failed(f"node {r.target} went down after the dump")
        self._phase("transfer")
        t1 = time.monotonic()
        files = [(str(n), int(s)) for n, s in dumped["files"]]
        self._total = self._bytes + sum(s for _, s in files)
        self._relay(src_t, dst_t, str(dumped["images"]), str(prep["images"]))
        r.timings["transfer"] = round(time.monotonic() - t1, 4)
        self._check_cancel()
        if r.target in self._down or self.source in self._down:
            raise _Failed("a node went down during the transfer")
        # the source's hold ends here (or it already resumed the copy: then no restore)
        try:
            self._call(self.source, "mig_handover", {"mid": self.mid}, 30)
        except AgentError as exc:
            if exc.code in ("down", "timeout"):
                self._settle_handover()
            else:
                raise _Failed(f"the source gave no handover: {exc}") from None
        # the commit point: from here the target may run the process, so no more resuming
        # the source unless the target says it has no copy
        self._phase("restore")
        job = dict(self.job)
        job["nmigs"] = int(job.get("nmigs") or 0) + 1
        t2 = time.monotonic()
        restored = self._wait(self.cluster.request(r.target, "mig_restore", {"mid": self.mid, "job": job}),
                              CRIU_TIMEOUT)
        r.timings["restore"] = round(time.monotonic() - t2, 4)
        r.frozen = round(time.monotonic() - t_freeze, 4)
        r.new_pid, r.new_start = int(restored["pid"]), int(restored["start"])
        r.nmigs = job["nmigs"]
        r.where = 0 if r.target == r.home else r.target
        self._phase("commit")
        self._commit()
        r.ok = True

    def _settle_handover(self) -> None:
        """The handover's answer was lost: ask again once the source is back; the journal says
        whether it went through (restoring) or the hold resumed the copy (aborted)."""
        try:
            state = self._retry(self.source, "mig_handover", {"mid": self.mid})
        except AgentError as exc:
            raise _Failed(f"the source gave no handover: {exc}") from None
        if state.get("state") != "restoring":
            raise _Failed(f"the source gave no handover: {state}")

    def _reach(self, prep: dict[str, Any]) -> str:
        """"direct" when the source reaches the target's probe listener (the address it used is
        kept for the dump), else "files" (the caller then relays), with the reason in the progress."""
        from omview.core.config import LOCAL

        r = self.result
        host = self.peer_address or self.cluster.config.node(r.target).address
        host = "127.0.0.1" if host == LOCAL else host
        if prep.get("probe_port") is None:
            return "files"
        try:
            ans = self._wait(self.cluster.request(self.source, "mig_reach", {
                "host": host, "port": int(prep["probe_port"]), "token": str(prep["token"])}), 30)
        except AgentError as exc:
            ans = {"ok": False, "error": str(exc)}
        if ans.get("ok"):
            self._address = str(ans["address"])
            return "direct"
        self.direct_error = str(ans.get("error") or "")
        self._emit("prepare", f"node {self.source} cannot reach node {r.target} ({ans.get('error')}): "
                              "pages relayed through the workstation")
        log.info("migration %s: node %s cannot reach node %s directly (%s): relaying", self.mid,
                 self.source, r.target, ans.get("error"))
        return "files"

    def _poll_received(self) -> None:
        """Progress of a direct dump: what the target's page server has written so far."""
        def done(fut: Future[Any]) -> None:
            try:
                n = int(fut.result().get("bytes") or 0)
            except Exception:
                return
            if n > self._bytes:
                self._count(n - self._bytes)

        try:
            self.cluster.request(self.result.target, "mig_received", {"mid": self.mid}).add_done_callback(done)
        except Exception:  # progress only
            pass

    def _relay(self, src_t: Transport, dst_t: Transport, src_dir: str, dst_dir: str) -> None:
        """tar the source's images folder into the target's, through the two connections."""
        send = src_t.open_exec(tar_send_command(src_dir))
        try:
            recv = dst_t.open_exec(tar_receive_command(dst_dir))
        except Exception:
            send.close()
            raise
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(0.1):
                if self.cancel.is_set() or self._down:
                    send.close()
                    recv.close()
                    return

        w = threading.Thread(target=watch, daemon=True)
        w.start()
        try:
            pump(send, recv, self._count)
            rc_send, rc_recv = send.wait(60), recv.wait(60)
        except Exception as exc:
            self._check_cancel()
            raise _Failed(f"transfer of the images failed: {exc}") from None
        finally:
            stop.set()
            send.close()
            recv.close()
        self._check_cancel()
        if rc_send != 0:
            raise _Failed(f"reading the images on node {self.source} failed: {send.stderr_text().strip() or rc_send}")
        if rc_recv != 0:
            raise _Failed(f"writing the images on node {self.result.target} failed: "
                          f"{recv.stderr_text().strip() or rc_recv}")

    def _commit(self) -> None:
        r = self.result
        args = {"mid": self.mid, "where": r.where, "nmigs": r.nmigs}
        self._retry(self.source, "mig_commit", args)
        home = r.home
        if home not in (self.source, r.target):
            rec = dict(self.job, where=r.where, nmigs=r.nmigs, state="away", pid=None, start=None)
            try:
                self._retry(home, "job_set", {"job": self.job["id"], "where": r.where, "nmigs": r.nmigs,
                                              "record": rec}, wait=5.0)
            except (AgentError, _Failed) as exc:
                log.warning("home node %s not told where job %s went: %s", home, self.job["id"], exc)

    def _retry(self, node: int, op: str, args: dict[str, Any], wait: float = RECONNECT_WAIT) -> Any:
        """A request that must happen: if the node is down, wait for it to come back."""
        deadline = time.monotonic() + wait
        while True:
            try:
                return self._call(node, op, args, 60)
            except AgentError as exc:
                if exc.code not in ("down", "timeout") or time.monotonic() > deadline:
                    raise
            self.cluster.wait_until(lambda: self.cluster.node(node).up, max(0.1, deadline - time.monotonic()))

    def _abort(self, reason: str) -> None:
        """Before the commit point: fence the target, then resume the source. The target was never
        asked to restore (that needs the source's handover first), so a target that does not
        answer is not waited for: the source runs the process again at once and the resolver
        clears the target's folder when it is back."""
        r = self.result
        prepared = getattr(self, "_prepared", False)
        lost = r.target in self._down or not self.cluster.node(r.target).up
        try:
            if prepared and not lost:
                try:
                    state = self._call(r.target, "mig_cleanup", {"mid": self.mid}, FENCE_WAIT).get("state")
                except AgentError as exc:
                    log.info("migration %s: target %s not fenced (%s): resuming the source anyway", self.mid,
                             r.target, exc)
                    state, lost = None, True
                if state in ("restoring", "restored"):  # cannot happen before the commit point
                    self._settle()
                    return
            if getattr(self, "_dumping", False):
                self._retry(self.source, "mig_abort", {"mid": self.mid, "reason": reason})
            if prepared and lost:  # best effort; else the resolver clears it when the target is back
                try:
                    self._call(r.target, "mig_cleanup", {"mid": self.mid}, 5)
                except AgentError as exc:
                    log.info("migration %s: target %s lost, its folder is left to the resolver (%s)", self.mid,
                             r.target, exc)
        except (AgentError, _Failed) as exc:
            r.pending = True
            r.error += f"; the migration is left to resolve when both nodes answer ({exc})"
            log.warning("migration %s: abort incomplete: %s", self.mid, exc)

    def _settle(self) -> None:
        """After the commit point something failed: ask both sides and make it exactly one."""
        r = self.result
        try:
            outcome = resolve(self.cluster, self.source, self.mid, wait=RECONNECT_WAIT)
        except (AgentError, _Failed) as exc:
            r.pending = True
            r.error += f"; the migration is left to resolve when both nodes answer ({exc})"
            return
        if outcome.get("state") == "committed":
            r.ok = True
            r.error = ""
            dst = outcome.get("dst") or {}
            r.new_pid, r.new_start = dst.get("pid"), dst.get("start")
            r.nmigs = int(self.job.get("nmigs") or 0) + 1
            r.where = 0 if r.target == r.home else r.target


# ---------------------------------------------------------------- resolution


def resolve(cluster: Cluster, source: int, mid: str, wait: float = 0.0) -> dict[str, Any]:
    """Finish migration `mid` whose journal is on node `source`: commit if the target has a live
    copy, else fence the target and resume the source. Waits up to `wait` s for nodes to answer;
    raises AgentError when one does not (then the source copy stays stopped: zero for a while is
    better than two)."""
    deadline = time.monotonic() + wait

    def call(node: int, op: str, args: dict[str, Any]) -> Any:
        while True:
            try:
                return cluster.call(node, op, args, timeout=60)
            except AgentError as exc:
                if exc.code not in ("down", "timeout") or time.monotonic() > deadline:
                    raise
            cluster.wait_until(lambda: cluster.node(node).up, max(0.1, deadline - time.monotonic()))

    while True:
        j = call(source, "mig_state", {"mid": mid}).get("src")
        if j is None:
            return {"state": "none"}
        target = int(j.get("target") or 0)
        dst = call(target, "mig_state", {"mid": mid}).get("dst") if target else None
        if j["state"] in ("committed", "aborted"):
            if dst is not None and dst.get("state") in ("receiving", "failed"):
                call(target, "mig_cleanup", {"mid": mid})
            return {"state": j["state"], "dst": dst}
        dstate = (dst or {}).get("state")
        if dstate == "restored":
            job = j.get("job") or {}
            home = int(job.get("home") or source)
            nmigs = int(job.get("nmigs") or 0) + 1
            call(source, "mig_commit", {"mid": mid, "where": 0 if target == home else target, "nmigs": nmigs})
            return {"state": "committed", "dst": dst}
        if dstate == "restoring":
            if time.monotonic() > deadline:
                raise AgentError(f"migration {mid}: the restore on node {target} is still running", "timeout")
            time.sleep(0.2)
            continue
        state = call(target, "mig_cleanup", {"mid": mid}).get("state") if target else "none"
        if state in ("restoring", "restored"):
            continue
        call(source, "mig_abort", {"mid": mid, "reason": "resolved: the target has no copy"})
        return {"state": "aborted", "dst": dst}


class Resolver:
    """Resolves interrupted migrations whenever a node (re)connects. One per cluster."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.lock = threading.Lock()
        self.busy: set[int] = set()
        self.waiting: set[int] = set()  # sources with a journal not resolved at the last sweep
        self.unsubscribe = cluster.subscribe(self._on_event)

    def _on_event(self, ev: Event) -> None:
        if ev.kind == "up":
            # the node itself, and sources whose journals waited for a node that is back now
            for n in {ev.node_id} | self.waiting:
                threading.Thread(target=self.sweep, args=(n,), name="omview-resolver", daemon=True).start()

    def sweep(self, node_id: int) -> list[dict[str, Any]]:
        """Resolve every unfinished migration whose journal is on node_id."""
        with self.lock:
            if node_id in self.busy:
                return []
            self.busy.add(node_id)
        out: list[dict[str, Any]] = []
        try:
            try:
                pending = self.cluster.call(node_id, "mig_pending", {}, timeout=30).get("pending", [])
            except AgentError:
                return out
            later = 0.0
            for j in pending:
                if j.get("mid") in ACTIVE:
                    continue
                age = time.time() - float(j.get("time") or 0)
                if age < RESOLVE_AFTER:  # perhaps another workstation's, still running
                    later = max(later, RESOLVE_AFTER - age)
                    continue
                try:
                    out.append(resolve(self.cluster, node_id, str(j["mid"]), wait=0))
                    log.info("resolved migration %s: %s", j["mid"], out[-1].get("state"))
                except AgentError as exc:
                    log.info("migration %s not resolved yet: %s", j["mid"], exc)
                    later = later or RESOLVE_AFTER
            with self.lock:
                (self.waiting.add if later else self.waiting.discard)(node_id)
            if later:
                t = threading.Timer(later, self.sweep, args=(node_id,))
                t.daemon = True
                t.start()
        finally:
            with self.lock:
                self.busy.discard(node_id)
        return out


# ---------------------------------------------------------------- public API


def migrate(
    cluster: Cluster,
    node_id: int,
    pid: int,
    target: Target,
    *,
    start: int | None = None,
    live: bool = False,
    stream: bool = True,
    direct: bool = True,
    hold: float | None = None,
    automatic: bool = False,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    hooks: dict[str, Callable[[Migration], None]] | None = None,
) -> MigrationResult:
    """Move process `pid` of node `node_id` to `target` (a node id, "home" or "best"). Blocks.

    Never raises for a refusal or a failure: see the result. `automatic` (the balancer) also
    honours the source's stay/lstay; a person moving a process by hand does not."""
    m = Migration(cluster, node_id, pid, target, start=start, live=live, stream=stream, direct=direct,
                  hold=hold, automatic=automatic, progress=progress, cancel=cancel, hooks=hooks)
    return m.run()


@dataclass
class MigrationHandle:
    """A migration running in a thread of its own (for GUIs): wait on `future`, or `cancel()`."""

    mid: str
    future: Future[MigrationResult]
    cancel_event: threading.Event

    def cancel(self) -> None:
        """Stop before the commit point; the process keeps running on the source."""
        self.cancel_event.set()


def start_migration(cluster: Cluster, node_id: int, pid: int, target: Target, **kw: Any) -> MigrationHandle:
    """Non-blocking `migrate`: progress arrives as Event(kind="migration") on every listener."""
    cancel = kw.pop("cancel", None) or threading.Event()
    m = Migration(cluster, node_id, pid, target, cancel=cancel, **kw)
    fut: Future[MigrationResult] = Future()

    def work() -> None:
        try:
            fut.set_result(m.run())
        except BaseException as exc:  # keep the future honest
            fut.set_exception(exc)

    threading.Thread(target=work, name=f"omview-migrate-{m.mid}", daemon=True).start()
    return MigrationHandle(m.mid, fut, cancel)


def expel(cluster: Cluster, node_id: int, **kw: Any) -> list[MigrationResult]:
    """mosctl expel: send every guest process on node_id back to its home node."""
    guests = [p for _, p in cluster.processes(node_id) if p.home and p.home != node_id]
    # the cluster's own method, so a session-hub client migrates through its hub
    return [cluster.migrate(node_id, p.pid, "home", start=p.start, **kw) for p in guests]


def bring(cluster: Cluster, node_id: int, **kw: Any) -> list[MigrationResult]:
    """mosctl bring: bring every process whose home is node_id back from the other nodes."""
    away = [(n, p) for n, p in cluster.processes() if n != node_id and p.home == node_id]
    return [cluster.migrate(n, p.pid, node_id, start=p.start, **kw) for n, p in away]
