"""`powerbridge deployment start|stop|status` under a root prefix, against a real Mosquitto."""

from __future__ import annotations

import io
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.broker.runner import Mosquitto, free_port
from bridge.cli import main
from bridge.deployment import records
from bridge.deployment.lifecycle import Deployer
from bridge.mqtt.contract import BridgeTopics, DeploymentPayload, encode_health, encode_state
from tests.deployment.conftest import DEVICE, ConfigWriter, FakeSystemd
from tests.deployment.test_systemd import directives
from tests.helpers.mqtt import TestClient

pytestmark = pytest.mark.integration

TOPICS = BridgeTopics("powerbridge", DEVICE)
STATUS_FIELDS = {
    "v", "device_id", "checked_at", "healthy", "problems",
    "service", "broker", "meter", "last_sample", "spool", "deployment",
}  # fmt: skip


def start(config: Path, root: Path, *extra: str) -> int:
    return main(
        ["deployment", "start", "-c", str(config), "--root", str(root), "--yes",
         "--name", "Rack A", "--lat", "48.137", "--lon", "11.575", "--skip", "clock", *extra]
    )  # fmt: skip


def retained(broker: Mosquitto, topic: str) -> bytes:
    observer = TestClient(broker, broker.observer).connect()
    try:
        observer.subscribe(topic)
        return observer.expect(topic, timeout=3).payload
    finally:
        observer.disconnect()


def test_dry_run_prints_the_unit_and_writes_nothing(
    write_config: ConfigWriter,
    tmp_path: Path,
    broker: Mosquitto,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "root"
    assert start(write_config(), root, "--dry-run") == 0
    out = capsys.readouterr().out
    assert not root.exists()
    assert not (tmp_path / "data").exists()
    assert f"would write {root}/etc/systemd/system/powerbridge.service:" in out
    unit = "\n".join(
        ln.split("| ", 1)[1] if "| " in ln else ""
        for ln in out.split("powerbridge.service:\n", 1)[1].split("would write")[0].splitlines()
    )
    d = directives(unit)
    assert d["Service.Type"] == ["notify"]
    assert d["Service.WatchdogSec"] == ["30s"]
    assert d["Service.Restart"] == ["always"]
    assert "would publish: " in out
    assert out.rstrip().endswith("Dry run: nothing was written.")
    # nothing reached the broker either
    observer = TestClient(broker, broker.observer).connect()
    observer.subscribe(TOPICS.deployment)
    assert observer.drain(0.3) == []
    observer.disconnect()


def test_start_writes_units_records_publishes_then_stop_closes(
    write_config: ConfigWriter,
    tmp_path: Path,
    broker: Mosquitto,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config()
    root = tmp_path / "root"
    assert start(config, root) == 0
    out = capsys.readouterr().out
    for n in range(1, 6):
        assert f"[{n}/5] " in out
    assert 'Deployment "Rack A" started.' in out

    unit = root / "etc/systemd/system/powerbridge.service"
    d = directives(unit.read_text())
    assert d["Service.Type"] == ["notify"]
    assert d["Service.WatchdogSec"] == ["30s"]
    assert d["Service.Restart"] == ["always"]
    assert d["Unit.After"] == ["network-online.target time-sync.target"]
    assert d["Unit.Wants"] == ["network-online.target time-sync.target"]
    assert d["Service.User"] == ["powerbridge"]
    assert d["Service.StateDirectory"] == ["powerbridge"]
    assert d["Service.ProtectSystem"] == ["strict"]
    assert d["Service.NoNewPrivileges"] == ["yes"]
    assert d["Service.PrivateTmp"] == ["yes"]
    assert d["Service.DevicePolicy"] == ["closed"]
    assert d["Service.ExecStart"][0].endswith(f" run --config {config}")
    assert (root / "etc/systemd/system/multi-user.target.wants/powerbridge.service").is_symlink()
    assert (root / "etc/udev/rules.d/99-powerbridge-meter.rules").is_file()
    assert (root / "etc/sysusers.d/powerbridge.conf").is_file()

    data_dir = root / str(tmp_path / "data").lstrip("/")
    conn = records.open_db(data_dir)
    record = records.current(conn)
    conn.close()
    assert record is not None
    assert (record.name, record.latitude, record.longitude) == ("Rack A", 48.137, 11.575)
    assert record.device_id == DEVICE
    assert record.config_sha256 == records.config_sha256(config)

    payload = DeploymentPayload.decode(retained(broker, TOPICS.deployment))
    assert payload == record.to_payload()
    assert payload.active

    # status under --root: valid JSON with the documented fields; not healthy (unknown service)
    assert main(["deployment", "status", "-c", str(config), "--root", str(root), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == STATUS_FIELDS
    assert doc["service"]["state"] == "unknown"
    assert doc["service"]["enabled"] == "enabled"
    assert doc["broker"]["reachable"] is True
    assert doc["deployment"]["name"] == "Rack A"
    assert doc["deployment"]["active"] is True
    assert doc["deployment"]["config_changed"] is False
    assert doc["healthy"] is False
    assert "service state unknown (--root)" in doc["problems"]

    assert main(["deployment", "stop", "-c", str(config), "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "Deployment stopped." in out
    assert not (root / "etc/systemd/system/multi-user.target.wants/powerbridge.service").exists()
    assert unit.is_file()  # stays installed
    conn = records.open_db(data_dir)
    assert records.current(conn) is None
    closed = records.latest(conn)
    conn.close()
    assert closed is not None
    assert closed.ended is not None
    payload = DeploymentPayload.decode(retained(broker, TOPICS.deployment))
    assert not payload.active
    assert payload.ended == closed.ended

    # The service check of `powerbridge check --root` now fails: disabled.
    assert main(["check", "-c", str(config), "--root", str(root), "--skip", "clock"]) == 1
    assert "installed under" in capsys.readouterr().out


def test_a_new_deployment_closes_the_previous_one(
    write_config: ConfigWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config()
    root = tmp_path / "root"
    assert start(config, root) == 0
    again = ["--name", "Rack B", "--lat", "-33.9", "--lon", "151.2"]
    assert main(["deployment", "start", "-c", str(config), "--root", str(root), "--yes", *again,
                 "--skip", "clock"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert 'closed the previous deployment #1 "Rack A"' in out
    conn = records.open_db(root / str(tmp_path / "data").lstrip("/"))
    history = records.history(conn)
    conn.close()
    assert [(d.name, d.active) for d in history] == [("Rack A", False), ("Rack B", True)]


def test_start_stops_when_a_check_fails(
    write_config: ConfigWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    assert start(write_config(login="wrong"), root) == 1
    out = capsys.readouterr().out
    assert "✗ 1 check failed (1 skipped): the deployment stops here" in out
    assert "[2/5]" not in out
    assert not root.exists()


def test_start_needs_name_and_coordinates_without_a_terminal(
    write_config: ConfigWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["deployment", "start", "-c", str(write_config()), "--root", str(tmp_path)])
    assert code == 2
    assert "--name, --lat, --lon required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["deployment", "start", "-c", "x", "--lat", "91"])
    assert "latitude must be within -90–90" in capsys.readouterr().err


def test_start_prompts_for_what_is_missing_on_a_terminal(
    write_config: ConfigWriter,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    answers = iter(["Cellar", "north", "52.5", "13.4", "y"])
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda _prompt: next(answers))
    root = tmp_path / "root"
    code = main(
        ["deployment", "start", "-c", str(write_config()), "--root", str(root), "--skip", "clock"]
    )
    out = capsys.readouterr()
    assert code == 0, out
    assert "latitude must be a number" in out.err
    assert 'Deploying bridge test-bridge as "Cellar" at 52.5, 13.4' in out.out


def test_status_healthy_when_the_bridge_reports(
    write_config: ConfigWriter,
    fake_systemd: FakeSystemd,
    broker: Mosquitto,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config()
    bridge = TestClient(broker, broker.bridge(DEVICE)).connect()
    now = datetime.now(UTC)
    bridge.publish(TOPICS.status, b"online", retain=True)
    bridge.publish(
        TOPICS.state, encode_state(DEVICE, now, 7, "pzem004t", {"power_w": 50.0}), retain=True
    )
    bridge.publish(
        TOPICS.health, encode_health(DEVICE, {"meter_link": True, "spool_depth": 0}), retain=True
    )
    # a spool with two undelivered items, as the daemon leaves it
    data = tmp_path / "data"
    data.mkdir()
    conn = sqlite3.connect(data / "bridge.db")
    conn.executescript(
        "CREATE TABLE spool_items (seq INTEGER PRIMARY KEY, kind INTEGER, created REAL,"
        " body BLOB, delivered INTEGER DEFAULT 0);"
        "CREATE TABLE spool_meta (key TEXT PRIMARY KEY, value INTEGER);"
        "INSERT INTO spool_meta VALUES ('dropped', 4);"
    )
    for seq in (1, 2):
        conn.execute(
            "INSERT INTO spool_items (seq, kind, created, body) VALUES (?, 0, ?, x'7b7d')",
            (seq, now.timestamp() - 60 + seq),
        )
    conn.commit()
    conn.close()

    assert main(["deployment", "status", "-c", str(config), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["healthy"] is True, doc["problems"]
    assert doc["service"] == {
        "unit": "powerbridge.service",
        "unit_file": None,
        "enabled": "enabled",
        "state": "active",
        "detail": "active, enabled",
    }
    assert doc["broker"]["bridge_status"] == "online"
    assert doc["meter"]["link"] is True
    assert doc["last_sample"]["source"] == "broker"
    assert 0 <= doc["last_sample"]["age_s"] < 5
    assert doc["spool"]["depth"] == 2
    assert doc["spool"]["dropped"] == 4
    assert 55 < doc["spool"]["oldest_age_s"] < 65
    assert doc["deployment"] is None

    # The bridge goes offline and its service fails: status says so, exit 1.
    bridge.publish(TOPICS.status, b"offline", retain=True)
    bridge.disconnect()
    fake_systemd.set(active="failed")
    assert main(["deployment", "status", "-c", str(config)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("bridge test-bridge: NOT HEALTHY")
    assert "✗ service failed" in out
    assert "✗ bridge offline on the broker" in out


def test_status_with_the_broker_down(
    write_config: ConfigWriter, fake_systemd: FakeSystemd, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(port=free_port())
    assert main(["deployment", "status", "-c", str(config), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["broker"]["reachable"] is False
    assert "cannot reach the broker" in doc["broker"]["detail"]
    assert doc["last_sample"]["age_s"] is None
    assert "no reading known" in doc["problems"]


def test_start_and_stop_drive_systemd(
    write_config: ConfigWriter,
    fake_systemd: FakeSystemd,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The host tools, in order (fake ones that log their arguments)."""
    monkeypatch.setattr("os.geteuid", lambda: 0)
    out = io.StringIO()
    deployer = Deployer(
        config_path=write_config(),
        root=tmp_path / "root",
        host_tools=True,
        skip=frozenset({"clock"}),
        out=out,
    )
    assert deployer.start("Rack A", 1.0, 2.0) == 0, out.getvalue()
    assert fake_systemd.calls() == [
        "systemd-sysusers /etc/sysusers.d/powerbridge.conf",
        "udevadm control --reload-rules",
        "udevadm trigger --subsystem-match=tty --subsystem-match=leds --action=add",
        "systemctl daemon-reload",
        "systemctl enable powerbridge.service",
        "systemctl restart powerbridge.service",
        "systemctl is-active powerbridge.service",
    ]
    assert "✓ powerbridge.service is enabled and running" in out.getvalue()

    fake_systemd.log.unlink()
    fake_systemd.set(active="failed")
    out.truncate(0)
    assert deployer.start("Rack A", 1.0, 2.0) == 1
    assert "powerbridge.service did not start (failed): see `journalctl -u powerbridge" in (
        out.getvalue()
    )

    fake_systemd.log.unlink()
    fake_systemd.set(active="inactive", enabled="disabled")
    assert deployer.stop() == 0
    assert fake_systemd.calls()[0] == "systemctl disable --now powerbridge.service"
