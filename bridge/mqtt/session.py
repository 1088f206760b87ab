"""The one public MQTT session: short and synchronous, for checks, deployment and tools.

:class:`MqttSession` connects with any MQTT configuration and user (a distinct,
random client id, so a running daemon or client is never kicked off), and turns
every way a connection can fail into a :class:`BrokerProblemError` that says what is
wrong and how to fix it.  :class:`BrokerSession` is the bridge's: its configuration
and its broker user.  The deployment checks and lifecycle, ``powerbridge simulate``
and the shutdown client's ``status`` and ``uninstall`` all use one of the two.

A session does not retry: it is for a person waiting at a terminal, who is told
what failed.  (Long-lived connections retry with paho's backoff, see
:mod:`bridge.mqtt.link`.)
"""

from __future__ import annotations

import queue
import ssl
import threading
import time
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

import paho.mqtt.client as mqtt

from bridge.config.common import MqttConfig
from bridge.errors import BrokerError, ConfigError
from bridge.mqtt.contract import bridge_user

if TYPE_CHECKING:  # the tools' sessions; the shutdown client never loads the bridge's schema
    from bridge.config import BridgeConfig
from bridge.mqtt.paho import AUTH_REFUSALS, TlsFilesError, configure_tls, new_client


class BrokerProblemError(BrokerError):
    """The broker could not be used; ``kind`` is one of ``unreachable``, ``refused``,
    ``tls``, ``password``, ``denied``, ``timeout``."""

    def __init__(self, kind: str, message: str, fix: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.fix = fix


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: bytes
    retain: bool


def _reason_value(rc: Any) -> int:
    return int(getattr(rc, "value", rc))


class MqttSession(AbstractContextManager["MqttSession"]):
    """Connected to the broker of ``mqtt`` (or ``host``:``port``) as ``username``."""

    def __init__(
        self,
        mqtt_config: MqttConfig,
        *,
        username: str,
        purpose: str,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        self.mqtt = mqtt_config
        self.username = username
        self.host = host or mqtt_config.host
        self.port = port or mqtt_config.effective_port
        self.where = f"{self.host}:{self.port}"
        self.messages: queue.Queue[Received] = queue.Queue()
        self._connected = threading.Event()
        self._answered = threading.Event()
        self._connack: Any = None
        self._subacks: dict[int, list[int]] = {}
        self._suback_event = threading.Condition()
        self._client = new_client(
            mqtt_config.protocol, client_id=f"powerbridge-{purpose}-{uuid.uuid4().hex[:6]}"
        )
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._started = False

    # -- callbacks (paho's network thread) ----------------------------------------------
    def _on_connect(self, _c: mqtt.Client, _u: object, _f: object, rc: Any, _p: object) -> None:
        self._connack = rc
        if _reason_value(rc) == 0:
            self._connected.set()
        self._answered.set()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self.messages.put(Received(msg.topic, bytes(msg.payload), bool(msg.retain)))

    def _on_subscribe(self, _c: mqtt.Client, _u: object, mid: int, codes: Any, _p: object) -> None:
        with self._suback_event:
            self._subacks[mid] = [_reason_value(c) for c in codes]
            self._suback_event.notify_all()

    # -- lifecycle ----------------------------------------------------------------------
    def connect(self, timeout: float = 5.0) -> Self:
        """Connect or raise :class:`BrokerProblemError` with a fix."""
        cfg = self.mqtt
        try:
            password = cfg.password()
        except ConfigError as exc:
            raise BrokerProblemError(
                "password",
                f"the MQTT password cannot be read: {exc.problems[0].message}",
                "write the password of "
                f"{self.username} to mqtt.password_file (mode 0600) or set mqtt.password_env",
            ) from None
        self._client.username_pw_set(self.username, password)
        try:
            configure_tls(self._client, cfg.tls)
        except TlsFilesError as exc:
            raise BrokerProblemError(
                "tls",
                f"the TLS files cannot be used: {exc}",
                "check mqtt.tls.ca_file/cert_file/key_file (readable, PEM)",
            ) from None
        try:
            self._client.connect(self.host, self.port, keepalive=int(cfg.keepalive))
        except ssl.SSLError as exc:
            raise BrokerProblemError(
                "tls",
                f"TLS handshake with {self.where} failed: {exc.reason or exc}",
                "check that mqtt.tls.ca_file signed the broker's certificate and that mqtt.host "
                "is the name in the certificate",
            ) from None
        except OSError as exc:
            raise BrokerProblemError(
                "unreachable",
                f"cannot reach the broker at {self.where}: {exc.strerror or exc}",
                "is Mosquitto running (`systemctl status mosquitto`)? check mqtt.host and "
                "mqtt.port, the network and any firewall",
            ) from None
        self._client.loop_start()
        self._started = True
        if not self._answered.wait(timeout):
            self.close()
            raise BrokerProblemError(
                "timeout",
                f"the broker at {self.where} did not answer within {timeout:g} s",
                "is something else listening on that port? check mqtt.port and mqtt.tls.enabled",
            )
        if not self._connected.is_set():
            rc = self._connack
            self.close()
            code = _reason_value(rc)
            text = str(rc)
            if code in AUTH_REFUSALS:
                raise BrokerProblemError(
                    "refused",
                    f"the broker at {self.where} refused user {self.username}: {text} "
                    "(wrong password, or no such user)",
                    "put the password of this user — the line in /etc/mosquitto/powerbridge/"
                    f"credentials/{self.username}.password on the broker's host (written by "
                    "`powerbridge broker init`/`add-bridge`) — into mqtt.password_file (mode "
                    "0600), and check mqtt.username",
                )
            raise BrokerProblemError(
                "refused",
                f"the broker at {self.where} refused the connection: {text}",
                "check mqtt.protocol and the broker's log",
            )
        return self

    def close(self) -> None:
        if self._started:
            self._client.disconnect()
            self._client.loop_stop()
            self._started = False

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- operations ---------------------------------------------------------------------
    def subscribe(self, topic: str, qos: int = 1, timeout: float = 5.0) -> bool:
        """Subscribe; ``False`` when the broker refused it (ACL)."""
        result, mid = self._client.subscribe(topic, qos)
        if result != mqtt.MQTT_ERR_SUCCESS or mid is None:
            return False
        deadline = time.monotonic() + timeout
        with self._suback_event:
            while mid not in self._subacks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BrokerProblemError(
                        "timeout", f"no answer to a subscription to {topic}", "check the broker"
                    )
                self._suback_event.wait(left)
            codes = self._subacks.pop(mid)
        return all(c < 128 for c in codes)

    def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False, timeout: float = 5
    ) -> None:
        """Publish and wait until the broker acknowledged it (QoS ≥ 1)."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:
            raise BrokerProblemError(
                "timeout", f"publishing on {topic} failed: {exc}", "check the broker"
            ) from None
        if not info.is_published():
            raise BrokerProblemError(
                "timeout",
                f"the broker did not acknowledge a message on {topic} within {timeout:g} s",
                "check the broker's log and message_size_limit",
            )

    def expect(self, topic: str, payload: bytes | None = None, timeout: float = 3.0) -> bool:
        """Wait for a message on ``topic`` (with ``payload`` if given)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                msg = self.messages.get(timeout=left)
            except queue.Empty:
                return False
            if msg.topic == topic and (payload is None or msg.payload == payload):
                return True

    def retained(self, topics: list[str], wait: float = 0.5) -> dict[str, bytes]:
        """The retained message of each topic it could read (absent ones are missing)."""
        for topic in topics:
            self.subscribe(topic)
        out: dict[str, bytes] = {}
        deadline = time.monotonic() + wait
        while len(out) < len(topics):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                msg = self.messages.get(timeout=left)
            except queue.Empty:
                break
            if msg.topic in topics and msg.retain:
                out[msg.topic] = msg.payload
        return out


class BrokerSession(MqttSession):
    """Connected to the bridge's broker as ``bridge-<device_id>`` (or ``mqtt.username``)."""

    def __init__(self, config: BridgeConfig, device_id: str, *, purpose: str = "check") -> None:
        super().__init__(
            config.mqtt,
            username=config.mqtt.username or bridge_user(device_id),
            purpose=f"{purpose}-{device_id}",
        )
        self.config = config
        self.device_id = device_id
