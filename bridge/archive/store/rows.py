"""What an archive store's queries return to the management view and the CLI.  No SQL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
