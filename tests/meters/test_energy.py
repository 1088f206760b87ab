"""The energy guard: the published total never decreases and never jumps implausibly."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.meters.energy import EnergyGuard


def pzem_guard() -> EnergyGuard:
    return EnergyGuard(max_power_w=26_000, resolution_wh=1.0)


def test_normal_counting_passes_through_unchanged() -> None:
    guard = pzem_guard()
    assert guard.check(1000.0, 0.0, 120.0) == 1000.0
    assert guard.check(1001.0, 30.0, 120.0) == 1001.0
    assert guard.check(1001.0, 31.0, 120.0) == 1001.0
    assert (guard.rejected, guard.rebased, guard.offset_wh) == (0, 0, 0.0)


def test_a_one_off_glitch_is_not_published() -> None:
    guard = pzem_guard()
    guard.check(1000.0, 0.0, 120.0)
    assert guard.check(65_000.0, 1.0, 120.0) is None  # the counter jumped
    assert guard.check(1000.0, 2.0, 120.0) == 1000.0  # and came back
    assert guard.check(0.0, 3.0, 120.0) is None  # a decrease
    assert guard.check(1001.0, 40.0, 120.0) == 1001.0
    assert guard.rejected == 2
    assert guard.outcome == "accepted"


def test_a_jump_after_an_outage_is_absorbed_not_published() -> None:
    """The PZEM's counter jumps when its voltage falls to 0 and stays at the new level."""
    guard = pzem_guard()
    guard.check(1000.0, 0.0, 120.0)
    published = [guard.check(6000.0 + step, 600.0 + step, 120.0) for step in range(5)]
    assert published[:2] == [None, None]
    assert published[2:] == [1002.0, 1003.0, 1004.0]  # continues from 1000, not from 6000
    assert guard.rebased == 1
    assert guard.offset_wh == -5000.0


def test_a_reset_counter_continues_the_total() -> None:
    guard = pzem_guard()
    guard.check(5000.0, 0.0, 500.0)
    results = [guard.check(float(v), 10.0 + i, 500.0) for i, v in enumerate((0, 0, 1, 1))]
    assert results == [None, None, 5001.0, 5001.0]


def test_energy_during_an_unseen_interval_is_plausible() -> None:
    """Unplugged for an hour at 120 W: 120 Wh more is fine (the power on both sides)."""
    guard = pzem_guard()
    guard.check(1000.0, 0.0, 120.0)
    assert guard.check(1120.0, 3600.0, 120.0) == 1120.0


def test_without_power_readings_the_meter_maximum_bounds_the_increase() -> None:
    guard = EnergyGuard(max_power_w=3600.0, resolution_wh=0.001)
    guard.check(0.0, 0.0, None)
    assert guard.check(0.9, 1.0, None) == 0.9  # 1 Wh/s allowed
    assert guard.check(10.0, 2.0, None) is None


def test_missing_energy_is_neither_published_nor_counted() -> None:
    guard = pzem_guard()
    assert guard.check(None, 0.0, 100.0) is None
    assert guard.rejected == 0


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(-1e6, 1e7, allow_nan=False),
            st.floats(0.0, 100.0, allow_nan=False),
            st.one_of(st.none(), st.floats(0.0, 30_000.0, allow_nan=False)),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_published_total_never_decreases_nor_jumps(
    samples: list[tuple[float, float, float | None]],
) -> None:
    guard = pzem_guard()
    now = 0.0
    last: tuple[float, float] | None = None
    for raw, step, power in samples:
        now += step
        published = guard.check(raw, now, power)
        if published is None:
            continue
        if last is not None:
            total, when = last
            assert published >= total
            ceiling = 26_000 * (now - when) / 3600 + 2.0
            assert published - total <= ceiling + 1e-6
        last = (published, now)
