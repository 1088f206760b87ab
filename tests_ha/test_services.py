"""Services publish the commands that the bridge and the shutdown clients accept.

Every published payload is checked by the receiving side's own code: the bridge's
``CommandPayload.decode`` and signature check, and the shutdown client's ``Intake``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import voluptuous as vol
from bridge.mqtt.contract import CommandPayload
from bridge.mqtt.signing import verify
from bridge.shutdown.intake import CommandFact, Intake, Rejected
from custom_components.powerbridge.const import (
    CONF_BASE_TOPIC,
    CONF_DEVICE_ID,
    CONF_SIGNING_KEY,
    DOMAIN,
)
from homeassistant.auth.models import User
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError, Unauthorized
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import MqttMockHAClient

from .conftest import KEY, component_device_id


def published(mqtt_mock: MqttMockHAClient) -> list[tuple[str, dict[str, Any], int, bool]]:
    return [
        (c.args[0], json.loads(c.args[1]), c.args[2], c.args[3])
        for c in mqtt_mock.async_publish.call_args_list
    ]


def client_accepts(
    topic: str, payload: dict[str, Any], *, key: str = KEY
) -> CommandFact | Rejected:
    """What a real shutdown client (allow_remote on, same key) makes of the command."""
    intake = Intake(["rack-a"], key=key.encode(), allow_remote=True)
    name = topic.rsplit("/", 1)[1]
    raw = json.dumps(payload).encode()
    return intake.command(topic, name, raw, received=0.0, wall=datetime.now(UTC))


async def test_simulate_outage_publishes_the_bridge_command(
    hass: HomeAssistant, setup_bridge: MockConfigEntry, mqtt_mock: MqttMockHAClient
) -> None:
    mqtt_mock.async_publish.reset_mock()
    await hass.services.async_call(DOMAIN, "simulate_outage", {}, blocking=True)
    await hass.services.async_call(DOMAIN, "simulate_outage", {"mains": "on"}, blocking=True)
    (topic, payload, qos, retain), (_, payload_on, _, _) = published(mqtt_mock)
    assert (topic, qos, retain) == ("powerbridge/rack-a/cmd/simulate", 1, False)
    command = CommandPayload.decode("simulate", json.dumps(payload).encode())
    assert command.args == {"mains": "off"}
    assert "sig" not in payload  # no key configured: the bridge (without a key) accepts it
    assert payload_on["args"] == {"mains": "on"}
    assert payload["nonce"] != payload_on["nonce"]


@pytest.mark.parametrize("entry_options", [{CONF_SIGNING_KEY: KEY}])
async def test_simulate_outage_is_signed_as_the_bridge_verifies(
    hass: HomeAssistant, setup_bridge: MockConfigEntry, mqtt_mock: MqttMockHAClient
) -> None:
    mqtt_mock.async_publish.reset_mock()
    await hass.services.async_call(DOMAIN, "simulate_outage", {"mains": "off"}, blocking=True)
    [(topic, payload, _, _)] = published(mqtt_mock)
    assert topic == "powerbridge/rack-a/cmd/simulate"
    assert verify(KEY.encode(), payload, topic=topic)  # the bridge's CommandGate check
    assert not verify(KEY.encode(), payload)  # signed over the topic too
    assert not verify(b"some other key of 16 bytes", payload, topic=topic)


async def test_client_commands_need_the_signing_key(
    hass: HomeAssistant, setup_bridge: MockConfigEntry, mqtt_mock: MqttMockHAClient
) -> None:
    mqtt_mock.async_publish.reset_mock()
    with pytest.raises(HomeAssistantError, match="signing key"):
        await hass.services.async_call(DOMAIN, "cancel_shutdown", {}, blocking=True)
    with pytest.raises(HomeAssistantError, match="signing key"):
        await hass.services.async_call(DOMAIN, "shutdown_now", {"client_id": "nas"}, blocking=True)
    assert not mqtt_mock.async_publish.called


@pytest.mark.parametrize("entry_options", [{CONF_SIGNING_KEY: KEY}])
async def test_cancel_shutdown_of_all_or_one_client(
    hass: HomeAssistant, setup_bridge: MockConfigEntry, mqtt_mock: MqttMockHAClient
) -> None:
    mqtt_mock.async_publish.reset_mock()
    await hass.services.async_call(DOMAIN, "cancel_shutdown", {}, blocking=True)
    await hass.services.async_call(
        DOMAIN, "cancel_shutdown", {"client_id": "office-pc"}, blocking=True
    )
    (all_topic, all_payload, qos, retain), (one_topic, one_payload, _, _) = published(mqtt_mock)
    assert (all_topic, qos, retain) == ("powerbridge/clients/all/cmd/cancel", 1, False)
    assert one_topic == "powerbridge/clients/office-pc/cmd/cancel"
    assert isinstance(client_accepts(all_topic, all_payload), CommandFact)
    assert isinstance(client_accepts(one_topic, one_payload), CommandFact)
    # The signature binds the topic: the same payload sent to shutdown_now is refused.
    forged = client_accepts("powerbridge/clients/office-pc/cmd/shutdown_now", one_payload)
    assert isinstance(forged, Rejected)
    assert forged.reason == "bad_signature"
    # A client with another key refuses it.
    other = client_accepts(one_topic, one_payload, key="a different key, 16+ bytes")
    assert isinstance(other, Rejected)


@pytest.mark.parametrize("entry_options", [{CONF_SIGNING_KEY: KEY}])
async def test_shutdown_now_with_a_reason(
    hass: HomeAssistant, setup_bridge: MockConfigEntry, mqtt_mock: MqttMockHAClient
) -> None:
    mqtt_mock.async_publish.reset_mock()
    await hass.services.async_call(
        DOMAIN,
        "shutdown_now",
        {"client_id": "nas", "reason": "generator fuel low"},
        blocking=True,
    )
    [(topic, payload, qos, _)] = published(mqtt_mock)
    assert (topic, qos) == ("powerbridge/clients/nas/cmd/shutdown_now", 1)
    fact = client_accepts(topic, payload)
    assert isinstance(fact, CommandFact)
    assert (fact.name, fact.reason) == ("shutdown_now", "generator fuel low")


@pytest.mark.parametrize("entry_options", [{CONF_SIGNING_KEY: KEY}])
@pytest.mark.parametrize(
    ("service", "data"),
    [
        ("shutdown_now", {}),  # the client must be named ("all" is explicit)
        ("shutdown_now", {"client_id": "nas/../x"}),
        ("shutdown_now", {"client_id": "nas", "reason": "x" * 201}),
        ("cancel_shutdown", {"client_id": "+"}),
        ("simulate_outage", {"mains": "flicker"}),
    ],
)
async def test_bad_arguments_are_refused(
    hass: HomeAssistant,
    setup_bridge: MockConfigEntry,
    mqtt_mock: MqttMockHAClient,
    service: str,
    data: dict[str, Any],
) -> None:
    mqtt_mock.async_publish.reset_mock()
    with pytest.raises(vol.Invalid):
        await hass.services.async_call(DOMAIN, service, data, blocking=True)
    assert not mqtt_mock.async_publish.called


async def test_shutdown_now_and_simulate_are_admin_only(
    hass: HomeAssistant,
    setup_bridge: MockConfigEntry,
    hass_read_only_user: User,
) -> None:
    context = Context(user_id=hass_read_only_user.id)
    for service, data in [("shutdown_now", {"client_id": "all"}), ("simulate_outage", {})]:
        with pytest.raises(Unauthorized):
            await hass.services.async_call(DOMAIN, service, data, blocking=True, context=context)


async def test_the_bridge_is_chosen_by_device(
    hass: HomeAssistant,
    device_model: str,
    setup_bridge: MockConfigEntry,
    mqtt_mock: MqttMockHAClient,
) -> None:
    second = MockConfigEntry(
        domain=DOMAIN,
        unique_id="garage",
        data={CONF_DEVICE_ID: "garage", CONF_BASE_TOPIC: "site2/power"},
    )
    second.add_to_hass(hass)
    assert await hass.config_entries.async_setup(second.entry_id)
    await hass.async_block_till_done()
    devices = dr.async_get(hass)
    garage = component_device_id(hass, "garage")
    mqtt_mock.async_publish.reset_mock()

    with pytest.raises(ServiceValidationError, match="More than one bridge"):
        await hass.services.async_call(DOMAIN, "simulate_outage", {}, blocking=True)
    await hass.services.async_call(DOMAIN, "simulate_outage", {"device_id": garage}, blocking=True)
    [(topic, _, _, _)] = published(mqtt_mock)
    assert topic == "site2/power/garage/cmd/simulate"

    # The bridge's discovery device (of the MQTT entry) names the same bridge: with
    # per-entry devices it is another device than the component's, and still resolves.
    mqtt_entry = MockConfigEntry(domain="mqtt")
    mqtt_entry.add_to_hass(hass)
    discovery = devices.async_get_or_create(
        config_entry_id=mqtt_entry.entry_id, identifiers={("mqtt", "powerbridge_garage")}
    )
    assert (discovery.id == garage) is (device_model == "shared")
    mqtt_mock.async_publish.reset_mock()
    await hass.services.async_call(
        DOMAIN, "simulate_outage", {"device_id": discovery.id}, blocking=True
    )
    [(topic, _, _, _)] = published(mqtt_mock)
    assert topic == "site2/power/garage/cmd/simulate"

    other = devices.async_get_or_create(
        config_entry_id=setup_bridge.entry_id, identifiers={("test", "unrelated")}
    )
    devices.async_update_device(other.id, remove_config_entry_id=setup_bridge.entry_id)
    for device_id in ("no-such-device", other.id):
        with pytest.raises(ServiceValidationError, match="not a powerbridge bridge"):
            await hass.services.async_call(
                DOMAIN, "simulate_outage", {"device_id": device_id}, blocking=True
            )


async def test_services_without_any_bridge(
    hass: HomeAssistant, setup_bridge: MockConfigEntry
) -> None:
    assert await hass.config_entries.async_unload(setup_bridge.entry_id)
    # The services stay registered after the last bridge is unloaded, and say why not.
    with pytest.raises(ServiceValidationError, match="No powerbridge bridge"):
        await hass.services.async_call(DOMAIN, "simulate_outage", {}, blocking=True)
