"""The bridge's UPS source against real upsd + dummy-ups, with a scripted discharge.

OL → OB DISCHRG → falling ``battery.runtime`` → OB LB: the reader follows each step within
one poll (driver ``pollinterval`` + reader poll); the shutdown policy with ``min_runtime``
fed by those reports decides SHUTDOWN when the runtime crosses it, long before ``delay``.
"""

from __future__ import annotations

import threading
import time

import pytest

from bridge.model import MainsState
from bridge.shutdown.policy import Cause, Phase, PolicySettings, decide
from bridge.shutdown.view import MainsFact, Tracker
from bridge.ups.reader import UpsReader, UpsTarget
from bridge.ups.report import UpsReport
from tests.ups._upsd import PASSWORD, POLLINTERVAL, USER, DummyUpsd

pytestmark = pytest.mark.realtime

READER_POLL = 0.5
ONE_POLL = POLLINTERVAL + READER_POLL + 0.5  # the driver's and ours, plus scheduling slack


class Seen:
    """Reports as they arrive, with their monotonic time of arrival."""

    def __init__(self) -> None:
        self.items: list[tuple[float, UpsReport]] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, report: UpsReport | None, error: str | None) -> None:
        with self._lock:
            if report is not None:
                self.items.append((time.monotonic(), report))
            elif error:
                self.errors.append(error)

    def first(self, after: float, match: object, timeout: float = 10.0) -> tuple[float, UpsReport]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for at, report in self.items:
                    if at >= after and match(report):  # type: ignore[operator]
                        return at, report
            time.sleep(0.02)
        raise AssertionError(f"no matching report; last {self.items[-3:]}, {self.errors[-3:]}")


def test_reader_follows_a_scripted_discharge_within_one_poll(upsd: DummyUpsd) -> None:
    seen = Seen()
    reader = UpsReader(
        UpsTarget("dummy", port=upsd.port, username=USER, password=PASSWORD, poll=READER_POLL),
        seen,
    )
    reader.start()
    try:
        _, first = seen.first(0, lambda r: r.on_line)
        assert (first.charge, first.runtime_s, first.load) == (100.0, 1800.0, 20.0)
        steps = [
            ({"ups_status": "OB DISCHRG", "battery_charge": 80, "battery_runtime": 900}, 900.0),
            ({"ups_status": "OB DISCHRG", "battery_charge": 40, "battery_runtime": 300}, 300.0),
            ({"ups_status": "OB LB", "battery_charge": 10, "battery_runtime": 60}, 60.0),
        ]
        lags = []
        for values, runtime in steps:
            edge = upsd.write(**values, ups_load=20)
            at, report = seen.first(edge, lambda r, rt=runtime: r.runtime_s == rt)
            lags.append(at - edge)
            assert report.on_battery
        assert report.low_battery
        print("report lag after each rewrite (s):", [round(x, 2) for x in lags])
        assert max(lags) <= ONE_POLL
    finally:
        reader.stop()


def test_min_runtime_shuts_down_when_the_runtime_crosses_it_before_the_delay(
    upsd: DummyUpsd,
) -> None:
    settings = PolicySettings(delay=600.0, min_runtime=120.0)
    tracker = Tracker(["rack-a"], started_at=time.monotonic())
    tracker.connected()
    decisions: list[tuple[float, Phase, Cause | None]] = []

    def on_report(report: UpsReport | None, _error: str | None) -> None:
        if report is None:
            return
        now = time.monotonic()
        tracker.battery("rack-a", low=report.low_battery, runtime_s=report.runtime_s, at=now)
        d = decide(tracker.view(), now, settings)
        decisions.append((now, d.phase, d.cause))

    reader = UpsReader(
        UpsTarget("dummy", port=upsd.port, username=USER, password=PASSWORD, poll=READER_POLL),
        on_report,
    )
    reader.start()
    try:
        outage = upsd.write(ups_status="OB DISCHRG", battery_charge=70, battery_runtime=600)
        # The bridge announces the outage (mains.source: ups), received live.
        tracker.mains(MainsFact("rack-a", MainsState.OFF, 1, 0.0, outage, live=True))
        time.sleep(2 * ONE_POLL)
        assert all(phase is not Phase.SHUTDOWN for _, phase, _ in decisions)
        crossing = upsd.write(ups_status="OB DISCHRG", battery_charge=30, battery_runtime=110)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(p is Phase.SHUTDOWN for _, p, _ in decisions):
            time.sleep(0.02)
        at, _phase, cause = next(x for x in decisions if x[1] is Phase.SHUTDOWN)
        assert cause is Cause.LOW_BATTERY
        assert at - crossing <= ONE_POLL
        assert at < outage + settings.delay
        print(
            f"shutdown decided {at - crossing:.2f} s after the runtime crossed min_runtime, "
            f"{at - outage:.1f} s into the outage (delay {settings.delay:.0f} s)"
        )
    finally:
        reader.stop()
