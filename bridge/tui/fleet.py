"""What a watcher knows about every bridge and shutdown client on a broker.

:class:`Fleet` is fed raw MQTT messages (topic, payload, receipt time on the
monotonic clock) and keeps the newest facts per bridge and per client.  It does
no I/O: ``powerbridge watch`` and ``powerbridge demo`` feed it from a paho
client, tests feed it directly.  Each message that changes something a person
cares about (a bridge going offline, an announced mains change, a client
starting its countdown) is returned as a :class:`Change`, which the plain-text
view prints as one line and the demo counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from bridge.errors import PayloadError
from bridge.model import MainsState
from bridge.mqtt.contract import (
    CLIENTS_LEVEL,
    MAINS_REFRESH_S,
    OFFLINE,
    ONLINE,
    ClientStatePayload,
    HealthPayload,
    MainsPayload,
    StatePayload,
)

BRIDGE_TOPICS: Final = ("status", "mains", "state", "health")
CLIENT_TOPICS: Final = ("status", "state")


def subscriptions(base: str) -> list[str]:
    """Topic filters a watcher subscribes to (all read-only)."""
    return [f"{base}/+/{name}" for name in BRIDGE_TOPICS] + [
        f"{base}/{CLIENTS_LEVEL}/+/{name}" for name in CLIENT_TOPICS
    ]


@dataclass(frozen=True, slots=True)
class Change:
    """Something worth a line: ``kind`` is ``bridge_status``, ``mains``, ``client_status``
    or ``client_state``; ``who`` the device or client id; ``value`` the new value."""

    kind: str
    who: str
    value: str
    at: float
    detail: str = ""
    retained: bool = False

    def describe(self) -> str:
        noun = "client" if self.kind.startswith("client") else "bridge"
        text = {
            "bridge_status": f"bridge {self.who} is {self.value}",
            "client_status": f"client {self.who} is {self.value}",
            "mains": f"bridge {self.who}: mains {self.value}",
            "client_state": f"client {self.who}: {self.value}",
        }.get(self.kind, f"{noun} {self.who}: {self.kind} {self.value}")
        return f"{text} ({self.detail})" if self.detail else text


@dataclass
class BridgeView:
    """The newest facts from one bridge."""

    device_id: str
    status: str | None = None
    mains: MainsPayload | None = None
    mains_at: float | None = None
    """Monotonic time at which ``mains`` was received."""
    mains_age: float = 0.0
    """How old ``mains`` already was when it was received: 0 for a live message; for a
    retained one (the broker's copy, refreshed every ``MAINS_REFRESH_S``), the bridge's
    publishing time against this machine's wall clock, bounded by the refresh period, so
    that a wrong clock can never make the display more than one refresh off."""
    state: dict[str, Any] = field(default_factory=dict)
    state_at: float | None = None
    health: dict[str, Any] = field(default_factory=dict)
    health_at: float | None = None
    readings: int = 0
    """``state`` messages received (each is a new reading)."""
    bad_payloads: int = 0

    def mains_elapsed(self, now: float) -> float | None:
        """How long the announced mains state has lasted, by the bridge's monotonic count."""
        if self.mains is None or self.mains_at is None:
            return None
        return self.mains.elapsed_s + self.mains_age + max(0.0, now - self.mains_at)

    def reading(self, name: str) -> float | None:
        value = self.state.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value) if math.isfinite(value) else None


@dataclass
class ClientView:
    """The newest facts from one shutdown client."""

    client_id: str
    status: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    state_at: float | None = None
    bad_payloads: int = 0

    @property
    def phase(self) -> str | None:
        value = self.state.get("state")
        return value if isinstance(value, str) else None

    def number(self, *names: str) -> float | None:
        """The first of ``names`` that holds a finite number in the state payload."""
        for name in names:
            value = self.state.get(name)
            if (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
            ):
                return float(value)
        return None

    def seconds_left(self, now: float) -> float | None:
        """Seconds until the shutdown, counted down locally since the state was received."""
        left = self.number("seconds_left", "remaining_s")
        if left is None or self.state_at is None:
            return None
        if self.phase == "counting":
            left -= max(0.0, now - self.state_at)
        return max(0.0, left)

    @property
    def delay(self) -> float | None:
        return self.number("delay_s", "delay")

    @property
    def dry_run(self) -> bool:
        return self.state.get("dry_run") is True

    @property
    def watched(self) -> list[str]:
        bridges = self.state.get("bridges")
        if isinstance(bridges, dict):
            return sorted(str(k) for k in bridges)
        if isinstance(bridges, list):
            out: list[str] = []
            for item in bridges:
                if isinstance(item, str):
                    out.append(item)
                elif isinstance(item, dict) and isinstance(item.get("id"), str):
                    out.append(item["id"])
            return out
        return []


class Fleet:
    """Every bridge and client seen on one broker, under one base topic."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.bridges: dict[str, BridgeView] = {}
        self.clients: dict[str, ClientView] = {}
        self.bad_payloads = 0
        self.messages = 0

    def bridge(self, device_id: str) -> BridgeView:
        if device_id not in self.bridges:
            self.bridges[device_id] = BridgeView(device_id)
        return self.bridges[device_id]

    def client(self, client_id: str) -> ClientView:
        if client_id not in self.clients:
            self.clients[client_id] = ClientView(client_id)
        return self.clients[client_id]

    def handle(
        self,
        topic: str,
        payload: bytes,
        now: float,
        *,
        retained: bool = False,
        wall: datetime | None = None,
    ) -> list[Change]:
        """Take one message; return what changed (nothing for topics it does not know).

        ``now`` is the monotonic time of receipt; ``wall`` this machine's wall clock then,
        used only to estimate the age of a retained ``mains`` for display."""
        levels = topic.split("/")
        base_levels = self.base.split("/")
        if levels[: len(base_levels)] != base_levels:
            return []
        rest = levels[len(base_levels) :]
        self.messages += 1
        view: BridgeView | ClientView
        if len(rest) == 3 and rest[0] == CLIENTS_LEVEL and rest[2] in CLIENT_TOPICS:
            view, kind = self.client(rest[1]), rest[2]
        elif len(rest) == 2 and rest[0] != CLIENTS_LEVEL and rest[1] in BRIDGE_TOPICS:
            view, kind = self.bridge(rest[0]), rest[1]
        else:
            return []
        if kind == "status":
            return self._status(view, payload, now, retained)
        if isinstance(view, ClientView):
            return self._client_state(view, payload, now, retained)
        return self._bridge_message(view, kind, payload, now, retained=retained, wall=wall)

    # -- bridges --------------------------------------------------------------------
    def _bridge_message(
        self,
        view: BridgeView,
        kind: str,
        payload: bytes,
        now: float,
        *,
        retained: bool,
        wall: datetime | None,
    ) -> list[Change]:
        if kind == "mains":
            changes = self._bridge_mains(view, payload, now, retained)
            if view.mains is not None and view.mains_at == now:
                view.mains_age = _retained_age(view.mains, wall) if retained else 0.0
            return changes
        try:
            if kind == "state":
                view.state, view.state_at = StatePayload.decode(payload).to_dict(), now
                view.readings += 1
            else:
                view.health, view.health_at = HealthPayload.decode(payload).to_dict(), now
        except PayloadError:
            return self._bad(view)
        return []

    def _bridge_mains(
        self, view: BridgeView, payload: bytes, now: float, retained: bool
    ) -> list[Change]:
        try:
            mains = MainsPayload.decode(payload)
        except PayloadError:
            return self._bad(view)
        old = view.mains
        view.mains, view.mains_at = mains, now
        if old is not None and old.seq == mains.seq and old.state == mains.state:
            return []  # the periodic refresh of the same announcement
        detail = f"seq {mains.seq}, for {mains.elapsed_s:.1f} s"
        return [Change("mains", view.device_id, mains.state.value, now, detail, retained)]

    # -- clients --------------------------------------------------------------------
    def _client_state(
        self, view: ClientView, payload: bytes, now: float, retained: bool
    ) -> list[Change]:
        try:
            data = ClientStatePayload.decode(payload).to_dict()
        except PayloadError:
            return self._bad(view)
        old_phase = view.phase
        view.state, view.state_at = data, now
        phase = view.phase
        if phase is None or phase == old_phase:
            return []
        detail = ""
        left = view.number("seconds_left", "remaining_s")
        if phase == "counting" and left is not None:
            detail = f"{left:.0f} s left"
        if view.dry_run and phase not in ("idle", "counting"):
            detail = "dry run"
        return [Change("client_state", view.client_id, phase, now, detail, retained)]

    def _status(
        self, view: BridgeView | ClientView, payload: bytes, now: float, retained: bool
    ) -> list[Change]:
        """A bridge's or a client's ``status`` (``online``/``offline``): a change if it is new."""
        text = _status_text(payload)
        if text is None:
            return self._bad(view)
        if text == view.status:
            return []
        view.status = text
        if isinstance(view, BridgeView):
            return [Change("bridge_status", view.device_id, text, now, retained=retained)]
        return [Change("client_status", view.client_id, text, now, retained=retained)]

    def _bad(self, view: BridgeView | ClientView) -> list[Change]:
        view.bad_payloads += 1
        self.bad_payloads += 1
        return []


def _status_text(payload: bytes) -> str | None:
    text = payload.decode("utf-8", errors="replace").strip()
    return text if text in (ONLINE, OFFLINE) else None


def mains_label(view: BridgeView) -> str:
    if view.mains is None:
        return "unknown"
    return "on" if view.mains.state is MainsState.ON else "OFF"


def _retained_age(mains: MainsPayload, wall: datetime | None) -> float:
    """The age of a retained ``mains`` by its publishing time, within ``[0, refresh]``."""
    if wall is None:
        return 0.0
    age = (wall - mains.ts).total_seconds()
    return min(max(0.0, age), MAINS_REFRESH_S)
