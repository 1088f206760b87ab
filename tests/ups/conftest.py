"""Fixtures of the UPS tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ups._upsd import DummyUpsd


@pytest.fixture
def upsd(tmp_path: Path) -> Iterator[DummyUpsd]:
    """A real upsd with the dummy-ups driver, on line with a full battery."""
    server = DummyUpsd(tmp_path / "nut")
    server.start(ups_status="OL", battery_charge=100, battery_runtime=1800, ups_load=20)
    yield server
    server.stop()
