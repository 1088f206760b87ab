"""Diagnostics: everything the component knows, with the signing key redacted."""

from __future__ import annotations

import json

import pytest
from custom_components.powerbridge.const import CONF_SIGNING_KEY
from custom_components.powerbridge.diagnostics import async_get_config_entry_diagnostics
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .conftest import KEY, T0, Bridge


@pytest.mark.parametrize("entry_options", [{CONF_SIGNING_KEY: KEY}])
async def test_diagnostics_redact_the_key(
    hass: HomeAssistant, setup_bridge: MockConfigEntry, bridge: Bridge, client_factory: object
) -> None:
    bridge.status("online")
    bridge.mains("off", since=T0, sign_with=KEY.encode())
    bridge.health({"cpu_temperature_c": 48.5, "spool_depth": 0})
    async_client = client_factory("nas")  # type: ignore[operator]
    async_client.state("counting", seconds_left=300.0)
    await hass.async_block_till_done()

    diagnostics = await async_get_config_entry_diagnostics(hass, setup_bridge)
    text = json.dumps(diagnostics)
    assert KEY not in text
    assert diagnostics["entry"]["options"][CONF_SIGNING_KEY] == "**REDACTED**"
    bridge_part = diagnostics["bridge"]
    assert bridge_part["signing_key_configured"] is True
    assert bridge_part["online"] is True
    assert bridge_part["mains"]["on"] is False
    assert bridge_part["mains"]["signed"] is True
    assert bridge_part["health"]["cpu_temperature_c"] == 48.5
    assert bridge_part["clients"]["nas"]["state"] == "counting"
    assert bridge_part["stored"]["outages_today"] == 1
