"""The demo's scenario, what it expects, and what was actually seen (pure, no I/O).

The runner plays the phases; every change the watcher sees over MQTT is recorded
against the phase in which it arrived; :func:`checks` compares the counts with
what the phase should produce.  Nothing in the summary is assumed: a bridge that
announced a blip, or a client that did not shut down, shows up as a mismatch and
the demo exits 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from bridge.mqtt.contract import CLIENT_STATES
from bridge.tui.fleet import Change

SHUTDOWN_PHASES: Final = frozenset(s for s in CLIENT_STATES if s not in ("idle", "counting"))
"""Client ``state`` values that mean "the shutdown action ran" (here: in dry run)."""


@dataclass(frozen=True, slots=True)
class Timings:
    """Durations of the scenario, in seconds.  The defaults take about a minute."""

    delay: float = 20.0
    """The shutdown client's delay (``shutdown.delay``)."""
    normal: float = 10.0
    """Normal load before anything happens."""
    blips: int = 3
    blip: float = 0.3
    """How long each blip cuts the mains: shorter than ``confirm_off``."""
    blip_gap: float = 2.0
    confirm_off: float = 1.0
    """The bridge's ``mains.confirm_off``: the pin must stay off this long."""
    confirm_on: float = 1.0
    """The bridge's ``mains.confirm_on``."""
    hold: float = 2.0
    """How long the outage goes on after the client reported its shutdown."""
    margin: float = 15.0
    """Extra time allowed for anything to be reported on a slow machine."""

    @property
    def settle(self) -> float:
        """Time after the last blip during which a late announcement would still show."""
        return self.confirm_off + self.confirm_on + 1.0

    def estimate(self) -> float:
        """Expected length of the whole scenario (without start-up)."""
        blips = self.blips * (self.blip + self.blip_gap) + self.settle
        return self.normal + blips + self.delay + self.hold + self.confirm_on + 1.0


@dataclass
class PhaseRecord:
    """One phase of the scenario and what was seen while it ran."""

    key: str
    title: str
    started: float
    ended: float | None = None
    changes: list[Change] = field(default_factory=list)
    readings: int = 0

    def count(self, kind: str, *values: str) -> int:
        return sum(
            1
            for c in self.changes
            if c.kind == kind and not c.retained and (not values or c.value in values)
        )

    @property
    def outages_announced(self) -> int:
        return self.count("mains", "off")

    @property
    def restores_announced(self) -> int:
        return self.count("mains", "on")

    @property
    def countdowns(self) -> int:
        return self.count("client_state", "counting")

    @property
    def shutdowns(self) -> int:
        return self.count("client_state", *SHUTDOWN_PHASES)

    def first(self, kind: str, *values: str) -> Change | None:
        for c in self.changes:
            if c.kind == kind and not c.retained and c.value in values:
                return c
        return None

    @property
    def dry_run_shutdowns(self) -> int:
        return sum(
            1
            for c in self.changes
            if c.kind == "client_state"
            and not c.retained
            and c.value in SHUTDOWN_PHASES
            and c.detail == "dry run"
        )


class Recorder:
    """Attributes every observed change to the phase running when it arrived."""

    def __init__(self, start: float) -> None:
        self.startup = PhaseRecord("startup", "start-up", start)
        self.phases: list[PhaseRecord] = []

    @property
    def current(self) -> PhaseRecord:
        return self.phases[-1] if self.phases else self.startup

    def begin(self, key: str, title: str, now: float, readings: int) -> PhaseRecord:
        self.end(now, readings)
        record = PhaseRecord(key, title, now)
        record.readings = -readings  # becomes the difference at end()
        self.phases.append(record)
        return record

    def end(self, now: float, readings: int) -> None:
        if self.phases and self.phases[-1].ended is None:
            self.phases[-1].ended = now
            self.phases[-1].readings += readings

    def observe(self, change: Change) -> None:
        self.current.changes.append(change)

    def phase(self, key: str) -> PhaseRecord | None:
        for p in self.phases:
            if p.key == key:
                return p
        return None

    @property
    def all_records(self) -> list[PhaseRecord]:
        return [self.startup, *self.phases]


@dataclass(frozen=True, slots=True)
class Check:
    phase: str
    text: str
    ok: bool


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def checks(recorder: Recorder, timings: Timings) -> list[Check]:
    """Compare what was seen with what the scenario must produce."""
    out: list[Check] = []
    startup = recorder.startup
    if startup.outages_announced or startup.shutdowns:
        out.append(
            Check(
                "start-up",
                f"{_plural(startup.outages_announced, 'outage')} announced, "
                f"{_plural(startup.shutdowns, 'shutdown')} (expected none)",
                False,
            )
        )
    normal = recorder.phase("normal")
    if normal is not None:
        ok = normal.readings > 0 and normal.outages_announced == 0 and normal.shutdowns == 0
        out.append(
            Check(
                "normal load",
                f"{_plural(normal.readings, 'reading')} received, "
                f"{_plural(normal.outages_announced, 'outage')} announced, "
                f"{_plural(normal.shutdowns, 'shutdown')}",
                ok,
            )
        )
    blips = recorder.phase("blips")
    if blips is not None:
        ok = blips.outages_announced == 0 and blips.shutdowns == 0 and blips.countdowns == 0
        out.append(
            Check(
                _plural(timings.blips, "blip"),
                f"{blips.outages_announced} outages announced (expected 0), "
                f"{blips.shutdowns} shutdowns (expected 0)",
                ok,
            )
        )
    outage = recorder.phase("outage")
    if outage is not None:
        first = outage.first("client_state", *SHUTDOWN_PHASES)
        after = f" after {first.at - outage.started:.1f} s" if first is not None else ""
        dry = outage.dry_run_shutdowns
        kind = "dry-run shutdown" if dry == outage.shutdowns and dry else "shutdown"
        ok = outage.outages_announced == 1 and outage.shutdowns == 1
        out.append(
            Check(
                "long outage",
                f"{_plural(outage.outages_announced, 'outage')} announced (expected 1), "
                f"{_plural(outage.shutdowns, kind)}{after} (expected 1 after "
                f"{timings.delay:.0f} s)",
                ok,
            )
        )
    restore = recorder.phase("restore")
    if restore is not None:
        seen = restore.restores_announced > 0
        ok = seen and restore.shutdowns == 0 and restore.outages_announced == 0
        out.append(
            Check(
                "power restored",
                f"restore seen: {'yes' if seen else 'no'} (expected yes), "
                f"{_plural(restore.shutdowns, 'shutdown')} (expected 0)",
                ok,
            )
        )
    total = sum(p.shutdowns for p in recorder.all_records)
    out.append(Check("in total", f"{_plural(total, 'shutdown')} (expected 1)", total == 1))
    return out


def summary_lines(results: list[Check]) -> list[str]:
    width = max(len(c.phase) for c in results) + 1
    lines = ["demo summary (counted from what was seen over MQTT):"]
    lines += [
        f"  {c.phase + ':':<{width}} {c.text}  {'ok' if c.ok else 'NOT AS EXPECTED'}"
        for c in results
    ]
    if all(c.ok for c in results):
        lines.append("result: everything happened as expected")
    else:
        lines.append("result: something did not happen as expected (see above and the logs)")
    return lines
