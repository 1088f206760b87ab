"""Deployment records in the bridge database."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.deployment import records
from bridge.deployment.records import Deployment
from bridge.mqtt.contract import DeploymentPayload

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def make(name: str, started: datetime) -> Deployment:
    return Deployment(
        name=name,
        latitude=48.137,
        longitude=11.575,
        started=started,
        device_id="rack-a",
        software_version="0.1.0",
        config_sha256="ab" * 32,
        config_path="/etc/powerbridge/bridge.yaml",
    )


def test_start_close_and_history(tmp_path: Path) -> None:
    conn = records.open_db(tmp_path)
    assert records.current(conn) is None
    first, previous = records.start(conn, make("Rack A", T0))
    assert previous is None
    assert first.id is not None
    assert first.active
    second, previous = records.start(conn, make("Rack B", T0 + timedelta(days=1)))
    assert previous is not None
    assert previous.name == "Rack A"
    assert previous.ended == T0 + timedelta(days=1)
    assert records.current(conn) == second
    closed = records.close(conn, T0 + timedelta(days=2))
    assert closed is not None
    assert closed.ended == T0 + timedelta(days=2)
    assert records.current(conn) is None
    assert records.close(conn, T0 + timedelta(days=3)) is None
    names = [(d.name, d.ended) for d in records.history(conn)]
    assert names == [("Rack A", T0 + timedelta(days=1)), ("Rack B", T0 + timedelta(days=2))]
    assert records.latest(conn) == closed
    conn.close()

    ro = records.open_db_readonly(tmp_path)
    assert ro is not None
    assert records.latest(ro) == closed
    with pytest.raises(Exception, match="readonly"):
        ro.execute("DELETE FROM deployment")
    ro.close()


def test_readonly_open_of_a_missing_database(tmp_path: Path) -> None:
    assert records.open_db_readonly(tmp_path / "nothing") is None
    assert not (tmp_path / "nothing").exists()


def test_bad_coordinates_are_refused(tmp_path: Path) -> None:
    conn = records.open_db(tmp_path)
    bad = make("x", T0)
    with pytest.raises(ValueError, match="latitude"):
        records.start(conn, dataclasses.replace(bad, latitude=91.0))


def test_payload_round_trip() -> None:
    payload = make("Rack A", T0).to_payload()
    raw = payload.encode()
    back = DeploymentPayload.decode(raw)
    assert back == payload
    assert back.active
    assert b'"v":1' in raw
    assert b'"latitude":48.137' in raw
    assert b'"ended":null' in raw
