"""Which Home Assistant device a bridge's component entities belong to, on every release.

Until Home Assistant 2026.8 a device was shared between integrations: the component
joins the device that the bridge's MQTT discovery creates, ``("mqtt",
"powerbridge_<device_id>")``, so one device page shows the bridge's discovery entities
and the component's outage history together.

From 2026.8 a device belongs to a single config entry and identifiers are unique per
entry only (developers' blog, 2026-07-21, "device registry single config entry"), so
the component can no longer share discovery's device: it owns one device per config
entry, ``("powerbridge", "<device_id>")``.  Which model is in force is detected from the
registry's API (:func:`per_entry_devices`), never from a version number.

Whatever the model, device triggers and services find the bridge from the *device's
identifiers* (:func:`bridge_id_of`), which both devices carry: an automation made
against the shared device before an upgrade keeps firing after it.
"""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr

from .const import DOMAIN, MANUFACTURER, MQTT_IDENTIFIER_DOMAIN, MQTT_IDENTIFIER_PREFIX


def per_entry_devices() -> bool:
    """True where a device belongs to one config entry (Home Assistant 2026.8 and later).

    Detected by the registry method that release added for identifier look-ups."""
    return hasattr(dr.DeviceRegistry, "async_get_device_by_identifier")


def mqtt_identifier(device_id: str) -> tuple[str, str]:
    """The identifier of the device that the bridge's own MQTT discovery creates."""
    return (MQTT_IDENTIFIER_DOMAIN, f"{MQTT_IDENTIFIER_PREFIX}{device_id}")


def own_identifier(device_id: str) -> tuple[str, str]:
    """The identifier of the component's own device (per-entry model)."""
    return (DOMAIN, device_id)


def entity_identifier(device_id: str) -> tuple[str, str]:
    """The identifier the component's entities name in their device info."""
    return own_identifier(device_id) if per_entry_devices() else mqtt_identifier(device_id)


def bridge_id_of(device: dr.DeviceEntry) -> str | None:
    """The bridge (powerbridge device id) a Home Assistant device stands for, if any."""
    for domain, value in device.identifiers:
        if domain == DOMAIN:
            return value
        if domain == MQTT_IDENTIFIER_DOMAIN and value.startswith(MQTT_IDENTIFIER_PREFIX):
            return value[len(MQTT_IDENTIFIER_PREFIX) :]
    return None


def entry_ids_of(device: dr.DeviceEntry) -> set[str]:
    """The config entries of a device: ``config_entry_id`` where the release has it."""
    single = getattr(device, "config_entry_id", None)
    if isinstance(single, str):
        return {single}
    return set(device.config_entries)


def async_ensure_device(hass: HomeAssistant, entry: ConfigEntry, device_id: str) -> str:
    """Create the device the component's entities join, if it is not there; its id.

    Shared model: discovery's device is joined as it is (its name, model and software
    version are discovery's); it is created only when discovery has not (yet) done so.
    """
    registry = dr.async_get(hass)
    if not per_entry_devices():
        existing = registry.async_get_device(identifiers={mqtt_identifier(device_id)})
        if existing is not None:
            return existing.id
    device = registry.async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={entity_identifier(device_id)},
        manufacturer=MANUFACTURER,
        model="powerbridge",
        name=f"powerbridge {device_id}",
    )
    return device.id


def async_device_id(hass: HomeAssistant, entry: ConfigEntry, device_id: str) -> str | None:
    """The id of the device the component's entities of ``device_id`` belong to."""
    registry = dr.async_get(hass)
    wanted = entity_identifier(device_id)
    for device in dr.async_entries_for_config_entry(registry, entry.entry_id):
        if wanted in device.identifiers:
            return device.id
    return None
