"""The meter cross-check: what the power meter says about the mains, and how inputs combine.

``mains.source: gpio | meter | ups | any | all`` chooses the inputs (:func:`combine`); the
second input of ``any``/``all`` is the meter or a UPS (:mod:`bridge.ups.source`).  The
meter says *off* when a reading's voltage is below ``meter_voltage_threshold``
(:func:`meter_level`) or when no reading has arrived for ``meter_silence`` (a PZEM is
powered by the mains it measures and dies with it), dated from its last sign of life.
A serial port that disappeared says nothing about the mains: the meter is *unknown*
then, never *off*.  :class:`MeterCrossCheck` holds the meter's side; the sensor calls it
under its own lock, so it needs none.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from bridge.mains.debounce import Edge
from bridge.model import MainsState, Reading

SOURCE_GPIO: Final = "gpio"
SOURCE_METER: Final = "meter"
SOURCE_SIMULATION: Final = "simulation"
SOURCE_UPS: Final = "ups"


def combine(source: str, gpio: MainsState, other: MainsState) -> MainsState:
    """The mains state according to ``mains.source`` from the two inputs' raw states.

    ``other`` is the second input: the meter or the UPS.  ``gpio``/``meter``/``ups``:
    that input alone.  ``any``: off as soon as one input says off.  ``all``: off only
    when every input says off.  An input still ``unknown`` (no reading yet, port lost,
    upsd unreachable) is left out of ``any``/``all``.
    """
    if source == SOURCE_GPIO:
        return gpio
    if source in (SOURCE_METER, SOURCE_UPS):
        return other
    known = [s for s in (gpio, other) if s is not MainsState.UNKNOWN]
    if not known:
        return MainsState.UNKNOWN
    if source == "any":
        return MainsState.OFF if MainsState.OFF in known else MainsState.ON
    return MainsState.OFF if all(s is MainsState.OFF for s in known) else MainsState.ON


def meter_level(reading: Reading, threshold_v: float) -> MainsState:
    """What one reading says: mains off when its voltage is below the threshold."""
    if reading.voltage_v is not None and reading.voltage_v < threshold_v:
        return MainsState.OFF
    return MainsState.ON


class MeterCrossCheck:
    """The meter's raw mains level and its last sign of life (no lock: the sensor holds one)."""

    def __init__(self, threshold_v: float, silence_s: float) -> None:
        self.threshold_v = threshold_v
        self.silence_s = silence_s
        self.level = MainsState.UNKNOWN
        self._alive: tuple[float, datetime] | None = None
        """Monotonic and UTC time of the last good reading (or of the start)."""

    def started(self, now: float, utc: datetime) -> None:
        """The meter counts as alive at start: silence is measured from here."""
        self._alive = (now, utc)

    def reading(self, reading: Reading, now: float) -> Edge:
        """The level a good reading gives, dated no later than ``now``."""
        at = min(reading.monotonic, now)
        self._alive = (at, reading.time)
        level = meter_level(reading, self.threshold_v)
        return Edge(level, at, reading.time, SOURCE_METER)

    def unavailable(self, now: float, utc: datetime) -> tuple[bool, Edge]:
        """The port is gone: the meter becomes *unknown*; also whether it was known before."""
        known = self._alive is not None or self.level is not MainsState.UNKNOWN
        self._alive = None
        return known, Edge(MainsState.UNKNOWN, now, utc, SOURCE_METER)

    def silence(self, now: float) -> Edge | None:
        """*Off* from the last sign of life, once the meter has been silent for too long."""
        if self.level is MainsState.OFF or self._alive is None:
            return None
        alive_mono, alive_utc = self._alive
        if now - alive_mono < self.silence_s:
            return None
        return Edge(MainsState.OFF, alive_mono, alive_utc, SOURCE_METER)

    @property
    def deadline(self) -> float | None:
        """When silence would turn the meter *off* (``None``: already off or no sign yet)."""
        if self.level is MainsState.OFF or self._alive is None:
            return None
        return self._alive[0] + self.silence_s
