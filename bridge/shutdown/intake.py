"""From raw MQTT payloads to accepted facts, or to counted rejections.

Nothing that fails a check here can reach the policy.  The checks, in order:

``mains`` (``<base>/<device_id>/mains``)
    size ≤ :data:`~bridge.mqtt.contract.MAX_CONTROL_PAYLOAD`; a JSON object of a known
    version; with a key: a valid signature; strictly the documented shape; ``device``
    equal to the topic's device id; with a key: *fresh* (see below); in *order*:
    a sequence number lower than the last accepted one is a replay; an equal one is a
    refresh of the same announcement (same state required; an identical ``ts`` is a
    duplicate delivery and an older ``ts`` a stale copy, both ignored).

Freshness (signed messages only)
    A replayed message is always old by the signer's clock.  With no memory of the
    bridge, ``ts`` must not be older than ``max_age`` by our wall clock.  Once a
    message is accepted, it *anchors* the bridge's clock to our monotonic clock:
    later messages must not be older than ``max_age`` by the bridge clock predicted
    from the anchor (or by our wall clock).  A wall-clock jump on this computer
    therefore does not reject a live bridge, and messages from the "future" are
    never replays (they cannot be forged without the key).

``status``
    ``online`` or ``offline`` exactly.  ``offline`` forgets the bridge's sequence
    memory: a reinstalled bridge may restart its numbering, and the freshness rule
    alone guards the next message.

Commands (``clients/<id|all>/cmd/<name>``)
    known name; not retained (a retained command would be obeyed again after every
    reconnect); remote commands enabled (``shutdown.allow_remote``, which requires a
    key); a valid signature over the payload *and its topic* (see
    :func:`command_signing_body`), so a signed ``cancel`` cannot be replayed as a
    ``shutdown_now`` or to another client; ``ts`` within ``max_age`` of our wall
    clock; a nonce not seen before.
"""

from __future__ import annotations

import hmac
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from bridge.errors import PayloadError
from bridge.model import MainsState
from bridge.mqtt import signing
from bridge.mqtt.contract import (
    CLIENT_COMMANDS,
    MAX_CONTROL_PAYLOAD,
    OFFLINE,
    ONLINE,
    CommandPayload,
    MainsPayload,
    command_signing_body,
    loads_object,
)
from bridge.shutdown.view import MainsFact

__all__ = [
    "CommandFact",
    "Ignored",
    "Intake",
    "Rejected",
    "Rejections",
    "command_signing_body",
    "sign_command",
]

MAX_REASON_LENGTH: Final = 200
NONCE_MEMORY: Final = 4096


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message that failed a check: counted and logged (rate-limited), never acted on."""

    reason: str
    """Short category: ``malformed``, ``oversized``, ``unsigned``, ``bad_signature``, ..."""
    detail: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """A harmless message with nothing new in it (a duplicate delivery)."""

    reason: str


class _Reject(Exception):  # noqa: N818 - internal control flow, never escapes this module
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason)
        self.rejected = Rejected(reason, detail)


@dataclass(frozen=True, slots=True)
class CommandFact:
    name: str
    reason: str | None
    received: float


def sign_command(key: bytes, topic: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A copy of a command payload with its ``sig`` set (for Home Assistant, tools and tests)."""
    return {**payload, "sig": signing.signature(key, command_signing_body(topic, payload))}


@dataclass
class _Memory:
    seq: int
    state: MainsState
    ts: datetime
    anchor_ts: datetime
    anchor_mono: float


class Intake:
    """Validates messages for one client; keeps the per-bridge replay memory.  No I/O."""

    def __init__(
        self,
        bridges: Iterable[str],
        *,
        key: bytes | None = None,
        max_age: float = 120.0,
        allow_remote: bool = False,
    ) -> None:
        self._bridges = frozenset(bridges)
        self._key = key
        self._max_age = timedelta(seconds=max_age)
        self._max_age_s = max_age
        self._allow_remote = allow_remote and key is not None
        self._memory: dict[str, _Memory] = {}
        self._nonces: OrderedDict[str, float] = OrderedDict()

    @property
    def signed(self) -> bool:
        return self._key is not None

    # -- mains ------------------------------------------------------------------------
    def mains(
        self,
        device_id: str,
        raw: bytes,
        received: float,
        wall: datetime,
        *,
        retained: bool = False,
    ) -> MainsFact | Ignored | Rejected:
        """Check a ``mains`` payload from ``device_id``'s topic, received at ``received``."""
        try:
            payload = self._decode_mains(device_id, raw)
            memory = self._memory.get(device_id)
            self._check_fresh(payload.ts, memory, received, wall)
            ignored = self._check_order(payload, memory)
        except _Reject as exc:
            return exc.rejected
        if ignored is not None:
            return ignored
        self._memory[device_id] = _Memory(
            seq=payload.seq,
            state=payload.state,
            ts=payload.ts,
            anchor_ts=payload.ts,
            anchor_mono=received,
        )
        return MainsFact(
            device_id=device_id,
            state=payload.state,
            seq=payload.seq,
            elapsed_s=payload.elapsed_s,
            received=received,
            live=not retained,
        )

    def _parse(self, raw: bytes) -> dict[str, Any]:
        if len(raw) > MAX_CONTROL_PAYLOAD:
            raise _Reject("oversized", f"{len(raw)} bytes")
        try:
            return loads_object(raw)
        except PayloadError as exc:
            raise _Reject("malformed", str(exc)) from None

    def _decode_mains(self, device_id: str, raw: bytes) -> MainsPayload:
        if device_id not in self._bridges:
            raise _Reject("unexpected_topic", f"not a watched bridge: {device_id}")
        data = self._parse(raw)
        if self._key is not None:
            if not isinstance(data.get("sig"), str):
                raise _Reject("unsigned", "a signing key is configured; the message has no sig")
            if not signing.verify(self._key, data):
                raise _Reject("bad_signature", "signature does not match")
        try:
            payload = MainsPayload.decode(raw)
        except PayloadError as exc:
            raise _Reject("malformed", str(exc)) from None
        except (ValueError, OverflowError, TypeError) as exc:  # defensive: never crash on input
            raise _Reject("malformed", exc.__class__.__name__) from None
        if payload.device != device_id:
            raise _Reject("wrong_device", f"payload says {payload.device!r}")
        return payload

    @staticmethod
    def _check_order(payload: MainsPayload, memory: _Memory | None) -> Ignored | None:
        if memory is None or payload.seq > memory.seq:
            return None
        if payload.seq < memory.seq:
            raise _Reject(
                "replayed",
                f"sequence {payload.seq} after {memory.seq} (if the bridge was "
                "reinstalled and restarted its numbering, restart this client)",
            )
        if payload.state is not memory.state:
            raise _Reject("inconsistent", f"sequence {payload.seq} announced with two states")
        if payload.ts == memory.ts:
            return Ignored("duplicate")
        if payload.ts < memory.ts:
            return Ignored("stale_refresh")
        return None

    def _check_fresh(
        self, ts: datetime, memory: _Memory | None, received: float, wall: datetime
    ) -> None:
        if self._key is None or ts >= wall - self._max_age:
            return
        if memory is not None:
            predicted = memory.anchor_ts + timedelta(seconds=received - memory.anchor_mono)
            if ts >= predicted - self._max_age:
                return
        raise _Reject(
            "stale",
            f"signed at {ts.isoformat()}, older than {self._max_age_s:g} s "
            "(a replay, or the clocks of the two machines disagree)",
        )

    # -- status -----------------------------------------------------------------------
    def status(self, device_id: str, raw: bytes) -> bool | Rejected:
        """``True`` for ``online``, ``False`` for ``offline``."""
        if device_id not in self._bridges:
            return Rejected("unexpected_topic", f"not a watched bridge: {device_id}")
        if raw == ONLINE.encode():
            return True
        if raw == OFFLINE.encode():
            self._memory.pop(device_id, None)
            return False
        return Rejected("malformed", f"status must be {ONLINE!r} or {OFFLINE!r}")

    # -- commands ---------------------------------------------------------------------
    def command(
        self,
        topic: str,
        name: str,
        raw: bytes,
        received: float,
        wall: datetime,
        *,
        retained: bool = False,
    ) -> CommandFact | Rejected:
        try:
            return self._command(topic, name, raw, received, wall, retained=retained)
        except _Reject as exc:
            return exc.rejected

    def _command(
        self,
        topic: str,
        name: str,
        raw: bytes,
        received: float,
        wall: datetime,
        *,
        retained: bool,
    ) -> CommandFact:
        if name not in CLIENT_COMMANDS:
            raise _Reject("unknown_command", f"{name!r}")
        if retained:
            raise _Reject("retained_command", "commands must not be retained")
        if not self._allow_remote or self._key is None:
            raise _Reject(
                "remote_disabled", "shutdown.allow_remote is off (it requires signing.key_file)"
            )
        data = self._parse(raw)
        sig = data.get("sig")
        if not isinstance(sig, str):
            raise _Reject("unsigned", "commands must be signed")
        expected = signing.signature(self._key, command_signing_body(topic, data))
        if not hmac.compare_digest(sig, expected):
            raise _Reject("bad_signature", "signature does not match")
        try:
            command = CommandPayload.decode(name, raw)
        except PayloadError as exc:
            raise _Reject("malformed", str(exc)) from None
        except (ValueError, OverflowError, TypeError) as exc:
            raise _Reject("malformed", exc.__class__.__name__) from None
        reason = command.args.get("reason")
        if set(command.args) - {"reason"} or (
            reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON_LENGTH)
        ):
            raise _Reject("malformed", "args may only hold a short text 'reason'")
        if abs((command.ts - wall).total_seconds()) > self._max_age_s:
            raise _Reject("stale", "command timestamp is outside the replay window of our clock")
        self._forget_nonces(received)
        if command.nonce in self._nonces:
            raise _Reject("replayed", "nonce already used")
        self._nonces[command.nonce] = received + 2 * self._max_age_s + 3600
        while len(self._nonces) > NONCE_MEMORY:
            self._nonces.popitem(last=False)
        return CommandFact(name=name, reason=reason, received=received)

    def _forget_nonces(self, now: float) -> None:
        while self._nonces:
            nonce, expires = next(iter(self._nonces.items()))
            if expires > now:
                return
            del self._nonces[nonce]


class Rejections:
    """Counts rejected messages by reason; logs the first of each, then a summary per interval."""

    def __init__(
        self,
        logger: logging.Logger,
        clock: Callable[[], float],
        *,
        interval: float = 60.0,
    ) -> None:
        self._log = logger
        self._clock = clock
        self._interval = interval
        self.counts: dict[str, int] = {}
        self._pending: dict[str, int] = {}
        self._last_log: dict[str, float] = {}

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, topic: str, rejected: Rejected) -> None:
        reason = rejected.reason
        self.counts[reason] = self.counts.get(reason, 0) + 1
        now = self._clock()
        last = self._last_log.get(reason)
        if last is None:
            self._last_log[reason] = now
            self._log.warning(
                "ignored a message on %s (%s): %s; later ones are summarised every %.0f s",
                topic,
                reason,
                rejected.detail,
                self._interval,
            )
            return
        self._pending[reason] = self._pending.get(reason, 0) + 1
        if now - last >= self._interval:
            self._log.warning(
                "ignored %d more message(s) (%s) in the last %.0f s; latest on %s: %s",
                self._pending[reason],
                reason,
                now - last,
                topic,
                rejected.detail,
            )
            self._pending[reason] = 0
            self._last_log[reason] = now
