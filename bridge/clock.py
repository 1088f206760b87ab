"""Clocks, injected wherever time matters.

Decisions run on the *monotonic* clock, which never jumps; the wall clock is only
used to label facts for humans and archives.  The bridge runs on :class:`SystemClock`,
the shutdown client on :class:`SuspendAwareClock`; tests pass a :class:`ManualClock`.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol


class Clock(Protocol):
    """What the code needs to know about time."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards nor jumps with NTP."""
        ...

    def utcnow(self) -> datetime:
        """The wall clock, timezone-aware UTC (labels only, never decisions)."""
        ...


class SystemClock:
    """The real clocks of this machine."""

    def monotonic(self) -> float:
        return time.monotonic()

    def utcnow(self) -> datetime:
        return datetime.now(UTC)


class SuspendAwareClock:
    """Monotonic time that keeps counting while the machine is suspended, where the OS offers it.

    Linux: ``CLOCK_BOOTTIME``; macOS: ``CLOCK_MONOTONIC`` (which counts during sleep
    there, unlike Python's ``time.monotonic``); elsewhere ``time.monotonic``.
    """

    def __init__(self) -> None:
        clock_id = getattr(time, "CLOCK_BOOTTIME", None)
        if clock_id is None and hasattr(time, "CLOCK_MONOTONIC") and sys.platform == "darwin":
            clock_id = time.CLOCK_MONOTONIC
        self._clock_id = clock_id

    def monotonic(self) -> float:
        if self._clock_id is not None:
            return time.clock_gettime(self._clock_id)
        return time.monotonic()

    def utcnow(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock the test moves by hand; the wall clock can be made to jump."""

    def __init__(self, monotonic: float = 1000.0, wall: datetime | None = None) -> None:
        self._mono = monotonic
        self._wall = wall or datetime(2026, 1, 1, tzinfo=UTC)

    def monotonic(self) -> float:
        return self._mono

    def utcnow(self) -> datetime:
        return self._wall

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass on both clocks."""
        self._mono += seconds
        self._wall += timedelta(seconds=seconds)

    def jump_wall(self, seconds: float) -> None:
        """Move only the wall clock (an NTP step, a user changing the time)."""
        self._wall += timedelta(seconds=seconds)


def isoformat_utc(value: datetime) -> str:
    """``2026-01-01T12:00:00.123Z``: the one timestamp format on the wire."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_utc(text: str) -> datetime:
    """Inverse of :func:`isoformat_utc`; accepts any ISO-8601 string with an offset or ``Z``."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"timestamp without a timezone: {text!r}")
    return value.astimezone(UTC)


TIME_ERROR: Final = 5
"""``adjtimex(2)`` clock state: the kernel's clock is not synchronised."""


def kernel_clock_synchronised() -> bool | None:
    """Whether the kernel's clock is synchronised (``adjtimex(2)`` read-only, ``modes = 0``;
    what ``timedatectl`` shows as *System clock synchronized*).

    ``None`` where the kernel cannot be asked (not Linux, no ``adjtimex``).  The one probe of
    this fact: the health snapshot and the deployment checks both call it.
    """
    import ctypes.util  # here: only the health snapshot and the checks ask

    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        adjtimex = libc.adjtimex
    except (OSError, AttributeError):
        return None
    # struct timex is at most ~208 bytes on 64-bit Linux; ``modes`` (first field) stays 0.
    buffer = ctypes.create_string_buffer(512)
    state = int(adjtimex(buffer))
    if state < 0:
        return None
    return state != TIME_ERROR
