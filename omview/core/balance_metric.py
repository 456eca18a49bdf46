"""Balance efficiency: how evenly the up nodes carry load per unit of capacity (0–100 %).

openMosixview's top-left gauge read "100 % means all nodes have nearly the same load". Our
node load is already per unit of capacity (runq × 100 / cpus × 10000 / speed, see
docs/architecture.md), so evenness is measured on those figures directly:

    efficiency = 100 × (1 − σ / max(μ, LOAD_FLOOR)), clipped to [0, 100]

σ is the population standard deviation and μ the mean of the up nodes' loads. The floor keeps
an almost idle cluster (loads 0.1 % and 2 %) from reading as badly balanced: below a tenth of
capacity a difference is noise, not imbalance. Fewer than two up nodes are balanced by
definition (100 %). Qt-free so omctl, the collector and tests can use it too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

#: Mean load (percent of capacity) below which differences are judged against this value instead.
LOAD_FLOOR = 10.0


def balance_efficiency(loads: Iterable[float]) -> float:
    """Percent evenness of per-capacity loads (one figure per up node); see the module docstring."""
    values = [max(0.0, float(v)) for v in loads if v is not None and math.isfinite(v)]
    if len(values) < 2:
        return 100.0
    mean = sum(values) / len(values)
    sigma = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    eff = 100.0 * (1.0 - sigma / max(mean, LOAD_FLOOR))
    return min(100.0, max(0.0, eff))
