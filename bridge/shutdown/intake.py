"""From raw MQTT payloads to accepted facts, or to counted rejections.

Nothing that fails a check here can reach the policy.  The checks, in order:

``mains`` (``<base>/<device_id>/mains``)
    size ≤ :data:`~bridge.mqtt.contract.MAX_CONTROL_PAYLOAD`; a JSON object of a known
    version; with a key: a valid signature; strictly the documented shape; ``device``
    equal to the topic's device id; in *order* (below).

Order and freshness, without any wall clock
    Every ``mains`` message carries ``seq`` (the announcement's number, which never
    goes backwards for a device), ``boot`` (random at every start of the bridge) and
    ``n`` (the message's number within that run).  Against the last accepted message
    of the bridge (the *memory*):

    * a higher ``seq`` is a new announcement (from the same run, ``n`` must be higher
      too; a new run always starts with a ``seq`` of its own, higher than any before);
    * the same ``seq`` from the same run with a higher ``n`` is a refresh (same state
      required); a lower or equal ``n`` is a re-delivery, ignored;
    * anything else — a lower ``seq``, or the same ``seq`` from another run — is a
      replay, rejected.

    A signed replay of an old message therefore needs no timestamp to be refused, and
    a Pi whose clock is hours off is judged exactly like one whose clock is right.
    The memory is never forgotten: not on the bridge's ``offline`` (a restarted bridge
    keeps numbering upwards), and not on a client restart when the runtime keeps it on
    disk (:class:`ReplayMemory`).

``status``
    ``online`` or ``offline`` exactly.  Neither changes the order memory.

``ups`` (a UPS behind the bridge)
    a live message only (a retained report may come from an upsd that has since
    stopped answering); the documented shape; ``device`` equal to the topic's; signed
    like ``mains`` with a key; and about the present: from the run and the mains state
    (or a later one) that ``mains`` last told, numbered after the last report accepted.

Commands (``clients/<id|all>/cmd/<name>``)
    known name; not retained (a retained command would be obeyed again after every
    reconnect); remote commands enabled (``shutdown.allow_remote``, which requires a
    key); then the checks of the one command verifier,
    :class:`bridge.mqtt.commands.CommandVerifier`: a valid signature over the payload
    *and its topic* (:func:`bridge.mqtt.signing.command_signing_body`), so a signed
    ``cancel`` cannot be replayed as a ``shutdown_now`` or to another client; ``args``
    holding at most a short ``reason``; ``ts`` within ``max_age`` of our wall clock; a
    nonce not seen before (a bounded memory).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from bridge.errors import PayloadError
from bridge.model import MainsState
from bridge.mqtt import signing
from bridge.mqtt.commands import CommandRejectedError, CommandVerifier
from bridge.mqtt.contract import (
    CLIENT_COMMANDS,
    MAX_CONTROL_PAYLOAD,
    OFFLINE,
    ONLINE,
    MainsPayload,
    loads_object,
)
from bridge.shutdown.view import MainsFact
from bridge.ups.report import UpsOrigin, UpsPayload, UpsReport, decode_ups

__all__ = [
    "CommandFact",
    "Ignored",
    "Intake",
    "Rejected",
    "Rejections",
]

MAX_REASON_LENGTH: Final = 200


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


@dataclass(frozen=True, slots=True)
class Mark:
    """The last accepted ``mains`` message of one bridge: what order is judged against."""

    seq: int
    boot: str
    n: int
    state: MainsState

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "boot": self.boot, "n": self.n, "state": self.state.value}

    @classmethod
    def from_json(cls, data: Any) -> Mark:
        if not isinstance(data, dict):
            raise TypeError("not an object")
        seq, boot, n, state = data.get("seq"), data.get("boot"), data.get("n"), data.get("state")
        if (
            not isinstance(seq, int)
            or isinstance(seq, bool)
            or not isinstance(boot, str)
            or not isinstance(n, int)
            or isinstance(n, bool)
            or state not in ("on", "off", "unknown")
        ):
            raise ValueError("not a mark")
        return cls(seq, boot, n, MainsState(state))


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
        self._max_age_s = max_age
        self._allow_remote = allow_remote and key is not None
        self._memory: dict[str, Mark] = {}
        self._reported: set[str] = set()
        """Bridges whose current mark has been handed to the tracker in this run."""
        self._ups_n: dict[str, tuple[str, int]] = {}
        """The run and number of the last accepted ``ups`` report of each bridge."""
        self._commands = CommandVerifier(
            CLIENT_COMMANDS,
            key=key,
            max_age=max_age,
            check_args=_reason_only,
        )

    @property
    def signed(self) -> bool:
        return self._key is not None

    @property
    def marks(self) -> dict[str, Mark]:
        """The order memory (a copy), to be kept on disk."""
        return dict(self._memory)

    def restore(self, marks: dict[str, Mark]) -> None:
        """Load an order memory kept from an earlier run (watched bridges only)."""
        for device, mark in marks.items():
            if device in self._bridges:
                self._memory[device] = mark

    # -- mains ------------------------------------------------------------------------
    def mains(
        self,
        device_id: str,
        raw: bytes,
        received: float,
        wall: datetime | None = None,
        *,
        retained: bool = False,
    ) -> MainsFact | Ignored | Rejected:
        """Check a ``mains`` payload from ``device_id``'s topic, received at ``received``.

        ``wall`` is not used: order is judged by ``seq``/``boot``/``n`` alone.
        """
        del wall
        try:
            payload = self._decode_mains(device_id, raw)
            memory = self._memory.get(device_id)
            ignored = self._check_order(payload, memory)
        except _Reject as exc:
            return exc.rejected
        if ignored is not None and not (
            ignored.reason == "duplicate" and device_id not in self._reported
        ):
            return ignored
        # (A copy of the remembered message, first seen in this run after a restart of the
        # client, still tells the tracker what the bridge last said.)
        self._reported.add(device_id)
        self._memory[device_id] = Mark(payload.seq, payload.boot, payload.n, payload.state)
        return MainsFact(
            device_id=device_id,
            state=payload.state,
            seq=payload.seq,
            elapsed_s=payload.elapsed_s,
            received=received,
            live=not retained,
            boot=payload.boot,
        )

    def _parse(self, raw: bytes) -> dict[str, Any]:
        if len(raw) > MAX_CONTROL_PAYLOAD:
            raise _Reject("oversized", f"{len(raw)} bytes")
        try:
            return loads_object(raw)
        except PayloadError as exc:
            raise _Reject("malformed", str(exc)) from None

    def _check_signature(self, data: dict[str, Any]) -> None:
        """With a key: the payload must carry a valid ``sig`` (``mains``, ``ups``)."""
        if self._key is None:
            return
        if not isinstance(data.get("sig"), str):
            raise _Reject("unsigned", "a signing key is configured; the message has no sig")
        if not signing.verify(self._key, data):
            raise _Reject("bad_signature", "signature does not match")

    def _decode_mains(self, device_id: str, raw: bytes) -> MainsPayload:
        if device_id not in self._bridges:
            raise _Reject("unexpected_topic", f"not a watched bridge: {device_id}")
        self._check_signature(self._parse(raw))
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
    def _check_order(payload: MainsPayload, memory: Mark | None) -> Ignored | None:
        if memory is None:
            return None
        same_run = payload.boot == memory.boot
        if payload.seq > memory.seq:
            if same_run and payload.n <= memory.n:
                raise _Reject(
                    "inconsistent", f"sequence {payload.seq} numbered {payload.n} in its run"
                )
            return None
        if payload.seq == memory.seq and same_run:
            if payload.n <= memory.n:
                return Ignored("duplicate" if payload.n == memory.n else "stale_refresh")
            if payload.state is not memory.state:
                raise _Reject("inconsistent", f"sequence {payload.seq} announced with two states")
            return None
        if same_run and payload.n < memory.n:
            return Ignored("stale_refresh")  # an older message of this run, delivered late
        raise _Reject(
            "replayed",
            f"sequence {payload.seq} (run {payload.boot}) after {memory.seq} (run "
            f"{memory.boot}): an old message; if the bridge was reinstalled and restarted "
            "its numbering, run `powerbridge client forget` here and restart the client",
        )

    # -- status -----------------------------------------------------------------------
    def status(self, device_id: str, raw: bytes) -> bool | Rejected:
        """``True`` for ``online``, ``False`` for ``offline``."""
        if device_id not in self._bridges:
            return Rejected("unexpected_topic", f"not a watched bridge: {device_id}")
        if raw == ONLINE.encode():
            return True
        if raw == OFFLINE.encode():
            return False
        return Rejected("malformed", f"status must be {ONLINE!r} or {OFFLINE!r}")

    # -- ups --------------------------------------------------------------------------
    def ups(self, device_id: str, raw: bytes, *, retained: bool) -> UpsReport | Ignored | Rejected:
        """A live UPS report of a watched bridge (rule 8 of the policy); retained ones wait."""
        if retained:
            return Ignored("a retained UPS report may be stale; waiting for a live one")
        return self.ups_report(device_id, raw)

    def ups_report(self, device_id: str, raw: bytes) -> UpsReport | Ignored | Rejected:
        """Check a ``ups`` payload: signed (with a key), the sender's own, about the present.

        Its origin (:class:`~bridge.mqtt.contract.UpsOrigin`, signed with it) is held
        against the bridge's ``mains`` as this intake last accepted them: a report from
        another run of the bridge, or about an earlier mains state, is history and is
        ignored; within a run its number must be above the last one accepted.  So a
        captured signed report cannot be replayed later to shorten a countdown, and no
        clock is trusted: a Pi whose clock steps back is judged like one whose clock is
        right.  Before the first ``mains`` of a bridge nothing is known to compare with,
        and its reports wait (they matter only during an outage, which ``mains`` tells).
        """
        try:
            payload = self._decode_ups(device_id, raw)
        except _Reject as exc:
            return exc.rejected
        ignored = self._place_ups(device_id, payload.origin)
        if ignored is not None:
            return ignored
        self._ups_n[device_id] = (payload.origin.boot, payload.origin.n)
        return payload.report

    def _decode_ups(self, device_id: str, raw: bytes) -> UpsPayload:
        if device_id not in self._bridges:
            raise _Reject("unexpected_topic", f"not a watched bridge: {device_id}")
        self._check_signature(self._parse(raw))
        try:
            payload = decode_ups(raw)
        except PayloadError as exc:
            raise _Reject("malformed", str(exc)) from None
        if payload.device != device_id:
            raise _Reject("wrong_device", f"payload says {payload.device!r}")
        return payload

    def _place_ups(self, device_id: str, origin: UpsOrigin) -> Ignored | None:
        """``None`` when a report is about the present (see :meth:`ups_report`)."""
        mains = self._memory.get(device_id)
        if mains is None:
            return Ignored("no mains message of this bridge yet: nothing to place it against")
        if origin.boot != mains.boot:
            return Ignored(f"from run {origin.boot}, not the bridge's present run {mains.boot}")
        if origin.seq < mains.seq:
            return Ignored(f"about mains state {origin.seq}, before the present {mains.seq}")
        last = self._ups_n.get(device_id)
        if last is not None and last[0] == origin.boot and origin.n <= last[1]:
            return Ignored(f"number {origin.n} in its run, not after {last[1]}")
        return None

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
        """Check a command received on ``topic`` (see the module docstring)."""
        try:
            return self._command(topic, name, raw, received, wall, retained)
        except _Reject as exc:
            return exc.rejected

    def _command(  # noqa: PLR0917 - the message's parts, as :meth:`command` received them
        self, topic: str, name: str, raw: bytes, received: float, wall: datetime, retained: bool
    ) -> CommandFact:
        if name not in CLIENT_COMMANDS:
            raise _Reject("unknown_command", f"{name!r}")
        if retained:
            raise _Reject("retained_command", "commands must not be retained")
        if not self._allow_remote or self._key is None:
            raise _Reject(
                "remote_disabled", "shutdown.allow_remote is off (it requires signing.key_file)"
            )
        try:
            command = self._commands.verify(topic, name, raw, received=received, wall=wall)
        except CommandRejectedError as exc:
            raise _Reject(exc.reason, exc.detail) from None
        return CommandFact(name=name, reason=command.args.get("reason"), received=received)


def _reason_only(args: dict[str, Any]) -> str | None:
    reason = args.get("reason")
    if set(args) - {"reason"} or (
        reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON_LENGTH)
    ):
        return "args may only hold a short text 'reason'"
    return None


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
