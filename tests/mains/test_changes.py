"""OutageStore.announce and MainsReport: the outage events come from the outage a change closes."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from bridge.clock import ManualClock
from bridge.db import connect, db_path
from bridge.mains.report import MainsReport
from bridge.mains.store import OutageStore
from bridge.model import MainsEvent, MainsState

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
ON, OFF = MainsState.ON, MainsState.OFF


def event(state: MainsState, seq: int, at: float) -> MainsEvent:
    return MainsEvent(
        state=state,
        began=T0 + timedelta(seconds=at),
        began_monotonic=5000.0 + at,
        seq=seq,
        source="gpio",
    )


def test_announce_returns_the_outage_a_change_opens_and_closes(tmp_path: Path) -> None:
    store = OutageStore(connect(db_path(tmp_path)), boot_id="b1")
    opened = store.announce(event(OFF, store.take_seq(), 0))
    assert opened.outage is not None
    assert opened.outage.seq == opened.event.seq
    assert not opened.continued
    assert opened.outage_since == T0
    assert (opened.outage_count, opened.last_outage) == (1, None)
    started = opened.event_payload("pi", T0)
    assert started is not None
    assert started.type == "outage_started"
    closed = store.announce(event(ON, store.take_seq(), 42.5))
    assert closed.outage is not None
    assert closed.outage.duration_s == 42.5
    assert closed.last_outage == closed.outage
    assert closed.outage_since is None
    ended = closed.event_payload("pi", T0)
    assert ended is not None
    assert ended.type == "outage_ended"
    assert (ended.started, ended.ended, ended.duration_s) == (
        T0,
        T0 + timedelta(seconds=42.5),
        42.5,
    )
    # An "on" that closes nothing (the first start ever) causes no event.
    assert store.announce(event(ON, store.take_seq(), 50)).event_payload("pi", T0) is None
    assert store.latest is not None
    assert store.latest.seq == 3


def test_an_outage_open_before_a_restart_goes_on_without_a_new_event(tmp_path: Path) -> None:
    store = OutageStore(connect(db_path(tmp_path)), boot_id="b1")
    store.announce(event(OFF, store.take_seq(), 0))
    restarted = OutageStore(connect(db_path(tmp_path)), boot_id="b1")
    assert restarted.latest is not None
    assert restarted.latest.state is OFF
    again = restarted.announce(event(OFF, restarted.take_seq(), 60))
    assert again.continued
    assert again.outage_since == T0  # the outage keeps its start
    assert again.event_payload("pi", T0) is None
    assert again.outage_count == 1


def test_a_failing_database_keeps_the_state_in_memory(tmp_path: Path) -> None:
    conn = connect(db_path(tmp_path))
    store = OutageStore(conn, boot_id="b1")
    store.announce(event(OFF, store.take_seq(), 0))
    conn.close()  # every statement fails from now on
    seq = store.take_seq()
    assert seq == 2
    change = store.announce(event(ON, seq, 5))
    assert store.latest == change.event
    assert change.outage is None
    assert change.outage_count == 1
    assert isinstance(store.take_seq(), int)


class FakePublisher:
    def __init__(self) -> None:
        self.topics = SimpleNamespace(mains="m", outage="o")
        self.retained: dict[str, Callable[[], bytes]] = {}
        self.events: list[bytes] = []

    def retain(self, topic: str, producer: Callable[[], bytes], qos: int) -> None:
        self.retained[topic] = producer

    def add_event(self, build: Callable[[int], bytes]) -> None:
        self.events.append(build(7))


def test_the_report_announces_unknown_then_each_change(tmp_path: Path) -> None:
    clock = ManualClock(monotonic=5000.0, wall=T0)
    store = OutageStore(connect(db_path(tmp_path)), boot_id="b1", clock=clock)
    publisher = FakePublisher()
    report = MainsReport(publisher, store, "pi", clock)  # type: ignore[arg-type]
    report.start()
    first = json.loads(publisher.retained["m"]())
    assert (first["state"], first["seq"], first["n"], first["boot"]) == (
        "unknown",
        1,
        1,
        report.boot,
    )
    assert "o" not in publisher.retained  # the outage topic waits for a known state
    report.changed(store.announce(event(OFF, store.take_seq(), 0)))
    assert [json.loads(e)["type"] for e in publisher.events] == ["outage_started"]
    assert json.loads(publisher.retained["o"]())["seq"] == 2
    clock.advance(3.0)
    second = json.loads(publisher.retained["m"]())
    assert (second["state"], second["elapsed_s"], second["n"]) == ("off", 3.0, 2)
    report.changed(store.announce(event(ON, store.take_seq(), 10)))
    ended = json.loads(publisher.events[-1])
    assert (ended["type"], ended["seq"], ended["duration_s"]) == ("outage_ended", 7, 10.0)
    assert json.loads(publisher.retained["m"]())["last_outage_s"] == 10.0
    assert report.tick(clock.monotonic()) > clock.monotonic()
