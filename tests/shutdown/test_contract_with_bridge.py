"""The client accepts what the bridge's own publisher signs — and nothing it did not sign."""

from __future__ import annotations

from bridge.clock import ManualClock
from bridge.model import MainsEvent, MainsState
from bridge.mqtt.publisher import mains_payload
from bridge.shutdown.intake import Intake, Rejected
from bridge.shutdown.view import MainsFact
from tests.shutdown.payloads import KEY, WALL


def test_signed_mains_from_the_bridge_publisher_is_accepted() -> None:
    bridge_clock = ManualClock(monotonic=50_000.0, wall=WALL)
    event = MainsEvent(MainsState.OFF, WALL, bridge_clock.monotonic() - 0.5, seq=42)
    bridge_clock.advance(12.3456)
    raw = mains_payload(
        "rack-a",
        event,
        clock=bridge_clock,
        outage_count=3,
        last_outage_s=95.25,
        boot="0123456789abcdef",
        n=7,
        key=KEY,
    )
    intake = Intake(["rack-a"], key=KEY)
    fact = intake.mains("rack-a", raw, 7.0, bridge_clock.utcnow())
    assert isinstance(fact, MainsFact)
    assert (fact.state, fact.seq) == (MainsState.OFF, 42)
    assert abs(fact.elapsed_s - 12.8456) < 0.001
    assert (fact.boot, fact.live) == ("0123456789abcdef", True)
    other = Intake(["rack-a"], key=b"some other key of 16+ bytes")
    rejected = other.mains("rack-a", raw, 7.0, bridge_clock.utcnow())
    assert isinstance(rejected, Rejected)
    assert rejected.reason == "bad_signature"
