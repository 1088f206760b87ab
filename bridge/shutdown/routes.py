"""Which topics a client subscribes to, and what each message it receives is.

One table, built from the configuration: the watched bridges' ``mains``, ``status``
and ``ups`` (a UPS behind the bridge), the client's own ``status`` and ``state``
(where a second process with the same identity shows itself), its commands and those
to all clients, and Home Assistant's birth topic when discovery is on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bridge.mqtt.contract import ALL_CLIENTS, BridgeTopics, ClientTopics, ha_status_topic

Kind = Literal["mains", "status", "ups", "own", "command", "ha_status"]


@dataclass(frozen=True, slots=True)
class Route:
    kind: Kind
    name: str = ""
    """The bridge's device id (``mains``, ``status``, ``ups``) or a command's name."""


class Routes:
    """The subscriptions of one client and the route of each topic."""

    def __init__(
        self, base: str, client_id: str, bridges: list[str], discovery_prefix: str | None
    ) -> None:
        self.own = ClientTopics(base, client_id)
        everyone = ClientTopics(base, ALL_CLIENTS)
        self._bridges: dict[str, Route] = {}
        for device in bridges:
            topics = BridgeTopics(base, device)
            self._bridges[topics.mains] = Route("mains", device)
            self._bridges[topics.status] = Route("status", device)
            self._bridges[topics.ups] = Route("ups", device)  # a UPS behind the bridge
        self._cmd_prefixes = (self.own.cmd(""), everyone.cmd(""))
        self.ha_status = None if discovery_prefix is None else ha_status_topic(discovery_prefix)
        self.subscriptions = [(topic, 1) for topic in self._bridges]
        self.subscriptions += [
            (self.own.status, 1),
            (self.own.state, 1),
            (self.own.cmd_filter, 1),
            (everyone.cmd_filter, 1),
        ]
        if self.ha_status is not None:
            self.subscriptions.append((self.ha_status, 1))

    def route(self, topic: str) -> Route | None:
        """What a message on ``topic`` is (``None``: nothing this client subscribed to)."""
        known = self._bridges.get(topic)
        if known is not None:
            return known
        if topic in (self.own.status, self.own.state):
            return Route("own")
        for prefix in self._cmd_prefixes:
            if topic.startswith(prefix):
                return Route("command", topic[len(prefix) :])
        if topic == self.ha_status:
            return Route("ha_status")
        return None
