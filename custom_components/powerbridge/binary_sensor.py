"""The bridge's mains binary sensor, for bridges whose own MQTT discovery is off."""

from __future__ import annotations

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from .const import CONF_BRIDGE_ENTITIES
from .entity import PowerbridgeEntity
from .entity_table import MAINS_ENTITIES
from .runtime import runtime_of


async def async_setup_entry(
    hass: HomeAssistant, entry: ConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    if not entry.options.get(CONF_BRIDGE_ENTITIES, False):
        return
    runtime = runtime_of(hass, entry)
    assert runtime is not None  # the platforms are set up after the runtime
    async_add_entities(
        MainsBinarySensor(
            runtime,
            BinarySensorEntityDescription(
                key=row.key,
                name=row.name,
                device_class=BinarySensorDeviceClass(row.device_class)
                if row.device_class
                else None,
                icon=row.icon,
                entity_registry_enabled_default=row.enabled_by_default,
            ),
        )
        for row in MAINS_ENTITIES
        if row.component == "binary_sensor"
    )


class MainsBinarySensor(PowerbridgeEntity, BinarySensorEntity):
    """``on`` while the bridge announces mains present."""

    @property
    def available(self) -> bool:
        return self.runtime.online is not False

    @property
    def is_on(self) -> bool | None:
        return self.runtime.outages.mains_on
