"""One collector per history directory: the PID-file lock, and the control socket that -k/-n/-r talk to.

Why a lock and not just a PID file: a PID file alone cannot tell a running collector from a crashed
one whose PID was reused. We hold an exclusive `flock` on it for the collector's life, so "locked"
means "running" and an unlocked file with a PID in it is stale and replaced.

Why a socket and not only signals: `-n LABEL` carries text, and the GUI's Collector menu wants an
answer (the backup folder of `-r`, an error when the disk is full). The socket lives in the history
directory (0700) with mode 0600, so only the collector's owner reaches it. SIGTERM/SIGINT still stop
the collector (systemd), SIGUSR1 writes an unlabelled checkpoint and SIGUSR2 rotates, for scripts.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import socket
from pathlib import Path
from typing import Any

from omview.core.history import default_history_dir

SOCKET_NAME = "control.sock"
PIDFILE_NAME = "omcollector.pid"


class AlreadyRunning(Exception):
    def __init__(self, pid: int | None, pidfile: Path) -> None:
        self.pid = pid
        self.pidfile = pidfile
        who = f"PID {pid}" if pid else "a process that has not written its PID yet"
        super().__init__(f"a collector already runs for this history directory ({who}, lock {pidfile})")


class ControlError(Exception):
    """The running collector could not be reached or refused the request."""


def pidfile_for(history_dir: Path) -> Path:
    """Root: /run/omcollector.pid; a user: $XDG_RUNTIME_DIR (0700). A non-default directory gets its own file.

    Both places are writable only by their owner, so no one can plant a link there (the original
    wrote a fixed name under /tmp). Without $XDG_RUNTIME_DIR the history directory itself (0700) is used.
    """
    if os.geteuid() == 0:
        base = Path("/run")
    elif os.environ.get("XDG_RUNTIME_DIR"):
        base = Path(os.environ["XDG_RUNTIME_DIR"])
    else:
        return history_dir / PIDFILE_NAME
    if history_dir.absolute() == default_history_dir().absolute():
        return base / PIDFILE_NAME
    tag = hashlib.sha256(str(history_dir.absolute()).encode()).hexdigest()[:12]
    return base / f"omcollector-{tag}.pid"


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 64, 0).decode(errors="replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


class PidLock:
    """The exclusive lock on the PID file, held while the collector runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self.stale_pid: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            pid = _read_pid(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise AlreadyRunning(pid, self.path) from None
            raise
        self.stale_pid = _read_pid(fd)  # unlocked with a PID inside: that collector died
        self.fd = fd

    def write_pid(self, pid: int | None = None) -> None:
        assert self.fd is not None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{pid or os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self.fd)
        self.fd = None

    def close_fd(self) -> None:
        """Forget the descriptor without unlocking (a parent after handing the lock to its daemon child)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def running_pid(path: Path) -> int | None:
    """The PID of the collector holding this lock, or None when none runs (no file, or a stale one)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _read_pid(fd) or -1
        return None
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- socket


def socket_path(history_dir: Path) -> Path:
    return history_dir / SOCKET_NAME


def bind_control(history_dir: Path) -> socket.socket:
    """Listen on <dir>/control.sock, mode 0600. Only called with the lock held, so an old socket is stale."""
    path = socket_path(history_dir)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise ControlError(f"cannot create the control socket {path}: {exc}") from None
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(8)
    sock.setblocking(False)
    return sock


def request(history_dir: Path, op: str, timeout: float = 30.0, **args: Any) -> dict[str, Any]:
    """Send one request to the running collector and return its answer (raises ControlError)."""
    path = socket_path(history_dir)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
        sock.sendall(json.dumps({"op": op, **args}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            data = sock.recv(65536)
            if not data:
                break
            buf += data
    except OSError as exc:
        raise ControlError(f"cannot reach the collector through {path}: {exc}") from None
    finally:
        sock.close()
    try:
        answer: dict[str, Any] = json.loads(buf)
    except ValueError:
        raise ControlError(f"no answer from the collector through {path}") from None
    if not answer.get("ok"):
        raise ControlError(str(answer.get("error", "refused")))
    return answer


def read_request(conn: socket.socket, timeout: float = 2.0) -> dict[str, Any] | None:
    """One JSON line from a client, or None when it sent nothing usable in time."""
    conn.settimeout(timeout)
    buf = b""
    try:
        while b"\n" not in buf and len(buf) < 65536:
            data = conn.recv(4096)
            if not data:
                break
            buf += data
        msg = json.loads(buf.split(b"\n", 1)[0])
    except (OSError, ValueError):
        return None
    return msg if isinstance(msg, dict) else None


def answer(conn: socket.socket, msg: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps(msg).encode() + b"\n")
    conn.close()
