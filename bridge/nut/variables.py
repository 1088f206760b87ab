"""A bridge's state as NUT variables: one pure function, :func:`variables`.

``ups.status`` says what powerbridge knows and nothing more:

========================  =========================================================
``OL``                    the bridge announces mains on
``OB DISCHRG``            the bridge announces an outage (confirmed by its window)
``FSD OB LB``             the shutdown policy's deadline for that outage is reached
``FSD OL``                an authenticated remote "shutdown now" fell due
(no variables)            the bridge is offline, silent or unconfirmed: the server
                          answers ``ERR DATA-STALE``, as upsd does for a dead driver
========================  =========================================================

``FSD`` comes with every due decision because the facade is the deciding side: in NUT
the primary sets ``FSD`` when its UPS is critical, and a secondary that sees ``LB``
without ``FSD`` waits ``HOSTSYNC`` (15 s by default) for a primary that does not exist
here (all our clients are secondaries: ``PRIMARY`` is refused).

Battery variables appear only when a battery is known (a UPS read by the bridge).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from bridge.nut.protocol import Variable


class Power(enum.Enum):
    ONLINE = "OL"
    ON_BATTERY = "OB"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the UPS says it is (Synology refuses a server without ``ups.mfr``/``ups.model``)."""

    device_id: str
    mfr: str = "powerbridge"
    model: str = "powerbridge mains monitor"
    version: str = ""


@dataclass(frozen=True, slots=True)
class Battery:
    """What a real UPS behind the bridge says of its battery (each ``None`` when unknown)."""

    charge: float | None = None
    runtime: float | None = None
    low: bool = False


@dataclass(frozen=True, slots=True)
class UpsState:
    """Everything the mapping needs for one bridge at one instant."""

    stale: bool
    power: Power = Power.ONLINE
    low_battery: bool = False
    """The policy's deadline is reached (or the UPS itself reports low battery)."""
    forced: bool = False
    """A remote "shutdown now" fell due (``FSD``)."""
    seconds_left: float | None = None
    """Until the policy's deadline, while counting down."""
    readings: Mapping[str, float] = field(default_factory=dict)
    """The bridge's newest reading, keyed as in the ``state`` topic (``voltage_v``, …)."""
    battery: Battery | None = None


READINGS: Final[tuple[tuple[str, str, int], ...]] = (
    # (NUT variable, state key, decimals)
    ("input.voltage", "voltage_v", 1),
    ("input.frequency", "frequency_hz", 2),
    ("input.current", "current_a", 3),
    ("input.realpower", "power_w", 1),
    ("ups.realpower", "power_w", 1),
)


def status(state: UpsState) -> str:
    """The ``ups.status`` words for a fresh state."""
    words = ["OL"] if state.power is Power.ONLINE else ["OB"]
    if state.power is Power.ON_BATTERY and not state.low_battery:
        words.append("DISCHRG")
    if state.low_battery:
        words.append("LB")
    if state.forced:
        words.insert(0, "FSD")
    return " ".join(words)


def _number(value: float, decimals: int) -> Variable:
    text = f"{value:.{decimals}f}" if decimals else f"{round(value)}"
    return Variable(text, number=True)


def variables(state: UpsState, identity: Identity) -> dict[str, Variable] | None:
    """The variables served for ``state``; ``None`` when its data is stale."""
    if state.stale:
        return None
    out: dict[str, Variable] = {
        "device.mfr": Variable(identity.mfr),
        "device.model": Variable(identity.model),
        "device.serial": Variable(identity.device_id),
        "device.type": Variable("ups"),
        "driver.name": Variable("powerbridge"),
        "driver.version": Variable(identity.version),
        "ups.mfr": Variable(identity.mfr),
        "ups.model": Variable(identity.model),
        "ups.serial": Variable(identity.device_id),
        "ups.status": Variable(status(state)),
    }
    for name, key, decimals in READINGS:
        value = state.readings.get(key)
        if isinstance(value, int | float) and math.isfinite(value):
            out[name] = _number(value, decimals)
    if state.seconds_left is not None:
        out["ups.timer.shutdown"] = _number(max(0.0, state.seconds_left), 0)
    if state.battery is not None:
        if state.battery.charge is not None:
            out["battery.charge"] = _number(state.battery.charge, 0)
        if state.battery.runtime is not None:
            out["battery.runtime"] = _number(state.battery.runtime, 0)
    return out
