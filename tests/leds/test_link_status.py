"""LinkStatus: which link fault shows where, and the status line, on changes only."""

from __future__ import annotations

from bridge.config.bridge import LedsConfig
from bridge.leds import FaultLeds, LinkStatus


class Leds(FaultLeds):
    def __init__(self) -> None:
        super().__init__(LedsConfig(enabled=False))
        self.updates: list[tuple[bool, bool]] = []

    def update(self, broker_ok: bool, meter_ok: bool) -> None:
        self.updates.append((broker_ok, meter_ok))


def test_changes_only_reach_the_leds_the_status_line_and_the_health_report() -> None:
    links = {"broker": False, "meter": True}
    leds, lines, soon = Leds(), [], []
    status = LinkStatus(
        leds,
        broker_ok=lambda: links["broker"],
        meter_ok=lambda: links["meter"],
        status=lines.append,
        on_broker_up=lambda: soon.append(True),
    )
    status.tick()
    status.tick()  # nothing changed: nothing shown again
    links["broker"] = True
    status.tick()
    links["meter"] = False
    status.tick()
    assert leds.updates == [(False, True), (True, True), (True, False)]
    assert lines == [
        "broker unreachable; meter ok",
        "connected; meter ok",
        "connected; meter silent",
    ]
    assert len(soon) == 2  # each change seen while connected


def test_a_bridge_without_meter_shows_the_broker_only() -> None:
    leds, lines = Leds(), []
    status = LinkStatus(leds, broker_ok=lambda: True, meter_ok=None, status=lines.append)
    status.tick()
    assert leds.updates == [(True, True)]
    assert lines == ["connected"]
