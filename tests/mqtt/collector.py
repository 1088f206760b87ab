"""An independent subscriber that records every sequence number a bridge publishes.

It uses a persistent session (fixed client id, ``clean_session=False``) and
resubscribes on every connect, as an archiver would; paho reconnects by itself
when the broker comes back.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bridge.broker.runner import Credentials, Mosquitto
from bridge.mqtt.contract import EventPayload, decode_samples


@dataclass
class Seen:
    topic: str
    payload: bytes
    retain: bool
    at: float


@dataclass
class Collector:
    """Subscribe to ``filters`` and keep everything; samples/events are decoded by ``seq``."""

    broker: Mosquitto
    creds: Credentials
    filters: tuple[str, ...] = ("powerbridge/#", "homeassistant/#")
    messages: list[Seen] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    sample_ts: dict[int, str] = field(default_factory=dict)
    events: list[EventPayload] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"collector-{uuid.uuid4().hex[:8]}",
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        self.client.username_pw_set(self.creds.username, self.creds.password)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_a: self.subscribed.set()
        self.client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, *_args: object) -> None:
        client.subscribe([(f, 1) for f in self.filters])

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        seen = Seen(msg.topic, bytes(msg.payload), bool(msg.retain), time.monotonic())
        with self._lock:
            self.messages.append(seen)
            if msg.topic.endswith("/samples"):
                for sample in decode_samples(msg.payload):
                    self.seqs.append(sample.seq)
                    self.sample_ts[sample.seq] = sample.ts.isoformat()
            elif msg.topic.endswith("/events"):
                event = EventPayload.decode(msg.payload)
                self.events.append(event)
                self.seqs.append(event.seq)

    def start(self) -> Collector:
        self.client.connect(self.broker.host, self.broker.port, keepalive=10)
        self.client.loop_start()
        assert self.subscribed.wait(5), "collector not subscribed"
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    # ---------------------------------------------------------------- queries
    def snapshot(self) -> list[Seen]:
        with self._lock:
            return list(self.messages)

    def on(self, topic: str, *, since: float = 0.0) -> list[Seen]:
        return [m for m in self.snapshot() if m.topic == topic and m.at >= since]

    def last_json(self, topic: str) -> dict[str, object]:
        found = self.on(topic)
        assert found, f"nothing on {topic}"
        data = json.loads(found[-1].payload)
        assert isinstance(data, dict)
        return data

    def wait_for(self, predicate: object, timeout: float = 10.0, what: str = "") -> None:
        assert callable(predicate)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what or predicate}")

    def wait_topic(
        self, topic: str, payload: bytes | None = None, *, since: float = 0.0, timeout: float = 10.0
    ) -> Seen:
        def found() -> Seen | None:
            for m in self.on(topic, since=since):
                if payload is None or m.payload == payload:
                    return m
            return None

        self.wait_for(lambda: found() is not None, timeout, f"{topic} = {payload!r}")
        result = found()
        assert result is not None
        return result

    def unique_seqs(self) -> set[int]:
        with self._lock:
            return set(self.seqs)

    def gaps(self, upto: int) -> list[int]:
        """Sequence numbers 1..upto never received."""
        have = self.unique_seqs()
        return [s for s in range(1, upto + 1) if s not in have]
