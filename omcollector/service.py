"""The systemd unit: rendered from resources/omcollector.service.in at install time.

Why a template: ExecStart must name an absolute, existing binary (systemd refuses anything else,
and `systemd-analyze verify` checks it), and where pip put the `omcollector` script is only known
on the machine that installs it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

UNIT_NAME = "omcollector.service"
TEMPLATE = "omcollector.service.in"
#: Lines only a system unit has (a user unit keeps its history in the user's data home).
_SYSTEM_ONLY = ("StateDirectory", "# history in /var/lib")


def template_text() -> str:
    return resources.files("resources").joinpath(TEMPLATE).read_text(encoding="utf-8")


def collector_command() -> list[str]:
    """The absolute command that starts this omcollector: the installed script, else python -m omcollector."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "omcollector" and argv0.exists():
        return [str(argv0.resolve())]
    found = shutil.which("omcollector")
    if found:
        return [str(Path(found).resolve())]
    return [str(Path(sys.executable).absolute()), "-m", "omcollector"]


def render(exec_argv: Sequence[str], args: Sequence[str] = (), *, system: bool = True) -> str:
    """The unit text; `exec_argv` must start with an absolute path."""
    if not os.path.isabs(exec_argv[0]):
        raise ValueError(f"ExecStart needs an absolute path, found {exec_argv[0]!r}")
    text = template_text()
    text = text.replace("@EXEC@", shlex.join(exec_argv))
    text = text.replace("@ARGS@", "".join(" " + shlex.quote(a) for a in args))
    text = text.replace("@WANTEDBY@", "multi-user.target" if system else "default.target")
    if not system:
        text = "".join(line for line in text.splitlines(keepends=True) if not line.startswith(_SYSTEM_ONLY))
    return text


def unit_dir(system: bool | None = None) -> Path:
    if system is None:
        system = os.geteuid() == 0
    if system:
        return Path("/etc/systemd/system")
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "systemd" / "user"


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir()


def _systemctl(*args: str, system: bool) -> None:
    if not systemd_running() or not shutil.which("systemctl"):
        return
    cmd = ["systemctl"] + ([] if system else ["--user"]) + list(args)
    subprocess.run(cmd, check=False, capture_output=True, timeout=60)


def install(args: Sequence[str], directory: Path | None = None) -> tuple[Path, str]:
    """Write the unit; returns its path and what to run next."""
    system = os.geteuid() == 0
    target_dir = directory or unit_dir(system)
    target_dir.mkdir(parents=True, exist_ok=True)
    path = target_dir / UNIT_NAME
    tmp = path.with_name(f".{UNIT_NAME}.{os.getpid()}")
    tmp.write_text(render(collector_command(), args, system=system), encoding="utf-8")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    if directory is None:
        _systemctl("daemon-reload", system=system)
    user = "" if system else " --user"
    return path, f"systemctl{user} enable --now omcollector"


def uninstall(directory: Path | None = None) -> Path | None:
    """Stop, disable and remove the unit; the path removed, or None if none was installed."""
    system = os.geteuid() == 0
    path = (directory or unit_dir(system)) / UNIT_NAME
    if directory is None:
        _systemctl("disable", "--now", "omcollector", system=system)
    if not path.exists():
        return None
    path.unlink()
    if directory is None:
        _systemctl("daemon-reload", system=system)
    return path
