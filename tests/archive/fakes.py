"""Payloads as bridges publish them, built with the contract's own encoders."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from bridge.archive.ingest import Message
from bridge.model import MainsState
from bridge.mqtt.contract import (
    DeploymentPayload,
    EventPayload,
    MainsPayload,
    SamplePayload,
    encode_health,
    encode_samples,
)

TODAY = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
"""The frozen "now" of these tests (never the day they run)."""


def sample_ts(seq: int, start: datetime = TODAY - timedelta(hours=1), hz: float = 1.0) -> datetime:
    return start + timedelta(seconds=seq / hz)


def power(seq: int) -> float:
    """A rack's day: busier in the afternoon, a ripple, a little noise."""
    day = math.sin(2 * math.pi * seq / 86_400)
    return round(180.0 + 70.0 * day + 12.0 * math.sin(seq / 700) + (seq * 7919 % 13), 1)


def voltage(seq: int) -> float:
    return round(230.0 + 3 * math.sin(seq / 9000) + (seq % 7) / 20, 2)


def samples(device: str, seqs: Iterable[int], *, start: datetime | None = None) -> bytes:
    base = start or TODAY - timedelta(hours=1)
    return encode_samples(
        device,
        [
            SamplePayload(
                seq,
                sample_ts(seq, base),
                1,
                {"power_w": power(seq), "voltage_v": voltage(seq),
                 "current_a": round(power(seq) / 230.0, 3), "energy_wh": 1000.0 + seq},
            )
            for seq in seqs
        ],
    )  # fmt: skip


def event(device: str, seq: int, kind: str, started: datetime, ended: datetime | None) -> bytes:
    return EventPayload(
        device, kind, seq, 1, ended or started, started, ended,
        None if ended is None else (ended - started).total_seconds(),
    ).encode()  # fmt: skip


def mains(device: str, state: str = "on") -> bytes:
    return MainsPayload(device, MainsState(state), TODAY, 3, TODAY, 1.0, "ab" * 8, 1).encode()


def health(device: str) -> bytes:
    return encode_health(
        device,
        {"cpu_temperature_c": 48.5, "throttled": False, "disk_free_mb": 12000.0,
         "spool_depth": 3, "time": "2026-03-14T11:59:00.000Z"},
    )  # fmt: skip


def deployment(device: str, name: str = "Berlin rack A") -> bytes:
    return DeploymentPayload(
        device, name, 52.52, 13.405, TODAY - timedelta(days=30), "0.1.0", "9f86d081"
    ).encode()


def msg(device: str, kind: str, payload: bytes, mid: int = 0) -> Message:
    return Message(f"powerbridge/{device}/{kind}", payload, mid)
