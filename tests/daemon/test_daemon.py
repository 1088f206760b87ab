"""The daemon in-process: GPIO mains on gpiozero's MockFactory, systemd notifications over a
real datagram socket, commands refused without simulation, a clean stop."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from bridge.broker.runner import Mosquitto
from bridge.config.bridge import parse_bridge_config
from bridge.daemon import Daemon, MainLoop
from bridge.deployment.notify import Notifier
from bridge.mqtt.contract import CommandPayload
from tests.daemon.bridge_process import DEVICE
from tests.helpers.mqtt import TestClient
from tests.mqtt.collector import Collector

pytestmark = pytest.mark.integration


@pytest.fixture
def collector(broker: Mosquitto) -> Iterator[Collector]:
    c = Collector(broker, broker.observer).start()
    try:
        yield c
    finally:
        c.stop()


class SystemdSocket:
    """The service manager's end of ``$NOTIFY_SOCKET``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.lines: list[str] = []

    def read(self) -> list[str]:
        while True:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                return self.lines
            self.lines.extend(data.decode().splitlines())

    def close(self) -> None:
        self.sock.close()


def test_main_loop_runs_posted_work_in_order_and_survives_errors() -> None:
    loop = MainLoop()
    seen: list[int] = []
    loop.post(lambda: seen.append(1))
    loop.post(lambda: 1 / 0)  # type: ignore[func-returns-value]
    loop.post(None)
    loop.post(lambda: seen.append(2))
    assert loop.run(0.0) == 3
    assert seen == [1, 2]
    assert loop.run(0.01) == 0


def test_gpio_mains_without_simulation(
    broker: Mosquitto, collector: Collector, tmp_path: Path
) -> None:
    secret = tmp_path / "pass"
    secret.write_text(broker.bridge(DEVICE).password)
    config = parse_bridge_config(
        f"""
device: {{id: {DEVICE}, data_dir: {tmp_path / "data"}}}
mqtt: {{host: 127.0.0.1, port: {broker.port}, password_file: {secret}, reconnect_min: 200ms}}
mains: {{pin: 17, pull: none, confirm_off: 100ms, confirm_on: 100ms}}
leds: {{enabled: false}}
health: {{interval: 1s}}
"""
    )
    factory = MockFactory()
    pin = factory.pin(17)
    pin.drive_high()
    systemd = SystemdSocket(tmp_path / "notify")
    notifier = Notifier(str(systemd.path), watchdog_timeout=0.4)
    daemon = Daemon(config, pin_factory=factory, notifier=notifier, install_signals=False)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(daemon.run()), daemon=True)
    thread.start()
    try:
        assert daemon.started.wait(10)
        mains = f"powerbridge/{DEVICE}/mains"
        collector.wait_for(
            lambda: any(json.loads(m.payload)["state"] == "on" for m in collector.on(mains)),
            10,
            "mains on",
        )
        pin.drive_low()  # the charger on the unprotected side lost power
        collector.wait_for(lambda: collector.last_json(mains)["state"] == "off", 10, "outage")
        assert collector.last_json(mains)["source"] == "gpio"
        collector.wait_for(lambda: len(collector.events) == 1, 5, "outage event")
        # Without simulation, a remote `simulate` is refused (and logged), never obeyed.
        ha = TestClient(broker, broker.homeassistant).connect()
        cmd = CommandPayload("simulate", {"mains": "on"}, datetime.now(UTC), "x1")
        ha.publish(f"powerbridge/{DEVICE}/cmd/simulate", cmd.encode())
        ha.disconnect()
        publisher = daemon.publisher
        assert publisher is not None
        collector.wait_for(lambda: publisher.commands.rejected == 1, 5, "refusal")
        assert collector.last_json(mains)["state"] == "off"
        # A mains-only bridge has no meter entities and reports no meter link.
        health_topic = f"powerbridge/{DEVICE}/health"
        collector.wait_for(
            lambda: collector.last_json(health_topic)["broker_connected"] is True, 5, "health"
        )
        health = collector.last_json(health_topic)
        assert health["meter_link"] is None
        assert not collector.on(f"homeassistant/sensor/{DEVICE}/power/config")
        time.sleep(0.6)  # the watchdog is pinged while the loop turns
    finally:
        daemon.request_stop()
        thread.join(10)
    lines = systemd.read()
    systemd.close()
    assert result == [0]
    assert "READY=1" in lines
    assert lines.count("WATCHDOG=1") >= 2
    assert "STOPPING=1" in lines
    assert any(line.startswith("STATUS=connected") for line in lines)
    collector.wait_topic(f"powerbridge/{DEVICE}/status", b"offline")


def test_unreadable_password_file_is_a_configuration_error(tmp_path: Path) -> None:
    from bridge.errors import ConfigError

    config = parse_bridge_config(
        f"""
device: {{id: {DEVICE}, data_dir: {tmp_path / "data"}}}
mqtt: {{password_file: {tmp_path / "missing"}}}
simulation: {{enabled: true}}
leds: {{enabled: false}}
"""
    )
    with pytest.raises(ConfigError, match="password file"):
        Daemon(config, install_signals=False).run()


def test_broker_is_advertised_only_when_configured(
    broker: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``mqtt.advertise`` announces the broker's network endpoint (no multicast in tests)."""
    from bridge.mqtt import mdns

    calls: list[tuple[str, int, str, bool]] = []
    closed = threading.Event()

    class FakeAdvertisement:
        def close(self) -> None:
            closed.set()

    def fake(host: str, port: int, device_id: str, tls: bool) -> FakeAdvertisement:
        calls.append((host, port, device_id, tls))
        return FakeAdvertisement()

    monkeypatch.setattr(mdns, "advertise_broker", fake)
    secret = tmp_path / "pass"
    secret.write_text(broker.bridge(DEVICE).password)
    for advertise in (False, True):
        config = parse_bridge_config(
            f"""
device: {{id: {DEVICE}, data_dir: {tmp_path / "data"}}}
mqtt: {{host: 127.0.0.1, port: {broker.port}, password_file: {secret}, advertise: {advertise}}}
leds: {{enabled: false}}
simulation: {{enabled: true}}
"""
        )
        daemon = Daemon(config, install_signals=False)
        thread = threading.Thread(target=daemon.run, daemon=True)
        thread.start()
        assert daemon.started.wait(10)
        time.sleep(0.3)
        daemon.request_stop()
        thread.join(10)
    # The broker on this Pi is advertised as its network listener: 8883 with TLS.
    assert calls == [("127.0.0.1", 8883, DEVICE, True)]
    assert closed.is_set()
