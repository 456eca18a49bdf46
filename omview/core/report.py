"""The node table and node JSON that `omctl status` prints, as pure functions of node states.

Here, not in the command line module, because the session hub renders them too: `omctl status`
through a running hub asks the hub for the finished text (docs/omctl.md) instead of importing
the cluster machinery to build it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omview.core.model import NodeState


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """Aligned columns; numbers right-aligned, text left-aligned, the last column free."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [all(_is_number(r[i]) for r in cells[1:]) and len(cells) > 1 for i in range(len(header))]
    out = []
    for r in cells:
        parts = []
        for i, c in enumerate(r):
            if i == len(r) - 1:
                parts.append(c)
            elif numeric[i]:
                parts.append(c.rjust(widths[i]))
            else:
                parts.append(c.ljust(widths[i]))
        out.append("  ".join(parts).rstrip())
    return "\n".join(out)


def _is_number(s: str) -> bool:
    try:
        float(s.rstrip("%"))
        return True
    except ValueError:
        return False


def node_json(st: NodeState) -> dict[str, Any]:
    s = st.sample
    d: dict[str, Any] = {"id": st.id, "name": st.label, "address": st.address, "up": st.up, "reason": st.reason}
    if s is not None:
        d.update(
            hostname=s.hostname,
            cpus=s.cpus,
            speed=s.speed,
            load=round(s.load, 1),
            util=round(s.util, 1),
            mem_total=s.mem_total,
            mem_used=s.mem_used,
            mem_available=s.mem_available,
            uptime=round(s.uptime),
            nprocs=s.nprocs,
            backend=s.backend,
            criu=s.criu,
            admin=s.admin.to_dict(),
        )
    return d


def status_table(nodes: Sequence[NodeState]) -> str:
    rows = []
    for st in nodes:
        s = st.sample
        if st.up and s is not None:
            rows.append(
                [
                    st.id,
                    st.label,
                    st.address,
                    "up",
                    f"{s.load:.0f}",
                    s.speed,
                    s.cpus,
                    f"{100 * s.mem_used / s.mem_total:.0f}%" if s.mem_total else "-",
                    human_bytes(s.mem_available),
                    s.admin.flags_text(),
                ]
            )
        else:
            rows.append([st.id, st.label, st.address, "DOWN", "-", "-", "-", "-", "-", st.reason])
    return table(rows, ["ID", "NAME", "ADDRESS", "STATE", "LOAD", "SPEED", "CPUS", "MEM", "AVAIL", "FLAGS"])


def status_result(nodes: Sequence[NodeState]) -> dict[str, Any]:
    """`omctl status` as data: made by the hub or by omctl itself, printed by omview.quickctl."""
    return {"table": status_table(nodes), "nodes": [node_json(n) for n in nodes], "all_up": all(n.up for n in nodes)}
