"""The dashboard refers to entities that exist, and its clients table renders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from bridge.config.bridge import parse_bridge_config
from bridge.mqtt.contract import encode_client_state
from bridge.mqtt.discovery import discovery_messages
from custom_components.powerbridge.const import CONF_BASE_TOPIC, CONF_DEVICE_ID, DOMAIN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.template import Template
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_mqtt_message
from pytest_homeassistant_custom_component.typing import MqttMockHAClient

DASHBOARD = Path(__file__).resolve().parent.parent / "dashboards" / "powerbridge.yaml"
# The bridge of `powerbridge demo` (bridge/demo/stack.py), for which the dashboard is written.
DEMO_BRIDGE = """
device: {id: demo-bridge, name: powerbridge demo}
meter: {type: simulated, interval: 1s}
simulation: {enabled: true, meter_protocol: pzem004t}
"""
CORE_CARDS = {"entities", "glance", "history-graph", "markdown", "vertical-stack"}


def cards(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "type" in node:
            found.append(node)
        for value in node.values():
            found.extend(cards(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(cards(item))
    return found


def entity_ids(node: Any) -> set[str]:
    return {c["entity"] for c in cards(node) if "entity" in c} | {
        e["entity"]
        for c in cards(node)
        for e in c.get("entities", [])
        if isinstance(e, dict) and "entity" in e
    }


def test_dashboard_uses_core_cards_only() -> None:
    dashboard = yaml.safe_load(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["title"] == "Power"
    assert [v["path"] for v in dashboard["views"]] == ["power"]
    assert {c["type"] for c in cards(dashboard["views"])} <= CORE_CARDS


async def setup_demo(hass: HomeAssistant) -> MockConfigEntry:
    config = parse_bridge_config(DEMO_BRIDGE)
    for message in discovery_messages(
        config, device_id="demo-bridge", device_name="powerbridge demo", sw_version="0.1.0"
    ):
        async_fire_mqtt_message(hass, message.topic, message.payload, qos=1, retain=True)
    await hass.async_block_till_done()
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id="demo-bridge",
        data={CONF_DEVICE_ID: "demo-bridge", CONF_BASE_TOPIC: "powerbridge"},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def test_every_entity_of_the_dashboard_exists(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient
) -> None:
    await setup_demo(hass)
    dashboard = yaml.safe_load(DASHBOARD.read_text(encoding="utf-8"))
    wanted = entity_ids(dashboard)
    assert len(wanted) >= 15
    registry = er.async_get(hass)
    missing = sorted(e for e in wanted if registry.async_get(e) is None)
    assert missing == []
    # And none of them is disabled by default.
    assert [e for e in wanted if registry.async_get(e).disabled_by is not None] == []  # type: ignore[union-attr]


async def test_clients_table_renders(hass: HomeAssistant, mqtt_mock: MqttMockHAClient) -> None:
    await setup_demo(hass)
    dashboard = yaml.safe_load(DASHBOARD.read_text(encoding="utf-8"))
    [markdown] = [c for c in cards(dashboard) if c["type"] == "markdown"]
    template = Template(markdown["content"], hass)
    assert "No shutdown client has reported yet." in template.async_render()

    state = {
        "client": "demo-pc",
        "name": "demo PC",
        "state": "counting",
        "dry_run": True,
        "seconds_left": 125.0,
        "bridges": ["demo-bridge"],
    }
    async_fire_mqtt_message(
        hass, "powerbridge/clients/demo-pc/state", encode_client_state(state), qos=1
    )
    await hass.async_block_till_done()
    rendered = Template(markdown["content"], hass).async_render()
    assert rendered.splitlines() == [
        "| Computer | State | Shutdown in |",
        "|:--|:--|--:|",
        "| demo PC (dry run) | **counting down** | 2:05 |",
    ]
