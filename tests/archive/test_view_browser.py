"""The management view of a real archive, rendered by headless Chromium.

A running ``ArchiveService`` (SQLite, a real Mosquitto session, uvicorn on a free
loopback port) with a seeded fleet; Chromium loads the pages as an operator's browser
would, offline: nothing but the archive is reachable.  With
``POWERBRIDGE_SCREENSHOTS=DIR`` the screenshots are kept in DIR (docs/img holds the
ones in docs/fleets.md).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.archive import config as archive_config
from bridge.archive.ingest import Ingest
from bridge.archive.service import ArchiveService
from bridge.archive.store.sqlite import SqliteStore
from bridge.broker.runner import Mosquitto
from bridge.clock import ManualClock
from tests.archive.browser import dump_dom, screenshot
from tests.archive.fakes import TODAY
from tests.archive.harness import write_config
from tests.archive.seed import seed_fleet

pytestmark = [pytest.mark.integration, pytest.mark.realtime]


@pytest.fixture
def archive(broker: Mosquitto, tmp_path: Path) -> Iterator[ArchiveService]:
    db = tmp_path / "archive.db"
    clock = ManualClock(wall=TODAY)
    store = SqliteStore(db)
    store.create_schema()
    seed_fleet(Ingest(store, base="powerbridge", max_payload=4 << 20, clock=clock))
    store.close()
    config = archive_config.load(write_config(tmp_path, broker, f"sqlite:///{db}"))
    service = ArchiveService(config, clock=clock)
    service.start()
    try:
        yield service
    finally:
        service.stop()


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return int(width), int(height)


def keep(path: Path) -> None:
    target = os.environ.get("POWERBRIDGE_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


def test_fleet_page_in_chromium(archive: ArchiveService, tmp_path: Path) -> None:
    assert archive.served is not None
    url = archive.served.url
    dom = dump_dom(url)
    rows = re.findall(r'<tr data-device="([^"]+)"( class="stale-row")?>', dom)
    assert rows == [("berlin-rack-a", ""), ("lab-pi", ""), ("paris-rack-a", ' class="stale-row"')]
    assert "3 devices · 1 with no sample newer than 6 min" in dom
    shot = screenshot(url, tmp_path / "archive-fleet.png", (1760, 300))
    assert png_size(shot) == (1760, 300)
    keep(shot)


def test_device_page_in_chromium(archive: ArchiveService, tmp_path: Path) -> None:
    assert archive.served is not None
    url = archive.served.url + "device/berlin-rack-a"
    dom = dump_dom(url)
    assert dom.count('<svg class="chart"') == 2
    lines = re.findall(r'<polyline class="line" points="([^"]+)"', dom)
    assert len(lines) == 2
    assert 500 <= len(lines[0].split()) <= 601  # downsampled on the server
    assert dom.count('<rect class="outage"') == 2
    assert "Berlin rack A" in dom
    shot = screenshot(url, tmp_path / "archive-device.png", (1000, 1100))
    assert png_size(shot) == (1000, 1100)
    keep(shot)
