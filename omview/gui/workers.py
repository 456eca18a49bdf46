"""Run blocking core calls (set_admin, call, testbed.up) off the GUI thread; results come back as signals.

A node whose SSH hangs must never freeze a window, so every call that can block goes through
`Workers.submit`. The pool is bounded but roomy: a hung node holds one thread until the core's
request timeout (15 s) and must not starve the calls for healthy nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal

DEFAULT_THREADS = 12


class Task(QObject):
    """One submitted call. Delivers exactly once, on the GUI thread, unless its context object died."""

    # one tuple argument: PySide 6 on Python 3.11 mis-counts references of a bare None sent
    # through a queued `object` argument (seen here as "deallocating None" at exit)
    _finished = Signal(tuple)

    def __init__(self, owner: Workers, context: QObject | None) -> None:
        super().__init__()
        self._owner = owner
        self._context = context
        self.result: Any = None
        self.error: BaseException | None = None
        self.finished = False
        self.on_done: list[Callable[[Any], None]] = []
        self.on_error: list[Callable[[BaseException], None]] = []
        # explicit queued connection: the emit happens in a pool thread, the slot runs in ours
        self._finished.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    def _deliver(self, payload: tuple[bool, object]) -> None:
        ok, value = payload
        self.finished = True
        self._owner._forget(self)
        if self._context is not None and not shiboken6.isValid(self._context):
            return
        if ok:
            self.result = value
            for fn in self.on_done:
                fn(value)
        else:
            self.error = value if isinstance(value, BaseException) else RuntimeError(str(value))
            for efn in self.on_error:
                efn(self.error)


class _Job(QRunnable):
    def __init__(self, task: Task, fn: Callable[[], Any]) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._task = task
        self._fn = fn

    def run(self) -> None:
        try:
            value = self._fn()
        except BaseException as exc:  # delivered to the caller, never lost in a pool thread
            self._task._finished.emit((False, exc))
        else:
            self._task._finished.emit((True, value))


class Workers(QObject):
    """A QThreadPool of our own (not the global one, so other code cannot starve it)."""

    def __init__(self, parent: QObject | None = None, threads: int = DEFAULT_THREADS) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(threads)
        self._live: set[Task] = set()

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        context: QObject | None = None,
        **kwargs: Any,
    ) -> Task:
        """Run fn(*args, **kwargs) in the pool; on_done/on_error run later on the GUI thread.

        `context`: a widget whose destruction cancels the delivery (a closed dialog gets no result).
        """
        task = Task(self, context)
        if on_done is not None:
            task.on_done.append(on_done)
        if on_error is not None:
            task.on_error.append(on_error)
        self._live.add(task)
        self.pool.start(_Job(task, lambda: fn(*args, **kwargs)))
        return task

    def _forget(self, task: Task) -> None:
        self._live.discard(task)

    @property
    def busy(self) -> int:
        return len(self._live)

    def shutdown(self, wait_ms: int = 2000) -> bool:
        """Drop queued calls and wait a little for running ones; True when all finished."""
        self.pool.clear()
        return bool(self.pool.waitForDone(wait_ms))
