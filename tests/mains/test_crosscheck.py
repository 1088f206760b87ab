"""The meter as a second mains source: low voltage and silence, combined with the pin."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from bridge.clock import ManualClock
from bridge.config.bridge import MainsConfig
from bridge.mains import MainsSensor, meter_level
from bridge.model import MainsEvent, MainsState, Reading
from tests.mains.sensing import sensor_on

ON, OFF = MainsState.ON, MainsState.OFF


def reading(clock: ManualClock, volts: float | None = 230.0) -> Reading:
    return Reading(
        time=clock.utcnow(), monotonic=clock.monotonic(), meter="pzem004t", voltage_v=volts
    )


def sensor_for(
    tmp_path: Path, clock: ManualClock, events: list[MainsEvent], factory: MockFactory, source: str
) -> MainsSensor:
    config = MainsConfig(source=source, meter_voltage_threshold=100, meter_silence=3.0)
    return sensor_on(tmp_path, clock, events, factory, config)


def tick(
    sensor: MainsSensor,
    clock: ManualClock,
    seconds: float,
    volts: float | None = 230.0,
    *,
    meter_alive: bool = True,
    step: float = 0.5,
) -> None:
    """Let time pass with a meter reading every ``step`` seconds (or silence)."""
    left = seconds
    while left > 1e-9:
        d = min(step, left)
        clock.advance(d)
        left -= d
        sensor.feed_meter(reading(clock, volts) if meter_alive else None)
        sensor.poll()


def test_meter_level() -> None:
    clock = ManualClock()
    assert meter_level(reading(clock, 229.0), 100) is ON
    assert meter_level(reading(clock, 12.0), 100) is OFF
    assert meter_level(reading(clock, None), 100) is ON  # alive, no voltage quantity


def test_low_voltage_is_an_outage_from_the_first_low_reading(
    tmp_path: Path, factory: MockFactory
) -> None:
    clock = ManualClock()
    events: list[MainsEvent] = []
    sensor = sensor_for(tmp_path, clock, events, factory, "meter")
    with sensor:
        tick(sensor, clock, 3)
        assert sensor.state is ON
        tick(sensor, clock, 0.5, volts=0.0)
        low_at = clock.monotonic()
        tick(sensor, clock, 2, volts=0.0)
        assert sensor.state is OFF
        tick(sensor, clock, 1)
        back_at = clock.monotonic() - 0.5
        tick(sensor, clock, 3)
    assert [(e.state, e.source) for e in events] == [(ON, "meter"), (OFF, "meter"), (ON, "meter")]
    assert events[1].began_monotonic == low_at
    assert events[2].began_monotonic == back_at


def test_a_dip_shorter_than_the_window_is_a_blip(tmp_path: Path, factory: MockFactory) -> None:
    clock = ManualClock()
    events: list[MainsEvent] = []
    sensor = sensor_for(tmp_path, clock, events, factory, "meter")
    with sensor:
        tick(sensor, clock, 3)
        # Readings every 250 ms: one low reading, the next one good again.
        tick(sensor, clock, 0.25, volts=40.0, step=0.25)
        tick(sensor, clock, 3, step=0.25)
    assert [e.state for e in events] == [ON]
    assert sensor.flap_count == 1


def test_silence_is_an_outage_from_the_last_sign_of_life(
    tmp_path: Path, factory: MockFactory
) -> None:
    """A PZEM is powered by the mains it measures: when the mains dies it stops answering."""
    clock = ManualClock()
    events: list[MainsEvent] = []
    sensor = sensor_for(tmp_path, clock, events, factory, "meter")
    with sensor:
        tick(sensor, clock, 3)
        last_alive, last_alive_utc = clock.monotonic(), clock.utcnow()
        tick(sensor, clock, 2.5, meter_alive=False)
        assert sensor.state is ON  # 2.5 s of silence < meter_silence
        tick(sensor, clock, 1.0, meter_alive=False)
        assert sensor.state is OFF
        tick(sensor, clock, 5)  # the meter answers again with good voltage
    off, on = events[1], events[2]
    assert off.began_monotonic == last_alive
    assert off.began == last_alive_utc
    assert on.state is ON


def test_silence_from_start_counts(tmp_path: Path, factory: MockFactory) -> None:
    """A bridge that boots during an outage never hears its meter."""
    clock = ManualClock()
    events: list[MainsEvent] = []
    sensor = sensor_for(tmp_path, clock, events, factory, "meter")
    with sensor:
        started = clock.monotonic()
        tick(sensor, clock, 4, meter_alive=False)
    assert [e.state for e in events] == [OFF]
    assert events[0].began_monotonic == started


def test_any_announces_off_when_either_input_is_off(tmp_path: Path, factory: MockFactory) -> None:
    clock = ManualClock()
    events: list[MainsEvent] = []
    sensor = sensor_for(tmp_path, clock, events, factory, "any")
    pin = factory.pin(4)
    with sensor:
        pin.drive_high()
        tick(sensor, clock, 3)
        assert sensor.state is ON
        tick(sensor, clock, 2, volts=0.0)  # meter says off, pin still on
        assert sensor.state is OFF
        assert events[-1].source == "meter"
        tick(sensor, clock, 3)
        assert sensor.state is ON
        pin.drive_low()  # pin says off, meter on
        tick(sensor, clock, 1)
        assert sensor.state is OFF
        assert events[-1].source == "gpio"


def test_all_needs_both_inputs_off(tmp_path: Path, factory: MockFactory) -> None:
    clock = ManualClock()
    events: list[MainsEvent] = []
    sensor = sensor_for(tmp_path, clock, events, factory, "all")
    pin = factory.pin(4)
    with sensor:
        pin.drive_high()
        tick(sensor, clock, 3)
        tick(sensor, clock, 5, volts=0.0)
        assert sensor.state is ON  # the pin disagrees
        pin.drive_low()
        cut = clock.monotonic()
        tick(sensor, clock, 1, volts=0.0)
        assert sensor.state is OFF
        assert events[-1].began_monotonic == cut
        pin.drive_high()  # one input back is enough for 'on'
        tick(sensor, clock, 2.5, volts=0.0)
        assert sensor.state is ON


def test_gpio_source_ignores_the_meter(tmp_path: Path, factory: MockFactory) -> None:
    clock = ManualClock()
    events: list[MainsEvent] = []
    sensor = sensor_for(tmp_path, clock, events, factory, "gpio")
    pin = factory.pin(4)
    with sensor:
        pin.drive_high()
        tick(sensor, clock, 3)
        tick(sensor, clock, 10, volts=0.0)
        tick(sensor, clock, 10, meter_alive=False)
    assert [e.state for e in events] == [ON]


@pytest.mark.parametrize("source", ["meter", "any"])
def test_an_unplugged_adapter_is_not_an_outage(
    tmp_path: Path, factory: MockFactory, source: str
) -> None:
    """A port that disappeared says nothing about the mains: the meter becomes unknown."""
    clock = ManualClock()
    events: list[MainsEvent] = []
    sensor = sensor_for(tmp_path, clock, events, factory, source)
    with sensor:
        factory.pin(4).drive_high()
        tick(sensor, clock, 3)
        assert sensor.state is ON
        sensor.meter_unavailable("device reports readiness to read but returned no data")
        tick(sensor, clock, 30, meter_alive=False)
        assert sensor.state is ON
        assert [e.state for e in events] == [ON]
        # The adapter is plugged back in and the meter answers: still on, nothing announced.
        tick(sensor, clock, 3)
        assert [e.state for e in events] == [ON]
        # Silence of a meter whose port is there again is an outage as before.
        tick(sensor, clock, 5, meter_alive=False)
        assert sensor.state is OFF
