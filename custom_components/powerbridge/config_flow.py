"""Config flow: one entry per bridge, found over MQTT or entered by device id.

Bridges announce themselves on ``<base>/<device_id>/status`` (retained); the manifest
asks Home Assistant's MQTT integration to start a flow for each one it sees on
``powerbridge/+/status``.  The entry's unique id is the device id, so a bridge is set
up once.

A discovered bridge that is already set up aborts with ``bridge_already_configured``,
deliberately *not* ``already_configured``: Home Assistant's MQTT integration drops its
discovery subscription after an ``already_configured`` abort, and because one
subscription (``powerbridge/+/status``) covers every bridge, that would stop the
discovery of all the other bridges.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import voluptuous as vol
from homeassistant import config_entries
from homeassistant.components import mqtt
from homeassistant.core import callback
from homeassistant.helpers.selector import (
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)

from . import protocol
from .const import (
    CONF_BASE_TOPIC,
    CONF_BRIDGE_ENTITIES,
    CONF_DEVICE_ID,
    CONF_SIGNING_KEY,
    DEFAULT_BASE_TOPIC,
    DOMAIN,
    SIGNING_KEY_MIN_BYTES,
)

if TYPE_CHECKING:
    from homeassistant.data_entry_flow import FlowResult
    from homeassistant.helpers.service_info.mqtt import MqttServiceInfo


def _valid_base(value: str) -> bool:
    try:
        mqtt.valid_publish_topic(value)
    except vol.Invalid:
        return False
    return not any(c in value for c in "+#") and not value.endswith("/")


class PowerbridgeConfigFlow(config_entries.ConfigFlow, domain=DOMAIN):
    """Set up one powerbridge bridge."""

    VERSION = 1

    def __init__(self) -> None:
        self._device_id: str | None = None
        self._base: str = DEFAULT_BASE_TOPIC

    @staticmethod
    @callback
    def async_get_options_flow(
        config_entry: config_entries.ConfigEntry,
    ) -> PowerbridgeOptionsFlow:
        return PowerbridgeOptionsFlow(config_entry)

    async def async_step_mqtt(self, discovery_info: MqttServiceInfo) -> FlowResult:
        """A bridge's ``status`` message arrived on ``powerbridge/+/status``."""
        parsed = protocol.device_id_from_status_topic(discovery_info.topic)
        payload = discovery_info.payload
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
        if parsed is None or text not in (protocol.ONLINE, protocol.OFFLINE):
            return self.async_abort(reason="not_a_bridge")
        self._base, self._device_id = parsed
        await self.async_set_unique_id(self._device_id)
        if self._async_current_ids(include_ignore=True) & {self._device_id}:
            return self.async_abort(reason="bridge_already_configured")
        self.context["title_placeholders"] = {"device_id": self._device_id}
        return await self.async_step_confirm()

    async def async_step_confirm(self, user_input: dict[str, Any] | None = None) -> FlowResult:
        """Ask before adding a discovered bridge."""
        assert self._device_id is not None
        if user_input is not None:
            return self._create(self._device_id, self._base)
        self._set_confirm_only()
        return self.async_show_form(
            step_id="confirm",
            description_placeholders={"device_id": self._device_id, "base_topic": self._base},
        )

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> FlowResult:
        """Add a bridge by its device id (for example one that is not online yet)."""
        if not await mqtt.async_wait_for_mqtt_client(self.hass):
            return self.async_abort(reason="mqtt_not_set_up")
        errors: dict[str, str] = {}
        if user_input is not None:
            device_id = user_input[CONF_DEVICE_ID].strip()
            base = user_input[CONF_BASE_TOPIC].strip()
            if not protocol.valid_device_id(device_id):
                errors[CONF_DEVICE_ID] = "invalid_device_id"
            elif not _valid_base(base):
                errors[CONF_BASE_TOPIC] = "invalid_base_topic"
            else:
                # A discovered flow for the same bridge may be pending: entering it by
                # hand wins (Home Assistant then drops the pending flow).
                await self.async_set_unique_id(device_id, raise_on_progress=False)
                self._abort_if_unique_id_configured()
                return self._create(device_id, base)
        schema = vol.Schema(
            {
                vol.Required(CONF_DEVICE_ID): str,
                vol.Required(CONF_BASE_TOPIC, default=DEFAULT_BASE_TOPIC): str,
            }
        )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or {}),
            errors=errors,
        )

    def _create(self, device_id: str, base: str) -> FlowResult:
        return self.async_create_entry(
            title=f"powerbridge {device_id}",
            data={CONF_DEVICE_ID: device_id, CONF_BASE_TOPIC: base},
        )


class PowerbridgeOptionsFlow(config_entries.OptionsFlow):
    """Options: the command signing key and the bridge's own mains entities."""

    def __init__(self, config_entry: config_entries.ConfigEntry) -> None:
        # Kept privately: Home Assistant 2024.11+ provides ``self.config_entry`` itself
        # and deprecates assigning it, while 2024.3 does not provide it.
        self._entry = config_entry

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> FlowResult:
        errors: dict[str, str] = {}
        options = self._entry.options
        if user_input is not None:
            key = user_input.get(CONF_SIGNING_KEY, "").strip()
            if key and len(key.encode()) < SIGNING_KEY_MIN_BYTES:
                errors[CONF_SIGNING_KEY] = "key_too_short"
            else:
                return self.async_create_entry(
                    title="",
                    data={
                        CONF_SIGNING_KEY: key,
                        CONF_BRIDGE_ENTITIES: user_input[CONF_BRIDGE_ENTITIES],
                    },
                )
        schema = vol.Schema(
            {
                vol.Optional(
                    CONF_SIGNING_KEY,
                    description={"suggested_value": options.get(CONF_SIGNING_KEY, "")},
                ): TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD)),
                vol.Required(
                    CONF_BRIDGE_ENTITIES, default=options.get(CONF_BRIDGE_ENTITIES, False)
                ): bool,
            }
        )
        return self.async_show_form(step_id="init", data_schema=schema, errors=errors)
