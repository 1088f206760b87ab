"""bridge.parts: parts start in order and stop in reverse; the worker thread's lifecycle."""

from __future__ import annotations

import logging
import threading

import pytest

from bridge.parts import Hooks, Parts, Worker


def test_parts_stop_in_reverse_and_a_failing_stop_does_not_stop_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []

    def fail() -> None:
        seen.append("stop b")
        raise RuntimeError("boom")

    parts = Parts()
    parts.start("a", Hooks(lambda: seen.append("start a"), lambda: seen.append("stop a")))
    parts.start("b", Hooks(lambda: seen.append("start b"), fail))
    parts.start("c", Hooks(stop=lambda: seen.append("stop c")))
    with caplog.at_level(logging.ERROR):
        parts.stop_all()
    parts.stop_all()  # nothing is stopped twice
    assert seen == ["start a", "start b", "stop c", "stop b", "stop a"]
    assert "error while stopping the b" in caplog.text


def test_a_part_that_fails_to_start_is_not_stopped() -> None:
    seen: list[str] = []

    def fail() -> None:
        raise RuntimeError("no")

    parts = Parts()
    parts.start("a", Hooks(stop=lambda: seen.append("stop a")))
    with pytest.raises(RuntimeError):
        parts.start("b", Hooks(fail, lambda: seen.append("stop b")))
    parts.stop_all()
    assert seen == ["stop a"]


class Ticker(Worker):
    thread_name = "ticker"

    def __init__(self) -> None:
        super().__init__()
        self.hooks: list[str] = []
        self.running = threading.Event()

    def _starting(self) -> None:
        self.hooks.append("starting")

    def _run(self) -> None:
        self.running.set()
        self._stopping.wait()

    def _wake(self) -> None:
        self.hooks.append("wake")

    def _stopped(self) -> None:
        self.hooks.append("stopped")


def test_worker_starts_once_and_stops_its_thread() -> None:
    with Ticker() as worker:
        worker.start()  # a second start does nothing
        assert worker.running.wait(5)
        assert [t.name for t in threading.enumerate()].count("ticker") == 1
    assert "ticker" not in [t.name for t in threading.enumerate()]
    assert worker.hooks == ["starting", "wake", "stopped"]
    worker.close()  # idempotent
    assert worker.hooks[-2:] == ["wake", "stopped"]
