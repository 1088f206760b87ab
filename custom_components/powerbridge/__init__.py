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
from homeassistant.helpers.typing import ConfigType

from .const import DOMAIN
from .devices import async_ensure_device
from .runtime import BridgeRuntime, forget_runtime, remember_runtime, runtime_of
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
    # The device the component's entities join (discovery's, or the entry's own from
    # Home Assistant 2026.8 on: see devices.py).
    async_ensure_device(hass, entry, runtime.device_id)
    remember_runtime(hass, entry, runtime)
    await runtime.async_start()
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    entry.async_on_unload(entry.add_update_listener(_async_entry_updated))
    return True


async def _async_entry_updated(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Reload when the options changed, and only then.

    Home Assistant also updates an entry for its own book-keeping (e.g. the discovery
    keys it records when the bridge's retained ``status`` starts a discovery flow for a
    bridge that is already set up); reloading on those would restart the runtime and
    forget what it had just heard."""
    runtime = runtime_of(hass, entry)
    if runtime is None or dict(entry.options) != runtime.options:
        await hass.config_entries.async_reload(entry.entry_id)


async def async_unload_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        runtime = forget_runtime(hass, entry)
        if runtime is not None:
            await runtime.async_stop()
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Forget the stored outage history of a removed bridge."""
    await BridgeRuntime.async_remove_store(hass, entry)
