"""Config flow: bridges found over MQTT, manual entry by device id, duplicates, options."""

from __future__ import annotations

import pytest
from custom_components.powerbridge.const import (
    CONF_BASE_TOPIC,
    CONF_BRIDGE_ENTITIES,
    CONF_DEVICE_ID,
    CONF_SIGNING_KEY,
    DOMAIN,
)
from custom_components.powerbridge.runtime import runtime_of
from homeassistant import config_entries
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.mqtt import MqttServiceInfo
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_mqtt_message,
)
from pytest_homeassistant_custom_component.typing import MqttMockHAClient

from .conftest import KEY


def discovery(topic: str, payload: str | bytes = "online") -> MqttServiceInfo:
    return MqttServiceInfo(
        topic=topic,
        payload=payload,
        qos=1,
        retain=True,
        subscribed_topic="powerbridge/+/status",
        timestamp=dt_util.utcnow(),
    )


async def test_discovered_bridge_is_offered_and_added(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient
) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": config_entries.SOURCE_MQTT},
        data=discovery("powerbridge/rack-a/status"),
    )
    assert result["type"] == FlowResultType.FORM
    assert result["step_id"] == "confirm"
    assert result["description_placeholders"] == {
        "device_id": "rack-a",
        "base_topic": "powerbridge",
    }
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    await hass.async_block_till_done()
    assert result["type"] == FlowResultType.CREATE_ENTRY
    assert result["title"] == "powerbridge rack-a"
    assert result["data"] == {CONF_DEVICE_ID: "rack-a", CONF_BASE_TOPIC: "powerbridge"}
    assert result["result"].unique_id == "rack-a"


async def test_the_manifest_subscribes_to_bridge_status_topics(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient
) -> None:
    """Home Assistant's MQTT integration starts our flow from the manifest's topic."""
    async_fire_mqtt_message(hass, "powerbridge/rack-a/status", "online", retain=True)
    async_fire_mqtt_message(hass, "powerbridge/clients/status", "online", retain=True)
    await hass.async_block_till_done()
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [f["context"]["unique_id"] for f in flows] == ["rack-a"]
    assert flows[0]["context"]["title_placeholders"] == {"device_id": "rack-a"}


async def test_a_configured_bridge_does_not_stop_discovery_of_others(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient
) -> None:
    MockConfigEntry(domain=DOMAIN, unique_id="rack-a", data={CONF_DEVICE_ID: "rack-a"}).add_to_hass(
        hass
    )
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": config_entries.SOURCE_MQTT},
        data=discovery("powerbridge/rack-a/status"),
    )
    assert result["type"] == FlowResultType.ABORT
    # Not "already_configured": after that reason, Home Assistant's MQTT integration
    # drops the one subscription that discovers every bridge.
    assert result["reason"] == "bridge_already_configured"

    async_fire_mqtt_message(hass, "powerbridge/rack-a/status", "online", retain=True)
    await hass.async_block_till_done()
    async_fire_mqtt_message(hass, "powerbridge/rack-b/status", "offline", retain=True)
    await hass.async_block_till_done()
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [f["context"]["unique_id"] for f in flows] == ["rack-b"]


async def test_an_ignored_bridge_is_not_offered_again(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient
) -> None:
    MockConfigEntry(
        domain=DOMAIN, unique_id="rack-a", source=config_entries.SOURCE_IGNORE, data={}
    ).add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": config_entries.SOURCE_MQTT},
        data=discovery("powerbridge/rack-a/status"),
    )
    assert result["type"] == FlowResultType.ABORT
    assert result["reason"] == "bridge_already_configured"


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("powerbridge/rack-a/status", ""),  # a cleared retained status
        ("powerbridge/rack-a/status", "rebooting"),
        ("powerbridge/rack-a/status", b"\xff\xfe"),
        ("powerbridge/clients/status", "online"),  # "clients" is reserved
        ("powerbridge/bad id/status", "online"),
        ("status", "online"),
        ("powerbridge/rack-a/state", "online"),
    ],
)
async def test_other_messages_are_not_bridges(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient, topic: str, payload: str | bytes
) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": config_entries.SOURCE_MQTT},
        data=discovery(topic, payload),
    )
    assert result["type"] == FlowResultType.ABORT
    assert result["reason"] == "not_a_bridge"


async def test_bridge_under_another_base_topic_is_discovered_with_it(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient
) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": config_entries.SOURCE_MQTT},
        data=discovery("site2/power/garage/status"),
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["data"] == {CONF_DEVICE_ID: "garage", CONF_BASE_TOPIC: "site2/power"}


async def test_manual_entry_by_device_id(hass: HomeAssistant, mqtt_mock: MqttMockHAClient) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    assert result["type"] == FlowResultType.FORM
    assert result["step_id"] == "user"

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_DEVICE_ID: "bad id!", CONF_BASE_TOPIC: "powerbridge"}
    )
    assert result["errors"] == {CONF_DEVICE_ID: "invalid_device_id"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_DEVICE_ID: "clients", CONF_BASE_TOPIC: "powerbridge"}
    )
    assert result["errors"] == {CONF_DEVICE_ID: "invalid_device_id"}
    for base in ("power/#", "power/", "", "a\x00b"):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_DEVICE_ID: "rack-a", CONF_BASE_TOPIC: base}
        )
        assert result["errors"] == {CONF_BASE_TOPIC: "invalid_base_topic"}, base

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_DEVICE_ID: " rack-a ", CONF_BASE_TOPIC: "powerbridge"}
    )
    await hass.async_block_till_done()
    assert result["type"] == FlowResultType.CREATE_ENTRY
    assert result["data"] == {CONF_DEVICE_ID: "rack-a", CONF_BASE_TOPIC: "powerbridge"}


async def test_manual_entry_of_a_configured_bridge_aborts(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient
) -> None:
    MockConfigEntry(domain=DOMAIN, unique_id="rack-a", data={CONF_DEVICE_ID: "rack-a"}).add_to_hass(
        hass
    )
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_DEVICE_ID: "rack-a", CONF_BASE_TOPIC: "powerbridge"}
    )
    assert result["type"] == FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_manual_entry_needs_mqtt(hass: HomeAssistant) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    assert result["type"] == FlowResultType.ABORT
    assert result["reason"] == "mqtt_not_set_up"


async def test_options_flow_sets_the_key_and_reloads(
    hass: HomeAssistant, setup_bridge: MockConfigEntry
) -> None:
    result = await hass.config_entries.options.async_init(setup_bridge.entry_id)
    assert result["type"] == FlowResultType.FORM
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_SIGNING_KEY: "short", CONF_BRIDGE_ENTITIES: False}
    )
    assert result["errors"] == {CONF_SIGNING_KEY: "key_too_short"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_SIGNING_KEY: f" {KEY}\n", CONF_BRIDGE_ENTITIES: True}
    )
    await hass.async_block_till_done()
    assert result["type"] == FlowResultType.CREATE_ENTRY
    assert setup_bridge.options == {CONF_SIGNING_KEY: KEY, CONF_BRIDGE_ENTITIES: True}
    # The reload applied it: the bridge's own entities now exist, the key is in use.
    assert hass.states.get("binary_sensor.powerbridge_rack_a_mains") is not None
    runtime = runtime_of(hass, setup_bridge)
    assert runtime is not None
    assert runtime.key == KEY.encode()

    # The key can be removed again (empty field).
    result = await hass.config_entries.options.async_init(setup_bridge.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_BRIDGE_ENTITIES: False}
    )
    await hass.async_block_till_done()
    runtime = runtime_of(hass, setup_bridge)
    assert runtime is not None
    assert runtime.key is None


async def test_manual_entry_while_the_bridge_is_being_offered(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient
) -> None:
    discovered = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": config_entries.SOURCE_MQTT},
        data=discovery("powerbridge/rack-a/status"),
    )
    assert discovered["type"] == FlowResultType.FORM
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_DEVICE_ID: "rack-a", CONF_BASE_TOPIC: "powerbridge"}
    )
    await hass.async_block_till_done()
    assert result["type"] == FlowResultType.CREATE_ENTRY
    assert hass.config_entries.flow.async_progress_by_handler(DOMAIN) == []
