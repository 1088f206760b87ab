"""The archive on a real PostgreSQL: COPY, idempotence, monthly partitions, retention."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.archive import config as archive_config
from bridge.archive.ingest import Ingest
from bridge.archive.records import epoch_ms
from bridge.archive.service import ArchiveService
from bridge.archive.store.postgres import PostgresStore, month_bounds
from bridge.broker.runner import Mosquitto
from bridge.clock import ManualClock
from tests.archive.fakes import TODAY, event, msg, samples
from tests.archive.harness import wait_for, write_config
from tests.archive.postgres import Postgres
from tests.archive.test_service import DEVICE, publish_samples
from tests.helpers.mqtt import TestClient

pytestmark = [pytest.mark.integration, pytest.mark.realtime]


def make(url: str) -> Ingest:
    store = PostgresStore(url)
    store.create_schema()
    ingest = Ingest(store, base="powerbridge", max_payload=4 << 20, clock=ManualClock(wall=TODAY))
    ingest.resume()
    return ingest


def write(ingest: Ingest, *messages: object) -> int:
    batch, _ = ingest.build(list(messages))  # type: ignore[arg-type]
    return ingest.store.write(batch)


def test_month_bounds() -> None:
    start, end, name = month_bounds(epoch_ms(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)))
    assert name == "samples_2026_12"
    assert start == epoch_ms(datetime(2026, 12, 1, tzinfo=UTC))
    assert end == epoch_ms(datetime(2027, 1, 1, tzinfo=UTC))


def test_copy_is_idempotent_and_counts_only_new_rows(pg_url: str) -> None:
    ingest = make(pg_url)
    assert write(ingest, msg("a", "samples", samples("a", range(1, 2001)))) == 2000
    # a redelivered batch overlapping new rows: the slow path stores only the new ones
    assert write(ingest, msg("a", "samples", samples("a", range(1500, 2501)))) == 500
    store = ingest.store
    assert store.sample_count("a") == 2500
    assert store.missing() == {"a": 0}
    assert store.fleet(epoch_ms(TODAY))[0].samples_today == 2500
    store.close()


def test_a_channel_the_column_cannot_hold_is_refused_not_retried_forever(pg_url: str) -> None:
    # ch 40000 does not fit PostgreSQL's SMALLINT: written, it would fail the transaction
    # again and again while the broker's queue grows.  It is refused at decoding instead.
    ingest = make(pg_url)
    bad = samples("a", range(1, 11)).replace(b'"ch":1', b'"ch":40000')
    assert write(ingest, msg("a", "samples", bad), msg("a", "samples", samples("a", [11]))) == 1
    assert ingest.figures.rejected == {"malformed": 1}
    ingest.store.close()


def test_samples_land_in_monthly_partitions_and_retention_drops_whole_months(
    pg_url: str,
) -> None:
    ingest = make(pg_url)
    store = ingest.store
    assert isinstance(store, PostgresStore)
    jan = datetime(2026, 1, 31, 23, 0, tzinfo=UTC)
    write(ingest, msg("a", "samples", samples("a", range(1, 7201), start=jan)))  # spans Feb 1
    write(
        ingest,
        msg("a", "events", event("a", 7201, "outage_started", jan, None)),
        msg("a", "samples", samples("a", range(7202, 7300), start=TODAY - timedelta(days=1))),
    )
    assert store.partitions() == ["samples_2026_01", "samples_2026_02", "samples_2026_03"]
    assert store.missing() == {"a": 0}
    removed = store.apply_retention(epoch_ms(datetime(2026, 2, 15, tzinfo=UTC)))
    assert removed == 1
    assert store.partitions() == ["samples_2026_02", "samples_2026_03"]
    assert store.sample_count("a") == 7200 - 3599 + 98  # seq 3600 is at 00:00 on 1 February
    store.close()


def test_a_second_archive_on_the_same_database_resumes_the_gap_bookkeeping(pg_url: str) -> None:
    first = make(pg_url)
    write(first, msg("a", "samples", samples("a", [1, 2, 9])))
    first.store.close()
    second = make(pg_url)
    assert [(g.first, g.last) for g in second.tracker.open_gaps("a")] == [(3, 8)]
    second.store.close()


def test_a_postgresql_restart_mid_stream_loses_nothing(
    broker: Mosquitto, postgres: Postgres, pg_url: str, tmp_path: Path
) -> None:
    """Samples keep coming while PostgreSQL restarts: retried, never acknowledged early."""
    config = archive_config.load(write_config(tmp_path, broker, pg_url))
    service = ArchiveService(config)
    service.start()
    bridge = TestClient(broker, broker.bridge(), client_id="bridge-sim").connect()
    try:
        assert service.connected.wait(10)
        time.sleep(0.3)
        publish_samples(bridge, 1, 2000)
        wait_for(lambda: service.ingest.figures.samples_stored > 0, 10, "the first samples")
        postgres.stop()
        publish_samples(bridge, 2001, 4000)
        wait_for(lambda: service.ingest.figures.db_failures > 0, 10, "a failed write")
        postgres.start()
        publish_samples(bridge, 4001, 6000)
        wait_for(lambda: service.ingest.figures.samples_stored == 6000, 60, "6000 samples")
        check = PostgresStore(pg_url)
        assert check.sample_count(DEVICE) == 6000
        assert check.missing() == {DEVICE: 0}
        check.close()
    finally:
        bridge.disconnect()
        service.stop()
