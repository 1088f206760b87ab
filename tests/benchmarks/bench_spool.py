"""Spool benchmarks: replaying a day of samples, and what one hour at 1 Hz costs the disk.

* ``replay``: 86,400 samples (one day at 1 Hz) are spooled while the broker is
  away; then the broker comes back.  Measured: time from the connection until the
  broker has acknowledged every sample (the spool is empty) — target ≤ 10 s — and
  until an independent subscriber has received every sequence number.
* ``hour_at_1hz``: one hour of samples at 1 Hz (simulated time, real disk), each
  acknowledged shortly after it is published, in a child process traced with
  ``strace -c``: ``fsync``/``fdatasync`` calls (target ≤ 720 per hour) and bytes
  written (``/proc/self/io``).  The cost of opening and closing the database is
  measured separately (a run with one sample) and subtracted.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bridge.broker.runner import prepare
from bridge.db import connect, db_path
from bridge.model import Reading
from bridge.mqtt.spool import KIND_SAMPLE, SCHEMA, sample_body
from tests.mqtt.collector import Collector
from tests.mqtt.harness import Harness, bridge_config

ROOT = Path(__file__).resolve().parents[2]
DAY = 86_400
TARGET_REPLAY_S = 10.0
TARGET_FSYNCS_PER_HOUR = 720


def _fill(data_dir: Path, count: int) -> None:
    """Spool ``count`` samples as the bridge would have, one second apart (bulk, for speed)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    conn = connect(db_path(data_dir))
    conn.executescript(SCHEMA)
    start = datetime.now(UTC) - timedelta(seconds=count)
    rows = []
    for seq in range(1, count + 1):
        when = start + timedelta(seconds=seq)
        reading = Reading(
            time=when,
            monotonic=float(seq),
            meter="pzem004t",
            voltage_v=229.8 + (seq % 7) * 0.1,
            current_a=0.52,
            power_w=118.0 + (seq % 13),
            frequency_hz=50.0,
            power_factor=0.95,
            energy_wh=15_000.0 + seq * 0.033,
        )
        rows.append((seq, KIND_SAMPLE, when.timestamp(), sample_body(seq, reading)))
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO spool_items (seq, kind, created, body) VALUES (?,?,?,?)", rows)
    conn.execute("COMMIT")
    conn.close()


def replay(count: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    broker = prepare(work / "mosquitto")
    try:
        config = bridge_config(broker, work, "spool: {batch_size: 500}")
        _fill(Path(config.device.data_dir), count)
        spool_bytes = db_path(Path(config.device.data_dir)).stat().st_size
        broker.start()
        collector = Collector(broker, broker.observer, filters=("powerbridge/+/samples",))
        collector.start()
        harness = Harness(config, discovery=[])
        assert harness.spool.depth == count
        started = time.monotonic()
        harness.start()
        harness.wait_connected(30)
        connected = time.monotonic()
        harness.wait_drained(120)
        acknowledged = time.monotonic()
        connected = harness.publisher.stats.connected_at or connected
        collector.wait_for(lambda: len(collector.unique_seqs()) >= count, 120, "all samples")
        received = time.monotonic()
        gaps = collector.gaps(count)
        stats = harness.publisher.stats
        harness.stop()
        collector.stop()
    finally:
        broker.kill()
        shutil.rmtree(work, ignore_errors=True)
    ack_s = acknowledged - connected
    return {
        "samples": count,
        "spool_file_mb": round(spool_bytes / 1e6, 1),
        "batch_size": 500,
        "connect_s": round(connected - started, 3),
        "all_acknowledged_s": round(ack_s, 3),
        "all_received_by_subscriber_s": round(received - connected, 3),
        "samples_per_s": round(count / ack_s),
        "messages": stats.replay_batches,
        "gaps": len(gaps),
        "target_s": TARGET_REPLAY_S,
        "meets_target": ack_s <= TARGET_REPLAY_S,
    }


HOUR_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from bridge.clock import ManualClock
    from bridge.config.bridge import SpoolConfig
    from bridge.model import Reading
    from bridge.mqtt.spool import Spool

    def io():
        fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
        return int(fields["wchar"]), int(fields["write_bytes"])

    clock = ManualClock()
    spool = Spool.open(Path({data!r}), SpoolConfig(flush_interval={interval}), clock=clock)
    wchar0, block0 = io()
    for i in range({count}):
        reading = Reading(time=clock.utcnow(), monotonic=clock.monotonic(), meter="pzem004t",
                          voltage_v=229.9, current_a=0.52, power_w=118.4, frequency_hz=50.0,
                          power_factor=0.95, energy_wh=15230.0 + i * 0.033)
        item = spool.add_sample(reading)
        clock.advance(0.05)       # the PUBACK comes back within milliseconds
        spool.acknowledge([item.seq])
        spool.tick()
        clock.advance(0.95)
    wchar1, block1 = io()
    print(json.dumps({{"sync_points": spool.sync_points, "checkpoints": spool.checkpoints,
                      "wchar": wchar1 - wchar0, "write_bytes": block1 - block0,
                      "depth": spool.depth}}))
    spool.close()
    """
)


def _traced(count: int, interval: float) -> tuple[int, dict[str, Any]]:
    data = tempfile.mkdtemp(prefix="bench-hour-")
    script = HOUR_SCRIPT.format(root=str(ROOT), data=data, count=count, interval=interval)
    strace = shutil.which("strace")
    try:
        if strace is None:
            out = subprocess.run(
                [sys.executable, "-c", script], capture_output=True, text=True, check=True
            )
            return -1, json.loads(out.stdout)
        summary = Path(data) / "strace.txt"
        out = subprocess.run(
            [
                strace,
                "-f",
                "-c",
                "-o",
                str(summary),
                "-e",
                "trace=fsync,fdatasync",
                sys.executable,
                "-c",
                script,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        calls = 0
        for line in summary.read_text().splitlines():
            match = re.match(
                r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(fsync|fdatasync)$", line
            )
            if match:
                calls += int(match.group(1))
        return calls, json.loads(out.stdout)
    finally:
        shutil.rmtree(data, ignore_errors=True)


def hour_at_1hz(seconds: int, interval: float = 5.0) -> dict[str, Any]:
    # The baseline opens the database, spools one sample and closes (with its final sync).
    baseline, _ = _traced(1, interval)
    total, figures = _traced(seconds + 1, interval)
    scale = 3600 / seconds
    fsyncs = (total - baseline) * scale if total >= 0 else None
    per_run = 3600 / (seconds + 1)
    return {
        "simulated_seconds": seconds,
        "flush_interval_s": interval,
        "fsyncs_per_hour": None if fsyncs is None else round(fsyncs),
        "fsyncs_open_and_close": baseline,
        "sync_points_per_hour": round(figures["sync_points"] * per_run),
        "checkpoints_per_hour": round(figures["checkpoints"] * per_run, 1),
        "bytes_written_per_hour_mb": round(figures["wchar"] * per_run / 1e6, 2),
        "block_bytes_written_per_hour_mb": round(figures["write_bytes"] * per_run / 1e6, 2),
        "filesystem": _filesystem(tempfile.gettempdir()),
        "target_fsyncs_per_hour": TARGET_FSYNCS_PER_HOUR,
        "meets_target": fsyncs is not None and fsyncs <= TARGET_FSYNCS_PER_HOUR,
        "measured_with": "strace -f -c -e trace=fsync,fdatasync" if total >= 0 else "counters",
    }


def _filesystem(path: str) -> str:
    try:
        out = subprocess.run(["df", "-T", path], capture_output=True, text=True, check=True)
        return out.stdout.splitlines()[-1].split()[1]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "unknown"


def run(smoke: bool = False) -> dict[str, Any]:
    return {
        "replay": replay(2_000 if smoke else DAY),
        "hour_at_1hz": hour_at_1hz(360 if smoke else 3600),
    }
