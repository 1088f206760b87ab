"""A read-only MQTT connection that keeps a :class:`~bridge.tui.fleet.Fleet` current.

paho-mqtt's network loop runs in its own thread; every message is handed to the
fleet under a lock, and the changes it reports are queued for the caller's
thread (the view).  Subscriptions are made in ``on_connect`` so that they are
renewed after a reconnect.  The demo also publishes its ``simulate`` commands
through :meth:`FleetObserver.publish`.

Its paho client comes from :mod:`bridge.mqtt.paho` like every other; it stays
connected (paho reconnects with its backoff) rather than being a one-shot
:class:`~bridge.mqtt.session.BrokerSession`, because it watches for as long as the
view is open.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from bridge.errors import BrokerError
from bridge.mqtt.paho import new_client, reason_text, set_reconnect_backoff, trust_ca
from bridge.tui.fleet import Change, Fleet, subscriptions

log = logging.getLogger(__name__)

RECONNECT_S = (1.0, 10.0)
"""paho's reconnect backoff for a watching person: first and longest wait, seconds."""


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """How to reach and log in to a broker."""

    host: str = "localhost"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    insecure: bool = False
    protocol: str = "3.1.1"
    keepalive: int = 30

    def describe(self) -> str:
        who = f"{self.username}@" if self.username else ""
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{who}{self.host}:{self.port}"


class FleetObserver:
    """Connect, subscribe to every bridge's and client's public topics, feed a fleet."""

    def __init__(
        self,
        address: BrokerAddress,
        base: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        client_id: str | None = None,
    ) -> None:
        self.address = address
        self.fleet = Fleet(base)
        self.lock = threading.Lock()
        self.changes: queue.Queue[Change] = queue.Queue()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.last_message_at: float | None = None
        self.disconnects = 0
        self.denied: list[str] = []
        """Topic filters the broker refused (the user's ACL does not cover them)."""
        self._clock = clock
        self._refused: str | None = None
        self._stopping = False
        self._pending_subs: set[int] = set()
        self._client = new_client(
            address.protocol, client_id=client_id or f"powerbridge-watch-{uuid.uuid4().hex[:8]}"
        )
        if address.username is not None:
            self._client.username_pw_set(address.username, address.password)
        if address.tls:
            trust_ca(self._client, address.ca_file, check_hostname=not address.insecure)
        set_reconnect_backoff(self._client, *RECONNECT_S)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    # -- paho callbacks (network thread) ------------------------------------------------
    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.ConnectFlags,
        rc: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if rc.is_failure:
            self._refused = reason_text(rc)
            return
        self._refused = None
        self.connected.set()
        filters = subscriptions(self.fleet.base)
        result, mid = client.subscribe([(topic, 1) for topic in filters])
        if result == mqtt.MQTT_ERR_SUCCESS and mid is not None:
            self._pending_subs.add(mid)

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.DisconnectFlags,
        rc: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if self.connected.is_set() and not self._stopping:
            self.disconnects += 1
            log.warning("lost the broker (%s); reconnecting", rc)
        self.connected.clear()

    def _on_subscribe(
        self,
        _client: mqtt.Client,
        _userdata: object,
        mid: int,
        codes: list[ReasonCode],
        _props: Properties | None,
    ) -> None:
        if codes and all(code.is_failure for code in codes):
            self._refused = "the broker refused every subscription (check the ACL for this user)"
        else:
            filters = subscriptions(self.fleet.base)
            self.denied = [f for f, code in zip(filters, codes, strict=False) if code.is_failure]
        self._pending_subs.discard(mid)
        self.subscribed.set()

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        now = self._clock()
        with self.lock:
            self.last_message_at = now
            found = self.fleet.handle(
                msg.topic,
                bytes(msg.payload),
                now,
                retained=bool(msg.retain),
                wall=datetime.now(UTC),
            )
        for change in found:
            self.changes.put(change)

    # -- caller's thread -------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> None:
        """Connect and subscribe, or raise :class:`BrokerError` with the reason."""
        try:
            self._client.connect(
                self.address.host, self.address.port, keepalive=self.address.keepalive
            )
        except (OSError, ssl.SSLError) as exc:
            raise BrokerError(f"cannot reach {self.address.describe()}: {exc}") from None
        self._client.loop_start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._refused is not None:
                self.stop()
                raise BrokerError(f"{self.address.describe()} refused us: {self._refused}")
            if self.subscribed.is_set():
                return
            time.sleep(0.02)
        self.stop()
        raise BrokerError(f"no answer from {self.address.describe()} within {timeout:.0f} s")

    def settle(self, quiet: float = 0.3, limit: float = 3.0) -> None:
        """Wait until retained messages stop arriving (quiet for ``quiet`` s, at most ``limit``)."""
        start = time.monotonic()
        while time.monotonic() - start < limit:
            with self.lock:
                last = self.last_message_at
            reference = last if last is not None else start
            if self._clock() - reference >= quiet and time.monotonic() - start >= quiet:
                return
            time.sleep(0.05)

    def drain(self) -> Iterator[Change]:
        while True:
            try:
                yield self.changes.get_nowait()
            except queue.Empty:
                return

    @contextmanager
    def locked(self) -> Iterator[Fleet]:
        with self.lock:
            yield self.fleet

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, timeout: float = 5.0) -> None:
        """Publish and wait until the broker acknowledged it (QoS 1)."""
        info = self._client.publish(topic, payload, qos=qos)
        try:
            info.wait_for_publish(timeout)
        except (ValueError, RuntimeError) as exc:
            raise BrokerError(f"could not publish to {topic}: {exc}") from None
        if not info.is_published():
            raise BrokerError(f"the broker did not acknowledge {topic} within {timeout:.0f} s")

    def stop(self) -> None:
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()
