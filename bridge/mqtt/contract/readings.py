"""Measurements: ``samples`` (and their spooled batches), ``state``, ``health``.

Part of :mod:`bridge.mqtt.contract`; import from there.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from bridge.clock import isoformat_utc
from bridge.errors import PayloadError
from bridge.model import MEASURED
from bridge.mqtt.contract.codec import JsonPayload, _field, _seq, _time, dumps, loads_object
from bridge.mqtt.contract.topics import MAX_STATE_PAYLOAD, PAYLOAD_VERSION

# --------------------------------------------------------------------------- readings


READING_FIELDS: Final = MEASURED
"""Quantities of a reading, in SI units, as they appear in ``state`` and ``samples``
(:data:`bridge.model.MEASURED`, the fields of :class:`~bridge.model.Quantities`)."""

SHARED_FIELDS: Final = ("voltage_v", "frequency_hz")
"""Quantities common to all channels of a meter (never suffixed)."""


def channel_key(quantity: str, channel: int) -> str:
    """Key of a per-channel quantity in ``state``: ``power_w`` (ch 1), ``power_w_ch2`` (ch 2)."""
    if channel == 1 or quantity in SHARED_FIELDS:
        return quantity
    return f"{quantity}_ch{channel}"


@dataclass(frozen=True, slots=True)
class SamplePayload(JsonPayload):
    """One spooled sample as carried in a ``samples`` batch."""

    seq: int
    ts: datetime
    channel: int
    values: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seq": self.seq, "ts": isoformat_utc(self.ts), "ch": self.channel}
        out.update({k: v for k, v in self.values.items() if v is not None})
        return out


def encode_samples(device: str, samples: list[SamplePayload]) -> bytes:
    """``samples`` batch: ``{"v":1,"device":…,"samples":[{"seq","ts","ch",<quantities>},…]}``."""
    return dumps(
        {"v": PAYLOAD_VERSION, "device": device, "samples": [s.to_dict() for s in samples]}
    )


def _channel(item: dict[str, Any]) -> int:
    channel: int = _field(item, "ch", int)
    if not 0 <= channel <= MAX_CHANNEL:
        raise PayloadError("field 'ch' out of range")
    return channel


def decode_samples(raw: bytes) -> list[SamplePayload]:
    """Parse a ``samples`` batch (tests, tools; an archive uses :func:`decode_sample_rows`)."""
    data = loads_object(raw)
    items = _field(data, "samples", list)
    out: list[SamplePayload] = []
    for item in items:
        if not isinstance(item, dict):
            raise PayloadError("sample is not an object")
        values: dict[str, float | None] = {
            str(k): _quantity(k, v) for k, v in item.items() if k in READING_FIELDS
        }
        out.append(
            SamplePayload(
                seq=_seq(item), ts=_time(item, "ts"), channel=_channel(item), values=values
            )
        )
    return out


def _quantity(name: str, value: object) -> float:
    """A quantity of a sample: a finite number (JSON ``1e400`` parses as infinity)."""
    if type(value) is not float and type(value) is not int:
        raise PayloadError(f"field {name!r} has the wrong type")
    try:
        number = float(value)
    except OverflowError:
        raise PayloadError(f"field {name!r} out of range") from None
    if not math.isfinite(number):
        raise PayloadError(f"field {name!r} out of range")
    return number


_FLOAT_OR_NONE: Final = frozenset({float, type(None)})
_INF: Final = float("inf")
MAX_SEQ: Final = 2**53
MAX_CHANNEL: Final = 255
"""Highest meter channel a sample may name (meters have one to three)."""
"""The largest sequence number (an exact integer in every JSON reader)."""
SampleRow = tuple[Any, ...]
"""``(device, seq, ts_ms, ch, *READING_FIELDS)``: the time in epoch milliseconds, ``None``
for an absent quantity."""


@dataclass(frozen=True, slots=True)
class SampleBatch:
    """A ``samples`` batch as a store keeps it: the device, and one row per sample."""

    device: str
    rows: list[SampleRow]


def decode_sample_rows(raw: bytes, *, max_size: int | None = None) -> SampleBatch:
    """A ``samples`` batch as rows (:data:`SampleRow`), checked as strictly as
    :func:`decode_samples`.

    The form an archive stores: the time as epoch milliseconds, the quantities in
    :data:`READING_FIELDS` order, without a :class:`SamplePayload` per sample — an
    archive decodes tens of thousands of samples a second.
    """
    data = loads_object(raw, max_size=max_size, fast=True)
    device = _field(data, "device", str)
    items = _field(data, "samples", list)
    rows: list[SampleRow] = []
    quantities: list[Any] = []
    fields = READING_FIELDS
    parse = datetime.fromisoformat
    for item in items:
        if type(item) is not dict:
            raise PayloadError("sample is not an object")
        seq, ch, ts = item.get("seq"), item.get("ch"), item.get("ts")
        if type(seq) is not int or not 0 <= seq <= MAX_SEQ:
            raise PayloadError("field 'seq' missing, of the wrong type or out of range")
        if type(ch) is not int or not 0 <= ch <= MAX_CHANNEL:
            raise PayloadError("field 'ch' missing, of the wrong type or out of range")
        if type(ts) is not str:
            raise PayloadError("field 'ts' missing or of the wrong type")
        try:
            moment = parse(ts)
        except ValueError:
            raise PayloadError("field 'ts' is not an ISO-8601 UTC time") from None
        if moment.tzinfo is None:
            raise PayloadError("field 'ts' has no time zone")
        values = tuple(map(item.get, fields))
        quantities.extend(values)
        rows.append((device, seq, round(moment.timestamp() * 1000), ch, *values))
    # The quantities, checked for the whole batch at once: floats or absent is the rule
    # (JSON has no NaN, and ``Infinity`` is refused by the parser, but ``1e400`` reads as
    # infinity); anything else is checked, and converted, one sample at a time.
    if not set(map(type, quantities)) <= _FLOAT_OR_NONE:
        rows = [
            (*row[:4], *(_quantity(n, v) if v is not None else None for n, v in pairs))
            for row in rows
            for pairs in [zip(fields, row[4:], strict=True)]
        ]
    elif _INF in quantities or -_INF in quantities:
        raise PayloadError("a quantity is out of range")
    return SampleBatch(device, rows)


_STATE_HEAD: Final = ("v", "device", "ts", "seq", "meter")


@dataclass(frozen=True, slots=True)
class StatePayload(JsonPayload):
    """``<base>/<device_id>/state``: the newest reading, retained.

    ``values`` are keyed per :func:`channel_key` (plus ``energy_kwh``); ``None`` values
    are left out of the payload.
    """

    device: str
    ts: datetime
    seq: int
    meter: str
    values: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "v": PAYLOAD_VERSION,
            "device": self.device,
            "ts": isoformat_utc(self.ts),
            "seq": self.seq,
            "meter": self.meter,
        }
        out.update({k: v for k, v in self.values.items() if v is not None})
        return out

    @classmethod
    def decode(cls, raw: bytes) -> StatePayload:
        data = loads_object(raw, max_size=MAX_STATE_PAYLOAD)
        values = {k: v for k, v in data.items() if k not in _STATE_HEAD}
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise PayloadError(f"field {key!r} has the wrong type")
            if not math.isfinite(value):
                raise PayloadError(f"field {key!r} out of range")
        return cls(
            device=_field(data, "device", str),
            ts=_time(data, "ts"),
            seq=_seq(data),
            meter=_field(data, "meter", str),
            values=values,
        )


def encode_state(device: str, ts: datetime, seq: int, meter: str, values: dict[str, Any]) -> bytes:
    """:class:`StatePayload` in one call (the form tests and demos use)."""
    return StatePayload(device, ts, seq, meter, values).encode()


@dataclass(frozen=True, slots=True)
class HealthPayload(JsonPayload):
    """``<base>/<device_id>/health``: the health snapshot, retained; unknown probes are ``null``."""

    device: str
    values: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": PAYLOAD_VERSION, "device": self.device}
        out.update(self.values)
        return out

    @classmethod
    def decode(cls, raw: bytes) -> HealthPayload:
        data = loads_object(raw, max_size=MAX_STATE_PAYLOAD)
        values = {k: v for k, v in data.items() if k not in ("v", "device")}
        return cls(device=_field(data, "device", str), values=values)


def encode_health(device: str, values: dict[str, Any]) -> bytes:
    """:class:`HealthPayload` in one call (the form tests use)."""
    return HealthPayload(device, values).encode()


# --------------------------------------------------------------------------- spooled batches


PACKET_OVERHEAD: Final = 1024
"""Room kept in an MQTT packet for its header, topic and properties."""


def largest_sample() -> int:
    """The encoded size of the largest possible sample (every quantity, the longest numbers)."""
    worst = SamplePayload(
        seq=2**53,
        ts=datetime(2999, 12, 31, 23, 59, 59, 999000).astimezone(),
        channel=99,
        values=dict.fromkeys(READING_FIELDS, -1.2345678901234567e-300),
    )
    return len(dumps(worst.to_dict()))


def samples_per_packet(max_packet: int, device: str = "x" * 64) -> int:
    """How many samples a ``samples`` batch may hold under a broker's ``max_packet_size``."""
    room = max_packet - PACKET_OVERHEAD - len(encode_sample_batch(device, []))
    return max(1, room // (largest_sample() + 1))


def encode_sample_batch(device: str, bodies: list[bytes]) -> bytes:
    """A ``samples`` batch from already encoded sample objects (the spool stores those).

    Byte-identical to :func:`encode_samples` of the same samples (canonical JSON,
    keys sorted: ``device``, ``samples``, ``v``), without decoding and re-encoding.
    """
    head = b'{"device":' + json.dumps(device).encode() + b',"samples":['
    return head + b",".join(bodies) + b'],"v":%d}' % PAYLOAD_VERSION
