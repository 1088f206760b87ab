"""The mDNS advertisement of this bridge's broker (``mqtt.advertise``), as a daemon part.

Announcing blocks for about a second, so it runs on a :class:`bridge.parts.Worker`
thread; stopping withdraws the announcement (or withdraws it at once when the daemon
stopped while it was being made).  The announcement itself is
:func:`bridge.mqtt.mdns.advertise_broker`.
"""

from __future__ import annotations

import logging
from typing import Any

from bridge.config.common import MqttConfig
from bridge.parts import Worker

log = logging.getLogger(__name__)


class Advertiser(Worker):
    """Announce the broker by mDNS (``mqtt.advertise``); it blocks ~1 s, hence a thread."""

    thread_name = "mdns-advertise"

    def __init__(self, mqtt: MqttConfig, device_id: str) -> None:
        super().__init__()
        self._mqtt, self._device = mqtt, device_id
        self._advertisement: Any = None

    def _run(self) -> None:
        from bridge.mqtt import mdns

        mqtt = self._mqtt
        host, port, tls = mdns.advertised_endpoint(mqtt.host, mqtt.effective_port, mqtt.tls.enabled)
        try:
            advertisement = mdns.advertise_broker(host, port, self._device, tls)
        except OSError as exc:
            log.warning("cannot advertise the broker by mDNS: %s", exc)
            return
        if self._stopping.is_set():
            advertisement.close()
        else:
            self._advertisement = advertisement

    def _stopped(self) -> None:
        advertisement, self._advertisement = self._advertisement, None
        if advertisement is not None:
            advertisement.close()
