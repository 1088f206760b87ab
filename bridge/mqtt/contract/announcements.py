"""What a bridge announces about the mains: ``mains``, ``events``, ``outage``.

Part of :mod:`bridge.mqtt.contract`; import from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from bridge.clock import isoformat_utc
from bridge.errors import PayloadError
from bridge.model import MainsState
from bridge.mqtt.contract.codec import (
    JsonPayload,
    _field,
    _finite,
    _one_of,
    _run,
    _seq,
    _sig_of,
    _time,
    _with_sig,
    loads_object,
)
from bridge.mqtt.contract.topics import (
    MAINS_STATES,
    MAX_CONTROL_PAYLOAD,
    PAYLOAD_VERSION,
)

# --------------------------------------------------------------------------- mains


@dataclass(frozen=True, slots=True)
class MainsPayload(JsonPayload):
    """``<base>/<device_id>/mains``: the announced mains state, retained.

    ``elapsed_s`` is how long the state had lasted when the bridge published this
    message, on the bridge's monotonic clock: a client adds its own monotonic time
    since receipt and so never needs the two machines' clocks to agree.

    ``state`` is ``unknown`` right after a bridge starts, until its input has been
    stable for the confirmation window (a state persisted before the start is
    history, not the present).  ``boot`` identifies one run of the bridge (random at
    every start) and ``n`` counts that run's ``mains`` messages (announcements and
    refreshes alike, from 1): with ``seq``, which never goes backwards for a device,
    they order every message without any wall clock (see
    :mod:`bridge.shutdown.intake`).
    """

    device: str
    state: MainsState
    since: datetime
    seq: int
    ts: datetime
    elapsed_s: float
    boot: str = ""
    """Random id of this run of the bridge (:data:`BOOT_ID_LENGTH` hex digits)."""
    n: int = 0
    """Counter of ``mains`` messages in this run, from 1."""
    source: str = "gpio"
    outage_count: int = 0
    """Outages announced by this bridge since it was installed (persistent)."""
    last_outage_s: float | None = None
    """Duration of the last *finished* outage, seconds."""
    sig: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "v": PAYLOAD_VERSION,
            "device": self.device,
            "state": self.state.value,
            "since": isoformat_utc(self.since),
            "seq": self.seq,
            "ts": isoformat_utc(self.ts),
            "elapsed_s": round(self.elapsed_s, 3),
            "boot": self.boot,
            "n": self.n,
            "source": self.source,
            "outage_count": self.outage_count,
            "last_outage_s": None if self.last_outage_s is None else round(self.last_outage_s, 3),
        }
        return _with_sig(out, self.sig)

    @classmethod
    def decode(cls, raw: bytes) -> MainsPayload:
        data = loads_object(raw, max_size=MAX_CONTROL_PAYLOAD)
        state_text = _one_of(data, "state", MAINS_STATES, "mains state")
        boot, n = _run(data)
        sig = _sig_of(data)
        source = data.get("source", "gpio")
        if not isinstance(source, str):
            raise PayloadError("field 'source' has the wrong type")
        return cls(
            device=_field(data, "device", str),
            state=MainsState(state_text),
            since=_time(data, "since"),
            seq=_seq(data),
            ts=_time(data, "ts"),
            elapsed_s=_finite(data, "elapsed_s", minimum=0.0),
            boot=boot,
            n=n,
            source=source,
            outage_count=_seq(data, "outage_count") if "outage_count" in data else 0,
            last_outage_s=(
                _finite(data, "last_outage_s", minimum=0)
                if data.get("last_outage_s") is not None
                else None
            ),
            sig=sig,
        )


# --------------------------------------------------------------------------- events


EVENT_TYPES: Final = ("outage_started", "outage_ended")


@dataclass(frozen=True, slots=True)
class EventPayload(JsonPayload):
    """``<base>/<device_id>/events``: an outage started or ended (QoS 1, spooled)."""

    device: str
    type: str
    seq: int
    """The spool's sequence number (shared with samples): consumers detect gaps by it."""
    mains_seq: int
    ts: datetime
    started: datetime
    ended: datetime | None = None
    duration_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "v": PAYLOAD_VERSION,
            "device": self.device,
            "type": self.type,
            "seq": self.seq,
            "mains_seq": self.mains_seq,
            "ts": isoformat_utc(self.ts),
            "started": isoformat_utc(self.started),
        }
        if self.ended is not None:
            out["ended"] = isoformat_utc(self.ended)
        if self.duration_s is not None:
            out["duration_s"] = round(self.duration_s, 3)
        return out

    @classmethod
    def decode(cls, raw: bytes) -> EventPayload:
        data = loads_object(raw, max_size=MAX_CONTROL_PAYLOAD)
        kind = _one_of(data, "type", EVENT_TYPES, "event type")
        return cls(
            device=_field(data, "device", str),
            type=kind,
            seq=_seq(data),
            mains_seq=_seq(data, "mains_seq"),
            ts=_time(data, "ts"),
            started=_time(data, "started"),
            ended=_time(data, "ended") if "ended" in data else None,
            duration_s=_finite(data, "duration_s", minimum=0) if "duration_s" in data else None,
        )


# --------------------------------------------------------------------------- outage


@dataclass(frozen=True, slots=True)
class OutagePayload(JsonPayload):
    """``<base>/<device_id>/outage``: when the open outage started, retained QoS 1.

    Published only once the bridge has announced a mains state; ``since`` is the
    first edge of the open outage, ``None`` (``null``) while the mains is on; ``seq``
    is the ``mains`` sequence number it belongs to.  It exists so that Home
    Assistant's "Outage started" timestamp entity is fed only when its value changes
    (the ``mains`` topic is refreshed every 30 s).
    """

    device: str
    since: datetime | None
    seq: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": PAYLOAD_VERSION,
            "device": self.device,
            "since": None if self.since is None else isoformat_utc(self.since),
            "seq": self.seq,
        }

    @classmethod
    def decode(cls, raw: bytes) -> OutagePayload:
        data = loads_object(raw, max_size=MAX_CONTROL_PAYLOAD)
        if "since" not in data:
            raise PayloadError("missing field 'since'")
        return cls(
            device=_field(data, "device", str),
            since=None if data["since"] is None else _time(data, "since"),
            seq=_seq(data),
        )


def encode_outage(device: str, since: datetime | None, seq: int) -> bytes:
    """:class:`OutagePayload` in one call (the form tests use)."""
    return OutagePayload(device, since, seq).encode()
