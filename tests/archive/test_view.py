"""The management view through Starlette's test client: pages, JSON, CSV, auth, metrics."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from bridge.archive.ingest import Ingest
from bridge.archive.records import epoch_ms
from bridge.archive.store.sqlite import SqliteStore
from bridge.archive.web.app import create_app
from bridge.clock import ManualClock
from tests.archive.fakes import TODAY
from tests.archive.seed import seed_fleet


@pytest.fixture(scope="module")
def ingest(tmp_path_factory: pytest.TempPathFactory) -> Ingest:
    store = SqliteStore(Path(tmp_path_factory.mktemp("view")) / "archive.db")
    store.create_schema()
    ing = Ingest(store, base="powerbridge", max_payload=4 << 20, clock=ManualClock(wall=TODAY))
    seed_fleet(ing)
    return ing


@pytest.fixture
def client(ingest: Ingest) -> TestClient:
    app = create_app(ingest.store, ingest.figures, lambda: epoch_ms(TODAY), stale_after_s=360)
    return TestClient(app)


def test_fleet_table_flags_devices_whose_newest_sample_is_old(client: TestClient) -> None:
    html = client.get("/").text
    assert html.count("<tr data-device=") == 3
    assert '<tr data-device="paris-rack-a" class="stale-row">' in html
    assert '<tr data-device="berlin-rack-a">' in html
    assert "Berlin rack A" in html
    assert "<script" not in html  # no script, no CDN: works offline
    assert "http://" not in html
    assert "https://" not in html


def test_fleet_json(client: TestClient) -> None:
    devices = {d["device"]: d for d in client.get("/api/fleet").json()["devices"]}
    berlin, paris = devices["berlin-rack-a"], devices["paris-rack-a"]
    # TODAY is 12:00 UTC: 00:00:00 to 12:00:00 inclusive of a day of 1 Hz samples
    assert (berlin["outages"], berlin["stale"], berlin["online"]) == (1, False, True)
    assert berlin["samples_today"] == 12 * 3600 + 1
    assert berlin["newest_sample_age_s"] == 0.0
    assert (paris["stale"], paris["open_gaps"], paris["missing"], paris["online"]) == (
        True, 1, 100, False,
    )  # fmt: skip
    assert paris["mains"] == "off"


def test_device_page_draws_charts_and_outage_bands(client: TestClient) -> None:
    html = client.get("/device/berlin-rack-a").text
    assert html.count('<svg class="chart"') == 2
    assert html.count('class="outage"') == 2  # one band per chart
    assert "Berlin rack A" in html
    week = client.get("/device/berlin-rack-a?range=week").text
    assert "week:" in week


def test_device_json_is_downsampled(client: TestClient) -> None:
    data = client.get("/api/device/berlin-rack-a").json()
    assert 500 <= len(data["series"]) <= 601
    point = data["series"][10]["power_w"]
    assert point["min"] <= point["mean"] <= point["max"]
    assert data["outages"][0]["duration_s"] == 2400.0


def test_unknown_devices_are_404(client: TestClient) -> None:
    assert client.get("/device/nobody").status_code == 404
    assert client.get("/api/device/bad..id").status_code == 404


def test_csv_export_of_a_time_range(client: TestClient) -> None:
    reply = client.get(
        "/device/berlin-rack-a/export.csv",
        params={"from": "2026-03-14T11:00:00Z", "to": "2026-03-14T11:01:00Z"},
    )
    lines = reply.text.strip().splitlines()
    assert reply.headers["content-type"].startswith("text/csv")
    assert lines[0].startswith("seq,time,channel,voltage_v")
    assert len(lines) == 61
    assert lines[1].split(",")[1] == "2026-03-14T11:00:00.000Z"


def test_metrics_for_prometheus(client: TestClient) -> None:
    text = client.get("/metrics").text
    assert 'powerbridge_archive_last_sample_age_seconds{device="paris-rack-a"} 600.0' in text
    assert 'powerbridge_archive_missing_seq{device="paris-rack-a"} 100.0' in text
    assert 'powerbridge_archive_outages{device="berlin-rack-a"} 1.0' in text
    assert "powerbridge_archive_devices 3.0" in text


def test_a_password_closes_every_page_but_the_health_probe(ingest: Ingest) -> None:
    app = create_app(
        ingest.store,
        ingest.figures,
        lambda: epoch_ms(TODAY),
        username="ops",
        password="s3cret",  # noqa: S106
    )
    client = TestClient(app)
    assert client.get("/").status_code == 401
    assert client.get("/metrics").status_code == 401
    assert client.get("/healthz").status_code == 200
    wrong = base64.b64encode(b"ops:nope").decode()
    assert client.get("/", headers={"Authorization": f"Basic {wrong}"}).status_code == 401
    right = base64.b64encode(b"ops:s3cret").decode()
    assert client.get("/", headers={"Authorization": f"Basic {right}"}).status_code == 200
