"""One selector thread that reads every agent stream and runs timers.

A thread per node would work for ten nodes; with a thousand, one loop that only
wakes when bytes arrive costs far less, and a node that hangs cannot hold up
another because nothing here blocks: reads are non-blocking and connects run
in a small pool elsewhere.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import select
import selectors
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("omview.ioloop")


class Readable(Protocol):
    def fileno(self) -> int: ...


class IoLoop:
    def __init__(self, name: str = "omview-io") -> None:
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._pending: list[Callable[[], None]] = []
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._stop = False
        self._close_in_loop = False
        self._gap = 0.0  # see set_batching
        self._urgent: Callable[[], bool] = lambda: False
        self._last_io = 0.0
        #: per-loop singletons of the layers above, e.g. the sessions' shared watchdog (loop thread only)
        self.shared: dict[object, object] = {}
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # -- thread-safe API
    def call_soon(self, fn: Callable[[], None]) -> None:
        with self._lock:
            self._pending.append(fn)
        self._wake()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._lock:
            heapq.heappush(self._timers, (time.monotonic() + delay, next(self._seq), fn))
        self._wake()

    def add_reader(self, obj: Readable, callback: Callable[[], None]) -> None:
        def register() -> None:
            self._sel.register(obj.fileno(), selectors.EVENT_READ, callback)

        self.call_soon(register)

    def remove_reader(self, obj: Readable) -> None:
        def drop() -> None:
            try:
                self._sel.unregister(obj.fileno())
            except (KeyError, ValueError, OSError):
                pass

        self.call_soon(drop)

    def set_batching(self, gap: float, urgent: Callable[[], bool]) -> None:
        """Read streams at most once per `gap` s while `urgent()` is false.

        With many nodes each sample is a wake-up of its own, and a wake-up (the select, the
        context switch) costs more than reading the line. Waiting `gap` after one lets the next
        ones arrive and be read in the same pass. `urgent()` (a reply is awaited) and calls from
        other threads (call_soon: a request) end the wait at once. Loop thread only calls `urgent`.
        """
        self._gap, self._urgent = max(0.0, gap), urgent

    def in_loop(self) -> bool:
        return threading.current_thread() is self._thread

    def stop(self) -> None:
        # the wake pipe is closed by whoever stops last: closing it in the loop thread raced with
        # this _wake() (EBADF, or a write into a reused descriptor)
        if self._stop and not self._thread.is_alive():
            return
        if self.in_loop():
            self._close_in_loop = True
        self._stop = True
        self._wake()
        if not self.in_loop():
            self._thread.join(timeout=5)
            if not self._thread.is_alive():
                self._close_pipe()

    def _close_pipe(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def _wake(self) -> None:
        if self.in_loop():
            return  # the loop re-reads its queues and timers before it sleeps again
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass

    # -- the loop
    def _run(self) -> None:
        while not self._stop:
            with self._lock:
                if self._pending:
                    timeout = 0.0  # queued from inside the loop, which does not wake itself
                elif self._timers:
                    timeout = max(0.0, self._timers[0][0] - time.monotonic())
                else:
                    timeout = 1.0
            if self._gap and timeout > 0:
                rest = min(self._last_io + self._gap - time.monotonic(), timeout)
                if rest > 0 and not self._urgent():
                    # only the wake pipe: a call from another thread still ends the wait at once
                    t0 = time.monotonic()
                    select.select([self._wake_r], [], [], rest)
                    timeout = max(0.0, timeout - (time.monotonic() - t0))
            events = self._sel.select(min(timeout, 1.0))
            if self._gap and any(key.data is not None for key, _ in events):
                self._last_io = time.monotonic()
            for key, _ in events:
                if key.data is None:
                    try:
                        while os.read(self._wake_r, 4096):
                            pass
                    except BlockingIOError:
                        pass
                    continue
                self._safe(key.data)
            self._run_due()
        self._sel.close()
        if self._close_in_loop:
            self._close_pipe()

    def _run_due(self) -> None:
        now = time.monotonic()
        with self._lock:
            due = self._pending
            self._pending = []
            while self._timers and self._timers[0][0] <= now:
                due.append(heapq.heappop(self._timers)[2])
        for fn in due:
            self._safe(fn)

    @staticmethod
    def _safe(fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception:  # one node's bug must not stop every node's updates
            log.exception("callback failed")
