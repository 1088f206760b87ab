"""A small synchronous MQTT test client on paho-mqtt 2.x (VERSION2 callbacks)."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bridge.broker.runner import Credentials, Mosquitto


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool
    qos: int


class TestClient:
    """Connect as one role, subscribe, and wait for messages; thread-safe collection."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        broker: Mosquitto,
        creds: Credentials | None,
        *,
        client_id: str | None = None,
        will: tuple[str, bytes] | None = None,
        keepalive: int = 60,
        port: int | None = None,
    ) -> None:
        self.messages: queue.Queue[Message] = queue.Queue()
        self.connected = threading.Event()
        self.connect_rc: int | None = None
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv311,
        )
        if creds is not None:
            self._client.username_pw_set(creds.username, creds.password)
        if will is not None:
            self._client.will_set(will[0], will[1], qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._host = broker.host
        self._port = port or broker.port
        self._keepalive = keepalive

    @property
    def paho(self) -> mqtt.Client:
        return self._client

    def _on_connect(self, _c: mqtt.Client, _u: object, _f: object, rc: object, _p: object) -> None:
        self.connect_rc = int(getattr(rc, "value", rc))  # ReasonCode → int
        if self.connect_rc == 0:
            self.connected.set()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self.messages.put(Message(msg.topic, msg.payload, bool(msg.retain), msg.qos))

    def connect(self, timeout: float = 5.0) -> TestClient:
        self._client.connect(self._host, self._port, keepalive=self._keepalive)
        self._client.loop_start()
        if not self.connected.wait(timeout):
            self.disconnect()
            raise ConnectionError(f"not accepted by the broker (rc={self.connect_rc})")
        return self

    def subscribe(self, topic: str, qos: int = 1) -> None:
        done = threading.Event()
        self._client.on_subscribe = lambda *_a: done.set()
        self._client.subscribe(topic, qos)
        if not done.wait(5):
            raise TimeoutError(f"no SUBACK for {topic}")

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(5)

    def expect(self, topic: str, timeout: float = 5.0) -> Message:
        """The next message on ``topic`` (others are kept in ``seen``)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no message on {topic} within {timeout} s")
            try:
                msg = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            if mqtt.topic_matches_sub(topic, msg.topic):
                return msg

    def drain(self, wait: float = 0.3) -> list[Message]:
        """Everything received within ``wait`` seconds from now."""
        time.sleep(wait)
        out: list[Message] = []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except queue.Empty:
                return out

    def disconnect(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
