"""Bus events and device triggers: mains lost/restored, bridge offline, countdown started."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from custom_components.powerbridge.const import (
    DOMAIN,
    EVENT_BRIDGE_OFFLINE,
    EVENT_BRIDGE_ONLINE,
    EVENT_COUNTDOWN_STARTED,
    EVENT_OUTAGE_ENDED,
    EVENT_OUTAGE_STARTED,
)
from homeassistant.components import automation
from homeassistant.components.device_automation import DeviceAutomationType
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_get_device_automations,
    async_mock_service,
)

from .conftest import DEVICE_ID, T0, Bridge, Client, component_device_id


@pytest.fixture(autouse=True)
def both_device_models(device_model: str) -> None:
    """Every trigger test runs with Home Assistant's shared and per-entry devices."""


def device_id(hass: HomeAssistant) -> str:
    return component_device_id(hass)


@pytest.fixture
def calls(hass: HomeAssistant) -> list[ServiceCall]:
    return async_mock_service(hass, "test", "automation")


async def _automation(hass: HomeAssistant, triggers: list[dict[str, Any]]) -> None:
    """One automation per trigger; the action records the trigger's type and event data."""
    assert await async_setup_component(
        hass,
        automation.DOMAIN,
        {
            automation.DOMAIN: [
                {
                    "mode": "queued",
                    "trigger": trigger,
                    "action": {
                        "service": "test.automation",
                        "data_template": {
                            "type": trigger["type"],
                            "data": "{{ trigger.event.data }}",
                        },
                    },
                }
                for trigger in triggers
            ]
        },
    )
    await hass.async_block_till_done()


async def test_the_device_offers_its_triggers(
    hass: HomeAssistant, setup_bridge: MockConfigEntry
) -> None:
    triggers = await async_get_device_automations(
        hass, DeviceAutomationType.TRIGGER, device_id(hass)
    )
    ours = {t["type"] for t in triggers if t["domain"] == DOMAIN}
    assert ours == {
        "mains_lost",
        "mains_restored",
        "bridge_offline",
        "bridge_online",
        "shutdown_countdown_started",
    }


async def test_countdown_trigger_can_be_narrowed_to_a_client(
    hass: HomeAssistant, setup_bridge: MockConfigEntry
) -> None:
    from custom_components.powerbridge import device_trigger

    base = {"platform": "device", "domain": DOMAIN, "device_id": device_id(hass)}
    capabilities = await device_trigger.async_get_trigger_capabilities(
        hass, {**base, "type": "shutdown_countdown_started"}
    )
    assert "client_id" in capabilities["extra_fields"].schema
    assert (
        await device_trigger.async_get_trigger_capabilities(hass, {**base, "type": "mains_lost"})
        == {}
    )


async def test_outage_fires_events_and_device_triggers(
    hass: HomeAssistant,
    setup_bridge: MockConfigEntry,
    bridge: Bridge,
    calls: list[ServiceCall],
) -> None:
    device = device_id(hass)
    await _automation(
        hass,
        [
            {"platform": "device", "domain": DOMAIN, "device_id": device, "type": kind}
            for kind in ("mains_lost", "mains_restored")
        ],
    )
    started = async_capture_events(hass, EVENT_OUTAGE_STARTED)
    ended = async_capture_events(hass, EVENT_OUTAGE_ENDED)

    bridge.mains("on", since=T0 - timedelta(hours=1), retain=True)
    await hass.async_block_till_done()
    assert not started
    assert not calls  # the first state we learn is not a change

    bridge.mains("off", since=T0)
    bridge.mains("off", since=T0, new=False, elapsed_s=30.0)  # refresh: nothing new
    await hass.async_block_till_done()
    assert len(started) == 1
    assert started[0].data == {
        "device_id": device,
        "bridge": DEVICE_ID,
        "started": "2026-11-20T12:00:00.000Z",
        "seq": 2,
        "source": "gpio",
    }
    assert [c.data["type"] for c in calls] == ["mains_lost"]

    bridge.mains("on", since=T0 + timedelta(seconds=95.2), last_outage_s=95.2)
    await hass.async_block_till_done()
    assert len(ended) == 1
    assert ended[0].data["duration_s"] == 95.2
    assert ended[0].data["started"] == "2026-11-20T12:00:00.000Z"
    assert ended[0].data["ended"] == "2026-11-20T12:01:35.200Z"
    assert ended[0].data["replayed"] is False
    assert [c.data["type"] for c in calls] == ["mains_lost", "mains_restored"]
    assert calls[1].data["data"]["duration_s"] == 95.2

    # The bridge then delivers its spooled event for the same outage: no second firing.
    bridge.event(
        "outage_ended",
        mains_seq=bridge.seq,
        started=T0,
        ended=T0 + timedelta(seconds=95.2),
        duration_s=95.2,
    )
    await hass.async_block_till_done()
    assert len(ended) == 1


async def test_first_contact_during_an_outage_fires_mains_lost(
    hass: HomeAssistant, setup_bridge: MockConfigEntry, bridge: Bridge
) -> None:
    started = async_capture_events(hass, EVENT_OUTAGE_STARTED)
    bridge.mains("off", since=T0, retain=True, elapsed_s=300.0)
    await hass.async_block_till_done()
    assert len(started) == 1


async def test_missed_outage_is_recorded_from_the_replayed_event(
    hass: HomeAssistant, setup_bridge: MockConfigEntry, bridge: Bridge
) -> None:
    """The bridge lost the broker for a whole outage (the switch was on mains too)."""
    ended = async_capture_events(hass, EVENT_OUTAGE_ENDED)
    started = async_capture_events(hass, EVENT_OUTAGE_STARTED)
    bridge.mains("on", since=T0 - timedelta(days=1))
    await hass.async_block_till_done()
    # Back online: the new mains announcement, then the spool's backlog of events.
    bridge.seq += 1  # the "off" announcement we never received
    bridge.mains("on", since=T0 + timedelta(minutes=12), last_outage_s=720.0)
    seq = bridge.event("outage_started", mains_seq=bridge.seq - 1, started=T0)
    bridge.event(
        "outage_ended",
        mains_seq=bridge.seq,
        started=T0,
        ended=T0 + timedelta(minutes=12),
        duration_s=720.0,
    )
    bridge.event("outage_started", mains_seq=bridge.seq - 1, started=T0, seq=seq)  # duplicate
    await hass.async_block_till_done()
    assert not started
    assert len(ended) == 1
    assert ended[0].data["duration_s"] == 720.0
    assert ended[0].data["replayed"] is False
    assert hass.states.get("sensor.powerbridge_rack_a_last_outage_start").state == T0.isoformat()  # type: ignore[union-attr]


async def test_old_outage_replayed_later_is_flagged(
    hass: HomeAssistant, setup_bridge: MockConfigEntry, bridge: Bridge
) -> None:
    ended = async_capture_events(hass, EVENT_OUTAGE_ENDED)
    bridge.mains("on", since=T0)
    bridge.seq += 5
    bridge.mains("on", since=T0 + timedelta(hours=2))
    bridge.event(
        "outage_ended",
        mains_seq=bridge.seq - 3,
        started=T0 + timedelta(minutes=10),
        ended=T0 + timedelta(minutes=11),
        duration_s=60.0,
    )
    await hass.async_block_till_done()
    assert len(ended) == 1
    assert ended[0].data["replayed"] is True
    assert hass.states.get("sensor.powerbridge_rack_a_outages_today").state == "1"  # type: ignore[union-attr]


async def test_bridge_offline_fires_only_after_being_online(
    hass: HomeAssistant,
    setup_bridge: MockConfigEntry,
    bridge: Bridge,
    calls: list[ServiceCall],
) -> None:
    await _automation(
        hass,
        [
            {
                "platform": "device",
                "domain": DOMAIN,
                "device_id": device_id(hass),
                "type": "bridge_offline",
            }
        ],
    )
    offline = async_capture_events(hass, EVENT_BRIDGE_OFFLINE)
    online = async_capture_events(hass, EVENT_BRIDGE_ONLINE)
    bridge.status("offline", retain=True)  # retained history at start-up: not news
    await hass.async_block_till_done()
    assert not offline
    bridge.status("online")  # back from an offline we saw: "online" fires
    bridge.status("online")  # no change: nothing
    bridge.status("offline")
    await hass.async_block_till_done()
    assert len(offline) == 1
    assert len(online) == 1
    assert offline[0].data["last_seen"] is not None
    assert [c.data["type"] for c in calls] == ["bridge_offline"]


async def test_countdown_started_trigger(
    hass: HomeAssistant,
    setup_bridge: MockConfigEntry,
    client_factory: Callable[[str], Client],
    calls: list[ServiceCall],
) -> None:
    device = device_id(hass)
    await _automation(
        hass,
        [
            {
                "platform": "device",
                "domain": DOMAIN,
                "device_id": device,
                "type": "shutdown_countdown_started",
            },
            {
                "platform": "device",
                "domain": DOMAIN,
                "device_id": device,
                "type": "shutdown_countdown_started",
                "client_id": "nas",
            },
        ],
    )
    events = async_capture_events(hass, EVENT_COUNTDOWN_STARTED)
    office, nas = client_factory("office-pc"), client_factory("nas")
    # Retained "counting" seen at start-up: possibly stale, not a start we witnessed.
    office.state("counting", retain=True, seconds_left=300.0)
    await hass.async_block_till_done()
    assert not events
    office.state("idle")
    office.state("counting", seconds_left=600.0)
    office.state("counting", seconds_left=590.0)  # an update, not a new start
    nas.state("counting", seconds_left=600.0)  # live, first message: a start
    await hass.async_block_till_done()
    assert [e.data["client_id"] for e in events] == ["office-pc", "nas"]
    assert events[0].data["seconds_left"] == 600.0
    assert events[0].data["device_id"] == device
    # The unfiltered trigger fired twice, the one narrowed to "nas" once.
    assert sorted(c.data["data"]["client_id"] for c in calls) == ["nas", "nas", "office-pc"]


async def test_event_published_before_its_mains_announcement(
    hass: HomeAssistant, setup_bridge: MockConfigEntry, bridge: Bridge
) -> None:
    """The order seen from a real bridge: the spooled event can overtake ``mains``."""
    ended = async_capture_events(hass, EVENT_OUTAGE_ENDED)
    bridge.energy(1000.0)
    bridge.mains("on", since=T0 - timedelta(days=1))
    bridge.mains("off", since=T0)
    bridge.energy(1002.0)
    bridge.event(
        "outage_ended",
        mains_seq=bridge.seq + 1,  # the "on" announcement that follows
        started=T0,
        ended=T0 + timedelta(seconds=30),
        duration_s=30.0,
    )
    bridge.mains("on", since=T0 + timedelta(seconds=30), last_outage_s=30.0)
    await hass.async_block_till_done()
    assert len(ended) == 1
    assert ended[0].data["replayed"] is False
    assert ended[0].data["energy_wh"] == 2.0
    assert hass.states.get("sensor.powerbridge_rack_a_outages_today").state == "1"  # type: ignore[union-attr]
    assert hass.states.get("sensor.powerbridge_rack_a_energy_during_outages").state == "0.002"  # type: ignore[union-attr]
    assert hass.states.get("sensor.powerbridge_rack_a_outage_duration").state == "0"  # type: ignore[union-attr]
