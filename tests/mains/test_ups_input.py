"""The UPS as a mains input: ``OB`` off, ``OL`` on, no data unknown; through the window."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from bridge.clock import ManualClock
from bridge.config.bridge import MainsConfig, parse_bridge_config
from bridge.errors import ConfigError
from bridge.mains import MainsSensor
from bridge.mains.crosscheck import combine
from bridge.model import MainsEvent, MainsState
from bridge.ups.report import UpsReport
from bridge.ups.source import mains_level
from tests.mains.sensing import sensor_on

ON, OFF, UNKNOWN = MainsState.ON, MainsState.OFF, MainsState.UNKNOWN


def sensor_for(
    tmp_path: Path, clock: ManualClock, events: list[MainsEvent], factory: MockFactory, source: str
) -> MainsSensor:
    config = MainsConfig(source=source, confirm_off=0.5, confirm_on=2.0)
    return sensor_on(tmp_path, clock, events, factory, config, with_ups=True)


def ups_for(sensor: MainsSensor, clock: ManualClock, status: str | None, seconds: float) -> None:
    """The UPS reports ``status`` (``None``: upsd unreachable) every 0.5 s for ``seconds``."""
    report = None if status is None else UpsReport(status)
    left = seconds
    while left > 1e-9:
        clock.advance(0.5)
        left -= 0.5
        sensor.feed_ups(mains_level(report))
        sensor.poll()


def test_mains_level_of_a_report() -> None:
    assert mains_level(UpsReport("OL CHRG")) is ON
    assert mains_level(UpsReport("OB DISCHRG")) is OFF
    assert mains_level(UpsReport("OB LB")) is OFF
    assert mains_level(UpsReport("BYPASS")) is UNKNOWN
    assert mains_level(None) is UNKNOWN
    assert combine("ups", ON, OFF) is OFF
    assert combine("any", ON, UNKNOWN) is ON


def test_ups_source_announces_through_the_window(tmp_path: Path, factory: MockFactory) -> None:
    clock = ManualClock()
    events: list[MainsEvent] = []
    sensor = sensor_for(tmp_path, clock, events, factory, "ups")
    with sensor:
        assert not sensor.uses_gpio
        assert not sensor.uses_meter
        ups_for(sensor, clock, "OL", 3)
        assert sensor.state is ON
        cut = clock.monotonic() + 0.5
        ups_for(sensor, clock, "OB DISCHRG", 0.5)
        assert sensor.state is ON  # not yet confirmed
        ups_for(sensor, clock, "OB DISCHRG", 1)
        assert sensor.state is OFF
        assert events[-1].source == "ups"
        assert events[-1].began_monotonic == cut
        ups_for(sensor, clock, "OL", 1)  # shorter than confirm_on
        ups_for(sensor, clock, "OB", 1)
        assert sensor.state is OFF
        assert sensor.flap_count == 1


def test_an_unreachable_upsd_is_never_an_outage(tmp_path: Path, factory: MockFactory) -> None:
    clock = ManualClock()
    events: list[MainsEvent] = []
    sensor = sensor_for(tmp_path, clock, events, factory, "ups")
    with sensor:
        ups_for(sensor, clock, "OL", 3)
        ups_for(sensor, clock, None, 60)
        assert sensor.state is ON
        assert [e.state for e in events] == [ON]


def test_any_with_the_pin(tmp_path: Path, factory: MockFactory) -> None:
    clock = ManualClock()
    events: list[MainsEvent] = []
    sensor = sensor_for(tmp_path, clock, events, factory, "any")
    pin = factory.pin(4)
    with sensor:
        pin.drive_high()
        ups_for(sensor, clock, "OL", 3)
        assert sensor.state is ON
        ups_for(sensor, clock, "OB", 1)  # the UPS says off, the pin on
        assert sensor.state is OFF
        assert events[-1].source == "ups"
        ups_for(sensor, clock, None, 3)  # upsd gone: the pin alone, and it says on
        assert sensor.state is ON


def test_all_with_the_pin(tmp_path: Path, factory: MockFactory) -> None:
    clock = ManualClock()
    events: list[MainsEvent] = []
    sensor = sensor_for(tmp_path, clock, events, factory, "all")
    pin = factory.pin(4)
    with sensor:
        pin.drive_high()
        ups_for(sensor, clock, "OL", 3)
        ups_for(sensor, clock, "OB", 3)
        assert sensor.state is ON  # the pin disagrees
        pin.drive_low()
        ups_for(sensor, clock, "OB", 1)
        assert sensor.state is OFF


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("mains: {source: ups}\n", "needs a UPS"),
        ("mains: {source: any}\n", "neither"),
        (
            "mains: {source: all}\nups: {name: u}\nmeter: {type: sdm120, port: /dev/x}\n",
            "combines the pin with one input",
        ),
    ],
)
def test_source_ups_needs_a_ups(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_bridge_config("device: {id: a}\n" + text)


def test_source_ups_and_combinations_are_valid_with_a_ups() -> None:
    for source in ("ups", "any", "all"):
        config = parse_bridge_config(f"mains: {{source: {source}}}\nups: {{name: u}}\n")
        assert config.ups.enabled
