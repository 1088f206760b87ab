"""The component's device on both of Home Assistant's device models, and the upgrade.

Before 2026.8 the component joins the device that the bridge's MQTT discovery creates;
from 2026.8 a device belongs to one config entry and the component owns its own (see
custom_components/powerbridge/devices.py).  On releases that predate 2026.8 the new
model is emulated by answering the component's feature detection with "yes".
"""

from __future__ import annotations

from typing import Any

import pytest
from custom_components.powerbridge import devices
from custom_components.powerbridge.const import DOMAIN
from homeassistant.components import automation
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_mock_service

from .conftest import DEVICE_ID, T0, Bridge, component_device_id


def _shared_device(hass: HomeAssistant) -> dr.DeviceEntry:
    device = dr.async_get(hass).async_get_device(identifiers={devices.mqtt_identifier(DEVICE_ID)})
    assert device is not None
    return device


async def _mains_lost_automation(hass: HomeAssistant, alias: str, device_id: str) -> None:
    config: dict[str, Any] = {
        "alias": alias,
        "trigger": {
            "platform": "device",
            "domain": DOMAIN,
            "device_id": device_id,
            "type": "mains_lost",
        },
        "action": {"service": "test.automation", "data": {"alias": alias}},
    }
    assert await async_setup_component(hass, automation.DOMAIN, {automation.DOMAIN: [config]})
    await hass.async_block_till_done()


async def test_an_automation_on_the_shared_device_fires_after_the_upgrade(
    hass: HomeAssistant,
    monkeypatch: pytest.MonkeyPatch,
    setup_bridge: MockConfigEntry,
    bridge: Bridge,
) -> None:
    """Made against the device shared with discovery (Home Assistant before 2026.8), a
    device trigger still fires once the component owns a device of its own."""
    calls: list[ServiceCall] = async_mock_service(hass, "test", "automation")
    monkeypatch.setattr(devices, "per_entry_devices", lambda: False)
    assert await hass.config_entries.async_reload(setup_bridge.entry_id)
    await hass.async_block_till_done()
    shared = _shared_device(hass)
    assert component_device_id(hass) == shared.id
    await _mains_lost_automation(hass, "made before the upgrade", shared.id)

    # The upgrade: devices become per config entry; the component sets up again.
    monkeypatch.setattr(devices, "per_entry_devices", lambda: True)
    assert await hass.config_entries.async_reload(setup_bridge.entry_id)
    await hass.async_block_till_done()
    own = component_device_id(hass)
    assert own != shared.id
    # As after a restart, the automation's trigger is attached again (old device id).
    for service in ("turn_off", "turn_on"):
        await hass.services.async_call(
            automation.DOMAIN, service, {"entity_id": "all"}, blocking=True
        )
    await hass.async_block_till_done()

    bridge.mains("on", since=T0)
    bridge.mains("off", since=T0)
    await hass.async_block_till_done()
    assert [c.data["alias"] for c in calls] == ["made before the upgrade"]


async def test_per_entry_devices_the_component_owns_its_device(
    hass: HomeAssistant,
    monkeypatch: pytest.MonkeyPatch,
    mqtt_mock: object,
    bridge_entry: MockConfigEntry,
) -> None:
    monkeypatch.setattr(devices, "per_entry_devices", lambda: True)
    # The bridge's discovery device exists first, in the MQTT entry.
    mqtt_entry = MockConfigEntry(domain="mqtt")
    mqtt_entry.add_to_hass(hass)
    registry = dr.async_get(hass)
    discovery = registry.async_get_or_create(
        config_entry_id=mqtt_entry.entry_id,
        identifiers={devices.mqtt_identifier(DEVICE_ID)},
        name="Rack A UPS",
    )
    assert await hass.config_entries.async_setup(bridge_entry.entry_id)
    await hass.async_block_till_done()

    own = registry.async_get(component_device_id(hass))
    assert own is not None
    assert own.id != discovery.id
    assert own.identifiers == {(DOMAIN, DEVICE_ID)}
    assert devices.entry_ids_of(own) == {bridge_entry.entry_id}
    assert devices.bridge_id_of(own) == DEVICE_ID
    assert devices.bridge_id_of(discovery) == DEVICE_ID
    # Discovery's device keeps its name and gets none of the component's entities.
    discovery_after = registry.async_get(discovery.id)
    assert discovery_after is not None
    assert discovery_after.name == "Rack A UPS"
    assert bridge_entry.entry_id not in devices.entry_ids_of(discovery_after)
    entities = er.async_entries_for_device(er.async_get(hass), own.id)
    assert {e.unique_id for e in entities} >= {f"{DEVICE_ID}_outage_duration"}
    assert not er.async_entries_for_device(er.async_get(hass), discovery.id)


async def test_devices_that_are_not_bridges(
    hass: HomeAssistant, setup_bridge: MockConfigEntry
) -> None:
    registry = dr.async_get(hass)
    other_entry = MockConfigEntry(domain="test")
    other_entry.add_to_hass(hass)
    unrelated = registry.async_get_or_create(
        config_entry_id=other_entry.entry_id,
        identifiers={("mqtt", "zigbee2mqtt_0x1234"), ("test", "x")},
    )
    assert devices.bridge_id_of(unrelated) is None
    assert devices.async_device_id(hass, other_entry, DEVICE_ID) is None


def test_config_entry_id_is_preferred_where_the_release_has_it() -> None:
    class SingleEntryDevice:
        config_entry_id = "entry-1"
        config_entries = frozenset({"entry-1", "entry-2"})  # the deprecated view, never read

    assert devices.entry_ids_of(SingleEntryDevice()) == {"entry-1"}  # type: ignore[arg-type]
