"""The client's runtime and a bridge's ``ups`` reports, on a manual clock (issue 18)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from bridge.ups.report import UpsOrigin, UpsReport, encode_ups
from tests.shutdown.payloads import BOOT
from tests.shutdown.sim import Sim

UPS_TOPIC = "powerbridge/test-bridge/ups"


_REPORTS = itertools.count(1)


def report(status: str, runtime: float, device: str = "test-bridge", seq: int = 2) -> bytes:
    """A report of this run, numbered after the one before, made under mains state ``seq``
    (2: the outage of :func:`in_outage`)."""
    n = next(_REPORTS)
    ts = datetime(2026, 11, 20, 12, 0, tzinfo=UTC) + timedelta(seconds=n)
    origin = UpsOrigin(BOOT, seq, n)
    return encode_ups(device, ts, UpsReport(status, charge=40.0, runtime_s=runtime), origin)


def in_outage(settings: str) -> Sim:
    sim = Sim(settings)
    sim.connect()
    sim.status(True, retained=True)
    sim.mains("on", 1, elapsed=3600, retained=True)
    sim.advance(5)
    sim.mains("off", 2, elapsed=0.0)
    return sim


def test_runtime_counted_down_to_min_runtime_shuts_down_before_the_delay() -> None:
    sim = in_outage("delay: 600\nmin_runtime: 120")
    reported = sim.now
    sim.deliver(UPS_TOPIC, report("OB DISCHRG", 300.0))
    sim.advance(179)
    assert sim.shutdown_times == []
    sim.advance(2)
    assert sim.shutdown_times == [pytest.approx(reported + 180)]


def test_low_battery_shuts_down_at_once() -> None:
    sim = in_outage("delay: 600")
    sim.advance(10)
    sim.deliver(UPS_TOPIC, report("OB LB", 900.0))
    sim.advance(0.1)
    assert len(sim.shutdown_times) == 1


def test_a_retained_report_is_old_news_and_a_foreign_one_is_rejected() -> None:
    sim = in_outage("delay: 600\nmin_runtime: 120")
    sim.deliver(UPS_TOPIC, report("OB LB", 10.0), retained=True)
    sim.deliver(UPS_TOPIC, report("OB LB", 10.0, device="other"))
    sim.advance(60)
    assert sim.shutdown_times == []
    assert sim.runtime.rejections.counts == {"wrong_device": 1}


def test_a_low_battery_report_from_before_this_outage_does_not_shorten_it() -> None:
    sim = in_outage("delay: 600\nmin_runtime: 120")
    sim.advance(10)
    sim.deliver(UPS_TOPIC, report("OB LB", 10.0, seq=1))  # made under state 1: history
    sim.advance(60)
    assert sim.shutdown_times == []
    sim.deliver(UPS_TOPIC, report("OB LB", 10.0))  # about this outage
    sim.advance(0.1)
    assert len(sim.shutdown_times) == 1
