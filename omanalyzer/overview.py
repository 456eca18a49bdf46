"""What the overviews read: min/max/mean buckets of many nodes over a span, one bucket per pixel.

For buckets of 10 s or more (a 12 h view is ~40 s per pixel) the store's 10-second summaries
(`samples_many(..., summaries=True)`): a tenth of the data, bucket edges exact to 10 s, every
sample counted once. Narrower buckets (zoomed in to an hour or less) read every sample. An
earlier version decoded the store's blocks here in batches; the store's own reader has since
become faster than that, so the overviews rely on its public API only.
"""

from __future__ import annotations

from collections.abc import Sequence

from omview.core import history as store
from omview.core.history import HistoryReader, SampleSeries


def plot_read(reader: HistoryReader, nodes: Sequence[int], lo: float, hi: float,
              buckets: int) -> dict[int, SampleSeries]:
    rollup = getattr(store, "ROLLUP_SECONDS", None)
    if rollup and buckets > 0 and (hi - lo) / buckets >= rollup:
        try:
            return reader.samples_many(nodes, lo, hi, max_points=buckets, summaries=True)
        except TypeError:  # a store without summaries
            pass
    return reader.samples_many(nodes, lo, hi, max_points=buckets)
