"""Set-up, the shared device, unload, reload and removal."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from unittest.mock import patch

from custom_components.powerbridge.const import DOMAIN, EVENT_OUTAGE_STARTED
from custom_components.powerbridge.runtime import runtime_of
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_mqtt_message,
)
from pytest_homeassistant_custom_component.typing import MqttMockHAClient

from .conftest import DEVICE_ID, T0, Bridge


async def test_component_joins_the_discovery_device(
    hass: HomeAssistant,
    mqtt_mock: MqttMockHAClient,
    bridge_entry: MockConfigEntry,
) -> None:
    """Discovery first (as on a real install), then the component: one device."""
    config = {
        "name": "Power",
        "unique_id": f"{DEVICE_ID}_power",
        "state_topic": "powerbridge/rack-a/state",
        "value_template": "{{ value_json.power_w }}",
        "device_class": "power",
        "unit_of_measurement": "W",
        "device": {
            "identifiers": [f"powerbridge_{DEVICE_ID}"],
            "name": "Rack A UPS",
            "manufacturer": "powerbridge",
            "model": "Mains bridge with PZEM-004T meter",
            "sw_version": "0.1.0",
        },
    }
    async_fire_mqtt_message(
        hass, f"homeassistant/sensor/{DEVICE_ID}/power/config", json.dumps(config), retain=True
    )
    await hass.async_block_till_done()
    assert await hass.config_entries.async_setup(bridge_entry.entry_id)
    await hass.async_block_till_done()

    devices = dr.async_get(hass)
    [device] = [d for d in devices.devices.values() if bridge_entry.entry_id in d.config_entries]
    assert device.identifiers == {("mqtt", f"powerbridge_{DEVICE_ID}")}
    assert device.name == "Rack A UPS"  # discovery's name is kept
    assert device.model == "Mains bridge with PZEM-004T meter"
    entities = er.async_entries_for_device(er.async_get(hass), device.id)
    platforms = {(e.platform, e.unique_id) for e in entities}
    assert ("mqtt", f"{DEVICE_ID}_power") in platforms
    assert ("powerbridge", f"{DEVICE_ID}_outage_duration") in platforms
    assert hass.states.get("sensor.rack_a_ups_outage_duration") is not None


async def test_component_first_creates_the_device_discovery_then_names_it(
    hass: HomeAssistant, setup_bridge: MockConfigEntry
) -> None:
    devices = dr.async_get(hass)
    device = devices.async_get_device(identifiers={("mqtt", f"powerbridge_{DEVICE_ID}")})
    assert device is not None
    assert device.name == f"powerbridge {DEVICE_ID}"
    config = {
        "name": "Power",
        "unique_id": f"{DEVICE_ID}_power",
        "state_topic": "powerbridge/rack-a/state",
        "device": {"identifiers": [f"powerbridge_{DEVICE_ID}"], "name": "Rack A UPS"},
    }
    async_fire_mqtt_message(
        hass, f"homeassistant/sensor/{DEVICE_ID}/power/config", json.dumps(config), retain=True
    )
    await hass.async_block_till_done()
    device = devices.async_get(device.id)
    assert device is not None
    assert device.name == "Rack A UPS"
    assert len(device.config_entries) == 2  # mqtt and powerbridge


async def test_unload_stops_everything_and_reload_restores(
    hass: HomeAssistant, setup_bridge: MockConfigEntry, bridge: Bridge
) -> None:
    bridge.status("online")
    bridge.mains("off", since=T0)  # an outage: the live timer runs
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(setup_bridge.entry_id)
    await hass.async_block_till_done()
    assert setup_bridge.state is ConfigEntryState.NOT_LOADED
    assert runtime_of(hass, setup_bridge) is None
    assert hass.states.get("sensor.powerbridge_rack_a_outage_duration").state == STATE_UNAVAILABLE  # type: ignore[union-attr]

    # Unsubscribed: a new outage announcement is no longer heard.
    events = async_capture_events(hass, EVENT_OUTAGE_STARTED)
    bridge.mains("on", since=T0 + timedelta(seconds=5), last_outage_s=5.0)
    bridge.mains("off", since=T0 + timedelta(seconds=9))
    await hass.async_block_till_done()
    assert not events

    assert await hass.config_entries.async_setup(setup_bridge.entry_id)
    await hass.async_block_till_done()
    assert setup_bridge.state is ConfigEntryState.LOADED
    assert hass.states.get("sensor.powerbridge_rack_a_outages_today").state == "1"  # type: ignore[union-attr]


async def test_not_ready_while_mqtt_is_unavailable(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient, bridge_entry: MockConfigEntry
) -> None:
    with patch("custom_components.powerbridge.mqtt.async_wait_for_mqtt_client", return_value=False):
        await hass.config_entries.async_setup(bridge_entry.entry_id)
        await hass.async_block_till_done()
        assert bridge_entry.state is ConfigEntryState.SETUP_RETRY
        # Cancel the scheduled retry while MQTT is still "unavailable": a retry that ran
        # after the test would set the entry up behind its back.
        assert await hass.config_entries.async_unload(bridge_entry.entry_id)
        assert bridge_entry.state is ConfigEntryState.NOT_LOADED


async def test_removing_the_entry_forgets_its_history(
    hass: HomeAssistant,
    setup_bridge: MockConfigEntry,
    bridge: Bridge,
    hass_storage: dict[str, Any],
) -> None:
    bridge.mains("off", since=T0)
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(setup_bridge.entry_id)
    assert f"{DOMAIN}.{DEVICE_ID}" in hass_storage
    await hass.config_entries.async_remove(setup_bridge.entry_id)
    await hass.async_block_till_done()
    assert f"{DOMAIN}.{DEVICE_ID}" not in hass_storage


async def test_discovery_of_a_set_up_bridge_does_not_restart_it(
    hass: HomeAssistant, setup_bridge: MockConfigEntry, bridge: Bridge
) -> None:
    """The bridge's retained ``status`` starts a discovery flow for a bridge that is set
    up already; Home Assistant 2024.10+ then updates the entry's discovery keys.  That
    must not reload the entry: the runtime would forget what it had just heard."""
    runtime = runtime_of(hass, setup_bridge)
    bridge.status("online", retain=True)
    await hass.async_block_till_done()
    assert runtime_of(hass, setup_bridge) is runtime
    assert runtime is not None
    assert runtime.online is True
