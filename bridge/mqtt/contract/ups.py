"""What a bridge's UPS says: ``ups``.

Part of :mod:`bridge.mqtt.contract`; import from there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from bridge.clock import isoformat_utc
from bridge.errors import PayloadError
from bridge.mqtt.contract import codec
from bridge.mqtt.contract.codec import JsonPayload, loads_object
from bridge.mqtt.contract.topics import MAX_CONTROL_PAYLOAD, PAYLOAD_VERSION

QOS_UPS: Final = 1
UPS_REFRESH_S: Final = 30.0
"""The bridge republishes ``ups`` (fresh ``ts``) at least this often, changed or not."""
MAX_STATUS_LENGTH: Final = 128
"""Longest ``status`` accepted (NUT's ``ups.status`` is a few short words)."""


@dataclass(frozen=True, slots=True)
class UpsReport:
    """What the UPS said in one read: NUT's ``ups.status`` and three figures, ``None`` when
    the UPS does not report them: ``battery.charge`` (%), ``battery.runtime`` (s) and
    ``ups.load`` (%)."""

    status: str
    charge: float | None = None
    runtime_s: float | None = None
    load: float | None = None

    @property
    def on_battery(self) -> bool:
        return "OB" in self.status.split()

    @property
    def on_line(self) -> bool:
        return "OL" in self.status.split()

    @property
    def low_battery(self) -> bool:
        return "LB" in self.status.split()


def _optional_number(data: dict[str, Any], name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PayloadError(f"field {name!r} has the wrong type")
    if value < 0:
        raise PayloadError(f"field {name!r} out of range")
    return float(value)


@dataclass(frozen=True, slots=True, order=True)
class UpsOrigin:
    """Where a report stands in its bridge's stream: ``boot``, the run that made it (the
    ``boot`` of that run's ``mains``); ``seq``, the sequence number of the mains state shown
    when it was made; ``n``, its number among this run's ``ups`` messages (from 1).

    Signed with the report, these let a reader refuse a captured report replayed later
    without trusting any clock: one from another run or about an earlier mains state is
    not about the present, and within a run ``n`` only grows.
    """

    boot: str
    seq: int
    n: int


@dataclass(frozen=True, slots=True)
class UpsPayload(JsonPayload):
    """``<base>/<device_id>/ups``: the bridge's UPS as last read from upsd, retained, QoS 1.

    The report's ``status`` is NUT's ``ups.status`` (``OL``, ``OB DISCHRG``, ``OB LB``
    ...); ``on_battery``/``low_battery`` are its ``OB``/``LB`` words, spelled out for
    readers that do not parse NUT.  ``charge`` (percent), ``runtime_s`` (seconds) and
    ``load`` (percent) are ``null`` when the UPS does not report them.  With
    ``signing.key_file`` the payload carries ``sig`` like ``mains`` (a report can shorten
    a client's countdown, so a forged one must be refused), and ``boot``/``seq``/``n``
    (:class:`UpsOrigin`) say which run and which mains state it belongs to, so that a
    signed report cannot be replayed later either.  ``ts`` is a label for people.
    """

    device: str
    ts: datetime
    report: UpsReport
    origin: UpsOrigin
    sig: str | None = None

    def to_dict(self) -> dict[str, Any]:
        report = self.report
        out: dict[str, Any] = {
            "v": PAYLOAD_VERSION,
            "device": self.device,
            "ts": isoformat_utc(self.ts),
            "status": report.status,
            "on_battery": report.on_battery,
            "low_battery": report.low_battery,
            "charge": report.charge,
            "runtime_s": report.runtime_s,
            "load": report.load,
            "boot": self.origin.boot,
            "seq": self.origin.seq,
            "n": self.origin.n,
        }
        return codec._with_sig(out, self.sig)

    @classmethod
    def decode(cls, raw: bytes) -> UpsPayload:
        """Parse strictly (raise :class:`~bridge.errors.PayloadError`); ``sig`` is not checked."""
        data = loads_object(raw, max_size=MAX_CONTROL_PAYLOAD)
        status = codec._field(data, "status", str).strip()
        if not status or len(status) > MAX_STATUS_LENGTH:
            raise PayloadError("field 'status' out of range")
        sig = codec._sig_of(data)
        report = UpsReport(
            status,
            *(_optional_number(data, name) for name in ("charge", "runtime_s", "load")),
        )
        flags = {"on_battery": report.on_battery, "low_battery": report.low_battery}
        for flag, value in flags.items():
            if flag in data and data[flag] is not value:
                raise PayloadError(f"field {flag!r} contradicts 'status'")
        boot, n = codec._run(data)
        origin = UpsOrigin(boot, codec._seq(data), n)
        return cls(codec._field(data, "device", str), codec._time(data, "ts"), report, origin, sig)
