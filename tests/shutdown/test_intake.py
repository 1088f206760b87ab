"""Intake: strict decoding, signatures, replay protection, rate-limited rejection logs."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest

from bridge.model import MainsState
from bridge.mqtt.contract import dumps
from bridge.shutdown.intake import Ignored, Intake, Mark, Rejected, Rejections
from bridge.shutdown.view import MainsFact
from tests.shutdown.payloads import BOOT, KEY, WALL, command, mains

DEV = "test-bridge"
CMD = "powerbridge/clients/pc1/cmd/shutdown_now"
CANCEL = "powerbridge/clients/pc1/cmd/cancel"


def reason(result: object) -> str:
    assert isinstance(result, Rejected), result
    return result.reason


def test_valid_unsigned_mains_is_a_fact() -> None:
    intake = Intake([DEV])
    fact = intake.mains(DEV, mains("off", 3, elapsed=12.5), 100.0, WALL, retained=True)
    assert fact == MainsFact(DEV, MainsState.OFF, 3, 12.5, 100.0, live=False, boot=BOOT)


def test_unknown_is_a_bridge_confirming_after_a_start() -> None:
    fact = Intake([DEV]).mains(DEV, mains("unknown", 4), 100.0)
    assert isinstance(fact, MainsFact)
    assert fact.state is MainsState.UNKNOWN


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", "malformed"),
        (b"off", "malformed"),
        (b"\xff\xfe", "malformed"),
        (b"[]", "malformed"),
        (b'{"v": 2}', "malformed"),
        (b'{"v": true}', "malformed"),
        (b"{" * 5000, "oversized"),
        (b'{"v":1,"device":"test-bridge","state":"off"}', "malformed"),
        (mains("off", 1).replace(b'"seq":1', b'"seq":"1"'), "malformed"),
        (mains("off", 1).replace(b'"seq":1', b'"seq":-1'), "malformed"),
        (mains("off", 1).replace(b'"seq":1', b'"seq":true'), "malformed"),
        (mains("off", 1).replace(b'"elapsed_s":0', b'"elapsed_s":-5'), "malformed"),
        (mains("off", 1).replace(b'"elapsed_s":0', b'"elapsed_s":1e400'), "malformed"),
        (mains("off", 1).replace(b'"elapsed_s":0', b'"elapsed_s":NaN'), "malformed"),
        (mains("off", 1).replace(b'"state":"off"', b'"state":"maybe"'), "malformed"),
        (mains("off", 1).replace(b'"n":1', b'"n":0'), "malformed"),
        (mains("off", 1).replace(b'"n":1', b'"n":"1"'), "malformed"),
        (mains("off", 1).replace(b'"n":1,', b""), "malformed"),
        (mains("off", 1).replace(BOOT.encode(), b"not-a-run-id"), "malformed"),
        (mains("off", 1).replace(b'"boot":"' + BOOT.encode() + b'",', b""), "malformed"),
        (mains("off", 1).replace(b'"state":"off"', b'"state":"OFF"'), "malformed"),
        (mains("off", 1).replace(b'"ts":"2026', b'"ts":"x2026'), "malformed"),
        (mains("off", 1).replace(b'Z"', b'"'), "malformed"),
        (mains("off", 1, device="other"), "wrong_device"),
        (b'{"v":1,"a":' * 200 + b"1" + b"}" * 200, "malformed"),
    ],
)
def test_bad_mains_is_rejected(raw: bytes, expected: str) -> None:
    assert reason(Intake([DEV]).mains(DEV, raw, 1.0, WALL)) == expected


def test_mains_from_an_unwatched_bridge_is_rejected() -> None:
    assert reason(Intake([DEV]).mains("other", mains("off", 1), 1.0, WALL)) == "unexpected_topic"


def test_ordering_replay_duplicates_and_refreshes() -> None:
    intake = Intake([DEV])
    assert isinstance(intake.mains(DEV, mains("off", 5, n=3), 1.0), MainsFact)
    # the retained copy delivered again after a reconnect: nothing new
    assert intake.mains(DEV, mains("off", 5, n=3), 2.0) == Ignored("duplicate")
    refresh = intake.mains(DEV, mains("off", 5, elapsed=30, n=4), 31.0)
    assert isinstance(refresh, MainsFact)
    # an older refresh of this run, re-sent late: ignored
    assert intake.mains(DEV, mains("off", 5, elapsed=10, n=3), 32.0) == Ignored("stale_refresh")
    assert reason(intake.mains(DEV, mains("on", 5, n=5), 33.0)) == "inconsistent"
    assert reason(intake.mains(DEV, mains("on", 6, n=4), 33.5)) == "inconsistent"
    assert reason(intake.mains(DEV, mains("on", 4, n=9), 34.0)) == "replayed"
    assert isinstance(intake.mains(DEV, mains("on", 6, n=6), 35.0), MainsFact)


def test_a_new_run_of_the_bridge_must_number_above_everything_before() -> None:
    intake = Intake([DEV])
    assert isinstance(intake.mains(DEV, mains("off", 5, n=40), 1.0), MainsFact)
    other = "0123456789abcdef"
    # a message of another run with the same or a lower seq: old (a replay), never news
    assert reason(intake.mains(DEV, mains("off", 5, boot=other, n=1), 2.0)) == "replayed"
    assert reason(intake.mains(DEV, mains("on", 4, boot=other, n=99), 2.0)) == "replayed"
    # the restarted bridge: "unknown" with a seq of its own, then its confirmation
    assert isinstance(intake.mains(DEV, mains("unknown", 6, boot=other, n=1), 3.0), MainsFact)
    assert isinstance(intake.mains(DEV, mains("on", 7, boot=other, n=2), 4.0), MainsFact)
    # now nothing of the earlier run passes, whatever its n
    assert reason(intake.mains(DEV, mains("off", 5, n=41), 5.0)) == "replayed"


def test_offline_keeps_the_order_memory() -> None:
    """Paho re-sends an unacknowledged `on` (seq 1) after `off` (seq 2) and an `offline`."""
    intake = Intake([DEV])
    assert isinstance(intake.mains(DEV, mains("on", 1, n=1), 1.0), MainsFact)
    assert isinstance(intake.mains(DEV, mains("off", 2, n=2), 2.0), MainsFact)
    assert intake.status(DEV, b"offline") is False
    assert intake.status(DEV, b"online") is True
    assert intake.mains(DEV, mains("on", 1, n=1), 3.0) == Ignored("stale_refresh")
    assert reason(intake.mains(DEV, mains("on", 1, boot="0123456789abcdef"), 3.0)) == "replayed"


def test_the_order_memory_survives_a_restart_of_the_client() -> None:
    first = Intake([DEV])
    assert isinstance(first.mains(DEV, mains("off", 2, n=2), 1.0), MainsFact)
    marks = first.marks
    assert marks == {DEV: Mark(2, BOOT, 2, MainsState.OFF)}
    second = Intake([DEV, "other"])
    second.restore({**marks, "unwatched": Mark(1, BOOT, 1, MainsState.ON)})
    assert reason(second.mains(DEV, mains("on", 1, n=1, boot="0123456789abcdef"), 1.0)) == (
        "replayed"
    )
    # the remembered message itself, retained, still tells the new run what was said last
    again = second.mains(DEV, mains("off", 2, n=2), 2.0, retained=True)
    assert isinstance(again, MainsFact)
    assert second.mains(DEV, mains("off", 2, n=2), 3.0) == Ignored("duplicate")


@pytest.mark.parametrize("raw", [b"Online", b"", b"online\n", b"1", b'{"v":1}'])
def test_bad_status_is_rejected(raw: bytes) -> None:
    assert reason(Intake([DEV]).status(DEV, raw)) == "malformed"


# -- signatures ---------------------------------------------------------------------------


def test_signed_mains_accepted_forged_and_unsigned_rejected() -> None:
    intake = Intake([DEV], key=KEY, max_age=120)
    assert reason(intake.mains(DEV, mains("off", 1), 1.0, WALL)) == "unsigned"
    forged = mains("off", 1, key=b"another key of sixteen bytes+")
    assert reason(intake.mains(DEV, forged, 1.0, WALL)) == "bad_signature"
    tampered = mains("on", 1, key=KEY).replace(b'"state":"on"', b'"state":"off"')
    assert reason(intake.mains(DEV, tampered, 1.0, WALL)) == "bad_signature"
    bad_sig_type = json.loads(mains("off", 1, key=KEY))
    bad_sig_type["sig"] = 5
    assert reason(intake.mains(DEV, dumps(bad_sig_type), 1.0, WALL)) == "unsigned"
    assert isinstance(intake.mains(DEV, mains("off", 1, key=KEY), 1.0, WALL), MainsFact)


@pytest.mark.parametrize("offset", [-3600.0, -121.0, 0.0, 3 * 3600.0])
def test_a_bridge_clock_hours_off_is_judged_like_a_right_one(offset: float) -> None:
    """No wall clock decides freshness: a Pi without RTC and NTP still drives its clients."""
    intake = Intake([DEV], key=KEY, max_age=120)
    ts = WALL + timedelta(seconds=offset)
    assert isinstance(intake.mains(DEV, mains("off", 9, key=KEY, ts=ts, n=1), 1.0), MainsFact)
    refresh = mains("off", 9, key=KEY, ts=ts + timedelta(seconds=30), elapsed=30, n=2)
    assert isinstance(intake.mains(DEV, refresh, 31.0), MainsFact)
    # an old message replayed, however new its timestamp looks, is refused by its order
    replay = mains("on", 8, key=KEY, ts=WALL + timedelta(days=1), n=50)
    assert reason(intake.mains(DEV, replay, 32.0)) == "replayed"


# -- commands -------------------------------------------------------------------------------


def remote(**kw: object) -> Intake:
    return Intake([DEV], key=KEY, max_age=120, allow_remote=True, **kw)  # type: ignore[arg-type]


def test_valid_command_is_accepted_once() -> None:
    intake = remote()
    raw = command(CMD, args={"reason": "UPS maintenance"}, nonce="n1")
    fact = intake.command(CMD, "shutdown_now", raw, 5.0, WALL)
    assert not isinstance(fact, Rejected)
    assert (fact.name, fact.reason) == ("shutdown_now", "UPS maintenance")
    assert reason(intake.command(CMD, "shutdown_now", raw, 6.0, WALL)) == "replayed"


@pytest.mark.parametrize(
    ("topic", "name", "raw", "retained", "expected"),
    [
        (CMD, "shutdown_now", command(CMD), True, "retained_command"),
        (CMD, "reboot", command(CMD), False, "unknown_command"),
        (CMD, "shutdown_now", command(CMD, key=None), False, "unsigned"),
        (
            CMD,
            "shutdown_now",
            command(CMD, key=b"wrong key, sixteen+ bytes"),
            False,
            "bad_signature",
        ),
        # a signed cancel replayed as shutdown_now, or to another client
        (CMD, "shutdown_now", command(CANCEL), False, "bad_signature"),
        (
            "powerbridge/clients/all/cmd/shutdown_now",
            "shutdown_now",
            command(CMD),
            False,
            "bad_signature",
        ),
        (CMD, "shutdown_now", command(CMD, ts=WALL - timedelta(seconds=121)), False, "stale"),
        (CMD, "shutdown_now", command(CMD, ts=WALL + timedelta(seconds=121)), False, "stale"),
        (CMD, "shutdown_now", command(CMD, args={"cmd": "rm -rf /"}), False, "malformed"),
        (CMD, "shutdown_now", command(CMD, args={"reason": "x" * 201}), False, "malformed"),
        (CMD, "shutdown_now", command(CMD, args={"reason": 5}), False, "malformed"),
        (CMD, "shutdown_now", command(CMD, nonce="x" * 65), False, "malformed"),
        (CMD, "shutdown_now", b"not json", False, "malformed"),
        (CMD, "shutdown_now", b" " * 5000, False, "oversized"),
    ],
)
def test_bad_commands_are_rejected(
    topic: str, name: str, raw: bytes, retained: bool, expected: str
) -> None:
    assert reason(remote().command(topic, name, raw, 1.0, WALL, retained=retained)) == expected


def test_commands_need_allow_remote_and_a_key() -> None:
    raw = command(CMD)
    assert reason(Intake([DEV], key=KEY).command(CMD, "shutdown_now", raw, 1.0, WALL)) == (
        "remote_disabled"
    )
    assert reason(Intake([DEV], allow_remote=True).command(CMD, "cancel", raw, 1.0, WALL)) == (
        "remote_disabled"
    )


# -- counting and logging ---------------------------------------------------------------------


def test_rejections_are_counted_and_logs_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    counter = Rejections(logging.getLogger("t"), lambda: now[0], interval=60)
    with caplog.at_level(logging.WARNING, "t"):
        for i in range(1000):
            now[0] = i * 0.1  # 100 s
            counter.add("t/mains", Rejected("malformed", "not JSON"))
        counter.add("t/mains", Rejected("unsigned", "no sig"))
    assert counter.counts == {"malformed": 1000, "unsigned": 1}
    assert counter.total == 1001
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3  # first malformed, one summary after 60 s, first unsigned
    assert "ignored 600 more message(s) (malformed)" in lines[1]
