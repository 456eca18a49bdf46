"""The private folder where this user's session hubs live, and the switch that forces or forbids
them: os and stat only, because `omctl status` through a running hub reads them before anything
else is imported (omview.quickctl)."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping

#: OMVIEW_HUB=1 forces the session hub, OMVIEW_HUB=0 sessions in the app's own process.
ENV_HUB = "OMVIEW_HUB"
HUB_ON = ("1", "yes", "on", "true", "hub")
HUB_OFF = ("0", "no", "off", "false", "direct")


class HubError(Exception):
    """The hub cannot be used or started; the text says why."""


def hub_forbidden(env: Mapping[str, str] = os.environ) -> bool:
    return env.get(ENV_HUB, "").strip().lower() in HUB_OFF


def hub_file(key: str, suffix: str) -> str:
    """The name of a hub's file in the run folder: `.sock`, `.lock`, `.log`, `.toml`."""
    return f"hub-{key}{suffix}"


def _private_dir(path: str) -> str:
    """Create `path` 0700 if missing; refuse one that is not a folder of ours."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise HubError(f"{path} is not a folder owned by uid {os.getuid()}: remove it or set XDG_RUNTIME_DIR")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def runtime_dir(env: Mapping[str, str] = os.environ) -> str:
    """`$XDG_RUNTIME_DIR/omview` when XDG_RUNTIME_DIR is set and ours, else `~/.cache/omview/run`
    (never a guessable name in /tmp)."""
    xdg = env.get("XDG_RUNTIME_DIR", "")
    if xdg and os.path.isabs(xdg):
        try:
            st = os.stat(xdg)
        except OSError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid():
            return _private_dir(os.path.join(xdg, "omview"))
    cache = env.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(cache):
        cache = os.path.join(env.get("HOME") or os.path.expanduser("~"), ".cache")
    _private_dir(os.path.join(cache, "omview"))
    return _private_dir(os.path.join(cache, "omview", "run"))
