"""Every entity the bridge exposes, declared once as data.

The Home Assistant discovery payloads (:mod:`bridge.mqtt.discovery`) and the
custom component's descriptions are generated from :data:`BRIDGE_ENTITIES`;
nothing else lists entities.  ``source`` names the topic the value comes from
(``state``, ``mains``, ``outage`` or ``health``) and ``field`` the key in its JSON payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Component = Literal["sensor", "binary_sensor"]
Source = Literal["state", "mains", "outage", "health", "deployment"]
Requires = Literal["always", "meter", "channel"]


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
    """``meter``: only with a meter; ``channel``: one entity per configured meter channel."""
    inverted: bool = False
    """Binary sensors: ``on`` when the payload value is false."""
    template: str | None = None
    attributes: bool = False
    """Expose the whole source payload as the entity's attributes (``json_attributes_topic``)."""
    """A Jinja value template when the plain field lookup is not enough."""


_METER: Final = "meter"
_CHANNEL: Final = "channel"

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
    EntityDescription(
        key="voltage", component="sensor", name="Voltage", source="state", field="voltage_v",
        device_class="voltage", state_class="measurement", unit="V", precision=1,
        expires=True, requires=_METER,
    ),
    EntityDescription(
        key="frequency", component="sensor", name="Frequency", source="state",
        field="frequency_hz", device_class="frequency", state_class="measurement", unit="Hz",
        precision=2, expires=True, requires=_METER,
    ),
    EntityDescription(
        key="power", component="sensor", name="Power", source="state", field="power_w",
        device_class="power", state_class="measurement", unit="W", precision=1,
        expires=True, requires=_CHANNEL,
    ),
    EntityDescription(
        key="current", component="sensor", name="Current", source="state", field="current_a",
        device_class="current", state_class="measurement", unit="A", precision=3,
        expires=True, requires=_CHANNEL,
    ),
    EntityDescription(
        key="power_factor", component="sensor", name="Power factor", source="state",
        field="power_factor", device_class="power_factor", state_class="measurement",
        precision=2, expires=True, requires=_CHANNEL,
    ),
    EntityDescription(
        key="apparent_power", component="sensor", name="Apparent power", source="state",
        field="apparent_power_va", device_class="apparent_power", state_class="measurement",
        unit="VA", precision=1, expires=True, requires=_CHANNEL, enabled_by_default=False,
    ),
    EntityDescription(
        key="reactive_power", component="sensor", name="Reactive power", source="state",
        field="reactive_power_var", device_class="reactive_power", state_class="measurement",
        unit="var", precision=1, expires=True, requires=_CHANNEL, enabled_by_default=False,
    ),
    EntityDescription(
        key="energy", component="sensor", name="Energy", source="state", field="energy_wh",
        device_class="energy", state_class="total_increasing", unit="kWh", precision=3,
        scale=0.001, requires=_CHANNEL,
    ),
    # --- where the bridge is deployed (`powerbridge deployment start`); latitude and
    #     longitude among the attributes put the bridge on Home Assistant's map
    EntityDescription(
        key="deployment", component="sensor", name="Deployment", source="deployment",
        field="name", entity_category="diagnostic", icon="mdi:map-marker", attributes=True,
    ),
    # --- diagnostics from the health report
    EntityDescription(
        key="cpu_temperature", component="sensor", name="CPU temperature", source="health",
        field="cpu_temperature_c", device_class="temperature", state_class="measurement",
        unit="°C", precision=1, entity_category="diagnostic",
    ),
    EntityDescription(
        key="under_voltage", component="binary_sensor", name="Under-voltage", source="health",
        field="under_voltage", device_class="problem", entity_category="diagnostic",
    ),
    EntityDescription(
        key="throttled", component="binary_sensor", name="Throttled", source="health",
        field="throttled", device_class="problem", entity_category="diagnostic",
        enabled_by_default=False,
    ),
    EntityDescription(
        key="clock_unsynchronised", component="binary_sensor", name="Clock not synchronised",
        source="health", field="clock_synchronised", device_class="problem", inverted=True,
        entity_category="diagnostic", enabled_by_default=False,
    ),
    EntityDescription(
        key="disk_free", component="sensor", name="Disk free", source="health",
        field="disk_free_mb", device_class="data_size", state_class="measurement", unit="MB",
        precision=0, entity_category="diagnostic",
    ),
    EntityDescription(
        key="last_boot", component="sensor", name="Last boot", source="health",
        field="boot_time", device_class="timestamp", entity_category="diagnostic",
    ),
    EntityDescription(
        key="meter_link", component="binary_sensor", name="Meter link", source="health",
        field="meter_link", device_class="connectivity", entity_category="diagnostic",
        requires=_METER,
    ),
    EntityDescription(
        key="spool_depth", component="sensor", name="Spool depth", source="health",
        field="spool_depth", state_class="measurement", icon="mdi:tray-full",
        entity_category="diagnostic", enabled_by_default=False,
    ),
    EntityDescription(
        key="spool_dropped", component="sensor", name="Samples dropped", source="health",
        field="spool_dropped", state_class="total_increasing", icon="mdi:delete-alert",
        entity_category="diagnostic",
    ),
    EntityDescription(
        key="broker_reconnects", component="sensor", name="Broker reconnects", source="health",
        field="broker_reconnects", state_class="total_increasing", icon="mdi:lan-disconnect",
        entity_category="diagnostic", enabled_by_default=False,
    ),
    EntityDescription(
        key="flap_count", component="sensor", name="Mains flaps", source="health",
        field="flap_count", state_class="total_increasing", icon="mdi:flash-alert",
        entity_category="diagnostic", enabled_by_default=False,
    ),
    EntityDescription(
        key="load", component="sensor", name="Load (1 min)", source="health", field="load_1m",
        state_class="measurement", precision=2, entity_category="diagnostic",
        enabled_by_default=False, icon="mdi:chip",
    ),
    EntityDescription(
        key="memory_used", component="sensor", name="Memory used", source="health",
        field="memory_used_pct", state_class="measurement", unit="%", precision=0,
        entity_category="diagnostic", enabled_by_default=False, icon="mdi:memory",
    ),
    EntityDescription(
        key="process_rss", component="sensor", name="Bridge memory", source="health",
        field="process_rss_mb", device_class="data_size", state_class="measurement", unit="MB",
        precision=1, entity_category="diagnostic", enabled_by_default=False,
    ),
)
# fmt: on


def entity_by_key(key: str) -> EntityDescription:
    """The description with ``key`` (``KeyError`` if there is none)."""
    for description in BRIDGE_ENTITIES:
        if description.key == key:
            return description
    raise KeyError(key)
