"""A long-lived MQTT connection that announces itself: the bridge's and the client's.

:class:`StatusLink` wraps one paho-mqtt client (built by :mod:`bridge.mqtt.paho`):
the retained ``offline`` last will at QoS 1 on its status topic,
``connect_async`` + ``loop_start`` (a broker that is down at start is not fatal),
paho's own exponential reconnect backoff, and on every (re)connect: subscriptions
renewed, then ``online``.  A clean stop publishes ``offline`` itself (a clean
disconnect sends no last will).  Its callbacks run on paho's network thread and
only hand what happened to the owner, through the hooks a subclass overrides.

:class:`MqttLink` is the bridge's (it counts connections and reports publish
acknowledgements); the shutdown client's is :class:`bridge.shutdown.listener.Listener`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from bridge.config.common import MqttConfig
from bridge.log import RepeatedFailure
from bridge.mqtt.contract import OFFLINE, ONLINE, QOS_STATUS, bridge_user
from bridge.mqtt.paho import configured_client, connect_async, refusal, unreachable

log = logging.getLogger(__name__)

PAHO_MAX_INFLIGHT: Final = 200
"""paho's own in-flight limit; above the bridge's replay window plus a burst of discovery."""


class StatusLink:
    """One paho client with a status topic, a last will and renewed subscriptions.

    Subclasses override the hooks :meth:`_connected`, :meth:`_lost` and :meth:`_message`;
    they run on paho's network thread.
    """

    _refused_note = ""
    """Appended to the log line of a message paho refused (what becomes of it)."""

    def __init__(
        self,
        config: MqttConfig,
        *,
        client_id: str,
        username: str | None,
        password: str | None,
        status_topic: str,
        subscriptions: Sequence[tuple[str, int]],
        logger: logging.Logger,
        host: str | None = None,
        port: int | None = None,
        min_keepalive: int = 1,
    ) -> None:
        self.config = config
        self.host = host or config.host
        self.port = port or config.effective_port
        self._status_topic = status_topic
        self._subscriptions = list(subscriptions)
        self._log = logger
        self._keepalive = max(min_keepalive, round(config.keepalive))
        self._stopping = False
        self._failure = RepeatedFailure(logger, f"broker {self.host}:{self.port}")
        self._client = configured_client(
            config, client_id=client_id, username=username, password=password
        )
        self._client.will_set(status_topic, OFFLINE, qos=QOS_STATUS, retain=True)
        self._client.on_connect = self._handle_connect
        self._client.on_connect_fail = self._handle_connect_fail
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_message = self._handle_message

    @property
    def connected(self) -> bool:
        return self._client.is_connected()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Connect in the background; paho retries with backoff until the broker answers."""
        self._log.info("connecting to the broker at %s:%d", self.host, self.port)
        connect_async(self._client, self.host, self.port, keepalive=self._keepalive)

    def stop(self, timeout: float = 2.0) -> None:
        """Publish ``offline`` (retained) and disconnect cleanly; then stop paho's thread."""
        self._stopping = True
        if self._client.is_connected():
            info = self._client.publish(self._status_topic, OFFLINE, qos=QOS_STATUS, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as exc:
                self._log.warning("could not publish offline before stopping: %s", exc)
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, topic: str, payload: bytes | str, qos: int, retain: bool) -> int | None:
        """Hand a message to paho; its message id (``None`` if paho refused it).

        A message published while disconnected is queued by paho (QoS ≥ 1) or dropped.
        """
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            self._log.error(
                "refused to publish %d bytes to %s: %s%s",
                len(payload),
                topic,
                mqtt.error_string(info.rc),
                self._refused_note,
            )
            return None
        return int(info.mid)

    # ------------------------------------------------------------------ hooks (network thread)
    def _connected(self) -> None:
        """Connected, subscribed and ``online`` (after every reconnect too)."""

    def _lost(self, reason: str) -> None:
        """The connection dropped (not on a clean stop); paho is reconnecting."""

    def _message(self, topic: str, payload: bytes, retained: bool) -> None:
        """A message on a subscribed topic."""

    # ------------------------------------------------------------------ paho callbacks
    def _handle_connect(
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
        if self._subscriptions:
            client.subscribe(self._subscriptions)
        client.publish(self._status_topic, ONLINE, qos=QOS_STATUS, retain=True)
        self._failure.recovered()
        self._connected()

    def _handle_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        self._failure.failed(unreachable(self.host, self.port))

    def _handle_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _flags: Any,
        reason: ReasonCode,
        _properties: Any,
    ) -> None:
        if not self._stopping:
            self._lost(str(reason))

    def _handle_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._message(msg.topic, bytes(msg.payload), bool(msg.retain))


class MqttLink(StatusLink):
    """The bridge's link: its will, credentials, TLS and reconnect policy; counts connections.

    The ``on_*`` callables are called on paho's network thread.
    """

    _refused_note = " (it stays spooled)"

    def __init__(
        self,
        config: MqttConfig,
        *,
        device_id: str,
        will_topic: str,
        subscriptions: Sequence[tuple[str, int]],
        on_connected: Callable[[], None],
        on_disconnected: Callable[[str], None],
        on_ack: Callable[[int, bool], None],
        on_message: Callable[[str, bytes, bool], None],
    ) -> None:
        super().__init__(
            config,
            # Random per run: another broker user cannot take the bridge's connection over
            # by connecting with its client id (Mosquitto drops the older of two).
            client_id=config.client_id or f"powerbridge-bridge-{device_id}-{secrets.token_hex(6)}",
            username=config.username or bridge_user(device_id),
            password=config.password(),
            status_topic=will_topic,
            subscriptions=subscriptions,
            logger=log,
        )
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._on_ack = on_ack
        self._on_message = on_message
        self.connects = 0
        """Successful connections since start (reconnects are ``connects - 1``)."""
        self._client.max_inflight_messages_set(PAHO_MAX_INFLIGHT)
        self._client.max_queued_messages_set(0)
        self._client.on_publish = self._handle_publish

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)

    def _connected(self) -> None:
        self.connects += 1
        log.info("connected to broker %s:%d", self.host, self.port)
        self._on_connected()

    def _lost(self, reason: str) -> None:
        # The broker closes the connection, without a reason in MQTT 3.1.1 ("Unspecified
        # error"), when a message exceeds its max_packet_size: a warning, with that hint.
        log.warning(
            "disconnected from broker %s:%d: %s (reconnecting; if this repeats, see the "
            "broker's log: a message over its max_packet_size is one cause, mqtt.max_packet_size)",
            self.host,
            self.port,
            reason,
        )
        self._on_disconnected(reason)

    def _message(self, topic: str, payload: bytes, retained: bool) -> None:
        self._on_message(topic, payload, retained)

    def _handle_publish(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reason: ReasonCode, _props: Any
    ) -> None:
        self._on_ack(mid, not reason.is_failure)
