"""Validators for configuration values, with messages that say what was expected.

Each raises :class:`voluptuous.Invalid` with an ``expected ...`` message; the
loader appends ``got <value>`` and the file, line and key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import voluptuous as vol

from bridge.mqtt.contract import DEVICE_ID_RE

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_TOPIC_SAFE = DEVICE_ID_RE
"""A single topic level that is safe as an id (the contract's device id pattern)."""


def parse_duration(value: Any) -> float:
    """``90s``, ``10m``, ``1h``, ``2d``, ``250ms`` or a number of seconds → seconds (float)."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"not a duration: {value!r}")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise TypeError(f"not a duration: {value!r}")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def duration(minimum: float = 0.0, maximum: float | None = None) -> Callable[[Any], float]:
    """A duration such as ``90s``, ``10m``, ``1h`` or plain seconds, within bounds."""
    bounds = f"at least {minimum:g} s" if maximum is None else f"{minimum:g}–{maximum:g} s"

    def check(value: Any) -> float:
        try:
            seconds = parse_duration(value)
        except (ValueError, TypeError):
            raise vol.Invalid(
                "expected a duration such as 90s, 10m, 1h or a number of seconds"
            ) from None
        if seconds < minimum or (maximum is not None and seconds > maximum):
            raise vol.Invalid(f"expected a duration of {bounds}")
        return seconds

    return check


def integer(minimum: int, maximum: int) -> Callable[[Any], int]:
    """An integer within ``minimum``–``maximum`` (inclusive)."""

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise vol.Invalid(f"expected an integer {minimum}–{maximum}")
        if not minimum <= value <= maximum:
            raise vol.Invalid(f"expected an integer {minimum}–{maximum}")
        return value

    return check


def number(minimum: float | None = None, maximum: float | None = None) -> Callable[[Any], float]:
    """A number (integer or decimal), optionally bounded."""
    if minimum is not None and maximum is not None:
        expected = f"expected a number {minimum:g}–{maximum:g}"
    elif minimum is not None:
        expected = f"expected a number ≥ {minimum:g}"
    else:
        expected = "expected a number"

    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise vol.Invalid(expected)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise vol.Invalid(expected)
        return float(value)

    return check


def one_of(*choices: str) -> Callable[[Any], str]:
    """One of a fixed set of words."""
    listed = " | ".join(choices)

    def check(value: Any) -> str:
        text = (
            str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        )
        if not isinstance(text, str) or text not in choices:
            raise vol.Invalid(f"expected one of {listed}")
        return text

    return check


def boolean(value: Any) -> bool:
    """``true`` or ``false`` (YAML booleans only: no ``"yes"`` strings)."""
    if not isinstance(value, bool):
        raise vol.Invalid("expected true or false")
    return value


def text(min_length: int = 1, max_length: int = 256) -> Callable[[Any], str]:
    """A non-empty string."""

    def check(value: Any) -> str:
        if not isinstance(value, str) or not min_length <= len(value) <= max_length:
            raise vol.Invalid(f"expected text of {min_length}–{max_length} characters")
        return value

    return check


def optional(inner: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``null`` or whatever ``inner`` accepts."""

    def check(value: Any) -> Any:
        return None if value is None else inner(value)

    return check


def topic_safe_id(value: Any) -> str:
    """An identifier usable as one MQTT topic level and as a Mosquitto user name suffix."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _TOPIC_SAFE.match(value):
        raise vol.Invalid("expected 1–64 characters of A–Z, a–z, 0–9, '_' or '-'")
    return value


def topic_level(value: Any) -> str:
    """A topic prefix: no wildcards, no leading/trailing slash, no empty levels."""
    if (
        not isinstance(value, str)
        or not value
        or any(c in value for c in "+#\0")
        or value.startswith("/")
        or value.endswith("/")
        or "//" in value
    ):
        raise vol.Invalid("expected a topic prefix without wildcards or empty levels")
    return value


def path(value: Any) -> str:
    """A filesystem path (not checked for existence here: that is `powerbridge check`'s job)."""
    if not isinstance(value, str) or not value.strip():
        raise vol.Invalid("expected a file or directory path")
    return value


def env_name(value: Any) -> str:
    """The name of an environment variable."""
    if not isinstance(value, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", value):
        raise vol.Invalid("expected an environment variable name")
    return value


def list_of(inner: Callable[[Any], Any], *, min_items: int = 0) -> Callable[[Any], list[Any]]:
    """A list whose every item passes ``inner``; errors name the item's index."""

    def check(value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise vol.Invalid("expected a list")
        if len(value) < min_items:
            raise vol.Invalid(f"expected a list of at least {min_items} item(s)")
        out: list[Any] = []
        errors: list[vol.Invalid] = []
        for index, item in enumerate(value):
            try:
                out.append(inner(item))
            except vol.Invalid as exc:
                errors.append(vol.Invalid(exc.error_message, path=[index]))
        if errors:
            raise vol.MultipleInvalid(errors)
        return out

    return check


def argv(value: Any) -> list[str]:
    """A command as a list of arguments (never a shell string)."""
    if isinstance(value, str):
        raise vol.Invalid("expected a command as a list of arguments, e.g. [systemctl, poweroff]")
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise vol.Invalid("expected a command as a non-empty list of strings")
    return value
