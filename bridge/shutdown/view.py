"""What the shutdown client knows: frozen snapshots for the policy, and the tracker behind them.

All times here are on the client's *monotonic* clock (seconds).  The wall clock of
either machine never enters: an announced state's start is estimated as
``receipt time - elapsed_s`` (the bridge's own monotonic measure of how long the
state had lasted when it published), and the earliest estimate for one
announcement wins, because every delay in transit only makes an estimate later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from bridge.model import MainsState


@dataclass(frozen=True, slots=True)
class BridgeView:
    """One watched bridge, as far as this client knows."""

    device_id: str
    mains: MainsState = MainsState.UNKNOWN
    """The last announced state; ``UNKNOWN`` until a valid ``mains`` message arrived."""
    seq: int | None = None
    """Sequence number of that announcement."""
    state_start: float | None = None
    """When the announced state began (client monotonic estimate)."""
    last_heard: float | None = None
    """When the last accepted ``mains`` message (announcement or refresh) arrived."""
    online: bool | None = None
    """The bridge's ``status`` topic: ``True`` online, ``False`` offline, ``None`` not seen."""
    offline_since: float | None = None
    """When ``status`` went ``offline`` (``None`` while online or unknown)."""
    seen_alive: bool = False
    """Whether this bridge has shown a sign of life to us: ``status`` ``online`` or a live
    (not retained) ``mains`` message.  A retained report from a bridge never seen alive
    is history, not a fact to shut down on."""

    @property
    def heard(self) -> bool:
        return self.mains is not MainsState.UNKNOWN


@dataclass(frozen=True, slots=True)
class View:
    """Everything the policy looks at, frozen at one instant."""

    bridges: tuple[BridgeView, ...]
    started_at: float
    """When the client started (for the "never heard from" grace period)."""
    connected: bool = False
    """Whether the broker connection is up right now."""
    disconnected_since: float | None = None
    """When the broker connection was lost (``None`` while connected or before the first)."""
    remote_requested_at: float | None = None
    """When an authenticated ``shutdown_now`` command was accepted (``None``: none pending)."""
    remote_reason: str | None = None

    def bridge(self, device_id: str) -> BridgeView:
        for b in self.bridges:
            if b.device_id == device_id:
                return b
        raise KeyError(device_id)


@dataclass(frozen=True, slots=True)
class MainsFact:
    """An accepted ``mains`` message (see :mod:`bridge.shutdown.intake`)."""

    device_id: str
    state: MainsState
    seq: int
    elapsed_s: float
    received: float
    """Client monotonic time of receipt."""
    live: bool
    """``False`` for a retained message delivered on subscribe (possibly old history)."""


class Tracker:
    """Merges accepted facts into the per-bridge view; single-threaded, no I/O, no clock."""

    def __init__(self, bridges: Sequence[str], started_at: float) -> None:
        self._bridges = {d: BridgeView(d) for d in bridges}
        self._order = tuple(bridges)
        self._started_at = started_at
        self._connected = False
        self._disconnected_since: float | None = None
        self._remote_at: float | None = None
        self._remote_reason: str | None = None

    # -- facts --------------------------------------------------------------------------
    def mains(self, fact: MainsFact) -> str:
        """Merge a mains fact; returns ``"new"`` (a new announcement) or ``"refresh"``."""
        old = self._bridges[fact.device_id]
        estimate = fact.received - fact.elapsed_s
        same = old.seq == fact.seq and old.mains is fact.state and old.state_start is not None
        start = min(old.state_start, estimate) if same and old.state_start is not None else estimate
        self._bridges[fact.device_id] = replace(
            old,
            mains=fact.state,
            seq=fact.seq,
            state_start=start,
            last_heard=fact.received,
            seen_alive=old.seen_alive or fact.live,
        )
        return "refresh" if same else "new"

    def status(self, device_id: str, online: bool, at: float) -> bool:
        """Merge a ``status`` message; returns whether it changed anything."""
        old = self._bridges[device_id]
        if old.online is online:
            return False
        offline_since = None if online else at
        self._bridges[device_id] = replace(
            old,
            online=online,
            offline_since=offline_since,
            seen_alive=old.seen_alive or online,
        )
        return True

    def connected(self) -> None:
        self._connected = True
        self._disconnected_since = None

    def disconnected(self, at: float) -> None:
        if self._connected:
            self._disconnected_since = at
        self._connected = False

    def remote_shutdown(self, at: float, reason: str | None) -> bool:
        """Record an authenticated request; a pending one keeps its (earlier) time."""
        if self._remote_at is not None:
            return False
        self._remote_at = at
        self._remote_reason = reason
        return True

    def remote_cancel(self) -> bool:
        pending = self._remote_at is not None
        self._remote_at = None
        self._remote_reason = None
        return pending

    # -- snapshot -------------------------------------------------------------------------
    def view(self) -> View:
        return View(
            bridges=tuple(self._bridges[d] for d in self._order),
            started_at=self._started_at,
            connected=self._connected,
            disconnected_since=self._disconnected_since,
            remote_requested_at=self._remote_at,
            remote_reason=self._remote_reason,
        )
