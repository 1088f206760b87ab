"""Acceptance: the real bridge process against a real Mosquitto.

The bridge runs as ``python -m bridge run -c FILE`` with a simulated meter at
10 Hz behind a pseudo-terminal and simulated mains, so it needs no hardware.  An
independent subscriber (observer credentials, persistent session) checks that
every sequence number arrives, whatever is killed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.broker.runner import Mosquitto
from bridge.mqtt.contract import CommandPayload
from tests.daemon.bridge_process import DEVICE, BridgeProcess, persist_broker, write_config
from tests.helpers.mqtt import TestClient
from tests.mqtt.collector import Collector

pytestmark = pytest.mark.integration

STATUS = f"powerbridge/{DEVICE}/status"
KEEPALIVE_S = 5.0


@pytest.fixture
def collector(broker: Mosquitto) -> Iterator[Collector]:
    c = Collector(broker, broker.observer).start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def bridge(broker: Mosquitto, tmp_path: Path) -> Iterator[BridgeProcess]:
    process = BridgeProcess(write_config(broker, tmp_path / "bridge"), tmp_path / "bridge.log")
    try:
        yield process
    finally:
        process.cleanup()


def wait_samples(collector: Collector, count: int, timeout: float = 15.0) -> None:
    collector.wait_for(lambda: len(collector.unique_seqs()) >= count, timeout, f"{count} samples")


def assert_no_gaps(collector: Collector, bridge: BridgeProcess) -> int:
    """After a clean stop: every spooled sequence number reached the subscriber."""
    last = bridge.last_seq()
    assert bridge.undelivered() == 0, bridge.log_text()[-3000:]
    collector.wait_for(lambda: not collector.gaps(last), 10, "all sequence numbers")
    assert max(collector.unique_seqs()) == last
    return last


def test_sigterm_publishes_offline_flushes_and_exits_0(
    collector: Collector, bridge: BridgeProcess
) -> None:
    bridge.start()
    collector.wait_topic(STATUS, b"online", timeout=15)
    wait_samples(collector, 20)
    mark = time.monotonic()
    code, took = bridge.terminate()
    assert code == 0, bridge.log_text()[-3000:]
    assert took < 5.0
    collector.wait_topic(STATUS, b"offline", since=mark, timeout=5)
    assert_no_gaps(collector, bridge)


def test_sigkill_shows_offline_within_one_and_a_half_keepalives(
    collector: Collector, bridge: BridgeProcess
) -> None:
    bridge.start()
    collector.wait_topic(STATUS, b"online", timeout=15)
    mark = time.monotonic()
    bridge.kill()
    offline = collector.wait_topic(STATUS, b"offline", since=mark, timeout=1.5 * KEEPALIVE_S)
    assert offline.at - mark <= 1.5 * KEEPALIVE_S


def test_no_gaps_when_the_broker_is_killed_for_30_seconds(
    broker: Mosquitto, collector: Collector, bridge: BridgeProcess
) -> None:
    bridge.start()
    collector.wait_topic(STATUS, b"online", timeout=15)
    wait_samples(collector, 20)
    persist_broker(broker)  # the subscriber's persistent session survives the crash
    broker.kill()
    killed = datetime.now(UTC)
    before = max(collector.unique_seqs())
    time.sleep(30)
    restarted = datetime.now(UTC)
    broker.start()
    # ~300 samples were taken during the outage: wait until they, and live ones, arrive.
    wait_samples(collector, before + 300, timeout=20)
    time.sleep(1.0)
    code, _took = bridge.terminate()
    assert code == 0
    last = assert_no_gaps(collector, bridge)
    assert last >= before + 300
    during = [
        seq
        for seq, ts in collector.sample_ts.items()
        if killed < datetime.fromisoformat(ts) < restarted
    ]
    assert len(during) >= 250  # samples taken while the broker was down were delivered later
    assert "broker 127.0.0.1" in bridge.log_text()


def test_no_gaps_when_the_bridge_is_killed_while_the_broker_is_down(
    broker: Mosquitto, collector: Collector, bridge: BridgeProcess
) -> None:
    bridge.start()
    collector.wait_topic(STATUS, b"online", timeout=15)
    wait_samples(collector, 20)
    persist_broker(broker)
    broker.kill()
    time.sleep(2.0)  # ~20 samples spooled, never acknowledged
    bridge.kill()
    spooled = bridge.last_seq()
    assert spooled > max(collector.unique_seqs())
    bridge.start()  # the broker is still down: the bridge starts anyway
    time.sleep(2.0)
    broker.start()
    collector.wait_for(lambda: spooled in collector.unique_seqs(), 20, "the spooled samples")
    wait_samples(collector, spooled + 10)
    code, _took = bridge.terminate()
    assert code == 0
    last = assert_no_gaps(collector, bridge)
    assert last > spooled  # sequence numbers continued after the restart


def test_home_assistant_birth_triggers_republish(
    broker: Mosquitto, collector: Collector, bridge: BridgeProcess
) -> None:
    bridge.start()
    config_topic = f"homeassistant/sensor/{DEVICE}/power/config"
    collector.wait_topic(config_topic, timeout=15)
    collector.wait_topic(f"powerbridge/{DEVICE}/mains", timeout=10)
    collector.wait_topic(f"powerbridge/{DEVICE}/health", timeout=10)
    mark = time.monotonic()
    ha = TestClient(broker, broker.homeassistant).connect()
    ha.publish("homeassistant/status", "online", qos=1, retain=False)
    ha.disconnect()
    for topic in (
        config_topic,
        f"homeassistant/binary_sensor/{DEVICE}/mains/config",
        f"powerbridge/{DEVICE}/mains",
        f"powerbridge/{DEVICE}/outage",
        f"powerbridge/{DEVICE}/health",
        f"powerbridge/{DEVICE}/state",
    ):
        collector.wait_topic(topic, since=mark, timeout=8)
    code, _took = bridge.terminate()
    assert code == 0


def test_simulated_outage_is_announced_and_recorded(
    broker: Mosquitto, collector: Collector, bridge: BridgeProcess
) -> None:
    bridge.start()
    mains_topic = f"powerbridge/{DEVICE}/mains"
    collector.wait_for(
        lambda: any(json.loads(m.payload)["state"] == "on" for m in collector.on(mains_topic)),
        15,
        "mains on",
    )
    ha = TestClient(broker, broker.homeassistant).connect()

    def simulate(state: str) -> None:
        cmd = CommandPayload("simulate", {"mains": state}, datetime.now(UTC), f"n-{state}")
        ha.publish(f"powerbridge/{DEVICE}/cmd/simulate", cmd.encode())

    simulate("off")
    collector.wait_for(lambda: len(collector.events) == 1, 10, "outage_started")
    off = collector.last_json(mains_topic)
    assert off["state"] == "off"
    outage = collector.last_json(f"powerbridge/{DEVICE}/outage")
    assert outage["since"] == off["since"]
    time.sleep(0.5)
    simulate("on")
    collector.wait_for(lambda: len(collector.events) == 2, 10, "outage_ended")
    ha.disconnect()
    started, ended = collector.events
    assert (started.type, ended.type) == ("outage_started", "outage_ended")
    assert ended.duration_s is not None
    assert 0.3 < ended.duration_s < 5
    on = collector.last_json(mains_topic)
    assert on["state"] == "on"
    assert on["outage_count"] == 1
    assert on["last_outage_s"] == pytest.approx(ended.duration_s, abs=0.01)
    assert collector.last_json(f"powerbridge/{DEVICE}/outage")["since"] is None
    code, _took = bridge.terminate()
    assert code == 0
    # Events share the sequence with samples: still no gaps.
    assert_no_gaps(collector, bridge)


def test_simulated_outage_seen_by_the_meter_alone(
    broker: Mosquitto, collector: Collector, tmp_path: Path
) -> None:
    """`mains.source: meter`: simulate cuts the simulated PZEM too, which falls silent."""
    config = write_config(
        broker,
        tmp_path / "meter-bridge",
        mains="{source: meter, confirm_off: 100ms, confirm_on: 100ms, meter_silence: 500ms}",
    )
    bridge = BridgeProcess(config, tmp_path / "meter-bridge.log")
    try:
        bridge.start()
        mains_topic = f"powerbridge/{DEVICE}/mains"
        collector.wait_for(
            lambda: any(json.loads(m.payload)["state"] == "on" for m in collector.on(mains_topic)),
            15,
            "mains on from the meter",
        )
        ha = TestClient(broker, broker.homeassistant).connect()
        cmd = CommandPayload("simulate", {"mains": "off"}, datetime.now(UTC), "meter-off")
        ha.publish(f"powerbridge/{DEVICE}/cmd/simulate", cmd.encode())
        collector.wait_for(lambda: len(collector.events) == 1, 10, "outage_started")
        # The event and the retained mains topic are separate messages; either may come first.
        collector.wait_for(
            lambda: collector.last_json(mains_topic)["state"] != "on", 10, "mains off retained"
        )
        off = collector.last_json(mains_topic)
        assert (off["state"], off["source"]) == ("off", "meter")
        cmd = CommandPayload("simulate", {"mains": "on"}, datetime.now(UTC), "meter-on")
        ha.publish(f"powerbridge/{DEVICE}/cmd/simulate", cmd.encode())
        collector.wait_for(lambda: len(collector.events) == 2, 10, "outage_ended")
        ha.disconnect()
        collector.wait_for(
            lambda: collector.last_json(mains_topic)["state"] != "off", 10, "mains on retained"
        )
        assert collector.last_json(mains_topic)["state"] == "on"
        code, _took = bridge.terminate()
        assert code == 0
    finally:
        bridge.cleanup()
