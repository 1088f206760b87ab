"""What the shutdown client knows: frozen snapshots for the policy, and the tracker behind them.

All times here are on the client's *monotonic* clock (seconds).  The wall clock of
either machine never enters: an announced state's start is estimated as
``receipt time - elapsed_s`` (the bridge's own monotonic measure of how long the
state had lasted when it published), and the earliest estimate for one
announcement wins, because every delay in transit only makes an estimate later.

Liveness: a retained message (delivered because we subscribed) and ``status``
``online`` only *describe the past* — a broker restores both after its own restart,
whether or not the bridge is running.  Only a message the bridge sent while we were
subscribed (not retained) is *live* evidence.  An outage counts for the policy only
once its announcement has been received live (``live_seq == seq``), and its start
is then estimated from live messages only.
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
    """Whether this bridge has sent us a live (not retained) ``mains`` message since this
    client started.  ``status`` ``online`` is not enough: a broker restores it from its
    own memory after a restart."""
    live_seq: int | None = None
    """The announcement (``seq``) that was received live; an outage counts only when this
    equals ``seq`` — a retained report of an outage is history, not a fact to act on."""
    confirming_since: float | None = None
    """When the bridge said it had (re)started and is confirming its input (``mains``
    ``unknown``); ``None`` otherwise.  The last confirmed state is kept meanwhile."""
    # -- a UPS behind the bridge (issue 18): unknown (``None``) for a bridge without one
    battery_low_since: float | None = None
    """When its UPS began reporting low battery (``LB``); ``None`` while not low."""
    runtime_s: float | None = None
    """The UPS's last reported remaining runtime (``battery.runtime``), seconds."""
    runtime_at: float | None = None
    """When that runtime was received."""

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
    boot: str = ""
    """The bridge run that sent it."""


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
        """Merge a mains fact; returns ``"new"``, ``"refresh"`` or ``"confirming"``."""
        old = self._bridges[fact.device_id]
        seen_alive = old.seen_alive or fact.live
        if fact.state is MainsState.UNKNOWN:
            # A (re)started bridge confirming its input: the last confirmed state stays,
            # and the bridge counts as lost until it confirms one.
            since = old.confirming_since if old.confirming_since is not None else fact.received
            self._bridges[fact.device_id] = replace(
                old, confirming_since=since, last_heard=fact.received, seen_alive=seen_alive
            )
            return "confirming"
        estimate = fact.received - fact.elapsed_s
        same = old.seq == fact.seq and old.mains is fact.state
        # An earlier start only from live evidence of the same announcement, or of an outage
        # that was live and goes on across a restart of the bridge (as "lost in an outage").
        was_live_off = (
            old.mains is MainsState.OFF
            and old.live_seq is not None
            and old.live_seq == old.seq
            and old.state_start is not None
        )
        if (
            fact.live
            and old.state_start is not None
            and (
                (same and old.live_seq == fact.seq)
                or (not same and fact.state is MainsState.OFF and was_live_off)
            )
        ):
            start = min(old.state_start, estimate)
        elif same and not fact.live and old.state_start is not None:
            start = old.state_start
        else:
            start = estimate
        live_seq = fact.seq if fact.live else (old.live_seq if same else None)
        self._bridges[fact.device_id] = replace(
            old,
            mains=fact.state,
            seq=fact.seq,
            state_start=start,
            live_seq=live_seq,
            confirming_since=None,
            last_heard=fact.received,
            seen_alive=seen_alive,
        )
        return "refresh" if same else "new"

    def battery(self, device_id: str, *, low: bool, runtime_s: float | None, at: float) -> None:
        """Merge a UPS report of the bridge: low battery and the remaining runtime."""
        old = self._bridges[device_id]
        since = (
            (old.battery_low_since if old.battery_low_since is not None else at) if low else None
        )
        self._bridges[device_id] = replace(
            old,
            battery_low_since=since,
            runtime_s=runtime_s,
            runtime_at=at if runtime_s is not None else None,
        )

    def status(self, device_id: str, online: bool, at: float) -> bool:
        """Merge a ``status`` message; returns whether it changed anything."""
        old = self._bridges[device_id]
        if old.online is online:
            return False
        offline_since = None if online else at
        self._bridges[device_id] = replace(old, online=online, offline_since=offline_since)
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
