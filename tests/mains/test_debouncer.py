"""The pure confirmation-window state machine, on a ManualClock."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bridge.clock import ManualClock
from bridge.mains.crosscheck import combine
from bridge.mains.debounce import Announcement, Blip, Edge, MainsDebouncer
from bridge.model import MainsState

ON, OFF, UNKNOWN = MainsState.ON, MainsState.OFF, MainsState.UNKNOWN


def edge(clock: ManualClock, state: MainsState, source: str = "gpio") -> Edge:
    return Edge(state, clock.monotonic(), clock.utcnow(), source)


def announcements(items: list[Announcement | Blip]) -> list[Announcement]:
    return [i for i in items if isinstance(i, Announcement)]


def test_fifty_blips_announce_nothing_and_count_fifty() -> None:
    clock = ManualClock()
    deb = MainsDebouncer(confirm_off=0.5, confirm_on=2.0, announced=ON)
    deb.feed(edge(clock, ON))
    rng = random.Random(4)
    out: list[Announcement | Blip] = []
    durations = []
    for _ in range(50):
        clock.advance(rng.uniform(0.5, 3.0))
        out += deb.feed(edge(clock, OFF))
        # A blip 20–400 ms long: the pin is back before confirm_off (500 ms) ends.
        length = rng.uniform(0.020, 0.400)
        durations.append(length)
        clock.advance(length)
        maybe = deb.poll(clock.monotonic())
        assert maybe is None
        out += deb.feed(edge(clock, ON))
        clock.advance(0.05)
        assert deb.poll(clock.monotonic()) is None
    assert announcements(out) == []
    blips = [i for i in out if isinstance(i, Blip)]
    assert len(blips) == 50
    assert deb.flap_count == 50
    assert [b.duration_s for b in blips] == pytest.approx(durations)
    assert all(b.state is OFF for b in blips)
    assert deb.announced is ON


def test_cut_of_three_seconds_is_one_outage_and_one_restore_from_first_edges() -> None:
    clock = ManualClock()
    deb = MainsDebouncer(confirm_off=0.5, confirm_on=2.0, announced=ON)
    deb.feed(edge(clock, ON))
    clock.advance(10)
    cut = edge(clock, OFF)
    assert deb.feed(cut) == []
    assert deb.deadline == pytest.approx(cut.monotonic + 0.5)
    clock.advance(0.499)
    assert deb.poll(clock.monotonic()) is None
    clock.advance(0.001)
    off = deb.poll(clock.monotonic())
    assert off == Announcement(OFF, cut.utc, cut.monotonic, "gpio")
    clock.advance(2.5)  # 3 s after the cut the power returns
    back = edge(clock, ON)
    assert deb.feed(back) == []
    clock.advance(1.999)
    assert deb.poll(clock.monotonic()) is None
    clock.advance(0.001)
    on = deb.poll(clock.monotonic())
    assert on == Announcement(ON, back.utc, back.monotonic, "gpio")
    assert on.began - off.began == timedelta(seconds=3)
    assert deb.flap_count == 0


def test_flicker_during_restore_restarts_the_on_window() -> None:
    clock = ManualClock()
    deb = MainsDebouncer(confirm_off=0.5, confirm_on=2.0, announced=OFF)
    deb.feed(edge(clock, OFF))
    clock.advance(1)
    deb.feed(edge(clock, ON))
    clock.advance(1.5)
    items = deb.feed(edge(clock, OFF))  # generator hiccup: back off after 1.5 s
    assert [type(i) for i in items] == [Blip]
    clock.advance(0.1)
    second = edge(clock, ON)
    deb.feed(second)
    clock.advance(2)
    on = deb.poll(clock.monotonic())
    assert on is not None
    assert on.began_monotonic == second.monotonic
    assert deb.flap_count == 1


def test_confirmation_due_before_the_next_edge_is_not_lost() -> None:
    clock = ManualClock()
    deb = MainsDebouncer(confirm_off=0.5, confirm_on=2.0, announced=ON)
    deb.feed(edge(clock, ON))
    clock.advance(1)
    cut = edge(clock, OFF)
    deb.feed(cut)
    clock.advance(5)  # nobody polled in between
    items = deb.feed(edge(clock, ON))
    assert items == [Announcement(OFF, cut.utc, cut.monotonic, "gpio")]
    assert deb.announced is OFF
    assert deb.pending is not None


def test_first_level_from_unknown_needs_its_window_and_counts_no_flaps() -> None:
    clock = ManualClock()
    deb = MainsDebouncer(confirm_off=0.5, confirm_on=2.0)
    deb.feed(edge(clock, OFF))
    clock.advance(0.2)
    deb.feed(edge(clock, ON))
    clock.advance(0.1)
    deb.feed(edge(clock, OFF))
    assert deb.flap_count == 0
    clock.advance(0.5)
    first = deb.poll(clock.monotonic())
    assert first is not None
    assert first.state is OFF


def test_late_edges_are_kept_in_time_order() -> None:
    clock = ManualClock()
    deb = MainsDebouncer(confirm_off=0.5, confirm_on=2.0, announced=ON)
    deb.feed(edge(clock, ON))
    stale = Edge(OFF, clock.monotonic() - 10, clock.utcnow() - timedelta(seconds=10), "meter")
    deb.feed(stale)
    assert deb.pending is not None
    assert deb.pending.monotonic == clock.monotonic()
    assert deb.pending.utc == clock.utcnow()


def test_rejects_unknown_levels_and_negative_windows() -> None:
    clock = ManualClock()
    with pytest.raises(ValueError, match="negative"):
        MainsDebouncer(-1, 1)
    with pytest.raises(ValueError, match="on or off"):
        MainsDebouncer(1, 1).feed(edge(clock, UNKNOWN))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.floats(min_value=0.001, max_value=5.0)),
        min_size=1,
        max_size=60,
    )
)
def test_announcements_match_a_reference_model(steps: list[tuple[bool, float]]) -> None:
    """Whatever the pin does, a state is announced iff it lasted its window, from its first edge."""
    confirm = {OFF: 0.5, ON: 2.0}
    # Reference: merge equal consecutive segments; a segment that lasts its window and differs
    # from the announced state is announced at its start.
    merged: list[tuple[MainsState, float, float]] = []  # (state, start offset, length)
    offset = 0.0
    for level, hold in steps:
        state = ON if level else OFF
        if merged and merged[-1][0] is state:
            merged[-1] = (state, merged[-1][1], merged[-1][2] + hold)
        else:
            merged.append((state, offset, hold))
        offset += hold
    # Stay clear of float ties at the exact window boundary.
    assume(all(abs(length - confirm[state]) > 1e-6 for state, _, length in merged))
    expected: list[tuple[MainsState, float]] = []
    flaps = 0
    announced = ON
    for index, (state, start, length) in enumerate(merged):
        if state is announced:
            continue
        if length >= confirm[state]:
            expected.append((state, start))
            announced = state
        elif index < len(merged) - 1:
            flaps += 1  # came back to the announced state before its window ended

    clock = ManualClock(monotonic=0.0)
    deb = MainsDebouncer(confirm[OFF], confirm[ON], announced=ON)
    deb.feed(edge(clock, ON))
    got: list[Announcement] = []
    for level, hold in steps:
        got += announcements(deb.feed(edge(clock, ON if level else OFF)))
        clock.advance(hold)
        ann = deb.poll(clock.monotonic())
        if ann is not None:
            got.append(ann)
    assert [a.state for a in got] == [state for state, _ in expected]
    assert [a.began_monotonic for a in got] == pytest.approx([start for _, start in expected])
    assert deb.flap_count == flaps


def test_combine_sources() -> None:
    table = {
        ("gpio", ON, OFF): ON,
        ("gpio", OFF, ON): OFF,
        ("meter", ON, OFF): OFF,
        ("meter", OFF, UNKNOWN): UNKNOWN,
        ("any", ON, OFF): OFF,
        ("any", OFF, ON): OFF,
        ("any", ON, ON): ON,
        ("any", ON, UNKNOWN): ON,
        ("any", UNKNOWN, UNKNOWN): UNKNOWN,
        ("all", ON, OFF): ON,
        ("all", OFF, ON): ON,
        ("all", OFF, OFF): OFF,
        ("all", OFF, UNKNOWN): OFF,
    }
    for (source, gpio, meter), want in table.items():
        assert combine(source, gpio, meter) is want, (source, gpio, meter)
