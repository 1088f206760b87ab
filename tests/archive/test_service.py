"""The archive service against a real Mosquitto: stores what bridges publish, loses nothing."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from bridge.archive import config as archive_config
from bridge.archive.service import ArchiveService
from bridge.archive.store import Batch, SqlStore
from bridge.archive.store.sqlite import SqliteStore
from bridge.broker.runner import Mosquitto
from tests.archive.fakes import deployment, health, mains, samples
from tests.archive.harness import ArchiveProcess, wait_for, write_config
from tests.helpers.mqtt import TestClient

pytestmark = pytest.mark.integration

DEVICE = "test-bridge"


def publish_samples(bridge: TestClient, first: int, last: int, per_batch: int = 50) -> None:
    for start in range(first, last + 1, per_batch):
        seqs = range(start, min(last, start + per_batch - 1) + 1)
        bridge.publish(f"powerbridge/{DEVICE}/samples", samples(DEVICE, seqs), qos=1)


@pytest.fixture
def bridge(broker: Mosquitto) -> TestClient:
    client = TestClient(broker, broker.bridge(), client_id="bridge-sim").connect()
    yield client  # type: ignore[misc]
    client.disconnect()


def test_archives_what_a_bridge_publishes_and_shows_it(
    broker: Mosquitto, bridge: TestClient, tmp_path: Path
) -> None:
    db = tmp_path / "archive.db"
    config = archive_config.load(write_config(tmp_path, broker, f"sqlite:///{db}"))
    service = ArchiveService(config)
    service.start()
    try:
        assert service.connected.wait(10)
        time.sleep(0.3)  # the subscription is in place once SUBACK came back
        bridge.publish(f"powerbridge/{DEVICE}/mains", mains(DEVICE), retain=True)
        bridge.publish(f"powerbridge/{DEVICE}/health", health(DEVICE), retain=True)
        bridge.publish(f"powerbridge/{DEVICE}/deployment", deployment(DEVICE), retain=True)
        bridge.publish(f"powerbridge/{DEVICE}/status", b"online", retain=True)
        publish_samples(bridge, 1, 1000)
        bridge.publish(f"powerbridge/{DEVICE}/samples", b"garbage", qos=1)
        store = service.store
        wait_for(lambda: store.sample_count(DEVICE) == 1000, 20, "1000 samples stored")
        wait_for(lambda: service.ingest.figures.rejected["malformed"] == 1, 5, "the rejection")
        assert store.missing() == {DEVICE: 0}
        assert service.served is not None
        reply = json.loads(fetch(service.served.url + "api/fleet"))
        (row,) = reply["devices"]
        assert (row["device"], row["mains"], row["online"]) == (DEVICE, "on", True)
        assert row["deployment"] == "Berlin rack A"
        assert row["health"]["cpu_temperature_c"] == 48.5
        metrics = fetch(service.served.url + "metrics")
        assert 'powerbridge_archive_rejected_total{reason="malformed"} 1.0' in metrics
        assert "powerbridge_archive_samples_stored_total 1000.0" in metrics
    finally:
        service.stop()


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 - the archive's own URL
        return str(reply.read().decode())


class FlakyStore(SqliteStore):
    """A database that is down until told otherwise (every write fails)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.down = threading.Event()
        self.failures = 0

    def write(self, batch: Batch) -> int:
        if self.down.is_set():
            self.failures += 1
            raise OSError("database is down")
        return super().write(batch)


def test_a_database_that_is_down_is_retried_while_the_broker_keeps_the_queue(
    broker: Mosquitto, bridge: TestClient, tmp_path: Path
) -> None:
    config = archive_config.load(write_config(tmp_path, broker, f"sqlite:///{tmp_path}/a.db"))
    store = FlakyStore(tmp_path / "a.db")
    service = ArchiveService(config, store=store)
    service.start()
    try:
        assert service.connected.wait(10)
        time.sleep(0.3)
        store.down.set()
        publish_samples(bridge, 1, 5000)
        wait_for(lambda: store.failures >= 3, 10, "retries")
        assert store.sample_count() == 0
        stored_before = service.ingest.figures.samples_stored
        store.down.clear()
        wait_for(lambda: store.sample_count(DEVICE) == 5000, 30, "5000 samples stored")
        assert stored_before == 0
        assert store.missing() == {DEVICE: 0}
    finally:
        service.stop()


def count(store: SqlStore) -> int:
    try:
        return store.sample_count(DEVICE)
    except Exception:  # noqa: BLE001 - the file may be mid-creation
        return -1


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_an_archive_killed_mid_stream_loses_nothing(
    broker: Mosquitto, bridge: TestClient, tmp_path: Path, protocol: str
) -> None:
    """SIGKILL of the archive while a bridge publishes: its persistent session keeps the rest
    (MQTT 3.1.1: clean_session false; MQTT 5: a clean start off and a session expiry)."""
    db = tmp_path / "archive.db"
    config = write_config(tmp_path, broker, f"sqlite:///{db}", extra=f"  protocol: '{protocol}'\n")
    archive = ArchiveProcess(config, tmp_path / "archive.log")
    archive.start()
    try:
        archive.url()
        time.sleep(0.5)
        store = SqliteStore(db)
        publish_samples(bridge, 1, 3000)
        wait_for(lambda: count(store) > 0, 10, "the first samples")
        archive.kill()
        publish_samples(bridge, 3001, 6000)  # queued by the broker for the archive's session
        archive.start()
        publish_samples(bridge, 6001, 8000)
        wait_for(lambda: count(store) == 8000, 30, "8000 samples stored")
        assert store.missing() == {DEVICE: 0}
        store.close()
    finally:
        archive.stop()
