"""What reaches the client's runtime: events from the network thread and from actions.

The listener (:mod:`bridge.shutdown.listener`) turns MQTT traffic into
:class:`Message`, :class:`Connected` and :class:`Disconnected`; the action thread
reports :class:`ActionDone`; :class:`Stop` ends the loop.  :class:`Publisher` is
what the runtime needs of a connection to publish its state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bridge.shutdown.actions import ShutdownOutcome

# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    retained: bool
    received: float
    """Monotonic time of receipt (taken in the network thread)."""
    wall: datetime


@dataclass(frozen=True, slots=True)
class LinkChange:
    """The broker connection changed, at monotonic time ``at``."""

    at: float


class Connected(LinkChange):
    """Connected (or reconnected): subscriptions and ``online`` are renewed."""

    __slots__ = ()


class Disconnected(LinkChange):
    """The connection was lost; paho is reconnecting."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class ActionDone:
    outcome: ShutdownOutcome


@dataclass(frozen=True, slots=True)
class Stop:
    pass


Event = Message | Connected | Disconnected | ActionDone | Stop


class Publisher(Protocol):
    def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> object: ...
