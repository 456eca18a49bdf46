"""CRIU: find it, probe it, and build its command lines.

Process migration checkpoints a process tree with CRIU on the source node and restores it on the
target. This module is Qt-free and has three parts:

* locating a criu binary (:func:`find_criu`), using the same cache rule as
  ``scripts/provision-criu.sh`` which provisions trixie's criu 4.x when the host's own fails;
* probing it (:func:`probe` -> :class:`CriuStatus`): version, ``criu check``, and the optional
  kernel features that live migration would need;
* pure command builders (:func:`dump_argv`, :func:`restore_argv`, :func:`page_server_argv`,
  :func:`check_argv`, ...) and output parsers, which do no I/O and are unit-tested as such.

Measured on the development kernel (6.18, Debian 12 userland, criu 4.1.1 from trixie; see
docs/criu.md):

* ``criu check`` says "Looks good."; Debian 12's criu 3.17 does not (vDSO layout).
* ``mem_dirty_track`` is missing ("Dirty tracking is OFF"): no pre-dump, so no iterative live
  migration. ``uffd`` and ``uffd-noncoop`` are reported supported, yet a ``--lazy-pages`` dump
  fails with EPERM on the page pipe, so lazy (post-copy) migration does not work either.
* Every dump and restore logs ``Error ... Can't setup RLIMIT_NOFILE for self``: harmless.
* A job started as ``unshare --pid --fork setsid CMD`` (init of its own PID namespace and its own
  session leader, stdio on /dev/null or files that do not change) dumps with ``--leave-stopped``
  and restores with ``--restore-detached``; adding ``--mount-proc`` (a private mount namespace)
  makes the dump fail ("Can't lookup mount=N for fd=0").
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: What :func:`probe` says when no criu could be found.
NOT_FOUND_REASON = "criu not found: run `make test` to provision it, or set criu = PATH for the node"
#: What :func:`probe` says when it runs without the privileges CRIU needs.
NOT_ROOT_REASON = "not root: CRIU needs root or CAP_CHECKPOINT_RESTORE"

#: Error lines CRIU prints that are harmless (root without CAP_SYS_RESOURCE, see ARCHITECTURE).
HARMLESS_ERRORS: tuple[str, ...] = ("Can't setup RLIMIT_NOFILE for self",)

#: Optional kernel features probed with ``criu check --feature NAME``.
#: mem_dirty_track: soft-dirty bits, needed for pre-dump (iterative live migration).
#: uffd / uffd-noncoop: userfaultfd, needed for lazy pages (post-copy migration).
FEATURES: tuple[str, ...] = ("mem_dirty_track", "uffd", "uffd-noncoop")

#: Capability number of CAP_CHECKPOINT_RESTORE (Linux 5.9+).
CAP_CHECKPOINT_RESTORE = 40

DEFAULT_TIMEOUT = 20.0


# --------------------------------------------------------------------------- locating criu


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``${OMVIEW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/omview}``, as in provision-criu.sh."""
    env = os.environ if env is None else env
    if env.get("OMVIEW_CACHE_DIR"):
        return Path(env["OMVIEW_CACHE_DIR"])
    xdg = env.get("XDG_CACHE_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".cache")
    return Path(xdg) / "omview"


def provisioned_criu(env: Mapping[str, str] | None = None) -> Path:
    """Where provision-criu.sh puts its wrapper (it may not exist)."""
    return cache_dir(env) / "criu" / "bin" / "criu"


def _runs(path: str, timeout: float = 10.0) -> bool:
    try:
        return (
            subprocess.run(
                version_argv(path),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=timeout,
                check=False,
            ).returncode
            == 0
        )
    except (OSError, subprocess.SubprocessError):
        return False


def candidates(configured: str | None = None, env: Mapping[str, str] | None = None) -> list[str]:
    """The places :func:`find_criu` tries, in order (pure but for the PATH lookup)."""
    env = os.environ if env is None else env
    out: list[str] = []
    for c in (configured, env.get("OMVIEW_CRIU")):
        if c:
            # A bare name ("criu") is looked up on PATH; a path is taken as it is.
            out.append(c if os.sep in c else (shutil.which(c, path=env.get("PATH")) or c))
    out.append(str(provisioned_criu(env)))
    on_path = shutil.which("criu", path=env.get("PATH"))
    if on_path:
        out.append(on_path)
    return list(dict.fromkeys(out))  # drop repeats, keep order


def find_criu(configured: str | None = None, env: Mapping[str, str] | None = None) -> str | None:
    """The criu to use: *configured*, ``$OMVIEW_CRIU``, the provisioned wrapper, ``criu`` on PATH.

    The first one that exists and runs (``criu --version`` exits 0) wins; None when none does.
    """
    for c in candidates(configured, env):
        if os.path.isfile(c) and os.access(c, os.X_OK) and _runs(c):
            return c
    return None


# --------------------------------------------------------------------------- probing


@dataclass
class CriuStatus:
    """What :func:`probe` found out about one criu on this machine."""

    path: str | None
    version: str = ""
    ready: bool = False
    reason: str = ""  # empty when ready; otherwise why not, for a person to read
    features: dict[str, bool] = field(default_factory=dict)

    def live_blockers(self) -> list[str]:
        """Why live (pre-copy or post-copy) migration cannot work with this criu/kernel."""
        return live_blockers(self.features)


def parse_version(text: str) -> str:
    """``criu --version`` output -> "4.1.1" (the first "Version:" line), or "" if none."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "version" and value.strip():
            return value.strip()
    return ""


def is_harmless(line: str) -> bool:
    return any(h in line for h in HARMLESS_ERRORS)


def error_lines(text: str) -> list[str]:
    """CRIU's error lines in *text*, harmless ones dropped."""
    return [ln.strip() for ln in text.splitlines() if "Error" in ln and not is_harmless(ln)]


def check_passed(text: str) -> bool:
    """True when ``criu check`` output says "Looks good" (the harmless error is ignored)."""
    return any(ln.strip().startswith("Looks good") for ln in text.splitlines())


def check_failure(text: str) -> str:
    """The reason line for a failed ``criu check``: its last error, else its last meaningful line."""
    errs = error_lines(text)
    if errs:
        return errs[-1]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not is_harmless(ln)]
    return lines[-1] if lines else "no output"


def live_blockers(features: Mapping[str, bool]) -> list[str]:
    """Reasons to refuse ``--live`` given probed *features* (missing key = not supported)."""
    out: list[str] = []
    if not features.get("mem_dirty_track", False):
        out.append(
            "no soft-dirty memory tracking on this kernel (criu check --feature mem_dirty_track "
            "fails), so no pre-dump"
        )
    if not features.get("uffd-noncoop", False):
        out.append("no non-cooperative userfaultfd (criu check --feature uffd-noncoop), so no lazy pages")
    return out


def has_privileges() -> bool:
    """Root, or CAP_CHECKPOINT_RESTORE in the effective set."""
    if os.geteuid() == 0:
        return True
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_CHECKPOINT_RESTORE & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


def _run(argv: list[str], timeout: float) -> tuple[int, str]:
    """Run *argv*, return (exit code, stdout+stderr). Timeouts and OSErrors raise."""
    p = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        timeout=timeout,
        check=False,
    )
    return p.returncode, p.stdout


def probe(path: str | None, *, timeout: float = DEFAULT_TIMEOUT, features: bool = True) -> CriuStatus:
    """Run ``criu --version`` and ``criu check`` (plus each of :data:`FEATURES` when *features*).

    ready is True when ``criu check`` says "Looks good"; otherwise *reason* says why, e.g.
    :data:`NOT_FOUND_REASON`, :data:`NOT_ROOT_REASON` or "criu check failed: <last error line>".
    """
    if not path:
        return CriuStatus(None, reason=NOT_FOUND_REASON)
    st = CriuStatus(path)
    try:
        rc, out = _run(version_argv(path), timeout)
    except subprocess.TimeoutExpired:
        st.reason = f"criu --version timed out after {timeout:g} s: {path}"
        return st
    except OSError as e:
        st.reason = f"criu does not run: {path}: {e.strerror or e}"
        return st
    st.version = parse_version(out)
    if rc != 0:
        st.reason = f"criu does not run: {path} --version exited {rc}: {check_failure(out)}"
        return st
    if not has_privileges():
        st.reason = NOT_ROOT_REASON
        return st
    try:
        rc, out = _run(check_argv(path), timeout)
    except subprocess.TimeoutExpired:
        st.reason = f"criu check timed out after {timeout:g} s"
        return st
    except OSError as e:
        st.reason = f"criu check failed: {e.strerror or e}"
        return st
    if not check_passed(out):
        st.reason = f"criu check failed: {check_failure(out)}"
        return st
    st.ready = True
    if features:
        for name in FEATURES:
            try:
                rc, out = _run(check_argv(path, feature=name), timeout)
                st.features[name] = rc == 0 and "is supported" in out
            except (OSError, subprocess.SubprocessError):
                st.features[name] = False
    return st


# --------------------------------------------------------------------------- command builders (pure)


def _common(log_file: str | None, verbosity: int | None) -> list[str]:
    out: list[str] = []
    if log_file:
        out += ["-o", str(log_file)]  # relative names land in the work dir (-W, default -D)
    if verbosity is not None:
        if not 0 <= verbosity <= 4:
            raise ValueError(f"criu verbosity must be 0..4, not {verbosity}")
        out.append(f"-v{verbosity}")
    return out


def _port(name: str, port: int) -> list[str]:
    if not 0 < port < 65536:
        raise ValueError(f"{name} port must be 1..65535, not {port}")
    return ["--port", str(port)]


def _address(name: str, address: str) -> list[str]:
    if not address:
        raise ValueError(f"{name} needs an address")
    return ["--address", address]


def version_argv(criu: str) -> list[str]:
    return [criu, "--version"]


def check_argv(criu: str, *, feature: str | None = None, extra: bool = False) -> list[str]:
    """``criu check`` (Category 1 features), ``--extra`` (Category 2) or ``--feature NAME``."""
    argv = [criu, "check"]
    if feature:
        argv += ["--feature", feature]
    elif extra:
        argv.append("--extra")
    return argv


def dump_argv(
    criu: str,
    pid: int,
    images_dir: str | os.PathLike[str],
    *,
    leave_stopped: bool = True,
    leave_running: bool = False,
    shell_job: bool = False,
    tcp_established: bool = False,
    file_locks: bool = False,
    page_server: tuple[str, int] | None = None,
    log_file: str | None = "dump.log",
    verbosity: int | None = 4,
    extra: Sequence[str] = (),
) -> list[str]:
    """``criu dump -t PID -D DIR``: checkpoint the tree rooted at *pid*.

    leave_stopped keeps the source stopped (state T) after a successful dump, so a failed
    restore can fall back to ``kill -CONT``; without it and leave_running, CRIU kills the tree.
    page_server=(address, port) streams the memory pages to ``criu page-server`` on the target
    (only the small non-page images are written to *images_dir*).
    """
    if pid <= 0:
        raise ValueError(f"pid must be positive, not {pid}")
    if leave_stopped and leave_running:
        raise ValueError("leave_stopped and leave_running exclude each other")
    argv = [criu, "dump", "-t", str(pid), "-D", os.fspath(images_dir)]
    argv += _common(log_file, verbosity)
    if leave_stopped:
        argv.append("--leave-stopped")
    if leave_running:
        argv.append("--leave-running")
    if shell_job:
        argv.append("--shell-job")
    if tcp_established:
        argv.append("--tcp-established")
    if file_locks:
        argv.append("--file-locks")
    if page_server is not None:
        address, port = page_server
        argv += ["--page-server", *_address("page_server", address), *_port("page_server", port)]
    argv += list(extra)
    return argv


def restore_argv(
    criu: str,
    images_dir: str | os.PathLike[str],
    *,
    restore_detached: bool = True,
    pidfile: str | os.PathLike[str] | None = None,
    leave_stopped: bool = False,
    shell_job: bool = False,
    tcp_established: bool = False,
    file_locks: bool = False,
    log_file: str | None = "restore.log",
    verbosity: int | None = 4,
    extra: Sequence[str] = (),
) -> list[str]:
    """``criu restore -D DIR``.

    restore_detached makes criu exit once the tree runs (it is re-parented to init); pidfile gets
    the restored root task's PID as seen from criu. shell_job and tcp_established must match the
    options the images were dumped with.
    """
    argv = [criu, "restore", "-D", os.fspath(images_dir)]
    argv += _common(log_file, verbosity)
    if restore_detached:
        argv.append("--restore-detached")
    if pidfile is not None:
        argv += ["--pidfile", os.fspath(pidfile)]
    if leave_stopped:
        argv.append("--leave-stopped")
    if shell_job:
        argv.append("--shell-job")
    if tcp_established:
        argv.append("--tcp-established")
    if file_locks:
        argv.append("--file-locks")
    argv += list(extra)
    return argv


def page_server_argv(
    criu: str,
    images_dir: str | os.PathLike[str],
    *,
    port: int,
    address: str | None = None,
    daemon: bool = False,
    pidfile: str | os.PathLike[str] | None = None,
    status_fd: int | None = None,
    log_file: str | None = "page-server.log",
    verbosity: int | None = 4,
) -> list[str]:
    """``criu page-server -D DIR --port N``: receive a dump's pages on the target node.

    It serves one dump and then exits. address limits the listening address (default: all).
    status_fd gets a NUL byte once it listens (not with daemon); pidfile gets its PID.
    """
    if daemon and status_fd is not None:
        raise ValueError("daemon and status_fd exclude each other")
    argv = [criu, "page-server", "-D", os.fspath(images_dir)]
    argv += _common(log_file, verbosity)
    if address is not None:
        argv += _address("page-server", address)
    argv += _port("page-server", port)
    if daemon:
        argv.append("--daemon")
    if status_fd is not None:
        argv += ["--status-fd", str(status_fd)]
    if pidfile is not None:
        argv += ["--pidfile", os.fspath(pidfile)]
    return argv
