"""``powerbridge archive check`` and ``export`` on a real archive database and broker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.archive.ingest import Ingest
from bridge.archive.store.sqlite import SqliteStore
from bridge.broker.runner import Mosquitto
from bridge.cli import main
from bridge.clock import ManualClock
from tests.archive.fakes import TODAY, msg, samples
from tests.archive.harness import write_config


def seeded(tmp_path: Path) -> Path:
    db = tmp_path / "archive.db"
    store = SqliteStore(db)
    store.create_schema()
    ingest = Ingest(store, base="powerbridge", max_payload=1 << 22, clock=ManualClock(wall=TODAY))
    batch, _ = ingest.build([msg("rack-a", "samples", samples("rack-a", range(1, 121)))])
    store.write(batch)
    store.close()
    return db


@pytest.mark.integration
def test_check_passes_on_a_working_archive_and_names_a_stale_device(
    broker: Mosquitto, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, broker, f"sqlite:///{seeded(tmp_path)}")
    code = main(["archive", "check", "-c", str(config), "--json"])
    report = json.loads(capsys.readouterr().out)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["config"]["status"] == checks["database"]["status"] == "pass"
    assert checks["broker"]["status"] == "pass"
    assert checks["http"]["status"] == "pass"
    # The seeded samples are from a frozen day, long ago for the real clock: stale.
    assert checks["fleet"]["status"] == "fail"
    assert "rack-a" in checks["fleet"]["detail"]
    assert code == 1


@pytest.mark.integration
@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_check_names_a_refused_archiver_and_how_to_fix_it(
    broker: Mosquitto, tmp_path: Path, capsys: pytest.CaptureFixture[str], protocol: str
) -> None:
    config = write_config(tmp_path, broker, f"sqlite:///{seeded(tmp_path)}")
    config.write_text(config.read_text() + f"  protocol: '{protocol}'\n")
    (tmp_path / "archiver.password").write_text("not-the-password\n")
    code = main(["archive", "check", "-c", str(config), "--json"])
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert code == 1
    assert checks["broker"]["status"] == "fail"
    assert f"{broker.host}:{broker.port} refused user archiver" in checks["broker"]["detail"]
    assert "mqtt.password_file" in checks["broker"]["fix"]
    assert checks["database"]["status"] == "pass"  # the other checks still ran


def test_check_with_a_broken_configuration_runs_nothing_else(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "archive.yaml"
    config.write_text("http: {host: 0.0.0.0}\n")
    assert main(["archive", "check", "-c", str(config)]) == 1
    out = capsys.readouterr().out
    assert "✗ configuration" in out
    assert "not run: the configuration is invalid" in out


def test_export_writes_a_time_range_as_csv(tmp_path: Path) -> None:
    db = seeded(tmp_path)
    config = tmp_path / "archive.yaml"
    config.write_text(f"archive: {{database: 'sqlite:///{db}'}}\n")
    out = tmp_path / "rack-a.csv"
    code = main(
        ["archive", "export", "rack-a", "-c", str(config), "--from", "2026-03-14T11:00:10Z",
         "--to", "2026-03-14T11:00:20Z", "-o", str(out)]
    )  # fmt: skip
    assert code == 0
    lines = out.read_text().splitlines()
    assert lines[0].startswith("seq,time,channel,")
    assert [line.split(",")[0] for line in lines[1:]] == [str(s) for s in range(10, 20)]


def test_export_refuses_a_reversed_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "archive.yaml"
    config.write_text(f"archive: {{database: 'sqlite:///{tmp_path / 'a.db'}'}}\n")
    code = main(["archive", "export", "x", "-c", str(config), "--from", "2026-03-14T12:00:00Z",
                 "--to", "2026-03-14T11:00:00Z"])  # fmt: skip
    assert code == 2
    assert "--from must be before --to" in capsys.readouterr().err
