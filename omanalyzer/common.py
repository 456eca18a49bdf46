"""What omanalyzer and omhistory share: the open history, its reader thread, the File menu, start-up.

All database reads run in a `Workers` pool of ONE thread per window (`HistoryDoc.read`): reads are
serialised on the window's connection, and the GUI thread never waits on SQLite. A result that
arrives after another history was opened is dropped (generation counter). Heavy one-off work (the
statistics, the CSV export) opens a reader of its own in a second pool, so it never delays the
plots.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSettings, Qt, Signal
from PySide6.QtGui import QAction, QColor, QKeySequence, QPalette
from PySide6.QtWidgets import QApplication, QFileDialog, QMainWindow, QMenu, QMessageBox, QWidget

from omanalyzer.data import Source, open_reader, resolve
from omview.core.history import (
    Checkpoint,
    HistoryError,
    HistoryFile,
    HistoryReader,
    NodeRecord,
    default_history_dir,
    list_histories,
)
from omview.gui import theme
from omview.gui.workers import Workers

RECENT_MAX = 8


# --------------------------------------------------------------------------- colours


@dataclass(frozen=True)
class PlotColors:
    back: QColor
    fore: QColor  # the load lines (openMosixanalyzer's black)
    grid: QColor
    high: QColor  # load > 75 %
    checkpoint: QColor  # blue vertical lines
    memory: QColor
    guide: QColor  # the faint 75 % line of each band


def plot_colors(palette: QPalette | None = None) -> PlotColors:
    pal = palette or QApplication.palette()
    dark = theme.is_dark(pal)
    c = theme.colors(pal)
    fore = pal.color(QPalette.ColorRole.Text)
    return PlotColors(
        back=pal.color(QPalette.ColorRole.Base),
        fore=fore,
        grid=QColor("#4a4d55") if dark else QColor("#d0d3d8"),
        high=QColor("#ff4d4d") if dark else QColor("#e00000"),
        checkpoint=QColor("#5aa0ff") if dark else QColor("#0033cc"),
        memory=c.memory,
        guide=QColor("#6b4a4a") if dark else QColor("#f0c8c8"),
    )


# --------------------------------------------------------------------------- the open history


@dataclass
class HistoryInfo:
    """What a window needs to know about an opened history; read once in the worker."""

    source: Source
    nodes: list[NodeRecord]
    span: tuple[float, float] | None
    checkpoints: list[Checkpoint]
    interval: float
    meta: dict[str, str] = field(default_factory=dict)


def _open(source: Source) -> tuple[HistoryReader, HistoryInfo]:
    reader = open_reader(source)
    try:
        info = HistoryInfo(source, reader.nodes(), reader.span(), reader.checkpoints(), reader.interval, reader.meta())
    except (sqlite3.Error, ValueError) as exc:
        reader.close()
        raise HistoryError(f"{source.path}: damaged or not a history database ({exc})") from None
    return reader, info


class HistoryDoc(QObject):
    """One open history for one window: open in the background, then serialised reads."""

    opened = Signal(object)  # HistoryInfo
    failed = Signal(str, str)  # path, message
    readFailed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.reader_pool = Workers(self, threads=1)
        self.heavy_pool = Workers(self, threads=2)
        self.reader: HistoryReader | None = None
        self.info: HistoryInfo | None = None
        self.generation = 0
        self.opening: str | None = None

    @property
    def source(self) -> Source | None:
        return self.info.source if self.info else None

    def open(self, path: str | Path) -> None:
        """Open a history folder, backup folder or database file; `opened` or `failed` follows."""
        self.generation += 1
        gen = self.generation
        self.opening = str(path)
        old = self.reader
        self.reader = None

        def work() -> tuple[HistoryReader, HistoryInfo]:
            if old is not None:
                old.close()
            return _open(resolve(path))

        def done(result: tuple[HistoryReader, HistoryInfo]) -> None:
            reader, info = result
            if gen != self.generation:
                self.reader_pool.submit(reader.close)
                return
            self.opening = None
            self.reader, self.info = reader, info
            self.opened.emit(info)

        def error(exc: BaseException) -> None:
            if gen != self.generation:
                return
            self.opening = None
            self.failed.emit(str(path), describe(exc))

        self.reader_pool.submit(work, on_done=done, on_error=error, context=self)  # a closed window gets nothing

    def refresh_info(self, on_done: Callable[[HistoryInfo], None]) -> None:
        """Re-read span, nodes and checkpoints (the live history grows)."""
        src = self.source
        if src is None:
            return

        def work(r: HistoryReader) -> HistoryInfo:
            return HistoryInfo(src, r.nodes(), r.span(), r.checkpoints(), r.interval, r.meta())

        def done(info: HistoryInfo) -> None:
            self.info = info
            on_done(info)

        self.read(work, done)

    def read(self, fn: Callable[[HistoryReader], Any], on_done: Callable[[Any], None],
             on_error: Callable[[BaseException], None] | None = None) -> None:
        """fn(reader) on the reader thread; on_done(result) back here unless another history was opened."""
        reader = self.reader
        if reader is None:
            return
        gen = self.generation

        def done(value: Any) -> None:
            if gen == self.generation:
                on_done(value)

        def error(exc: BaseException) -> None:
            if gen != self.generation:
                return
            if on_error is not None:
                on_error(exc)
            else:
                self.readFailed.emit(describe(exc))

        self.reader_pool.submit(fn, reader, on_done=done, on_error=error, context=self)

    def heavy(self, fn: Callable[[HistoryReader], Any], on_done: Callable[[Any], None],
              on_error: Callable[[BaseException], None], context: QObject | None = None) -> None:
        """fn(reader) with a reader of its own, in the second pool (statistics, export)."""
        src = self.source
        if src is None:
            return

        def work() -> Any:
            with HistoryReader(src.path) as r:
                return fn(r)

        self.heavy_pool.submit(work, on_done=on_done, on_error=on_error, context=context or self)

    def close(self) -> None:
        self.generation += 1
        reader, self.reader = self.reader, None
        if reader is not None:
            self.reader_pool.submit(reader.close)
        self.reader_pool.shutdown(3000)
        self.heavy_pool.shutdown(3000)


def describe(exc: BaseException) -> str:
    if isinstance(exc, HistoryError):
        return str(exc)
    if isinstance(exc, sqlite3.DatabaseError):
        return f"the history database is damaged or not a history ({exc})"
    return f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------- the File menu


def recent_settings() -> QSettings:
    return QSettings("omview", "omanalyzer")


def recent_list() -> list[str]:
    v = recent_settings().value("recent") or []
    items = [v] if isinstance(v, str) else list(v)
    return [str(x) for x in items if x]


def remember(path: str) -> None:
    items = [p for p in recent_list() if p != path]
    items.insert(0, path)
    recent_settings().setValue("recent", items[:RECENT_MAX])


class HistoryWindowBase(QMainWindow):
    """A main window showing one history: File menu (live, backups, recent, folder/file), errors."""

    APP = "omanalyzer"

    def __init__(self, history_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history_dir = Path(history_dir)
        self.doc = HistoryDoc(self)
        self.doc.opened.connect(self._opened)
        self.doc.failed.connect(self.show_open_error)
        self.doc.readFailed.connect(lambda msg: self.show_error("Cannot read the history", msg))
        self.last_error = ""
        self.error_box: QMessageBox | None = None
        self.backups: list[HistoryFile] | None = None  # the last listing (read in the background)
        self.backup_listings = 0
        self.file_menu = self.menuBar().addMenu("&File")
        self.backups_menu = QMenu("Open &backup", self)
        self.backups_menu.setToolTipsVisible(True)
        self.recent_menu = QMenu("&Recent", self)
        self.recent_menu.setToolTipsVisible(True)
        self.backups_menu.aboutToShow.connect(self._fill_backups)
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self.act_live = self._action(self.file_menu, "Open &live history", self.open_live, QKeySequence("Ctrl+L"),
                                     f"Open the collector's current history in {self.history_dir}")
        self.file_menu.addMenu(self.backups_menu)
        self._action(self.file_menu, "&Open folder or file…", self.open_dialog, QKeySequence.StandardKey.Open,
                     "Open any history folder, backup folder or history.sqlite file")
        self.file_menu.addMenu(self.recent_menu)
        self.file_menu.addSeparator()

    def _action(self, menu: QMenu, text: str, slot: Callable[[], Any], key: Any = None, tip: str = "") -> QAction:
        act = QAction(text, self)
        if key is not None:
            act.setShortcut(key)
        act.setToolTip(tip or text.replace("&", ""))
        act.setStatusTip(tip)
        act.triggered.connect(lambda *_: slot())
        menu.addAction(act)
        return act

    # ------------------------------------------------------------ opening
    def open_history(self, path: str | Path) -> None:
        self.statusBar().showMessage(f"opening {path}…")
        self.doc.open(path)

    def open_live(self) -> None:
        self.open_history(self.history_dir)

    def open_dialog(self) -> None:
        start = str(self.doc.source.folder if self.doc.source else self.history_dir)
        path, _ = QFileDialog.getOpenFileName(self, "Open a history", start,
                                              "History databases (history.sqlite *.sqlite);;All files (*)")
        if path:
            self.open_history(path)

    def _fill_backups(self) -> None:
        """Show the last listing at once and refresh it in the background (listing opens every backup)."""
        self._show_backups()
        folder = self.history_dir

        def done(found: list[HistoryFile]) -> None:
            self.backups = [h for h in found if not h.live]
            self.backup_listings += 1
            self._show_backups()

        self.doc.heavy_pool.submit(list_histories, folder, on_done=done, on_error=lambda exc: done([]), context=self)

    def _show_backups(self) -> None:
        self.backups_menu.clear()
        found = self.backups
        if found is None:
            a = self.backups_menu.addAction(f"looking for backups in {self.history_dir}…")
            a.setEnabled(False)
            return
        if not found:
            a = self.backups_menu.addAction(f"no backups in {self.history_dir}")
            a.setEnabled(False)
            return
        from omanalyzer.data import fmt_time

        for h in reversed(found):
            span = f"{fmt_time(h.start, False)} – {fmt_time(h.end, False)}" if h.start and h.end else "empty"
            a = self.backups_menu.addAction(f"{h.path.parent.name}   ({span})")
            a.setToolTip(str(h.path))
            a.triggered.connect(lambda *_, p=h.path: self.open_history(p))

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        items = recent_list()
        if not items:
            a = self.recent_menu.addAction("nothing opened yet")
            a.setEnabled(False)
        for p in items:
            a = self.recent_menu.addAction(p)
            a.triggered.connect(lambda *_, p=p: self.open_history(p))

    def _opened(self, info: HistoryInfo) -> None:
        remember(str(info.source.folder if info.source.path.name == "history.sqlite" else info.source.path))
        self.setWindowTitle(f"{self.APP} — {info.source.title}")
        self.statusBar().showMessage(f"opened {info.source.path}", 5000)
        self.history_opened(info)

    def history_opened(self, info: HistoryInfo) -> None:  # overridden
        pass

    # ------------------------------------------------------------ errors
    def show_open_error(self, path: str, message: str) -> None:
        self.statusBar().showMessage(f"could not open {path}", 8000)
        self.show_error("Cannot open this history", message)

    def show_error(self, title: str, message: str) -> None:
        """A non-modal error box (one at a time), so tests and a busy GUI never block on it."""
        self.last_error = message
        if self.error_box is not None:
            self.error_box.close()
        box = QMessageBox(QMessageBox.Icon.Critical, title, message, parent=self)
        hint = ("Open the live history or a backup folder from the File menu "
                "(omcollector writes history.sqlite in its history folder).")
        if "no history database" in message:
            hint = ("No collector has written here yet: start one with `omcollector -d` (or its systemd unit, "
                    "`omcollector --install-service`), or open another folder from the File menu.")
        box.setInformativeText(hint)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setModal(False)
        box.finished.connect(lambda *_: setattr(self, "error_box", None))
        self.error_box = box
        box.show()

    def shutdown(self) -> None:
        self.doc.close()


# --------------------------------------------------------------------------- start-up


def parse_args(prog: str, description: str, argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--history", metavar="DIR|FILE",
                   help=f"history folder, backup folder or history.sqlite (default {default_history_dir()})")
    p.add_argument("--cluster", metavar="FILE", help=argparse.SUPPRESS)  # passed by omview's launcher; unused
    p.add_argument("--theme", choices=("system", "light", "dark"), default="system", help="palette (default system)")
    return p.parse_args(argv)


def live_dir_of(path: Path) -> Path:
    """The live history folder that a given history path belongs to (a backup's parent folder)."""
    from omview.core.history import BACKUP_PREFIX

    p = path.parent if path.suffix == ".sqlite" or path.is_file() else path
    return p.parent if p.name.startswith(BACKUP_PREFIX) else p


def run(prog: str, description: str, argv: list[str] | None,
        make_window: Callable[[Path], HistoryWindowBase]) -> int:
    from omview.gui.display import require_display

    args = parse_args(prog, description, argv)
    require_display(prog)
    from PySide6.QtGui import QIcon

    from omview.app import icon_path

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    app.setApplicationName(prog)
    app.setOrganizationName("omview")
    app.setDesktopFileName(prog)
    icon = icon_path(prog)
    if icon:
        app.setWindowIcon(QIcon(str(icon)))
    theme.apply_theme(app, args.theme)
    history = Path(args.history).expanduser() if args.history else default_history_dir()
    window = make_window(live_dir_of(history))
    window.show()
    window.open_history(history)
    code = app.exec()
    window.shutdown()
    return int(code)
