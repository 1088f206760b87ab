"""Building the bridge's and Home Assistant's messages as they appear on the wire (tests only)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from bridge.clock import isoformat_utc
from bridge.model import MainsState
from bridge.mqtt import signing
from bridge.mqtt.contract import PAYLOAD_VERSION, MainsPayload, dumps
from bridge.mqtt.signing import sign_command

KEY = b"0123456789abcdef-shared-test-key"
BOOT = "b0075eed00000001"
"""The bridge run that sends test messages (unless a test says otherwise)."""
WALL = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def mains(
    state: str | MainsState,
    seq: int,
    *,
    device: str = "test-bridge",
    elapsed: float = 0.0,
    ts: datetime = WALL,
    key: bytes | None = None,
    boot: str = BOOT,
    n: int = 1,
) -> bytes:
    payload = MainsPayload(
        device=device,
        state=MainsState(state),
        since=ts,
        seq=seq,
        ts=ts,
        elapsed_s=elapsed,
        boot=boot,
        n=n,
    ).to_dict()
    if key is not None:
        payload = signing.sign(key, payload)
    return dumps(payload)


def command(
    topic: str,
    *,
    ts: datetime = WALL,
    key: bytes | None = KEY,
    nonce: str | None = None,
    args: dict[str, Any] | None = None,
) -> bytes:
    payload: dict[str, Any] = {
        "v": PAYLOAD_VERSION,
        "ts": isoformat_utc(ts),
        "nonce": nonce or uuid.uuid4().hex,
        "args": args or {},
    }
    if key is not None:
        payload = sign_command(key, topic, payload)
    return dumps(payload)
