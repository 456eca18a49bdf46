"""The overviews' read path: min/max/mean buckets of many nodes over a long span, fast.

`HistoryReader.samples_many(max_points=...)` decodes each packed 10-minute block on its own and
builds every column: for 12 h × 100 nodes that is 7 200 blocks and ~2 s of CPU, mostly per-block
Python and numpy overhead. The overviews need five columns (time, up, load, used and total
memory) and only their buckets, so here blocks with the same shape are decoded together (one numpy
call per column for hundreds of blocks), and the buckets are filled with bincount and
ufunc.at over all nodes at once.

Same result as the reader (tests/test_gui_analyzer.py checks it on several histories): the same
bucket edges, NaN for a bucket where the node was never up, raw series (the reader's own) for a
node with no more samples than buckets. The block format belongs to omview.core.history; a
format this module does not know (another _PACK_VERSION) falls back to the reader, never to a
wrong picture. The speed, cpus and mem_available bands are not computed (NaN): the overviews do
not draw them.
"""

from __future__ import annotations

import sqlite3
import struct
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from omview.core import history as store
from omview.core.history import Band, HistoryReader, SampleSeries

#: Block format versions this module decodes (raw deflate, columns t ms, up, load/100, speed,
#: cpus, used KiB, total KiB, available residual).
KNOWN_PACK_VERSIONS = (2,)
_COLS = (0, 1, 2, 5, 6)  # the columns the overviews need
#: zlib releases the GIL while it inflates: this many threads share the blocks.
THREADS = 2
_pool: ThreadPoolExecutor | None = None


def _inflate(blobs: list[bytes]) -> list[bytes]:
    out = []
    for blob in blobs:
        k = blob[5]
        out.append(zlib.decompress(blob[6 + k :], -15))
    return out


def _inflate_all(blobs: list[bytes]) -> list[bytes]:
    global _pool
    if len(blobs) < 64 or THREADS < 2:
        return _inflate(blobs)
    if _pool is None:
        _pool = ThreadPoolExecutor(THREADS, thread_name_prefix="omanalyzer-inflate")
    step = -(-len(blobs) // THREADS)
    parts = list(_pool.map(_inflate, [blobs[i : i + step] for i in range(0, len(blobs), step)]))
    return [r for p in parts for r in p]


def supported() -> bool:
    return getattr(store, "_PACK_VERSION", None) in KNOWN_PACK_VERSIONS


def plot_read(reader: HistoryReader, nodes: Sequence[int], lo: float, hi: float,
              buckets: int) -> dict[int, SampleSeries]:
    """What the overviews read: the store's 10-second summaries when a bucket is 10 s or wider (a tenth
    of the data; bucket edges exact to 10 s), else every sample through `overview`."""
    rollup = getattr(store, "ROLLUP_SECONDS", None)
    if rollup and buckets > 0 and (hi - lo) / buckets >= rollup:
        try:
            return reader.samples_many(nodes, lo, hi, max_points=buckets, summaries=True)
        except TypeError:  # a store without summaries
            pass
    return overview(reader, nodes, lo, hi, buckets)


def overview(reader: HistoryReader, nodes: Sequence[int], lo: float, hi: float,
             buckets: int) -> dict[int, SampleSeries]:
    """Like reader.samples_many(nodes, lo, hi, max_points=buckets), for the overview columns."""
    if not supported() or not nodes or hi <= lo:
        return reader.samples_many(nodes, lo, hi, max_points=buckets)
    try:
        cols = _read(reader, nodes, lo, hi)
    except _Unknown:
        return reader.samples_many(nodes, lo, hi, max_points=buckets)
    t, nidx, up, load, used, total = cols
    n_nodes = len(nodes)
    keep = (t >= lo) & (t <= hi)
    per_node = np.bincount(nidx[keep], minlength=n_nodes)
    out: dict[int, SampleSeries] = {}
    small = [nodes[i] for i in range(n_nodes) if per_node[i] <= buckets]
    if small:  # few samples: every one of them, as the reader gives them (with gap markers)
        out.update(reader.samples_many(small, lo, hi))
    big = [i for i in range(n_nodes) if per_node[i] > buckets]
    if not big:
        return out
    t, nidx, up, load, used, total = (a[keep] for a in (t, nidx, up, load, used, total))
    width = max((hi - lo) / buckets, 1e-9)
    b = np.clip(((t - lo) / width).astype(np.int64), 0, buckets - 1)
    key = nidx * buckets + b
    size = n_nodes * buckets
    counts = np.bincount(key, minlength=size).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        upf = np.bincount(key, weights=up, minlength=size) / counts
    ok = up == 1
    kok = key[ok]
    cnt = np.bincount(kok, minlength=size).astype(np.float64)
    empty = cnt == 0
    bands = {}
    for name, v in (("load", load), ("mem_used", used), ("mem_total", total)):
        vv = v[ok]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.bincount(kok, weights=vv, minlength=size) / cnt
        mn = np.full(size, np.inf)
        mx = np.full(size, -np.inf)
        np.minimum.at(mn, kok, vv)
        np.maximum.at(mx, kok, vv)
        mn[empty] = mx[empty] = mean[empty] = np.nan
        bands[name] = (mn.reshape(n_nodes, buckets), mx.reshape(n_nodes, buckets), mean.reshape(n_nodes, buckets))
    tb = np.asarray(lo + width * np.arange(buckets), dtype=np.float64)
    upf = upf.reshape(n_nodes, buckets)
    nan = np.full(buckets, np.nan)
    none = Band(nan, nan, nan)
    for i in big:
        def band(name: str, i: int = i) -> Band:
            mn, mx, mean = bands[name]
            return Band(mn[i], mx[i], mean[i])

        out[nodes[i]] = SampleSeries(nodes[i], tb, upf[i], band("load"), none, none, band("mem_used"),
                                     band("mem_total"), none, width)
    return {n: out[n] for n in nodes}


class _Unknown(Exception):
    pass


def _read(reader: HistoryReader, nodes: Sequence[int],
          lo: float, hi: float) -> tuple[npt.NDArray[Any], ...]:
    """t, node index, up, load, used, total of every sample of `nodes` in blocks and rows touching [lo, hi]."""
    index = {n: i for i, n in enumerate(nodes)}
    where = ",".join(str(int(n)) for n in nodes)
    conn = sqlite3.connect(f"file:{reader.path}?mode=ro", uri=True, timeout=10)
    try:
        blocks = conn.execute(f"SELECT node, data FROM sample_chunks WHERE t1 >= ? AND t0 <= ? AND node IN ({where})",
                              (lo, hi)).fetchall()
        tail = conn.execute(
            "SELECT node, t, up, coalesce(load, 0), coalesce(mem_used, 0), coalesce(mem_total, 0) FROM samples "
            f"WHERE t BETWEEN ? AND ? AND node IN ({where})", (lo, hi)).fetchall()
    finally:
        conn.close()
    groups: dict[bytes, tuple[list[int], list[bytes]]] = {}
    for _node, blob in blocks:
        version, _n, k = struct.unpack_from("<BIB", blob)
        if version not in KNOWN_PACK_VERSIONS or k < 7:
            raise _Unknown
    inflated = _inflate_all([blob for _, blob in blocks])
    for (node, blob), raw in zip(blocks, inflated, strict=True):
        head = blob[1 : 6 + blob[5]]  # n, k and the column codes: blocks with equal heads decode together
        g = groups.get(head)
        if g is None:
            g = groups[head] = ([], [])
        g[0].append(index[node])
        g[1].append(raw)
    parts: list[tuple[npt.NDArray[Any], ...]] = []
    for head, (idx, raws) in groups.items():
        n, k = struct.unpack_from("<IB", head)
        codes = head[5 : 5 + k]
        mat = np.frombuffer(b"".join(raws), dtype=np.uint8).reshape(len(raws), -1)
        offsets = np.cumsum([0] + [store._DTYPES[c].itemsize * n for c in codes])
        dec = {}
        for c in _COLS:
            dt = store._DTYPES[codes[c]]
            part = mat[:, offsets[c] : offsets[c + 1]]
            if dt.itemsize > 1:  # byte-shuffled: (blocks, bytes of a value, n) → (blocks, n, bytes)
                part = np.ascontiguousarray(part.reshape(len(raws), dt.itemsize, n).transpose(0, 2, 1))
            dec[c] = np.cumsum(part.reshape(len(raws), -1).view(dt), axis=1, dtype=np.int64)
        nid = np.repeat(np.asarray(idx, dtype=np.int64), n)
        parts.append((dec[0].ravel() / 1000.0, nid.astype(np.float64), dec[1].ravel().astype(np.float64),
                      dec[2].ravel() / 100.0, dec[5].ravel() * 1024.0, dec[6].ravel() * 1024.0))
    if tail:
        a = np.array(tail, dtype=np.float64)
        parts.append((a[:, 1], np.array([index[int(x)] for x in a[:, 0]], dtype=np.float64), a[:, 2], a[:, 3],
                      a[:, 4], a[:, 5]))
    if not parts:
        e = np.empty(0)
        return e, e.astype(np.int64), e, e, e, e
    t, nidx, up, load, used, total = (np.concatenate([p[i] for p in parts]) for i in range(6))
    return t, nidx.astype(np.int64), up, load, used, total
