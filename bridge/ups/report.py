"""What a UPS says, from NUT variables to the MQTT ``ups`` payload and back (pure).

``<base>/<device_id>/ups`` (retained, QoS 1) carries the bridge's UPS as last read::

    {"v": 1, "device": "rack-a", "ts": "2026-11-20T12:00:00Z", "status": "OB DISCHRG",
     "on_battery": true, "low_battery": false, "charge": 87.0, "runtime_s": 1260.0,
     "load": 23.0}

``charge``, ``runtime_s`` and ``load`` are ``null`` when the UPS does not report them;
``status`` is NUT's ``ups.status`` as the driver reports it.  A bridge whose upsd cannot
be reached publishes nothing new (the retained report grows old; ``ts`` says when).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from bridge.clock import isoformat_utc, parse_utc
from bridge.errors import PayloadError
from bridge.mqtt.contract import PAYLOAD_VERSION, BridgeTopics, dumps, loads_object

MAX_UPS_PAYLOAD: Final = 4096


def ups_topic(topics: BridgeTopics) -> str:
    """``<base>/<device_id>/ups``."""
    return f"{topics.root}/ups"


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


def encode_ups(device: str, ts: datetime, report: UpsReport) -> bytes:
    return dumps(
        {
            "v": PAYLOAD_VERSION,
            "device": device,
            "ts": isoformat_utc(ts),
            "status": report.status,
            "on_battery": report.on_battery,
            "low_battery": report.low_battery,
            "charge": report.charge,
            "runtime_s": report.runtime_s,
            "load": report.load,
        }
    )


def _optional_number(data: dict[str, Any], name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PayloadError(f"field {name!r} has the wrong type")
    return float(value)


def decode_ups(raw: bytes) -> tuple[str, datetime, UpsReport]:
    """``(device, ts, report)``; raise :class:`~bridge.errors.PayloadError`."""
    data = loads_object(raw, max_size=MAX_UPS_PAYLOAD)
    device, status, ts = data.get("device"), data.get("status"), data.get("ts")
    if not isinstance(device, str) or not isinstance(status, str) or not isinstance(ts, str):
        raise PayloadError("an ups payload needs device, status and ts")
    try:
        when = parse_utc(ts)
    except ValueError:
        raise PayloadError("field 'ts' is not a time") from None
    report = UpsReport(
        status=status,
        charge=_optional_number(data, "charge"),
        runtime_s=_optional_number(data, "runtime_s"),
        load=_optional_number(data, "load"),
    )
    return device, when, report
