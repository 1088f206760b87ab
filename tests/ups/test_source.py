"""The UPS part without upsd: failures are logged once and shown in health; publication rules."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, cast

import pytest

from bridge.broker.runner import free_port
from bridge.clock import ManualClock
from bridge.mqtt.contract import UPS_REFRESH_S, BridgeTopics, UpsOrigin, UpsPayload
from bridge.mqtt.publisher import BridgePublisher
from bridge.ups.reader import UpsTarget
from bridge.ups.report import UpsReport
from bridge.ups.source import UpsPublication, UpsSource


@pytest.mark.realtime
def test_an_unreachable_upsd_is_logged_once_and_shown_never_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[tuple[UpsReport | None, str | None]] = []
    links: list[bool | None] = []
    source = UpsSource(
        UpsTarget("ups", port=free_port(), poll=0.5, timeout=0.5),
        [lambda r, e: seen.append((r, e))],
        on_link=lambda: links.append(source.link_up),
    )
    assert source.link_up is None
    with caplog.at_level(logging.WARNING, logger="bridge.ups"), source:
        deadline = time.monotonic() + 10
        while len(seen) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(seen) >= 3
    assert all(report is None and error for report, error in seen)
    assert source.link_up is False
    assert links == [False]  # one change of link, however many polls failed
    assert len([r for r in caplog.records if "cannot read UPS" in r.message]) == 1


class FakePublisher:
    def __init__(self) -> None:
        self.topics = BridgeTopics("powerbridge", "rack-a")
        self.retained: dict[str, Callable[[], bytes]] = {}
        self.published: list[bytes] = []

    def retain(self, topic: str, producer: Callable[[], bytes], qos: int) -> None:
        assert qos == 1
        self.retained[topic] = producer
        self.published.append(producer())


RUN = "b0075eed00000001"


def test_published_on_change_and_refreshed() -> None:
    clock = ManualClock()
    fake = FakePublisher()
    publication = UpsPublication(cast("BridgePublisher", fake), "rack-a", clock, lambda: (RUN, 4))
    publication.received(None)  # no data: nothing to say
    assert fake.published == []
    publication.received(UpsReport("OL", charge=100.0))
    publication.received(UpsReport("OL", charge=100.0))  # unchanged
    assert len(fake.published) == 1
    clock.advance(UPS_REFRESH_S - 1)
    publication.tick(clock.monotonic())
    assert len(fake.published) == 1
    clock.advance(1)
    next_due: Any = publication.tick(clock.monotonic())
    assert len(fake.published) == 2
    assert next_due == clock.monotonic() + UPS_REFRESH_S
    first, refreshed = (UpsPayload.decode(raw) for raw in fake.published)
    assert refreshed.ts > first.ts
    # Each message is numbered in the run, so clients take it as news without a clock.
    assert (first.origin, refreshed.origin) == (UpsOrigin(RUN, 4, 1), UpsOrigin(RUN, 4, 2))
    publication.received(UpsReport("OB DISCHRG", charge=99.0))
    assert UpsPayload.decode(fake.published[-1]).report.on_battery


def test_a_mains_change_is_followed_by_a_report_that_names_it() -> None:
    clock = ManualClock()
    fake = FakePublisher()
    mark = [(RUN, 4)]
    publication = UpsPublication(cast("BridgePublisher", fake), "rack-a", clock, lambda: mark[0])
    publication.received(UpsReport("OB DISCHRG", charge=99.0))
    clock.advance(1)
    publication.tick(clock.monotonic())
    assert len(fake.published) == 1  # nothing new: not due
    mark[0] = (RUN, 5)  # the mains report showed a new state (the outage)
    due: Any = publication.tick(clock.monotonic())
    assert len(fake.published) == 2  # at once, not at the next refresh
    assert UpsPayload.decode(fake.published[-1]).origin == UpsOrigin(RUN, 5, 2)
    assert due == clock.monotonic() + UPS_REFRESH_S
    publication.tick(clock.monotonic())
    assert len(fake.published) == 2
