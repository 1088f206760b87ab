"""The rows an archive store takes and gives: no SQL, no database.

A :class:`Batch` is what :class:`~bridge.archive.store.base.SqlStore.write` commits in
one transaction (with the :class:`Span` of each message of samples, computed once by the
writer); :class:`FleetRow`, :class:`Point`, :class:`OutageRow`, :class:`DeploymentRow` and
:class:`GapRow` are what its queries return to the management view.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Final

from bridge.archive.gaps import Gap
from bridge.archive.records import SampleRow
from bridge.mqtt.contract import DeploymentPayload, EventPayload, MainsPayload

__all__ = [
    "DAY_MS",
    "Batch",
    "DeploymentRow",
    "DeviceUpdate",
    "FleetRow",
    "GapRow",
    "OutageRow",
    "Point",
    "Span",
    "day_start",
    "span_of",
    "spans_of",
]

DAY_MS: Final = 86_400_000
_TS = itemgetter(2)


@dataclass(slots=True)
class DeviceUpdate:
    """The newest facts about one device in a batch (``None``: unchanged)."""

    mains: MainsPayload | None = None
    health: dict[str, Any] | None = None
    health_ms: int | None = None
    deployment: DeploymentPayload | None = None
    online: bool | None = None
    high: int | None = None
    gaps: list[Gap] | None = None
    """The device's open gaps, when they changed (rewritten as a whole)."""
    filled: int = 0


@dataclass(slots=True)
class Span:
    """What a run of one device's samples adds up to: per-day counts and the newest."""

    device: str
    days: dict[int, int]
    """Samples per UTC day (its start, epoch ms)."""
    newest_ts: int
    newest_seq: int
    oldest_ts: int


def span_of(device: str, rows: list[SampleRow]) -> Span:
    """The :class:`Span` of one device's rows (non-empty); one C-level pass when they fall
    on one day, as nearly every message's do."""
    oldest = min(rows, key=_TS)[2]
    top = max(rows, key=_TS)
    first_day, last_day = day_start(oldest), day_start(top[2])
    if first_day == last_day:
        days = {first_day: len(rows)}
    else:
        days = defaultdict(int)
        for row in rows:
            days[day_start(row[2])] += 1
    return Span(device, dict(days), top[2], top[1], oldest)


def spans_of(rows: list[SampleRow]) -> list[Span]:
    """Spans of rows of any devices (after a batch met rows already stored)."""
    by_device: dict[str, list[SampleRow]] = defaultdict(list)
    for row in rows:
        by_device[row[0]].append(row)
    return [span_of(device, part) for device, part in by_device.items()]


@dataclass(slots=True)
class Batch:
    """Everything written in one transaction."""

    received_ms: int
    samples: list[SampleRow] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    """One per message of samples (:func:`span_of`), for when every row is new."""
    events: list[EventPayload] = field(default_factory=list)
    devices: dict[str, DeviceUpdate] = field(default_factory=dict)
    lost: list[Gap] = field(default_factory=list)

    def device(self, name: str) -> DeviceUpdate:
        update = self.devices.get(name)
        if update is None:
            update = self.devices[name] = DeviceUpdate()
        return update


@dataclass(frozen=True, slots=True)
class FleetRow:
    """One line of the fleet table."""

    device: str
    deployment: str | None
    latitude: float | None
    longitude: float | None
    mains: str | None
    online: bool | None
    last_seen_ms: int | None
    newest_sample_ms: int | None
    samples_today: int
    open_gaps: int
    missing: int
    lost: int
    outages: int
    last_outage_ms: int | None
    health: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Point:
    """One bucket of a downsampled series: its start and each quantity's mean, min and max."""

    ts_ms: int
    values: dict[str, tuple[float, float, float] | None]


@dataclass(frozen=True, slots=True)
class OutageRow:
    started_ms: int
    ended_ms: int | None
    duration_s: float | None


@dataclass(frozen=True, slots=True)
class DeploymentRow:
    started_ms: int
    ended_ms: int | None
    name: str
    latitude: float
    longitude: float
    software_version: str


@dataclass(frozen=True, slots=True)
class GapRow:
    device: str
    first: int
    last: int
    opened_ms: int
    status: str
    requests: int


def day_start(ms: int) -> int:
    return ms - ms % DAY_MS
