"""The pure half of mains sensing: confirmation windows on caller-supplied times.

:class:`MainsDebouncer` is fed raw levels with their times and says when a change
is *confirmed* (the level stayed put for ``confirm_off`` / ``confirm_on``) or was a
*blip* (it came back first).  No threads, no clock, no I/O: the sensor
(:mod:`bridge.mains.sensor`) feeds it and the benchmarks and tests drive it directly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bridge.model import MainsState


@dataclass(frozen=True, slots=True)
class Edge:
    """A raw change of one input, before any confirmation."""

    state: MainsState
    monotonic: float
    utc: datetime
    source: str


@dataclass(frozen=True, slots=True)
class Blip:
    """A change that did not last its confirmation window: counted, never announced."""

    state: MainsState
    """The state the input went to briefly (``off`` for a short power cut)."""
    began: datetime
    began_monotonic: float
    duration_s: float
    source: str


@dataclass(frozen=True, slots=True)
class Announcement:
    """A confirmed change (becomes a :class:`~bridge.model.MainsEvent` once numbered)."""

    state: MainsState
    began: datetime
    began_monotonic: float
    source: str


class MainsDebouncer:
    """Confirmation windows as a pure state machine on caller-supplied times.

    ``feed(edge)`` reports a raw level; ``poll(now)`` announces a pending change
    whose window has passed.  A change that reverts before its window ends is a
    blip: ``flap_count`` grows by one.  Before the first announcement (state
    ``unknown``) the level may change freely without counting flaps.
    """

    def __init__(
        self,
        confirm_off: float,
        confirm_on: float,
        announced: MainsState = MainsState.UNKNOWN,
    ) -> None:
        if confirm_off < 0 or confirm_on < 0:
            raise ValueError("confirmation windows cannot be negative")
        self.confirm_off = confirm_off
        self.confirm_on = confirm_on
        self.announced = announced
        self.raw = MainsState.UNKNOWN
        self.pending: Edge | None = None
        self.flap_count = 0
        self._last_t: float | None = None

    def window(self, state: MainsState) -> float:
        return self.confirm_off if state is MainsState.OFF else self.confirm_on

    @property
    def deadline(self) -> float | None:
        """Monotonic time at which the pending change will be confirmed, if any."""
        if self.pending is None:
            return None
        return self.pending.monotonic + self.window(self.pending.state)

    def poll(self, now: float) -> Announcement | None:
        """Announce the pending change if it has lasted its whole window by ``now``."""
        deadline = self.deadline
        if self.pending is None or deadline is None or now < deadline:
            return None
        edge = self.pending
        self.pending = None
        self.announced = edge.state
        return Announcement(edge.state, edge.utc, edge.monotonic, edge.source)

    def feed(self, edge: Edge) -> list[Announcement | Blip]:
        """Take a raw level; return what it settles (an announcement due first, a blip)."""
        if edge.state not in (MainsState.ON, MainsState.OFF):
            raise ValueError(f"raw level must be on or off, not {edge.state!r}")
        # Keep time ordered: an edge reported late (meter silence) never precedes the last one.
        if self._last_t is not None and edge.monotonic < self._last_t:
            shift = self._last_t - edge.monotonic
            edge = replace(edge, monotonic=self._last_t, utc=edge.utc + timedelta(seconds=shift))
        out: list[Announcement | Blip] = []
        due = self.poll(edge.monotonic)
        if due is not None:
            out.append(due)
        if edge.state is self.raw:
            return out
        self.raw = edge.state
        self._last_t = edge.monotonic
        if edge.state is self.announced:
            if self.pending is not None:
                first = self.pending
                self.pending = None
                self.flap_count += 1
                out.append(
                    Blip(
                        state=first.state,
                        began=first.utc,
                        began_monotonic=first.monotonic,
                        duration_s=edge.monotonic - first.monotonic,
                        source=first.source,
                    )
                )
        elif self.pending is None or self.pending.state is not edge.state:
            self.pending = edge
        return out
