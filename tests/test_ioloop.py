"""The I/O loop's read batching (IoLoop.set_batching), on real pipes: no Qt, no SSH."""

from __future__ import annotations

import os
import threading
import time

import pytest

from omview.core.ioloop import IoLoop


class Pipe:
    """A pipe the loop reads: each callback drains it and records what it got."""

    def __init__(self, loop: IoLoop) -> None:
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        self.reads: list[bytes] = []
        self.got = threading.Event()
        loop.add_reader(self, self.on_readable)

    def fileno(self) -> int:
        return self.r

    def on_readable(self) -> None:
        try:
            self.reads.append(os.read(self.r, 4096))
        except BlockingIOError:
            return
        self.got.set()

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


@pytest.fixture
def loop():
    lp = IoLoop(name="test-io")
    yield lp
    lp.stop()


def write_spread(pipe: Pipe, n: int, pause: float) -> None:
    for i in range(n):
        os.write(pipe.w, bytes([65 + i]))
        time.sleep(pause)


def wait_bytes(pipe: Pipe, n: int) -> None:
    deadline = time.monotonic() + 10
    while sum(map(len, pipe.reads)) < n:
        assert time.monotonic() < deadline, pipe.reads
        pipe.got.wait(0.05)
        pipe.got.clear()


def test_without_batching_every_write_is_a_read_of_its_own(loop: IoLoop) -> None:
    pipe = Pipe(loop)
    try:
        write_spread(pipe, 5, 0.1)
        wait_bytes(pipe, 5)
        assert b"".join(pipe.reads) == b"ABCDE" and len(pipe.reads) >= 3, pipe.reads  # (a busy host may merge two)
    finally:
        pipe.close()


def test_with_batching_writes_within_the_gap_are_read_together(loop: IoLoop) -> None:
    loop.set_batching(2.0, lambda: False)
    pipe = Pipe(loop)
    try:
        os.write(pipe.w, b"A")
        wait_bytes(pipe, 1)  # the first read starts the gap
        write_spread(pipe, 4, 0.05)
        wait_bytes(pipe, 5)
        assert pipe.reads == [b"A", b"ABCD"], pipe.reads
    finally:
        pipe.close()


def test_a_call_from_another_thread_or_an_awaited_reply_ends_the_wait(loop: IoLoop) -> None:
    urgent = threading.Event()
    loop.set_batching(30.0, urgent.is_set)
    pipe = Pipe(loop)
    try:
        os.write(pipe.w, b"A")
        wait_bytes(pipe, 1)  # a 30 s gap starts now
        ran = threading.Event()
        loop.call_soon(ran.set)  # a request: not held for the gap
        assert ran.wait(10)
        urgent.set()  # a reply awaited (set by a request the loop ran): no more waiting
        loop.call_soon(lambda: None)
        os.write(pipe.w, b"B")
        wait_bytes(pipe, 2)
        os.write(pipe.w, b"C")  # no wake-up now: read at once only because nothing waits 30 s
        wait_bytes(pipe, 3)
        assert pipe.reads == [b"A", b"B", b"C"]
    finally:
        pipe.close()
