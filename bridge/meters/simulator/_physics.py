"""The electrical side of a simulated meter: mains, loads, noise, energy counters.

Protocol responders ask it for a :class:`Sample` of a channel when a request
arrives; energy is integrated in real time from the *noise-free* load, so the
counters behave like a real meter's.  Thread-safe: tests and the demo change
mains and load from other threads while the simulator thread samples.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

LoadProfile = Callable[[float], float]
"""Seconds since the simulator started → watts on channel 1."""


@dataclass(frozen=True, slots=True)
class Sample:
    """What the meter measures at one instant, in SI units."""

    voltage_v: float
    current_a: float
    power_w: float
    apparent_power_va: float
    reactive_power_var: float
    power_factor: float
    frequency_hz: float


ZERO = Sample(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


class ElectricalModel:
    """Mains voltage and frequency, one load per channel, relative noise, energy counters.

    ``noise`` is the relative standard deviation of the power; the voltage gets a quarter
    of it and the frequency ``noise × 2.5`` Hz (0.05 Hz at the default 0.02).
    """

    def __init__(
        self,
        *,
        channels: int,
        voltage_v: float = 230.0,
        loads_w: Sequence[float] = (120.0,),
        power_factor: float = 0.95,
        frequency_hz: float = 50.0,
        noise: float = 0.02,
        load_profile: LoadProfile | None = None,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._rng = random.Random(seed)  # noqa: S311 - simulated measurement noise, not security
        self.voltage_v = voltage_v
        self.frequency_hz = frequency_hz
        self.power_factor = power_factor
        self.noise = noise
        self.load_profile = load_profile
        loads = list(loads_w) + [0.0] * channels
        self._loads = loads[:channels]
        self._energy_wh = [0.0] * channels
        self._mains_on = True
        self._started = clock()
        self._integrated_at = self._started

    @property
    def channels(self) -> int:
        return len(self._loads)

    @property
    def mains_on(self) -> bool:
        return self._mains_on

    def set_mains(self, on: bool) -> None:
        with self._lock:
            self._integrate()
            self._mains_on = on

    def set_load(self, watts: float, channel: int = 1) -> None:
        if watts < 0:
            raise ValueError("a load cannot be negative")
        with self._lock:
            self._integrate()
            self._loads[channel - 1] = watts

    def load_w(self, channel: int = 1) -> float:
        """The noise-free load of ``channel`` now (0 with mains off)."""
        with self._lock:
            return self._true_power(channel - 1, self._clock()) if self._mains_on else 0.0

    def energy_wh(self, channel: int = 1) -> float:
        """The energy counter of ``channel``, integrated up to now."""
        with self._lock:
            self._integrate()
            return self._energy_wh[channel - 1]

    def add_energy(self, delta_wh: float, channel: int = 1) -> None:
        """Move the counter (a glitch, a reset); it never goes below zero."""
        with self._lock:
            self._integrate()
            index = channel - 1
            self._energy_wh[index] = max(0.0, self._energy_wh[index] + delta_wh)

    def sample(self, channel: int = 1) -> Sample:
        """A noisy instantaneous measurement of ``channel``; all zero with mains off."""
        with self._lock:
            self._integrate()
            if not self._mains_on:
                return ZERO
            now = self._clock()
            gauss = self._rng.gauss
            volts = max(0.0, self.voltage_v * (1 + gauss(0, self.noise / 4)))
            hertz = max(0.0, self.frequency_hz + gauss(0, self.noise * 2.5))
            watts = max(0.0, self._true_power(channel - 1, now) * (1 + gauss(0, self.noise)))
        if watts <= 0 or volts <= 0:
            return Sample(volts, 0.0, 0.0, 0.0, 0.0, 0.0, hertz)
        pf = min(1.0, max(0.01, self.power_factor))
        apparent = watts / pf
        reactive = math.sqrt(max(0.0, apparent * apparent - watts * watts))
        return Sample(volts, apparent / volts, watts, apparent, reactive, pf, hertz)

    # -- internals (call with the lock held) ---------------------------------------------------

    def _true_power(self, index: int, now: float) -> float:
        if index == 0 and self.load_profile is not None:
            return max(0.0, float(self.load_profile(now - self._started)))
        return self._loads[index]

    def _integrate(self) -> None:
        now = self._clock()
        elapsed = now - self._integrated_at
        self._integrated_at = now
        if elapsed <= 0 or not self._mains_on:
            return
        for index in range(len(self._loads)):
            self._energy_wh[index] += self._true_power(index, now) * elapsed / 3600.0
