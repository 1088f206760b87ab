"""The durable store-and-forward spool: nothing is published before it is on disk.

Every sample and every outage event gets a sequence number and is committed to
the bridge's SQLite database (WAL) *before* it is handed to MQTT; it leaves the
spool only when the broker has acknowledged it (QoS 1 PUBACK).  Sequence numbers
are shared by samples and events, persistent and strictly increasing, so a
consumer detects gaps and drops duplicates (delivery is at least once).

Durability and SD-card wear
---------------------------
Each sample is its own small transaction, committed with ``synchronous=NORMAL``:
the commit appends a frame to the WAL with ``write()`` and no ``fsync``.  A
committed transaction is then in the operating system's page cache, so it
survives a crash or ``SIGKILL`` of the bridge.  What a *power cut of the Pi*
can lose is what the kernel had not yet written: the spool makes a *sync point*
(one ``fdatasync`` of the WAL file, which makes every frame committed so far
durable, exactly what a ``synchronous=FULL`` commit would do) at most once per
``spool.flush_interval``, and only when something was committed since the last
one.  A WAL checkpoint takes the place of a sync point every
:data:`CHECKPOINT_COMMITS` commits; it costs three ``fsync`` calls (the WAL and the
database during the checkpoint, the new WAL header at the next commit), so it
pushes the next sync point back by two more intervals: the bridge never makes more
than one ``fsync`` per ``flush_interval`` on average.  A power cut therefore loses
at most the samples of the last ``flush_interval`` (three times that right after a
checkpoint, i.e. about twice an hour at 1 Hz), and acknowledgements of that period
(those samples are sent again: duplicates, never gaps in what was already durable).

Sequence numbers survive a power cut too.  The WAL frames lost in a power cut may
include the newest samples, which had already been published: a rebooted bridge
that continued after the newest *surviving* row would reuse their numbers.  So the
spool keeps, durably, a reservation :data:`SEQ_BLOCK` numbers ahead of use, with the
kernel's boot id and a clean-shutdown flag (table ``spool_sequence``).  After a kill
of the process (same boot: the page cache kept every commit) or a clean stop, the
sequence continues without a gap; after an unclean reboot it continues after the
reservation — a gap, which is the honest signal that samples may have been lost.

Acknowledgements are applied lazily, inside the next write, so that a sample's
insertion and the deletion of the previous one touch the same page.

Acknowledged items, kept for resending
--------------------------------------
A broker's acknowledgement is not the end of a sample's journey: a broker that dies
before it saves its queue loses what it acknowledged.  So with
``spool.keep_acknowledged`` (7 days by default) an acknowledged item is only marked
delivered, and kept — at most ``keep_acknowledged`` long and ``keep_acknowledged_mb``
in all, oldest deleted first — so that an archive that finds a gap can ask for the range
again (``cmd/resend``, :meth:`Spool.items_between`).  With 0 it is deleted at once.

Bounds
------
Undelivered items older than ``spool.max_age`` (by their wall-clock time) and,
when the database grows beyond ``spool.max_size_mb``, the oldest undelivered
*samples* are deleted.  Every such item is counted in :attr:`Spool.dropped`
(persistent, reported in ``health``) and logged: never silently.

The spool is not thread-safe: one thread (the daemon's main loop) owns it.  It
uses a connection of its own (its checkpoints and transactions are its own business).
Its schema and the read-only accessors for other readers are in :mod:`.tables`
(re-exported here); the bounds, the retention of acknowledged items and the reads for
resending in :mod:`.retention`; this module is the writer.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

from bridge.clock import Clock, SystemClock
from bridge.config.bridge import SpoolConfig
from bridge.db import connect, db_path, ensure_schema, transaction
from bridge.log import RepeatedFailure
from bridge.mains.store import read_boot_id
from bridge.model import Reading
from bridge.mqtt.spool.retention import (
    BACKLOG_SQL,
    BETWEEN_SQL,
    SIZE_HEADROOM,
    prune_age,
    prune_delivered,
    prune_size,
    scan_items,
    used_bytes,
)
from bridge.mqtt.spool.tables import (
    KIND_EVENT,
    KIND_SAMPLE,
    SCHEMA,
    SpoolFigures,
    SpoolItem,
    ranges,
    read_dropped,
    read_figures,
    read_newest_sample_created,
    sample_body,
)

__all__ = [
    "CHECKPOINT_COMMITS",
    "CHECKPOINT_FSYNCS",
    "KIND_EVENT",
    "KIND_SAMPLE",
    "PRUNE_INTERVAL_S",
    "SCHEMA",
    "SEQ_BLOCK",
    "SIZE_HEADROOM",
    "Spool",
    "SpoolFigures",
    "SpoolItem",
    "ranges",
    "read_dropped",
    "read_figures",
    "read_newest_sample_created",
    "sample_body",
]

log = logging.getLogger(__name__)

CHECKPOINT_COMMITS: Final = 2000
"""Commits between two WAL checkpoints (about 8 MB of WAL at most)."""
CHECKPOINT_FSYNCS: Final = 3
"""A checkpoint syncs the WAL and the database; the next commit syncs the restarted WAL's header."""
PRUNE_INTERVAL_S: Final = 60.0
"""How often the age and size bounds are enforced."""
SEQ_BLOCK: Final = 1000
"""Sequence numbers reserved durably ahead of use (see :meth:`Spool._reserve`)."""


class Spool:
    """The spool on one SQLite connection (see the module docstring)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        config: SpoolConfig,
        *,
        clock: Clock | None = None,
        boot_id: str | None = None,
    ) -> None:
        self._conn = conn
        self._config = config
        self._clock: Clock = clock or SystemClock()
        ensure_schema(conn, SCHEMA)
        # Checkpoints are ours (at sync points), not SQLite's after an arbitrary commit;
        # commits never fsync (sync points do, see the module docstring).
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute("PRAGMA synchronous=NORMAL")
        self._keep = config.keep_acknowledged > 0
        """Acknowledged items stay, marked delivered, for resending (see the docstring)."""
        if not self._keep:
            # A delivered row is kept only when it is the newest (it carries the sequence
            # high-water mark); older ones are leftovers of an interrupted run.
            conn.execute(
                "DELETE FROM spool_items WHERE delivered = 1"
                " AND seq < (SELECT MAX(seq) FROM spool_items)"
            )
        top = conn.execute(
            "SELECT seq, delivered FROM spool_items ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        self._last_seq = int(top[0]) if top is not None else 0
        self._tombstone: int | None = int(top[0]) if top is not None and top[1] else None
        self._depth = int(
            conn.execute("SELECT COUNT(*) FROM spool_items WHERE delivered = 0").fetchone()[0]
        )
        self._dropped = read_dropped(conn)
        self._dropped_unsaved = False
        """Items lost while the database could not be written, not yet in ``spool_meta``."""
        self._acked: set[int] = set()
        self._dirty = False
        self._next_sync = self._clock.monotonic()
        self._commits_since_checkpoint = 0
        self._next_prune = self._clock.monotonic()
        self._over_limit = RepeatedFailure(log, "spool over its bounds, dropping oldest items")
        self.sync_points = 0
        """Sync points made (each one ``fsync``; a checkpoint :data:`CHECKPOINT_FSYNCS`)."""
        row = conn.execute("PRAGMA database_list").fetchone()
        self._wal_path = f"{row[2]}-wal" if row is not None and row[2] else None
        self.checkpoints = 0
        self._boot_id = boot_id if boot_id is not None else read_boot_id()
        self._reserved = 0
        self._durable_reserved = 0
        self._resume_sequence()

    def _resume_sequence(self) -> None:
        """Continue the sequence where it stopped (after the reservation, if power was cut)."""
        row = self._conn.execute(
            "SELECT reserved, boot_id, clean FROM spool_sequence WHERE id = 1"
        ).fetchone()
        if row is not None:
            reserved, boot_id, clean = int(row[0]), row[1], bool(row[2])
            same_boot = boot_id is not None and boot_id == self._boot_id
            if not clean and not same_boot and reserved > self._last_seq:
                log.warning(
                    "the bridge was not stopped before the machine restarted (power cut?):"
                    " samples of up to the last %.0f s before it may be lost; sequence numbers"
                    " continue at %d, not %d, so that none is ever reused",
                    3 * self._config.flush_interval,
                    reserved + 1,
                    self._last_seq + 1,
                )
                self._last_seq = reserved
            elif clean:
                self._last_seq = max(self._last_seq, reserved)
        self._reserve(self._last_seq + SEQ_BLOCK, clean=False)
        self._sync(self._clock.monotonic(), force=True)

    def _reserve(self, upto: int, *, clean: bool, conn: sqlite3.Connection | None = None) -> None:
        (conn or self._conn).execute(
            "INSERT INTO spool_sequence (id, reserved, boot_id, clean) VALUES (1, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET reserved = excluded.reserved,"
            " boot_id = excluded.boot_id, clean = excluded.clean",
            (upto, self._boot_id, int(clean)),
        )
        self._reserved = upto
        self._dirty = True

    @classmethod
    def open(cls, data_dir: Path, config: SpoolConfig, *, clock: Clock | None = None) -> Spool:
        """Open the spool in the bridge's database under ``data_dir`` (own connection)."""
        return cls(connect(db_path(data_dir)), config, clock=clock)

    # ------------------------------------------------------------------ figures
    @property
    def depth(self) -> int:
        """Items not yet acknowledged by the broker."""
        return max(0, self._depth - len(self._acked))

    @property
    def dropped(self) -> int:
        """Items deleted undelivered because of the age or size bound (persistent)."""
        return self._dropped

    @property
    def last_seq(self) -> int:
        """The highest sequence number handed out (0 before the first)."""
        return self._last_seq

    @property
    def next_seq(self) -> int:
        return self._last_seq + 1

    # ------------------------------------------------------------------ writing
    def add_sample(self, reading: Reading) -> SpoolItem:
        """Commit a reading as the next sample; return it (ready to publish)."""
        seq = self._last_seq + 1
        item = SpoolItem(seq, KIND_SAMPLE, sample_body(seq, reading))
        self._insert(item, reading.time.timestamp())
        return item

    def add_event(self, build: Callable[[int], bytes], created: float | None = None) -> SpoolItem:
        """Commit an event whose payload ``build(seq)`` makes; return it (ready to publish)."""
        seq = self._last_seq + 1
        item = SpoolItem(seq, KIND_EVENT, build(seq))
        when = created if created is not None else self._clock.utcnow().timestamp()
        self._insert(item, when)
        return item

    def _insert(self, item: SpoolItem, created: float) -> None:
        extend = item.seq > self._reserved - SEQ_BLOCK // 2

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO spool_items (seq, kind, created, body) VALUES (?, ?, ?, ?)",
                (item.seq, item.kind, created, item.body),
            )
            if extend:  # half the reservation used: extend it (durable at the next sync point)
                self._reserve(item.seq + SEQ_BLOCK, clean=False, conn=conn)

        try:
            self._write(work, new_top=item.seq)
        except sqlite3.Error:
            if item.kind == KIND_SAMPLE:
                # A sample that cannot be stored (a full disk, an I/O error) is lost: its
                # number is used up all the same, so consumers see a gap, and it is counted.
                # (An event is kept by the publisher and written once the disk allows.)
                self._last_seq = item.seq
                self._dropped += 1
                self._dropped_unsaved = True
            raise
        self._last_seq = item.seq
        self._depth += 1
        if item.seq > self._durable_reserved:
            # Never publish a number that a power cut could hand out again.
            self._sync(self._clock.monotonic(), force=True)

    # ------------------------------------------------------------------ acknowledging
    def acknowledge(self, seqs: Iterable[int]) -> None:
        """The broker has these items: they leave the spool with the next write."""
        self._acked.update(s for s in seqs if s <= self._last_seq)

    # ------------------------------------------------------------------ reading
    def backlog(
        self, *, after: int, before: int, limit: int, exclude: set[int] | None = None
    ) -> list[SpoolItem]:
        """Undelivered items with ``after < seq < before``, oldest first, at most ``limit``.

        Items in ``exclude`` (in flight) and items already acknowledged are skipped.
        """
        skip = self._acked | exclude if exclude else self._acked
        return scan_items(
            self._conn, BACKLOG_SQL, after=after, bound=before, limit=limit, skip=skip
        )

    def items_between(
        self, first: int, last: int, *, limit: int, exclude: set[int] | None = None
    ) -> list[SpoolItem]:
        """Items with ``first <= seq <= last`` still on disk, delivered or not, oldest first.

        What ``cmd/resend`` sends again; items in ``exclude`` (in flight) are skipped.
        """
        skip = exclude or set()
        return scan_items(
            self._conn, BETWEEN_SQL, after=first - 1, bound=last, limit=limit, skip=skip
        )

    # ------------------------------------------------------------------ maintenance
    def tick(self) -> None:
        """Call often from the owning loop: sync point when due, bounds every minute."""
        now = self._clock.monotonic()
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_INTERVAL_S
            self.prune()
        if now < self._next_sync:
            return
        if self._acked:
            self._write(self._touch)  # applies them, then makes the sync point
        else:
            self._sync(now)

    def flush(self) -> None:
        """Apply acknowledgements and make a sync point now (on the way out)."""
        if self._acked:
            self._write(self._touch, sync=False)
        self._sync(self._clock.monotonic(), force=True)

    def close(self) -> None:
        """Flush, record a clean stop (the sequence continues exactly here), close."""
        try:
            if self._acked:
                self._write(self._touch, sync=False)
            self._reserve(self._last_seq, clean=True)
            self._sync(self._clock.monotonic(), force=True)
        finally:
            self._conn.close()

    @staticmethod
    def _touch(conn: sqlite3.Connection) -> None:
        del conn  # a sync point with only acknowledgements (or nothing) to write

    def prune(self) -> int:
        """Enforce ``max_age`` and ``max_size_mb``; return how many items were dropped."""
        if self._keep:
            self._prune_delivered()
        dropped = self._prune_age() + self._prune_size()
        if dropped or self._dropped_unsaved:
            self._dropped += dropped
            self._conn.execute(
                "INSERT INTO spool_meta (key, value) VALUES ('dropped', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (self._dropped,),
            )
            self._dropped_unsaved = False
            self._dirty = True
        if dropped:
            self._over_limit.failed(
                f"dropped {dropped} undelivered item(s), {self._dropped} in all"
            )
        elif self._over_limit.failing:
            self._over_limit.recovered()
        return dropped

    def _prune_delivered(self) -> None:
        """Acknowledged items leave after ``keep_acknowledged`` or beyond its size budget."""
        removed = prune_delivered(
            self._conn,
            cutoff=self._clock.utcnow().timestamp() - self._config.keep_acknowledged,
            top=self._last_seq,
            pending=self._depth,
            budget_mb=self._config.keep_acknowledged_mb,
        )
        if removed:
            self._dirty = True

    def _prune_age(self) -> int:
        """Delete undelivered items older than ``max_age``."""
        cutoff = self._clock.utcnow().timestamp() - self._config.max_age
        dropped = prune_age(self._conn, cutoff=cutoff, top=self._last_seq)
        self._depth -= dropped
        return dropped

    def used_bytes(self) -> int:
        """Bytes of the database in use (the spool dominates it)."""
        return used_bytes(self._conn)

    def _prune_size(self) -> int:
        """Over ``max_size_mb``: see :func:`.retention.prune_size`."""
        over, dropped = prune_size(
            self._conn,
            limit_mb=self._config.max_size_mb,
            top=self._last_seq,
            keep=self._keep,
            pending=self._depth,
        )
        if over and self._keep:
            self._dirty = True
        self._depth -= dropped
        return dropped

    # ------------------------------------------------------------------ transactions
    def _write(
        self,
        work: Callable[[sqlite3.Connection], None],
        *,
        new_top: int | None = None,
        sync: bool = True,
    ) -> None:
        """One transaction: ``work``, then pending acknowledgements; then a sync point if due."""
        with transaction(self._conn) as conn:
            work(conn)
            removed, tombstone = self._apply_acks(
                conn, new_top if new_top is not None else self._last_seq
            )
        self._depth -= removed
        self._tombstone = tombstone
        self._acked.clear()
        self._commits_since_checkpoint += 1
        self._dirty = True
        if sync:
            self._sync(self._clock.monotonic())

    def _sync(self, now: float, *, force: bool = False) -> None:
        """Make everything committed so far durable, if due (or ``force``) and needed."""
        if not self._dirty or (not force and now < self._next_sync):
            return
        cost = 1
        if self._commits_since_checkpoint >= CHECKPOINT_COMMITS and not force:
            # Syncs the WAL, copies it into the database and syncs that.
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self._commits_since_checkpoint = 0
            self.checkpoints += 1
            cost = CHECKPOINT_FSYNCS
        else:
            self._sync_wal()
        self.sync_points += 1
        self._dirty = False
        self._durable_reserved = self._reserved
        self._next_sync = now + cost * self._config.flush_interval

    def _sync_wal(self) -> None:
        """``fdatasync`` the WAL file: every frame committed so far reaches the disk."""
        if self._wal_path is None:
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")  # no file name: be safe
            return
        try:
            fd = os.open(self._wal_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return  # no WAL: everything is in the database file already
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def _apply_acks(self, conn: sqlite3.Connection, top: int) -> tuple[int, int | None]:
        """Delete acknowledged rows; return (rows removed, the new tombstone)."""
        if self._keep:
            removed = 0
            for lo, hi in ranges(self._acked):
                removed += conn.execute(
                    "UPDATE spool_items SET delivered = 1"
                    " WHERE seq BETWEEN ? AND ? AND delivered = 0",
                    (lo, hi),
                ).rowcount
            return removed, None
        tombstone = self._tombstone
        removed = 0
        for lo, hi in ranges(self._acked):
            if hi == top:
                # Keep the newest row (the sequence high-water mark), marked delivered.
                removed += conn.execute(
                    "UPDATE spool_items SET delivered = 1 WHERE seq = ? AND delivered = 0", (top,)
                ).rowcount
                tombstone = top
                hi -= 1  # noqa: PLW2901 - the range is consumed here
            if lo <= hi:
                removed += conn.execute(
                    "DELETE FROM spool_items WHERE seq BETWEEN ? AND ? AND delivered = 0",
                    (lo, hi),
                ).rowcount
        if self._tombstone is not None and self._tombstone < top:
            # A newer row now carries the high-water mark.
            conn.execute("DELETE FROM spool_items WHERE seq = ?", (self._tombstone,))
            if tombstone == self._tombstone:
                tombstone = None
        return removed, tombstone
