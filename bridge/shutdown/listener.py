"""The client's MQTT connection (paho-mqtt 2.x): events in, retained state out.

A :class:`~bridge.mqtt.link.StatusLink`, like the bridge's own link: ``status``
``online`` (retained, QoS 1) and the subscriptions are renewed in ``on_connect``, so
they survive every reconnect; the last will says ``offline``; reconnecting is paho's
backoff.  The network thread only timestamps what arrives and queues it for the
runtime; it never decides anything.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence

from bridge.clock import Clock
from bridge.config.common import MqttConfig
from bridge.mqtt.link import StatusLink
from bridge.shutdown.events import Connected, Disconnected, Event, Message

log = logging.getLogger("bridge.shutdown.mqtt")

MIN_KEEPALIVE_S = 5


class Listener(StatusLink):
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
        super().__init__(
            config,
            client_id=mqtt_client_id or f"powerbridge-client-{uuid.uuid4().hex[:8]}",
            username=username,
            password=password,
            status_topic=status_topic,
            subscriptions=subscriptions,
            logger=log,
            host=host,
            port=port,
            min_keepalive=MIN_KEEPALIVE_S,
        )
        self._on_event = on_event
        self._clock = clock
        self._up = False

    def stop(self, timeout: float = 3.0) -> None:
        """Say ``offline`` (a clean stop sends no last will), disconnect, stop the thread."""
        super().stop(timeout)

    # -- hooks (network thread) -------------------------------------------------------------
    def _connected(self) -> None:
        self._up = True
        self._on_event(Connected(self._clock.monotonic()))

    def _lost(self, reason: str) -> None:
        if self._up:
            self._up = False
            log.warning("connection to the broker lost (%s); reconnecting", reason)
            self._on_event(Disconnected(self._clock.monotonic()))

    def _message(self, topic: str, payload: bytes, retained: bool) -> None:
        self._on_event(
            Message(
                topic=topic,
                payload=payload,
                retained=retained,
                received=self._clock.monotonic(),
                wall=self._clock.utcnow(),
            )
        )
