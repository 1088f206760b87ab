"""Services: simulate an outage, cancel a shutdown, shut a client down now.

Every service publishes one command (``{"v":1,"ts","nonce","args","sig"}``) through
Home Assistant's MQTT integration; see "commands" in ``docs/mqtt-contract.md``.

* ``simulate_outage`` → ``<base>/<device_id>/cmd/simulate`` with ``{"mains": "off"|"on"}``.
  Only a bridge with ``simulation.enabled: true`` obeys it; others refuse and log it.
* ``cancel_shutdown`` → ``<base>/clients/<client_id|all>/cmd/cancel``.
* ``shutdown_now`` → ``<base>/clients/<client_id|all>/cmd/shutdown_now``.  The client shuts
  down after its own ``shutdown.remote_cancel_window`` (60 s by default), during which
  ``cancel_shutdown`` stops it.

Shutdown clients obey commands only when they are signed with their key and
``shutdown.allow_remote`` is on, so the two client services refuse to run without the
entry's signing key.  ``simulate_outage`` and ``shutdown_now`` are admin-only.
"""

from __future__ import annotations

import voluptuous as vol
from homeassistant.const import ATTR_DEVICE_ID
from homeassistant.core import HomeAssistant, ServiceCall, callback
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.service import async_register_admin_service

from . import protocol
from .const import (
    ATTR_CLIENT_ID,
    ATTR_MAINS,
    ATTR_REASON,
    DOMAIN,
    SERVICE_CANCEL_SHUTDOWN,
    SERVICE_SHUTDOWN_NOW,
    SERVICE_SIMULATE_OUTAGE,
)
from .devices import bridge_id_of, entry_ids_of
from .runtime import BridgeRuntime, loaded_runtimes

MAX_REASON_LENGTH = 200


def _client_id(value: object) -> str:
    text = cv.string(value).strip()
    if text != protocol.ALL_CLIENTS and not protocol.DEVICE_ID_RE.match(text):
        raise vol.Invalid(f"invalid client id {text!r}")
    return text


SIMULATE_SCHEMA = vol.Schema(
    {
        vol.Optional(ATTR_DEVICE_ID): cv.string,
        vol.Optional(ATTR_MAINS, default=protocol.MAINS_OFF): vol.In(
            [protocol.MAINS_OFF, protocol.MAINS_ON]
        ),
    }
)
CANCEL_SCHEMA = vol.Schema(
    {
        vol.Optional(ATTR_DEVICE_ID): cv.string,
        vol.Optional(ATTR_CLIENT_ID, default=protocol.ALL_CLIENTS): _client_id,
    }
)
SHUTDOWN_SCHEMA = vol.Schema(
    {
        vol.Optional(ATTR_DEVICE_ID): cv.string,
        vol.Required(ATTR_CLIENT_ID): _client_id,
        vol.Optional(ATTR_REASON): vol.All(cv.string, vol.Length(max=MAX_REASON_LENGTH)),
    }
)


def _runtime(hass: HomeAssistant, call: ServiceCall) -> BridgeRuntime:
    """The bridge a call is about: its ``device_id``, or the only one set up.

    ``device_id`` may name the component's device or the bridge's discovery device
    (they are one device before Home Assistant 2026.8 and two after it): it is resolved
    through the device's config entry, else through the bridge id in its identifiers."""
    runtimes = loaded_runtimes(hass)
    device_id = call.data.get(ATTR_DEVICE_ID)
    if device_id is None:
        if len(runtimes) == 1:
            return runtimes[0]
        raise ServiceValidationError(
            "No powerbridge bridge is set up"
            if not runtimes
            else "More than one bridge is set up: choose one with device_id"
        )
    device = dr.async_get(hass).async_get(device_id)
    if device is not None:
        entry_ids = entry_ids_of(device)
        bridge = bridge_id_of(device)
        for runtime in runtimes:
            if runtime.entry.entry_id in entry_ids:
                return runtime
        for runtime in runtimes:
            if runtime.device_id == bridge:
                return runtime
    raise ServiceValidationError(f"{device_id} is not a powerbridge bridge that is set up")


@callback
def async_register_services(hass: HomeAssistant) -> None:
    async def simulate_outage(call: ServiceCall) -> None:
        runtime = _runtime(hass, call)
        topic = protocol.bridge_cmd_topic(runtime.base, runtime.device_id, "simulate")
        await runtime.async_command(topic, {"mains": call.data[ATTR_MAINS]}, require_key=False)

    async def cancel_shutdown(call: ServiceCall) -> None:
        runtime = _runtime(hass, call)
        topic = protocol.client_cmd_topic(runtime.base, call.data[ATTR_CLIENT_ID], "cancel")
        await runtime.async_command(topic, {}, require_key=True)

    async def shutdown_now(call: ServiceCall) -> None:
        runtime = _runtime(hass, call)
        topic = protocol.client_cmd_topic(runtime.base, call.data[ATTR_CLIENT_ID], "shutdown_now")
        args = {ATTR_REASON: call.data[ATTR_REASON]} if ATTR_REASON in call.data else {}
        await runtime.async_command(topic, args, require_key=True)

    async_register_admin_service(
        hass, DOMAIN, SERVICE_SIMULATE_OUTAGE, simulate_outage, schema=SIMULATE_SCHEMA
    )
    hass.services.async_register(
        DOMAIN, SERVICE_CANCEL_SHUTDOWN, cancel_shutdown, schema=CANCEL_SCHEMA
    )
    async_register_admin_service(
        hass, DOMAIN, SERVICE_SHUTDOWN_NOW, shutdown_now, schema=SHUTDOWN_SCHEMA
    )
