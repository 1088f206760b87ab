"""The sampling loop against simulators on real ptys: flow, unplug/replug, silence, energy."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable

import pytest

from bridge.clock import SystemClock
from bridge.config.bridge import MeterConfig, parse_bridge_config
from bridge.meters import create_driver
from bridge.meters.base import MeterDriver
from bridge.meters.simulator import SimulatedMeter
from bridge.meters.source import MeterSource, create_meter_source
from bridge.model import Reading

pytestmark = pytest.mark.realtime  # pseudo-terminals and serial timeouts: see pyproject.toml

LOGGER = "bridge.meters.source"


class Recorder:
    """Collects what a :class:`MeterSource` reports, for waiting on in tests."""

    def __init__(self) -> None:
        self.readings: queue.Queue[Reading] = queue.Queue()
        self.all: list[Reading] = []
        self.links: list[tuple[bool, str | None]] = []
        self._lock = threading.Lock()

    def on_reading(self, reading: Reading) -> None:
        with self._lock:
            self.all.append(reading)
        self.readings.put(reading)

    def on_link(self, up: bool, error: str | None) -> None:
        self.links.append((up, error))

    def next(self, timeout: float = 2.0, after: float | None = None) -> Reading:
        """The next reading (taken after monotonic ``after``), within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no reading within {timeout} s")
            try:
                reading = self.readings.get(timeout=remaining)
            except queue.Empty:
                continue
            if after is None or reading.monotonic > after:
                return reading

    def drain(self) -> None:
        while not self.readings.empty():
            self.readings.get_nowait()


def source_for(
    sim: SimulatedMeter, recorder: Recorder, *, channels: tuple[int, ...] = (1,)
) -> MeterSource:
    config = MeterConfig(
        type=sim.protocol, port=sim.port, channels=channels, interval=0.05, timeout=0.2
    )

    def factory() -> MeterDriver:
        return create_driver(sim.protocol, sim.port, timeout=config.timeout)

    return MeterSource(
        config, factory, SystemClock(), on_reading=recorder.on_reading, on_link=recorder.on_link
    )


def wait_for(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_readings_flow_and_the_link_comes_up(simulator: Callable[..., SimulatedMeter]) -> None:
    sim = simulator("pzem004t", load_w=800)
    recorder = Recorder()
    source = source_for(sim, recorder)
    source.start()
    try:
        first = recorder.next()
        recorder.next()
    finally:
        source.stop()
    assert first.meter == "pzem004t"
    assert first.power_w == pytest.approx(800, rel=0.1)
    assert recorder.links == [(True, None)]
    assert source.last_reading_monotonic is not None
    assert source.read_errors == 0
    assert source.readings >= 2


@pytest.mark.parametrize("protocol", ["pzem004t", "mcp39f511n"])
def test_unplug_replug_resumes_within_2_s_and_logs_the_outage_once(
    simulator: Callable[..., SimulatedMeter], caplog: pytest.LogCaptureFixture, protocol: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge.meters")
    sim = simulator(protocol)
    recorder = Recorder()
    source = source_for(sim, recorder)
    source.start()
    try:
        recorder.next()
        sim.unplug()
        wait_for(lambda: not source.link_up)
        time.sleep(1.5)  # many reopen attempts while the port is gone
        assert source.port_lost  # an unplugged adapter, not a silent meter
        recorder.drain()
        sim.replug()
        back = time.monotonic()
        reading = recorder.next(timeout=2.0, after=back)
        resumed_after = reading.monotonic - back
    finally:
        source.stop()
    assert resumed_after < 2.0
    warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]
    assert len(warnings) == 2, [r.getMessage() for r in warnings]
    assert "lost the" in warnings[0].getMessage() or "not found" in warnings[0].getMessage()
    assert "recovered after" in warnings[1].getMessage()
    failures = int(warnings[1].getMessage().split("recovered after ")[1].split()[0])
    assert failures >= 4  # retried several times, logged once
    assert [up for up, _ in recorder.links] == [True, False, True]
    assert source.reconnects == 1
    assert not source.port_lost


def test_a_silent_pzem_takes_the_link_down_and_back_up(
    simulator: Callable[..., SimulatedMeter], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.meters")
    sim = simulator("pzem004t")
    recorder = Recorder()
    source = source_for(sim, recorder)
    source.start()
    try:
        recorder.next()
        sim.set_mains(False)
        wait_for(lambda: not source.link_up, timeout=3.0)
        assert not source.port_lost  # the port is there: the meter itself fell silent
        errors_while_down = source.read_errors
        sim.set_mains(True)
        wait_for(lambda: source.link_up, timeout=3.0)
    finally:
        source.stop()
    assert errors_while_down >= source.policy.down_after
    up, cause = recorder.links[1]
    assert not up
    assert cause is not None
    assert "no answer" in cause
    assert recorder.links[2] == (True, None)
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert sum("no answer" in m for m in messages) == 1


def test_the_pzem_energy_jump_after_an_outage_is_never_published(
    simulator: Callable[..., SimulatedMeter],
) -> None:
    sim = simulator("pzem004t", load_w=20_000, noise=0.0)  # 20 kW: 5.6 Wh per second
    recorder = Recorder()
    source = source_for(sim, recorder)
    source.start()
    try:
        recorder.next()
        time.sleep(0.5)
        sim.set_mains(False)
        wait_for(lambda: not source.link_up)
        sim.jump_energy(+50_000)
        sim.set_mains(True)
        wait_for(lambda: source.link_up)
        time.sleep(0.8)
    finally:
        source.stop()
    totals = [r.energy_wh for r in recorder.all if r.energy_wh is not None]
    assert totals == sorted(totals)
    assert totals[-1] < 1000  # the 50 kWh jump never reached a consumer
    assert any(r.energy_wh is None for r in recorder.all)  # withheld while unconfirmed
    assert source.energy_rejected >= 1


def test_a_failing_consumer_does_not_stop_sampling(
    simulator: Callable[..., SimulatedMeter], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.meters")
    sim = simulator("pzem004t")
    calls: list[Reading] = []

    def broken(reading: Reading) -> None:
        calls.append(reading)
        raise RuntimeError("consumer bug")

    config = MeterConfig(type="pzem004t", port=sim.port, interval=0.05, timeout=0.2)
    source = MeterSource(
        config, lambda: create_driver("pzem004t", sim.port), SystemClock(), on_reading=broken
    )
    source.start()
    try:
        wait_for(lambda: len(calls) >= 3)
    finally:
        source.stop()
    assert source.link_up
    failures = [r for r in caplog.records if "consumer failed" in r.getMessage()]
    assert len(failures) == 1
    assert "consumer bug" in failures[0].getMessage()


def test_both_mcp_channels_are_read(simulator: Callable[..., SimulatedMeter]) -> None:
    sim = simulator("mcp39f511n", channel_loads=[1000.0, 100.0], noise=0.0)
    recorder = Recorder()
    source = source_for(sim, recorder, channels=(1, 2))
    source.start()
    try:
        readings = [recorder.next() for _ in range(4)]
    finally:
        source.stop()
    by_channel = {r.channel: r.power_w for r in readings}
    assert by_channel == {1: 1000.0, 2: 100.0}


def test_channels_the_meter_lacks_are_skipped_with_a_warning(
    simulator: Callable[..., SimulatedMeter], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.meters")
    sim = simulator("pzem004t")
    recorder = Recorder()
    source = source_for(sim, recorder, channels=(2,))
    source.start()
    try:
        assert recorder.next().channel == 1
    finally:
        source.stop()
    assert any("meter.channels [2]" in r.getMessage() for r in caplog.records)


def test_stop_is_prompt_while_the_meter_is_away(tmp_path: os.PathLike[str]) -> None:
    missing = os.path.join(tmp_path, "nothing-here")
    config = MeterConfig(type="pzem004t", port=missing, interval=0.05, timeout=0.2)
    recorder = Recorder()
    source = MeterSource(
        config,
        lambda: create_driver("pzem004t", missing),
        SystemClock(),
        on_link=recorder.on_link,
    )
    source.start()
    wait_for(lambda: bool(recorder.links))
    started = time.monotonic()
    source.stop()
    assert time.monotonic() - started < 1.5
    assert recorder.links[0][0] is False
    assert "not found" in (recorder.links[0][1] or "")


def test_create_meter_source_none() -> None:
    config = parse_bridge_config("meter: {type: none}\n")
    assert create_meter_source(config, clock=SystemClock()) is None


def test_create_meter_source_simulated_runs_the_real_driver() -> None:
    config = parse_bridge_config(
        "meter: {type: simulated, interval: 0.05, timeout: 0.3}\n"
        "simulation: {enabled: true, meter_protocol: mcp39f511n, load_w: 500, noise: 0}\n"
    )
    recorder = Recorder()
    source = create_meter_source(
        config, clock=SystemClock(), on_reading=recorder.on_reading, on_link=recorder.on_link
    )
    assert source is not None
    assert source.simulator is not None
    source.start()
    try:
        reading = recorder.next()
        port = source.simulator.port
        assert os.path.islink(port)
    finally:
        source.stop()
    assert reading.meter == "mcp39f511n"
    assert reading.power_w == 500.0
    assert not os.path.exists(port)  # the simulator stopped with the source
