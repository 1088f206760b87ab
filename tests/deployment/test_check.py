"""`powerbridge check` against a real Mosquitto, the meter simulator and the mock pin."""

from __future__ import annotations

import dataclasses
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.broker.runner import Mosquitto, free_port
from bridge.cli import main
from bridge.clock import ManualClock, kernel_clock_synchronised
from bridge.deployment import checks
from bridge.deployment.checks import CheckContext, Outcome
from bridge.model import MainsState
from bridge.mqtt.contract import BridgeTopics, MainsPayload, encode_state
from tests.deployment.conftest import DEVICE, ConfigWriter, FakeSystemd
from tests.helpers.mqtt import TestClient

pytestmark = pytest.mark.integration


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    code = main(["check", *argv])
    out = capsys.readouterr().out
    return code, out.splitlines()


def line(lines: list[str], title: str) -> str:
    found = [ln for ln in lines if ln[2:].startswith(title)]
    assert found, f"no line for {title!r} in {lines}"
    return found[0]


def fix_after(lines: list[str], title: str) -> str:
    index = lines.index(line(lines, title))
    assert "fix:" in lines[index + 1], lines
    return lines[index + 1]


def test_all_checks_pass_with_simulator_and_broker(
    write_config: ConfigWriter, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = write_config()
    root = tmp_path / "root"
    assert (
        main(
            [
                "deployment",
                "start",
                "-c",
                str(config),
                "--root",
                str(root),
                "--yes",
                "--name",
                "Lab",
                "--lat",
                "1",
                "--lon",
                "2",
                "--skip",
                "clock",
            ]
        )
        == 0
    )
    capsys.readouterr()
    code, lines = run(capsys, "-c", str(config), "--root", str(root), "--skip", "clock")
    assert code == 0, lines
    assert lines[-1] == "Health checks passed (1 skipped)"
    assert line(lines, "configuration").startswith("✓")
    meter = line(lines, "meter")
    assert meter.startswith("✓")
    assert " V, " in meter  # one reading is shown
    assert " W" in meter
    assert line(lines, "mains pin").startswith("✓ mains pin        mains present (simulated pin)")
    assert line(lines, "broker").startswith("✓")
    assert line(lines, "data directory").startswith("✓")
    assert line(lines, "clock").startswith("– clock            skipped on request (--skip clock)")
    assert line(lines, "service").startswith("✓")
    assert not any("✗" in ln for ln in lines)


def test_wrong_password_fails_the_broker_check_with_a_fix(
    write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(login="not-the-password")
    code, lines = run(capsys, "-c", str(config), "--skip", "clock,service")
    assert code == 1
    broker = line(lines, "broker")
    assert broker.startswith("✗")
    assert f"refused user bridge-{DEVICE}" in broker
    assert "password" in fix_after(lines, "broker")
    assert lines[-1] == "1 check failed (2 skipped)"
    assert not any("passed" in ln for ln in lines)


def test_missing_meter_port_fails_naming_the_port(
    write_config: ConfigWriter, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    port = tmp_path / "ttyUSB-gone"
    config = write_config(meter=f"{{type: pzem004t, port: {port}}}")
    code, lines = run(capsys, "-c", str(config), "--skip", "clock,service")
    assert code == 1
    meter = line(lines, "meter")
    assert meter.startswith("✗")
    assert f"meter port {port} does not exist" in meter
    assert "meter.port" in fix_after(lines, "meter")
    assert lines[-1] == "1 check failed (2 skipped)"


def test_meter_that_does_not_answer(
    write_config: ConfigWriter, capsys: pytest.CaptureFixture[str], pty_pair: object
) -> None:
    port = pty_pair.port  # type: ignore[attr-defined]
    config = write_config(meter=f"{{type: pzem004t, port: {port}, timeout: 50ms}}")
    code, lines = run(capsys, "-c", str(config), "--skip", "clock,service,broker")
    assert code == 1
    meter = line(lines, "meter")
    assert meter.startswith(f"✗ meter            pzem004t on {port}:")
    assert "wiring" in fix_after(lines, "meter")


def test_acl_that_does_not_let_the_bridge_publish(
    write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    # The credentials are valid, but for another bridge's topics.
    config = write_config(device_id="intruder", username=f"bridge-{DEVICE}")
    code, lines = run(capsys, "-c", str(config), "--skip", "clock,service,meter")
    assert code == 1
    broker = line(lines, "broker")
    assert "never came back" in broker
    fix = fix_after(lines, "broker")
    assert f"is the broker's user for device id {DEVICE}, not intruder" in fix
    assert f"set device.id: {DEVICE}" in fix


def test_unreachable_broker(write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(port=free_port())
    code, lines = run(capsys, "-c", str(config), "--skip", "clock,service,meter")
    assert code == 1
    assert "cannot reach the broker at 127.0.0.1:" in line(lines, "broker")
    assert "Mosquitto" in fix_after(lines, "broker")


def test_invalid_configuration_stops_everything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("mqtt:\n  port: nope\n")
    code, lines = run(capsys, "-c", str(config))
    assert code == 1
    assert line(lines, "configuration").startswith("✗")
    assert "mqtt.port" in line(lines, "configuration")
    assert line(lines, "broker").startswith("✗ broker           not run")
    assert lines[-1] == "1 check failed (6 not run)"


def test_json_report(write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(login="wrong")
    code = main(["check", "-c", str(config), "--json", "--skip", "clock"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    assert doc["ok"] is False
    assert doc["v"] == 1
    assert [c["name"] for c in doc["checks"]] == list(checks.CHECK_NAMES)
    by_name = {c["name"]: c for c in doc["checks"]}
    assert by_name["broker"]["status"] == "fail"
    assert by_name["broker"]["fix"]
    assert by_name["clock"]["status"] == "skip"
    assert by_name["meter"]["status"] == "pass"
    assert by_name["meter"]["data"]["readings"][0]["voltage_v"] > 0


def test_unknown_skip_name_is_a_usage_error(
    write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "-c", str(write_config()), "--skip", "lunch"]) == 2
    assert "unknown check(s) lunch" in capsys.readouterr().err


# ----------------------------------------------------------------------------- service


def test_service_check_without_systemd_fails_unless_skipped(
    write_config: ConfigWriter, no_systemd: None, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config()
    code, lines = run(capsys, "-c", str(config), "--skip", "clock,meter,broker")
    assert code == 1
    assert "systemd is not running" in line(lines, "service")
    assert "--skip service" in fix_after(lines, "service")


BOOT = "0123456789abcdef"


def publish_as_running_service(
    broker: Mosquitto, state: MainsState, seq: int, *, elapsed_s: float = 12.0
) -> TestClient:
    """Retain what a running service publishes (a reading and its mains state); the
    publisher stays connected, to publish more."""
    topics = BridgeTopics("powerbridge", DEVICE)
    publisher = TestClient(broker, broker.bridge(DEVICE)).connect()
    now = datetime.now(UTC)
    publisher.publish(
        topics.state, encode_state(DEVICE, now, 5, "pzem004t", {"voltage_v": 230.0}), retain=True
    )
    mains = MainsPayload(DEVICE, state, now, seq, now, elapsed_s, boot=BOOT, n=seq)
    publisher.publish(topics.mains, mains.encode(), retain=True)
    return publisher


@pytest.mark.parametrize(
    ("active", "enabled", "expect"),
    [
        ("active", "enabled", "✓ service          powerbridge.service is enabled and running"),
        ("failed", "enabled", "✗ service          powerbridge.service is enabled but failed"),
        ("active", "disabled", "✗ service          powerbridge.service is installed but disabled"),
        ("inactive", "not-found", "✗ service          powerbridge.service is not installed"),
    ],
)
def test_service_check_asks_systemctl(
    *,
    active: str,
    enabled: str,
    expect: str,
    write_config: ConfigWriter,
    fake_systemd: FakeSystemd,
    capsys: pytest.CaptureFixture[str],
    broker: Mosquitto,
) -> None:
    fake_systemd.set(active=active, enabled=enabled)
    # A running service owns meter and pin: they are judged from what it published.
    publish_as_running_service(broker, MainsState.ON, 3).disconnect()
    code, lines = run(capsys, "-c", str(write_config()), "--skip", "clock")
    assert line(lines, "service").startswith(expect)
    if active == "active":
        assert line(lines, "meter").startswith("✓ meter            read by the running service")
        assert "voltage_v=230.0" in line(lines, "meter")
        assert line(lines, "mains pin").startswith(
            "✓ mains pin        mains on (announced by the running service, seq 3)"
        )
    assert code == (0 if expect.startswith("✓") else 1)


def test_a_service_still_confirming_its_input_fails_the_mains_check_with_a_hint(
    write_config: ConfigWriter,
    fake_systemd: FakeSystemd,
    broker: Mosquitto,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Right after a start the service announces ``unknown`` until its pin has been stable
    for the confirmation window: check waits that long for its state, and a state still
    unknown then is not a pass."""
    fake_systemd.set(active="active", enabled="enabled")
    publish_as_running_service(broker, MainsState.UNKNOWN, 4, elapsed_s=0.0).disconnect()
    code, lines = run(capsys, "-c", str(write_config()), "--skip", "clock")
    assert line(lines, "mains pin").startswith(
        "✗ mains pin        the service is still confirming its input (mains unknown, seq 4,"
        " after waiting 5 s)"
    )
    assert "run the check again" in fix_after(lines, "mains pin")
    assert code == 1


def test_check_waits_for_a_starting_service_to_confirm_its_input(
    write_config: ConfigWriter,
    fake_systemd: FakeSystemd,
    broker: Mosquitto,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_systemd.set(active="active", enabled="enabled")
    publisher = publish_as_running_service(broker, MainsState.UNKNOWN, 4, elapsed_s=0.0)
    topics = BridgeTopics("powerbridge", DEVICE)
    now = datetime.now(UTC)
    confirmed = MainsPayload(DEVICE, MainsState.ON, now, 5, now, 2.0, boot=BOOT, n=5)
    timer = threading.Timer(
        1.0, lambda: publisher.publish(topics.mains, confirmed.encode(), retain=True)
    )
    timer.start()
    try:
        code, lines = run(capsys, "-c", str(write_config()), "--skip", "clock")
    finally:
        timer.join()
        publisher.disconnect()
    assert line(lines, "mains pin").startswith(
        "✓ mains pin        mains on (announced by the running service, seq 5)"
    )
    assert code == 0


def test_running_service_with_a_stale_reading_fails_the_meter_check(
    write_config: ConfigWriter,
    fake_systemd: FakeSystemd,
    broker: Mosquitto,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topics = BridgeTopics("powerbridge", DEVICE)
    publisher = TestClient(broker, broker.bridge(DEVICE)).connect()
    old = datetime.now(UTC) - timedelta(minutes=5)
    publisher.publish(topics.state, encode_state(DEVICE, old, 5, "pzem004t", {}), retain=True)
    publisher.disconnect()
    code, lines = run(capsys, "-c", str(write_config()), "--skip", "clock,mains")
    assert code == 1
    assert "newest reading is 300 s old" in line(lines, "meter")


# ----------------------------------------------------------------------------- clock


@pytest.mark.parametrize(
    ("synced", "wall", "outcome", "text"),
    [
        (True, datetime(2026, 5, 1, tzinfo=UTC), Outcome.PASS, "synchronised"),
        (False, datetime(2026, 5, 1, tzinfo=UTC), Outcome.FAIL, "is not synchronised"),
        (None, datetime(2026, 5, 1, tzinfo=UTC), Outcome.FAIL, "cannot tell"),
        (True, datetime(1970, 1, 1, tzinfo=UTC), Outcome.FAIL, "never set"),
    ],
)
def test_clock_check(
    synced: bool | None, wall: datetime, outcome: Outcome, text: str, tmp_path: Path
) -> None:
    ctx = CheckContext(
        config_path=tmp_path / "x.yaml",
        clock=ManualClock(wall=wall),
        clock_probe=lambda: synced,
    )
    result = checks.check_clock(ctx)
    assert result.outcome is outcome
    assert text in result.detail
    assert (result.fix is None) == (outcome is Outcome.PASS)


def test_kernel_clock_probe_answers_on_linux() -> None:
    assert kernel_clock_synchronised() in (True, False)


# ----------------------------------------------------------------------------- data dir


def test_data_dir_checks_space_and_kind(write_config: ConfigWriter, tmp_path: Path) -> None:
    ctx = CheckContext(config_path=write_config())
    assert checks.check_config(ctx).outcome is Outcome.PASS
    result = checks.check_data_dir(ctx)
    assert result.outcome is Outcome.PASS
    assert "does not exist yet" in result.detail
    (tmp_path / "data").mkdir()
    result = checks.check_data_dir(ctx)
    assert result.outcome is Outcome.PASS
    assert "is writable" in result.detail
    assert not list((tmp_path / "data").iterdir())  # the probe file is gone
    greedy = dataclasses.replace(ctx.cfg.health, min_free_disk_mb=1e12)
    ctx.config = dataclasses.replace(ctx.cfg, health=greedy)
    result = checks.check_data_dir(ctx)
    assert result.outcome is Outcome.FAIL
    assert "MB are free" in result.detail
    (tmp_path / "data").rmdir()
    (tmp_path / "data").write_text("a file")
    result = checks.check_data_dir(ctx)
    assert result.outcome is Outcome.FAIL
    assert "is not a directory" in result.detail


# ----------------------------------------------------------------------------- /dev/powermeter


def test_powermeter_link_before_the_udev_rules_are_installed(
    write_config: ConfigWriter,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bridge.meters import ports
    from bridge.meters.simulator import SimulatedMeter

    assert not Path("/dev/powermeter").exists()
    config = write_config(meter="{type: pzem004t, port: /dev/powermeter}")
    root = tmp_path / "root"
    args = ("-c", str(config), "--root", str(root), "--skip", "clock,service,broker,mains")
    with SimulatedMeter("pzem004t", load_w=300) as sim:
        adapter = ports.PortInfo(sim.port, None, "1A86:7523", "CH340", ("pzem004t",))
        monkeypatch.setattr(ports, "list_ports", lambda: [adapter])
        code, lines = run(capsys, *args)
        assert code == 0, lines
        meter = line(lines, "meter")
        assert meter.startswith(f"✓ meter            pzem004t on {sim.port} answers: ")
        assert "/dev/powermeter will point here" in meter

        # Two adapters the rules would link: which one is ambiguous.
        monkeypatch.setattr(ports, "list_ports", lambda: [adapter, adapter])
        code, lines = run(capsys, *args)
        assert code == 1
        assert "meter port /dev/powermeter does not exist" in line(lines, "meter")

        # Rules installed but no link: the adapter is missing or unknown.
        monkeypatch.setattr(ports, "list_ports", lambda: [adapter])
        rules = root / "etc/udev/rules.d/99-powerbridge-meter.rules"
        rules.parent.mkdir(parents=True)
        rules.write_text("")
        code, lines = run(capsys, *args)
        assert code == 1
        assert "meter port /dev/powermeter does not exist" in line(lines, "meter")
