"""Commands, a shutdown client's ``state``, and a bridge's ``deployment`` record.

Part of :mod:`bridge.mqtt.contract`; import from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from bridge.clock import isoformat_utc, parse_utc
from bridge.errors import PayloadError
from bridge.mqtt.contract.codec import (
    JsonPayload,
    _field,
    _finite,
    _one_of,
    _sig_of,
    _time,
    _with_sig,
    loads_object,
)
from bridge.mqtt.contract.topics import (
    MAX_CONTROL_PAYLOAD,
    MAX_STATE_PAYLOAD,
    PAYLOAD_VERSION,
    RESEND_MAX_RANGE,
)

# --------------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class CommandPayload(JsonPayload):
    """A command on ``.../cmd/<name>``: ``{"v":1,"ts":…,"nonce":…,"args":{…},"sig":…}``."""

    name: str
    args: dict[str, Any]
    ts: datetime
    nonce: str
    sig: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "v": PAYLOAD_VERSION,
            "ts": isoformat_utc(self.ts),
            "nonce": self.nonce,
            "args": self.args,
        }
        return _with_sig(out, self.sig)

    @classmethod
    def decode(cls, name: str, raw: bytes) -> CommandPayload:
        data = loads_object(raw, max_size=MAX_CONTROL_PAYLOAD)
        args = _field(data, "args", dict)
        sig = _sig_of(data)
        nonce = _field(data, "nonce", str)
        if not 1 <= len(nonce) <= 64:
            raise PayloadError("field 'nonce' out of range")
        return cls(name=name, args=args, ts=_time(data, "ts"), nonce=nonce, sig=sig)


CLIENT_STATES: Final = ("idle", "counting", "shutting_down")
"""Values of ``state`` in a client's ``clients/<id>/state`` payload."""
QOS_CLIENT_STATE: Final = 1
"""A client's ``state`` is retained QoS 1 (it carries a countdown people act on)."""


def resend_range(args: dict[str, Any]) -> tuple[int, int]:
    """``cmd/resend``'s ``args`` (``{"first": seq, "last": seq}``) as ``(first, last)``.

    Inclusive, ``first <= last``, at most :data:`RESEND_MAX_RANGE` numbers; anything else
    is a :class:`PayloadError`.
    """
    first, last = args.get("first"), args.get("last")
    if type(first) is not int or type(last) is not int:
        raise PayloadError("resend needs integer 'first' and 'last'")
    if not 0 <= first <= last or last - first >= RESEND_MAX_RANGE:
        raise PayloadError(f"resend range {first}..{last} out of bounds")
    return first, last


@dataclass(frozen=True, slots=True)
class ClientStatePayload(JsonPayload):
    """``<base>/clients/<client_id>/state``: a shutdown client's countdown, retained.

    ``state`` is one of :data:`CLIENT_STATES`; ``fields`` are the other documented
    fields (docs/mqtt-contract.md) as ``ClientRuntime.state()`` assembles them.
    """

    state: str
    fields: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ClientStatePayload:
        """From the fields of the payload (with or without ``v``)."""
        rest = {k: v for k, v in values.items() if k not in ("v", "state")}
        return cls(state=values["state"], fields=rest)

    @property
    def seconds_left(self) -> float | None:
        value = self.fields.get("seconds_left")
        return None if value is None else float(value)

    @property
    def deadline(self) -> datetime | None:
        value = self.fields.get("deadline")
        return None if value is None else parse_utc(value)

    @property
    def instance(self) -> str | None:
        """Random id of the client's run (tells two clients with one id apart)."""
        value = self.fields.get("instance")
        return value if isinstance(value, str) else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": PAYLOAD_VERSION}
        out.update(self.fields)
        out["state"] = self.state
        return out

    @classmethod
    def decode(cls, raw: bytes) -> ClientStatePayload:
        data = loads_object(raw, max_size=MAX_STATE_PAYLOAD)
        _one_of(data, "state", CLIENT_STATES, "client state")
        if data.get("seconds_left") is not None:
            _finite(data, "seconds_left", minimum=0)
        if data.get("deadline") is not None:
            _time(data, "deadline")
        return cls.from_dict(data)


def encode_client_state(values: dict[str, Any]) -> bytes:
    """:class:`ClientStatePayload` from the fields of the payload (the form tests use)."""
    return ClientStatePayload.from_dict(values).encode()


# --------------------------------------------------------------------------- deployment


@dataclass(frozen=True, slots=True)
class DeploymentPayload(JsonPayload):
    """``<base>/<device_id>/deployment``: where and since when this bridge is deployed, retained.

    Written by ``powerbridge deployment start`` (``ended`` null, ``active`` true) and
    ``deployment stop`` (``ended`` set).  ``latitude``/``longitude`` are top-level so
    that Home Assistant can use the payload directly as entity attributes (a map
    card places an entity with these attributes).
    """

    device: str
    name: str
    latitude: float
    longitude: float
    started: datetime
    software_version: str
    config_sha256: str
    ended: datetime | None = None

    @property
    def active(self) -> bool:
        return self.ended is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": PAYLOAD_VERSION,
            "device": self.device,
            "name": self.name,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "started": isoformat_utc(self.started),
            "ended": None if self.ended is None else isoformat_utc(self.ended),
            "active": self.active,
            "software_version": self.software_version,
            "config_sha256": self.config_sha256,
        }

    @classmethod
    def decode(cls, raw: bytes) -> DeploymentPayload:
        data = loads_object(raw, max_size=MAX_CONTROL_PAYLOAD)
        latitude = _finite(data, "latitude")
        longitude = _finite(data, "longitude")
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise PayloadError("coordinates out of range")
        return cls(
            device=_field(data, "device", str),
            name=_field(data, "name", str),
            latitude=latitude,
            longitude=longitude,
            started=_time(data, "started"),
            software_version=_field(data, "software_version", str),
            config_sha256=_field(data, "config_sha256", str),
            ended=_time(data, "ended") if data.get("ended") is not None else None,
        )
