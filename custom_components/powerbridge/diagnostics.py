"""Diagnostics download: the entry, what the component knows, secrets redacted."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant

from .const import CONF_SIGNING_KEY
from .runtime import runtime_of

TO_REDACT = {CONF_SIGNING_KEY, "sig"}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: ConfigEntry
) -> dict[str, Any]:
    runtime = runtime_of(hass, entry)
    assert runtime is not None  # the platforms are set up after the runtime
    return {
        "entry": {
            "title": entry.title,
            "data": async_redact_data(dict(entry.data), TO_REDACT),
            "options": async_redact_data(dict(entry.options), TO_REDACT),
        },
        "bridge": async_redact_data(runtime.diagnostics(), TO_REDACT),
    }
