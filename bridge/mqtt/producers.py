"""What the bridge publishes: payloads made fresh from its state, on the owner's thread.

Pure builders, no I/O: the retained ``mains`` announcement (:func:`mains_payload`,
signed when a key is configured) and the retained ``state`` of every channel's
newest reading (:class:`LatestState`).  :class:`~bridge.mqtt.publisher.BridgePublisher`
decides when they go out; :class:`~bridge.mqtt.link.MqttLink` carries them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bridge.clock import Clock
from bridge.model import MainsEvent, Reading
from bridge.mqtt import signing
from bridge.mqtt.contract import READING_FIELDS, MainsPayload, StatePayload, channel_key, dumps


def mains_payload(
    device: str,
    event: MainsEvent,
    *,
    clock: Clock,
    outage_count: int,
    last_outage_s: float | None,
    boot: str,
    n: int,
    key: bytes | None = None,
) -> bytes:
    """The retained ``mains`` payload for ``event``, with fresh ``ts``/``elapsed_s``, signed.

    ``boot``/``n``: this run's id and the message's number in it (see
    :class:`~bridge.mqtt.contract.MainsPayload`).
    """
    payload = MainsPayload(
        device=device,
        state=event.state,
        since=event.began,
        seq=event.seq,
        ts=clock.utcnow(),
        elapsed_s=max(0.0, clock.monotonic() - event.began_monotonic),
        boot=boot,
        n=n,
        source=event.source,
        outage_count=outage_count,
        last_outage_s=last_outage_s,
    )
    if key is None:
        return payload.encode()
    return dumps(signing.sign(key, payload.to_dict()))


class LatestState:
    """The newest reading of every channel, as the retained ``state`` payload."""

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        self._channels: dict[int, dict[str, float]] = {}
        self._meta: tuple[datetime, int, str] | None = None

    @property
    def empty(self) -> bool:
        return self._meta is None

    def update(self, reading: Reading, seq: int | None) -> None:
        """Take ``reading`` (spooled as ``seq``; ``None``: not spooled, keep the last seq)."""
        values: dict[str, float] = {}
        for name in READING_FIELDS:
            value = getattr(reading, name)
            if value is not None:
                values[channel_key(name, reading.channel)] = value
        if reading.energy_wh is not None:
            values[channel_key("energy_kwh", reading.channel)] = round(reading.energy_wh / 1000, 6)
        self._channels[reading.channel] = values
        last_seq = seq if seq is not None else (self._meta[1] if self._meta else 0)
        self._meta = (reading.time, last_seq, reading.meter)

    def payload(self) -> bytes | None:
        """The retained ``state``: the newest reading of every channel (``None`` before one)."""
        if self._meta is None:
            return None
        ts, seq, meter = self._meta
        merged: dict[str, Any] = {}
        for channel in sorted(self._channels):
            merged.update(self._channels[channel])
        return StatePayload(self.device_id, ts, seq, meter, merged).encode()
