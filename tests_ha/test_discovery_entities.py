"""The bridge's discovery payloads create the intended entities in real Home Assistant.

The configs come from ``bridge.mqtt.discovery.discovery_messages`` (the very function
the bridge publishes with); Home Assistant 2024.3's MQTT integration receives them
through ``async_fire_mqtt_message``; the test then reads the entity registry and the
states.  Expected entity ids are written out by hand: they are what users put in
automations and dashboards, so a change must be deliberate.
"""

from __future__ import annotations

import logging

import pytest
from awesomeversion import AwesomeVersion
from bridge.config.bridge import BridgeConfig, parse_bridge_config
from bridge.model import MainsState
from bridge.mqtt.contract import (
    DeploymentPayload,
    MainsPayload,
    encode_health,
    encode_outage,
    encode_state,
)
from bridge.mqtt.discovery import discovery_messages, entity_instances
from bridge.shutdown.discovery import client_discovery
from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.const import __version__ as ha_version
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import async_fire_mqtt_message
from pytest_homeassistant_custom_component.typing import MqttMockHAClient

from .conftest import T0

DEVICE_ID = "rack-a"
DEVICE_NAME = "powerbridge rack-a"  # bridge.identity.device_name() without device.name

PZEM = "device: {id: rack-a}\nmeter: {type: pzem004t, port: /dev/ttyUSB0}\n"
MCP = """
device: {id: rack-a}
meter: {type: simulated, channels: [1, 2], interval: 1s}
simulation: {enabled: true, meter_protocol: mcp39f511n}
"""

# key -> (entity id, device class, state class, unit, category, enabled by default)
EXPECTED: dict[str, tuple[str, str | None, str | None, str | None, str | None, bool]] = {
    "mains": ("binary_sensor.powerbridge_rack_a_mains", "power", None, None, None, True),
    "deployment": (
        "sensor.powerbridge_rack_a_deployment",
        None,
        None,
        None,
        "diagnostic",
        True,
    ),
    "outage_started": (
        "sensor.powerbridge_rack_a_outage_started",
        "timestamp",
        None,
        None,
        None,
        True,
    ),
    "last_outage_duration": (
        "sensor.powerbridge_rack_a_last_outage_duration",
        "duration",
        "measurement",
        "s",
        None,
        True,
    ),
    "outage_count": (
        "sensor.powerbridge_rack_a_outages",
        None,
        "total_increasing",
        None,
        None,
        True,
    ),
    "voltage": ("sensor.powerbridge_rack_a_voltage", "voltage", "measurement", "V", None, True),
    "frequency": (
        "sensor.powerbridge_rack_a_frequency",
        "frequency",
        "measurement",
        "Hz",
        None,
        True,
    ),
    "power": ("sensor.powerbridge_rack_a_power", "power", "measurement", "W", None, True),
    "current": ("sensor.powerbridge_rack_a_current", "current", "measurement", "A", None, True),
    "power_factor": (
        "sensor.powerbridge_rack_a_power_factor",
        "power_factor",
        "measurement",
        None,
        None,
        True,
    ),
    "apparent_power": (
        "sensor.powerbridge_rack_a_apparent_power",
        "apparent_power",
        "measurement",
        "VA",
        None,
        False,
    ),
    "reactive_power": (
        "sensor.powerbridge_rack_a_reactive_power",
        "reactive_power",
        "measurement",
        "var",
        None,
        False,
    ),
    "energy": ("sensor.powerbridge_rack_a_energy", "energy", "total_increasing", "kWh", None, True),
    "cpu_temperature": (
        "sensor.powerbridge_rack_a_cpu_temperature",
        "temperature",
        "measurement",
        "°C",
        "diagnostic",
        True,
    ),
    "under_voltage": (
        "binary_sensor.powerbridge_rack_a_under_voltage",
        "problem",
        None,
        None,
        "diagnostic",
        True,
    ),
    "throttled": (
        "binary_sensor.powerbridge_rack_a_throttled",
        "problem",
        None,
        None,
        "diagnostic",
        False,
    ),
    "clock_unsynchronised": (
        "binary_sensor.powerbridge_rack_a_clock_not_synchronised",
        "problem",
        None,
        None,
        "diagnostic",
        False,
    ),
    "disk_free": (
        "sensor.powerbridge_rack_a_disk_free",
        "data_size",
        "measurement",
        "MB",
        "diagnostic",
        True,
    ),
    "last_boot": (
        "sensor.powerbridge_rack_a_last_boot",
        "timestamp",
        None,
        None,
        "diagnostic",
        True,
    ),
    "meter_link": (
        "binary_sensor.powerbridge_rack_a_meter_link",
        "connectivity",
        None,
        None,
        "diagnostic",
        True,
    ),
    "spool_depth": (
        "sensor.powerbridge_rack_a_spool_depth",
        None,
        "measurement",
        None,
        "diagnostic",
        False,
    ),
    "spool_dropped": (
        "sensor.powerbridge_rack_a_samples_dropped",
        None,
        "total_increasing",
        None,
        "diagnostic",
        True,
    ),
    "broker_reconnects": (
        "sensor.powerbridge_rack_a_broker_reconnects",
        None,
        "total_increasing",
        None,
        "diagnostic",
        False,
    ),
    "flap_count": (
        "sensor.powerbridge_rack_a_mains_flaps",
        None,
        "total_increasing",
        None,
        "diagnostic",
        False,
    ),
    "load": (
        "sensor.powerbridge_rack_a_load_1_min",
        None,
        "measurement",
        None,
        "diagnostic",
        False,
    ),
    "memory_used": (
        "sensor.powerbridge_rack_a_memory_used",
        None,
        "measurement",
        "%",
        "diagnostic",
        False,
    ),
    "process_rss": (
        "sensor.powerbridge_rack_a_bridge_memory",
        "data_size",
        "measurement",
        "MB",
        "diagnostic",
        False,
    ),
}


def config(text: str) -> BridgeConfig:
    return parse_bridge_config(text)


async def publish_discovery(hass: HomeAssistant, cfg: BridgeConfig) -> int:
    messages = discovery_messages(
        cfg, device_id=DEVICE_ID, device_name=DEVICE_NAME, sw_version="0.1.0"
    )
    for message in messages:
        async_fire_mqtt_message(hass, message.topic, message.payload, qos=1, retain=True)
    await hass.async_block_till_done()
    return len(messages)


async def test_discovery_creates_the_intended_entities(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    cfg = config(PZEM)
    assert await publish_discovery(hass, cfg) == len(EXPECTED)
    assert {e.key for e in entity_instances(cfg)} == set(EXPECTED)

    registry = er.async_get(hass)
    mqtt_entries = {e.unique_id: e for e in registry.entities.values() if e.platform == "mqtt"}
    assert set(mqtt_entries) == {f"{DEVICE_ID}_{key}" for key in EXPECTED}
    for key, (entity_id, device_class, state_class, unit, category, enabled) in EXPECTED.items():
        entry = mqtt_entries[f"{DEVICE_ID}_{key}"]
        assert entry.entity_id == entity_id, key
        assert entry.original_device_class == device_class, key
        assert (entry.capabilities or {}).get("state_class") == state_class, key
        assert entry.unit_of_measurement == unit, key
        assert (entry.entity_category.value if entry.entity_category else None) == category, key
        assert (entry.disabled_by is None) == enabled, key
        assert entry.has_entity_name, key

    # One device, named once, carrying every entity.
    device = dr.async_get(hass).async_get_device(identifiers={("mqtt", "powerbridge_rack-a")})
    assert device is not None
    assert device.name == DEVICE_NAME
    assert device.manufacturer == "powerbridge"
    assert device.model == "Mains bridge with PZEM-004T meter"
    assert device.sw_version == "0.1.0"
    assert device.serial_number == DEVICE_ID
    assert len(
        er.async_entries_for_device(registry, device.id, include_disabled_entities=True)
    ) == (len(EXPECTED))
    # Home Assistant accepted every config without a complaint.
    complaints = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("homeassistant.components.mqtt") and r.levelno >= logging.WARNING
    ]
    assert complaints == []


async def test_states_from_the_bridge_payloads(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    await publish_discovery(hass, config(PZEM))
    # Availability follows the bridge's status only.
    assert hass.states.get("binary_sensor.powerbridge_rack_a_mains").state == STATE_UNAVAILABLE  # type: ignore[union-attr]
    async_fire_mqtt_message(hass, "powerbridge/rack-a/status", "online", qos=1)
    mains = MainsPayload(
        device=DEVICE_ID,
        state=MainsState.OFF,
        since=T0,
        seq=7,
        ts=T0,
        elapsed_s=2.0,
        outage_count=4,
        last_outage_s=95.2,
    )
    async_fire_mqtt_message(hass, "powerbridge/rack-a/mains", mains.encode(), qos=1)
    async_fire_mqtt_message(
        hass, "powerbridge/rack-a/outage", encode_outage(DEVICE_ID, T0, 7), qos=1
    )
    values = {
        "voltage_v": 229.8,
        "current_a": 0.52,
        "power_w": 118.4,
        "frequency_hz": 50.0,
        "power_factor": 0.99,
        "energy_wh": 15230.0,
    }
    async_fire_mqtt_message(
        hass, "powerbridge/rack-a/state", encode_state(DEVICE_ID, T0, 90211, "pzem004t", values)
    )
    health = {
        "cpu_temperature_c": 48.5,
        "under_voltage": False,
        "clock_synchronised": True,
        "disk_free_mb": 20480.0,
        "boot_time": "2026-11-20T08:00:00.000Z",
        "meter_link": True,
        "spool_dropped": 0,
    }
    async_fire_mqtt_message(hass, "powerbridge/rack-a/health", encode_health(DEVICE_ID, health))
    deployment = DeploymentPayload(
        device=DEVICE_ID,
        name="Rack A, room 2",
        latitude=52.37,
        longitude=4.9,
        started=T0,
        software_version="0.1.0",
        config_sha256="0" * 64,
    )
    async_fire_mqtt_message(
        hass, "powerbridge/rack-a/deployment", deployment.encode(), qos=1, retain=True
    )
    await hass.async_block_till_done()

    def state(entity_id: str) -> str:
        current = hass.states.get(entity_id)
        assert current is not None, entity_id
        return current.state

    assert state("binary_sensor.powerbridge_rack_a_mains") == "off"
    assert state("sensor.powerbridge_rack_a_outage_started") == "2026-11-20T12:00:00+00:00"
    assert float(state("sensor.powerbridge_rack_a_last_outage_duration")) == 95.2
    assert state("sensor.powerbridge_rack_a_outages") == "4"
    assert float(state("sensor.powerbridge_rack_a_power")) == 118.4
    assert float(state("sensor.powerbridge_rack_a_voltage")) == 229.8
    assert float(state("sensor.powerbridge_rack_a_energy")) == 15.23  # Wh on the wire, kWh in HA
    assert state("sensor.powerbridge_rack_a_cpu_temperature") == "48.5"
    assert state("binary_sensor.powerbridge_rack_a_under_voltage") == "off"
    assert state("binary_sensor.powerbridge_rack_a_meter_link") == "on"
    assert state("sensor.powerbridge_rack_a_last_boot") == "2026-11-20T08:00:00+00:00"
    # The deployment's name, with its record as attributes (coordinates put it on the map).
    placed = hass.states.get("sensor.powerbridge_rack_a_deployment")
    assert placed is not None
    assert placed.state == "Rack A, room 2"
    assert (placed.attributes["latitude"], placed.attributes["longitude"]) == (52.37, 4.9)
    assert placed.attributes["active"] is True

    # Mains back: the outage timestamp clears to unknown; a meter without the
    # optional quantities leaves them unknown, never an error.
    mains_on = MainsPayload(
        device=DEVICE_ID,
        state=MainsState.ON,
        since=T0,
        seq=8,
        ts=T0,
        elapsed_s=0.5,
        outage_count=4,
        last_outage_s=30.0,
    )
    async_fire_mqtt_message(hass, "powerbridge/rack-a/mains", mains_on.encode(), qos=1)
    async_fire_mqtt_message(
        hass, "powerbridge/rack-a/outage", encode_outage(DEVICE_ID, None, 8), qos=1
    )
    async_fire_mqtt_message(
        hass,
        "powerbridge/rack-a/state",
        encode_state(DEVICE_ID, T0, 90212, "pzem004t", {"voltage_v": 230.1}),
    )
    await hass.async_block_till_done()
    assert state("binary_sensor.powerbridge_rack_a_mains") == "on"
    assert state("sensor.powerbridge_rack_a_outage_started") == STATE_UNKNOWN
    assert state("sensor.powerbridge_rack_a_power") == STATE_UNKNOWN
    assert float(state("sensor.powerbridge_rack_a_last_outage_duration")) == 30.0

    async_fire_mqtt_message(hass, "powerbridge/rack-a/status", "offline", qos=1)
    await hass.async_block_till_done()
    assert state("binary_sensor.powerbridge_rack_a_mains") == STATE_UNAVAILABLE
    complaints = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("homeassistant.components.mqtt") and r.levelno >= logging.WARNING
    ]
    # Home Assistant before 2024.10 warns when a timestamp sensor is cleared (it still
    # shows "unknown", as intended); later releases accept it silently.  The bridge feeds
    # "Outage started" from the ``outage`` topic, published on changes only, so this is
    # one warning per outage end on old releases (see bridge/mqtt/entities.py) -- and
    # nothing else may complain on any release.
    cleared_warning = [
        "Invalid state message "
        '\'{"device":"rack-a","seq":8,"since":null,"v":1}\' from \'powerbridge/rack-a/outage\''
    ]
    old_release = AwesomeVersion(ha_version) < AwesomeVersion("2024.10")
    assert complaints == (cleared_warning if old_release else [])


async def test_second_channel_of_an_mcp_meter(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient
) -> None:
    await publish_discovery(hass, config(MCP))
    registry = er.async_get(hass)
    power2 = registry.async_get_entity_id("sensor", "mqtt", f"{DEVICE_ID}_power_ch2")
    energy2 = registry.async_get_entity_id("sensor", "mqtt", f"{DEVICE_ID}_energy_ch2")
    assert power2 == "sensor.powerbridge_rack_a_power_channel_2"
    assert energy2 == "sensor.powerbridge_rack_a_energy_channel_2"
    entry = registry.async_get(energy2)
    assert entry is not None
    assert (entry.original_device_class, entry.unit_of_measurement) == ("energy", "kWh")
    assert registry.async_get_entity_id("sensor", "mqtt", f"{DEVICE_ID}_voltage_ch2") is None
    async_fire_mqtt_message(hass, "powerbridge/rack-a/status", "online", qos=1)
    async_fire_mqtt_message(
        hass,
        "powerbridge/rack-a/state",
        encode_state(DEVICE_ID, T0, 1, "mcp39f511n", {"power_w": 10.0, "power_w_ch2": 22.5}),
    )
    await hass.async_block_till_done()
    assert float(hass.states.get(power2).state) == 22.5  # type: ignore[union-attr]
    assert float(hass.states.get("sensor.powerbridge_rack_a_power").state) == 10.0  # type: ignore[union-attr]


async def test_removed_entity_is_cleared_by_an_empty_retained_config(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient
) -> None:
    """The meter was removed from the configuration: the bridge clears its old configs."""

    def topics(text: str) -> set[str]:
        return {
            m.topic
            for m in discovery_messages(
                config(text), device_id=DEVICE_ID, device_name=DEVICE_NAME, sw_version="0.1.0"
            )
        }

    await publish_discovery(hass, config(PZEM))
    registry = er.async_get(hass)
    assert registry.async_get("sensor.powerbridge_rack_a_power") is not None
    for topic in topics(PZEM) - topics("device: {id: rack-a}\n"):
        # A live update of a retained topic reaches subscribers with retain clear.
        async_fire_mqtt_message(hass, topic, b"", qos=1)
    await hass.async_block_till_done()
    assert registry.async_get("sensor.powerbridge_rack_a_power") is None
    assert registry.async_get("sensor.powerbridge_rack_a_energy") is None
    assert registry.async_get("binary_sensor.powerbridge_rack_a_mains") is not None


async def test_shutdown_client_discovery_names_its_entities_on_every_release(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The shutdown client's discovery (``bridge.shutdown.discovery``, as the client
    publishes it) gives the documented entity ids: from ``object_id`` before 2025.10,
    from ``default_entity_id`` after (``object_id`` is ignored from 2026.4)."""
    caplog.set_level(logging.WARNING)
    for topic, payload in client_discovery("homeassistant", "powerbridge", "pc1", "Office PC"):
        async_fire_mqtt_message(hass, topic, payload, retain=True)
    await hass.async_block_till_done()
    registry = er.async_get(hass)
    by_unique_id = {e.unique_id: e.entity_id for e in registry.entities.values()}
    assert by_unique_id["client-pc1_shutdown_in"] == "sensor.client_pc1_shutdown_in"
    assert by_unique_id["client-pc1_armed"] == "binary_sensor.client_pc1_armed"
    complaints = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("homeassistant.components.mqtt") and r.levelno >= logging.WARNING
    ]
    assert complaints == []
