"""LED fault codes: the 3- and 4-blink patterns and their timing, on sysfs files and mock pins."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from bridge.clock import ManualClock, SystemClock
from bridge.config.bridge import LedsConfig
from bridge.leds import (
    ACT,
    BROKER_CODE,
    METER_CODE,
    PWR,
    BlinkCode,
    FaultLeds,
    GpioLeds,
    SysfsLeds,
    level_at,
    parse_trigger,
)

PI_PWR_TRIGGER = (
    "none rc-feedback kbd-scrolllock kbd-numlock kbd-capslock kbd-kanalock kbd-shiftlock "
    "kbd-altgrlock kbd-ctrllock kbd-altlock timer oneshot heartbeat backlight gpio cpu cpu0 "
    "cpu1 cpu2 cpu3 [default-on] input panic actpwr mmc1 mmc0 rfkill-any rfkill-none\n"
)
PI_ACT_TRIGGER = (
    "none rc-feedback kbd-scrolllock kbd-numlock timer oneshot heartbeat backlight gpio cpu "
    "cpu0 default-on input panic actpwr mmc1 [mmc0] rfkill-any rfkill-none\n"
)


class Recording:
    """A backend that records (time, role, level) on the injected clock."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.writes: list[tuple[float, str, bool]] = []
        self.held: set[str] = set()
        self.released: list[str] = []

    def acquire(self, role: str) -> bool:
        self.held.add(role)
        return True

    def set(self, role: str, on: bool) -> None:
        assert role in self.held
        self.writes.append((round(self.clock.monotonic() - 1000.0, 6), role, on))

    def release(self, role: str) -> None:
        self.held.discard(role)
        self.released.append(role)

    def close(self) -> None:
        pass


def run(leds: FaultLeds, clock: ManualClock, seconds: float) -> None:
    """Drive tick() as the worker would, jumping the clock to each change."""
    end = clock.monotonic() + seconds
    while True:
        delay = leds.tick()
        if delay is None or clock.monotonic() + delay > end + 1e-9:
            clock.advance(max(0.0, end - clock.monotonic()))
            leds.tick()
            return
        clock.advance(delay)


def edges(writes: list[tuple[float, str, bool]], role: str) -> list[tuple[float, bool]]:
    return [(t, v) for t, r, v in writes if r == role]


def expected(code: BlinkCode, start: float, cycles: int) -> list[tuple[float, bool]]:
    out: list[tuple[float, bool]] = []
    for c in range(cycles):
        base = start + c * code.period
        for i in range(code.count):
            out.append((round(base + i * (code.on + code.off), 6), True))
            out.append((round(base + i * (code.on + code.off) + code.on, 6), False))
    return out


def test_level_at_three_blinks() -> None:
    code = BlinkCode(3, on=0.25, off=0.25, pause=2.0)
    assert code.period == 3.5
    assert level_at(code, 0) == (True, 0.25)
    assert level_at(code, 0.3) == (False, pytest.approx(0.2))
    assert level_at(code, 1.1) == (True, pytest.approx(0.15))
    assert level_at(code, 1.25) == (False, pytest.approx(2.25))  # last blink off + pause
    assert level_at(code, 3.5) == (True, 0.25)  # next cycle


def test_broker_down_blinks_red_three_times_periodically() -> None:
    clock = ManualClock()
    backend = Recording(clock)
    leds = FaultLeds(LedsConfig(), backend=backend, clock=clock)
    leds.update(broker_ok=False, meter_ok=True)
    run(leds, clock, 3 * BROKER_CODE.period - 0.01)
    assert edges(backend.writes, PWR) == expected(BROKER_CODE, 0.0, 3)
    assert edges(backend.writes, ACT) == []
    ons = [t for t, v in edges(backend.writes, PWR) if v]
    assert ons[:4] == [0.0, 0.5, 1.0, 3.5]  # three blinks, then a 2.25 s dark gap
    assert leds.blinking == {PWR: True, ACT: False}


def test_meter_down_blinks_green_four_times() -> None:
    clock = ManualClock()
    backend = Recording(clock)
    leds = FaultLeds(LedsConfig(), backend=backend, clock=clock)
    leds.update(broker_ok=True, meter_ok=False)
    run(leds, clock, 2 * METER_CODE.period - 0.01)
    assert edges(backend.writes, ACT) == expected(METER_CODE, 0.0, 2)
    assert METER_CODE.period == 4.0
    assert edges(backend.writes, PWR) == []


def test_both_faults_blink_independently_and_recover() -> None:
    clock = ManualClock()
    backend = Recording(clock)
    leds = FaultLeds(LedsConfig(), backend=backend, clock=clock)
    leds.update(broker_ok=False, meter_ok=True)
    run(leds, clock, 1.1)
    leds.update(broker_ok=False, meter_ok=False)  # the meter fails 1.1 s later
    run(leds, clock, 7.0)
    pwr = edges(backend.writes, PWR)
    assert pwr == expected(BROKER_CODE, 0.0, 3)[: len(pwr)]
    assert len(pwr) >= 12
    act = edges(backend.writes, ACT)
    assert act == [(round(t + 1.1, 6), v) for t, v in expected(METER_CODE, 0.0, 2)][: len(act)]
    assert len(act) >= 8
    leds.update(broker_ok=True, meter_ok=True)
    assert backend.released == [PWR, ACT]
    assert leds.tick() is None
    assert leds.blinking == {PWR: False, ACT: False}


def test_disabled_does_nothing() -> None:
    clock = ManualClock()
    backend = Recording(clock)
    leds = FaultLeds(LedsConfig(enabled=False), backend=backend, clock=clock)
    leds.start()
    leds.update(broker_ok=False, meter_ok=False)
    leds.close()
    assert backend.writes == []


# --------------------------------------------------------------------------- sysfs


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    root = tmp_path / "leds"
    for name, trigger, brightness in (("PWR", PI_PWR_TRIGGER, "255"), ("ACT", PI_ACT_TRIGGER, "0")):
        (root / name).mkdir(parents=True)
        (root / name / "trigger").write_text(trigger)
        (root / name / "brightness").write_text(brightness + "\n")
        (root / name / "max_brightness").write_text("255\n")
    return root


def test_parse_trigger() -> None:
    assert parse_trigger(PI_PWR_TRIGGER) == "default-on"
    assert parse_trigger(PI_ACT_TRIGGER) == "mmc0"
    assert parse_trigger("none") == "none"  # what a plain file reads back after a write
    assert parse_trigger("") is None


class SysfsRecorder(SysfsLeds):
    """The real sysfs backend, also noting each brightness write with the time."""

    def __init__(self, root: Path, clock: ManualClock) -> None:
        super().__init__({PWR: "PWR", ACT: "ACT"}, root)
        self.clock = clock
        self.log: list[tuple[float, str, str]] = []

    def set(self, role: str, on: bool) -> None:
        super().set(role, on)
        path = self.root / ("PWR" if role == PWR else "ACT") / "brightness"
        self.log.append((round(self.clock.monotonic() - 1000, 6), role, path.read_text()))


def test_sysfs_blinks_and_restores_the_trigger(sysfs: Path) -> None:
    clock = ManualClock()
    backend = SysfsRecorder(sysfs, clock)
    leds = FaultLeds(LedsConfig(), backend=backend, clock=clock)
    leds.update(broker_ok=False, meter_ok=True)
    assert (sysfs / "PWR" / "trigger").read_text() == "none"
    run(leds, clock, BROKER_CODE.period - 0.01)
    assert backend.log == [
        (0.0, PWR, "255"),
        (0.25, PWR, "0"),
        (0.5, PWR, "255"),
        (0.75, PWR, "0"),
        (1.0, PWR, "255"),
        (1.25, PWR, "0"),
    ]
    leds.update(broker_ok=True, meter_ok=True)
    assert (sysfs / "PWR" / "trigger").read_text() == "default-on"
    assert (sysfs / "ACT" / "trigger").read_text() == PI_ACT_TRIGGER  # never touched


def test_sysfs_old_names_and_none_trigger(tmp_path: Path) -> None:
    root = tmp_path / "leds"
    (root / "led0").mkdir(parents=True)
    (root / "led0" / "trigger").write_text("[none] timer heartbeat mmc0\n")
    (root / "led0" / "brightness").write_text("1\n")
    backend = SysfsLeds({PWR: "PWR", ACT: "ACT"}, root)
    assert backend.acquire(ACT)  # found as led0
    assert not backend.acquire(PWR)  # no led1 here
    backend.set(ACT, False)
    assert (root / "led0" / "brightness").read_text() == "0"
    backend.release(ACT)
    # Trigger was "none": the previous brightness is put back instead.
    assert (root / "led0" / "brightness").read_text() == "1"


def test_missing_or_read_only_leds_never_raise(tmp_path: Path, sysfs: Path) -> None:
    clock = ManualClock()
    leds = FaultLeds(
        LedsConfig(), backend=SysfsLeds({PWR: "PWR", ACT: "ACT"}, tmp_path / "none"), clock=clock
    )
    leds.update(broker_ok=False, meter_ok=False)
    assert leds.tick() is None  # nothing to blink on this machine
    leds.close()

    # An LED the service may not write (no udev rule): reported, not raised.
    (sysfs / "PWR" / "trigger").unlink()
    (sysfs / "PWR" / "trigger").mkdir()  # unwritable even for root
    backend = SysfsLeds({PWR: "PWR", ACT: "ACT"}, sysfs)
    leds = FaultLeds(LedsConfig(), backend=backend, clock=clock)
    leds.update(broker_ok=False, meter_ok=False)
    assert leds.tick() is not None  # ACT still blinks
    assert (sysfs / "ACT" / "trigger").read_text() == "none"
    leds.close()
    assert (sysfs / "ACT" / "trigger").read_text() == "mmc0"


# --------------------------------------------------------------------------- gpio


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.close()


def test_external_leds_on_mock_pins(factory: MockFactory) -> None:
    clock = ManualClock()
    config = LedsConfig(backend="gpio", pwr_pin=17, act_pin=27)
    leds = FaultLeds(config, clock=clock, pin_factory=factory)
    red, green = factory.pin(17), factory.pin(27)
    seen: list[tuple[float, bool, bool]] = []
    leds.update(broker_ok=True, meter_ok=False)
    end = clock.monotonic() + METER_CODE.period
    while clock.monotonic() < end:
        delay = leds.tick()
        seen.append((round(clock.monotonic() - 1000, 6), red.state, green.state))
        assert delay is not None
        clock.advance(delay)
    assert [(t, g) for t, _r, g in seen] == expected(METER_CODE, 0.0, 1)
    assert not any(r for _t, r, _g in seen)
    leds.update(broker_ok=True, meter_ok=True)
    assert green.state is False
    leds.close()


def test_gpio_backend_without_pin_is_unavailable(factory: MockFactory) -> None:
    backend = GpioLeds({PWR: None, ACT: 5}, pin_factory=factory)
    assert backend.acquire(PWR) is False
    assert backend.acquire(ACT) is True
    backend.set(ACT, True)
    assert factory.pin(5).state is True
    backend.close()
    assert factory.pin(5).state is False


# --------------------------------------------------------------------------- the thread


def test_worker_with_injected_sleep() -> None:
    """The real worker thread, on a fake clock whose sleep only moves time."""
    clock = ManualClock()
    backend = Recording(clock)
    done = threading.Event()

    def sleep(seconds: float) -> None:
        clock.advance(seconds)
        if len(backend.writes) >= 12:
            done.set()
            time.sleep(0.01)

    leds = FaultLeds(LedsConfig(), backend=backend, clock=clock, sleep=sleep)
    leds.update(broker_ok=False, meter_ok=True)
    leds.start()
    assert done.wait(5)
    leds.close()
    assert edges(backend.writes, PWR)[:12] == expected(BROKER_CODE, 0.0, 2)
    assert backend.released == [PWR]


@pytest.mark.realtime
def test_worker_in_real_time() -> None:
    code = BlinkCode(3, on=0.03, off=0.03, pause=0.1)
    stamps: list[tuple[float, bool]] = []

    class Stamps(Recording):
        def set(self, role: str, on: bool) -> None:
            stamps.append((time.monotonic(), on))

    leds = FaultLeds(
        LedsConfig(), backend=Stamps(ManualClock()), clock=SystemClock(), broker_code=code
    )
    with leds:
        start = time.monotonic()
        leds.update(broker_ok=False, meter_ok=True)
        time.sleep(code.period * 2 - 0.05)
    ons = [t - start for t, v in stamps if v]
    assert len(ons) == 6
    want = [0.0, 0.06, 0.12, 0.28, 0.34, 0.40]
    assert ons == pytest.approx(want, abs=0.03)
