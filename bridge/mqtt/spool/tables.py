"""The spool's tables and what others may read of them, without opening a :class:`Spool`.

The schema, the item kinds and the canonical sample body live here with the
read-only accessors: ``powerbridge deployment status`` opens the bridge database
read-only (possibly while the bridge runs) and reads the spool only through them,
so every SQL string that touches the spool's tables stays inside this package.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from bridge.model import Reading
from bridge.mqtt.contract import READING_FIELDS, SamplePayload, dumps

KIND_SAMPLE: Final = 0
KIND_EVENT: Final = 1

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS spool_items (
    seq INTEGER PRIMARY KEY,
    kind INTEGER NOT NULL,
    created REAL NOT NULL,
    body BLOB NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS spool_meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS spool_sequence (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    reserved INTEGER NOT NULL,
    boot_id TEXT,
    clean INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class SpoolItem:
    """One spooled message: a sample (its JSON object inside a batch) or an event (a payload)."""

    seq: int
    kind: int
    body: bytes

    @property
    def is_event(self) -> bool:
        return self.kind == KIND_EVENT


def sample_body(seq: int, reading: Reading) -> bytes:
    """The canonical JSON of one sample as it appears in a ``samples`` batch."""
    values = {name: getattr(reading, name) for name in READING_FIELDS}
    return dumps(SamplePayload(seq, reading.time, reading.channel, values).to_dict())


# ------------------------------------------------------------------ read-only accessors


@dataclass(frozen=True, slots=True)
class SpoolFigures:
    """What a read-only look at the spool shows."""

    depth: int
    """Items not yet acknowledged by the broker."""
    oldest_created: float | None
    """Wall-clock time (epoch seconds) of the oldest of them, ``None`` when there are none."""
    dropped: int
    """Items deleted undelivered, in all (persistent)."""


def read_dropped(conn: sqlite3.Connection) -> int:
    """The persistent count of items deleted undelivered (0 before the first)."""
    row = conn.execute("SELECT value FROM spool_meta WHERE key = 'dropped'").fetchone()
    return int(row[0]) if row else 0


def read_figures(conn: sqlite3.Connection) -> SpoolFigures:
    """Depth, oldest undelivered item and dropped count, read without changing anything."""
    depth, oldest = conn.execute(
        "SELECT COUNT(*), MIN(created) FROM spool_items WHERE delivered = 0"
    ).fetchone()
    return SpoolFigures(int(depth), None if oldest is None else float(oldest), read_dropped(conn))


def read_newest_sample_created(conn: sqlite3.Connection) -> float | None:
    """Wall-clock time (epoch seconds) of the newest sample still in the spool, if any."""
    row = conn.execute(
        f"SELECT created FROM spool_items WHERE kind = {KIND_SAMPLE} ORDER BY seq DESC LIMIT 1"  # noqa: S608 - constant
    ).fetchone()
    return None if row is None else float(row[0])


def ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, merged inclusive ranges: ``[1, 2, 3, 7]`` → ``[(1, 3), (7, 7)]``."""
    out: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if out and seq == out[-1][1] + 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out
