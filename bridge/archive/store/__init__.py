"""The archive's databases: SQLite (embedded default) and PostgreSQL (fleets).

:func:`open_store` picks one from ``archive.database``; both are a
:class:`~bridge.archive.store.base.SqlStore`.
"""

from __future__ import annotations

from pathlib import Path

from bridge.archive.store.base import SqlStore
from bridge.archive.store.batch import Batch, DeviceUpdate
from bridge.archive.store.rows import DeploymentRow, FleetRow, GapRow, OutageRow, Point

__all__ = [
    "Batch",
    "DeploymentRow",
    "DeviceUpdate",
    "FleetRow",
    "GapRow",
    "OutageRow",
    "Point",
    "SqlStore",
    "open_store",
]


def open_store(url: str) -> SqlStore:
    """The store for ``url`` (``sqlite:///path`` or ``postgresql://…``); schema not yet made."""
    if url.startswith(("postgresql://", "postgres://")):
        from bridge.archive.store.postgres import PostgresStore

        return PostgresStore(url)
    if url.startswith("sqlite:///"):
        from bridge.archive.store.sqlite import SqliteStore

        return SqliteStore(Path(url.removeprefix("sqlite://")))
    raise ValueError(f"unsupported database URL {url!r}")
