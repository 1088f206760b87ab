"""The energy guard: a published energy total never decreases and never jumps implausibly.

Meters get their energy counters wrong in known ways: the PZEM-004T's counter
may jump when its voltage falls to zero, a counter is reset from a button or a
command, a corrupted reply slips through a weak checksum.  Home Assistant's
``total_increasing`` statistics take every decrease for a meter reset and every
jump for consumption, so one bad value spoils a year of statistics.

:class:`EnergyGuard` checks each new counter value against the previous accepted
one.  An increase is *plausible* if it is no more than the power seen on either
side of the interval (times a margin, at most the meter's maximum) integrated
over the elapsed time, plus two counter steps of slack.  An implausible value is
not published (``None``) and counted.  If the counter then keeps moving
plausibly from its new level for ``confirm`` readings, the change is real (a
reset, a persistent jump): the guard *rebases* — it adds an offset so that the
published total continues from where it was.  The published total is therefore
the meter's counter plus an offset that changes only at such confirmed
discontinuities; energy that the meter counted inside the discontinuity is not
published.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class _Point:
    raw_wh: float
    monotonic: float
    power_w: float | None


@dataclass(kw_only=True, eq=False)
class EnergyGuard:
    """Plausibility filter for one channel's energy counter (see the module docstring)."""

    max_power_w: float
    resolution_wh: float
    confirm: int = 3
    margin: float = 2.0
    floor_w: float = 10.0
    offset_wh: float = field(default=0.0, init=False)
    """Added to the meter's counter to get the published total."""
    rejected: int = field(default=0, init=False)
    """Values not published because they decreased or jumped."""
    rebased: int = field(default=0, init=False)
    """Confirmed discontinuities absorbed into :attr:`offset_wh`."""
    published_wh: float | None = field(default=None, init=False)
    """The last published total."""
    outcome: str = field(default="none", init=False)
    """What the last :meth:`check` did: ``accepted``, ``rejected``, ``rebased`` or ``none``."""
    _last: _Point | None = field(default=None, init=False, repr=False)
    _pending: list[_Point] = field(default_factory=list, init=False, repr=False)

    def allowed_increase_wh(self, before: _Point, after: _Point) -> float:
        """The largest plausible increase of the counter between two readings."""
        elapsed = max(0.0, after.monotonic - before.monotonic)
        seen = [abs(p) for p in (before.power_w, after.power_w) if p is not None]
        if seen:
            rate = min(self.max_power_w, max(seen) * self.margin + self.floor_w)
        else:
            rate = self.max_power_w
        return rate * elapsed / 3600.0 + 2 * self.resolution_wh

    def _plausible(self, before: _Point, after: _Point) -> bool:
        delta = after.raw_wh - before.raw_wh
        return 0 <= delta <= self.allowed_increase_wh(before, after)

    def check(self, raw_wh: float | None, monotonic: float, power_w: float | None) -> float | None:
        """The total to publish for a new counter value, or ``None`` not to publish energy."""
        if raw_wh is None:
            self.outcome = "none"
            return None
        point = _Point(raw_wh, monotonic, power_w)
        last = self._last
        if last is None or self._plausible(last, point):
            self.outcome = "accepted"
            return self._accept(point)
        if self._pending and self._plausible(self._pending[-1], point):
            self._pending.append(point)
        else:
            self._pending = [point]
        if len(self._pending) < self.confirm:
            self.rejected += 1
            self.outcome = "rejected"
            return None
        # The counter has settled on a new level: continue the published total from there.
        published = self.published_wh if self.published_wh is not None else 0.0
        self.offset_wh = published - self._pending[0].raw_wh
        self.rebased += 1
        self.outcome = "rebased"
        return self._accept(self._pending[-1])

    def _accept(self, point: _Point) -> float:
        self._last = point
        self._pending = []
        total = point.raw_wh + self.offset_wh
        if self.published_wh is not None and total < self.published_wh:
            total = self.published_wh  # float rounding never makes the total go back
        self.published_wh = total
        return total
