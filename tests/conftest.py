"""Shared pytest fixtures.

Sections (add yours below the last one, keep each small):
- testbed: the real multi-node test cluster (root only), see omview.core.testbed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from omview.core import testbed as tbmod
from omview.core.testbed import Testbed

# ---------------------------------------------------------------- testbed

# One cluster per test session. Its own name ("omtt"), so it never collides with a developer's
# `omctl testbed up` ("omtb"); a second test session running at the same time on this machine
# gets "omtt1" (and so on) instead of tearing down the first one's (testbed.claim).
# Nodes differ like a heterogeneous cluster: node 2 has half a CPU and half the memory.
# The memory limits are generous so CRIU tests can move big processes.
TESTBED_NAME = "omtt"
TESTBED_NODES = 3
TESTBED_CPU_QUOTA: list[float | None] = [1.0, 0.5, 1.0]
TESTBED_MEM_MB: list[int | None] = [2048, 1024, 2048]

SshRunner = Callable[..., subprocess.CompletedProcess[str]]


def testbed_unavailable() -> str | None:
    """Why the testbed cannot run here (a skip reason), or None."""
    if os.geteuid() != 0:
        return "the testbed needs root (network namespaces, bridge, cgroups)"
    for tool, package in (("ip", "iproute2"), ("unshare", "util-linux"), ("nsenter", "util-linux"),
                          ("sshd", "openssh-server"), ("ssh", "openssh-client"),
                          ("ssh-keygen", "openssh-client")):
        if not (shutil.which(tool) or Path("/usr/sbin", tool).exists()):
            return f"{tool} is missing: install {package}"
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        return "`ip netns` does not work here"
    return None


@pytest.fixture(scope="session")
def testbed() -> Iterator[Testbed]:
    """A running 3-node testbed, torn down at session end (also when tests fail)."""
    reason = testbed_unavailable()
    if reason:
        pytest.skip(reason)
    with tbmod.claim(TESTBED_NAME) as name:
        try:
            tb = tbmod.up(TESTBED_NODES, name=name, cpu_quota=TESTBED_CPU_QUOTA, mem_mb=TESTBED_MEM_MB)
        except tbmod.TestbedError as exc:
            pytest.fail(f"testbed did not start: {exc}")
        try:
            yield tb
        finally:
            tbmod.down(name)


def run_ssh(tb: Testbed, node_id: int, command: str | Sequence[str], *, check: bool = True,
            timeout: float = 60.0, known_hosts: Path | None = None,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `command` on a testbed node through the real OpenSSH client (StrictHostKeyChecking=yes,
    BatchMode=yes); `known_hosts` replaces the testbed's file (to test a wrong host key)."""
    argv = tbmod.ssh_argv(tb, node_id, command, known_hosts=known_hosts)
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)
    if check and cp.returncode != 0:
        raise AssertionError(f"ssh to node {node_id} failed ({cp.returncode}): {cp.stderr.strip()}\n{argv}")
    return cp


@pytest.fixture
def testbed_ssh(testbed: Testbed) -> SshRunner:
    """`testbed_ssh(node_id, "cmd", check=True)` → CompletedProcess, over real ssh."""

    def run(node_id: int, command: str | Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        return run_ssh(testbed, node_id, command, **kw)

    return run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses the testbed gets the `testbed` marker (select with -m testbed)."""
    for item in items:
        if "testbed" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.testbed)


# ---------------------------------------------------------------- session hub


@pytest.fixture
def hubs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A private runtime folder for session hubs (tests.test_hub.Hubs); every hub started in it is
    ended by its PID afterwards."""
    import tempfile

    from tests.test_hub import Hubs

    # short and private (mkdtemp: 0700, unpredictable name): Unix socket paths are limited to 107 bytes
    root = Path(tempfile.mkdtemp(prefix="omh"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(root))
    monkeypatch.setenv("OMVIEW_HUB_IDLE", "30")
    h = Hubs(root)
    try:
        yield h
    finally:
        h.end_all()
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------- gui

# Qt is imported inside the fixtures, so the core's tests still run without it.


@pytest.fixture(scope="module")
def qsettings_sandbox() -> Iterator[None]:
    """QSettings in a throwaway folder, so a GUI test never reads or writes the user's settings."""
    import tempfile

    from PySide6.QtCore import QSettings

    with tempfile.TemporaryDirectory(prefix="omview-qsettings-") as d:
        QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, d)
        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, d)
        yield


@pytest.fixture
def light(qapp: Any) -> Any:
    """The light theme, as the screenshots in the docs show it."""
    from omview.gui import theme

    theme.apply_theme(qapp, "light")
    return qapp
