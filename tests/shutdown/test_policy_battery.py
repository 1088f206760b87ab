"""Rule 8 of ``decide``: a UPS behind a bridge brings the deadline forward (issue 18).

Low battery (``on_low_battery``) or a remaining runtime counted down below ``min_runtime``,
whichever comes first with ``delay``; only for a bridge in an outage, never on mains.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from bridge.config import parse_client_config
from bridge.model import MainsState
from bridge.shutdown.policy import Cause, Phase, PolicySettings, decide
from bridge.shutdown.view import BridgeView, Tracker, View

T0 = 1000.0
S = PolicySettings(delay=600.0, min_runtime=120.0)


def outage(start: float = T0, **kw: object) -> BridgeView:
    base = BridgeView("a", MainsState.OFF, 2, start, T0 + 1, True, None, True, live_seq=2)
    return replace(base, **kw)  # type: ignore[arg-type]


def view(*bridges: BridgeView) -> View:
    return View(bridges=bridges, started_at=T0 - 100, connected=True)


def test_without_a_ups_the_delay_alone_decides() -> None:
    decision = decide(view(outage()), T0 + 10, S)
    assert decision.deadline == T0 + 600
    assert decision.cause is Cause.OUTAGE


def test_runtime_counted_down_below_min_runtime_comes_before_the_delay() -> None:
    # 300 s of runtime reported at T0 + 20: below 120 s at T0 + 20 + 180.
    b = outage(runtime_s=300.0, runtime_at=T0 + 20)
    counting = decide(view(b), T0 + 30, S)
    assert counting.phase is Phase.COUNTING
    assert counting.deadline == pytest.approx(T0 + 200)
    assert counting.cause is Cause.LOW_BATTERY
    assert counting.next_check is not None
    assert counting.next_check <= T0 + 200
    assert decide(view(b), T0 + 200, S).phase is Phase.SHUTDOWN


def test_a_report_already_below_min_runtime_shuts_down_now() -> None:
    b = outage(runtime_s=90.0, runtime_at=T0 + 5)
    decision = decide(view(b), T0 + 5, S)
    assert decision.phase is Phase.SHUTDOWN
    assert decision.cause is Cause.LOW_BATTERY


def test_low_battery_shuts_down_at_once_unless_switched_off() -> None:
    b = outage(battery_low_since=T0 + 40)
    assert decide(view(b), T0 + 40, S).phase is Phase.SHUTDOWN
    off = replace(S, on_low_battery=False)
    assert decide(view(b), T0 + 40, off).deadline == T0 + 600


def test_the_delay_still_wins_when_it_comes_first() -> None:
    b = outage(runtime_s=5000.0, runtime_at=T0)
    decision = decide(view(b), T0 + 10, S)
    assert decision.deadline == T0 + 600
    assert decision.cause is Cause.OUTAGE


def test_min_runtime_zero_is_off() -> None:
    b = outage(runtime_s=10.0, runtime_at=T0)
    assert decide(view(b), T0 + 1, replace(S, min_runtime=0.0)).deadline == T0 + 600


def test_a_ups_on_mains_reporting_low_battery_never_shuts_down() -> None:
    on = BridgeView(
        "a",
        MainsState.ON,
        1,
        T0 - 50,
        T0,
        True,
        None,
        True,
        battery_low_since=T0,
        runtime_s=10.0,
        runtime_at=T0,
    )
    assert decide(view(on), T0 + 5, S).phase is Phase.IDLE


def test_tracker_keeps_the_first_low_battery_time() -> None:
    tracker = Tracker(["a"], T0)
    tracker.battery("a", low=True, runtime_s=200.0, at=T0 + 1)
    tracker.battery("a", low=True, runtime_s=150.0, at=T0 + 6)
    b = tracker.view().bridge("a")
    assert b.battery_low_since == T0 + 1
    assert (b.runtime_s, b.runtime_at) == (150.0, T0 + 6)
    tracker.battery("a", low=False, runtime_s=None, at=T0 + 9)
    b = tracker.view().bridge("a")
    assert (b.battery_low_since, b.runtime_s, b.runtime_at) == (None, None, None)


def test_client_yaml_settings_reach_the_policy() -> None:
    config = parse_client_config(
        "bridges: [a]\nshutdown:\n  min_runtime: 5m\n  on_low_battery: false\n"
    )
    settings = PolicySettings.from_config(config.shutdown)
    assert settings.min_runtime == 300.0
    assert settings.on_low_battery is False
    assert PolicySettings().on_low_battery is True
    assert PolicySettings().min_runtime == 0.0
