"""Gap bookkeeping: opened, split, filled, asked for again, given up — on injected time."""

from __future__ import annotations

from bridge.archive.gaps import Gap, GapPolicy, GapTracker

POLICY = GapPolicy(resend_after_ms=30_000, resend_every_ms=300_000, lost_after_ms=3_600_000)


def test_a_contiguous_run_opens_no_gap() -> None:
    tracker = GapTracker(POLICY)
    assert not tracker.observe("a", range(1, 101), 0)
    assert not tracker.observe("a", range(101, 201), 0)
    assert tracker.high("a") == 200
    assert tracker.open_gaps() == []


def test_history_starts_at_the_first_seq_received() -> None:
    tracker = GapTracker(POLICY)
    tracker.observe("a", [1000], 0)
    tracker.observe("a", [5], 0)  # older than the first seen: stored, not a gap
    assert tracker.open_gaps("a") == []


def test_a_skip_opens_a_gap_and_late_arrivals_split_and_fill_it() -> None:
    tracker = GapTracker(POLICY)
    tracker.observe("a", [1, 2], 0)
    assert tracker.observe("a", [10], 5)
    assert [(g.first, g.last, g.opened_ms) for g in tracker.open_gaps("a")] == [(3, 9, 5)]
    assert tracker.observe("a", [6], 7)
    assert [(g.first, g.last) for g in tracker.open_gaps("a")] == [(3, 5), (7, 9)]
    assert tracker.missing("a") == 6
    tracker.observe("a", [3, 4, 5, 7, 8, 9], 8)
    assert tracker.open_gaps("a") == []
    assert not tracker.observe("a", [4], 9)  # a duplicate changes nothing


def test_gaps_are_asked_for_after_a_while_then_again_then_given_up() -> None:
    tracker = GapTracker(POLICY)
    tracker.observe("a", [1, 5], 0)
    assert tracker.due(29_999) == ([], [])
    requested, lost = tracker.due(30_000)
    assert [(g.first, g.last, g.requests) for g in requested] == [(2, 4, 1)]
    assert lost == []
    assert tracker.due(100_000) == ([], [])  # not again before resend_every
    requested, _ = tracker.due(330_000)
    assert [g.requests for g in requested] == [2]
    requested, lost = tracker.due(3_600_000)
    assert requested == []
    assert [(g.first, g.last) for g in lost] == [(2, 4)]
    assert tracker.open_gaps() == []


def test_restore_continues_where_the_database_left_off() -> None:
    tracker = GapTracker(POLICY)
    tracker.restore("a", 50, [Gap("a", 10, 12, 0, requests=1)])
    tracker.observe("a", [11], 1)
    assert [(g.first, g.last) for g in tracker.open_gaps("a")] == [(10, 10), (12, 12)]
    assert not tracker.observe("a", [51], 1)


def test_the_newest_seq_a_bridge_announces_reveals_a_gap_at_the_end() -> None:
    tracker = GapTracker(POLICY)
    assert not tracker.announce("a", 50, 0)  # never heard of: history starts later
    tracker.observe("a", range(1, 11), 0)
    assert tracker.announce("a", 15, 1)
    assert [(g.first, g.last) for g in tracker.open_gaps("a")] == [(11, 15)]
    assert not tracker.announce("a", 12, 2)  # older news
    tracker.observe("a", range(11, 17), 3)
    assert tracker.open_gaps("a") == []
    assert tracker.high("a") == 16
