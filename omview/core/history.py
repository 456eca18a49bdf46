"""The history store: what the collector writes and what the analyzer and the history browser read.

One SQLite database (WAL) per history directory, ``<dir>/history.sqlite``; rotated copies live in
dated folders beside it, ``<dir>/backup-YYYYmmddTHHMMSSZ/history.sqlite``. Why SQLite: one file that
survives a kill -9 (WAL, one transaction per tick), readers never block the writer, and the
analyzer gets indexed time ranges instead of parsing log files as openMosixview did.

Size is the design constraint: 100 nodes at 1 Hz are 8.6 million samples a day, which as plain rows
cost ~40 bytes each. So recent samples go into a row table (``samples``, written every tick, what
makes a kill -9 lose at most one interval); every ``chunk_seconds`` the closed window is packed into
the node's block of the hour (``sample_chunks``: delta-coded, byte-shuffled, raw deflate, ~3.5 bytes
a sample) with 10-second min/max/mean summaries beside it for plots of long spans. Processes are
stored as changes: a row per process life (appeared/vanished, keyed by node/pid/start) and cpu/rss
points only when they moved, packed the same way per process and hour.

A node that is down gets ``up = 0`` rows with no values, never zeros: readers turn them (and any
silence longer than a few intervals) into NaN, which plots as a gap.

Nothing here imports Qt; numpy is used for packing and for the readers' downsampling, because a
12 h × 100 node plot must be read back in well under a second.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import sqlite3
import stat
import struct
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from omview.core.model import NodeSample, ProcInfo

log = logging.getLogger("omview.history")

DB_NAME = "history.sqlite"
BACKUP_PREFIX = "backup-"
SCHEMA_VERSION = 3
#: Rows older than a closed window of this many seconds are packed (the row tail stays short) ...
CHUNK_SECONDS = 600.0
#: ... into blocks of an hour per node (samples) or process (cpu/rss points): few blocks, fast reads.
BLOCK_SECONDS = 3600.0
#: Each sample block carries min/max/mean per this many seconds, for plots of long spans.
ROLLUP_SECONDS = 10.0
#: A process point is written when cpu moved this many percentage points ...
CPU_STEP = 2.0
#: ... or its RSS by this fraction (at least RSS_MIN_STEP bytes).
RSS_STEP = 1 / 32
RSS_MIN_STEP = 256 << 10
#: Batches kept in memory while the disk refuses writes (one per tick: an hour at 1 Hz).
MAX_BACKLOG = 3600

Array = npt.NDArray[np.float64]


class HistoryError(Exception):
    """A history directory or database that cannot be used; the text says why and where."""


# --------------------------------------------------------------------------- schema

# Version 1 was the first layout (no migrations table; the migration engine came later). It is
# kept verbatim so tests can build an old database and check that it opens after an upgrade.
_SCHEMA_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE nodes (
    id INTEGER PRIMARY KEY, address TEXT NOT NULL DEFAULT '', name TEXT NOT NULL DEFAULT '',
    hostname TEXT NOT NULL DEFAULT '', cpus INTEGER, speed INTEGER, mem_total INTEGER,
    first_seen REAL
);
CREATE TABLE samples (
    node INTEGER NOT NULL, t REAL NOT NULL, up INTEGER NOT NULL,
    load REAL, speed INTEGER, cpus INTEGER, mem_used INTEGER, mem_total INTEGER, mem_available INTEGER
);
CREATE INDEX samples_node_t ON samples (node, t);
CREATE TABLE sample_chunks (node INTEGER NOT NULL, t0 REAL NOT NULL, t1 REAL NOT NULL, n INTEGER NOT NULL,
                            data BLOB NOT NULL);
CREATE INDEX sample_chunks_node_t ON sample_chunks (node, t0);
CREATE TABLE checkpoints (t REAL NOT NULL, label TEXT NOT NULL DEFAULT '');
CREATE INDEX checkpoints_t ON checkpoints (t);
CREATE TABLE procs (
    id INTEGER PRIMARY KEY, node INTEGER NOT NULL, pid INTEGER NOT NULL, start INTEGER NOT NULL,
    ppid INTEGER NOT NULL DEFAULT 0, user TEXT NOT NULL DEFAULT '', cmd TEXT NOT NULL DEFAULT '',
    started REAL NOT NULL DEFAULT 0, appeared REAL NOT NULL, vanished REAL
);
CREATE UNIQUE INDEX procs_key ON procs (node, pid, start);
CREATE INDEX procs_appeared ON procs (appeared);
CREATE TABLE proc_points (proc INTEGER NOT NULL, t REAL NOT NULL, cpu REAL NOT NULL, rss INTEGER NOT NULL);
CREATE INDEX proc_points_proc_t ON proc_points (proc, t);
CREATE TABLE proc_chunks (proc INTEGER NOT NULL, t0 REAL NOT NULL, t1 REAL NOT NULL, n INTEGER NOT NULL,
                          cpu1 REAL NOT NULL, rss1 INTEGER NOT NULL, data BLOB NOT NULL);
CREATE INDEX proc_chunks_proc_t ON proc_chunks (proc, t0);
"""

_UPGRADE_1_TO_2 = """
CREATE TABLE migrations (
    id INTEGER PRIMARY KEY, t REAL NOT NULL, pid INTEGER NOT NULL DEFAULT 0, start INTEGER NOT NULL DEFAULT 0,
    cmd TEXT NOT NULL DEFAULT '', src INTEGER NOT NULL DEFAULT 0, dst INTEGER NOT NULL DEFAULT 0,
    result TEXT NOT NULL DEFAULT '', frozen REAL, reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX migrations_t ON migrations (t);
"""

#: upgrades[v] turns a version-v database into version v+1.
# Version 3: per-block 10-second summaries (min/max/mean), so a plot of 12 h reads a tenth of the data.
_UPGRADE_2_TO_3 = """
ALTER TABLE sample_chunks ADD COLUMN summary BLOB;
"""

_UPGRADES: dict[int, str] = {1: _UPGRADE_1_TO_2, 2: _UPGRADE_2_TO_3}


def _create_schema(conn: sqlite3.Connection) -> None:
    """A new database is built like an old one and upgraded: one code path, so upgrades are always exercised."""
    conn.executescript("BEGIN;" + _SCHEMA_V1 + "PRAGMA user_version = 1; COMMIT;")
    _upgrade(conn, quiet=True)


def _upgrade(conn: sqlite3.Connection, quiet: bool = False) -> None:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise HistoryError(f"history database version {version} is newer than this omview ({SCHEMA_VERSION})")
    while version < SCHEMA_VERSION:
        if not quiet:
            log.info("upgrading history database from version %d to %d", version, version + 1)
        conn.executescript(f"BEGIN; {_UPGRADES[version]} PRAGMA user_version = {version + 1}; COMMIT;")
        version += 1


# --------------------------------------------------------------------------- directories


def default_history_dir() -> Path:
    """/var/lib/omcollector for root (the unit's StateDirectory), else under the user's data home."""
    if os.geteuid() == 0:
        return Path("/var/lib/omcollector")
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "omview" / "history"


def ensure_history_dir(directory: str | os.PathLike[str]) -> Path:
    """Create the directory 0700, or check that an existing one is ours and private.

    openMosixview's collector wrote fixed names under /tmp (CVE-2005-0894): anyone could plant a
    symlink there. We refuse a symlink, a directory owned by someone else, and tighten our own
    directory to 0700 if it was left open.
    """
    path = Path(directory).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        found = "a symlink" if stat.S_ISLNK(st.st_mode) else "a file"
        raise HistoryError(f"{path}: expected a directory, found {found}")
    if st.st_uid != os.geteuid():
        raise HistoryError(f"{path}: owned by uid {st.st_uid}, not by us (uid {os.geteuid()}); refusing to use it")
    if stat.S_IMODE(st.st_mode) != 0o700:
        log.warning("%s: mode %o tightened to 0700", path, stat.S_IMODE(st.st_mode))
        os.chmod(path, 0o700)
    return path


# --------------------------------------------------------------------------- packing

_DTYPES: tuple[np.dtype[Any], ...] = (np.dtype("<i1"), np.dtype("<i2"), np.dtype("<i4"), np.dtype("<i8"))
_RANGES = tuple((-(1 << (8 * d.itemsize - 1)), (1 << (8 * d.itemsize - 1)) - 1) for d in _DTYPES)
_PACK_VERSION = 2


def pack_columns(columns: Sequence[npt.NDArray[np.int64]]) -> bytes:
    """Integer columns of one length → a compact blob: delta-coded, narrowest type, byte-shuffled, zlib.

    Delta coding turns slowly moving values (times, memory, constants) into small numbers; byte
    shuffling puts their mostly-zero high bytes together, which is what zlib compresses best.
    """
    n = len(columns[0]) if columns else 0
    header = struct.pack("<BIB", _PACK_VERSION, n, len(columns))
    codes = bytearray()
    body = []
    for col in columns:
        d = np.diff(np.asarray(col, dtype=np.int64), prepend=np.int64(0))
        lo, hi = (int(d.min()), int(d.max())) if n else (0, 0)
        code = next(i for i, (a, b) in enumerate(_RANGES) if a <= lo and hi <= b)
        codes.append(code)
        raw = d.astype(_DTYPES[code])
        size = _DTYPES[code].itemsize
        body.append(raw.view(np.uint8).reshape(n, size).T.tobytes() if size > 1 else raw.tobytes())
    z = zlib.compressobj(6, zlib.DEFLATED, -15)  # raw deflate: no header or checksum, SQLite checks pages
    return header + bytes(codes) + z.compress(b"".join(body)) + z.flush()


def unpack_columns(blob: bytes) -> list[npt.NDArray[np.int64]]:
    version, n, k = struct.unpack_from("<BIB", blob)
    if version != _PACK_VERSION:
        raise HistoryError(f"unknown block format {version}")
    codes = blob[6 : 6 + k]
    raw = zlib.decompress(blob[6 + k :], -15)
    out = []
    pos = 0
    for code in codes:
        dt = _DTYPES[code]
        size = dt.itemsize * n
        part = np.frombuffer(raw, dtype=np.uint8, count=size, offset=pos)
        pos += size
        if dt.itemsize > 1:
            part = np.ascontiguousarray(part.reshape(dt.itemsize, n).T)
        out.append(np.cumsum(part.view(dt), dtype=np.int64))
    return out


_MATRIX_VERSION = 3


def pack_matrix(m: npt.NDArray[np.int64]) -> bytes:
    """A (k, n) integer matrix → a blob decoded in a handful of numpy calls (for the many-column summaries).

    Like `pack_columns`, but one integer width for the whole matrix and the first column kept in the
    header: decoding 21 columns one by one costs more than inflating them.
    """
    m = np.asarray(m, dtype=np.int64)
    k, n = m.shape
    first = m[:, :1] if n else np.zeros((k, 1), dtype=np.int64)
    d = np.diff(m, axis=1, prepend=first)
    lo, hi = (int(d.min()), int(d.max())) if d.size else (0, 0)
    code = next(i for i, (a, b) in enumerate(_RANGES) if a <= lo and hi <= b)
    size = _DTYPES[code].itemsize
    raw = d.astype(_DTYPES[code]).reshape(-1)
    body = raw.view(np.uint8).reshape(-1, size).T.tobytes() if size > 1 else raw.tobytes()
    z = zlib.compressobj(6, zlib.DEFLATED, -15)
    return (struct.pack("<BIBB", _MATRIX_VERSION, n, k, code) + first.astype("<i8").tobytes()
            + z.compress(body) + z.flush())


def unpack_matrix(blob: bytes, rows: Sequence[int] | None = None) -> npt.NDArray[np.int64]:
    """The (k, n) matrix of `pack_matrix`; a `pack_columns` blob (older summaries) is read too.

    `rows`: only these rows, in this order. Inflating the blob is unavoidable, but un-shuffling the
    bytes and the running sums are done for the wanted rows only (a plot wants 10 of 21).
    """
    if blob[0] != _MATRIX_VERSION:
        m = np.stack(unpack_columns(blob))
        return m if rows is None else m[list(rows)]
    _v, n, k, code = struct.unpack_from("<BIBB", blob)
    first = np.frombuffer(blob, dtype="<i8", count=k, offset=7)
    dt = _DTYPES[code]
    raw = np.frombuffer(zlib.decompress(blob[7 + 8 * k :], -15), dtype=np.uint8)
    sel = list(range(k)) if rows is None else list(rows)
    if dt.itemsize > 1:
        planes = raw.reshape(dt.itemsize, k, n)
        if rows is not None:
            planes = planes[:, sel, :]
        d = np.ascontiguousarray(planes.transpose(1, 2, 0)).view(dt).reshape(len(sel), n)
    else:
        d = raw.view(dt).reshape(k, n)
        if rows is not None:
            d = d[sel]
    return np.cumsum(d, axis=1, dtype=np.int64) + first[sel, None]


# --------------------------------------------------------------------------- records


@dataclass
class NodeRecord:
    id: int
    address: str = ""
    name: str = ""
    hostname: str = ""
    cpus: int | None = None
    speed: int | None = None
    mem_total: int | None = None
    first_seen: float | None = None

    @property
    def label(self) -> str:
        return self.name or self.hostname or self.address or str(self.id)


@dataclass
class Checkpoint:
    t: float
    label: str = ""


@dataclass
class MigrationRecord:
    """One migration attempt, as the migration engine reported it; `frozen` is the process's stop time in s."""

    t: float
    pid: int = 0
    start: int = 0
    cmd: str = ""
    src: int = 0
    dst: int = 0
    result: str = ""
    frozen: float | None = None
    reason: str = ""

    @property
    def automatic(self) -> bool:
        """Made by the load balancer (its reason starts with BALANCER_PREFIX)."""
        return self.reason.startswith(BALANCER_PREFIX)


#: A migration the load balancer made (omview.core.balancer) is recorded with its plan's reason after
#: this prefix, and a failure's error after "; failed: ". No schema change: the reason column holds it.
BALANCER_PREFIX = "balancer: "


def balancer_reason(plan_reason: str, error: str = "") -> str:
    """The `reason` of a MigrationRecord for a move the balancer made."""
    return BALANCER_PREFIX + plan_reason + (f"; failed: {error}" if error else "")


@dataclass
class ProcRecord:
    """A process life; `vanished` is None while it runs. cpu/rss are the values at the time asked for."""

    node: int
    pid: int
    start: int
    ppid: int = 0
    user: str = ""
    cmd: str = ""
    started: float = 0.0
    appeared: float = 0.0
    vanished: float | None = None
    cpu: float | None = None
    rss: int | None = None


@dataclass
class ProcLife:
    proc: ProcRecord
    t: Array
    cpu: Array
    rss: Array


@dataclass
class ProcSnapshot:
    """The processes running at `t`, as arrays for a table: `index` selects them from the timeline's
    `procs` (ordered by node, pid); cpu/rss are their values at `t` (NaN / -1: none recorded yet)."""

    t: float
    index: npt.NDArray[np.int64]
    cpu: Array
    rss: npt.NDArray[np.int64]


@dataclass
class ProcTimeline:
    """Every process of a node (or of all) that ran during [t0, t1], with its cpu/rss points, so
    that a time slider finds the state at any moment inside without a query (`at(t)`, a few numpy
    calls). `procs` carry no cpu/rss; the snapshot has them."""

    t0: float
    t1: float
    node: int | None
    procs: list[ProcRecord]
    appeared: Array
    vanished: Array  # inf while running
    pidx: npt.NDArray[np.int64]  # the points, sorted by (process, time)
    pt: Array
    pcpu: Array
    prss: npt.NDArray[np.int64]

    def covers(self, t: float, node: int | None) -> bool:
        return node == self.node and self.t0 <= t <= self.t1

    def at(self, t: float) -> ProcSnapshot:
        alive = np.flatnonzero((self.appeared <= t) & (self.vanished > t))
        cpu = np.full(len(alive), np.nan)
        rss = np.full(len(alive), -1, dtype=np.int64)
        if len(self.pt) and len(alive):
            base = float(self.pt.min())
            w = float(self.pt.max()) - base + 2.0
            keys = self.pidx * w + (self.pt - base)  # sorted: process first, then time
            q = alive * w + (min(max(t, base - 1.0), base + w - 1.0) - base)
            pos = np.searchsorted(keys, q, side="right") - 1
            ok = (pos >= 0) & (self.pidx[np.maximum(pos, 0)] == alive)
            cpu[ok] = self.pcpu[pos[ok]]
            rss[ok] = self.prss[pos[ok]]
        return ProcSnapshot(t, alive, cpu, rss)


@dataclass
class Band:
    """One column of a series: per sample (min = max = mean) or per bucket when downsampled."""

    min: Array
    max: Array
    mean: Array


_SERIES_COLUMNS = ("load", "speed", "cpus", "mem_used", "mem_total", "mem_available")
#: Sample blocks store t in ms, load in 1/100, memory in KiB.
_BLOCK_SCALE = np.array([1e-3, 1, 1e-2, 1, 1, 1024, 1024, 1024])


@dataclass
class SampleSeries:
    """A node's samples between two times, ready to plot. NaN marks a gap (down, or not recorded).

    Raw (`width == 0`): one row per sample. Downsampled: one row per bucket of `width` seconds starting
    at `t`, each column's min, max and mean over the bucket; `up` is the fraction of the bucket's
    samples that had the node up. `line()` gives the min/max polyline that keeps every spike visible.
    """

    node: int
    t: Array
    up: Array
    load: Band
    speed: Band
    cpus: Band
    mem_used: Band
    mem_total: Band
    mem_available: Band
    width: float = 0.0

    def __len__(self) -> int:
        return len(self.t)

    def line(self, column: str = "load") -> tuple[Array, Array]:
        band: Band = getattr(self, column)
        if self.width == 0:
            return self.t, band.mean
        t = np.repeat(self.t, 2) + np.tile([0.25 * self.width, 0.75 * self.width], len(self.t))
        y = np.empty(2 * len(self.t))
        y[0::2], y[1::2] = band.min, band.max
        return t, y


@dataclass
class HistoryFile:
    """A history database: the live one or a backup. `start`/`end` are None when it holds no samples."""

    path: Path
    live: bool
    start: float | None = None
    end: float | None = None


# --------------------------------------------------------------------------- writer


@dataclass
class _Batch:
    """Everything recorded during one tick; written in one transaction."""

    nodes: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    samples: list[tuple[Any, ...]] = field(default_factory=list)
    procs_new: list[tuple[Any, ...]] = field(default_factory=list)
    procs_gone: list[tuple[float, int]] = field(default_factory=list)
    points: list[tuple[int, float, float, int]] = field(default_factory=list)
    checkpoints: list[tuple[float, str]] = field(default_factory=list)
    migrations: list[tuple[Any, ...]] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.nodes or self.samples or self.procs_new or self.procs_gone or self.points
                    or self.checkpoints or self.migrations)

    def keep_structure_of(self, older: _Batch) -> int:
        """Take over what must never be dropped (process lives, checkpoints, ...) from a dropped batch."""
        self.nodes = {**older.nodes, **self.nodes}
        self.procs_new[:0] = older.procs_new
        self.procs_gone[:0] = older.procs_gone
        self.checkpoints[:0] = older.checkpoints
        self.migrations[:0] = older.migrations
        return len(older.samples)


@dataclass
class _Open:
    id: int
    cpu: float | None = None
    rss: int = 0


class HistoryWriter:
    """Records ticks into the live database of one history directory. One thread uses it.

    Calls between two `commit()`s form one batch, written in one transaction. When the disk refuses
    (full, read-only), `commit()` logs the error once, keeps the batch (at most `max_backlog` of them:
    beyond that the oldest batch's samples are dropped, its process lives and checkpoints kept) and
    returns False; the next successful commit writes the backlog and says so in the log.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        interval: float = 1.0,
        chunk_seconds: float = CHUNK_SECONDS,
        block_seconds: float = BLOCK_SECONDS,
        max_backlog: int = MAX_BACKLOG,
        now: float | None = None,
    ) -> None:
        self.dir = ensure_history_dir(directory)
        self.path = self.dir / DB_NAME
        self.interval = interval
        self.chunk_seconds = chunk_seconds
        self.block_seconds = block_seconds
        self.max_backlog = max_backlog
        self.created = 0.0
        self.failing = ""  # the error while writes fail, else ""
        self.dropped_samples = 0
        self.samples_written = 0
        self._conn: sqlite3.Connection | None = None
        self._cur = _Batch()
        self._backlog: list[_Batch] = []
        self._nodes: dict[int, tuple[Any, ...]] = {}
        self._procs: dict[int, dict[tuple[int, int], _Open]] = {}
        self._last_t: dict[int, float] = {}  # per node: last sample time in the database at open
        self._next_proc = 1
        self._compacted = 0.0
        self._last_error_log = 0.0
        self._open(time.time() if now is None else now)

    # ------------------------------------------------------------ connection
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=10, check_same_thread=False)
        # 8 KiB pages: a packed block (~2 KB) wastes a third of a 4 KiB page, a tenth of an 8 KiB one
        conn.execute("PRAGMA page_size=8192")  # only takes effect on a new file
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a killed process loses nothing committed
        conn.execute("PRAGMA journal_size_limit=8388608")  # the WAL shrinks back after a big packing
        conn.execute("PRAGMA foreign_keys=OFF")
        return conn

    def _open(self, now: float) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        os.close(fd)
        conn = self._connect()
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone():
            _create_schema(conn)
            conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                             [("created", repr(now)), ("interval", repr(self.interval)), ("host", os.uname().nodename)])
        else:
            _upgrade(conn)
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('interval', ?)", (repr(self.interval),))
        self.created = float(conn.execute("SELECT value FROM meta WHERE key='created'").fetchone()[0])
        self._conn = conn
        self._nodes = {r[0]: tuple(r) for r in conn.execute(
            "SELECT id, address, name, hostname, cpus, speed, mem_total FROM nodes")}
        self._next_proc = int(conn.execute("SELECT coalesce(max(id), 0) + 1 FROM procs").fetchone()[0])
        self._procs = {}
        for pid_id, node, pid, start in conn.execute("SELECT id, node, pid, start FROM procs WHERE vanished IS NULL"):
            self._procs.setdefault(node, {})[(pid, start)] = _Open(pid_id)
        self._last_t = dict(conn.execute(
            "SELECT node, max(t) FROM (SELECT node, t FROM samples WHERE up=1 "
            "UNION ALL SELECT node, t1 FROM sample_chunks) GROUP BY node"))
        self._compacted = math.floor(now / self.chunk_seconds) * self.chunk_seconds - self.chunk_seconds

    def close(self) -> None:
        """Write what is pending, pack the row tables, and close."""
        self.commit()
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._compact(math.inf)
            self._conn.close()
            self._conn = None

    # ------------------------------------------------------------ recording (memory only)
    def node(self, node_id: int, address: str = "", name: str = "", sample: NodeSample | None = None,
             t: float | None = None) -> None:
        """Remember what a node is; written only when something changed."""
        old = self._nodes.get(node_id)
        hostname = sample.hostname if sample else (old[3] if old else "")
        cpus = sample.cpus if sample else (old[4] if old else None)
        speed = sample.speed if sample else (old[5] if old else None)
        mem_total = sample.mem_total if sample else (old[6] if old else None)
        row = (node_id, address, name, hostname, cpus, speed, mem_total)
        if row != old:
            self._nodes[node_id] = row
            self._cur.nodes[node_id] = (*row, time.time() if t is None else t)

    def sample(self, node_id: int, t: float, sample: NodeSample | None) -> None:
        """A node's sample at time `t` (the collector's clock); None records the node as down."""
        if sample is None:
            self._cur.samples.append((node_id, t, 0, None, None, None, None, None, None))
            return
        self._cur.samples.append((node_id, t, 1, float(sample.load), int(sample.speed), int(sample.cpus),
                                  int(sample.mem_used), int(sample.mem_total), int(sample.mem_available)))

    def checkpoint(self, label: str = "", t: float | None = None) -> float:
        t = time.time() if t is None else t
        self._cur.checkpoints.append((t, label))
        return t

    def migration(self, rec: MigrationRecord) -> None:
        self._cur.migrations.append((rec.t, rec.pid, rec.start, rec.cmd, rec.src, rec.dst, rec.result,
                                     rec.frozen, rec.reason))

    def processes(self, node_id: int, t: float, procs: Iterable[ProcInfo], points: bool = True) -> None:
        """The node's full process list at `t`: records appearances, vanishings and (if `points`) cpu/rss moves.

        Call it only for a node that is up with a current list; a down node's processes stay open.
        """
        known = self._procs.setdefault(node_id, {})
        seen: set[tuple[int, int]] = set()
        cur = self._cur
        for p in procs:
            key = (p.pid, p.start)
            seen.add(key)
            o = known.get(key)
            if o is None:
                o = known[key] = _Open(self._next_proc)
                self._next_proc += 1
                cur.procs_new.append((o.id, node_id, p.pid, p.start, p.ppid, p.user, p.cmd, p.started, t))
                points_now = True
            else:
                points_now = points
            if points_now and (o.cpu is None or abs(p.cpu - o.cpu) >= CPU_STEP
                               or abs(p.rss - o.rss) >= max(RSS_MIN_STEP, o.rss * RSS_STEP)):
                o.cpu, o.rss = p.cpu, p.rss
                cur.points.append((o.id, t, float(p.cpu), int(p.rss)))
        if len(seen) != len(known):
            for key in [k for k in known if k not in seen]:
                # a process that ended while no collector ran is closed at the node's last recorded sample
                when = min(t, self._last_t.get(node_id, t)) if known[key].cpu is None else t
                cur.procs_gone.append((when, known.pop(key).id))
        self._last_t.pop(node_id, None)

    # ------------------------------------------------------------ writing
    @property
    def backlog(self) -> int:
        """Batches waiting for the disk."""
        return len(self._backlog)

    def commit(self, now: float | None = None) -> bool:
        if not self._cur.empty():
            self._backlog.append(self._cur)
            self._cur = _Batch()
        if not self._backlog:
            return True
        try:
            conn = self._conn or self._reconnect()
            conn.execute("BEGIN IMMEDIATE")
            try:
                for b in self._backlog:
                    self._write(conn, b)
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self._failed(exc)
            return False
        written = sum(len(b.samples) for b in self._backlog)
        self.samples_written += written
        if self.failing:
            log.warning("history: writing to %s again; %d batches (%d samples) from the backlog written, %d "
                        "samples dropped while it failed", self.path, len(self._backlog), written, self.dropped_samples)
            self.failing = ""
        self._backlog.clear()
        t = time.time() if now is None else now
        if t - self._compacted >= 2 * self.chunk_seconds:
            try:
                self._compact(t)
            except sqlite3.Error as exc:  # the rows stay readable; packing is retried next window
                log.warning("history: packing old rows failed: %s", exc)
        return True

    def _reconnect(self) -> sqlite3.Connection:
        self._conn = self._connect()
        return self._conn

    def _failed(self, exc: sqlite3.Error) -> None:
        text = str(exc)
        if "full" in text.lower():
            text = f"disk full ({text})"
        now = time.monotonic()
        if text != self.failing or now - self._last_error_log > 60:
            log.error("history: cannot write to %s: %s; keeping %d batches in memory (at most %d) and retrying "
                      "every tick", self.path, text, len(self._backlog), self.max_backlog)
            self._last_error_log = now
        self.failing = text
        while len(self._backlog) > self.max_backlog:
            self.dropped_samples += self._backlog[1].keep_structure_of(self._backlog[0])
            del self._backlog[0]
        # a connection that saw an I/O error is not trusted again
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    @staticmethod
    def _write(conn: sqlite3.Connection, b: _Batch) -> None:
        if b.nodes:
            conn.executemany(
                "INSERT INTO nodes (id, address, name, hostname, cpus, speed, mem_total, first_seen) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET address=excluded.address, "
                "name=excluded.name, hostname=excluded.hostname, cpus=excluded.cpus, speed=excluded.speed, "
                "mem_total=excluded.mem_total", list(b.nodes.values()))
        if b.samples:
            conn.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", b.samples)
        if b.procs_new:
            conn.executemany(
                "INSERT OR IGNORE INTO procs (id, node, pid, start, ppid, user, cmd, started, appeared) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", b.procs_new)
        if b.procs_gone:
            conn.executemany("UPDATE procs SET vanished=? WHERE id=?", b.procs_gone)
        if b.points:
            conn.executemany("INSERT INTO proc_points VALUES (?, ?, ?, ?)", b.points)
        if b.checkpoints:
            conn.executemany("INSERT INTO checkpoints VALUES (?, ?)", b.checkpoints)
        if b.migrations:
            conn.executemany("INSERT INTO migrations (t, pid, start, cmd, src, dst, result, frozen, reason) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", b.migrations)

    def _compact(self, now: float) -> None:
        """Pack the closed windows of the row tables into hour blocks, in one transaction of their own.

        Rows are packed every `chunk_seconds` (a short row tail, so little space in free pages) into
        blocks of `block_seconds`: the last block of the hour is decoded, extended and re-packed. Few,
        big blocks are what makes reading 12 h × 100 nodes fast.
        """
        conn = self._conn
        if conn is None:
            return
        cut = math.floor(now / self.chunk_seconds) * self.chunk_seconds if math.isfinite(now) else math.inf
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = conn.execute(
                "SELECT node, t, up, coalesce(load, 0), coalesce(speed, 0), coalesce(cpus, 0), coalesce(mem_used, 0),"
                " coalesce(mem_total, 0), coalesce(mem_available, 0) FROM samples WHERE t < ? ORDER BY node, t",
                (cut,)).fetchall()
            for node, part in _group(rows):
                a = np.array([r[1:] for r in part], dtype=np.float64)
                used, total = np.floor(a[:, 5] / 1024), np.floor(a[:, 6] / 1024)
                # available is stored as what total - used does not explain: near constant, so near free
                cols = np.stack([np.round(a[:, 0] * 1000), a[:, 1], np.round(a[:, 2] * 100), a[:, 3], a[:, 4],
                                 used, total, total - used - np.floor(a[:, 7] / 1024)]).astype(np.int64)
                self._store_blocks(conn, "sample_chunks", "node", node, cols, ("summary",))
            conn.execute("DELETE FROM samples WHERE t < ?", (cut,))
            prow = conn.execute("SELECT proc, t, cpu, rss FROM proc_points WHERE t < ? ORDER BY proc, t",
                                (cut,)).fetchall()
            for proc, part in _group(prow):
                a = np.array([r[1:] for r in part], dtype=np.float64)
                cols = np.stack([np.round(a[:, 0] * 1000), np.round(a[:, 1] * 10),
                                 np.floor(a[:, 2] / 1024)]).astype(np.int64)
                self._store_blocks(conn, "proc_chunks", "proc", proc, cols, ("cpu1", "rss1"))
            conn.execute("DELETE FROM proc_points WHERE t < ?", (cut,))
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        if math.isfinite(now):
            self._compacted = cut - self.chunk_seconds

    def _store_blocks(self, conn: sqlite3.Connection, table: str, key_col: str, key: int,
                      cols: npt.NDArray[np.int64], last: tuple[str, ...]) -> None:
        """Add time-sorted packed rows (cols[0] = time in ms) to `key`'s hour blocks, extending the last one."""
        block_ms = int(self.block_seconds * 1000)
        hours = cols[0] // block_ms
        for h in np.unique(hours):
            part = cols[:, hours == h]
            t0 = float(part[0, 0]) / 1000
            lo = float(h * block_ms) / 1000
            prev = conn.execute(
                f"SELECT rowid, t1, data FROM {table} WHERE {key_col} = ? AND t0 >= ? AND t0 < ? "
                "ORDER BY t0 DESC LIMIT 1", (key, lo, lo + self.block_seconds)).fetchone()
            if prev is not None and prev[1] < t0:
                old = unpack_columns(prev[2])
                part = np.concatenate([np.stack(old), part], axis=1)
            extra: tuple[Any, ...] = ()
            if last == ("summary",):
                extra = (pack_matrix(_rollup(part)),)
            elif last:  # process blocks: cpu (1/10 %) and rss (KiB) of the last point, readable without decoding
                extra = (float(part[1, -1]) / 10, int(part[2, -1]) * 1024)
            values = (float(part[0, 0]) / 1000, float(part[0, -1]) / 1000, part.shape[1], *extra,
                      pack_columns(list(part)))
            if prev is not None and prev[1] < t0:
                sets = ", ".join(f"{c} = ?" for c in ("t0", "t1", "n", *last, "data"))
                conn.execute(f"UPDATE {table} SET {sets} WHERE rowid = ?", (*values, prev[0]))
            else:
                conn.execute(f"INSERT INTO {table} ({key_col}, t0, t1, n, {''.join(c + ', ' for c in last)}data) "
                             f"VALUES (?, {', '.join('?' * (len(values)))})", (key, *values))

    # ------------------------------------------------------------ rotation
    def rotate(self, now: float | None = None) -> Path:
        """Move the live database into a dated backup folder beside it and start a new one.

        Nothing is lost: pending data is committed first (rotation is refused while the disk refuses
        writes), and the processes still running are carried into the new database.
        """
        t = time.time() if now is None else now
        if not self.commit(t):
            raise HistoryError(f"cannot rotate while writes fail: {self.failing}")
        conn = self._conn
        assert conn is not None
        self._compact(math.inf)
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('rotated', ?)", (repr(t),))
        try:
            conn.execute("VACUUM")  # the row tables' free pages are worth nothing in a backup
        except sqlite3.Error as exc:
            log.warning("history: VACUUM of %s before the backup failed (%s); kept as it is", self.path, exc)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        try:
            # a backup is never written again: a plain rollback-journal file opens read-only anywhere
            conn.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.Error:
            pass  # a reader holds it open; the -wal and -shm files move with it
        conn.close()
        self._conn = None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))
        target = self.dir / f"{BACKUP_PREFIX}{stamp}"
        n = 1
        while target.exists():
            n += 1
            target = self.dir / f"{BACKUP_PREFIX}{stamp}.{n}"
        os.mkdir(target, 0o700)
        for suffix in ("-wal", "-shm", ""):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                os.rename(src, target / f"{DB_NAME}{suffix}")
        carried = {node: dict(procs) for node, procs in self._procs.items()}
        nodes = dict(self._nodes)
        self._open(t)
        for row in nodes.values():
            self._cur.nodes[row[0]] = (*row, t)
        self._nodes = nodes
        # running processes start the new file's lives at the moment of rotation
        self._procs = {}
        for node, procs in carried.items():
            self._procs[node] = {}
            for (pid, start), o in procs.items():
                self._procs[node][(pid, start)] = _Open(self._next_proc, o.cpu, o.rss)
                self._cur.procs_new.append((self._next_proc, node, pid, start, 0, "", "", 0.0, t))
                if o.cpu is not None:
                    self._cur.points.append((self._next_proc, t, o.cpu, o.rss))
                self._next_proc += 1
        self._carry_details(target / DB_NAME, carried)
        self.commit(t)
        log.info("history rotated: %s", target)
        return target

    def _carry_details(self, old: Path, carried: dict[int, dict[tuple[int, int], _Open]]) -> None:
        """Copy ppid/user/cmd of carried processes from the backup, so the new file's lives are complete."""
        try:
            src = sqlite3.connect(f"file:{old}?mode=ro", uri=True)
        except sqlite3.Error:
            return
        try:
            details = {(r[0], r[1], r[2]): r[3:] for r in src.execute(
                "SELECT node, pid, start, ppid, user, cmd, started FROM procs WHERE vanished IS NULL")}
        finally:
            src.close()
        rows = []
        for row in self._cur.procs_new:
            d = details.get((row[1], row[2], row[3]))
            rows.append((*row[:4], *d, row[8]) if d else row)
        self._cur.procs_new = rows

    def age(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.created


def _group(rows: list[Any]) -> Iterator[tuple[int, list[Any]]]:
    """Consecutive rows with the same first column (rows sorted by it)."""
    i = 0
    while i < len(rows):
        j = i
        key = rows[i][0]
        while j < len(rows) and rows[j][0] == key:
            j += 1
        yield key, rows[i:j]
        i = j


# --------------------------------------------------------------------------- reader


class HistoryReader:
    """Read access to one history database (live or backup) for the analyzer and the history browser.

    Opens read-only: a reader never blocks the collector and never changes a backup. Times are seconds
    since the epoch; None for t0/t1 means "from the first" / "to the last" record.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        p = Path(path)
        if p.is_dir():
            p = p / DB_NAME
        if not p.is_file():
            raise HistoryError(f"{p}: no history database")
        self.path = p
        try:
            self._conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=10, check_same_thread=False)
            self.version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.Error as exc:
            raise HistoryError(f"{p}: not a history database ({exc})") from None
        if self.version > SCHEMA_VERSION:
            raise HistoryError(f"{p}: written by a newer omview (version {self.version}, we read {SCHEMA_VERSION})")
        try:
            self._tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.Error as exc:  # a damaged schema page
            raise HistoryError(f"{p}: damaged history database ({exc})") from None
        if "samples" not in self._tables:
            raise HistoryError(f"{p}: not a history database")
        missing = sorted(set(_REQUIRED_TABLES) - self._tables)
        if missing:  # an SQLite file of something else that happens to have a 'samples' table
            raise HistoryError(f"{p}: not a history database (no {', '.join(missing)} table)")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> HistoryReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ small tables
    def meta(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT key, value FROM meta"))

    @property
    def interval(self) -> float:
        return float(self.meta().get("interval", 1.0))

    def nodes(self) -> list[NodeRecord]:
        return [NodeRecord(*r) for r in self._conn.execute(
            "SELECT id, address, name, hostname, cpus, speed, mem_total, first_seen FROM nodes ORDER BY id")]

    def span(self) -> tuple[float, float] | None:
        """First and last sample time, or None for an empty history."""
        r = self._conn.execute(
            "SELECT min(a), max(b) FROM (SELECT min(t) a, max(t) b FROM samples "
            "UNION ALL SELECT min(t0), max(t1) FROM sample_chunks)").fetchone()
        return None if r[0] is None else (float(r[0]), float(r[1]))

    def checkpoints(self, t0: float | None = None, t1: float | None = None) -> list[Checkpoint]:
        lo, hi = _bounds(t0, t1)
        return [Checkpoint(t, label) for t, label in self._conn.execute(
            "SELECT t, label FROM checkpoints WHERE t BETWEEN ? AND ? ORDER BY t", (lo, hi))]

    def migrations(self, t0: float | None = None, t1: float | None = None) -> list[MigrationRecord]:
        if "migrations" not in self._tables:
            return []
        lo, hi = _bounds(t0, t1)
        return [MigrationRecord(*r) for r in self._conn.execute(
            "SELECT t, pid, start, cmd, src, dst, result, frozen, reason FROM migrations "
            "WHERE t BETWEEN ? AND ? ORDER BY t, id", (lo, hi))]

    # ------------------------------------------------------------ samples
    def _raw(self, nodes: Sequence[int] | None, lo: float, hi: float) -> dict[int, npt.NDArray[np.float64]]:
        """Per node a (8, n) array — t, up, load, speed, cpus, mem_used, mem_total, mem_available — sorted by t.

        Column-major and decoded straight into one preallocated array per node: at 12 h × 100 nodes
        every avoided copy is 35 MB of memory traffic.
        """
        where = "" if nodes is None else f" AND node IN ({','.join(str(int(n)) for n in nodes)})"
        blocks: dict[int, list[tuple[int, bytes]]] = {}
        for node, n, data in self._conn.execute(
                f"SELECT node, n, data FROM sample_chunks WHERE t1 >= ? AND t0 <= ?{where} ORDER BY node, t0",
                (lo, hi)):
            blocks.setdefault(node, []).append((n, data))
        tails = {node: part for node, part in _group(self._conn.execute(
            "SELECT node, t, up, load, speed, cpus, mem_used, mem_total, mem_available FROM samples "
            f"WHERE t BETWEEN ? AND ?{where} ORDER BY node, t", (lo, hi)).fetchall())}
        out = {}
        for node in blocks.keys() | tails.keys():
            packed = blocks.get(node, [])
            tail = tails.get(node, [])
            nb = sum(n for n, _ in packed)
            a = np.empty((8, nb + len(tail)))
            pos = 0
            for n, data in packed:
                for j, col in enumerate(unpack_columns(data)):
                    a[j, pos : pos + n] = col
                pos += n
            if nb:
                a[7, :nb] = a[6, :nb] - a[5, :nb] - a[7, :nb]  # available was stored as a residual
                a[1:, :nb] *= _BLOCK_SCALE[1:, None]
                # t divided, not multiplied by 1e-3: that product is one ulp off for one stored ms
                # in six, and a sample on the edge of a window (the view ends on the last one) fell out
                a[0, :nb] /= 1000.0
            if tail:
                a[:, nb:] = np.array([r[1:] for r in tail], dtype=np.float64).T
            if a.shape[1] > 1 and np.any(np.diff(a[0]) < 0):
                a = a[:, np.argsort(a[0], kind="stable")]
            i = int(np.searchsorted(a[0], lo, side="left"))
            j = int(np.searchsorted(a[0], hi, side="right"))
            a = a[:, i:j]
            down = a[1] == 0
            if down.any():
                a[2:, down] = np.nan  # down: no values, never zeros
            out[node] = a
        return out

    def samples(self, node: int, t0: float | None = None, t1: float | None = None,
                max_points: int | None = None, summaries: bool = False,
                columns: Sequence[str] | None = None) -> SampleSeries:
        """One node's samples; with `max_points`, at most that many min/max/mean buckets (for plotting)."""
        return self.samples_many([node], t0, t1, max_points, summaries, columns)[node]

    def samples_many(self, nodes: Sequence[int] | None = None, t0: float | None = None, t1: float | None = None,
                     max_points: int | None = None, summaries: bool = False,
                     columns: Sequence[str] | None = None) -> dict[int, SampleSeries]:
        """Several nodes at once (all when `nodes` is None), in one pass over the database.

        `summaries=True` (with `max_points`, for buckets of 10 s or more): built from the blocks'
        10-second min/max/mean instead of every sample — a tenth of the data to read, bucket edges
        exact to 10 s, every sample still counted once. What a plot of hours or days wants.
        `columns` (summaries only): the bands wanted, e.g. ("load", "mem_used"); the others are left
        NaN, which halves the decoding of a plot's read.
        """
        lo, hi = _bounds(t0, t1)
        if summaries and max_points is not None and max_points > 0:
            span = self.span()
            start = lo if math.isfinite(lo) else (span[0] if span else 0.0)
            end = hi if math.isfinite(hi) else (span[1] if span else 0.0)
            if end > start and (end - start) / max_points >= ROLLUP_SECONDS:
                return self._from_rollups(nodes, lo, hi, start, end, max_points, columns)
        raw = self._raw(nodes, lo, hi)
        wanted = list(nodes) if nodes is not None else sorted({n.id for n in self.nodes()} | set(raw))
        gap = max(2.5 * self.interval, self.interval + 1.5)
        out = {}
        for n in wanted:
            a = raw.get(n, np.empty((8, 0)))
            if max_points is not None and a.shape[1] > max_points:
                start = lo if math.isfinite(lo) else a[0, 0]
                end = hi if math.isfinite(hi) else a[0, -1]
                out[n] = _downsample(n, a, start, end, max_points)
            else:
                out[n] = _series(n, _with_gaps(a, gap))
        return out

    def _from_rollups(self, nodes: Sequence[int] | None, lo: float, hi: float, start: float, end: float,
                      buckets: int, columns: Sequence[str] | None = None) -> dict[int, SampleSeries]:
        """Buckets of at least ROLLUP_SECONDS built from the blocks' 10-second summaries, not their samples.

        A summary goes whole into the bucket its window starts in, so bucket edges are exact to 10 s;
        every sample still counts exactly once, so no spike is lost. Blocks stay integers until a
        node's are joined (one conversion per node, not per block).
        """
        cols = [c for c in _SERIES_COLUMNS if columns is None or c in columns]
        idx = [_SERIES_COLUMNS.index(c) for c in cols]
        k = len(cols)
        rows = [0, 1, 2, *(3 + i for i in idx), *(9 + i for i in idx), *(15 + i for i in idx)]
        every = len(rows) == 21
        has_summary = "summary" in {r[1] for r in self._conn.execute("PRAGMA table_info(sample_chunks)")}
        where = "" if nodes is None else f" AND node IN ({','.join(str(int(n)) for n in nodes)})"
        blocks: dict[int, list[npt.NDArray[np.int64]]] = {}
        rlo = lo - ROLLUP_SECONDS if math.isfinite(lo) else lo
        for node, summary, data in self._conn.execute(
                f"SELECT node, {'summary' if has_summary else 'NULL'}, CASE WHEN {'summary' if has_summary else 'NULL'}"
                f" IS NULL THEN data END FROM sample_chunks WHERE t1 >= ? AND t0 <= ?{where} ORDER BY node, t0",
                (lo, hi)):
            if summary is not None:
                m = unpack_matrix(summary, None if every else rows)
            else:
                m = _rollup(np.stack(unpack_columns(data)))
                m = m if every else m[rows]
            blocks.setdefault(node, []).append(m)
        scale = _ROLLUP_SCALE[rows][:, None]
        parts: dict[int, list[npt.NDArray[np.float64]]] = {}
        for node, lst in blocks.items():
            r = (np.concatenate(lst, axis=1) if len(lst) > 1 else lst[0]).astype(np.float64)
            r *= scale
            parts[node] = [r]
        for node, tail in _group(self._conn.execute(
                "SELECT node, t, up, coalesce(load, 0), coalesce(speed, 0), coalesce(cpus, 0), coalesce(mem_used, 0),"
                f" coalesce(mem_total, 0), coalesce(mem_available, 0) FROM samples WHERE t BETWEEN ? AND ?{where} "
                "ORDER BY node, t", (rlo, hi)).fetchall()):
            a = np.array([r[1:] for r in tail], dtype=np.float64).T  # a raw sample is a summary of one
            v = a[[2 + i for i in idx]] * a[1]
            parts.setdefault(node, []).append(np.vstack([a[0], np.ones(a.shape[1]), a[1], v, v, v]))
        wanted = list(nodes) if nodes is not None else sorted({n.id for n in self.nodes()} | set(parts))
        out = {}
        for n in wanted:
            got = parts.get(n)
            r = (np.concatenate(got, axis=1) if len(got) > 1 else got[0]) if got else np.empty((3 + 3 * k, 0))
            if r.shape[1] > 1 and np.any(np.diff(r[0]) < 0):
                r = r[:, np.argsort(r[0], kind="stable")]
            r = r[:, int(np.searchsorted(r[0], rlo, side="right")):int(np.searchsorted(r[0], hi, side="right"))]
            if r[1].sum() <= buckets:  # sparse: the samples themselves are fewer than the buckets
                out[n] = self.samples_many([n], None if not math.isfinite(lo) else lo,
                                           None if not math.isfinite(hi) else hi)[n]
            else:
                out[n] = _downsample_rollups(n, r, start, end, buckets, cols)
        return out

    # ------------------------------------------------------------ processes
    def processes_at(self, t: float, node: int | None = None) -> list[ProcRecord]:
        """Processes running at `t` (on `node`, or everywhere), with their cpu/rss at that time."""
        where = "" if node is None else f" AND node = {int(node)}"
        rows = self._conn.execute(
            "SELECT id, node, pid, start, ppid, user, cmd, started, appeared, vanished FROM procs "
            f"WHERE appeared <= ? AND (vanished IS NULL OR vanished > ?){where} ORDER BY node, pid", (t, t)).fetchall()
        if not rows:
            return []
        ids = [r[0] for r in rows]
        last: dict[int, tuple[float, float, int]] = {}
        for i in range(0, len(ids), 900):
            part = ",".join(str(x) for x in ids[i : i + 900])
            for proc, data, _t0, t1, cpu1, rss1 in self._conn.execute(
                    "SELECT proc, data, max(t0), t1, cpu1, rss1 FROM proc_chunks "
                    f"WHERE t0 <= ? AND proc IN ({part}) GROUP BY proc", (t,)):
                if t1 <= t:  # the block ended before t: its last point is the answer, no decoding
                    last[proc] = (t1, cpu1, rss1)
                    continue
                tt, cpu, rss = unpack_columns(data)
                k = int(np.searchsorted(tt, t * 1000, side="right")) - 1
                if k >= 0:
                    last[proc] = (tt[k] / 1000, cpu[k] / 10, int(rss[k]) * 1024)
            for proc, pt, cpu, rss in self._conn.execute(
                    f"SELECT proc, max(t), cpu, rss FROM proc_points WHERE t <= ? AND proc IN ({part}) GROUP BY proc",
                    (t,)):
                if proc not in last or pt >= last[proc][0]:
                    last[proc] = (pt, cpu, rss)
        out = []
        for r in rows:
            v = last.get(r[0])
            rec = _proc_record(r)
            if v:
                rec.cpu, rec.rss = v[1], int(v[2])
            out.append(rec)
        return out

    def process_timeline(self, t0: float, t1: float, node: int | None = None) -> ProcTimeline:
        """The processes that ran during [t0, t1] (on `node`, or everywhere) and their cpu/rss points:
        the last one at or before t0 and every one up to t1. What a time slider reads once per window
        instead of one `processes_at` per step."""
        where = "" if node is None else f" AND node = {int(node)}"
        rows = self._conn.execute(
            "SELECT id, node, pid, start, ppid, user, cmd, started, appeared, vanished FROM procs "
            f"WHERE appeared <= ? AND (vanished IS NULL OR vanished > ?){where} ORDER BY node, pid, appeared",
            (t1, t0)).fetchall()
        procs = [_proc_record(r) for r in rows]
        appeared = np.array([r[8] for r in rows], dtype=np.float64)
        vanished = np.array([math.inf if r[9] is None else r[9] for r in rows], dtype=np.float64)
        where_id = {r[0]: i for i, r in enumerate(rows)}
        ids = list(where_id)
        pts: list[tuple[npt.NDArray[np.int64], Array, Array, npt.NDArray[np.int64]]] = []
        one: list[tuple[int, float, float, int]] = []

        def block(proc: int, data: bytes, lo: float) -> None:
            tt, cpu, rss = unpack_columns(data)
            k = max(int(np.searchsorted(tt, lo * 1000, side="right")) - 1, 0)  # the state at lo, then on
            tt, cpu, rss = tt[k:], cpu[k:], rss[k:]
            pts.append((np.full(len(tt), where_id[proc], dtype=np.int64), tt / 1000.0, cpu / 10.0, rss * 1024))

        for i in range(0, len(ids), 900):
            part = ",".join(str(x) for x in ids[i : i + 900])
            for proc, data, _b0, b1, cpu1, rss1 in self._conn.execute(
                    "SELECT proc, data, max(t0), t1, cpu1, rss1 FROM proc_chunks "
                    f"WHERE t0 <= ? AND proc IN ({part}) GROUP BY proc", (t0,)):
                if b1 <= t0:  # ended before the window: its last point is the state at t0
                    one.append((where_id[proc], b1, cpu1, int(rss1)))
                else:
                    block(proc, data, t0)
            for proc, data in self._conn.execute(
                    f"SELECT proc, data FROM proc_chunks WHERE t0 > ? AND t0 <= ? AND proc IN ({part})", (t0, t1)):
                block(proc, data, -math.inf)
            for proc, pt, cpu, rss in self._conn.execute(
                    f"SELECT proc, t, cpu, rss FROM proc_points WHERE t <= ? AND proc IN ({part})", (t1,)):
                one.append((where_id[proc], pt, cpu, int(rss)))
        if one:
            a = np.array(one, dtype=np.float64)
            pts.append((a[:, 0].astype(np.int64), a[:, 1], a[:, 2], a[:, 3].astype(np.int64)))
        if pts:
            pidx = np.concatenate([p[0] for p in pts])
            pt = np.concatenate([p[1] for p in pts])
            pcpu = np.concatenate([p[2] for p in pts]).astype(np.float64)
            prss = np.concatenate([p[3] for p in pts]).astype(np.int64)
            order = np.lexsort((pt, pidx))
            pidx, pt, pcpu, prss = pidx[order], pt[order], pcpu[order], prss[order]
        else:
            pidx, pt, pcpu, prss = (np.empty(0, dtype=np.int64), np.empty(0), np.empty(0),
                                    np.empty(0, dtype=np.int64))
        return ProcTimeline(t0, t1, node, procs, appeared, vanished, pidx, pt, pcpu, prss)

    def process_life(self, node: int, pid: int, start: int) -> ProcLife | None:
        """A process's whole recorded life in this file: appearance, end, and its cpu/rss points."""
        r = self._conn.execute(
            "SELECT id, node, pid, start, ppid, user, cmd, started, appeared, vanished FROM procs "
            "WHERE node=? AND pid=? AND start=?", (node, pid, start)).fetchone()
        if r is None:
            return None
        ts: list[Array] = []
        cpus: list[Array] = []
        rsss: list[Array] = []
        for (data,) in self._conn.execute("SELECT data FROM proc_chunks WHERE proc=? ORDER BY t0", (r[0],)):
            tt, cpu, rss = unpack_columns(data)
            ts.append(np.asarray(tt / 1000.0, dtype=np.float64))
            cpus.append(np.asarray(cpu / 10.0, dtype=np.float64))
            rsss.append(np.asarray(rss * 1024.0, dtype=np.float64))
        tail = self._conn.execute("SELECT t, cpu, rss FROM proc_points WHERE proc=? ORDER BY t", (r[0],)).fetchall()
        if tail:
            a = np.array(tail, dtype=np.float64)
            ts.append(a[:, 0])
            cpus.append(a[:, 1])
            rsss.append(a[:, 2])
        t = np.concatenate(ts) if ts else np.empty(0)
        order = np.argsort(t, kind="stable")
        cpu_a = (np.concatenate(cpus) if cpus else np.empty(0))[order]
        rss_a = (np.concatenate(rsss) if rsss else np.empty(0))[order]
        rec = _proc_record(r)
        if len(order):
            rec.cpu, rec.rss = float(cpu_a[-1]), int(rss_a[-1])
        return ProcLife(rec, t[order], cpu_a, rss_a)

    def process_usage(self, t0: float, t1: float, node: int | None = None) -> list[tuple[ProcRecord, float, int]]:
        """Per process that ran during [t0, t1] (on `node`, or anywhere): CPU seconds used in the span and peak RSS.

        A recorded cpu value holds until the next point (points are written only when it moved), so
        the CPU time is the integral of that step function over the part of the life inside the span.
        """
        where = "" if node is None else f" AND node = {int(node)}"
        rows = self._conn.execute(
            "SELECT id, node, pid, start, ppid, user, cmd, started, appeared, vanished FROM procs "
            f"WHERE appeared <= ? AND (vanished IS NULL OR vanished > ?){where}", (t1, t0)).fetchall()
        pts: dict[int, list[Array]] = {}
        ids = [r[0] for r in rows]
        for i in range(0, len(ids), 900):
            part = ",".join(str(x) for x in ids[i : i + 900])
            for proc, data in self._conn.execute(
                    f"SELECT proc, data FROM proc_chunks WHERE t0 <= ? AND proc IN ({part}) ORDER BY proc, t0", (t1,)):
                tt, cpu, rss = unpack_columns(data)
                pts.setdefault(proc, []).append(np.column_stack([tt / 1000.0, cpu / 10.0, rss * 1024.0]))
            tail: dict[int, list[Any]] = {}
            for proc, pt, cpu, rss in self._conn.execute(
                    f"SELECT proc, t, cpu, rss FROM proc_points WHERE t <= ? AND proc IN ({part}) ORDER BY proc, t",
                    (t1,)):
                tail.setdefault(proc, []).append((pt, cpu, rss))
            for proc, lst in tail.items():
                pts.setdefault(proc, []).append(np.array(lst, dtype=np.float64))
        out = []
        for r in rows:
            rec = _proc_record(r)
            a_ = max(t0, rec.appeared)
            b_ = min(t1, rec.vanished if rec.vanished is not None else t1)
            parts = pts.get(r[0])
            if not parts or b_ <= a_:
                out.append((rec, 0.0, 0))
                continue
            a = np.concatenate(parts) if len(parts) > 1 else parts[0]
            a = a[np.argsort(a[:, 0], kind="stable")]
            # step function: value k holds on [t_k, t_k+1); before the first point, the first value
            edges = np.clip(np.r_[a_, a[1:, 0], b_], a_, b_)
            cpu_s = float(np.sum(a[:, 1] * np.diff(edges)) / 100.0)
            k0 = max(int(np.searchsorted(a[:, 0], a_, side="right")) - 1, 0)
            inside = a[k0:][a[k0:, 0] <= b_]
            peak = int(inside[:, 2].max()) if len(inside) else 0
            rec.cpu, rec.rss = float(a[-1, 1]), int(a[-1, 2])
            out.append((rec, cpu_s, peak))
        return out

    def integrity_ok(self) -> bool:
        return bool(self._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok")


#: Tables every history database has (version 1 on); a file without them is something else.
_REQUIRED_TABLES = ("meta", "nodes", "samples", "sample_chunks", "checkpoints", "procs", "proc_points", "proc_chunks")


def _proc_record(r: Sequence[Any]) -> ProcRecord:
    """A procs row (id first) as a record."""
    return ProcRecord(node=r[1], pid=r[2], start=r[3], ppid=r[4], user=r[5], cmd=r[6], started=r[7],
                      appeared=r[8], vanished=r[9])


def _bounds(t0: float | None, t1: float | None) -> tuple[float, float]:
    return (-math.inf if t0 is None else t0, math.inf if t1 is None else t1)


def _with_gaps(a: npt.NDArray[np.float64], gap: float) -> npt.NDArray[np.float64]:
    """Insert a NaN sample wherever nothing was recorded for longer than `gap` seconds."""
    if a.shape[1] < 2:
        return a
    holes = np.flatnonzero(np.diff(a[0]) > gap)
    if not len(holes):
        return a
    fill = np.full((a.shape[0], len(holes)), np.nan)
    fill[0] = a[0, holes] + gap / 2
    fill[1] = 0
    return np.insert(a, holes + 1, fill, axis=1)


def _series(node: int, a: npt.NDArray[np.float64]) -> SampleSeries:
    bands = {name: Band(a[i], a[i], a[i]) for i, name in enumerate(_SERIES_COLUMNS, start=2)}
    return _make_series(node, a[0], a[1], bands, 0.0)


def _make_series(node: int, t: npt.NDArray[Any], up: npt.NDArray[Any], bands: dict[str, Band],
                 width: float) -> SampleSeries:
    return SampleSeries(node, np.asarray(t, dtype=np.float64), np.asarray(up, dtype=np.float64),
                        bands["load"], bands["speed"], bands["cpus"], bands["mem_used"], bands["mem_total"],
                        bands["mem_available"], width)


def _rollup(cols: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Block columns (8, n) → 10-second summaries (21, m): window start, n, n_up, then min, max, mean of
    load, speed, cpus, mem_used, mem_total, mem_available (up samples only; 0 where none was up)."""
    t = cols[0]
    w = (t // int(ROLLUP_SECONDS * 1000)) * int(ROLLUP_SECONDS * 1000)
    starts = np.flatnonzero(np.r_[True, w[1:] != w[:-1]])
    n = np.diff(np.r_[starts, len(t)])
    up = cols[1] == 1
    nup = np.add.reduceat(up.astype(np.int64), starts)
    v = cols[2:8].copy()
    v[5] = cols[6] - cols[5] - cols[7]  # the block keeps available as a residual; summaries keep the value
    big = np.iinfo(np.int64).max
    mn = np.minimum.reduceat(np.where(up, v, big), starts, axis=1)
    mx = np.maximum.reduceat(np.where(up, v, -big), starts, axis=1)
    total = np.add.reduceat(np.where(up, v, 0), starts, axis=1)
    mean = np.round(total / np.maximum(nup, 1)).astype(np.int64)
    none = nup == 0
    mn[:, none] = 0
    mx[:, none] = 0
    return np.vstack([w[starts], n, nup, mn, mx, mean]).astype(np.int64)


#: Summary rows: t in ms; load in 1/100; memory in KiB (min, max and mean of each).
_ROLLUP_SCALE = np.ones(21)
_ROLLUP_SCALE[0] = 1e-3
_ROLLUP_SCALE[[3, 9, 15]] = 1e-2
_ROLLUP_SCALE[[6, 7, 8, 12, 13, 14, 18, 19, 20]] = 1024.0


def _downsample_rollups(node: int, r: npt.NDArray[np.float64], start: float, end: float,
                        buckets: int, cols: Sequence[str] = _SERIES_COLUMNS) -> SampleSeries:
    """Like `_downsample`, over 10-second summaries: min of mins, max of maxes, mean weighted by up samples.

    `r` rows: window start, n, n_up, then the mins, maxes and means of `cols`; other bands are NaN.
    """
    width = (end - start) / buckets
    t = start + width * np.arange(buckets)
    first = np.searchsorted(r[0], t, side="left")
    first[0] = 0
    counts = np.diff(np.r_[first, r.shape[1]])
    full = np.flatnonzero(counts > 0)
    idx = first[full]
    k = len(cols)
    up = np.full(buckets, np.nan)
    mn = np.full((k, buckets), np.nan)
    mx = np.full((k, buckets), np.nan)
    mean = np.full((k, buckets), np.nan)
    if len(full):
        has = r[2] > 0
        n = np.add.reduceat(r[1], idx)
        nup = np.add.reduceat(r[2], idx)
        with np.errstate(invalid="ignore", divide="ignore"):
            up[full] = nup / n
            lo_ = np.minimum.reduceat(np.where(has, r[3 : 3 + k], np.inf), idx, axis=1)
            hi_ = np.maximum.reduceat(np.where(has, r[3 + k : 3 + 2 * k], -np.inf), idx, axis=1)
            m = np.add.reduceat(r[3 + 2 * k : 3 + 3 * k] * r[2], idx, axis=1) / nup
        lo_[np.isinf(lo_)] = np.nan
        hi_[np.isinf(hi_)] = np.nan
        m[:, nup == 0] = np.nan
        mn[:, full], mx[:, full], mean[:, full] = lo_, hi_, m
    bands = {name: Band(mn[i], mx[i], mean[i]) for i, name in enumerate(cols)}
    if len(cols) < len(_SERIES_COLUMNS):
        none = np.full(buckets, np.nan)
        for name in _SERIES_COLUMNS:
            bands.setdefault(name, Band(none, none, none))
    return _make_series(node, t, up, bands, width)


def _downsample(node: int, a: npt.NDArray[np.float64], start: float, end: float, buckets: int) -> SampleSeries:
    """min/max/mean per equal-width bucket; a bucket with no up sample is NaN (a gap).

    The samples are sorted, so bucket boundaries are a binary search and each statistic is one
    `reduceat` over all columns at once (over the non-empty buckets, whose segments then hold
    exactly their samples); NaN-aware variants only when the node was ever down.
    """
    width = max((end - start) / buckets, 1e-9)
    t = start + width * np.arange(buckets)
    first = np.searchsorted(a[0], t, side="left")
    first[0] = 0  # samples before `start` (rounding) belong to the first bucket
    counts = np.diff(np.r_[first, a.shape[1]])
    full = np.flatnonzero(counts > 0)
    idx = first[full]
    k = len(_SERIES_COLUMNS)
    up = np.full(buckets, np.nan)
    mn = np.full((k, buckets), np.nan)
    mx = np.full((k, buckets), np.nan)
    mean = np.full((k, buckets), np.nan)
    if len(full):
        v = a[2:]
        with np.errstate(invalid="ignore", divide="ignore"):
            up[full] = np.add.reduceat(a[1], idx) / counts[full]
            if np.isnan(v[0]).any():
                ok = ~np.isnan(v[0])
                n_ok = np.add.reduceat(ok.astype(np.float64), idx)
                mn[:, full] = np.fmin.reduceat(v, idx, axis=1)
                mx[:, full] = np.fmax.reduceat(v, idx, axis=1)
                m = np.add.reduceat(np.where(ok, v, 0.0), idx, axis=1) / n_ok
                m[:, n_ok == 0] = np.nan
                mean[:, full] = m
            else:
                mn[:, full] = np.minimum.reduceat(v, idx, axis=1)
                mx[:, full] = np.maximum.reduceat(v, idx, axis=1)
                mean[:, full] = np.add.reduceat(v, idx, axis=1) / counts[full]
    bands = {name: Band(mn[i], mx[i], mean[i]) for i, name in enumerate(_SERIES_COLUMNS)}
    return _make_series(node, t, up, bands, width)


# --------------------------------------------------------------------------- listing


def list_histories(directory: str | os.PathLike[str] | None = None) -> list[HistoryFile]:
    """The live database and every backup in a history directory, oldest first, live last."""
    d = Path(directory) if directory is not None else default_history_dir()
    found: list[HistoryFile] = []
    if not d.is_dir():
        return found
    candidates = sorted(p / DB_NAME for p in d.iterdir() if p.name.startswith(BACKUP_PREFIX) and p.is_dir())
    candidates.append(d / DB_NAME)
    for path in candidates:
        if not path.is_file():
            continue
        info = HistoryFile(path, live=path.parent == d)
        try:
            with HistoryReader(path) as r:
                span = r.span()
            if span:
                info.start, info.end = span
        except (HistoryError, sqlite3.Error) as exc:
            log.warning("%s: %s", path, exc)
        found.append(info)
    return found


def remove_history(path: str | os.PathLike[str]) -> None:
    """Delete one backup folder (never the live database)."""
    p = Path(path)
    folder = p.parent if p.name == DB_NAME else p
    if not folder.name.startswith(BACKUP_PREFIX):
        raise HistoryError(f"{folder}: not a backup folder")
    shutil.rmtree(folder)
