"""Sensors: outage history of the bridge, one countdown sensor per shutdown client."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EntityCategory, UnitOfEnergy, UnitOfTime
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_platform import AddEntitiesCallback
from homeassistant.util import dt as dt_util

from .const import CONF_BRIDGE_ENTITIES
from .entity import PowerbridgeEntity
from .entity_table import MAINS_ENTITIES, BridgeEntity
from .protocol import Mains
from .runtime import BridgeRuntime, runtime_of, signal_new_client

StateValue = str | int | float | datetime | None


@dataclass(frozen=True, kw_only=True)
class PowerbridgeSensorDescription(SensorEntityDescription):
    """A sensor computed from the bridge runtime."""

    value_fn: Callable[[BridgeRuntime], StateValue]
    available_fn: Callable[[BridgeRuntime], bool] = lambda _runtime: True


def _duration(runtime: BridgeRuntime) -> StateValue:
    value = runtime.outages.duration()
    return None if value is None else round(value)


def _last_start(runtime: BridgeRuntime) -> StateValue:
    last = runtime.outages.last_outage
    return None if last is None or last.started is None else dt_util.parse_datetime(last.started)


def _last_end(runtime: BridgeRuntime) -> StateValue:
    last = runtime.outages.last_outage
    return None if last is None else dt_util.parse_datetime(last.ended)


def _energy(runtime: BridgeRuntime) -> StateValue:
    value = runtime.outages.energy_wh_used()
    return None if value is None else round(value / 1000.0, 4)


SENSORS: tuple[PowerbridgeSensorDescription, ...] = (
    PowerbridgeSensorDescription(
        key="outage_duration",
        translation_key="outage_duration",
        device_class=SensorDeviceClass.DURATION,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfTime.SECONDS,
        suggested_display_precision=0,
        value_fn=_duration,
        available_fn=lambda runtime: runtime.online is not False,
    ),
    PowerbridgeSensorDescription(
        key="last_outage_start",
        translation_key="last_outage_start",
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=_last_start,
    ),
    PowerbridgeSensorDescription(
        key="last_outage_end",
        translation_key="last_outage_end",
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=_last_end,
    ),
    PowerbridgeSensorDescription(
        key="outages_today",
        translation_key="outages_today",
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda runtime: runtime.outages.today,
    ),
    PowerbridgeSensorDescription(
        key="outage_energy",
        translation_key="outage_energy",
        device_class=SensorDeviceClass.ENERGY,
        state_class=SensorStateClass.TOTAL_INCREASING,
        native_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        suggested_display_precision=3,
        value_fn=_energy,
    ),
    PowerbridgeSensorDescription(
        key="last_seen",
        translation_key="last_seen",
        device_class=SensorDeviceClass.TIMESTAMP,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda runtime: runtime.last_seen,
    ),
)


# Values of the bridge's own mains entities (the rows of entity_table.MAINS_ENTITIES),
# the Python equivalent of the value templates in their discovery payloads.
def _from_mains(read: Callable[[Mains], StateValue]) -> Callable[[BridgeRuntime], StateValue]:
    """A value of the bridge's last ``mains`` message (``None`` before the first)."""
    return lambda runtime: None if runtime.outages.mains is None else read(runtime.outages.mains)


BRIDGE_VALUES: dict[str, Callable[[BridgeRuntime], StateValue]] = {
    "outage_started": _from_mains(lambda mains: mains.since if mains.on is False else None),
    "last_outage_duration": _from_mains(
        lambda mains: None if mains.last_outage_s is None else round(mains.last_outage_s)
    ),
    "outage_count": _from_mains(lambda mains: mains.outage_count),
}


def bridge_sensor_description(row: BridgeEntity) -> PowerbridgeSensorDescription:
    """A sensor description from a row of the bridge's entity table."""
    return PowerbridgeSensorDescription(
        key=row.key,
        name=row.name,
        device_class=SensorDeviceClass(row.device_class) if row.device_class else None,
        state_class=SensorStateClass(row.state_class) if row.state_class else None,
        native_unit_of_measurement=row.unit,
        entity_category=EntityCategory(row.entity_category) if row.entity_category else None,
        entity_registry_enabled_default=row.enabled_by_default,
        icon=row.icon,
        suggested_display_precision=row.precision,
        value_fn=BRIDGE_VALUES[row.key],
        available_fn=lambda runtime: runtime.online is not False,
    )


CLIENT_DESCRIPTION = SensorEntityDescription(
    key="client",
    translation_key="client",
    device_class=SensorDeviceClass.ENUM,
    options=["idle", "counting", "shutting_down", "offline"],
)


async def async_setup_entry(
    hass: HomeAssistant, entry: ConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    runtime = runtime_of(hass, entry)
    assert runtime is not None  # the platforms are set up after the runtime
    entities: list[SensorEntity] = [PowerbridgeSensor(runtime, d) for d in SENSORS]
    if entry.options.get(CONF_BRIDGE_ENTITIES, False):
        entities.extend(
            PowerbridgeSensor(runtime, bridge_sensor_description(row))
            for row in MAINS_ENTITIES
            if row.component == "sensor"
        )
    entities.extend(ClientSensor(runtime, client_id) for client_id in runtime.clients)
    async_add_entities(entities)

    @callback
    def _add_client(client_id: str) -> None:
        async_add_entities([ClientSensor(runtime, client_id)])

    entry.async_on_unload(
        async_dispatcher_connect(hass, signal_new_client(entry.entry_id), _add_client)
    )


class PowerbridgeSensor(PowerbridgeEntity, SensorEntity):
    """A bridge sensor driven by a :class:`PowerbridgeSensorDescription`."""

    entity_description: PowerbridgeSensorDescription

    @property
    def available(self) -> bool:
        return self.entity_description.available_fn(self.runtime)

    @property
    def native_value(self) -> StateValue:
        return self.entity_description.value_fn(self.runtime)


class ClientSensor(PowerbridgeEntity, SensorEntity):
    """A shutdown client watching this bridge: its countdown state and seconds left."""

    # The countdown and per-supply details change with every message: keep them out
    # of the recorder's history (the state itself is recorded).
    _unrecorded_attributes = frozenset({"seconds_left", "deadline", "supplies", "notices"})

    def __init__(self, runtime: BridgeRuntime, client_id: str) -> None:
        super().__init__(runtime, CLIENT_DESCRIPTION)
        self.client_id = client_id
        self._attr_unique_id = f"{runtime.device_id}_client_{client_id}"
        self._attr_translation_placeholders = {"client_id": client_id}

    @property
    def native_value(self) -> str | None:
        info = self.runtime.clients[self.client_id]
        if info.online is False and (info.state is None or info.state.state == "idle"):
            return "offline"
        if info.state is None:
            return "offline" if info.online is False else None
        return info.state.state

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        info = self.runtime.clients[self.client_id]
        now = dt_util.utcnow()
        left = info.seconds_left(now)
        state = info.state
        attributes: dict[str, Any] = {
            "client_id": self.client_id,
            "seconds_left": None if left is None else round(left),
            "online": info.online,
        }
        if state is not None:
            attributes["deadline"] = state.deadline
            attributes["bridges"] = list(state.bridges)
            attributes.update(state.extra)
        return attributes
