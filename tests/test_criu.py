"""omview.core.criu: pure command builders and parsers, probing with fake criu binaries, and
(as root) a real checkpoint/restore round trip with the provisioned criu."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from omview.core import criu

CRIU = "/opt/criu/bin/criu"

# ------------------------------------------------------------------ pure builders (no I/O)


def test_dump_argv_defaults():
    argv = criu.dump_argv(CRIU, 1234, "/tmp/img")
    assert argv[:6] == [CRIU, "dump", "-t", "1234", "-D", "/tmp/img"]
    assert "--leave-stopped" in argv
    assert argv[argv.index("-o") + 1] == "dump.log"
    assert "-v4" in argv
    for flag in ("--shell-job", "--tcp-established", "--page-server", "--leave-running"):
        assert flag not in argv


def test_dump_argv_options():
    argv = criu.dump_argv(
        CRIU,
        42,
        Path("/img"),
        leave_stopped=False,
        shell_job=True,
        tcp_established=True,
        file_locks=True,
        page_server=("10.0.0.2", 27027),
        log_file=None,
        verbosity=None,
        extra=["--ext-unix-sk"],
    )
    assert argv == [
        CRIU, "dump", "-t", "42", "-D", "/img", "--shell-job", "--tcp-established", "--file-locks",
        "--page-server", "--address", "10.0.0.2", "--port", "27027", "--ext-unix-sk",
    ]  # fmt: skip


def test_dump_argv_leave_running():
    argv = criu.dump_argv(CRIU, 7, "/i", leave_stopped=False, leave_running=True)
    assert "--leave-running" in argv and "--leave-stopped" not in argv


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pid": 0},
        {"pid": -3},
        {"leave_running": True},  # with the default leave_stopped=True
        {"page_server": ("h", 0)},
        {"page_server": ("h", 70000)},
        {"page_server": ("", 1)},
        {"verbosity": 5},
    ],
)
def test_dump_argv_rejects(kwargs):
    pid = kwargs.pop("pid", 1)
    with pytest.raises(ValueError):
        criu.dump_argv(CRIU, pid, "/i", **kwargs)


def test_restore_argv():
    argv = criu.restore_argv(CRIU, "/img", pidfile="/run/r.pid")
    assert argv[:4] == [CRIU, "restore", "-D", "/img"]
    assert "--restore-detached" in argv
    assert argv[argv.index("--pidfile") + 1] == "/run/r.pid"
    assert argv[argv.index("-o") + 1] == "restore.log"
    assert "--shell-job" not in argv and "--leave-stopped" not in argv

    argv = criu.restore_argv(
        CRIU, Path("/img"), restore_detached=False, shell_job=True, tcp_established=True,
        leave_stopped=True, log_file="r.log", verbosity=2,
    )  # fmt: skip
    assert argv == [
        CRIU, "restore", "-D", "/img", "-o", "r.log", "-v2", "--leave-stopped", "--shell-job",
        "--tcp-established",
    ]  # fmt: skip


def test_page_server_argv():
    argv = criu.page_server_argv(CRIU, "/img", port=27027)
    assert argv[:4] == [CRIU, "page-server", "-D", "/img"]
    assert argv[argv.index("--port") + 1] == "27027"
    assert "--address" not in argv and "--daemon" not in argv
    argv = criu.page_server_argv(
        CRIU, "/img", port=1, address="0.0.0.0", daemon=True, pidfile="/p", log_file=None, verbosity=None
    )
    assert argv == [CRIU, "page-server", "-D", "/img", "--address", "0.0.0.0", "--port", "1",
                    "--daemon", "--pidfile", "/p"]  # fmt: skip
    assert criu.page_server_argv(CRIU, "/i", port=5, status_fd=3)[-2:] == ["--status-fd", "3"]
    with pytest.raises(ValueError):
        criu.page_server_argv(CRIU, "/i", port=5, status_fd=3, daemon=True)
    with pytest.raises(ValueError):
        criu.page_server_argv(CRIU, "/i", port=0)


def test_check_and_version_argv():
    assert criu.check_argv(CRIU) == [CRIU, "check"]
    assert criu.check_argv(CRIU, feature="mem_dirty_track") == [CRIU, "check", "--feature", "mem_dirty_track"]
    assert criu.check_argv(CRIU, extra=True) == [CRIU, "check", "--extra"]
    assert criu.version_argv(CRIU) == [CRIU, "--version"]


# ------------------------------------------------------------------ pure parsers


RLIMIT = (
    "(00.029809) Error (criu/util.c:1533): rlimit: Can't setup RLIMIT_NOFILE for self: "
    "Operation not permitted"
)


def test_parse_version():
    assert criu.parse_version("Version: 4.1.1\n") == "4.1.1"
    assert criu.parse_version("Version: 3.17.1\nGitID: v3.17.1\n") == "3.17.1"
    assert criu.parse_version("garbage") == ""


def test_check_parsing_ignores_rlimit_error():
    assert criu.check_passed(RLIMIT + "\nLooks good.\n")
    assert criu.check_passed("Looks good but some kernel features are missing\n")
    assert not criu.check_passed("Error (criu/cr-check.c:1): vdso\nDoes not look good.\n")
    text = "Error (criu/kerndat.c:9): Can't map vdso\n" + RLIMIT + "\nDoes not look good.\n"
    assert criu.check_failure(text) == "Error (criu/kerndat.c:9): Can't map vdso"
    assert criu.check_failure(RLIMIT + "\nDoes not look good.\n") == "Does not look good."
    assert criu.error_lines(RLIMIT) == []
    assert criu.check_failure("") == "no output"


def test_live_blockers():
    assert len(criu.live_blockers({})) == 2
    assert criu.live_blockers({"mem_dirty_track": True, "uffd-noncoop": True}) == []
    (only,) = criu.live_blockers({"mem_dirty_track": False, "uffd": True, "uffd-noncoop": True})
    assert "mem_dirty_track" in only


def test_cache_dir_rule():
    assert criu.cache_dir({"OMVIEW_CACHE_DIR": "/c", "XDG_CACHE_HOME": "/x"}) == Path("/c")
    assert criu.cache_dir({"XDG_CACHE_HOME": "/x", "HOME": "/h"}) == Path("/x/omview")
    assert criu.cache_dir({"HOME": "/h"}) == Path("/h/.cache/omview")
    assert criu.provisioned_criu({"HOME": "/h"}) == Path("/h/.cache/omview/criu/bin/criu")


# ------------------------------------------------------------------ find/probe with fake criu binaries


def _fake_criu(path: Path, check_output: str, check_rc: int = 0) -> str:
    """A shell script that answers --version, check and check --feature like criu does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = path.with_name(path.name + ".check")
    out.write_text(check_output + "\n")
    path.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        "  --version) echo 'Version: 9.9.9' ;;\n"
        '  check) if [ "$2" = --feature ]; then echo "$3 is supported"; exit 0; fi\n'
        f"         cat '{out}'; exit {check_rc} ;;\n"
        "  *) exit 2 ;;\n"
        "esac\n"
    )
    path.chmod(0o755)
    return str(path)


def test_find_criu_order(tmp_path):
    env = {"HOME": str(tmp_path / "home"), "PATH": str(tmp_path / "pathbin")}
    assert criu.find_criu(env=env) is None
    on_path = _fake_criu(tmp_path / "pathbin" / "criu", "Looks good.")
    assert criu.find_criu(env=env) == on_path
    wrapper = _fake_criu(criu.provisioned_criu(env), "Looks good.")
    assert criu.find_criu(env=env) == wrapper
    from_env = _fake_criu(tmp_path / "env" / "criu", "Looks good.")
    env["OMVIEW_CRIU"] = from_env
    assert criu.find_criu(env=env) == from_env
    configured = _fake_criu(tmp_path / "conf" / "criu", "Looks good.")
    assert criu.find_criu(configured, env=env) == configured
    # A configured path that does not exist, or does not run, is passed over.
    assert criu.find_criu(str(tmp_path / "nope"), env=env) == from_env
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    assert criu.find_criu(str(broken), env=env) == from_env


def test_probe_with_fakes(tmp_path, monkeypatch):
    assert criu.probe(None).reason == criu.NOT_FOUND_REASON
    monkeypatch.setattr(criu, "has_privileges", lambda: True)
    good = criu.probe(_fake_criu(tmp_path / "a" / "criu", RLIMIT + "\nLooks good."))
    assert good.ready and good.version == "9.9.9" and good.reason == ""
    assert good.features == {name: True for name in criu.FEATURES}
    bad = criu.probe(_fake_criu(tmp_path / "b" / "criu", "Error (x.c:1): no vdso\nDoes not look good.", 1))
    assert not bad.ready and bad.reason == "criu check failed: Error (x.c:1): no vdso"
    assert bad.version == "9.9.9" and bad.features == {}
    monkeypatch.setattr(criu, "has_privileges", lambda: False)
    unpriv = criu.probe(_fake_criu(tmp_path / "c" / "criu", "Looks good."))
    assert not unpriv.ready and unpriv.reason == criu.NOT_ROOT_REASON


# ------------------------------------------------------------------ integration (root)

root_only = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: CRIU checkpoint/restore needs root or CAP_CHECKPOINT_RESTORE"
)

# Counts up, replacing the file atomically so a reader never sees it half written.
COUNTER = """
import os, sys, time
path = sys.argv[1]
n = 0
while True:
    n += 1
    with open(path + ".tmp", "w") as f:
        f.write(str(n))
    os.replace(path + ".tmp", path)
    time.sleep(0.02)
"""


def _read_count(path: Path) -> int:
    try:
        return int(path.read_text() or 0)
    except (OSError, ValueError):
        return 0


def _wait(pred, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "gone"
    return stat.rpartition(")")[2].split()[0]


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _kill(pid: int | None) -> None:
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)  # a PID-namespace init ignores SIGTERM from outside
        except ProcessLookupError:
            pass


def _log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no {path.name})"
    errs = [ln for ln in lines if "Error" in ln and not criu.is_harmless(ln)]
    return "\n".join(errs[-5:] or lines[-5:])


@pytest.fixture(scope="module")
def criu_path() -> str:
    path = criu.find_criu()
    if path is None:
        pytest.fail(criu.NOT_FOUND_REASON)
    return path


@root_only
def test_probe_real_criu(criu_path):
    st = criu.probe(criu_path)
    assert st.ready, st.reason
    assert st.version.split(".")[0].isdigit() and int(st.version.split(".")[0]) >= 4, st.version
    assert set(st.features) == set(criu.FEATURES)


@root_only
def test_dump_restore_round_trip(criu_path, tmp_path):
    """A counter job as init of its own PID namespace and session leader: dump it leaving it
    stopped, kill it, restore it from the images, and see its counter go on."""
    images = tmp_path / "images"
    images.mkdir()
    count = tmp_path / "count"
    # unshare --pid --fork: the job is pid 1 of a new PID namespace (no PID clash on restore);
    # setsid: its own session, so no --shell-job. No --mount-proc: a private mount namespace
    # makes the dump fail here. stdio on /dev/null: CRIU must find the same files on restore.
    unshare = subprocess.Popen(
        ["unshare", "--pid", "--fork", "setsid", sys.executable, "-I", "-c", COUNTER, str(count)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    job: int | None = None
    restored: int | None = None
    try:
        job = _wait(lambda: (_children(unshare.pid) or [None])[0], 5, "the namespaced job to start")
        _wait(lambda: _read_count(count) >= 3, 5, "the counter to count")

        t0 = time.monotonic()
        r = subprocess.run(criu.dump_argv(criu_path, job, images), capture_output=True, timeout=30)
        t_dump = time.monotonic() - t0
        assert r.returncode == 0, "criu dump failed:\n" + _log_tail(images / "dump.log")
        assert _state(job) == "T", f"after dump --leave-stopped the job is {_state(job)}, not stopped"
        frozen = _read_count(count)
        time.sleep(0.2)
        assert _read_count(count) == frozen, "the stopped job still counts"

        _kill(job)
        unshare.wait(timeout=5)  # unshare --fork exits once its child (the job) is gone
        job = None

        pidfile = tmp_path / "restored.pid"
        t0 = time.monotonic()
        r = subprocess.run(
            criu.restore_argv(criu_path, images, pidfile=pidfile), capture_output=True, timeout=30
        )
        t_restore = time.monotonic() - t0
        assert r.returncode == 0, "criu restore failed:\n" + _log_tail(images / "restore.log")
        restored = int(pidfile.read_text())
        assert _state(restored) not in ("gone", "Z", "T"), _state(restored)
        status = Path(f"/proc/{restored}/status").read_text()
        nspid = next(ln for ln in status.splitlines() if ln.startswith("NSpid:")).split()
        assert nspid[-1] == "1", f"the restored job is not its PID namespace's init: {nspid}"
        # It goes on from where it was dumped, not from zero.
        _wait(lambda: _read_count(count) > frozen + 5, 5, "the restored counter to go on")
        print(f"dump {t_dump:.2f} s, restore {t_restore:.2f} s, counter {frozen} -> {_read_count(count)}")
    finally:
        _kill(job)
        _kill(restored)
        _kill(unshare.pid if unshare.poll() is None else None)
        try:
            unshare.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
