"""``cmd/resend`` as the archive sends it and as a bridge checks it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bridge.archive.gaps import Gap
from bridge.archive.resend import resend_commands
from bridge.errors import PayloadError
from bridge.mqtt.commands import CommandRejectedError, CommandVerifier
from bridge.mqtt.contract import BRIDGE_COMMANDS, RESEND_MAX_RANGE, resend_range
from tests.archive.fakes import TODAY

KEY = b"k" * 32


def verifier() -> CommandVerifier:
    return CommandVerifier(BRIDGE_COMMANDS, key=KEY, max_age=120.0)


def test_a_long_gap_is_asked_for_in_signed_pieces_a_bridge_accepts() -> None:
    gap = Gap("rack-a", 10, 10 + 2 * RESEND_MAX_RANGE + 5, 0)
    commands = resend_commands(gap, base="powerbridge", now=TODAY, key=KEY)
    assert [topic for topic, _ in commands] == ["powerbridge/rack-a/cmd/resend"] * 3
    check = verifier()
    ranges = []
    for topic, payload in commands:
        command = check.verify(topic, "resend", payload, received=1.0, wall=TODAY)
        ranges.append(resend_range(command.args))
    assert ranges == [
        (10, 10 + RESEND_MAX_RANGE - 1),
        (10 + RESEND_MAX_RANGE, 10 + 2 * RESEND_MAX_RANGE - 1),
        (10 + 2 * RESEND_MAX_RANGE, 10 + 2 * RESEND_MAX_RANGE + 5),
    ]


def test_a_resend_signed_for_one_bridge_is_refused_by_another() -> None:
    ((_topic, payload),) = resend_commands(Gap("rack-a", 1, 5, 0), base="powerbridge",
                                           now=TODAY, key=KEY)  # fmt: skip
    with pytest.raises(CommandRejectedError) as info:
        verifier().verify("powerbridge/rack-b/cmd/resend", "resend", payload, received=1.0,
                          wall=TODAY)  # fmt: skip
    assert info.value.reason == "bad_signature"


def test_an_old_resend_is_refused() -> None:
    ((topic, payload),) = resend_commands(
        Gap("rack-a", 1, 5, 0), base="powerbridge", now=TODAY - timedelta(hours=1), key=KEY
    )
    with pytest.raises(CommandRejectedError):
        verifier().verify(topic, "resend", payload, received=1.0, wall=TODAY)


@pytest.mark.parametrize(
    "args",
    [{}, {"first": 5, "last": 4}, {"first": -1, "last": 3}, {"first": "1", "last": 2},
     {"first": True, "last": 2}, {"first": 0, "last": RESEND_MAX_RANGE}],
)  # fmt: skip
def test_resend_ranges_outside_the_contract_are_refused(args: dict[str, object]) -> None:
    with pytest.raises(PayloadError):
        resend_range(args)
