"""OutageStore: persistent sequence, outage history, restart and reboot resumption."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.clock import ManualClock
from bridge.db import connect, db_path
from bridge.mains.store import KEEP_EVENTS, OutageStore, read_boot_id
from bridge.model import MainsEvent, MainsState

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def event(state: MainsState, seq: int, at: float, source: str = "gpio") -> MainsEvent:
    return MainsEvent(
        state=state,
        began=T0 + timedelta(seconds=at),
        began_monotonic=5000.0 + at,
        seq=seq,
        source=source,
    )


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return connect(db_path(tmp_path))


def test_sequence_is_persistent_and_strictly_increasing(tmp_path: Path) -> None:
    store = OutageStore(connect(db_path(tmp_path)), boot_id="b1")
    assert store.last_seq() == 0
    assert [store.next_seq() for _ in range(3)] == [1, 2, 3]
    reopened = OutageStore(connect(db_path(tmp_path)), boot_id="b2")
    assert reopened.last_seq() == 3
    assert reopened.next_seq() == 4


def test_recording_a_seq_moves_the_counter_past_it(conn: sqlite3.Connection) -> None:
    store = OutageStore(conn, boot_id="b1")
    store.record(event(MainsState.ON, 41, 0))
    assert store.next_seq() == 42


def test_outage_opens_and_closes_with_duration(conn: sqlite3.Connection) -> None:
    store = OutageStore(conn, boot_id="b1")
    assert store.current() is None
    assert store.count() == 0
    store.open_outage(event(MainsState.OFF, 1, 0))
    current = store.current()
    assert current is not None
    assert current.started == T0
    assert current.started_monotonic == 5000.0
    assert current.seq == 1
    assert current.ended is None
    assert store.count() == 1
    assert store.last_finished() is None

    done = store.close_outage(event(MainsState.ON, 2, 95.25))
    assert done.started == T0
    assert done.ended == T0 + timedelta(seconds=95.25)
    assert done.duration_s == pytest.approx(95.25)
    assert done.seq == 1
    assert store.current() is None
    assert store.last_finished() == done
    assert store.count() == 1


def test_history_is_newest_first_and_limited(conn: sqlite3.Connection) -> None:
    store = OutageStore(conn, boot_id="b1")
    for i in range(5):
        store.record(event(MainsState.OFF, 2 * i + 1, 100.0 * i))
        store.record(event(MainsState.ON, 2 * i + 2, 100.0 * i + 10 + i))
    store.record(event(MainsState.OFF, 11, 1000))
    history = store.history()
    assert [o.seq for o in history] == [11, 9, 7, 5, 3, 1]
    assert history[0].ended is None
    assert [o.duration_s for o in history[1:]] == pytest.approx([14, 13, 12, 11, 10])
    assert [o.seq for o in store.history(limit=2)] == [11, 9]
    assert store.count() == 6
    finished = store.last_finished()
    assert finished is not None
    assert finished.seq == 9


def test_on_without_open_outage_is_just_a_state(conn: sqlite3.Connection) -> None:
    store = OutageStore(conn, boot_id="b1")
    assert store.record(event(MainsState.ON, 1, 0)) is None
    assert store.count() == 0
    last = store.last_event()
    assert last is not None
    assert last.state is MainsState.ON
    with pytest.raises(LookupError):
        store.close_outage(event(MainsState.ON, 2, 1))
    # The refused close left nothing behind.
    assert store.last_event() == last


def test_second_off_keeps_the_open_outage(conn: sqlite3.Connection) -> None:
    store = OutageStore(conn, boot_id="b1")
    store.record(event(MainsState.OFF, 1, 0))
    kept = store.record(event(MainsState.OFF, 2, 30))
    assert kept is not None
    assert kept.started == T0
    assert store.count() == 1


def test_wrong_states_are_refused(conn: sqlite3.Connection) -> None:
    store = OutageStore(conn, boot_id="b1")
    with pytest.raises(ValueError, match="off"):
        store.open_outage(event(MainsState.ON, 1, 0))
    with pytest.raises(ValueError, match="on"):
        store.close_outage(event(MainsState.OFF, 1, 0))
    with pytest.raises(ValueError, match="unknown"):
        store.record(event(MainsState.UNKNOWN, 1, 0))


def test_restart_in_same_boot_keeps_start_and_monotonic(tmp_path: Path) -> None:
    store = OutageStore(connect(db_path(tmp_path)), boot_id="boot-a")
    store.record(event(MainsState.OFF, 7, 0, source="meter"))
    again = OutageStore(connect(db_path(tmp_path)), boot_id="boot-a")
    last = again.last_event()
    assert last == event(MainsState.OFF, 7, 0, source="meter")
    current = again.current()
    assert current is not None
    assert current.started == T0  # microseconds kept
    assert current.started_monotonic == 5000.0


def test_reboot_reanchors_monotonic_on_the_wall_clock(tmp_path: Path) -> None:
    store = OutageStore(connect(db_path(tmp_path)), boot_id="boot-a")
    store.record(event(MainsState.OFF, 3, 0))
    # After a reboot the monotonic clock restarted near zero; 10 min have passed on the wall.
    clock = ManualClock(monotonic=42.0, wall=T0 + timedelta(minutes=10))
    again = OutageStore(connect(db_path(tmp_path)), boot_id="boot-b", clock=clock)
    last = again.last_event()
    assert last is not None
    assert last.began == T0
    assert last.began_monotonic == pytest.approx(42.0 - 600.0)
    current = again.current()
    assert current is not None
    assert current.started_monotonic == pytest.approx(42.0 - 600.0)
    # The outage closes in the new boot: duration from the wall clock, start kept.
    restore = MainsEvent(MainsState.ON, T0 + timedelta(minutes=12), 162.0, again.next_seq())
    done = again.close_outage(restore)
    assert done.started == T0
    assert done.duration_s == pytest.approx(720.0)
    assert restore.seq == 4


def test_unknown_boot_id_always_reanchors(tmp_path: Path) -> None:
    clock = ManualClock(monotonic=100.0, wall=T0 + timedelta(seconds=30))
    store = OutageStore(connect(db_path(tmp_path)), boot_id="", clock=clock)
    assert store.boot_id is None
    store.record(event(MainsState.OFF, 1, 0))
    last = store.last_event()
    assert last is not None
    assert last.began_monotonic == pytest.approx(70.0)


def test_events_are_pruned_but_sequence_continues(conn: sqlite3.Connection) -> None:
    store = OutageStore(conn, boot_id="b1")
    total = KEEP_EVENTS + 20
    for seq in range(1, total + 1):
        state = MainsState.OFF if seq % 2 else MainsState.ON
        store.record(event(state, seq, float(seq)))
    kept = conn.execute("SELECT COUNT(*), MIN(seq) FROM mains_events").fetchone()
    assert kept[0] <= KEEP_EVENTS + 1
    assert kept[1] > 1
    assert store.count() == total // 2
    assert store.next_seq() == total + 1


def test_read_boot_id(tmp_path: Path) -> None:
    path = tmp_path / "boot_id"
    path.write_text("5b1d7f4e-2c0a-4d6e-9a53-0f2b8c1e7d90\n")
    assert read_boot_id(path) == "5b1d7f4e-2c0a-4d6e-9a53-0f2b8c1e7d90"
    assert read_boot_id(tmp_path / "missing") is None
