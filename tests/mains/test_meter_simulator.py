"""The meter cross-check against the real drivers and the wire-level simulators' mains-off mode."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from bridge.clock import SystemClock
from bridge.config.bridge import MainsConfig, parse_bridge_config
from bridge.db import connect, db_path
from bridge.mains import MainsSensor
from bridge.mains.store import OutageStore
from bridge.meters.simulator import SimulatedMeter
from bridge.meters.source import create_meter_source
from bridge.model import MainsEvent, MainsState, Reading

ON, OFF = MainsState.ON, MainsState.OFF

CONFIG = """
meter: {{type: simulated, interval: 100ms, timeout: 200ms}}
mains: {{source: meter, confirm_off: 100ms, confirm_on: 300ms, meter_silence: 600ms,
        meter_voltage_threshold: 100}}
simulation: {{enabled: true, meter_protocol: {protocol}, noise: 0}}
"""


class Events:
    def __init__(self) -> None:
        self.items: list[MainsEvent] = []
        self.cond = threading.Condition()

    def __call__(self, event: MainsEvent) -> None:
        with self.cond:
            self.items.append(event)
            self.cond.notify_all()

    def wait(self, n: int, timeout: float = 8.0) -> list[MainsEvent]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.items) >= n, timeout), self.items
            return list(self.items)


@pytest.mark.realtime
@pytest.mark.parametrize(
    ("protocol", "how"),
    [("pzem004t", "silence"), ("mcp39f511n", "zero volts")],
)
def test_simulated_mains_off(tmp_path: Path, protocol: str, how: str) -> None:
    config = parse_bridge_config(CONFIG.format(protocol=protocol))
    assert isinstance(config.mains, MainsConfig)
    clock = SystemClock()
    events = Events()
    last_good: list[Reading] = []
    sensor = MainsSensor(
        config.mains,
        OutageStore(connect(db_path(tmp_path)), boot_id="b"),
        on_event=events,
        clock=clock,
        simulation=True,
    )

    def on_reading(reading: Reading) -> None:
        if (reading.voltage_v or 0) >= 100:
            last_good.append(reading)
        sensor.feed_meter(reading)

    source = create_meter_source(config, clock=clock, on_reading=on_reading)
    assert source is not None
    simulator = source.simulator
    assert isinstance(simulator, SimulatedMeter)
    with sensor:
        source.start()
        try:
            assert [e.state for e in events.wait(1)] == [ON]
            assert events.items[0].source == "meter"
            simulator.set_mains(False)
            cut = time.monotonic()
            off = events.wait(2)[1]
            announced = time.monotonic()
            assert off.state is OFF
            # It began at the last good reading (silence) or the first 0 V reading, just
            # after the cut, not when the confirmation ended.
            assert cut - 0.3 <= off.began_monotonic <= cut + 0.3, how
            if protocol == "pzem004t":
                assert announced - cut >= 0.5  # waited for meter_silence
                assert off.began_monotonic == pytest.approx(last_good[-1].monotonic)
            simulator.set_mains(True)
            back = time.monotonic()
            on = events.wait(3)[2]
            assert on.state is ON
            assert on.began_monotonic >= back - 0.05
            assert time.monotonic() - on.began_monotonic >= 0.3
        finally:
            source.stop()
    assert [e.seq for e in events.items] == [1, 2, 3]
    assert sensor.flap_count == 0
