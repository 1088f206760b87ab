"""Every entity the bridge exposes, declared once as data.

The Home Assistant discovery payloads (:mod:`bridge.mqtt.discovery`) and the
custom component's descriptions are generated from :data:`BRIDGE_ENTITIES`;
nothing else lists entities.  ``source`` names the topic the value comes from
(``state``, ``mains``, ``outage``, ``health``, ``deployment`` or ``ups``) and ``field``
the key in its JSON payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

Component = Literal["sensor", "binary_sensor"]
Source = Literal["state", "mains", "outage", "health", "deployment", "ups"]
Requires = Literal["always", "meter", "channel", "ups"]


@dataclass(frozen=True, slots=True)
class EntityDescription:
    """One entity: what Home Assistant needs to know and where its value is."""

    key: str
    """Stable key; the unique id is ``<device_id>_<key>`` (``_ch2`` added per channel)."""
    component: Component
    name: str
    """Entity name without the device name (``has_entity_name``)."""
    source: Source
    field: str
    """Key in the source payload (per-channel keys get ``_ch<N>`` for channel ≥ 2)."""
    device_class: str | None = None
    state_class: str | None = None
    unit: str | None = None
    entity_category: Literal["diagnostic", "config"] | None = None
    enabled_by_default: bool = True
    icon: str | None = None
    precision: int | None = None
    scale: float = 1.0
    """Multiply the payload value by this (``energy_wh`` → kWh is 0.001)."""
    expires: bool = False
    """Measurement that goes unavailable when the meter stops (``expire_after``)."""
    requires: Requires = "always"
    """``meter``: only with a meter; ``channel``: one entity per configured meter channel;
    ``ups``: only with a ``ups:`` section."""
    inverted: bool = False
    """Binary sensors: ``on`` when the payload value is false."""
    template: str | None = None
    attributes: bool = False
    """Expose the whole source payload as the entity's attributes (``json_attributes_topic``)."""
    """A Jinja value template when the plain field lookup is not enough."""


_METER: Final = "meter"
_CHANNEL: Final = "channel"


def _reading(key: str, name: str, field: str, **details: Any) -> EntityDescription:
    """A measurement from the meter (``state``): unavailable when the meter stops."""
    return EntityDescription(
        key=key,
        component="sensor",
        name=name,
        source="state",
        field=field,
        state_class="measurement",
        expires=True,
        **details,
    )


class _Group:
    """Entities of one source that share details: ``_Group(...)(key, component, name, field)``."""

    def __init__(self, source: Source, doc: str, **shared: Any) -> None:
        self.__doc__ = doc
        self._source, self._shared = source, shared

    def __call__(
        self, key: str, component: Component, name: str, field: str, **details: Any
    ) -> EntityDescription:
        return EntityDescription(
            key=key,
            component=component,
            name=name,
            source=self._source,
            field=field,
            **self._shared,
            **details,
        )


_diagnostic = _Group(
    "health",
    "A figure from the health report, shown among the device's diagnostics.",
    entity_category="diagnostic",
)
_ups = _Group(
    "ups",
    "What the UPS read through upsd says (``ups`` topic); only with a ``ups:`` section.",
    requires="ups",
)


# fmt: off
BRIDGE_ENTITIES: Final[tuple[EntityDescription, ...]] = (
    # --- mains and outages
    EntityDescription(
        key="mains", component="binary_sensor", name="Mains", source="mains", field="state",
        device_class="power",
        # "unknown" (a bridge confirming its input after a start) renders None: unknown in HA.
        template="{{ {'on': 'ON', 'off': 'OFF'}.get(value_json.state, 'None') }}",
    ),
    # Fed by the `outage` topic (published on changes only), not by `mains` (refreshed
    # every 30 s): Home Assistant before 2024.10 logs a warning for each `None` it gets
    # on a timestamp sensor, which `mains` would cause twice a minute while power is on.
    EntityDescription(
        key="outage_started", component="sensor", name="Outage started", source="outage",
        field="since", device_class="timestamp", icon="mdi:power-plug-off",
    ),
    EntityDescription(
        key="last_outage_duration", component="sensor", name="Last outage duration",
        source="mains", field="last_outage_s", device_class="duration", unit="s",
        state_class="measurement", precision=0,
    ),
    EntityDescription(
        key="outage_count", component="sensor", name="Outages", source="mains",
        field="outage_count", state_class="total_increasing", icon="mdi:counter",
    ),
    # --- meter readings
    _reading("voltage", "Voltage", "voltage_v", device_class="voltage", unit="V", precision=1,
        requires=_METER),
    _reading("frequency", "Frequency", "frequency_hz", device_class="frequency", unit="Hz",
        precision=2, requires=_METER),
    _reading("power", "Power", "power_w", device_class="power", unit="W", precision=1,
        requires=_CHANNEL),
    _reading("current", "Current", "current_a", device_class="current", unit="A", precision=3,
        requires=_CHANNEL),
    _reading("power_factor", "Power factor", "power_factor", device_class="power_factor",
        precision=2, requires=_CHANNEL),
    _reading("apparent_power", "Apparent power", "apparent_power_va", device_class="apparent_power",
        unit="VA", enabled_by_default=False, precision=1, requires=_CHANNEL),
    _reading("reactive_power", "Reactive power", "reactive_power_var",
        device_class="reactive_power", unit="var", enabled_by_default=False, precision=1,
        requires=_CHANNEL),
    EntityDescription(
        key="energy", component="sensor", name="Energy", source="state", field="energy_wh",
        device_class="energy", state_class="total_increasing", unit="kWh", precision=3,
        scale=0.001, requires=_CHANNEL,
    ),
    # --- a UPS read through upsd (`ups:`)
    _ups("ups_status", "sensor", "UPS status", "status", icon="mdi:power-plug-battery"),
    _ups("battery_charge", "sensor", "Battery charge", "charge", device_class="battery",
        state_class="measurement", unit="%", precision=0),
    _ups("battery_runtime", "sensor", "Battery runtime", "runtime_s", device_class="duration",
        state_class="measurement", unit="s", precision=0),
    _ups("ups_load", "sensor", "UPS load", "load", state_class="measurement", unit="%",
        icon="mdi:gauge", precision=0),
    _ups("low_battery", "binary_sensor", "Low battery", "low_battery", device_class="battery"),
    # --- where the bridge is deployed (`powerbridge deployment start`); latitude and
    #     longitude among the attributes put the bridge on Home Assistant's map
    EntityDescription(
        key="deployment", component="sensor", name="Deployment", source="deployment",
        field="name", entity_category="diagnostic", icon="mdi:map-marker", attributes=True,
    ),
    # --- diagnostics from the health report
    _diagnostic("cpu_temperature", "sensor", "CPU temperature", "cpu_temperature_c",
        device_class="temperature", state_class="measurement", unit="°C", precision=1),
    _diagnostic("under_voltage", "binary_sensor", "Under-voltage", "under_voltage",
        device_class="problem"),
    _diagnostic("throttled", "binary_sensor", "Throttled", "throttled", device_class="problem",
        enabled_by_default=False),
    _diagnostic("clock_unsynchronised", "binary_sensor", "Clock not synchronised",
        "clock_synchronised", device_class="problem", enabled_by_default=False, inverted=True),
    _diagnostic("disk_free", "sensor", "Disk free", "disk_free_mb", device_class="data_size",
        state_class="measurement", unit="MB", precision=0),
    _diagnostic("last_boot", "sensor", "Last boot", "boot_time", device_class="timestamp"),
    _diagnostic("meter_link", "binary_sensor", "Meter link", "meter_link",
        device_class="connectivity", requires=_METER),
    _diagnostic("spool_depth", "sensor", "Spool depth", "spool_depth", state_class="measurement",
        enabled_by_default=False, icon="mdi:tray-full"),
    _diagnostic("spool_dropped", "sensor", "Samples dropped", "spool_dropped",
        state_class="total_increasing", icon="mdi:delete-alert"),
    _diagnostic("broker_reconnects", "sensor", "Broker reconnects", "broker_reconnects",
        state_class="total_increasing", enabled_by_default=False, icon="mdi:lan-disconnect"),
    _diagnostic("flap_count", "sensor", "Mains flaps", "flap_count", state_class="total_increasing",
        enabled_by_default=False, icon="mdi:flash-alert"),
    _diagnostic("load", "sensor", "Load (1 min)", "load_1m", state_class="measurement",
        enabled_by_default=False, icon="mdi:chip", precision=2),
    _diagnostic("memory_used", "sensor", "Memory used", "memory_used_pct",
        state_class="measurement", unit="%", enabled_by_default=False, icon="mdi:memory",
        precision=0),
    _diagnostic("process_rss", "sensor", "Bridge memory", "process_rss_mb",
        device_class="data_size", state_class="measurement", unit="MB", enabled_by_default=False,
        precision=1),
)
# fmt: on


def entity_by_key(key: str) -> EntityDescription:
    """The description with ``key`` (``KeyError`` if there is none)."""
    for description in BRIDGE_ENTITIES:
        if description.key == key:
            return description
    raise KeyError(key)
