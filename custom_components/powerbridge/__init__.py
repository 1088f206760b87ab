"""The powerbridge integration: outage history, device triggers and services for bridges.

MQTT discovery already gives Home Assistant each bridge's entities; this component adds
what discovery cannot: outage history and statistics, device triggers, services, the
shutdown clients' countdowns, and bus events for automations.  It talks to the bridges
only through Home Assistant's MQTT integration and the documented MQTT contract.
"""

from __future__ import annotations

from homeassistant.components import mqtt
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.typing import ConfigType

from .const import DOMAIN, MANUFACTURER, device_identifier
from .runtime import BridgeRuntime
from .services import async_register_services

PLATFORMS: list[Platform] = [Platform.BINARY_SENSOR, Platform.SENSOR]
CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the services once, whatever the number of bridges."""
    async_register_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
    if not await mqtt.async_wait_for_mqtt_client(hass):
        raise ConfigEntryNotReady("MQTT is not available")
    runtime = BridgeRuntime(hass, entry)
    # Join the device of the bridge's MQTT discovery (same identifier); create it if
    # discovery has not (yet) done so.  Discovery's own name and model win later.
    registry = dr.async_get(hass)
    identifier = device_identifier(runtime.device_id)
    if registry.async_get_device(identifiers={identifier}) is None:
        registry.async_get_or_create(
            config_entry_id=entry.entry_id,
            identifiers={identifier},
            manufacturer=MANUFACTURER,
            model="powerbridge",
            name=f"powerbridge {runtime.device_id}",
        )
    hass.data.setdefault(DOMAIN, {})[entry.entry_id] = runtime
    await runtime.async_start()
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    entry.async_on_unload(entry.add_update_listener(_async_options_updated))
    return True


async def _async_options_updated(hass: HomeAssistant, entry: ConfigEntry) -> None:
    await hass.config_entries.async_reload(entry.entry_id)


async def async_unload_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        runtime: BridgeRuntime = hass.data[DOMAIN].pop(entry.entry_id)
        await runtime.async_stop()
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Forget the stored outage history of a removed bridge."""
    await BridgeRuntime.async_remove_store(hass, entry)
