"""Base entity: joins the bridge's device and refreshes on the runtime's signal."""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity import Entity, EntityDescription

from .devices import entity_identifier
from .runtime import BridgeRuntime, signal_update


class PowerbridgeEntity(Entity):
    """An entity of one bridge; ``unique_id`` is ``<device_id>_<key>``."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, runtime: BridgeRuntime, description: EntityDescription) -> None:
        self.runtime = runtime
        self.entity_description = description
        self._attr_unique_id = f"{runtime.device_id}_{description.key}"
        # Link to the bridge's device (discovery's or the entry's own: see devices.py):
        # identifiers only, so that we never overwrite the name, model or software
        # version that discovery wrote.
        self._attr_device_info = DeviceInfo(identifiers={entity_identifier(runtime.device_id)})

    async def async_added_to_hass(self) -> None:
        self.async_on_remove(
            async_dispatcher_connect(
                self.hass, signal_update(self.runtime.entry.entry_id), self.async_write_ha_state
            )
        )
