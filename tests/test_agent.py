"""The node agent, run exactly as the workstation runs it: `python3 -u -c BOOTSTRAP`, source on stdin.

Real processes throughout (sleep, busy loops, a PID namespace, cgroups when root); no mocks. Every
wait polls for a condition with a deadline; nothing asserts on elapsed time.
"""

from __future__ import annotations

import json
import os
import pwd
import queue
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import psutil
import pytest

from omview.core import agent as agent_mod
from omview.core.agent import BOOTSTRAP, agent_source
from omview.core.model import STANDARD_SPEED, AdminState, NodeSample, ProcInfo
from tests.hpc_fixture import make_hpc_tree, make_proc_entry, read_value

ROOT = Path(__file__).resolve().parent.parent
DEADLINE = 40.0
BUSY = "while True: pass"
#: Busy in a worker thread while the main thread sleeps, like most threaded servers.
BUSY_THREAD = ("import threading, time\ndef spin():\n    while True:\n        pass\n"
               "threading.Thread(target=spin, daemon=True).start()\ntime.sleep(600)")


def stat_fields(pid: int) -> list[str]:
    data = Path(f"/proc/{pid}/stat").read_text()
    return data[data.rindex(")") + 2:].split()


def start_of(pid: int) -> int:
    return int(stat_fields(pid)[19])


class ProcTable:
    """The workstation's view of one node's processes, built only from the agent's deltas."""

    def __init__(self) -> None:
        self.procs: dict[tuple[int, int], dict[str, Any]] = {}

    def apply(self, delta: dict[str, Any]) -> None:
        if delta["full"]:
            self.procs = {}
        for p in delta["new"]:
            self.procs[(p["pid"], p["start"])] = dict(p)
        for ch in delta["changed"]:
            key = (ch["pid"], ch["start"])
            assert key in self.procs, f"change for a process never announced: {ch}"
            self.procs[key].update(ch)
        for pid, start in delta["gone"]:
            assert (pid, start) in self.procs, f"gone for a process never announced: {pid}"
            del self.procs[(pid, start)]


class Agent:
    """One agent subprocess and the JSON lines it speaks."""

    def __init__(self, prefix: list[str] | None = None, python_flags: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        argv = (prefix or []) + [sys.executable, *(python_flags or []), "-u", "-c", BOOTSTRAP]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        assert self.proc.stdin is not None
        src = agent_source()
        self.proc.stdin.write(f"{len(src)}\n".encode() + src)
        self.proc.stdin.flush()
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.table = ProcTable()
        self.samples: list[dict[str, Any]] = []
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def next_message(self, deadline: float) -> dict[str, Any]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("the agent did not answer in time")
        try:
            msg = self.lines.get(timeout=left)
        except queue.Empty:
            raise AssertionError("the agent did not answer in time") from None
        if msg is None:
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            raise AssertionError(f"the agent ended: rc={self.proc.wait()} stderr={err}")
        if msg.get("type") == "sample":
            self.samples.append(msg)
            if "procs" in msg:
                self.table.apply(msg["procs"])
        return msg

    def send_line(self, raw: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(raw + b"\n")
        self.proc.stdin.flush()

    def reply_to(self, req_id: Any) -> dict[str, Any]:
        deadline = time.monotonic() + DEADLINE
        while True:
            msg = self.next_message(deadline)
            if msg.get("type") == "reply" and msg.get("id") == req_id:
                return msg

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        """Send a request, return the whole reply (ok or not)."""
        self.next_id += 1
        self.send_line(json.dumps({"id": self.next_id, "op": op, "args": args}).encode())
        return self.reply_to(self.next_id)

    def ok(self, op: str, **args: Any) -> Any:
        reply = self.call(op, **args)
        assert reply["ok"], reply
        return reply["result"]

    def wait_sample(self, cond: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        """Read samples until cond(sample) holds (the table is up to date with that sample)."""
        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                msg = self.next_message(deadline)
            except AssertionError as exc:
                raise AssertionError(f"never saw: {what} ({exc})") from None
            if msg.get("type") == "sample" and cond(msg):
                return msg

    def close(self) -> int:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
            try:
                return self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


@pytest.fixture
def agents() -> Iterator[Callable[..., Agent]]:
    started: list[Agent] = []

    def make(**kw: Any) -> Agent:
        a = Agent(**kw)
        started.append(a)
        return a

    yield make
    for a in started:
        a.close()


@pytest.fixture
def children() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start child processes; exactly those are killed, by PID, at the end."""
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(*argv: str) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL)
        procs.append(p)
        return p

    yield spawn
    for p in procs:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait()


def started_agent(agents: Callable[..., Agent], tmp_path: Path, **args: Any) -> Agent:
    a = agents()
    hello = a.next_message(time.monotonic() + DEADLINE)
    assert hello["type"] == "hello", hello
    args.setdefault("interval", 0.2)
    args.setdefault("state_dir", str(tmp_path / "state"))
    a.ok("start", **args)
    return a


# ------------------------------------------------------------------ contract with the workstation


def test_bootstrap_is_the_one_in_the_protocol() -> None:
    text = (ROOT / "docs" / "protocol.md").read_text()
    m = re.search(r"python3 -u -c '([^']+)'", text)
    assert m and m.group(1) == BOOTSTRAP


def test_agent_source_is_this_module() -> None:
    assert agent_source() == Path(agent_mod.__file__).read_bytes()


def test_agent_defaults_match_the_model() -> None:
    assert agent_mod.ADMIN_DEFAULTS == AdminState().to_dict()
    assert agent_mod.STANDARD_SPEED == STANDARD_SPEED
    # the balancer tells our agent from the node's work by the name in its command line
    from omview.core.balancer import AGENT_TAG

    assert AGENT_TAG == agent_mod.AGENT_NAME and f'"{AGENT_TAG}"' in agent_mod.BOOTSTRAP


def test_importing_the_module_does_not_start_an_agent() -> None:
    r = subprocess.run([sys.executable, "-c", "import omview.core.agent as a; print('imported', a.BOOTSTRAP[:6])"],
                       cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert r.returncode == 0 and r.stdout == b"imported import\n", r


# ------------------------------------------------------------------ startup and the protocol


def test_hello_then_full_sample_with_our_child_then_gone(agents, children, tmp_path: Path) -> None:
    child = children("sleep", "60")
    a = agents()
    hello = a.next_message(time.monotonic() + DEADLINE)
    assert hello["type"] == "hello" and hello["version"] == 1
    assert hello["hostname"] == socket.gethostname() and hello["pid"] == a.proc.pid
    assert hello["backend"] == "linux" and hello["psutil"] == psutil.__version__
    res = a.ok("start", interval=0.2, state_dir=str(tmp_path / "state"))
    assert res == {"hostname": socket.gethostname(), "backend": "linux"}

    first = a.wait_sample(lambda s: True, "a first sample")
    assert first["seq"] == 1 and first["procs"]["full"] is True
    assert set(first["node"]) >= {f.name for f in fields(NodeSample)}
    node = NodeSample.from_dict(first["node"])
    assert node.hostname == socket.gethostname() and node.backend == "linux"
    assert 1 <= node.cpus <= os.cpu_count()  # type: ignore[operator]
    assert 0 < node.mem_used < node.mem_total and 0 < node.mem_available <= node.mem_total
    assert node.admin == AdminState() and node.nprocs == len(first["procs"]["new"])

    key = (child.pid, start_of(child.pid))
    mine = [p for p in first["procs"]["new"] if (p["pid"], p["start"]) == key]
    assert len(mine) == 1, "our sleep child is not in the first (full) sample"
    info = ProcInfo.from_dict(mine[0])
    assert set(mine[0]) == {f.name for f in fields(ProcInfo)}
    assert info.cmd == "sleep 60" and info.ppid == os.getpid() and info.state == "S"
    assert info.user == pwd.getpwuid(os.getuid()).pw_name
    assert abs(info.started - psutil.Process(child.pid).create_time()) < 2
    assert info.rss > 0 and info.home == 0 and info.where == 0 and info.nmigs == 0
    # kernel threads show as [comm] when the agent can see them
    kthreads = [p for p in first["procs"]["new"] if p["pid"] == 2]
    if kthreads:
        assert kthreads[0]["cmd"] == "[kthreadd]"

    a.wait_sample(lambda s: s["seq"] >= 3, "more samples")
    assert all(not s["procs"]["full"] for s in a.samples[1:]), "later samples must be deltas"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    a.wait_sample(lambda s: [key[0], key[1]] in s["procs"]["gone"], "the killed child reported gone")
    assert key not in a.table.procs


def test_busy_child_gets_cpu_and_load_follows(agents, children, tmp_path: Path) -> None:
    a = started_agent(agents, tmp_path)
    busy = children(sys.executable, "-c", BUSY)
    key = (busy.pid, start_of(busy.pid))
    worker = children(sys.executable, "-c", BUSY_THREAD)
    wkey = (worker.pid, start_of(worker.pid))
    a.wait_sample(lambda s: a.table.procs.get(key, {}).get("cpu", 0) > 30, "the busy child above 30 % cpu")
    a.wait_sample(lambda s: a.table.procs.get(wkey, {}).get("cpu", 0) > 30,
                  "the child with a busy thread above 30 % cpu")
    a.wait_sample(lambda s: a.table.procs[key]["state"] == "R", "the busy child in state R")
    s = a.wait_sample(lambda s: s["node"]["util"] > 0, "utilisation above zero")
    node = s["node"]
    assert node["load"] == pytest.approx(node["runq"] * 100 / node["cpus"] * STANDARD_SPEED / node["speed"], abs=0.2)
    os.kill(busy.pid, signal.SIGKILL)
    busy.wait()
    a.wait_sample(lambda s: key not in a.table.procs, "the busy child gone")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("nsenter"),
                    reason="needs root and util-linux unshare/nsenter for a PID namespace")
def test_load_counts_only_visible_tasks_in_a_pid_namespace(agents, tmp_path: Path) -> None:
    """In its own PID namespace the agent sees only itself: its sampling thread must not count,
    so runq falls to ~0; a busy process entering the namespace raises runq, load and util."""
    a = agents(prefix=["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"])
    assert a.next_message(time.monotonic() + DEADLINE)["type"] == "hello"
    a.ok("start", interval=0.2, state_dir=str(tmp_path / "state"))
    idle = a.wait_sample(lambda s: s["node"]["runq"] < 0.1, "runq near zero with nothing else visible")
    assert idle["node"]["nprocs"] == 1, "the agent should see only itself in its namespace"
    for _ in range(10):
        later = a.wait_sample(lambda s: True, "more samples")["node"]
        assert later["runq"] < 0.3, later
    assert idle["node"]["load"] < 5

    inner = psutil.Process(a.proc.pid).children()
    assert len(inner) == 1
    nsenter = subprocess.Popen(["nsenter", "--target", str(inner[0].pid), "--pid", "--",
                                sys.executable, "-c", BUSY_THREAD])
    try:
        s = a.wait_sample(lambda s: s["node"]["runq"] > 0.6, "runq raised by the busy process")
        assert s["node"]["load"] > idle["node"]["load"] + 25
        assert s["node"]["nprocs"] == 2
        a.wait_sample(lambda s: s["node"]["util"] > 20, "utilisation raised by the busy process")
    finally:
        for c in psutil.Process(nsenter.pid).children():
            os.kill(c.pid, signal.SIGKILL)
        nsenter.wait(20)
    a.wait_sample(lambda s: s["node"]["nprocs"] == 1 and s["node"]["runq"] < 0.3, "runq falls again")


@pytest.fixture
def waiting_child() -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    """A python child that waits for a line on stdin, then runs `then` (killed by PID at the end)."""
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(then: str) -> subprocess.Popen[bytes]:
        p = subprocess.Popen([sys.executable, "-c", "import os, sys\nsys.stdin.readline()\n" + then],
                             stdin=subprocess.PIPE)
        procs.append(p)
        return p

    yield spawn
    for p in procs:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait()


def test_exec_updates_the_command_line(agents, waiting_child, tmp_path: Path) -> None:
    child = waiting_child("os.execvp('sleep', ['sleep', '61'])")
    key = (child.pid, start_of(child.pid))
    a = started_agent(agents, tmp_path, interval=0.1)
    a.wait_sample(lambda s: key in a.table.procs, "the child in the table")
    assert a.table.procs[key]["cmd"].startswith(sys.executable)
    assert child.stdin is not None
    child.stdin.write(b"go\n")
    child.stdin.flush()
    a.wait_sample(lambda s: a.table.procs[key]["cmd"] == "sleep 61", "the new command line after exec")


def test_a_new_command_line_under_the_same_name_shows(agents, waiting_child, tmp_path: Path) -> None:
    """A program that re-executes itself (or a server that sets its title after it forked, as
    sshd does) keeps its name in /proc/PID/stat: the agent still shows the line it has now."""
    child = waiting_child("os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(61)', "
                          "'retitle' + 'd'])")
    key = (child.pid, start_of(child.pid))
    a = started_agent(agents, tmp_path, interval=0.1)
    a.wait_sample(lambda s: key in a.table.procs, "the child in the table")
    before = a.table.procs[key]["cmd"]
    assert before.startswith(sys.executable) and "retitled" not in before
    comm = Path(f"/proc/{child.pid}/comm").read_text()
    assert child.stdin is not None
    child.stdin.write(b"go\n")
    child.stdin.flush()
    a.wait_sample(lambda s: a.table.procs[key]["cmd"].endswith(" retitled"), "the new command line")
    assert Path(f"/proc/{child.pid}/comm").read_text() == comm  # the name did not tell
    assert a.table.procs[key]["cmd"] == f"{sys.executable} -c import time; time.sleep(61) retitled"


def test_a_long_sleeper_that_wakes_up_is_seen(agents, waiting_child, tmp_path: Path) -> None:
    """Long sleepers are probed less often (agent.DORMANT_*): one that starts working must still show."""
    child = waiting_child(BUSY)
    key = (child.pid, start_of(child.pid))
    a = started_agent(agents, tmp_path, interval=0.1)
    a.wait_sample(lambda s: s["seq"] > agent_mod.DORMANT_AFTER + 5, "the child asleep for a while")
    assert a.table.procs[key]["cpu"] == 0 and a.table.procs[key]["state"] == "S"
    assert child.stdin is not None
    child.stdin.write(b"go\n")
    child.stdin.flush()
    a.wait_sample(lambda s: a.table.procs[key]["cpu"] > 30 and a.table.procs[key]["state"] == "R",
                  "the woken child busy")


def test_new_threads_are_not_taken_for_processes(agents, tmp_path: Path) -> None:
    """When few PIDs were handed out since the last sample they are tried one by one instead of
    listing /proc; a new thread's TID is such a PID (/proc/TID answers though /proc does not list
    it) and must not become a process. In a PID namespace of its own nothing else takes PIDs."""
    a = agents(prefix=["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"])
    assert a.next_message(time.monotonic() + DEADLINE)["type"] == "hello"
    # a criu that is not there: the start-up probe of a real one runs criu (and its features) in
    # this namespace for seconds, and those processes would be counted with the ones under test
    a.ok("start", interval=0.1, state_dir=str(tmp_path / "state"), criu=str(tmp_path / "no-criu"))
    a.wait_sample(lambda s: s["node"]["nprocs"] == 1, "the agent alone")
    inner = psutil.Process(a.proc.pid).children()
    assert len(inner) == 1
    threads = ("import threading, time\nfor _ in range(4):\n"
               "    threading.Thread(target=time.sleep, args=(600,), daemon=True).start()\ntime.sleep(600)")
    nsenter = subprocess.Popen(["nsenter", "--target", str(inner[0].pid), "--pid", "--", sys.executable, "-c", threads])
    try:
        deadline = time.monotonic() + DEADLINE
        while True:
            kids = psutil.Process(nsenter.pid).children()
            if kids and kids[0].num_threads() == 5:
                break
            assert time.monotonic() < deadline, "the threaded child never started its threads"
            time.sleep(0.01)
        started = time.time()
        a.wait_sample(lambda s: s["node"]["time"] > started, "a sample after the threads started")
        s = a.wait_sample(lambda s: True, "the next sample")
        assert s["node"]["nprocs"] == 2, "threads counted as processes"
        assert len(a.table.procs) == 2
    finally:
        for c in psutil.Process(nsenter.pid).children():
            os.kill(c.pid, signal.SIGKILL)
        nsenter.wait(20)


def test_a_long_sleeper_that_dies_shows_in_the_next_sample(agents, children, tmp_path: Path) -> None:
    """Dormant sleepers are probed every DORMANT_EVERY samples, but a death must not wait for that:
    killed sleepers (zombies, as we do not reap them yet) are Z or gone in the second sample taken
    after they died (the first may have started its scan before). Sleepers with PIDs in every
    probing phase, so a sampler that waited for the phase would miss some."""
    sleepers: list[subprocess.Popen[bytes]] = []
    while len({p.pid % agent_mod.DORMANT_EVERY for p in sleepers}) < agent_mod.DORMANT_EVERY or len(sleepers) < 6:
        assert len(sleepers) < 60, "PIDs never covered every probing phase"
        sleepers.append(children("sleep", "600"))
    keys = [(p.pid, start_of(p.pid)) for p in sleepers]
    a = started_agent(agents, tmp_path, interval=0.1)
    a.wait_sample(lambda s: s["seq"] > agent_mod.DORMANT_AFTER + 5, "the sleepers asleep for a while")
    assert all(a.table.procs[k]["state"] == "S" for k in keys)
    for p in sleepers:
        os.kill(p.pid, signal.SIGKILL)
    deadline = time.monotonic() + DEADLINE
    while not all(stat_fields(p.pid)[0] == "Z" for p in sleepers):
        assert time.monotonic() < deadline, "the killed sleepers never became zombies"
        time.sleep(0.01)
    died = time.time()
    a.wait_sample(lambda s: s["node"]["time"] > died, "a sample finished after the deaths")
    a.wait_sample(lambda s: True, "the next sample")
    late = [k for k in keys if k in a.table.procs and a.table.procs[k]["state"] != "Z"]
    assert not late, f"dead sleepers still shown alive: {late}"


def test_sample_now_pushes_a_full_sample(agents, tmp_path: Path) -> None:
    a = started_agent(agents, tmp_path, interval=5)
    a.wait_sample(lambda s: True, "first sample")
    seq = a.ok("sample_now")["seq"]
    full = [s for s in a.samples if s["seq"] == seq]
    assert full and full[0]["procs"]["full"] and full[0]["procs"]["new"]
    assert a.ok("ping")["time"] > 0


def test_procs_false_sends_node_figures_only(agents, tmp_path: Path) -> None:
    a = started_agent(agents, tmp_path, procs=False)
    s = a.wait_sample(lambda s: s["seq"] >= 2, "two samples")
    assert "procs" not in s and s["node"]["nprocs"] > 1


def test_eof_and_shutdown_end_the_agent_cleanly(agents, tmp_path: Path) -> None:
    a = started_agent(agents, tmp_path)
    a.wait_sample(lambda s: True, "a sample")
    assert a.close() == 0
    b = started_agent(agents, tmp_path)
    assert b.ok("shutdown") == {}
    assert b.proc.wait(20) == 0


def test_eof_ends_the_agent_even_when_its_output_is_not_read(tmp_path: Path) -> None:
    """A workstation that stopped reading and then went away must not leave the agent hanging."""
    import fcntl
    import termios

    proc = subprocess.Popen([sys.executable, "-u", "-c", BOOTSTRAP], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        src = agent_source()
        req = {"id": 1, "op": "start", "args": {"interval": 0.05, "state_dir": str(tmp_path / "s")}}
        proc.stdin.write(f"{len(src)}\n".encode() + src + json.dumps(req).encode() + b"\n")
        proc.stdin.flush()
        buf = bytearray(4)
        deadline = time.monotonic() + 120
        last, same = -1, 0
        while True:  # until the pipe is (nearly) full and the sampler blocks in write
            fcntl.ioctl(proc.stdout.fileno(), termios.FIONREAD, buf)
            level = int.from_bytes(buf, sys.byteorder)
            # lines land in whole pipe pages, so "full" can be well below 64 KiB depending on line
            # sizes; the agent writes every 50 ms, so a level that stays put for 1 s means it is blocked
            same = same + 1 if level == last else 0
            last = level
            if level > 0 and same >= 10:
                break
            assert time.monotonic() < deadline, "the agent never filled its output pipe"
            time.sleep(0.1)
        proc.stdin.close()
        assert proc.wait(DEADLINE) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def test_missing_psutil_gives_a_fatal_line(agents) -> None:
    # -I -S: no site-packages at all, so psutil (installed in the venv) cannot be imported.
    probe = subprocess.run([sys.executable, "-I", "-S", "-c", "import psutil"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("psutil is importable even without site-packages here")
    a = agents(python_flags=["-I", "-S"])
    msg = a.next_message(time.monotonic() + DEADLINE)
    assert msg == {"type": "fatal", "reason": "psutil is missing on the node",
                   "hint": "install python3-psutil (Debian/Ubuntu) or pip install psutil"}
    assert a.proc.wait(20) == 3


def test_bad_requests_are_refused_and_the_agent_lives_on(agents, tmp_path: Path) -> None:
    a = started_agent(agents, tmp_path)
    a.send_line(b"this is not json")
    r = a.reply_to(None)
    assert r["ok"] is False and r["code"] == "invalid"
    a.send_line(b"[1, 2]")
    assert a.reply_to(None)["code"] == "invalid"
    bad: list[tuple[str, dict[str, Any]]] = [
        ("no_such_op", {}),
        ("__init__", {}),
        ("signal", {"pid": os.getpid(), "start": start_of(os.getpid()), "sig": "FOO"}),
        ("signal", {"pid": "1", "start": 0, "sig": "TERM"}),
        ("renice", {"pid": os.getpid(), "start": start_of(os.getpid()), "nice": 20}),
        ("renice", {"pid": os.getpid(), "start": start_of(os.getpid()), "nice": True}),
        ("start", {"interval": -1}),
        ("set_admin", {"speed": 0}),
        ("set_admin", {"speed": True}),
        ("set_admin", {"speed": 1_000_001}),
        ("set_admin", {"stay": "yes"}),
        ("set_admin", {"decay_interval": 3601}),
        ("set_admin", {"slow_decay": -1}),
        ("set_admin", {"fast_decay": 1001}),
        ("set_admin", {"expel": True}),
        ("set_admin", {"no_such_flag": True}),
    ]
    for op, args in bad:
        r = a.call(op, **args)
        assert r["ok"] is False and r["code"] == "invalid", (op, args, r)
        assert r["error"]
    assert a.ok("get_admin") == AdminState().to_dict(), "refused changes must change nothing"
    assert a.ok("ping")["time"] > 0


# ------------------------------------------------------------------ admin state


def test_admin_state_persists_across_agent_restart(agents, tmp_path: Path) -> None:
    state_dir = tmp_path / "nested" / "state"
    a = started_agent(agents, tmp_path, state_dir=str(state_dir))
    assert a.ok("get_admin") == AdminState().to_dict()
    new = a.ok("set_admin", stay=True, block=True, speed=5000, decay_interval=7, slow_decay=900)
    assert new == {**AdminState().to_dict(), "stay": True, "block": True, "speed": 5000,
                   "decay_interval": 7, "slow_decay": 900}
    path = state_dir / "admin.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == new
    assert [p.name for p in state_dir.iterdir()] == ["admin.json"], "no temporary file left behind"
    s = a.wait_sample(lambda s: s["node"]["admin"] == new, "the new admin state in a sample")
    assert s["node"]["speed"] == 5000
    node = s["node"]
    assert node["load"] == pytest.approx(node["runq"] * 100 / node["cpus"] * STANDARD_SPEED / 5000, abs=0.2)
    assert a.close() == 0

    b = started_agent(agents, tmp_path, state_dir=str(state_dir))
    assert b.ok("get_admin") == new
    cleared = b.ok("set_admin", speed=None, stay=False)
    assert cleared["speed"] is None and cleared["stay"] is False and cleared["block"] is True
    s = b.wait_sample(lambda s: s["node"]["admin"] == cleared, "the cleared speed in a sample")
    assert s["node"]["speed"] != 5000 or os.cpu_count() == 0


# ------------------------------------------------------------------ process actions


def test_stop_cont_and_renice_a_process(agents, children, tmp_path: Path) -> None:
    child = children("sleep", "60")
    key = (child.pid, start_of(child.pid))
    a = started_agent(agents, tmp_path)
    a.wait_sample(lambda s: key in a.table.procs, "the child in the table")

    assert a.ok("signal", pid=key[0], start=key[1], sig="STOP") == {}
    a.wait_sample(lambda s: a.table.procs[key]["state"] == "T", "state T after STOP")
    assert stat_fields(child.pid)[0] == "T"
    assert a.ok("signal", pid=key[0], start=key[1], sig="CONT") == {}
    a.wait_sample(lambda s: a.table.procs[key]["state"] == "S", "state S after CONT")

    assert a.ok("renice", pid=key[0], start=key[1], nice=10) == {"nice": 10}
    assert int(stat_fields(child.pid)[16]) == 10
    a.wait_sample(lambda s: a.table.procs[key]["nice"] == 10, "nice 10 in the table")

    assert a.ok("signal", pid=key[0], start=key[1], sig="TERM") == {}
    assert child.wait(20) == -signal.SIGTERM


def test_renice_reaches_every_thread(agents, children, tmp_path: Path) -> None:
    child = children(sys.executable, "-c", "import threading, time\n"
                     "threading.Thread(target=time.sleep, args=(60,)).start()\ntime.sleep(60)")
    deadline = time.monotonic() + DEADLINE
    while len(os.listdir(f"/proc/{child.pid}/task")) < 2:
        assert time.monotonic() < deadline, "the child never started its thread"
        time.sleep(0.05)
    a = started_agent(agents, tmp_path)
    assert a.ok("renice", pid=child.pid, start=start_of(child.pid), nice=5) == {"nice": 5}
    for tid in os.listdir(f"/proc/{child.pid}/task"):
        data = Path(f"/proc/{child.pid}/task/{tid}/stat").read_text()
        assert int(data[data.rindex(")") + 2:].split()[16]) == 5


def test_stale_or_missing_process_is_refused_and_untouched(agents, children, tmp_path: Path) -> None:
    child = children("sleep", "60")
    start = start_of(child.pid)
    a = started_agent(agents, tmp_path)
    for op, extra in (("signal", {"sig": "STOP"}), ("renice", {"nice": 7})):
        r = a.call(op, pid=child.pid, start=start + 1, **extra)
        assert r["ok"] is False and r["code"] == "stale", r
        assert str(child.pid) in r["error"] and "refresh" in r["error"]
    fields_now = stat_fields(child.pid)
    assert fields_now[0] == "S" and int(fields_now[16]) == 0, "a refused request must not touch the process"

    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    r = a.call("signal", pid=child.pid, start=start, sig="TERM")
    assert r["ok"] is False and r["code"] == "stale"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop privileges for the agent")
def test_signal_to_a_foreign_process_is_denied(agents, children, tmp_path: Path) -> None:
    child = children("sleep", "60")
    nobody = pwd.getpwnam("nobody")
    state = tmp_path / "nobody-state"
    state.mkdir()
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    a = agents(prefix=["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"])
    assert a.next_message(time.monotonic() + DEADLINE)["type"] == "hello"
    a.ok("start", interval=0.2, state_dir=str(state))
    r = a.call("signal", pid=child.pid, start=start_of(child.pid), sig="TERM")
    assert r["ok"] is False and r["code"] == "denied", r
    r = a.call("renice", pid=child.pid, start=start_of(child.pid), nice=-5)
    assert r["ok"] is False and r["code"] == "denied", r
    assert child.poll() is None


# ------------------------------------------------------------------ cgroups


def write_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v1_limits_from_a_tree(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    cpu, mem = sysfs / "cpu", sysfs / "memory"
    write_file(tmp_path / "self" / "cgroup", "4:memory:/box/job\n2:cpu,cpuacct:/box/job\n0::/\n")
    write_file(tmp_path / "self" / "mountinfo",
               f"31 23 0:28 / {sysfs} rw - tmpfs tmpfs rw\n"
               f"32 31 0:29 / {cpu} rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
               f"35 31 0:32 / {mem} rw,relatime - cgroup cgroup rw,memory\n")
    write_file(cpu / "cpu.cfs_quota_us", "-1\n")
    write_file(cpu / "cpu.cfs_period_us", "100000\n")
    write_file(cpu / "box" / "cpu.cfs_quota_us", "150000\n")  # the parent is the tightest
    write_file(cpu / "box" / "cpu.cfs_period_us", "100000\n")
    write_file(cpu / "box" / "job" / "cpu.cfs_quota_us", "-1\n")
    write_file(cpu / "box" / "job" / "cpu.cfs_period_us", "100000\n")
    write_file(mem / "memory.limit_in_bytes", "9223372036854771712\n")
    write_file(mem / "box" / "memory.limit_in_bytes", str(1 << 30))
    write_file(mem / "box" / "job" / "memory.limit_in_bytes", str(256 << 20))
    write_file(mem / "box" / "job" / "memory.usage_in_bytes", str(100 << 20))
    write_file(mem / "box" / "job" / "memory.stat", f"cache 1\ntotal_inactive_file {20 << 20}\n")

    dirs = agent_mod.cgroup_dirs(str(tmp_path / "self"))
    assert dirs["cpu"] == [str(cpu / "box" / "job"), str(cpu / "box"), str(cpu)]
    assert agent_mod.cgroup_cpu_quota(dirs) == 1.5
    assert agent_mod.cgroup_memory(dirs) == (256 << 20, 80 << 20)
    assert agent_mod.cpus_and_speed(2, 1.5) == (2, 7500)


def test_cgroup_v2_limits_from_a_tree(tmp_path: Path) -> None:
    root = tmp_path / "unified"
    write_file(tmp_path / "self" / "cgroup", "0::/user.slice/job\n")
    write_file(tmp_path / "self" / "mountinfo", f"30 23 0:27 / {root} rw - cgroup2 cgroup2 rw\n")
    write_file(root / "user.slice" / "cpu.max", "max 100000\n")
    write_file(root / "user.slice" / "memory.max", str(512 << 20))
    write_file(root / "user.slice" / "job" / "cpu.max", "50000 100000\n")
    write_file(root / "user.slice" / "job" / "memory.max", "max\n")
    write_file(root / "user.slice" / "memory.current", str(300 << 20))
    write_file(root / "user.slice" / "memory.stat", f"anon 1\ninactive_file {100 << 20}\n")
    dirs = agent_mod.cgroup_dirs(str(tmp_path / "self"))
    assert dirs["v2"][0] == str(root / "user.slice" / "job")
    assert agent_mod.cgroup_cpu_quota(dirs) == 0.5
    assert agent_mod.cgroup_memory(dirs) == (512 << 20, 200 << 20)
    assert agent_mod.cpus_and_speed(2, 0.5) == (1, 5000)
    assert agent_mod.cpus_and_speed(2, None) == (2, STANDARD_SPEED)
    assert agent_mod.cpus_and_speed(2, 3.0) == (2, STANDARD_SPEED)


def test_parse_stat_takes_fields_after_the_last_paren() -> None:
    comm, f = agent_mod.parse_stat(b"42 (a) b (c) d) S 1 42 42 0 -1 0 0 0 0 0 7 3 0 0 20 5 1 0 999 0 12\n")
    assert comm == b"a) b (c) d" and f[0] == b"S" and int(f[19]) == 999 and int(f[16]) == 5


@pytest.mark.skipif(not (os.geteuid() == 0 and Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").exists()
                         and Path("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()),
                    reason="needs root and cgroup v1 cpu and memory controllers")
def test_agent_in_a_real_cgroup_v1_sees_its_quota_and_limit(agents, tmp_path: Path) -> None:
    name = f"omview-agent-test-{os.getpid()}"
    cpu, mem = Path("/sys/fs/cgroup/cpu", name), Path("/sys/fs/cgroup/memory", name)
    cpu.mkdir()
    try:
        mem.mkdir()
        (cpu / "cpu.cfs_period_us").write_text("100000")
        (cpu / "cpu.cfs_quota_us").write_text("50000")
        (mem / "memory.limit_in_bytes").write_text(str(256 << 20))
        join = f"echo $$ > {cpu}/cgroup.procs && echo $$ > {mem}/cgroup.procs && exec \"$0\" \"$@\""
        a = agents(prefix=["sh", "-c", join])
        assert a.next_message(time.monotonic() + DEADLINE)["type"] == "hello"
        a.ok("start", interval=0.2, state_dir=str(tmp_path / "state"))
        s = a.wait_sample(lambda s: True, "a sample")["node"]
        assert s["cpus"] == 1 and s["speed"] == 5000
        assert s["mem_total"] == 256 << 20 and 0 < s["mem_used"] < 256 << 20
        assert s["mem_available"] <= (256 << 20) - s["mem_used"]
        assert a.close() == 0
    finally:
        for d in (cpu, mem):
            deadline = time.monotonic() + DEADLINE
            while d.exists():
                try:
                    d.rmdir()
                except OSError:
                    assert time.monotonic() < deadline, f"could not remove {d}"
                    time.sleep(0.1)


# ------------------------------------------------------------------ /proc/hpc backend


NODE = {"CPUs": 4, "load": 150, "speed": 15000, "mem": 700 << 20, "rmem": 600 << 20,
        "tmem": 1 << 30, "util": 80, "status": 3}


def test_hpc_backend_reads_and_writes_the_tree(agents, children, tmp_path: Path) -> None:
    hpc = make_hpc_tree(tmp_path / "hpc", 3, NODE, admin={"lstay": 1, "decay-interval": 4},
                        others={1: {"CPUs": 1, "load": 0}})
    proc_root = tmp_path / "proc"
    child = children("sleep", "60")
    key = (child.pid, start_of(child.pid))
    entry = make_proc_entry(proc_root, child.pid, where=2, lock=True, cantmove="has a shared memory segment",
                            nmigs=4)
    a = agents()
    assert a.next_message(time.monotonic() + DEADLINE)["type"] == "hello"
    # no node_id: the agent takes this node's id from admin/mospe, as mosctl does
    res = a.ok("start", interval=0.2, state_dir=str(tmp_path / "state"), hpc_root=str(hpc),
               proc_root=str(proc_root))
    assert res["backend"] == "hpc"

    s = a.wait_sample(lambda s: key in a.table.procs, "the child in the table")
    node = s["node"]
    assert node["backend"] == "hpc"
    assert (node["cpus"], node["speed"], node["load"], node["util"]) == (4, 15000, 150.0, 80.0)
    assert node["runq"] == pytest.approx(150 * 4 * 15000 / (100 * STANDARD_SPEED))
    assert (node["mem_total"], node["mem_available"], node["mem_used"]) == (1 << 30, 700 << 20, (1 << 30) - (600 << 20))
    admin = AdminState.from_dict(node["admin"])
    assert admin.lstay and not admin.stay and admin.decay_interval == 4 and admin.speed == 10000
    p = a.table.procs[key]
    assert (p["where"], p["lock"], p["cantmove"], p["nmigs"]) == (2, True, "has a shared memory segment", 4)

    new = a.ok("set_admin", block=True, quiet=True, speed=12000, fast_decay=900, stopped=True)
    assert new["block"] and new["quiet"] and new["speed"] == 12000 and new["fast_decay"] == 900
    assert read_value(hpc / "admin" / "block") == "1" and read_value(hpc / "admin" / "quiet") == "1"
    assert read_value(hpc / "admin" / "speed") == "12000" and read_value(hpc / "admin" / "fast-decay") == "900"
    assert json.loads((tmp_path / "state" / "admin.json").read_text())["stopped"] is True
    assert a.ok("set_admin", block=False)["block"] is False
    assert read_value(hpc / "admin" / "block") == "0"
    r = a.call("set_admin", speed=None)
    assert r["ok"] is False and r["code"] == "invalid"

    # the kernel changes things behind the agent's back: the next samples show it
    (hpc / "admin" / "stay").write_text("1\n")
    (hpc / "nodes" / "3" / "load").write_text("20\n")
    (entry / "where").write_text("0\n")
    (entry / "nmigs").write_text("5\n")
    a.wait_sample(lambda s: s["node"]["admin"]["stay"] and s["node"]["load"] == 20.0, "new flags and load")
    a.wait_sample(lambda s: a.table.procs[key]["where"] == 0 and a.table.procs[key]["nmigs"] == 5,
                  "the process back home after 5 migrations")
    assert a.ok("get_admin")["stay"] is True


def test_hpc_backend_with_explicit_node_id(agents, tmp_path: Path) -> None:
    hpc = make_hpc_tree(tmp_path / "hpc", 1, {"CPUs": 1}, others={7: NODE})
    a = started_agent(agents, tmp_path, hpc_root=str(hpc), node_id=7, proc_root=str(tmp_path / "none"))
    s = a.wait_sample(lambda s: True, "a sample")
    assert s["node"]["cpus"] == 4 and s["node"]["speed"] == 15000
    mine = [p for p in s["procs"]["new"] if p["pid"] == os.getpid()]
    assert mine and mine[0]["where"] == 0 and mine[0]["cantmove"] == ""
