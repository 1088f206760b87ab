"""The ``ups`` payload of the contract, signed and unsigned, and the client's intake of it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from bridge.errors import PayloadError
from bridge.mqtt.contract import (
    MAX_CONTROL_PAYLOAD,
    BridgeTopics,
    UpsOrigin,
    UpsPayload,
    dumps,
)
from bridge.shutdown.intake import Ignored, Intake, Rejected
from bridge.shutdown.view import MainsFact
from bridge.ups.report import UpsReport, encode_ups
from tests.shutdown.payloads import BOOT, mains

WALL = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
KEY = b"k" * 32
DEV = "rack-a"
ORIGIN = UpsOrigin(BOOT, 7, 1)
RUN_2 = "b0075eed00000002"


def test_topic_is_a_member_of_the_bridge_topics() -> None:
    assert BridgeTopics("powerbridge", DEV).ups == "powerbridge/rack-a/ups"


def test_round_trip_spells_out_the_status_words() -> None:
    report = UpsReport("OB LB", charge=9.0, runtime_s=61.5, load=None)
    payload = UpsPayload(DEV, WALL, report, ORIGIN)
    data = json.loads(payload.encode())
    assert data["on_battery"] is True
    assert data["low_battery"] is True
    assert (data["boot"], data["seq"], data["n"]) == (BOOT, 7, 1)
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
        {"boot": "not-a-run"},
        {"seq": -1},
        {"n": 0},
        {"n": 1.5},
    ],
)
def test_decoding_is_strict(change: dict[str, object]) -> None:
    data = UpsPayload(DEV, WALL, UpsReport("OL"), ORIGIN).to_dict() | change
    with pytest.raises(PayloadError):
        UpsPayload.decode(dumps(data))


@pytest.mark.parametrize("missing", ["boot", "seq", "n"])
def test_a_report_without_its_origin_is_refused(missing: str) -> None:
    data = UpsPayload(DEV, WALL, UpsReport("OL"), ORIGIN).to_dict()
    del data[missing]
    with pytest.raises(PayloadError):
        UpsPayload.decode(dumps(data))


def test_size_limit() -> None:
    data = UpsPayload(DEV, WALL, UpsReport("OL"), ORIGIN).to_dict()
    data |= {"pad": "x" * MAX_CONTROL_PAYLOAD}
    with pytest.raises(PayloadError, match="exceeds"):
        UpsPayload.decode(dumps(data))


def _report(
    status: str,
    runtime: float,
    n: int,
    key: bytes | None = KEY,
    *,
    seq: int = 7,
    boot: str = BOOT,
    at: int | None = None,
) -> bytes:
    ts = WALL + timedelta(seconds=n if at is None else at)
    report = UpsReport(status, charge=50.0, runtime_s=runtime)
    return encode_ups(DEV, ts, report, UpsOrigin(boot, seq, n), key)


def _intake(key: bytes | None = KEY, *, seq: int = 7, boot: str = BOOT) -> Intake:
    """An intake that has heard the bridge's ``mains`` (state ``seq`` of run ``boot``)."""
    intake = Intake([DEV], key=key)
    told = mains("off", seq, device=DEV, key=key, boot=boot)
    assert isinstance(intake.mains(DEV, told, 1.0), MainsFact)
    return intake


def test_a_client_with_a_key_accepts_signed_reports_only() -> None:
    intake = _intake()
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
    moved = json.loads(_report("OB LB", 10.0, 5, seq=3))
    moved["seq"] = 7  # an old report made to look current: the signature covers the origin
    result = intake.ups(DEV, dumps(moved), retained=False)
    assert isinstance(result, Rejected)
    assert result.reason == "bad_signature"


def test_a_client_without_a_key_accepts_unsigned_reports() -> None:
    intake = _intake(key=None)
    assert isinstance(intake.ups(DEV, _report("OL", 900.0, 1, key=None), retained=False), UpsReport)


def test_a_replayed_signed_report_is_ignored() -> None:
    intake = _intake()
    old = _report("OB", 30.0, 1)
    assert isinstance(intake.ups(DEV, old, retained=False), UpsReport)
    assert isinstance(intake.ups(DEV, _report("OB", 600.0, 2), retained=False), UpsReport)
    assert isinstance(intake.ups(DEV, old, retained=False), Ignored)


def test_retained_and_foreign_reports_are_not_acted_on() -> None:
    intake = _intake(key=None)
    assert isinstance(intake.ups(DEV, _report("OB", 1.0, 1, None), retained=True), Ignored)
    other = intake.ups("other", _report("OB", 1.0, 2, None), retained=False)
    assert isinstance(other, Rejected)
    spoofed = Intake([DEV, "other"]).ups("other", _report("OB", 1.0, 3, None), retained=False)
    assert isinstance(spoofed, Rejected)
    assert spoofed.reason == "wrong_device"


def test_before_any_mains_a_report_waits() -> None:
    intake = Intake([DEV], key=KEY)
    result = intake.ups(DEV, _report("OB LB", 10.0, 1), retained=False)
    assert isinstance(result, Ignored)
    assert "no mains message" in result.reason


def test_a_report_about_an_earlier_outage_is_ignored_after_a_client_restart() -> None:
    # Outage 3 of this run had a low battery; outage 7 is under way.  A fresh intake (a
    # restarted client: no memory of UPS reports) is offered the old, validly signed
    # "OB LB" again: it is about mains state 3, not the present 7.
    captured = _report("OB LB", 60.0, 40, seq=3)
    intake = _intake(seq=7)
    result = intake.ups(DEV, captured, retained=False)
    assert isinstance(result, Ignored)
    assert "mains state 3, before the present 7" in result.reason
    assert isinstance(intake.ups(DEV, _report("OB", 900.0, 41, seq=7), retained=False), UpsReport)


def test_a_report_from_another_run_is_ignored_even_about_the_same_outage() -> None:
    # An outage that began before the bridge restarted goes on in its new run under the
    # same sequence number; the old run's reports are still history.
    captured = _report("OB LB", 60.0, 40, seq=7, boot=BOOT)
    intake = _intake(seq=7, boot=RUN_2)
    result = intake.ups(DEV, captured, retained=False)
    assert isinstance(result, Ignored)
    assert f"from run {BOOT}" in result.reason
    fresh = _report("OB", 900.0, 1, seq=7, boot=RUN_2)  # numbering starts again in a run
    assert isinstance(intake.ups(DEV, fresh, retained=False), UpsReport)


def test_a_report_ahead_of_the_mains_it_names_is_accepted() -> None:
    # Sent just after a mains change that this client has not processed yet.
    intake = _intake(seq=7)
    assert isinstance(intake.ups(DEV, _report("OB", 800.0, 3, seq=8), retained=False), UpsReport)


def test_no_clock_is_trusted_a_report_with_an_earlier_ts_but_a_higher_number_counts() -> None:
    intake = _intake()
    assert isinstance(intake.ups(DEV, _report("OB", 600.0, 1, at=3600), retained=False), UpsReport)
    stepped_back = _report("OB", 300.0, 2, at=5)  # the Pi's clock stepped back an hour
    assert intake.ups(DEV, stepped_back, retained=False) == UpsReport(
        "OB", charge=50.0, runtime_s=300.0
    )
    same_number = _report("OB LB", 10.0, 2, at=7200)  # a later ts does not make it newer
    assert isinstance(intake.ups(DEV, same_number, retained=False), Ignored)
