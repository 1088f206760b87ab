"""Home Assistant MQTT discovery for a shutdown client (pure: topics and payloads only).

Two entities on a device ``powerbridge client <name>``, both read from the retained
``clients/<id>/state`` and made unavailable by the client's last will:

* ``sensor`` *Shutdown in* — seconds left (``device_class: duration``), unknown when idle;
  the whole state payload is attached as attributes (bridges, reason, deadline);
* ``binary_sensor`` *Armed* — on while the client would shut this computer down if
  needed (every watched bridge seen alive, not a dry run, no failed shutdown).
"""

from __future__ import annotations

from typing import Any

from bridge import __version__
from bridge.mqtt.contract import (
    OFFLINE,
    ONLINE,
    ClientTopics,
    client_node_id,
    discovery_topic,
    dumps,
)

SHUTDOWN_IN = "shutdown_in"
ARMED = "armed"


def client_discovery(
    prefix: str, base: str, client_id: str, name: str, *, version: str = __version__
) -> list[tuple[str, bytes]]:
    """``(topic, retained payload)`` for every discovery message of this client."""
    node = client_node_id(client_id)
    topics = ClientTopics(base, client_id)
    shared: dict[str, Any] = {
        "availability": [
            {"topic": topics.status, "payload_available": ONLINE, "payload_not_available": OFFLINE}
        ],
        "device": {
            "identifiers": [f"powerbridge_{node}"],
            "name": name,
            "manufacturer": "powerbridge",
            "model": "Shutdown client",
            "sw_version": version,
        },
        "origin": {"name": "powerbridge", "sw_version": version},
        "state_topic": topics.state,
    }
    sensor = {
        **shared,
        "name": "Shutdown in",
        "unique_id": f"{node}_{SHUTDOWN_IN}",
        # Home Assistant 2025.10+ takes the entity id from ``default_entity_id`` (and
        # ignores ``object_id`` from 2026.4); older releases read ``object_id``.
        "default_entity_id": f"sensor.{node}_{SHUTDOWN_IN}".replace("-", "_"),
        "object_id": f"{node}_{SHUTDOWN_IN}",
        "device_class": "duration",
        "unit_of_measurement": "s",
        "icon": "mdi:timer-alert-outline",
        "value_template": (
            "{{ value_json.seconds_left | round(0) | int "
            "if value_json.seconds_left is not none else None }}"
        ),
        "json_attributes_topic": topics.state,
    }
    armed = {
        **shared,
        "name": "Armed",
        "unique_id": f"{node}_{ARMED}",
        "default_entity_id": f"binary_sensor.{node}_{ARMED}".replace("-", "_"),
        "object_id": f"{node}_{ARMED}",
        "icon": "mdi:shield-power",
        "entity_category": "diagnostic",
        "value_template": "{{ 'ON' if value_json.armed else 'OFF' }}",
    }
    return [
        (discovery_topic(prefix, "sensor", node, SHUTDOWN_IN), dumps(sensor)),
        (discovery_topic(prefix, "binary_sensor", node, ARMED), dumps(armed)),
    ]
