"""A shutdown client with ``shutdown.min_runtime`` against a real Mosquitto (issue 18).

A bridge announces an outage and publishes its UPS's reports (``<base>/<id>/ups``); the
client shuts down (a harmless command that stamps a file) when the reported runtime falls
below ``min_runtime``, long before ``shutdown.delay``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.broker.runner import BrokerSetup, Mosquitto
from bridge.config import parse_client_config
from bridge.mqtt.contract import BridgeTopics
from bridge.shutdown.app import RunningClient, start_client
from tests.helpers.mqtt import TestClient
from tests.nut._wire import BridgeMessages

pytestmark = [pytest.mark.integration, pytest.mark.realtime]

DEVICE, CLIENT = "rack-a", "office-pc"
RECORDER = """\
import sys, time
with open(sys.argv[1], "a") as f:
    f.write(f"{time.monotonic()}\\n")
"""


@pytest.fixture
def broker_setup() -> BrokerSetup:
    return BrokerSetup(bridges=(DEVICE,), clients=(CLIENT,))


@pytest.fixture
def client(broker: Mosquitto, tmp_path: Path) -> Iterator[tuple[RunningClient, Path]]:
    password = tmp_path / "client.password"
    password.write_text(broker.client(CLIENT).password)
    script, record = tmp_path / "record.py", tmp_path / "shutdowns"
    script.write_text(RECORDER)
    config = parse_client_config(
        f"client: {{id: {CLIENT}}}\n"
        f"mqtt: {{host: 127.0.0.1, port: {broker.port}, password_file: {password}}}\n"
        f"bridges: [{DEVICE}]\n"
        "shutdown:\n  delay: 10m\n  min_runtime: 2m\n  notify: none\n"
        f"  command: [{sys.executable}, {script}, {record}]\n"
    )
    running = start_client(config, host="127.0.0.1", port=broker.port)
    deadline = time.monotonic() + 5
    while not running.listener.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    yield running, record
    running.stop()


def shutdowns(record: Path) -> list[float]:
    return [float(x) for x in record.read_text().split()] if record.exists() else []


def test_runtime_below_min_runtime_shuts_down_before_the_delay(
    broker: Mosquitto, client: tuple[RunningClient, Path]
) -> None:
    _running, record = client
    topics = BridgeTopics("powerbridge", DEVICE)
    bridge = TestClient(broker, broker.bridge(DEVICE), will=(topics.status, b"offline")).connect()
    messages = BridgeMessages(DEVICE)

    def ups(status: str, runtime: float) -> float:
        at = time.monotonic()
        report = messages.ups(status, charge=50.0, runtime=runtime, load=30.0)
        bridge.publish(topics.ups, report, retain=True)
        return at

    try:
        bridge.publish(topics.status, b"online", retain=True)
        bridge.publish(topics.mains, messages.announce("on"), retain=True)
        time.sleep(0.5)
        outage = time.monotonic()
        bridge.publish(topics.mains, messages.announce("off"), retain=True)
        ups("OB DISCHRG", 900.0)
        time.sleep(1.5)
        assert shutdowns(record) == []  # 900 s left, 10 min delay: nothing yet
        crossing = ups("OB DISCHRG", 100.0)  # below min_runtime (2 min)
        deadline = time.monotonic() + 10
        while not shutdowns(record) and time.monotonic() < deadline:
            time.sleep(0.02)
        (at,) = shutdowns(record)
        assert at - crossing < 3.0
        assert at - outage < 600.0
        print(f"shut down {at - crossing:.2f} s after the UPS reported 100 s of runtime")
    finally:
        bridge.disconnect()
