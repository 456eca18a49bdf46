"""Where a configuration's session hub lives and whether it runs: light enough for `omctl status`.

The hub server (omview.core.hub) and its apps (omview.core.hubclient) both name the hub of a
configuration by these paths; `omctl status` through a running hub needs only these, a socket
and json (its fast path asks the hub for the rendered table), not the cluster machinery.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from omview.core.config import dump_settings

if TYPE_CHECKING:
    from omview.core.config import ClusterConfig

HUB_PROTOCOL = 2
#: OMVIEW_HUB=1 forces the session hub, OMVIEW_HUB=0 sessions in the app's own process.
ENV_HUB = "OMVIEW_HUB"
HUB_ON = ("1", "yes", "on", "true", "hub")
HUB_OFF = ("0", "no", "off", "false", "direct")
#: Unix socket paths are limited to 107 bytes.
MAX_SOCKET_PATH = 107


class HubError(Exception):
    """The hub cannot be used or started; the text says why."""


class HubRunning(HubError):
    """A hub for this configuration already runs."""


# --------------------------------------------------------------------------- where things are


def _private_dir(path: Path) -> Path:
    """Create `path` 0700 if missing; refuse one that is not a folder of ours."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise HubError(f"{path} is not a folder owned by uid {os.getuid()}: remove it or set XDG_RUNTIME_DIR")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def runtime_dir(env: Mapping[str, str] = os.environ) -> Path:
    """`$XDG_RUNTIME_DIR/omview` when XDG_RUNTIME_DIR is set and ours, else `~/.cache/omview/run`."""
    xdg = env.get("XDG_RUNTIME_DIR", "")
    if xdg and os.path.isabs(xdg):
        try:
            st = os.stat(xdg)
        except OSError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid():
            return _private_dir(Path(xdg, "omview"))
    cache = env.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(cache):
        cache = os.path.join(env.get("HOME") or os.path.expanduser("~"), ".cache")
    _private_dir(Path(cache, "omview"))
    return _private_dir(Path(cache, "omview", "run"))


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
        paths = cls(d / f"hub-{key}.sock", d / f"hub-{key}.lock", d / f"hub-{key}.log", d / f"hub-{key}.toml", key)
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
