"""The blueprints validate with Home Assistant's blueprint schema, and work when used."""

from __future__ import annotations

import asyncio
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.components import automation
from homeassistant.components.automation.helpers import async_get_blueprints
from homeassistant.components.blueprint import models
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    async_get_persistent_notifications,
)

from .conftest import T0, Bridge, component_device_id

SOURCE = Path(__file__).resolve().parent.parent / "blueprints" / "automation" / "powerbridge"
BLUEPRINTS = sorted(p.name for p in SOURCE.glob("*.yaml"))


def test_there_are_three_blueprints() -> None:
    assert BLUEPRINTS == ["bridge_offline.yaml", "notify_outage.yaml", "shed_loads.yaml"]


@pytest.fixture
async def with_blueprints(hass: HomeAssistant, tmp_path: Path) -> None:
    """The blueprints installed as a user installs them: <config>/blueprints/automation/."""
    hass.config.config_dir = str(tmp_path)
    target = tmp_path / "blueprints" / "automation" / "powerbridge"
    shutil.copytree(SOURCE, target)
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "persistent_notification", {})


@pytest.mark.parametrize("name", BLUEPRINTS)
async def test_blueprint_validates_with_home_assistants_schema(
    hass: HomeAssistant, with_blueprints: None, name: str
) -> None:
    """Loaded as Home Assistant loads a user's blueprint (its own schema, its own loader)."""
    blueprints = async_get_blueprints(hass)
    blueprint = await blueprints.async_get_blueprint(f"powerbridge/{name}")
    assert blueprint.validate() is None  # None: no problems (e.g. min_version satisfied)
    assert blueprint.metadata["homeassistant"]["min_version"] == "2024.3.0"
    inputs = blueprint.inputs
    assert inputs["bridge"]["selector"]["device"]["integration"] == "powerbridge"
    # Substituting every input gives a valid automation configuration.
    values: dict[str, Any] = {"bridge": "0123456789abcdef0123456789abcdef"}
    if "loads" in inputs:
        values["loads"] = {"entity_id": "switch.rack_fan"}
    substituted = models.BlueprintInputs(
        blueprint, {"use_blueprint": {"path": name, "input": values}}
    ).async_substitute()
    assert automation.config.PLATFORM_SCHEMA(substituted)


async def settle() -> None:
    """Let pending callbacks run.  Not ``hass.async_block_till_done()``: it would wait
    for an automation paused in ``wait_for_trigger`` or ``delay`` to finish."""
    for _ in range(20):
        await asyncio.sleep(0)


@pytest.fixture(autouse=True)
def both_device_models(device_model: str) -> None:
    """Every blueprint test runs with Home Assistant's shared and per-entry devices."""


def bridge_device(hass: HomeAssistant) -> str:
    return component_device_id(hass)


async def use(hass: HomeAssistant, name: str, inputs: dict[str, Any]) -> None:
    assert await async_setup_component(
        hass,
        automation.DOMAIN,
        {
            automation.DOMAIN: {
                "use_blueprint": {
                    "path": f"powerbridge/{name}",
                    "input": {"bridge": bridge_device(hass), **inputs},
                }
            }
        },
    )
    await hass.async_block_till_done()
    [state] = hass.states.async_all(automation.DOMAIN)
    assert state.state == "on", state.attributes


async def test_notify_on_outage_and_restore_with_the_default_actions(
    hass: HomeAssistant,
    with_blueprints: None,
    setup_bridge: MockConfigEntry,
    bridge: Bridge,
) -> None:
    await use(hass, "notify_outage.yaml", {})
    bridge.mains("on", since=T0 - timedelta(days=1))
    await hass.async_block_till_done()
    assert not async_get_persistent_notifications(hass)

    bridge.mains("off", since=T0)
    await hass.async_block_till_done()
    [notification] = async_get_persistent_notifications(hass).values()
    assert notification["title"] == "Mains lost: rack-a"
    assert notification["message"].startswith("Running on battery since ")

    bridge.mains("on", since=T0 + timedelta(seconds=95.2), last_outage_s=95.2)
    await hass.async_block_till_done()
    [notification] = async_get_persistent_notifications(hass).values()
    assert notification["title"] == "Mains restored: rack-a"
    assert notification["message"] == "Power is back after 95 s."


async def test_shed_loads_after_n_minutes_and_restore(
    hass: HomeAssistant,
    with_blueprints: None,
    setup_bridge: MockConfigEntry,
    bridge: Bridge,
    freezer: FrozenDateTimeFactory,
) -> None:
    freezer.move_to(T0)
    assert await async_setup_component(
        hass, "input_boolean", {"input_boolean": {"lab_heater": {}, "fan": {}}}
    )
    for name in ("lab_heater", "fan"):
        await hass.services.async_call(
            "input_boolean", "turn_on", {"entity_id": f"input_boolean.{name}"}, blocking=True
        )
    await use(
        hass,
        "shed_loads.yaml",
        {
            "minutes": 5,
            "loads": {"entity_id": ["input_boolean.lab_heater", "input_boolean.fan"]},
            "restore_loads": True,
        },
    )

    def loads() -> list[str]:
        return [
            hass.states.get(f"input_boolean.{n}").state  # type: ignore[union-attr]
            for n in ("lab_heater", "fan")
        ]

    # A short outage: restored after 2 minutes, nothing is switched.
    bridge.mains("off", since=T0)
    await settle()
    freezer.tick(timedelta(minutes=2))
    async_fire_time_changed(hass)
    bridge.mains("on", since=T0 + timedelta(minutes=2), last_outage_s=120.0)
    await settle()
    freezer.tick(timedelta(minutes=10))
    async_fire_time_changed(hass)
    await settle()
    assert loads() == ["on", "on"]

    # A long one: switched off after 5 minutes, on again when mains returns.
    bridge.mains("off", since=T0 + timedelta(minutes=12))
    await settle()
    freezer.tick(timedelta(minutes=4, seconds=50))
    async_fire_time_changed(hass)
    await settle()
    assert loads() == ["on", "on"]
    freezer.tick(timedelta(seconds=15))
    async_fire_time_changed(hass)
    await settle()
    assert loads() == ["off", "off"]
    bridge.mains("on", since=T0 + timedelta(minutes=30), last_outage_s=1080.0)
    await settle()
    assert loads() == ["on", "on"]


async def test_bridge_offline_alert_with_a_grace_period(
    hass: HomeAssistant,
    with_blueprints: None,
    setup_bridge: MockConfigEntry,
    bridge: Bridge,
    freezer: FrozenDateTimeFactory,
) -> None:
    freezer.move_to(T0)
    await use(hass, "bridge_offline.yaml", {"grace": 120})
    bridge.status("online")
    await settle()

    # A reboot: back within the grace period, no alert.
    bridge.status("offline")
    await settle()
    freezer.tick(timedelta(seconds=40))
    async_fire_time_changed(hass)
    bridge.status("online")
    await settle()
    freezer.tick(timedelta(seconds=200))
    async_fire_time_changed(hass)
    await settle()
    assert not async_get_persistent_notifications(hass)

    # Gone for good: alert after the grace period.
    bridge.status("offline")
    await settle()
    freezer.tick(timedelta(seconds=119))
    async_fire_time_changed(hass)
    await settle()
    assert not async_get_persistent_notifications(hass)
    freezer.tick(timedelta(seconds=2))
    async_fire_time_changed(hass)
    await settle()
    [notification] = async_get_persistent_notifications(hass).values()
    assert notification["title"] == "Bridge offline: rack-a"
    assert "last seen 2026-11-20T12:00:40.000Z" in notification["message"]


async def test_bridge_offline_alert_at_once(
    hass: HomeAssistant,
    with_blueprints: None,
    setup_bridge: MockConfigEntry,
    bridge: Bridge,
) -> None:
    await use(hass, "bridge_offline.yaml", {})  # grace 0 by default
    bridge.status("online")
    bridge.status("offline")
    await settle()
    [notification] = async_get_persistent_notifications(hass).values()
    assert notification["title"] == "Bridge offline: rack-a"
