"""HealthReport: the retained health topic every interval, sooner after a link change."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from bridge.clock import ManualClock
from bridge.config.bridge import HealthConfig
from bridge.health import DynamicHealth, HealthCommands, HealthMonitor, HealthPaths, HealthReport

PI4 = Path(__file__).parents[1] / "fixtures" / "health" / "pi4"


class FakePublisher:
    def __init__(self) -> None:
        self.topics = SimpleNamespace(health="h")
        self.sent: list[dict[str, object]] = []

    def retain(self, topic: str, producer: Callable[[], bytes], qos: int) -> None:
        assert topic == "h"
        self.sent.append(json.loads(producer()))


def test_reports_every_interval_and_soon_after_a_change(tmp_path: Path) -> None:
    clock = ManualClock()
    monitor = HealthMonitor(
        HealthConfig(interval=60.0),
        tmp_path,
        paths=HealthPaths.under(PI4),
        commands=HealthCommands(vcgencmd=None, timedatectl=None, adjtimex=False),
        clock=clock,
    )
    publisher = FakePublisher()
    report = HealthReport(
        monitor,
        publisher,  # type: ignore[arg-type]
        lambda: DynamicHealth(broker_connected=True, flap_count=2),
        device_id="pi",
    )
    start = clock.monotonic()
    assert report.tick(start) == start + 60.0
    assert len(publisher.sent) == 1
    assert (publisher.sent[0]["broker_connected"], publisher.sent[0]["flap_count"]) == (True, 2)
    clock.advance(10.0)
    assert report.tick(clock.monotonic()) == start + 60.0  # not due yet
    report.soon()
    assert report.tick(clock.monotonic()) == clock.monotonic() + 0.5
    clock.advance(0.5)
    report.tick(clock.monotonic())
    assert len(publisher.sent) == 2
