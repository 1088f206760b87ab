"""`powerbridge mains watch` and `powerbridge simulate mains` as a user runs them."""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from gpiozero.pins.mock import MockFactory

from bridge.broker.runner import Mosquitto
from bridge.cli import main
from bridge.cli.simulate import run_mains
from bridge.clock import SystemClock
from bridge.config.bridge import MainsConfig
from bridge.db import connect, db_path
from bridge.errors import BrokerError, UsageError
from bridge.mains import MainsSensor
from bridge.mains.store import OutageStore
from bridge.model import MainsEvent
from bridge.mqtt.contract import BridgeTopics, CommandPayload, MainsPayload
from bridge.mqtt.signing import verify
from tests.helpers.mqtt import TestClient

ROOT = Path(__file__).resolve().parents[2]
KEY = b"0123456789abcdef0123456789abcdef"


def powerbridge(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bridge", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def lines_of(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    out: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return out


def until(lines: queue.Queue[str], needle: str, seen: list[str], timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        seen.append(line)
        if needle in line:
            return line


# --------------------------------------------------------------------------- mains watch


@pytest.mark.realtime
def test_mains_watch_in_simulation(tmp_path: Path) -> None:
    config = tmp_path / "sim.yaml"
    config.write_text(
        f"device: {{id: sim-pi, data_dir: {tmp_path / 'data'}}}\n"
        "mains: {confirm_off: 150ms, confirm_on: 300ms}\n"
        "simulation: {enabled: true}\n"
    )
    proc = powerbridge("mains", "watch", "-c", str(config))
    assert proc.stdin is not None
    lines = lines_of(proc)
    seen: list[str] = []
    try:
        assert "GPIO4 (simulated)" in until(lines, "watching", seen)
        until(lines, "mains ON announced (seq 1", seen)
        proc.stdin.write("blip 40\n")
        proc.stdin.flush()
        until(lines, "blip", seen)
        proc.stdin.write("off\n")
        proc.stdin.flush()
        until(lines, "mains OFF announced (seq 2", seen)
        proc.stdin.write("on\n")
        proc.stdin.flush()
        until(lines, "mains ON announced (seq 3", seen)
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        assert proc.wait(10) == 0
        summary = until(lines, "announced change", seen)
    finally:
        proc.kill()
    assert summary == "5 edges, 1 blip, 3 announced changes"  # initial, blip ×2, off, on
    blip = next(line for line in seen if "not announced" in line)
    assert "mains off for" in blip
    assert "not announced (flap #1)" in blip
    assert not (tmp_path / "data").exists()  # watching writes nothing


def test_mains_watch_without_gpio_is_a_clear_failure(tmp_path: Path) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text(f"device: {{id: pi, data_dir: {tmp_path}}}\n")
    proc = powerbridge(
        "mains",
        "watch",
        "-c",
        str(config),
        "--for",
        "1",
        env={"GPIOZERO_PIN_FACTORY": "no-such-factory"},
    )
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert "cannot open the mains-sense pin GPIO4" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["mains"],
        ["simulate"],
        ["mains", "watch", "--for", "0", "-c", "/nonexistent.yaml"],
        ["simulate", "mains", "off", "--wait", "-1", "-c", "/nonexistent.yaml"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    assert main(argv) == 2


# --------------------------------------------------------------------------- simulate


def write_config(tmp_path: Path, broker: Mosquitto, *, signed: bool) -> Path:
    password = tmp_path / "mqtt.password"
    password.write_text(broker.bridge("test-bridge").password + "\n")
    password.chmod(0o600)
    key = tmp_path / "signing.key"
    key.write_bytes(KEY)
    config = tmp_path / "bridge.yaml"
    config.write_text(
        f"device: {{id: test-bridge, data_dir: {tmp_path / 'data'}}}\n"
        f"mqtt: {{host: 127.0.0.1, port: {broker.port}, password_file: {password}}}\n"
        + (f"signing: {{key_file: {key}}}\n" if signed else "")
        + "simulation: {enabled: true}\n"
    )
    return config


@pytest.fixture
def observer(broker: Mosquitto) -> Iterator[TestClient]:
    client = TestClient(broker, broker.observer).connect()
    yield client
    client.disconnect()


@pytest.mark.integration
def test_simulate_publishes_a_signed_command(
    tmp_path: Path, broker: Mosquitto, observer: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    topics = BridgeTopics("powerbridge", "test-bridge")
    observer.subscribe(topics.cmd_filter)
    config = write_config(tmp_path, broker, signed=True)
    before = datetime.now(UTC)
    assert main(["simulate", "mains", "off", "-c", str(config)]) == 0
    msg = observer.expect(topics.cmd("simulate"))
    command = CommandPayload.decode("simulate", msg.payload)
    assert command.args == {"mains": "off"}
    assert command.sig is not None
    assert verify(KEY, json.loads(msg.payload), topic=topics.cmd("simulate"))
    assert not verify(KEY, json.loads(msg.payload))  # the topic is part of what is signed
    assert (command.ts - before).total_seconds() < 5
    assert not msg.retain
    assert (
        "sent: simulate mains off → powerbridge/test-bridge/cmd/simulate" in capsys.readouterr().out
    )


@pytest.mark.integration
def test_simulate_unsigned_without_key(
    tmp_path: Path, broker: Mosquitto, observer: TestClient
) -> None:
    topics = BridgeTopics("powerbridge", "test-bridge")
    observer.subscribe(topics.cmd_filter)
    config = write_config(tmp_path, broker, signed=False)
    assert main(["simulate", "mains", "on", "-c", str(config)]) == 0
    command = CommandPayload.decode("simulate", observer.expect(topics.cmd("simulate")).payload)
    assert command.args == {"mains": "on"}
    assert command.sig is None


@pytest.mark.integration
def test_simulate_with_a_wrong_password_fails_with_a_fix(tmp_path: Path, broker: Mosquitto) -> None:
    config = write_config(tmp_path, broker, signed=False)
    (tmp_path / "mqtt.password").write_text("wrong\n")
    with pytest.raises(BrokerError, match="refused") as info:
        run_mains(argparse.Namespace(config=config, state="off", device=None, wait=0.0))
    assert "fix:" in str(info.value)
    assert main(["simulate", "mains", "off", "-c", str(config)]) == 1


class SimulatedBridge:
    """Just enough of a bridge: routes cmd/simulate to a MainsSensor, publishes `mains`."""

    def __init__(self, broker: Mosquitto, tmp_path: Path, *, simulation: bool) -> None:
        self.topics = BridgeTopics("powerbridge", "test-bridge")
        self.refusals = 0
        self.client = TestClient(broker, broker.bridge("test-bridge")).connect()
        store = OutageStore(connect(db_path(tmp_path / "bridge-data")), boot_id="b")
        self.factory = None if simulation else MockFactory()
        self.sensor = MainsSensor(
            MainsConfig(confirm_off=0.1, confirm_on=0.2),
            store,
            on_event=self.publish,
            clock=SystemClock(),
            simulation=simulation,
            pin_factory=self.factory,
        )
        self.client.paho.on_message = self.on_command
        self.client.subscribe(self.topics.cmd_filter)

    def publish(self, event: MainsEvent) -> None:
        payload = MainsPayload(
            device="test-bridge",
            state=event.state,
            since=event.began,
            seq=event.seq,
            ts=datetime.now(UTC),
            elapsed_s=max(0.0, time.monotonic() - event.began_monotonic),
            boot="0123456789abcdef",
            n=event.seq,
            source=event.source,
        )
        self.client.paho.publish(self.topics.mains, payload.encode(), qos=1, retain=True)

    def on_command(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        command = CommandPayload.decode("simulate", msg.payload)
        try:
            self.sensor.simulate(command.args["mains"])
        except UsageError:
            self.refusals += 1

    def close(self) -> None:
        self.sensor.close()
        self.client.disconnect()


@pytest.mark.integration
def test_simulate_and_wait_for_the_announcement(
    tmp_path: Path, broker: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    bridge = SimulatedBridge(broker, tmp_path, simulation=True)
    config = write_config(tmp_path, broker, signed=False)
    try:
        bridge.sensor.start()
        time.sleep(0.4)  # the first 'on' is announced and retained
        assert main(["simulate", "mains", "off", "-c", str(config), "--wait", "5"]) == 0
        assert "bridge test-bridge announced mains off (seq 2)" in capsys.readouterr().out
        assert main(["simulate", "mains", "off", "-c", str(config), "--wait", "5"]) == 0
        assert "already announces mains off (seq 2)" in capsys.readouterr().out
        assert main(["simulate", "mains", "on", "-c", str(config), "--wait", "5"]) == 0
        assert "announced mains on (seq 3)" in capsys.readouterr().out
    finally:
        bridge.close()


@pytest.mark.integration
def test_a_real_bridge_refuses_and_wait_fails(
    tmp_path: Path, broker: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    bridge = SimulatedBridge(broker, tmp_path, simulation=False)
    config = write_config(tmp_path, broker, signed=False)
    try:
        bridge.sensor.start()
        assert bridge.factory is not None
        bridge.factory.pin(4).drive_high()  # the real mains is on
        time.sleep(0.4)
        assert bridge.sensor.state.value == "on"
        assert main(["simulate", "mains", "off", "-c", str(config), "--wait", "1"]) == 1
        assert "did not announce mains off" in capsys.readouterr().err
        assert bridge.refusals == 1
        assert bridge.sensor.state.value == "on"
    finally:
        bridge.close()


@pytest.mark.realtime  # real confirmation timers against --for 0.3 s
def test_mains_watch_before_any_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Wiring a new Pi: no configuration yet, the default settings, any BCM pin."""
    from gpiozero import Device

    import bridge.cli._common
    import bridge.cli.mains

    missing = tmp_path / "etc" / "bridge.yaml"
    monkeypatch.setattr(bridge.cli._common, "DEFAULT_BRIDGE_CONFIG", missing)
    monkeypatch.setattr(bridge.cli.mains, "DEFAULT_BRIDGE_CONFIG", missing)
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    previous = Device.pin_factory
    Device.pin_factory = None
    try:
        assert main(["mains", "watch", "--pin", "17", "--for", "0.3"]) == 0
    finally:
        if Device.pin_factory is not None:
            Device.pin_factory.close()
        Device.pin_factory = previous
    captured = capsys.readouterr()
    assert f"no {missing}: using the default mains settings" in captured.err
    assert "watching GPIO17: pull down, mains on = pin high" in captured.out
    assert "pin says mains off" in captured.out  # pulled down, nothing connected
    assert captured.out.rstrip().endswith("1 edge, 0 blips, 0 announced changes")
