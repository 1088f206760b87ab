"""A mains sensor on a manual clock and gpiozero's mock pins, its events in a list."""

from __future__ import annotations

from pathlib import Path

from gpiozero.pins.mock import MockFactory

from bridge.clock import ManualClock
from bridge.config.bridge import MainsConfig
from bridge.db import connect, db_path
from bridge.mains import MainsSensor
from bridge.mains.store import OutageStore
from bridge.model import MainsEvent


def sensor_on(
    tmp_path: Path,
    clock: ManualClock,
    events: list[MainsEvent],
    factory: MockFactory,
    config: MainsConfig,
    *,
    with_ups: bool = False,
) -> MainsSensor:
    store = OutageStore(connect(db_path(tmp_path)), boot_id="b", clock=clock)
    return MainsSensor(
        config,
        store,
        on_event=events.append,
        clock=clock,
        pin_factory=factory,
        with_ups=with_ups,
    )
