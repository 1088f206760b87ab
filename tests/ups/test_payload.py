"""The ``ups`` payload of the contract, signed and unsigned, and the client's intake of it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from bridge.errors import PayloadError
from bridge.mqtt.contract import MAX_CONTROL_PAYLOAD, BridgeTopics, UpsPayload, dumps
from bridge.shutdown.intake import Ignored, Intake, Rejected
from bridge.ups.report import UpsReport, encode_ups

WALL = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
KEY = b"k" * 32
DEV = "rack-a"


def test_topic_is_a_member_of_the_bridge_topics() -> None:
    assert BridgeTopics("powerbridge", DEV).ups == "powerbridge/rack-a/ups"


def test_round_trip_spells_out_the_status_words() -> None:
    payload = UpsPayload(DEV, WALL, UpsReport("OB LB", charge=9.0, runtime_s=61.5, load=None))
    data = json.loads(payload.encode())
    assert data["on_battery"] is True
    assert data["low_battery"] is True
    assert "sig" not in data
    assert UpsPayload.decode(payload.encode()) == payload


@pytest.mark.parametrize(
    "change",
    [
        {"status": ""},
        {"status": "OL " * 100},
        {"runtime_s": -1},
        {"charge": "50"},
        {"on_battery": True},  # contradicts "OL"
        {"sig": 5},
    ],
)
def test_decoding_is_strict(change: dict[str, object]) -> None:
    data = UpsPayload(DEV, WALL, UpsReport("OL")).to_dict() | change
    with pytest.raises(PayloadError):
        UpsPayload.decode(dumps(data))


def test_size_limit() -> None:
    data = UpsPayload(DEV, WALL, UpsReport("OL")).to_dict() | {"pad": "x" * MAX_CONTROL_PAYLOAD}
    with pytest.raises(PayloadError, match="exceeds"):
        UpsPayload.decode(dumps(data))


def _report(status: str, runtime: float, at: int, key: bytes | None = KEY) -> bytes:
    ts = WALL + timedelta(seconds=at)
    return encode_ups(DEV, ts, UpsReport(status, charge=50.0, runtime_s=runtime), key)


def test_a_client_with_a_key_accepts_signed_reports_only() -> None:
    intake = Intake([DEV], key=KEY)
    report = intake.ups(DEV, _report("OB", 300.0, 1), retained=False)
    assert report == UpsReport("OB", charge=50.0, runtime_s=300.0)
    unsigned = intake.ups(DEV, _report("OB", 10.0, 2, key=None), retained=False)
    assert isinstance(unsigned, Rejected)
    assert unsigned.reason == "unsigned"
    forged = intake.ups(DEV, _report("OB LB", 10.0, 3, key=b"x" * 32), retained=False)
    assert isinstance(forged, Rejected)
    assert forged.reason == "bad_signature"
    tampered = json.loads(_report("OB", 300.0, 4))
    tampered["runtime_s"] = 5.0
    result = intake.ups(DEV, dumps(tampered), retained=False)
    assert isinstance(result, Rejected)
    assert result.reason == "bad_signature"


def test_a_client_without_a_key_accepts_unsigned_reports() -> None:
    intake = Intake([DEV])
    assert isinstance(intake.ups(DEV, _report("OL", 900.0, 1, key=None), retained=False), UpsReport)


def test_a_replayed_signed_report_is_ignored() -> None:
    intake = Intake([DEV], key=KEY)
    old = _report("OB", 30.0, 1)
    assert isinstance(intake.ups(DEV, old, retained=False), UpsReport)
    assert isinstance(intake.ups(DEV, _report("OB", 600.0, 2), retained=False), UpsReport)
    assert isinstance(intake.ups(DEV, old, retained=False), Ignored)


def test_retained_and_foreign_reports_are_not_acted_on() -> None:
    intake = Intake([DEV])
    assert isinstance(intake.ups(DEV, _report("OB", 1.0, 1, None), retained=True), Ignored)
    other = intake.ups("other", _report("OB", 1.0, 2, None), retained=False)
    assert isinstance(other, Rejected)
    spoofed = Intake([DEV, "other"]).ups("other", _report("OB", 1.0, 3, None), retained=False)
    assert isinstance(spoofed, Rejected)
    assert spoofed.reason == "wrong_device"


def test_a_new_run_of_the_bridge_may_have_an_earlier_clock() -> None:
    from bridge.shutdown.view import MainsFact
    from tests.shutdown.payloads import mains

    intake = Intake([DEV], key=KEY)
    assert isinstance(intake.mains(DEV, mains("off", 1, device=DEV, key=KEY), 1.0), MainsFact)
    assert isinstance(intake.ups(DEV, _report("OB", 600.0, 100), retained=False), UpsReport)
    earlier = _report("OB", 300.0, 5)  # the Pi restarted with its clock behind
    assert isinstance(intake.ups(DEV, earlier, retained=False), Ignored)  # same run: a replay
    restarted = mains("off", 2, device=DEV, key=KEY, boot="b0075eed00000002")
    assert isinstance(intake.mains(DEV, restarted, 2.0), MainsFact)
    assert isinstance(intake.ups(DEV, _report("OB", 290.0, 6), retained=False), UpsReport)
