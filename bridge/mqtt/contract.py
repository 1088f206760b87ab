"""The MQTT contract: every topic name and payload shape, and each role's broker user name.

``docs/mqtt-contract.md`` is the human version of this file; keep them in step.
All JSON payloads carry ``"v": 1`` (:data:`PAYLOAD_VERSION`).  Decoders are strict:
anything that is not exactly the documented shape raises :class:`PayloadError`,
because a shutdown client must never act on a payload it half understood.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from bridge.clock import isoformat_utc, parse_utc
from bridge.errors import PayloadError
from bridge.model import MEASURED, MainsState

PAYLOAD_VERSION: Final = 1
DEFAULT_BASE: Final = "powerbridge"
DEFAULT_DISCOVERY_PREFIX: Final = "homeassistant"
ONLINE: Final = "online"
OFFLINE: Final = "offline"
CLIENTS_LEVEL: Final = "clients"
"""Reserved topic level for shutdown clients; no bridge may use it as its device id."""
ALL_CLIENTS: Final = "all"
"""Pseudo client id addressing every shutdown client in commands."""
MAX_CONTROL_PAYLOAD: Final = 4096
"""Largest ``mains``/``status``/command payload a client accepts (bytes)."""
MAX_STATE_PAYLOAD: Final = 64 * 1024
"""Largest ``state``/``health``/client ``state`` payload a reader accepts (bytes): they are
not control messages, and a client's ``state`` grows with the bridges it watches."""
DEVICE_ID_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""A device or client id: one topic level of safe characters."""
MAINS_REFRESH_S: Final = 30.0
"""The bridge republishes ``mains`` (same ``seq``, fresh ``ts``/``elapsed_s``) this often."""

QOS_STATUS: Final = 1
QOS_MAINS: Final = 1
QOS_OUTAGE: Final = 1
QOS_DEPLOYMENT: Final = 1
QOS_EVENTS: Final = 1
QOS_SAMPLES: Final = 1
QOS_STATE: Final = 0
QOS_HEALTH: Final = 0
QOS_DISCOVERY: Final = 1
QOS_CMD: Final = 1

MAINS_STATES: Final = (MainsState.ON.value, MainsState.OFF.value, MainsState.UNKNOWN.value)
"""``unknown``: the bridge has just started and is still confirming its input."""
BOOT_ID_LENGTH: Final = 16
_BOOT_RE: Final = re.compile(r"[0-9a-f]{8,64}")

BRIDGE_COMMANDS: Final = ("simulate", "republish")
CLIENT_COMMANDS: Final = ("shutdown_now", "cancel")


@dataclass(frozen=True, slots=True)
class BridgeTopics:
    """Topics of one bridge: ``<base>/<device_id>/...``."""

    base: str
    device_id: str

    @property
    def root(self) -> str:
        return f"{self.base}/{self.device_id}"

    @property
    def status(self) -> str:
        """Retained ``online``/``offline`` (plain text); the last will."""
        return f"{self.root}/status"

    @property
    def mains(self) -> str:
        """Retained QoS 1 :class:`MainsPayload`."""
        return f"{self.root}/mains"

    @property
    def outage(self) -> str:
        """Retained QoS 1 :class:`OutagePayload`: when the open outage started (or ``null``)."""
        return f"{self.root}/outage"

    @property
    def state(self) -> str:
        """Retained newest reading (:class:`StatePayload`)."""
        return f"{self.root}/state"

    @property
    def samples(self) -> str:
        """QoS 1, not retained: batches of spooled samples (:func:`encode_samples`)."""
        return f"{self.root}/samples"

    @property
    def health(self) -> str:
        """Retained :class:`HealthPayload` snapshot."""
        return f"{self.root}/health"

    @property
    def events(self) -> str:
        """QoS 1, not retained: outage started/ended (:class:`EventPayload`)."""
        return f"{self.root}/events"

    @property
    def deployment(self) -> str:
        """Retained deployment record."""
        return f"{self.root}/deployment"

    @property
    def check(self) -> str:
        """QoS 1, not retained: a probe ``powerbridge check`` publishes and reads back."""
        return f"{self.root}/check"

    def cmd(self, name: str) -> str:
        """Commands to the bridge: ``cmd/simulate``, ``cmd/republish``."""
        return f"{self.root}/cmd/{name}"

    @property
    def cmd_filter(self) -> str:
        return f"{self.root}/cmd/#"


@dataclass(frozen=True, slots=True)
class ClientTopics:
    """Topics of one shutdown client: ``<base>/clients/<client_id>/...``."""

    base: str
    client_id: str

    @property
    def root(self) -> str:
        return f"{self.base}/{CLIENTS_LEVEL}/{self.client_id}"

    @property
    def status(self) -> str:
        return f"{self.root}/status"

    @property
    def state(self) -> str:
        return f"{self.root}/state"

    def cmd(self, name: str) -> str:
        return f"{self.root}/cmd/{name}"

    @property
    def cmd_filter(self) -> str:
        return f"{self.root}/cmd/#"


def all_bridges_status_filter(base: str) -> str:
    """Subscription that sees every bridge's ``status`` (and no client's)."""
    return f"{base}/+/status"


def all_clients_filter(base: str) -> str:
    return f"{base}/{CLIENTS_LEVEL}/+/+"


def discovery_topic(prefix: str, component: str, node_id: str, object_id: str) -> str:
    """``<prefix>/<component>/<node_id>/<object_id>/config``: one retained message per entity.

    Home Assistant's optional ``node_id`` level carries the device id (bridges) or
    ``client-<client_id>`` (shutdown clients), so that a broker ACL can give each
    identity exactly its own discovery topics (``<prefix>/+/<node_id>/#``); the
    entity's ``unique_id`` in the payload is ``<node_id>_<object_id>``.
    """
    return f"{prefix}/{component}/{node_id}/{object_id}/config"


def client_node_id(client_id: str) -> str:
    """Discovery ``node_id`` of a shutdown client."""
    return f"{CLIENTS_LEVEL[:-1]}-{client_id}"


# --------------------------------------------------------------------------- broker user names


def bridge_user(device_id: str) -> str:
    """Broker user name of a bridge: its ACL block and its default ``mqtt.username``."""
    return f"bridge-{device_id}"


def client_user(client_id: str) -> str:
    """Broker user name of a shutdown client: its ACL block and its default ``mqtt.username``."""
    return f"client-{client_id}"


HOMEASSISTANT_USER: Final = "homeassistant"
"""Broker user name of Home Assistant (a fixed role, one per broker)."""
ARCHIVER_USER: Final = "archiver"
"""Broker user name of the archiver (a fixed role, one per broker)."""


def topic_roots_overlap(base: str, prefix: str) -> str | None:
    """Why a base topic and a discovery prefix cannot be used together (``None``: they can).

    Both are single topic levels; when they are equal, a bridge's discovery grant
    ``<prefix>/+/<device_id>/#`` covers ``<base>/<any bridge>/<device_id>/...`` — a bridge
    named ``mains`` could write every bridge's ``mains``.
    """
    if base == prefix:
        return (
            f"the base topic and the discovery prefix are both {base!r}: a bridge's "
            "discovery topics would cover other bridges' topics; choose two different roots"
        )
    return None


def ha_status_topic(prefix: str) -> str:
    """Home Assistant's birth/last-will topic (``online`` after HA starts)."""
    return f"{prefix}/status"


# --------------------------------------------------------------------------- helpers


def dumps(payload: dict[str, Any]) -> bytes:
    """Canonical JSON: sorted keys, no spaces (signatures are computed over this)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def loads_object(raw: bytes, *, max_size: int | None = None) -> dict[str, Any]:
    """Parse a JSON object with a version we understand, or raise :class:`PayloadError`."""
    if max_size is not None and len(raw) > max_size:
        raise PayloadError(f"payload of {len(raw)} bytes exceeds {max_size}")
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise PayloadError(f"not JSON: {exc.__class__.__name__}") from None
    if not isinstance(data, dict):
        raise PayloadError("not a JSON object")
    version = data.get("v")
    if version != PAYLOAD_VERSION or isinstance(version, bool):
        raise PayloadError(f"unsupported payload version {version!r}")
    return data


def _reject_constant(name: str) -> Any:
    raise PayloadError(f"non-finite number {name}")


def _field(data: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in data:
        raise PayloadError(f"missing field {name!r}")
    value = data[name]
    if isinstance(value, bool) and kind is not bool and bool not in _as_tuple(kind):
        raise PayloadError(f"field {name!r} has the wrong type")
    if not isinstance(value, kind):
        raise PayloadError(f"field {name!r} has the wrong type")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _time(data: dict[str, Any], name: str) -> datetime:
    value = _field(data, name, str)
    try:
        return parse_utc(value)
    except ValueError:
        raise PayloadError(f"field {name!r} is not an ISO-8601 UTC time") from None


def _finite(data: dict[str, Any], name: str, *, minimum: float | None = None) -> float:
    value = float(_field(data, name, (int, float)))
    if not math.isfinite(value) or (minimum is not None and value < minimum):
        raise PayloadError(f"field {name!r} out of range")
    return value


def _seq(data: dict[str, Any], name: str = "seq") -> int:
    value = _field(data, name, int)
    if value < 0 or value > 2**53:
        raise PayloadError(f"field {name!r} out of range")
    return int(value)


# --------------------------------------------------------------------------- mains


@dataclass(frozen=True, slots=True)
class MainsPayload:
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
        if self.sig is not None:
            out["sig"] = self.sig
        return out

    def encode(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def decode(cls, raw: bytes) -> MainsPayload:
        data = loads_object(raw, max_size=MAX_CONTROL_PAYLOAD)
        state_text = _field(data, "state", str)
        if state_text not in MAINS_STATES:
            raise PayloadError(f"unknown mains state {state_text!r}")
        boot = _field(data, "boot", str)
        if not _BOOT_RE.fullmatch(boot):
            raise PayloadError("field 'boot' is not a run id")
        n = _seq(data, "n")
        if n < 1:
            raise PayloadError("field 'n' out of range")
        sig = data.get("sig")
        if sig is not None and not isinstance(sig, str):
            raise PayloadError("field 'sig' has the wrong type")
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
class EventPayload:
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

    def encode(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def decode(cls, raw: bytes) -> EventPayload:
        data = loads_object(raw, max_size=MAX_CONTROL_PAYLOAD)
        kind = _field(data, "type", str)
        if kind not in EVENT_TYPES:
            raise PayloadError(f"unknown event type {kind!r}")
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
class SamplePayload:
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


def decode_samples(raw: bytes) -> list[SamplePayload]:
    """Parse a ``samples`` batch (for archivers and tests)."""
    data = loads_object(raw)
    items = _field(data, "samples", list)
    out: list[SamplePayload] = []
    for item in items:
        if not isinstance(item, dict):
            raise PayloadError("sample is not an object")
        values: dict[str, float | None] = {
            str(k): float(v) for k, v in item.items() if k in READING_FIELDS
        }
        out.append(
            SamplePayload(
                seq=_seq(item), ts=_time(item, "ts"), channel=_field(item, "ch", int), values=values
            )
        )
    return out


_STATE_HEAD: Final = ("v", "device", "ts", "seq", "meter")


@dataclass(frozen=True, slots=True)
class StatePayload:
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

    def encode(self) -> bytes:
        return dumps(self.to_dict())

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
class HealthPayload:
    """``<base>/<device_id>/health``: the health snapshot, retained; unknown probes are ``null``."""

    device: str
    values: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": PAYLOAD_VERSION, "device": self.device}
        out.update(self.values)
        return out

    def encode(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def decode(cls, raw: bytes) -> HealthPayload:
        data = loads_object(raw, max_size=MAX_STATE_PAYLOAD)
        values = {k: v for k, v in data.items() if k not in ("v", "device")}
        return cls(device=_field(data, "device", str), values=values)


def encode_health(device: str, values: dict[str, Any]) -> bytes:
    """:class:`HealthPayload` in one call (the form tests use)."""
    return HealthPayload(device, values).encode()


# --------------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class CommandPayload:
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
        if self.sig is not None:
            out["sig"] = self.sig
        return out

    def encode(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def decode(cls, name: str, raw: bytes) -> CommandPayload:
        data = loads_object(raw, max_size=MAX_CONTROL_PAYLOAD)
        args = _field(data, "args", dict)
        sig = data.get("sig")
        if sig is not None and not isinstance(sig, str):
            raise PayloadError("field 'sig' has the wrong type")
        nonce = _field(data, "nonce", str)
        if not 1 <= len(nonce) <= 64:
            raise PayloadError("field 'nonce' out of range")
        return cls(name=name, args=args, ts=_time(data, "ts"), nonce=nonce, sig=sig)


CLIENT_STATES: Final = ("idle", "counting", "shutting_down")
"""Values of ``state`` in a client's ``clients/<id>/state`` payload."""
QOS_CLIENT_STATE: Final = 1
"""A client's ``state`` is retained QoS 1 (it carries a countdown people act on)."""


@dataclass(frozen=True, slots=True)
class ClientStatePayload:
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

    def encode(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def decode(cls, raw: bytes) -> ClientStatePayload:
        data = loads_object(raw, max_size=MAX_STATE_PAYLOAD)
        state = _field(data, "state", str)
        if state not in CLIENT_STATES:
            raise PayloadError(f"unknown client state {state!r}")
        if data.get("seconds_left") is not None:
            _finite(data, "seconds_left", minimum=0)
        if data.get("deadline") is not None:
            _time(data, "deadline")
        return cls.from_dict(data)


def encode_client_state(values: dict[str, Any]) -> bytes:
    """:class:`ClientStatePayload` from the fields of the payload (the form tests use)."""
    return ClientStatePayload.from_dict(values).encode()


def command_signing_body(topic: str, payload: dict[str, Any]) -> dict[str, Any]:
    """What a *client* command's ``sig`` covers: the payload without ``sig``, plus its topic.

    ``sig = hex(HMAC-SHA256(key, canonical JSON of {…payload without "sig", "topic": topic}))``.
    The topic is not sent; binding it stops a signed command from being replayed under
    another name (``cancel`` → ``shutdown_now``) or to another client.
    """
    body = {k: v for k, v in payload.items() if k != "sig"}
    body["topic"] = topic
    return body


# --------------------------------------------------------------------------- deployment


@dataclass(frozen=True, slots=True)
class DeploymentPayload:
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

    def encode(self) -> bytes:
        return dumps(self.to_dict())

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


# --------------------------------------------------------------------------- outage


@dataclass(frozen=True, slots=True)
class OutagePayload:
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

    def encode(self) -> bytes:
        return dumps(self.to_dict())

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
