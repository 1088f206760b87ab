"""What every archive database does, in SQL both SQLite and PostgreSQL understand.

Times are ``BIGINT`` epoch milliseconds (UTC) in every table: one representation
for both databases, cheap to compare and to bucket for charts, and a natural
partition key.  The dialects differ only in how samples are written in bulk, in
partitioning and retention, and in their placeholders (:class:`SqlStore` subclasses).

One :class:`Batch` is written in one transaction: its samples and events, the
latest mains, health, deployment and status of each device it touches, and the
devices' gap bookkeeping.  Samples are keyed by ``(device, seq)`` and written
idempotently: a batch delivered twice (at-least-once) changes nothing the second time,
and only rows actually inserted are counted.  The rows a store takes and gives
are in :mod:`.batch` (what is written) and :mod:`.rows` (what queries return).
"""

from __future__ import annotations

import contextlib
import json
import threading
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any, Final

from bridge.archive.gaps import Gap
from bridge.archive.records import QUANTITIES, SampleRow, epoch_ms
from bridge.archive.store.batch import (
    DAY_MS,
    Batch,
    DeviceUpdate,
    Span,
    day_start,
    span_of,
    spans_of,
)
from bridge.archive.store.rows import DeploymentRow, FleetRow, GapRow, OutageRow, Point
from bridge.mqtt.contract import EventPayload

# Also exported: what the dialects and the writer import from here (the other rows are
# imported here too, for older code; the package exports them).
__all__ = ["CHART_QUANTITIES", "DAY_MS", "SAMPLE_COLUMNS", "Span", "SqlStore", "span_of"]

SAMPLE_COLUMNS: Final = ("device", "seq", "ts", "ch", *QUANTITIES)
CHART_QUANTITIES: Final = ("power_w", "voltage_v")


class SqlStore(ABC):
    """A database behind the archive; subclasses bring the dialect."""

    placeholder: str = "?"
    kind: str = "sql"

    def __init__(self) -> None:
        self._local = threading.local()

    # -- dialect ----------------------------------------------------------------------
    @abstractmethod
    def _connect(self) -> Any:
        """A new connection (one per thread)."""

    @abstractmethod
    def create_schema(self) -> None: ...

    @abstractmethod
    def _insert_samples(
        self, cur: Any, rows: list[SampleRow], spans: list[Span]
    ) -> list[SampleRow]:
        """Insert ``rows`` (whose :class:`Span` s are ``spans``), skipping ``(device, seq)``
        already present; return those inserted (``rows`` itself if all)."""

    @abstractmethod
    def _transaction(self, conn: Any) -> Any:
        """A context manager around one write transaction."""

    @abstractmethod
    def apply_retention(self, cutoff_ms: int) -> int:
        """Delete samples older than ``cutoff_ms``; return how many (or partitions) went."""

    @abstractmethod
    def describe(self) -> str:
        """Where the data is, for logs and ``archive check`` (no password)."""

    # -- connections ----------------------------------------------------------------
    @property
    def conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def reset(self) -> None:
        """Forget this thread's connection (after the database went away)."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            # A dead connection may fail to close in any way; it is dropped all the same.
            with contextlib.suppress(Exception):
                conn.close()

    def close(self) -> None:
        self.reset()

    def _q(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        cur = self.conn.cursor()
        try:
            cur.execute(self._q(sql), params)
            rows = list(cur.fetchall())
        finally:
            cur.close()
        return rows

    def ping(self) -> None:
        self._all("SELECT 1")

    # -- writing ------------------------------------------------------------------------
    def write(self, batch: Batch) -> int:
        """Write ``batch`` in one transaction; return the number of samples inserted."""
        conn = self.conn
        with self._transaction(conn):
            cur = conn.cursor()
            spans: list[Span] = []
            inserted: list[SampleRow] = []
            if batch.samples:
                spans = batch.spans or spans_of(batch.samples)
                inserted = self._insert_samples(cur, batch.samples, spans)
                if len(inserted) != len(batch.samples):
                    spans = spans_of(inserted)
            self._count_days(cur, spans)
            self._write_events(cur, batch.events)
            self._write_lost(cur, batch.lost, batch.received_ms)
            self._write_devices(cur, batch, spans)
            cur.close()
        return len(inserted)

    def _count_days(self, cur: Any, spans: list[Span]) -> None:
        counts: dict[tuple[str, int], int] = defaultdict(int)
        for span in spans:
            for day, count in span.days.items():
                counts[(span.device, day)] += count
        if counts:
            cur.executemany(
                self._q(
                    "INSERT INTO daily (device, day, samples) VALUES (?, ?, ?) "
                    "ON CONFLICT (device, day) DO UPDATE SET samples = daily.samples + "
                    "excluded.samples"
                ),
                [(d, day, n) for (d, day), n in counts.items()],
            )

    def _write_events(self, cur: Any, events: list[EventPayload]) -> None:
        for e in events:
            cur.execute(
                self._q(
                    "INSERT INTO events (device, seq, type, mains_seq, ts, started, ended, "
                    "duration_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
                ),
                (
                    e.device, e.seq, e.type, e.mains_seq, epoch_ms(e.ts), epoch_ms(e.started),
                    None if e.ended is None else epoch_ms(e.ended), e.duration_s,
                ),
            )  # fmt: skip
            started = epoch_ms(e.started)
            if e.type == "outage_started":
                cur.execute(
                    self._q(
                        "INSERT INTO outages (device, started) VALUES (?, ?) ON CONFLICT DO NOTHING"
                    ),
                    (e.device, started),
                )
            else:
                ended = None if e.ended is None else epoch_ms(e.ended)
                cur.execute(
                    self._q(
                        "INSERT INTO outages (device, started, ended, duration_s) "
                        "VALUES (?, ?, ?, ?) ON CONFLICT (device, started) DO UPDATE SET "
                        "ended = excluded.ended, duration_s = excluded.duration_s"
                    ),
                    (e.device, started, ended, e.duration_s),
                )

    def _write_devices(self, cur: Any, batch: Batch, spans: list[Span]) -> None:
        now = batch.received_ms
        newest: dict[str, tuple[int, int]] = {}
        for span in spans:
            best = newest.get(span.device)
            if best is None or span.newest_ts > best[0]:
                newest[span.device] = (span.newest_ts, span.newest_seq)
        names = set(batch.devices) | set(newest)
        for name in sorted(names):
            cur.execute(
                self._q(
                    "INSERT INTO devices (device, first_seen, last_seen) VALUES (?, ?, ?) "
                    "ON CONFLICT (device) DO UPDATE SET last_seen = excluded.last_seen"
                ),
                (name, now, now),
            )
            if name in newest:
                ts, seq = newest[name]
                cur.execute(
                    self._q(
                        "UPDATE devices SET newest_ts = ?, newest_seq = ? WHERE device = ? "
                        "AND (newest_ts IS NULL OR newest_ts < ?)"
                    ),
                    (ts, seq, name, ts),
                )
            update = batch.devices.get(name)
            if update is not None:
                self._write_update(cur, name, update, now)

    def _write_update(self, cur: Any, name: str, u: DeviceUpdate, now: int) -> None:
        sets: dict[str, Any] = {}
        if u.high is not None:
            sets["high_seq"] = u.high
        if u.online is not None:
            sets["online"] = 1 if u.online else 0
        if u.mains is not None:
            sets.update(
                mains_state=u.mains.state.value,
                mains_since=epoch_ms(u.mains.since),
                mains_seq=u.mains.seq,
                outage_count=u.mains.outage_count,
            )
        if u.health is not None:
            sets.update(health=json.dumps(u.health, sort_keys=True), health_time=u.health_ms)
            cur.execute(
                self._q(
                    "INSERT INTO health (device, time, body) VALUES (?, ?, ?) "
                    "ON CONFLICT DO NOTHING"
                ),
                (name, u.health_ms or now, json.dumps(u.health, sort_keys=True)),
            )
        if u.deployment is not None:
            d = u.deployment
            if d.active:
                sets.update(deployment=d.name, latitude=d.latitude, longitude=d.longitude)
            started = epoch_ms(d.started)
            cur.execute(
                self._q(
                    "INSERT INTO deployments (device, started, ended, name, latitude, longitude,"
                    " software_version, config_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (device, started) DO UPDATE SET ended = excluded.ended, "
                    "name = excluded.name, latitude = excluded.latitude, "
                    "longitude = excluded.longitude"
                ),
                (
                    name, started, None if d.ended is None else epoch_ms(d.ended), d.name,
                    d.latitude, d.longitude, d.software_version, d.config_sha256,
                ),
            )  # fmt: skip
        if u.filled:
            cur.execute(
                self._q("UPDATE devices SET gaps_filled = gaps_filled + ? WHERE device = ?"),
                (u.filled, name),
            )
        if sets:
            columns = ", ".join(f"{k} = ?" for k in sets)
            cur.execute(
                self._q(f"UPDATE devices SET {columns} WHERE device = ?"),  # noqa: S608 - own names
                (*sets.values(), name),
            )
        if u.gaps is not None:
            cur.execute(self._q("DELETE FROM gaps WHERE device = ? AND status = 'open'"), (name,))
            cur.executemany(
                self._q(
                    "INSERT INTO gaps (device, first_seq, last_seq, opened, status, requests, "
                    "last_request) VALUES (?, ?, ?, ?, 'open', ?, ?)"
                ),
                [
                    (name, g.first, g.last, g.opened_ms, g.requests, g.last_request_ms)
                    for g in u.gaps
                ],
            )

    def _write_lost(self, cur: Any, lost: list[Gap], now: int) -> None:
        """Record gaps given up (before the open ones are rewritten)."""
        cur.executemany(
            self._q(
                "INSERT INTO gaps (device, first_seq, last_seq, opened, status, requests, "
                "last_request, closed) VALUES (?, ?, ?, ?, 'lost', ?, ?, ?) "
                "ON CONFLICT (device, first_seq) DO UPDATE SET status = 'lost', "
                "last_seq = excluded.last_seq, requests = excluded.requests, "
                "closed = excluded.closed"
            ),
            [
                (g.device, g.first, g.last, g.opened_ms, g.requests, g.last_request_ms, now)
                for g in lost
            ],
        )

    # -- reading: gap bookkeeping ----------------------------------------------------
    def load_tracking(self) -> tuple[dict[str, int], list[Gap]]:
        """Each device's highest ``seq`` and its open gaps, to resume after a restart."""
        highs = {
            str(d): int(h)
            for d, h in self._all("SELECT device, high_seq FROM devices WHERE high_seq IS NOT NULL")
        }
        gaps = [
            Gap(str(d), int(f), int(la), int(o), int(r), None if lr is None else int(lr))
            for d, f, la, o, r, lr in self._all(
                "SELECT device, first_seq, last_seq, opened, requests, last_request FROM gaps "
                "WHERE status = 'open' ORDER BY device, first_seq"
            )
        ]
        return highs, gaps

    def missing(self) -> dict[str, int]:
        """Per device, sequence numbers absent between its first and last archived one.

        Computed from the stored rows (samples and events), not from any bookkeeping:
        this is the figure the loss tests assert to be 0.
        """
        rows = self._all(
            "SELECT device, MAX(seq) - MIN(seq) + 1 - COUNT(*) FROM ("
            "SELECT device, seq FROM samples UNION ALL SELECT device, seq FROM events) AS s "
            "GROUP BY device"
        )
        return {str(d): int(n) for d, n in rows}

    def sequence_span(self, device: str) -> tuple[int, int, int]:
        """``(count, lowest, highest)`` sequence numbers of ``device`` stored (samples, events)."""
        row = self._all(
            "SELECT COUNT(*), MIN(seq), MAX(seq) FROM (SELECT seq FROM samples WHERE device = ? "
            "UNION ALL SELECT seq FROM events WHERE device = ?) AS s",
            (device, device),
        )[0]
        return int(row[0]), int(row[1] or 0), int(row[2] or 0)

    def gaps(self, device: str | None = None) -> list[GapRow]:
        where, params = ("WHERE device = ?", (device,)) if device else ("", ())
        return [
            GapRow(str(d), int(f), int(la), int(o), str(s), int(r))
            for d, f, la, o, s, r in self._all(
                "SELECT device, first_seq, last_seq, opened, status, requests FROM gaps "  # noqa: S608
                f"{where} ORDER BY device, first_seq",
                params,
            )
        ]

    def stored_count(self) -> int:
        """Samples stored, from the daily counters (cheap on any size of archive)."""
        return int(self._all("SELECT COALESCE(SUM(samples), 0) FROM daily")[0][0])

    def sample_count(self, device: str | None = None) -> int:
        where, params = ("WHERE device = ?", (device,)) if device else ("", ())
        return int(self._all(f"SELECT COUNT(*) FROM samples {where}", params)[0][0])  # noqa: S608

    # -- reading: the management view ------------------------------------------------
    def fleet(self, now_ms: int) -> list[FleetRow]:
        today = day_start(now_ms)
        rows = self._all(
            "SELECT d.device, d.deployment, d.latitude, d.longitude, d.mains_state, d.online, "
            "d.last_seen, d.newest_ts, COALESCE(t.samples, 0), COALESCE(g.n, 0), "
            "COALESCE(g.missing, 0), COALESCE(l.n, 0), COALESCE(o.n, 0), o.last, d.health "
            "FROM devices d "
            "LEFT JOIN daily t ON t.device = d.device AND t.day = ? "
            "LEFT JOIN (SELECT device, COUNT(*) AS n, SUM(last_seq - first_seq + 1) AS missing "
            "  FROM gaps WHERE status = 'open' GROUP BY device) g ON g.device = d.device "
            "LEFT JOIN (SELECT device, COUNT(*) AS n FROM gaps WHERE status = 'lost' "
            "  GROUP BY device) l ON l.device = d.device "
            "LEFT JOIN (SELECT device, COUNT(*) AS n, MAX(started) AS last FROM outages "
            "  GROUP BY device) o ON o.device = d.device "
            "ORDER BY d.device",
            (today,),
        )
        return [
            FleetRow(
                device=str(r[0]), deployment=r[1], latitude=r[2], longitude=r[3], mains=r[4],
                online=None if r[5] is None else bool(r[5]), last_seen_ms=r[6],
                newest_sample_ms=r[7], samples_today=int(r[8]), open_gaps=int(r[9]),
                missing=int(r[10]), lost=int(r[11]), outages=int(r[12]), last_outage_ms=r[13],
                health=json.loads(r[14]) if r[14] else {},
            )
            for r in rows
        ]  # fmt: skip

    def devices(self) -> list[str]:
        return [str(r[0]) for r in self._all("SELECT device FROM devices ORDER BY device")]

    def series(
        self, device: str, start_ms: int, end_ms: int, buckets: int, channel: int = 1
    ) -> list[Point]:
        """``CHART_QUANTITIES`` between two times, averaged into at most ``buckets`` buckets."""
        width = max(1, (end_ms - start_ms) // max(1, buckets))
        aggregates = ", ".join(
            f"AVG({q}), MIN({q}), MAX({q}), COUNT({q})" for q in CHART_QUANTITIES
        )
        rows = self._all(
            f"SELECT (ts - ?) / ? AS b, {aggregates} FROM samples "  # noqa: S608 - own names
            "WHERE device = ? AND ts >= ? AND ts < ? AND ch = ? GROUP BY b ORDER BY b",
            (start_ms, width, device, start_ms, end_ms, channel),
        )
        out: list[Point] = []
        for row in rows:
            values: dict[str, tuple[float, float, float] | None] = {}
            for i, name in enumerate(CHART_QUANTITIES):
                avg, low, high, count = row[1 + 4 * i : 5 + 4 * i]
                values[name] = None if not count else (float(avg), float(low), float(high))
            out.append(Point(start_ms + int(row[0]) * width, values))
        return out

    def outages(self, device: str, start_ms: int, end_ms: int) -> list[OutageRow]:
        rows = self._all(
            "SELECT started, ended, duration_s FROM outages WHERE device = ? AND started < ? "
            "AND (ended IS NULL OR ended >= ?) ORDER BY started",
            (device, end_ms, start_ms),
        )
        return [OutageRow(int(s), None if e is None else int(e), d) for s, e, d in rows]

    def all_outages(self, device: str, limit: int = 20) -> list[OutageRow]:
        rows = self._all(
            "SELECT started, ended, duration_s FROM outages WHERE device = ? "
            "ORDER BY started DESC LIMIT ?",
            (device, limit),
        )
        return [OutageRow(int(s), None if e is None else int(e), d) for s, e, d in rows]

    def deployments(self, device: str) -> list[DeploymentRow]:
        rows = self._all(
            "SELECT started, ended, name, latitude, longitude, software_version FROM deployments "
            "WHERE device = ? ORDER BY started DESC",
            (device,),
        )
        return [
            DeploymentRow(int(s), None if e is None else int(e), str(n), float(la), float(lo), v)
            for s, e, n, la, lo, v in rows
        ]

    def export(self, device: str, start_ms: int, end_ms: int) -> Iterator[tuple[Any, ...]]:
        """Every sample of ``device`` in ``[start, end)``, oldest first, in chunks."""
        columns = ", ".join(SAMPLE_COLUMNS[1:])
        after = -1
        while True:
            rows = self._all(
                f"SELECT {columns} FROM samples WHERE device = ? AND seq > ? AND ts >= ? "  # noqa: S608
                "AND ts < ? ORDER BY seq LIMIT 10000",
                (device, after, start_ms, end_ms),
            )
            if not rows:
                return
            yield from rows
            after = int(rows[-1][0])
