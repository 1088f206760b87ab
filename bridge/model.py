"""The facts the bridge knows, as frozen, typed values.

Sources produce them; sinks publish them; nothing here does I/O.  The JSON shape
of each lives in :mod:`bridge.mqtt.contract`, not here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Final


class MainsState(enum.StrEnum):
    """Whether the protected side has mains power."""

    ON = "on"
    OFF = "off"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class Quantities:
    """What a power meter measures, in SI units; ``None`` where the meter lacks a quantity.

    The one list of quantity names: a meter driver's decoders return these, a
    :class:`Reading` carries them, and :data:`MEASURED` names them for the MQTT contract.
    """

    voltage_v: float | None = None
    current_a: float | None = None
    power_w: float | None = None
    apparent_power_va: float | None = None
    reactive_power_var: float | None = None
    frequency_hz: float | None = None
    power_factor: float | None = None
    energy_wh: float | None = None
    """Total imported active energy, Wh; never decreasing once published."""
    alarm: bool | None = None


MEASURED: Final = tuple(f.name for f in fields(Quantities) if f.name != "alarm")
"""The names of the measured quantities (every field of :class:`Quantities` but ``alarm``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading(Quantities):
    """One sample from a power meter: its :class:`Quantities`, stamped with time and channel."""

    time: datetime
    """When the reply was received (UTC, wall clock: a label for humans and archives)."""
    monotonic: float
    """The same instant on the monotonic clock (for ages and rates)."""
    meter: str
    """Driver name, e.g. ``pzem004t``."""
    channel: int = 1

    @classmethod
    def of(
        cls, quantities: Quantities, *, time: datetime, monotonic: float, meter: str, channel: int
    ) -> Reading:
        """The reading of ``quantities``, received at ``time``/``monotonic`` on ``channel``."""
        values = {f.name: getattr(quantities, f.name) for f in fields(Quantities)}
        return cls(time=time, monotonic=monotonic, meter=meter, channel=channel, **values)


@dataclass(frozen=True, slots=True)
class MainsEvent:
    """An *announced* change of mains state (after the confirmation window)."""

    state: MainsState
    began: datetime
    """UTC time of the first edge of this change (not the end of the confirmation window)."""
    began_monotonic: float
    """The same instant on the bridge's monotonic clock."""
    seq: int
    """Per-device sequence number of announced mains changes; never reused."""
    source: str = "gpio"
    """Which input announced it: ``gpio``, ``meter`` or ``simulation``."""


@dataclass(frozen=True, slots=True)
class Outage:
    """An outage, open (``ended is None``) or closed."""

    started: datetime
    started_monotonic: float | None
    seq: int
    ended: datetime | None = None
    duration_s: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DynamicHealth:
    """What only the running daemon knows of its health; ``None`` where it does not apply
    (no meter, no spool).  Part of every :class:`HealthSnapshot`."""

    meter_link: bool | None = None
    last_reading_age_s: float | None = None
    broker_connected: bool | None = None
    broker_reconnects: int | None = None
    spool_depth: int | None = None
    spool_dropped: int | None = None
    flap_count: int | None = None
    ups_link: bool | None = None
    """Whether the last read of the UPS through upsd succeeded (``None``: no UPS)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthSnapshot(DynamicHealth):
    """The bridge's view of itself.  ``None`` means *unknown* (no such sensor here)."""

    time: datetime
    software_version: str
    cpu_temperature_c: float | None = None
    load_1m: float | None = None
    memory_used_pct: float | None = None
    disk_free_mb: float | None = None
    uptime_s: float | None = None
    boot_time: datetime | None = None
    under_voltage: bool | None = None
    """Raspberry Pi under-voltage *now* (``get_throttled`` bit 0)."""
    under_voltage_occurred: bool | None = None
    throttled: bool | None = None
    clock_synchronised: bool | None = None
    process_rss_mb: float | None = None
    extra: dict[str, str] = field(default_factory=dict)
