"""What a UPS says, from NUT variables to the MQTT ``ups`` payload and back (pure).

The payload itself is the contract's :class:`~bridge.mqtt.contract.UpsPayload`
(``<base>/<device_id>/ups``, retained, QoS 1); this module maps NUT variables to a
:class:`UpsReport` and a report to and from that payload.  A bridge whose upsd cannot
be reached publishes nothing new (the retained report grows old; ``ts`` says when).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from bridge.mqtt import signing
from bridge.mqtt.contract import UpsPayload, dumps


@dataclass(frozen=True, slots=True)
class UpsReport:
    status: str
    charge: float | None = None
    """``battery.charge``, percent."""
    runtime_s: float | None = None
    """``battery.runtime``, seconds."""
    load: float | None = None
    """``ups.load``, percent."""

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(self.status.split())

    @property
    def on_battery(self) -> bool:
        return "OB" in self.words

    @property
    def on_line(self) -> bool:
        return "OL" in self.words

    @property
    def low_battery(self) -> bool:
        return "LB" in self.words


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
    return UpsReport(
        status=status,
        charge=_number(values, "battery.charge"),
        runtime_s=_number(values, "battery.runtime"),
        load=_number(values, "ups.load"),
    )


def to_payload(device: str, ts: datetime, report: UpsReport) -> UpsPayload:
    """The contract's ``ups`` payload of ``report`` (unsigned)."""
    return UpsPayload(
        device=device,
        ts=ts,
        status=report.status,
        charge=report.charge,
        runtime_s=report.runtime_s,
        load=report.load,
    )


def from_payload(payload: UpsPayload) -> UpsReport:
    return UpsReport(
        status=payload.status,
        charge=payload.charge,
        runtime_s=payload.runtime_s,
        load=payload.load,
    )


def encode_ups(device: str, ts: datetime, report: UpsReport, key: bytes | None = None) -> bytes:
    """The ``ups`` payload, signed with ``key`` when there is one (like ``mains``)."""
    payload = to_payload(device, ts, report)
    if key is None:
        return payload.encode()
    return dumps(signing.sign(key, payload.to_dict()))


def decode_ups(raw: bytes) -> tuple[str, datetime, UpsReport]:
    """``(device, ts, report)``; raise :class:`~bridge.errors.PayloadError` (no signature check)."""
    payload = UpsPayload.decode(raw)
    return payload.device, payload.ts, from_payload(payload)
