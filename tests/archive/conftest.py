"""Fixtures of the archive's tests: a real PostgreSQL (see :mod:`tests.archive.postgres`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.archive.postgres import Postgres, remove, start_postgres


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    server = start_postgres()
    try:
        yield server
    finally:
        remove(server)


@pytest.fixture
def pg_url(postgres: Postgres) -> str:
    """A fresh, empty database on the session's server."""
    if not postgres.data.exists():
        pytest.fail("the PostgreSQL server's directory is gone")
    return postgres.database()
