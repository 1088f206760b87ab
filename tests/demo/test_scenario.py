"""The demo's verdict comes from what was observed: every mismatch is caught."""

from __future__ import annotations

from bridge.demo.scenario import Recorder, Timings, checks, summary_lines
from bridge.tui.fleet import Change

T = Timings(delay=20.0)


def mains(value: str, at: float, retained: bool = False) -> Change:
    return Change("mains", "demo-bridge", value, at, retained=retained)


def client(value: str, at: float, detail: str = "") -> Change:
    return Change("client_state", "demo-pc", value, at, detail)


def play(blips: list[Change], outage: list[Change], restore: list[Change]) -> Recorder:
    rec = Recorder(0.0)
    rec.observe(mains("on", 0.5, retained=True))  # the retained state at start-up
    rec.observe(client("idle", 0.6))
    rec.begin("normal", "normal load", 1.0, readings=1)
    rec.begin("blips", "blips", 7.0, readings=7)
    for c in blips:
        rec.observe(c)
    rec.begin("outage", "outage", 15.0, readings=15)
    for c in outage:
        rec.observe(c)
    rec.begin("restore", "restore", 40.0, readings=35)
    for c in restore:
        rec.observe(c)
    rec.end(45.0, readings=40)
    return rec


GOOD_OUTAGE = [
    mains("off", 16.0),
    client("counting", 16.1),
    client("shutting_down", 35.2, "dry run"),
]
GOOD_RESTORE = [mains("on", 41.0), client("idle", 41.1)]


def test_the_expected_story_passes() -> None:
    rec = play([], GOOD_OUTAGE, GOOD_RESTORE)
    results = checks(rec, T)
    assert all(c.ok for c in results), results
    text = "\n".join(summary_lines(results))
    assert "6 readings received" in text
    assert "3 blips:" in text
    assert "0 outages announced (expected 0), 0 shutdowns (expected 0)" in text
    assert "1 outage announced (expected 1), 1 dry-run shutdown after 20.2 s" in text
    assert "restore seen: yes" in text
    assert text.endswith("result: everything happened as expected")


def test_an_announced_blip_is_a_failure() -> None:
    blips = [mains("off", 8.0), client("counting", 8.1), mains("on", 9.5), client("idle", 9.6)]
    results = checks(play(blips, GOOD_OUTAGE, GOOD_RESTORE), T)
    bad = [c for c in results if not c.ok]
    assert [c.phase for c in bad] == ["3 blips"]
    assert "1 outages announced (expected 0)" in bad[0].text
    assert summary_lines(results)[-1].startswith("result: something did not happen")


def test_a_missing_shutdown_or_restore_is_a_failure() -> None:
    results = checks(play([], [mains("off", 16.0), client("counting", 16.1)], []), T)
    bad = {c.phase for c in results if not c.ok}
    assert bad == {"long outage", "power restored", "in total"}


def test_a_second_shutdown_anywhere_is_a_failure() -> None:
    restore = [*GOOD_RESTORE, client("shutting_down", 42.0, "dry run")]
    results = checks(play([], GOOD_OUTAGE, restore), T)
    bad = {c.phase for c in results if not c.ok}
    assert bad == {"power restored", "in total"}


def test_retained_history_is_not_counted() -> None:
    outage = [mains("off", 15.5, retained=True), *GOOD_OUTAGE]
    results = checks(play([], outage, GOOD_RESTORE), T)
    assert all(c.ok for c in results)


def test_estimate_is_about_a_minute_by_default() -> None:
    assert 40 <= Timings().estimate() <= 70
    assert Timings().blip < Timings().confirm_off
