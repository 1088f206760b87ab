"""Manifest, HACS metadata, translations, icons and services.yaml agree with the code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from custom_components.powerbridge import sensor as sensor_platform
from custom_components.powerbridge.const import DOMAIN, TRIGGER_EVENTS
from homeassistant.core import HomeAssistant
from homeassistant.helpers import translation
from homeassistant.helpers.icon import async_get_icons
from homeassistant.loader import async_get_integration
from pytest_homeassistant_custom_component.common import MockConfigEntry

ROOT = Path(__file__).resolve().parent.parent
COMPONENT = ROOT / "custom_components" / "powerbridge"


def load(name: str) -> dict:  # type: ignore[type-arg]
    return json.loads((COMPONENT / name).read_text(encoding="utf-8"))


async def test_manifest(hass: HomeAssistant) -> None:
    manifest = load("manifest.json")
    assert manifest["domain"] == DOMAIN
    assert manifest["dependencies"] == ["mqtt"]
    assert manifest["iot_class"] == "local_push"
    assert manifest["config_flow"] is True
    assert manifest["mqtt"] == ["powerbridge/+/status"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    assert manifest["codeowners"]
    assert manifest["documentation"].startswith("https://")
    assert manifest["issue_tracker"].startswith("https://")
    integration = await async_get_integration(hass, DOMAIN)  # Home Assistant accepts it
    assert integration.version is not None
    assert str(integration.version) == manifest["version"]


def test_hacs_states_the_minimum_version() -> None:
    hacs = json.loads((ROOT / "hacs.json").read_text(encoding="utf-8"))
    assert hacs["homeassistant"] == "2024.3.0"
    assert hacs["name"] == "powerbridge"


def test_every_entity_trigger_and_service_is_translated() -> None:
    strings = load("translations/en.json")
    icons = load("icons.json")
    keys = {d.translation_key for d in sensor_platform.SENSORS} | {"client"}
    assert set(strings["entity"]["sensor"]) == keys
    assert set(icons["entity"]["sensor"]) == keys
    assert set(strings["device_automation"]["trigger_type"]) == set(TRIGGER_EVENTS)
    services = yaml.safe_load((COMPONENT / "services.yaml").read_text(encoding="utf-8"))
    assert set(strings["services"]) == set(services) == set(icons["services"])
    for name, service in services.items():
        assert set(strings["services"][name]["fields"]) == set(service["fields"]), name
    client_states = strings["entity"]["sensor"]["client"]["state"]
    assert list(client_states) == sensor_platform.CLIENT_DESCRIPTION.options


def test_every_flow_reason_and_error_is_translated() -> None:
    strings = load("translations/en.json")
    code = (COMPONENT / "config_flow.py").read_text(encoding="utf-8")
    aborts = set(re.findall(r'async_abort\(reason="([a-z_]+)"\)', code)) | {"already_configured"}
    errors = set(re.findall(r'errors\[[A-Z_]+\] = "([a-z_]+)"', code))
    assert aborts <= set(strings["config"]["abort"])
    assert errors <= set(strings["config"]["error"]) | set(strings["options"]["error"])
    assert errors


async def test_home_assistant_loads_the_translations(
    hass: HomeAssistant, setup_bridge: MockConfigEntry
) -> None:
    loaded = await translation.async_get_translations(hass, "en", "entity", [DOMAIN])
    key = f"component.{DOMAIN}.entity.sensor.outage_duration.name"
    assert loaded[key] == "Outage duration"
    loaded = await translation.async_get_translations(hass, "en", "config", [DOMAIN])
    assert loaded[f"component.{DOMAIN}.config.abort.bridge_already_configured"]


async def test_home_assistant_loads_the_service_and_entity_icons(
    hass: HomeAssistant, enable_custom_integrations: None
) -> None:
    """Read through Home Assistant's own icon loader.  Service icons stay in the
    shorthand form (``"service": "mdi:…"``): 2024.3, the minimum release, knows only
    that form; later releases expand it to ``{"service": "mdi:…"}`` themselves."""
    services = await async_get_icons(hass, "services", [DOMAIN])
    entities = await async_get_icons(hass, "entity", [DOMAIN])
    icon = services[DOMAIN]["simulate_outage"]
    assert icon in ("mdi:flash-off", {"service": "mdi:flash-off"})
    assert entities[DOMAIN]["sensor"]["outages_today"]["default"] == "mdi:counter"
