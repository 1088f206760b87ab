"""The record of discovery topics the bridge has published, so that stale ones are cleared.

Home Assistant keeps a retained discovery config until it is replaced by an empty
retained payload.  The publisher publishes the configs the bridge generates now; a
topic published once (remembered in the table ``mqtt_discovery``, which this module
owns) and no longer generated is cleared, and forgotten once the broker acknowledges
the empty payload.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from typing import Final

from bridge.db import ensure_schema
from bridge.mqtt.contract import QOS_DISCOVERY
from bridge.mqtt.discovery import DiscoveryMessage
from bridge.mqtt.link import MqttLink

__all__ = ["SCHEMA", "DiscoveryTopics"]

log = logging.getLogger(__name__)

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS mqtt_discovery (
    topic TEXT PRIMARY KEY
);
"""


class DiscoveryTopics:
    """Discovery configs to publish, and the stale ones to clear, on one connection."""

    def __init__(self, conn: sqlite3.Connection, messages: Sequence[DiscoveryMessage]) -> None:
        self._conn = conn
        ensure_schema(conn, SCHEMA)
        self._messages = list(messages)
        self._clearing: dict[int, str] = {}
        """Empty retained payloads awaiting acknowledgement, by mid."""

    def publish(self, link: MqttLink) -> None:
        """Publish every config, then clear the stale ones."""
        new = {m.topic for m in self._messages}
        old = {row[0] for row in self._conn.execute("SELECT topic FROM mqtt_discovery")}
        # Remember before publishing: whatever reaches the broker can be cleared later.
        self._conn.executemany(
            "INSERT OR IGNORE INTO mqtt_discovery (topic) VALUES (?)", [(t,) for t in new - old]
        )
        for message in self._messages:
            link.publish(message.topic, message.payload, QOS_DISCOVERY, True)
        pending = set(self._clearing.values())
        for topic in sorted(old - new - pending):
            mid = link.publish(topic, b"", QOS_DISCOVERY, True)
            if mid is not None:
                log.info("clearing stale discovery config %s", topic)
                self._clearing[mid] = topic

    def acknowledged(self, mid: int, ok: bool) -> bool | None:
        """The broker's answer to ``mid``: ``None`` if it was not a clearing, else whether
        the topic was cleared (and forgotten)."""
        topic = self._clearing.pop(mid, None)
        if topic is None:
            return None
        if ok:
            self._conn.execute("DELETE FROM mqtt_discovery WHERE topic = ?", (topic,))
        return ok
