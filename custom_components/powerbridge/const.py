"""Constants of the powerbridge custom component."""

from __future__ import annotations

from typing import Final

DOMAIN: Final = "powerbridge"
MANUFACTURER: Final = "powerbridge"

CONF_DEVICE_ID: Final = "device_id"
CONF_BASE_TOPIC: Final = "base_topic"
CONF_SIGNING_KEY: Final = "signing_key"
CONF_BRIDGE_ENTITIES: Final = "bridge_entities"
"""Option: create the mains entities that the bridge's own MQTT discovery normally provides."""

DEFAULT_BASE_TOPIC: Final = "powerbridge"
SIGNING_KEY_MIN_BYTES: Final = 16

MQTT_IDENTIFIER_DOMAIN: Final = "mqtt"
MQTT_IDENTIFIER_PREFIX: Final = "powerbridge_"
"""The bridge's discovery device block lists ``powerbridge_<device_id>``; Home Assistant's
MQTT integration registers it as ``("mqtt", "powerbridge_<device_id>")`` (see devices.py
for how the component's own entities relate to that device)."""


# Bus events (public: automations and blueprints use them).
EVENT_OUTAGE_STARTED: Final = "powerbridge_outage_started"
EVENT_OUTAGE_ENDED: Final = "powerbridge_outage_ended"
EVENT_BRIDGE_OFFLINE: Final = "powerbridge_bridge_offline"
EVENT_BRIDGE_ONLINE: Final = "powerbridge_bridge_online"
EVENT_COUNTDOWN_STARTED: Final = "powerbridge_shutdown_countdown_started"

# Device trigger types -> the bus event that fires them.
TRIGGER_MAINS_LOST: Final = "mains_lost"
TRIGGER_MAINS_RESTORED: Final = "mains_restored"
TRIGGER_BRIDGE_OFFLINE: Final = "bridge_offline"
TRIGGER_BRIDGE_ONLINE: Final = "bridge_online"
TRIGGER_COUNTDOWN_STARTED: Final = "shutdown_countdown_started"
TRIGGER_EVENTS: Final = {
    TRIGGER_MAINS_LOST: EVENT_OUTAGE_STARTED,
    TRIGGER_MAINS_RESTORED: EVENT_OUTAGE_ENDED,
    TRIGGER_BRIDGE_OFFLINE: EVENT_BRIDGE_OFFLINE,
    TRIGGER_BRIDGE_ONLINE: EVENT_BRIDGE_ONLINE,
    TRIGGER_COUNTDOWN_STARTED: EVENT_COUNTDOWN_STARTED,
}

# Services.
SERVICE_SIMULATE_OUTAGE: Final = "simulate_outage"
SERVICE_CANCEL_SHUTDOWN: Final = "cancel_shutdown"
SERVICE_SHUTDOWN_NOW: Final = "shutdown_now"
ATTR_MAINS: Final = "mains"
ATTR_CLIENT_ID: Final = "client_id"
ATTR_BRIDGE: Final = "bridge"
"""Bus events: the powerbridge device id of the bridge the event is about."""
ATTR_DELAY: Final = "delay"
ATTR_REASON: Final = "reason"
DEFAULT_SHUTDOWN_DELAY_S: Final = 60

LIVE_UPDATE_INTERVAL_S: Final = 5
"""How often the current outage duration is refreshed while an outage lasts."""
HISTORY_SIZE: Final = 50
"""Finished outages kept in the component's store (for diagnostics and attributes)."""
STORAGE_VERSION: Final = 1
