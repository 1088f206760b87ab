"""The client's MQTT connection (paho-mqtt 2.x): events in, retained state out.

The network thread only timestamps what arrives and queues it for the runtime;
it never decides anything.  ``status`` ``online`` (retained, QoS 1) and the
subscriptions are renewed in ``on_connect``, so they survive every reconnect; the
last will says ``offline``.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from bridge.clock import Clock
from bridge.config.common import MqttConfig
from bridge.log import RepeatedFailure
from bridge.mqtt.contract import OFFLINE, ONLINE, QOS_STATUS
from bridge.mqtt.paho import configured_client, refusal
from bridge.shutdown.runtime import Connected, Disconnected, Event, Message

log = logging.getLogger("bridge.shutdown.mqtt")


class Listener:
    """One paho client: connects (retrying with backoff), subscribes, hands events on."""

    def __init__(
        self,
        config: MqttConfig,
        *,
        host: str,
        port: int,
        mqtt_client_id: str,
        username: str | None,
        password: str | None,
        status_topic: str,
        subscriptions: Sequence[tuple[str, int]],
        on_event: Callable[[Event], None],
        clock: Clock,
    ) -> None:
        self.host = host
        self.port = port
        self._status_topic = status_topic
        self._subscriptions = list(subscriptions)
        self._on_event = on_event
        self._clock = clock
        self._failure = RepeatedFailure(log, f"broker {host}:{port}")
        self.connected = False
        self._client = configured_client(
            config,
            client_id=mqtt_client_id or f"powerbridge-client-{uuid.uuid4().hex[:8]}",
            username=username,
            password=password,
        )
        self._client.will_set(status_topic, OFFLINE, qos=QOS_STATUS, retain=True)
        self._client.reconnect_delay_set(
            min_delay=max(1, round(config.reconnect_min)),
            max_delay=max(1, round(config.reconnect_max)),
        )
        self._keepalive = max(5, round(config.keepalive))
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_connect_fail = self._on_connect_fail

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background: a broker that is down now is retried, never fatal."""
        log.info("connecting to the broker at %s:%d", self.host, self.port)
        self._client.connect_async(self.host, self.port, keepalive=self._keepalive)
        self._client.loop_start()

    def stop(self, timeout: float = 3.0) -> None:
        """Say ``offline`` (a clean stop sends no last will), disconnect, stop the thread."""
        if self.connected:
            info = self._client.publish(self._status_topic, OFFLINE, qos=QOS_STATUS, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                log.debug("offline status not confirmed before disconnecting")
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> None:
        result = self._client.publish(topic, payload, qos=qos, retain=retain)
        if result.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            log.warning("publishing to %s failed: %s", topic, mqtt.error_string(result.rc))

    # -- paho callbacks (network thread) ---------------------------------------------------
    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        _flags: Any,
        reason: ReasonCode,
        _properties: Any,
    ) -> None:
        if reason.is_failure:
            self._failure.failed(refusal(reason))
            return
        self._failure.recovered()
        self.connected = True
        client.publish(self._status_topic, ONLINE, qos=QOS_STATUS, retain=True)
        if self._subscriptions:
            client.subscribe(self._subscriptions)
        self._on_event(Connected(self._clock.monotonic()))

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _flags: Any,
        reason: ReasonCode,
        _properties: Any,
    ) -> None:
        was = self.connected
        self.connected = False
        if was:
            log.warning("connection to the broker lost (%s); reconnecting", reason)
            self._on_event(Disconnected(self._clock.monotonic()))

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        # paho does not pass the cause: a name that does not resolve is told apart here.
        try:
            socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except OSError as exc:
            self._failure.failed(
                f"cannot resolve {self.host}: {exc.strerror or exc} (check mqtt.host)"
            )
            return
        self._failure.failed("cannot connect (is the broker running and reachable?)")

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._on_event(
            Message(
                topic=msg.topic,
                payload=bytes(msg.payload),
                retained=bool(msg.retain),
                received=self._clock.monotonic(),
                wall=self._clock.utcnow(),
            )
        )
