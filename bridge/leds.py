"""LED fault codes for field staff, blinked on the Pi's own LEDs or on external ones.

| LED | code | meaning |
|---|---|---|
| red ``PWR`` | 3 blinks, pause, repeat | the MQTT broker is unreachable |
| green ``ACT`` | 4 blinks, pause, repeat | the meter could not start or stopped answering |

Otherwise the LEDs are left to the operating system: when a fault clears, the
LED's previous trigger (``default-on``, ``mmc0``, …) and brightness are restored.

Two backends behind one seam (:class:`LedBackend`): :class:`SysfsLeds` writes
``/sys/class/leds/<name>/trigger`` and ``brightness`` (root path injectable; the
udev rule ``99-powerbridge-leds.rules`` lets the service group write them) and
:class:`GpioLeds` drives external LEDs with gpiozero.  The blink pattern is a
pure function of the time since the fault began (:func:`level_at`), and
:meth:`FaultLeds.tick` applies it for "now" on the injected clock, so tests
record every write without sleeping.  :class:`LinkStatus` decides which link fault
shows where (and the service manager's status line); the daemon only ticks it.
See ``docs/leds.md``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from bridge.clock import Clock, SystemClock
from bridge.config.bridge import LedsConfig
from bridge.parts import Worker

log = logging.getLogger(__name__)

PWR: Final = "pwr"
"""Role of the red LED: broker faults."""
ACT: Final = "act"
"""Role of the green LED: meter faults."""
ROLES: Final = (PWR, ACT)

SYSFS_ROOT: Final = Path("/sys/class/leds")
SYSFS_ALIASES: Final[dict[str, tuple[str, ...]]] = {"ACT": ("led0", "ACT"), "PWR": ("led1", "PWR")}
"""Older kernels call the Pi's green LED ``led0`` and the red one ``led1``; newer, ACT/PWR."""

IDLE_WAIT: Final = 60.0
"""Longest sleep of the worker when no LED is blinking (an update wakes it at once)."""


@dataclass(frozen=True, slots=True)
class BlinkCode:
    """``count`` blinks of ``on`` seconds separated by ``off``, then ``pause`` dark; repeat."""

    count: int
    on: float = 0.25
    off: float = 0.25
    pause: float = 2.0

    @property
    def period(self) -> float:
        return self.count * (self.on + self.off) + self.pause


BROKER_CODE: Final = BlinkCode(3)
METER_CODE: Final = BlinkCode(4)


def level_at(code: BlinkCode, elapsed: float) -> tuple[bool, float]:
    """The LED's level ``elapsed`` s after the code started, and the seconds it keeps it."""
    period = code.period
    pos = max(0.0, elapsed) % period
    slot = code.on + code.off
    index = int(pos // slot)
    if index < code.count:
        within = pos - index * slot
        if within < code.on:
            return True, code.on - within
        if index < code.count - 1:
            return False, slot - within
    return False, period - pos


# --------------------------------------------------------------------------- backends


class LedBackend(Protocol):
    """One seam for LED hardware; every method is safe to call on a machine without LEDs."""

    def acquire(self, role: str) -> bool:
        """Take the LED from the operating system; ``False`` if it cannot be driven here."""
        ...

    def set(self, role: str, on: bool) -> None:
        """Light or darken an acquired LED."""
        ...

    def release(self, role: str) -> None:
        """Give the LED back to the operating system as it was before :meth:`acquire`."""
        ...

    def close(self) -> None: ...


def parse_trigger(text: str) -> str | None:
    """The active trigger in a sysfs ``trigger`` file: ``none [mmc0] timer`` → ``mmc0``."""
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    words = text.split()
    return words[0] if len(words) == 1 else None


@dataclass
class _SysfsState:
    path: Path
    trigger: str | None
    brightness: str
    on_value: str


class SysfsLeds:
    """LEDs under ``/sys/class/leds`` (Raspberry Pi onboard ``ACT``/``PWR``)."""

    def __init__(self, names: dict[str, str], root: Path = SYSFS_ROOT) -> None:
        self.names = names
        self.root = root
        self._held: dict[str, _SysfsState] = {}

    def _find(self, role: str) -> Path | None:
        name = self.names.get(role)
        if not name:
            return None
        for candidate in (name, *SYSFS_ALIASES.get(name, ())):
            path = self.root / candidate
            if (path / "brightness").exists():
                return path
        return None

    def acquire(self, role: str) -> bool:
        if role in self._held:
            return True
        path = self._find(role)
        if path is None:
            log.warning(
                "LED %r not found under %s: its fault code is not shown",
                self.names.get(role),
                self.root,
            )
            return False
        try:
            trigger = parse_trigger((path / "trigger").read_text(encoding="ascii"))
            brightness = (path / "brightness").read_text(encoding="ascii").strip() or "0"
            try:
                on_value = (path / "max_brightness").read_text(encoding="ascii").strip() or "1"
            except OSError:
                on_value = "1"
            (path / "trigger").write_text("none", encoding="ascii")
        except OSError as exc:
            log.warning(
                "cannot drive LED %s (%s): install the udev rule 99-powerbridge-leds.rules"
                " (docs/leds.md)",
                path,
                exc.strerror or exc,
            )
            return False
        self._held[role] = _SysfsState(path, trigger, brightness, on_value)
        return True

    def set(self, role: str, on: bool) -> None:
        state = self._held.get(role)
        if state is None:
            return
        try:
            (state.path / "brightness").write_text(state.on_value if on else "0", encoding="ascii")
        except OSError as exc:
            log.debug("cannot write %s/brightness: %s", state.path, exc)

    def release(self, role: str) -> None:
        state = self._held.pop(role, None)
        if state is None:
            return
        try:
            if state.trigger and state.trigger != "none":
                (state.path / "trigger").write_text(state.trigger, encoding="ascii")
            else:
                (state.path / "brightness").write_text(state.brightness, encoding="ascii")
        except OSError as exc:
            log.warning("cannot give LED %s back to the system: %s", state.path, exc)

    def close(self) -> None:
        for role in list(self._held):
            self.release(role)


class GpioLeds:
    """External LEDs on GPIO pins (through a resistor to ground), driven by gpiozero."""

    def __init__(self, pins: dict[str, int | None], *, pin_factory: Any | None = None) -> None:
        self.pins = pins
        self._factory = pin_factory
        self._leds: dict[str, Any] = {}

    def acquire(self, role: str) -> bool:
        if role in self._leds:
            return True
        pin = self.pins.get(role)
        if pin is None:
            return False
        from gpiozero import LED, GPIOZeroError

        try:
            self._leds[role] = LED(pin, pin_factory=self._factory)
        except (GPIOZeroError, OSError, RuntimeError, ImportError) as exc:
            log.warning("cannot drive the LED on GPIO%d: %s", pin, exc)
            return False
        return True

    def set(self, role: str, on: bool) -> None:
        led = self._leds.get(role)
        if led is not None:
            led.value = 1 if on else 0

    def release(self, role: str) -> None:
        led = self._leds.pop(role, None)
        if led is not None:
            led.off()
            led.close()

    def close(self) -> None:
        for role in list(self._leds):
            self.release(role)


def backend_for(config: LedsConfig, *, pin_factory: Any | None = None) -> LedBackend:
    """The backend chosen by ``leds.backend``."""
    if config.backend == "gpio":
        return GpioLeds({PWR: config.pwr_pin, ACT: config.act_pin}, pin_factory=pin_factory)
    return SysfsLeds({PWR: config.pwr_led, ACT: config.act_led})


# --------------------------------------------------------------------------- fault codes


@dataclass
class _Fault:
    code: BlinkCode
    since: float


class FaultLeds(Worker):
    """Blink the fault codes that :meth:`update` reports; restore the LEDs when all is well."""

    thread_name = "fault-leds"

    def __init__(
        self,
        config: LedsConfig,
        *,
        backend: LedBackend | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], None] | None = None,
        pin_factory: Any | None = None,
        broker_code: BlinkCode = BROKER_CODE,
        meter_code: BlinkCode = METER_CODE,
    ) -> None:
        super().__init__()
        self.config = config
        self._backend = backend
        self._pin_factory = pin_factory
        self._clock: Clock = clock or SystemClock()
        self._sleep = sleep
        self._codes = {PWR: broker_code, ACT: meter_code}
        self._faults: dict[str, _Fault | None] = dict.fromkeys(ROLES)
        self._held: set[str] = set()
        self._unavailable: set[str] = set()
        self._level: dict[str, bool] = {}
        self._lock = threading.RLock()
        self._woken = threading.Event()

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    @property
    def blinking(self) -> dict[str, bool]:
        """Which LEDs currently show a fault code."""
        with self._lock:
            return {role: self._faults[role] is not None for role in ROLES}

    def _backend_or_default(self) -> LedBackend:
        if self._backend is None:
            self._backend = backend_for(self.config, pin_factory=self._pin_factory)
        return self._backend

    def start(self) -> None:
        """Start the blinking thread (nothing happens with ``leds.enabled: false``)."""
        if self.enabled:
            super().start()

    def _starting(self) -> None:
        self._backend_or_default()

    def _wake(self) -> None:
        self._woken.set()

    def _stopped(self) -> None:
        """Give every LED back to the system."""
        with self._lock:
            backend = self._backend
            if backend is None:
                return
            for role in list(self._held):
                backend.release(role)
            self._held.clear()
            self._level.clear()
            backend.close()

    def update(self, broker_ok: bool, meter_ok: bool) -> None:
        """Report the link states; a new fault starts its code at once, from its first blink."""
        if not self.enabled:
            return
        with self._lock:
            now = self._clock.monotonic()
            changed = False
            for role, ok in ((PWR, broker_ok), (ACT, meter_ok)):
                active = self._faults[role] is not None
                if ok and active:
                    self._faults[role] = None
                    changed = True
                elif not ok and not active:
                    self._faults[role] = _Fault(self._codes[role], now)
                    self._unavailable.discard(role)  # try the LED again for a new fault
                    changed = True
            if changed:
                self.tick()
        if changed:
            self._woken.set()

    def tick(self) -> float | None:
        """Apply every LED's level for now; return seconds until the next change (or None)."""
        with self._lock:
            backend = self._backend_or_default()
            now = self._clock.monotonic()
            next_change: float | None = None
            for role in ROLES:
                fault = self._faults[role]
                if fault is None:
                    if role in self._held:
                        backend.release(role)
                        self._held.discard(role)
                        self._level.pop(role, None)
                    continue
                if role in self._unavailable:
                    continue
                if role not in self._held:
                    if not backend.acquire(role):
                        self._unavailable.add(role)
                        continue
                    self._held.add(role)
                level, left = level_at(fault.code, now - fault.since)
                if self._level.get(role) is not level:
                    backend.set(role, level)
                    self._level[role] = level
                next_change = left if next_change is None else min(next_change, left)
            return next_change

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._woken.clear()  # before tick(): an update() from now on wakes the wait below
            try:
                delay = self.tick()
            except Exception:  # LEDs are cosmetic: never let them kill the bridge
                log.exception("LED fault codes stopped working")
                return
            wait = IDLE_WAIT if delay is None else max(0.001, delay)
            if self._sleep is not None:
                self._sleep(wait)
            else:
                self._woken.wait(wait)


# --------------------------------------------------------------------------- link status


@dataclass(eq=False)
class LinkStatus:
    """The links as field staff see them: LED fault codes and the service manager's status line.

    :meth:`tick` (every turn of the daemon's loop) reads the broker and meter links and,
    on a change only, updates the LEDs and the status line (``connected; meter ok``); a
    change seen while the broker is connected (it came back, or the meter link changed)
    calls ``on_broker_up``, so that the health report follows soon.
    Moved here from the daemon: which fault shows where is LED policy.
    """

    leds: FaultLeds
    broker_ok: Callable[[], bool]
    meter_ok: Callable[[], bool] | None
    """``None``: the bridge has no meter (nothing about it is shown)."""
    status: Callable[[str], object] | None = None
    on_broker_up: Callable[[], None] | None = None
    _shown: tuple[bool, bool] | None = field(default=None, init=False)

    def tick(self) -> None:
        """Show the links' state if it changed since the last call."""
        broker = self.broker_ok()
        meter = self.meter_ok is None or self.meter_ok()
        if (broker, meter) == self._shown:
            return
        self._shown = (broker, meter)
        self.leds.update(broker_ok=broker, meter_ok=meter)
        if self.status is not None:
            text = "connected" if broker else "broker unreachable"
            if self.meter_ok is not None:
                text += "; meter ok" if meter else "; meter silent"
            self.status(text)
        if broker and self.on_broker_up is not None:
            self.on_broker_up()
