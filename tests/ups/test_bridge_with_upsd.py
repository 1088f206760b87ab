"""A real bridge process reading real upsd + dummy-ups, a real Mosquitto, a real client process.

Scripted discharge OL → OB DISCHRG → falling ``battery.runtime`` → OB LB:

* the bridge's ``ups`` topic — the state topic of its Home Assistant UPS entities — follows
  each step within one poll (the driver's ``pollinterval`` plus the bridge's ``ups.poll``);
* with ``mains.source: ups`` the outage is announced through the confirmation window;
* a shutdown client process (``--dry-run``, ``min_runtime: 2m``, ``delay: 10m``) decides to
  shut down when the reported runtime crosses ``min_runtime``, long before ``delay``.

Both sides sign (``signing.key_file``): the client acts on signed UPS reports only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.broker.runner import BrokerSetup, Mosquitto
from bridge.mqtt import signing
from bridge.mqtt.contract import BridgeTopics
from tests.daemon.bridge_process import DEVICE, BridgeProcess, write_config
from tests.helpers.mqtt import TestClient
from tests.helpers.process import stop_service
from tests.ups._upsd import PASSWORD, POLLINTERVAL, USER, DummyUpsd

pytestmark = [pytest.mark.integration, pytest.mark.realtime]

CLIENT = "office-pc"
BRIDGE_POLL = 1.0
ONE_POLL = POLLINTERVAL + BRIDGE_POLL
MARGIN = 1.0
"""Scheduling and broker slack on a shared machine."""
CONFIRM_OFF = 0.5
KEY = b"0123456789abcdef0123456789abcdef"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def broker_setup() -> BrokerSetup:
    return BrokerSetup(bridges=(DEVICE,), clients=(CLIENT,))


def _bridge_config(broker: Mosquitto, upsd: DummyUpsd, directory: Path, key: Path) -> Path:
    secret = directory / "ups.pass"
    directory.mkdir(parents=True, exist_ok=True)
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    extra = (
        f"ups: {{name: dummy, port: {upsd.port}, username: {USER}, "
        f"password_file: {secret}, poll: {BRIDGE_POLL}s}}\n"
        f"signing: {{key_file: {key}}}\n"
    )
    mains = f"{{source: ups, confirm_off: {CONFIRM_OFF}s, confirm_on: 500ms}}"
    return write_config(broker, directory, extra, mains=mains)


def _client_config(broker: Mosquitto, directory: Path, key: Path) -> Path:
    password = directory / "client.pass"
    password.write_text(broker.client(CLIENT).password + "\n")
    password.chmod(0o600)
    path = directory / "client.yaml"
    path.write_text(
        f"client: {{id: {CLIENT}, memory_file: {directory / 'client-memory.json'}}}\n"
        f"mqtt: {{host: 127.0.0.1, port: {broker.port}, password_file: {password}}}\n"
        f"bridges: [{DEVICE}]\n"
        "shutdown:\n  delay: 10m\n  min_runtime: 2m\n  notify: none\n"
        f"  command: [{sys.executable}, -c, 'raise SystemExit(1)']\n"
        f"signing: {{key_file: {key}}}\n"
    )
    return path


class Watch:
    """The bridge's ``ups`` and ``mains`` as an observer receives them, with arrival times."""

    def __init__(self, broker: Mosquitto) -> None:
        self.topics = BridgeTopics("powerbridge", DEVICE)
        self.mqtt = TestClient(broker, broker.observer).connect()
        for topic in (self.topics.ups, self.topics.mains):
            self.mqtt.subscribe(topic)

    def first(
        self, topic: str, match: Callable[[dict[str, Any]], bool], timeout: float = 20.0
    ) -> tuple[float, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            msg = self.mqtt.expect(topic, max(0.01, deadline - time.monotonic()))
            at = time.monotonic()
            data = json.loads(msg.payload)
            if match(data):
                return at, data


def _wait_for_line(log: Path, text: str, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return time.monotonic()
        time.sleep(0.02)
    raise AssertionError(f"{text!r} not in the client's log:\n{log.read_text(errors='replace')}")


def test_bridge_follows_a_scripted_discharge_and_a_client_shuts_down_on_min_runtime(
    broker: Mosquitto, upsd: DummyUpsd, tmp_path: Path
) -> None:
    key = tmp_path / "signing.key"
    key.write_bytes(KEY)
    key.chmod(0o600)
    watch = Watch(broker)
    homeassistant = TestClient(broker, broker.homeassistant).connect()
    homeassistant.subscribe(f"homeassistant/+/{DEVICE}/+/config")
    bridge = BridgeProcess(
        _bridge_config(broker, upsd, tmp_path / "bridge", key), tmp_path / "bridge.log"
    )
    client_log = tmp_path / "client.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "bridge", "-v", "client", "run"]
    argv += ["-c", str(_client_config(broker, tmp_path, key)), "--dry-run"]
    with client_log.open("ab") as out:
        client = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    bridge.start()
    try:
        # Home Assistant's UPS entities read the bridge's `ups` topic.
        configs = {}
        deadline = time.monotonic() + 20
        while "battery_runtime" not in configs and time.monotonic() < deadline:
            msg = homeassistant.expect(f"homeassistant/+/{DEVICE}/+/config", 20)
            configs[msg.topic.split("/")[-2]] = json.loads(msg.payload)
        runtime_entity = configs["battery_runtime"]
        assert runtime_entity["state_topic"] == watch.topics.ups

        _, first = watch.first(watch.topics.ups, lambda d: d["status"] == "OL")
        assert signing.verify(KEY, first)
        assert (first["charge"], first["runtime_s"], first["load"]) == (100.0, 1800.0, 20.0)
        watch.first(watch.topics.mains, lambda d: d["state"] == "on")
        _wait_for_line(client_log, "watching", 20)
        time.sleep(ONE_POLL)

        lags: list[float] = []
        cut = upsd.write(
            ups_status="OB DISCHRG", battery_charge=80, battery_runtime=900, ups_load=20
        )
        at, report = watch.first(watch.topics.ups, lambda d: d["runtime_s"] == 900.0)
        lags.append(at - cut)
        assert report["on_battery"] is True
        announced, mains = watch.first(watch.topics.mains, lambda d: d["state"] == "off")
        assert mains["source"] == "ups"
        assert announced - cut <= ONE_POLL + CONFIRM_OFF + MARGIN
        assert announced - at >= CONFIRM_OFF - 0.1  # held for the confirmation window

        step = upsd.write(
            ups_status="OB DISCHRG", battery_charge=50, battery_runtime=300, ups_load=20
        )
        at, _ = watch.first(watch.topics.ups, lambda d: d["runtime_s"] == 300.0)
        lags.append(at - step)
        time.sleep(ONE_POLL)
        assert "would shut down" not in client_log.read_text(errors="replace")

        crossing = upsd.write(
            ups_status="OB DISCHRG", battery_charge=30, battery_runtime=110, ups_load=20
        )
        at, _ = watch.first(watch.topics.ups, lambda d: d["runtime_s"] == 110.0)
        lags.append(at - crossing)
        decided = _wait_for_line(
            client_log, "would shut down now (UPS battery low or runtime short", ONE_POLL + 10
        )

        low = upsd.write(ups_status="OB LB", battery_charge=9, battery_runtime=60, ups_load=20)
        at, report = watch.first(watch.topics.ups, lambda d: d["low_battery"] is True)
        lags.append(at - low)
        assert report["runtime_s"] == 60.0

        print(
            f"ups topic lag after each rewrite (s): {[round(x, 2) for x in lags]} "
            f"(one poll = {ONE_POLL:.1f} s); outage announced {announced - cut:.2f} s after the "
            f"cut (confirm_off {CONFIRM_OFF} s); client decided {decided - crossing:.2f} s after "
            f"the runtime crossed min_runtime, {decided - cut:.1f} s into the outage (delay 600 s)"
        )
        assert max(lags) <= ONE_POLL + MARGIN
        assert decided - crossing <= ONE_POLL + MARGIN + 1.0  # plus the client's own receipt
        assert decided - cut < 600
        assert "Traceback" not in bridge.log_text()
    finally:
        stop_service(client, client_log)
        bridge.cleanup()
        watch.mqtt.disconnect()
        homeassistant.disconnect()


def test_an_unreachable_upsd_is_shown_in_health_and_never_an_outage(
    broker: Mosquitto, tmp_path: Path
) -> None:
    from bridge.broker.runner import free_port

    directory = tmp_path / "bridge"
    extra = f"ups: {{name: dummy, port: {free_port()}, poll: 500ms, timeout: 500ms}}\n"
    mains = "{source: ups, confirm_off: 100ms, confirm_on: 100ms}"
    bridge = BridgeProcess(
        write_config(broker, directory, extra, mains=mains), tmp_path / "bridge.log"
    )
    watch = Watch(broker)
    watch.mqtt.subscribe(watch.topics.health)
    bridge.start()
    try:
        _, health = watch.first(watch.topics.health, lambda d: d.get("ups_link") is False)
        assert health["broker_connected"] is True
        time.sleep(3)  # several failed polls
        assert bridge.process is not None
        assert bridge.process.poll() is None
        log = bridge.log_text()
        assert log.count("cannot read UPS dummy") == 1, log
        assert "Traceback" not in log
        late = TestClient(broker, broker.observer).connect()
        late.subscribe(watch.topics.mains)
        retained = late.expect(watch.topics.mains, 5)
        late.disconnect()
        assert retained.retain
        assert json.loads(retained.payload)["state"] == "unknown"  # never "off"
    finally:
        bridge.cleanup()
        watch.mqtt.disconnect()
