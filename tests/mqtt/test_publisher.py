"""The publisher against a real Mosquitto: availability, live and replayed samples, retained
state, discovery clean-up, Home Assistant birth, commands, TLS, MQTT 5, broker down at boot."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.broker.runner import BrokerSetup, Mosquitto, prepare
from bridge.config.bridge import parse_bridge_config
from bridge.model import Reading
from bridge.mqtt import publisher as publisher_module
from bridge.mqtt import signing
from bridge.mqtt.contract import QOS_MAINS, CommandPayload, EventPayload
from tests.helpers.mqtt import TestClient
from tests.mqtt.collector import Collector
from tests.mqtt.harness import DEVICE, Harness, bridge_config

pytestmark = pytest.mark.integration


@pytest.fixture
def collector(broker: Mosquitto) -> Iterator[Collector]:
    c = Collector(broker, broker.observer).start()
    try:
        yield c
    finally:
        c.stop()


def reading(power: float, when: datetime | None = None) -> Reading:
    return Reading(
        time=when or datetime.now(UTC),
        monotonic=time.monotonic(),
        meter="pzem004t",
        voltage_v=230.0,
        power_w=power,
        energy_wh=1000.0 + power,
    )


def test_connect_publishes_online_discovery_and_live_samples(
    broker: Mosquitto, collector: Collector, tmp_path: Path
) -> None:
    config = bridge_config(broker, tmp_path, "meter: {type: pzem004t, port: /dev/null}")
    h = Harness(config).start()
    try:
        h.wait_connected()
        collector.wait_topic(f"powerbridge/{DEVICE}/status", b"online")
        config_topic = f"homeassistant/sensor/{DEVICE}/power/config"
        power = json.loads(collector.wait_topic(config_topic).payload)
        assert power["unique_id"] == f"{DEVICE}_power"
        for i in range(25):
            h.call(lambda i=i: h.publisher.add_reading(reading(float(i))))
        h.wait_drained()
        collector.wait_for(lambda: collector.unique_seqs() >= set(range(1, 26)), what="25 seqs")
        # `state` is throttled to one message per second; the newest value always follows.
        state_topic = f"powerbridge/{DEVICE}/state"
        collector.wait_for(
            lambda: any(json.loads(m.payload)["seq"] == 25 for m in collector.on(state_topic)),
            what="state",
        )
        state = collector.last_json(state_topic)
        assert len(collector.on(state_topic)) <= 3
        assert state["power_w"] == 24.0
        assert state["seq"] == 25
        assert state["energy_kwh"] == 1.024
        # Live samples go out in small batches, not one message each.
        assert len(collector.on(f"powerbridge/{DEVICE}/samples")) < 25
    finally:
        h.stop()
    assert collector.wait_topic(f"powerbridge/{DEVICE}/status", b"offline").retain is False


def test_backlog_is_replayed_oldest_first_and_never_overwrites_state(
    broker: Mosquitto, collector: Collector, tmp_path: Path
) -> None:
    config = bridge_config(broker, tmp_path)
    broker.stop()  # the broker is down at boot: not fatal, everything is spooled
    h = Harness(config).start()
    try:
        old = datetime(2026, 1, 1, tzinfo=UTC)
        for i in range(300):
            h.call(
                lambda i=i: h.publisher.add_reading(reading(float(i), old + timedelta(seconds=i)))
            )
        assert h.call(lambda: h.spool.depth) == 300
        broker.start()
        h.wait_connected()
        collector.wait_for(lambda: collector.unique_seqs() >= set(range(1, 301)), what="replay")
        h.wait_drained()
        first = next(m for m in collector.snapshot() if m.topic.endswith("/samples"))
        assert json.loads(first.payload)["samples"][0]["seq"] == 1  # oldest first
        assert collector.sample_ts[1] == old.isoformat()  # original timestamps
        # A live reading after the replay: state is the newest value, and stays so.
        h.call(lambda: h.publisher.add_reading(reading(999.0)))
        collector.wait_for(lambda: 301 in collector.unique_seqs(), what="live sample")
        time.sleep(1.2)
        states = [json.loads(m.payload) for m in collector.on(f"powerbridge/{DEVICE}/state")]
        assert states[-1]["power_w"] == 999.0
        assert all(s["seq"] in (300, 301) for s in states)  # never a replayed older one
        assert h.publisher.stats.replay_batches >= 6  # batches of 50
    finally:
        h.stop()


def test_stale_discovery_configs_are_cleared(
    broker: Mosquitto, collector: Collector, tmp_path: Path
) -> None:
    config = bridge_config(broker, tmp_path, "meter: {type: pzem004t, port: /dev/null}")
    h = Harness(config).start()
    h.wait_connected()
    power_topic = f"homeassistant/sensor/{DEVICE}/power/config"
    collector.wait_topic(power_topic)
    h.stop()
    # Same bridge, meter removed: its meter entities must disappear from Home Assistant.
    config = bridge_config(broker, tmp_path)
    h = Harness(config).start()
    try:
        h.wait_connected()
        cleared = collector.wait_topic(power_topic, b"")
        assert cleared.payload == b""
        collector.wait_for(lambda: h.publisher.stats.discovery_cleared >= 5, what="acks")
    finally:
        h.stop()
    # A late subscriber finds no retained config for the removed entity.
    late = TestClient(broker, broker.observer).connect()
    late.subscribe(f"homeassistant/+/{DEVICE}/#")
    topics = {m.topic for m in late.drain(0.5)}
    late.disconnect()
    assert power_topic not in topics
    assert f"homeassistant/binary_sensor/{DEVICE}/mains/config" in topics


def test_home_assistant_birth_republishes_discovery_and_states(
    broker: Mosquitto, collector: Collector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publisher_module, "BIRTH_DELAY_S", (0.1, 0.3))
    config = bridge_config(broker, tmp_path)
    h = Harness(config).start()
    try:
        h.wait_connected()
        mains = f"powerbridge/{DEVICE}/mains"
        h.call(lambda: h.publisher.retain(mains, lambda: b'{"fake":1}', QOS_MAINS))
        collector.wait_topic(mains)
        mark = time.monotonic()
        ha = TestClient(broker, broker.homeassistant).connect()
        ha.publish("homeassistant/status", "online", qos=1, retain=False)
        ha.disconnect()
        again = collector.wait_topic(
            f"homeassistant/binary_sensor/{DEVICE}/mains/config", since=mark
        )
        assert again.retain is False  # a live republish, not the retained copy
        collector.wait_topic(mains, since=mark)
        assert collector.on(mains, since=mark)[0].at - mark >= 0.1  # after the random delay
    finally:
        h.stop()


def test_commands_are_verified_when_a_key_is_configured(broker: Mosquitto, tmp_path: Path) -> None:
    key = b"k" * 32
    calls: list[dict[str, Any]] = []
    config = bridge_config(broker, tmp_path)
    h = Harness(config, commands={"simulate": calls.append}, key=key).start()
    try:
        h.wait_connected()
        time.sleep(0.3)
        ha = TestClient(broker, broker.homeassistant).connect()
        topic = f"powerbridge/{DEVICE}/cmd/simulate"
        unsigned = CommandPayload("simulate", {"mains": "off"}, datetime.now(UTC), "n1")
        ha.publish(topic, unsigned.encode())
        signed = signing.sign(key, unsigned.to_dict() | {"nonce": "n2"}, topic=topic)
        raw = json.dumps(signed).encode()
        ha.publish(topic, raw)
        ha.publish(topic, raw)  # a replay
        stale = CommandPayload(
            "simulate", {"mains": "on"}, datetime.now(UTC) - timedelta(hours=1), "n3"
        )
        ha.publish(topic, json.dumps(signing.sign(key, stale.to_dict(), topic=topic)).encode())
        elsewhere = f"powerbridge/{DEVICE}-b/cmd/simulate"  # signed for another bridge
        moved = unsigned.to_dict() | {"nonce": "n5"}
        ha.publish(topic, json.dumps(signing.sign(key, moved, topic=elsewhere)).encode())
        ha.publish(
            f"powerbridge/{DEVICE}/cmd/reboot",
            json.dumps(
                signing.sign(
                    key,
                    {"v": 1, "ts": unsigned.to_dict()["ts"], "nonce": "n4", "args": {}},
                    topic=f"powerbridge/{DEVICE}/cmd/reboot",
                )
            ).encode(),
        )
        ha.disconnect()
        deadline = time.monotonic() + 5
        while h.call(lambda: h.publisher.commands.rejected) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert calls == [{"mains": "off"}]
        assert h.publisher.commands.rejected == 5
    finally:
        h.stop()


def test_republish_command_without_key(
    broker: Mosquitto, collector: Collector, tmp_path: Path
) -> None:
    config = bridge_config(broker, tmp_path)
    h = Harness(config).start()
    try:
        h.wait_connected()
        topic = f"homeassistant/binary_sensor/{DEVICE}/mains/config"
        collector.wait_topic(topic)
        mark = time.monotonic()
        ha = TestClient(broker, broker.homeassistant).connect()
        cmd = CommandPayload("republish", {}, datetime.now(UTC), "r1")
        ha.publish(f"powerbridge/{DEVICE}/cmd/republish", cmd.encode())
        ha.disconnect()
        collector.wait_topic(topic, since=mark)
    finally:
        h.stop()


def test_events_share_the_sequence_and_go_out_in_order(
    broker: Mosquitto, collector: Collector, tmp_path: Path
) -> None:
    config = bridge_config(broker, tmp_path)
    h = Harness(config).start()
    try:
        h.wait_connected()
        now = datetime.now(UTC)
        h.call(lambda: h.publisher.add_reading(reading(1.0)))
        h.call(
            lambda: h.publisher.add_event(
                lambda seq: EventPayload(DEVICE, "outage_started", seq, 7, now, now).encode()
            )
        )
        h.call(lambda: h.publisher.add_reading(reading(2.0)))
        collector.wait_for(lambda: collector.unique_seqs() == {1, 2, 3}, what="3 seqs")
        assert [e.seq for e in collector.events] == [2]
        assert collector.events[0].mains_seq == 7
        h.wait_drained()
    finally:
        h.stop()


def test_wrong_password_is_logged_once_then_summarised(
    broker: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = bridge_config(broker, tmp_path)
    (tmp_path / "bridge.pass").write_text("wrong\n")
    caplog.set_level(logging.WARNING, logger="bridge.mqtt.publisher")
    h = Harness(config).start()
    try:
        time.sleep(2.0)  # several attempts (reconnect delay 0.2 s .. 1 s)
        assert not h.call(lambda: h.publisher.connected)
        refused = [r for r in caplog.records if "refused" in r.getMessage()]
        assert len(refused) == 1
        assert "password" in refused[0].getMessage()
    finally:
        h.stop()


def test_mqtt5_delivers_and_acknowledges(
    broker: Mosquitto, collector: Collector, tmp_path: Path
) -> None:
    config = bridge_config(broker, tmp_path, mqtt_extra='protocol: "5"')
    assert config.mqtt.protocol == "5"
    h = Harness(config).start()
    try:
        h.wait_connected()
        for i in range(5):
            h.call(lambda i=i: h.publisher.add_reading(reading(float(i))))
        collector.wait_for(lambda: collector.unique_seqs() == {1, 2, 3, 4, 5}, what="5 seqs")
        h.wait_drained()
    finally:
        h.stop()


def test_tls_with_the_broker_ca(tmp_path: Path) -> None:
    broker = prepare(tmp_path / "tls", BrokerSetup(tls=True))
    broker.start()
    try:
        secret = tmp_path / "bridge.pass"
        secret.write_text(broker.bridge(DEVICE).password)
        config = parse_bridge_config(
            f"""
device: {{id: {DEVICE}, data_dir: {tmp_path / "data"}}}
mqtt:
  host: localhost
  port: {broker.tls_port}
  password_file: {secret}
  tls: {{enabled: true, ca_file: {broker.ca_file}}}
"""
        )
        h = Harness(config).start()
        try:
            h.wait_connected()
            h.call(lambda: h.publisher.add_reading(reading(5.0)))
            h.wait_drained()
        finally:
            h.stop()
    finally:
        broker.kill()


def test_a_batch_larger_than_the_brokers_packet_limit_is_split(
    broker: Mosquitto, collector: Collector, tmp_path: Path
) -> None:
    """`config check` bounds spool.batch_size; the publisher splits anything bigger anyway."""
    from dataclasses import replace

    config = bridge_config(broker, tmp_path)
    # A broker limit of 4 KiB, with batches of 50 (~7 KiB): what `config check` refuses.
    config = replace(config, mqtt=replace(config.mqtt, max_packet_size=4096))
    broker.stop()
    h = Harness(config).start()
    try:
        old = datetime(2026, 1, 1, tzinfo=UTC)
        for i in range(200):
            h.call(
                lambda i=i: h.publisher.add_reading(reading(float(i), old + timedelta(seconds=i)))
            )
        broker.start()
        h.wait_connected()
        collector.wait_for(lambda: collector.unique_seqs() >= set(range(1, 201)), what="replay")
        h.wait_drained()
        batches = collector.on(f"powerbridge/{DEVICE}/samples")
        assert all(len(m.payload) <= 4096 - 1024 for m in batches)
        assert len(batches) > 200 // 50  # more messages than batches of 50: they were split
    finally:
        h.stop()


def test_on_a_full_disk_samples_are_counted_as_lost_and_outage_events_kept(
    broker: Mosquitto, collector: Collector, tmp_path: Path
) -> None:
    config = bridge_config(broker, tmp_path)
    h = Harness(config).start()
    conn = h.spool._conn
    try:
        h.wait_connected()
        now = datetime.now(UTC)
        h.call(lambda: h.publisher.add_reading(reading(1.0)))
        pages = h.call(lambda: conn.execute("PRAGMA page_count").fetchone()[0])
        h.call(lambda: conn.execute(f"PRAGMA max_page_count = {pages}"))
        lost = [h.call(lambda i=i: h.publisher.add_reading(reading(10.0 + i))) for i in range(60)]
        event = h.call(
            lambda: h.publisher.add_event(
                lambda seq: EventPayload(DEVICE, "outage_started", seq, 7, now, now).encode()
            )
        )
        failed = sum(1 for item in lost if item is None)
        assert failed > 0
        assert event is None  # not written: kept in memory
        assert h.call(lambda: h.spool.dropped) == failed
        time.sleep(0.5)
        h.call(lambda: conn.execute("PRAGMA max_page_count = 1073741823"))  # space again
        # written and sent by the next pump, before anything newer
        collector.wait_for(lambda: len(collector.events) == 1, what="the outage event")
        h.call(lambda: h.publisher.add_reading(reading(2.0)))
        collector.wait_for(lambda: len(collector.events) == 1, what="the outage event")
        last = max(collector.unique_seqs())
        missing = set(range(1, last + 1)) - collector.unique_seqs()
        assert len(missing) == failed  # every lost sample is a visible gap
        assert collector.events[0].seq > max(missing)
    finally:
        h.stop()
