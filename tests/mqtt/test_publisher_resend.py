"""``cmd/resend`` at the bridge: acknowledged samples it keeps are sent again, nothing else."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.broker.runner import Mosquitto
from bridge.mqtt import signing
from bridge.mqtt.contract import CommandPayload, dumps
from tests.helpers.mqtt import TestClient
from tests.mqtt.collector import Collector
from tests.mqtt.harness import DEVICE, Harness, bridge_config
from tests.mqtt.test_publisher import reading

pytestmark = pytest.mark.integration

KEY = b"s" * 32


def resend(broker: Mosquitto, first: int, last: int, nonce: str) -> None:
    topic = f"powerbridge/{DEVICE}/cmd/resend"
    command = CommandPayload("resend", {"first": first, "last": last}, datetime.now(UTC), nonce)
    signed = signing.sign_command(KEY, topic, command.to_dict())
    ha = TestClient(broker, broker.homeassistant).connect()
    ha.publish(topic, dumps(signed))
    ha.disconnect()


def test_acknowledged_samples_are_sent_again_on_request(broker: Mosquitto, tmp_path: Path) -> None:
    key_file = tmp_path / "signing.key"
    key_file.write_bytes(KEY)
    config = bridge_config(broker, tmp_path, f"signing: {{key_file: {key_file}}}")
    collector = Collector(broker, broker.observer, filters=("powerbridge/+/samples",)).start()
    h = Harness(config, key=KEY).start()
    try:
        h.wait_connected()
        for power in range(20):
            h.call(lambda p=power: h.publisher.add_reading(reading(float(p))))
        h.wait_drained()
        collector.wait_for(lambda: len(collector.unique_seqs()) >= 20, 10, "20 samples")
        assert h.call(lambda: len(h.spool.items_between(1, 20, limit=100))) == 20  # kept
        resend(broker, 5, 9, "n1")
        collector.wait_for(lambda: len(collector.seqs) >= 25, 10, "the range again")
        counts = Counter(collector.seqs)
        assert {s for s, n in counts.items() if n == 2} == {5, 6, 7, 8, 9}
        assert h.publisher.stats.resent == 5
        resend(broker, 5, 9, "n1")  # the same nonce again: a replay, refused
        resend(broker, 9, 5, "n2")  # a reversed range: refused
        collector.wait_for(lambda: h.publisher.commands.rejected == 2, 10, "two refusals")
        assert h.publisher.stats.resent == 5
    finally:
        h.stop()
        collector.stop()
