"""What :meth:`SqlStore.write <bridge.archive.store.base.SqlStore.write>` commits in one
transaction: a :class:`Batch` of samples, events and the newest facts of each device, with
the :class:`Span` of each message of samples (computed once by the writer).  No SQL.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Final

from bridge.archive.gaps import Gap
from bridge.archive.records import SampleRow
from bridge.mqtt.contract import DeploymentPayload, EventPayload, MainsPayload

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


def day_start(ms: int) -> int:
    return ms - ms % DAY_MS
