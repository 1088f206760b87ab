"""The durable spool: sequence numbers, acknowledgements, bounds, fsync budget, SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from bridge.clock import ManualClock
from bridge.config.bridge import SpoolConfig
from bridge.db import connect, db_path
from bridge.model import Reading
from bridge.mqtt import spool as spool_module
from bridge.mqtt.contract import (
    EventPayload,
    decode_samples,
    encode_sample_batch,
    encode_samples,
)
from bridge.mqtt.spool import KIND_EVENT, KIND_SAMPLE, SEQ_BLOCK, Spool, ranges

ROOT = Path(__file__).resolve().parents[2]


def reading(clock: ManualClock, power: float = 100.0, channel: int = 1) -> Reading:
    return Reading(
        time=clock.utcnow(),
        monotonic=clock.monotonic(),
        meter="pzem004t",
        channel=channel,
        voltage_v=230.0,
        power_w=power,
        energy_wh=1000.0 + power,
    )


def open_spool(tmp_path: Path, clock: ManualClock, **settings: float) -> Spool:
    return Spool.open(tmp_path, SpoolConfig(**settings), clock=clock)  # type: ignore[arg-type]


def test_ranges() -> None:
    assert ranges([7, 1, 3, 2, 2]) == [(1, 3), (7, 7)]
    assert ranges([]) == []


def test_sequence_is_shared_persistent_and_never_reused(tmp_path: Path) -> None:
    clock = ManualClock()
    spool = open_spool(tmp_path, clock)
    first = spool.add_sample(reading(clock, 1.0))
    event = spool.add_event(lambda seq: f'{{"seq":{seq}}}'.encode())
    second = spool.add_sample(reading(clock, 2.0))
    assert (first.seq, event.seq, second.seq) == (1, 2, 3)
    assert (first.kind, event.kind) == (KIND_SAMPLE, KIND_EVENT)
    assert event.body == b'{"seq":2}'
    spool.acknowledge([1, 2, 3])
    spool.flush()
    assert spool.depth == 0
    spool.close()
    # Everything was delivered, yet a reopened spool continues after 3, not at 1.
    again = open_spool(tmp_path, clock)
    assert again.depth == 0
    assert again.add_sample(reading(clock)).seq == 4
    again.close()


def test_sample_body_is_the_contract_shape(tmp_path: Path) -> None:
    clock = ManualClock()
    spool = open_spool(tmp_path, clock)
    item = spool.add_sample(reading(clock, 42.5, channel=2))
    raw = encode_sample_batch("dev", [item.body])
    assert raw == encode_samples("dev", decode_samples(raw))  # byte-identical canonical JSON
    batch = decode_samples(raw)
    assert batch[0].seq == item.seq
    assert batch[0].channel == 2
    assert batch[0].values["power_w"] == 42.5
    assert batch[0].ts == clock.utcnow()
    assert json.loads(item.body)["ts"].endswith("Z")
    spool.close()


def test_acknowledged_items_leave_and_backlog_is_oldest_first(tmp_path: Path) -> None:
    clock = ManualClock()
    spool = open_spool(tmp_path, clock)
    seqs = [spool.add_sample(reading(clock, float(i))).seq for i in range(10)]
    assert spool.depth == 10
    spool.acknowledge([2, 3, 9])
    assert spool.depth == 7
    items = spool.backlog(after=0, before=11, limit=4)
    assert [i.seq for i in items] == [1, 4, 5, 6]
    items = spool.backlog(after=0, before=11, limit=100, exclude={4, 5})
    assert [i.seq for i in items] == [1, 6, 7, 8, 10]
    assert [i.seq for i in spool.backlog(after=6, before=9, limit=100)] == [7, 8]
    spool.flush()
    spool.close()
    reopened = open_spool(tmp_path, clock)
    assert reopened.depth == 7
    assert [i.seq for i in reopened.backlog(after=0, before=99, limit=100)] == [
        s for s in seqs if s not in (2, 3, 9)
    ]
    reopened.close()


def test_newest_row_keeps_the_high_water_mark_without_growing(tmp_path: Path) -> None:
    clock = ManualClock()
    spool = open_spool(tmp_path, clock, keep_acknowledged=0)  # acknowledged: deleted at once
    for _ in range(50):
        item = spool.add_sample(reading(clock))
        spool.acknowledge([item.seq])
    spool.flush()
    rows = connect(db_path(tmp_path)).execute("SELECT COUNT(*) FROM spool_items").fetchone()[0]
    assert rows == 1  # only the delivered tombstone of seq 50
    spool.close()
    assert open_spool(tmp_path, clock).next_seq == 51


def test_age_bound_drops_and_counts(tmp_path: Path) -> None:
    clock = ManualClock()
    spool = open_spool(tmp_path, clock, max_age=3600.0)
    for _ in range(5):
        spool.add_sample(reading(clock))
    clock.advance(1800)
    for _ in range(3):
        spool.add_sample(reading(clock))
    clock.advance(1801)
    assert spool.prune() == 5
    assert spool.dropped == 5
    assert spool.depth == 3
    assert [i.seq for i in spool.backlog(after=0, before=99, limit=99)] == [6, 7, 8]
    spool.close()
    assert open_spool(tmp_path, clock).dropped == 5  # the count is persistent


def test_read_only_accessors_agree_with_the_spool(tmp_path: Path) -> None:
    clock = ManualClock()
    spool = open_spool(tmp_path, clock, max_age=3600.0)
    conn = connect(db_path(tmp_path))
    assert spool_module.read_figures(conn) == spool_module.SpoolFigures(0, None, 0)
    assert spool_module.read_newest_sample_created(conn) is None
    first = clock.utcnow().timestamp()
    for _ in range(3):
        spool.add_sample(reading(clock))
    clock.advance(3601)
    newest = clock.utcnow().timestamp()
    spool.add_sample(reading(clock))
    spool.add_event(lambda seq: b"{}")
    assert spool_module.read_figures(conn) == spool_module.SpoolFigures(5, first, 0)
    assert spool.prune() == 3
    spool.acknowledge([5])
    spool.add_event(lambda seq: b"{}")  # acknowledgements are applied inside the next write
    figures = spool_module.read_figures(conn)
    assert figures == spool_module.SpoolFigures(spool.depth, newest, spool.dropped)
    assert (figures.depth, figures.dropped) == (2, 3)
    assert spool_module.read_newest_sample_created(conn) == newest
    conn.close()
    spool.close()


def test_size_bound_drops_oldest_samples_not_events(tmp_path: Path) -> None:
    clock = ManualClock()
    spool = open_spool(tmp_path, clock, max_size_mb=0.25)
    event = EventPayload("dev", "outage_started", 0, 1, clock.utcnow(), clock.utcnow())
    spool.add_event(lambda _seq: event.encode())
    for _ in range(3_000):
        spool.add_sample(reading(clock))
    assert spool.used_bytes() > 250_000
    dropped = spool.prune()
    while spool.used_bytes() > 250_000:  # deleted pages are reused, not returned
        more = spool.prune()
        assert more > 0
        dropped += more
    assert dropped > 0
    assert spool.dropped == dropped
    assert spool.depth == 3_001 - dropped
    oldest = spool.backlog(after=0, before=10**9, limit=2)
    assert oldest[0].seq == 1  # the event survived
    assert oldest[1].seq == dropped + 2
    spool.close()


def test_at_most_one_fsync_per_flush_interval(tmp_path: Path) -> None:
    clock = ManualClock()
    spool = open_spool(tmp_path, clock, flush_interval=5.0)
    for _ in range(3600):  # one hour at 1 Hz, each sample acknowledged promptly
        item = spool.add_sample(reading(clock))
        clock.advance(0.01)
        spool.acknowledge([item.seq])
        spool.tick()
        clock.advance(0.99)
    fsyncs = spool.sync_points + 2 * spool.checkpoints  # a checkpoint costs three
    assert 700 <= fsyncs <= 720
    assert spool.checkpoints >= 1
    assert spool.depth == 0
    spool.close()


def test_a_sync_point_reaches_the_disk_even_with_nothing_left_to_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The samples were committed before; the sync point must still fdatasync the WAL."""
    synced: list[int] = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(spool_module.os, "fdatasync", counting)
    clock = ManualClock()
    spool = open_spool(tmp_path, clock, flush_interval=5.0)
    item = spool.add_sample(reading(clock))  # first write: a sync point at once
    assert len(synced) == 1
    spool.acknowledge([item.seq])
    spool.add_sample(reading(clock))  # applies the ack; not due yet: no fsync
    assert len(synced) == 1
    clock.advance(5.0)
    spool.tick()  # nothing pending to write, but unsynced commits: fdatasync
    assert len(synced) == 2
    clock.advance(5.0)
    spool.tick()  # nothing new since: no fsync
    assert len(synced) == 2
    spool.close()


def test_idle_spool_makes_no_sync_points(tmp_path: Path) -> None:
    clock = ManualClock()
    spool = open_spool(tmp_path, clock)
    spool.add_sample(reading(clock))
    clock.advance(10)
    spool.tick()
    made = spool.sync_points
    for _ in range(100):
        clock.advance(10)
        spool.tick()
    assert spool.sync_points == made
    spool.close()


def test_committed_samples_survive_sigkill(tmp_path: Path) -> None:
    """Samples are committed (no fsync needed) before add_sample returns."""
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        from pathlib import Path
        sys.path.insert(0, {str(ROOT)!r})
        from tests.mqtt.test_spool import open_spool, reading
        from bridge.clock import ManualClock
        clock = ManualClock()
        spool = open_spool(Path({str(tmp_path)!r}), clock, flush_interval=60.0)
        for i in range(500):
            spool.add_sample(reading(clock, float(i)))
            if i == 99:
                spool.acknowledge(range(1, 51))
        print(spool.last_seq, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout.strip() == "500"
    spool = open_spool(tmp_path, ManualClock())
    assert spool.last_seq == 500
    assert spool.next_seq == 501  # same boot: the page cache kept every commit, no gap
    assert spool.depth == 450  # the acknowledgement of 1..50 was applied with sample 101
    items = spool.backlog(after=0, before=10**9, limit=1000)
    assert [i.seq for i in items] == list(range(51, 501))
    spool.close()


def test_wall_clock_jump_does_not_reorder(tmp_path: Path) -> None:
    clock = ManualClock()
    spool = open_spool(tmp_path, clock)
    spool.add_sample(reading(clock))
    clock.jump_wall(-timedelta(days=1).total_seconds())
    spool.add_sample(reading(clock))
    assert [i.seq for i in spool.backlog(after=0, before=9, limit=9)] == [1, 2]
    spool.close()


def test_a_power_cut_never_makes_the_sequence_reuse_a_number(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    spool = Spool(connect(db_path(tmp_path)), SpoolConfig(), clock=clock, boot_id="boot-1")
    for _ in range(10):
        spool.add_sample(reading(clock))
    published = spool.last_seq
    spool._conn.close()  # no clean stop
    # The power cut lost the WAL frames of the last three samples (already published).
    lost = connect(db_path(tmp_path))
    lost.execute("DELETE FROM spool_items WHERE seq > 7")
    lost.close()
    reopened = Spool(connect(db_path(tmp_path)), SpoolConfig(), clock=clock, boot_id="boot-2")
    assert reopened.next_seq > published
    assert reopened.add_sample(reading(clock)).seq == SEQ_BLOCK + 1
    assert "not stopped before the machine restarted" in caplog.text
    reopened.close()


def test_a_clean_stop_continues_exactly_even_after_a_reboot(tmp_path: Path) -> None:
    clock = ManualClock()
    spool = Spool(connect(db_path(tmp_path)), SpoolConfig(), clock=clock, boot_id="boot-1")
    for _ in range(10):
        spool.add_sample(reading(clock))
    spool.close()
    again = Spool(connect(db_path(tmp_path)), SpoolConfig(), clock=clock, boot_id="boot-2")
    assert again.next_seq == 11
    again.close()


def test_the_reservation_moves_ahead_before_it_is_needed(tmp_path: Path) -> None:
    clock = ManualClock()
    spool = Spool(connect(db_path(tmp_path)), SpoolConfig(), clock=clock, boot_id="boot-1")
    for _ in range(SEQ_BLOCK + 200):
        spool.add_sample(reading(clock))
        clock.advance(1.0)
        spool.tick()
    spool._conn.close()
    reopened = Spool(connect(db_path(tmp_path)), SpoolConfig(), clock=clock, boot_id="boot-2")
    assert reopened.next_seq > SEQ_BLOCK + 200
    reopened.close()


def _fill_the_disk(spool: Spool) -> None:
    """SQLite's own "database or disk is full": no page may be added from now on."""
    conn = spool._conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")


def _free_the_disk(spool: Spool) -> None:
    spool._conn.execute("PRAGMA max_page_count = 1073741823")


def test_samples_lost_to_a_full_disk_are_counted_and_leave_a_gap(tmp_path: Path) -> None:
    clock = ManualClock()
    spool = open_spool(tmp_path, clock)
    before = spool.add_sample(reading(clock, 1.0))
    _fill_the_disk(spool)
    errors: list[str] = []
    for i in range(60):  # 6 s at 0.1 s
        clock.advance(0.1)
        try:
            spool.add_sample(reading(clock, 1000.0 + i))
        except sqlite3.Error as exc:
            errors.append(str(exc))
    failures = len(errors)
    assert set(errors) == {"database or disk is full"}
    assert failures > 0
    assert spool.dropped == failures
    _free_the_disk(spool)
    after = spool.add_sample(reading(clock, 2.0))
    assert after.seq == before.seq + 61  # the lost ones left a gap consumers can see
    spool.prune()
    spool.close()
    reopened = open_spool(tmp_path, clock)
    assert reopened.dropped == failures  # persisted once the disk allowed it
    reopened.close()


# --------------------------------------------------------------------------- kept for resending


def test_acknowledged_items_are_kept_for_resending_within_their_window(tmp_path: Path) -> None:
    clock = ManualClock()
    spool = open_spool(tmp_path, clock, keep_acknowledged=3600)
    items = [spool.add_sample(reading(clock)) for _ in range(10)]
    spool.acknowledge([i.seq for i in items])
    spool.flush()
    assert spool.depth == 0
    assert spool.backlog(after=0, before=100, limit=100) == []  # not replayed as undelivered
    again = spool.items_between(3, 5, limit=100)
    assert [(i.seq, i.body) for i in again] == [(i.seq, i.body) for i in items[2:5]]
    assert [i.seq for i in spool.items_between(1, 10, limit=100, exclude={4})] == [
        1, 2, 3, 5, 6, 7, 8, 9, 10,
    ]  # fmt: skip
    clock.advance(3601)
    spool.add_sample(reading(clock))
    spool.prune()
    # Older than the window: gone, all but the newest row (the sequence's high-water mark).
    assert [i.seq for i in spool.items_between(1, 11, limit=100)] == [11]
    spool.close()


def test_acknowledged_items_are_bounded_by_size(tmp_path: Path) -> None:
    clock = ManualClock()
    spool = open_spool(tmp_path, clock, keep_acknowledged=86400, keep_acknowledged_mb=0.05)
    items = [spool.add_sample(reading(clock)) for _ in range(2000)]
    spool.acknowledge([i.seq for i in items])
    spool.flush()
    spool.prune()
    kept = spool.items_between(1, 2000, limit=5000)
    assert 0 < len(kept) < 2000
    assert kept[-1].seq == 2000  # the oldest went first
    assert spool.dropped == 0  # acknowledged items leaving are not losses
    spool.close()


def test_over_its_size_the_spool_lets_acknowledged_items_go_before_undelivered_ones(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    spool = open_spool(
        tmp_path, clock, keep_acknowledged=86400, keep_acknowledged_mb=100, max_size_mb=0.4
    )
    sent = [spool.add_sample(reading(clock)) for _ in range(6000)]
    spool.acknowledge([i.seq for i in sent])
    spool.flush()
    waiting = [spool.add_sample(reading(clock)) for _ in range(500)]
    spool.flush()
    spool.prune()
    assert spool.dropped == 0  # only acknowledged items had to go
    assert spool.depth == len(waiting)
    assert len(spool.items_between(1, 6000, limit=10_000)) < 6000
    spool.close()
