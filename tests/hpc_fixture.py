"""Fake openMosix /proc trees (HOWTO Chapter 8) for testing the agent's `hpc` backend.

Formats as the openMosix 2.4 kernel wrote them: one value per flat file, newline-terminated;
flags as 0/1; memory figures in bytes (the unit the agent documents for nodes/ID/{mem,rmem,tmem}).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: /proc/hpc/admin flat files (HOWTO table 8-2) and their values on a fresh node.
ADMIN_FILES: dict[str, int] = {
    "block": 0, "bring": 0, "expel": 0, "lstay": 0, "quiet": 0, "stay": 0, "nomfs": 0,
    "speed": 10000, "decay-interval": 1, "slow-decay": 975, "fast-decay": 926, "gateways": 0,
}
#: /proc/hpc/nodes/ID files (HOWTO table 8-4).
NODE_FILES = ("CPUs", "load", "mem", "rmem", "speed", "status", "tmem", "util")


def _write(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{value}\n")


def make_hpc_tree(root: Path, node_id: int, node: dict[str, int], admin: dict[str, int] | None = None,
                  others: dict[int, dict[str, int]] | None = None) -> Path:
    """Write ROOT/admin/* (with mospe = node_id) and ROOT/nodes/ID/* for this node and others."""
    for name, value in {**ADMIN_FILES, **(admin or {})}.items():
        _write(root / "admin" / name, value)
    _write(root / "admin" / "mospe", node_id)
    for nid, figures in {node_id: node, **(others or {})}.items():
        for name in NODE_FILES:
            _write(root / "nodes" / str(nid) / name, figures.get(name, 0))
    for name in ("clear", "cpujob", "iojob", "slow", "fast"):
        _write(root / "decay" / name, 0)
    return root


def make_proc_entry(proc_root: Path, pid: int, where: int = 0, lock: bool = False, cantmove: str = "",
                    nmigs: int = 0) -> Path:
    """Write PROC_ROOT/PID/{where,lock,cantmove,nmigs,goto} (HOWTO table 8-5)."""
    d = proc_root / str(pid)
    _write(d / "where", where)
    _write(d / "lock", int(lock))
    _write(d / "nmigs", nmigs)
    _write(d / "goto", 0)
    (d / "cantmove").write_text(cantmove + "\n" if cantmove else "")
    return d


def read_value(path: Path) -> str:
    return path.read_text().strip()
