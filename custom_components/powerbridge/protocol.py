"""The parts of the powerbridge MQTT contract that the component speaks.

A Home Assistant install has no ``bridge`` package, so the component carries its
own small copy of what it needs from the ``bridge/mqtt/contract/`` package and
``bridge/mqtt/signing.py`` (``docs/mqtt-contract.md`` is the shared reference).
The Home Assistant test suite checks this copy against the bridge's own modules
byte for byte (``tests_ha/test_protocol.py``), so the two cannot drift apart.

Decoders are strict: a payload that is not exactly the documented shape raises
:class:`PayloadError`, is counted and logged by the caller, and changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

PAYLOAD_VERSION: Final = 1
ONLINE: Final = "online"
OFFLINE: Final = "offline"
CLIENTS_LEVEL: Final = "clients"
ALL_CLIENTS: Final = "all"
MAX_CONTROL_PAYLOAD: Final = 4096
MAX_STATE_PAYLOAD: Final = 65536
QOS_CMD: Final = 1
MAINS_ON: Final = "on"
MAINS_OFF: Final = "off"
MAINS_UNKNOWN: Final = "unknown"
"""A bridge that has just started and is still confirming its input announces this."""

DEVICE_ID_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CLIENT_STATES: Final = ("idle", "counting", "shutting_down")


class PayloadError(ValueError):
    """A payload that does not follow the contract."""


def valid_device_id(value: str) -> bool:
    """Whether ``value`` may name a bridge (``clients`` is reserved for shutdown clients)."""
    return bool(DEVICE_ID_RE.match(value)) and value != CLIENTS_LEVEL


# --------------------------------------------------------------------------- topics


def bridge_topic(base: str, device_id: str, leaf: str) -> str:
    """``<base>/<device_id>/<leaf>`` (``status``, ``mains``, ``state``, ``health``, ``events``)."""
    return f"{base}/{device_id}/{leaf}"


def bridge_cmd_topic(base: str, device_id: str, name: str) -> str:
    return f"{base}/{device_id}/cmd/{name}"


def client_topic(base: str, client_id: str, leaf: str) -> str:
    return f"{base}/{CLIENTS_LEVEL}/{client_id}/{leaf}"


def client_cmd_topic(base: str, client_id: str, name: str) -> str:
    return f"{base}/{CLIENTS_LEVEL}/{client_id}/cmd/{name}"


def clients_filter(base: str, leaf: str) -> str:
    """Subscription for one leaf of every client: ``<base>/clients/+/<leaf>``."""
    return f"{base}/{CLIENTS_LEVEL}/+/{leaf}"


def client_id_from_topic(base: str, topic: str) -> str | None:
    """The ``<client_id>`` level of ``<base>/clients/<client_id>/<leaf>``, or ``None``."""
    prefix = f"{base}/{CLIENTS_LEVEL}/"
    if not topic.startswith(prefix):
        return None
    parts = topic[len(prefix) :].split("/")
    if len(parts) != 2 or not DEVICE_ID_RE.match(parts[0]):
        return None
    return parts[0]


def device_id_from_status_topic(topic: str) -> tuple[str, str] | None:
    """``(base, device_id)`` of a bridge ``<base>/<device_id>/status`` topic, or ``None``."""
    parts = topic.split("/")
    if len(parts) < 3 or parts[-1] != "status":
        return None
    base = "/".join(parts[:-2])
    device_id = parts[-2]
    if not base or not valid_device_id(device_id) or parts[-3] == CLIENTS_LEVEL:
        return None
    return base, device_id


# --------------------------------------------------------------------------- JSON


def dumps(payload: dict[str, Any]) -> bytes:
    """Canonical JSON: sorted keys, no spaces (signatures are computed over this)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def isoformat_utc(value: datetime) -> str:
    """``2026-01-01T12:00:00.123Z``: the one timestamp format on the wire."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _reject_constant(name: str) -> Any:
    raise PayloadError(f"non-finite number {name}")


def loads_object(raw: bytes | str, *, max_size: int) -> dict[str, Any]:
    """A JSON object with ``"v": 1``, or :class:`PayloadError`."""
    data_bytes = raw.encode() if isinstance(raw, str) else raw
    if len(data_bytes) > max_size:
        raise PayloadError(f"payload of {len(data_bytes)} bytes exceeds {max_size}")
    try:
        data = json.loads(data_bytes.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise PayloadError(f"not JSON: {exc.__class__.__name__}") from None
    if not isinstance(data, dict):
        raise PayloadError("not a JSON object")
    version = data.get("v")
    if version != PAYLOAD_VERSION or isinstance(version, bool):
        raise PayloadError(f"unsupported payload version {version!r}")
    return data


def _field(data: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in data:
        raise PayloadError(f"missing field {name!r}")
    value = data[name]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise PayloadError(f"field {name!r} has the wrong type")
    if not isinstance(value, kind):
        raise PayloadError(f"field {name!r} has the wrong type")
    return value


def _time(data: dict[str, Any], name: str) -> datetime:
    value = _field(data, name, str)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PayloadError(f"field {name!r} is not an ISO-8601 UTC time") from None
    if parsed.tzinfo is None:
        raise PayloadError(f"field {name!r} is not an ISO-8601 UTC time")
    return parsed.astimezone(UTC)


def _optional_time(data: dict[str, Any], name: str) -> datetime | None:
    return None if data.get(name) is None else _time(data, name)


def _number(data: dict[str, Any], name: str) -> float:
    value = float(_field(data, name, (int, float)))
    if not math.isfinite(value) or value < 0:
        raise PayloadError(f"field {name!r} out of range")
    return value


def _optional_number(data: dict[str, Any], name: str) -> float | None:
    return None if data.get(name) is None else _number(data, name)


def _seq(data: dict[str, Any], name: str = "seq") -> int:
    value = int(_field(data, name, int))
    if value < 0 or value > 2**53:
        raise PayloadError(f"field {name!r} out of range")
    return value


# --------------------------------------------------------------------------- payloads


def check_device(found: str, expected: str) -> None:
    """A payload's ``device`` must be the bridge whose topic carried it."""
    if found != expected:
        raise PayloadError(f"device {found!r} on the topic of {expected!r}")


def decode_status(raw: bytes | str) -> bool:
    """``status``: ``True`` for ``online``, ``False`` for ``offline``."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if text == ONLINE:
        return True
    if text == OFFLINE:
        return False
    raise PayloadError(f"unknown status {text[:32]!r}")


@dataclass(frozen=True, slots=True)
class Mains:
    """``<base>/<device_id>/mains`` (see ``MainsPayload`` in the contract)."""

    device: str
    on: bool | None
    """``None``: ``unknown`` -- the bridge has just started and is confirming its input."""
    since: datetime
    seq: int
    ts: datetime
    elapsed_s: float
    source: str
    outage_count: int
    last_outage_s: float | None
    signed: bool
    boot: str | None = None
    """The bridge's run id (``None`` from bridges that predate it)."""
    n: int | None = None
    """The message's number within that run."""

    @classmethod
    def decode(cls, raw: bytes | str, *, key: bytes | None = None) -> Mains:
        """Parse ``raw``; with ``key``, a missing or wrong signature is a :class:`PayloadError`."""
        data = loads_object(raw, max_size=MAX_CONTROL_PAYLOAD)
        if key is not None and not verify(key, data):
            raise PayloadError("missing or invalid signature")
        state = _field(data, "state", str)
        if state not in (MAINS_ON, MAINS_OFF, MAINS_UNKNOWN):
            raise PayloadError(f"unknown mains state {state!r}")
        source = data.get("source", "gpio")
        if not isinstance(source, str):
            raise PayloadError("field 'source' has the wrong type")
        boot = data.get("boot")
        if boot is not None and not isinstance(boot, str):
            raise PayloadError("field 'boot' has the wrong type")
        return cls(
            device=_field(data, "device", str),
            on=None if state == MAINS_UNKNOWN else state == MAINS_ON,
            since=_time(data, "since"),
            seq=_seq(data),
            ts=_time(data, "ts"),
            elapsed_s=_number(data, "elapsed_s"),
            source=source,
            outage_count=_seq(data, "outage_count") if "outage_count" in data else 0,
            last_outage_s=_optional_number(data, "last_outage_s"),
            signed=isinstance(data.get("sig"), str),
            boot=boot,
            n=_seq(data, "n") if "n" in data else None,
        )


@dataclass(frozen=True, slots=True)
class Event:
    """``<base>/<device_id>/events``: an outage started or ended."""

    device: str
    type: str
    seq: int
    mains_seq: int
    ts: datetime
    started: datetime
    ended: datetime | None
    duration_s: float | None

    @classmethod
    def decode(cls, raw: bytes | str) -> Event:
        data = loads_object(raw, max_size=MAX_CONTROL_PAYLOAD)
        kind = _field(data, "type", str)
        if kind not in ("outage_started", "outage_ended"):
            raise PayloadError(f"unknown event type {kind!r}")
        return cls(
            device=_field(data, "device", str),
            type=kind,
            seq=_seq(data),
            mains_seq=_seq(data, "mains_seq"),
            ts=_time(data, "ts"),
            started=_time(data, "started"),
            ended=_optional_time(data, "ended"),
            duration_s=_optional_number(data, "duration_s"),
        )


def decode_energy_wh(raw: bytes | str) -> float | None:
    """Total energy of a ``state`` reading (all channels, Wh), or ``None`` without a meter."""
    data = loads_object(raw, max_size=MAX_STATE_PAYLOAD)
    total: float | None = None
    for key, value in data.items():
        if key == "energy_wh" or key.startswith("energy_wh_ch"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise PayloadError(f"field {key!r} has the wrong type")
            if not math.isfinite(value) or value < 0:
                raise PayloadError(f"field {key!r} out of range")
            total = (total or 0.0) + float(value)
    return total


@dataclass(frozen=True, slots=True)
class ClientState:
    """``<base>/clients/<client_id>/state``: a shutdown client's countdown."""

    state: str
    seconds_left: float | None
    deadline: datetime | None
    bridges: tuple[str, ...]
    extra: dict[str, Any]
    """Every other documented field, shown as entity attributes."""

    @classmethod
    def decode(cls, raw: bytes | str) -> ClientState:
        # Larger than a control payload: it lists every watched bridge's supply.
        data = loads_object(raw, max_size=MAX_STATE_PAYLOAD)
        state = _field(data, "state", str)
        if state not in CLIENT_STATES:
            raise PayloadError(f"unknown client state {state!r}")
        bridges = data.get("bridges", [])
        if not isinstance(bridges, list) or not all(isinstance(b, str) for b in bridges):
            raise PayloadError("field 'bridges' has the wrong type")
        known = {"v", "state", "seconds_left", "deadline", "bridges", "sig", "ts"}
        return cls(
            state=state,
            seconds_left=_optional_number(data, "seconds_left"),
            deadline=_optional_time(data, "deadline"),
            bridges=tuple(bridges),
            extra={k: v for k, v in data.items() if k not in known},
        )


# --------------------------------------------------------------------------- commands


def signature(key: bytes, payload: dict[str, Any]) -> str:
    """Lowercase hex HMAC-SHA256 of the canonical JSON of ``payload`` without ``sig``."""
    body = {k: v for k, v in payload.items() if k != "sig"}
    return hmac.new(key, dumps(body), hashlib.sha256).hexdigest()


def verify(key: bytes, payload: dict[str, Any]) -> bool:
    """Whether ``payload`` carries a valid signature made with ``key`` (constant time)."""
    sig = payload.get("sig")
    if not isinstance(sig, str):
        return False
    return hmac.compare_digest(sig, signature(key, payload))


def command_signing_body(topic: str, payload: dict[str, Any]) -> dict[str, Any]:
    """What a command's ``sig`` covers: the payload without ``sig``, plus its topic.

    Binding the topic stops a signed ``cancel`` from being replayed as ``shutdown_now``
    or to another client (``command_signing_body`` in ``bridge/mqtt/signing.py``).
    """
    body = {k: v for k, v in payload.items() if k != "sig"}
    body["topic"] = topic
    return body


def encode_command(
    topic: str,
    args: dict[str, Any],
    *,
    ts: datetime,
    nonce: str,
    key: bytes | None = None,
) -> bytes:
    """A command for ``topic``: ``{"v":1,"ts","nonce","args"[,"sig"]}``, signed with ``key``.

    Bridges and shutdown clients verify a signature over the payload *and its topic*
    (:func:`command_signing_body`).
    """
    payload: dict[str, Any] = {
        "v": PAYLOAD_VERSION,
        "ts": isoformat_utc(ts),
        "nonce": nonce,
        "args": args,
    }
    if key is not None:
        payload["sig"] = signature(key, command_signing_body(topic, payload))
    return dumps(payload)
