"""Missing sequence numbers per device: pure bookkeeping, time passed in.

A bridge numbers its samples and events with one persistent, strictly increasing
``seq``.  :class:`GapTracker` keeps, per device, the highest ``seq`` seen and the
ranges below it that have not arrived.  A range may still be on its way (a bridge
replays its spool oldest first while it also sends live samples), so a gap is
only *asked for again* once it has stayed open for ``resend_after``, then every
``resend_every``; once open longer than ``lost_after`` (the bridges' retention of
acknowledged samples) it can no longer be filled and is *lost*: kept as a record,
never silently forgotten.  A device's history begins with the first ``seq`` the
archive received from it: older numbers that arrive later are stored, but what
lies before them is not a gap.

Times are epoch milliseconds of the archive's wall clock (gaps outlive restarts,
so they are stored with the time they were opened).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(slots=True)
class Gap:
    """``first``..``last`` (inclusive) not received from ``device``."""

    device: str
    first: int
    last: int
    opened_ms: int
    requests: int = 0
    last_request_ms: int | None = None

    @property
    def size(self) -> int:
        return self.last - self.first + 1


@dataclass(slots=True)
class _Device:
    high: int
    gaps: list[Gap] = field(default_factory=list)
    """Open gaps, sorted by ``first``, disjoint, all below ``high``."""
    filled: int = 0
    """Sequence numbers that arrived inside a gap (filled late)."""


@dataclass(frozen=True, slots=True)
class GapPolicy:
    resend_after_ms: int = 30_000
    resend_every_ms: int = 300_000
    lost_after_ms: int = 7 * 86_400_000


class GapTracker:
    """Per-device highest ``seq`` and open gaps; reports which devices changed."""

    def __init__(self, policy: GapPolicy | None = None) -> None:
        self.policy = policy or GapPolicy()
        self._devices: dict[str, _Device] = {}

    # -- state ------------------------------------------------------------------------
    def restore(self, device: str, high: int, gaps: Iterable[Gap]) -> None:
        """Start from what the database holds (after a restart)."""
        self._devices[device] = _Device(high, sorted(gaps, key=lambda g: g.first))

    def high(self, device: str) -> int | None:
        state = self._devices.get(device)
        return None if state is None else state.high

    def open_gaps(self, device: str | None = None) -> list[Gap]:
        if device is not None:
            state = self._devices.get(device)
            return list(state.gaps) if state else []
        return [g for s in self._devices.values() for g in s.gaps]

    def missing(self, device: str) -> int:
        return sum(g.size for g in self.open_gaps(device))

    # -- arrivals -----------------------------------------------------------------------
    def observe(self, device: str, seqs: Iterable[int], now_ms: int) -> bool:
        """Take arrived sequence numbers into account; ``True`` when the device's gaps changed."""
        ordered = sorted(seqs)
        if not ordered:
            return False
        state = self._devices.get(device)
        if state is None:
            state = self._devices[device] = _Device(ordered[0] - 1)
        if ordered[0] == state.high + 1 and ordered[-1] - ordered[0] == len(ordered) - 1:
            state.high = ordered[-1]  # the usual case: the next run, no gap
            return False
        changed = False
        for seq in ordered:
            if seq > state.high:
                if seq > state.high + 1:
                    state.gaps.append(Gap(device, state.high + 1, seq - 1, now_ms))
                    changed = True
                state.high = seq
            elif state.gaps and self._fill(state, seq):
                changed = True
        return changed

    def announce(self, device: str, seq: int, now_ms: int) -> bool:
        """The bridge says it has numbered up to ``seq`` (its retained ``state``): what is
        above the highest ``seq`` received is a gap until it arrives.  Ignored for a device
        not heard of yet (its history starts with its first sample)."""
        state = self._devices.get(device)
        if state is None or seq <= state.high:
            return False
        state.gaps.append(Gap(device, state.high + 1, seq, now_ms))
        state.high = seq
        return True

    @staticmethod
    def _fill(state: _Device, seq: int) -> bool:
        firsts = [g.first for g in state.gaps]
        index = bisect.bisect_right(firsts, seq) - 1
        if index < 0:
            return False
        gap = state.gaps[index]
        if seq > gap.last:
            return False
        state.filled += 1
        if gap.first == gap.last:
            del state.gaps[index]
        elif seq == gap.first:
            gap.first += 1
        elif seq == gap.last:
            gap.last -= 1
        else:
            tail = Gap(gap.device, seq + 1, gap.last, gap.opened_ms, gap.requests,
                       gap.last_request_ms)  # fmt: skip
            gap.last = seq - 1
            state.gaps.insert(index + 1, tail)
        return True

    # -- time passing -----------------------------------------------------------------
    def due(self, now_ms: int) -> tuple[list[Gap], list[Gap]]:
        """``(to_request, lost)``: gaps to ask for again now, and gaps given up (removed)."""
        policy = self.policy
        request: list[Gap] = []
        lost: list[Gap] = []
        for state in self._devices.values():
            keep: list[Gap] = []
            for gap in state.gaps:
                age = now_ms - gap.opened_ms
                if age >= policy.lost_after_ms:
                    lost.append(gap)
                    continue
                keep.append(gap)
                last = gap.last_request_ms
                if age >= policy.resend_after_ms and (
                    last is None or now_ms - last >= policy.resend_every_ms
                ):
                    gap.requests += 1
                    gap.last_request_ms = now_ms
                    request.append(gap)
            state.gaps = keep
        return request, lost
