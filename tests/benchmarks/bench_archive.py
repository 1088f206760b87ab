"""Archive benchmarks, side by side in one run: ingest, catch-up, pages, memory.

Everything real: a private Mosquitto from the shipped configuration, a private
PostgreSQL (Debian's, in a temporary directory, :mod:`tests.archive.postgres`), the
archive as ``powerbridge archive run`` in a child process, and bridges' ``samples``
batches from another child process (:mod:`tests.benchmarks.archive_feed`).

* ``ingest_postgresql`` / ``ingest_sqlite``: a flood of 500-sample batches from 10
  devices through the broker into the archive; the rate is taken from the first stored
  sample to the last (sustained), from the archive's daily counters.
* ``raw_copy``: the same rows ``COPY``\\ ed straight into an identical partitioned table
  of the same database, in the same 20,000-row transactions and the same binary format as
  the archive's, after a ``CHECKPOINT``: the ceiling.
* ``catch_up``: 100 bridges × 1 day at 1 Hz (8.64 M samples) released at once, as
  after a long outage of the site's link; time until all are stored, and the missing
  sequence numbers counted by a query.  The central broker's ``max_queued_messages`` is
  raised for this (docs/fleets.md: size the centre's queue for a catch-up).
* ``pages``: the fleet page (100 devices, a day each) and a device's day chart, p95 of
  40 requests each, over HTTP from the running archive on that catch-up database.
* ``rss``: the archive process (SQLite) at 1,000 samples/s for a minute: peak RSS.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bridge.archive.records import QUANTITIES
from bridge.archive.store import SqlStore
from bridge.archive.store.postgres import (
    COPY_SAMPLES,
    COPY_TYPES,
    SAMPLES_DDL,
    PostgresStore,
    month_bounds,
)
from bridge.archive.store.sqlite import SqliteStore
from bridge.broker.directory import BrokerDirectory, Report
from bridge.broker.runner import BrokerSetup, Mosquitto, free_port, prepare
from tests.archive.postgres import Postgres, remove, start_postgres

ROOT = Path(__file__).resolve().parents[2]
BATCH = 500
PROTOCOL = os.environ.get("BENCH_ARCHIVE_PROTOCOL", "5")
TARGETS = {
    "ingest_postgresql_per_s": 50_000,
    "ingest_vs_raw_copy": 0.60,
    "ingest_sqlite_per_s": 30_000,
    "catch_up_s": 300,
    "fleet_page_p95_ms": 200,
    "day_chart_p95_ms": 300,
    "rss_mb": 150,
}


class Rig:
    """A broker with a ``feeder`` user (writes every bridge's topics) and an archive process."""

    def __init__(self, work: Path, *, max_queued: int | None = None) -> None:
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.broker: Mosquitto = prepare(work / "mosquitto", BrokerSetup(bridges=(), clients=()))
        store = BrokerDirectory(self.broker.directory)
        store.ensure_user("feeder", "user feeder\ntopic write powerbridge/#\n", Report())
        self.feeder_password = store.password("feeder") or ""
        if max_queued is not None:
            conf = self.broker.config_file
            text = conf.read_text().replace(
                "max_queued_messages 10000", f"max_queued_messages {max_queued}"
            )
            conf.write_text(text)
        self.broker.start()
        self.archive: subprocess.Popen[bytes] | None = None
        self.http_port = free_port()

    def start_archive(self, database: str) -> None:
        password = self.work / "archiver.password"
        password.write_text(self.broker.archiver.password + "\n")
        config = self.work / "archive.yaml"
        config.write_text(
            f"archive: {{database: '{database}'}}\n"
            f"http: {{host: 127.0.0.1, port: {self.http_port}}}\n"
            f"mqtt: {{host: 127.0.0.1, port: {self.broker.port}, username: archiver, "
            f"password_file: {password}, protocol: '{PROTOCOL}', client_id: bench-archive}}\n"
        )
        log = (self.work / "archive.log").open("ab")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.archive = subprocess.Popen(
            [sys.executable, "-m", "bridge", "archive", "run", "-c", str(config)],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if "connected to the broker" in (self.work / "archive.log").read_text():
                time.sleep(0.3)
                return
            if self.archive.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError((self.work / "archive.log").read_text()[-3000:])

    def feed(self, name: str, devices: list[str], count: int, *, rate: float = 0) -> Any:
        spec = self.work / f"feed-{name}.json"
        spec.write_text(json.dumps({
            "name": name, "host": "127.0.0.1", "port": self.broker.port, "username": "feeder",
            "password": self.feeder_password, "devices": devices, "count": count,
            "batch": BATCH, "rate": rate, "end": datetime.now(UTC).isoformat(),
        }))  # fmt: skip
        return subprocess.Popen(
            [sys.executable, "-m", "tests.benchmarks.archive_feed", str(spec)],
            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
        )  # fmt: skip

    def rss_mb(self) -> float:
        assert self.archive is not None
        for line in Path(f"/proc/{self.archive.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def close(self) -> None:
        if self.archive is not None and self.archive.poll() is None:
            self.archive.terminate()
            try:
                self.archive.wait(20)
            except subprocess.TimeoutExpired:
                self.archive.kill()
        self.broker.kill()


def wait_stored(store: SqlStore, total: int, timeout: float) -> dict[str, float]:
    """Poll the daily counters until ``total`` samples are stored; the sustained rate."""
    started = time.monotonic()
    first: tuple[float, int] | None = None
    count = 0
    while time.monotonic() - started < timeout:
        count = store.stored_count()
        now = time.monotonic()
        if first is None and count > 0:
            first = (now, count)
        if count >= total:
            break
        time.sleep(0.1)
    end = time.monotonic()
    if count < total or first is None:
        raise RuntimeError(f"only {count} of {total} samples stored within {timeout} s")
    if count > first[1]:
        sustained = (count - first[1]) / max(1e-9, end - first[0])
    else:  # all arrived before the second look (tiny smoke counts)
        sustained = count / max(1e-9, end - started)
    return {"total_s": round(end - started, 2), "per_s": round(sustained)}


def ingest(work: Path, database: str, store: SqlStore, samples: int) -> dict[str, Any]:
    rig = Rig(work)
    try:
        rig.start_archive(database)
        devices = [f"ingest-{i:02d}" for i in range(10)]
        feeder = rig.feed("ingest", devices, samples // len(devices))
        result = wait_stored(store, samples // len(devices) * len(devices), 600)
        feeder.wait(60)
        result["samples"] = samples
        result["missing"] = sum(store.missing().values())
        result["rss_mb"] = round(rig.rss_mb(), 1)
        return result
    finally:
        rig.close()


def raw_copy(url: str, samples: int) -> dict[str, Any]:
    """COPY the same rows straight into a twin of ``samples``: the database's own ceiling."""
    import psycopg

    now_ms = int(time.time() * 1000)
    per_device = samples // 10
    rows = [
        (f"raw-{d:02d}", seq, now_ms - (per_device - seq) * 1000, 1, *(
            {"power_w": 180.0, "voltage_v": 230.1, "current_a": 0.78,
             "energy_wh": 1000 + seq * 0.05}.get(q) for q in QUANTITIES))
        for seq in range(1, per_device + 1)
        for d in range(10)
    ]  # fmt: skip
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SAMPLES_DDL.replace("samples", "samples_raw") + " PARTITION BY RANGE (ts)")  # type: ignore[call-overload]
        for ms in {month_bounds(r[2]) for r in rows[:: max(1, len(rows) // 100)] + rows[-1:]}:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS raw_{ms[2]} PARTITION OF samples_raw "  # type: ignore[call-overload]
                f"FOR VALUES FROM ({ms[0]}) TO ({ms[1]})"
            )
        conn.execute("CREATE INDEX ON samples_raw (device, ts)")
        conn.execute("CHECKPOINT")  # what the ingest left dirty is not written during this
        started = time.monotonic()
        for i in range(0, len(rows), 20_000):
            with (
                conn.transaction(),
                conn.cursor().copy(COPY_SAMPLES.format(table="samples_raw")) as copy,  # type: ignore[arg-type]
            ):
                copy.set_types(COPY_TYPES)
                for row in rows[i : i + 20_000]:
                    copy.write_row(row)
        elapsed = time.monotonic() - started
    return {"samples": len(rows), "s": round(elapsed, 2), "per_s": round(len(rows) / elapsed)}


def timed_get(url: str, count: int) -> dict[str, float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as reply:  # noqa: S310 - our own URL
            reply.read()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p95 = times[max(0, math.ceil(0.95 * len(times)) - 1)]  # nearest rank
    return {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(p95, 1),
            "max_ms": round(times[-1], 1), "count": count}  # fmt: skip


def catch_up_and_pages(work: Path, url: str, per_device: int, devices: int) -> dict[str, Any]:
    rig = Rig(work, max_queued=1_000_000)
    store = PostgresStore(url)
    try:
        rig.start_archive(url)
        names = [f"site{i // 10:02d}-rack-{i % 10}" for i in range(devices)]
        started = time.monotonic()
        feeder = rig.feed("catch-up", names, per_device)
        stored = wait_stored(store, per_device * devices, 900)
        out = feeder.communicate(timeout=120)[0]
        elapsed = time.monotonic() - started
        base = f"http://127.0.0.1:{rig.http_port}/"
        timed_get(base, 3)  # warm up
        result: dict[str, Any] = {
            "devices": devices,
            "samples": per_device * devices,
            "all_stored_s": round(elapsed, 1),
            "sustained_per_s": stored["per_s"],
            "feeder": json.loads(out.decode().strip().splitlines()[-1]),
            "missing": sum(store.missing().values()),
            "rss_mb": round(rig.rss_mb(), 1),
            "fleet_page": timed_get(base, 40),
            "day_chart": timed_get(base + f"device/{names[7]}?range=day", 40),
        }
        return result
    finally:
        store.close()
        rig.close()


def rss_at_rate(work: Path, rate: int, seconds: int) -> dict[str, Any]:
    rig = Rig(work)
    store = SqliteStore(work / "rss.db")
    try:
        rig.start_archive(f"sqlite:///{work / 'rss.db'}")
        devices = [f"rss-{i:02d}" for i in range(10)]
        feeder = rig.feed("rss", devices, rate * seconds // len(devices), rate=rate)
        peak = 0.0
        samples = []
        while feeder.poll() is None:
            rss = rig.rss_mb()
            peak = max(peak, rss)
            samples.append(rss)
            time.sleep(0.5)
        wait_stored(store, rate * seconds // len(devices) * len(devices), 60)
        return {"rate_per_s": rate, "seconds": seconds, "peak_rss_mb": round(peak, 1),
                "final_rss_mb": round(samples[-1] if samples else 0.0, 1),
                "missing": sum(store.missing().values())}  # fmt: skip
    finally:
        store.close()
        rig.close()


def run(smoke: bool = False) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-archive-"))
    pg: Postgres | None = None
    try:
        pg = start_postgres()
        n_pg, n_sqlite = (20_000, 20_000) if smoke else (1_000_000, 600_000)
        per_device, devices = (600, 10) if smoke else (86_400, 100)
        url = pg.database()
        pg_store = PostgresStore(url)
        result: dict[str, Any] = {"targets": TARGETS}
        result["ingest_postgresql"] = ingest(work / "pg", url, pg_store, n_pg)
        pg_store.close()
        result["raw_copy"] = raw_copy(url, n_pg)
        result["ingest_vs_raw_copy"] = round(
            result["ingest_postgresql"]["per_s"] / result["raw_copy"]["per_s"], 3
        )
        sqlite_db = work / "sqlite" / "archive.db"
        sqlite_db.parent.mkdir(parents=True)
        sqlite_store = SqliteStore(sqlite_db)
        result["ingest_sqlite"] = ingest(
            work / "sqlite", f"sqlite:///{sqlite_db}", sqlite_store, n_sqlite
        )
        sqlite_store.close()
        result["catch_up"] = catch_up_and_pages(work / "catch", pg.database(), per_device, devices)
        result["rss"] = rss_at_rate(work / "rss", 1000, 5 if smoke else 60)
        result["load_average"] = os.getloadavg()
        return result
    finally:
        if pg is not None:
            remove(pg)
        shutil.rmtree(work, ignore_errors=True)
