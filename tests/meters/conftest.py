"""Fixtures for the meter tests: simulators behind real ptys, in-memory serial fakes."""

from __future__ import annotations

import os
import select
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bridge.meters.simulator import SimulatedMeter


class FakeSerial:
    """An in-memory serial port: each ``write`` makes the next queued reply readable.

    Used only where the pty would make a test too slow (the 10,000-example fuzz); the
    same replies also go over a real pty in a smaller fuzz.
    """

    def __init__(self, replies: list[bytes] | None = None) -> None:
        self.replies: deque[bytes] = deque(replies or [])
        self.written: list[bytes] = []
        self.port = "fake"
        self.baudrate = 115200
        self.timeout: float | None = 0.0
        self.is_open = True
        self.last_read_size = 0
        self._pending = b""

    def open(self) -> None:
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    def write(self, data: bytes) -> int:
        self.written.append(bytes(data))
        self._pending = self.replies.popleft() if self.replies else b""
        return len(data)

    def read(self, size: int = 1) -> bytes:
        data, self._pending = self._pending[:size], self._pending[size:]
        self.last_read_size = len(data)
        return data

    def reset_input_buffer(self) -> None:
        self._pending = b""

    def reset_output_buffer(self) -> None:
        pass

    def flush(self) -> None:
        pass


@pytest.fixture
def simulator() -> Iterator[Callable[..., SimulatedMeter]]:
    """``simulator("pzem004t", load_w=500)`` → a started :class:`SimulatedMeter`, stopped after."""
    started: list[SimulatedMeter] = []

    def make(protocol: str, **kwargs: Any) -> SimulatedMeter:
        kwargs.setdefault("seed", 7)
        sim = SimulatedMeter(protocol, **kwargs).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


class ScriptedLine:
    """The far end of a real pty that answers each request with the next scripted reply.

    ``None`` in the script means: stay silent.  Requests are recorded in :attr:`requests`.
    """

    def __init__(self, master: int, replies: list[bytes | None]) -> None:
        self.master = master
        self.replies: deque[bytes | None] = deque(replies)
        self.requests: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ScriptedLine:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.02)
            if not ready:
                continue
            request = b""
            while True:  # a request is whatever arrives before 5 ms of silence
                try:
                    request += os.read(self.master, 4096)
                except OSError:
                    return
                more, _, _ = select.select([self.master], [], [], 0.005)
                if not more:
                    break
            self.requests.append(request)
            reply = self.replies.popleft() if self.replies else None
            if reply:
                os.write(self.master, reply)


@pytest.fixture
def line(pty_pair: Any) -> Callable[[list[bytes | None]], ScriptedLine]:
    """``with line([reply, None, ...]) as far_end:`` — script the meter's side of ``pty_pair``."""

    def make(replies: list[bytes | None]) -> ScriptedLine:
        return ScriptedLine(pty_pair.master, replies)

    return make
