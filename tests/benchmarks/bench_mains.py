"""Mains sensing: how late an announcement comes after its confirmation window, and what
the pure debouncer costs per edge.

* ``latency_ms``: a MainsSensor on gpiozero's MockFactory with real timers
  (confirm_off = confirm_on = 50 ms); for each change, the time from the end of the
  confirmation window (first edge + window) to the ``on_event`` callback.
* ``debouncer_edges_per_s``: raw edges fed to :class:`MainsDebouncer` per second
  (blips and announcements mixed), on one core.
"""

from __future__ import annotations

import logging
import sqlite3
import statistics
import threading
import time

from gpiozero.pins.mock import MockFactory

from bridge.clock import ManualClock, SystemClock
from bridge.config.bridge import MainsConfig
from bridge.mains import Edge, MainsDebouncer, MainsSensor
from bridge.mains.store import OutageStore
from bridge.model import MainsEvent, MainsState

WINDOW = 0.05


def _latency(cycles: int) -> dict[str, float]:
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    got: list[tuple[float, MainsEvent]] = []
    ready = threading.Condition()

    def on_event(event: MainsEvent) -> None:
        with ready:
            got.append((time.monotonic(), event))
            ready.notify_all()

    factory = MockFactory()
    sensor = MainsSensor(
        MainsConfig(confirm_off=WINDOW, confirm_on=WINDOW, bounce_time=0),
        OutageStore(conn, boot_id="bench"),
        on_event=on_event,
        clock=SystemClock(),
        pin_factory=factory,
    )
    pin = factory.pin(4)
    delays: list[float] = []
    with sensor:
        for i in range(2 * cycles + 1):
            (pin.drive_high if i % 2 == 0 else pin.drive_low)()
            with ready:
                ready.wait_for(lambda n=i: len(got) > n, 5)
            at, event = got[-1]
            if i > 0:  # the first announcement is from 'unknown'
                delays.append((at - (event.began_monotonic + WINDOW)) * 1000)
    factory.close()
    conn.close()
    delays.sort()
    return {
        "changes": len(delays),
        "p50": round(statistics.median(delays), 3),
        "p95": round(delays[int(0.95 * (len(delays) - 1))], 3),
        "max": round(delays[-1], 3),
    }


def _debouncer(edges: int) -> float:
    clock = ManualClock()
    deb = MainsDebouncer(0.5, 2.0, announced=MainsState.ON)
    level = MainsState.OFF
    started = time.perf_counter()
    for i in range(edges):
        clock.advance(0.1 if i % 7 else 3.0)
        deb.feed(Edge(level, clock.monotonic(), clock.utcnow(), "gpio"))
        deb.poll(clock.monotonic())
        level = MainsState.ON if level is MainsState.OFF else MainsState.OFF
    return edges / (time.perf_counter() - started)


def run(smoke: bool) -> dict[str, object]:
    logger = logging.getLogger("bridge.mains")
    level = logger.level
    logger.setLevel(logging.ERROR)  # one line per change otherwise
    try:
        return {
            "window_s": WINDOW,
            "latency_ms": _latency(3 if smoke else 100),
            "debouncer_edges_per_s": round(_debouncer(2_000 if smoke else 200_000)),
        }
    finally:
        logger.setLevel(level)
