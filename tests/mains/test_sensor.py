"""MainsSensor on gpiozero's MockFactory: blips, cuts, restarts, polarity, simulation."""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory, MockPin

from bridge.clock import ManualClock, SystemClock
from bridge.config.bridge import MainsConfig
from bridge.db import connect, db_path
from bridge.errors import UsageError
from bridge.mains import Blip, Edge, MainsPinError, MainsSensor
from bridge.mains.store import OutageStore
from bridge.model import MainsEvent, MainsState

ON, OFF = MainsState.ON, MainsState.OFF


class Recorder:
    def __init__(self) -> None:
        self.events: list[MainsEvent] = []
        self.blips: list[Blip] = []
        self.edges: list[Edge] = []
        self.changed = threading.Condition()

    def event(self, e: MainsEvent) -> None:
        with self.changed:
            self.events.append(e)
            self.changed.notify_all()

    def wait_events(self, n: int, timeout: float = 5.0) -> list[MainsEvent]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.events) >= n, timeout), self.events
            return list(self.events)


def make_store(tmp_path: Path, clock: object = None, boot: str = "boot-1") -> OutageStore:
    return OutageStore(connect(db_path(tmp_path)), boot_id=boot, clock=clock)  # type: ignore[arg-type]


def make_sensor(
    tmp_path: Path,
    factory: MockFactory,
    clock: ManualClock | SystemClock,
    rec: Recorder,
    config: MainsConfig | None = None,
    **kwargs: object,
) -> MainsSensor:
    return MainsSensor(
        config or MainsConfig(),
        make_store(tmp_path, clock),
        on_event=rec.event,
        on_blip=rec.blips.append,
        on_edge=rec.edges.append,
        clock=clock,
        pin_factory=factory,
        **kwargs,  # type: ignore[arg-type]
    )


def settle(sensor: MainsSensor, clock: ManualClock, seconds: float) -> None:
    clock.advance(seconds)
    sensor.poll()


def powered(sensor: MainsSensor, pin: MockPin, clock: ManualClock) -> None:
    """Start with mains present and let the first 'on' be announced."""
    sensor.start()
    pin.drive_high()
    settle(sensor, clock, 2.0)
    assert sensor.state is ON


def test_fifty_blips_announce_nothing(tmp_path: Path, factory: MockFactory) -> None:
    clock = ManualClock()
    rec = Recorder()
    sensor = make_sensor(tmp_path, factory, clock, rec)
    pin = factory.pin(4)
    with sensor:
        powered(sensor, pin, clock)
        first = list(rec.events)
        rng = random.Random(50)
        for _ in range(50):
            settle(sensor, clock, rng.uniform(0.5, 5))
            pin.drive_low()
            settle(sensor, clock, rng.uniform(0.020, 0.400))
            pin.drive_high()
            settle(sensor, clock, 0.01)
        settle(sensor, clock, 5)
        assert rec.events == first  # only the initial 'on'
        assert sensor.flap_count == 50
        assert len(rec.blips) == 50
        assert all(0.020 <= b.duration_s <= 0.400 for b in rec.blips)
        assert sensor.state is ON


def test_three_second_cut_is_one_outage_and_one_restore(
    tmp_path: Path, factory: MockFactory
) -> None:
    clock = ManualClock()
    rec = Recorder()
    sensor = make_sensor(tmp_path, factory, clock, rec)
    pin = factory.pin(4)
    with sensor:
        powered(sensor, pin, clock)
        settle(sensor, clock, 60)
        cut_mono, cut_utc = clock.monotonic(), clock.utcnow()
        pin.drive_low()
        settle(sensor, clock, 0.4)
        assert sensor.state is ON  # still inside confirm_off
        settle(sensor, clock, 0.1)
        assert sensor.state is OFF
        settle(sensor, clock, 2.5)
        back_mono, back_utc = clock.monotonic(), clock.utcnow()
        pin.drive_high()
        settle(sensor, clock, 1.9)
        assert sensor.state is OFF  # still inside confirm_on
        settle(sensor, clock, 0.1)
        assert sensor.state is ON
    off, on = rec.events[1:]
    assert (off.state, off.began, off.began_monotonic) == (OFF, cut_utc, cut_mono)
    assert (on.state, on.began, on.began_monotonic) == (ON, back_utc, back_mono)
    assert [e.seq for e in rec.events] == [1, 2, 3]
    assert sensor.flap_count == 0
    history = make_store(tmp_path, clock).history()
    assert len(history) == 1
    assert history[0].started == cut_utc
    assert history[0].ended == back_utc
    assert history[0].duration_s == pytest.approx(3.0)


@pytest.mark.realtime
def test_real_timers_cut_and_blips(tmp_path: Path, factory: MockFactory) -> None:
    """The worker thread confirms on real time: short windows, a real cut, real blips."""
    rec = Recorder()
    config = MainsConfig(confirm_off=0.05, confirm_on=0.15, bounce_time=0.0)
    sensor = make_sensor(tmp_path, factory, SystemClock(), rec, config)
    pin = factory.pin(4)
    with sensor:
        pin.drive_high()
        rec.wait_events(1)
        for _ in range(5):
            pin.drive_low()
            time.sleep(0.01)
            pin.drive_high()
            time.sleep(0.02)
        t_cut = time.monotonic()
        pin.drive_low()
        events = rec.wait_events(2)
        time.sleep(0.2)
        t_back = time.monotonic()
        pin.drive_high()
        events = rec.wait_events(3)
        announced_at = time.monotonic()
    assert [e.state for e in events] == [ON, OFF, ON]
    assert events[1].began_monotonic == pytest.approx(t_cut, abs=0.02)
    assert events[2].began_monotonic == pytest.approx(t_back, abs=0.02)
    # The restore waited for its window, from the first edge.
    assert announced_at - t_back >= 0.15
    assert sensor.flap_count == 5
    assert len(rec.events) == 3


def test_restart_during_outage_keeps_start_and_sequence(tmp_path: Path) -> None:
    clock = ManualClock()
    rec = Recorder()
    first_factory = MockFactory()
    sensor = make_sensor(tmp_path, first_factory, clock, rec)
    pin = first_factory.pin(4)
    with sensor:
        powered(sensor, pin, clock)
        cut_utc = clock.utcnow()
        pin.drive_low()
        settle(sensor, clock, 1)
        assert sensor.state is OFF
    first_factory.close()
    outage_seq = rec.events[-1].seq

    # The bridge restarts a minute later; the mains is still off.
    clock.advance(60)
    rec2 = Recorder()
    factory2 = MockFactory()
    sensor2 = make_sensor(tmp_path, factory2, clock, rec2)
    assert sensor2.state is OFF
    assert sensor2.current is not None
    assert sensor2.current.began == cut_utc
    assert sensor2.current.seq == outage_seq
    pin2 = factory2.pin(4)  # pulled down: off, as the mains is
    with sensor2:
        restarted = clock.utcnow()
        settle(sensor2, clock, 10)
        # The stored state is history: the pin is confirmed afresh and announced as what
        # this run has seen (off since its start), with a sequence number of its own.
        assert [(e.state, e.seq, e.began) for e in rec2.events] == [
            (OFF, outage_seq + 1, restarted)
        ]
        back = clock.utcnow()
        pin2.drive_high()
        settle(sensor2, clock, 2)
    factory2.close()
    assert [e.state for e in rec2.events] == [OFF, ON]
    assert rec2.events[1].seq == outage_seq + 2
    done = make_store(tmp_path, clock).last_finished()
    assert done is not None
    assert done.started == cut_utc
    assert done.ended == back
    assert done.duration_s == pytest.approx(71.0)


def test_restart_finds_power_back_and_closes_the_outage(tmp_path: Path) -> None:
    clock = ManualClock()
    store = make_store(tmp_path, clock)
    store.record(MainsEvent(OFF, clock.utcnow(), clock.monotonic(), store.next_seq()))
    clock.advance(30)
    rec = Recorder()
    factory = MockFactory()
    sensor = make_sensor(tmp_path, factory, clock, rec)
    pin = factory.pin(4)
    pin.drive_high()
    with sensor:
        pin.drive_high()  # the device's pull-down reset it; the mains is on
        settle(sensor, clock, 2)
    factory.close()
    assert [(e.state, e.seq) for e in rec.events] == [(ON, 2)]
    assert make_store(tmp_path, clock).current() is None


@pytest.mark.parametrize(
    ("pull", "active_high", "on_level"),
    [("down", True, True), ("up", False, False), ("up", True, True), ("down", False, False)],
)
def test_polarity(
    tmp_path: Path, factory: MockFactory, pull: str, active_high: bool, on_level: bool
) -> None:
    clock = ManualClock()
    rec = Recorder()
    config = MainsConfig(pull=pull, active_high=active_high)
    sensor = make_sensor(tmp_path, factory, clock, rec, config)
    pin = factory.pin(4)
    with sensor:
        (pin.drive_high if on_level else pin.drive_low)()
        settle(sensor, clock, 2)
        assert sensor.state is ON
        assert sensor.pin_level is ON
        (pin.drive_low if on_level else pin.drive_high)()
        settle(sensor, clock, 0.5)
        assert sensor.state is OFF


def test_floating_pin_uses_active_high(tmp_path: Path, factory: MockFactory) -> None:
    clock = ManualClock()
    rec = Recorder()
    config = MainsConfig(pull="none", active_high=False)
    sensor = make_sensor(tmp_path, factory, clock, rec, config)
    pin = factory.pin(4)
    with sensor:
        pin.drive_low()
        settle(sensor, clock, 2)
        assert sensor.state is ON


def test_simulation_drives_the_mock_pin(tmp_path: Path) -> None:
    clock = ManualClock()
    rec = Recorder()
    sensor = MainsSensor(
        MainsConfig(), make_store(tmp_path, clock), on_event=rec.event, clock=clock, simulation=True
    )
    with sensor:
        settle(sensor, clock, 2)
        assert sensor.state is ON  # a simulated bridge starts powered
        sensor.simulate("off")
        settle(sensor, clock, 0.5)
        assert sensor.state is OFF
        sensor.simulate(MainsState.ON)
        settle(sensor, clock, 2)
        assert sensor.state is ON
        with pytest.raises(UsageError, match="'on' or 'off'"):
            sensor.simulate("sideways")
        with pytest.raises(UsageError, match="'on' or 'off'"):
            sensor.simulate(MainsState.UNKNOWN)
    assert [e.source for e in rec.events] == ["simulation"] * 3


def test_simulate_is_refused_without_simulation(
    tmp_path: Path, factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    rec = Recorder()
    sensor = make_sensor(tmp_path, factory, clock, rec)
    pin = factory.pin(4)
    with sensor:
        powered(sensor, pin, clock)
        with caplog.at_level(logging.WARNING, logger="bridge.mains"), pytest.raises(UsageError):
            sensor.simulate(OFF)
        settle(sensor, clock, 5)
        assert sensor.state is ON
        assert pin.state is True
    assert "refused" in caplog.text


def test_handler_failure_does_not_stop_sensing(tmp_path: Path, factory: MockFactory) -> None:
    clock = ManualClock()
    seen: list[MainsEvent] = []

    def broken(event: MainsEvent) -> None:
        seen.append(event)
        raise RuntimeError("subscriber bug")

    sensor = MainsSensor(
        MainsConfig(),
        make_store(tmp_path, clock),
        on_event=broken,
        clock=clock,
        pin_factory=factory,
    )
    pin = factory.pin(4)
    with sensor:
        pin.drive_high()
        settle(sensor, clock, 2)
        pin.drive_low()
        settle(sensor, clock, 1)
    assert [e.state for e in seen] == [ON, OFF]
    assert sensor.state is OFF


def test_database_failure_keeps_announcing(tmp_path: Path, factory: MockFactory) -> None:
    clock = ManualClock()
    rec = Recorder()
    store = make_store(tmp_path, clock)
    sensor = MainsSensor(MainsConfig(), store, on_event=rec.event, clock=clock, pin_factory=factory)
    pin = factory.pin(4)
    with sensor:
        powered(sensor, pin, clock)
        store._conn.close()  # the disk went away
        pin.drive_low()
        settle(sensor, clock, 1)
    assert [(e.state, e.seq) for e in rec.events] == [(ON, 1), (OFF, 2)]


def test_edges_are_reported_in_order(tmp_path: Path, factory: MockFactory) -> None:
    clock = ManualClock()
    rec = Recorder()
    sensor = make_sensor(tmp_path, factory, clock, rec)
    pin = factory.pin(4)
    with sensor:
        pin.drive_high()
        clock.advance(0.1)
        pin.drive_low()
        clock.advance(0.1)
        pin.drive_high()
        sensor.poll()
    assert [e.state for e in rec.edges] == [OFF, ON, OFF, ON]  # initial level first
    assert [round(e.monotonic - rec.edges[0].monotonic, 3) for e in rec.edges] == [0, 0, 0.1, 0.2]


def test_pin_that_cannot_open_is_a_clear_error(tmp_path: Path, factory: MockFactory) -> None:
    clock = ManualClock()
    config = replace(MainsConfig(), pin=4)
    holder = MainsSensor(
        config,
        make_store(tmp_path, clock),
        on_event=lambda _e: None,
        clock=clock,
        pin_factory=factory,
    )
    with holder:
        second = MainsSensor(
            config,
            make_store(tmp_path, clock),
            on_event=lambda _e: None,
            clock=clock,
            pin_factory=factory,
        )
        with pytest.raises(MainsPinError, match="GPIO4"):
            second.start()


def test_meter_only_source_opens_no_pin(tmp_path: Path, factory: MockFactory) -> None:
    clock = ManualClock()
    sensor = MainsSensor(
        MainsConfig(source="meter"),
        make_store(tmp_path, clock),
        on_event=lambda _e: None,
        clock=clock,
        pin_factory=factory,
    )
    with sensor:
        assert sensor.pin_level is MainsState.UNKNOWN
        assert not factory.pins


def test_a_reserved_number_for_unknown_is_above_every_other_even_without_a_database(
    tmp_path: Path, factory: MockFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bridge's `unknown` at a start takes a number of its own, never shared."""
    import sqlite3

    clock = ManualClock()
    rec = Recorder()
    sensor = make_sensor(tmp_path, factory, clock, rec)
    pin = factory.pin(4)
    powered(sensor, pin, clock)
    first = rec.events[-1].seq
    assert sensor.reserve_seq() == first + 1

    def broken() -> int:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(sensor._store, "next_seq", broken)
    assert sensor.reserve_seq() == first + 2  # kept in memory
    pin.drive_low()
    settle(sensor, clock, 2)
    sensor.close()
    assert rec.events[-1].seq == first + 3
