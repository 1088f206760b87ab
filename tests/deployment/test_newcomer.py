"""What a newcomer meets on a real machine, without one: the reduced `deployment status` for a
user who may not read the configuration, the udev steps skipped where udev does not run (a
container), and a repeated `deployment start` that keeps the open record instead of adding one."""

from __future__ import annotations

import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.broker.runner import Mosquitto
from bridge.cli import main
from bridge.deployment import records
from bridge.deployment.lifecycle import Deployer
from bridge.mqtt.contract import DeploymentPayload, encode_health, encode_state
from tests.deployment.conftest import DEVICE, ConfigWriter, FakeSystemd
from tests.deployment.test_deployment import TOPICS, retained, start
from tests.helpers.mqtt import TestClient

pytestmark = pytest.mark.integration


@pytest.fixture
def unreadable(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Paths this user may not read: mode 000, and (root reads anything) os.access says so."""
    paths: list[Path] = []
    real = os.access

    def access(path: object, mode: int, **kwargs: object) -> bool:
        if Path(str(path)) in paths and mode & os.R_OK:
            return False
        return real(path, mode, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "access", access)
    return paths


def test_status_for_a_user_who_may_not_read_the_configuration(
    write_config: ConfigWriter,
    fake_systemd: FakeSystemd,
    unreadable: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config()
    config.chmod(0)
    unreadable.append(config)

    code = main(["deployment", "status", "-c", str(config)])
    captured = capsys.readouterr()
    assert code == 1  # not a configuration error (2): the file is fine, this user cannot read it
    assert "reduced view (cannot tell whether it is healthy)" in captured.out
    assert "active" in captured.out  # the service, from systemd
    assert "sudo" in captured.out
    assert "powerbridge group" in captured.out
    assert "Permission denied" not in captured.out + captured.err

    assert main(["deployment", "status", "-c", str(config), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["reduced"] is True
    assert doc["healthy"] is False
    assert doc["device_id"] is None
    assert doc["service"]["state"] == "active"
    assert any("not readable" in p for p in doc["problems"])
    assert "systemctl is-active powerbridge.service" in fake_systemd.calls()


def test_start_skips_udev_where_it_does_not_run(
    write_config: ConfigWriter,
    fake_systemd: FakeSystemd,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (fake_systemd.directory / "udevadm").unlink()  # as in a container: no udevadm to reach udevd
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
    calls = fake_systemd.calls()
    assert not [c for c in calls if c.startswith("udevadm")]
    assert calls[:2] == [
        "systemd-sysusers /etc/sysusers.d/powerbridge.conf",
        "systemctl daemon-reload",
    ]
    assert "udev is not running here (a container?)" in out.getvalue()
    assert "udevadm skipped" in out.getvalue()
    rules = tmp_path / "root/etc/udev/rules.d/99-powerbridge-meter.rules"
    assert rules.is_file()  # installed for when udev runs
    assert "✓ powerbridge.service is enabled and running" in out.getvalue()


def test_a_repeated_start_keeps_the_open_record(
    write_config: ConfigWriter,
    broker: Mosquitto,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config()
    root = tmp_path / "root"
    assert start(config, root) == 0
    first = DeploymentPayload.decode(retained(broker, TOPICS.deployment))
    capsys.readouterr()

    assert start(config, root) == 0  # the same details: a retry after a failure, say
    out = capsys.readouterr().out
    assert "deployment #1 is already recorded with these details" in out
    assert "kept" in out
    assert "closed the previous deployment" not in out

    conn = records.open_db(root / str(tmp_path / "data").lstrip("/"))
    history = records.history(conn)
    conn.close()
    assert [(d.id, d.name, d.active) for d in history] == [(1, "Rack A", True)]
    again = DeploymentPayload.decode(retained(broker, TOPICS.deployment))
    assert again.started == first.started
    assert again.active


@pytest.mark.parametrize(
    ("health", "link", "healthy"),
    [
        # Just (re)started: the health report came before the first read of the meter.
        ({"meter_link": False, "last_reading_age_s": None}, None, True),
        # Read before, silent now: not answering.
        ({"meter_link": False, "last_reading_age_s": 12.0}, False, False),
        ({"meter_link": True, "last_reading_age_s": 0.5}, True, True),
    ],
)
def test_status_right_after_a_start_does_not_call_the_meter_dead(
    *,
    write_config: ConfigWriter,
    fake_systemd: FakeSystemd,
    broker: Mosquitto,
    capsys: pytest.CaptureFixture[str],
    health: dict[str, object],
    link: bool | None,
    healthy: bool,
) -> None:
    config = write_config()
    bridge = TestClient(broker, broker.bridge(DEVICE)).connect()
    bridge.publish(TOPICS.status, b"online", retain=True)
    bridge.publish(
        TOPICS.state,
        encode_state(DEVICE, datetime.now(UTC), 7, "pzem004t", {"power_w": 50.0}),
        retain=True,
    )
    bridge.publish(TOPICS.health, encode_health(DEVICE, health), retain=True)
    bridge.disconnect()

    code = main(["deployment", "status", "-c", str(config), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["meter"]["link"] is link
    assert doc["healthy"] is healthy, doc["problems"]
    assert code == (0 if healthy else 1)
