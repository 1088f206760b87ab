"""`powerbridge watch` against a real Mosquitto: snapshot, live lines, refusals."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import pytest

from bridge.broker.runner import BrokerSetup, Credentials, Mosquitto
from bridge.model import MainsState
from bridge.mqtt.contract import MainsPayload, encode_client_state, encode_state
from tests.helpers.mqtt import TestClient

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def broker_setup() -> BrokerSetup:
    return BrokerSetup(bridges=("rack-a", "rack-b"), clients=("pc-1",))


def password_file(tmp_path: Path, creds: Credentials) -> Path:
    path = tmp_path / f"{creds.username}.pw"
    path.write_text(creds.password + "\n")
    path.chmod(0o600)
    return path


def watch_cmd(broker: Mosquitto, creds: Credentials, tmp_path: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bridge",
        "watch",
        "--broker",
        f"127.0.0.1:{broker.port}",
        "--username",
        creds.username,
        "--password-file",
        str(password_file(tmp_path, creds)),
        *extra,
    ]


class LineReader:
    """Lines of a child's output, read in a thread, so that a test waits with a deadline."""

    def __init__(self, stream: IO[str]) -> None:
        self.queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.queue.put(line)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.queue.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(line)
            if predicate(line):
                return line
        pytest.fail(f"not printed within {timeout} s; output so far:\n{''.join(self.seen)}")


def publish_fleet(broker: Mosquitto) -> None:
    a = TestClient(broker, broker.bridge("rack-a")).connect()
    a.publish("powerbridge/rack-a/status", "online", retain=True)
    a.publish(
        "powerbridge/rack-a/mains",
        MainsPayload(
            "rack-a", MainsState.OFF, T0, 7, T0, 12.0, boot="0123456789abcdef", n=1
        ).encode(),
        retain=True,
    )
    a.publish(
        "powerbridge/rack-a/state",
        encode_state("rack-a", T0, 90, "pzem004t", {"power_w": 118.4, "voltage_v": 0.0}),
        retain=True,
    )
    a.disconnect()
    b = TestClient(broker, broker.bridge("rack-b")).connect()
    b.publish("powerbridge/rack-b/status", "offline", retain=True)
    b.disconnect()
    c = TestClient(broker, broker.client("pc-1")).connect()
    c.publish("powerbridge/clients/pc-1/status", "online", retain=True)
    c.publish(
        "powerbridge/clients/pc-1/state",
        encode_client_state(
            {"state": "counting", "seconds_left": 300.0, "delay_s": 600.0, "bridges": ["rack-a"]}
        ),
        retain=True,
    )
    c.disconnect()


@pytest.mark.parametrize("role", ["homeassistant", "observer"])
def test_once_prints_every_bridge_and_client(broker: Mosquitto, tmp_path: Path, role: str) -> None:
    publish_fleet(broker)
    creds = broker.homeassistant if role == "homeassistant" else broker.observer
    result = subprocess.run(
        watch_cmd(broker, creds, tmp_path, "--once"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    rack_a = next(line for line in lines if "rack-a" in line and "online" in line)
    assert "mains OFF" in rack_a
    assert "118.4 W" in rack_a
    assert any("rack-b" in line and "offline" in line for line in lines)
    pc = next(line for line in lines if "pc-1" in line)
    assert "counting" in pc
    assert "left of 10 min 00 s" in pc
    assert "watching rack-a" in pc
    assert "\x1b[" not in result.stdout  # not a terminal: no escape sequences


def test_bridge_credentials_from_a_config_file(broker: Mosquitto, tmp_path: Path) -> None:
    """-c takes host, port, user and password from a configuration (this bridge sees itself)."""
    publish_fleet(broker)
    creds = broker.bridge("rack-a")
    config = tmp_path / "bridge.yaml"
    config.write_text(
        "device: {id: rack-a}\n"
        f"mqtt: {{host: 127.0.0.1, port: {broker.port}, username: {creds.username}, "
        f"password_file: {password_file(tmp_path, creds)}}}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "watch", "-c", str(config), "--once"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "rack-a" in result.stdout
    assert "rack-b" not in result.stdout  # its ACL does not let it read other bridges


def test_wrong_password_is_a_clear_failure(broker: Mosquitto, tmp_path: Path) -> None:
    wrong = Credentials("homeassistant", "not-the-password")
    result = subprocess.run(
        watch_cmd(broker, wrong, tmp_path, "--once"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "refused" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_broker_is_a_clear_failure(tmp_path: Path) -> None:
    from bridge.broker.runner import free_port

    result = subprocess.run(
        [sys.executable, "-m", "bridge", "watch", "--broker", f"127.0.0.1:{free_port()}", "--once"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "cannot reach" in result.stderr


def test_live_view_on_a_pipe_prints_one_line_per_change(broker: Mosquitto, tmp_path: Path) -> None:
    publish_fleet(broker)
    proc = subprocess.Popen(
        watch_cmd(broker, broker.homeassistant, tmp_path, "--interval", "0.1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TERM": "xterm"},
    )
    try:
        assert proc.stdout is not None
        lines = LineReader(proc.stdout)
        lines.wait_for(lambda line: "rack-a" in line and "mains OFF" in line, 15)
        a = TestClient(broker, broker.bridge("rack-a")).connect()
        a.publish(
            "powerbridge/rack-a/mains",
            MainsPayload(
                "rack-a", MainsState.ON, T0, 8, T0, 2.0, boot="0123456789abcdef", n=2
            ).encode(),
            retain=True,
        )
        a.disconnect()
        lines.wait_for(lambda line: "bridge rack-a: mains on (seq 8" in line, 15)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
