"""Which session hub serves a configuration, where its files are, and whether it runs.

The hub server (omview.core.hub), its apps (omview.core.hubclient) and omctl name the hub of a
configuration by these paths, without importing the cluster machinery.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from omview.core import rundir
from omview.core.config import dump_settings
from omview.core.rundir import HubError

if TYPE_CHECKING:
    from omview.core.config import ClusterConfig

HUB_PROTOCOL = 3
#: Unix socket paths are limited to 107 bytes.
MAX_SOCKET_PATH = 107


class HubRunning(HubError):
    """A hub for this configuration already runs."""


# --------------------------------------------------------------------------- where things are


def runtime_dir(env: Mapping[str, str] = os.environ) -> Path:
    """The private folder of this user's hubs (omview.core.rundir)."""
    return Path(rundir.runtime_dir(env))


def config_hash(config: ClusterConfig) -> str:
    """Names the hub of a configuration: the same settings, from whatever file, share one hub."""
    text = f"omview-hub {HUB_PROTOCOL} uid {os.getuid()}\n" + dump_settings(config)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class HubPaths:
    socket: Path
    lock: Path
    log: Path
    settings: Path
    key: str

    @classmethod
    def for_config(cls, config: ClusterConfig, base: Path | None = None) -> HubPaths:
        d = base if base is not None else runtime_dir()
        key = config_hash(config)
        sock, lock, log, settings = (d / rundir.hub_file(key, suffix) for suffix in (".sock", ".lock", ".log", ".toml"))
        paths = cls(sock, lock, log, settings, key)
        if len(os.fsencode(paths.socket)) > MAX_SOCKET_PATH:
            raise HubError(f"socket path {paths.socket} is too long for a Unix socket: set a shorter XDG_RUNTIME_DIR")
        return paths


def hub_pid(paths: HubPaths) -> int | None:
    """PID of the hub holding the lock, or None when no hub runs."""
    try:
        fd = os.open(paths.lock, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
