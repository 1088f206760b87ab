"""Discovery payloads generated from the entity table: topics, ids, HA semantics."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from bridge.config.bridge import BridgeConfig, parse_bridge_config
from bridge.mqtt import discovery
from bridge.mqtt.discovery import (
    DiscoveryMessage,
    discovery_messages,
    entity_instances,
    value_template,
)
from bridge.mqtt.entities import BRIDGE_ENTITIES

DEVICE = "rack-a"


def config(text: str = "") -> BridgeConfig:
    return parse_bridge_config(text or "device: {id: rack-a}\n")


def payloads(cfg: BridgeConfig) -> dict[str, dict[str, object]]:
    msgs = discovery_messages(cfg, device_id=DEVICE, device_name="Rack A", sw_version="1.2.3")
    return {m.topic: json.loads(m.payload) for m in msgs}


SIM_MCP = """
device: {id: rack-a, configuration_url: "http://rack-a.local"}
meter: {type: simulated, channels: [1, 2], interval: 100ms}
simulation: {enabled: true, meter_protocol: mcp39f511n}
"""


def test_module_does_not_import_paho() -> None:
    tree = ast.parse(Path(discovery.__file__).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [n for n in names if n.startswith("paho")]
    assert "bridge.config.bridge" not in [
        n.module for n in tree.body if isinstance(n, ast.ImportFrom)
    ]  # only under TYPE_CHECKING


def test_mains_only_bridge_has_no_meter_entities() -> None:
    by_topic = payloads(config())
    keys = {p["unique_id"] for p in by_topic.values()}
    assert "rack-a_mains" in keys
    assert "rack-a_power" not in keys
    assert "rack-a_meter_link" not in keys
    assert all(
        isinstance(m, DiscoveryMessage)
        for m in discovery_messages(config(), device_id=DEVICE, device_name="x", sw_version="1")
    )


def test_topics_unique_ids_and_shared_blocks() -> None:
    by_topic = payloads(config(SIM_MCP))
    power2 = by_topic["homeassistant/sensor/rack-a/power_ch2/config"]
    assert power2["unique_id"] == "rack-a_power_ch2"
    assert power2["name"] == "Power (channel 2)"
    assert power2["state_topic"] == "powerbridge/rack-a/state"
    assert "power_w_ch2" in str(power2["value_template"])
    assert power2["device_class"] == "power"
    assert power2["state_class"] == "measurement"
    assert power2["unit_of_measurement"] == "W"
    assert power2["expire_after"] == 10
    for payload in by_topic.values():
        assert payload["availability"] == [
            {
                "topic": "powerbridge/rack-a/status",
                "payload_available": "online",
                "payload_not_available": "offline",
            }
        ]
        device = payload["device"]
        assert isinstance(device, dict)
        assert device["identifiers"] == ["powerbridge_rack-a"]
        assert device["name"] == "Rack A"
        assert device["sw_version"] == "1.2.3"
        assert device["serial_number"] == DEVICE
        assert device["configuration_url"] == "http://rack-a.local"
        assert "MCP39F511N" in str(device["model"])
        assert payload["origin"] == {
            "name": "powerbridge",
            "sw_version": "1.2.3",
            "support_url": discovery.SUPPORT_URL,
        }
        assert "Rack A" not in str(payload["name"])  # names never repeat the device name
    # Every topic is under the node id the broker ACL grants to this bridge.
    assert all(t.split("/")[2] == DEVICE and t.endswith("/config") for t in by_topic)
    assert len({p["unique_id"] for p in by_topic.values()}) == len(by_topic)


def test_ha_semantics_of_key_entities() -> None:
    by_id = {p["unique_id"]: p for p in payloads(config(SIM_MCP)).values()}
    energy = by_id["rack-a_energy"]
    assert (energy["device_class"], energy["state_class"], energy["unit_of_measurement"]) == (
        "energy",
        "total_increasing",
        "kWh",
    )
    assert "expire_after" not in energy  # a total keeps its last value
    mains = by_id["rack-a_mains"]
    assert mains["device_class"] == "power"
    assert mains["state_topic"] == "powerbridge/rack-a/mains"
    assert mains["qos"] == 1
    assert "expire_after" not in mains
    started = by_id["rack-a_outage_started"]
    assert started["device_class"] == "timestamp"
    assert started["state_topic"] == "powerbridge/rack-a/outage"
    under = by_id["rack-a_under_voltage"]
    assert (under["device_class"], under["entity_category"]) == ("problem", "diagnostic")
    assert by_id["rack-a_spool_depth"]["enabled_by_default"] is False
    assert "enabled_by_default" not in by_id["rack-a_disk_free"]
    assert by_id["rack-a_voltage"]["suggested_display_precision"] == 1
    assert "suggested_display_precision" not in under  # binary sensors have none


def test_deployment_entity_carries_the_record_as_attributes() -> None:
    """Name as the state; the record (latitude/longitude among it) as attributes."""
    by_id = {p["unique_id"]: p for p in payloads(config()).values()}
    deployment = by_id["rack-a_deployment"]
    assert deployment["state_topic"] == "powerbridge/rack-a/deployment"
    assert deployment["json_attributes_topic"] == "powerbridge/rack-a/deployment"
    assert deployment["entity_category"] == "diagnostic"
    assert deployment["qos"] == 1
    assert "name" in deployment["value_template"]
    assert "json_attributes_topic" not in by_id["rack-a_mains"]


def test_expire_after_follows_the_meter_interval() -> None:
    slow = config("device: {id: a}\nmeter: {type: pzem004t, port: /dev/x, interval: 60s}\n")
    voltage = next(p for p in payloads(slow).values() if p["unique_id"] == "rack-a_voltage")
    assert voltage["expire_after"] == 300


def test_only_mcp_has_two_channels() -> None:
    pzem = config("device: {id: a}\nmeter: {type: pzem004t, port: /dev/x, channels: [1, 2]}\n")
    keys = [e.key for e in entity_instances(pzem)]
    assert "power" in keys
    assert "power_ch2" not in keys


def test_disabled_discovery_publishes_nothing() -> None:
    assert payloads(config("device: {id: a}\nmqtt: {discovery: {enabled: false}}\n")) == {}


def test_device_based_discovery_is_one_message() -> None:
    cfg = config(SIM_MCP + "mqtt: {discovery: {device_based: true}}\n")
    by_topic = payloads(cfg)
    assert list(by_topic) == ["homeassistant/device/rack-a/config"]
    payload = by_topic["homeassistant/device/rack-a/config"]
    components = payload["components"]
    assert isinstance(components, dict)
    assert components["power_ch2"]["platform"] == "sensor"
    assert components["mains"]["platform"] == "binary_sensor"
    assert len(components) == len(entity_instances(cfg))
    assert "device" in payload
    assert "origin" in payload


@pytest.mark.parametrize("entity", entity_instances(config(SIM_MCP)), ids=lambda e: e.key)
def test_value_templates_are_well_formed(entity: discovery.EntityInstance) -> None:
    template = value_template(entity)
    assert template.count("{{") == template.count("}}") == 1
    assert template.count("{%") == template.count("%}")
    if entity.description.template is None:
        assert f"'{entity.field}'" in template


def test_every_table_entity_appears_with_a_meter_and_a_ups() -> None:
    keys = {e.description.key for e in entity_instances(config(SIM_MCP + "ups: {name: rack}\n"))}
    assert keys == {d.key for d in BRIDGE_ENTITIES}


UPS_KEYS = {"ups_status", "battery_charge", "battery_runtime", "ups_load", "low_battery"}


def test_ups_entities_only_with_a_ups_section() -> None:
    assert not UPS_KEYS & {e.key for e in entity_instances(config(SIM_MCP))}
    by_key = {
        str(p["unique_id"]).removeprefix("rack-a_"): p
        for p in payloads(config("device: {id: rack-a}\nups: {name: rack}\n")).values()
    }
    assert by_key.keys() >= UPS_KEYS
    for key in UPS_KEYS:
        entity = by_key[key]
        assert entity["state_topic"] == "powerbridge/rack-a/ups"
        assert entity["qos"] == 1
        assert "expire_after" not in entity
        assert entity["availability"] == [
            {
                "topic": "powerbridge/rack-a/status",
                "payload_available": "online",
                "payload_not_available": "offline",
            }
        ]
    assert by_key["battery_charge"]["device_class"] == "battery"
    assert by_key["battery_charge"]["unit_of_measurement"] == "%"
    assert by_key["battery_runtime"]["device_class"] == "duration"
    assert by_key["battery_runtime"]["unit_of_measurement"] == "s"
    assert by_key["low_battery"]["device_class"] == "battery"
    assert "low_battery" in str(by_key["low_battery"]["value_template"])
    assert by_key["ups_load"]["unit_of_measurement"] == "%"
