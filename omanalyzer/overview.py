"""What the overviews read: min/max/mean buckets of many nodes over a span, one bucket per pixel.

For buckets of 10 s or more (a 12 h view is ~40 s per pixel) the store's 10-second summaries
(`samples_many(..., summaries=True)`): a tenth of the data, bucket edges exact to 10 s, every
sample counted once; and only the bands the plots draw (load, used and total memory), which
halves the decoding. Narrower buckets (zoomed in to an hour or less) read every sample.
"""

from __future__ import annotations

from collections.abc import Sequence

from omview.core.history import ROLLUP_SECONDS, HistoryReader, SampleSeries

#: The bands the overviews, their tooltips and the node list use.
PLOTTED = ("load", "mem_used", "mem_total")


def plot_read(reader: HistoryReader, nodes: Sequence[int], lo: float, hi: float,
              buckets: int) -> dict[int, SampleSeries]:
    if buckets > 0 and (hi - lo) / buckets >= ROLLUP_SECONDS:
        return reader.samples_many(nodes, lo, hi, max_points=buckets, summaries=True, columns=PLOTTED)
    return reader.samples_many(nodes, lo, hi, max_points=buckets)
