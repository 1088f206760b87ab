"""Deployment records: the ``deployment`` table of the bridge's database.

A deployment is one stay of this bridge at one site: a name, coordinates, when it
started and ended, and what ran there (device id, software version, hash of the
configuration file).  At most one deployment is open (``ended IS NULL``) at a time;
starting a new one closes the previous one.  History is kept.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from datetime import datetime
from pathlib import Path

from bridge import db
from bridge.clock import isoformat_utc, parse_utc
from bridge.mqtt.contract import DeploymentPayload

SCHEMA = """
CREATE TABLE IF NOT EXISTS deployment (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    latitude REAL NOT NULL,
    longitude REAL NOT NULL,
    started TEXT NOT NULL,
    ended TEXT,
    device_id TEXT NOT NULL,
    software_version TEXT NOT NULL,
    config_sha256 TEXT NOT NULL,
    config_path TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deployment_open ON deployment (ended);
"""

_COLUMNS = (
    "id, name, latitude, longitude, started, ended, device_id, software_version, "
    "config_sha256, config_path"
)


@dataclass(frozen=True, slots=True)
class Deployment:
    """One deployment; ``ended is None`` while it lasts."""

    name: str
    latitude: float
    longitude: float
    started: datetime
    device_id: str
    software_version: str
    config_sha256: str
    config_path: str
    ended: datetime | None = None
    id: int | None = None

    @property
    def active(self) -> bool:
        return self.ended is None

    def to_payload(self) -> DeploymentPayload:
        """What is published: every payload field is the record's of the same name, but
        ``device``, which is the record's ``device_id``."""
        published = (f.name for f in fields(DeploymentPayload) if f.name != "device")
        return DeploymentPayload(
            device=self.device_id, **{name: getattr(self, name) for name in published}
        )

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (``deployment status --json``): the published fields (without the
        payload version; ``device`` as ``device_id``) with the record's id and config path."""
        published = self.to_payload().to_dict()
        del published["v"], published["device"]
        return {
            "id": self.id,
            **published,
            "device_id": self.device_id,
            "config_path": self.config_path,
        }


def config_sha256(path: Path) -> str:
    """SHA-256 of the configuration file's bytes (lowercase hex)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_coordinates(latitude: float, longitude: float) -> None:
    """Raise ``ValueError`` unless the coordinates are on Earth."""
    if not -90.0 <= latitude <= 90.0:
        raise ValueError(f"latitude {latitude:g} is not within -90–90")
    if not -180.0 <= longitude <= 180.0:
        raise ValueError(f"longitude {longitude:g} is not within -180–180")


def open_db(data_dir: Path) -> sqlite3.Connection:
    """Open the bridge database for writing, with the deployment table."""
    conn = db.connect(db.db_path(data_dir))
    db.ensure_schema(conn, SCHEMA)
    return conn


def open_db_readonly(data_dir: Path) -> sqlite3.Connection | None:
    """Open the bridge database read-only; ``None`` if it does not exist yet.

    Used by ``deployment status`` while the daemon writes: nothing is created,
    the schema is not touched.
    """
    path = db.db_path(data_dir)
    try:
        if not path.is_file():
            return None
    except OSError as exc:  # a directory this user may not enter
        raise sqlite3.OperationalError(f"cannot read {path}: {exc.strerror or exc}") from None
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


@contextmanager
def reading(data_dir: Path) -> Iterator[sqlite3.Connection | None]:
    """:func:`open_db_readonly` for a ``with`` block: closed on leaving."""
    conn = open_db_readonly(data_dir)
    try:
        yield conn
    finally:
        if conn is not None:
            conn.close()


def _row(row: tuple[object, ...]) -> Deployment:
    (id_, name, lat, lon, started, ended, device, version, sha, cfg) = row
    return Deployment(
        id=int(str(id_)),
        name=str(name),
        latitude=float(str(lat)),
        longitude=float(str(lon)),
        started=parse_utc(str(started)),
        ended=None if ended is None else parse_utc(str(ended)),
        device_id=str(device),
        software_version=str(version),
        config_sha256=str(sha),
        config_path=str(cfg),
    )


def _has_table(conn: sqlite3.Connection) -> bool:
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'deployment'"
    ).fetchone()
    return found is not None


def _newest(conn: sqlite3.Connection, where: str) -> Deployment | None:
    if not _has_table(conn):
        return None
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM deployment {where} ORDER BY id DESC LIMIT 1"  # noqa: S608 - constant column list and clause, no user input
    ).fetchone()
    return None if row is None else _row(row)


def current(conn: sqlite3.Connection) -> Deployment | None:
    """The open deployment, if any."""
    return _newest(conn, "WHERE ended IS NULL")


def latest(conn: sqlite3.Connection) -> Deployment | None:
    """The most recent deployment, open or closed."""
    return _newest(conn, "")


def history(conn: sqlite3.Connection) -> list[Deployment]:
    """Every deployment, oldest first."""
    if not _has_table(conn):
        return []
    rows = conn.execute(f"SELECT {_COLUMNS} FROM deployment ORDER BY id").fetchall()  # noqa: S608 - constant column list, no user input
    return [_row(r) for r in rows]


def _close_open(conn: sqlite3.Connection, ended: datetime) -> Deployment | None:
    """Inside a transaction: close the open deployment at ``ended``; it, closed, if any."""
    open_one = current(conn)
    if open_one is None:
        return None
    conn.execute(
        "UPDATE deployment SET ended = ? WHERE id = ?", (isoformat_utc(ended), open_one.id)
    )
    return replace(open_one, ended=ended)


def start(conn: sqlite3.Connection, record: Deployment) -> tuple[Deployment, Deployment | None]:
    """Open ``record``; close the deployment that was still open (returned second)."""
    check_coordinates(record.latitude, record.longitude)
    with db.transaction(conn):
        previous = _close_open(conn, record.started)
        cursor = conn.execute(
            "INSERT INTO deployment (name, latitude, longitude, started, ended, device_id, "
            "software_version, config_sha256, config_path) VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?)",
            (
                record.name,
                record.latitude,
                record.longitude,
                isoformat_utc(record.started),
                record.device_id,
                record.software_version,
                record.config_sha256,
                record.config_path,
            ),
        )
    return replace(record, id=cursor.lastrowid, ended=None), previous


def close(conn: sqlite3.Connection, ended: datetime) -> Deployment | None:
    """Close the open deployment at ``ended``; ``None`` if none was open."""
    with db.transaction(conn):
        return _close_open(conn, ended)
