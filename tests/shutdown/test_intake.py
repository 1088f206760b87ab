"""Intake: strict decoding, signatures, replay protection, rate-limited rejection logs."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest

from bridge.model import MainsState
from bridge.mqtt.contract import dumps
from bridge.shutdown.intake import Ignored, Intake, Rejected, Rejections
from bridge.shutdown.view import MainsFact
from tests.shutdown.payloads import KEY, WALL, command, mains

DEV = "test-bridge"
CMD = "powerbridge/clients/pc1/cmd/shutdown_now"
CANCEL = "powerbridge/clients/pc1/cmd/cancel"


def reason(result: object) -> str:
    assert isinstance(result, Rejected), result
    return result.reason


def test_valid_unsigned_mains_is_a_fact() -> None:
    intake = Intake([DEV])
    fact = intake.mains(DEV, mains("off", 3, elapsed=12.5), 100.0, WALL, retained=True)
    assert fact == MainsFact(DEV, MainsState.OFF, 3, 12.5, 100.0, live=False)


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
        (mains("off", 1).replace(b'"state":"off"', b'"state":"unknown"'), "malformed"),
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
    assert isinstance(intake.mains(DEV, mains("off", 5), 1.0, WALL), MainsFact)
    # the retained copy delivered again after a reconnect: nothing new
    assert intake.mains(DEV, mains("off", 5), 2.0, WALL) == Ignored("duplicate")
    later = WALL + timedelta(seconds=30)
    refresh = intake.mains(DEV, mains("off", 5, elapsed=30, ts=later), 31.0, later)
    assert isinstance(refresh, MainsFact)
    assert intake.mains(DEV, mains("off", 5, elapsed=10, ts=WALL), 32.0, later) == Ignored(
        "stale_refresh"
    )
    assert reason(intake.mains(DEV, mains("on", 5, ts=later + timedelta(1)), 33.0, later)) == (
        "inconsistent"
    )
    assert reason(intake.mains(DEV, mains("on", 4, ts=later), 34.0, later)) == "replayed"
    assert isinstance(intake.mains(DEV, mains("on", 6, ts=later), 35.0, later), MainsFact)


def test_offline_forgets_the_sequence_for_a_reinstalled_bridge() -> None:
    intake = Intake([DEV])
    assert isinstance(intake.mains(DEV, mains("on", 57), 1.0, WALL), MainsFact)
    assert reason(intake.mains(DEV, mains("on", 1), 2.0, WALL)) == "replayed"
    assert intake.status(DEV, b"offline") is False
    assert intake.status(DEV, b"online") is True
    assert isinstance(intake.mains(DEV, mains("on", 1), 3.0, WALL), MainsFact)


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


def test_signed_replay_of_an_old_message_on_a_fresh_client_is_stale() -> None:
    intake = Intake([DEV], key=KEY, max_age=120)
    old = mains("off", 9, key=KEY, ts=WALL - timedelta(seconds=121))
    assert reason(intake.mains(DEV, old, 1.0, WALL)) == "stale"
    recent = mains("off", 9, key=KEY, ts=WALL - timedelta(seconds=119))
    assert isinstance(intake.mains(DEV, recent, 1.0, WALL), MainsFact)


def test_a_bridge_clock_ahead_of_ours_is_not_a_replay() -> None:
    intake = Intake([DEV], key=KEY, max_age=120)
    ahead = mains("on", 1, key=KEY, ts=WALL + timedelta(hours=3))
    assert isinstance(intake.mains(DEV, ahead, 1.0, WALL), MainsFact)


@pytest.mark.parametrize("jump", [3600.0, -3600.0])
def test_our_wall_clock_jump_does_not_reject_a_live_bridge(jump: float) -> None:
    intake = Intake([DEV], key=KEY, max_age=120)
    assert isinstance(intake.mains(DEV, mains("off", 1, key=KEY), 100.0, WALL), MainsFact)
    our_wall = WALL + timedelta(seconds=30 + jump)  # our clock jumped; the bridge's did not
    refresh = mains("off", 1, key=KEY, elapsed=30, ts=WALL + timedelta(seconds=30))
    assert isinstance(intake.mains(DEV, refresh, 130.0, our_wall), MainsFact)
    restore = mains("on", 2, key=KEY, ts=WALL + timedelta(seconds=45))
    assert isinstance(intake.mains(DEV, restore, 145.0, our_wall), MainsFact)
    # ...while an old message replayed now is still too old by the anchored bridge clock
    # (and by the sequence rule)
    replay = mains("off", 3, key=KEY, ts=WALL - timedelta(seconds=500))
    assert reason(intake.mains(DEV, replay, 146.0, WALL + timedelta(seconds=46))) == "stale"


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
