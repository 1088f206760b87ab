"""What a UPS says, from NUT variables to the MQTT ``ups`` payload and back (pure).

The payload itself is the contract's :class:`~bridge.mqtt.contract.UpsPayload`
(``<base>/<device_id>/ups``, retained, QoS 1); this module maps NUT variables to a
:class:`~bridge.mqtt.contract.UpsReport` (re-exported here) and a report to and from that
payload.  A bridge whose upsd cannot be reached publishes nothing new (the retained report
grows old; ``ts`` says when).  Each payload names its origin (:class:`UpsOrigin`): the
bridge's run, the mains state it was made under and its number in the run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

from bridge.mqtt import signing
from bridge.mqtt.contract import UpsOrigin, UpsPayload, UpsReport, dumps

__all__ = [
    "NUT_FIGURES",
    "UpsOrigin",
    "UpsPayload",
    "UpsReport",
    "decode_ups",
    "encode_ups",
    "report_from_variables",
]

NUT_FIGURES = ("battery.charge", "battery.runtime", "ups.load")
"""The NUT variables behind a report's ``charge``, ``runtime_s`` and ``load``, in order."""


def _number(values: Mapping[str, str], name: str) -> float | None:
    text = values.get(name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def report_from_variables(values: Mapping[str, str]) -> UpsReport:
    """A report from ``LIST VAR`` output (``ValueError`` without ``ups.status``)."""
    status = values.get("ups.status", "").strip()
    if not status:
        raise ValueError("the UPS reports no ups.status")
    figures = (_number(values, name) for name in NUT_FIGURES)
    return UpsReport(status, *figures)


def encode_ups(
    device: str, ts: datetime, report: UpsReport, origin: UpsOrigin, key: bytes | None = None
) -> bytes:
    """The ``ups`` payload, signed with ``key`` when there is one (like ``mains``)."""
    payload = UpsPayload(device, ts, report, origin)
    if key is None:
        return payload.encode()
    return dumps(signing.sign(key, payload.to_dict()))


def decode_ups(raw: bytes) -> UpsPayload:
    """The payload; raise :class:`~bridge.errors.PayloadError` (no signature check)."""
    return UpsPayload.decode(raw)
