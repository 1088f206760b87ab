"""Home Assistant MQTT discovery payloads, generated from the entity table.

Pure functions only: no paho, no I/O.  The Home Assistant test environment
imports this module (with paho-mqtt 1.6 installed), and the publisher sends what
:func:`discovery_messages` returns.

One retained config per entity on ``<prefix>/<component>/<device_id>/<key>/config``
(the ``node_id`` form, which a broker ACL can grant per bridge and which works from
Home Assistant 2024.3 on), or, with ``mqtt.discovery.device_based``, one
device-based config on ``<prefix>/device/<device_id>/config`` (Home Assistant
2024.11 or later).  Every entity carries the device block, the origin block and
availability on the bridge's ``status`` topic only: ``online`` is published after
every connect, so no entity can be stuck unavailable waiting for a topic that is
never written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from bridge.mqtt.contract import (
    OFFLINE,
    ONLINE,
    QOS_DEPLOYMENT,
    QOS_MAINS,
    QOS_OUTAGE,
    QOS_UPS,
    BridgeTopics,
    channel_key,
    discovery_topic,
    dumps,
)
from bridge.mqtt.entities import BRIDGE_ENTITIES, EntityDescription

if TYPE_CHECKING:
    from bridge.config.bridge import BridgeConfig

MANUFACTURER: Final = "powerbridge"
ORIGIN_NAME: Final = "powerbridge"
SUPPORT_URL: Final = "https://github.com/powerbridge/powerbridge"
DEVICE_COMPONENT: Final = "device"
"""The component level of a device-based discovery topic."""

EXPIRE_MIN_S: Final = 10
EXPIRE_INTERVALS: Final = 5
"""Measurements expire after this many meter intervals without a reading (at least 10 s)."""
STATE_MIN_INTERVAL_S: Final = 1.0
"""The bridge publishes ``state`` at most this often (the newest reading wins)."""

MCP_PROTOCOL: Final = "mcp39f511n"

METER_MODELS: Final = {
    "mcp39f511n": "MCP39F511N",
    "pzem004t": "PZEM-004T",
    "sdm120": "SDM120",
    "sdm630": "SDM630",
}


@dataclass(frozen=True, slots=True)
class DiscoveryMessage:
    """One retained discovery config: its topic and its JSON payload."""

    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class EntityInstance:
    """An entity of one bridge: a description from the table, bound to a channel."""

    description: EntityDescription
    key: str
    """Object id and unique-id suffix: the table key, plus ``_ch<N>`` for channel N ≥ 2."""
    name: str
    field: str
    """Key in the source payload (``power_w_ch2`` for channel 2)."""
    channel: int | None = None


def device_identifier(device_id: str) -> str:
    """The Home Assistant device registry identifier of a bridge."""
    return f"powerbridge_{device_id}"


def unique_id(device_id: str, key: str) -> str:
    """``<device_id>_<key>``: the entity's unique id (``key`` already carries ``_ch<N>``)."""
    return f"{device_id}_{key}"


def meter_protocol(config: BridgeConfig) -> str | None:
    """The wire protocol actually spoken (the simulator's for ``simulated``), or ``None``."""
    if config.meter.type == "none":
        return None
    if config.meter.type == "simulated":
        return config.simulation.meter_protocol
    return config.meter.type


def meter_channels(config: BridgeConfig) -> tuple[int, ...]:
    """Channels published: the configured ones on an MCP39F511N, else channel 1."""
    if meter_protocol(config) == MCP_PROTOCOL:
        return tuple(sorted(set(config.meter.channels)))
    return (1,)


def entity_instances(config: BridgeConfig) -> list[EntityInstance]:
    """Every entity this bridge exposes with this configuration, in table order."""
    has_meter = meter_protocol(config) is not None
    has = {"always": True, "meter": has_meter, "ups": config.ups.enabled}
    out: list[EntityInstance] = []
    for desc in BRIDGE_ENTITIES:
        if has.get(desc.requires, False):
            out.append(EntityInstance(desc, desc.key, desc.name, desc.field))
        elif desc.requires == "channel" and has_meter:
            for channel in meter_channels(config):
                suffix = "" if channel == 1 else f"_ch{channel}"
                name = desc.name if channel == 1 else f"{desc.name} (channel {channel})"
                out.append(
                    EntityInstance(
                        desc,
                        desc.key + suffix,
                        name,
                        channel_key(desc.field, channel),
                        channel,
                    )
                )
    return out


def expire_after(config: BridgeConfig) -> int:
    """Seconds without a reading after which Home Assistant shows a measurement unavailable."""
    period = max(config.meter.interval, STATE_MIN_INTERVAL_S)
    return max(EXPIRE_MIN_S, math.ceil(EXPIRE_INTERVALS * period))


def _precision(value: float) -> str:
    # Enough digits for the scaled value, without float noise (0.001 → 6 places).
    digits = max(0, -math.floor(math.log10(abs(value)))) + 3 if value else 0
    return str(digits)


def value_template(entity: EntityInstance) -> str:
    """The Jinja template that extracts this entity's value from its source payload.

    A missing or ``null`` value renders ``None``, which Home Assistant shows as
    *unknown* (not as a stale value and not as an error).
    """
    desc = entity.description
    if desc.template is not None:
        return desc.template
    get = f"{{% set v = value_json.get('{entity.field}') %}}"
    if desc.component == "binary_sensor":
        on, off = ("OFF", "ON") if desc.inverted else ("ON", "OFF")
        return get + f"{{{{ None if v is none else ('{on}' if v else '{off}') }}}}"
    if desc.scale != 1.0:
        places = _precision(desc.scale)
        return get + f"{{{{ None if v is none else (v * {desc.scale!r}) | round({places}) }}}}"
    return get + "{{ v }}"


def device_block(
    config: BridgeConfig, *, device_id: str, device_name: str, sw_version: str
) -> dict[str, Any]:
    protocol = meter_protocol(config)
    model = "Mains bridge"
    if protocol is not None:
        model += f" with {METER_MODELS.get(protocol, protocol)} meter"
    block: dict[str, Any] = {
        "identifiers": [device_identifier(device_id)],
        "name": device_name,
        "manufacturer": MANUFACTURER,
        "model": model,
        "sw_version": sw_version,
        "serial_number": device_id,
    }
    if config.device.configuration_url:
        block["configuration_url"] = config.device.configuration_url
    return block


def origin_block(sw_version: str) -> dict[str, Any]:
    return {"name": ORIGIN_NAME, "sw_version": sw_version, "support_url": SUPPORT_URL}


_SOURCE_QOS: Final = {
    "mains": QOS_MAINS,
    "outage": QOS_OUTAGE,
    "deployment": QOS_DEPLOYMENT,
    "ups": QOS_UPS,
}
"""Sources published at QoS 1 (Home Assistant subscribes to the others at its default, 0)."""


def entity_config(
    config: BridgeConfig, entity: EntityInstance, *, device_id: str
) -> dict[str, Any]:
    """The entity's own part of a discovery config (no device, origin or availability)."""
    desc = entity.description
    topics = BridgeTopics(config.mqtt.base_topic, device_id)
    source_topic = {
        "state": topics.state,
        "mains": topics.mains,
        "outage": topics.outage,
        "health": topics.health,
        "deployment": topics.deployment,
        "ups": topics.ups,
    }
    out: dict[str, Any] = {
        "name": entity.name,
        "unique_id": unique_id(device_id, entity.key),
        "state_topic": source_topic[desc.source],
        "value_template": value_template(entity),
    }
    qos = _SOURCE_QOS.get(desc.source)
    if qos is not None:
        out["qos"] = qos
    if desc.attributes:
        out["json_attributes_topic"] = source_topic[desc.source]
    if desc.device_class is not None:
        out["device_class"] = desc.device_class
    if desc.state_class is not None:
        out["state_class"] = desc.state_class
    if desc.unit is not None:
        out["unit_of_measurement"] = desc.unit
    if desc.entity_category is not None:
        out["entity_category"] = desc.entity_category
    if not desc.enabled_by_default:
        out["enabled_by_default"] = False
    if desc.icon is not None:
        out["icon"] = desc.icon
    if desc.precision is not None and desc.component == "sensor":
        out["suggested_display_precision"] = desc.precision
    if desc.expires:
        out["expire_after"] = expire_after(config)
    return out


def _availability(config: BridgeConfig, device_id: str) -> list[dict[str, str]]:
    status = BridgeTopics(config.mqtt.base_topic, device_id).status
    return [{"topic": status, "payload_available": ONLINE, "payload_not_available": OFFLINE}]


def discovery_messages(
    config: BridgeConfig, *, device_id: str, device_name: str, sw_version: str
) -> list[DiscoveryMessage]:
    """Every retained discovery config this bridge publishes (empty when discovery is off)."""
    if not config.mqtt.discovery.enabled:
        return []
    prefix = config.mqtt.discovery.prefix
    device = device_block(
        config, device_id=device_id, device_name=device_name, sw_version=sw_version
    )
    origin = origin_block(sw_version)
    availability = _availability(config, device_id)
    entities = entity_instances(config)
    if config.mqtt.discovery.device_based:
        components: dict[str, Any] = {}
        for entity in entities:
            body = entity_config(config, entity, device_id=device_id)
            components[entity.key] = {"platform": entity.description.component, **body}
        payload = {
            "device": device,
            "origin": origin,
            "availability": availability,
            "components": components,
        }
        topic = f"{prefix}/{DEVICE_COMPONENT}/{device_id}/config"
        return [DiscoveryMessage(topic, dumps(payload))]
    out: list[DiscoveryMessage] = []
    for entity in entities:
        body = entity_config(config, entity, device_id=device_id)
        body.update(device=device, origin=origin, availability=availability)
        topic = discovery_topic(prefix, entity.description.component, device_id, entity.key)
        out.append(DiscoveryMessage(topic, dumps(body)))
    return out


def discovery_filter(config: BridgeConfig, device_id: str) -> str:
    """Subscription matching every discovery topic this bridge may ever have published."""
    return f"{config.mqtt.discovery.prefix}/+/{device_id}/#"
