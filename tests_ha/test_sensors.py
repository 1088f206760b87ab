"""Entity states driven by MQTT messages, as a bridge and its clients publish them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from custom_components.powerbridge.const import CONF_BRIDGE_ENTITIES, CONF_SIGNING_KEY
from custom_components.powerbridge.runtime import runtime_of
from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_mqtt_message,
    async_fire_time_changed,
)

from .conftest import DEVICE_ID, KEY, T0, Bridge, Client

DURATION = "sensor.powerbridge_rack_a_outage_duration"
LAST_START = "sensor.powerbridge_rack_a_last_outage_start"
LAST_END = "sensor.powerbridge_rack_a_last_outage_end"
TODAY = "sensor.powerbridge_rack_a_outages_today"
ENERGY = "sensor.powerbridge_rack_a_energy_during_outages"
LAST_SEEN = "sensor.powerbridge_rack_a_last_seen"


def state(hass: HomeAssistant, entity_id: str) -> str:
    current = hass.states.get(entity_id)
    assert current is not None, f"{entity_id} does not exist"
    return current.state


async def test_entities_have_the_intended_semantics(
    hass: HomeAssistant, setup_bridge: MockConfigEntry
) -> None:
    registry = er.async_get(hass)
    expected = {
        DURATION: ("duration", "measurement", "s", None),
        LAST_START: ("timestamp", None, None, None),
        LAST_END: ("timestamp", None, None, None),
        TODAY: (None, "total_increasing", None, None),
        ENERGY: ("energy", "total_increasing", "kWh", None),
        LAST_SEEN: ("timestamp", None, None, "diagnostic"),
    }
    for entity_id, (device_class, state_class, unit, category) in expected.items():
        entry = registry.async_get(entity_id)
        assert entry is not None, entity_id
        assert entry.unique_id == f"{DEVICE_ID}_{entity_id.split('rack_a_')[1]}".replace(
            "energy_during_outages", "outage_energy"
        )
        attributes = hass.states.get(entity_id).attributes  # type: ignore[union-attr]
        assert attributes.get("device_class") == device_class
        assert attributes.get("state_class") == state_class
        assert attributes.get("unit_of_measurement") == unit
        assert (entry.entity_category and entry.entity_category.value) == category


async def test_outage_lifecycle(
    hass: HomeAssistant,
    setup_bridge: MockConfigEntry,
    bridge: Bridge,
    freezer: FrozenDateTimeFactory,
) -> None:
    freezer.move_to(T0)
    bridge.status("online")
    bridge.energy(15000.0)
    bridge.mains("on", since=T0 - timedelta(days=3), retain=True)
    await hass.async_block_till_done()
    assert state(hass, DURATION) == "0"
    assert state(hass, TODAY) == "0"
    assert state(hass, LAST_START) == STATE_UNKNOWN
    assert state(hass, ENERGY) == "0.0"
    assert state(hass, LAST_SEEN) == T0.isoformat()

    # Mains lost: the message arrives 2.5 s after the first edge (confirmation window).
    freezer.move_to(T0 + timedelta(seconds=2.5))
    bridge.mains("off", since=T0, elapsed_s=2.5)
    await hass.async_block_till_done()
    assert state(hass, DURATION) == "2"
    assert state(hass, TODAY) == "1"

    # The duration keeps counting on Home Assistant's clock while the outage lasts.
    freezer.tick(timedelta(seconds=60))
    bridge.energy(15010.0)  # 10 Wh on battery so far
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert state(hass, DURATION) == "62"
    assert state(hass, ENERGY) == "0.01"

    # A refresh (same seq) corrects the age with the bridge's own elapsed time.
    freezer.tick(timedelta(seconds=28))
    bridge.mains("off", since=T0, elapsed_s=90.0, new=False)
    await hass.async_block_till_done()
    assert state(hass, DURATION) == "90"
    assert state(hass, TODAY) == "1"  # a refresh is not a new outage

    # Mains restored after 95.2 s; 12 Wh used in total.
    freezer.move_to(T0 + timedelta(seconds=96))
    bridge.energy(15012.0)
    bridge.mains("on", since=T0 + timedelta(seconds=95.2), last_outage_s=95.2, elapsed_s=0.8)
    await hass.async_block_till_done()
    assert state(hass, DURATION) == "0"
    assert state(hass, LAST_START) == T0.isoformat()
    # Home Assistant shows timestamps to the second.
    assert state(hass, LAST_END) == (T0 + timedelta(seconds=95)).isoformat()
    assert state(hass, ENERGY) == "0.012"
    assert state(hass, TODAY) == "1"

    # After the outage, more energy used on mains does not count.
    bridge.energy(15100.0)
    await hass.async_block_till_done()
    assert state(hass, ENERGY) == "0.012"


async def test_duration_unavailable_while_bridge_offline(
    hass: HomeAssistant, setup_bridge: MockConfigEntry, bridge: Bridge
) -> None:
    bridge.status("online")
    bridge.mains("off", since=T0)
    await hass.async_block_till_done()
    assert state(hass, DURATION) != STATE_UNAVAILABLE
    bridge.status("offline")
    await hass.async_block_till_done()
    assert state(hass, DURATION) == STATE_UNAVAILABLE
    # History stays available: it is history.
    assert state(hass, TODAY) == "1"


async def test_outages_today_resets_at_local_midnight(
    hass: HomeAssistant,
    setup_bridge: MockConfigEntry,
    bridge: Bridge,
    freezer: FrozenDateTimeFactory,
) -> None:
    freezer.move_to(T0)
    bridge.mains("off", since=T0)
    bridge.mains("on", since=T0 + timedelta(seconds=5), last_outage_s=5.0)
    bridge.mains("off", since=T0 + timedelta(seconds=10))
    bridge.mains("on", since=T0 + timedelta(seconds=12), last_outage_s=2.0)
    await hass.async_block_till_done()
    assert state(hass, TODAY) == "2"
    # Next local midnight (the test instance runs in US/Pacific).
    from homeassistant.util import dt as dt_util

    midnight = dt_util.start_of_local_day(dt_util.as_local(T0)) + timedelta(days=1)
    freezer.move_to(midnight)
    async_fire_time_changed(hass, midnight)
    await hass.async_block_till_done()
    assert state(hass, TODAY) == "0"


async def test_an_outage_that_started_yesterday_is_not_counted_today(
    hass: HomeAssistant,
    setup_bridge: MockConfigEntry,
    bridge: Bridge,
    freezer: FrozenDateTimeFactory,
) -> None:
    freezer.move_to(T0)
    bridge.mains("off", since=T0 - timedelta(days=1), elapsed_s=86400.0)
    await hass.async_block_till_done()
    assert state(hass, TODAY) == "0"
    assert state(hass, DURATION) == "86400"


async def test_invalid_payloads_are_ignored_and_counted(
    hass: HomeAssistant,
    setup_bridge: MockConfigEntry,
    bridge: Bridge,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bridge.mains("on", since=T0)
    await hass.async_block_till_done()
    for leaf, payload in [
        ("mains", b"not json"),
        ("mains", b'{"v": 2, "state": "off"}'),
        ("mains", bridge.mains_payload("off", since=T0).replace(b"rack-a", b"rack-b")),
        ("events", b'{"v": 1, "type": "outage_started"}'),
        ("state", b'{"v": 1, "energy_wh": "lots"}'),
        ("state", b'{"v": 1, "energy_wh": -1}'),
        ("health", b"[]"),
        ("status", b"maybe"),
    ]:
        async_fire_mqtt_message(hass, bridge.topic(leaf), payload)
    await hass.async_block_till_done()
    assert state(hass, DURATION) == "0"  # the forged "off" for another device changed nothing
    assert state(hass, TODAY) == "0"
    runtime = runtime_of(hass, setup_bridge)
    assert runtime is not None
    assert runtime.invalid == {"mains": 3, "events": 1, "state": 2, "health": 1, "status": 1}
    assert "Ignored invalid mains payload" in caplog.text


@pytest.mark.parametrize("entry_options", [{CONF_SIGNING_KEY: KEY}])
async def test_with_a_key_only_signed_mains_count(
    hass: HomeAssistant, setup_bridge: MockConfigEntry, bridge: Bridge
) -> None:
    bridge.mains("off", since=T0)  # unsigned: a forgery as far as we know
    await hass.async_block_till_done()
    assert state(hass, TODAY) == "0"
    assert state(hass, DURATION) == STATE_UNKNOWN
    bridge.mains("off", since=T0, sign_with=b"another key of 16+ bytes")
    await hass.async_block_till_done()
    assert state(hass, TODAY) == "0"
    bridge.mains("off", since=T0, sign_with=KEY.encode())
    await hass.async_block_till_done()
    assert state(hass, TODAY) == "1"


async def test_history_survives_a_restart_without_counting_twice(
    hass: HomeAssistant,
    setup_bridge: MockConfigEntry,
    bridge: Bridge,
    freezer: FrozenDateTimeFactory,
) -> None:
    freezer.move_to(T0)
    bridge.energy(1000.0)
    bridge.mains("off", since=T0)
    bridge.energy(1005.0)
    bridge.mains("on", since=T0 + timedelta(seconds=30), last_outage_s=30.0)
    bridge.mains("off", since=T0 + timedelta(seconds=40))
    await hass.async_block_till_done()
    assert state(hass, TODAY) == "2"

    assert await hass.config_entries.async_reload(setup_bridge.entry_id)
    await hass.async_block_till_done()
    # The broker delivers the retained mains again: same seq, so nothing new.
    bridge.mains("off", since=T0 + timedelta(seconds=40), new=False, retain=True)
    await hass.async_block_till_done()
    assert state(hass, TODAY) == "2"
    assert state(hass, LAST_START) == T0.isoformat()
    assert state(hass, ENERGY) == "0.005"


@pytest.mark.parametrize("entry_options", [{CONF_BRIDGE_ENTITIES: True}])
async def test_bridge_entities_for_a_bridge_without_discovery(
    hass: HomeAssistant, setup_bridge: MockConfigEntry, bridge: Bridge
) -> None:
    mains = "binary_sensor.powerbridge_rack_a_mains"
    started = "sensor.powerbridge_rack_a_outage_started"
    last = "sensor.powerbridge_rack_a_last_outage_duration"
    count = "sensor.powerbridge_rack_a_outages"
    assert state(hass, mains) == STATE_UNKNOWN
    bridge.status("online")
    bridge.mains("off", since=T0)
    await hass.async_block_till_done()
    assert state(hass, mains) == "off"
    assert state(hass, started) == T0.isoformat()
    assert state(hass, count) == "1"
    assert state(hass, last) == STATE_UNKNOWN
    attributes = hass.states.get(mains).attributes  # type: ignore[union-attr]
    assert attributes["device_class"] == "power"
    assert hass.states.get(last).attributes["device_class"] == "duration"  # type: ignore[union-attr]
    assert hass.states.get(count).attributes["state_class"] == "total_increasing"  # type: ignore[union-attr]

    bridge.mains("on", since=T0 + timedelta(seconds=42), last_outage_s=41.6)
    await hass.async_block_till_done()
    assert state(hass, mains) == "on"
    assert state(hass, started) == STATE_UNKNOWN
    assert state(hass, last) == "42"
    bridge.status("offline")
    await hass.async_block_till_done()
    assert state(hass, mains) == STATE_UNAVAILABLE
    assert state(hass, count) == STATE_UNAVAILABLE


async def test_bridge_entities_are_off_by_default(
    hass: HomeAssistant, setup_bridge: MockConfigEntry
) -> None:
    assert hass.states.get("binary_sensor.powerbridge_rack_a_mains") is None
    assert hass.states.get("sensor.powerbridge_rack_a_outages") is None


# --------------------------------------------------------------------------- clients


async def test_one_sensor_per_client_with_its_countdown(
    hass: HomeAssistant,
    setup_bridge: MockConfigEntry,
    client_factory: Callable[[str], Client],
    freezer: FrozenDateTimeFactory,
) -> None:
    freezer.move_to(T0)
    office, nas = client_factory("office-pc"), client_factory("nas")
    office.status("online")  # status alone does not create a sensor (no bridges known yet)
    await hass.async_block_till_done()
    assert hass.states.get("sensor.powerbridge_rack_a_shutdown_office_pc") is None

    office.state("idle", retain=True, armed=True, seconds_left=None)
    nas.state("counting", seconds_left=540.0, reason="mains lost on rack-a", armed=True)
    await hass.async_block_till_done()
    office_state = hass.states.get("sensor.powerbridge_rack_a_shutdown_office_pc")
    nas_state = hass.states.get("sensor.powerbridge_rack_a_shutdown_nas")
    assert office_state is not None
    assert nas_state is not None
    assert office_state.state == "idle"
    assert office_state.attributes["device_class"] == "enum"
    assert office_state.attributes["options"] == ["idle", "counting", "shutting_down", "offline"]
    assert office_state.attributes["online"] is True
    assert nas_state.state == "counting"
    assert nas_state.attributes["seconds_left"] == 540
    assert nas_state.attributes["reason"] == "mains lost on rack-a"
    assert nas_state.attributes["bridges"] == [DEVICE_ID]

    # Seconds left count down on Home Assistant's clock between the client's messages.
    freezer.tick(timedelta(seconds=40))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    nas_state = hass.states.get("sensor.powerbridge_rack_a_shutdown_nas")
    assert nas_state is not None
    assert nas_state.attributes["seconds_left"] == 500

    nas.state("shutting_down", seconds_left=0.0)
    nas.status("offline")
    office.status("offline")
    await hass.async_block_till_done()
    assert state(hass, "sensor.powerbridge_rack_a_shutdown_nas") == "shutting_down"
    assert state(hass, "sensor.powerbridge_rack_a_shutdown_office_pc") == "offline"

    # A cleared retained state (client uninstalled) shows it offline.
    office.status("online")
    async_fire_mqtt_message(hass, office.topic("state"), b"")
    await hass.async_block_till_done()
    assert state(hass, "sensor.powerbridge_rack_a_shutdown_office_pc") == "offline"


async def test_clients_of_other_bridges_and_bad_states_are_ignored(
    hass: HomeAssistant,
    setup_bridge: MockConfigEntry,
    client_factory: Callable[[str], Client],
) -> None:
    other = client_factory("lab-pc")
    async_fire_mqtt_message(
        hass,
        other.topic("state"),
        b'{"v":1,"state":"counting","bridges":["rack-b"],"seconds_left":10}',
    )
    async_fire_mqtt_message(hass, "powerbridge/clients/all/state", b'{"v":1,"state":"idle"}')
    async_fire_mqtt_message(hass, "powerbridge/clients/a/b/state", b'{"v":1,"state":"idle"}')
    async_fire_mqtt_message(hass, client_factory("bad").topic("state"), b'{"v":1,"state":"x"}')
    await hass.async_block_till_done()
    assert not [s for s in hass.states.async_entity_ids("sensor") if "shutdown" in s]
    runtime = runtime_of(hass, setup_bridge)
    assert runtime is not None
    assert runtime.invalid == {"client state": 1}


async def test_known_clients_are_restored_after_a_restart(
    hass: HomeAssistant,
    setup_bridge: MockConfigEntry,
    client_factory: Callable[[str], Client],
) -> None:
    client_factory("nas").state("idle")
    await hass.async_block_till_done()
    assert await hass.config_entries.async_reload(setup_bridge.entry_id)
    await hass.async_block_till_done()
    # Known from the store before any message arrives; state unknown until one does.
    assert state(hass, "sensor.powerbridge_rack_a_shutdown_nas") == STATE_UNKNOWN


def _states(hass: HomeAssistant) -> dict[str, Any]:
    return {s.entity_id: s.state for s in hass.states.async_all()}


async def test_energy_counted_from_the_first_reading_of_an_outage(
    hass: HomeAssistant,
    setup_bridge: MockConfigEntry,
    bridge: Bridge,
    freezer: FrozenDateTimeFactory,
) -> None:
    """No reading before the outage (the meter was just starting): count from the first one."""
    freezer.move_to(T0)
    bridge.mains("off", since=T0)
    await hass.async_block_till_done()
    assert state(hass, ENERGY) == STATE_UNKNOWN  # no meter heard yet
    async_fire_mqtt_message(hass, bridge.topic("state"), b'{"v":1,"voltage_v":230.0}')
    bridge.energy(500.0)
    bridge.energy(503.5)
    # A bridge without last_outage_s: the duration comes from the two edges.
    bridge.mains("on", since=T0 + timedelta(seconds=42))
    await hass.async_block_till_done()
    assert state(hass, ENERGY) == "0.0035"
    runtime = runtime_of(hass, setup_bridge)
    assert runtime is not None
    assert runtime.outages.last_outage.duration_s == 42.0


async def test_bad_client_status_is_counted(
    hass: HomeAssistant, setup_bridge: MockConfigEntry, client_factory: Callable[[str], Client]
) -> None:
    nas = client_factory("nas")
    async_fire_mqtt_message(hass, nas.topic("status"), b"sleeping")
    async_fire_mqtt_message(hass, "powerbridge/clients/a/b/status", b"online")
    await hass.async_block_till_done()
    runtime = runtime_of(hass, setup_bridge)
    assert runtime is not None
    assert runtime.invalid == {"client status": 1}


async def test_a_bridge_restarted_during_an_outage_keeps_one_outage(
    hass: HomeAssistant,
    setup_bridge: MockConfigEntry,
    bridge: Bridge,
    freezer: FrozenDateTimeFactory,
) -> None:
    """After a start the bridge announces ``unknown`` until its input is confirmed, then
    ``off`` again for an outage that went on (same outage count): one outage, counted
    once; unknown while it confirms."""
    started = async_capture_events(hass, "powerbridge_outage_started")
    bridge.status("online")
    bridge.mains("on", since=T0 - timedelta(days=1))
    bridge.mains("off", since=T0)
    await hass.async_block_till_done()
    assert state(hass, TODAY) == "1"

    freezer.tick(timedelta(minutes=5))
    bridge.boot, bridge.n = "fedcba9876543210", 0  # the bridge restarts
    bridge.mains("unknown", since=T0 + timedelta(minutes=5), elapsed_s=0.0)
    await hass.async_block_till_done()
    assert state(hass, DURATION) == STATE_UNKNOWN  # confirming: no age claimed
    bridge.mains("off", since=T0 + timedelta(minutes=5, seconds=1), continued=True)
    await hass.async_block_till_done()
    assert state(hass, TODAY) == "1"
    assert len(started) == 1

    bridge.mains("on", since=T0 + timedelta(minutes=9), last_outage_s=540.0)
    await hass.async_block_till_done()
    assert state(hass, LAST_START) == T0.isoformat()
    assert state(hass, TODAY) == "1"
