"""Commands over MQTT: the one verifier, used by the bridge and by the shutdown client.

A command (``.../cmd/<name>``, :class:`~bridge.mqtt.contract.CommandPayload`) is
accepted only when every check passes, in this order:

1. a known name;
2. at most :data:`~bridge.mqtt.contract.MAX_CONTROL_PAYLOAD` bytes of a JSON object
   of a known version;
3. with a key: a valid signature over the payload *and its topic*
   (:func:`signing.command_signing_body`), so a command signed for one bridge or PC, or
   for one command name, is refused anywhere else;
4. exactly the documented shape (and, if the caller asks, acceptable ``args``);
5. with a key: ``ts`` within ``max_age`` of the receiver's wall clock, and a nonce
   not seen before.  Nonces are remembered for ``2 × max_age`` plus an hour on the
   receiver's monotonic clock, and never more than :data:`NONCE_MEMORY` of them
   (the oldest go first), so a flood of commands cannot grow the memory.

:class:`CommandVerifier` only decides.  :class:`CommandGate` is the bridge's
dispatcher around it (handlers by name, a refusal count, log lines); the shutdown
client's :class:`~bridge.shutdown.intake.Intake` turns its refusals into counted
rejections.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any, Final

from bridge.clock import Clock
from bridge.errors import PayloadError, PowerbridgeError
from bridge.mqtt import signing
from bridge.mqtt.contract import MAX_CONTROL_PAYLOAD, CommandPayload, loads_object

log = logging.getLogger(__name__)

NONCE_MEMORY: Final = 4096
"""The most nonces a verifier remembers (the oldest are forgotten first)."""
NONCE_SLACK_S: Final = 3600.0
"""Remembered beyond ``2 × max_age``: a margin for a receiver's clock that was stepped."""

CommandHandler = Callable[[dict[str, Any]], None]
ArgsCheck = Callable[[dict[str, Any]], str | None]
"""Returns why a command's ``args`` are unacceptable, or ``None``."""


class CommandRejectedError(PayloadError):
    """A command that failed a check; ``reason`` is a short category for counting."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class CommandVerifier:
    """Checks commands for one receiver (see the module docstring).  No I/O.

    Args:
        names: the command names this receiver knows.
        key: the shared signing key; ``None`` accepts unsigned commands (a bridge
            without ``signing.key_file``).
        max_age: ``signing.max_age``, seconds.
        check_args: an extra check of ``args`` (the client accepts a short reason only).
    """

    def __init__(
        self,
        names: Collection[str],
        *,
        key: bytes | None,
        max_age: float,
        check_args: ArgsCheck | None = None,
    ) -> None:
        self._names = tuple(names)
        self._key = key
        self._max_age = max_age
        self._check_args = check_args
        self._nonces: OrderedDict[str, float] = OrderedDict()

    @property
    def remembered(self) -> int:
        """How many nonces are remembered now (never more than :data:`NONCE_MEMORY`)."""
        return len(self._nonces)

    def verify(
        self, topic: str, name: str, raw: bytes, *, received: float, wall: datetime
    ) -> CommandPayload:
        """The command, or :class:`CommandRejectedError`.

        ``received``: the receiver's monotonic time; ``wall``: its wall clock (UTC).
        """
        if name not in self._names:
            known = ", ".join(self._names)
            raise CommandRejectedError("unknown_command", f"{name!r} (known: {known})")
        if len(raw) > MAX_CONTROL_PAYLOAD:
            raise CommandRejectedError("oversized", f"{len(raw)} bytes")
        try:
            data = loads_object(raw)
        except PayloadError as exc:
            raise CommandRejectedError("malformed", str(exc)) from None
        if self._key is not None:
            if not isinstance(data.get("sig"), str):
                raise CommandRejectedError("unsigned", "commands must be signed")
            if not signing.verify(self._key, data, topic=topic):
                raise CommandRejectedError("bad_signature", "signature does not match")
        try:
            command = CommandPayload.decode(name, raw)
        except PayloadError as exc:
            raise CommandRejectedError("malformed", str(exc)) from None
        except (ValueError, OverflowError, TypeError) as exc:  # defensive: never crash on input
            raise CommandRejectedError("malformed", exc.__class__.__name__) from None
        problem = self._check_args(command.args) if self._check_args else None
        if problem is not None:
            raise CommandRejectedError("malformed", problem)
        if self._key is not None:
            if abs((command.ts - wall).total_seconds()) > self._max_age:
                raise CommandRejectedError(
                    "stale", f"timestamp outside the {self._max_age:.0f} s replay window"
                )
            self._remember(command.nonce, received)
        return command

    def _remember(self, nonce: str, now: float) -> None:
        while self._nonces and next(iter(self._nonces.values())) <= now:
            self._nonces.popitem(last=False)
        if nonce in self._nonces:
            raise CommandRejectedError("replayed", "nonce already used")
        self._nonces[nonce] = now + 2 * self._max_age + NONCE_SLACK_S
        while len(self._nonces) > NONCE_MEMORY:
            self._nonces.popitem(last=False)


class CommandGate:
    """The bridge's commands on ``<base>/<device_id>/cmd/<name>``: verify, then dispatch."""

    def __init__(
        self,
        handlers: Mapping[str, CommandHandler],
        *,
        key: bytes | None,
        max_age: float,
        clock: Clock,
    ) -> None:
        self._handlers = dict(handlers)
        self._clock = clock
        self._verifier = CommandVerifier(self._handlers, key=key, max_age=max_age)
        self.rejected = 0
        """Commands refused (bad payload, bad or missing signature, replay, unknown name)."""

    def handle(self, topic: str, name: str, raw: bytes) -> bool:
        """Run the command if it is acceptable; log and count it otherwise."""
        try:
            command = self._verifier.verify(
                topic, name, raw, received=self._clock.monotonic(), wall=self._clock.utcnow()
            )
            log.info("command %s %s", name, command.args)
            self._handlers[name](command.args)
        except (PayloadError, PowerbridgeError) as exc:
            self.rejected += 1
            log.warning("command %s refused: %s", name, exc)
            return False
        return True
