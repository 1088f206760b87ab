"""Device triggers: mains lost/restored, bridge offline/online, shutdown countdown started.

Each trigger listens for the component's bus event of the same meaning, restricted to
the bridge: the trigger's device (the component's own, or the bridge's discovery
device) is resolved to the bridge id in its identifiers, and events are matched on the
``bridge`` they carry.  Matching on the Home Assistant device id would break when Home
Assistant 2026.8 split shared devices per config entry (see devices.py); the bridge id
is the same on every device and every release:

=============================  ============================================
trigger type                   bus event
=============================  ============================================
``mains_lost``                 ``powerbridge_outage_started``
``mains_restored``             ``powerbridge_outage_ended`` (with ``duration_s``)
``bridge_offline``             ``powerbridge_bridge_offline``
``bridge_online``              ``powerbridge_bridge_online`` (only after being offline)
``shutdown_countdown_started`` ``powerbridge_shutdown_countdown_started``
=============================  ============================================

``shutdown_countdown_started`` may be narrowed to one client with ``client_id``.
The event's data is available to actions as ``trigger.event.data``.
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol
from homeassistant.components.device_automation import DEVICE_TRIGGER_BASE_SCHEMA
from homeassistant.components.homeassistant.triggers import event as event_trigger
from homeassistant.const import CONF_DEVICE_ID, CONF_DOMAIN, CONF_PLATFORM, CONF_TYPE
from homeassistant.core import CALLBACK_TYPE, HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.trigger import TriggerActionType, TriggerInfo
from homeassistant.helpers.typing import ConfigType

from .const import ATTR_BRIDGE, ATTR_CLIENT_ID, DOMAIN, TRIGGER_COUNTDOWN_STARTED, TRIGGER_EVENTS
from .devices import bridge_id_of

TRIGGER_SCHEMA = DEVICE_TRIGGER_BASE_SCHEMA.extend(
    {
        vol.Required(CONF_TYPE): vol.In(TRIGGER_EVENTS),
        vol.Optional(ATTR_CLIENT_ID): str,
    }
)


async def async_get_triggers(hass: HomeAssistant, device_id: str) -> list[dict[str, Any]]:
    """The triggers of a bridge device."""
    return [
        {CONF_PLATFORM: "device", CONF_DOMAIN: DOMAIN, CONF_DEVICE_ID: device_id, CONF_TYPE: kind}
        for kind in TRIGGER_EVENTS
    ]


async def async_get_trigger_capabilities(
    hass: HomeAssistant, config: ConfigType
) -> dict[str, vol.Schema]:
    """``shutdown_countdown_started`` can be narrowed to one client."""
    if config[CONF_TYPE] == TRIGGER_COUNTDOWN_STARTED:
        return {"extra_fields": vol.Schema({vol.Optional(ATTR_CLIENT_ID): str})}
    return {}


def _bridge_filter(hass: HomeAssistant, device_id: str) -> dict[str, Any]:
    """Event data that selects the bridge of a device: its bridge id where the device
    names one, else the device id itself (as events carry it)."""
    device = dr.async_get(hass).async_get(device_id)
    bridge = bridge_id_of(device) if device is not None else None
    return {ATTR_BRIDGE: bridge} if bridge is not None else {CONF_DEVICE_ID: device_id}


async def async_attach_trigger(
    hass: HomeAssistant,
    config: ConfigType,
    action: TriggerActionType,
    trigger_info: TriggerInfo,
) -> CALLBACK_TYPE:
    event_data: dict[str, Any] = _bridge_filter(hass, config[CONF_DEVICE_ID])
    if config[CONF_TYPE] == TRIGGER_COUNTDOWN_STARTED and config.get(ATTR_CLIENT_ID):
        event_data[ATTR_CLIENT_ID] = config[ATTR_CLIENT_ID]
    event_config = event_trigger.TRIGGER_SCHEMA(
        {
            event_trigger.CONF_PLATFORM: "event",
            event_trigger.CONF_EVENT_TYPE: TRIGGER_EVENTS[config[CONF_TYPE]],
            event_trigger.CONF_EVENT_DATA: event_data,
        }
    )
    return await event_trigger.async_attach_trigger(
        hass, event_config, action, trigger_info, platform_type="device"
    )
