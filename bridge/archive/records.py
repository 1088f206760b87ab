"""From an MQTT message to rows: every payload is decoded through :mod:`bridge.mqtt.contract`.

Pure functions, no I/O.  :func:`decode` takes a topic and a payload and returns a
:class:`Decoded` (the rows to store) or raises :class:`~bridge.errors.PayloadError`
(the caller counts and logs it; nothing of a rejected message is stored).  A
payload whose ``device`` differs from its topic's is rejected too: the broker's ACL
lets a bridge write only its own topics, and the archive keeps it that way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any, Final

from bridge.errors import PayloadError
from bridge.mqtt.contract import (
    DEVICE_ID_RE,
    OFFLINE,
    ONLINE,
    READING_FIELDS,
    DeploymentPayload,
    EventPayload,
    HealthPayload,
    MainsPayload,
    StatePayload,
    decode_sample_rows,
)

KINDS: Final = ("samples", "events", "mains", "health", "deployment", "status", "state")
"""The topics of a bridge the archive subscribes to (``<base>/+/<kind>``).  ``state`` is
read only for its ``seq``: the newest sample's number, which shows a gap at the end of the
sequence (samples lost after the last one that arrived) that no later sample would reveal."""
QUANTITIES: Final = READING_FIELDS
"""Sample columns after (device, seq, ts, ch), in this order."""

_SEQ = itemgetter(1)
SampleRow = tuple[Any, ...]
"""``(device, seq, ts_ms, ch, *QUANTITIES)``: ``ts_ms`` is epoch milliseconds (UTC)."""


def epoch_ms(value: datetime) -> int:
    return round(value.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Decoded:
    """What one message adds to the archive."""

    kind: str
    device: str
    samples: list[SampleRow] = field(default_factory=list)
    event: EventPayload | None = None
    mains: MainsPayload | None = None
    health: dict[str, Any] | None = None
    deployment: DeploymentPayload | None = None
    online: bool | None = None
    newest_seq: int | None = None
    """From ``state``: the bridge has numbered samples up to here."""

    @property
    def seqs(self) -> list[int]:
        """Sequence numbers (shared by samples and events) this message carries."""
        if self.event is not None:
            return [self.event.seq]
        return list(map(_SEQ, self.samples))


def split_topic(topic: str, base: str) -> tuple[str, str]:
    """``<base>/<device>/<kind>`` → ``(device, kind)``, or :class:`PayloadError`."""
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != base or parts[2] not in KINDS:
        raise PayloadError(f"not an archived topic: {topic}")
    if not DEVICE_ID_RE.fullmatch(parts[1]):
        raise PayloadError(f"not a device id: {parts[1]!r}")
    return parts[1], parts[2]


def decode(  # noqa: PLR0911 - one return per kind of topic reads best
    topic: str, payload: bytes, *, base: str, max_size: int
) -> Decoded | None:
    """The rows in one message; ``None`` for a message that carries nothing to store.

    An empty retained payload (a cleared topic) carries nothing.  Anything that is
    not exactly the contract's shape raises :class:`PayloadError`.
    """
    device, kind = split_topic(topic, base)
    if len(payload) > max_size:
        raise PayloadError(f"payload of {len(payload)} bytes exceeds {max_size}")
    if not payload:
        return None
    if kind == "status":
        text = payload.decode("utf-8", errors="replace")
        if text not in (ONLINE, OFFLINE):
            raise PayloadError(f"unknown status {text[:20]!r}")
        return Decoded(kind, device, online=text == ONLINE)
    if kind == "samples":
        batch = decode_sample_rows(payload)
        _same_device(batch.device, device)
        return Decoded(kind, device, samples=batch.rows)
    if kind == "events":
        event = EventPayload.decode(payload)
        _same_device(event.device, device)
        return Decoded(kind, device, event=event)
    if kind == "mains":
        mains = MainsPayload.decode(payload)
        _same_device(mains.device, device)
        return Decoded(kind, device, mains=mains)
    if kind == "state":
        state = StatePayload.decode(payload)
        _same_device(state.device, device)
        return Decoded(kind, device, newest_seq=state.seq)
    if kind == "health":
        health = HealthPayload.decode(payload)
        _same_device(health.device, device)
        return Decoded(kind, device, health=health.values)
    deployment = DeploymentPayload.decode(payload)
    _same_device(deployment.device, device)
    return Decoded(kind, device, deployment=deployment)


def _same_device(claimed: object, device: str) -> None:
    if claimed != device:
        raise PayloadError(f"payload names device {claimed!r} on the topic of {device!r}")
