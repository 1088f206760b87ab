"""NUT variables to a UPS report and the ``ups`` payload, and a reader with no upsd."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bridge.broker.runner import free_port
from bridge.errors import PayloadError
from bridge.mqtt.contract import BridgeTopics
from bridge.ups.reader import UpsReader, UpsTarget
from bridge.ups.report import (
    UpsOrigin,
    UpsReport,
    decode_ups,
    encode_ups,
    report_from_variables,
)

WALL = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def test_report_from_variables() -> None:
    report = report_from_variables(
        {"ups.status": "OB LB", "battery.charge": "9", "battery.runtime": "61.5", "ups.load": "x"}
    )
    assert report == UpsReport("OB LB", charge=9.0, runtime_s=61.5, load=None)
    assert report.on_battery
    assert report.low_battery
    assert not report.on_line


def test_a_ups_without_status_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"ups\.status"):
        report_from_variables({"battery.charge": "100"})


def test_payload_round_trip_and_topic() -> None:
    report = UpsReport("OL CHRG", charge=99.0, runtime_s=None, load=12.0)
    origin = UpsOrigin("b0075eed00000001", 12, 3)
    payload = decode_ups(encode_ups("rack-a", WALL, report, origin))
    assert (payload.device, payload.ts, payload.report, payload.origin) == (
        "rack-a",
        WALL,
        report,
        origin,
    )
    assert BridgeTopics("powerbridge", "rack-a").ups == "powerbridge/rack-a/ups"


@pytest.mark.parametrize(
    "raw",
    [
        b"{}",
        b'{"v": 1, "device": "a", "status": "OL"}',
        b'{"v": 1, "device": "a", "status": "OL", "ts": "yesterday"}',
        b'{"v": 1, "device": "a", "status": "OL", "ts": "2026-11-20T12:00:00Z", "charge": true}',
        b'{"v": 2, "device": "a", "status": "OL", "ts": "2026-11-20T12:00:00Z"}',
        b'{"v": 1, "device": "a", "status": "OL", "ts": "2026-11-20T12:00:00Z"}',  # no origin
    ],
)
def test_bad_payloads_are_refused(raw: bytes) -> None:
    with pytest.raises(PayloadError):
        decode_ups(raw)


@pytest.mark.realtime
def test_no_upsd_is_reported_once_and_never_raises() -> None:
    seen: list[tuple[UpsReport | None, str | None]] = []
    reader = UpsReader(
        UpsTarget("ups", port=free_port(), timeout=1.0), lambda r, e: seen.append((r, e))
    )
    assert reader.poll() is None
    assert reader.poll() is None
    assert [r for r, _ in seen] == [None, None]
    assert all(e and "Error" in e for _, e in seen)
