"""The embedded archive: one SQLite file in WAL mode (the demo's and a home lab's).

Writes commit with ``synchronous=FULL``: the archive acknowledges a message to the
broker only after its rows are committed, so a commit must survive a power cut of
the archive's machine, not only a crash of the process.  Readers (the management
view) use connections of their own and never block the writer (WAL).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bridge.archive.records import SampleRow
from bridge.archive.store.base import SAMPLE_COLUMNS, Span, SqlStore
from bridge.archive.store.schema import COMMON, QUANTITY_COLUMNS

SAMPLES = f"""
CREATE TABLE IF NOT EXISTS samples (
    device TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    ch INTEGER NOT NULL,
    {QUANTITY_COLUMNS},
    PRIMARY KEY (device, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS samples_by_time ON samples (device, ts);
"""


class SqliteStore(SqlStore):
    """The archive in one SQLite file."""

    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def describe(self) -> str:
        return f"SQLite {self.path}"

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA cache_size=-65536")
        return conn

    def create_schema(self) -> None:
        self.conn.executescript(COMMON + SAMPLES)

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[None]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _insert_samples(
        self, cur: sqlite3.Cursor, rows: list[SampleRow], spans: list[Span]
    ) -> list[SampleRow]:
        del spans  # one table, no partitions
        marks = ", ".join("?" for _ in SAMPLE_COLUMNS)
        sql = f"INSERT OR IGNORE INTO samples VALUES ({marks})"  # noqa: S608 - constant
        cur.execute("SAVEPOINT batch")
        before = self.conn.total_changes
        cur.executemany(sql, rows)
        if self.conn.total_changes - before == len(rows):
            cur.execute("RELEASE batch")
            return rows
        # Some were already stored (a redelivered batch): insert again one by one, to
        # know which rows are new.  Rare, and only as costly as the batch is long.
        cur.execute("ROLLBACK TO batch")
        cur.execute("RELEASE batch")
        inserted: list[SampleRow] = []
        for row in rows:
            cur.execute(sql, row)
            if cur.rowcount == 1:
                inserted.append(row)
        return inserted

    def apply_retention(self, cutoff_ms: int) -> int:
        conn = self.conn
        with self._transaction(conn):
            deleted = conn.execute("DELETE FROM samples WHERE ts < ?", (cutoff_ms,)).rowcount
            conn.execute("DELETE FROM daily WHERE day < ?", (cutoff_ms - cutoff_ms % 86_400_000,))
            conn.execute("DELETE FROM health WHERE time < ?", (cutoff_ms,))
        return int(deleted)
