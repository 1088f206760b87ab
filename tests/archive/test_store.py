"""The SQLite archive through the ingest's batches: idempotent, counted, gap-tracked."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bridge.archive.gaps import GapPolicy
from bridge.archive.ingest import Ingest
from bridge.archive.records import epoch_ms
from bridge.archive.store.sqlite import SqliteStore
from bridge.clock import ManualClock
from tests.archive.fakes import TODAY, deployment, event, health, mains, msg, samples


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(wall=TODAY)


@pytest.fixture
def ingest(tmp_path: Path, clock: ManualClock) -> Ingest:
    store = SqliteStore(tmp_path / "archive.db")
    store.create_schema()
    ing = Ingest(
        store, base="powerbridge", max_payload=1024 * 1024, clock=clock,
        policy=GapPolicy(resend_after_ms=30_000, resend_every_ms=60_000, lost_after_ms=600_000),
    )  # fmt: skip
    ing.resume()
    return ing


def write(ingest: Ingest, *messages: object) -> list[int]:
    batch, acks = ingest.build(list(messages))  # type: ignore[arg-type]
    ingest.store.write(batch)
    return acks


def test_samples_are_stored_once_whatever_is_delivered_twice(ingest: Ingest) -> None:
    acks = write(ingest, msg("a", "samples", samples("a", range(1, 101)), mid=7))
    assert acks == [7]
    write(ingest, msg("a", "samples", samples("a", range(51, 151)), mid=8))
    store = ingest.store
    assert store.sample_count("a") == 150
    assert store.missing() == {"a": 0}
    row = store.fleet(epoch_ms(TODAY))[0]
    assert row.samples_today == 150  # duplicates are not counted twice
    assert row.newest_sample_ms == epoch_ms(TODAY - timedelta(hours=1) + timedelta(seconds=150))


def test_a_gap_is_recorded_then_filled(ingest: Ingest) -> None:
    write(ingest, msg("a", "samples", samples("a", range(1, 11))))
    write(ingest, msg("a", "samples", samples("a", range(21, 31))))
    store = ingest.store
    assert [(g.first, g.last, g.status) for g in store.gaps("a")] == [(11, 20, "open")]
    assert store.missing() == {"a": 10}
    assert store.fleet(epoch_ms(TODAY))[0].open_gaps == 1
    write(ingest, msg("a", "samples", samples("a", range(11, 21))))
    assert store.gaps("a") == []
    assert store.missing() == {"a": 0}


def test_gaps_survive_a_restart_of_the_archive(ingest: Ingest, clock: ManualClock) -> None:
    write(ingest, msg("a", "samples", samples("a", [1, 2, 5])))
    again = Ingest(ingest.store, base="powerbridge", max_payload=65536, clock=clock)
    again.resume()
    assert [(g.first, g.last) for g in again.tracker.open_gaps("a")] == [(3, 4)]
    assert again.tracker.high("a") == 5


def test_events_mains_health_and_deployment_reach_their_tables(ingest: Ingest) -> None:
    started = TODAY - timedelta(minutes=30)
    ended = started + timedelta(seconds=95)
    write(
        ingest,
        msg("a", "samples", samples("a", [1, 2])),
        msg("a", "events", event("a", 3, "outage_started", started, None)),
        msg("a", "events", event("a", 4, "outage_ended", started, ended)),
        msg("a", "mains", mains("a", "on")),
        msg("a", "health", health("a")),
        msg("a", "deployment", deployment("a")),
        msg("a", "status", b"online"),
    )
    store = ingest.store
    row = store.fleet(epoch_ms(TODAY))[0]
    assert (row.mains, row.online, row.deployment, row.latitude) == (
        "on",
        True,
        "Berlin rack A",
        52.52,
    )
    assert row.outages == 1
    assert row.last_outage_ms == epoch_ms(started)
    assert row.health["cpu_temperature_c"] == 48.5
    outage = store.outages("a", epoch_ms(started) - 1, epoch_ms(TODAY))[0]
    assert (outage.ended_ms, outage.duration_s) == (epoch_ms(ended), 95.0)
    assert [d.name for d in store.deployments("a")] == ["Berlin rack A"]
    assert store.missing() == {"a": 0}  # events share the samples' sequence


@pytest.mark.parametrize(
    ("topic_kind", "payload"),
    [
        ("samples", b"not json"),
        ("samples", b'{"v": 2, "device": "a", "samples": []}'),
        ("samples", b'{"v": 1, "device": "b", "samples": []}'),  # another device's topic
        ("samples", b'{"v": 1, "device": "a", "samples": [{"seq": -1}]}'),
        ("events", b'{"v": 1, "device": "a", "type": "meteor", "seq": 1}'),
        ("mains", b"\xff\xfe"),
        ("status", b"maybe"),
        ("samples", b" " * 1_100_000),  # oversized
        (
            "samples",
            b'{"v":1,"device":"a","samples":[{"seq":1,"ch":1,"ts":"2026-03-14T11:00:00Z","power_w":"x"}]}',
        ),
        (
            "samples",
            b'{"v":1,"device":"a","samples":[{"seq":1,"ch":1,"ts":"2026-03-14T11:00:00Z","power_w":1e400}]}',
        ),
        (
            "samples",
            b'{"v":1,"device":"a","samples":[{"seq":true,"ch":1,"ts":"2026-03-14T11:00:00Z"}]}',
        ),
        (
            "samples",
            b'{"v":1,"device":"a","samples":[{"seq":1,"ch":1,"ts":"2026-03-14T11:00:00"}]}',
        ),
        ("samples", b'{"v":1,"device":"a","samples":[{"seq":1,"ch":1,"ts":"yesterday"}]}'),
        (
            "samples",
            b'{"v":1,"device":"a","samples":[{"seq":1,"ch":1,"ts":"2026-03-14T11:00:00Z","power_w":'
            + b"9" * 400
            + b"}]}",
        ),
    ],
)
def test_bad_payloads_are_counted_and_never_stored(
    ingest: Ingest, topic_kind: str, payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="bridge.archive.ingest"):
        acks = write(ingest, msg("a", topic_kind, payload, mid=3))
    assert "rejected a" in caplog.text
    assert f"powerbridge/a/{topic_kind}" in caplog.text
    assert acks == [3]  # acknowledged, so the broker does not send it forever
    assert sum(ingest.figures.rejected.values()) == 1
    assert ingest.store.sample_count() == 0
    assert ingest.store.devices() == []


def test_gaps_are_asked_for_and_given_up_on_injected_time(
    ingest: Ingest, clock: ManualClock
) -> None:
    asked: list[tuple[str, int, int]] = []
    ingest.request = lambda gap: asked.append((gap.device, gap.first, gap.last))
    write(ingest, msg("a", "samples", samples("a", [1, 10])))
    ingest.tick()
    assert asked == []
    clock.advance(30)
    ingest.tick()
    assert asked == [("a", 2, 9)]
    clock.advance(600)
    ingest.tick()
    write(ingest)
    assert [(g.first, g.last, g.status) for g in ingest.store.gaps("a")] == [(2, 9, "lost")]
    assert ingest.store.fleet(epoch_ms(TODAY))[0].lost == 1


def test_series_are_downsampled_on_the_server(ingest: Ingest) -> None:
    write(ingest, msg("a", "samples", samples("a", range(1, 3601))))
    start = epoch_ms(TODAY - timedelta(hours=1))
    points = ingest.store.series("a", start, epoch_ms(TODAY), 60)
    assert len(points) == 60
    mean, low, high = points[0].values["power_w"] or (0, 0, 0)
    assert low <= mean <= high


def test_retention_deletes_old_samples(ingest: Ingest) -> None:
    write(ingest, msg("a", "samples", samples("a", range(1, 101))))
    cutoff = epoch_ms(TODAY - timedelta(hours=1) + timedelta(seconds=51))
    assert ingest.store.apply_retention(cutoff) == 50
    assert ingest.store.sample_count("a") == 50
