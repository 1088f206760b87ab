"""The one command verifier: what the bridge and the shutdown client both rely on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.mqtt import signing
from bridge.mqtt.commands import NONCE_MEMORY, CommandRejectedError, CommandVerifier
from bridge.mqtt.contract import CommandPayload, dumps

KEY = b"k" * 32
WALL = datetime(2026, 12, 6, 7, 0, tzinfo=UTC)
TOPIC = "powerbridge/clients/pc-1/cmd/cancel"


def raw(nonce: str, *, topic: str | None = TOPIC, ts: datetime = WALL) -> bytes:
    body = CommandPayload("cancel", {}, ts, nonce).to_dict()
    return dumps(signing.sign(KEY, body, topic=topic))


def verifier(*, key: bytes | None = KEY) -> CommandVerifier:
    return CommandVerifier(("cancel",), key=key, max_age=120)


def reason(check: CommandVerifier, data: bytes, topic: str = TOPIC, at: float = 0.0) -> str:
    with pytest.raises(CommandRejectedError) as caught:
        check.verify(topic, "cancel", data, received=at, wall=WALL)
    return caught.value.reason


def test_a_topic_bound_signature_holds_only_on_its_topic() -> None:
    check = verifier()
    assert check.verify(TOPIC, "cancel", raw("n1"), received=0, wall=WALL).nonce == "n1"
    other = "powerbridge/clients/pc-2/cmd/cancel"
    assert reason(check, raw("n2"), topic=other) == "bad_signature"
    assert reason(check, raw("n3", topic=None)) == "bad_signature"  # signed without the topic


def test_a_bridge_command_signed_for_another_bridge_or_command_is_refused() -> None:
    topic = "powerbridge/rack-a/cmd/cancel"
    check = verifier()
    assert check.verify(topic, "cancel", raw("n1", topic=topic), received=0, wall=WALL)
    assert reason(check, raw("n2", topic="powerbridge/rack-b/cmd/cancel"), topic) == (
        "bad_signature"
    )
    assert reason(check, raw("n3", topic=None), topic) == "bad_signature"


def test_without_a_key_unsigned_commands_pass_and_nonces_are_not_kept() -> None:
    check = verifier(key=None)
    unsigned = CommandPayload("cancel", {}, WALL - timedelta(days=1), "n1").encode()
    assert check.verify(TOPIC, "cancel", unsigned, received=0, wall=WALL)
    assert check.verify(TOPIC, "cancel", unsigned, received=1, wall=WALL)


def test_replays_stale_and_unknown_commands_are_refused() -> None:
    check = verifier()
    check.verify(TOPIC, "cancel", raw("n1"), received=0, wall=WALL)
    assert reason(check, raw("n1"), at=1) == "replayed"
    assert reason(check, raw("n2", ts=WALL - timedelta(seconds=121))) == "stale"
    with pytest.raises(CommandRejectedError) as caught:
        check.verify(TOPIC, "reboot", raw("n3"), received=0, wall=WALL)
    assert caught.value.reason == "unknown_command"


def test_the_nonce_memory_is_bounded_and_forgets_the_oldest_first() -> None:
    check = verifier()
    for i in range(NONCE_MEMORY + 1):
        check.verify(TOPIC, "cancel", raw(f"n{i}"), received=i * 0.001, wall=WALL)
    assert check.remembered == NONCE_MEMORY
    assert reason(check, raw(f"n{NONCE_MEMORY}"), at=5) == "replayed"  # the newest is kept
    assert check.verify(TOPIC, "cancel", raw("n0"), received=5, wall=WALL)  # the oldest is gone
