"""The outage history as a pure state machine: no Home Assistant instance, days injected.

``custom_components.powerbridge.history`` takes "today" and an instant's local date as
functions, so these tests choose the day (and the time zone) themselves.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from custom_components.powerbridge import protocol
from custom_components.powerbridge.const import EVENT_OUTAGE_ENDED, EVENT_OUTAGE_STARTED
from custom_components.powerbridge.history import OutageHistory, StoredHistory

pytestmark = pytest.mark.without_hass

T0 = datetime(2026, 3, 29, 23, 30, tzinfo=UTC)
AMSTERDAM_SUMMER = timezone(timedelta(hours=2))  # CEST: T0 is 01:30 on 30 March there


class Day:
    """An injectable calendar: today's date, and the local zone instants are judged in."""

    def __init__(self, today: date, zone: timezone = UTC) -> None:
        self.value = today
        self.zone = zone

    def today(self) -> date:
        return self.value

    def local_date(self, instant: datetime) -> date:
        return instant.astimezone(self.zone).date()


def history(day: Day, data: StoredHistory | None = None) -> OutageHistory:
    return OutageHistory(data or StoredHistory(), today=day.today, local_date=day.local_date)


def mains(
    on: bool, seq: int, since: datetime, last_outage_s: float | None = None
) -> protocol.Mains:
    return protocol.Mains(
        device="rack-a",
        on=on,
        since=since,
        seq=seq,
        ts=since,
        elapsed_s=0.5,
        source="gpio",
        outage_count=0,
        last_outage_s=last_outage_s,
        signed=False,
    )


def ended_event(seq: int, mains_seq: int, started: datetime, duration_s: float) -> protocol.Event:
    ended = started + timedelta(seconds=duration_s)
    return protocol.Event(
        device="rack-a",
        type="outage_ended",
        seq=seq,
        mains_seq=mains_seq,
        ts=ended,
        started=started,
        ended=ended,
        duration_s=duration_s,
    )


def test_an_outage_starts_and_ends_on_new_announcements_only() -> None:
    h = history(Day(T0.date()))
    assert h.mains(mains(True, 1, T0 - timedelta(hours=1)), None).fired == ()  # first: no change
    started = h.mains(mains(False, 2, T0), 1000.0)
    assert [f.event_type for f in started.fired] == [EVENT_OUTAGE_STARTED]
    assert h.mains(mains(False, 2, T0), 1000.0).changed is False  # a refresh
    ended = h.mains(mains(True, 3, T0 + timedelta(seconds=90), last_outage_s=90.0), 1004.5)
    [fired] = ended.fired
    assert fired.event_type == EVENT_OUTAGE_ENDED
    assert fired.data["duration_s"] == 90.0
    assert fired.data["energy_wh"] == pytest.approx(4.5)
    assert h.outages_today == 1
    assert h.outage_energy_wh(1004.5) == pytest.approx(4.5)


def test_today_is_the_local_date_not_the_utc_date() -> None:
    # 23:30 UTC on 29 March is 01:30 on 30 March in Amsterdam: it counts on the 30th there.
    in_amsterdam = history(Day(date(2026, 3, 30), AMSTERDAM_SUMMER))
    in_amsterdam.mains(mains(False, 1, T0), None)
    assert in_amsterdam.outages_today == 1
    in_utc = history(Day(date(2026, 3, 30)))
    in_utc.mains(mains(False, 1, T0), None)
    assert in_utc.outages_today == 0  # it started yesterday (UTC)


def test_the_count_starts_again_on_a_new_day() -> None:
    day = Day(T0.date())
    h = history(day)
    h.mains(mains(False, 1, T0), None)
    h.mains(mains(True, 2, T0 + timedelta(minutes=1)), None)
    assert h.outages_today == 1
    day.value += timedelta(days=1)
    assert h.outages_today == 0
    assert h.roll_day() is False  # already rolled


def test_a_replayed_event_completes_the_history_once() -> None:
    h = history(Day(T0.date()))
    h.mains(mains(True, 5, T0 + timedelta(hours=1)), None)  # we only ever saw "on"
    replay = ended_event(seq=40, mains_seq=4, started=T0, duration_s=120.0)
    [fired] = h.event(replay, None).fired
    assert fired.data["replayed"] is True
    assert fired.data["seq"] == 4
    assert h.outages_today == 1  # an outage we never saw start
    assert h.event(replay, None).changed is False  # the at-least-once duplicate
    again = ended_event(seq=41, mains_seq=4, started=T0, duration_s=120.0)
    assert h.event(again, None).fired == ()  # same outage, another event seq: not twice
    assert h.last_outage is not None
    assert h.last_outage.duration_s == 120.0


def test_an_event_before_its_announcement_ends_the_tracked_outage() -> None:
    h = history(Day(T0.date()))
    h.mains(mains(True, 1, T0 - timedelta(hours=1)), 500.0)
    h.mains(mains(False, 2, T0), 500.0)
    [fired] = h.event(ended_event(seq=9, mains_seq=3, started=T0, duration_s=30.0), 502.0).fired
    assert fired.data["replayed"] is False
    assert fired.data["energy_wh"] == pytest.approx(2.0)
    # The announcement that follows is the same outage: no second record or event.
    assert (
        h.mains(mains(True, 3, T0 + timedelta(seconds=30), last_outage_s=30.0), 502.0).fired == ()
    )
    assert h.outages_today == 1
    assert len(h.data.history) == 1


def test_energy_counts_from_the_first_reading_of_an_outage_without_one() -> None:
    h = history(Day(T0.date()))
    h.mains(mains(False, 1, T0), None)
    assert h.energy(200.0) is True
    assert h.energy(201.0) is False  # the start is kept
    assert h.energy_since_outage_start(203.0) == pytest.approx(3.0)


def test_the_stored_form_round_trips_and_ignores_unknown_keys() -> None:
    h = history(Day(T0.date()))
    h.mains(mains(False, 1, T0), None)
    h.add_client("nas")
    stored = {**h.as_dict(), "from_a_later_version": True}
    again = history(Day(T0.date()), StoredHistory.from_dict(stored))
    assert again.in_outage
    assert again.data.clients == ["nas"]
    assert again.add_client("nas") is False
    assert StoredHistory.from_dict(None) == StoredHistory()


def unknown(seq: int, since: datetime) -> protocol.Mains:
    """What a bridge announces right after a start, while it confirms its input."""
    return protocol.Mains(
        device="rack-a",
        on=None,
        since=since,
        seq=seq,
        ts=since,
        elapsed_s=0.0,
        source="start",
        outage_count=0,
        last_outage_s=None,
        signed=False,
    )


def test_unknown_after_a_bridge_start_starts_and_ends_nothing() -> None:
    h = history(Day(T0.date()))
    h.mains(mains(True, 1, T0 - timedelta(hours=1)), None)
    outcome = h.mains(unknown(2, T0), None)
    assert outcome.fired == ()
    assert outcome.changed  # its seq is remembered
    assert h.last_on is True  # what was known before the start stays the history
    assert h.mains(mains(True, 3, T0 + timedelta(seconds=2)), None).fired == ()  # confirmed on


def test_an_outage_that_goes_on_across_a_bridge_restart_stays_one_outage() -> None:
    h = history(Day(T0.date()))
    h.mains(mains(True, 1, T0 - timedelta(hours=1)), None)
    off = replace(mains(False, 2, T0), outage_count=7)
    assert [f.event_type for f in h.mains(off, None).fired] == [EVENT_OUTAGE_STARTED]
    h.mains(unknown(3, T0 + timedelta(minutes=5)), None)  # the bridge restarts
    # Confirmed off again after the start: the same outage (the bridge counted none).
    again = replace(mains(False, 4, T0 + timedelta(minutes=5, seconds=1)), outage_count=7)
    assert h.mains(again, None).fired == ()
    assert h.outages_today == 1
    assert h.data.outage_started == protocol.isoformat_utc(T0)
    # An outage the bridge did count while we could not hear it is a new one.
    newer = replace(mains(False, 6, T0 + timedelta(minutes=20)), outage_count=8)
    assert [f.event_type for f in h.mains(newer, None).fired] == [EVENT_OUTAGE_STARTED]
    assert h.outages_today == 2
