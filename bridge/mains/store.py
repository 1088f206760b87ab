"""Mains state, held once: the sequence counter, announced changes and the outage history.

:class:`OutageStore` is the one holder of the bridge's mains state.  On disk it keeps
what survives a restart; in memory it keeps the latest change (:attr:`OutageStore.latest`,
the sensor's ``current``) and the outage figures of the ``mains`` payload, so a failing
database never stops mains sensing.  :meth:`OutageStore.announce` records a confirmed
change and returns a :class:`MainsChange`: the change with the outage it opened, kept or
closed; the outage events (``outage_started``, ``outage_ended``) are built from it
here (:meth:`MainsChange.event_payload`), where the outages are.

Tables (prefix ``mains_``, in the bridge's one SQLite database, :mod:`bridge.db`):

* ``mains_counter`` — the per-device sequence number of announced mains changes;
  it only ever grows, so a restarted bridge continues where it stopped.
* ``mains_events`` — the latest announced changes (state, first edge in UTC and on
  the monotonic clock, boot id, source); the newest one is the state a restarted
  bridge resumes.  Older rows are pruned (:data:`KEEP_EVENTS`).
* ``mains_outages`` — one row per outage: start, end, duration, the ``seq`` of the
  change that opened it.  An open outage has ``ended IS NULL``; there is at most one.

Monotonic times are only meaningful within one boot of the machine.  Every row
carries the kernel's boot id; a value read back in another boot is *re-anchored*:
its monotonic time becomes ``now_monotonic - (now_utc - began_utc)``, so that
ages computed from it stay right (to the accuracy of the wall clock).

The store serialises its own transactions with a lock; give it a connection of its
own (``bridge.db.connect`` again — WAL allows many) rather than one shared with a
component that opens transactions from other threads.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from bridge.clock import Clock, SystemClock, parse_utc
from bridge.db import ensure_schema
from bridge.log import RepeatedFailure
from bridge.model import MainsEvent, MainsState, Outage
from bridge.mqtt.contract import EventPayload

log = logging.getLogger(__name__)

BOOT_ID_PATH: Final = Path("/proc/sys/kernel/random/boot_id")
KEEP_EVENTS: Final = 1000
"""Announced changes kept in ``mains_events`` (outages are kept for ever: they are few)."""

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS mains_counter (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS mains_events (
    seq INTEGER PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('on', 'off')),
    began TEXT NOT NULL,
    began_monotonic REAL NOT NULL,
    boot_id TEXT,
    source TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS mains_outages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq INTEGER NOT NULL UNIQUE,
    started TEXT NOT NULL,
    started_monotonic REAL,
    boot_id TEXT,
    ended TEXT,
    ended_seq INTEGER,
    duration_s REAL
);
CREATE INDEX IF NOT EXISTS mains_outages_ended ON mains_outages (ended);
"""


def read_boot_id(path: Path = BOOT_ID_PATH) -> str | None:
    """The kernel's id of the current boot (Linux), or ``None`` where there is none."""
    try:
        value = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return value or None


def _store_time(value: datetime) -> str:
    # Full precision: a restored outage keeps exactly the start time it had.
    return value.astimezone(UTC).isoformat()


@dataclass(frozen=True, slots=True)
class MainsChange:
    """An announced mains state with the outage facts published with it."""

    event: MainsEvent
    outage: Outage | None = None
    """The outage this change opened or kept open (``off``) or closed (``on``)."""
    outage_count: int = 0
    """Outages since the bridge was installed (the open one included)."""
    last_outage: Outage | None = None
    """The most recent outage that has ended."""

    @property
    def continued(self) -> bool:
        """An ``off`` that goes on with an outage opened before (by the bridge's last run)."""
        outage = self.outage
        return (
            self.event.state is MainsState.OFF
            and outage is not None
            and (outage.seq != self.event.seq)
        )

    @property
    def outage_since(self) -> datetime | None:
        """Start of the outage going on (``None`` while the mains is on)."""
        if self.event.state is not MainsState.OFF:
            return None
        return self.outage.started if self.outage is not None else self.event.began

    def event_payload(self, device: str, now: datetime) -> EventPayload | None:
        """The outage event this change causes (numbered ``0``: the spool numbers it), if any."""
        event = self.event
        if event.state is MainsState.OFF and not self.continued:
            return EventPayload(device, "outage_started", 0, event.seq, now, started=event.began)
        closed = self.outage
        if event.state is MainsState.ON and closed is not None:
            return EventPayload(
                device,
                "outage_ended",
                0,
                event.seq,
                now,
                started=closed.started,
                ended=closed.ended,
                duration_s=closed.duration_s,
            )
        return None


class OutageStore:
    """The persistent side of mains sensing (see the module docstring for the tables)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        clock: Clock | None = None,
        boot_id: str | None = None,
        boot_id_path: Path = BOOT_ID_PATH,
    ) -> None:
        self._conn = conn
        self._clock: Clock = clock or SystemClock()
        self.boot_id = (boot_id if boot_id is not None else read_boot_id(boot_id_path)) or None
        self._lock = threading.RLock()
        self._failure = RepeatedFailure(log, "cannot store mains state")
        with self._lock:
            ensure_schema(conn, SCHEMA)
        self.latest = self.last_event()
        """The last announced change (restored at start; kept in memory if the database fails)."""
        self._last_seq = max(self.last_seq(), self.latest.seq if self.latest else 0)
        self._count = self.count()
        self._last_finished = self.last_finished()

    # ------------------------------------------------------------------ in memory
    def take_seq(self) -> int:
        """The next sequence number, above every one handed out before; never raises
        (on a database failure it is counted on in memory)."""
        with self._lock:
            try:
                seq = max(self.next_seq(), self._last_seq + 1)
            except sqlite3.Error as exc:
                self._failure.failed(exc)
                seq = self._last_seq + 1
            self._last_seq = seq
            return seq

    def announce(self, event: MainsEvent) -> MainsChange:
        """Record a confirmed change (on a database failure, in memory only) with its outage."""
        with self._lock:
            self.latest = event
            try:
                outage = self.record(event)
                self._count, self._last_finished = self.count(), self.last_finished()
            except sqlite3.Error as exc:
                self._failure.failed(exc)
                outage = None
            else:
                self._failure.recovered()
            return MainsChange(event, outage, self._count, self._last_finished)

    def opening(self, event: MainsEvent) -> MainsChange:
        """A state announced without a change (``unknown`` at a start), with the stored figures."""
        return MainsChange(event, None, self._count, self._last_finished)

    # ------------------------------------------------------------------ transactions
    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # ------------------------------------------------------------------ sequence
    def next_seq(self) -> int:
        """Allocate the next sequence number (persistent, strictly increasing)."""
        with self._tx() as conn:
            return self._allocate(conn)

    @staticmethod
    def _allocate(conn: sqlite3.Connection) -> int:
        row = conn.execute(
            "SELECT MAX(COALESCE((SELECT seq FROM mains_counter WHERE id = 1), 0),"
            " COALESCE((SELECT MAX(seq) FROM mains_events), 0),"
            " COALESCE((SELECT MAX(seq) FROM mains_outages), 0),"
            " COALESCE((SELECT MAX(ended_seq) FROM mains_outages), 0))"
        ).fetchone()
        seq = int(row[0]) + 1
        conn.execute(
            "INSERT INTO mains_counter (id, seq) VALUES (1, ?)"
            " ON CONFLICT (id) DO UPDATE SET seq = excluded.seq",
            (seq,),
        )
        return seq

    # ------------------------------------------------------------------ recording
    def record(self, event: MainsEvent) -> Outage | None:
        """Store an announced change; open or close the outage it implies.

        Returns the outage the change opened (``off``), the one it closed (``on``),
        or ``None`` (an ``on`` with no outage open, e.g. the first start ever).
        An ``off`` while an outage is already open keeps that outage.
        """
        if event.state not in (MainsState.ON, MainsState.OFF):
            raise ValueError(f"cannot record mains state {event.state!r}")
        with self._tx() as conn:
            return self._record(conn, event)

    def _record(self, conn: sqlite3.Connection, event: MainsEvent) -> Outage | None:
        conn.execute(
            "INSERT INTO mains_events (seq, state, began, began_monotonic, boot_id, source)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                event.seq,
                event.state.value,
                _store_time(event.began),
                event.began_monotonic,
                self.boot_id,
                event.source,
            ),
        )
        conn.execute(
            "INSERT INTO mains_counter (id, seq) VALUES (1, ?)"
            " ON CONFLICT (id) DO UPDATE SET seq = MAX(seq, excluded.seq)",
            (event.seq,),
        )
        conn.execute(
            "DELETE FROM mains_events WHERE seq <= (SELECT MAX(seq) FROM mains_events) - ?",
            (KEEP_EVENTS,),
        )
        open_row = conn.execute(
            "SELECT id, seq, started, started_monotonic, boot_id FROM mains_outages"
            " WHERE ended IS NULL ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if event.state is MainsState.OFF:
            if open_row is not None:
                log.warning(
                    "mains off (seq %d) while outage seq %d is still open; keeping it",
                    event.seq,
                    open_row[1],
                )
                return self._outage(open_row[1:5])
            conn.execute(
                "INSERT INTO mains_outages (seq, started, started_monotonic, boot_id)"
                " VALUES (?, ?, ?, ?)",
                (event.seq, _store_time(event.began), event.began_monotonic, self.boot_id),
            )
            return Outage(
                started=event.began, started_monotonic=event.began_monotonic, seq=event.seq
            )
        if open_row is None:
            return None
        outage_id, seq, started_text, started_mono, boot = open_row
        started = parse_utc(started_text)
        if boot is not None and boot == self.boot_id and started_mono is not None:
            duration = event.began_monotonic - float(started_mono)
        else:
            duration = (event.began - started).total_seconds()
        duration = max(0.0, duration)
        conn.execute(
            "UPDATE mains_outages SET ended = ?, ended_seq = ?, duration_s = ? WHERE id = ?",
            (_store_time(event.began), event.seq, duration, outage_id),
        )
        return Outage(
            started=started,
            started_monotonic=self._monotonic(started, started_mono, boot),
            seq=seq,
            ended=event.began,
            duration_s=duration,
        )

    def open_outage(self, event: MainsEvent) -> None:
        """Record an announced ``off``: an outage starts at ``event.began``."""
        if event.state is not MainsState.OFF:
            raise ValueError("open_outage needs an 'off' event")
        self.record(event)

    def close_outage(self, event: MainsEvent) -> Outage:
        """Record an announced ``on`` that ends the open outage; return the finished outage."""
        if event.state is not MainsState.ON:
            raise ValueError("close_outage needs an 'on' event")
        with self._tx() as conn:
            outage = self._record(conn, event) if self._has_open(conn) else None
            if outage is None:
                raise LookupError("no outage is open")
        return outage

    # ------------------------------------------------------------------ reading
    @staticmethod
    def _has_open(conn: sqlite3.Connection) -> bool:
        row = conn.execute("SELECT 1 FROM mains_outages WHERE ended IS NULL LIMIT 1").fetchone()
        return row is not None

    def _monotonic(self, began: datetime, stored: float | None, boot: str | None) -> float:
        """The stored monotonic time if it is from this boot, else re-anchored on the wall clock."""
        if stored is not None and boot is not None and boot == self.boot_id:
            return float(stored)
        age = max(0.0, (self._clock.utcnow() - began).total_seconds())
        return self._clock.monotonic() - age

    def _outage(self, row: tuple[Any, ...]) -> Outage:
        """An :class:`Outage` from a row of :attr:`_OUTAGE_COLUMNS` (or its first four)."""
        seq, started_text, started_mono, boot = row[:4]
        ended_text, duration = (row[4], row[5]) if len(row) > 4 else (None, None)
        started = parse_utc(started_text)
        return Outage(
            started=started,
            started_monotonic=self._monotonic(started, started_mono, boot),
            seq=int(seq),
            ended=parse_utc(ended_text) if ended_text is not None else None,
            duration_s=None if duration is None else float(duration),
        )

    _OUTAGE_COLUMNS = "seq, started, started_monotonic, boot_id, ended, duration_s"

    def _newest_outage(self, ended: bool) -> Outage | None:
        """The newest outage that has ended (``ended``) or is still open."""
        where = "ended IS NOT NULL" if ended else "ended IS NULL"
        with self._lock:
            row = self._conn.execute(
                f"SELECT {self._OUTAGE_COLUMNS} FROM mains_outages"  # noqa: S608 - constants
                f" WHERE {where} ORDER BY id DESC LIMIT 1"
            ).fetchone()
        return None if row is None else self._outage(row)

    def current(self) -> Outage | None:
        """The open outage, or ``None`` when the mains is on (or was never off)."""
        return self._newest_outage(ended=False)

    def history(self, limit: int = 100) -> list[Outage]:
        """Outages, newest first (an open one included, with ``ended`` ``None``)."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {self._OUTAGE_COLUMNS} FROM mains_outages"  # noqa: S608 - constant
                " ORDER BY id DESC LIMIT ?",
                (max(0, limit),),
            ).fetchall()
        return [self._outage(row) for row in rows]

    def count(self) -> int:
        """Outages announced since the bridge was installed (the open one included)."""
        with self._lock:
            row = self._conn.execute("SELECT COUNT(*) FROM mains_outages").fetchone()
        return int(row[0])

    def last_finished(self) -> Outage | None:
        """The most recent outage that has ended (for ``last_outage_s``)."""
        return self._newest_outage(ended=True)

    def last_event(self) -> MainsEvent | None:
        """The last announced change: the state a restarted bridge resumes."""
        with self._lock:
            row = self._conn.execute(
                "SELECT seq, state, began, began_monotonic, boot_id, source FROM mains_events"
                " ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        if row is None:
            return None
        seq, state, began_text, began_mono, boot, source = row
        began = parse_utc(began_text)
        return MainsEvent(
            state=MainsState(state),
            began=began,
            began_monotonic=self._monotonic(began, began_mono, boot),
            seq=int(seq),
            source=str(source),
        )

    def last_seq(self) -> int:
        """The highest sequence number handed out so far (0 before the first)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT COALESCE((SELECT seq FROM mains_counter WHERE id = 1), 0)"
            ).fetchone()
        return int(row[0])
