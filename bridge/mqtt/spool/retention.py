"""The spool's bounds and its store of acknowledged items kept for resending.

What :class:`bridge.mqtt.spool.Spool` deletes, and when: acknowledged items after
``keep_acknowledged`` or beyond ``keep_acknowledged_mb``, undelivered items after
``max_age``, the oldest items beyond ``max_size_mb``; and the reads ``cmd/resend`` and
replay make (``items_between``, ``backlog``).  Functions on the spool's own connection,
with the figures they need passed in: the :class:`~bridge.mqtt.spool.Spool` keeps the
counters (see the package docstring).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from typing import Final

from bridge.mqtt.spool.tables import KIND_SAMPLE, SpoolItem, ranges

__all__ = [
    "SIZE_HEADROOM",
    "prune_age",
    "prune_delivered",
    "prune_size",
    "scan_items",
    "used_bytes",
]

SIZE_HEADROOM: Final = 0.9
"""When over ``max_size_mb``, delete down to this fraction of it."""

BACKLOG_SQL: Final = (
    "SELECT seq, kind, body FROM spool_items"
    " WHERE seq > ? AND seq < ? AND delivered = 0 ORDER BY seq LIMIT ?"
)
"""Undelivered items after a cursor and before a bound."""
BETWEEN_SQL: Final = (
    "SELECT seq, kind, body FROM spool_items WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?"
)
"""Items after a cursor up to a bound, delivered or not."""


def scan_items(
    conn: sqlite3.Connection,
    sql: str,
    *,
    after: int,
    bound: int,
    limit: int,
    skip: Collection[int],
) -> list[SpoolItem]:
    """Items ``sql`` selects after ``after``, oldest first, at most ``limit``, none in ``skip``."""
    out: list[SpoolItem] = []
    cursor = after
    while len(out) < limit:
        rows = conn.execute(sql, (cursor, bound, limit - len(out))).fetchall()
        if not rows:
            break
        for seq, kind, body in rows:
            cursor = seq
            if seq not in skip:
                out.append(SpoolItem(int(seq), int(kind), bytes(body)))
    return out


def used_bytes(conn: sqlite3.Connection) -> int:
    """Bytes of the database in use (the spool dominates it)."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)


def _delete_oldest_delivered(conn: sqlite3.Connection, top: int, count: int) -> int:
    return conn.execute(
        "DELETE FROM spool_items WHERE seq IN (SELECT seq FROM spool_items"
        " WHERE delivered = 1 AND seq < ? ORDER BY seq LIMIT ?)",
        (top, count),
    ).rowcount


def prune_delivered(
    conn: sqlite3.Connection, *, cutoff: float, top: int, pending: int, budget_mb: float
) -> int:
    """Acknowledged items leave after the ``cutoff``, or the oldest of them when they take
    more than ``budget_mb`` (the newest row, ``top``, always stays: it carries the
    sequence's high-water mark); ``pending`` items are undelivered.  Return rows removed."""
    removed = conn.execute(
        "DELETE FROM spool_items WHERE delivered = 1 AND created < ? AND seq < ?",
        (cutoff, top),
    ).rowcount
    delivered = int(
        conn.execute("SELECT COUNT(*) FROM spool_items WHERE delivered = 1").fetchone()[0]
    )
    total = delivered + max(0, pending)
    if delivered and total:
        budget = budget_mb * 1_000_000
        share = used_bytes(conn) * delivered / total
        if share > budget:
            count = max(1, int((share - budget * SIZE_HEADROOM) / (share / delivered)))
            removed += _delete_oldest_delivered(conn, top, count)
    return removed


def prune_age(conn: sqlite3.Connection, *, cutoff: float, top: int) -> int:
    """Delete undelivered items created before ``cutoff``, scanning from the oldest."""
    dropped = 0
    while True:
        rows = conn.execute(
            "SELECT seq, created FROM spool_items WHERE delivered = 0 AND seq < ?"
            " ORDER BY seq LIMIT 5000",
            (top,),
        ).fetchall()
        old = [seq for seq, created in rows if created < cutoff]
        if not old:
            return dropped
        for lo, hi in ranges(old):
            dropped += conn.execute(
                "DELETE FROM spool_items WHERE seq BETWEEN ? AND ? AND delivered = 0",
                (lo, hi),
            ).rowcount
        if len(old) < len(rows):
            return dropped  # reached items that are young enough (time order ≈ seq order)


def prune_size(
    conn: sqlite3.Connection, *, limit_mb: float, top: int, keep: bool, pending: int
) -> tuple[bool, int]:
    """Over ``limit_mb``: acknowledged items kept for resending go first (with ``keep``:
    they were delivered once), then the oldest undelivered samples (``pending`` of them
    are undelivered).  Return (over the limit, undelivered samples deleted: dropped)."""
    limit = limit_mb * 1_000_000
    used = used_bytes(conn)
    if used <= limit:
        return False, 0
    rows = int(conn.execute("SELECT COUNT(*) FROM spool_items").fetchone()[0])
    per_item = used / max(1, rows)
    count = max(1, int((used - limit * SIZE_HEADROOM) / per_item))
    if keep:
        count -= _delete_oldest_delivered(conn, top, count)
    if count <= 0 or pending <= 0:
        return True, 0
    return True, conn.execute(
        "DELETE FROM spool_items WHERE seq IN ("
        " SELECT seq FROM spool_items WHERE kind = ? AND delivered = 0 AND seq < ?"
        " ORDER BY seq LIMIT ?)",
        (KIND_SAMPLE, top, count),
    ).rowcount
