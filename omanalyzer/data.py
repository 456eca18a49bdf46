"""What the analyzer and the history browser compute from a history, without Qt.

Everything here runs in worker threads: splitting a load line at the 75 % threshold, the
statistics of the "find out" window, and the CSV export. Kept Qt-free so tests and the bench can
call it directly and so it can never touch a widget from the wrong thread.
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from omview.core.history import (
    BACKUP_PREFIX,
    DB_NAME,
    HistoryError,
    HistoryReader,
    MigrationRecord,
    NodeRecord,
    ProcRecord,
    SampleSeries,
)

Array = npt.NDArray[np.float64]

#: openMosixanalyzer drew a load line red where the load was above this (percent).
HIGH_LOAD = 75.0
#: Migration results that mean the process moved.
MIGRATION_OK = frozenset({"ok", "done", "success", "migrated", "committed"})


# --------------------------------------------------------------------------- locating histories


@dataclass(frozen=True)
class Source:
    """A history database and whether it is the live one (the collector still writes it)."""

    path: Path  # the .sqlite file
    live: bool

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def title(self) -> str:
        return f"{'live history' if self.live else 'backup'} {self.folder}"


def resolve(path: str | os.PathLike[str]) -> Source:
    """A history folder, a backup folder or the database file itself → its Source.

    Raises HistoryError with a sentence an administrator can act on when there is nothing to open.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        db = p / DB_NAME
        if not db.is_file():
            backups = sorted(q.name for q in p.iterdir() if q.name.startswith(BACKUP_PREFIX) and q.is_dir())
            hint = f"; it holds backups ({', '.join(backups[-3:])}) — open one of them" if backups else ""
            raise HistoryError(f"{p}: no history database ({DB_NAME}) in this folder{hint}")
        p = db
    elif not p.exists():
        raise HistoryError(f"{p}: no such file or folder")
    elif not p.is_file():
        raise HistoryError(f"{p}: not a file or folder")
    live = not p.parent.name.startswith(BACKUP_PREFIX)
    return Source(p.absolute(), live)


def open_reader(source: Source) -> HistoryReader:
    """Open and prove readable: the first reads happen here, so a damaged file fails now, clearly."""
    try:
        reader = HistoryReader(source.path)
    except HistoryError:
        raise
    except Exception as exc:  # sqlite3 and OS errors, in a sentence
        raise HistoryError(f"{source.path}: cannot be read as a history ({exc})") from None
    try:
        reader.nodes()
        reader.span()
        reader.checkpoints()
    except Exception as exc:
        reader.close()
        raise HistoryError(f"{source.path}: damaged or not a history database ({exc})") from None
    return reader


# --------------------------------------------------------------------------- the load line


@dataclass
class SplitLine:
    """A polyline cut at a threshold into two drawable lines (each plotted with connect='finite').

    (`low_x`, `low_y`) holds the segments at or below the level, (`high_x`, `high_y`) those above it;
    every segment of the input (after the crossing points are inserted) is in exactly one of them,
    runs of one colour are separated by a NaN. A NaN in the input (a gap) is drawn by neither.
    """

    low_x: Array
    low_y: Array
    high_x: Array
    high_y: Array


def split_line(x: Array, y: Array, level: float = HIGH_LOAD) -> SplitLine:
    """Cut the polyline (x, y) where it crosses `level`: the part above goes to high, the rest to low.

    The crossing point is computed (linear interpolation) and shared by both colours, so the red part
    starts exactly where the line passes the level, not at the next sample.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) < 2:
        e = np.empty(0)
        return SplitLine(e, e.copy(), e.copy(), e.copy())
    y0, y1 = y[:-1], y[1:]
    with np.errstate(invalid="ignore"):
        cross = ((y0 - level) * (y1 - level) < 0) & np.isfinite(y0) & np.isfinite(y1)
    idx = np.flatnonzero(cross)
    if len(idx):
        frac = (level - y0[idx]) / (y1[idx] - y0[idx])
        x = np.insert(x, idx + 1, x[idx] + frac * (x[idx + 1] - x[idx]))
        y = np.insert(y, idx + 1, np.full(len(idx), level))
    hi, lo = classify(y, level)
    return SplitLine(*_runs(x, y, lo), *_runs(x, y, hi))


def classify(y: Array, level: float = HIGH_LOAD) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Per segment of a line with its crossings inserted: (above, at-or-below); gaps are neither."""
    a, b = y[:-1], y[1:]
    finite = np.isfinite(a) & np.isfinite(b)
    with np.errstate(invalid="ignore"):
        hi = finite & (a >= level) & (b >= level) & ((a > level) | (b > level))
    return hi, finite & ~hi


def _runs(x: Array, y: Array, seg: npt.NDArray[np.bool_]) -> tuple[Array, Array]:
    """The points of the selected segments, each run of consecutive ones closed by a NaN."""
    keep = np.zeros(len(y), dtype=bool)
    keep[:-1] |= seg
    keep[1:] |= seg
    sel = np.flatnonzero(keep)
    xs, ys = x[sel], y[sel]
    run_end = np.flatnonzero(~np.r_[seg, False][sel])  # a kept point whose next segment is not selected
    return np.insert(xs, run_end + 1, xs[run_end]), np.insert(ys, run_end + 1, np.nan)


def drawn_segments(x: Array | None, y: Array | None) -> list[tuple[float, float, float, float]]:
    """The segments connect='finite' draws for (x, y), zero-length ones left out (for tests)."""
    if x is None or y is None or len(x) < 2:  # an empty PlotDataItem holds None
        return []
    ok = np.isfinite(y[:-1]) & np.isfinite(y[1:]) & (x[1:] != x[:-1])
    i = np.flatnonzero(ok)
    return [(float(x[k]), float(y[k]), float(x[k + 1]), float(y[k + 1])) for k in i]


# --------------------------------------------------------------------------- statistics


@dataclass
class Busy:
    proc: ProcRecord
    cpu_seconds: float
    peak_rss: int


@dataclass
class NodeStats:
    node: int
    label: str
    samples: int = 0  # up samples in the span
    load_avg: float = math.nan
    load_min: float = math.nan
    load_max: float = math.nan
    high_seconds: float = 0.0  # time with load > HIGH_LOAD
    mem_avg: float = math.nan  # used bytes
    mem_min: float = math.nan
    mem_max: float = math.nan
    mem_total: float = math.nan  # the largest total seen
    up_seconds: float = 0.0
    down_periods: int = 0
    mig_in: int = 0
    mig_out: int = 0
    mig_failed: int = 0


@dataclass
class Stats:
    """The "find out" figures for one node or the whole cluster (node None) over [t0, t1]."""

    t0: float
    t1: float
    node: int | None
    interval: float
    total: NodeStats
    per_node: list[NodeStats] = field(default_factory=list)
    busiest: list[Busy] = field(default_factory=list)
    migrations: list[MigrationRecord] = field(default_factory=list)


def node_stats(series: SampleSeries, node: NodeRecord | None, interval: float) -> NodeStats:
    """Figures of one node from its raw series (reader.samples without max_points)."""
    ns = NodeStats(series.node, node.label if node else str(series.node))
    up = series.up == 1
    load = series.load.mean[up]
    load = load[np.isfinite(load)]
    ns.samples = int(up.sum())
    ns.up_seconds = ns.samples * interval
    if len(load):
        ns.load_avg, ns.load_min, ns.load_max = float(load.mean()), float(load.min()), float(load.max())
        ns.high_seconds = float((load > HIGH_LOAD).sum() * interval)
    mem = series.mem_used.mean[up]
    mem = mem[np.isfinite(mem)]
    if len(mem):
        ns.mem_avg, ns.mem_min, ns.mem_max = float(mem.mean()), float(mem.min()), float(mem.max())
    tot = series.mem_total.mean[up]
    tot = tot[np.isfinite(tot)]
    if len(tot):
        ns.mem_total = float(tot.max())
    # a down period: a run of not-up rows (down rows or inserted gaps) after an up sample
    state = np.where(np.isnan(series.up), 0, series.up) == 1
    if len(state) > 1:
        ns.down_periods = int(np.sum(state[:-1] & ~state[1:]))
    return ns


def count_migrations(ns: NodeStats, migs: Iterable[MigrationRecord]) -> None:
    for m in migs:
        ok = m.result.lower() in MIGRATION_OK if m.result else True
        if not ok:
            if ns.node in (m.src, m.dst):
                ns.mig_failed += 1
            continue
        if m.dst == ns.node:
            ns.mig_in += 1
        if m.src == ns.node:
            ns.mig_out += 1


def busiest(reader: HistoryReader, t0: float, t1: float, node: int | None, limit: int = 10) -> list[Busy]:
    usage = reader.process_usage(t0, t1, node)
    usage.sort(key=lambda u: (-u[1], u[0].node, u[0].pid))
    return [Busy(p, cpu, rss) for p, cpu, rss in usage[:limit]]


def compute_stats(reader: HistoryReader, t0: float, t1: float, node: int | None, top: int = 10) -> Stats:
    """Everything the statistics window shows, from the raw samples of [t0, t1]."""
    interval = reader.interval
    nodes = {n.id: n for n in reader.nodes()}
    wanted = [node] if node is not None else sorted(nodes)
    raw = reader.samples_many(wanted, t0, t1)
    migs = reader.migrations(t0, t1)
    per = []
    for n in wanted:
        ns = node_stats(raw[n], nodes.get(n), interval)
        count_migrations(ns, migs)
        per.append(ns)
    if node is not None:
        total = per[0]
        migs = [m for m in migs if node in (m.src, m.dst)]
    else:
        total = _cluster_total(per, raw)
        total.mig_in = total.mig_out = sum(1 for m in migs if not m.result or m.result.lower() in MIGRATION_OK)
        total.mig_failed = len(migs) - total.mig_in
    return Stats(t0, t1, node, interval, total, per if node is None else [], busiest(reader, t0, t1, node, top), migs)


def _cluster_total(per: Sequence[NodeStats], raw: dict[int, SampleSeries]) -> NodeStats:
    """The whole cluster: load figures over every up sample of every node; memory summed per node."""
    total = NodeStats(0, "whole cluster")
    loads = [s.load.mean[(s.up == 1) & np.isfinite(s.load.mean)] for s in raw.values()]
    allv = np.concatenate(loads) if loads else np.empty(0)
    total.samples = int(len(allv))
    total.up_seconds = sum(n.up_seconds for n in per)
    total.down_periods = sum(n.down_periods for n in per)
    total.high_seconds = sum(n.high_seconds for n in per)
    if len(allv):
        total.load_avg, total.load_min, total.load_max = float(allv.mean()), float(allv.min()), float(allv.max())
    with_mem = [n for n in per if not math.isnan(n.mem_avg)]
    if with_mem:
        total.mem_avg = sum(n.mem_avg for n in with_mem)
        total.mem_min = sum(n.mem_min for n in with_mem)
        total.mem_max = sum(n.mem_max for n in with_mem)
        total.mem_total = sum(n.mem_total for n in with_mem if not math.isnan(n.mem_total))
    return total


# --------------------------------------------------------------------------- export


CSV_HEADER = ("time", "epoch", "node", "name", "up", "load", "mem_used", "mem_total", "mem_available")


def export_csv(reader: HistoryReader, path: str | os.PathLike[str], t0: float, t1: float,
               nodes: Sequence[int] | None = None) -> int:
    """Every recorded sample of [t0, t1] as CSV, one row per node and sample (UTC ISO time first).

    Down samples are written with up=0 and empty values. Returns the number of rows.
    """
    names = {n.id: n.label for n in reader.nodes()}
    data = reader.samples_many(nodes, t0, t1)
    rows = 0
    tmp = Path(f"{path}.part")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_HEADER)
        for node in sorted(data):
            s = data[node]
            real = ~np.isnan(s.up)  # inserted gap markers are not samples
            for t, up, load, mu, mt, ma in zip(s.t[real], s.up[real], s.load.mean[real], s.mem_used.mean[real],
                                                 s.mem_total.mean[real], s.mem_available.mean[real], strict=True):
                iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(round((t % 1) * 1000)):03d}Z"
                w.writerow((iso, f"{t:.3f}", node, names.get(node, ""), int(up), _num(load, 2), _num(mu, 0),
                            _num(mt, 0), _num(ma, 0)))
                rows += 1
    os.replace(tmp, path)
    return rows


def _num(v: float, digits: int) -> str:
    if math.isnan(v):
        return ""
    return f"{v:.{digits}f}" if digits else str(int(v))


# --------------------------------------------------------------------------- formatting


def fmt_bytes(v: float) -> str:
    if v is None or math.isnan(v):
        return "–"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(v) >= size:
            return f"{v / size:.1f} {unit}"
    return f"{int(v)} B"


def fmt_duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h} h {m:02d} min"
    d, h = divmod(h, 24)
    return f"{d} d {h} h"


def fmt_time(t: float, seconds: bool = True) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M", time.localtime(t))


def fmt_pct(v: float) -> str:
    return "–" if v is None or math.isnan(v) else f"{v:.1f} %"
